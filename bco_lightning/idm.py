"""`IDMModule`: the inverse dynamics model `p(a | s, s')` as a Lightning system."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from bco_lightning.action_model import ActionModel
from bco_lightning.nets import IDMInput, InverseDynamicsNet
from bco_lightning.vision import EncoderName, Fusion, PixelInverseDynamicsNet, frame_layout, is_frame_shape

if TYPE_CHECKING:
    from bco_lightning.data.datamodule import ExampleTable


class IDMModule(ActionModel):
    """Inverse dynamics: classification for Discrete actions, normalised regression for Box actions.

    Args:
        obs_dim, action_dim, discrete, action_low, action_high: the environment's shapes; pass
            `**datamodule.model_shapes` (the command line links them from the datamodule).
        hidden_sizes: widths of the MLP's hidden layers (state vectors).
        input_mode: state vectors: "delta" feeds `(s, s' - s)`, "next" feeds `(s, s')`.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        obs_shape: frames: one observation's shape `(frame_stack, H, W[, 3])` (linked from the
            datamodule), which makes the network convolutional; None for state vectors.
        encoder: frames: "nature" (the DQN encoder) or "impala" (residual; 7 to 28 times slower
            on a CPU, `benchmarks/pixel_throughput.md`).
        fusion: frames: "concat" stacks `s` and `s'` on the channel axis into one encoder, so the
            first conv sees pixel differences; "delta" stacks `s` and `s' - s`; "shared" encodes
            each and compares features.
        augment_shift: frames: each training batch moves by a random shift of up to this many
            pixels per axis (edges repeated, `s` and `s'` moved together), so that the
            interaction's frames do not let the CNN memorise exact pixels, and, where a fixed
            camera films physics that do not depend on position (CartPole), so that it sees
            pushes where random play never went; 0 trains on the frames as they are.
        motion_gain: frames: > 0 adds the change between consecutive frames of a stack, times
            this gain, as input channels, so that motion of a fraction of a pixel is not a few
            gray levels on top of a bright frame; 0 (the default) feeds the frames alone.
    """

    data_stage = "idm"
    frame_keys = ("obs", "next_obs")

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
        obs_shape: list[int] | None = None,
        encoder: EncoderName = "nature",
        fusion: Fusion = "concat",
        augment_shift: int = 0,
        motion_gain: float = 0.0,
    ) -> None:
        super().__init__(obs_dim, action_dim, discrete, action_low, action_high, lr, weight_decay, obs_shape, augment_shift, motion_gain)
        self.save_hyperparameters()
        self.net: InverseDynamicsNet | PixelInverseDynamicsNet
        if obs_shape is not None and is_frame_shape(tuple(obs_shape)):
            self.net = PixelInverseDynamicsNet(*frame_layout(tuple(obs_shape)), self.codec.output_dim, encoder, fusion, motion_gain=motion_gain)
        else:
            self.net = InverseDynamicsNet(obs_dim, self.codec.output_dim, hidden_sizes, input_mode)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        return self.net(batch["obs"], batch["next_obs"])

    def fit_normalizers(self, tensors: dict[str, Tensor]) -> None:
        if isinstance(self.net, InverseDynamicsNet):
            self.net.fit_normalizers(tensors["obs"], tensors["next_obs"])
        self.codec.fit(tensors["action"])

    def normalizers_fitted(self) -> bool:
        if isinstance(self.net, InverseDynamicsNet):
            return bool(self.net.obs_normalizer.fitted)
        return self.codec_fitted()

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

    @torch.no_grad()
    def label_table(self, table: ExampleTable, batch_size: int = 4096) -> np.ndarray:
        """Most likely action of every example of `table` (frame stacks gathered a batch at a time)."""
        was_training = self.training
        self.eval()
        chunks = []
        for rows in torch.arange(len(table)).split(batch_size):
            batch = {name: tensor.to(self.device) for name, tensor in table.batch(rows).items() if name != "action"}
            chunks.append(self.predict_step(batch, 0).cpu())
        self.train(was_training)
        return torch.cat(chunks).numpy()
