"""`IDMModule`: the inverse dynamics model `p(a | s, s')` as a Lightning system."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from bco_lightning.action_model import ActionModel
from bco_lightning.nets import IDMInput, InverseDynamicsNet


class IDMModule(ActionModel):
    """Inverse dynamics: classification for Discrete actions, normalised regression for Box actions.

    Args:
        obs_dim, action_dim, discrete, action_low, action_high: the environment's shapes; pass
            `**datamodule.model_shapes` (the command line links them from the datamodule).
        hidden_sizes: widths of the MLP's hidden layers.
        input_mode: "delta" feeds `(s, s' - s)`, "next" feeds `(s, s')`.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
    """

    data_stage = "idm"

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        discrete: bool,
        action_low: list[float] | None = None,
        action_high: list[float] | None = None,
        hidden_sizes: list[int] = [256, 256],
        input_mode: IDMInput = "delta",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(obs_dim, action_dim, discrete, action_low, action_high, lr, weight_decay)
        self.save_hyperparameters()
        self.net = InverseDynamicsNet(obs_dim, self.codec.output_dim, hidden_sizes, input_mode)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        return self.net(batch["obs"], batch["next_obs"])

    def fit_normalizers(self, tensors: dict[str, Tensor]) -> None:
        self.net.fit_normalizers(tensors["obs"], tensors["next_obs"])
        self.codec.fit(tensors["action"])

    def normalizers_fitted(self) -> bool:
        return bool(self.net.obs_normalizer.fitted)

    @torch.no_grad()
    def infer(self, obs: Tensor, next_obs: Tensor, batch_size: int = 4096) -> Tensor:
        """Most likely action of each transition `(obs[i], next_obs[i])`, in eval mode, on the CPU."""
        was_training = self.training
        self.eval()
        chunks = [
            self.predict_step({"obs": o.to(self.device), "next_obs": n.to(self.device)}, 0).cpu()
            for o, n in zip(obs.split(batch_size), next_obs.split(batch_size))
        ]
        self.train(was_training)
        return torch.cat(chunks)

    def label(self, observations: np.ndarray, pairs: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Most likely action of each pair `(observations[t], observations[t + 1])` for t in `pairs`."""
        obs = torch.from_numpy(observations)
        index = torch.from_numpy(pairs)
        return self.infer(obs[index], obs[index + 1], batch_size).numpy()
