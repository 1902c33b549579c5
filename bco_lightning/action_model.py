"""What the IDM and the policy share: predicting an action, its loss, metrics and optimiser."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from bco_lightning.errors import SettingError
from bco_lightning.nets import ActionCodec
from bco_lightning.vision import is_frame_shape, random_shift


class ActionModel(pl.LightningModule):
    """A supervised action predictor; subclasses define `forward(batch)` and `fit_normalizers`."""

    data_stage: str = ""
    frame_keys: tuple[str, ...] = ("obs",)
    """The batch entries that hold observations: `augment_shift` moves them together."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        discrete: bool,
        action_low: list[float] | None,
        action_high: list[float] | None,
        lr: float,
        weight_decay: float,
        obs_shape: list[int] | None = None,
        augment_shift: int = 0,
        motion_gain: float = 0.0,
    ) -> None:
        super().__init__()
        self.frames = obs_shape is not None and is_frame_shape(tuple(obs_shape))
        if augment_shift < 0 or (augment_shift and not self.frames):
            raise SettingError(f"`augment_shift` shifts frames: it must be 0 for state vectors and >= 0 for frames, got {augment_shift}")
        if motion_gain and not self.frames:
            raise SettingError(f"`motion_gain` adds frame-difference channels: it must be 0 for state vectors, got {motion_gain}")
        self.augment_shift = augment_shift
        self.lr = lr
        self.weight_decay = weight_decay
        self.codec = ActionCodec(discrete, action_dim, action_low, action_high)
        self.automatic_optimization = False  # several optimiser steps per Lightning step

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning records the running hook's name in `_current_fx_name` about 40 times per
        # training step. nn.Module's generic __setattr__ (isinstance checks against parameters,
        # modules and buffers) made that 0.1 to 0.2 ms a step, up to a tenth of a batch-256 step
        # of these MLPs; the name is only ever a plain string, so it skips those checks.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def fit_normalizers(self, tensors: dict[str, Tensor]) -> None:
        """Fit the input and action normalisers from `BCODataModule.normalization_tensors()`."""
        raise NotImplementedError

    def normalizers_fitted(self) -> bool:
        raise NotImplementedError

    def codec_fitted(self) -> bool:
        """Whether the action codec has its label statistics (Discrete actions need none)."""
        return self.codec.discrete or bool(self.codec.target_normalizer.fitted)

    def _evaluation_step(self, batch: dict[str, Tensor], prefix: str) -> Tensor:
        output = self(batch)
        loss = self.codec.loss(output, self.codec.encode(batch["action"]))
        metrics = {
            f"{prefix}/loss": loss,
            f"{prefix}/{'accuracy' if self.codec.discrete else 'mae'}": self.codec.error(output, batch["action"]),
        }
        self.log_dict(metrics, prog_bar=prefix == "val", on_epoch=True, batch_size=len(batch["action"]), sync_dist=True)
        return loss

    def on_fit_start(self) -> None:
        if not self.normalizers_fitted():
            raise SettingError(
                f"{type(self).__name__}'s normalisers are not fitted: add the FitNormalizers() callback to the Trainer, "
                "or call model.fit_normalizers(datamodule.normalization_tensors()) before fit"
            )

    def on_train_epoch_start(self) -> None:
        # [sum of loss x batch size, samples]: mutated in place, so a step allocates nothing that
        # outlives it (keeping each step's loss tensor fragmented the heap: RSS grew ~250 kB a step).
        self._train_loss = [torch.zeros((), device=self.device), 0]

    def training_step(self, batch: dict[str, Tensor] | list[dict[str, Tensor]], batch_idx: int) -> None:
        """One optimiser step per batch: a Lightning step takes a list of batches
        (`BCODataModule(batches_per_step=...)`) or a single one.

        Manual optimisation, because automatic optimisation takes exactly one optimiser step per
        Lightning step. `manual_backward` and the wrapped optimiser keep DDP's gradient averaging
        and mixed precision. The epoch's mean loss is summed here and logged once per epoch:
        `self.log` on every step costs more than a small MLP's whole training step.
        """
        optimizer = self.optimizers()
        for minibatch in batch if isinstance(batch, list) else [batch]:
            if self.augment_shift:
                minibatch = self.shifted(minibatch)
            loss = self.codec.loss(self(minibatch), self.codec.encode(minibatch["action"]))
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
            batch_size = len(minibatch["action"])
            self._train_loss[0].add_(loss.detach(), alpha=batch_size)
            self._train_loss[1] += batch_size

    def shifted(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The training batch with its frames moved by `random_shift` (validation sees them as they are)."""
        moved = random_shift([batch[key] for key in self.frame_keys], self.augment_shift)
        return {**batch, **dict(zip(self.frame_keys, moved))}

    def on_train_epoch_end(self) -> None:
        total, samples = self._train_loss
        if samples:
            self.log("train/loss", total / samples, sync_dist=True)

    def transfer_batch_to_device(
        self, batch: dict[str, Tensor] | list[dict[str, Tensor]], device: torch.device, dataloader_idx: int
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        # Batches are flat dicts of tensors (or lists of them): one `.to` each, without
        # Lightning's generic walk.
        def move(item: dict[str, Tensor]) -> dict[str, Tensor]:
            return {name: tensor.to(device, non_blocking=True) for name, tensor in item.items()}

        return [move(item) for item in batch] if isinstance(batch, list) else move(batch)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._evaluation_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._evaluation_step(batch, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """The most likely environment action for each element of the batch."""
        return self.codec.decode(self(batch))

    def configure_optimizers(self) -> Any:
        # The fused kernel updates all parameters at once instead of launching a few ops per tensor.
        fused = self.device.type in ("cpu", "cuda")
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=fused)
