"""Where a run's inverse dynamics model is wrong: its error on its own interaction, split by clipping.

Some environments clip their observations (Walker2d-v5 and Hopper-v5 clip joint velocities to
[-10, 10]). A transition whose velocity sits at the clip has lost the velocity change that reveals
the action, so no IDM can label it. This script measures how often that happens, in the run's
interaction and in the expert file, and how much worse the IDM does there:

    python benchmarks/idm_errors.py --run_dir benchmarks/runs/benchmark/walker2d/bco_alpha/logs/Walker2d-v5/version_1 \
        --expert_path bco_lightning/demonstrations/Walker2d-v5.npz

A dimension counts as clipped when at least 1% of the run's observations sit exactly on its
minimum or maximum and it takes more than 20 distinct values (so on/off flags such as LunarLander's
leg contacts do not count). Error is the IDM's mean absolute error in the unit action box (Box
actions) or its error rate (Discrete), on a sample of pre- and post-demonstration transitions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from bco_lightning.idm import IDMModule


def clipped_dims(observations: np.ndarray, min_share: float = 0.01, min_distinct: int = 20) -> dict[int, tuple[float, float]]:
    """Dimensions whose extreme values repeat in `min_share` of the rows: `{dim: (low, high)}`."""
    low, high = observations.min(0), observations.max(0)
    at_bound = (observations == low) | (observations == high)
    dims = {}
    for dim in np.flatnonzero(at_bound.mean(0) >= min_share):
        if len(np.unique(observations[:, dim])) > min_distinct:
            dims[int(dim)] = (float(low[dim]), float(high[dim]))
    return dims


def at_bounds(observations: np.ndarray, dims: dict[int, tuple[float, float]]) -> np.ndarray:
    """Rows where any clipped dimension sits on its bound."""
    hit = np.zeros(len(observations), dtype=bool)
    for dim, (low, high) in dims.items():
        hit |= (observations[:, dim] == low) | (observations[:, dim] == high)
    return hit


def latest_idm_checkpoint(run_dir: Path) -> Path:
    return max((run_dir / "checkpoints").glob("idm-iter*.ckpt"), key=lambda path: int(path.stem.removeprefix("idm-iter")))


@torch.inference_mode()
def idm_errors(idm: IDMModule, obs: np.ndarray, next_obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Per-transition error: mean absolute error in the unit box, or 1.0 for a wrong class."""
    output = idm.net(torch.as_tensor(obs), torch.as_tensor(next_obs))
    if idm.codec.discrete:
        return (output.argmax(-1).numpy() != actions).astype(np.float64)
    target = idm.codec.to_unit(torch.as_tensor(actions, dtype=torch.float32))
    return (idm.codec.unit_prediction(output) - target).abs().mean(-1).numpy().astype(np.float64)


def report(run_dir: Path, expert_path: Path | None, samples: int, seed: int) -> str:
    interaction = np.load(run_dir / "state" / "interaction.npz")
    observations, actions = interaction["observations"], interaction["actions"]
    obs_index, next_index = interaction["obs_index"], interaction["next_index"]
    pre_demo = int(json.loads((run_dir / "state" / "progress.json").read_text())["pre_demo_steps"])
    checkpoint = latest_idm_checkpoint(run_dir)
    idm = IDMModule.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    dims = clipped_dims(observations)
    rng = np.random.default_rng(seed)
    lines = [f"IDM {checkpoint.name} of {run_dir}", f"clipped observation dims: {sorted(dims) or 'none'}", ""]
    lines += ["| transitions | share with a clipped dim at its bound | IDM error there | IDM error elsewhere |", "|---|---|---|---|"]
    for name, part in (("pre-demonstration", np.arange(pre_demo)), ("post-demonstration", np.arange(pre_demo, len(actions)))):
        if len(part) == 0:
            continue
        part = rng.choice(part, size=min(samples, len(part)), replace=False)
        obs, next_obs = observations[obs_index[part]], observations[next_index[part]]
        clipped = at_bounds(obs, dims) | at_bounds(next_obs, dims)
        errors = idm_errors(idm, obs, next_obs, actions[part])
        there = f"{errors[clipped].mean():.3f}" if clipped.any() else "-"
        elsewhere = f"{errors[~clipped].mean():.3f}" if (~clipped).any() else "-"
        lines.append(f"| {name} ({len(part)} sampled) | {clipped.mean():.3f} | {there} | {elsewhere} |")
    if expert_path is not None:
        expert = np.load(expert_path)["observations"]
        lines += ["", f"expert states of {expert_path} with a clipped dim at its bound: {at_bounds(expert, dims).mean():.3f}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_dir", type=Path, required=True, help="a bco run's log folder (holds state/ and checkpoints/)")
    parser.add_argument("--expert_path", type=Path, default=None, help="the run's expert file, to count its clipped states")
    parser.add_argument("--samples", type=int, default=50_000, help="transitions sampled from each part")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(report(args.run_dir, args.expert_path, args.samples, args.seed))


if __name__ == "__main__":
    main()
