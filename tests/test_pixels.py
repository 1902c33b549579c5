"""Pixel environments: frames the size the networks take, stacks that never span two episodes, and
the same stacks as the ones gathered from a recorded frame file by index."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from bco_lightning.data.frames import resize_frames, stack_rows
from bco_lightning.data.rollouts import RandomPlay
from bco_lightning.demonstrators import FrameRecording, cartpole_controller, record_episodes
from bco_lightning.errors import RenderError, SettingError
from bco_lightning.pixels import PixelSettings, make_camera_env, make_pixel_env
from bco_lightning.video import make_rendering_env, render_frame
from helpers import assert_workers_change_nothing


def test_observation_is_the_resized_render_of_the_same_state() -> None:
    pixels = PixelSettings(image_size=16, grayscale=True, frame_stack=3)
    env = make_pixel_env("CartPole-v1", None, pixels)
    reference = make_camera_env("CartPole-v1")
    try:
        obs, _ = env.reset(seed=7)
        reference.reset(seed=7)
        assert obs.shape == pixels.observation_shape == (3, 16, 16) and obs.dtype == np.uint8
        assert env.observation_space.shape == (3, 16, 16)
        expected = resize_frames(render_frame(reference, "CartPole-v1")[None], 16, True)[0]
        for frame in obs:  # the first frame repeats before the episode's start
            np.testing.assert_array_equal(frame, expected)
        obs, *_ = env.step(1)
        reference.step(1)
        np.testing.assert_array_equal(obs[-1], resize_frames(render_frame(reference, "CartPole-v1")[None], 16, True)[0])
        np.testing.assert_array_equal(obs[:2], np.stack([expected, expected]))
    finally:
        env.close()
        reference.close()


def test_env_stacks_equal_the_stacks_gathered_from_a_recorded_file() -> None:
    """Two recorded episodes of frames, stacked by `stack_rows`, are what the pixel env shows the
    policy at every step of the same two episodes (same seeds, same controller)."""
    pixels = PixelSettings(image_size=16, grayscale=False, frame_stack=4)
    demos = record_episodes("CartPole-v1", cartpole_controller, episodes=2, seed=3, frames=FrameRecording(16, grayscale=False))
    gathered = demos.observations[stack_rows(demos.episode_lengths, pixels.frame_stack)]
    state_env = gym.make("CartPole-v1")
    env = make_pixel_env("CartPole-v1", None, pixels)
    row = 0
    try:
        for episode in range(2):
            state, _ = state_env.reset(seed=3 + episode)
            obs, _ = env.reset(seed=3 + episode)
            done = False
            while True:
                np.testing.assert_array_equal(obs, gathered[row], err_msg=f"row {row}")
                row += 1
                if done:
                    break
                action = cartpole_controller(state)
                state, _, terminated, truncated, _ = state_env.step(action)
                obs, _, terminated_pixels, truncated_pixels, _ = env.step(action)
                assert (terminated, truncated) == (terminated_pixels, truncated_pixels)
                done = terminated or truncated
    finally:
        env.close()
        state_env.close()
    assert row == len(demos.observations)


def test_an_environment_whose_observation_is_an_image_keeps_it() -> None:
    """CarRacing-v3 observes its own 96x96x3 frames: they are resized, not replaced by render()."""
    pytest.importorskip("Box2D")
    env = make_pixel_env("CarRacing-v3", {"continuous": False}, PixelSettings(image_size=16, grayscale=True, frame_stack=2))
    try:
        obs, _ = env.reset(seed=0)
        raw = env.unwrapped.state  # CarRacing keeps its last observed frame here
        assert obs.shape == (2, 16, 16)
        np.testing.assert_array_equal(obs[-1], resize_frames(np.asarray(raw, dtype=np.uint8)[None], 16, True)[0])
    finally:
        env.close()


class _NoFrames(gym.Env):
    """An environment that renders nothing."""

    metadata = {"render_modes": ["rgb_array"]}
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}

    def render(self):
        return None


def test_an_environment_without_frames_is_refused_in_one_line() -> None:
    gym.register("NoFrames-v0", entry_point=_NoFrames, max_episode_steps=10)
    with pytest.raises(RenderError, match=r"NoFrames-v0 rendered NoneType, not an \(H, W, 3\) image"):
        make_pixel_env("NoFrames-v0", None, PixelSettings())


def test_bad_pixel_settings_are_refused() -> None:
    with pytest.raises(SettingError, match="frame_stack"):
        PixelSettings(frame_stack=0)


def test_collected_frames_are_stored_once_and_their_stacks_are_what_the_policy_saw() -> None:
    """Pixel interaction stores each frame once (the newest of each stack) with a link to the frame
    before it; following the links gives back, for every transition, the very stacks (s and s')
    the sub-environments showed, across autoresets and without mixing sub-envs or episodes."""
    from bco_lightning.data.frames import stack_index
    from bco_lightning.data.rollouts import collect_transitions

    pixels = PixelSettings(image_size=16, grayscale=True, frame_stack=3)
    seen: list[np.ndarray] = []

    def policy(stacks: np.ndarray) -> np.ndarray:
        seen.append(stacks.copy())
        return (stacks.reshape(len(stacks), -1).sum(axis=1) % 2).astype(np.int64)  # depends on what it sees

    num_envs, steps = 3, 150  # CartPole episodes under this policy are short: several autoresets
    transitions = collect_transitions("CartPole-v1", None, steps, seed=5, policy=policy, num_envs=num_envs, pixels=pixels)
    assert transitions.observations.shape[1:] == (16, 16) and transitions.observations.dtype == np.uint8
    assert transitions.previous_row is not None and len(transitions.previous_row) == len(transitions.observations)
    shown = np.concatenate(seen)  # row t * num_envs + e: what sub-env e showed before step t
    stacks = transitions.observations[stack_index(np.arange(len(shown)), transitions.previous_row, 3)]
    np.testing.assert_array_equal(stacks, shown)
    starts = np.flatnonzero(transitions.previous_row == np.arange(len(transitions.previous_row)))
    assert len(starts) > num_envs  # episodes ended and restarted during the collection
    assert np.all((transitions.previous_row % num_envs) == (np.arange(len(transitions.previous_row)) % num_envs))


def test_a_batch_of_frame_transitions_gathers_its_stacks_by_index() -> None:
    """`ExampleTable` over stored frames and their stack rows serves (B, stack, H, W) uint8 batches:
    s and s' as the environment showed them, with no stack ever stored."""
    import torch

    from bco_lightning.data.datamodule import ExampleTable
    from bco_lightning.data.frames import stack_index
    from bco_lightning.data.rollouts import collect_transitions

    pixels = PixelSettings(image_size=16, grayscale=True, frame_stack=2)
    seen: list[np.ndarray] = []

    def policy(stacks: np.ndarray) -> np.ndarray:
        seen.append(stacks.copy())
        return np.zeros(len(stacks), dtype=np.int64)

    transitions = collect_transitions("CartPole-v1", None, 60, seed=1, policy=policy, num_envs=2, pixels=pixels)
    assert transitions.previous_row is not None
    rows = np.arange(len(transitions.observations))
    table = ExampleTable(
        torch.from_numpy(transitions.observations),
        torch.from_numpy(transitions.obs_index),
        torch.from_numpy(transitions.next_index),
        torch.from_numpy(transitions.actions),
        torch.from_numpy(stack_index(rows, transitions.previous_row, 2)),
    )
    batch = table.batch(torch.arange(len(table)))
    shown = np.concatenate(seen)
    assert batch["obs"].shape == (60, 2, 16, 16) and batch["obs"].dtype == torch.uint8
    np.testing.assert_array_equal(batch["obs"].numpy(), shown[transitions.obs_index])
    inside = transitions.next_index < len(shown)  # the last step's s' was never shown to the policy
    np.testing.assert_array_equal(batch["next_obs"].numpy()[inside], shown[transitions.next_index[inside]])


def test_the_run_folder_keeps_frame_links_across_a_resume(tmp_path) -> None:
    from bco_lightning.data.rollouts import collect_transitions
    from bco_lightning.run_folder import RunFolder

    transitions = collect_transitions("CartPole-v1", None, 20, seed=0, num_envs=2, pixels=PixelSettings(image_size=8, frame_stack=2))
    folder = RunFolder(tmp_path, "CartPole-v1")
    folder.save_interaction(transitions, [len(transitions)])
    folder.progress.completed.append("idm-0")  # as after a committed unit
    saved = folder.saved_interaction()
    assert saved is not None and saved[0].previous_row is not None
    restored = saved[0]
    np.testing.assert_array_equal(restored.previous_row, transitions.previous_row)
    np.testing.assert_array_equal(restored.observations, transitions.observations)
    assert restored.observations.dtype == np.uint8


def test_pendulum_frames_hide_the_torque_arrow_a_camera_would_not_see() -> None:
    """Pendulum-v1 draws its last torque as an arrow: the pixel env's frame after a step is the
    frame of the same state without it, and no longer tells which torque was applied."""
    pixels = PixelSettings(image_size=32, grayscale=True, frame_stack=1)
    camera = make_pixel_env("Pendulum-v1", None, pixels)
    plain = make_rendering_env("Pendulum-v1")
    try:
        camera.reset(seed=3)
        plain.reset(seed=3)
        torque = np.array([2.0], dtype=np.float32)
        obs, *_ = camera.step(torque)
        plain.step(torque)
        with_arrow = resize_frames(render_frame(plain, "Pendulum-v1")[None], 32, True)[0]
        plain.unwrapped.last_u = None
        without_arrow = resize_frames(render_frame(plain, "Pendulum-v1")[None], 32, True)[0]
        assert not np.array_equal(with_arrow, without_arrow)
        np.testing.assert_array_equal(obs[-1], without_arrow)
    finally:
        camera.close()
        plain.close()


def test_worker_processes_collect_and_evaluate_exactly_what_in_process_stepping_does() -> None:
    """`async_envs` on CarRacing's frames (episodes cut at 40 steps): the same frames, actions,
    links and returns, so a run's results do not depend on it."""
    assert_workers_change_nothing(
        "CarRacing-v3", {"continuous": False, "max_episode_steps": 40}, steps=60, episodes=4,
        pixels=PixelSettings(image_size=16, grayscale=True, frame_stack=2), random_play=RandomPlay(repeat=4),
    )
