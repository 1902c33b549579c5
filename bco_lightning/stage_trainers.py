"""One fresh Lightning `Trainer` per stage and iteration, and what its fit leaves behind.

A Trainer reused for a second `fit` silently does nothing once `max_epochs` is reached, so every
stage gets its own, built here with the run's stopping rule, checkpoint, logger and schedule.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar

from bco_lightning.action_model import ActionModel
from bco_lightning.callbacks import FitNormalizers, RelativeEarlyStopping, RestoreBestWeights
from bco_lightning.data.datamodule import BCODataModule
from bco_lightning.distributed import track_launched_processes
from bco_lightning.errors import SettingError
from bco_lightning.run_folder import RunFolder
from bco_lightning.threads import TrainingThreadTuner

if TYPE_CHECKING:
    from bco_lightning.pipeline import RunSettings

UNSUPPORTED_TRAINER_ARGUMENTS = ("gradient_clip_val", "accumulate_grad_batches")


def changed_trainer_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The Trainer arguments a user actually set: the parser fills in every Trainer default, and
    those must not override the stage settings chosen here (validation interval, epochs, logging)."""
    defaults = {name: p.default for name, p in inspect.signature(pl.Trainer.__init__).parameters.items()}
    changed = {k: v for k, v in kwargs.items() if k not in defaults or v != defaults[k]}
    for name in UNSUPPORTED_TRAINER_ARGUMENTS:
        if name in changed:
            raise SettingError(
                f"`{name}` is not supported: the IDM and policy step their optimiser themselves "
                "(several batches per Lightning step); use a larger `batch_size` instead",
                owner="Trainer",
            )
    return changed


@dataclass(frozen=True)
class FitOutcome:
    """What one stage's fit left: its best checkpoint, its history entry, and how many processes trained."""

    checkpoint: str
    record: dict[str, Any]
    world_size: int


class StageTrainers:
    """Builds and runs the Trainer of each stage of a run."""

    def __init__(self, folder: RunFolder, settings: RunSettings, trainer_kwargs: dict[str, Any]) -> None:
        """`trainer_kwargs`: the Trainer arguments the user set (`changed_trainer_kwargs`); they win
        over the stage settings chosen here."""
        self.folder = folder
        self.settings = settings
        self.trainer_kwargs = trainer_kwargs

    def validation_schedule(self, data: BCODataModule, stage: str, iteration: int, max_epochs: int) -> dict[str, Any]:
        """Trainer arguments for when a stage validates: every epoch, or every
        `min_steps_per_validation` steps in whole epochs where an epoch is shorter; an IDM fine-tune
        with `finetune_steps_per_validation` every that many steps where an epoch is longer.
        `max_epochs` counts validations either way."""
        steps_per_epoch = math.ceil(data.num_train_samples() / data.batch_size)  # optimiser steps
        steps = self.settings.finetune_steps_per_validation
        if stage != "idm" or iteration == 0 or steps is None or steps >= steps_per_epoch:
            epochs_per_validation = max(1, math.ceil(self.settings.min_steps_per_validation / steps_per_epoch))
            return {"max_epochs": max_epochs * epochs_per_validation, "check_val_every_n_epoch": epochs_per_validation}
        lightning_steps = max(1, round(steps / data.batches_per_step))  # each takes batches_per_step batches
        return {
            "max_epochs": -1,
            "max_steps": max_epochs * lightning_steps * data.batches_per_step,
            "val_check_interval": lightning_steps,
            "check_val_every_n_epoch": None,
        }

    def trainer(self, data: BCODataModule, stage: str, iteration: int, max_epochs: int, extra_callbacks: list[pl.Callback]) -> pl.Trainer:
        s = self.settings
        checkpoint = ModelCheckpoint(
            dirpath=self.folder.checkpoint_dir,
            filename=f"{stage}-iter{iteration}",
            monitor="val/loss",
            save_top_k=1,
            # weights and hyperparameters only: `--resume` uses state/, so optimiser state would
            # only make every save slower
            save_weights_only=True,
            enable_version_counter=False,
        )
        kwargs = {
            **self.validation_schedule(data, stage, iteration, max_epochs),
            "enable_progress_bar": s.show_progress,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "deterministic": True,
            "log_every_n_steps": 1,
            **self.trainer_kwargs,
        }
        kwargs["callbacks"] = [
            FitNormalizers(),
            RelativeEarlyStopping(s.min_rel_delta, monitor="val/loss", patience=s.patience, stopping_threshold=s.stopping_threshold),
            checkpoint,
            RestoreBestWeights(),
            # tqdm, refreshed every 50 steps: Rich's bar redraws cost more than these small steps
            *([TQDMProgressBar(refresh_rate=50)] if s.show_progress else []),
            *([TrainingThreadTuner()] if s.torch_threads == "auto" else []),
            *extra_callbacks,
            *(self.trainer_kwargs.get("callbacks") or []),
        ]
        kwargs["logger"] = self.folder.stage_logger(f"iter{iteration}/{stage}")
        return pl.Trainer(**kwargs)

    def fit(self, module: ActionModel, data: BCODataModule, iteration: int, max_epochs: int, extra_callbacks: list[pl.Callback] = []) -> FitOutcome:
        """Train `module` on its stage's data (the datamodule is told which) with a fresh Trainer."""
        stage = module.data_stage
        data.stage = stage
        trainer = self.trainer(data, stage, iteration, max_epochs, extra_callbacks)
        track_launched_processes(trainer)
        trainer.fit(module, datamodule=data)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        record = {"iteration": iteration, "stage": stage, "epochs": trainer.current_epoch, "optimizer_steps": trainer.global_step, **metrics}
        checkpoint = str(Path(trainer.checkpoint_callback.best_model_path).resolve())  # type: ignore[union-attr]
        return FitOutcome(checkpoint, record, trainer.world_size)
