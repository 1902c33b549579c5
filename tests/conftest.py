"""Shared fixtures: small real expert files, broken-file builders and a `bco` subprocess runner.

Torch runs on one thread: on a 2-core machine, small-MLP training collapses when threads
oversubscribe the cores (see DESIGN.md's pitfalls), and the suite must stay fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from bco_lightning.data.expert_file import ExpertDemonstrations, save_expert_file
from bco_lightning.demonstrators import cartpole_controller, pendulum_controller, record_episodes

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CARTPOLE = REPO_ROOT / "data" / "CartPole-v1.npz"

# Environment of every `bco` subprocess: one torch thread, as above.
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


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def cartpole_demos() -> ExpertDemonstrations:
    """Three scripted CartPole episodes (500 steps each), with true actions."""
    return record_episodes("CartPole-v1", cartpole_controller, episodes=3, seed=0)


@pytest.fixture(scope="session")
def pendulum_demos() -> ExpertDemonstrations:
    return record_episodes("Pendulum-v1", pendulum_controller, episodes=2, seed=0)


@pytest.fixture
def cartpole_file(tmp_path: Path, cartpole_demos: ExpertDemonstrations) -> Path:
    return save_expert_file(tmp_path / "cartpole.npz", cartpole_demos)


@pytest.fixture
def pendulum_file(tmp_path: Path, pendulum_demos: ExpertDemonstrations) -> Path:
    return save_expert_file(tmp_path / "pendulum.npz", pendulum_demos)


def _valid_arrays(demos: ExpertDemonstrations) -> dict[str, np.ndarray]:
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


@pytest.fixture
def make_broken_file(tmp_path: Path, cartpole_demos: ExpertDemonstrations) -> Callable[[str], tuple[Path, tuple[str, ...]]]:
    """`make_broken_file(kind)` writes one broken file and returns it with the words its error needs."""

    def make(kind: str) -> tuple[Path, tuple[str, ...]]:
        build, words = BROKEN_FILES[kind]
        path = tmp_path / f"broken_{kind}.npz"
        build(path, _valid_arrays(cartpole_demos))
        return path, words

    return make


def assert_names_problem(message: str, path: Path, words: tuple[str, ...]) -> None:
    assert str(path) in message, f"error does not name the file: {message!r}"
    lowered = message.lower()
    for word in words:
        assert word.lower() in lowered, f"error does not say {word!r}: {message!r}"

