"""BCO(alpha) on CartPole in plain PyTorch + gymnasium: the reference `bco run` is timed against.

Same algorithm and sizes as the default `bco run`: 36000 random pre-demonstration steps on 16
sub-envs (autoreset pairs dropped), an IDM and a policy of two 256-unit layers on standardised
inputs, AdamW (fused) at 1e-3, batch 256, a 10% validation split, validation every epoch or every
100 steps, early stopping after 5 validations without a 0.1% better loss (best weights kept),
up to 20 iterations of alpha = 0.1 with the policy's sampled actions, retraining the policy only
when the labels change, the iteration kept by 30 selection episodes, stopping once the kept policy
returns at least the demonstrator's mean on them, 30 evaluation episodes. No Lightning,
no checkpoints, no logs.

    python benchmarks/plain_bco.py --summary_path plain.json
    python benchmarks/plain_bco.py --summary_path plain.json --epochs_from bco_summary.json
    python benchmarks/plain_bco.py --summary_path plain.json --threads 2

Early stopping makes the amount of training depend on the data: with its own splits this script
stops at other epochs than `bco run` does. `--epochs_from` takes the epochs of each stage from a
`bco run` summary instead (and skips the policy stages that run skipped, and runs its iterations),
so that both programs do the same number of optimiser steps and a timing compares the frameworks
alone. It runs on one torch thread unless `--threads` says otherwise (`bco run`'s default,
`--torch_threads auto`, trains on as many as are fastest and runs the rest on one).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
ENV_ID, NUM_ENVS, PRE_DEMO_STEPS, ALPHA, ITERATIONS, EVAL_EPISODES = "CartPole-v1", 16, 36_000, 0.1, 20, 30
BATCH, PATIENCE, MIN_REL_DELTA, MAX_VALIDATIONS = 256, 5, 1e-3, 100


def mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, out_dim))


class Standardised(nn.Module):
    def __init__(self, body: nn.Module, data: torch.Tensor) -> None:
        super().__init__()
        self.body = body
        self.register_buffer("mean", data.mean(0))
        self.register_buffer("std", data.std(0, unbiased=False).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / self.std)


def collect(steps: int, seed: int, act=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    envs = gym.make_vec(ENV_ID, num_envs=NUM_ENVS)
    envs.action_space.seed(seed)
    obs, _ = envs.reset(seed=seed)
    just_reset = np.zeros(NUM_ENVS, dtype=bool)
    s, a, s2 = [], [], []
    while sum(len(x) for x in a) < steps:
        action = envs.action_space.sample() if act is None else act(obs)
        next_obs, _, terminated, truncated, _ = envs.step(action)
        keep = ~just_reset
        s.append(obs[keep]), a.append(action[keep]), s2.append(next_obs[keep])
        just_reset = terminated | truncated
        obs = next_obs
    envs.close()
    return tuple(np.concatenate(x)[:steps] for x in (s, a, s2))  # type: ignore[return-value]


def train(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, seed: int, epochs: int | None = None) -> int:
    """Early-stopped supervised training (or exactly `epochs` epochs) that leaves the model with its
    best validation weights; returns the number of optimiser steps taken."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    num_val = max(1, round(0.1 * len(labels)))
    val, tr = order[:num_val], order[num_val:]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    epochs_per_validation = max(1, math.ceil(100 / math.ceil(len(tr) / BATCH)))
    best, best_state, bad = math.inf, copy.deepcopy(model.state_dict()), 0
    done = 0
    for _ in range(MAX_VALIDATIONS if epochs is None else math.ceil(epochs / epochs_per_validation)):
        for _ in range(epochs_per_validation if epochs is None else min(epochs_per_validation, epochs - done)):
            for rows in tr[torch.randperm(len(tr), generator=generator)].split(BATCH):
                loss = F.cross_entropy(model(inputs[rows]), labels[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            done += 1
        with torch.no_grad():
            val_loss = F.cross_entropy(model(inputs[val]), labels[val]).item()
        if val_loss < best * (1 - MIN_REL_DELTA):
            best, best_state, bad = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
        if epochs is None and (bad >= PATIENCE or val_loss < 1e-6):
            break
    model.load_state_dict(best_state)
    return done * math.ceil(len(tr) / BATCH)


def evaluate(act, seed: int) -> float:
    envs = gym.make_vec(ENV_ID, num_envs=EVAL_EPISODES)
    obs, _ = envs.reset(seed=seed)
    returns, done = np.zeros(EVAL_EPISODES), np.zeros(EVAL_EPISODES, dtype=bool)
    while not done.all():
        obs, reward, terminated, truncated, _ = envs.step(act(obs))
        returns += np.where(done, 0.0, reward)
        done |= terminated | truncated
    envs.close()
    return float(returns.mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--summary_path", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs_from", help="a `bco run` summary whose epochs per stage to train (no early stopping)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads throughout (1: as `bco run --torch_threads 1`)")
    args = parser.parse_args()
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with np.load(ROOT / "bco_lightning" / "demonstrations" / "CartPole-v1.npz") as expert:
        observations, lengths, demo_return = expert["observations"], expert["episode_lengths"], float(expert["episode_returns"].mean())
    is_last = np.zeros(len(observations), dtype=bool)
    is_last[np.cumsum(lengths) - 1] = True
    pairs = np.flatnonzero(~is_last)
    expert_s, expert_s2 = torch.from_numpy(observations[pairs]), torch.from_numpy(observations[pairs + 1])

    s, a, s2 = (torch.from_numpy(x) for x in collect(PRE_DEMO_STEPS, args.seed))
    idm = Standardised(mlp(8, 2), torch.cat([torch.cat([expert_s, s]), torch.cat([expert_s2 - expert_s, s2 - s])], 1))
    policy = Standardised(mlp(4, 2), torch.cat([expert_s, s]))

    def act(obs: np.ndarray, sample: bool = False, generator: torch.Generator | None = None) -> np.ndarray:
        with torch.inference_mode():
            logits = policy(torch.as_tensor(obs, dtype=torch.float32))
            return (torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1) if sample else logits.argmax(-1)).numpy()

    planned_epochs: dict[tuple[int, str], int | None] = {}
    if args.epochs_from:
        history = json.loads(Path(args.epochs_from).read_text())["history"]
        planned_epochs = {(entry["iteration"], entry["stage"]): entry.get("epochs") for entry in history}

    random_return = evaluate(lambda obs: np.random.default_rng(args.seed).integers(0, 2, len(obs)), args.seed + 10_000)
    labels, env_steps, eval_return, best_selection = None, PRE_DEMO_STEPS, 0.0, -np.inf
    optimizer_steps = 0
    for iteration in range(ITERATIONS + 1):
        if planned_epochs and (iteration, "idm") not in planned_epochs:
            break  # the bco run stopped before this iteration
        if iteration > 0:
            generator = torch.Generator().manual_seed(args.seed + iteration)
            post = collect(int(ALPHA * PRE_DEMO_STEPS), args.seed + 1000 * iteration, lambda obs: act(obs, True, generator))
            s, a, s2 = (torch.cat([old, torch.from_numpy(new)]) for old, new in zip((s, a, s2), post))
            env_steps += int(ALPHA * PRE_DEMO_STEPS)
        optimizer_steps += train(idm, torch.cat([s, s2 - s], 1), a.long(), args.seed + iteration, planned_epochs.get((iteration, "idm")))
        with torch.no_grad():
            new_labels = idm(torch.cat([expert_s, expert_s2 - expert_s], 1)).argmax(-1)
        if (iteration, "policy") in planned_epochs:
            retrain = planned_epochs[(iteration, "policy")] is not None
        else:
            retrain = labels is None or not torch.equal(new_labels, labels)
        if retrain:
            labels = new_labels
            optimizer_steps += train(policy, expert_s, labels, args.seed + 100 + iteration, planned_epochs.get((iteration, "policy")))
            # keep the iteration that returns most on held-out selection episodes
            evaluation, selection = evaluate(act, args.seed + 10_000), evaluate(act, args.seed + 20_000)
            if selection >= best_selection:
                best_selection, eval_return = selection, evaluation
        if not planned_epochs and best_selection >= demo_return:
            break  # the kept policy matches the demonstrator: `bco run`'s default stop_score of 1.0
    summary = {
        "env_id": ENV_ID,
        "eval_return_mean": eval_return,
        "normalized_score": (eval_return - random_return) / (demo_return - random_return),
        "env_steps": env_steps,
        "optimizer_steps": optimizer_steps,
        "wall_seconds": time.perf_counter() - start,
    }
    Path(args.summary_path).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
