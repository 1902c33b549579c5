"""Demonstrators for `bco record`: scripted controllers, and recording their state-only episodes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from bco_lightning.data.expert_file import ExpertDemonstrations
from bco_lightning.envs import make_env
from bco_lightning.errors import ConfigError, SettingError

Controller = Callable[[np.ndarray], Any]
"""Maps one observation to one environment action."""


def cartpole_controller(obs: np.ndarray) -> int:
    """Linear state feedback on pole angle, angular velocity, cart position and velocity.

    Pushes toward the side the pole falls to, damped by the pole's angular velocity and nudged back
    toward the centre; balances for the full 500 steps from every start gymnasium draws.
    """
    x, x_dot, theta, theta_dot = obs
    return int(theta + 0.5 * theta_dot + 0.05 * x + 0.1 * x_dot > 0)


def mountain_car_controller(obs: np.ndarray) -> int:
    """Push in the direction of motion: pumps energy until the car clears the hill."""
    _, velocity = obs
    return 2 if velocity >= 0 else 0


def acrobot_controller(obs: np.ndarray) -> int:
    """Torque along the second joint's angular velocity: pumps energy into the swing until the tip
    clears the bar (about 80 steps; the task counts as solved above a return of -100)."""
    return 2 if obs[5] > 0 else 0


def mountain_car_continuous_controller(obs: np.ndarray) -> np.ndarray:
    _, velocity = obs
    return np.array([1.0 if velocity >= 0 else -1.0], dtype=np.float32)


def pendulum_controller(obs: np.ndarray) -> np.ndarray:
    """Energy-shaping swing-up (full torque along the velocity while energy is short), then PD
    control near the top."""
    cos_theta, sin_theta, theta_dot = obs
    theta = np.arctan2(sin_theta, cos_theta)
    if cos_theta > 0.85:
        torque = -10.0 * theta - 2.0 * theta_dot
    else:
        # g = 10, m = l = 1: energy relative to upright rest is 0.5 w^2 + 10 (cos - 1)
        energy = 0.5 * theta_dot**2 + 10.0 * (cos_theta - 1.0)
        torque = -2.0 * energy * np.sign(theta_dot if theta_dot != 0 else 1.0)
    return np.array([np.clip(torque, -2.0, 2.0)], dtype=np.float32)


def inverted_pendulum_controller(obs: np.ndarray) -> np.ndarray:
    """Linear state feedback on cart position, pole angle and their velocities (MuJoCo)."""
    x, theta, x_dot, theta_dot = obs
    return np.clip(np.array([0.5 * x + 5.0 * theta + 0.5 * x_dot + theta_dot], dtype=np.float32), -3.0, 3.0)


REACHER_LINKS = (0.1, 0.11)


def reacher_controller(obs: np.ndarray) -> np.ndarray:
    """Jacobian-transpose PD control of the fingertip toward the target (MuJoCo Reacher)."""
    cos1, cos2, sin1, sin2 = obs[0:4]
    joint_velocity = obs[6:8]
    error = -obs[8:10]  # obs holds fingertip - target
    l1, l2 = REACHER_LINKS
    cos12, sin12 = cos1 * cos2 - sin1 * sin2, sin1 * cos2 + cos1 * sin2
    jacobian = np.array([[-l1 * sin1 - l2 * sin12, -l2 * sin12], [l1 * cos1 + l2 * cos12, l2 * cos12]])
    torque = 30.0 * jacobian.T @ error - 0.1 * joint_velocity
    return np.clip(torque, -1.0, 1.0).astype(np.float32)


def lunar_lander_controller(continuous: bool) -> Controller:
    """gymnasium's own heuristic lander (`lunar_lander.heuristic`), in its discrete or continuous form."""
    from types import SimpleNamespace

    from gymnasium.envs.box2d.lunar_lander import heuristic

    # The heuristic reads only `env.unwrapped.continuous` from the env it is given.
    stub = SimpleNamespace(unwrapped=SimpleNamespace(continuous=continuous))

    def act(obs: np.ndarray) -> Any:
        action = heuristic(stub, obs)
        return np.asarray(action, dtype=np.float32) if continuous else int(action)

    return act


class CarRacingController:
    """Pure pursuit along CarRacing-v3's track, read from the simulator (privileged state): steer
    toward the track point `lookahead` tiles ahead of the nearest one, and hold a speed that drops
    where the track bends further ahead. The recording keeps only frames; this state never reaches
    a file. Recorded with seeds 0-9 (`bco_lightning/demonstrations/CarRacing-v3*-pixels.npz`):
    continuous 914.0 +- 13.4; discrete (`{"continuous": false}`: steer 0.6, gas 0.2, brake 0.8
    only, so slower and coarser) 815.5 +- 90.4.
    """

    def __init__(self, continuous: bool, lookahead: int = 6, gain: float = 1.5, target_speed: float = 90.0) -> None:
        self.continuous = continuous
        self.lookahead = lookahead
        self.gain = gain
        self.target_speed = target_speed
        self.env: Any = None
        self.track = np.zeros((0, 2))

    def bind(self, env: Any) -> None:
        """Called after every reset: a new episode has a new track."""
        self.env = env.unwrapped
        self.track = np.asarray([(tile[2], tile[3]) for tile in self.env.track])

    def _bearing(self, target: np.ndarray, position: np.ndarray, forward: np.ndarray) -> float:
        """Angle from the car's heading to `target`, positive to the left."""
        d = target - position
        return float(np.arctan2(forward[0] * d[1] - forward[1] * d[0], forward @ d))

    def __call__(self, obs: np.ndarray) -> Any:
        car = self.env.car
        position = np.asarray(car.hull.position)
        forward = np.asarray([-np.sin(car.hull.angle), np.cos(car.hull.angle)])
        nearest = int(np.argmin(((self.track - position) ** 2).sum(axis=1)))
        error = self._bearing(self.track[(nearest + self.lookahead) % len(self.track)], position, forward)
        bend = self._bearing(self.track[(nearest + 3 * self.lookahead) % len(self.track)], position, forward)
        speed = float(np.hypot(*car.hull.linearVelocity))
        wanted = self.target_speed * (1.0 - min(0.6, abs(bend)))
        if self.continuous:
            gas = 1.0 if speed < wanted else 0.0
            brake = 0.4 if speed > wanted + 10 else 0.0
            return np.asarray([np.clip(-self.gain * error, -1.0, 1.0), gas, brake], dtype=np.float32)
        if error > 0.15:
            return 2  # steer left
        if error < -0.15:
            return 1  # steer right
        if speed < wanted:
            return 3
        return 4 if speed > wanted + 10 else 0


SCRIPTED_CONTROLLERS: dict[str, Controller] = {
    "CartPole-v1": cartpole_controller,
    "MountainCar-v0": mountain_car_controller,
    "Acrobot-v1": acrobot_controller,
    "MountainCarContinuous-v0": mountain_car_continuous_controller,
    "Pendulum-v1": pendulum_controller,
    "InvertedPendulum-v5": inverted_pendulum_controller,
    "Reacher-v5": reacher_controller,
}


def scripted_controller(env_id: str, env_kwargs: dict[str, Any] | None = None) -> Controller:
    if env_id == "LunarLander-v3":
        return lunar_lander_controller(bool((env_kwargs or {}).get("continuous", False)))
    if env_id == "CarRacing-v3":
        return CarRacingController(bool((env_kwargs or {}).get("continuous", True)))
    try:
        return SCRIPTED_CONTROLLERS[env_id]
    except KeyError:
        known = ", ".join(sorted([*SCRIPTED_CONTROLLERS, "LunarLander-v3", "CarRacing-v3"]))
        raise ConfigError(f"no scripted controller for {env_id!r}; scripted controllers exist for: {known}") from None


SB3_ALGORITHMS = ("sac", "td3", "ppo", "a2c", "ddpg", "dqn")


def sb3_controller(model_path: str, algo: str) -> Controller:
    """A saved Stable-Baselines3 model acting deterministically (needs the `sb3` extra)."""
    if algo not in SB3_ALGORITHMS:
        raise SettingError(f"`algo` {algo!r} is not a Stable-Baselines3 algorithm; expected one of {', '.join(SB3_ALGORITHMS)}")
    try:
        import stable_baselines3
    except ImportError:
        raise ConfigError("recording a Stable-Baselines3 model needs it: pip install 'bco-lightning[sb3]'") from None
    try:
        model = getattr(stable_baselines3, algo.upper()).load(model_path, device="cpu")
    except Exception as error:  # SB3 raises several types for a missing or foreign zip
        raise ConfigError(f"{model_path}: not a loadable {algo.upper()} model ({type(error).__name__}: {error})") from None

    def act(obs: np.ndarray) -> Any:
        return model.predict(obs, deterministic=True)[0]

    return act


class KickedController:
    """`controller`, whose simulator is kicked after every `every`-th action: a uniform random
    change of at most `size[i]` is added to component i of `env.unwrapped.state`, as a hand nudging
    a filmed cart-pole would. Kicks come at steps every // 2, every // 2 + every, ... so an episode
    starts undisturbed.

    Why: a controller that holds its system in a narrow band of states films no recoveries, and a
    policy cloned from such frames meets states it never saw after its first mistake. The actions
    kept beside the frames stay the controller's own; BCO never reads them.
    """

    def __init__(self, controller: Controller, every: int, size: list[float], seed: int) -> None:
        if every < 1:
            raise SettingError(f"`kick_every` must be >= 1 to kick, got {every}")
        if not size or min(size) < 0:
            raise SettingError(f"`kick_size` must list one largest kick >= 0 per state component, got {size}")
        self.controller, self.every, self.size = controller, every, np.asarray(size, dtype=np.float64)
        self.rng = np.random.default_rng(seed)
        self.simulator: Any = None
        self.steps = 0

    def bind(self, env: Any) -> None:
        state = getattr(env.unwrapped, "state", None)
        if state is None or np.ndim(state) != 1:
            raise SettingError(
                f"kicks change `env.unwrapped.state`, which {env.spec.id if env.spec else env} does not have as a vector; "
                "kicks work on classic-control environments (CartPole, Pendulum, Acrobot, MountainCar)"
            )
        if len(state) != len(self.size):
            raise SettingError(f"`kick_size` has {len(self.size)} entries but the simulator's state has {len(state)}: give one per component")
        self.simulator, self.steps = env.unwrapped, 0
        if hasattr(self.controller, "bind"):
            self.controller.bind(env)

    def __call__(self, obs: np.ndarray) -> Any:
        action = self.controller(obs)  # what the controller does about what it was shown
        self.steps += 1
        if self.steps % self.every == self.every // 2:
            state = np.array(self.simulator.state, dtype=np.float64)
            self.simulator.state = state + self.rng.uniform(-self.size, self.size)
        return action


@dataclass(frozen=True)
class Episode:
    """One played episode: `observations` holds the first and the last, `actions` one per step;
    `frames`, when recorded, one camera frame per observation."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    total_reward: float
    terminated: bool
    seed: int
    frames: np.ndarray | None = None


@dataclass(frozen=True)
class FrameRecording:
    """Record what the environment's camera shows (`render()`), resized with `resize_frames` to
    `image_size` x `image_size`, grayscale or RGB, instead of its state vectors."""

    image_size: int = 64
    grayscale: bool = False


def play_episodes(
    env_id: str,
    controller: Controller,
    episodes: int,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
    frames: FrameRecording | None = None,
) -> Iterator[Episode]:
    """Run `controller` for `episodes` seeded episodes (episode i resets with seed + i).

    The controller always acts on the privileged state; with `frames`, each episode also carries
    the frame of every observation, which is all a pixel recording keeps.
    """
    if episodes < 1:
        raise SettingError(f"`episodes` must be >= 1, got {episodes}")
    if frames is None:
        env = make_env(env_id, env_kwargs)
    else:
        from bco_lightning.pixels import make_camera_env

        env = make_camera_env(env_id, env_kwargs)
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            if hasattr(controller, "bind"):
                controller.bind(env)  # a controller that reads the simulator's state
            observations, actions, rewards, total = [obs], [], [], 0.0
            shown = [] if frames is None else [_frame(env, env_id, frames, obs)]
            terminated = truncated = False
            while not (terminated or truncated):
                action = controller(obs)
                obs, reward, terminated, truncated, _ = env.step(action)
                observations.append(obs)
                actions.append(action)
                rewards.append(float(reward))
                total += float(reward)
                if frames is not None:
                    shown.append(_frame(env, env_id, frames, obs))
            yield Episode(
                np.asarray(observations), np.asarray(actions), np.asarray(rewards), total, bool(terminated), seed + episode,
                np.concatenate(shown) if shown else None,
            )
    finally:
        env.close()


def _frame(env: Any, env_id: str, frames: FrameRecording, obs: Any) -> np.ndarray:
    """The current frame as `(1, S, S[, 3])` uint8, through the package's one resize: the observation
    itself where it already is an image (CarRacing's 96x96 view), else `render()`."""
    from bco_lightning.data.frames import resize_frames
    from bco_lightning.pixels import is_image_space
    from bco_lightning.video import render_frame

    frame = np.asarray(obs, dtype=np.uint8) if is_image_space(env.observation_space) else render_frame(env, env_id)
    return resize_frames(frame[None], frames.image_size, frames.grayscale)


def record_episodes(
    env_id: str,
    controller: Controller,
    episodes: int,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
    frames: FrameRecording | None = None,
) -> ExpertDemonstrations:
    """The state-only demonstrations of `play_episodes`, with returns and diagnostic actions; with
    `frames`, the observations are the camera frames (uint8) and no state vector is kept."""
    played = list(play_episodes(env_id, controller, episodes, seed, env_kwargs, frames))
    if frames is None:
        observations = np.concatenate([e.observations for e in played])
        if not (observations.dtype == np.uint8 and observations.ndim >= 3):  # an env that observes frames keeps them
            observations = observations.astype(np.float32)
    else:
        observations = np.concatenate([e.frames for e in played if e.frames is not None])
    return ExpertDemonstrations(
        observations=observations,
        episode_lengths=np.asarray([len(e.observations) for e in played], dtype=np.int64),
        episode_returns=np.asarray([e.total_reward for e in played], dtype=np.float64),
        env_id=env_id,
        actions=np.concatenate([e.actions for e in played]),
    )
