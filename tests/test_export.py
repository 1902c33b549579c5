"""`bco export` / `bco evaluate`: a TorchScript policy that needs nothing but torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bco_lightning.export import ExportedPolicy, export_policy
from bco_lightning.policy import BCPolicyModule
from conftest import CLI_ENV, run_bco, stderr_lines


def box_policy() -> BCPolicyModule:
    torch.manual_seed(0)
    policy = BCPolicyModule(obs_dim=3, action_dim=2, discrete=False, action_low=[-2.0, 0.0], action_high=[2.0, 1.0], hidden_sizes=[16])
    policy.fit_normalizers({"obs": torch.randn(100, 3) * 5 + 1, "action": torch.rand(100, 2) * torch.tensor([4.0, 1.0]) - torch.tensor([2.0, 0.0])})
    return policy


def test_exported_box_policy_decodes_like_the_module_and_stays_in_bounds() -> None:
    policy = box_policy()
    scripted = torch.jit.script(ExportedPolicy(policy))
    obs = torch.randn(64, 3) * 20  # far outside the training states: decoded actions must clip
    actions = scripted(obs)
    assert actions.dtype == torch.float32 and actions.shape == (64, 2)
    torch.testing.assert_close(actions, policy.codec.decode(policy.net(obs)))
    assert torch.all(actions[:, 0].abs() <= 2.0) and torch.all((actions[:, 1] >= 0) & (actions[:, 1] <= 1))


def test_export_refuses_a_missing_checkpoint_and_keeps_an_existing_output(tmp_path: Path) -> None:
    result = run_bco(["export", "--checkpoint", str(tmp_path / "none.ckpt"), "--output", str(tmp_path / "p.pt")], cwd=tmp_path)
    assert result.returncode == 2 and len(stderr_lines(result)) == 1 and "none.ckpt" in result.stderr
    mine = tmp_path / "mine.pt"
    mine.write_text("mine")
    with pytest.raises(ValueError, match="--overwrite"):
        export_policy(tmp_path / "any.ckpt", mine)
    assert mine.read_text() == "mine"


def test_evaluate_refuses_a_file_that_is_not_an_exported_policy(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_text("not torchscript")
    result = run_bco(["evaluate", "--policy", str(bad), "--data.env_id", "CartPole-v1"], cwd=tmp_path)
    assert result.returncode == 2 and len(stderr_lines(result)) == 1 and "bad.pt" in result.stderr


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
