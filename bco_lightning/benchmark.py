"""`bco benchmark`: BCO(0), BCO(alpha) and behavioural cloning on true actions, per environment and
seed, plus a sweep over the number of demonstration episodes; writes a Markdown report and a plot.

Every cell (environment, method or sweep point, seed) is one `bco run` in a fresh process whose
summary is kept under the work folder; a finished cell is never run again, so a long benchmark can
be completed across several sittings with the same command. BCO(0) is not trained again where the
BCO(alpha) run of the same seed exists: its first policy is that run (`first_policy`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from jsonargparse import ArgumentParser

from bco_lightning.atomic import atomic_write
from bco_lightning.data.expert_file import load_expert_file
from bco_lightning.errors import ConfigError
from bco_lightning.resources import resolve_expert_path, shipped_configs


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    flags: tuple[str, ...]


METHODS = {
    "bco0": Method("bco0", "BCO(0)", ("--alpha", "0", "--iterations", "0")),
    "bco_alpha": Method("bco_alpha", "BCO(alpha)", ()),  # the config's alpha and iterations
    "bc": Method("bc", "BC on true actions", ("--labels", "true_actions", "--iterations", "0")),
}
# Environments with a shipped demonstrator, by shipped config name (bco_lightning/configs/NAME.yaml).
ENVIRONMENTS = [
    "cartpole", "mountaincar", "acrobot", "lunarlander", "lunarlander_continuous", "pendulum", "mountaincar_continuous",
    "inverted_pendulum", "reacher", "halfcheetah", "hopper", "walker2d", "ant",
]
# Learning from camera frames (`--data.observation pixels`): the same pipeline on rendered frames.
PIXEL_ENVIRONMENTS = ["cartpole-pixels", "pendulum-pixels", "carracing-pixels", "carracing-discrete-pixels"]
SWEEP_EPISODES = (1, 5, 10, 25)
TARGET_SCORE = 0.95  # the normalised score BCO(alpha) should reach on state vectors (the benchmark issue's bar)
# Frames hide what state vectors give away (velocities, the exact pose), so their bars are lower.
PIXEL_TARGET_SCORES = {"cartpole-pixels": 0.9, "pendulum-pixels": 0.9, "carracing-pixels": 0.8, "carracing-discrete-pixels": 0.8}


def target_score(env: str) -> float:
    return PIXEL_TARGET_SCORES.get(env, TARGET_SCORE)


def config_path(name: str) -> Path:
    """The shipped config `name` (the benchmark runs the package's own configs, from any folder)."""
    configs = shipped_configs()
    if name not in configs:
        raise ConfigError(f"no config configs/{name}.yaml; known environments: {', '.join(configs)}")
    return configs[name]


def expert_episodes(env: str) -> int | None:
    """Episodes in the config's expert file (None for a Minari dataset or a file that is not there)."""
    config = yaml.safe_load(config_path(env).read_text())
    path = resolve_expert_path(str(config.get("data", {}).get("expert_path", "")))
    return load_expert_file(path).num_episodes if path.is_file() else None


def run_cell(env: str, cell: str, seed: int, flags: tuple[str, ...], workdir: Path, run_missing: bool = True) -> dict[str, Any] | None:
    """The summary of one `bco run`, from disk when this cell finished before; None for a cell
    that is not on disk when `run_missing` is False."""
    summary_path = workdir / env / cell / f"seed{seed}.json"
    if summary_path.is_file():
        return json.loads(summary_path.read_text())
    if not run_missing:
        return None
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "bco_lightning.cli", "run", "--config", str(config_path(env)), "--seed_everything", str(seed),
        "--log_root", str(workdir / env / cell / "logs"), "--summary_path", str(summary_path),
        "--quiet", "true", "--video", "false", *flags,
    ]
    print(f"bco benchmark: {env} {cell} seed {seed} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"{env} {cell} seed {seed} failed (exit {result.returncode}): {last}")
    summary = json.loads(summary_path.read_text())
    print(f"bco benchmark: {env} {cell} seed {seed}: score {summary['normalized_score']:.3f}, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return summary


FIRST_POLICY_FIELDS = (
    "env_id", "demonstrator_return", "random_return", "expert_episodes", "expert_transitions", "eval_episodes",
    "pre_demo_steps", "labels", "seed", "world_size",
)


def first_policy(alpha_run: dict[str, Any]) -> dict[str, Any]:
    """The BCO(0) summary read off a BCO(alpha) run of the same config and seed.

    A BCO(alpha) run's first policy is trained on the pre-demonstration interaction alone, with the
    same data, steps and seeds as `bco run --alpha 0 --iterations 0`, and evaluated on the same
    episodes (a test runs both and compares them), so the benchmark trains it once. Its wall time is
    that of the run's first two units where the run recorded them.
    """
    first = [entry for entry in alpha_run["history"] if entry["iteration"] == 0]
    policy = next(entry for entry in first if entry["stage"] == "policy")
    seconds = [entry.get("wall_seconds") for entry in first]
    return {
        **{key: alpha_run[key] for key in FIRST_POLICY_FIELDS if key in alpha_run},
        "normalized_score": policy["eval/normalized_score"],
        "eval_return_mean": policy["eval/return_mean"],
        "eval_return_std": policy["eval/return_std"],
        "env_steps": alpha_run["pre_demo_steps"],
        "post_demo_steps": 0,
        "iterations_run": 0,
        "wall_seconds": sum(seconds) if None not in seconds else None,
        "first_policy_of": "bco_alpha",
    }


def _scores(summaries: list[dict[str, Any]]) -> list[float]:
    return [s["normalized_score"] for s in summaries if s.get("normalized_score") is not None]


def _mean_and_std(summaries: list[dict[str, Any]]) -> tuple[float, float]:
    """NaN for a cell with no runs, so that the plot leaves its bar out instead of drawing a zero."""
    scores = _scores(summaries)
    return (float(np.mean(scores)), float(np.std(scores))) if scores else (float("nan"), float("nan"))


def _mean_std(summaries: list[dict[str, Any]]) -> str:
    mean, std = _mean_and_std(summaries)
    return f"{mean:.3f} ± {std:.3f}" if _scores(summaries) else "n/a"


def _wall_seconds(summary: dict[str, Any]) -> float | None:
    """The whole run's wall time: a cell finished across sittings (`--resume`) counts every sitting.
    None for a BCO(0) cell read off a BCO(alpha) run that did not time its units."""
    seconds = summary.get("wall_seconds_all_sittings", summary["wall_seconds"])
    return None if seconds is None else float(seconds)


def _mean_wall(summaries: list[dict[str, Any]]) -> str:
    seconds = [s for s in map(_wall_seconds, summaries) if s is not None]
    return f"{np.mean(seconds):.0f}" if seconds else "n/a"


def _sweep_point(summaries: list[dict[str, Any]]) -> str:
    return f"{_mean_std(summaries)} ({len(summaries)} seed{'s' if len(summaries) != 1 else ''})" if summaries else "n/a"


def report(results: dict[str, dict[str, list[dict[str, Any]]]], sweep: dict[str, dict[int, list[dict[str, Any]]]], methods: list[str], command: str) -> str:
    """The Markdown report: one row per environment, then the demonstration-count sweep."""
    every_cell = [s for by_method in results.values() for cell in by_method.values() for s in cell]
    every_cell += [s for by_count in sweep.values() for cell in by_count.values() for s in cell]
    counts = sorted({int(s["eval_episodes"]) for s in every_cell if s.get("eval_episodes") is not None})
    episodes = " or ".join(str(n) for n in counts) if counts else "no"
    lines = [
        "# Benchmark",
        "",
        f"`{command}`, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores. Normalised score = "
        f"(R - R_random) / (R_demonstrator - R_random), mean ± std over seeds; each run evaluates {episodes} episodes. "
        "Interactions are environment steps before (`pre`) and after (`post`, mean over seeds: BCO(alpha) stops "
        "iterating once its kept policy matches the demonstrator on the selection episodes) the demonstrations; "
        "BC on true actions uses none.",
        "",
        "| environment | demonstrator return | random return | demo episodes | " + " | ".join(METHODS[m].label for m in methods)
        + " | interactions pre + post (BCO(alpha), else BCO(0)) | seeds | wall s per run (" + ", ".join(METHODS[m].label for m in methods) + ") |",
        "|---|---:|---:|---:|" + "---:|" * len(methods) + "---:|---:|---|",
    ]
    below: list[str] = []  # BCO(alpha) rows under the target, named after the table
    for env, by_method in results.items():
        first = next(s for runs in by_method.values() for s in runs)
        alpha_runs = by_method.get("bco_alpha") or by_method.get("bco0") or []
        # post-demonstration steps differ by seed where --stop_score ends the iterations early: their mean
        interactions = f"{alpha_runs[0]['pre_demo_steps']:,} + {np.mean([s['post_demo_steps'] for s in alpha_runs]):,.0f}" if alpha_runs else "n/a"
        walls = ", ".join(_mean_wall(by_method.get(m, [])) for m in methods)
        seeds = max(len(runs) for runs in by_method.values())
        name = first["env_id"] + (" (continuous)" if env.endswith("_continuous") and "Continuous" not in first["env_id"] else "")
        name += " (discrete)" if "discrete" in env else ""
        name += " pixels" if env.endswith("pixels") else ""
        lines.append(
            f"| {name} | {first['demonstrator_return']:.1f} | {first['random_return']:.1f} | {first['expert_episodes']} | "
            + " | ".join(_mean_std(by_method.get(m, [])) for m in methods)
            + f" | {interactions} | {seeds} | {walls} |"
        )
        alpha_scores = _scores(by_method.get("bco_alpha", []))
        if alpha_scores and np.mean(alpha_scores) < target_score(env):
            below.append(f"{name} ({np.mean(alpha_scores):.3f}, target {target_score(env)})")
    if "bco_alpha" in methods:
        targets = sorted({target_score(env) for env in results}, reverse=True)
        bar = " or ".join(str(t) for t in targets) + (" (pixels: 0.9, CarRacing 0.8)" if len(targets) > 1 else "")
        lines += [
            "",
            f"BCO(alpha) below its target (mean over seeds): {', '.join(below)}."
            if below
            else f"BCO(alpha) reaches its target of {bar} (mean over seeds) on every environment above.",
        ]
    read_off = sum(s.get("first_policy_of") == "bco_alpha" for by_method in results.values() for s in by_method.get("bco0", []))
    if read_off:
        lines += [
            "",
            f"{read_off} of the BCO(0) cells are the first policy of the BCO(alpha) run of the same seed (the same training "
            "and evaluation as a run with `--alpha 0 --iterations 0`), not a second run; their wall time is that run's first two units.",
        ]
    if sweep:
        counts = sorted({n for by_count in sweep.values() for n in by_count})
        lines += [
            "",
            "## Demonstration episodes (BCO(alpha), normalised score)",
            "",
            "| environment | " + " | ".join(f"{n} episode{'s' if n > 1 else ''}" for n in counts) + " |",
            "|---|" + "---:|" * len(counts),
        ]
        for env, by_count in sweep.items():
            env_id = next(s for runs in by_count.values() for s in runs)["env_id"]
            lines.append(f"| {env_id} | " + " | ".join(_sweep_point(by_count.get(n, [])) for n in counts) + " |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict[str, list[dict[str, Any]]]], sweep: dict[str, dict[int, list[dict[str, Any]]]], methods: list[str], path: Path) -> None:
    """Bars of the normalised score per environment and method; beside them, the sweep's curves.
    matplotlib is the optional `plots` extra (it is not needed to train); without it, no figure."""
    try:
        import matplotlib
    except ImportError:
        print(f"bco benchmark: note: no {path} (needs matplotlib: pip install -e '.[plots]')", file=sys.stderr)
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = [max(2, len(results)), 1.2] if sweep else [1]
    figure, axes = plt.subplots(1, len(ratios), figsize=(6 + 0.9 * len(results) + (5 if sweep else 0), 4.5), squeeze=False, gridspec_kw={"width_ratios": ratios})
    bars = axes[0][0]
    width = 0.8 / len(methods)
    for k, method in enumerate(methods if results else []):
        means, stds = zip(*(_mean_and_std(results[env].get(method, [])) for env in results))
        offsets = np.arange(len(results)) + (k - (len(methods) - 1) / 2) * width
        bars.bar(offsets, means, width, yerr=stds, capsize=3, label=METHODS[method].label)
    bars.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    bars.set_xticks(np.arange(len(results)), [env.replace("_", "\n") for env in results], fontsize=8)
    bars.set_ylabel("normalised score")
    bars.set_title("score per environment and method (mean ± std over seeds)")
    if results:
        bars.legend(fontsize=8, loc="lower left")
    if sweep:
        curve = axes[0][1]
        for env, by_count in sweep.items():
            counts = [n for n in sorted(by_count) if _scores(by_count[n])]
            means, stds = zip(*(_mean_and_std(by_count[n]) for n in counts))
            curve.errorbar(counts, means, yerr=stds, marker="o", capsize=3, label=env)
        ticks = sorted({n for by_count in sweep.values() for n in by_count})
        curve.set_xscale("log")
        curve.set_xticks(ticks, [str(n) for n in ticks])
        curve.set_ylim(0, 1.2)
        curve.set_xlabel("demonstration episodes")
        curve.set_title("BCO(alpha) vs demonstrations", fontsize=9)
        curve.legend(fontsize=8)
    figure.tight_layout()
    atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=110))
    plt.close(figure)


def benchmark(
    envs: list[str],
    methods: list[str],
    seeds: list[int],
    sweep_envs: list[str],
    sweep_episodes: list[int],
    sweep_seeds: list[int],
    workdir: Path,
    output: Path,
    plot_path: Path,
    command: str,
    run_missing: bool = True,
) -> str:
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {', '.join(unknown)}; expected some of {', '.join(METHODS)}")
    for env in [*envs, *sweep_envs]:
        config_path(env)
    if any(n < 1 for n in sweep_episodes):
        raise ConfigError(f"--sweep_episodes must be >= 1, got {sweep_episodes}")

    def cells(runs: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
        return [summary for summary in runs if summary is not None]

    def bco0_cell(env: str, seed: int) -> dict[str, Any] | None:
        """A BCO(0) run on disk, else the first policy of the BCO(alpha) run (run first when that
        method is asked for too), else a BCO(0) run."""
        on_disk = run_cell(env, "bco0", seed, METHODS["bco0"].flags, workdir, run_missing=False)
        if on_disk is not None:
            return on_disk
        alpha_run = run_cell(env, "bco_alpha", seed, METHODS["bco_alpha"].flags, workdir, run_missing and "bco_alpha" in methods)
        return first_policy(alpha_run) if alpha_run is not None else run_cell(env, "bco0", seed, METHODS["bco0"].flags, workdir, run_missing)

    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for env in envs:
        results[env] = {
            m: cells([bco0_cell(env, seed) if m == "bco0" else run_cell(env, m, seed, METHODS[m].flags, workdir, run_missing) for seed in seeds])
            for m in methods
        }
    sweep: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for env in sweep_envs:
        available = expert_episodes(env)
        sweep[env] = {}
        for n in sweep_episodes:
            whole_file = available is not None and n >= available  # the BCO(alpha) cell itself
            cell, flags = ("bco_alpha", METHODS["bco_alpha"].flags) if whole_file else (f"episodes{n}", ("--data.max_expert_episodes", str(n)))
            sweep[env][n] = cells([run_cell(env, cell, seed, flags, workdir, run_missing) for seed in sweep_seeds])
    results = {env: by_method for env, by_method in results.items() if any(by_method.values())}
    sweep = {env: by_count for env, by_count in sweep.items() if any(by_count.values())}
    text = report(results, sweep, methods, command)
    atomic_write(output, lambda handle: handle.write(text.encode()))
    plot(results, sweep, methods, plot_path)
    return text


def benchmark_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="bco benchmark", description=__doc__)
    parser.add_argument(
        "--envs", type=list[str], default=ENVIRONMENTS + PIXEL_ENVIRONMENTS,
        help="names of shipped configs (bco_lightning/configs/NAME.yaml); the pixel ones learn from camera frames",
    )
    parser.add_argument("--methods", type=list[str], default=list(METHODS), help="bco0, bco_alpha, bc")
    parser.add_argument("--seeds", type=list[int], default=[0, 1, 2])
    parser.add_argument("--sweep_envs", type=list[str], default=["cartpole", "halfcheetah"], help="environments of the demonstration-count sweep")
    parser.add_argument("--sweep_episodes", type=list[int], default=list(SWEEP_EPISODES), help="demonstration episodes per sweep point")
    parser.add_argument("--sweep_seeds", type=list[int], default=[0, 1, 2])
    parser.add_argument("--workdir", type=str, default="benchmarks/runs/benchmark", help="finished cells are kept and reused here")
    parser.add_argument("--output", type=str, default="benchmarks/results.md")
    parser.add_argument("--plot", type=str, default="benchmarks/results.png")
    parser.add_argument("--run_missing", type=bool, default=True, help="false: report only the cells already on disk (the seeds columns say how many)")
    return parser


def benchmark_command(argv: list[str]) -> None:
    cfg = benchmark_parser().parse_args(argv)
    command = " ".join(["bco benchmark", *argv])
    text = benchmark(
        cfg.envs, cfg.methods, cfg.seeds, cfg.sweep_envs, cfg.sweep_episodes, cfg.sweep_seeds,
        Path(cfg.workdir).resolve(), Path(cfg.output), Path(cfg.plot), command, cfg.run_missing,
    )
    print(text)
