"""Landmark classification data: every training image with its landmark as a class (the thesis' E2 and
ArcFace-style training), validated like the tuple data on held-out landmarks."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from datamodules.image_datasets import (
    ImageListDataset,
    TrainAugmentation,
    collate_skipping_failures,
)
from datamodules.landmarks import LandmarkDataModule, LandmarkSplit, checked_int


class LandmarkClassificationDataModule(LandmarkDataModule):
    """Batches ``{"image": (B, 3, S, S), "label": (B,)}`` with labels 0 … num_classes − 1.

    Args:
        split, image_size, extraction_batch_size, num_workers, decode_max_side, augmentation, decode: see
            :class:`LandmarkDataModule`.
        batch_size: images per training batch.
    """

    def __init__(
        self,
        split: LandmarkSplit,
        image_size: int = 224,
        batch_size: int = 32,
        extraction_batch_size: int = 32,
        num_workers: int = 4,
        augmentation: TrainAugmentation | None = None,
        decode_max_side: int | None = None,
        decode: str = "auto",
    ) -> None:
        super().__init__(
            split, image_size, extraction_batch_size, num_workers, decode_max_side, augmentation, decode
        )
        self.batch_size = checked_int("batch_size", batch_size)
        self.class_of_landmark: dict[int, int] = {}

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        self.class_of_landmark = {
            int(landmark): index for index, landmark in enumerate(np.unique(self.training_images.labels))
        }

    @property
    def num_classes(self) -> int:
        if not self.class_of_landmark:
            raise RuntimeError("call setup() before asking for num_classes")
        return len(self.class_of_landmark)

    def train_dataloader(self) -> DataLoader:
        classes = [self.class_of_landmark[int(landmark)] for landmark in self.training_images.labels]
        dataset = ImageListDataset(
            self.training_images.paths,
            self.train_transform,
            labels=classes,
            max_side=self.decode_max_side,
            on_device=self.decodes_on_device(),
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
