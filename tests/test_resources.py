"""Shipped configs and demonstrations stand in only where the user's path does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from bco_lightning.resources import resolve_config_path, resolve_expert_path, shipped_configs, shipped_dir


def test_shipped_names_resolve_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path("cartpole.yaml") == shipped_dir("configs") / "cartpole.yaml"
    assert resolve_config_path("configs/pendulum.yaml") == shipped_dir("configs") / "pendulum.yaml"
    assert resolve_expert_path("data/CartPole-v1.npz") == shipped_dir("demonstrations") / "CartPole-v1.npz"


def test_a_local_file_wins_over_the_shipped_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "cartpole.yaml").write_text("alpha: 0.2\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "CartPole-v1.npz").write_bytes(b"mine")
    assert resolve_config_path("configs/cartpole.yaml") == Path("configs/cartpole.yaml")
    assert resolve_expert_path("data/CartPole-v1.npz") == Path("data/CartPole-v1.npz")


def test_unknown_names_stay_as_given_for_the_caller_to_refuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path("atlantis.yaml") == Path("atlantis.yaml")
    assert resolve_config_path("elsewhere/cartpole.yaml") == Path("elsewhere/cartpole.yaml")
    assert resolve_expert_path("data/Atlantis-v5.npz") == Path("data/Atlantis-v5.npz")
    assert resolve_expert_path("recordings/CartPole-v1.npz") == Path("recordings/CartPole-v1.npz")


def test_every_shipped_config_names_a_shipped_demonstration() -> None:
    import yaml

    configs = shipped_configs()
    assert len(configs) == 17  # 13 environments on state vectors, 4 on camera frames
    for name, path in configs.items():
        expert_path = yaml.safe_load(path.read_text())["data"]["expert_path"]
        assert resolve_expert_path(expert_path).is_file(), f"{name}: {expert_path} is not shipped"
