"""Throughput of bco-lightning against plain PyTorch / gymnasium loops, measured in one process.

    python benchmarks/throughput.py            # full run, writes benchmarks/throughput.md
    python benchmarks/throughput.py --short    # CI smoke: fewer steps, scaling up to 1e5
    python benchmarks/throughput.py --device cuda --sections training --output benchmarks/throughput_cuda.md

1. Training: samples/s of the IDM and policy stages under a Lightning `Trainer` (the callbacks,
   logger and batches-per-step grouping `bco run` uses) vs a plain loop over the same module, data, batch size, optimiser and
   thread count; achieved FLOP/s as a share of a large matrix multiply's (the practical peak).
2. Rollouts: environment steps/s of the collector and the evaluator vs a plain single-env loop
   that calls the same policy on one observation at a time.
3. End to end: `bco run` (the default CartPole job; also with `--torch_threads 1`) vs
   `benchmarks/plain_bco.py` (1 thread; also with bco's epochs, and on 2 threads), whole processes,
   for seeds 0, 1 and 2 (`--e2e-seeds`): early stopping trains each seed for its own number of steps.
4. Scaling: time and peak memory of one IDM epoch on 1e4 ... 1e7 synthetic 17-dim transitions,
   each size in a fresh process.

Ratios compare figures measured in the same run; absolute figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch import nn

from bco_lightning.action_model import ActionModel
from bco_lightning.atomic import atomic_write
from bco_lightning.callbacks import FitNormalizers, RelativeEarlyStopping, RestoreBestWeights
from bco_lightning.data.datamodule import DEFAULT_BATCHES_PER_STEP, BatchLoader, BCODataModule, ExampleTable
from bco_lightning.data.rollouts import Transitions, collect_transitions, evaluate_policy
from bco_lightning.idm import IDMModule
from bco_lightning.policy import BCPolicyModule

ROOT = Path(__file__).resolve().parents[1]
# (label, obs_dim, discrete, action_dim): a HalfCheetah-sized and a CartPole-sized problem.
SECTIONS = ("training", "rollouts", "end-to-end", "scaling")
PROBLEMS = [("17-dim obs, 6-dim Box actions", 17, False, 6), ("4-dim obs, 2 discrete actions", 4, True, 2)]


def shapes(obs_dim: int, discrete: bool, action_dim: int) -> dict[str, Any]:
    bounds = None if discrete else [-1.0] * action_dim
    return {
        "obs_dim": obs_dim,
        "action_dim": action_dim,
        "discrete": discrete,
        "action_low": bounds,
        "action_high": None if discrete else [1.0] * action_dim,
    }


def synthetic_table(stage: str, obs_dim: int, discrete: bool, action_dim: int, size: int) -> ExampleTable:
    generator = torch.Generator().manual_seed(0)
    states = torch.randn(size + 1, obs_dim, generator=generator)
    if discrete:
        actions = torch.randint(0, action_dim, (size,), generator=generator)
    else:
        actions = torch.rand(size, action_dim, generator=generator) * 2 - 1
    index = torch.arange(size)
    return ExampleTable(states, index, index + 1 if stage == "idm" else None, actions)


def make_module(stage: str, problem: dict[str, Any], table: ExampleTable) -> ActionModel:
    torch.manual_seed(0)
    module = IDMModule(**problem) if stage == "idm" else BCPolicyModule(**problem)
    rows = torch.arange(len(table))
    module.fit_normalizers(table.batch(rows))
    return module


def training_flops_per_sample(module: nn.Module) -> int:
    """Forward multiply-adds of every Linear layer, times 2 (FLOPs) times 3 (forward + backward)."""
    macs = sum(layer.in_features * layer.out_features for layer in module.modules() if isinstance(layer, nn.Linear))
    return 6 * macs


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def plain_samples_per_second(module: ActionModel, loader: BatchLoader, steps: int, device: str) -> float:
    module.to(device)
    optimizer = module.configure_optimizers()
    done, start = 0, time.perf_counter()
    while done < steps:
        for batch in loader:
            batch = {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}
            loss = module.codec.loss(module(batch), module.codec.encode(batch["action"]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    synchronize(device)
    return steps * loader.batch_size / (time.perf_counter() - start)


class TrainTimer(pl.Callback):
    """Wall time from the first to the last training batch (Trainer start-up excluded)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        synchronize(pl_module.device.type)
        self.seconds = time.perf_counter() - self.start


def lightning_samples_per_second(
    module: ActionModel, loader: BatchLoader, steps: int, log_dir: str, device: str, precision: str = "32-true"
) -> float:
    timer = TrainTimer()
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        precision=precision,
        devices=1,
        max_steps=steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        deterministic=True,
        logger=TensorBoardLogger(log_dir, name="throughput"),
        callbacks=[RelativeEarlyStopping(0.001, monitor="val/loss", patience=5, check_on_train_epoch_end=False), RestoreBestWeights(), timer],
    )
    trainer.fit(module, train_dataloaders=loader)
    # optimiser steps taken: a grouped loader may pass `steps` by part of a group
    return trainer.global_step * loader.batch_size / timer.seconds


def matmul_flops_per_second(device: str, size: int = 2048, repeats: int = 5) -> float:
    if device == "cuda":
        size, repeats = 8192, 20
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def training_table(short: bool, peak: float, device: str, repeats: int) -> list[dict[str, Any]]:
    """Per row, `repeats` back-to-back pairs of plain and Lightning runs, in alternating order.

    This machine's speed drifts by 10 to 20% within seconds, so one pair's ratio says little: the
    row reports the median of the pairs' ratios (each pair ran within seconds of itself) and their
    range, next to the median samples/s of each program.
    """
    rows = []
    with tempfile.TemporaryDirectory() as log_dir:
        for label, obs_dim, discrete, action_dim in PROBLEMS:
            problem = shapes(obs_dim, discrete, action_dim)
            for stage in ("idm", "policy"):
                table = synthetic_table(stage, obs_dim, discrete, action_dim, 2**16)
                for batch_size in (256, 4096):
                    steps = (60 if batch_size == 256 else 8) if short else (1500 if batch_size == 256 else 150)
                    loader = BatchLoader(table, torch.arange(len(table)), batch_size, shuffle=True, seed=0)
                    # the same batches, grouped as `bco run` serves them: several optimiser steps per Lightning step
                    grouped = BatchLoader(table, torch.arange(len(table)), batch_size, shuffle=True, seed=0, group=DEFAULT_BATCHES_PER_STEP)
                    plain_samples_per_second(make_module(stage, problem, table), loader, max(2, steps // 10), device)  # warm-up
                    plain, lightning = [], []
                    for repeat in range(repeats):
                        if repeat % 2 == 0:
                            plain.append(plain_samples_per_second(make_module(stage, problem, table), loader, steps, device))
                        lightning.append(lightning_samples_per_second(make_module(stage, problem, table), grouped, steps, log_dir, device))
                        if repeat % 2 == 1:
                            plain.append(plain_samples_per_second(make_module(stage, problem, table), loader, steps, device))
                    ratios = [ours / reference for ours, reference in zip(lightning, plain)]
                    extra_seconds = [batch_size / ours - batch_size / reference for ours, reference in zip(lightning, plain)]
                    flops = training_flops_per_sample(make_module(stage, problem, table))
                    median_lightning = float(np.median(lightning))
                    rows.append({
                        "problem": label,
                        "stage": stage,
                        "batch": batch_size,
                        "plain": float(np.median(plain)),
                        "lightning": median_lightning,
                        "ratio": float(np.median(ratios)),
                        "ratio_range": (min(ratios), max(ratios)),
                        "extra_seconds_per_step": float(np.median(extra_seconds)),
                        "peak_share": median_lightning * flops / peak,
                    })
                    print(f"train {label} {stage} batch {batch_size}: pair ratios {' '.join(f'{r:.2f}' for r in ratios)}", flush=True)
    return rows


def plain_env_steps_per_second(env_id: str, policy: Any, steps: int, seed: int) -> float:
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        action = policy(np.asarray(obs, dtype=np.float32)[None])[0]
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
    seconds = time.perf_counter() - start
    env.close()
    return steps / seconds


def async_steps_per_second(env_id: str, policy: Any, steps: int, num_envs: int, seed: int) -> float:
    """The same batched policy on worker processes (`AsyncVectorEnv`), stepping only."""
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="async")
    obs, _ = envs.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps // num_envs):
        obs, *_ = envs.step(policy(np.asarray(obs, dtype=np.float32)))
    seconds = time.perf_counter() - start
    envs.close()
    return (steps // num_envs) * num_envs / seconds


def rollout_table(short: bool) -> list[dict[str, Any]]:
    rows = []
    for env_id in ("CartPole-v1", "HalfCheetah-v5"):
        data = BCODataModule(env_id=env_id, expert_path=f"data/{env_id}.npz", pre_demo_steps=10)
        policy_module = BCPolicyModule(**data.model_shapes)
        policy = policy_module.as_policy()
        steps = 2_000 if short else 20_000
        plain = plain_env_steps_per_second(env_id, policy, steps, seed=0)
        start = time.perf_counter()
        collect_transitions(env_id, None, steps, seed=0, policy=policy, num_envs=data.num_envs)
        collector = steps / (time.perf_counter() - start)
        episodes = 8 if short else 32
        start = time.perf_counter()
        result = evaluate_policy(env_id, None, policy, episodes, seed=0, num_envs=min(episodes, 32))
        evaluator = float(result.lengths.sum()) / (time.perf_counter() - start)
        workers = async_steps_per_second(env_id, policy, steps, data.num_envs, seed=0)
        rows.append({"env": env_id, "plain": plain, "collector": collector, "evaluator": evaluator, "async": workers, "ratio": collector / plain})
        print(f"rollouts {env_id}: plain {plain:,.0f}/s collector {collector:,.0f}/s evaluator {evaluator:,.0f}/s async {workers:,.0f}/s", flush=True)
    return rows


def timed_process(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def end_to_end(seeds: list[int], repeats: int) -> list[dict[str, Any]]:
    """`bco run --seed_everything S` against the plain script with `--seed S`, for each seed, as
    five whole processes: `bco run` with its default `--torch_threads auto` and with 1 thread; the
    plain script on 1 thread with its own early stopping, with the epochs `bco run` trained
    (`--epochs_from`, the same optimiser steps: the framework's cost), and on 2 threads throughout
    (what using both cores gives a plain script). Each time is the best of `repeats`."""
    script = Path(sys.executable).with_name("bco")
    bco = [str(script)] if script.exists() else [sys.executable, "-m", "bco_lightning.cli"]  # not installed: from the checkout
    plain = [sys.executable, str(ROOT / "benchmarks" / "plain_bco.py")]
    rows = []
    with tempfile.TemporaryDirectory() as work:

        def summary_path(name: str, seed: int, repeat: int) -> str:
            return f"{work}/{name}{seed}-{repeat}.json"

        for seed in seeds:
            # each program's command, less its --summary_path; "plain_same_steps" reads the summary "bco_1" wrote just before it
            arguments = {
                "bco": lambda i: [*bco, "run", "--seed_everything", str(seed)],
                "bco_1": lambda i: [*bco, "run", "--seed_everything", str(seed), "--torch_threads", "1"],
                "plain": lambda i: [*plain, "--seed", str(seed)],
                "plain_same_steps": lambda i: [*plain, "--seed", str(seed), "--epochs_from", summary_path("bco_1", seed, i)],
                "plain_2": lambda i: [*plain, "--seed", str(seed), "--threads", "2"],
            }
            times: dict[str, list[float]] = {name: [] for name in arguments}
            for i in range(repeats):
                for name, command in arguments.items():
                    times[name].append(timed_process([*command(i), "--summary_path", summary_path(name, seed, i)], Path(work)))
            row: dict[str, Any] = {"seed": seed}
            for name, values in times.items():
                summary = json.loads(Path(summary_path(name, seed, 0)).read_text())
                steps = sum(entry.get("optimizer_steps", 0) for entry in summary["history"]) if name.startswith("bco") else summary["optimizer_steps"]
                row[name] = {"seconds": min(values), "score": summary["normalized_score"], "env_steps": summary["env_steps"], "optimizer_steps": steps}
            for name, against in (("plain", "bco_1"), ("plain_same_steps", "bco_1"), ("plain_2", "bco")):
                row[name]["ratio"] = row[against]["seconds"] / row[name]["seconds"]
            print(
                f"end to end, seed {seed}: bco run {row['bco']['seconds']:.1f} s (1 thread {row['bco_1']['seconds']:.1f} s), "
                f"plain script {row['plain']['seconds']:.1f} s (1-thread ratio {row['plain']['ratio']:.2f}), "
                f"same steps {row['plain_same_steps']['seconds']:.1f} s (ratio {row['plain_same_steps']['ratio']:.2f}), "
                f"2 threads {row['plain_2']['seconds']:.1f} s (ratio {row['plain_2']['ratio']:.2f})",
                flush=True,
            )
            rows.append(row)
    return rows


def current_rss() -> int:
    """Resident memory of this process now, in bytes (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def scaling_child(size: int, batch_size: int) -> None:
    """One IDM epoch (and its validation) on `size` synthetic HalfCheetah-sized transitions."""
    torch.set_num_threads(1)
    data = BCODataModule(env_id="HalfCheetah-v5", expert_path="data/HalfCheetah-v5.npz", batch_size=batch_size, seed=0)
    data.expert  # load the (small) expert file before the baseline
    baseline = current_rss()
    generator = np.random.default_rng(0)
    observations = generator.standard_normal((size + 1, 17), dtype=np.float32)
    actions = generator.random((size, 6), dtype=np.float32)
    actions *= 2
    actions -= 1
    index = np.arange(size, dtype=np.int64)
    data.add_interaction(Transitions(observations, actions, index, index + 1))
    raw = observations.nbytes + actions.nbytes
    idm = IDMModule(**data.model_shapes)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, callbacks=[FitNormalizers()],
    )
    start = time.perf_counter()
    trainer.fit(idm, datamodule=data)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"size": size, "seconds": seconds, "raw_bytes": raw, "obs_bytes": observations.nbytes, "baseline": baseline, "peak": peak}))


def scaling_table(sizes: list[int], batch_size: int) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        output = subprocess.run(
            [sys.executable, __file__, "--scaling-child", str(size), "--batch-size", str(batch_size)],
            check=True, capture_output=True, text=True,
        ).stdout
        row = json.loads(output.strip().splitlines()[-1])
        row["growth"] = (row["peak"] - row["baseline"]) / row["raw_bytes"]
        rows.append(row)
        print(f"scaling {size:.0e}: {row['seconds']:.1f} s, peak {row['peak'] / 2**30:.2f} GiB, growth {row['growth']:.2f}x raw", flush=True)
    return rows


def machine(device: str) -> str:
    gpu = f", GPU {torch.cuda.get_device_name()}" if device == "cuda" else ""
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s)"


def report(args: argparse.Namespace, peak: float, training: list, rollouts: list, e2e: list | None, scaling: list) -> str:
    command = " ".join(["python benchmarks/throughput.py", *sys.argv[1:]])
    lines = [
        "# Throughput",
        "",
        f"`{command}` on {machine(args.device)}.",
        f"Practical peak (large float32 matmul on {args.device}): {peak / 1e9:,.1f} GFLOP/s.",
        "",
        "## 1. Training: samples/s, Lightning `Trainer` vs a plain loop (same module, data, batch, optimiser)",
        "",
        f"Each row: {args.repeats} back-to-back pairs of runs, in alternating order; medians of each program's samples/s,",
        "and the median and range of the pairs' ratios (Lightning / plain) and the median of their difference in time",
        "per optimiser step.",
        "",
        "| problem | stage | batch | plain | Lightning | ratio (median) | ratios (range) | Lightning's extra time per step | share of peak FLOP/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in training:
        extra_us = r["extra_seconds_per_step"] * 1e6
        lines.append(
            f"| {r['problem']} | {r['stage']} | {r['batch']} | {r['plain']:,.0f} | {r['lightning']:,.0f} | {r['ratio']:.2f} | "
            f"{r['ratio_range'][0]:.2f} to {r['ratio_range'][1]:.2f} | "
            f"{extra_us:.0f} us | {r['peak_share']:.0%} |"
        )
    lines += [
        "",
        "## 2. Rollouts: environment steps/s, vector-env collector and evaluator vs a plain single-env loop (same policy)",
        "",
        "| environment | plain loop | collector (16 sub-envs) | evaluator | 16 worker processes (async, stepping only) | collector / plain |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rollouts:
        lines.append(f"| {r['env']} | {r['plain']:,.0f} | {r['collector']:,.0f} | {r['evaluator']:,.0f} | {r['async']:,.0f} | {r['ratio']:.1f} |")
    lines += ["", "## 3. End to end: `bco run` (default CartPole job) vs `benchmarks/plain_bco.py`, whole processes", ""]
    if e2e is None:
        lines.append("Skipped (`--short`, or not among `--sections`).")
    else:
        lines += [
            "Early stopping ends each stage where its validation loss stalls, which depends on the split and",
            "the shuffles, so the plain script on its own trains for other epochs than `bco run`. \"Same",
            "steps\" gives it `bco run`'s epochs per stage (`--epochs_from`): the framework's cost alone.",
            "The 1-thread ratios compare `bco run --torch_threads 1` with the plain script on 1 thread; the",
            "last ratio compares `bco run` as it comes (`--torch_threads auto`: training on whichever",
            "thread count is fastest, the rest on 1) with the plain script on 2 threads throughout. Times",
            "are the best of the repeats; every program scored 1.000 unless noted.",
            "",
            "| seed | `bco run` s | `--torch_threads 1` s | optimiser steps | `plain_bco.py` s | its steps | 1-thread ratio | "
            "plain, same steps, s | 1-thread ratio, same steps | `plain_bco.py --threads 2` s | `bco run` / that |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        names = ("bco", "bco_1", "plain", "plain_same_steps", "plain_2")
        for r in e2e:
            low_scores = [f"{name} {r[name]['score']:.3f}" for name in names if r[name]["score"] < 1.0]
            note = f" (scores: {', '.join(low_scores)})" if low_scores else ""
            lines.append(
                f"| {r['seed']}{note} | {r['bco']['seconds']:.1f} | {r['bco_1']['seconds']:.1f} | {r['bco_1']['optimizer_steps']:,} | "
                f"{r['plain']['seconds']:.1f} | {r['plain']['optimizer_steps']:,} | {r['plain']['ratio']:.2f} | "
                f"{r['plain_same_steps']['seconds']:.1f} | {r['plain_same_steps']['ratio']:.2f} | {r['plain_2']['seconds']:.1f} | {r['plain_2']['ratio']:.2f} |"
            )
        if len(e2e) > 1:
            mean = {name: float(np.mean([r[name]["seconds"] for r in e2e])) for name in names}
            steps = {name: float(np.mean([r[name]["optimizer_steps"] for r in e2e])) for name in ("bco_1", "plain")}
            lines.append(
                f"| mean | {mean['bco']:.1f} | {mean['bco_1']:.1f} | {steps['bco_1']:,.0f} | {mean['plain']:.1f} | {steps['plain']:,.0f} | "
                f"{mean['bco_1'] / mean['plain']:.2f} | {mean['plain_same_steps']:.1f} | {mean['bco_1'] / mean['plain_same_steps']:.2f} | "
                f"{mean['plain_2']:.1f} | {mean['bco'] / mean['plain_2']:.2f} |"
            )
    lines += [
        "",
        f"## 4. Scaling: one IDM epoch (+ validation) on synthetic 17-dim transitions, batch {args.batch_size}, fresh process each",
        "",
        "| transitions | seconds | s per 1e6 | raw obs + actions | peak RSS | (peak - baseline) / raw |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in scaling:
        lines.append(
            f"| {r['size']:.0e} | {r['seconds']:.1f} | {r['seconds'] / r['size'] * 1e6:.1f} | {r['raw_bytes'] / 2**20:,.0f} MiB | "
            f"{r['peak'] / 2**20:,.0f} MiB | {r['growth']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="CI smoke mode: few steps, scaling up to 1e5")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "throughput.md"))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the training section runs")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="which sections to run")
    parser.add_argument("--e2e-seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the end-to-end runs (the default job's acceptance seeds)")
    parser.add_argument("--repeats", type=int, help="pairs of training runs per row (default 5, --short 1)")
    parser.add_argument("--scaling-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scaling_child:
        scaling_child(args.scaling_child, args.batch_size)
        return
    if args.repeats is None:
        args.repeats = 1 if args.short else 5
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    torch.set_num_threads(1)
    pl.seed_everything(0, verbose=False)
    peak = matmul_flops_per_second(args.device)
    wanted = set(args.sections)
    training = training_table(args.short, peak, args.device, args.repeats) if "training" in wanted else []
    rollouts = rollout_table(args.short) if "rollouts" in wanted else []
    e2e = None if args.short or "end-to-end" not in wanted else end_to_end(args.e2e_seeds, repeats=2)
    sizes = [10_000, 100_000] if args.short else [10_000, 100_000, 1_000_000, 10_000_000]
    scaling = scaling_table(sizes, args.batch_size) if "scaling" in wanted else []
    text = report(args, peak, training, rollouts, e2e, scaling)
    atomic_write(Path(args.output), lambda handle: handle.write(text.encode()))
    print(text)


if __name__ == "__main__":
    main()
