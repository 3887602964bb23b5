"""The Siamese (tuple) training of a global descriptor network as a LightningModule."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lightning_modules.base import DescriptorModule, OptimizerFactory, SchedulerFactory
from retrieval.descriptor.network import GlobalDescriptorNet


class SiameseRetrievalModule(DescriptorModule):
    """Trains ``net`` on tuples (query, positive, K negatives) with a tuple loss.

    Args:
        net: the descriptor network.
        loss: a tuple loss, ``loss(query (B, D), positive (B, D), negatives (B, K, D))``.
        optimizer, scheduler, freeze_batchnorm, gem_lr_multiplier, layer_decay: see :class:`DescriptorModule`.
    """

    def __init__(
        self,
        net: GlobalDescriptorNet,
        loss: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        freeze_batchnorm: bool = True,
        gem_lr_multiplier: float = 10.0,
        layer_decay: float | None = None,
    ) -> None:
        super().__init__(net, optimizer, scheduler, freeze_batchnorm, gem_lr_multiplier, layer_decay)
        self.loss = loss
        self.save_hyperparameters(
            {
                "net": net.config,
                "loss": repr(loss),
                "freeze_batchnorm": freeze_batchnorm,
                "gem_lr_multiplier": gem_lr_multiplier,
                "layer_decay": layer_decay,
            },
            logger=False,  # train.py logs the whole composed config once; these go into checkpoints
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        self._skipped += batch["num_skipped"]
        if "images" not in batch:  # every tuple of the batch was unreadable
            return None
        images = batch["images"]  # (B, 2 + K, 3, S, S)
        batch_size, tuple_size = images.shape[:2]
        descriptors = self(images.flatten(0, 1)).view(batch_size, tuple_size, -1)
        loss = self.loss(descriptors[:, 0], descriptors[:, 1], descriptors[:, 2:])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        return loss
