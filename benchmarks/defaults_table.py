"""Runs `bco run` with nothing but `--data.env_id` and `--data.expert_path` (the defaults) on each
shipped demonstration file and seed, and writes benchmarks/defaults.md.

    python benchmarks/defaults_table.py [--seeds 0 1 2] [--envs CartPole-v1 ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bco_lightning.atomic import atomic_write, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
ENVS = ["CartPole-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1", "InvertedPendulum-v5", "Reacher-v5", "HalfCheetah-v5"]


def run_once(env_id: str, seed: int, workdir: Path) -> dict:
    """One run, or the summary a previous sitting left (each finished run is kept on disk)."""
    summary = workdir / f"{env_id}-{seed}.json"
    if summary.exists():
        return json.loads(summary.read_text())
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bco_lightning.cli", "run", "--data.env_id", env_id, "--data.expert_path", str(ROOT / "data" / f"{env_id}.npz"),
         "--seed_everything", str(seed), "--summary_path", str(summary), "--overwrite", "true"],
        cwd=workdir, check=True, capture_output=True,
    )
    result = json.loads(summary.read_text())
    result["process_seconds"] = time.perf_counter() - start
    write_json_atomic(summary, result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--envs", nargs="+", default=ENVS)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "defaults.md")
    parser.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "runs" / "defaults", help="finished runs are kept here and reused; delete it to start over")
    args = parser.parse_args()
    rows = ["| environment | demonstrator return | random return | BCO(0.1) return | normalised score (per seed) | IDM label accuracy | iterations run (per seed) | env steps (mean) | wall s per run |",
            "|---|---|---|---|---|---|---|---|---|"]
    args.workdir.mkdir(parents=True, exist_ok=True)
    for env_id in args.envs:
        if not (ROOT / "data" / f"{env_id}.npz").exists():
            print(f"skipping {env_id}: no data/{env_id}.npz", flush=True)
            continue
        runs = [run_once(env_id, seed, args.workdir) for seed in args.seeds]
        scores = [r["normalized_score"] for r in runs]
        returns = [r["eval_return_mean"] for r in runs]
        row = (f"| {env_id} | {runs[0]['demonstrator_return']:.1f} | {runs[0]['random_return']:.1f} | "
               f"{np.mean(returns):.1f} +- {np.std(returns):.1f} | {np.mean(scores):.3f} ({', '.join(f'{s:.3f}' for s in scores)}) | "
               f"{np.mean([r['idm_label_accuracy'] for r in runs]):.3f} | {', '.join(str(r.get('iterations_run', r['iterations'])) for r in runs)} | {np.mean([r['env_steps'] for r in runs]):.0f} | {np.mean([r.get('process_seconds', r['wall_seconds']) for r in runs]):.0f} |")
        print(row, flush=True)
        rows.append(row)
    text = "\n".join(rows) + "\n"
    atomic_write(args.output, lambda handle: handle.write(text.encode()))


if __name__ == "__main__":
    main()
