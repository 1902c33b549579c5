"""Collecting transitions and evaluation episodes on gymnasium vector envs, with batched policy calls.

gymnasium 1.x vector envs autoreset on the *next* step: the step after an episode ends returns the
reset observation and ignores the action. Those steps are not transitions and are dropped here, so
no `(s, s')` pair ever spans two episodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from bco_lightning.envs import EnvSpec, make_vector_env, vector_of
from bco_lightning.errors import RolloutError, SettingError

if TYPE_CHECKING:
    from bco_lightning.pixels import PixelSettings

Policy = Callable[[np.ndarray], np.ndarray]
"""Maps a batch of observations `(n, obs_dim)` float32 to a batch of environment actions."""


@dataclass(frozen=True)
class Transitions:
    """Interaction transitions `(s, a, s')`, each observation stored once and paired by index.

    Transition i goes from `observations[obs_index[i]]` by `actions[i]` to
    `observations[next_index[i]]`. Storing s and s' by index instead of copying them halves the
    memory of large interaction sets (issue: 1e7 transitions must train in one process).

    Attributes:
        observations: `(M, obs_dim)` float32, every observation the rollouts met; for pixel
            environments `(M, H, W[, 3])` uint8, every frame stored once.
        actions: `(N,)` int64 (discrete) or `(N, action_dim)` float32 (continuous) actions a.
        obs_index: `(N,)` int64 row of each s in `observations`.
        next_index: `(N,)` int64 row of each s' in `observations`.
        previous_row: frames only, `(M,)` int64: the row of each frame's previous frame in its
            episode (itself at an episode's start), from which `stack_index` gathers the stack an
            observation was; None for state vectors.
    """

    observations: np.ndarray
    actions: np.ndarray
    obs_index: np.ndarray
    next_index: np.ndarray
    previous_row: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.actions.shape[0]
        if self.obs_index.shape != (n,) or self.next_index.shape != (n,):
            raise ValueError(
                f"transitions disagree in length: actions {self.actions.shape}, "
                f"obs_index {self.obs_index.shape}, next_index {self.next_index.shape}"
            )
        rows = self.observations.shape[0]
        for name, index in (("obs_index", self.obs_index), ("next_index", self.next_index)):
            if n and (index.min() < 0 or index.max() >= rows):
                raise ValueError(f"{name} points outside the {rows} stored observations")
        if self.previous_row is not None and self.previous_row.shape != (rows,):
            raise ValueError(f"previous_row must have one entry per stored frame ({rows}), got shape {self.previous_row.shape}")

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def states(self) -> np.ndarray:
        """`(N, obs_dim)` s of every transition (a copy)."""
        return self.observations[self.obs_index]

    @property
    def next_states(self) -> np.ndarray:
        """`(N, obs_dim)` s' of every transition (a copy)."""
        return self.observations[self.next_index]

    @staticmethod
    def concatenate(parts: list[Transitions]) -> Transitions:
        offsets = np.cumsum([0] + [len(p.observations) for p in parts[:-1]])
        frames = [p.previous_row is not None for p in parts]
        if any(frames) and not all(frames):
            raise ValueError("cannot concatenate frame transitions with state-vector transitions")
        previous_row = None
        if all(frames):
            previous_row = np.concatenate([p.previous_row + offset for p, offset in zip(parts, offsets)])  # type: ignore[operator]
        return Transitions(
            np.concatenate([p.observations for p in parts]),
            np.concatenate([p.actions for p in parts]),
            np.concatenate([p.obs_index + offset for p, offset in zip(parts, offsets)]),
            np.concatenate([p.next_index + offset for p, offset in zip(parts, offsets)]),
            previous_row,
        )


@dataclass(frozen=True)
class RandomPlay:
    """How the pre-demonstration interaction plays at random. The defaults are BCO's uniform random
    actions; the others exist because uniform play does not go where a demonstrator goes in every
    environment (a car given uniform gas and brake at once stands still, so its IDM never sees it drive).

    Attributes:
        repeat: hold each sampled action for this many steps (sticky actions), so that random
            play travels instead of dithering.
        low / high: Box actions only: sample each dimension uniformly from `[low, high]` (within
            the action space) instead of the whole space.
        probabilities: Discrete actions only: sample action i with `probabilities[i]` instead of uniformly.
        zero_probability: Box actions only: hold dimension i at 0 with `zero_probability[i]` (a
            released pedal) instead of drawing it, so that play can brake hard now and then
            without braking on average.
    """

    repeat: int = 1
    low: list[float] | None = None
    high: list[float] | None = None
    probabilities: list[float] | None = None
    zero_probability: list[float] | None = None

    @property
    def is_uniform(self) -> bool:
        return self.low is None and self.high is None and self.probabilities is None and self.zero_probability is None

    def check(self, spec: EnvSpec) -> None:
        """Refuse settings that `spec`'s action space cannot play, in one line."""
        where = f"{spec.env_id}'s {'Discrete' if spec.discrete else 'Box'} actions"
        if self.repeat < 1:
            raise SettingError(f"`random_play` repeat must be >= 1, got {self.repeat}", owner="BCODataModule")
        if spec.discrete and (self.low is not None or self.high is not None):
            raise SettingError(f"`random_play` low/high are for Box actions, not {where}: give probabilities", owner="BCODataModule")
        if not spec.discrete and self.probabilities is not None:
            raise SettingError(f"`random_play` probabilities are for Discrete actions, not {where}: give low/high", owner="BCODataModule")
        if spec.discrete and self.zero_probability is not None:
            raise SettingError(f"`random_play` zero_probability is for Box actions, not {where}: give probabilities", owner="BCODataModule")
        if self.probabilities is not None:
            p = np.asarray(self.probabilities, dtype=np.float64)
            if p.shape != (spec.action_dim,) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
                raise SettingError(
                    f"`random_play` probabilities {self.probabilities} must be {spec.action_dim} non-negative numbers summing to 1, one per action of {where}",
                    owner="BCODataModule",
                )
        if not spec.discrete and not (self.low is None and self.high is None):
            space_low, space_high = np.asarray(spec.action_low), np.asarray(spec.action_high)
            low = space_low if self.low is None else np.asarray(self.low, dtype=np.float64)
            high = space_high if self.high is None else np.asarray(self.high, dtype=np.float64)
            if low.shape != (spec.action_dim,) or high.shape != (spec.action_dim,):
                raise SettingError(f"`random_play` low and high need {spec.action_dim} entries each, one per dimension of {where}", owner="BCODataModule")
            if np.any(low > high) or np.any(low < space_low) or np.any(high > space_high):
                raise SettingError(
                    f"`random_play` low {low.tolist()} and high {high.tolist()} must satisfy low <= high within the bounds of {where}, "
                    f"{space_low.tolist()} to {space_high.tolist()}",
                    owner="BCODataModule",
                )
        if self.zero_probability is not None:
            p = np.asarray(self.zero_probability, dtype=np.float64)
            zero_inside = (np.asarray(spec.action_low) <= 0) & (np.asarray(spec.action_high) >= 0)
            if p.shape != (spec.action_dim,) or np.any(p < 0) or np.any(p > 1) or np.any((p > 0) & ~zero_inside):
                raise SettingError(
                    f"`random_play` zero_probability {self.zero_probability} must hold one probability in [0, 1] per dimension of {where} "
                    f"({spec.action_dim}), above 0 only where 0 is a valid action",
                    owner="BCODataModule",
                )


def random_policy(action_space: Any, play: RandomPlay | None = None, seed: int | None = None) -> Policy:
    """Random actions for a batched action space: uniform from the (seeded) space itself, or as
    `play` says, from a numpy generator seeded with `seed`."""
    play = play or RandomPlay()
    if play.is_uniform:
        sample = action_space.sample
    else:
        rng = np.random.default_rng(seed)
        batch = action_space.shape[0]
        if isinstance(action_space, gym.spaces.MultiDiscrete):
            start = action_space.start
            weights = np.asarray(play.probabilities, dtype=np.float64)
            weights /= weights.sum()  # `check` allows a rounding error that numpy's choice would refuse

            def sample() -> np.ndarray:
                return (start + rng.choice(len(weights), size=batch, p=weights)).astype(action_space.dtype)

        else:
            low = action_space.low if play.low is None else np.broadcast_to(np.asarray(play.low), action_space.shape)
            high = action_space.high if play.high is None else np.broadcast_to(np.asarray(play.high), action_space.shape)
            zero_probability = None if play.zero_probability is None else np.broadcast_to(np.asarray(play.zero_probability), action_space.shape)

            def sample() -> np.ndarray:
                values = rng.uniform(low, high)
                if zero_probability is not None:  # drawn only when set, so other plays keep their streams
                    values[rng.random(values.shape) < zero_probability] = 0.0
                return values.astype(action_space.dtype)

    held: np.ndarray | None = None
    steps = 0

    def act(observations: np.ndarray) -> np.ndarray:
        nonlocal held, steps
        if held is None or steps % play.repeat == 0:
            held = sample()
        steps += 1
        return held

    return act


def _vector_env(
    env_id: str, env_kwargs: dict[str, Any] | None, num_envs: int, pixels: PixelSettings | None, async_envs: bool
) -> gym.vector.VectorEnv:
    """State observations (`make_vector_env`), or sub-envs that observe frame stacks (`make_pixel_env`);
    `async_envs` steps each sub-env in a worker process."""
    if pixels is None:
        return make_vector_env(env_id, env_kwargs, num_envs, async_envs)
    from bco_lightning.pixels import make_pixel_env

    return vector_of(lambda: make_pixel_env(env_id, env_kwargs, pixels), num_envs, async_envs)


def _checked(observations: np.ndarray, env_id: str) -> np.ndarray:
    observations = np.asarray(observations, dtype=np.float32)
    if not np.all(np.isfinite(observations)):
        raise RolloutError(f"{env_id} returned a non-finite observation (NaN or inf) during a rollout")
    return observations


def collect_transitions(
    env_id: str,
    env_kwargs: dict[str, Any] | None,
    num_steps: int,
    seed: int,
    policy: Policy | None = None,
    num_envs: int = 8,
    progress: str | None = None,
    pixels: PixelSettings | None = None,
    random_play: RandomPlay | None = None,
    async_envs: bool = False,
) -> Transitions:
    """Step `num_envs` sub-envs until `num_steps` valid transitions exist; `policy=None` plays at
    random (uniformly, or as `random_play` says).

    Every environment step is one interaction; the result holds exactly `num_steps` transitions.
    `progress` names a tqdm bar on stderr (None: no bar). With `pixels`, the sub-envs observe stacks
    of frames (`make_pixel_env`); the policy acts on those stacks, and each frame is stored once
    (the newest of each stack) with its `previous_row` link. `async_envs` steps each sub-env in a
    worker process (the same transitions, see `vector_of`).
    """
    envs = _vector_env(env_id, env_kwargs, num_envs, pixels, async_envs)
    envs.action_space.seed(seed)
    act = policy or random_policy(envs.action_space, random_play, seed)
    # Row t * num_envs + e of the stacked steps holds sub-env e's observation after t steps, so
    # a transition (t, e) pairs that row with the one num_envs rows later.
    steps: list[np.ndarray] = []
    previous_parts: list[np.ndarray] = []
    action_parts, index_parts = [], []
    collected = 0
    bar = tqdm(total=num_steps, desc=progress, unit="step", unit_scale=True, leave=False, disable=progress is None)
    try:
        observations, _ = envs.reset(seed=seed)
        current = _checked(observations, env_id) if pixels is None else observations
        steps.append(current if pixels is None else observations[:, -1])
        previous_parts.append(np.arange(num_envs, dtype=np.int64))  # every sub-env starts an episode
        just_reset = np.zeros(num_envs, dtype=bool)
        while collected < num_steps:
            actions = np.asarray(act(current))
            next_observations, _, terminated, truncated, _ = envs.step(actions)
            valid = np.flatnonzero(~just_reset)
            index_parts.append((len(steps) - 1) * num_envs + valid)
            action_parts.append(actions[valid])
            rows = len(steps) * num_envs + np.arange(num_envs, dtype=np.int64)
            # after an episode ended, the autoreset step's observation starts a new one: no past
            previous_parts.append(np.where(just_reset, rows, rows - num_envs))
            current = _checked(next_observations, env_id) if pixels is None else next_observations
            steps.append(current if pixels is None else next_observations[:, -1])
            collected += len(valid)
            bar.update(min(len(valid), num_steps - bar.n))
            just_reset = np.logical_or(terminated, truncated)
    except RolloutError:
        raise
    except Exception as error:
        raise RolloutError(f"{env_id} raised during a rollout: {type(error).__name__}: {error}") from error
    finally:
        bar.close()
        envs.close()
    actions = np.concatenate(action_parts)[:num_steps]
    if np.issubdtype(actions.dtype, np.integer):
        actions = actions.astype(np.int64)
    else:
        actions = actions.astype(np.float32)
    obs_index = np.concatenate(index_parts)[:num_steps].astype(np.int64)
    previous_row = None if pixels is None else np.concatenate(previous_parts)
    return Transitions(np.concatenate(steps), actions, obs_index, obs_index + num_envs, previous_row)


@dataclass(frozen=True)
class EvaluationResult:
    """Returns and lengths of seeded evaluation episodes, in sub-env order."""

    returns: np.ndarray
    lengths: np.ndarray

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns))


def evaluate_policy(
    env_id: str,
    env_kwargs: dict[str, Any] | None,
    policy: Policy | None,
    episodes: int,
    seed: int,
    num_envs: int = 8,
    pixels: PixelSettings | None = None,
    async_envs: bool = False,
) -> EvaluationResult:
    """Run exactly `episodes` episodes; `policy=None` evaluates uniform random actions. With
    `pixels` the policy sees uint8 frame stacks (`make_pixel_env`) instead of state vectors;
    `async_envs` steps each sub-env in a worker process.

    Each sub-env has a fixed quota of episodes, fixed before the run, so that short episodes do not
    crowd out long ones (counting the first N to finish would bias the mean toward short episodes).
    """
    num_envs = max(1, min(num_envs, episodes))
    quota = np.full(num_envs, episodes // num_envs)
    quota[: episodes % num_envs] += 1
    envs = _vector_env(env_id, env_kwargs, num_envs, pixels, async_envs)
    envs.action_space.seed(seed)
    act = policy or random_policy(envs.action_space)
    returns: list[list[float]] = [[] for _ in range(num_envs)]
    lengths: list[list[int]] = [[] for _ in range(num_envs)]
    running_return = np.zeros(num_envs)
    running_length = np.zeros(num_envs, dtype=np.int64)
    try:
        observations, _ = envs.reset(seed=seed)
        just_reset = np.zeros(num_envs, dtype=bool)
        done_count = np.zeros(num_envs, dtype=np.int64)
        while np.any(done_count < quota):
            actions = np.asarray(act(_checked(observations, env_id) if pixels is None else observations))
            observations, rewards, terminated, truncated, _ = envs.step(actions)
            counting = ~just_reset & (done_count < quota)
            running_return += np.where(counting, rewards, 0.0)
            running_length += counting
            just_reset = np.logical_or(terminated, truncated)
            for i in np.flatnonzero(just_reset & counting):
                returns[i].append(float(running_return[i]))
                lengths[i].append(int(running_length[i]))
                done_count[i] += 1
            running_return[just_reset] = 0.0
            running_length[just_reset] = 0
    except RolloutError:
        raise
    except Exception as error:
        raise RolloutError(f"{env_id} raised during evaluation: {type(error).__name__}: {error}") from error
    finally:
        envs.close()
    return EvaluationResult(
        returns=np.array([r for per_env in returns for r in per_env]),
        lengths=np.array([n for per_env in lengths for n in per_env]),
    )
