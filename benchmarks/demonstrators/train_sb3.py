"""Train a Stable-Baselines3 demonstrator (SAC) for a gymnasium environment: seeded, resumable,
wall-clock bounded.

    python benchmarks/demonstrators/train_sb3.py --env_id HalfCheetah-v5 --algo sac \
        --total_steps 300000 --seed 0 --max_minutes 70

Everything goes to --out_dir (default benchmarks/demonstrators/runs/<env_id>, kept out of git):

    train.log                      progress lines (also printed to stdout)
    checkpoints/step_<N>/          model.zip + replay_buffer.pkl, written as step_<N>.tmp then renamed
    model.zip                      the latest policy (written when the run stops, for any reason)
    best_model.zip                 the policy with the best deterministic evaluation at a checkpoint

Started again with the same --out_dir, the run resumes from the newest complete checkpoint
(`SAC.load` + `load_replay_buffer`, `reset_num_timesteps=False`) and trains up to --total_steps in all.
A resumed run is not bit-identical to an uninterrupted one (the RNG state is reseeded, and the
episode in progress at the checkpoint is restarted), but it is seeded and repeatable.
Needs `pip install stable-baselines3` (not a dependency of bco_lightning).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from bco_lightning.envs import make_env

ROOT = Path(__file__).resolve().parents[2]
ALGOS = {"sac": SAC}
MODEL_FILE, BUFFER_FILE = "model.zip", "replay_buffer.pkl"


class Log:
    def __init__(self, path: Path):
        self.path = path

    def __call__(self, message: str) -> None:
        line = f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {message}"
        print(line, flush=True)
        with self.path.open("a") as f:
            f.write(line + "\n")


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint (a `.tmp` folder is a save that never finished)."""
    found = []
    for path in checkpoint_dir.glob("step_*"):
        if path.is_dir() and not path.name.endswith(".tmp") and (path / MODEL_FILE).exists() and (path / BUFFER_FILE).exists():
            found.append((int(path.name.split("_")[1]), path))
    return max(found)[1] if found else None


def atomic_save_model(model, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp.zip")  # SB3 appends .zip to names that lack it
    model.save(tmp)
    os.replace(tmp, path)


def save_checkpoint(model, checkpoint_dir: Path, keep: int = 1) -> Path:
    """Model and replay buffer into step_<N>.tmp/, then one rename publishes both together."""
    final = checkpoint_dir / f"step_{model.num_timesteps}"
    tmp = checkpoint_dir / f"step_{model.num_timesteps}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save(tmp / MODEL_FILE)
    model.save_replay_buffer(tmp / BUFFER_FILE)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    older = sorted((int(p.name.split("_")[1]), p) for p in checkpoint_dir.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp") and p != final)
    for _, path in older[: max(0, len(older) - (keep - 1))]:
        shutil.rmtree(path, ignore_errors=True)
    return final


def evaluate(model, env_id: str, episodes: int, seed: int) -> tuple[float, float]:
    """Deterministic returns on `episodes` seeded episodes of a fresh environment."""
    env = make_env(env_id)
    returns = []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            done, total = False, 0.0
            while not done:
                obs, reward, terminated, truncated, _ = env.step(model.predict(obs, deterministic=True)[0])
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return float(np.mean(returns)), float(np.std(returns))


class Progress(BaseCallback):
    """Logs progress, checkpoints every `checkpoint_every` steps, and stops at the wall-clock deadline
    or on SIGTERM/SIGINT."""

    def __init__(self, args, out_dir: Path, log: Log, deadline: float, state: dict):
        super().__init__()
        self.args, self.out_dir, self.log, self.deadline, self.state = args, out_dir, log, deadline, state
        self.stop_requested = False
        self.last_time, self.last_steps = time.time(), None

    def _on_training_start(self) -> None:
        self.last_time, self.last_steps = time.time(), self.num_timesteps

    def _on_step(self) -> bool:
        steps = self.num_timesteps
        if steps % self.args.log_every == 0:
            now = time.time()
            rate = (steps - self.last_steps) / max(now - self.last_time, 1e-9)
            self.last_time, self.last_steps = now, steps
            episodes = [info["r"] for info in self.model.ep_info_buffer]
            recent = episodes[-10:]
            mean = f"{np.mean(recent):.1f}" if recent else "n/a"
            self.log(f"steps {steps} | mean return (last {len(recent)} episodes) {mean} | {rate:.1f} steps/s | "
                     f"elapsed {(now - self.state['start']) / 60:.1f} min")
        if steps % self.args.checkpoint_every == 0:
            self.checkpoint()
        if time.time() >= self.deadline:
            self.log(f"wall-clock budget of {self.args.max_minutes} min spent at step {steps}; stopping")
            return False
        if self.stop_requested:
            self.log(f"stop signal received at step {steps}; stopping")
            return False
        return True

    def checkpoint(self) -> None:
        t0 = time.time()
        path = save_checkpoint(self.model, self.out_dir / "checkpoints")
        message = f"checkpoint {path.name} saved in {time.time() - t0:.1f}s"
        if self.args.eval_episodes > 0:
            mean, std = evaluate(self.model, self.args.env_id, self.args.eval_episodes, seed=10_000)
            message += f" | deterministic eval ({self.args.eval_episodes} ep) {mean:.1f} +- {std:.1f}"
            if mean > self.state.get("best_eval", -np.inf):
                self.state.update(best_eval=mean, best_step=self.num_timesteps)
                atomic_save_model(self.model, self.out_dir / "best_model.zip")
                message += " (new best)"
            (self.out_dir / "best.json").write_text(json.dumps({"best_eval": self.state["best_eval"], "best_step": self.state["best_step"]}))
        self.log(message)
        # the checkpoint/eval time should not count against the steps/s of the next window
        self.last_time += time.time() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env_id", default="HalfCheetah-v5")
    parser.add_argument("--algo", choices=sorted(ALGOS), default="sac")
    parser.add_argument("--total_steps", type=int, default=300_000, help="environment steps in all, across resumes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out_dir", default=None, help="default benchmarks/demonstrators/runs/<env_id>")
    parser.add_argument("--max_minutes", type=float, default=float("inf"), help="wall-clock budget of this invocation")
    parser.add_argument("--checkpoint_every", type=int, default=25_000)
    parser.add_argument("--log_every", type=int, default=5_000)
    parser.add_argument("--eval_episodes", type=int, default=3, help="deterministic evaluation at each checkpoint; 0 to skip")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--learning_rate", type=float, default=3e-4)
    parser.add_argument("--buffer_size", type=int, default=1_000_000)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--learning_starts", type=int, default=10_000)
    parser.add_argument("--train_freq", type=int, default=1)
    parser.add_argument("--gradient_steps", type=int, default=1)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    out_dir = Path(args.out_dir) if args.out_dir else ROOT / "benchmarks" / "demonstrators" / "runs" / args.env_id
    out_dir.mkdir(parents=True, exist_ok=True)
    log = Log(out_dir / "train.log")
    start = time.time()
    deadline = start + args.max_minutes * 60

    env = DummyVecEnv([lambda: Monitor(make_env(args.env_id))])
    algo = ALGOS[args.algo]
    checkpoint = latest_checkpoint(out_dir / "checkpoints")
    state: dict = {"start": start}
    if (out_dir / "best.json").exists():
        state.update(json.loads((out_dir / "best.json").read_text()))
    if checkpoint is not None:
        model = algo.load(checkpoint / MODEL_FILE, env=env, device="cpu", force_reset=True)
        model.load_replay_buffer(checkpoint / BUFFER_FILE)
        # reseed from (seed, step) so a resumed run is repeatable
        model.set_random_seed(args.seed + model.num_timesteps)
        log(f"resumed {args.algo} {args.env_id} from {checkpoint} at step {model.num_timesteps} "
            f"(replay buffer {model.replay_buffer.size()} transitions)")
    else:
        model = algo(
            "MlpPolicy", env, learning_rate=args.learning_rate, buffer_size=args.buffer_size, batch_size=args.batch_size,
            learning_starts=args.learning_starts, train_freq=args.train_freq, gradient_steps=args.gradient_steps,
            seed=args.seed, device="cpu", verbose=0,
        )
        log(f"new {args.algo} {args.env_id} run in {out_dir}: {json.dumps(vars(args))}")
    (out_dir / "args.json").write_text(json.dumps(vars(args), indent=2))

    remaining = args.total_steps - model.num_timesteps
    callback = Progress(args, out_dir, log, deadline, state)

    def request_stop(signum, _frame):
        callback.stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    if remaining > 0:
        log(f"training {remaining} steps (to {args.total_steps}); budget {args.max_minutes} min; torch threads {torch.get_num_threads()}")
        steps_before = model.num_timesteps
        t0 = time.time()
        model.learn(total_timesteps=remaining, callback=callback, reset_num_timesteps=False, log_interval=10**9)
        done = model.num_timesteps - steps_before
        log(f"trained {done} steps in {(time.time() - t0) / 60:.1f} min ({done / max(time.time() - t0, 1e-9):.1f} steps/s overall)")
        if model.num_timesteps % args.checkpoint_every != 0:  # the callback already saved an on-the-dot step
            callback.checkpoint()
    else:
        log(f"already at {model.num_timesteps} >= --total_steps {args.total_steps}; nothing to train")
    atomic_save_model(model, out_dir / MODEL_FILE)
    log(f"saved {out_dir / MODEL_FILE} at step {model.num_timesteps}; best eval {state.get('best_eval')} at step {state.get('best_step')}")
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
