"""A run's folder: claiming it, its TensorBoard loggers, and the commits that `--resume` trusts.

Layout: `<log_root>/<env_id>/version_N/` holds `config.yaml`, `summary.json`, `checkpoints/`,
TensorBoard events (the run's own, `eval/`, and one folder per stage and iteration) and `state/`,
what a resumed run restores: `progress.json` (the commit record), `interaction.npz`, the latest
`idm.pt` / `policy.pt`, `selected_policy.pt` and `expert_labels.npy`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytorch_lightning.loggers import TensorBoardLogger

from bco_lightning.atomic import atomic_write, write_json_atomic
from bco_lightning.data.rollouts import Transitions
from bco_lightning.distributed import is_rank_zero

RUN_DIR_VARIABLE = "BCO_RUN_DIR"
"""Rank 0 publishes its run folder here; the DDP processes Lightning starts re-run `bco run` and join it."""


def claim_run_dir(parent: Path) -> Path:
    """Make the next free `parent/version_N` with an atomic mkdir: runs started at the same moment
    in one log root get distinct folders (Lightning's own version count can hand both the same)."""
    parent.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name[len("version_"):]) for p in parent.glob("version_*") if p.name[len("version_"):].isdigit()]
    number = max(taken, default=-1) + 1
    while True:
        try:
            (parent / f"version_{number}").mkdir()
            return parent / f"version_{number}"
        except FileExistsError:
            number += 1


@dataclass
class RunProgress:
    """What a run has finished; saved as `state/progress.json` after every unit of work.

    The files a finished unit leaves (interaction transitions, model weights) are written first,
    each atomically, and this record last: it is the commit point a resumed run trusts.
    """

    completed: list[str] = field(default_factory=list)
    env_steps: int = 0
    pre_demo_steps: int = 0
    random_return: float | None = None
    eval_returns: list[float] = field(default_factory=list)
    eval_lengths: list[int] = field(default_factory=list)
    idm_checkpoint: str = ""
    policy_checkpoint: str = ""
    world_size: int = 1
    selection_steps: int = 0
    selected_iteration: int | None = None
    selection_return: float | None = None
    selected_eval_returns: list[float] = field(default_factory=list)
    selected_eval_lengths: list[int] = field(default_factory=list)
    selected_policy_checkpoint: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    # Wall seconds of the committed units over every sitting (a unit cut off and replayed counts once).
    committed_seconds: float = 0.0

    @staticmethod
    def load(path: Path) -> RunProgress:
        return RunProgress(**json.loads(path.read_text())) if path.exists() else RunProgress()

    def last_started_iteration(self) -> int:
        """The highest iteration with a committed unit (-1 before any)."""
        return max((int(unit.rsplit("-", 1)[1]) for unit in self.completed), default=-1)

    def has_trained(self, model: str) -> bool:
        """Whether a committed unit has trained `model` ("idm" or "policy")."""
        return any(unit.startswith(f"{model}-") for unit in self.completed)


class RunFolder:
    """Owns a run's folder: where everything goes, what is saved, and the commit of each unit.

    Only rank 0 writes; every rank keeps the same `progress` in memory.
    """

    def __init__(self, log_root: str | Path, env_id: str, run_dir: str | Path | None = None) -> None:
        if run_dir is None and not is_rank_zero():
            run_dir = os.environ.get(RUN_DIR_VARIABLE)
        if run_dir is None:
            run_dir = claim_run_dir(Path(log_root) / env_id)
        run_dir = Path(run_dir)
        self.logger = TensorBoardLogger(run_dir.parent.parent, name=run_dir.parent.name, version=run_dir.name, default_hp_metric=False)
        self.path = Path(self.logger.log_dir)
        os.environ[RUN_DIR_VARIABLE] = str(self.path.resolve())
        self.state_dir = self.path / "state"
        self.checkpoint_dir = self.path / "checkpoints"
        self.progress = RunProgress.load(self.state_dir / "progress.json")
        self._follow_moved_checkpoints()
        self._unit_started = time.perf_counter()  # when the unit now running began (reset by each commit)

    def stage_logger(self, sub_dir: str) -> TensorBoardLogger:
        """A TensorBoard logger writing under the run's folder, in `sub_dir`."""
        return TensorBoardLogger(self.logger.save_dir, name=self.logger.name, version=self.logger.version, sub_dir=sub_dir, default_hp_metric=False)

    def _follow_moved_checkpoints(self) -> None:
        """Point the recorded checkpoints at this folder's copies: a run folder moved or copied
        (to another machine, say) and resumed would otherwise report the files at their old place."""
        progress = self.progress
        for key in ("idm_checkpoint", "policy_checkpoint", "selected_policy_checkpoint"):
            recorded = getattr(progress, key)
            if recorded:
                here = self.checkpoint_dir / Path(recorded).name
                if here.exists():
                    setattr(progress, key, str(here.resolve()))

    # Time --------------------------------------------------------------------------------------
    def start_clock(self) -> float:
        """Start timing the run's first unit in this sitting; returns the start time."""
        self._unit_started = time.perf_counter()
        return self._unit_started

    def seconds_all_sittings(self) -> float:
        """Wall seconds of the committed units of every sitting plus the unit now running."""
        return self.progress.committed_seconds + time.perf_counter() - self._unit_started

    # Saving --------------------------------------------------------------------------------------
    def save_interaction(self, interaction: Transitions, collection_sizes: list[int]) -> None:
        if not is_rank_zero():
            return
        arrays = {
            "observations": interaction.observations,
            "actions": interaction.actions,
            "obs_index": interaction.obs_index,
            "next_index": interaction.next_index,
            "collection_sizes": np.asarray(collection_sizes, dtype=np.int64),  # the split's blocks
        }
        if interaction.previous_row is not None:  # frames: the links their stacks are gathered by
            arrays["previous_row"] = interaction.previous_row
        atomic_write(self.state_dir / "interaction.npz", lambda handle: np.savez(handle, **arrays))

    def save_weights(self, module: torch.nn.Module, name: str) -> None:
        if is_rank_zero():
            atomic_write(self.state_dir / f"{name}.pt", lambda handle: torch.save(module.state_dict(), handle))

    def load_weights(self, name: str, device: torch.device) -> dict[str, torch.Tensor]:
        return torch.load(self.state_dir / f"{name}.pt", map_location=device, weights_only=True)

    def save_labels(self, labels: np.ndarray) -> None:
        if is_rank_zero():
            atomic_write(self.state_dir / "expert_labels.npy", lambda handle: np.save(handle, labels))

    def commit(self, unit: str) -> None:
        """Record `unit` as done (with its wall seconds), after everything it saved is on disk."""
        now = time.perf_counter()
        seconds, self._unit_started = now - self._unit_started, now
        self.progress.history[-1]["wall_seconds"] = seconds  # every unit adds one history entry
        self.progress.committed_seconds += seconds
        self.progress.completed.append(unit)
        if is_rank_zero():
            write_json_atomic(self.state_dir / "progress.json", asdict(self.progress))

    # Restoring -----------------------------------------------------------------------------------
    def saved_interaction(self) -> tuple[Transitions, list[int]] | None:
        """The interaction transitions the committed units collected, with the size of each
        collection (None before any). A folder written before the sizes were kept (0.2.0) holds
        transitions that count as one collection."""
        path = self.state_dir / "interaction.npz"
        if not (self.progress.completed and path.exists()):
            return None
        with np.load(path) as saved:
            previous_row = saved["previous_row"] if "previous_row" in saved.files else None
            transitions = Transitions(saved["observations"], saved["actions"], saved["obs_index"], saved["next_index"], previous_row)
            sizes = saved["collection_sizes"].tolist() if "collection_sizes" in saved.files else [len(transitions)]
            return transitions, sizes

    def saved_labels(self) -> np.ndarray | None:
        """The expert labels the last committed policy unit trained on (None before any)."""
        path = self.state_dir / "expert_labels.npy"
        return np.load(path) if self.progress.has_trained("policy") and path.exists() else None
