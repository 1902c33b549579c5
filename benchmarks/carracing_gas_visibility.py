"""Why CarRacing's IDM cannot read the gas: how much one step's gas changes the frames that follow,
against one step's brake and steering, measured on the simulator along the scripted demonstrator's laps.

    python benchmarks/carracing_gas_visibility.py   # writes benchmarks/carracing_gas_visibility.md

CarRacing-v3 raises a rear wheel's gas by at most 0.1 per step (`Car.gas` in gymnasium's
`car_dynamics`) and drops it at once, and its engine's torque falls with the wheel's speed. For
each lap (seeds 0 on) the demonstrator drives once while the wheel's gas is logged; then at every
`--every`-th step the lap is replayed to that step (Box2D is deterministic: the replay's frame is
checked against the lap's) and one action component is changed for that step only, the
demonstrator's actions following as before. The frames 1, 2, 4 and 8 steps later are compared with
the lap's own, after `resize_frames` to the shipped configs' 64x64 RGB, in mean absolute difference
over all pixels and channels (0-255), and in the number of the 12,288 values that differ.

Then what a policy that steers as the demonstrator does but never learnt its gas would score: the
demonstrator's laps on `--drive_laps` other tracks (seeds 100 on) with its gas held at 0.5 (the
middle where a regression settles when gas cannot be read), with its own braking, with none, and
with the brake held at 0.1 (where the labels settle, the driving play's mean brake), beside its own
laps and uniform random actions for the normalised score.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from bco_lightning.atomic import atomic_write
from bco_lightning.callbacks import normalized_score
from bco_lightning.data.frames import resize_frames
from bco_lightning.demonstrators import CarRacingController, play_episodes
from bco_lightning.pixels import make_camera_env

ROOT = Path(__file__).resolve().parents[1]
LAGS = (1, 2, 4, 8)
STEER, GAS, BRAKE = 0, 1, 2


def small(frame: np.ndarray) -> np.ndarray:
    return resize_frames(np.asarray(frame, np.uint8)[None], 64, False)[0].astype(np.int16)


def drive(seed: int, steps: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """The demonstrator's lap: its actions, the 64x64 frame after each step, and the rear wheels'
    gas after each step."""
    env = make_camera_env("CarRacing-v3")
    controller = CarRacingController(continuous=True)
    try:
        obs, _ = env.reset(seed=seed)
        controller.bind(env)
        actions, frames, wheel_gas = [], [], []
        for _ in range(steps):
            action = controller(obs)
            obs, _, terminated, truncated, _ = env.step(action)
            actions.append(action)
            frames.append(small(obs))
            wheel_gas.append(env.unwrapped.car.wheels[2].gas)
            if terminated or truncated:
                break
    finally:
        env.close()
    return np.asarray(actions), frames, np.asarray(wheel_gas)


def changed(action: np.ndarray, component: int) -> np.ndarray:
    """The same action with gas flipped between 0 and 1 (its whole range), the brake between 0 and
    the demonstrator's 0.4, or steering moved by 1 (half its range) toward the other side."""
    action = action.copy()
    if component == GAS:
        action[GAS] = 1.0 - round(float(action[GAS]))
    elif component == BRAKE:
        action[BRAKE] = 0.4 if action[BRAKE] < 0.2 else 0.0
    else:
        action[STEER] = action[STEER] - 1.0 if action[STEER] > 0 else action[STEER] + 1.0
    return action


def branch(seed: int, actions: np.ndarray, frames: list[np.ndarray], at: int, component: int) -> list[tuple[float, int]]:
    """Mean absolute frame difference and the number of values that differ, `LAGS` steps after
    changing `actions[at]`'s component."""
    env = make_camera_env("CarRacing-v3")
    try:
        env.reset(seed=seed)
        obs = None
        for t in range(at):
            obs, *_ = env.step(actions[t])
        if at and not np.array_equal(small(obs), frames[at - 1]):
            raise RuntimeError(f"seed {seed}: the replay's frame {at} differs from the lap's; the simulator is not deterministic here")
        differences = []
        for t in range(at, at + max(LAGS)):
            obs, *_ = env.step(changed(actions[t], component) if t == at else actions[t])
            if t - at + 1 in LAGS:
                difference = np.abs(small(obs) - frames[t])
                differences.append((float(difference.mean()), int(np.count_nonzero(difference))))
    finally:
        env.close()
    return differences


class Driver:
    """The demonstrator with its gas and brake held where given (None: its own), or uniform random
    actions seeded with the lap's seed."""

    def __init__(self, seed: int, gas: float | None, brake: float | None, random_actions: bool) -> None:
        self.demonstrator = CarRacingController(continuous=True)
        self.seed, self.gas, self.brake, self.random_actions = seed, gas, brake, random_actions
        self.env: Any = None

    def bind(self, env: Any) -> None:
        self.demonstrator.bind(env)
        self.env = env
        env.action_space.seed(self.seed)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        action = self.env.action_space.sample() if self.random_actions else self.demonstrator(obs)
        if self.gas is not None:
            action[GAS] = self.gas
        if self.brake is not None:
            action[BRAKE] = self.brake
        return action


def lap_return(seed: int, gas: float | None = None, brake: float | None = None, random_actions: bool = False) -> float:
    """Return of one lap driven by `Driver`."""
    (lap,) = play_episodes("CarRacing-v3", Driver(seed, gas, brake, random_actions), episodes=1, seed=seed)
    return lap.total_reward


def driving_rows(laps: int) -> list[str]:
    seeds = range(100, 100 + laps)
    returns = {
        "the demonstrator": [lap_return(seed) for seed in seeds],
        "uniform random actions": [lap_return(seed, random_actions=True) for seed in seeds],
        "its steering and braking, gas held at 0.5": [lap_return(seed, gas=0.5) for seed in seeds],
        "its steering, gas held at 0.5, no braking": [lap_return(seed, gas=0.5, brake=0.0) for seed in seeds],
        "its steering, gas held at 0.5, brake held at 0.1": [lap_return(seed, gas=0.5, brake=0.1) for seed in seeds],
    }
    expert, random = float(np.mean(returns["the demonstrator"])), float(np.mean(returns["uniform random actions"]))
    lines = [
        f"Laps on {laps} other tracks (seeds {seeds.start}-{seeds.stop - 1}), normalised against these laps' demonstrator "
        "and uniform random play (a lap ends when every tile is visited, else after 1,000 steps):",
        "",
        "| driver | return | normalised |",
        "|---|---:|---:|",
    ]
    for name, values in returns.items():
        lines.append(f"| {name} | {np.mean(values):.1f} ± {np.std(values):.1f} | {normalized_score(float(np.mean(values)), random, expert):.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--laps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--drive_laps", type=int, default=10)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "carracing_gas_visibility.md")
    args = parser.parse_args()

    gas_pressed, wheel_gas_when_pressed, runs, natural = [], [], [], []
    rows: dict[str, list[list[tuple[float, int]]]] = {"gas, wheel gas below 0.5 before": [], "gas, wheel gas 0.5 or more before": [], "brake": [], "steering": []}
    for seed in range(args.laps):
        actions, frames, wheel_gas = drive(seed, args.steps)
        pressed = actions[:, GAS] > 0.5
        gas_pressed.append(pressed)
        wheel_gas_when_pressed.append(wheel_gas[pressed])
        changes = np.flatnonzero(np.diff(pressed.astype(int))) + 1
        runs.extend(np.diff(np.concatenate([[0], changes, [len(pressed)]])))
        natural.extend(float(np.abs(b - a).mean()) for a, b in zip(frames, frames[1:]))
        for at in range(args.every, len(actions) - max(LAGS), args.every):
            before = wheel_gas[at - 1]
            rows["gas, wheel gas below 0.5 before" if before < 0.5 else "gas, wheel gas 0.5 or more before"].append(branch(seed, actions, frames, at, GAS))
            rows["brake"].append(branch(seed, actions, frames, at, BRAKE))
            rows["steering"].append(branch(seed, actions, frames, at, STEER))
        print(f"lap {seed}: {len(actions)} steps", flush=True)

    pressed_all = np.concatenate(gas_pressed)
    wheel = np.concatenate(wheel_gas_when_pressed)
    lines = [
        "# How much one step's gas, brake and steering show in CarRacing's frames",
        "",
        f"`python benchmarks/carracing_gas_visibility.py --laps {args.laps} --steps {args.steps} --every {args.every} --drive_laps {args.drive_laps}`: "
        "the scripted continuous demonstrator's laps (seeds 0 on), frames resized to 64x64 RGB as the shipped configs do.",
        "",
        f"- The demonstrator pressed the gas on {pressed_all.mean():.1%} of {len(pressed_all)} steps, in runs of median "
        f"{int(np.median(runs))} steps (gas and no gas alike); after a pressed step the rear wheel's gas was 1 on "
        f"{np.mean(wheel >= 0.999):.1%} of them and at most 0.5 on {np.mean(wheel <= 0.5):.1%}.",
        f"- One step of the lap changes the frame by {np.mean(natural):.2f} gray levels on average (mean absolute difference).",
        "",
        "Mean absolute difference (0-255, over all 64x64x3 values) between the lap's frame and the frame after changing "
        "one step's action, k steps later (gas: flipped between 0 and 1; brake: between 0 and 0.4; steering: moved by 1, half its range), "
        "and in brackets how many of the 12,288 values differ:",
        "",
        "| change | branch points | " + " | ".join(f"k = {k}" for k in LAGS) + " |",
        "|---|---:|" + "---:|" * len(LAGS),
    ]
    for name, values in rows.items():
        if values:
            means = np.mean(np.asarray(values, dtype=float), axis=0)
            lines.append(f"| {name} | {len(values)} | " + " | ".join(f"{m:.3f} ({n:.0f})" for m, n in means) + " |")
    lines += ["", *driving_rows(args.drive_laps)]
    text = "\n".join(lines) + "\n"
    atomic_write(args.output, lambda handle: handle.write(text.encode()))
    print(text)


if __name__ == "__main__":
    main()
