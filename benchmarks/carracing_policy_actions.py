"""What a cloned CarRacing policy does on the road: its action mix, the car's speed and the tiles it reaches.

    python benchmarks/carracing_policy_actions.py RUN/checkpoints/policy-iter0.ckpt --episodes 4

A normalised score says that a pixel policy failed, not how. This drives the policy's most likely
action (as `bco run` evaluates it) through the camera it was trained on (read from the checkpoint), and prints per episode how often
it chose each of the discrete actions, the car's mean speed over the episode and over its first 100
steps (from the simulator), and the share of track tiles visited. Figures: carracing_policy_actions.md.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from bco_lightning import BCPolicyModule
from bco_lightning.pixels import make_pixel_env, pixel_settings_for

ACTIONS = ("nothing", "left", "right", "gas", "brake")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy_checkpoint")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=12345, help="the first episode's reset seed (the evaluation's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy = BCPolicyModule.load_from_checkpoint(args.policy_checkpoint, map_location="cpu", weights_only=False).eval()
    act = policy.as_policy(deterministic=True)
    pixels = pixel_settings_for(tuple(policy.hparams.obs_shape))  # the camera the policy was trained through
    env = make_pixel_env("CarRacing-v3", {"continuous": False}, pixels)
    print("| episode | return | steps | tiles visited | " + " | ".join(ACTIONS) + " | mean speed | speed, first 100 steps |")
    print("|---|---:|---:|---:|" + "---:|" * len(ACTIONS) + "---:|---:|")
    for episode in range(args.episodes):
        obs, _ = env.reset(seed=args.seed + episode)
        counts, speeds, total = np.zeros(len(ACTIONS), dtype=int), [], 0.0
        done = False
        while not done:
            action = int(act(obs[None])[0])
            counts[action] += 1
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            speeds.append(float(np.hypot(*env.unwrapped.car.hull.linearVelocity)))
            done = terminated or truncated
        tiles = env.unwrapped.tile_visited_count / len(env.unwrapped.track)
        shares = " | ".join(f"{count / counts.sum():.2f}" for count in counts)
        print(f"| {episode} | {total:.1f} | {counts.sum()} | {tiles:.2f} | {shares} | {np.mean(speeds):.1f} | {np.mean(speeds[:100]):.1f} |", flush=True)
    env.close()


if __name__ == "__main__":
    main()
