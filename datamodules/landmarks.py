"""The part every training DataModule shares: GLDv2-format landmark images, split by landmark into training
images and a validation set of held-out landmarks (scored by leave-one-out retrieval)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from datamodules.formats.gldv2 import LandmarkImages, load_gldv2_train, split_by_landmark
from datamodules.image_datasets import ImageListDataset, build_eval_transform, collate_skipping_failures

log = logging.getLogger(__name__)


class IdFilter(Protocol):
    """Anything that names training images to leave out (e.g. ``datamodules.filters.DataFilters``)."""

    def excluded_ids(self) -> frozenset[str]: ...


class LandmarkDataModule(pl.LightningDataModule):
    """GLDv2-format training data, split by landmark.

    Args:
        root: GLDv2-format folder (``train.csv``, ``train_clean.csv``, ``train/a/b/c/…jpg``).
        clean: train on ``train_clean.csv`` only.
        min_images_per_landmark / max_images_per_landmark: landmark size limits.
        val_fraction: share of landmarks held out for validation (split by landmark, never by image).
        image_size: training resolution (square side; cirtorch trains at max side 362).
        extraction_batch_size: images per batch when embedding (validation, mining).
        num_workers: data-loading processes.
        filters: drops the images it names (e.g. those the dataset analysis flagged).
        seed: sampling seed.
    """

    def __init__(
        self,
        root: str,
        clean: bool = True,
        min_images_per_landmark: int = 2,
        max_images_per_landmark: int | None = None,
        val_fraction: float = 0.1,
        image_size: int = 362,
        extraction_batch_size: int = 32,
        num_workers: int = 4,
        filters: IdFilter | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if extraction_batch_size < 1 or image_size < 16:
            raise ValueError("extraction_batch_size must be positive and image_size at least 16")
        self.root = Path(root)
        self.clean = clean
        self.min_images_per_landmark = min_images_per_landmark
        self.max_images_per_landmark = max_images_per_landmark
        self.val_fraction = val_fraction
        self.image_size = image_size
        self.extraction_batch_size = extraction_batch_size
        self.num_workers = num_workers
        self.filters = filters
        self.seed = seed
        self.eval_transform = build_eval_transform(image_size)
        self.train_images: LandmarkImages | None = None
        self.val_images: LandmarkImages | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_images is not None:
            return
        images, _ = load_gldv2_train(
            self.root,
            clean=self.clean,
            min_images_per_landmark=self.min_images_per_landmark,
            max_images_per_landmark=self.max_images_per_landmark,
            exclude_ids=self.filters.excluded_ids() if self.filters is not None else frozenset(),
            seed=self.seed,
        )
        self.train_images, self.val_images = split_by_landmark(images, self.val_fraction, seed=self.seed)
        log.info(
            "training on %d images of %d landmarks; validating on %d images of %d held-out landmarks",
            len(self.train_images),
            self.train_images.num_landmarks,
            len(self.val_images),
            self.val_images.num_landmarks,
        )

    def val_dataloader(self) -> DataLoader:
        if self.val_images is None:
            raise RuntimeError("call setup() before val_dataloader()")
        return self._eval_loader(self.val_images.paths, self.val_images.labels.tolist())

    def _eval_loader(self, paths: list[Path], labels: list[int] | None = None) -> DataLoader:
        dataset = ImageListDataset(paths, self.eval_transform, labels=labels, max_side=2 * self.image_size)
        return DataLoader(
            dataset,
            batch_size=self.extraction_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate_skipping_failures,
            pin_memory=torch.cuda.is_available(),
        )
