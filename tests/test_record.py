"""`bco record`: scripted controllers (gymnasium's LunarLander heuristic) and Stable-Baselines3 models."""

from __future__ import annotations

import numpy as np
import pytest

from bco_lightning.data.expert_file import load_expert_file
from bco_lightning.demonstrators import SCRIPTED_CONTROLLERS, FrameRecording, KickedController, record_episodes, scripted_controller
from helpers import SB3_MODELS, SHIPPED_DEMONSTRATIONS, assert_one_line_error, run_bco


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
    result = run_bco(["record", "--env_id", "HalfCheetah-v5", "--model", str(SB3_MODELS / "HalfCheetah-v5-sac.zip"),
                      "--episodes", "1", "--output", str(output)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    demos = load_expert_file(output)
    assert demos.num_transitions == 1000 and demos.actions.shape == (1000, 6)
    assert demos.episode_returns[0] > 3000
    missing = run_bco(["record", "--env_id", "HalfCheetah-v5", "--model", str(tmp_path / "none.zip"), "--output", str(tmp_path / "x.npz")], cwd=tmp_path)
    assert_one_line_error(missing, "not a loadable SAC model")
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize("env_id", sorted(SCRIPTED_CONTROLLERS))
def test_shipped_scripted_demonstrations_are_what_bco_record_makes(env_id):
    """`bco record --env_id ID --output bco_lightning/demonstrations/ID.npz` (seed 0) re-makes the shipped file: its first
    three episodes here, state for state, with their returns."""
    shipped = load_expert_file(SHIPPED_DEMONSTRATIONS / f"{env_id}.npz")
    recorded = record_episodes(env_id, scripted_controller(env_id), episodes=3, seed=0)
    np.testing.assert_array_equal(recorded.episode_lengths, shipped.episode_lengths[:3])
    np.testing.assert_allclose(recorded.observations, shipped.observations[: recorded.observations.shape[0]], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(recorded.episode_returns, shipped.episode_returns[:3])


@pytest.mark.parametrize(
    ("env_id", "env_kwargs", "file", "episodes"),
    [
        ("CartPole-v1", None, "CartPole-v1-pixels.npz", 2),
        ("Pendulum-v1", None, "Pendulum-v1-pixels.npz", 2),
        ("CarRacing-v3", None, "CarRacing-v3-pixels.npz", 1),
        ("CarRacing-v3", {"continuous": False}, "CarRacing-v3-discrete-pixels.npz", 1),
    ],
)
def test_shipped_pixel_demonstrations_are_what_bco_record_makes(env_id, env_kwargs, file, episodes):
    """`bco record --env_id ID [--env_kwargs ...] --observation pixels --output bco_lightning/demonstrations/FILE`
    (seed 0, 64x64 RGB) re-makes the shipped frame file: its first episodes, byte for byte."""
    shipped = load_expert_file(SHIPPED_DEMONSTRATIONS / file)
    assert shipped.is_frames and shipped.observations.dtype == np.uint8 and shipped.obs_shape == (64, 64, 3)
    controller = scripted_controller(env_id, env_kwargs)
    recorded = record_episodes(env_id, controller, episodes=episodes, seed=0, env_kwargs=env_kwargs, frames=FrameRecording(64, grayscale=False))
    np.testing.assert_array_equal(recorded.episode_lengths, shipped.episode_lengths[:episodes])
    np.testing.assert_array_equal(recorded.observations, shipped.observations[: recorded.observations.shape[0]])
    np.testing.assert_allclose(recorded.episode_returns, shipped.episode_returns[:episodes])
    if env_id != "CarRacing-v3":
        # the same controller and seeds as the state file: its episodes, seen through the camera (the
        # Pendulum frame file goes on to 100 episodes, seeds 0-99)
        state = load_expert_file(SHIPPED_DEMONSTRATIONS / f"{env_id}.npz")
        assert shipped.num_episodes >= state.num_episodes
        np.testing.assert_array_equal(shipped.episode_lengths[: state.num_episodes], state.episode_lengths)
        np.testing.assert_allclose(shipped.episode_returns[: state.num_episodes], state.episode_returns)


def test_shipped_kicked_cartpole_frames_are_what_bco_record_makes():
    """`bco record --env_id CartPole-v1 --observation pixels --grayscale true --episodes 200 --kick_every 20
    --kick_size '[0, 0.4, 0, 0.6]' --output bco_lightning/demonstrations/CartPole-v1-kicked-pixels.npz`
    re-makes the file `cartpole-pixels.yaml` learns from: its first two episodes, byte for byte."""
    shipped = load_expert_file(SHIPPED_DEMONSTRATIONS / "CartPole-v1-kicked-pixels.npz")
    assert shipped.num_episodes == 200 and shipped.obs_shape == (64, 64) and shipped.observations.dtype == np.uint8
    kicked = KickedController(scripted_controller("CartPole-v1"), 20, [0, 0.4, 0, 0.6], seed=0)
    recorded = record_episodes("CartPole-v1", kicked, episodes=2, seed=0, frames=FrameRecording(64, grayscale=True))
    np.testing.assert_array_equal(recorded.episode_lengths, shipped.episode_lengths[:2])
    np.testing.assert_array_equal(recorded.observations, shipped.observations[: recorded.observations.shape[0]])
    np.testing.assert_array_equal(recorded.actions, shipped.actions[: recorded.actions.shape[0]])


def test_record_pixels_writes_frames_and_run_refuses_them_until_pixels_exist(tmp_path):
    output = tmp_path / "frames.npz"
    result = run_bco(["record", "--observation", "pixels", "--image_size", "16", "--grayscale", "true", "--episodes", "1", "--output", str(output)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "frames 16x16 uint8" in result.stdout
    demos = load_expert_file(output)
    assert demos.is_frames and demos.obs_shape == (16, 16) and demos.observations.dtype == np.uint8
    refused = run_bco(["run", "--data.expert_path", str(output), "--quiet", "true"], cwd=tmp_path)
    assert_one_line_error(refused, "holds camera frames (16, 16)")
    minari = run_bco(["record", "--observation", "pixels", "--format", "minari", "--output", "x/y-v0"], cwd=tmp_path)
    assert_one_line_error(minari, "Minari recordings of frames are not supported yet")


def test_record_kicks_the_simulator_but_keeps_the_controllers_actions(tmp_path):
    """`--kick_every 20 --kick_size ...` films the controller while its cart-pole is nudged, so the
    frames show recoveries: up to the first kick (with the 10th action) they are the undisturbed
    episode's, after it they are not, and every action kept is the controller's choice, not a kick."""
    from bco_lightning.demonstrators import cartpole_controller, play_episodes

    output = tmp_path / "kicked.npz"
    result = run_bco(["record", "--observation", "pixels", "--image_size", "16", "--episodes", "2", "--kick_every", "20",
                      "--kick_size", "[0, 0.4, 0, 0.6]", "--output", str(output)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    kicked = load_expert_file(output)
    calm = next(play_episodes("CartPole-v1", cartpole_controller, 1, 0, None, FrameRecording(16, False)))
    np.testing.assert_array_equal(kicked.observations[:10], calm.frames[:10])
    assert not np.array_equal(kicked.observations[10:40], calm.frames[10:40])
    assert set(np.unique(kicked.actions)) == {0, 1}
    states = next(play_episodes("CartPole-v1", KickedController(cartpole_controller, 20, [0, 0.4, 0, 0.6], seed=0), 1, 0))
    np.testing.assert_array_equal(states.actions, [cartpole_controller(obs) for obs in states.observations[:-1]])
    assert not np.allclose(states.observations[:, 1], calm.observations[: len(states.observations), 1])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--kick_every", "20"], "--kick_every needs --kick_size"),
        (["--kick_every", "20", "--kick_size", "[0.4, 0.6]"], "--kick_size has 2 entries but the simulator's state has 4"),
        (["--kick_every", "0", "--kick_size", "[0, 0.4, 0, 0.6]"], "--kick_every must be >= 1 to kick, got 0"),
        (["--kick_every", "20", "--kick_size", "[0, -0.4, 0, 0.6]"], "--kick_size must list one largest kick >= 0"),
        (["--env_id", "LunarLander-v3", "--kick_every", "20", "--kick_size", "[0, 0.4]"], "LunarLander-v3 does not have as a vector"),
    ],
)
def test_record_refuses_kicks_it_cannot_give(tmp_path, flags, message):
    output = tmp_path / "kicked.npz"
    assert_one_line_error(run_bco(["record", *flags, "--episodes", "1", "--output", str(output)], cwd=tmp_path), message)
    assert not output.exists()
