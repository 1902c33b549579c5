"""Callbacks: evaluation in the environment, and keeping the best validated weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.loggers import Logger

from bco_lightning.data.rollouts import EvaluationResult, Policy, evaluate_policy
from bco_lightning import seeds
from bco_lightning.distributed import gather_shares, share
from bco_lightning.pixels import PixelSettings


def normalized_score(mean_return: float, random_return: float | None, demonstrator_return: float | None) -> float | None:
    """`(R - R_random) / (R_demonstrator - R_random)`, or None when either reference is unknown."""
    if random_return is None or demonstrator_return is None or demonstrator_return == random_return:
        return None
    return (mean_return - random_return) / (demonstrator_return - random_return)


class FitNormalizers(pl.Callback):
    """Fits a model's normalisers from its datamodule's `normalization_tensors()` when its first fit
    sets up, after the datamodule's own setup has collected the stage's data (on every DDP rank).

    Statistics are fitted once: later fine-tuning keeps them, so the network's inputs keep their
    meaning across BCO(alpha) iterations. Outside a Trainer, call
    `model.fit_normalizers(data.normalization_tensors())` yourself.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if stage == "fit" and datamodule is not None and not pl_module.normalizers_fitted():
            pl_module.fit_normalizers(datamodule.normalization_tensors())


class RelativeEarlyStopping(EarlyStopping):
    """Early stopping where an improvement must beat the best loss by a fraction of it.

    Losses here span many scales (cross-entropy of a near-deterministic controller ends near 1e-6,
    MSE of a rough demonstrator near 0.3), so no absolute `min_delta` suits them all.

    Args:
        min_rel_delta: the fraction of the best value that a new value must improve by.
        **kwargs: `EarlyStopping` arguments (`min_delta` is set from `min_rel_delta`).
    """

    def __init__(self, min_rel_delta: float = 0.01, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_rel_delta = min_rel_delta

    def _evaluate_stopping_criteria(self, current: torch.Tensor) -> tuple[bool, str | None]:
        if torch.isfinite(self.best_score):
            # EarlyStopping stores min_delta signed by the mode; keep that sign.
            sign = -1.0 if self.mode == "min" else 1.0
            self.min_delta = sign * self.min_rel_delta * abs(float(self.best_score))
        return super()._evaluate_stopping_criteria(current)


class RestoreBestWeights(pl.Callback):
    """At the end of fit, load back the weights of the lowest validation loss.

    Early stopping stops `patience` validations after the best one; this puts that best one back, so
    labelling and evaluation use the model the validation split chose. The copy is kept in memory,
    not read from the checkpoint file, so that every DDP rank, on any node, restores the same weights.
    """

    def __init__(self, monitor: str = "val/loss") -> None:
        self.monitor = monitor
        self.best = float("inf")
        self.state: dict[str, torch.Tensor] | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.best, self.state = float("inf"), None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None or not float(value) < self.best:
            return
        self.best = float(value)
        self.state = {name: tensor.detach().clone() for name, tensor in pl_module.state_dict().items()}

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.state is not None:
            pl_module.load_state_dict(self.state)


class EnvEvaluationCallback(pl.Callback):
    """Evaluates a `BCPolicyModule` for seeded episodes when fit ends and logs the results.

    Each sub-env runs a fixed quota of episodes (see `evaluate_policy`). Under DDP every rank runs
    its share of the episodes with its own seeds and all ranks receive all results. Logs `eval/return_mean`,
    `eval/return_std`, `eval/episode_length` and, when both references are known,
    `eval/normalized_score` at step `log_step`.

    Args:
        env_id: gymnasium id.
        env_kwargs: keyword arguments for `gymnasium.make`.
        episodes: evaluation episodes.
        seed: seed of the first sub-env's reset; sub-env i uses seed + i.
        num_envs: sub-envs stepped together.
        demonstrator_return: reference for the normalised score.
        random_return: reference for the normalised score; None measures a uniform random policy
            on the same seeds.
        log_step: the step the metrics are logged at (the BCO(alpha) iteration in `bco run`).
        logger: where the metrics go; None uses the trainer's logger.
        selection_seed: when given, the policy also plays selection episodes from these seeds, for
            choosing among policies without looking at the evaluation episodes (`selection_result`).
        selection_episodes: how many selection episodes; None plays as many as `episodes`.
        pixels: the policy observes frame stacks made so (`BCODataModule.pixels`); None: state vectors.
        async_envs: step each sub-env in a worker process (`BCODataModule`'s `async_envs`).
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any] | None = None,
        episodes: int = 10,
        seed: int = 10_000,
        num_envs: int = 8,
        demonstrator_return: float | None = None,
        random_return: float | None = None,
        log_step: int = 0,
        logger: Logger | None = None,
        selection_seed: int | None = None,
        selection_episodes: int | None = None,
        pixels: PixelSettings | None = None,
        async_envs: bool = False,
    ) -> None:
        self.env_id = env_id
        self.async_envs = async_envs
        self.pixels = pixels
        self.env_kwargs = env_kwargs or {}
        self.episodes = episodes
        self.seed = seed
        self.num_envs = num_envs
        self.demonstrator_return = demonstrator_return
        self.random_return = random_return
        self.log_step = log_step
        self.logger = logger
        self.selection_seed = selection_seed
        self.selection_episodes = episodes if selection_episodes is None else selection_episodes
        self.result: EvaluationResult | None = None
        self.selection_result: EvaluationResult | None = None

    def evaluate(self, pl_module: Any, rank: int = 0, world_size: int = 1) -> EvaluationResult:
        """Each rank runs its share of the episodes with its own seeds; every rank gets all results."""
        if self.random_return is None:
            self.random_return = self._evaluate_shared(None, rank, world_size, self.seed, self.episodes).mean_return
        policy = pl_module.as_policy()
        self.result = self._evaluate_shared(policy, rank, world_size, self.seed, self.episodes)
        if self.selection_seed is not None:
            self.selection_result = self._evaluate_shared(policy, rank, world_size, self.selection_seed, self.selection_episodes)
        return self.result

    def _evaluate_shared(self, policy: Policy | None, rank: int, world_size: int, seed: int, total_episodes: int) -> EvaluationResult:
        def my_share() -> EvaluationResult:
            episodes = share(total_episodes, rank, world_size)
            if episodes == 0:
                return EvaluationResult(np.zeros(0), np.zeros(0, dtype=np.int64))
            return evaluate_policy(self.env_id, self.env_kwargs, policy, episodes, seeds.for_rank(seed, rank), self.num_envs, self.pixels, self.async_envs)

        parts = gather_shares(my_share, world_size)
        return EvaluationResult(np.concatenate([p.returns for p in parts]), np.concatenate([p.lengths for p in parts]))

    def metrics(self) -> dict[str, float]:
        assert self.result is not None
        metrics = {
            "eval/return_mean": self.result.mean_return,
            "eval/return_std": self.result.std_return,
            "eval/episode_length": float(self.result.lengths.mean()),
        }
        score = normalized_score(self.result.mean_return, self.random_return, self.demonstrator_return)
        if score is not None:
            metrics["eval/normalized_score"] = score
        return metrics

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.evaluate(pl_module, trainer.global_rank, trainer.world_size)
        self.log_metrics(self.logger or trainer.logger)

    def log_metrics(self, logger: Logger | None) -> None:
        if logger is not None:
            logger.log_metrics(self.metrics(), step=self.log_step)
