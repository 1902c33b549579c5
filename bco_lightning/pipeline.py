"""The BCO(alpha) loop: interact, learn the IDM, label, clone, evaluate, select, and iterate.

`BCORun.run` reads as the algorithm; its collaborators each do one job: `RunFolder` (where things
go, saving, the commits that `--resume` trusts), `StageTrainers` (a fresh Trainer per stage),
`PolicySelection` (which policy is kept, when to stop) and `RunReport` (summary, TensorBoard).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger

from bco_lightning import seeds
from bco_lightning.callbacks import EnvEvaluationCallback
from bco_lightning.data.datamodule import BCODataModule, PolicyFactory
from bco_lightning.data.rollouts import EvaluationResult
from bco_lightning.distributed import is_rank_zero
from bco_lightning.errors import SettingError
from bco_lightning.idm import IDMModule
from bco_lightning.policy import BCPolicyModule
from bco_lightning.report import RunReport
from bco_lightning.run_folder import RunFolder
from bco_lightning.selection import PolicySelection
from bco_lightning.stage_trainers import FitOutcome, StageTrainers, changed_trainer_kwargs


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
            0.1); 0 keeps the fixed noise. Noise is clipped at the action's bounds, so wide noise
            moves an action held near a bound inward: CarRacing's brake, held near 0.09 by its
            policy, averaged 0.155 with 2.0, the IDM learnt to label more braking and BCO(alpha)
            lost speed; its config uses 0.
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
            first IDM. A fine-tune's epochs are over all interaction so far, so they grow longer
            with every iteration.
        min_rel_delta: the smallest drop of validation loss that counts as better, as a fraction
            of the best loss so far.
        stopping_threshold: a validation loss this low ends a stage at once.
        idm_max_epochs: epoch cap of each IDM stage (unless --trainer.max_epochs).
        policy_max_epochs: epoch cap of each policy stage (unless --trainer.max_epochs).
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
            one thread as soon as another process takes a core. A pixel run repeats to the last
            bit only with a fixed number: the CNNs' gradients differ in their last bits between counts.
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
        for name in ("alpha", "noise_per_idm_error", "iterations"):
            if getattr(self, name) < 0:
                raise SettingError(f"`{name}` must be >= 0, got {getattr(self, name)}")
        if self.iterations > 0 and self.alpha == 0:
            raise SettingError("`iterations` > 0 needs `alpha` > 0 (post-demonstration interactions per iteration)")
        for name in ("eval_episodes", "patience", "idm_max_epochs", "policy_max_epochs"):
            if getattr(self, name) < 1:
                raise SettingError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        for name in ("selection_episodes", "finetune_steps_per_validation"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise SettingError(f"`{name}` must be >= 1 or null, got {getattr(self, name)}")
        if self.labels == "true_actions" and self.iterations > 0:
            raise SettingError("`labels` true_actions clones the file's actions once: set `iterations` to 0")
        if self.iteration_patience is not None and (self.iteration_patience < 1 or not self.select_best):
            raise SettingError(f"`iteration_patience` must be >= 1 (or null) and needs `select_best` true, got {self.iteration_patience}")
        if self.torch_threads != "auto" and self.torch_threads < 1:
            raise SettingError(f"`torch_threads` must be >= 1 or auto, got {self.torch_threads}")


class BCORun:
    """One BCO(alpha) run over a datamodule, an IDM and a policy: `run()` returns the summary.

    The work is a sequence of units, per iteration k: `idm-k` (collect interactions, random for
    k = 0 and with the current policy after, then train the IDM) and `policy-k` (label the
    demonstrations, clone them, evaluate, consider the policy for selection). Each unit re-seeds
    every RNG from (seed, unit) and is committed to the run folder when done, so `--resume`
    replays an interrupted unit exactly and skips the finished ones.
    """

    def __init__(
        self,
        data: BCODataModule,
        idm: IDMModule,
        policy: BCPolicyModule,
        settings: RunSettings,
        trainer_kwargs: dict[str, Any] | None = None,
        run_dir: str | None = None,
    ) -> None:
        self.data, self.idm, self.policy, self.settings = data, idm, policy, settings
        data.show_progress = settings.show_progress
        changed_trainer_arguments = changed_trainer_kwargs(trainer_kwargs or {})  # refused before a folder is made
        self.folder = RunFolder(settings.log_root, data.env_id, run_dir)
        self.trainers = StageTrainers(self.folder, settings, changed_trainer_arguments)
        self.progress = self.folder.progress
        self.run_dir = self.folder.path
        if settings.iterations < self.progress.last_started_iteration():
            raise SettingError(
                f"`iterations` {settings.iterations}: the run in {self.run_dir} has already trained iteration "
                f"{self.progress.last_started_iteration()}; give at least that many to resume it"
            )
        self.selection = PolicySelection(self.folder, policy, settings.stop_score, settings.iteration_patience)
        self.report = RunReport(self.folder, data, idm, policy, settings)

    def run(self) -> dict[str, Any]:
        """The whole pipeline; its TensorBoard writers are closed at the end, so that every event is
        on disk when the command returns (`bco` exits without Python's teardown)."""
        eval_logger = self.folder.stage_logger("eval")
        status = "failed"
        try:
            summary = self._run(eval_logger)
            status = "success"
            return summary
        finally:
            eval_logger.experiment.close()  # not `finalize`: that would add an empty eval/hparams.yaml
            self.folder.logger.finalize(status)  # closes its writer; on success writes the run's hparams.yaml

    def _run(self, eval_logger: TensorBoardLogger) -> dict[str, Any]:
        start = self.folder.start_clock()
        s, data, expert = self.settings, self.data, self.data.expert  # a bad expert file is refused here
        cloning = s.labels == "true_actions"  # behavioural cloning of the file's actions: no IDM
        if cloning and expert.actions is None:
            raise SettingError(f"`labels` true_actions needs 'actions' in the expert file; {data.expert_path} has none")
        self._restore()
        evaluation = self._evaluation(eval_logger)
        last_iteration, stop_reason = 0, "iterations"  # all of them ran
        for iteration in range(s.iterations + 1):
            last_iteration = iteration
            if not cloning and self._starts(f"idm-{iteration}", 2 * iteration):
                noise = self._collect_interaction(iteration)
                self._fit_idm(iteration, noise)
                self.folder.commit(f"idm-{iteration}")
            if self._starts(f"policy-{iteration}", 2 * iteration + 1):
                labels = self._true_labels() if cloning else data.label_expert(self.idm)
                self._clone(iteration, labels, evaluation, eval_logger)
                if not cloning:
                    self.progress.history[-1]["idm_label_accuracy"] = self.report.label_accuracy(labels)
                self.folder.save_labels(labels)
                self.folder.commit(f"policy-{iteration}")
            # An iteration that the run already went on from is passed (the kept policy now may be a later one's).
            if iteration >= self.progress.last_started_iteration():
                reason = self.selection.stop_reason(iteration, expert.demonstrator_return)
                if reason is not None:
                    stop_reason = reason
                    break
        if s.select_best:
            self.selection.load_kept_policy()
        final_labels = None if cloning else data.label_expert(self.idm)
        if final_labels is not None:
            self.report.log_idm_images(last_iteration, final_labels)
        return self.report.summarize(time.perf_counter() - start, final_labels, last_iteration, stop_reason)

    # The steps ---------------------------------------------------------------------------------
    def _collect_interaction(self, iteration: int) -> float | None:
        """Ask for this iteration's interactions (the IDM stage's setup collects them, on every
        rank): uniform random for k = 0, then `alpha * |I_pre|` with the current policy exploring.
        Returns the exploration noise of Box actions (None for k = 0)."""
        s, data, progress = self.settings, self.data, self.progress
        if iteration == 0:
            data.request_collection(data.pre_demo_steps, seeds.for_collection(s.seed, 0))
            progress.pre_demo_steps = data.pre_demo_steps
            noise = None
        else:
            noise = self._exploration_noise()
            steps = int(round(s.alpha * progress.pre_demo_steps))
            data.request_collection(steps, seeds.for_collection(s.seed, iteration), self._exploration_policy(iteration, noise))
        progress.env_steps += data.pending_collection[0]  # type: ignore[index]
        return noise

    def _fit_idm(self, iteration: int, noise: float | None) -> None:
        """Train the IDM on all interaction so far (warm-started after the first) and save it."""
        outcome = self.trainers.fit(self.idm, self.data, iteration, self.settings.idm_max_epochs)
        self._record_fit(outcome)
        self.progress.idm_checkpoint = outcome.checkpoint
        if noise is not None and not self.idm.codec.discrete:
            self.progress.history[-1]["exploration_noise"] = noise
            if is_rank_zero():
                self.folder.logger.log_metrics({"rollout/exploration_noise": noise}, step=iteration)
        assert self.data.interaction is not None
        self.folder.save_interaction(self.data.interaction, self.data.collection_sizes)
        self.folder.save_weights(self.idm, "idm")

    def _clone(self, iteration: int, labels: np.ndarray, evaluation: EnvEvaluationCallback, eval_logger: TensorBoardLogger) -> None:
        """Clone the labelled demonstrations into the policy, evaluate it and consider it for selection."""
        progress, data = self.progress, self.data
        evaluation.log_step = iteration
        if data.expert_labels is not None and np.array_equal(labels, data.expert_labels):
            # The IDM labels every demonstration pair as before: the policy's data are unchanged,
            # so its early-stopped weights (and their evaluation) stand.
            evaluation.result = EvaluationResult(np.asarray(progress.eval_returns), np.asarray(progress.eval_lengths))
            evaluation.log_metrics(eval_logger)
            progress.history.append({"iteration": iteration, "stage": "policy", "skipped": "labels unchanged"})
        else:
            data.expert_labels = labels
            outcome = self.trainers.fit(self.policy, data, iteration, self.settings.policy_max_epochs, [evaluation])
            self._record_fit(outcome)
            progress.policy_checkpoint = outcome.checkpoint
            assert evaluation.result is not None
            progress.random_return = evaluation.random_return
            progress.eval_returns = evaluation.result.returns.tolist()
            progress.eval_lengths = evaluation.result.lengths.tolist()
            self.folder.save_weights(self.policy, "policy")
            self.report.log_video(iteration)
            if evaluation.selection_result is not None:
                self.selection.consider(iteration, evaluation.selection_result)
        progress.history[-1].update(evaluation.metrics())
        progress.history[-1]["env_steps"] = progress.env_steps

    # Helpers -----------------------------------------------------------------------------------
    def _starts(self, unit: str, index: int) -> bool:
        """True when `unit` still has to run; seeds every RNG for it so that a replay matches."""
        if unit in self.progress.completed:
            return False
        pl.seed_everything(seeds.for_unit(self.settings.seed, index), workers=True, verbose=False)
        return True

    def _restore(self) -> None:
        """Load what the committed units left: transitions, labels and the latest weights of each model."""
        interaction = self.folder.saved_interaction()
        if interaction is not None:
            self.data.restore_interaction(*interaction)
        labels = self.folder.saved_labels()
        if labels is not None:
            self.data.expert_labels = labels
        for name, module in (("idm", self.idm), ("policy", self.policy)):
            if self.progress.has_trained(name):
                module.load_state_dict(self.folder.load_weights(name, module.device))

    def _record_fit(self, outcome: FitOutcome) -> None:
        self.progress.world_size = outcome.world_size
        self.progress.history.append(outcome.record)

    def _evaluation(self, eval_logger: TensorBoardLogger) -> EnvEvaluationCallback:
        s = self.settings
        return EnvEvaluationCallback(
            self.data.env_id,
            self.data.env_kwargs,
            episodes=s.eval_episodes,
            seed=seeds.for_evaluation(s.seed),
            # one sub-env per episode (up to 32): no sub-env idles while another runs its second
            num_envs=min(s.eval_episodes, 32),
            demonstrator_return=self.data.expert.demonstrator_return,
            random_return=self.progress.random_return,
            logger=eval_logger,
            selection_seed=seeds.for_selection(s.seed) if s.select_best else None,
            selection_episodes=s.selection_episodes,
            pixels=self.data.pixels,
            async_envs=self.data.async_envs,
        )

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
        seed = seeds.for_exploration(self.settings.seed, iteration)
        return lambda rank: self.policy.as_policy(deterministic=False, seed=seeds.for_rank(seed, rank), noise=noise)

    def _true_labels(self) -> np.ndarray:
        """The expert file's own actions, as the IDM would label them (int64 indices, float32 vectors)."""
        actions = self.data.expert.actions
        assert actions is not None
        if self.idm.codec.discrete:
            return actions.reshape(-1).astype(np.int64)
        return actions.reshape(actions.shape[0], -1).astype(np.float32)
