"""Does random play drive the car? CarRacing's speed and track coverage under the pre-demonstration
interaction's random play (`RandomPlay`), uniform and as the CarRacing configs set it.

    python benchmarks/random_play.py          # writes benchmarks/random_play.md

An IDM learns what actions do only where its interaction went: if random play leaves the car
standing, it never sees gas or steering act on a moving car, and those are all the demonstrator does.
Each row plays 2 sub-envs for `--steps` steps from seed 0 and reads the simulator's car speed and
tiles visited (privileged state, used only here to measure).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import yaml

from bco_lightning.atomic import atomic_write
from bco_lightning.data.rollouts import RandomPlay, random_policy
from bco_lightning.demonstrators import CarRacingController
from bco_lightning.resources import resolve_config_path

ROOT = Path(__file__).resolve().parents[1]


def config_play(name: str) -> RandomPlay:
    """The random play a shipped config sets, read from the config itself so that the two cannot drift."""
    config = yaml.safe_load(resolve_config_path(name).read_text())
    return RandomPlay(**config["data"]["random_play"])


PLAYS: list[tuple[bool, RandomPlay, str]] = [
    (True, RandomPlay(), "uniform (BCO's default)"),
    (True, RandomPlay(repeat=8), "sticky only"),
    (True, config_play("carracing-pixels.yaml"), "carracing-pixels.yaml"),
    (True, RandomPlay(repeat=4, low=[-1.0, 0.3, 0.0], high=[1.0, 1.0, 0.4]), "brake to the demonstrator's 0.4 (notebook, 2026-12-06)"),
    (True, RandomPlay(repeat=4, low=[-1.0, 0.0, 0.2], high=[1.0, 1.0, 0.6], zero_probability=[0.0, 0.0, 0.8]), "brake released in 80% of draws (the same)"),
    (False, RandomPlay(), "uniform (BCO's default)"),
    (False, RandomPlay(repeat=8), "sticky only"),
    (False, config_play("carracing-discrete-pixels.yaml"), "carracing-discrete-pixels.yaml"),
]


def play(continuous: bool, random_play: RandomPlay, steps: int) -> tuple[float, float, float]:
    """(mean speed, share of steps faster than 5, mean tiles visited per sub-env)."""
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CarRacing-v3", continuous=continuous) for _ in range(2)])
    envs.action_space.seed(0)
    act = random_policy(envs.action_space, random_play, 0)
    observations, _ = envs.reset(seed=0)
    speeds = []
    for _ in range(steps):
        observations, *_ = envs.step(act(observations))
        speeds += [float(np.hypot(*env.unwrapped.car.hull.linearVelocity)) for env in envs.envs]
    tiles = float(np.mean([env.unwrapped.tile_visited_count for env in envs.envs]))
    envs.close()
    return float(np.mean(speeds)), float(np.mean(np.asarray(speeds) > 5)), tiles


def demonstrator(continuous: bool, steps: int) -> tuple[float, float, float]:
    """The same three figures for the scripted driver the shipped recordings come from (one env)."""
    env = gym.make("CarRacing-v3", continuous=continuous)
    controller = CarRacingController(continuous)
    observation, _ = env.reset(seed=0)
    controller.bind(env)
    speeds = []
    for _ in range(steps):
        observation, *_ = env.step(controller(observation))
        speeds.append(float(np.hypot(*env.unwrapped.car.hull.linearVelocity)))
    tiles = float(env.unwrapped.tile_visited_count)
    env.close()
    return float(np.mean(speeds)), float(np.mean(np.asarray(speeds) > 5)), tiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "random_play.md")
    args = parser.parse_args()
    lines = [
        "# Random play on CarRacing-v3: does the car drive?",
        "",
        f"`python benchmarks/random_play.py --steps {args.steps}`, {time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}.",
        "2 sub-envs from seed 0 (the demonstrator: 1); speed is the simulator's hull speed.",
        "",
        "| actions | random play | as in | mean speed | steps faster than 5 | tiles visited |",
        "|---|---|---|---:|---:|---:|",
    ]
    for continuous, random_play, where in PLAYS:
        speed, moving, tiles = play(continuous, random_play, args.steps)
        settings = {k: v for k, v in vars(random_play).items() if v is not None and not (k == "repeat" and v == 1)}
        lines.append(f"| {'Box' if continuous else 'Discrete'} | `{settings or 'uniform'}` | {where} | {speed:.1f} | {moving:.2f} | {tiles:.1f} |")
        print(lines[-1], flush=True)
    for continuous in (True, False):
        speed, moving, tiles = demonstrator(continuous, args.steps)
        lines.append(f"| {'Box' if continuous else 'Discrete'} | the scripted demonstrator | the shipped recordings | {speed:.1f} | {moving:.2f} | {tiles:.1f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    atomic_write(args.output, lambda handle: handle.write(text.encode()))


if __name__ == "__main__":
    main()
