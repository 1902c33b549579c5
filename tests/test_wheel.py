"""The built wheel works outside the checkout: `bco run` from an empty folder runs the default job.

The wheel is installed with `--no-deps` into a fresh virtualenv that borrows this environment's
already-installed dependencies (torch, Lightning, gymnasium) through a path file, so that the test
needs no download and no second copy of torch, while `bco_lightning` itself, its configs and its
demonstrations can only come from the wheel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environment["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, built as `pip wheel .` builds it."""
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(REPO_ROOT)], cwd=dist)
    (built,) = dist.glob("bco_lightning-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the wheel installed; returns its `bin/`."""
    root = tmp_path_factory.mktemp("installed")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=root)
    site_packages = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    # The dependencies of this environment, after the venv's own packages (the wheel's bco_lightning first).
    (site_packages / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], cwd=root)
    return venv / "bin"


@pytest.mark.slow
def test_installed_wheel_runs_the_default_job_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    where = run([str(installed / "python"), "-c", "import bco_lightning; print(bco_lightning.__file__, bco_lightning.__version__)"], cwd=tmp_path)
    assert str(installed.parent) in where.stdout, f"bco_lightning was not imported from the wheel: {where.stdout}"
    result = run([str(installed / "bco"), "run", "--summary_path", "summary.json"], cwd=tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["env_id"] == "CartPole-v1" and summary["normalized_score"] >= 0.9, result.stdout
    assert Path(summary["log_dir"]).is_relative_to(tmp_path / "lightning_logs" / "CartPole-v1")
    assert "normalized score" in result.stdout


@pytest.mark.slow
def test_installed_wheel_resolves_shipped_configs_and_benchmarks(installed: Path, tmp_path: Path) -> None:
    printed = run([str(installed / "bco"), "run", "--config", "pendulum.yaml", "--print_config"], cwd=tmp_path)
    assert "env_id: Pendulum-v1" in printed.stdout
    also = run([str(installed / "bco"), "run", "--config", "configs/acrobot.yaml", "--print_config"], cwd=tmp_path)
    assert "env_id: Acrobot-v1" in also.stdout
    run(
        [str(installed / "bco"), "benchmark", "--envs", "[mountaincar]", "--methods", "[bc]", "--seeds", "[0]", "--sweep_envs", "[]",
         "--workdir", "cells", "--output", "results.md", "--plot", "results.png"],
        cwd=tmp_path,
    )
    report = (tmp_path / "results.md").read_text()
    assert "MountainCar-v0" in report and (tmp_path / "results.png").is_file()


def test_wheel_contents_are_what_the_package_needs(wheel: Path) -> None:
    """The wheel carries the code, every config and every demonstration, and nothing from tests/ or benchmarks/."""
    from bco_lightning.resources import shipped_dir

    names = set(zipfile.ZipFile(wheel).namelist())
    for kind, pattern in (("configs", "*.yaml"), ("demonstrations", "*.npz")):
        for path in shipped_dir(kind).glob(pattern):
            assert f"bco_lightning/{kind}/{path.name}" in names
    assert "bco_lightning/pipeline.py" in names
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/", "examples/"))]
