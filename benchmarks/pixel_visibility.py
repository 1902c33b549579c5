"""How much of what the scripted demonstrators react to, and of what their actions do, a camera
frame shows: the ceiling of learning CartPole and Pendulum from pixels, measured on the simulator.

    python benchmarks/pixel_visibility.py          # writes benchmarks/pixel_visibility.md

Two questions per environment, on the shipped demonstrator's own episodes (seed 0 on), filmed
through `make_camera_env` as pixel runs and `bco record --observation pixels` film them (and
CartPole also through gymnasium's own pygame render, which snaps to whole pixels):

- Policy: how often is a frame identical to the one before, at the render's native resolution and
  after `resize_frames` to 64x64 gray? The controller still acts on the state that moved, so a
  policy that sees only frames cannot tell such steps apart from the previous one.
- IDM: from the same state, step once with each of two extreme actions; are the frames 1 and 2
  steps later identical, and by how many gray levels (64x64) do they differ at most?
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np

from bco_lightning.atomic import atomic_write
from bco_lightning.data.frames import resize_frames
from bco_lightning.demonstrators import scripted_controller
from bco_lightning.pixels import make_camera_env
from bco_lightning.video import make_rendering_env

ROOT = Path(__file__).resolve().parents[1]
EXTREME_ACTIONS = {"CartPole-v1": (0, 1), "Pendulum-v1": (np.array([-2.0], np.float32), np.array([2.0], np.float32))}
FILMED_BY = {"camera": make_camera_env, "gymnasium's render": make_rendering_env}


def small(frame: np.ndarray) -> np.ndarray:
    return resize_frames(frame[None], 64, True)[0].astype(np.int64)


def policy_visibility(env_id: str, episodes: int, camera: str) -> tuple[int, int, int]:
    """(steps, native frames identical to the previous, 64x64 gray frames identical to the previous)."""
    env = FILMED_BY[camera](env_id)
    controller = scripted_controller(env_id)
    steps = native_same = small_same = 0
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=episode)
            previous = env.render()
            done = False
            while not done:
                obs, _, terminated, truncated, _ = env.step(controller(obs))
                done = terminated or truncated
                frame = env.render()
                steps += 1
                native_same += int(np.array_equal(frame, previous))
                small_same += int(np.array_equal(small(frame), small(previous)))
                previous = frame
    finally:
        env.close()
    return steps, native_same, small_same


def idm_visibility(env_id: str, states: int, camera: str) -> list[tuple[int, float]]:
    """Per lookahead k = 1, 2: (states whose frame k steps on is the same for both extreme actions,
    mean over states of the largest 64x64 gray difference between the two)."""
    env = FILMED_BY[camera](env_id)
    controller = scripted_controller(env_id)
    first, second = EXTREME_ACTIONS[env_id]
    same = [0, 0]
    largest: list[list[int]] = [[], []]
    try:
        obs, _ = env.reset(seed=0)
        for _ in range(states):
            state = copy.deepcopy(env.unwrapped.state)
            frames = []
            for action in (first, second):
                env.unwrapped.state = copy.deepcopy(state)
                shown = []
                for k in range(2):  # the action under test, then `first` in both branches
                    env.unwrapped.step(action if k == 0 else first)  # past the time limit's step count
                    shown.append(small(env.render()))
                frames.append(shown)
            for k in range(2):
                difference = int(np.abs(frames[0][k] - frames[1][k]).max())
                same[k] += int(difference == 0)
                largest[k].append(difference)
            env.unwrapped.state = state
            obs, _, terminated, truncated, _ = env.step(controller(obs))
            if terminated or truncated:
                obs, _ = env.reset()
    finally:
        env.close()
    return [(same[k], float(np.mean(largest[k]))) for k in range(2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=3, help="demonstrator episodes for the policy question")
    parser.add_argument("--states", type=int, default=300, help="states along the demonstrator's path for the IDM question")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "pixel_visibility.md")
    args = parser.parse_args()
    lines = [
        "# What the frames show",
        "",
        f"`python benchmarks/pixel_visibility.py --episodes {args.episodes} --states {args.states}`: the shipped scripted",
        "demonstrators filmed through `make_camera_env` (no action overlay; CartPole drawn by `cameras.cartpole_frame`),",
        "and CartPole through gymnasium's own render too, seed 0 on.",
        "",
        "| environment | filmed by | demonstrator steps | frame identical to the previous: native | at 64x64 gray | "
        "extreme actions give the same frame 1 step on | 2 steps on | mean largest gray difference 1 step on | 2 steps on |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for env_id, camera in (("CartPole-v1", "camera"), ("CartPole-v1", "gymnasium's render"), ("Pendulum-v1", "camera")):
        steps, native_same, small_same = policy_visibility(env_id, args.episodes, camera)
        (same1, diff1), (same2, diff2) = idm_visibility(env_id, args.states, camera)
        lines.append(
            f"| {env_id} | {camera} | {steps} | {native_same / steps:.1%} | {small_same / steps:.1%} | "
            f"{same1 / args.states:.1%} | {same2 / args.states:.1%} | {diff1:.1f} | {diff2:.1f} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    atomic_write(args.output, lambda handle: handle.write(text.encode()))


if __name__ == "__main__":
    main()
