"""Pixel CartPole demonstrations of the scripted controller while the cart-pole is kicked.

A pixel policy cloned from the undisturbed controller sees only the narrow band of states that the
controller holds the pole in; the first time its own errors push the cart faster than the
demonstrator ever moved it, the CNN extrapolates and keeps pushing the same way. Here the recording
shows recoveries: every `--every` steps a kick adds a uniform random amount to the pole's angular
velocity (at most `--kick_theta` rad/s) and the cart's velocity (at most `--kick_x` m/s), as a hand
nudging a filmed cart-pole would. The actions kept beside the frames (for `--labels true_actions`
only) are the controller's own for the frame it saw, never a random one; BCO never reads them.

    python benchmarks/record_kicked_cartpole.py --output /tmp/kicked.npz          # 100 episodes
    bco run --config cartpole-pixels.yaml --data.expert_path /tmp/kicked.npz ...

Prints the episodes' mean and lowest return (a kick can be more than the controller recovers from).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from bco_lightning.data.expert_file import save_expert_file
from bco_lightning.demonstrators import FrameRecording, cartpole_controller, record_episodes


class KickedCartPoleController:
    """`cartpole_controller`, whose simulator is kicked after every `every`-th of its actions
    (offset by half a period, so that an episode starts undisturbed)."""

    def __init__(self, every: int, kick_theta: float, kick_x: float, seed: int) -> None:
        self.every, self.kick_theta, self.kick_x = every, kick_theta, kick_x
        self.rng = np.random.default_rng(seed)
        self.env: Any = None
        self.steps = 0

    def bind(self, env: Any) -> None:
        self.env, self.steps = env.unwrapped, 0

    def __call__(self, obs: np.ndarray) -> int:
        action = cartpole_controller(obs)  # what the controller does about the frame it was shown
        self.steps += 1
        if self.steps % self.every == self.every // 2:
            state = np.array(self.env.state, dtype=np.float64)
            state[3] += self.rng.uniform(-self.kick_theta, self.kick_theta)
            state[1] += self.rng.uniform(-self.kick_x, self.kick_x)
            self.env.state = state
        return action


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100, help="episode i resets with seed i")
    parser.add_argument("--every", type=int, default=20, help="steps between kicks")
    parser.add_argument("--kick_theta", type=float, default=0.6, help="largest kick to the pole's angular velocity (rad/s)")
    parser.add_argument("--kick_x", type=float, default=0.4, help="largest kick to the cart's velocity (m/s)")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--kick_seed", type=int, default=12345)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    controller = KickedCartPoleController(args.every, args.kick_theta, args.kick_x, args.kick_seed)
    demo = record_episodes("CartPole-v1", controller, args.episodes, 0, None, FrameRecording(args.image_size, False))
    save_expert_file(args.output, demo)
    returns = demo.episode_returns
    print(f"{args.output}: {len(returns)} episodes, {len(demo.observations)} frames, return {returns.mean():.1f} (lowest {returns.min():.0f})")


if __name__ == "__main__":
    main()
