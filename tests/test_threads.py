"""`--torch_threads auto`: the chooser's decisions, and that the thread count never changes a result."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bco_lightning.threads import ThreadCountChooser, candidate_counts, free_cores
from helpers import CLI_ENV, run_bco, small_run_args, stable


def run_steps(chooser: ThreadCountChooser, ms_per_count: dict[int, float], steps: int, now: float) -> list[int]:
    """Run `steps` steps that take `ms_per_count[count]` each; the counts they ran with."""
    counts = []
    for _ in range(steps):
        counts.append(chooser.count)
        chooser.record(ms_per_count[chooser.count] / 1e3, now)
    return counts


def test_candidate_counts_double_up_to_the_free_cores() -> None:
    assert candidate_counts(1) == [1]
    assert candidate_counts(2) == [1, 2]
    assert candidate_counts(3) == [1, 2, 3]
    assert candidate_counts(8) == [1, 2, 4, 8]
    assert candidate_counts(12) == [1, 2, 4, 8, 12]


def test_free_cores_are_shared_by_the_node_processes_and_capped_by_omp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert free_cores(1) == 8
    assert free_cores(4) == 2
    assert free_cores(16) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert free_cores(1) == 3


def test_the_faster_count_is_kept_after_one_probe() -> None:
    chooser = ThreadCountChooser([1, 2], steps_per_probe=3)
    assert run_steps(chooser, {1: 1.6, 2: 1.1}, steps=6, now=0.0) == [1, 1, 1, 2, 2, 2]
    assert not chooser.probing and chooser.chosen == 2 and chooser.probes == 1
    assert run_steps(chooser, {1: 1.6, 2: 1.1}, steps=5, now=1.0) == [2] * 5


def test_more_threads_must_be_faster_by_the_margin() -> None:
    chooser = ThreadCountChooser([1, 2], steps_per_probe=3, margin=1.1)
    run_steps(chooser, {1: 1.6, 2: 1.5}, steps=6, now=0.0)
    assert chooser.chosen == 1


def test_a_count_that_collapses_costs_one_step() -> None:
    chooser = ThreadCountChooser([1, 2, 4], steps_per_probe=3)
    counts = run_steps(chooser, {1: 1.6, 2: 40.0, 4: 1.7}, steps=7, now=0.0)
    assert counts == [1, 1, 1, 2, 4, 4, 4]
    assert chooser.chosen == 1


def test_a_new_probe_starts_after_reprobe_seconds_and_when_steps_slow_down() -> None:
    chooser = ThreadCountChooser([1, 2], steps_per_probe=3, reprobe_seconds=5.0, slowdown=1.5)
    run_steps(chooser, {1: 1.6, 2: 1.1}, steps=6, now=0.0)
    run_steps(chooser, {1: 1.6, 2: 1.1}, steps=3, now=4.0)
    assert not chooser.probing
    run_steps(chooser, {1: 1.6, 2: 1.1}, steps=1, now=5.5)
    assert chooser.probing and chooser.count == 1
    # Another process takes a core: two threads now collapse, so the next probe keeps one.
    run_steps(chooser, {1: 1.6, 2: 30.0}, steps=4, now=6.0)
    assert not chooser.probing and chooser.chosen == 1 and chooser.probes == 2
    # One slow step is noise; steps that stay twice as slow start a probe at once, not after 5 s.
    run_steps(chooser, {1: 3.2}, steps=1, now=6.5)
    run_steps(chooser, {1: 1.6}, steps=3, now=6.5)
    assert not chooser.probing
    run_steps(chooser, {1: 3.2}, steps=3, now=7.0)
    assert chooser.probing


def test_probes_that_keep_the_same_count_come_less_often() -> None:
    chooser = ThreadCountChooser([1, 2], steps_per_probe=3, reprobe_seconds=5.0, max_reprobe_seconds=20.0)
    ends = []
    for second in range(0, 120):
        was_probing = chooser.probing
        run_steps(chooser, {1: 1.6, 2: 1.1}, steps=1, now=float(second))
        if was_probing and not chooser.probing:
            ends.append(second)
    # each probe takes 6 steps (one a second here); the waits between them grow 5, 10, 20, 20 s
    assert [b - a for a, b in zip(ends, ends[1:])][:4] == [5 + 6, 10 + 6, 20 + 6, 20 + 6]


def test_one_candidate_never_probes() -> None:
    chooser = ThreadCountChooser([1])
    assert run_steps(chooser, {1: 1.0}, steps=3, now=100.0) == [1, 1, 1]
    assert not chooser.probing and chooser.probes == 0


def threads_scalars(summary_path: Path) -> list[float]:
    values = []
    for folder in sorted((Path(json.loads(summary_path.read_text())["log_dir"]) / "iter0").iterdir()):
        events = EventAccumulator(str(folder))
        events.Reload()
        if "perf/torch_threads" in events.Tags()["scalars"]:
            values += [event.value for event in events.Scalars("perf/torch_threads")]
    return values


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to run 2 threads")
def test_results_do_not_depend_on_the_thread_count(tmp_path: Path, cartpole_file: Path) -> None:
    """`auto` switches counts mid-training, by timing: that is only sound if every count computes the
    same numbers. One Lightning step per optimiser step, so every probe finishes inside these short
    fits and the auto run trains with both counts."""
    env = {**CLI_ENV, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    summaries = {}
    for threads in ("1", "2", "auto"):
        summaries[threads] = tmp_path / f"{threads}.json"
        args = [*small_run_args(cartpole_file, summaries[threads]), "--data.batches_per_step", "1", "--torch_threads", threads]
        result = run_bco(args, cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr
    assert stable(summaries["1"]) == stable(summaries["2"]) == stable(summaries["auto"])
    assert threads_scalars(summaries["1"]) == []
    assert set(threads_scalars(summaries["auto"])) <= {1.0, 2.0} and threads_scalars(summaries["auto"])


def test_torch_threads_is_refused_below_one(tmp_path: Path, cartpole_file: Path) -> None:
    result = run_bco([*small_run_args(cartpole_file, tmp_path / "s.json"), "--torch_threads", "0"], cwd=tmp_path)
    assert result.returncode == 2
    assert "--torch_threads must be >= 1 or auto, got 0" in result.stderr
