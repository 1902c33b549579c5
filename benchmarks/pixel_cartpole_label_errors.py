"""Where a pixel CartPole IDM mislabels the kicked expert: label accuracy by the cart's distance from the centre.

    python benchmarks/pixel_cartpole_label_errors.py RUN/checkpoints/idm-iter0.ckpt [idm-iter1.ckpt ...] \
        --output benchmarks/pixel_cartpole_label_errors.md

Each IDM checkpoint labels the frames of the shipped kicked recording (`cartpole-pixels.yaml`'s
data settings). The recording holds no states, so they are re-made by replaying the same
controller, kicks and seeds without a camera (asserted to give the same episodes and actions); the
labels are then scored against the controller's actions per band of |x|, the cart's distance from
the centre. Random play ends its episodes within about 20 steps near the centre, while a kicked
expert drifts over a metre: a band the IDM never saw tells on it. A second table says where each
kind of random play goes (`RandomPlay`, on CartPole's states): holding actions (`repeat`) does not
take the cart further out, it drops the pole sooner.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from bco_lightning import BCODataModule, IDMModule
from bco_lightning.atomic import atomic_write
from bco_lightning.data.rollouts import RandomPlay, random_policy
from bco_lightning.demonstrators import KickedController, cartpole_controller, record_episodes

BANDS = [(0.0, 0.1), (0.1, 0.3), (0.3, 0.6), (0.6, 1.0), (1.0, 1.5), (1.5, 2.4)]
BAND_COLUMNS = " | ".join(f"{lo}-{hi} m" for lo, hi in BANDS)
BAND_RULE = "|---|---:|" + "---:|" * len(BANDS)  # under a header of two columns and then the bands


def band_masks(distance: np.ndarray) -> list[np.ndarray]:
    """Which entries of `distance` (|x| per transition) fall in each band of `BANDS`."""
    return [(distance >= lo) & (distance < hi) for lo, hi in BANDS]


def expert_states(episodes: int, every: int, size: list[float], seed: int, lengths: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """The state before each recorded transition, from a camera-less replay of the recording."""
    replay = record_episodes("CartPole-v1", KickedController(cartpole_controller, every, size, seed), episodes, seed)
    if not (np.array_equal(replay.episode_lengths, lengths) and np.array_equal(replay.actions, actions)):
        raise SystemExit("the replay does not re-make the recording: give the --kick_every/--kick_size/--seed it was recorded with")
    return replay.observations[replay.pair_indices()]


def random_play_distances(play: RandomPlay, steps: int, num_envs: int = 16, seed: int = 0) -> np.ndarray:
    """|x| at the start of each of `steps` transitions of random play on `num_envs` CartPoles, as
    the pre-demonstration interaction plays (`cartpole-pixels.yaml`: 50,000 steps, 16 sub-envs)."""
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(num_envs)])
    envs.action_space.seed(seed)
    act = random_policy(envs.action_space, play, seed)
    observations, _ = envs.reset(seed=seed)
    ended = np.zeros(num_envs, dtype=bool)
    distances: list[np.ndarray] = []
    collected = 0
    while collected < steps:
        distances.append(np.abs(observations[~ended, 0]))  # an ended sub-env's next step is its reset, not a transition
        collected += len(distances[-1])
        observations, _, terminated, truncated, _ = envs.step(act(observations))
        ended = terminated | truncated
    envs.close()
    return np.concatenate(distances)[:steps]


def band_shares(distance: np.ndarray) -> str:
    return " | ".join(f"{band.mean():.3f}" for band in band_masks(distance))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("idm_checkpoints", nargs="+", type=Path)
    parser.add_argument("--expert_path", default="data/CartPole-v1-kicked-pixels.npz")
    parser.add_argument("--kick_every", type=int, default=20)
    parser.add_argument("--kick_size", type=float, nargs=4, default=[0.0, 0.4, 0.0, 0.6])
    parser.add_argument("--seed", type=int, default=0, help="the recording's --seed")
    parser.add_argument("--output", type=Path, default=None, help="also write the table here (markdown)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = BCODataModule("CartPole-v1", expert_path=args.expert_path, observation="pixels", image_size=64, grayscale=True, frame_stack=2, idm_lookahead=2)
    expert = data.expert
    states = expert_states(expert.num_episodes, args.kick_every, args.kick_size, args.seed, expert.episode_lengths, expert.actions)
    distance = np.abs(states[:, 0])
    bands = band_masks(distance)
    lines = [f"| IDM checkpoint | all | {BAND_COLUMNS} |", BAND_RULE]
    lines.append("| transitions | " + f"{len(distance):,} | " + " | ".join(f"{band.sum():,}" for band in bands) + " |")
    for checkpoint in args.idm_checkpoints:
        idm = IDMModule.load_from_checkpoint(checkpoint, map_location="cpu").eval()
        right = data.label_expert(idm) == expert.actions
        cells = [f"{right[band].mean():.3f}" for band in bands]
        lines.append(f"| {checkpoint.name} | {right.mean():.3f} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    plays = [("the kicked expert (the recording)", distance)]
    for repeat in (1, 2, 4, 8):
        name = "uniform random play (BCO's default, the config's)" if repeat == 1 else f"random play holding each action {repeat} steps (`repeat: {repeat}`)"
        plays.append((name, random_play_distances(RandomPlay(repeat=repeat), 50_000)))
    reach = [
        f"| play | transitions | {BAND_COLUMNS} |",
        BAND_RULE,
        *(f"| {name} | {len(d):,} | {band_shares(d)} |" for name, d in plays),
    ]
    where = "\n".join(reach)
    print(f"\nlabel accuracy by |x| (the cart's distance from the centre); {time.perf_counter() - start:.0f} s\n\n{table}\n\nshare of transitions by |x|\n\n{where}")
    if args.output is not None:
        text = (
            "# Pixel CartPole: IDM label accuracy by the cart's distance from the centre\n\n"
            f"`python benchmarks/{Path(__file__).name} {' '.join(str(c) for c in args.idm_checkpoints)}`\n\n{table}\n\n"
            f"## Where play goes: share of transitions by |x|\n\n{where}\n"
        )
        atomic_write(args.output, lambda handle: handle.write(text.encode()))


if __name__ == "__main__":
    main()
