"""A trained policy as one TorchScript file: observation normaliser, network and action decoding
inside, so that `torch.jit.load` alone (no bco_lightning) turns observations into actions."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from bco_lightning.atomic import atomic_write
from bco_lightning.data.rollouts import Policy
from bco_lightning.errors import ConfigError, refuse_to_overwrite
from bco_lightning.policy import BCPolicyModule


class ExportedPolicy(nn.Module):
    """float32 observations `(B, obs_dim)`, or uint8 frame stacks `(B, stack, H, W[, 3])` for a
    pixel policy, in; int64 action indices `(B,)` or float32 actions `(B, action_dim)` within the
    bounds out (the most likely action, as in evaluation). `obs_shape` says which it takes.

    Made for inference: its parameters are frozen and it runs without autograd, so its output
    never requires grad and `policy(obs).numpy()` works without `torch.no_grad()` around it.
    Neither changes a number: the actions are the module's own, bit for bit.
    """

    def __init__(self, policy: BCPolicyModule) -> None:
        super().__init__()
        self.net = copy.deepcopy(policy.net).cpu().eval()
        self.codec = copy.deepcopy(policy.codec).cpu()
        self.requires_grad_(False)
        self.obs_dim = int(policy.hparams["obs_dim"])  # kept in the file, checked against the env
        shape = policy.hparams.get("obs_shape")
        self.obs_shape: list[int] = [int(n) for n in shape] if shape is not None else [self.obs_dim]

    def forward(self, observations: Tensor) -> Tensor:
        with torch.no_grad():  # also for observations that require grad
            return self.codec.decode(self.net(observations))


def export_policy(checkpoint: str | Path, output: str | Path, overwrite: bool = False) -> Path:
    """Write the TorchScript policy of a `BCPolicyModule` checkpoint (temp file, then rename)."""
    checkpoint, output = Path(checkpoint), Path(output)
    refuse_to_overwrite(output, overwrite)
    if not checkpoint.is_file():
        raise ConfigError(f"{checkpoint}: no such checkpoint; expected a policy checkpoint such as checkpoints/policy-iterK.ckpt")
    try:
        policy = BCPolicyModule.load_from_checkpoint(checkpoint, map_location="cpu")
    except Exception as error:  # a wrong or damaged file: say which, in one line
        raise ConfigError(f"{checkpoint}: not a BCPolicyModule checkpoint ({type(error).__name__}: {error})") from None
    scripted = torch.jit.script(ExportedPolicy(policy))
    return atomic_write(output, lambda handle: torch.jit.save(scripted, handle))


def load_exported(path: str | Path, obs_shape: int | tuple[int, ...] | None = None, env_id: str = "") -> Policy:
    """A numpy-in, numpy-out policy from an exported file; refuses one made for observations of
    another shape than `obs_shape` (an int: state vectors of that size)."""
    module = _load_module(path)
    if isinstance(obs_shape, int):
        obs_shape = (obs_shape,)
    expected = exported_observation_shape(module)
    if obs_shape is not None and expected is not None and expected != tuple(obs_shape):
        def describe(shape: tuple[int, ...], noun: str) -> str:
            return f"{shape[0]}-dim {noun}" if len(shape) == 1 else f"frame stacks {shape}"

        given = describe(tuple(obs_shape), "ones" if len(expected) == len(obs_shape) == 1 else "observations")
        raise ConfigError(f"{path}: the policy takes {describe(expected, 'observations')}, but {env_id} gives {given}")
    frames = expected is not None and len(expected) > 1

    @torch.inference_mode()
    def act(observations: np.ndarray) -> np.ndarray:
        return module(torch.as_tensor(observations, dtype=torch.uint8 if frames else torch.float32)).numpy()

    return act


def _load_module(path: str | Path) -> torch.jit.ScriptModule:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such exported policy; make one with `bco export`")
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        raise ConfigError(f"{path}: not a TorchScript policy ({type(error).__name__})") from None


def exported_observation_shape(module_or_path: torch.jit.ScriptModule | str | Path) -> tuple[int, ...] | None:
    """One observation's shape as an exported policy takes it: `(obs_dim,)`, or `(stack, H, W[, 3])`
    for frames (which also says how to make its pixel environment); None for a file without it."""
    module = _load_module(module_or_path) if isinstance(module_or_path, (str, Path)) else module_or_path
    shape = getattr(module, "obs_shape", None)
    if shape is not None:
        return tuple(int(n) for n in shape)
    obs_dim = getattr(module, "obs_dim", None)
    return None if obs_dim is None else (int(obs_dim),)
