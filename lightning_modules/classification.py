"""Descriptor training as landmark classification (cross-entropy, ArcFace), as a LightningModule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lightning_modules.base import DescriptorModule, OptimizerFactory, SchedulerFactory
from retrieval.descriptor.network import GlobalDescriptorNet

ClassificationLossFactory = Callable[..., nn.Module]


class ClassificationRetrievalModule(DescriptorModule):
    """Trains ``net`` so that its descriptors classify the training landmarks; the class weights live in the
    loss, which is built once the data is known (``loss(embedding_dim=D, num_classes=C)``, a Hydra ``_partial_``).

    Args:
        net: the descriptor network.
        loss: a partial classification loss (``retrieval.descriptor.losses.ArcFaceLoss`` or ``CrossEntropyLoss``).
        num_classes: the number of training landmarks; ``None`` reads it from the datamodule at setup.
        optimizer, scheduler, freeze_batchnorm, gem_lr_multiplier, layer_decay: see :class:`DescriptorModule`.
    """

    def __init__(
        self,
        net: GlobalDescriptorNet,
        loss: ClassificationLossFactory,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_classes: int | None = None,
        freeze_batchnorm: bool = True,
        gem_lr_multiplier: float = 10.0,
        layer_decay: float | None = None,
    ) -> None:
        super().__init__(net, optimizer, scheduler, freeze_batchnorm, gem_lr_multiplier, layer_decay)
        if isinstance(loss, nn.Module):
            raise ValueError(
                f"{type(loss).__name__} is a tuple loss; classification needs loss=cross_entropy or loss=arcface"
            )
        self.loss_factory = loss
        self.loss: nn.Module | None = None
        if num_classes is not None:
            self._build_loss(num_classes)
        self.save_hyperparameters(
            {
                "net": net.config,
                "num_classes": num_classes,
                "freeze_batchnorm": freeze_batchnorm,
                "gem_lr_multiplier": gem_lr_multiplier,
                "layer_decay": layer_decay,
            },
            logger=False,  # train.py logs the whole composed config once; these go into checkpoints
        )

    def _build_loss(self, num_classes: int) -> None:
        self.loss = self.loss_factory(embedding_dim=self.net.output_dim, num_classes=num_classes)
        self.hparams["num_classes"] = num_classes

    def setup(self, stage: str) -> None:
        if self.loss is None:
            datamodule = getattr(self.trainer, "datamodule", None) if self.trainer else None
            if datamodule is None or not hasattr(datamodule, "num_classes"):
                raise ValueError(
                    "classification training needs a datamodule with num_classes (data=demo_classification)"
                )
            datamodule.setup(stage)
            self._build_loss(datamodule.num_classes)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        self._skipped += batch["num_skipped"]
        if "image" not in batch:
            return None
        assert self.loss is not None
        loss = self.loss(self(batch["image"]), batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["label"]))
        return loss
