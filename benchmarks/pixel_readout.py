"""What a pixel policy's CNN can read off CartPole's frames: held-out R^2 of the cart position, the
pole angle and their one-step changes, regressed from a 64x64 gray stack of 2, with and without
`motion_gain` channels, and the held-out accuracy of the demonstrator's next action.

    python benchmarks/pixel_readout.py                    # motion_gain 0 and 10, 8 epochs
    python benchmarks/pixel_readout.py --gains 0 10 30 --epochs 12

The demonstrator (`cartpole_controller`) plays 25 episodes through the shaded camera the pixel runs
use, with a random push instead of its own 20% of the time, so that the states spread beyond the
sub-pixel band it holds them in; states are kept beside the frames for the targets only. A plain
loop (Adam 3e-4, batch 256, a policy encoder (`--encoder`, NatureCNN by default) and its frame
normaliser, one linear head for the four standardised targets and the two action logits), the same
batches and data for every column.
Writes benchmarks/pixel_readout.md (or --output).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bco_lightning.atomic import atomic_write
from bco_lightning.demonstrators import FrameRecording, cartpole_controller, play_episodes
from bco_lightning.vision import ENCODERS, FrameNormalizer, make_encoder

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("x", "theta", "x change", "theta change")


def record(episodes: int, push_noise: float, image_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stacks `(N, 2, S, S)` uint8 of (frame t-1, frame t), standardised targets `(N, 4)`, actions `(N,)`."""
    rng = np.random.default_rng(0)

    def noisy_controller(obs: np.ndarray) -> int:
        return int(rng.integers(2)) if rng.random() < push_noise else cartpole_controller(obs)

    stacks, targets, actions = [], [], []
    for episode in play_episodes("CartPole-v1", noisy_controller, episodes, 0, None, FrameRecording(image_size, grayscale=True)):
        assert episode.frames is not None
        states, frames = episode.observations, episode.frames
        for t in range(1, len(episode.actions)):
            stacks.append(frames[t - 1 : t + 1])
            targets.append([states[t, 0], states[t, 2], states[t, 0] - states[t - 1, 0], states[t, 2] - states[t - 1, 2]])
            actions.append(episode.actions[t])
    y = torch.tensor(np.array(targets), dtype=torch.float32)
    return torch.from_numpy(np.stack(stacks)), (y - y.mean(0)) / y.std(0), torch.tensor(actions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gains", type=float, nargs="+", default=[0.0, 10.0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=25)
    parser.add_argument("--push_noise", type=float, default=0.2)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--encoder", choices=ENCODERS, default="nature")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "pixel_readout.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    stacks, targets, actions = record(args.episodes, args.push_noise, args.image_size)
    recorded = time.perf_counter() - start
    order = torch.randperm(len(stacks), generator=torch.Generator().manual_seed(0))
    train, held_out = order[: int(0.9 * len(order))], order[int(0.9 * len(order)) :]
    rows: dict[float, tuple[list[float], float, float]] = {}
    for gain in args.gains:
        torch.manual_seed(0)
        frames = FrameNormalizer(2, args.image_size, 1, motion_gain=gain)
        encoder = make_encoder(args.encoder, frames.out_channels, args.image_size)
        head = torch.nn.Linear(encoder.features, len(TARGETS) + 2)
        optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=3e-4)
        batches = torch.Generator().manual_seed(0)
        began = time.perf_counter()
        for epoch in range(args.epochs):
            shuffled = train[torch.randperm(len(train), generator=batches)]
            for i in range(0, len(shuffled), 256):
                batch = shuffled[i : i + 256]
                out = head(encoder(frames(stacks[batch])))
                loss = F.mse_loss(out[:, : len(TARGETS)], targets[batch]) + F.cross_entropy(out[:, len(TARGETS) :], actions[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                out = head(encoder(frames(stacks[held_out])))
            r2 = 1 - ((out[:, : len(TARGETS)] - targets[held_out]) ** 2).mean(0) / targets[held_out].var(0)
            accuracy = float((out[:, len(TARGETS) :].argmax(1) == actions[held_out]).float().mean())
            print(f"gain {gain:g} epoch {epoch + 1}: R2 {[round(float(v), 3) for v in r2]}, action accuracy {accuracy:.3f}", flush=True)
        rows[gain] = ([float(v) for v in r2], accuracy, time.perf_counter() - began)
    command = "python benchmarks/pixel_readout.py" + "".join(f" {a}" for a in sys.argv[1:])
    lines = [
        "# What a pixel CNN reads off CartPole's frames, with and without `motion_gain`",
        "",
        f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, 1 torch thread, load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end. {len(stacks):,} stacks from {args.episodes} episodes of the "
        f"scripted controller with {args.push_noise:.0%} random pushes (recorded in {recorded:.0f} s), {args.image_size}x{args.image_size} gray, "
        f"stack 2; {args.encoder} encoder, Adam 3e-4, batch 256, {args.epochs} epochs; the same batches for every row. Held-out R^2 of each "
        "standardised target and held-out accuracy of the action taken at the second frame, after the last epoch:",
        "",
        "| motion_gain | " + " | ".join(f"R^2 {name}" for name in TARGETS) + " | action accuracy | training s |",
        "|---:|" + "---:|" * (len(TARGETS) + 2),
    ]
    for gain, (r2, accuracy, seconds) in rows.items():
        lines.append(f"| {gain:g} | " + " | ".join(f"{v:.3f}" for v in r2) + f" | {accuracy:.3f} | {seconds:.0f} |")
    text = "\n".join(lines) + "\n"
    atomic_write(Path(args.output), lambda handle: handle.write(text.encode()))
    print(text)


if __name__ == "__main__":
    main()
