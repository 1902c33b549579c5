"""`bco record`: scripted controllers (gymnasium's LunarLander heuristic) and Stable-Baselines3 models."""

from __future__ import annotations

import pytest

from bco_lightning.data.expert_file import load_expert_file
from conftest import REPO_ROOT, run_bco
from test_cli_errors import assert_one_line_error


@pytest.mark.parametrize("continuous", [False, True])
def test_record_lunar_lander_heuristic_lands(tmp_path, continuous):
    output = tmp_path / "lander.npz"
    kwargs = ["--env_kwargs", '{"continuous": true}'] if continuous else []
    result = run_bco(["record", "--env_id", "LunarLander-v3", *kwargs, "--episodes", "3", "--output", str(output)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    demos = load_expert_file(output)
    assert demos.obs_shape == (8,) and demos.num_episodes == 3
    assert demos.actions.shape[1:] == ((2,) if continuous else ())
    assert demos.episode_returns.min() > 200  # landed every time


def test_record_from_the_shipped_sb3_model(tmp_path):
    """`bco record --model` plays a Stable-Baselines3 policy: the shipped HalfCheetah SAC is competent."""
    pytest.importorskip("stable_baselines3")
    output = tmp_path / "cheetah.npz"
    result = run_bco(["record", "--env_id", "HalfCheetah-v5", "--model", str(REPO_ROOT / "data" / "HalfCheetah-v5-sac.zip"),
                      "--episodes", "1", "--output", str(output)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    demos = load_expert_file(output)
    assert demos.num_transitions == 1000 and demos.actions.shape == (1000, 6)
    assert demos.episode_returns[0] > 3000
    missing = run_bco(["record", "--env_id", "HalfCheetah-v5", "--model", str(tmp_path / "none.zip"), "--output", str(tmp_path / "x.npz")], cwd=tmp_path)
    assert_one_line_error(missing, "not a loadable SAC model")
    assert not (tmp_path / "x.npz").exists()
