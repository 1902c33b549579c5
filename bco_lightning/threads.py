"""`--torch_threads auto`: train with the intra-op thread count that is fastest right now.

More threads speed up these MLPs only while the cores are free. When another process takes a core,
a thread of torch's OpenMP team waits for its turn at every parallel region, and a step can take
many times longer than on one thread (see DESIGN.md's pitfalls). No fixed count is right on both an
idle and a shared machine, so the training loop measures: it runs a few optimiser steps with each
candidate count, trains on with the fastest, and measures again every so often, or at once when a
step suddenly slows down. Every step is a real training step; on the CPU builds checked here the
result does not depend on the thread count (`tests/test_threads.py` checks it on each run of CI).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

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
    """Which thread count to run the next training step with, from the times of the steps so far.

    A probe runs `steps_per_probe` steps with each candidate and keeps the one with the lowest median
    time per optimiser step; a candidate whose step takes `slow_factor` times the best median of the
    probe so far is dropped after that one step, so a count that collapses costs a single step. A new
    probe starts `reprobe_seconds` after the last one ended, or at once when a step takes
    `slow_factor` times the chosen count's median (another process took a core).
    """

    def __init__(self, candidates: list[int], steps_per_probe: int = 3, reprobe_seconds: float = 10.0, slow_factor: float = 3.0) -> None:
        if not candidates or steps_per_probe < 1:
            raise ValueError("ThreadCountChooser needs at least one candidate and one step per probe")
        self.candidates = list(candidates)
        self.steps_per_probe = steps_per_probe
        self.reprobe_seconds = reprobe_seconds
        self.slow_factor = slow_factor
        self.chosen = self.candidates[0]
        self.chosen_median = float("inf")
        self.probes = 0
        self._probe_ended = 0.0
        self._start_probe()

    @property
    def probing(self) -> bool:
        return bool(self._queue)

    @property
    def count(self) -> int:
        """The thread count to run the next step with."""
        return self._queue[0] if self._queue else self.chosen

    def record(self, seconds_per_step: float, now: float) -> None:
        """The last step, run with `count` threads, took `seconds_per_step` per optimiser step."""
        if not self._queue:
            if now - self._probe_ended >= self.reprobe_seconds or seconds_per_step > self.slow_factor * self.chosen_median:
                self._start_probe()
            return
        count = self._queue[0]
        self._times[count].append(seconds_per_step)
        best = min(self._medians.values(), default=float("inf"))
        if seconds_per_step > self.slow_factor * best:
            self._medians[count] = float("inf")
        elif len(self._times[count]) >= self.steps_per_probe:
            self._medians[count] = statistics.median(self._times[count])
        else:
            return
        self._queue.pop(0)
        if not self._queue:
            self.chosen = min(self._medians, key=lambda c: (self._medians[c], c))
            self.chosen_median = self._medians[self.chosen]
            self._probe_ended = now
            self.probes += 1

    def _start_probe(self) -> None:
        # Only one candidate: nothing to compare, so no probe ever runs.
        self._queue = [] if len(self.candidates) == 1 else list(self.candidates)
        self._times: dict[int, list[float]] = {count: [] for count in self.candidates}
        self._medians: dict[int, float] = {}


class TrainingThreadTuner(pl.Callback):
    """Sets torch's thread count during `fit`'s training steps with a `ThreadCountChooser`; outside
    them (rollouts, evaluation, labelling: small batches) the process keeps the count it had.

    Only on the CPU: with an accelerator, the CPU threads hardly matter to training.
    """

    def __init__(self, max_threads: int | None = None, reprobe_seconds: float = 10.0) -> None:
        self.max_threads = max_threads
        self.reprobe_seconds = reprobe_seconds
        self.chooser: ThreadCountChooser | None = None
        self._outside_count = torch.get_num_threads()
        self._step_started = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._outside_count = torch.get_num_threads()
        max_threads = self.max_threads or free_cores(trainer.num_devices)
        if pl_module.device.type != "cpu" or max_threads < 2:
            self.chooser = None
            return
        self.chooser = ThreadCountChooser(candidate_counts(max_threads), reprobe_seconds=self.reprobe_seconds)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.chooser is not None:
            if torch.get_num_threads() != self.chooser.count:
                torch.set_num_threads(self.chooser.count)
            self._step_started = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.chooser is not None:
            now = time.perf_counter()
            optimizer_steps = len(batch) if isinstance(batch, list) else 1
            self.chooser.record((now - self._step_started) / optimizer_steps, now)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Written straight to TensorBoard, not `self.log`: the count depends on timing, and logged
        # metrics end up in the run summary, which must not.
        if self.chooser is not None and trainer.is_global_zero and trainer.logger is not None:
            experiment = getattr(trainer.logger, "experiment", None)
            if hasattr(experiment, "add_scalar"):
                experiment.add_scalar("perf/torch_threads", self.chooser.chosen, trainer.global_step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        torch.set_num_threads(self._outside_count)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        torch.set_num_threads(self._outside_count)
