"""Shared fixtures: small real expert files and broken-file builders. Helpers that tests import
(the `bco` subprocess runner, paths, assertions) are in helpers.py.

Torch runs on one thread: on a 2-core machine, small-MLP training collapses when threads
oversubscribe the cores (see DESIGN.md's pitfalls), and the suite must stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from bco_lightning.data.expert_file import ExpertDemonstrations, save_expert_file
from bco_lightning.demonstrators import cartpole_controller, pendulum_controller, record_episodes
from helpers import BROKEN_FILES, valid_arrays

torch.set_num_threads(1)


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


@pytest.fixture
def make_broken_file(tmp_path: Path, cartpole_demos: ExpertDemonstrations) -> Callable[[str], tuple[Path, tuple[str, ...]]]:
    """`make_broken_file(kind)` writes one broken file and returns it with the words its error needs."""

    def make(kind: str) -> tuple[Path, tuple[str, ...]]:
        build, words = BROKEN_FILES[kind]
        path = tmp_path / f"broken_{kind}.npz"
        build(path, valid_arrays(cartpole_demos))
        return path, words

    return make
