"""LightningCLI stage commands: `bco fit|validate|test --model IDMModule|BCPolicyModule`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bco_lightning.data.expert_file import load_expert_file
from bco_lightning.idm import IDMModule
from bco_lightning.policy import BCPolicyModule
from helpers import SHIPPED_CARTPOLE, assert_names_problem, run_bco, stderr_lines

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu"]


def only_checkpoint(root: Path) -> Path:
    checkpoints = sorted(root.rglob("*.ckpt"))
    assert len(checkpoints) == 1, checkpoints
    return checkpoints[0]


@pytest.fixture(scope="module")
def stage_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stages")


@pytest.fixture(scope="module")
def idm_checkpoint(stage_dir) -> Path:
    result = run_bco(
        ["fit", "--model", "IDMModule", "--data.pre_demo_steps", "2000", "--trainer.max_epochs", "2",
         "--data.random_play.repeat", "2", "--trainer.default_root_dir", str(stage_dir / "idm"), *QUIET],
        cwd=stage_dir,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return only_checkpoint(stage_dir / "idm")


@pytest.fixture(scope="module")
def policy_checkpoint(stage_dir, idm_checkpoint) -> Path:
    result = run_bco(
        ["fit", "--model", "BCPolicyModule", "--data.idm_checkpoint", str(idm_checkpoint), "--trainer.max_epochs", "3",
         "--trainer.default_root_dir", str(stage_dir / "policy"), *QUIET],
        cwd=stage_dir,
    )
    assert result.returncode == 0, result.stderr
    return only_checkpoint(stage_dir / "policy")


def test_fit_idm_writes_a_checkpoint_with_linked_shapes(stage_dir, idm_checkpoint):
    idm = IDMModule.load_from_checkpoint(idm_checkpoint, map_location="cpu")
    assert idm.hparams.obs_dim == 4 and idm.hparams.action_dim == 2 and idm.hparams.discrete is True
    assert bool(idm.net.obs_normalizer.fitted)
    assert (idm_checkpoint.parents[1] / "config.yaml").is_file()
    # the datamodule's settings are plain data, so the checkpoint loads without unpickling classes
    saved = torch.load(idm_checkpoint, map_location="cpu", weights_only=True)
    assert saved["datamodule_hyper_parameters"]["random_play"] == {"repeat": 2, "low": None, "high": None, "probabilities": None, "zero_probability": None}
    # two epochs are enough for CartPole's inverse dynamics: it labels the shipped file correctly
    expert = load_expert_file(SHIPPED_CARTPOLE)
    labels = idm.label(expert.observations, expert.pair_indices())
    assert np.mean(labels == expert.actions) > 0.9


def test_fit_policy_from_idm_checkpoint(policy_checkpoint):
    policy = BCPolicyModule.load_from_checkpoint(policy_checkpoint, map_location="cpu")
    assert policy.hparams.obs_dim == 4 and policy.hparams.discrete is True
    assert bool(policy.net.obs_normalizer.fitted)
    actions = policy.as_policy()(np.zeros((3, 4), np.float32))
    assert actions.shape == (3,) and set(actions) <= {0, 1}


def test_validate_policy_checkpoint(stage_dir, idm_checkpoint, policy_checkpoint):
    result = run_bco(
        ["validate", "--model", "BCPolicyModule", "--data.idm_checkpoint", str(idm_checkpoint),
         "--ckpt_path", str(policy_checkpoint), "--trainer.default_root_dir", str(stage_dir / "validate"), *QUIET],
        cwd=stage_dir,
    )
    assert result.returncode == 0, result.stderr
    assert "val/loss" in result.stdout and "val/accuracy" in result.stdout


def test_test_idm_checkpoint(stage_dir, idm_checkpoint):
    result = run_bco(
        ["test", "--model", "IDMModule", "--data.pre_demo_steps", "2000", "--ckpt_path", str(idm_checkpoint),
         "--trainer.default_root_dir", str(stage_dir / "test"), *QUIET],
        cwd=stage_dir,
    )
    assert result.returncode == 0, result.stderr
    assert "test/accuracy" in result.stdout
    line = next(l for l in result.stdout.splitlines() if "test/accuracy" in l)
    # Lightning prints a plain or (with rich installed) a boxed table: the value is the last number
    assert float(line.replace("│", " ").split()[-1]) > 0.9


def test_fit_policy_without_idm_checkpoint_exits_2(stage_dir):
    result = run_bco(
        ["fit", "--model", "BCPolicyModule", "--trainer.max_epochs", "1",
         "--trainer.default_root_dir", str(stage_dir / "nolabels"), *QUIET],
        cwd=stage_dir,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "idm_checkpoint" in stderr_lines(result)[-1]


def test_fit_with_broken_expert_file_is_one_line(tmp_path, make_broken_file):
    """The expert-file contract holds for the stage commands too: one line, exit 2."""
    path, words = make_broken_file("nan")
    result = run_bco(
        ["fit", "--model", "IDMModule", "--data.expert_path", str(path), "--trainer.max_epochs", "1",
         "--trainer.default_root_dir", str(tmp_path / "root"), *QUIET],
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1, f"stderr is not one line:\n{result.stderr}"
    assert_names_problem(lines[0], path, words)
