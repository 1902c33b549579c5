"""Configurations the pipeline cannot run are refused up front with one line and exit status 2."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from bco_lightning.envs import spec_from_spaces
from bco_lightning.errors import ConfigError
from helpers import run_bco, stderr_lines

FLAT = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)


@pytest.mark.parametrize(
    ("obs_space", "action_space", "named"),
    [
        (gym.spaces.Dict({"a": FLAT}), gym.spaces.Discrete(2), "observation space"),
        (gym.spaces.Tuple((FLAT, FLAT)), gym.spaces.Discrete(2), "observation space"),
        (gym.spaces.Box(0, 255, (64, 64, 3), np.uint8), gym.spaces.Discrete(2), "observation space"),
        (FLAT, gym.spaces.MultiDiscrete([2, 3]), "action space"),
        (FLAT, gym.spaces.MultiBinary(3), "action space"),
        (FLAT, gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(2))), "action space"),
        (FLAT, gym.spaces.Box(-np.inf, np.inf, (2,), np.float32), "bounded"),
    ],
)
def test_unsupported_spaces_are_refused(obs_space: gym.Space, action_space: gym.Space, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        spec_from_spaces("Custom-v0", obs_space, action_space)


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["run", "--data.env_id", "Blackjack-v1"], "observation space"),  # Tuple observations
        (["run", "--eval_episodes", "0"], "--eval_episodes"),
        (["run", "--iterations", "-1"], "--iterations"),
        (["run", "--iteration_patience", "0"], "--iteration_patience"),
        (["run", "--iteration_patience", "3", "--select_best", "false"], "--select_best"),
        (["run", "--finetune_steps_per_validation", "0"], "--finetune_steps_per_validation must be >= 1 or null"),
        (["run", "--data.val_fraction", "1.5"], "val_fraction"),
        (["run", "--data.env_kwargs", '{"no_such_argument": 1}'], "env_kwargs"),
        (["run", "--data.random_play.repeat", "0"], "--data.random_play repeat must be >= 1"),
        (["run", "--data.random_play.probabilities", "[0.5, 0.6]"], "summing to 1, one per action of CartPole-v1"),
        (["run", "--data.random_play.high", "[1.0]"], "low/high are for Box actions"),
        (["run", "--config", "pendulum.yaml", "--data.random_play.high", "[3.0]"], "within the bounds of Pendulum-v1's Box actions"),
        (["run", "--data.random_play.zero_probability", "[0.5]"], "zero_probability is for Box actions"),
        (["run", "--config", "pendulum.yaml", "--data.random_play.zero_probability", "[1.5]"], "one probability in [0, 1] per dimension of Pendulum-v1's Box actions (1)"),
        (["record", "--episodes", "0", "--output", "x.npz"], "--episodes"),
        (["record", "--env_id", "Swimmer-v5", "--output", "x.npz"], "no scripted controller"),
    ],
)
def test_bad_configuration_exits_2_with_one_line(tmp_path: Path, args: list[str], phrase: str) -> None:
    result = run_bco(args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert phrase in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.npz").exists()


def test_record_keeps_an_existing_output_without_overwrite(tmp_path: Path) -> None:
    output = tmp_path / "mine.npz"
    output.write_bytes(b"user data")
    result = run_bco(["record", "--episodes", "1", "--output", str(output)], cwd=tmp_path)
    assert result.returncode == 2 and len(stderr_lines(result)) == 1 and "--overwrite" in result.stderr
    assert output.read_bytes() == b"user data"
    result = run_bco(["record", "--episodes", "1", "--output", str(output), "--overwrite", "true"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert output.read_bytes()[:2] == b"PK"
