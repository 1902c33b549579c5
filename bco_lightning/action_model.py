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

    def _step(self, batch: dict[str, Tensor], prefix: str) -> Tensor:
        output = self(batch)
        target = self.codec.encode(batch["action"])
        loss = self.codec.loss(output, target)
        batch_size = target.shape[0]
        metrics = {f"{prefix}/loss": loss}
        if prefix != "train":
            metrics[f"{prefix}/{'accuracy' if self.codec.discrete else 'mae'}"] = self.codec.error(output, batch["action"])
        self.log_dict(metrics, prog_bar=prefix == "val", on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=prefix != "train")
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """The most likely environment action for each element of the batch."""
        return self.codec.decode(self(batch))

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
