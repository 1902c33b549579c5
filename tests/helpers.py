"""Helpers the tests import (`from helpers import ...`): paths, the `bco` subprocess runner, error
assertions and the broken expert files. Fixtures live in conftest.py; no test imports another test file.

`tests/` has no `__init__.py`, so pytest's default `prepend` import mode puts it on `sys.path`
when it imports conftest.py (which imports this module), before any test module is imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bco_lightning.data.expert_file import ExpertDemonstrations
from bco_lightning.resources import shipped_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DEMONSTRATIONS = shipped_dir("demonstrations")
SHIPPED_CONFIGS = shipped_dir("configs")
SHIPPED_CARTPOLE = SHIPPED_DEMONSTRATIONS / "CartPole-v1.npz"
SB3_MODELS = REPO_ROOT / "benchmarks" / "demonstrators" / "models"

# Environment of every `bco` subprocess: one torch thread, as in conftest.py.
CLI_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def bco_console_script() -> list[str]:
    """The installed `bco` entry point beside this interpreter (the real console script)."""
    script = shutil.which("bco", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "bco_lightning.cli"]


def run_bco(
    args: list[str], cwd: Path, launcher: str = "script", timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `bco ARGS` in a fresh process (cwd decides where lightning_logs/ goes)."""
    command = bco_console_script() if launcher == "script" else [sys.executable, "-m", "bco_lightning.cli"]
    return subprocess.run(
        [*command, *args], cwd=cwd, env=env or CLI_ENV, capture_output=True, text=True, timeout=timeout
    )


def run_reference(args: list[str], tmp_path: Path) -> float:
    """Run `bco ARGS` uninterrupted in `tmp_path/ref` (the summary a resumed run must equal);
    its wall seconds bound how long a run that is to be killed may take."""
    (tmp_path / "ref").mkdir()
    started = time.perf_counter()
    result = run_bco(args, cwd=tmp_path / "ref")
    assert result.returncode == 0, result.stderr
    return time.perf_counter() - started


def killed_run_folders(tmp_path: Path) -> tuple[Path, Path]:
    """`(workdir, run_dir)` of the run a test kills: its own folder, and the run folder `bco run`
    makes there for CartPole-v1."""
    workdir = tmp_path / "killed"
    workdir.mkdir()
    return workdir, workdir / "lightning_logs" / "CartPole-v1" / "version_0"


def assert_workers_change_nothing(env_id: str, env_kwargs: dict | None, steps: int, episodes: int, **options) -> None:
    """`async_envs` moves stepping into worker processes and nothing else: `collect_transitions` gives
    the same arrays and `evaluate_policy` the same returns (3 sub-envs; `options` go to both, and
    `random_play` to the collection only)."""
    from bco_lightning.data.rollouts import collect_transitions, evaluate_policy

    random_play = options.pop("random_play", None)
    sync, workers = (
        collect_transitions(env_id, env_kwargs, steps, seed=2, num_envs=3, random_play=random_play, async_envs=a, **options)
        for a in (False, True)
    )
    for name in ("observations", "actions", "obs_index", "next_index", "previous_row"):
        if getattr(sync, name) is not None:
            np.testing.assert_array_equal(getattr(workers, name), getattr(sync, name), err_msg=name)
    assert np.ptp(sync.observations) > 0  # real observations, not blanks that would match anyway
    returns = [evaluate_policy(env_id, env_kwargs, None, episodes, seed=9, num_envs=3, async_envs=a, **options).returns for a in (False, True)]
    np.testing.assert_array_equal(returns[1], returns[0])


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_one_line_error(result, *words: str) -> str:
    """Exit status 2, no traceback, and one stderr line that says each of `words`; that line."""
    assert result.returncode == 2, f"exit {result.returncode}; stderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1, f"stderr is not one line:\n{result.stderr}"
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


def assert_names_problem(message: str, path: Path, words: tuple[str, ...]) -> None:
    assert str(path) in message, f"error does not name the file: {message!r}"
    lowered = message.lower()
    for word in words:
        assert word.lower() in lowered, f"error does not say {word!r}: {message!r}"


# A short seeded `bco run`, and its summary without what differs between two identical runs.
# Keys that name places or time, not results (history entries carry their unit's wall_seconds too).
VOLATILE = {"wall_seconds", "wall_seconds_all_sittings", "log_dir", "idm_checkpoint", "policy_checkpoint"}


def small_run_args(expert: Path, summary: Path) -> list[str]:
    return [
        "run", "--data.expert_path", str(expert), "--data.pre_demo_steps", "3000",
        "--alpha", "0.1", "--iterations", "3", "--stop_score", "null", "--eval_episodes", "4",
        "--idm_max_epochs", "4", "--policy_max_epochs", "4", "--seed_everything", "3",
        "--summary_path", str(summary),
    ]


def stable(summary_path: Path) -> dict:
    summary = json.loads(summary_path.read_text())
    summary["history"] = [{k: v for k, v in entry.items() if k != "wall_seconds"} for entry in summary["history"]]
    return {k: v for k, v in summary.items() if k not in VOLATILE}


# Runs in a fresh interpreter where importing bco_lightning fails: the file must need torch only.
FRESH_PROCESS_EVALUATION = """
import sys
sys.modules["bco_lightning"] = None  # any import of it now raises ImportError
import gymnasium as gym, numpy as np, torch
policy = torch.jit.load(sys.argv[1])
episodes, seed = int(sys.argv[2]), int(sys.argv[3])
envs = gym.make_vec("CartPole-v1", num_envs=episodes)
obs, _ = envs.reset(seed=seed)
returns, done = np.zeros(episodes), np.zeros(episodes, dtype=bool)
while not done.all():
    with torch.no_grad():
        actions = policy(torch.as_tensor(obs, dtype=torch.float32)).numpy()
    assert actions.dtype == np.int64
    obs, reward, terminated, truncated, _ = envs.step(actions)
    returns += np.where(done, 0.0, reward)
    done |= terminated | truncated
print(returns.mean())
"""


def exported_return_in_fresh_process(policy_file: Path, episodes: int, seed: int) -> float:
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_EVALUATION, str(policy_file), str(episodes), str(seed)],
        env=CLI_ENV, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return float(result.stdout.strip().splitlines()[-1])


def valid_arrays(demos: ExpertDemonstrations) -> dict[str, np.ndarray]:
    return {
        "observations": demos.observations.copy(),
        "episode_lengths": demos.episode_lengths.copy(),
        "episode_returns": demos.episode_returns.copy(),
        "env_id": np.array(demos.env_id),
        "actions": demos.actions.copy(),
    }


# Each broken file: how to build it (from valid CartPole arrays) and words its error must contain.
def _truncated(path: Path, arrays: dict[str, np.ndarray]) -> None:
    np.savez_compressed(path, **arrays)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _not_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.write_text("observations,episode_lengths\n0.1,0.2\n")


def _wrong_obs_shape(path: Path, arrays: dict[str, np.ndarray]) -> None:
    arrays["observations"] = arrays["observations"][:, :3].copy()  # 3-dim states for CartPole's 4
    np.savez(path, **arrays)


def _nan(path: Path, arrays: dict[str, np.ndarray]) -> None:
    arrays["observations"][7, 2] = np.nan
    np.savez(path, **arrays)


def _inf(path: Path, arrays: dict[str, np.ndarray]) -> None:
    arrays["observations"][3, 0] = np.inf
    np.savez(path, **arrays)


def _lengths_sum(path: Path, arrays: dict[str, np.ndarray]) -> None:
    arrays["episode_lengths"][-1] -= 5
    np.savez(path, **arrays)


def _missing_observations(path: Path, arrays: dict[str, np.ndarray]) -> None:
    del arrays["observations"]
    np.savez(path, **arrays)


def _missing_lengths(path: Path, arrays: dict[str, np.ndarray]) -> None:
    del arrays["episode_lengths"]
    np.savez(path, **arrays)


def _single_observation_episode(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # A fourth episode made of one observation: lengths still sum to T.
    obs = arrays["observations"]
    arrays["observations"] = np.concatenate([obs, obs[:1]])
    arrays["episode_lengths"] = np.append(arrays["episode_lengths"], 1)
    del arrays["episode_returns"], arrays["actions"]
    np.savez(path, **arrays)


def _empty(path: Path, arrays: dict[str, np.ndarray]) -> None:
    np.savez(path, observations=np.zeros((0, 4), np.float32), episode_lengths=np.zeros(0, np.int64))


def _wrong_actions_rows(path: Path, arrays: dict[str, np.ndarray]) -> None:
    arrays["actions"] = np.append(arrays["actions"], [0, 1, 0])  # T - E + 3 rows
    np.savez(path, **arrays)


BROKEN_FILES: dict[str, tuple[Callable[[Path, dict[str, np.ndarray]], None], tuple[str, ...]]] = {
    "truncated": (_truncated, ("npz",)),
    "not_npz": (_not_npz, ("npz",)),
    "wrong_obs_shape": (_wrong_obs_shape, ("shape", "(3,)", "(4,)")),
    "nan": (_nan, ("nan",)),
    "inf": (_inf, ("inf",)),
    "lengths_sum": (_lengths_sum, ("episode_lengths", "sum")),
    "missing_observations": (_missing_observations, ("missing", "observations")),
    "missing_episode_lengths": (_missing_lengths, ("missing", "episode_lengths")),
    "single_observation_episode": (_single_observation_episode, ("episode 3", "at least 2")),
    "empty": (_empty, ("empty",)),
    "wrong_actions_rows": (_wrong_actions_rows, ("actions", "rows")),
}
