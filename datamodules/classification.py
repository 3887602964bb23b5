"""Landmark classification data: every training image with its landmark as a class (the thesis' E2 and
ArcFace-style training), validated like the tuple data on held-out landmarks."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from datamodules.image_datasets import ImageListDataset, build_train_transform, collate_skipping_failures
from datamodules.landmarks import IdFilter, LandmarkDataModule


class LandmarkClassificationDataModule(LandmarkDataModule):
    """Batches ``{"image": (B, 3, S, S), "label": (B,)}`` with labels 0 … num_classes − 1.

    Args:
        batch_size: images per training batch.
        min_crop_scale / color_jitter / horizontal_flip: training augmentation.
        Others: see :class:`LandmarkDataModule`.
    """

    def __init__(
        self,
        root: str,
        clean: bool = True,
        min_images_per_landmark: int = 2,
        max_images_per_landmark: int | None = None,
        val_fraction: float = 0.1,
        image_size: int = 224,
        batch_size: int = 32,
        extraction_batch_size: int = 32,
        num_workers: int = 4,
        min_crop_scale: float = 0.5,
        color_jitter: float = 0.2,
        horizontal_flip: bool = False,
        filters: IdFilter | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            root=root,
            clean=clean,
            min_images_per_landmark=min_images_per_landmark,
            max_images_per_landmark=max_images_per_landmark,
            val_fraction=val_fraction,
            image_size=image_size,
            extraction_batch_size=extraction_batch_size,
            num_workers=num_workers,
            filters=filters,
            seed=seed,
        )
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        self.train_transform = build_train_transform(
            image_size, min_crop_scale, color_jitter, horizontal_flip
        )
        self.class_of_landmark: dict[int, int] = {}

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        assert self.train_images is not None
        self.class_of_landmark = {
            int(landmark): index for index, landmark in enumerate(np.unique(self.train_images.labels))
        }

    @property
    def num_classes(self) -> int:
        if not self.class_of_landmark:
            raise RuntimeError("call setup() before asking for num_classes")
        return len(self.class_of_landmark)

    def train_dataloader(self) -> DataLoader:
        assert self.train_images is not None
        classes = [self.class_of_landmark[int(landmark)] for landmark in self.train_images.labels]
        dataset = ImageListDataset(
            self.train_images.paths, self.train_transform, labels=classes, max_side=2 * self.image_size
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            collate_fn=collate_skipping_failures,
            drop_last=True,
            pin_memory=torch.cuda.is_available(),
        )
