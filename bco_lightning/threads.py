"""`--torch_threads auto`: train with the intra-op thread count that is fastest right now.

More threads speed up these MLPs only while the cores are free. When another process takes a core,
a thread of torch's OpenMP team waits for its turn at every parallel region, and a step can take
about a hundred times longer than on one thread (seen here; see DESIGN.md's pitfalls). No fixed
count is right on both an idle and a shared machine, so the training loop measures: it times a few
optimiser steps with each candidate count, trains on with the fastest, and measures again every few
seconds (less often while the answer stays the same), or at once when the steps slow down. Every step is a real
training step; on the CPU builds checked here an MLP run's result does not depend on the thread
count (`tests/test_threads.py` checks it on every CI run). A CNN's gradients do differ in their last
bits between counts, so a pixel run repeats to the last bit only with a fixed `--torch_threads N`;
pinning a count here instead would bring back the collapse above (a second thread on a busy core
made a CNN step about 6 times slower, benchmarks/pixel_throughput_contended.md).
"""

from __future__ import annotations

import os
import statistics
import time

import pytorch_lightning as pl
import torch


def candidate_counts(max_threads: int) -> list[int]:
    """1, 2, 4, ... up to `max_threads`, and `max_threads` itself."""
    counts = [1]
    while counts[-1] * 2 <= max_threads:
        counts.append(counts[-1] * 2)
    if counts[-1] != max_threads:
        counts.append(max_threads)
    return counts


def free_cores(processes_per_node: int) -> int:
    """Cores this process may use: those it is allowed to run on, shared among the node's training
    processes, and at most an explicit `OMP_NUM_THREADS`."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cores = max(1, cores // max(1, processes_per_node))
    env = os.environ.get("OMP_NUM_THREADS", "")
    return min(cores, int(env)) if env.isdigit() and int(env) > 0 else cores


class ThreadCountChooser:
    """Which thread count to run the next optimiser step with, from the times of the steps so far.

    A probe runs `steps_per_probe` steps with each candidate and keeps the smallest count whose
    median time is within `margin` of the fastest (more threads must pay for the core they take from
    everything else). A candidate whose step takes `collapse_factor` times the best median of the
    probe so far is dropped after that one step, so a count that collapses costs a single step.
    The next probe starts `reprobe_seconds` after the last one ended, an interval that doubles (up to
    `max_reprobe_seconds`) each time a probe keeps the same count, or at once when the median of the
    last `steps_per_probe` steps is `slowdown` times the chosen count's (another process took a
    core); a core given back shows at the next timed probe.
    """

    def __init__(
        self,
        candidates: list[int],
        steps_per_probe: int = 5,
        reprobe_seconds: float = 5.0,
        max_reprobe_seconds: float = 60.0,
        margin: float = 1.1,
        slowdown: float = 1.5,
        collapse_factor: float = 3.0,
    ) -> None:
        if not candidates or steps_per_probe < 1:
            raise ValueError("ThreadCountChooser needs at least one candidate and one step per probe")
        self.candidates = sorted(candidates)
        self.steps_per_probe = steps_per_probe
        self.base_reprobe_seconds = reprobe_seconds
        self.reprobe_seconds = reprobe_seconds
        self.max_reprobe_seconds = max_reprobe_seconds
        self.margin = margin
        self.slowdown = slowdown
        self.collapse_factor = collapse_factor
        self.chosen = self.candidates[0]
        self.chosen_median = float("inf")
        self.probes = 0
        self._probe_ended = 0.0
        self._recent: list[float] = []
        self._start_probe()

    @property
    def probing(self) -> bool:
        return bool(self._queue)

    @property
    def count(self) -> int:
        """The thread count to run the next step with."""
        return self._queue[0] if self._queue else self.chosen

    def record(self, seconds: float, now: float) -> None:
        """The last step, run with `count` threads, took `seconds`; `now` is a monotonic clock."""
        if not self._queue:
            self._recent = [*self._recent, seconds][-self.steps_per_probe :]
            slowed = len(self._recent) == self.steps_per_probe and statistics.median(self._recent) > self.slowdown * self.chosen_median
            if slowed:
                self.reprobe_seconds = self.base_reprobe_seconds
            if slowed or now - self._probe_ended >= self.reprobe_seconds:
                self._start_probe()
            return
        count = self._queue[0]
        self._times[count].append(seconds)
        best = min(self._medians.values(), default=float("inf"))
        if seconds > self.collapse_factor * best:
            self._medians[count] = float("inf")
        elif len(self._times[count]) >= self.steps_per_probe:
            self._medians[count] = statistics.median(self._times[count])
        else:
            return
        self._queue.pop(0)
        if not self._queue:
            self._finish_probe(now)

    def _start_probe(self) -> None:
        # Only one candidate: nothing to compare, so no probe ever runs.
        self._queue = [] if len(self.candidates) == 1 else list(self.candidates)
        self._times: dict[int, list[float]] = {count: [] for count in self.candidates}
        self._medians: dict[int, float] = {}

    def _finish_probe(self, now: float) -> None:
        fastest = min(self._medians.values())
        chosen = min(count for count, median in self._medians.items() if median <= self.margin * fastest)
        if self.probes and chosen == self.chosen:
            self.reprobe_seconds = min(2 * self.reprobe_seconds, self.max_reprobe_seconds)
        else:
            self.reprobe_seconds = self.base_reprobe_seconds
        self.chosen, self.chosen_median = chosen, self._medians[chosen]
        self._probe_ended = now
        self._recent = []
        self.probes += 1


class TrainingThreadTuner(pl.Callback):
    """Sets torch's thread count during `fit`'s training steps with a `ThreadCountChooser`, one
    optimiser step at a time; outside them (rollouts, evaluation, labelling: small batches) the
    process keeps the count it had. Only on the CPU: with an accelerator, CPU threads hardly matter.

    A step is timed from one `on_before_optimizer_step` to the next (the previous update, then this
    step's forward and backward), so a count that collapses is left after one optimiser step, not
    after the several that one Lightning step takes (`--data.batches_per_step`).
    """

    def __init__(self) -> None:
        self.chooser: ThreadCountChooser | None = None
        self._outside_count = torch.get_num_threads()
        self._last_mark = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._outside_count = torch.get_num_threads()
        max_threads = free_cores(trainer.num_devices)
        cpu = pl_module.device.type == "cpu"
        self.chooser = ThreadCountChooser(candidate_counts(max_threads)) if cpu and max_threads > 1 else None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: object, batch_idx: int) -> None:
        if self.chooser is not None:
            self._use(self.chooser.count)
            self._last_mark = time.perf_counter()  # the time between Lightning steps is not a step's

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer) -> None:
        if self.chooser is not None:
            now = time.perf_counter()
            self.chooser.record(now - self._last_mark, now)
            self._last_mark = now
            self._use(self.chooser.count)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Written straight to TensorBoard, not `self.log`: the count depends on timing, and logged
        # metrics end up in the run summary, which must not.
        experiment = getattr(trainer.logger, "experiment", None)
        if self.chooser is not None and trainer.is_global_zero and hasattr(experiment, "add_scalar"):
            experiment.add_scalar("perf/torch_threads", self.chooser.chosen, trainer.global_step)
            experiment.add_scalar("perf/thread_probes", self.chooser.probes, trainer.global_step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        torch.set_num_threads(self._outside_count)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        torch.set_num_threads(self._outside_count)

    @staticmethod
    def _use(count: int) -> None:
        if torch.get_num_threads() != count:
            torch.set_num_threads(count)
