"""Plain `nn.Module`s: normaliser, MLP, inverse dynamics and policy networks, action encoding.

Nothing here knows about Lightning, so each piece is testable on random tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bco_lightning.errors import SettingError

IDMInput = Literal["delta", "next"]


class Normalizer(nn.Module):
    """Standardises inputs with statistics stored as buffers, so they travel inside checkpoints."""

    def __init__(self, dim: int, min_std: float = 1e-6) -> None:
        super().__init__()
        self.min_std = min_std
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("fitted", torch.tensor(False))

    def fit(self, data: Tensor) -> None:
        """Set mean and std from `data` `(N, dim)`; constant dimensions keep std 1 so they stay 0."""
        data = data.to(self.mean.device, torch.float32)
        mean = data.mean(dim=0)
        std = data.std(dim=0, unbiased=False)
        self.mean.copy_(mean)
        self.std.copy_(torch.where(std > self.min_std, std, torch.ones_like(std)))
        self.fitted.fill_(True)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def mlp(in_dim: int, out_dim: int, hidden_sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class ActionCodec(nn.Module):
    """Translates between environment actions and what the networks predict.

    Discrete actions are class indices (cross-entropy on logits). Box actions are first scaled to
    the unit box `[-1, 1]` by their bounds, then standardised with the training labels' statistics
    (a demonstrator may use a sliver of the bounds); the network regresses that with MSE, and its
    output is mapped back to, and clipped within, the bounds.
    """

    def __init__(self, discrete: bool, action_dim: int, low: Sequence[float] | None = None, high: Sequence[float] | None = None) -> None:
        super().__init__()
        self.discrete = discrete
        self.action_dim = action_dim
        if not discrete and (low is None or high is None):
            raise SettingError("continuous (Box) actions need `action_low` and `action_high`: pass the action space's bounds")
        low_t = torch.tensor(low if low is not None else [-1.0] * action_dim, dtype=torch.float32)
        high_t = torch.tensor(high if high is not None else [1.0] * action_dim, dtype=torch.float32)
        self.register_buffer("center", (high_t + low_t) / 2)
        self.register_buffer("half_range", (high_t - low_t) / 2)
        self.target_normalizer = Normalizer(action_dim)

    @property
    def output_dim(self) -> int:
        return self.action_dim

    def to_unit(self, actions: Tensor) -> Tensor:
        """Box actions to the unit box `[-1, 1]`."""
        return ((actions.float() - self.center) / self.half_range).clamp(-1.0, 1.0)

    def fit(self, actions: Tensor) -> None:
        """Standardisation statistics of Box labels (nothing to fit for discrete actions)."""
        if not self.discrete:
            self.target_normalizer.fit(self.to_unit(actions))

    def encode(self, actions: Tensor) -> Tensor:
        """Environment actions to training targets (indices, or standardised vectors)."""
        if self.discrete:
            return actions.long()
        return self.target_normalizer(self.to_unit(actions))

    def unit_prediction(self, output: Tensor) -> Tensor:
        """Raw Box output to the unit box, clipped."""
        normalizer = self.target_normalizer
        return (output * normalizer.std + normalizer.mean).clamp(-1.0, 1.0)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        if self.discrete:
            return F.cross_entropy(output, target)
        return F.mse_loss(output, target)

    def error(self, output: Tensor, actions: Tensor) -> Tensor:
        """Accuracy (discrete) or mean absolute error in the unit box (continuous)."""
        if self.discrete:
            return (output.argmax(-1) == actions.long()).float().mean()
        return (self.unit_prediction(output) - self.to_unit(actions)).abs().mean()

    def decode(self, output: Tensor) -> Tensor:
        """Raw network output to the most likely environment action."""
        if self.discrete:
            return output.argmax(dim=-1)
        return self.unit_prediction(output) * self.half_range + self.center

    def sample(self, output: Tensor, noise_std: float, generator: torch.Generator | None = None) -> Tensor:
        """An exploratory environment action: a softmax sample, or the mean plus Gaussian noise."""
        if self.discrete:
            return torch.multinomial(F.softmax(output, dim=-1), 1, generator=generator).squeeze(-1)
        noise = torch.randn(output.shape, generator=generator, device=output.device) * noise_std
        return (self.unit_prediction(output) + noise).clamp(-1.0, 1.0) * self.half_range + self.center


class InverseDynamicsNet(nn.Module):
    """`p(a | s, s')`: an MLP on the normalised state and either the normalised change `s' - s` or `s'`."""

    def __init__(self, obs_dim: int, output_dim: int, hidden_sizes: Sequence[int], input_mode: IDMInput = "delta") -> None:
        super().__init__()
        self.input_mode = input_mode
        self.obs_normalizer = Normalizer(obs_dim)
        self.second_normalizer = Normalizer(obs_dim)
        self.body = mlp(2 * obs_dim, output_dim, hidden_sizes)

    def second_input(self, obs: Tensor, next_obs: Tensor) -> Tensor:
        return next_obs - obs if self.input_mode == "delta" else next_obs

    def fit_normalizers(self, obs: Tensor, next_obs: Tensor) -> None:
        self.obs_normalizer.fit(obs)
        self.second_normalizer.fit(self.second_input(obs, next_obs))

    def forward(self, obs: Tensor, next_obs: Tensor) -> Tensor:
        second = self.second_normalizer(self.second_input(obs, next_obs))
        return self.body(torch.cat([self.obs_normalizer(obs), second], dim=-1))


class PolicyNet(nn.Module):
    """`pi(a | s)`: an MLP on the normalised state."""

    def __init__(self, obs_dim: int, output_dim: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.obs_normalizer = Normalizer(obs_dim)
        self.body = mlp(obs_dim, output_dim, hidden_sizes)

    def forward(self, obs: Tensor) -> Tensor:
        return self.body(self.obs_normalizer(obs))
