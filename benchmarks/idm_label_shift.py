"""Does a run's IDM read the expert's transitions as well as its own? Label quality on both, per action.

    python benchmarks/idm_label_shift.py RUN_DIR [RUN_DIR ...] > figures.md

An IDM is validated on transitions of the interaction it trained on; BCO needs it on the expert's
transitions, which come from other states (a demonstrator drives faster than random play, keeps
the pole up, reaches other joint angles). For every IDM checkpoint of a finished run folder
(`idm-iterK.ckpt`) this compares, per action component, its labels with the true actions on the
held-out interaction that iteration validated on (the run's own split) and on the expert pairs
(the expert file's diagnostic `actions`). A component read well on the first and poorly on the
second is a coverage problem, which more or other interaction can fix; one read poorly on both is
barely visible in the observations. Needs an expert file with `actions`.

Box actions: Pearson correlation and mean absolute error (action units) per component, and the
mean absolute error in the unit box over all components, which is the IDM's `val/mae`. Discrete
actions: the share labelled right.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from bco_lightning import BCODataModule, IDMModule
from bco_lightning.cli import run_parser
from bco_lightning.data.rollouts import Transitions
from bco_lightning.diagnostics import error_per_dimension
from bco_lightning.report import half_range, label_accuracy
from bco_lightning.run_folder import RunFolder


def run_datamodule(run_dir: Path) -> BCODataModule:
    """The run's datamodule, built from its saved `config.yaml` as `bco run --resume` builds it."""
    parser = run_parser()
    cfg = parser.parse_args(["--config", str(run_dir / "config.yaml")])
    data = parser.instantiate(cfg).data
    data.seed = cfg.seed_everything
    return data


def components(idm: IDMModule, inferred: np.ndarray, true: np.ndarray) -> list[tuple[str, str, str]]:
    """`(name, correlation, mean absolute error)` per Box component; `("all", "", unit-box error)` last.
    Discrete: one row, `("action", "", share right)`."""
    if idm.codec.discrete:
        return [("share right", "", f"{label_accuracy(inferred, true, idm.codec):.3f}")]
    inferred, true = inferred.reshape(len(inferred), -1), true.reshape(len(true), -1)
    rows = []
    for i in range(true.shape[1]):
        flat = true[:, i].std() == 0 or inferred[:, i].std() == 0
        correlation = "-" if flat else f"{np.corrcoef(inferred[:, i], true[:, i])[0, 1]:.3f}"
        rows.append((f"action[{i}]", correlation, f"{np.abs(inferred[:, i] - true[:, i]).mean():.3f}"))
    rows.append(("all (unit box)", "", f"{error_per_dimension(true, inferred, half_range(idm.codec)).mean():.4f}"))
    return rows


def report(run_dir: Path) -> list[str]:
    """Table rows `| run | iteration | component | held-out corr | held-out MAE | expert corr | expert MAE |`."""
    data = run_datamodule(run_dir)
    true_expert = data.expert.actions
    if true_expert is None:
        raise SystemExit(f"{data.expert_path}: no `actions` in the expert file, so there is nothing to compare the labels with")
    saved = RunFolder(run_dir.parent.parent, data.env_id, run_dir).saved_interaction()
    if saved is None:
        raise SystemExit(f"{run_dir}: no saved interaction; expected a run folder with a finished IDM unit")
    interaction, sizes = saved
    rows = []
    for iteration in range(len(sizes)):
        checkpoint = run_dir / "checkpoints" / f"idm-iter{iteration}.ckpt"
        if not checkpoint.exists():
            break
        idm = IDMModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=False)
        count = sum(sizes[: iteration + 1])  # the collections this iteration's IDM trained and validated on
        data.restore_interaction(
            Transitions(interaction.observations, interaction.actions[:count], interaction.obs_index[:count], interaction.next_index[:count], interaction.previous_row),
            sizes[: iteration + 1],
        )
        held_out = data.idm_validation_transitions()
        inferred = idm.infer(held_out["obs"], held_out["next_obs"], 256).numpy()
        own = components(idm, inferred, held_out["action"].numpy())
        expert = components(idm, data.label_expert(idm, 256), np.asarray(true_expert))
        for (name, own_corr, own_error), (_, expert_corr, expert_error) in zip(own, expert):
            rows.append(f"| {run_dir} | {iteration} | {name} | {own_corr} | {own_error} | {expert_corr} | {expert_error} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders (lightning_logs/<env_id>/version_N)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| run | iteration | component | held-out corr | held-out MAE | expert corr | expert MAE |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for run_dir in args.run_dirs:
        for row in report(run_dir):
            print(row, flush=True)


if __name__ == "__main__":
    main()
