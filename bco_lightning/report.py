"""What a run reports: the summary (`summary.json`), TensorBoard hyperparameters, videos and IDM images."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from bco_lightning import seeds
from bco_lightning.atomic import write_json_atomic
from bco_lightning.callbacks import normalized_score
from bco_lightning.data.datamodule import BCODataModule
from bco_lightning.distributed import is_rank_zero
from bco_lightning.errors import RenderError
from bco_lightning.idm import IDMModule
from bco_lightning.nets import ActionCodec
from bco_lightning.policy import BCPolicyModule
from bco_lightning.run_folder import RunFolder

if TYPE_CHECKING:
    from bco_lightning.pipeline import RunSettings


def half_range(codec: ActionCodec) -> np.ndarray | None:
    """Half the width of each Box action dimension (None for discrete actions): the scale of label errors."""
    return None if codec.discrete else codec.half_range.cpu().numpy()


def label_accuracy(labels: np.ndarray, true_actions: np.ndarray | None, codec: ActionCodec) -> float | None:
    """How often the IDM's labels match the demonstrator's true actions (diagnostics only).

    Discrete: exact matches. Box: share of action components within 10% of the half-range.
    """
    if true_actions is None:
        return None
    if codec.discrete:
        return float(np.mean(labels.reshape(-1) == true_actions.reshape(-1)))
    error = np.abs(labels - true_actions.reshape(labels.shape)) / half_range(codec)
    return float(np.mean(error <= 0.1))


class RunReport:
    """Writes what a user reads of a run; only rank 0 writes."""

    def __init__(self, folder: RunFolder, data: BCODataModule, idm: IDMModule, policy: BCPolicyModule, settings: RunSettings) -> None:
        self.folder = folder
        self.data = data
        self.idm = idm
        self.policy = policy
        self.settings = settings
        self.videos = settings.video

    def label_accuracy(self, labels: np.ndarray) -> float | None:
        """How often `labels` match the expert file's true actions (None without them)."""
        return label_accuracy(labels, self.data.expert.actions, self.idm.codec)

    def log_video(self, iteration: int) -> None:
        """One evaluation episode of this iteration's policy (the evaluation's first seed) as
        `eval/video`; an environment that cannot render turns videos off with a one-line note."""
        if not self.videos or not is_rank_zero():
            return
        from bco_lightning.video import log_video, record_frames

        try:
            policy = self.policy.as_policy(deterministic=True)
            frames, fps = record_frames(self.data.env_id, self.data.env_kwargs, policy, seeds.for_evaluation(self.settings.seed), self.data.pixels)
        except RenderError as error:
            print(f"bco run: note: no TensorBoard video: {error}", file=sys.stderr)
            self.videos = False
            return
        log_video(self.folder.logger.experiment, "eval/video", frames, fps, iteration)

    def log_idm_images(self, step: int, labels: np.ndarray) -> None:
        """The final IDM's confusion matrix (discrete) or per-dimension error (Box), on its validation
        transitions and, when the expert file has true actions, on the demonstrations' labels."""
        if not is_rank_zero() or self.data.interaction is None:
            return
        from bco_lightning.diagnostics import idm_image

        codec, expert, writer = self.idm.codec, self.data.expert, self.folder.logger.experiment
        scale = half_range(codec)
        val = self.data.idm_validation_transitions()
        inferred = self.idm.infer(val["obs"], val["next_obs"]).numpy()
        image = idm_image(val["action"].numpy(), inferred, codec.discrete, codec.action_dim, scale, "IDM on held-out interaction transitions")
        writer.add_image("idm/validation_transitions", image, step, dataformats="HWC")
        if expert.actions is not None:
            image = idm_image(expert.actions, labels, codec.discrete, codec.action_dim, scale, "IDM labels vs the demonstrator's true actions")
            writer.add_image("idm/expert_labels_vs_true_actions", image, step, dataformats="HWC")

    def log_hparams(self, summary: dict[str, Any]) -> None:
        """The run's settings with its final metrics, for TensorBoard's HPARAMS tab."""
        params = {
            "env_id": self.data.env_id,
            "seed": self.settings.seed,
            "alpha": self.settings.alpha,
            "iterations": self.settings.iterations,
            "pre_demo_steps": self.folder.progress.pre_demo_steps,
            "batch_size": self.data.batch_size,
            "expert_episodes": summary["expert_episodes"],
            "idm_hidden_sizes": str(list(self.idm.hparams.get("hidden_sizes", []))),
            "idm_lr": self.idm.hparams.get("lr"),
            "policy_hidden_sizes": str(list(self.policy.hparams.get("hidden_sizes", []))),
            "policy_lr": self.policy.hparams.get("lr"),
            "world_size": self.folder.progress.world_size,
        }
        names = ("normalized_score", "eval_return_mean", "eval_return_std", "idm_label_accuracy", "env_steps")
        metrics = {f"hparams/{name}": float(summary[name]) for name in names if summary[name] is not None}
        self.folder.logger.log_hyperparams(params, metrics)

    def summarize(self, wall_seconds: float, labels: np.ndarray | None, last_iteration: int, stop_reason: str) -> dict[str, Any]:
        """The run summary; rank 0 also writes it (run folder and `summary_path`) and the hparams."""
        s, progress, expert = self.settings, self.folder.progress, self.data.expert
        selected = s.select_best and progress.selected_iteration is not None
        returns = np.asarray(progress.selected_eval_returns if selected else progress.eval_returns)
        policy_checkpoint = progress.selected_policy_checkpoint if selected else progress.policy_checkpoint
        mean_return, std_return = float(returns.mean()), float(returns.std())
        summary = {
            "env_id": self.data.env_id,
            "eval_return_mean": mean_return,
            "eval_return_std": std_return,
            "eval_episodes": int(returns.shape[0]),
            "demonstrator_return": expert.demonstrator_return,
            "random_return": progress.random_return,
            "normalized_score": normalized_score(mean_return, progress.random_return, expert.demonstrator_return),
            "env_steps": progress.env_steps,
            "pre_demo_steps": progress.pre_demo_steps,
            "post_demo_steps": progress.env_steps - progress.pre_demo_steps,
            "idm_label_accuracy": None if labels is None else self.label_accuracy(labels),
            "labels": s.labels,
            "expert_episodes": expert.num_episodes,
            "expert_transitions": expert.num_transitions,
            "alpha": s.alpha,
            "iterations": s.iterations,
            "iterations_run": last_iteration,
            "stop_score": s.stop_score,
            "iteration_patience": s.iteration_patience,
            "stop_reason": stop_reason,
            "seed": s.seed,
            "world_size": progress.world_size,
            "idm_checkpoint": progress.idm_checkpoint or None,
            "policy_checkpoint": policy_checkpoint or None,
            "selected_iteration": progress.selected_iteration if selected else last_iteration,
            "selection_steps": progress.selection_steps,
            "log_dir": str(self.folder.path.resolve()),
            "history": progress.history,
            "wall_seconds": wall_seconds,
            # a resumed run's earlier sittings included: what the whole run cost
            "wall_seconds_all_sittings": self.folder.seconds_all_sittings(),
        }
        if is_rank_zero():
            self.log_hparams(summary)
            write_json_atomic(self.folder.path / "summary.json", summary)
            if s.summary_path:
                write_json_atomic(s.summary_path, summary)
        return summary
