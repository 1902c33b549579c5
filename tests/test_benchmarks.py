"""The benchmark scripts run (CI runs the throughput benchmark's short mode) and say what they measure."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import CLI_ENV, SHIPPED_CONFIGS, SHIPPED_DEMONSTRATIONS, run_bco

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def small_cartpole_run(expert_file: Path, summary: Path, *extra: str) -> dict:
    """A `bco run` of a few seconds (3000 interactions, 4 epochs a stage, 4 evaluation episodes); its summary."""
    args = [
        "run", "--data.expert_path", str(expert_file), "--data.pre_demo_steps", "3000", "--eval_episodes", "4",
        "--idm_max_epochs", "4", "--policy_max_epochs", "4", "--quiet", "true", "--video", "false",
        "--summary_path", str(summary), *extra,
    ]
    result = run_bco(args, cwd=summary.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(summary.read_text())


def test_throughput_short_mode_writes_every_table(tmp_path: Path) -> None:
    output = tmp_path / "throughput.md"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "throughput.py"), "--short", "--output", str(output)],
        cwd=tmp_path, env=CLI_ENV, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = output.read_text()
    for section in ("## 1. Training", "## 2. Rollouts", "## 3. End to end", "## 4. Scaling"):
        assert section in text
    training_rows = [line for line in text.splitlines() if line.startswith("| 17-dim") or line.startswith("| 4-dim")]
    assert len(training_rows) == 8  # 2 problems x 2 stages x 2 batch sizes
    assert "| CartPole-v1 |" in text and "| HalfCheetah-v5 |" in text
    assert "| 1e+05 |" in text


@pytest.mark.slow
def test_plain_bco_reference_script_learns_cartpole(tmp_path: Path) -> None:
    """The plain-PyTorch script `bco run` is timed against is a working BCO, not a strawman."""
    summary = tmp_path / "plain.json"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "plain_bco.py"), "--summary_path", str(summary)],
        cwd=tmp_path, env=CLI_ENV, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    written = json.loads(summary.read_text())
    assert written["normalized_score"] >= 0.95
    # the default `bco run`'s budget: 36000 random steps, then 3600 per iteration until it matches the demonstrator
    assert written["env_steps"] in {36_000 + k * 3_600 for k in range(11)}


def test_plain_bco_trains_the_epochs_of_a_bco_summary(tmp_path: Path) -> None:
    """`--epochs_from`: exactly the given epochs per stage, and no policy stage where bco skipped one."""
    history = [{"iteration": 0, "stage": "idm", "epochs": 1}, {"iteration": 0, "stage": "policy", "epochs": 2}]
    for iteration in (1, 2, 3):
        history += [{"iteration": iteration, "stage": "idm", "epochs": 1}, {"iteration": iteration, "stage": "policy", "skipped": "labels unchanged"}]
    (tmp_path / "bco.json").write_text(json.dumps({"history": history}))
    summary = tmp_path / "plain.json"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "plain_bco.py"), "--summary_path", str(summary), "--epochs_from", str(tmp_path / "bco.json")],
        cwd=tmp_path, env=CLI_ENV, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # batches of 256 per epoch: IDM on 90% of 36000, 39600, 43200, 46800 transitions; the policy on
    # 90% of the 12500 expert pairs of the shipped file (25 episodes of 500 steps), twice
    idm = sum(math.ceil((n - round(0.1 * n)) / 256) for n in (36_000, 39_600, 43_200, 46_800))
    policy = 2 * math.ceil((12_500 - round(0.1 * 12_500)) / 256)
    assert json.loads(summary.read_text())["optimizer_steps"] == idm + policy == 672


@pytest.mark.slow
def test_bco_benchmark_smoke_writes_report_and_plot_and_reuses_cells(tmp_path: Path) -> None:
    """CI's smoke `bco benchmark`: CartPole, one seed, BCO(0) and BC on true actions, and a one-point
    demonstration sweep; a second call finds every cell on disk and runs nothing."""
    args = [
        "benchmark", "--envs", "[cartpole]", "--methods", "[bco0, bc]", "--seeds", "[0]",
        "--sweep_envs", "[cartpole]", "--sweep_episodes", "[1]", "--sweep_seeds", "[0]",
        "--workdir", str(tmp_path / "cells"), "--output", str(tmp_path / "results.md"), "--plot", str(tmp_path / "results.png"),
    ]
    first = run_bco(args, cwd=tmp_path, timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stderr.count("...") == 3  # three cells ran
    cartpole = next(line for line in (tmp_path / "results.md").read_text().splitlines() if line.startswith("| CartPole-v1 |"))
    bco0, bc = cartpole.split(" | ")[4:6]
    assert float(bco0.split(" ± ")[0]) >= 0.95 and float(bc.split(" ± ")[0]) >= 0.95, cartpole
    assert "| 1 episode |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"
    bc_summary = json.loads((tmp_path / "cells" / "cartpole" / "bc" / "seed0.json").read_text())
    assert bc_summary["env_steps"] == 0 and bc_summary["labels"] == "true_actions"
    sweep_summary = json.loads((tmp_path / "cells" / "cartpole" / "episodes1" / "seed0.json").read_text())
    assert sweep_summary["expert_episodes"] == 1
    second = run_bco(args, cwd=tmp_path, timeout=120)
    assert second.returncode == 0 and "..." not in second.stderr
    # --run_missing false: seed 1 and the 5-episode point are not on disk; nothing runs, and the
    # report keeps the seed-0 cells and says how many seeds each sweep point has
    partial = [*args, "--seeds", "[0, 1]", "--sweep_episodes", "[1, 5]", "--sweep_seeds", "[0, 1]", "--run_missing", "false"]
    third = run_bco(partial, cwd=tmp_path, timeout=120)
    assert third.returncode == 0 and "..." not in third.stderr, third.stderr
    report = (tmp_path / "results.md").read_text()
    assert re.search(r"\| CartPole-v1 \| (0\.9[5-9]\d|1\.\d{3}) ± 0\.000 \(1 seed\) \| n/a \|", report), report
    assert "each run evaluates 30 episodes" in report  # the cells' own count (the default)
    assert f"| {cartpole.split(' | ')[-3]} | 1 |" in report  # the BCO table's seeds column: 1


def test_bco_benchmark_refuses_unknown_environment_and_method(tmp_path: Path) -> None:
    for flag, value, words in (("--envs", "[atlantis]", "no config configs/atlantis.yaml"), ("--methods", "[gail]", "unknown method(s) gail")):
        result = run_bco(["benchmark", flag, value, "--workdir", str(tmp_path)], cwd=tmp_path)
        assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_idm_diagnostic_labels_pendulum_from_random_interaction(tmp_path: Path) -> None:
    """Where random interaction covers the demonstrator's states (Pendulum), the diagnostic's IDM
    labels the demonstration about as well as its own held-out transitions."""
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "idm_diagnostic.py"), "--env_id", "Pendulum-v1",
         "--expert_path", str(SHIPPED_DEMONSTRATIONS / "Pendulum-v1.npz"), "--random_steps", "20000", "--epochs", "3"],
        cwd=tmp_path, env=CLI_ENV, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["random_steps"] == 20000 and row["oracle_steps"] == 0
    assert row["held_out"]["mae"] < 0.05 and row["demonstration"]["accuracy"] > 0.9


def test_report_names_the_environments_where_bco_alpha_misses_the_target() -> None:
    """results.md says which rows stay below 0.95, by the table's own names, and says so when none do."""
    from bco_lightning.benchmark import report

    def cell(env_id: str, score: float) -> dict:
        return {
            "env_id": env_id, "normalized_score": score, "demonstrator_return": 1.0, "random_return": 0.0,
            "expert_episodes": 25, "pre_demo_steps": 1000, "post_demo_steps": 0, "wall_seconds": 1.0,
        }

    results = {
        "walker2d": {"bco_alpha": [cell("Walker2d-v5", 0.5), cell("Walker2d-v5", 0.7)], "bc": [cell("Walker2d-v5", 0.99)]},
        "lunarlander_continuous": {"bco_alpha": [cell("LunarLander-v3", 0.93)]},
        "cartpole": {"bco_alpha": [cell("CartPole-v1", 1.0)]},
    }
    text = report(results, {}, ["bco_alpha", "bc"], "bco benchmark")
    assert "BCO(alpha) below its target (mean over seeds): Walker2d-v5 (0.600, target 0.95), LunarLander-v3 (continuous) (0.930, target 0.95)." in text
    # frames have their own, lower bars: 0.92 passes on pixel CartPole, 0.75 fails on CarRacing
    pixels = {"cartpole-pixels": {"bco_alpha": [cell("CartPole-v1", 0.92)]}, "carracing-pixels": {"bco_alpha": [cell("CarRacing-v3", 0.75)]}}
    assert "below its target (mean over seeds): CarRacing-v3 pixels (0.750, target 0.8)." in report(pixels, {}, ["bco_alpha"], "bco benchmark")
    passing = report({"cartpole": results["cartpole"]}, {}, ["bco_alpha", "bc"], "bco benchmark")
    assert "reaches its target of 0.95 (mean over seeds) on every environment above" in passing
    assert "target" not in report({"cartpole": results["cartpole"]}, {}, ["bc"], "bco benchmark")


def test_report_counts_every_sitting_of_a_resumed_cell() -> None:
    """A cell finished with --resume reports the whole run's wall time, not its last sitting's."""
    from bco_lightning.benchmark import report

    base = {
        "env_id": "Hopper-v5", "normalized_score": 1.0, "demonstrator_return": 1.0, "random_return": 0.0,
        "expert_episodes": 25, "pre_demo_steps": 1000, "post_demo_steps": 0,
    }
    resumed = {**base, "wall_seconds": 100.0, "wall_seconds_all_sittings": 900.0}
    older = {**base, "wall_seconds": 300.0}  # a summary written before the field existed
    text = report({"hopper": {"bco_alpha": [resumed, older]}}, {}, ["bco_alpha"], "bco benchmark")
    assert text.splitlines()[6].endswith("| 2 | 600 |")  # mean of 900 and 300


def test_idm_errors_finds_clipped_dimensions_but_not_flags_or_free_ones() -> None:
    spec = importlib.util.spec_from_file_location("idm_errors", BENCHMARKS / "idm_errors.py")
    assert spec is not None and spec.loader is not None
    idm_errors = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(idm_errors)
    clipped_dims, at_bounds = idm_errors.clipped_dims, idm_errors.at_bounds

    rng = np.random.default_rng(0)
    free = rng.normal(size=5000)
    clipped = np.clip(rng.normal(scale=10.0, size=5000), -10.0, 10.0)  # about 32% at +-10
    flag = (rng.random(5000) < 0.5).astype(np.float64)  # an on/off contact flag
    observations = np.stack([free, clipped, flag], axis=1).astype(np.float32)
    assert clipped_dims(observations) == {1: (-10.0, 10.0)}
    np.testing.assert_array_equal(at_bounds(observations, {1: (-10.0, 10.0)}), np.abs(observations[:, 1]) == 10.0)


def test_idm_errors_reports_a_finished_run(tmp_path: Path) -> None:
    """On a real Pendulum BCO(0) run: one row per part of the interaction, and an IDM that fits."""
    run = run_bco(
        ["run", "--config", str(SHIPPED_CONFIGS / "pendulum.yaml"), "--iterations", "0", "--video", "false",
         "--quiet", "true", "--log_root", str(tmp_path / "logs"), "--summary_path", str(tmp_path / "summary.json")],
        cwd=tmp_path, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    run_dir = json.loads((tmp_path / "summary.json").read_text())["log_dir"]
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "idm_errors.py"), "--run_dir", run_dir, "--samples", "5000",
         "--expert_path", str(SHIPPED_DEMONSTRATIONS / "Pendulum-v1.npz")],
        cwd=tmp_path, env=CLI_ENV, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| pre-demonstration")]
    assert len(rows) == 1 and "post-demonstration" not in result.stdout  # BCO(0): no post-demonstration steps
    errors = [float(cell) for cell in rows[0].strip("| ").split(" | ")[2:] if cell != "-"]
    assert errors and max(errors) < 0.1, result.stdout
    assert "expert states of" in result.stdout


def test_reselect_keeps_the_iteration_a_run_would_keep():
    """`benchmarks/reselect.py` replays the run's own rule (`pipeline.replaces_kept_policy` and
    `reaches_stop_score`): the best selection mean, ties to the later iteration, and no iteration
    after the one whose kept mean reaches `--stop_score`."""
    spec = importlib.util.spec_from_file_location("reselect", BENCHMARKS / "reselect.py")
    assert spec is not None and spec.loader is not None
    reselect = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reselect)
    means = {0: 10.0, 1: 60.0, 2: 60.0, 3: 40.0, 4: 95.0}  # random 0, demonstrator 100
    assert reselect.kept_iteration(means, 0.0, 100.0, None) == 4
    assert reselect.kept_iteration({0: 10.0, 1: 60.0, 2: 60.0, 3: 40.0}, 0.0, 100.0, None) == 2  # a tie goes to the later one
    assert reselect.kept_iteration(means, 0.0, 100.0, 0.6) == 1  # iteration 1 reaches 0.6: the run stops there
    assert reselect.kept_iteration({0: 50.0, 1: 30.0, 2: 70.0}, 0.0, 100.0, 0.6) == 2  # a worse one does not stop it


def test_patience_replay_matches_a_run_with_that_patience(tmp_path: Path, cartpole_file: Path) -> None:
    """benchmarks/patience.py, replaying a full run, predicts what `--iteration_patience 1` does."""
    spec = importlib.util.spec_from_file_location("patience", BENCHMARKS / "patience.py")
    assert spec is not None and spec.loader is not None
    patience = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(patience)

    def run(summary: Path, *extra: str) -> dict:
        return small_cartpole_run(cartpole_file, summary, "--iterations", "4", "--stop_score", "null", "--seed_everything", "3", *extra)

    full = run(tmp_path / "full.json")
    assert full["stop_reason"] == "iterations" and full["iterations_run"] == 4
    cut = run(tmp_path / "cut.json", "--iteration_patience", "1")
    predicted = patience.replay(full, 1)
    assert (cut["iterations_run"], cut["selected_iteration"], cut["env_steps"]) == (predicted["stop"], predicted["kept"], predicted["env_steps"])
    assert cut["normalized_score"] == pytest.approx(predicted["score"])
    assert cut["iterations_run"] < 4 and cut["stop_reason"] == "iteration_patience"
    assert patience.replay(full, None)["score"] == pytest.approx(full["normalized_score"])


def test_bco0_is_the_first_policy_of_the_bco_alpha_run(tmp_path: Path, cartpole_file: Path) -> None:
    """`bco benchmark` reads BCO(0) off the BCO(alpha) run of the same seed instead of training it
    again; that is only right while the first policy of a run that iterates is exactly a BCO(0) run."""
    from bco_lightning.benchmark import benchmark, first_policy

    alpha_path = tmp_path / "cells" / "cartpole" / "bco_alpha" / "seed5.json"
    alpha_path.parent.mkdir(parents=True)
    alpha = small_cartpole_run(cartpole_file, alpha_path, "--iterations", "1", "--stop_score", "null", "--seed_everything", "5")
    bco0 = small_cartpole_run(cartpole_file, tmp_path / "bco0.json", "--alpha", "0", "--iterations", "0", "--seed_everything", "5")
    assert alpha["iterations_run"] == 1 and alpha["post_demo_steps"] > 0  # it did go on past its first policy
    read_off = first_policy(alpha)
    for key in ("normalized_score", "eval_return_mean", "eval_return_std", "env_steps", "post_demo_steps", "pre_demo_steps", "eval_episodes"):
        assert read_off[key] == bco0[key], key
    assert 0 < read_off["wall_seconds"] < alpha["wall_seconds"]

    # nothing else on disk: the report's BCO(0) column is that first policy, and says so
    text = benchmark(
        ["cartpole"], ["bco0", "bco_alpha"], [5], [], [], [], tmp_path / "cells", tmp_path / "results.md", tmp_path / "results.png",
        "bco benchmark", run_missing=False,
    )
    row = next(line for line in text.splitlines() if line.startswith("| CartPole-v1 |")).split(" | ")
    assert row[4] == f"{bco0['normalized_score']:.3f} ± 0.000" and row[5] == f"{alpha['normalized_score']:.3f} ± 0.000", row
    assert "1 of the BCO(0) cells are the first policy of the BCO(alpha) run" in text
    assert not (tmp_path / "cells" / "cartpole" / "bco0").exists()  # read off, not run


def load_label_errors_script():
    spec = importlib.util.spec_from_file_location("pixel_cartpole_label_errors", BENCHMARKS / "pixel_cartpole_label_errors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_label_errors_replay_finds_the_recordings_states_and_refuses_other_kicks() -> None:
    from bco_lightning.demonstrators import KickedController, cartpole_controller, record_episodes

    script = load_label_errors_script()
    recording = record_episodes("CartPole-v1", KickedController(cartpole_controller, 20, [0.0, 0.4, 0.0, 0.6], 3), 2, 3)
    states = script.expert_states(2, 20, [0.0, 0.4, 0.0, 0.6], 3, recording.episode_lengths, recording.actions)
    np.testing.assert_array_equal(states, recording.observations[recording.pair_indices()])
    with pytest.raises(SystemExit, match="does not re-make the recording"):
        script.expert_states(2, 10, [0.0, 0.4, 0.0, 0.6], 3, recording.episode_lengths, recording.actions)


@pytest.mark.parametrize("repeat", [1, 8])
def test_random_play_on_cartpole_stays_near_the_centre(repeat: int) -> None:
    """The benchmark's reason why BCO(0)'s IDM mislabels the far-off-centre expert: random play, sticky
    or not, hardly leaves the middle 1.2 m of the track."""
    from bco_lightning.data.rollouts import RandomPlay

    distances = load_label_errors_script().random_play_distances(RandomPlay(repeat=repeat), 5_000)
    assert distances.shape == (5_000,)
    assert np.mean(distances >= 0.6) < 0.01


def test_idm_label_shift_reads_each_iteration_of_a_pixel_run(tmp_path: Path) -> None:
    """On a tiny pixel Pendulum BCO(alpha) run: one block of rows per IDM, whose held-out error is
    the run's own validation error (its split), and an expert comparison from the file's actions."""
    summary_path = tmp_path / "summary.json"
    run = run_bco(
        ["run", "--data.env_id", "Pendulum-v1", "--data.observation", "pixels", "--data.grayscale", "false",
         "--data.expert_path", str(SHIPPED_DEMONSTRATIONS / "Pendulum-v1-pixels.npz"), "--data.image_size", "16",
         "--data.max_expert_episodes", "2", "--data.pre_demo_steps", "1200", "--data.num_envs", "4", "--iterations", "1",
         "--stop_score", "null", "--eval_episodes", "1", "--idm_max_epochs", "3", "--policy_max_epochs", "1",
         "--min_steps_per_validation", "20", "--video", "false", "--quiet", "true", "--log_root", str(tmp_path / "logs"),
         "--summary_path", str(summary_path)],
        cwd=tmp_path, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(summary_path.read_text())
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "idm_label_shift.py"), summary["log_dir"]],
        cwd=tmp_path, env=CLI_ENV, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.strip("| ").split(" | ")[1:] for line in result.stdout.splitlines()[2:]]
    assert [(row[0], row[1]) for row in rows] == [(k, name) for k in "01" for name in ("action[0]", "all (unit box)")]
    idm_mae = [entry["val/mae"] for entry in summary["history"] if entry["stage"] == "idm"]
    for iteration, mae in enumerate(idm_mae):  # the best checkpoint's error, within a hair of the last validation's
        held_out, expert = float(rows[2 * iteration + 1][3]), float(rows[2 * iteration + 1][5])
        assert abs(held_out - mae) < 0.02 and expert > 0, result.stdout
    assert -1 <= float(rows[0][2]) <= 1 and -1 <= float(rows[0][4]) <= 1
