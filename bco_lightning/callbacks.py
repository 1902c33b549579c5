"""Callbacks: evaluation in the environment, and keeping the best validated weights."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.loggers import Logger

from bco_lightning.data.rollouts import EvaluationResult, evaluate_policy


def normalized_score(mean_return: float, random_return: float | None, demonstrator_return: float | None) -> float | None:
    """`(R - R_random) / (R_demonstrator - R_random)`, or None when either reference is unknown."""
    if random_return is None or demonstrator_return is None or demonstrator_return == random_return:
        return None
    return (mean_return - random_return) / (demonstrator_return - random_return)


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
    """At the end of fit, load the weights of the best checkpoint (lowest validation loss).

    Early stopping stops `patience` epochs after the best one; this puts that best one back, so
    labelling and evaluation use the model the validation split chose.
    """

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        checkpoint = trainer.checkpoint_callback
        path = getattr(checkpoint, "best_model_path", "")
        if path:
            state = torch.load(path, map_location=pl_module.device, weights_only=False)
            pl_module.load_state_dict(state["state_dict"])


class EnvEvaluationCallback(pl.Callback):
    """Evaluates a `BCPolicyModule` for seeded episodes when fit ends and logs the results.

    Each sub-env runs a fixed quota of episodes (see `evaluate_policy`). Logs `eval/return_mean`,
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
    ) -> None:
        self.env_id = env_id
        self.env_kwargs = env_kwargs or {}
        self.episodes = episodes
        self.seed = seed
        self.num_envs = num_envs
        self.demonstrator_return = demonstrator_return
        self.random_return = random_return
        self.log_step = log_step
        self.logger = logger
        self.result: EvaluationResult | None = None

    def evaluate(self, pl_module: Any) -> EvaluationResult:
        if self.random_return is None:
            self.random_return = evaluate_policy(self.env_id, self.env_kwargs, None, self.episodes, self.seed, self.num_envs).mean_return
        self.result = evaluate_policy(self.env_id, self.env_kwargs, pl_module.as_policy(), self.episodes, self.seed, self.num_envs)
        return self.result

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
        if not trainer.is_global_zero:
            return
        self.evaluate(pl_module)
        self.log_metrics(self.logger or trainer.logger)

    def log_metrics(self, logger: Logger | None) -> None:
        if logger is not None:
            logger.log_metrics(self.metrics(), step=self.log_step)
