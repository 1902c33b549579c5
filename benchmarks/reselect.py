"""Would more selection episodes have kept a better iteration? Re-evaluate a finished run's policies.

`bco run` keeps the iteration whose policy returns most on `--eval_episodes` selection episodes. On
environments where a policy sometimes fails badly (HalfCheetah flips over), ten episodes are a
noisy measure, so the kept iteration may be a lucky one. This script loads every iteration's
policy checkpoint of a finished run and plays it on many selection episodes (the run's selection
seeds, continued) and on as many held-out episodes (seeds no run uses), then says which iteration
each number of selection episodes would have kept, how that policy does on the held-out ones, and
what `bco run --eval_episodes N` would report for the run (the kept policy on the run's own
evaluation seeds; training does not depend on N, so this is the run's figure unless N moves the
`--stop_score` stop):

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
import yaml

from bco_lightning.callbacks import normalized_score
from bco_lightning.data.rollouts import evaluate_policy
from bco_lightning import seeds
from bco_lightning.selection import reaches_stop_score, replaces_kept_policy
from bco_lightning.policy import BCPolicyModule

HELD_OUT_SEED_OFFSET = 50_000


def iteration_checkpoints(run_dir: Path) -> dict[int, Path]:
    """`{iteration: policy checkpoint}` of the run, in iteration order."""
    found = {int(re.search(r"iter(\d+)", p.name).group(1)): p for p in (run_dir / "checkpoints").glob("policy-iter*.ckpt")}  # type: ignore[union-attr]
    return dict(sorted(found.items()))


def kept_iteration(selection_means: dict[int, float], random_return: float, demonstrator_return: float, stop_score: float | None) -> int:
    """The iteration a run keeps (`bco_lightning.pipeline`'s rule), iterations in order, stopping
    once the kept one reaches `stop_score`."""
    kept, kept_mean = -1, None
    for iteration, mean in selection_means.items():
        if replaces_kept_policy(mean, kept_mean):
            kept, kept_mean = iteration, mean
        if reaches_stop_score(kept_mean, random_return, demonstrator_return, stop_score):  # type: ignore[arg-type]
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
    env_kwargs = (yaml.safe_load((args.run_dir / "config.yaml").read_text()).get("data") or {}).get("env_kwargs")
    num_envs = min(args.episodes, 32)
    returns: dict[int, dict[str, list[float]]] = {}
    checkpoints = iteration_checkpoints(args.run_dir)
    for iteration, path in checkpoints.items():
        policy = BCPolicyModule.load_from_checkpoint(path, map_location="cpu").as_policy()
        selection = evaluate_policy(env_id, env_kwargs, policy, args.episodes, seeds.for_selection(seed), num_envs)
        held_out = evaluate_policy(env_id, env_kwargs, policy, args.episodes, seed + HELD_OUT_SEED_OFFSET, num_envs)
        returns[iteration] = {"selection": selection.returns.tolist(), "held_out": held_out.returns.tolist()}

    def score(values: list[float]) -> float:
        return float(normalized_score(float(np.mean(values)), low, high))  # type: ignore[arg-type]

    def report_with(count: int, kept: int) -> str:
        """What `bco run --eval_episodes count` reports for this run: the kept policy on the run's
        evaluation seeds, normalised by a random policy on the same episodes. Training does not
        depend on the count, so this holds unless the count moves the `--stop_score` stop."""
        seed_0, num_envs = seeds.for_evaluation(seed), min(count, 32)
        policy = BCPolicyModule.load_from_checkpoint(checkpoints[kept], map_location="cpu").as_policy()
        mean = evaluate_policy(env_id, env_kwargs, policy, count, seed_0, num_envs).mean_return
        random_mean = evaluate_policy(env_id, env_kwargs, None, count, seed_0, num_envs).mean_return
        return f"{count} evaluation episodes report {normalized_score(mean, random_mean, high):.3f}"

    first = min(summary["eval_episodes"], args.episodes)
    print(f"{env_id} seed {seed}, {args.run_dir}: the run kept iteration {summary['selected_iteration']} (score {summary['normalized_score']:.3f})\n")
    print(f"| iteration | selection, {first} episodes | selection, {args.episodes} | held-out, {args.episodes} |")
    print("|---:|---:|---:|---:|")
    for iteration, r in returns.items():
        print(f"| {iteration} | {score(r['selection'][:first]):.3f} | {score(r['selection']):.3f} | {score(r['held_out']):.3f} |")
    print()
    for count in sorted({first, args.episodes}):
        kept = kept_iteration({i: float(np.mean(r["selection"][:count])) for i, r in returns.items()}, low, high, summary.get("stop_score"))
        print(f"{count} selection episodes keep iteration {kept}: held-out score {score(returns[kept]['held_out']):.3f}; "
              f"{report_with(count, kept)}")
    best = max(returns, key=lambda i: np.mean(returns[i]["held_out"]))
    print(f"best held-out: iteration {best}, {score(returns[best]['held_out']):.3f}")
    if args.out:
        args.out.write_text(json.dumps({"summary": {k: v for k, v in summary.items() if k != "history"}, "returns": returns}))


if __name__ == "__main__":
    main()
