"""One image's properties (:func:`analyze_image`): missing / undecodable / truncated files, grayscale (a single
channel, or three channels equal within a tolerance), near-grayscale and sepia (colour that luminance explains),
CMYK, 16 bits per sample, size, EXIF DateTimeOriginal and camera make / model, and a perceptual hash for
near-duplicates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image

from retrieval.duplicates import perceptual_hash
from retrieval.images import MAX_PIXELS, ImageLoadError, load_rgb

SINGLE_CHANNEL_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})


_LUMA_BINS = 32


_PNG_BIT_DEPTH_OFFSET = 24  # 8-byte signature, IHDR length and type, width, height, then the bit depth


_MAX_TEXT = 64  # EXIF strings are cut to this many characters


@dataclass(frozen=True)
class ImageAnalysisSettings:
    """How each image is analysed.

    Args:
        max_side: images are decoded with their longest side at most this (JPEGs at reduced DCT size, fast);
            colour statistics and the perceptual hash are computed at this size.
        grayscale_tolerance: an RGB image is grayscale when the 99th percentile over pixels of
            ``max(R, G, B) - min(R, G, B)`` is at most this (in 8-bit levels; JPEG rounding moves channels by 1-2).
        near_grayscale_tolerance: a colour image is near-grayscale (faded, sepia, toned, or nearly colourless)
            when the root-mean-square of its chroma (Cb, Cr) around the mean chroma of pixels of the same
            luminance is at most this, i.e. when luminance explains its colour (8-bit levels).
    """

    max_side: int = 128
    grayscale_tolerance: float = 3.0
    near_grayscale_tolerance: float = 2.2

    def __post_init__(self) -> None:
        if self.max_side < 32:
            raise ValueError(f"max_side must be at least 32 (the perceptual hash size), got {self.max_side}")
        if self.grayscale_tolerance < 0 or self.near_grayscale_tolerance < 0:
            raise ValueError(
                f"tolerances must be non-negative, got grayscale_tolerance={self.grayscale_tolerance}, "
                f"near_grayscale_tolerance={self.near_grayscale_tolerance}"
            )


@dataclass(frozen=True)
class ImageProperties:
    """What :func:`analyze_image` found in one file.

    ``undecodable``: the file exists but :func:`retrieval.images.load_rgb` cannot read it; ``truncated``: of
    those, the ones whose header PIL reads (truncated downloads, broken pixel data), as opposed to files that are
    no image at all. ``width`` / ``height`` are the stored size (before EXIF orientation). ``channel_spread`` and
    ``chroma_residual`` are the statistics behind ``grayscale`` and ``near_grayscale``.
    """

    missing: bool = False
    undecodable: bool = False
    truncated: bool = False
    grayscale: bool = False
    near_grayscale: bool = False
    cmyk: bool = False
    bits16: bool = False
    format: str = ""
    mode: str = ""
    width: int | None = None
    height: int | None = None
    file_bytes: int | None = None
    exif_datetime: str = ""
    make: str = ""
    model: str = ""
    phash: int | None = None
    channel_spread: float | None = None
    chroma_residual: float | None = None
    error: str = ""


@dataclass(frozen=True)
class _Header:
    format: str
    mode: str
    width: int
    height: int
    bits_per_sample: int
    exif_datetime: str
    make: str
    model: str


def channel_spread(rgb: np.ndarray) -> float:
    """The 99th percentile over pixels of ``max(R, G, B) - min(R, G, B)`` of a uint8 image (H, W, 3)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {rgb.shape}")
    spread = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2).astype(np.int16)
    return float(np.percentile(spread, 99))


def chroma_residual(image: Image.Image) -> float:
    """Root-mean-square distance of each pixel's chroma (Cb, Cr) from the mean chroma of the pixels in its
    luminance bin (32 bins): ~0 when colour is a function of luminance (grayscale, sepia, any toned photo),
    large when differently coloured things share a brightness (sky and trees, a red door on a grey wall)."""
    ycbcr = np.asarray(image.convert("YCbCr"), np.float64).reshape(-1, 3)
    bins = np.minimum((ycbcr[:, 0] * _LUMA_BINS / 256).astype(np.int64), _LUMA_BINS - 1)
    counts = np.maximum(np.bincount(bins, minlength=_LUMA_BINS), 1)
    squared = 0.0
    for channel in (1, 2):
        bin_means = np.bincount(bins, ycbcr[:, channel], minlength=_LUMA_BINS) / counts
        squared += float(np.mean((ycbcr[:, channel] - bin_means[bins]) ** 2))
    return math.sqrt(squared)


def _clean_text(value: Any) -> str:
    """An EXIF value as printable text: bytes decoded, NULs and surrounding whitespace removed, cut short."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = "".join(character for character in str(value) if character.isprintable())
    return text.strip()[:_MAX_TEXT]


def _bits_per_sample(image: Image.Image, path: Path) -> int:
    """Bits per sample as stored: PNG from its IHDR chunk (PIL opens 16-bit RGB PNGs as 8-bit RGB), TIFF from
    its BitsPerSample tag, otherwise from the PIL mode."""
    if image.format == "PNG":
        with open(path, "rb") as handle:
            header = handle.read(_PNG_BIT_DEPTH_OFFSET + 1)
        if len(header) > _PNG_BIT_DEPTH_OFFSET:
            return header[_PNG_BIT_DEPTH_OFFSET]
    if image.format == "TIFF":
        bits = getattr(image, "tag_v2", {}).get(ExifTags.Base.BitsPerSample)
        if bits:
            return int(max(bits) if isinstance(bits, tuple) else bits)
    return 16 if image.mode in SIXTEEN_BIT_MODES else 8


def _read_header(path: Path) -> _Header | None:
    """Format, mode, size, bit depth and EXIF fields from the file header, or ``None`` when PIL cannot identify
    the file as an image. Reads no pixel data."""
    try:
        with Image.open(path) as image:
            try:
                exif = image.getexif()
                datetime_original = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal, "")
                make, model = exif.get(ExifTags.Base.Make, ""), exif.get(ExifTags.Base.Model, "")
            except Exception:  # untrusted metadata: any parse failure means no EXIF, never a failed image
                datetime_original, make, model = "", "", ""
            return _Header(
                format=image.format or "",
                mode=image.mode,
                width=image.width,
                height=image.height,
                bits_per_sample=_bits_per_sample(image, path),
                exif_datetime=_clean_text(datetime_original),
                make=_clean_text(make),
                model=_clean_text(model),
            )
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def _undecodable(header: _Header | None, file_bytes: int, error: str) -> ImageProperties:
    """An existing file that cannot be decoded: truncated when its header parses (and it is not just too big)."""
    too_large = header is not None and header.width * header.height > MAX_PIXELS
    return ImageProperties(
        undecodable=True,
        truncated=header is not None and not too_large,
        format=header.format if header else "",
        mode=header.mode if header else "",
        width=header.width if header else None,
        height=header.height if header else None,
        file_bytes=file_bytes,
        error=error[:200],
    )


def analyze_image(
    path: str | Path, settings: ImageAnalysisSettings = ImageAnalysisSettings()
) -> ImageProperties:
    """Flags and statistics of one image file (never raises for a bad file: that is what it reports)."""
    path = Path(path)
    if not path.is_file():
        return ImageProperties(missing=True)
    file_bytes = path.stat().st_size
    header = _read_header(path)
    try:
        rgb = load_rgb(path, max_side=settings.max_side)
    except ImageLoadError as error:
        return _undecodable(header, file_bytes, str(error).removeprefix(f"{path}: "))
    if header is None:  # load_rgb read it, so it was replaced between the two reads
        return _undecodable(header, file_bytes, "the file changed while it was read")
    pixels = np.asarray(rgb)
    spread = channel_spread(pixels)
    residual = chroma_residual(rgb)
    grayscale = header.mode in SINGLE_CHANNEL_MODES or spread <= settings.grayscale_tolerance
    return ImageProperties(
        grayscale=grayscale,
        near_grayscale=not grayscale and residual <= settings.near_grayscale_tolerance,
        cmyk=header.mode == "CMYK",
        bits16=header.bits_per_sample > 8,
        format=header.format,
        mode=header.mode,
        width=header.width,
        height=header.height,
        file_bytes=file_bytes,
        exif_datetime=header.exif_datetime,
        make=header.make,
        model=header.model,
        phash=perceptual_hash(rgb),
        channel_spread=spread,
        chroma_residual=residual,
    )
