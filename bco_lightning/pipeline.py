"""The BCO(alpha) loop: interact, learn the IDM, label, clone, evaluate, and iterate.

One Trainer per stage and iteration: a Trainer reused for a second `fit` silently does nothing
once `max_epochs` is reached.
"""

from __future__ import annotations

import inspect
import json
import os
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import TensorBoardLogger

from bco_lightning.action_model import ActionModel
from bco_lightning.atomic import atomic_write, write_json_atomic
from bco_lightning.callbacks import EnvEvaluationCallback, RelativeEarlyStopping, RestoreBestWeights, normalized_score
from bco_lightning.data.datamodule import BCODataModule
from bco_lightning.data.datamodule import PolicyFactory
from bco_lightning.data.rollouts import EvaluationResult, Transitions
from bco_lightning.distributed import RANK_SEED_STRIDE, is_rank_zero, track_launched_processes
from bco_lightning.envs import ConfigError
from bco_lightning.idm import IDMModule
from bco_lightning.policy import BCPolicyModule
from bco_lightning.threads import TrainingThreadTuner

EVAL_SEED_OFFSET = 10_000
POST_DEMO_SEED_OFFSET = 1_000
SELECTION_SEED_OFFSET = 20_000
UNIT_SEED_STRIDE = 7_919
RUN_DIR_VARIABLE = "BCO_RUN_DIR"


def replaces_kept_policy(selection_mean: float, kept_mean: float | None) -> bool:
    """The selection rule: an iteration's policy replaces the kept one if it returns at least as
    much on the selection episodes (ties go to the later iteration, which has seen more interaction)."""
    return kept_mean is None or selection_mean >= kept_mean


def out_of_patience(iteration: int, kept_iteration: int, patience: int | None) -> bool:
    """Whether `--iteration_patience` ends the iterations after `iteration`: that many in a row have
    not replaced the policy kept from `kept_iteration`."""
    return patience is not None and iteration - kept_iteration >= patience


def reaches_stop_score(selection_mean: float, random_return: float | None, demonstrator_return: float | None, stop_score: float | None) -> bool:
    """Whether a kept policy's selection mean is good enough to end the iterations (`--stop_score`)."""
    if stop_score is None:
        return False
    score = normalized_score(selection_mean, random_return, demonstrator_return)
    return score is not None and score >= stop_score


@dataclass(frozen=True)
class RunSettings:
    """What `bco run` adds to the data, the two models and the Trainer.

    Attributes:
        seed: the `--seed_everything` seed (rollouts, splits, evaluation episodes).
        alpha: post-demonstration interactions per iteration, as a fraction of `|I_pre|`.
        noise_per_idm_error: Box actions only: post-demonstration rollouts add Gaussian noise of std
            max(`--policy.exploration_noise`, this x the latest IDM's validation error, mean absolute
            in the unit action box). An IDM that cannot tell actions apart needs the policy's
            rollouts to spread wider around its own actions, and a policy cloned from labels that
            far off acts no more precisely than that anyway, while a precise IDM keeps the small
            noise that a precise policy needs (Walker2d explores with about 0.3, HalfCheetah with
            0.1); 0 keeps the fixed noise.
        iterations: BCO(alpha) iterations after the first policy, at most; 0 gives BCO(0). 20,
            because the IDM's labels keep improving with on-policy interaction where they start
            poor: Walker2d reached its demonstrator only at iterations 12 and 14 (seeds 0, 2);
            `stop_score` ends the iterations of a policy that already matches the demonstrator.
        stop_score: end the iterations early once the kept policy's normalised score on the
            selection episodes reaches this (1.0: the demonstrator's mean return), since more
            interaction is then spent on a policy that already matches the demonstrations; None
            always runs every iteration. Needs `select_best` and the file's `episode_returns`.
        iteration_patience: end the iterations once this many in a row have not replaced the kept
            policy; None (the default) has no such limit. Where every policy scores about the same
            just under the demonstrator (Reacher, Pendulum), `stop_score` never fires and all the
            iterations run; 5 would end those runs at about iteration 6, but it would also end Hopper
            seed 2 at iteration 11 (0.953) before the policy of iteration 17 (0.973)
            (`benchmarks/patience.py` replays finished runs). Needs `select_best`.
        eval_episodes: evaluation episodes after each policy. 30, because MuJoCo returns swing from
            episode to episode (a Walker2d gait that sometimes falls, a HalfCheetah that sometimes
            flips): ten episodes put one Walker2d policy at 0.749 that 30 others put at 0.889.
            Episodes run side by side (one sub-env each up to 32), so CartPole's cost hardly changes.
        selection_episodes: selection episodes after each policy (`select_best`); None plays as many
            as `eval_episodes`. Too few pick a lucky iteration (see `benchmarks/reselect.py`).
        patience: validations without a better validation loss before a stage stops.
        min_steps_per_validation: a stage validates every epoch, or every this many gradient steps
            if an epoch is shorter (a small demonstration set has epochs of a few batches); patience
            and the epoch caps count validations.
        finetune_steps_per_validation: in BCO(alpha) iterations, each IDM fine-tune validates at
            least every this many optimiser steps (in whole Lightning steps of `batches_per_step`),
            and its patience and epoch cap count those validations. None: once per epoch, as the
            first IDM. Warm-started fine-tunes mostly stop at the patience floor, `patience` + 1
            epochs over all interaction so far, and that floor grows with every iteration.
        min_rel_delta: the smallest drop of validation loss that counts as better, as a fraction
            of the best loss so far.
        stopping_threshold: a validation loss this low ends a stage at once.
        idm_max_epochs / policy_max_epochs: epoch cap of each stage (unless --trainer.max_epochs).
        labels: "idm" is BCO; "true_actions" clones the expert file's own `actions` with no
            interaction and no IDM: behavioural cloning, the upper reference a benchmark compares
            BCO with (needs `actions` in the file and `--iterations 0`).
        select_best: keep the iteration whose policy returns most on held-out selection episodes
            (their own seeds, never the evaluation's; counted in `selection_steps`); False keeps
            the last iteration's policy.
        video: log a video of one evaluation episode to TensorBoard after each trained policy
            (headless `rgb_array`, at most 100 frames); skipped with a note where the environment
            cannot render.
        progress: progress bars for rollouts and training stages on stderr; None shows them only
            when stderr is a terminal.
        quiet: no progress bars and no closing line (for scripts); errors are still printed.
        log_root: folder under which the run's TensorBoard folder is made.
        summary_path: extra copy of the run summary (it is always written into the run folder).
        torch_threads: torch's intra-op threads. "auto" (the default) trains with whichever count
            from 1 up to the free cores (`OMP_NUM_THREADS` caps it) runs the optimiser steps
            fastest, timed during training and again every 5 to 60 s (`bco_lightning/threads.py`),
            and runs everything else on one thread; a number fixes the count everywhere. Two threads
            train these MLPs about 1.4 times faster on an idle 2-core machine, and fall far behind
            one thread as soon as another process takes a core.
    """

    seed: int = 0
    alpha: float = 0.1
    noise_per_idm_error: float = 2.0
    iterations: int = 20
    stop_score: float | None = 1.0
    iteration_patience: int | None = None
    eval_episodes: int = 30
    selection_episodes: int | None = None
    patience: int = 5
    min_steps_per_validation: int = 100
    finetune_steps_per_validation: int | None = None
    min_rel_delta: float = 0.001
    stopping_threshold: float = 1e-6
    idm_max_epochs: int = 100
    policy_max_epochs: int = 100
    labels: Literal["idm", "true_actions"] = "idm"
    select_best: bool = True
    video: bool = True
    progress: bool | None = None
    quiet: bool = False
    log_root: str = "lightning_logs"
    summary_path: str | None = None
    torch_threads: int | Literal["auto"] = "auto"

    @property
    def show_progress(self) -> bool:
        if self.quiet:
            return False
        return sys.stderr.isatty() if self.progress is None else self.progress

    def __post_init__(self) -> None:
        if self.alpha < 0:
            raise ConfigError(f"--alpha must be >= 0, got {self.alpha}")
        if self.noise_per_idm_error < 0:
            raise ConfigError(f"--noise_per_idm_error must be >= 0, got {self.noise_per_idm_error}")
        if self.iterations < 0:
            raise ConfigError(f"--iterations must be >= 0, got {self.iterations}")
        if self.iterations > 0 and self.alpha == 0:
            raise ConfigError("--iterations > 0 needs --alpha > 0 (post-demonstration interactions per iteration)")
        if self.eval_episodes < 1:
            raise ConfigError(f"--eval_episodes must be >= 1, got {self.eval_episodes}")
        if self.selection_episodes is not None and self.selection_episodes < 1:
            raise ConfigError(f"--selection_episodes must be >= 1 or null, got {self.selection_episodes}")
        if self.labels == "true_actions" and self.iterations > 0:
            raise ConfigError("--labels true_actions clones the file's actions once: pass --iterations 0")
        if self.iteration_patience is not None and (self.iteration_patience < 1 or not self.select_best):
            raise ConfigError(f"--iteration_patience must be >= 1 (or null) and needs --select_best true, got {self.iteration_patience}")
        if self.finetune_steps_per_validation is not None and self.finetune_steps_per_validation < 1:
            raise ConfigError(f"--finetune_steps_per_validation must be >= 1 or null, got {self.finetune_steps_per_validation}")
        if self.torch_threads != "auto" and self.torch_threads < 1:
            raise ConfigError(f"--torch_threads must be >= 1 or auto, got {self.torch_threads}")
        if self.patience < 1 or self.idm_max_epochs < 1 or self.policy_max_epochs < 1:
            raise ConfigError("--patience, --idm_max_epochs and --policy_max_epochs must be >= 1")


def label_accuracy(labels: np.ndarray, true_actions: np.ndarray | None, discrete: bool, half_range: np.ndarray | None) -> float | None:
    """How often the IDM's labels match the demonstrator's true actions (diagnostics only).

    Discrete: exact matches. Box: share of action components within 10% of the half-range.
    """
    if true_actions is None:
        return None
    if discrete:
        return float(np.mean(labels.reshape(-1) == true_actions.reshape(-1)))
    error = np.abs(labels - true_actions.reshape(labels.shape)) / half_range
    return float(np.mean(error <= 0.1))


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


def changed_trainer_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The Trainer arguments a user actually set: the parser fills in every Trainer default, and
    those must not override the stage settings chosen here (validation interval, epochs, logging)."""
    defaults = {name: p.default for name, p in inspect.signature(pl.Trainer.__init__).parameters.items()}
    changed = {k: v for k, v in kwargs.items() if k not in defaults or v != defaults[k]}
    for name in ("gradient_clip_val", "accumulate_grad_batches"):
        if name in changed:
            raise ConfigError(
                f"--trainer.{name} is not supported: the IDM and policy step their optimiser themselves "
                "(several batches per Lightning step); use --data.batch_size for larger batches"
            )
    return changed


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


class BCORun:
    """One `bco run`: a sequence of units of work, each checkpointed so that `--resume` continues.

    Units, per iteration k: `idm-k` (collect the interactions, random for k = 0 and with the current
    policy after, inside the IDM stage's setup; then train the IDM) and `policy-k` (label, train the
    policy, evaluate, consider it for selection). Each unit re-seeds every RNG from (seed, unit), so a unit replayed
    after a crash computes exactly what it would have computed the first time.
    """

    def __init__(
        self,
        data: BCODataModule,
        idm: IDMModule,
        policy: BCPolicyModule,
        settings: RunSettings,
        trainer_kwargs: dict[str, Any] | None = None,
        run_dir: str | Path | None = None,
    ) -> None:
        self.data = data
        self.idm = idm
        self.policy = policy
        self.settings = settings
        self.data.show_progress = settings.show_progress
        self.trainer_kwargs = changed_trainer_kwargs(trainer_kwargs or {})
        if run_dir is None and not is_rank_zero():
            # DDP processes that Lightning starts re-run `bco run`: they join rank 0's run folder.
            run_dir = os.environ.get(RUN_DIR_VARIABLE)
        if run_dir is None:
            run_dir = claim_run_dir(Path(settings.log_root) / data.env_id)
        run_dir = Path(run_dir)
        self.run_logger = TensorBoardLogger(run_dir.parent.parent, name=run_dir.parent.name, version=run_dir.name, default_hp_metric=False)
        self.run_dir = Path(self.run_logger.log_dir)
        os.environ[RUN_DIR_VARIABLE] = str(self.run_dir.resolve())
        self.state_dir = self.run_dir / "state"
        self.progress = RunProgress.load(self.state_dir / "progress.json")
        if settings.iterations < self._last_started_iteration():
            raise ConfigError(
                f"--iterations {settings.iterations}: the run in {self.run_dir} has already trained iteration "
                f"{self._last_started_iteration()}; give at least that many to resume it"
            )
        self._unit_started = time.perf_counter()  # when the unit now running began (reset by each commit)
        self._selected_state: dict[str, torch.Tensor] | None = None
        self._video = settings.video

    def _stage_logger(self, sub_dir: str) -> TensorBoardLogger:
        return TensorBoardLogger(
            self.run_logger.save_dir, name=self.run_logger.name, version=self.run_logger.version, sub_dir=sub_dir, default_hp_metric=False
        )

    def _validation_schedule(self, name: str, iteration: int, max_epochs: int) -> dict[str, Any]:
        """Trainer arguments for when a stage validates: every epoch, or every
        `min_steps_per_validation` steps in whole epochs where an epoch is shorter; an IDM fine-tune
        with `finetune_steps_per_validation` every that many steps where an epoch is longer.
        `max_epochs` counts validations either way."""
        steps_per_epoch = math.ceil(self.data.num_train_samples() / self.data.batch_size)  # optimiser steps
        steps = self.settings.finetune_steps_per_validation
        if name != "idm" or iteration == 0 or steps is None or steps >= steps_per_epoch:
            epochs_per_validation = max(1, math.ceil(self.settings.min_steps_per_validation / steps_per_epoch))
            return {"max_epochs": max_epochs * epochs_per_validation, "check_val_every_n_epoch": epochs_per_validation}
        lightning_steps = max(1, round(steps / self.data.batches_per_step))  # each takes batches_per_step batches
        return {"max_epochs": -1, "max_steps": max_epochs * lightning_steps * self.data.batches_per_step, "val_check_interval": lightning_steps, "check_val_every_n_epoch": None}

    def _trainer(self, name: str, iteration: int, max_epochs: int, extra_callbacks: list[pl.Callback]) -> pl.Trainer:
        checkpoint = ModelCheckpoint(
            dirpath=self.run_dir / "checkpoints",
            filename=f"{name}-iter{iteration}",
            monitor="val/loss",
            save_top_k=1,
            # weights and hyperparameters only: `--resume` uses state/, so optimiser state would
            # only make every save slower
            save_weights_only=True,
            enable_version_counter=False,
        )
        kwargs = {
            **self._validation_schedule(name, iteration, max_epochs),
            "enable_progress_bar": self.settings.show_progress,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "deterministic": True,
            "log_every_n_steps": 1,
            **self.trainer_kwargs,
        }
        kwargs["callbacks"] = [
            RelativeEarlyStopping(
                self.settings.min_rel_delta,
                monitor="val/loss",
                patience=self.settings.patience,
                stopping_threshold=self.settings.stopping_threshold,
            ),
            checkpoint,
            RestoreBestWeights(),
            # tqdm, refreshed every 50 steps: Rich's bar redraws cost more than these small steps
            *([TQDMProgressBar(refresh_rate=50)] if self.settings.show_progress else []),
            *([TrainingThreadTuner()] if self.settings.torch_threads == "auto" else []),
            *extra_callbacks,
            *(self.trainer_kwargs.get("callbacks") or []),
        ]
        kwargs["logger"] = self._stage_logger(f"iter{iteration}/{name}")
        return pl.Trainer(**kwargs)

    def _fit(self, module: ActionModel, name: str, iteration: int, max_epochs: int, extra_callbacks: list[pl.Callback] = []) -> str:
        self.data.stage = module.data_stage
        trainer = self._trainer(name, iteration, max_epochs, extra_callbacks)
        track_launched_processes(trainer)
        trainer.fit(module, datamodule=self.data)
        self.progress.world_size = trainer.world_size
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.progress.history.append(
            {"iteration": iteration, "stage": name, "epochs": trainer.current_epoch, "optimizer_steps": trainer.global_step, **metrics}
        )
        return str(Path(trainer.checkpoint_callback.best_model_path).resolve())  # type: ignore[union-attr]

    # Persistence -------------------------------------------------------------------------------
    def _save_interaction(self) -> None:
        if not is_rank_zero():
            return
        interaction = self.data.interaction
        assert interaction is not None
        atomic_write(
            self.state_dir / "interaction.npz",
            lambda handle: np.savez(
                handle,
                observations=interaction.observations,
                actions=interaction.actions,
                obs_index=interaction.obs_index,
                next_index=interaction.next_index,
            ),
        )

    def _save_module(self, module: ActionModel, name: str) -> None:
        if not is_rank_zero():
            return
        atomic_write(self.state_dir / f"{name}.pt", lambda handle: torch.save(module.state_dict(), handle))

    def _commit(self, unit: str) -> None:
        now = time.perf_counter()
        seconds, self._unit_started = now - self._unit_started, now
        self.progress.history[-1]["wall_seconds"] = seconds  # every unit adds one history entry
        self.progress.committed_seconds += seconds
        self.progress.completed.append(unit)
        if not is_rank_zero():
            return
        write_json_atomic(self.state_dir / "progress.json", asdict(self.progress))

    def _restore(self) -> None:
        """Load what the completed units left: transitions and the latest weights of each model."""
        path = self.state_dir / "interaction.npz"
        if self.progress.completed and path.exists():
            with np.load(path) as saved:
                self.data.interaction = Transitions(saved["observations"], saved["actions"], saved["obs_index"], saved["next_index"])
        labels = self.state_dir / "expert_labels.npy"
        if any(unit.startswith("policy-") for unit in self.progress.completed) and labels.exists():
            self.data.expert_labels = np.load(labels)
        for name, module in (("idm", self.idm), ("policy", self.policy)):
            if any(unit.startswith(f"{name}-") for unit in self.progress.completed):
                module.load_state_dict(torch.load(self.state_dir / f"{name}.pt", map_location=module.device, weights_only=True))

    def _last_started_iteration(self) -> int:
        """The highest iteration with a committed unit (-1 before any)."""
        return max((int(unit.rsplit("-", 1)[1]) for unit in self.progress.completed), default=-1)

    def _unit(self, name: str, index: int) -> bool:
        """True when `name` still has to run; seeds every RNG for it so that a replay matches."""
        if name in self.progress.completed:
            return False
        pl.seed_everything(self.settings.seed + UNIT_SEED_STRIDE * index, workers=True, verbose=False)
        return True

    def _exploration_noise(self) -> float:
        """Noise std of the next post-demonstration rollouts (see `RunSettings.noise_per_idm_error`),
        from the committed history alone, so that a resumed run explores with the same noise."""
        noise = self.policy.exploration_noise
        idm_errors = [entry["val/mae"] for entry in self.progress.history if entry.get("stage") == "idm" and "val/mae" in entry]
        if self.settings.noise_per_idm_error > 0 and idm_errors:
            noise = max(noise, self.settings.noise_per_idm_error * idm_errors[-1])
        return noise

    def _exploration_policy(self, iteration: int, noise: float) -> PolicyFactory:
        """The current policy with sampled actions, seeded per iteration and rank."""
        seed = self.settings.seed + iteration
        return lambda rank: self.policy.as_policy(deterministic=False, seed=seed + RANK_SEED_STRIDE * rank, noise=noise)

    # The loop -----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """The whole pipeline; its TensorBoard writers are closed at the end, so that every event is
        on disk when the command returns (`bco` exits without Python's teardown)."""
        eval_logger = self._stage_logger("eval")
        status = "failed"
        try:
            summary = self._run(eval_logger)
            status = "success"
            return summary
        finally:
            eval_logger.experiment.close()  # not `finalize`: that would add an empty eval/hparams.yaml
            self.run_logger.finalize(status)  # closes its writer; on success writes the run's hparams.yaml

    def _run(self, eval_logger: TensorBoardLogger) -> dict[str, Any]:
        start = self._unit_started = time.perf_counter()
        s, data, progress = self.settings, self.data, self.progress
        expert = data.expert  # refuse a bad file before any work
        behavioural_cloning = s.labels == "true_actions"
        if behavioural_cloning and expert.actions is None:
            raise ConfigError(f"--labels true_actions needs 'actions' in the expert file; {data.expert_path} has none")
        self._restore()
        evaluation = EnvEvaluationCallback(
            data.env_id,
            data.env_kwargs,
            episodes=s.eval_episodes,
            seed=s.seed + EVAL_SEED_OFFSET,
            # one sub-env per episode (up to 32): no sub-env idles while another runs its second
            num_envs=min(s.eval_episodes, 32),
            demonstrator_return=expert.demonstrator_return,
            random_return=progress.random_return,
            logger=eval_logger,
            selection_seed=s.seed + SELECTION_SEED_OFFSET if s.select_best else None,
            selection_episodes=s.selection_episodes,
        )
        last_iteration = 0
        stop_reason = "iterations"  # all of them ran
        for iteration in range(s.iterations + 1):
            last_iteration = iteration
            if not behavioural_cloning and self._unit(f"idm-{iteration}", 2 * iteration):
                # The IDM stage's setup collects these interactions first, on every rank.
                if iteration == 0:
                    data.request_collection(data.pre_demo_steps, s.seed)
                    progress.pre_demo_steps = data.pre_demo_steps
                else:
                    steps = int(round(s.alpha * progress.pre_demo_steps))
                    noise = self._exploration_noise()
                    data.request_collection(steps, s.seed + POST_DEMO_SEED_OFFSET * iteration, self._exploration_policy(iteration, noise))
                progress.env_steps += data.pending_collection[0]  # type: ignore[index]
                progress.idm_checkpoint = self._fit(self.idm, "idm", iteration, s.idm_max_epochs)
                if iteration > 0 and not self.idm.codec.discrete:
                    progress.history[-1]["exploration_noise"] = noise
                    if is_rank_zero():
                        self.run_logger.log_metrics({"rollout/exploration_noise": noise}, step=iteration)
                self._save_interaction()
                self._save_module(self.idm, "idm")
                self._commit(f"idm-{iteration}")
            if self._unit(f"policy-{iteration}", 2 * iteration + 1):
                labels = self._true_labels() if behavioural_cloning else self.idm.label(expert.observations, data.expert_pairs)
                evaluation.log_step = iteration
                if data.expert_labels is not None and np.array_equal(labels, data.expert_labels):
                    # The IDM labels every demonstration pair as before: the policy's data are
                    # unchanged, so its early-stopped weights (and their evaluation) stand.
                    evaluation.result = EvaluationResult(np.asarray(progress.eval_returns), np.asarray(progress.eval_lengths))
                    evaluation.log_metrics(eval_logger)
                    progress.history.append({"iteration": iteration, "stage": "policy", "skipped": "labels unchanged"})
                else:
                    data.expert_labels = labels
                    progress.policy_checkpoint = self._fit(self.policy, "policy", iteration, s.policy_max_epochs, [evaluation])
                    assert evaluation.result is not None
                    progress.random_return = evaluation.random_return
                    progress.eval_returns = evaluation.result.returns.tolist()
                    progress.eval_lengths = evaluation.result.lengths.tolist()
                    self._save_module(self.policy, "policy")
                    self._log_video(iteration)
                    if evaluation.selection_result is not None:
                        self._consider_for_selection(iteration, evaluation.selection_result)
                progress.history[-1].update(evaluation.metrics())
                progress.history[-1]["env_steps"] = progress.env_steps
                if not behavioural_cloning:
                    progress.history[-1]["idm_label_accuracy"] = self._label_accuracy(labels)
                if is_rank_zero():
                    atomic_write(self.state_dir / "expert_labels.npy", lambda handle: np.save(handle, labels))
                self._commit(f"policy-{iteration}")
            # Decided from the committed progress alone, so a resumed run stops where it would have; an
            # iteration that the run already went on from is passed (the kept policy now may be a later one's).
            if iteration >= self._last_started_iteration():
                if self._reached_stop_score():
                    stop_reason = "stop_score"
                    break
                if out_of_patience(iteration, progress.selected_iteration or 0, s.iteration_patience):
                    stop_reason = "iteration_patience"
                    break
        if s.select_best and progress.selected_iteration is not None:
            self.policy.load_state_dict(self._selected_state or self._load_state("selected_policy"))
        if behavioural_cloning:
            return self._summarize(time.perf_counter() - start, None, last_iteration, stop_reason)
        labels = self.idm.label(expert.observations, data.expert_pairs)  # the final IDM's
        self._log_idm_images(last_iteration, labels)
        return self._summarize(time.perf_counter() - start, labels, last_iteration, stop_reason)

    def _reached_stop_score(self) -> bool:
        """Whether the kept policy scores at least `stop_score` on the selection episodes."""
        s, progress = self.settings, self.progress
        if progress.selection_return is None:
            return False
        return reaches_stop_score(progress.selection_return, progress.random_return, self.data.expert.demonstrator_return, s.stop_score)

    def _label_accuracy(self, labels: np.ndarray) -> float | None:
        """How often `labels` match the expert file's true actions (None without them)."""
        codec = self.idm.codec
        half_range = None if codec.discrete else codec.half_range.cpu().numpy()
        return label_accuracy(labels, self.data.expert.actions, codec.discrete, half_range)

    def _true_labels(self) -> np.ndarray:
        """The expert file's own actions, as the IDM would label them (int64 indices, float32 vectors)."""
        actions = self.data.expert.actions
        assert actions is not None
        if self.idm.codec.discrete:
            return actions.reshape(-1).astype(np.int64)
        return actions.reshape(actions.shape[0], -1).astype(np.float32)

    def _consider_for_selection(self, iteration: int, selection: EvaluationResult) -> None:
        """Keep this iteration's policy if `replaces_kept_policy` says so."""
        progress = self.progress
        progress.selection_steps += int(selection.lengths.sum())
        progress.history[-1]["selection/return_mean"] = selection.mean_return
        if not replaces_kept_policy(selection.mean_return, progress.selection_return):
            return
        progress.selected_iteration = iteration
        progress.selection_return = selection.mean_return
        progress.selected_eval_returns = list(progress.eval_returns)
        progress.selected_eval_lengths = list(progress.eval_lengths)
        progress.selected_policy_checkpoint = progress.policy_checkpoint
        self._selected_state = {name: t.detach().clone() for name, t in self.policy.state_dict().items()}
        self._save_module(self.policy, "selected_policy")

    def _load_state(self, name: str) -> dict[str, torch.Tensor]:
        return torch.load(self.state_dir / f"{name}.pt", map_location=self.policy.device, weights_only=True)

    def _log_video(self, iteration: int) -> None:
        """One evaluation episode of this iteration's policy (the evaluation's first seed) as
        `eval/video`; an environment that cannot render turns videos off with a one-line note."""
        if not self._video or not is_rank_zero():
            return
        from bco_lightning.video import RenderError, log_video, record_frames

        try:
            frames, fps = record_frames(self.data.env_id, self.data.env_kwargs, self.policy.as_policy(deterministic=True), self.settings.seed + EVAL_SEED_OFFSET)
        except RenderError as error:
            print(f"bco run: note: no TensorBoard video: {error}", file=sys.stderr)
            self._video = False
            return
        log_video(self.run_logger.experiment, "eval/video", frames, fps, iteration)

    def _log_idm_images(self, step: int, labels: np.ndarray) -> None:
        """The final IDM's confusion matrix (discrete) or per-dimension error (Box), on its validation
        transitions and, when the expert file has true actions, on the demonstrations' labels."""
        if not is_rank_zero() or self.data.interaction is None:
            return
        from bco_lightning.diagnostics import idm_image

        codec, expert, writer = self.idm.codec, self.data.expert, self.run_logger.experiment
        half_range = None if codec.discrete else codec.half_range.cpu().numpy()
        val = self.data.idm_validation_transitions()
        inferred = self.idm.infer(val["obs"], val["next_obs"]).numpy()
        image = idm_image(val["action"].numpy(), inferred, codec.discrete, codec.action_dim, half_range, "IDM on held-out interaction transitions")
        writer.add_image("idm/validation_transitions", image, step, dataformats="HWC")
        if expert.actions is not None:
            image = idm_image(expert.actions, labels, codec.discrete, codec.action_dim, half_range, "IDM labels vs the demonstrator's true actions")
            writer.add_image("idm/expert_labels_vs_true_actions", image, step, dataformats="HWC")

    def _log_hparams(self, summary: dict[str, Any]) -> None:
        """The run's settings with its final metrics, for TensorBoard's HPARAMS tab."""
        params = {
            "env_id": self.data.env_id,
            "seed": self.settings.seed,
            "alpha": self.settings.alpha,
            "iterations": self.settings.iterations,
            "pre_demo_steps": self.progress.pre_demo_steps,
            "batch_size": self.data.batch_size,
            "expert_episodes": summary["expert_episodes"],
            "idm_hidden_sizes": str(list(self.idm.hparams.get("hidden_sizes", []))),
            "idm_lr": self.idm.hparams.get("lr"),
            "policy_hidden_sizes": str(list(self.policy.hparams.get("hidden_sizes", []))),
            "policy_lr": self.policy.hparams.get("lr"),
            "world_size": self.progress.world_size,
        }
        names = ("normalized_score", "eval_return_mean", "eval_return_std", "idm_label_accuracy", "env_steps")
        metrics = {f"hparams/{name}": float(summary[name]) for name in names if summary[name] is not None}
        self.run_logger.log_hyperparams(params, metrics)

    def _summarize(self, wall_seconds: float, labels: np.ndarray | None, last_iteration: int, stop_reason: str) -> dict[str, Any]:
        s, data, progress, expert = self.settings, self.data, self.progress, self.data.expert
        selected = s.select_best and progress.selected_iteration is not None
        returns = np.asarray(progress.selected_eval_returns if selected else progress.eval_returns)
        policy_checkpoint = progress.selected_policy_checkpoint if selected else progress.policy_checkpoint
        mean_return, std_return = float(returns.mean()), float(returns.std())
        summary = {
            "env_id": data.env_id,
            "eval_return_mean": mean_return,
            "eval_return_std": std_return,
            "eval_episodes": int(returns.shape[0]),
            "demonstrator_return": expert.demonstrator_return,
            "random_return": progress.random_return,
            "normalized_score": normalized_score(mean_return, progress.random_return, expert.demonstrator_return),
            "env_steps": progress.env_steps,
            "pre_demo_steps": progress.pre_demo_steps,
            "post_demo_steps": progress.env_steps - progress.pre_demo_steps,
            "idm_label_accuracy": None if labels is None else self._label_accuracy(labels),
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
            "log_dir": str(self.run_dir.resolve()),
            "history": progress.history,
            "wall_seconds": wall_seconds,
            # a resumed run's earlier sittings included: what the whole run cost
            "wall_seconds_all_sittings": progress.committed_seconds + time.perf_counter() - self._unit_started,
        }
        if is_rank_zero():
            self._log_hparams(summary)
            write_json_atomic(self.run_dir / "summary.json", summary)
            if s.summary_path:
                write_json_atomic(s.summary_path, summary)
        return summary
