"""Torch datasets over image lists that survive bad files: an unreadable image yields ``None``, which
:func:`collate_skipping_failures` drops and counts, so a corrupt file never crashes a worker.

With ``on_device`` a dataset leaves its images :class:`Undecoded` — JPEG files read but not decoded
(:func:`retrieval.descriptor.device_decode.read_jpeg`), other files decoded by PIL — and
:func:`transform_on_device`, called by the DataModule's batch-transfer hook, decodes and transforms the batch where
the network runs (nvJPEG on a GPU): the same transforms on the same pixels, within a rounding."""

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
from torchvision.transforms.v2.functional import pil_to_tensor

from retrieval.descriptor.device_decode import DecodeCounts, EncodedJpeg, decode_images, read_jpeg
from retrieval.images import ImageLoadError, load_rgb

log = logging.getLogger(__name__)

# A transform takes a PIL image, or a uint8 (3, H, W) tensor on any device, and gives a float (3, S, S) in [0, 1].
Transform = Callable[[Image.Image | torch.Tensor], torch.Tensor]


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


@dataclass(frozen=True)
class Undecoded:
    """A sample's images left for the device: JPEG files to decode there, or uint8 (3, H, W) images PIL decoded
    (the files the device path does not take), each already sized as the CPU path decodes it.

    Args:
        items: the images, in order.
        stack: the sample is the stack of its images (n, 3, S, S), not its one image (3, S, S).
    """

    items: tuple[EncodedJpeg | torch.Tensor, ...]
    stack: bool = False


def undecoded_image(path: str | Path, max_side: int) -> EncodedJpeg | torch.Tensor:
    """What a worker hands on for one image with ``on_device``: the JPEG file to decode on the device, or the
    image decoded by PIL at most ``max_side``.

    Raises:
        ImageLoadError: the CPU path cannot read the file.
    """
    encoded = read_jpeg(path, max_side, None)
    return encoded if encoded is not None else pil_to_tensor(load_rgb(path, max_side))


def _decoded_or_none(path: str, max_side: int) -> torch.Tensor | None:
    try:
        return pil_to_tensor(load_rgb(path, max_side))
    except ImageLoadError as error:
        log.warning("device decoding: %s", error)
        return None


class ImageListDataset(Dataset):
    """``dataset[i]`` → ``{"image": (3, S, S), "index": i, "label": labels[i]}`` (no label when ``labels`` is
    None), or ``None`` when image i cannot be read; with ``on_device`` the image is :class:`Undecoded`."""

    def __init__(
        self,
        paths: Sequence[Path],
        transform: Transform,
        labels: Sequence[int] | None = None,
        max_side: int | None = None,
        on_device: bool = False,
    ) -> None:
        if labels is not None and len(labels) != len(paths):
            raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
        if on_device and max_side is None:
            raise ValueError("decoding on the device needs a max_side")
        self.paths = list(paths)
        self.transform = transform
        self.labels = None if labels is None else [int(label) for label in labels]
        self.max_side = max_side
        self.on_device = on_device

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        try:
            if self.on_device and self.max_side is not None:
                image: Any = Undecoded((undecoded_image(self.paths[index], self.max_side),))
            else:
                image = self.transform(load_rgb(self.paths[index], max_side=self.max_side))
        except ImageLoadError as error:
            log.debug("skipping image: %s", error)
            return None
        sample: dict[str, Any] = {"image": image, "index": index}
        if self.labels is not None:
            sample["label"] = self.labels[index]
        return sample


def collate_skipping_failures(samples: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Collate the readable samples; ``num_skipped`` counts the unreadable ones of this batch. :class:`Undecoded`
    values stay a list of them, for :func:`transform_on_device`."""
    readable = [sample for sample in samples if sample is not None]
    undecoded = (
        [key for key, value in readable[0].items() if isinstance(value, Undecoded)] if readable else []
    )
    rest = [{key: value for key, value in sample.items() if key not in undecoded} for sample in readable]
    batch: dict[str, Any] = default_collate(rest) if readable else {}
    for key in undecoded:
        batch[key] = [sample[key] for sample in readable]
    batch["num_skipped"] = len(samples) - len(readable)
    return batch


def transform_on_device(
    batch: dict[str, Any],
    transform: Transform,
    device: torch.device,
    max_side: int,
    counts: DecodeCounts | None = None,
) -> dict[str, Any]:
    """A collated batch with its :class:`Undecoded` images decoded on ``device``, transformed there one by one
    and stacked, as the workers would have given them; a sample with an image no path can read is dropped and
    counted in ``num_skipped``. A batch without undecoded images is returned as it is.

    Args:
        batch: from :func:`collate_skipping_failures`.
        transform: the dataset's transform (torchvision v2 works on tensors as on PIL images).
        device: the network's device.
        max_side: the datasets' ``max_side``, for a file the device fails on (decoded by PIL after all).
        counts: where to count which path the images took.
    """
    keys = [
        key
        for key, value in batch.items()
        if isinstance(value, list) and value and isinstance(value[0], Undecoded)
    ]
    if not keys:
        return batch
    if len(keys) > 1:
        raise ValueError(f"a batch holds undecoded images under several keys: {keys}")
    samples: list[Undecoded] = batch[keys[0]]
    items = [item for sample in samples for item in sample.items]
    if counts is not None:
        counts.add(items)
    images = decode_images(items, device, lambda path: _decoded_or_none(path, max_side))
    kept: list[bool] = []
    transformed: list[torch.Tensor] = []
    start = 0
    for sample in samples:
        group = images[start : start + len(sample.items)]
        start += len(sample.items)
        kept.append(all(image is not None for image in group))
        if kept[-1]:
            stacked = torch.stack([transform(image) for image in group if image is not None])
            transformed.append(
                stacked.as_subclass(torch.Tensor) if sample.stack else stacked[0].as_subclass(torch.Tensor)
            )
    num_skipped = int(batch["num_skipped"]) + kept.count(False)
    if not transformed:
        return {"num_skipped": num_skipped}
    mask = torch.tensor(kept)
    result = {
        key: value[mask] if isinstance(value, torch.Tensor) else value
        for key, value in batch.items()
        if key not in (keys[0], "num_skipped")
    }
    return {**result, keys[0]: torch.stack(transformed), "num_skipped": num_skipped}
