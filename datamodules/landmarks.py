"""The part every training DataModule shares: GLDv2-format landmark images, split by landmark into training
images and a validation set of held-out landmarks (scored by leave-one-out retrieval)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from datamodules.formats.gldv2 import LandmarkImages, load_gldv2_train, split_by_landmark
from datamodules.image_datasets import (
    ImageListDataset,
    TrainAugmentation,
    build_eval_transform,
    build_train_transform,
    collate_skipping_failures,
    transform_on_device,
)
from retrieval.descriptor.device_decode import DecodeCounts, check_decode_place, decodes_on_device

log = logging.getLogger(__name__)


def checked_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as a config gives it, refused with its key's name unless it is an integer ≥ ``minimum``
    (``data.batch_size=abc`` says so here, not in a comparison deep in a worker)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"data.{name} must be an integer of at least {minimum}, got {value!r}")
    return value


class IdFilter(Protocol):
    """Anything that names training images to leave out (e.g. ``datamodules.filters.DataFilters``)."""

    def excluded_ids(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class LandmarkSplit:
    """Which GLDv2-format images train and which validate, split by landmark (never by image).

    Args:
        root: GLDv2-format folder (``train.csv``, ``train_clean.csv``, ``train/a/b/c/…jpg``).
        clean: train on ``train_clean.csv`` only.
        min_images_per_landmark / max_images_per_landmark: landmark size limits.
        val_fraction: share of landmarks held out for validation.
        filters: drops the images it names (e.g. those the dataset analysis flagged).
        seed: sampling seed.
    """

    root: str
    clean: bool = True
    min_images_per_landmark: int = 2
    max_images_per_landmark: int | None = None
    val_fraction: float = 0.1
    filters: IdFilter | None = None
    seed: int = 0

    def load(self, min_images_per_landmark: int = 1) -> tuple[LandmarkImages, LandmarkImages]:
        """The training and validation images; landmarks get at least ``min_images_per_landmark`` images
        (raised above the configured minimum by users that need pairs)."""
        images, _ = load_gldv2_train(
            Path(self.root),
            clean=self.clean,
            min_images_per_landmark=max(min_images_per_landmark, self.min_images_per_landmark),
            max_images_per_landmark=self.max_images_per_landmark,
            exclude_ids=self.filters.excluded_ids() if self.filters is not None else frozenset(),
            seed=self.seed,
        )
        return split_by_landmark(images, self.val_fraction, seed=self.seed)


class LandmarkDataModule(pl.LightningDataModule):
    """GLDv2-format training data, split by landmark, validated by leave-one-out retrieval.

    Args:
        split: the images and their training / validation split.
        image_size: training resolution (square side; cirtorch trains at max side 362).
        extraction_batch_size: images per batch when embedding (validation, mining).
        num_workers: data-loading processes.
        decode_max_side: longest side images are decoded at before the transforms (JPEGs decode at reduced
            size, several times faster); None is twice ``image_size``.
        augmentation: the training augmentation (:attr:`train_transform`).
        decode: where JPEGs are decoded and transformed: ``"cpu"`` (PIL in the workers), ``"device"`` (where
            the network runs, in :meth:`on_before_batch_transfer`), ``"auto"`` (the device when it is a GPU).
    """

    # Landmarks with fewer images cannot serve the module (tuple training needs pairs).
    min_images_per_landmark = 1

    def __init__(
        self,
        split: LandmarkSplit,
        image_size: int = 362,
        extraction_batch_size: int = 32,
        num_workers: int = 4,
        decode_max_side: int | None = None,
        augmentation: TrainAugmentation | None = None,
        decode: str = "auto",
    ) -> None:
        super().__init__()
        checked_int("extraction_batch_size", extraction_batch_size)
        checked_int("image_size", image_size, 16)
        checked_int("num_workers", num_workers, 0)
        if decode_max_side is not None and checked_int("decode_max_side", decode_max_side) < image_size:
            raise ValueError(
                f"decode_max_side ({decode_max_side}) must be at least image_size ({image_size})"
            )
        self.split = split
        self.seed = split.seed
        self.image_size = image_size
        self.extraction_batch_size = extraction_batch_size
        self.num_workers = num_workers
        self.decode_max_side = decode_max_side or 2 * image_size
        self.decode = check_decode_place(decode)
        self.decode_counts = DecodeCounts()
        self.eval_transform = build_eval_transform(image_size)
        self.train_transform = build_train_transform(image_size, augmentation or TrainAugmentation())
        self.train_images: LandmarkImages | None = None
        self.val_images: LandmarkImages | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_images is not None:
            return
        self.train_images, self.val_images = self.split.load(self.min_images_per_landmark)
        log.info(
            "training on %d images of %d landmarks; validating on %d images of %d held-out landmarks",
            len(self.train_images),
            self.train_images.num_landmarks,
            len(self.val_images),
            self.val_images.num_landmarks,
        )

    @property
    def training_images(self) -> LandmarkImages:
        """The training images (after :meth:`setup`)."""
        if self.train_images is None:
            raise RuntimeError("call setup() before using the training images")
        return self.train_images

    def val_dataloader(self) -> DataLoader:
        if self.val_images is None:
            raise RuntimeError("call setup() before val_dataloader()")
        return self._eval_loader(self.val_images.paths, self.val_images.labels.tolist())

    def decodes_on_device(self, device: torch.device | None = None) -> bool:
        """Whether the images for a network on ``device`` (None: the trainer's) are decoded and transformed
        there; never without a trainer or a device (no batch-transfer hook would decode them)."""
        if device is None:
            if self.trainer is None:
                return False
            device = self.trainer.strategy.root_device
        return decodes_on_device(self.decode, device)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Decode and transform a batch left undecoded by the workers on the network's device (the training
        transform while training, else the evaluation one)."""
        trainer = self.trainer
        if trainer is None or not isinstance(batch, dict):
            return batch
        transform = self.train_transform if trainer.training else self.eval_transform
        return transform_on_device(
            batch, transform, trainer.strategy.root_device, self.decode_max_side, self.decode_counts
        )

    def teardown(self, stage: str) -> None:
        """Log which path the run's images took, when they could be decoded on the network's device."""
        if self.trainer is not None:
            self.decode_counts.log(self.trainer.strategy.root_device)

    def _eval_loader(
        self, paths: list[Path], labels: list[int] | None = None, device: torch.device | None = None
    ) -> DataLoader:
        """Evaluation batches of ``paths`` for a network on ``device`` (see :meth:`decodes_on_device`)."""
        dataset = ImageListDataset(
            paths,
            self.eval_transform,
            labels=labels,
            max_side=self.decode_max_side,
            on_device=self.decodes_on_device(device),
        )
        return DataLoader(
            dataset,
            batch_size=self.extraction_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate_skipping_failures,
            pin_memory=torch.cuda.is_available(),
        )
