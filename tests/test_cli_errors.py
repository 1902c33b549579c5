"""`bco run` in a fresh process: every refused input is one line on stderr and exit status 2."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from helpers import assert_names_problem, assert_one_line_error, bco_console_script, run_bco

CLI_BROKEN_FILES = [
    "truncated",
    "not_npz",
    "wrong_obs_shape",
    "nan",
    "lengths_sum",
    "missing_observations",
    "single_observation_episode",
    "empty",
]


@pytest.mark.parametrize("kind", CLI_BROKEN_FILES)
def test_broken_expert_file_exits_2_with_one_line(tmp_path, make_broken_file, kind):
    path, words = make_broken_file(kind)
    summary = tmp_path / "summary.json"
    result = run_bco(["run", "--data.expert_path", str(path), "--summary_path", str(summary)], cwd=tmp_path)
    line = assert_one_line_error(result)
    assert_names_problem(line, path, words)
    assert not summary.exists()
    assert not list(tmp_path.rglob("summary.json"))


def test_nonexistent_expert_file_exits_2(tmp_path):
    path = tmp_path / "missing.npz"
    result = run_bco(["run", "--data.expert_path", str(path), "--summary_path", str(tmp_path / "s.json")], cwd=tmp_path)
    assert_names_problem(assert_one_line_error(result), path, ("not found",))


def test_python_dash_m_launcher_also_gives_one_line(tmp_path, make_broken_file):
    """`python -m bco_lightning.cli` makes cli.py `__main__`, where Python shows DeprecationWarnings."""
    path, words = make_broken_file("nan")
    summary = tmp_path / "summary.json"
    result = run_bco(
        ["run", "--data.expert_path", str(path), "--summary_path", str(summary)], cwd=tmp_path, launcher="module"
    )
    assert_names_problem(assert_one_line_error(result), path, words)
    assert not summary.exists()


def test_unknown_env_id_exits_2(tmp_path):
    result = run_bco(["run", "--data.env_id", "NoSuchEnv-v0", "--summary_path", str(tmp_path / "s.json")], cwd=tmp_path)
    assert_one_line_error(result, "NoSuchEnv-v0")
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("flag", ["--alpha", "--noise_per_idm_error"])
def test_negative_rate_exits_2(tmp_path, flag):
    result = run_bco(["run", flag, "-1", "--summary_path", str(tmp_path / "s.json")], cwd=tmp_path)
    assert_one_line_error(result, flag.lstrip("-"))
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("flag, value", [("--trainer.gradient_clip_val", "1.0"), ("--trainer.accumulate_grad_batches", "2")])
def test_trainer_flags_of_automatic_optimisation_are_refused(tmp_path, flag, value):
    """The modules step their optimiser themselves (several batches per Lightning step)."""
    result = run_bco(["run", flag, value, "--summary_path", str(tmp_path / "s.json")], cwd=tmp_path)
    assert_one_line_error(result, flag.removeprefix("--"))
    assert not (tmp_path / "s.json").exists()


def test_run_help_lists_contract_flags(tmp_path):
    result = run_bco(["run", "--help"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for flag in (
        "--data.env_id",
        "--data.env_kwargs",
        "--data.expert_path",
        "--seed_everything",
        "--alpha",
        "--iterations",
        "--summary_path",
        "--resume",
        "--config",
        "--print_config",
        "--trainer.accelerator",
        "--trainer.devices",
        "--trainer.strategy",
        "--trainer.num_nodes",
    ):
        assert flag in result.stdout, flag


def test_print_config_is_yaml_and_config_file_round_trips(tmp_path):
    result = run_bco(["run", "--print_config"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "env_id: CartPole-v1" in result.stdout
    assert "alpha:" in result.stdout
    config = yaml.safe_load(result.stdout)
    assert config["data"]["env_id"] == "CartPole-v1"
    assert {"alpha", "iterations", "summary_path", "seed_everything", "data", "idm", "policy", "trainer"} <= set(config)

    # The printed config is a valid --config file; dotted overrides after it win.
    config["alpha"] = 0.25
    config["iterations"] = 2
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(config))
    again = run_bco(["run", "--config", str(config_file), "--data.pre_demo_steps", "1234", "--print_config"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    reparsed = yaml.safe_load(again.stdout)
    assert reparsed["alpha"] == 0.25 and reparsed["iterations"] == 2
    assert reparsed["data"]["pre_demo_steps"] == 1234


def test_true_action_labels_need_actions_and_no_iterations(tmp_path, cartpole_demos):
    from dataclasses import replace

    from bco_lightning.data.expert_file import save_expert_file

    no_actions = save_expert_file(tmp_path / "no_actions.npz", replace(cartpole_demos, actions=None))
    result = run_bco(["run", "--data.expert_path", str(no_actions), "--labels", "true_actions", "--iterations", "0"], cwd=tmp_path)
    assert_one_line_error(result, "--labels true_actions needs 'actions'", str(no_actions))
    result = run_bco(["run", "--labels", "true_actions"], cwd=tmp_path)
    assert_one_line_error(result, "set --iterations to 0")


def test_a_reader_that_left_early_gets_no_traceback(tmp_path):
    """`bco --help | head -1`: stdout's reader is gone before `bco` writes; it ends with 141 (what a
    shell reports for SIGPIPE) and prints nothing on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([*bco_console_script(), "--help"], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120, cwd=tmp_path)
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (141, "")
