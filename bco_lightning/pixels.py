"""Environments whose observation is what their camera shows: resized frames, stacked over time.

Built from gymnasium's own wrappers: `AddRenderObservation(render_only=True)` turns a state
environment's observation into its `render()` frame (an environment whose observation already is
an image, such as CarRacing-v3, keeps its own), `TransformObservation` sends every frame through
`resize_frames` (the one resize an expert file's frames go through too), and
`FrameStackObservation(padding_type="reset")` stacks the last `frame_stack` frames, repeating an
episode's first frame before it, so that a stack never spans two episodes; `stack_rows` gathers
the same stacks from stored frames by index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import AddRenderObservation, FrameStackObservation, TransformObservation

from bco_lightning.cameras import CAMERAS, Camera
from bco_lightning.data.frames import resize_frames
from bco_lightning.envs import EnvSpec, spec_from_spaces
from bco_lightning.errors import SettingError
from bco_lightning.video import make_rendering_env, render_frame


@dataclass(frozen=True)
class PixelSettings:
    """How frames become observations.

    Attributes:
        image_size: frames are resized to `image_size` x `image_size`.
        grayscale: one channel (ITU-R 601 luma) instead of RGB.
        frame_stack: observations are the last this many frames, so that velocity is visible.
    """

    image_size: int = 64
    grayscale: bool = True
    frame_stack: int = 2

    def __post_init__(self) -> None:
        if self.image_size < 1 or self.frame_stack < 1:
            raise SettingError(f"`image_size` and `frame_stack` must be >= 1, got {self.image_size} and {self.frame_stack}")

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """One frame: `(S, S)` gray or `(S, S, 3)` RGB."""
        size = self.image_size
        return (size, size) if self.grayscale else (size, size, 3)

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """One observation: `(frame_stack, *frame_shape)`."""
        return (self.frame_stack, *self.frame_shape)


def pixel_settings_for(obs_shape: tuple[int, ...] | None) -> PixelSettings | None:
    """The settings that make observations of `obs_shape` (`(stack, S, S[, 3])`), or None for a state vector."""
    if obs_shape is None or len(obs_shape) == 1:
        return None
    return PixelSettings(image_size=obs_shape[1], grayscale=len(obs_shape) == 3, frame_stack=obs_shape[0])


def is_image_space(space: gym.Space) -> bool:
    """An observation space that already is a camera frame: uint8 `(H, W, 3)` or `(H, W)`."""
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) in (2, 3)


# Simulators that draw the last action into their frame, by the attribute `render()` reads it from.
# A camera filming the real system would not see such an overlay, and it gives the action away:
# the IDM reads a_t off frame t+1 instead of the motion, and a policy reads a_{t-1} off frame t and
# copies it (causal confusion, de Haan et al. 2019). Pendulum-v1 draws its torque as an arrow.
ACTION_OVERLAYS: dict[str, str] = {"Pendulum-v1": "last_u"}


class HideActionOverlay(gym.Wrapper):
    """Renders the frame without the simulator's action overlay (`ACTION_OVERLAYS`)."""

    def __init__(self, env: gym.Env, attribute: str) -> None:
        super().__init__(env)
        self.attribute = attribute

    def render(self) -> Any:
        setattr(self.env.unwrapped, self.attribute, None)  # only render() reads it
        return self.env.render()


def make_camera_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """`make_rendering_env` whose frames show what a camera would: no action overlay, and sub-pixel
    motion where the simulator's renderer snaps to whole pixels (`cameras.CAMERAS`). Pixel
    observations and `bco record --observation pixels` both film through it."""
    env = make_rendering_env(env_id, env_kwargs)
    draw = CAMERAS.get(env_id)
    if draw is not None:
        env = Camera(env, draw)
    attribute = ACTION_OVERLAYS.get(env_id)
    return HideActionOverlay(env, attribute) if attribute else env


def make_pixel_env(env_id: str, env_kwargs: dict[str, Any] | None, pixels: PixelSettings) -> gym.Env:
    """`env_id` with observations of stacked, resized uint8 frames (`pixels.observation_shape`).

    Raises `RenderError` in one line when the environment cannot render `rgb_array` frames here,
    before any interaction is spent on it.
    """
    env = make_camera_env(env_id, env_kwargs)
    try:
        env.reset(seed=0)
        render_frame(env, env_id)  # refuse an environment without frames now, not mid-rollout
    except BaseException:
        env.close()
        raise
    if not is_image_space(env.observation_space):
        env = AddRenderObservation(env, render_only=True)

    def resize(frame: np.ndarray) -> np.ndarray:
        return resize_frames(np.asarray(frame, dtype=np.uint8)[None], pixels.image_size, pixels.grayscale)[0]

    frame_space = gym.spaces.Box(0, 255, pixels.frame_shape, np.uint8)
    env = TransformObservation(env, resize, frame_space)
    return FrameStackObservation(env, pixels.frame_stack, padding_type="reset")


def describe_pixel_env(env_id: str, env_kwargs: dict[str, Any] | None, pixels: PixelSettings) -> EnvSpec:
    """The spec of `env_id` observed through `make_pixel_env`: `obs_shape` is the frame stack's."""
    env = make_pixel_env(env_id, env_kwargs, pixels)
    try:
        limit = env.spec.max_episode_steps if env.spec else None
        return spec_from_spaces(env_id, env.observation_space, env.action_space, limit, frames=True)
    finally:
        env.close()
