"""Reliability: same seed gives the same summary; a run killed with SIGKILL resumes to that summary."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers import CLI_ENV, bco_console_script, killed_run_folders, run_bco, run_reference, small_run_args, stable, stderr_lines


def test_same_seed_gives_identical_summaries(tmp_path: Path, cartpole_file: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    for summary in (first, second):
        result = run_bco(small_run_args(cartpole_file, summary), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert stable(first) == stable(second)
    assert len(stable(first)["history"]) == 8  # 4 iterations x (IDM, policy)
    # one sitting: the whole run's time is this process's, and each unit's share is in its history entry
    summary = json.loads(first.read_text())
    assert summary["wall_seconds_all_sittings"] == pytest.approx(summary["wall_seconds"], abs=0.5)
    unit_seconds = [entry["wall_seconds"] for entry in summary["history"]]
    assert all(seconds > 0 for seconds in unit_seconds) and sum(unit_seconds) <= summary["wall_seconds_all_sittings"]
    # the saved config keeps a null that overrides a default, so that --resume runs the same settings
    saved = yaml.safe_load((Path(json.loads(first.read_text())["log_dir"]) / "config.yaml").read_text())
    assert saved["stop_score"] is None


def test_existing_summary_is_kept_without_overwrite(tmp_path: Path, cartpole_file: Path) -> None:
    summary = tmp_path / "summary.json"
    summary.write_text("mine")
    result = run_bco(small_run_args(cartpole_file, summary), cwd=tmp_path)
    assert result.returncode == 2
    assert len(stderr_lines(result)) == 1 and "--overwrite" in result.stderr
    assert summary.read_text() == "mine"


def test_resume_needs_a_run_folder(tmp_path: Path) -> None:
    result = run_bco(["run", "--resume", str(tmp_path)], cwd=tmp_path)
    assert result.returncode == 2
    assert len(stderr_lines(result)) == 1 and "config.yaml" in result.stderr


def test_resume_with_more_iterations_extends_a_finished_run(tmp_path: Path, cartpole_file: Path) -> None:
    """A finished 1-iteration run resumed with --iterations 3 ends as a 3-iteration run from scratch;
    its config.yaml then says 3, and resuming it once more with a stop score it passed changes nothing."""
    fresh, short, extended, again = (tmp_path / f"{name}.json" for name in ("fresh", "short", "extended", "again"))
    assert run_bco(small_run_args(cartpole_file, fresh), cwd=tmp_path).returncode == 0
    args = small_run_args(cartpole_file, short)
    args[args.index("--iterations") + 1] = "1"
    result = run_bco(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = json.loads(short.read_text())["log_dir"]
    result = run_bco(["run", "--resume", run_dir, "--iterations", "3", "--summary_path", str(extended)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert stable(extended) == stable(fresh)
    assert yaml.safe_load((Path(run_dir) / "config.yaml").read_text())["iterations"] == 3
    # every iteration reaches a stop score of -1000; the run has gone on past them all, so it stays as it is
    result = run_bco(["run", "--resume", run_dir, "--stop_score", "-1000", "--summary_path", str(again)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert stable(again)["stop_reason"] == "stop_score" and stable(fresh)["stop_reason"] == "iterations"
    assert {**stable(again), "stop_score": None, "stop_reason": "iterations"} == stable(fresh)
    # a copy of the folder, resumed elsewhere, reports its own checkpoints rather than the original's
    copy = tmp_path / "elsewhere" / "run"
    shutil.copytree(run_dir, copy)
    copied = tmp_path / "copied.json"
    result = run_bco(["run", "--resume", str(copy), "--stop_score", "-1000", "--summary_path", str(copied)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(copied.read_text())
    assert summary["log_dir"] == str(copy.resolve()) and stable(copied) == stable(again)
    for key in ("idm_checkpoint", "policy_checkpoint"):
        assert Path(summary[key]).parent == copy.resolve() / "checkpoints", (key, summary[key])


def test_resume_refuses_changed_settings_and_fewer_iterations(tmp_path: Path, cartpole_file: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "state").mkdir(parents=True)
    printed = run_bco(["run", "--data.expert_path", str(cartpole_file), "--iterations", "3", "--print_config"], cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    (run_dir / "config.yaml").write_text(printed.stdout)
    result = run_bco(["run", "--resume", str(run_dir), "--data.num_envs", "8"], cwd=tmp_path)
    assert result.returncode == 2 and len(stderr_lines(result)) == 1, result.stderr
    assert "--data.num_envs 8 differs from the run's saved 16" in result.stderr and "--iterations" in result.stderr
    (run_dir / "state" / "progress.json").write_text(json.dumps({"completed": ["idm-0", "policy-0", "idm-1"]}))
    result = run_bco(["run", "--resume", str(run_dir), "--iterations", "0"], cwd=tmp_path)
    assert result.returncode == 2 and len(stderr_lines(result)) == 1, result.stderr
    assert "already trained iteration 1" in result.stderr
    # nothing written: no summary, and the saved config is as it was
    assert [path.name for path in run_dir.rglob("*.json")] == ["progress.json"]
    assert (run_dir / "config.yaml").read_text() == printed.stdout


@pytest.mark.slow
def test_sigkill_five_times_then_resume_gives_the_uninterrupted_summary(tmp_path: Path, cartpole_file: Path) -> None:
    reference = tmp_path / "reference.json"
    duration = run_reference(small_run_args(cartpole_file, reference), tmp_path)
    workdir, run_dir = killed_run_folders(tmp_path)
    summary = tmp_path / "resumed.json"
    rng = random.Random(0)
    args = small_run_args(cartpole_file, summary)
    kills = 0
    while kills < 5:
        process = subprocess.Popen([*bco_console_script(), *args], cwd=workdir, env=CLI_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.perf_counter() + 120
        while not (run_dir / "config.yaml").exists() and process.poll() is None and time.perf_counter() < deadline:
            time.sleep(0.05)
        # A quarter of an uninterrupted run at most, so that five kills land before the work is done.
        time.sleep(rng.uniform(0.0, duration / 4))
        if process.poll() is not None:
            assert process.returncode == 0, process.stderr.read() if process.stderr else ''
            break  # finished before the kill: nothing left to interrupt
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        args = ["run", "--resume", str(run_dir)]
    else:
        saved = run_dir / "state" / "progress.json"
        earlier_seconds = json.loads(saved.read_text())["committed_seconds"] if saved.exists() else 0.0
        result = run_bco(args, cwd=workdir)
        assert result.returncode == 0, result.stderr
        # the last sitting's summary counts the units the killed sittings committed, too
        resumed = json.loads(summary.read_text())
        assert resumed["wall_seconds_all_sittings"] == pytest.approx(earlier_seconds + resumed["wall_seconds"], abs=0.5)
    assert kills == 5, "the run finished before it could be killed five times"
    progress = json.loads((run_dir / "state" / "progress.json").read_text())
    assert progress["completed"][-1] == "policy-3"
    assert stable(summary) == stable(reference)
