"""Minari datasets as an expert source: made by Minari's own API in a temporary root, never downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bco_lightning.errors import ExpertFileError
from bco_lightning.data.minari_source import load_minari_expert
from helpers import CLI_ENV, assert_one_line_error, run_bco

minari = pytest.importorskip("minari")
from minari.data_collector import EpisodeBuffer  # noqa: E402
import gymnasium as gym  # noqa: E402


def independent_cartpole_dataset(dataset_id: str, episodes: int, seed: int = 100) -> None:
    """A CartPole dataset written with Minari's API alone, by a controller bco does not ship
    (LQR-like gains differ from `cartpole_controller`)."""
    env = gym.make("CartPole-v1")
    buffers = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
        done = False
        while not done:
            x, x_dot, theta, theta_dot = obs
            action = int(0.1 * x + 0.5 * x_dot + 10.0 * theta + 2.0 * theta_dot > 0)
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(float(reward))
            terminations.append(terminated)
            truncations.append(truncated)
            done = terminated or truncated
        buffers.append(EpisodeBuffer(id=episode, observations=np.asarray(observations), actions=np.asarray(actions),
                                     rewards=rewards, terminations=terminations, truncations=truncations))
    minari.create_dataset_from_buffers(dataset_id, buffers, env=env.spec, eval_env=env.spec, algorithm_name="independent LQR-like controller",
                                       author="tests", author_email="tests@example.com", code_permalink="tests/test_minari.py")


@pytest.fixture
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def test_loads_observations_actions_and_returns(minari_root):
    independent_cartpole_dataset("cartpole/lqr-v0", episodes=2)
    demos = load_minari_expert("minari:cartpole/lqr-v0", "CartPole-v1")
    assert demos.num_episodes == 2 and demos.obs_shape == (4,)
    assert demos.episode_lengths.tolist() == [501, 501]
    assert demos.episode_returns.tolist() == [500.0, 500.0]
    assert demos.actions.shape == (1000,) and set(np.unique(demos.actions)) <= {0, 1}
    assert demos.env_id == "CartPole-v1"


def test_refuses_other_environment_and_missing_dataset(minari_root):
    independent_cartpole_dataset("cartpole/lqr-v0", episodes=1)
    with pytest.raises(ExpertFileError, match="recorded in CartPole-v1, but the environment is Acrobot-v1"):
        load_minari_expert("minari:cartpole/lqr-v0", "Acrobot-v1")
    with pytest.raises(ExpertFileError, match="no local Minari dataset 'cartpole/other-v0'.*never downloads"):
        load_minari_expert("minari:cartpole/other-v0", "CartPole-v1")


def test_record_format_minari_round_trip_and_never_replaces(tmp_path, minari_root):
    env = {**CLI_ENV, "MINARI_DATASETS_PATH": str(minari_root)}
    args = ["record", "--env_id", "Pendulum-v1", "--format", "minari", "--output", "pendulum/scripted-v0", "--episodes", "2"]
    first = run_bco(args, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    demos = load_minari_expert("minari:pendulum/scripted-v0", "Pendulum-v1")
    assert demos.num_episodes == 2 and demos.actions.shape == (400, 1)
    before = sorted(p.stat().st_mtime_ns for p in minari_root.rglob("*") if p.is_file())
    second = run_bco(args, cwd=tmp_path, env=env)
    assert "exists" in assert_one_line_error(second, "pendulum/scripted-v0")
    assert sorted(p.stat().st_mtime_ns for p in minari_root.rglob("*") if p.is_file()) == before


def test_run_with_wrong_environment_exits_2_with_one_line(tmp_path, minari_root):
    independent_cartpole_dataset("cartpole/lqr-v0", episodes=1)
    env = {**CLI_ENV, "MINARI_DATASETS_PATH": str(minari_root)}
    summary = tmp_path / "s.json"
    result = run_bco(["run", "--data.env_id", "Acrobot-v1", "--data.expert_path", "minari:cartpole/lqr-v0", "--summary_path", str(summary)], cwd=tmp_path, env=env)
    assert_one_line_error(result, "minari:cartpole/lqr-v0", "recorded in CartPole-v1")
    assert not summary.exists()


@pytest.mark.slow
def test_independent_minari_dataset_trains_to_0_9(tmp_path, minari_root):
    """The issue's check: a dataset made by an independent script trains to normalised score >= 0.9."""
    independent_cartpole_dataset("cartpole/lqr-v0", episodes=10)
    env = {**CLI_ENV, "MINARI_DATASETS_PATH": str(minari_root)}
    summary = tmp_path / "s.json"
    result = run_bco(["run", "--data.expert_path", "minari:cartpole/lqr-v0", "--summary_path", str(summary)], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    score = json.loads(summary.read_text())["normalized_score"]
    assert score >= 0.9, score
