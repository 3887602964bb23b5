"""Torch datasets over image lists that survive bad files: an unreadable image yields ``None``, which
:func:`collate_skipping_failures` drops and counts, so a corrupt file never crashes a worker."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate
from torchvision.transforms import v2

from retrieval.images import ImageLoadError, load_rgb

log = logging.getLogger(__name__)

Transform = Callable[[Image.Image], torch.Tensor]


@dataclass(frozen=True)
class TrainAugmentation:
    """The training augmentation.

    Args:
        min_crop_scale: smallest share of the image a random resized crop keeps, in (0, 1].
        color_jitter: brightness, contrast and saturation jitter (0: none).
        horizontal_flip: random flips (off by default: they mirror text and asymmetric façades).
    """

    min_crop_scale: float = 0.5
    color_jitter: float = 0.2
    horizontal_flip: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.min_crop_scale <= 1:
            raise ValueError(f"min_crop_scale must be in (0, 1], got {self.min_crop_scale}")
        if self.color_jitter < 0:
            raise ValueError(f"color_jitter must be non-negative, got {self.color_jitter}")


def build_train_transform(image_size: int, augmentation: TrainAugmentation) -> Transform:
    """Random resized square crop at ``image_size``, colour jitter, optional flip; output in [0, 1] (3, S, S)."""
    steps: list[Any] = [
        v2.RandomResizedCrop(image_size, scale=(augmentation.min_crop_scale, 1.0), antialias=True)
    ]
    if augmentation.horizontal_flip:
        steps.append(v2.RandomHorizontalFlip())
    if augmentation.color_jitter > 0:
        jitter = augmentation.color_jitter
        steps.append(v2.ColorJitter(jitter, jitter, jitter))
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    return v2.Compose(steps)


def build_eval_transform(image_size: int) -> Transform:
    """Resize to a square ``image_size`` (the training domain); output in [0, 1] (3, S, S)."""
    return v2.Compose(
        [
            v2.Resize((image_size, image_size), antialias=True),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


class ImageListDataset(Dataset):
    """``dataset[i]`` → ``{"image": (3, S, S), "index": i, "label": labels[i]}`` (no label when ``labels`` is
    None), or ``None`` when image i cannot be read."""

    def __init__(
        self,
        paths: Sequence[Path],
        transform: Transform,
        labels: Sequence[int] | None = None,
        max_side: int | None = None,
    ) -> None:
        if labels is not None and len(labels) != len(paths):
            raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
        self.paths = list(paths)
        self.transform = transform
        self.labels = None if labels is None else [int(label) for label in labels]
        self.max_side = max_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        try:
            image = load_rgb(self.paths[index], max_side=self.max_side)
        except ImageLoadError as error:
            log.debug("skipping image: %s", error)
            return None
        sample: dict[str, Any] = {"image": self.transform(image), "index": index}
        if self.labels is not None:
            sample["label"] = self.labels[index]
        return sample


def collate_skipping_failures(samples: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Collate the readable samples; ``num_skipped`` counts the unreadable ones of this batch."""
    readable = [sample for sample in samples if sample is not None]
    batch: dict[str, Any] = default_collate(readable) if readable else {}
    batch["num_skipped"] = len(samples) - len(readable)
    return batch
