"""The images of a descriptor-shard list as prediction batches for ``Trainer.predict``: each rank takes its share
of the shards still to write, each decoding worker its share of the rank's, and every batch holds images of one
size from one shard (:class:`retrieval.descriptor.batching.SizeBuckets`), so a shard is complete as soon as its
worker moves on. Unreadable images come as a batch without pixels, so the writer counts them and the shard still
completes.

When JPEGs are decoded on the device (``ExtractionSettings.decode``, a GPU by default), the workers hand on the
files' bytes (:mod:`retrieval.descriptor.device_decode`) and :meth:`ImagePredictionDataModule.
on_before_batch_transfer` decodes a whole batch where the network runs; the network sees the same batches."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from retrieval.descriptor.batching import SizeBuckets
from retrieval.descriptor.device_decode import DecodeCounts, EncodedJpeg, decode_batch
from retrieval.descriptor.extract import ExtractionSettings, load_network_input, load_pixels_or_none
from retrieval.descriptor.shards import DescriptorShards

log = logging.getLogger(__name__)

# A prediction batch: {"shard": int, "positions": (B,) int64, "images": (B, 3, H, W) uint8 or None when the
# batch lists the shard's unreadable images, "readable": (B,) bool}; as the workers hand it on, a batch with
# files still to decode on the device has "items" (EncodedJpeg or decoded (3, H, W)) in place of the last two.
PredictionBatch = dict[str, Any]


class ShardBatches(IterableDataset):
    """Batches of the images of ``shards`` (list positions into ``paths``), this worker's share of them.

    Args:
        paths: the image files, in the shard list's order.
        shards: the shard numbers this rank writes.
        geometry: the shard list (which positions each shard holds).
        settings: decoding and batching (max side, size step, batch size).
        on_device: hand JPEG files on undecoded, for the network's device to decode.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        shards: Sequence[int],
        geometry: DescriptorShards,
        settings: ExtractionSettings,
        on_device: bool = False,
    ) -> None:
        self.paths = list(paths)
        self.shards = list(shards)
        self.geometry = geometry
        self.settings = settings
        self.on_device = on_device

    def __iter__(self) -> Iterator[PredictionBatch]:
        worker = get_worker_info()
        mine = self.shards if worker is None else self.shards[worker.id :: worker.num_workers]
        for shard in mine:
            yield from self._shard_batches(shard)

    def _shard_batches(self, shard: int) -> Iterator[PredictionBatch]:
        buckets: SizeBuckets[EncodedJpeg | torch.Tensor] = SizeBuckets(self.settings.batch_size)
        unreadable: list[int] = []

        def batch(positions: list[int], items: list[EncodedJpeg | torch.Tensor] | None) -> PredictionBatch:
            described = {"shard": shard, "positions": torch.tensor(positions, dtype=torch.int64)}
            if items is None:
                return {
                    **described,
                    "images": None,
                    "readable": torch.zeros(len(positions), dtype=torch.bool),
                }
            if all(isinstance(item, torch.Tensor) for item in items):
                images = torch.stack(items)  # type: ignore[arg-type]
                return {
                    **described,
                    "images": images,
                    "readable": torch.ones(len(positions), dtype=torch.bool),
                }
            return {**described, "items": items}

        for position in self.geometry.positions(shard):
            item = load_network_input(self.paths[position], self.settings, self.on_device)
            if item is None:
                unreadable.append(position)
            elif (full := buckets.add(position, item)) is not None:
                yield batch(*full)
        for positions, items in buckets.drain():
            yield batch(positions, items)
        if unreadable:
            yield batch(unreadable, None)


class ImagePredictionDataModule(pl.LightningDataModule):
    """The prediction data of a global-descriptor extraction into ``shards``: the shards not yet written when the
    job starts (as rank 0 sees them, so every rank agrees), dealt to the ranks in turn.

    Args:
        paths: the image files, in the shard list's order.
        shards: the shard folder to fill.
        settings: decoding, batching and decoding workers (``num_workers``).
    """

    def __init__(self, paths: Sequence[Path], shards: DescriptorShards, settings: ExtractionSettings) -> None:
        super().__init__()
        if len(paths) != len(shards.ids):
            raise ValueError(f"{len(paths)} paths for a shard list of {len(shards.ids)} images")
        self.paths = list(paths)
        self.shards = shards
        self.settings = settings
        self.assigned: list[int] = []
        self.decode_counts = DecodeCounts()

    def _trainer(self) -> pl.Trainer:
        if self.trainer is None:
            raise RuntimeError(
                "ImagePredictionDataModule deals shards to the ranks of a Trainer: use trainer.predict"
            )
        return self.trainer

    def setup(self, stage: str) -> None:
        trainer = self._trainer()
        pending = trainer.strategy.broadcast(self.shards.pending(), src=0)
        self.assigned = pending[trainer.global_rank :: trainer.world_size]
        done = self.shards.num_shards - len(pending)
        if done and trainer.is_global_zero:
            log.info("%d of %d shards already written in %s", done, self.shards.num_shards, self.shards.root)

    def predict_dataloader(self) -> DataLoader:
        device = self._trainer().strategy.root_device
        return DataLoader(
            ShardBatches(
                self.paths, self.assigned, self.shards, self.settings, self.settings.decodes_on_device(device)
            ),
            batch_size=None,
            num_workers=min(self.settings.num_workers, len(self.assigned)),
            pin_memory=device.type == "cuda",
        )

    def on_before_batch_transfer(self, batch: PredictionBatch, dataloader_idx: int) -> PredictionBatch:
        """Decode a batch's JPEG files on the network's device (a file it fails on: on the CPU, as a worker
        would have)."""
        device = self._trainer().strategy.root_device
        if "items" not in batch:
            if batch["images"] is not None and self.settings.decodes_on_device(device):
                self.decode_counts.by_workers += len(batch["positions"])
            return batch
        items = batch.pop("items")
        self.decode_counts.add(items)
        images, readable = decode_batch(items, device, lambda path: load_pixels_or_none(path, self.settings))
        return {**batch, "images": images, "readable": readable}

    def teardown(self, stage: str) -> None:
        """Log which path this rank's images took, when they could be decoded on its device."""
        if self.trainer is not None:
            self.decode_counts.log(self.trainer.strategy.root_device)

    def num_assigned_images(self) -> int:
        """Images of this rank's shards (what its progress counts)."""
        return sum(len(self.shards.positions(shard)) for shard in self.assigned)
