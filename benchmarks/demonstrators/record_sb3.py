"""Record an expert state file from a saved Stable-Baselines3 policy, with bco_lightning's own API.

    python benchmarks/demonstrators/record_sb3.py --model benchmarks/demonstrators/runs/HalfCheetah-v5/model.zip \
        --env_id HalfCheetah-v5 --episodes 25 --seed 0 \
        --out bco_lightning/demonstrations/HalfCheetah-v5.npz \
        --copy_model_to benchmarks/demonstrators/models/HalfCheetah-v5-sac.zip

The policy acts deterministically; episode i resets with seed + i (see `record_episodes`).
Needs `pip install stable-baselines3` (not a dependency of bco_lightning).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from stable_baselines3 import SAC

from bco_lightning.data.expert_file import save_expert_file
from bco_lightning.demonstrators import record_episodes

ALGOS = {"sac": SAC}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an SB3 model zip (train_sb3.py writes model.zip and best_model.zip)")
    parser.add_argument("--env_id", default="HalfCheetah-v5")
    parser.add_argument("--algo", choices=sorted(ALGOS), default="sac")
    parser.add_argument("--episodes", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="expert state file (default bco_lightning/demonstrations/<env_id>.npz)")
    parser.add_argument("--copy_model_to", default=None, help="also copy the model zip here (e.g. benchmarks/demonstrators/models/<env_id>-sac.zip)")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    root = Path(__file__).resolve().parents[2]
    out = Path(args.out) if args.out else root / "bco_lightning" / "demonstrations" / f"{args.env_id}.npz"
    model = ALGOS[args.algo].load(args.model, device="cpu")
    demos = record_episodes(args.env_id, lambda obs: model.predict(obs, deterministic=True)[0], args.episodes, args.seed)
    path = save_expert_file(out, demos, overwrite=args.overwrite)
    returns = np.asarray(demos.episode_returns)
    print(f"wrote {path}: {args.episodes} episodes, {int(np.sum(demos.episode_lengths))} states, "
          f"return {returns.mean():.1f} +- {returns.std():.1f} (min {returns.min():.1f}, max {returns.max():.1f})")
    if args.copy_model_to:
        target = Path(args.copy_model_to)
        if target.exists() and not args.overwrite:
            raise SystemExit(f"{target} exists; pass --overwrite to replace it")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.model, target)
        print(f"copied {args.model} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
