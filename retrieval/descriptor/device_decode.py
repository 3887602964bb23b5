"""JPEG files decoded where the network runs (nvJPEG on a GPU, through ``torchvision.io.decode_jpeg``) into the
network input the CPU path gives (:func:`retrieval.descriptor.extract.load_pixels`): same size, pixels within a
rounding of it.

A decoding worker only reads a file's header with PIL (format, mode, size, EXIF orientation — nothing decoded)
and its bytes, and works out the size the CPU path would produce (:func:`read_jpeg`); the device then decodes a
whole batch at once, box-filters by the CPU path's DCT reduction, applies the orientation and resizes with
antialiasing (:func:`decode_batch`). Files this path does not take — every other format, CMYK and MPO JPEGs,
files that do not end with an end-of-image marker (truncated), more than :data:`DEVICE_MAX_PIXELS` — are
decoded on the CPU as before, by the same rules (allowed formats, pixel budget, errors), and a file the device
fails on is decoded on the CPU after all. Measured on the shared real photos upscaled to 4032 px (Lite0, 512 px,
``tests/descriptor/test_device_decode.py``): descriptor cosine to the CPU path ≥ 0.999, mean pixel difference
0.18 of 255 — less than bf16 on a GPU changes.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from retrieval.descriptor.batching import snapped_size
from retrieval.images import draft_reduction, max_side_size

log = logging.getLogger(__name__)

# Full-size pixels one image may decode to on the device (nvJPEG decodes at full size; the CPU path decodes big
# JPEGs at reduced size, so larger files go there): 50 MP is 150 MB of uint8 per image.
DEVICE_MAX_PIXELS = 50_000_000
_ORIENTATION_TAG = 0x0112
_END_OF_IMAGE = b"\xff\xd9"


# Where JPEGs may be decoded: "cpu" (PIL in the decoding workers, the reference), "device" (where the network
# runs, whatever it is), "auto" (the device when it is a GPU).
DECODE_PLACES = ("auto", "cpu", "device")


def check_decode_place(decode: str) -> str:
    """``decode`` if it is one of :data:`DECODE_PLACES`, else ValueError."""
    if decode not in DECODE_PLACES:
        raise ValueError(f"decode must be one of {DECODE_PLACES}, got {decode!r}")
    return decode


def decodes_on_device(decode: str, device: torch.device) -> bool:
    """Whether JPEGs are decoded on ``device`` (the network's) rather than by the CPU workers, for ``decode``
    of :data:`DECODE_PLACES`."""
    return decode == "device" or (decode == "auto" and device.type == "cuda")


@dataclass(frozen=True, eq=False)
class EncodedJpeg:
    """A JPEG file's bytes and what its network input will be.

    Args:
        data: the file's bytes, (N,) uint8 on the CPU.
        full_size: (H, W) the file decodes to, before any orientation.
        reduction: the DCT scaling the CPU path decodes the file at (1, 2, 4 or 8), emulated by a box filter.
        orientation: EXIF orientation (1 to 8, 1 = none).
        resized: (H, W) after the max-side resize (the reduced, oriented size when there is none).
        size: (H, W) of the network input (``resized`` snapped to ``size_step``).
        path: the file, for messages and the CPU fallback.
    """

    data: torch.Tensor
    full_size: tuple[int, int]
    reduction: int
    orientation: int
    resized: tuple[int, int]
    size: tuple[int, int]
    path: str

    @property
    def shape(self) -> tuple[int, int, int]:
        """(3, H, W) of the network input, so it is bucketed as a decoded image of that size is."""
        return (3, *self.size)


@dataclass
class DecodeCounts:
    """Which path a job's images took, for the one line that says whether decoding on the device took effect.

    Args:
        on_device: JPEG files sent to the device (one it fails on is decoded on the CPU, with a warning).
        by_workers: images the workers decoded: other formats, CMYK or MPO, truncated or huge JPEGs.
    """

    on_device: int = 0
    by_workers: int = 0

    def add(self, items: Sequence[EncodedJpeg | torch.Tensor]) -> None:
        sent = sum(isinstance(item, EncodedJpeg) for item in items)
        self.on_device += sent
        self.by_workers += len(items) - sent

    def log(self, device: torch.device) -> None:
        """Log the counts (nothing when no image was decoded)."""
        if self.on_device or self.by_workers:
            log.info(
                "decoding: JPEGs on %s: %d; by the CPU workers (other formats, CMYK, truncated or huge JPEGs): %d",
                device,
                self.on_device,
                self.by_workers,
            )


def read_jpeg(path: str | Path, max_side: int, size_step: int | None) -> EncodedJpeg | None:
    """The file's bytes and target sizes when the device path takes it, else None (decode it on the CPU).

    Args:
        path: an image file.
        max_side: the longest side of the network input (``ExtractionSettings.max_side``).
        size_step: ``ExtractionSettings.size_step``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=("JPEG",)) as image:
                if image.mode not in ("RGB", "L") or image.width * image.height > DEVICE_MAX_PIXELS:
                    return None
                full_size = (image.height, image.width)
                orientation = int(image.getexif().get(_ORIENTATION_TAG, 1))
                reduction = draft_reduction(image, max_side)
                width, height = image.size  # reduced
        data = Path(path).read_bytes()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None  # the CPU path reads it again and says why it cannot
    if not data.rstrip(b"\0").endswith(_END_OF_IMAGE):
        return None
    orientation = orientation if orientation in range(2, 9) else 1
    if orientation >= 5:  # a quarter turn or a transposition
        width, height = height, width
    if max(width, height) > max_side:
        width, height = max_side_size(width, height, max_side)
    snapped = (width, height) if size_step is None else snapped_size((width, height), size_step)
    return EncodedJpeg(
        data=torch.frombuffer(bytearray(data), dtype=torch.uint8),
        full_size=full_size,
        reduction=reduction,
        orientation=orientation,
        resized=(height, width),
        size=(snapped[1], snapped[0]),
        path=str(path),
    )


def orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """``image`` (..., H, W) shown upright, as PIL's ``ImageOps.exif_transpose`` does for EXIF ``orientation``."""
    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-2, -1)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-2, -1)
    if orientation == 6:
        return image.rot90(-1, dims=(-2, -1))
    if orientation == 7:
        return image.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:
        return image.rot90(1, dims=(-2, -1))
    return image


def _resized(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (3, H, W) resized to ``size`` as PIL's bilinear filter does (antialiased when shrinking)."""
    if tuple(image.shape[-2:]) == size:
        return image
    resized = F.interpolate(
        image[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False
    )
    return resized[0].round().clamp(0, 255).to(torch.uint8)


def fit(image: torch.Tensor, item: EncodedJpeg) -> torch.Tensor:
    """A fully decoded file (3, H, W) uint8 → its network input ``item.size``, the CPU path's steps in order:
    reduced decoding (a box filter over ``reduction`` pixels), orientation, max-side resize, snapping."""
    if item.reduction > 1:
        pooled = F.avg_pool2d(image[None].float(), item.reduction, ceil_mode=True)[0]
        image = pooled.round().clamp(0, 255).to(torch.uint8)
    return _resized(_resized(orient(image, item.orientation), item.resized), item.size)


def _decode(items: Sequence[EncodedJpeg], device: torch.device) -> list[torch.Tensor | None]:
    """Every file decoded at full size on ``device`` (one call for all), None for a file that fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to torchcodec
        try:
            return list(decode_jpeg([item.data for item in items], mode=ImageReadMode.RGB, device=device))
        except RuntimeError:  # the batch call returns nothing when one file fails: find which, one by one
            decoded: list[torch.Tensor | None] = []
            for item in items:
                try:
                    decoded.append(decode_jpeg(item.data, mode=ImageReadMode.RGB, device=device))
                except RuntimeError as error:
                    log.warning("device decoding: %s: %s; decoding it on the CPU", item.path, error)
                    decoded.append(None)
            return decoded


def decode_images(
    items: Sequence[EncodedJpeg | torch.Tensor],
    device: str | torch.device,
    decode_on_cpu: Callable[[str], torch.Tensor | None],
) -> list[torch.Tensor | None]:
    """Images (3, H, W) uint8 on ``device``, each of its item's ``shape``, from files to decode there and images
    the workers already decoded (the files the device path does not take); None for a file no path can read.

    Args:
        items: :class:`EncodedJpeg` or decoded images (3, H, W) uint8, of any sizes.
        device: where to decode and put the images.
        decode_on_cpu: the CPU path for a file the device fails on (its image, or None if unreadable).
    """
    device = torch.device(device)
    images: list[torch.Tensor | None] = [None] * len(items)
    encoded: list[tuple[int, EncodedJpeg]] = []
    for position, item in enumerate(items):
        if isinstance(item, EncodedJpeg):
            encoded.append((position, item))
        else:
            images[position] = item.to(device, non_blocking=True)
    decoded = _decode([item for _, item in encoded], device) if encoded else []
    for (position, item), full in zip(encoded, decoded, strict=True):
        if full is not None and tuple(full.shape[-2:]) != item.full_size:
            log.warning(
                "device decoding: %s decoded to %s, its header says %s; decoding it on the CPU",
                item.path,
                tuple(full.shape[-2:]),
                item.full_size,
            )
            full = None
        images[position] = (
            fit(full, item) if full is not None else _on_device(decode_on_cpu(item.path), device)
        )
    for image, item in zip(images, items, strict=True):
        if image is not None and tuple(image.shape) != tuple(item.shape):
            raise RuntimeError(f"an image of {tuple(item.shape)} came out as {tuple(image.shape)}")
    return images


def decode_batch(
    items: Sequence[EncodedJpeg | torch.Tensor],
    device: str | torch.device,
    decode_on_cpu: Callable[[str], torch.Tensor | None],
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of network inputs of one size on ``device``: :func:`decode_images` of a bucket's ``items`` (all
    of one ``shape``), stacked.

    Returns:
        images (B, 3, H, W) uint8 on ``device`` (zeros for unreadable files) and readable (B,) bool on the CPU.
    """
    device = torch.device(device)
    if all(isinstance(item, torch.Tensor) for item in items):  # decoded by the workers: one transfer
        stacked = torch.stack(items).to(device, non_blocking=True)  # type: ignore[arg-type]
        return stacked, torch.ones(len(items), dtype=torch.bool)
    shape = tuple(items[0].shape)
    if any(tuple(item.shape) != shape for item in items):
        raise ValueError(f"a batch holds images of several shapes: {sorted({tuple(i.shape) for i in items})}")
    images = decode_images(items, device, decode_on_cpu)
    readable = torch.tensor([image is not None for image in images], dtype=torch.bool)
    blank = torch.zeros(shape, dtype=torch.uint8, device=device)
    return torch.stack([blank if image is None else image for image in images]), readable


def _on_device(image: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if image is None else image.to(device)
