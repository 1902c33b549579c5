"""How the pixel IDM should take `(s, s')`: held-out accuracy per epoch of each `--idm.fusion`, on
the same random interaction, the same initial weights and the same batches.

    python benchmarks/pixel_idm_fusion.py                     # CartPole-v1, 64x64 gray, lookahead 2
    python benchmarks/pixel_idm_fusion.py --env_id Pendulum-v1 --lookahead 1
    python benchmarks/pixel_idm_fusion.py --env_id Pendulum-v1 --lookahead 1 --fusions concat concat:10

A column `FUSION:GAIN` also sets `--idm.motion_gain GAIN` (frame-difference channels; its first
conv then has more inputs, so its initial weights differ from the plain column's).

Writes benchmarks/pixel_idm_fusion.md (or --output). A plain loop (AdamW, the IDM's defaults)
rather than a Trainer, so that the only difference between the columns is the fusion.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from bco_lightning.atomic import atomic_write
from bco_lightning.data.datamodule import BCODataModule
from bco_lightning.idm import IDMModule

ROOT = Path(__file__).resolve().parents[1]
EXPERT = {"CartPole-v1": "data/CartPole-v1-pixels.npz", "Pendulum-v1": "data/Pendulum-v1-pixels.npz"}


def evaluate(idm: IDMModule, batches: list[dict[str, torch.Tensor]]) -> float:
    """Accuracy (Discrete) or mean absolute error in the unit box (Box) over held-out batches."""
    idm.eval()
    with torch.no_grad():
        errors = [float(idm.codec.error(idm(b), b["action"])) * len(b["action"]) for b in batches]
    idm.train()
    return sum(errors) / sum(len(b["action"]) for b in batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env_id", default="CartPole-v1", choices=sorted(EXPERT))
    parser.add_argument("--lookahead", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20_000, help="random interaction steps")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--fusions", nargs="+", default=["concat", "delta"], help="FUSION or FUSION:MOTION_GAIN per column")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "pixel_idm_fusion.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = BCODataModule(env_id=args.env_id, expert_path=EXPERT[args.env_id], observation="pixels", idm_lookahead=args.lookahead,
                         pre_demo_steps=args.steps, max_expert_episodes=1, seed=0)
    data.setup("fit")
    collected = time.perf_counter() - start
    validation = list(data.val_dataloader())
    curves: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for fusion in args.fusions:
        torch.manual_seed(0)
        name, _, gain = fusion.partition(":")
        idm = IDMModule(**data.model_shapes, fusion=name, lr=3e-4, motion_gain=float(gain or 0.0))
        idm.fit_normalizers(data.normalization_tensors())
        optimizer = torch.optim.AdamW(idm.parameters(), lr=3e-4)
        loader = data.train_dataloader()
        loader.generator.manual_seed(0)  # the same batches for every fusion
        began = time.perf_counter()
        curves[fusion] = []
        for epoch in range(args.epochs):
            for group in loader:
                for batch in group:
                    loss = idm.codec.loss(idm(batch), idm.codec.encode(batch["action"]))
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
            curves[fusion].append(evaluate(idm, validation))
            print(f"{fusion} epoch {epoch + 1}: {curves[fusion][-1]:.4f}", flush=True)
        seconds[fusion] = time.perf_counter() - began
    metric = "accuracy" if data.spec.discrete else "MAE in the unit box"
    command = "python benchmarks/pixel_idm_fusion.py" + "".join(f" {a}" for a in sys.argv[1:])
    lines = [
        f"# Pixel IDM: `--idm.fusion` (`:GAIN`: with `--idm.motion_gain GAIN`) on {args.env_id}",
        "",
        f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, 1 torch thread, load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end. {args.steps:,} uniform random steps "
        f"(collected in {collected:.0f} s), 64x64 grayscale, stack 2, `idm_lookahead` {args.lookahead}; NatureCNN, AdamW lr 3e-4, "
        f"batch 256; the same batches for each column, and the same initial weights for columns with the same input channels. "
        f"Held-out {metric} of the IDM's validation split "
        "after each epoch:",
        "",
        "| epoch | " + " | ".join(args.fusions) + " |",
        "|---:|" + "---:|" * len(args.fusions),
    ]
    for epoch in range(args.epochs):
        lines.append(f"| {epoch + 1} | " + " | ".join(f"{curves[f][epoch]:.4f}" for f in args.fusions) + " |")
    lines.append("| training s | " + " | ".join(f"{seconds[f]:.0f}" for f in args.fusions) + " |")
    text = "\n".join(lines) + "\n"
    atomic_write(Path(args.output), lambda handle: handle.write(text.encode()))
    print(text)


if __name__ == "__main__":
    main()
