"""Global descriptors as a Lightning prediction job: ``Trainer.predict`` runs the network over
:class:`datamodules.image_prediction.ImagePredictionDataModule` on one process or many (DDP over GPUs and nodes,
gloo on CPUs), and :class:`lightning_modules.shard_writer.DescriptorShardWriter` writes each shard as it
completes. ``index.py`` runs it; the descriptors equal those of
:func:`retrieval.descriptor.extract.extract_descriptors` (same decoding, scales and aggregation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch

from datamodules.image_prediction import PredictionBatch
from retrieval.descriptor.extract import describe_batch, multiscale_power
from retrieval.descriptor.network import GlobalDescriptorNet


class DescriptorPrediction(pl.LightningModule):
    """Predicts the multi-scale descriptors of a batch of images of one size.

    Args:
        net: the global network (eval mode; nothing is trained).
        scales: image scales whose descriptors are aggregated (``ExtractionSettings.scales``).
        scale_aggregation: how (``ExtractionSettings.scale_aggregation``).
    """

    def __init__(
        self, net: GlobalDescriptorNet, scales: Sequence[float], scale_aggregation: str = "power_mean"
    ) -> None:
        super().__init__()
        self.net = net
        self.scales = tuple(scales)
        self.scale_aggregation = scale_aggregation
        self.power = multiscale_power(net)

    def on_predict_start(self) -> None:
        if self.device.type == "cuda":
            self.net.to(memory_format=torch.channels_last)

    def predict_step(self, batch: PredictionBatch, batch_idx: int) -> dict[str, Any]:
        """``{"shard", "positions" (B,), "descriptors" (B, D) float32 on the CPU (None when no image is readable),
        "readable" (B,) bool}``."""
        images, readable = batch["images"], batch["readable"].cpu()
        descriptors = (
            None
            if images is None
            else describe_batch(self.net, images, self.scales, self.power, self.scale_aggregation).cpu()
        )
        return {
            "shard": batch["shard"],
            "positions": batch["positions"].cpu(),
            "descriptors": descriptors,
            "readable": readable,
        }
