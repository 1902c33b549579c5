"""The pixel pipeline's costs, measured in one run: the Lightning Trainer against a plain loop on the
convolutional IDM and policy, and the memory of a million stored frames.

    python benchmarks/pixel_pipeline.py                       # writes benchmarks/pixel_pipeline.md
    python benchmarks/pixel_pipeline.py --quick               # smoke: few steps, 1e5 frames
    python benchmarks/pixel_pipeline.py --device cuda --precision bf16-mixed --output benchmarks/pixel_pipeline_cuda.md

1. Lightning vs plain: samples/s of `IDMModule` / `BCPolicyModule` on 64x64 grayscale stacks of 2
   frames under the Trainer `bco run` uses (its callbacks, logger and batches-per-step grouping),
   against a plain loop over the same module, batches, optimiser and thread count. Pairs of runs
   alternate, and the row gives the median of the pairs' ratios (the machine drifts by 10 to 20%).
2. Memory: 1e6 64x64 grayscale frames collected as `collect_transitions` stores them (16
   interleaved sub-envs, one row per frame, previous-row links), served by `BCODataModule` as IDM
   batches of (stack_t, stack_{t+1}) for one epoch of gathering and a few training steps, in a
   fresh process: peak RSS, less the RSS before the frames existed (Python, torch, a datamodule
   with its expert file loaded), over the frames' raw bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import lightning_samples_per_second, plain_samples_per_second  # noqa: E402

from bco_lightning.atomic import atomic_write  # noqa: E402
from bco_lightning.data.datamodule import DEFAULT_BATCHES_PER_STEP, BatchLoader, BCODataModule, ExampleTable  # noqa: E402
from bco_lightning.data.frames import stack_index  # noqa: E402
from bco_lightning.data.rollouts import Transitions  # noqa: E402
from bco_lightning.idm import IDMModule  # noqa: E402
from bco_lightning.policy import BCPolicyModule  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMAGE_SIZE, STACK, ACTIONS = 64, 2, 2
SHAPES = {"obs_dim": STACK * IMAGE_SIZE**2, "action_dim": ACTIONS, "discrete": True, "obs_shape": [STACK, IMAGE_SIZE, IMAGE_SIZE]}


def interleaved_transitions(frames: int, num_envs: int = 16, episode_length: int = 500, seed: int = 0) -> Transitions:
    """Frames stored as the collector stores them: step t of sub-env e in row t * num_envs + e."""
    rng = np.random.default_rng(seed)
    steps = frames // num_envs
    observations = rng.integers(0, 256, (steps * num_envs, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    rows = np.arange(steps * num_envs, dtype=np.int64)
    starts = (rows // num_envs) % episode_length == 0
    previous_row = np.where(starts, rows, rows - num_envs)
    obs_index = rows[:-num_envs][~starts[num_envs:]]  # no transition into an episode's first frame
    actions = rng.integers(0, ACTIONS, len(obs_index)).astype(np.int64)
    return Transitions(observations, actions, obs_index, obs_index + num_envs, previous_row)


def frame_table(stage: str, size: int) -> ExampleTable:
    transitions = interleaved_transitions(size)
    stacks = torch.from_numpy(stack_index(np.arange(len(transitions.observations)), transitions.previous_row, STACK))
    next_index = torch.from_numpy(transitions.next_index) if stage == "idm" else None
    return ExampleTable(torch.from_numpy(transitions.observations), torch.from_numpy(transitions.obs_index), next_index,
                        torch.from_numpy(transitions.actions), stacks)


def make_module(stage: str) -> IDMModule | BCPolicyModule:
    torch.manual_seed(0)
    return IDMModule(**SHAPES) if stage == "idm" else BCPolicyModule(**SHAPES)


def lightning_table(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    steps = 16 if args.quick else 96
    with tempfile.TemporaryDirectory() as log_dir:
        for stage in ("idm", "policy"):
            table = frame_table(stage, 2**14)
            loader = BatchLoader(table, torch.arange(len(table)), args.batch_size, shuffle=True, seed=0)
            grouped = BatchLoader(table, torch.arange(len(table)), args.batch_size, shuffle=True, seed=0, group=DEFAULT_BATCHES_PER_STEP)
            plain_samples_per_second(make_module(stage), loader, 4, args.device)  # warm-up
            plain, lightning = [], []
            for repeat in range(args.repeats):
                if repeat % 2 == 0:
                    plain.append(plain_samples_per_second(make_module(stage), loader, steps, args.device))
                lightning.append(lightning_samples_per_second(make_module(stage), grouped, steps, log_dir, args.device, args.precision))
                if repeat % 2 == 1:
                    plain.append(plain_samples_per_second(make_module(stage), loader, steps, args.device))
            ratios = [ours / reference for ours, reference in zip(lightning, plain)]
            print(f"{stage}: pair ratios {' '.join(f'{r:.2f}' for r in ratios)}", flush=True)
            rows.append({"stage": stage, "plain": float(np.median(plain)), "lightning": float(np.median(lightning)),
                         "ratio": float(np.median(ratios)), "range": (min(ratios), max(ratios))})
    return rows


def memory_child(frames: int, batch_size: int) -> None:
    """One fresh process: a datamodule with its expert file loaded, its RSS (the baseline), then the
    frames and the batches served from them."""
    data = BCODataModule(env_id="CartPole-v1", expert_path="data/CartPole-v1-pixels.npz", observation="pixels",
                         image_size=IMAGE_SIZE, frame_stack=STACK, max_expert_episodes=1, batch_size=batch_size)
    data.expert_observations  # the expert file's frames are not what is measured
    baseline = resident_bytes()
    start = time.perf_counter()
    data.add_interaction(interleaved_transitions(frames))
    data.setup("fit")
    loader = data.train_dataloader()
    batches = 0
    for group in loader:  # one epoch of gathering: every stack of the training split
        batches += len(group)
    module = IDMModule(**data.model_shapes)
    optimizer = module.configure_optimizers()
    for batch in list(zip(range(8), data.train_dataloader()))[-1][1]:  # a few real training steps
        loss = module.codec.loss(module(batch), module.codec.encode(batch["action"]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    raw = frames * IMAGE_SIZE * IMAGE_SIZE
    print(json.dumps({"frames": frames, "raw": raw, "baseline": baseline, "peak": peak, "batches": batches, "seconds": time.perf_counter() - start}))


def resident_bytes() -> int:
    """This process's resident memory now (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()


def memory_row(frames: int, batch_size: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--memory-child", str(frames), "--batch-size", str(batch_size)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    row = json.loads(result.stdout.strip().splitlines()[-1])
    row["growth"] = (row["peak"] - row["baseline"]) / row["raw"]
    return row


def report(
    args: argparse.Namespace, lightning: list[dict[str, Any]], memory: dict[str, Any] | None, seconds: float,
    load: tuple[tuple[float, ...], tuple[float, ...]],
) -> str:
    gpu = f", GPU {torch.cuda.get_device_name()}" if args.device == "cuda" else ", no GPU used"
    command = "python benchmarks/pixel_pipeline.py" + "".join(f" {a}" for a in sys.argv[1:])
    lines = [
        "# Pixel pipeline: Lightning vs a plain loop, and the memory of stored frames",
        "",
        f"`{command}` on {platform.machine()}, {torch.get_num_threads()} torch thread(s){gpu}, torch {torch.__version__}, "
        f"precision {args.precision}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, took {seconds:.0f} s.",
        f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load[0])}; after: {', '.join(f'{x:.2f}' for x in load[1])} "
        "(other processes on the cores slow both programs of a pair alike; the ratios are what compare).",
        "",
        f"## Lightning Trainer vs plain loop, NatureCNN, 64x64 gray, stack 2, batch {args.batch_size}",
        "",
        "| model | plain loop samples/s | Lightning samples/s | Lightning / plain (median of pairs) | pair range |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in lightning:
        name = "IDM (concat)" if r["stage"] == "idm" else "policy"
        lines.append(f"| {name} | {r['plain']:,.0f} | {r['lightning']:,.0f} | {r['ratio']:.2f} | {r['range'][0]:.2f} to {r['range'][1]:.2f} |")
    if memory is not None:
        lines += [
            "",
            "## Memory of stored frames (fresh process)",
            "",
            "| frames | raw frame bytes | peak RSS - baseline | ratio | batches gathered | seconds |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {memory['frames']:,} | {memory['raw'] / 2**30:.2f} GiB | {(memory['peak'] - memory['baseline']) / 2**30:.2f} GiB | "
            f"{memory['growth']:.2f} | {memory['batches']:,} | {memory['seconds']:.0f} |",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few steps, 1e5 frames")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", default="32-true", help="the Trainer's precision, e.g. bf16-mixed (the plain loop stays fp32)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=4, help="Lightning runs per row, paired with plain runs")
    parser.add_argument("--frames", type=int, help="frames of the memory section (default 1e6, --quick 1e5)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "pixel_pipeline.md"))
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.memory_child:
        memory_child(args.memory_child, args.batch_size)
        return
    start, load_before = time.perf_counter(), os.getloadavg()
    lightning = lightning_table(args)
    frames = args.frames or (100_000 if args.quick else 1_000_000)
    memory = None if args.no_memory else memory_row(frames, args.batch_size)
    text = report(args, lightning, memory, time.perf_counter() - start, (load_before, os.getloadavg()))
    atomic_write(Path(args.output), lambda handle: handle.write(text.encode()))
    print(text)


if __name__ == "__main__":
    main()
