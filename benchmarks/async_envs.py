"""Collection speed of CarRacing frames with sub-envs stepped in this process against one worker
process each (`--data.async_envs`), measured in one run so that the ratio compares like with like.

    python benchmarks/async_envs.py                 # writes benchmarks/async_envs.md

Each row collects the same random-play steps, from the same seeds, with 16 sub-envs as the CarRacing
configs do; the two modes alternate and the row gives the median of the pairs' ratios. The
transitions are the same arrays in both modes (tests/test_pixels.py checks it), so only time differs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from bco_lightning.data.rollouts import RandomPlay, collect_transitions
from bco_lightning.pixels import PixelSettings

ROOT = Path(__file__).resolve().parents[1]


def steps_per_second(env_kwargs: dict, steps: int, num_envs: int, async_envs: bool) -> float:
    start = time.perf_counter()
    collect_transitions(
        "CarRacing-v3", env_kwargs, steps, seed=0, num_envs=num_envs, pixels=PixelSettings(64, False, 2),
        random_play=RandomPlay(repeat=8), async_envs=async_envs,
    )
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "async_envs.md"))
    args = parser.parse_args()
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    started = time.perf_counter()
    rows = []
    for name, kwargs in (("continuous", {}), ("discrete", {"continuous": False})):
        pairs = [
            (steps_per_second(kwargs, args.steps, args.num_envs, False), steps_per_second(kwargs, args.steps, args.num_envs, True))
            for _ in range(args.repeats)
        ]
        ratios = [workers / in_process for in_process, workers in pairs]
        rows.append(
            f"| {name} | {statistics.median(p[0] for p in pairs):,.0f} | {statistics.median(p[1] for p in pairs):,.0f} "
            f"| {statistics.median(ratios):.2f} | {min(ratios):.2f} to {max(ratios):.2f} |"
        )
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join([
        "# CarRacing collection: sub-envs in this process vs one worker process each",
        "",
        f"`python {' '.join(sys.argv)}` on {platform.machine()}, {os.cpu_count()} cores, {stamp}, took "
        f"{time.perf_counter() - started:.0f} s: {args.steps:,} random-play steps of 64x64 RGB stacks of 2, "
        f"{args.num_envs} sub-envs, {args.repeats} alternating pairs.",
        "",
        "| CarRacing-v3 | in process, steps/s | worker processes, steps/s | workers / in process (median of pairs) | pair range |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
    ])
    Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
