"""What the IDM and the policy share: predicting an action, its loss, metrics and optimiser."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from bco_lightning.nets import ActionCodec


class ActionModel(pl.LightningModule):
    """A supervised action predictor; subclasses define `forward(batch)` and `fit_normalizers`."""

    data_stage: str = ""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        discrete: bool,
        action_low: list[float] | None,
        action_high: list[float] | None,
        lr: float,
        weight_decay: float,
    ) -> None:
        super().__init__()
        self.lr = lr
        self.weight_decay = weight_decay
        self.codec = ActionCodec(discrete, action_dim, action_low, action_high)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def fit_normalizers(self, tensors: dict[str, Tensor]) -> None:
        raise NotImplementedError

    def normalizers_fitted(self) -> bool:
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        # Statistics are fitted once, on the first fit; later fine-tuning keeps them, so the
        # network's inputs keep their meaning across BCO(alpha) iterations.
        datamodule = self.trainer.datamodule
        if stage == "fit" and not self.normalizers_fitted() and datamodule is not None:
            self.fit_normalizers(datamodule.normalization_tensors())

    def _evaluation_step(self, batch: dict[str, Tensor], prefix: str) -> Tensor:
        output = self(batch)
        loss = self.codec.loss(output, self.codec.encode(batch["action"]))
        metrics = {
            f"{prefix}/loss": loss,
            f"{prefix}/{'accuracy' if self.codec.discrete else 'mae'}": self.codec.error(output, batch["action"]),
        }
        self.log_dict(metrics, prog_bar=prefix == "val", on_epoch=True, batch_size=len(batch["action"]), sync_dist=True)
        return loss

    def on_train_epoch_start(self) -> None:
        # [sum of loss x batch size, samples]: mutated in place, so a step allocates nothing that
        # outlives it (keeping each step's loss tensor fragmented the heap: RSS grew ~250 kB a step).
        self._train_loss = [torch.zeros((), device=self.device), 0]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        # The epoch's mean loss is summed here and logged once per epoch: `self.log` on every
        # step costs more than a small MLP's whole training step.
        loss = self.codec.loss(self(batch), self.codec.encode(batch["action"]))
        batch_size = len(batch["action"])
        self._train_loss[0].add_(loss.detach(), alpha=batch_size)
        self._train_loss[1] += batch_size
        return loss

    def on_train_epoch_end(self) -> None:
        total, samples = self._train_loss
        if samples:
            self.log("train/loss", total / samples, sync_dist=True)

    def transfer_batch_to_device(self, batch: dict[str, Tensor], device: torch.device, dataloader_idx: int) -> dict[str, Tensor]:
        # Batches are flat dicts of tensors: one `.to` each, without Lightning's generic walk.
        return {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}

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
