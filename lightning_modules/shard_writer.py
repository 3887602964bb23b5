"""The prediction writer of global-descriptor shards: every rank collects its batches by shard and writes a shard
(atomically, :meth:`retrieval.descriptor.shards.DescriptorShards.write`) the moment its last image is predicted,
so a killed job keeps every finished shard and a rerun skips them."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter

from datamodules.image_prediction import ImagePredictionDataModule
from retrieval.descriptor.shards import DescriptorShards
from retrieval.progress import stage

# The batches carry their list positions; the sampler indices Lightning looks for (and warns about, since an
# iterable dataset has no sampler) are not used.
warnings.filterwarnings(
    "ignore", message=r".*Couldn't infer the batch indices fetched from your dataloader.*"
)


class DescriptorShardWriter(BasePredictionWriter):
    """Writes the predictions of :class:`lightning_modules.descriptor_prediction.DescriptorPrediction` into
    ``shards``; rank 0 shows a progress bar over its own share of the images.

    Args:
        shards: the shard folder (its list of ids and geometry).
        description: the progress bar's label.
    """

    def __init__(self, shards: DescriptorShards, description: str = "global descriptors") -> None:
        super().__init__(write_interval="batch")
        self.shards = shards
        self.description = description
        # shard → (positions, descriptors (n, D), readable) received so far
        self._pending: dict[int, tuple[list[int], list[np.ndarray], list[np.ndarray]]] = {}
        self._progress = contextlib.ExitStack()
        self._bar: Any = None
        self.shards_written = 0

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        total = datamodule.num_assigned_images() if isinstance(datamodule, ImagePredictionDataModule) else 0
        self._bar = self._progress.enter_context(
            stage(self.description, total, enabled=trainer.is_global_zero and total > 0)
        )

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: dict[str, Any],
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        shard = int(prediction["shard"])
        positions = prediction["positions"].tolist()
        received = self._pending.setdefault(shard, ([], [], []))
        received[0].extend(positions)
        readable = prediction["readable"].numpy()
        descriptors = np.zeros((len(positions), self.shards.dim), dtype=np.float32)
        if prediction["descriptors"] is not None:
            descriptors[readable] = prediction["descriptors"].float().numpy()[readable]
        received[1].append(descriptors)
        received[2].append(readable)
        self._bar.update(len(positions))
        if len(received[0]) == len(self.shards.positions(shard)):
            del self._pending[shard]
            self.shards.write(shard, received[0], np.concatenate(received[1]), np.concatenate(received[2]))
            self.shards_written += 1

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._progress.close()  # the shards written so far stay; the rest is predicted again by a rerun

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._progress.close()
        if self._pending:
            raise RuntimeError(
                f"rank {trainer.global_rank}: shards {sorted(self._pending)} got only part of their images"
            )
        trainer.strategy.barrier("descriptor shards written")  # rank 0 reads every rank's shards next
