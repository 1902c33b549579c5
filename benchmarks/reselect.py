"""Would more selection episodes have kept a better iteration? Re-evaluate a finished run's policies.

`bco run` keeps the iteration whose policy returns most on `--eval_episodes` selection episodes. On
environments where a policy sometimes fails badly (HalfCheetah flips over), ten episodes are a
noisy measure, so the kept iteration may be a lucky one. This script loads every iteration's
policy checkpoint of a finished run and plays it on many selection episodes (the run's selection
seeds, continued) and on as many held-out episodes (seeds no run uses), then says which iteration
each number of selection episodes would have kept and how that policy does on the held-out ones:

    python benchmarks/reselect.py --run_dir lightning_logs/HalfCheetah-v5/version_0 --episodes 40

Scores are normalised with the run's own random and demonstrator returns. Sub-envs differ from the
run's evaluation (one per episode up to 32), so the first `eval_episodes` selection returns are
a fresh draw, not the run's figures.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import torch

from bco_lightning.callbacks import normalized_score
from bco_lightning.data.rollouts import evaluate_policy
from bco_lightning.pipeline import SELECTION_SEED_OFFSET
from bco_lightning.policy import BCPolicyModule

HELD_OUT_SEED_OFFSET = 50_000


def iteration_checkpoints(run_dir: Path) -> dict[int, Path]:
    """`{iteration: policy checkpoint}` of the run, in iteration order."""
    found = {int(re.search(r"iter(\d+)", p.name).group(1)): p for p in (run_dir / "checkpoints").glob("policy-iter*.ckpt")}  # type: ignore[union-attr]
    return dict(sorted(found.items()))


def kept_iteration(selection_means: dict[int, float], stop_return: float | None) -> int:
    """The run's rule: the highest selection mean, ties to the later iteration, stopping once the
    kept mean reaches `stop_return`."""
    kept, best = -1, -np.inf
    for iteration, mean in selection_means.items():
        if mean >= best:
            kept, best = iteration, mean
        if stop_return is not None and best >= stop_return:
            break
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_dir", type=Path, required=True, help="a finished run's folder (it holds summary.json)")
    parser.add_argument("--episodes", type=int, default=40, help="selection and held-out episodes per policy")
    parser.add_argument("--out", type=Path, default=None, help="also write every return as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    summary = json.loads((args.run_dir / "summary.json").read_text())
    env_id, seed, low, high = summary["env_id"], summary["seed"], summary["random_return"], summary["demonstrator_return"]
    num_envs = min(args.episodes, 32)
    returns: dict[int, dict[str, list[float]]] = {}
    for iteration, path in iteration_checkpoints(args.run_dir).items():
        policy = BCPolicyModule.load_from_checkpoint(path, map_location="cpu").as_policy()
        selection = evaluate_policy(env_id, None, policy, args.episodes, seed + SELECTION_SEED_OFFSET, num_envs)
        held_out = evaluate_policy(env_id, None, policy, args.episodes, seed + HELD_OUT_SEED_OFFSET, num_envs)
        returns[iteration] = {"selection": selection.returns.tolist(), "held_out": held_out.returns.tolist()}

    def score(values: list[float]) -> float:
        return float(normalized_score(float(np.mean(values)), low, high))  # type: ignore[arg-type]

    first = min(summary["eval_episodes"], args.episodes)
    print(f"{env_id} seed {seed}, {args.run_dir}: the run kept iteration {summary['selected_iteration']} (score {summary['normalized_score']:.3f})\n")
    print(f"| iteration | selection, {first} episodes | selection, {args.episodes} | held-out, {args.episodes} |")
    print("|---:|---:|---:|---:|")
    for iteration, r in returns.items():
        print(f"| {iteration} | {score(r['selection'][:first]):.3f} | {score(r['selection']):.3f} | {score(r['held_out']):.3f} |")
    stop_return = None if summary.get("stop_score") is None else low + summary["stop_score"] * (high - low)
    print()
    for count in sorted({first, args.episodes}):
        kept = kept_iteration({i: float(np.mean(r["selection"][:count])) for i, r in returns.items()}, stop_return)
        print(f"{count} selection episodes keep iteration {kept}: held-out score {score(returns[kept]['held_out']):.3f}")
    best = max(returns, key=lambda i: np.mean(returns[i]["held_out"]))
    print(f"best held-out: iteration {best}, {score(returns[best]['held_out']):.3f}")
    if args.out:
        args.out.write_text(json.dumps({"summary": {k: v for k, v in summary.items() if k != "history"}, "returns": returns}))


if __name__ == "__main__":
    main()
