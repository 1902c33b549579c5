"""What the package needs to know about a gymnasium environment, and refusing what it cannot learn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from bco_lightning.errors import ConfigError, SettingError


@dataclass(frozen=True)
class EnvSpec:
    """The shapes that flow from the environment into the networks.

    Attributes:
        env_id: gymnasium id.
        obs_dim: size of the flat `Box` observation.
        discrete: True for `Discrete` actions (classification), False for `Box` (regression).
        action_dim: number of actions (discrete) or action dimensions (continuous).
        action_low / action_high: `(action_dim,)` bounds of a `Box` action space, else None.
        max_episode_steps: the time limit, or None when the environment has none.
        obs_shape: frames only: one observation's shape, `(frame_stack, H, W[, 3])` uint8, with
            `obs_dim` its number of elements; None for a flat state vector of `obs_dim`.
    """

    env_id: str
    obs_dim: int
    discrete: bool
    action_dim: int
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None
    max_episode_steps: int | None = None
    obs_shape: tuple[int, ...] | None = None

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """One observation's shape: `(obs_dim,)` for state vectors, the frame stack's for pixels."""
        return self.obs_shape if self.obs_shape is not None else (self.obs_dim,)


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None, **extra: Any) -> gym.Env:
    """`gym.make` that turns an unknown id or bad kwargs into a `ConfigError`."""
    try:
        return gym.make(env_id, **(env_kwargs or {}), **extra)
    except gym.error.Error as error:
        raise ConfigError(f"cannot make environment {env_id!r}: {error}") from None
    except TypeError as error:
        raise SettingError(f"bad `env_kwargs` for {env_id!r}: {error}") from None
    except ImportError as error:
        raise ConfigError(
            f"environment {env_id!r} needs a package that is not installed ({error}); "
            "try pip install 'bco-lightning[mujoco]' or '[box2d]'"
        ) from None


def make_vector_env(env_id: str, env_kwargs: dict[str, Any] | None, num_envs: int, async_envs: bool = False) -> gym.vector.VectorEnv:
    """gymnasium's own vectorised implementation where the environment registers one (CartPole
    steps every sub-env in one numpy call), else sub-envs stepped in this process, or with
    `async_envs` each in a worker process (`vector_of`).

    Worker processes (`AsyncVectorEnv`) were measured slower than in-process stepping for MuJoCo on
    2 cores (`benchmarks/throughput.md`): a process hop costs more than a HalfCheetah step.
    """
    try:
        native = gym.spec(env_id).vector_entry_point is not None
    except gym.error.Error:
        native = False  # make_env below says what is wrong with the id
    if native:  # one numpy call steps them all: faster than any worker process
        try:
            return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **(env_kwargs or {}))
        except TypeError as error:
            raise SettingError(f"bad `env_kwargs` for {env_id!r}: {error}") from None
    return vector_of(lambda: make_env(env_id, env_kwargs), num_envs, async_envs)


def vector_of(make: Callable[[], gym.Env], num_envs: int, async_envs: bool) -> gym.vector.VectorEnv:
    """`num_envs` copies of `make()` stepped in this process, or with `async_envs` one worker process
    each (gymnasium's `AsyncVectorEnv`, observations in shared memory). Both give the same
    transitions for the same seeds; workers pay where one step costs more than a process hop, as
    CarRacing's (about 7 ms on a 2-core laptop-class CPU), on a machine with cores to spare."""
    if async_envs:
        return gym.vector.AsyncVectorEnv([make] * num_envs, shared_memory=True)
    return gym.vector.SyncVectorEnv([make] * num_envs)


def describe_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> EnvSpec:
    """Read the spaces of `env_id`, refusing those the networks cannot consume."""
    env = make_env(env_id, env_kwargs)
    try:
        return spec_from_spaces(env_id, env.observation_space, env.action_space, env.spec.max_episode_steps if env.spec else None)
    finally:
        env.close()


def spec_from_spaces(
    env_id: str, obs_space: gym.Space, action_space: gym.Space, max_episode_steps: int | None = None, frames: bool = False
) -> EnvSpec:
    """The spec of a flat Box observation, or with `frames` of a uint8 frame-stack Box (`make_pixel_env`)."""
    obs_shape: tuple[int, ...] | None = None
    if frames:
        if not isinstance(obs_space, gym.spaces.Box) or obs_space.dtype != np.uint8 or len(obs_space.shape) not in (3, 4):
            raise ConfigError(f"{env_id}: unsupported frame observation space {obs_space}; expected uint8 (stack, H, W[, 3])")
        obs_shape = tuple(int(n) for n in obs_space.shape)
        obs_dim = int(np.prod(obs_shape))
    elif not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        hint = " (learn from its frames with --data.observation pixels)" if len(getattr(obs_space, "shape", None) or ()) in (2, 3) else ""
        raise ConfigError(f"{env_id}: unsupported observation space {obs_space}; expected a flat (1-d) Box{hint}")
    else:
        obs_dim = int(obs_space.shape[0])
    if isinstance(action_space, gym.spaces.Discrete):
        if int(action_space.start) != 0:
            raise ConfigError(f"{env_id}: Discrete action space must start at 0, got start={action_space.start}")
        return EnvSpec(env_id, obs_dim, True, int(action_space.n), max_episode_steps=max_episode_steps, obs_shape=obs_shape)
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        low = tuple(float(x) for x in action_space.low)
        high = tuple(float(x) for x in action_space.high)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ConfigError(f"{env_id}: Box action space must be bounded, got {action_space}")
        return EnvSpec(env_id, obs_dim, False, int(action_space.shape[0]), low, high, max_episode_steps, obs_shape)
    raise ConfigError(
        f"{env_id}: unsupported action space {action_space}; expected Discrete or a 1-d bounded Box"
    )
