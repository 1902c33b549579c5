"""`BCPolicyModule`: behavioural cloning of the IDM-labelled expert states."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from bco_lightning.action_model import ActionModel
from bco_lightning.data.rollouts import Policy
from bco_lightning.nets import PolicyNet
from bco_lightning.vision import EncoderName, PixelPolicyNet, frame_layout, is_frame_shape


class BCPolicyModule(ActionModel):
    """`pi(a | s)` trained on `(s_t, inferred a_t)`.

    Args:
        obs_dim, action_dim, discrete, action_low, action_high: the environment's shapes; pass
            `**datamodule.model_shapes` (the command line links them from the datamodule).
        hidden_sizes: widths of the MLP's hidden layers (state vectors).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        exploration_noise: std of the Gaussian noise (in the normalised action space) added to Box
            actions in post-demonstration rollouts; Discrete actions are sampled from the softmax.
        obs_shape: frames: one observation's shape `(frame_stack, H, W[, 3])` (linked from the
            datamodule), which makes the network convolutional; None for state vectors.
        encoder: frames: "nature" (the DQN encoder) or "impala" (residual, much slower on a CPU).
        augment_shift: frames: each training batch moves by a random shift of up to this many
            pixels per axis (edges repeated), so that a few thousand demonstration frames do not
            let the CNN memorise exact pixels; 0 trains on the frames as they are.
        motion_gain: frames: > 0 adds the change between consecutive frames of a stack, times
            this gain, as input channels, so that motion of a fraction of a pixel is not a few
            gray levels on top of a bright frame; 0 (the default) feeds the frames alone.
    """

    data_stage = "policy"

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        discrete: bool,
        action_low: list[float] | None = None,
        action_high: list[float] | None = None,
        hidden_sizes: list[int] = [256, 256],
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        exploration_noise: float = 0.1,
        obs_shape: list[int] | None = None,
        encoder: EncoderName = "nature",
        augment_shift: int = 0,
        motion_gain: float = 0.0,
    ) -> None:
        super().__init__(obs_dim, action_dim, discrete, action_low, action_high, lr, weight_decay, obs_shape, augment_shift, motion_gain)
        self.save_hyperparameters()
        self.exploration_noise = exploration_noise
        self.net: PolicyNet | PixelPolicyNet
        if obs_shape is not None and is_frame_shape(tuple(obs_shape)):
            self.net = PixelPolicyNet(*frame_layout(tuple(obs_shape)), self.codec.output_dim, encoder, motion_gain)
        else:
            self.net = PolicyNet(obs_dim, self.codec.output_dim, hidden_sizes)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        return self.net(batch["obs"])

    def fit_normalizers(self, tensors: dict[str, Tensor]) -> None:
        if isinstance(self.net, PolicyNet):
            self.net.obs_normalizer.fit(tensors["obs"])
        self.codec.fit(tensors["action"])

    def normalizers_fitted(self) -> bool:
        if isinstance(self.net, PolicyNet):
            return bool(self.net.obs_normalizer.fitted)
        return self.codec_fitted()

    def as_policy(self, deterministic: bool = True, seed: int = 0, noise: float | None = None) -> Policy:
        """A numpy-in, numpy-out policy for rollouts: the most likely action, or an exploratory one
        (Box: Gaussian noise of std `noise`, by default `exploration_noise`)."""
        noise_std = self.exploration_noise if noise is None else noise
        generator = torch.Generator(device=self.device).manual_seed(seed)

        @torch.inference_mode()
        def act(observations: np.ndarray) -> np.ndarray:
            # MLP and CNN alike: no dropout or batch norm, so train and eval mode compute the same.
            # Frames stay uint8: the network scales them itself.
            dtype = torch.uint8 if self.frames else torch.float32
            output = self.net(torch.as_tensor(observations, dtype=dtype, device=self.device))
            if deterministic:
                action = self.codec.decode(output)
            else:
                action = self.codec.sample(output, noise_std, generator)
            return action.cpu().numpy()

        return act
