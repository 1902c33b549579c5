"""Pixel environments: frames the size the networks take, stacks that never span two episodes, and
the same stacks as the ones gathered from a recorded frame file by index."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from bco_lightning.data.frames import resize_frames, stack_rows
from bco_lightning.demonstrators import FrameRecording, cartpole_controller, record_episodes
from bco_lightning.errors import RenderError, SettingError
from bco_lightning.pixels import PixelSettings, make_pixel_env
from bco_lightning.video import make_rendering_env, render_frame


def test_observation_is_the_resized_render_of_the_same_state() -> None:
    pixels = PixelSettings(image_size=16, grayscale=True, frame_stack=3)
    env = make_pixel_env("CartPole-v1", None, pixels)
    reference = make_rendering_env("CartPole-v1")
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
