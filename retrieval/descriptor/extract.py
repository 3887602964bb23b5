"""Global-descriptor extraction over any list of images: multi-scale, query crops, batched by image size,
bf16 + channels_last on a GPU, cached on disk.

Multi-scale descriptors follow cirtorch: the descriptor at each scale is raised to the power p (the GeM
exponent, 1 for other poolings), averaged over scales, taken to the power 1/p, and L2-normalised; or, with
``scale_aggregation="max"``, SuperGlobal's Scale-GeM with p → ∞ (Shao et al., ICCV 2023): each scale's
descriptor L2-normalised, then their element-wise maximum, L2-normalised.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from retrieval.descriptor.batching import SizeBuckets, snapped_size
from retrieval.descriptor.device_decode import (
    DecodeCounts,
    EncodedJpeg,
    check_decode_place,
    decode_batch,
    decodes_on_device,
    read_jpeg,
)
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.descriptor.pooling import GeM
from retrieval.images import BoundingBox, ImageLoadError, crop, load_rgb, resize_max_side
from retrieval.progress import stage

log = logging.getLogger(__name__)

DEFAULT_SCALES = (1.0, 1 / math.sqrt(2), 0.5)
SCALE_AGGREGATIONS = ("power_mean", "max")


@dataclass(frozen=True)
class ExtractionSettings:
    """How descriptors are extracted; part of the cache key.

    Args:
        max_side: images (or query crops) are resized so that their longest side is this.
        scales: image scales whose descriptors are aggregated (cirtorch: 1, 1/√2, 1/2).
        batch_size: images per forward pass (images of equal size are batched together).
        num_workers: decoding processes.
        size_step: round both sides to a multiple of this many pixels (aspect ratio kept within
            ``size_step / 2`` pixels), so that photos of many sizes share a few shapes and fill whole batches on a
            GPU; ``None`` keeps every image's exact size (the published protocols' choice).
        scale_aggregation: ``"power_mean"`` (cirtorch) or ``"max"`` (SuperGlobal's Scale-GeM, p → ∞).
        decode: where JPEGs are decoded: ``"cpu"`` (PIL in the decoding workers, the reference), ``"device"``
            (where the network runs: nvJPEG on a GPU, :mod:`retrieval.descriptor.device_decode`; other formats
            stay on the CPU) or ``"auto"`` (the device when it is a GPU). Not part of the key: the two agree to a
            descriptor cosine of 0.999, closer than bf16 and fp32 do.
    """

    max_side: int = 1024
    scales: tuple[float, ...] = DEFAULT_SCALES
    batch_size: int = 16
    num_workers: int = 2
    size_step: int | None = None
    scale_aggregation: str = "power_mean"
    decode: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "scales", tuple(float(scale) for scale in self.scales)
        )  # lists from configs too
        if self.max_side < 16:
            raise ValueError(f"max_side must be at least 16, got {self.max_side}")
        if not self.scales or any(scale <= 0 for scale in self.scales):
            raise ValueError(f"scales must be positive, got {self.scales}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.size_step is not None and not 1 <= self.size_step <= self.max_side:
            raise ValueError(f"size_step must be in [1, max_side] or None, got {self.size_step}")
        if self.scale_aggregation not in SCALE_AGGREGATIONS:
            raise ValueError(
                f"scale_aggregation must be one of {SCALE_AGGREGATIONS}, got {self.scale_aggregation!r}"
            )
        check_decode_place(self.decode)

    def decodes_on_device(self, device: torch.device) -> bool:
        """Whether JPEGs are decoded on ``device`` (the network's) rather than by the CPU workers."""
        return decodes_on_device(self.decode, device)

    def key(self) -> str:
        """The settings descriptors depend on, e.g. ``max_side=512|scales=[1.0]`` (batching and workers do not
        change them); an index of descriptors is named by its weights' id and this."""
        key = f"max_side={self.max_side}|scales={list(self.scales)}"
        if self.size_step is not None:
            key = f"{key}|size_step={self.size_step}"
        return key if self.scale_aggregation == "power_mean" else f"{key}|scales_by={self.scale_aggregation}"


def image_pixels(image: Image.Image, settings: ExtractionSettings) -> torch.Tensor:
    """The network input of an image already at most ``max_side`` (e.g. decoded by :func:`load_pixels`):
    snapped to ``size_step`` when set, as a uint8 tensor (3, H, W)."""
    if settings.size_step is not None:
        image = snap_size(image, settings.size_step)
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)


def load_pixels(
    path: str | Path,
    settings: ExtractionSettings,
    box: BoundingBox | None = None,
    max_pixels: int | None = None,
) -> torch.Tensor:
    """The network input (3, H, W) uint8 of an image file, decoded as every path of the project decodes it:
    downscaled to ``max_side`` (JPEGs at reduced size), or its crop ``box`` resized to ``max_side``.

    Raises:
        retrieval.images.ImageLoadError: the file cannot be read (see :func:`retrieval.images.decode`).
    """
    if box is None:
        return image_pixels(load_rgb(path, settings.max_side, max_pixels), settings)
    # A crop box is in full-resolution pixels, so cropped images are decoded in full first.
    try:
        cropped = crop(load_rgb(path, max_pixels=max_pixels), box)
    except ValueError as error:
        if isinstance(error, ImageLoadError):
            raise
        raise ValueError(f"{path}: {error}") from error
    return image_pixels(resize_max_side(cropped, settings.max_side), settings)


def load_pixels_or_none(
    path: str | Path, settings: ExtractionSettings, box: BoundingBox | None = None
) -> torch.Tensor | None:
    """:func:`load_pixels`, or ``None`` (with a warning naming the file and why) when it cannot be read: how
    every extraction path skips a bad image."""
    try:
        return load_pixels(path, settings, box)
    except ImageLoadError as error:
        log.warning("extraction: %s", error)
        return None


def load_network_input(
    path: str | Path, settings: ExtractionSettings, on_device: bool, box: BoundingBox | None = None
) -> EncodedJpeg | torch.Tensor | None:
    """What a decoding worker hands on: with ``on_device``, a JPEG file to be decoded where the network runs
    (:func:`retrieval.descriptor.device_decode.read_jpeg`); otherwise, and for every file that path does not
    take, :func:`load_pixels_or_none`."""
    if on_device and box is None:
        encoded = read_jpeg(path, settings.max_side, settings.size_step)
        if encoded is not None:
            return encoded
    return load_pixels_or_none(path, settings, box)


class _ExtractionDataset(Dataset):
    """Image i as :func:`load_network_input` gives it; ``None`` if unreadable."""

    def __init__(
        self,
        paths: Sequence[Path],
        boxes: Sequence[BoundingBox | None] | None,
        settings: ExtractionSettings,
        on_device: bool,
    ) -> None:
        self.paths = list(paths)
        self.boxes = list(boxes) if boxes is not None else [None] * len(self.paths)
        self.settings = settings
        self.on_device = on_device

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, EncodedJpeg | torch.Tensor | None]:
        return index, load_network_input(self.paths[index], self.settings, self.on_device, self.boxes[index])


def snap_size(image: Image.Image, step: int) -> Image.Image:
    """Resize so that both sides are multiples of ``step`` (:func:`snapped_size`)."""
    size = snapped_size(image.size, step)
    return image if size == image.size else image.resize(size, Image.Resampling.BILINEAR)


def _first(
    samples: list[tuple[int, EncodedJpeg | torch.Tensor | None]],
) -> tuple[int, EncodedJpeg | torch.Tensor | None]:
    return samples[0]


def multiscale_power(net: GlobalDescriptorNet) -> float:
    """The exponent of the multi-scale mean: the GeM p of the network, else 1."""
    return float(net.pool.p.detach().mean()) if isinstance(net.pool, GeM) else 1.0


@torch.no_grad()
def describe_batch(
    net: GlobalDescriptorNet,
    images: torch.Tensor,
    scales: Sequence[float],
    power: float,
    aggregation: str = "power_mean",
) -> torch.Tensor:
    """uint8 images (B, 3, H, W) on the network's device → multi-scale descriptors (B, D) float32 (bf16 autocast
    and channels_last on a GPU); ``power``: :func:`multiscale_power`; ``aggregation``: ``ExtractionSettings.
    scale_aggregation``."""
    pixels = net.normalize(images.float() / 255.0)
    if pixels.is_cuda:
        pixels = pixels.contiguous(memory_format=torch.channels_last)
    total: torch.Tensor | None = None
    for scale in scales:
        scaled = (
            pixels
            if scale == 1
            else F.interpolate(
                pixels, scale_factor=scale, mode="bilinear", align_corners=False, antialias=True
            )
        )
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=pixels.is_cuda):
            descriptor = net(scaled).float()
        if aggregation == "max":
            term = F.normalize(descriptor, dim=-1)
            total = term if total is None else torch.maximum(total, term)
            continue
        term = descriptor.clamp(min=0).pow(power) if power != 1 else descriptor
        total = term if total is None else total + term
    if total is None:
        raise ValueError("at least one scale is needed")
    if aggregation == "max":
        return F.normalize(total, dim=-1)
    mean = total / len(scales)
    return F.normalize(mean.pow(1 / power) if power != 1 else mean, dim=-1)


def extract_descriptors(
    net: GlobalDescriptorNet,
    paths: Sequence[Path],
    settings: ExtractionSettings = ExtractionSettings(),
    boxes: Sequence[BoundingBox | None] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    description: str = "extracting",
) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors of every image.

    Returns:
        descriptors (N, D) float32, L2-normalised (rows of unreadable images are zero), and a (N,) bool mask of
        the images that could be read.
    """
    if boxes is not None and len(boxes) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(boxes)} boxes")
    device = torch.device(device) if device is not None else next(net.parameters()).device
    was_training = net.training
    net.eval().to(device)
    if device.type == "cuda":
        net.to(memory_format=torch.channels_last)
    power = multiscale_power(net)
    descriptors = np.zeros((len(paths), net.output_dim), dtype=np.float32)
    readable = np.zeros(len(paths), dtype=bool)
    on_device = settings.decodes_on_device(device)
    counts = DecodeCounts()
    loader = DataLoader(
        _ExtractionDataset(paths, boxes, settings, on_device),
        batch_size=1,
        num_workers=settings.num_workers,
        collate_fn=_first,
        pin_memory=device.type == "cuda",
    )
    buckets: SizeBuckets[EncodedJpeg | torch.Tensor] = SizeBuckets(settings.batch_size)

    def on_cpu(path: str) -> torch.Tensor | None:
        return load_pixels_or_none(path, settings)

    # The bar counts images described (or found unreadable), not images decoded: the network work of the
    # buckets still waiting at the end is part of the stage.
    with stage(description, len(paths), enabled=progress) as bar:

        def describe(indices: list[int], items: list[EncodedJpeg | torch.Tensor]) -> None:
            counts.add(items)
            batch, decoded = decode_batch(items, device, on_cpu)
            rows = (
                describe_batch(net, batch, settings.scales, power, settings.scale_aggregation).cpu().numpy()
            )
            mask = decoded.numpy()
            descriptors[np.asarray(indices)[mask]] = rows[mask]
            readable[indices] = mask
            bar.update(len(indices))

        for index, image in loader:
            if image is None:
                bar.update(1)
            elif (full := buckets.add(index, image)) is not None:
                describe(*full)
        for batch in buckets.drain():
            describe(*batch)
    net.train(was_training)
    if on_device:
        counts.log(device)
    if not readable.all():
        log.warning("extraction: %d of %d images unreadable and skipped", int((~readable).sum()), len(paths))
    return descriptors, readable


def describe_pixels(
    net: GlobalDescriptorNet,
    pixels: Sequence[torch.Tensor],
    settings: ExtractionSettings,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Descriptors (N, D) float32 of network inputs (3, H, W) uint8 (:func:`load_pixels`, :func:`image_pixels`),
    one forward pass each."""
    device = torch.device(device) if device is not None else next(net.parameters()).device
    was_training = net.training
    net.eval().to(device)
    power = multiscale_power(net)
    rows = [
        describe_batch(net, image[None].to(device), settings.scales, power, settings.scale_aggregation)
        .cpu()
        .numpy()
        for image in pixels
    ]
    net.train(was_training)
    return np.concatenate(rows) if rows else np.zeros((0, net.output_dim), dtype=np.float32)


def describe_images(
    net: GlobalDescriptorNet,
    images: Sequence[Image.Image],
    settings: ExtractionSettings,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Descriptors (N, D) float32 of images already in memory, each downscaled to ``max_side`` as a decoded
    file is (never upscaled). A file gives the very descriptor its collection holds only through
    :func:`load_pixels` (JPEGs are decoded at reduced size); an image in memory differs slightly."""
    resized = [
        image
        if max(image.size) <= settings.max_side
        else resize_max_side(image.convert("RGB"), settings.max_side)
        for image in images
    ]
    return describe_pixels(net, [image_pixels(image, settings) for image in resized], settings, device)


def file_stat(path: str | Path) -> tuple[int, int] | None:
    """(size, modification time in ns) of a file, or None if it is missing: what says a file is unchanged
    without reading it."""
    try:
        status = Path(path).stat()
    except FileNotFoundError:
        return None
    return status.st_size, status.st_mtime_ns


def files_fingerprint(paths: Sequence[Path], stats: Sequence[tuple[int, int] | None] | None = None) -> str:
    """A hash of the files' paths, sizes and modification times: it changes when any file is rewritten (a
    regenerated demo keeps its file names), without reading the files. ``stats`` (:func:`file_stat` of each
    path) spares a caller that has them a second pass over the file system."""
    if stats is not None and len(stats) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(stats)} stats")
    digest = hashlib.sha256()
    for path, stat in zip(paths, stats if stats is not None else map(file_stat, paths), strict=True):
        if stat is None:
            digest.update(f"{path}\0missing\n".encode())
        else:
            digest.update(f"{path}\0{stat[0]}\0{stat[1]}\n".encode())
    return digest.hexdigest()


def cache_key(
    descriptor_id: str,
    paths: Sequence[Path],
    settings: ExtractionSettings,
    boxes: Sequence[BoundingBox | None] | None,
) -> str:
    """A hash of everything the descriptors depend on: model, images, crops and extraction settings."""
    content = {
        "descriptor_id": descriptor_id,
        "paths": [str(path) for path in paths],
        "boxes": [list(box) if box else None for box in boxes] if boxes is not None else None,
        "settings": {
            key: value
            for key, value in asdict(settings).items()
            if key in ("max_side", "scales", "size_step", "scale_aggregation")
        },
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:24]


def extract_cached(
    net: GlobalDescriptorNet,
    paths: Sequence[Path],
    descriptor_id: str,
    cache_dir: str | Path | None,
    settings: ExtractionSettings = ExtractionSettings(),
    boxes: Sequence[BoundingBox | None] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    description: str = "extracting",
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`extract_descriptors`, reusing ``<cache_dir>/<key>.npz`` when the same model, images and settings
    were extracted before (``cache_dir=None`` disables the cache)."""
    if cache_dir is None:
        return extract_descriptors(net, paths, settings, boxes, device, progress, description)
    path = Path(cache_dir) / f"{cache_key(descriptor_id, paths, settings, boxes)}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as cached:
            log.info("descriptors from cache %s", path)
            return cached["descriptors"], cached["readable"]
    descriptors, readable = extract_descriptors(net, paths, settings, boxes, device, progress, description)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp.npz")
    np.savez(temporary, descriptors=descriptors, readable=readable)
    temporary.replace(path)
    return descriptors, readable
