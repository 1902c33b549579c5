"""`bco export` / `bco evaluate`: a TorchScript policy that needs nothing but torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from bco_lightning.export import ExportedPolicy, export_policy
from bco_lightning.policy import BCPolicyModule
from helpers import run_bco, stderr_lines


def box_policy() -> BCPolicyModule:
    torch.manual_seed(0)
    policy = BCPolicyModule(obs_dim=3, action_dim=2, discrete=False, action_low=[-2.0, 0.0], action_high=[2.0, 1.0], hidden_sizes=[16])
    policy.fit_normalizers({"obs": torch.randn(100, 3) * 5 + 1, "action": torch.rand(100, 2) * torch.tensor([4.0, 1.0]) - torch.tensor([2.0, 0.0])})
    return policy


def discrete_policy() -> BCPolicyModule:
    torch.manual_seed(0)
    policy = BCPolicyModule(obs_dim=3, action_dim=4, discrete=True, hidden_sizes=[16])
    policy.fit_normalizers({"obs": torch.randn(100, 3) * 5 + 1, "action": torch.randint(0, 4, (100,))})
    return policy


def save_checkpoint(policy: BCPolicyModule, path: Path) -> Path:
    """A Lightning checkpoint of `policy`, as training writes it (`checkpoints/policy-iterK.ckpt`)."""
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(policy)
    trainer.save_checkpoint(path)
    return path


@pytest.mark.parametrize("make_policy", [box_policy, discrete_policy], ids=["box", "discrete"])
def test_exported_file_gives_numpy_actions_without_no_grad(tmp_path: Path, make_policy) -> None:
    """What a user does with the file: load it and call `.numpy()` on its output, with autograd on."""
    policy = make_policy()
    exported = export_policy(save_checkpoint(policy, tmp_path / "policy.ckpt"), tmp_path / "policy.pt")
    obs = torch.randn(64, 3) * 20
    assert torch.is_grad_enabled()
    loaded = torch.jit.load(str(exported))
    actions = loaded(obs).numpy()  # raises if the output requires grad
    assert not loaded(obs.clone().requires_grad_(True)).requires_grad  # even for inputs that do
    with torch.no_grad():
        expected = policy.codec.decode(policy.net(obs)).numpy()
    assert actions.dtype == expected.dtype and actions.shape == expected.shape
    np.testing.assert_array_equal(actions, expected)  # bit for bit the module's own actions


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
    with pytest.raises(FileExistsError, match="set `?overwrite`? to true"):
        export_policy(tmp_path / "any.ckpt", mine)
    assert mine.read_text() == "mine"


def test_evaluate_refuses_a_file_that_is_not_an_exported_policy(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_text("not torchscript")
    result = run_bco(["evaluate", "--policy", str(bad), "--data.env_id", "CartPole-v1"], cwd=tmp_path)
    assert result.returncode == 2 and len(stderr_lines(result)) == 1 and "bad.pt" in result.stderr
