"""Robust image loading shared by training, evaluation, local features, indexing, serving and the analysis.

Every reader in the project goes through :func:`decode` (or :func:`load_rgb` / :func:`load_gray`), so that
corrupt, truncated, CMYK, grayscale, palette, 16-bit, huge and foreign images behave the same everywhere: they
are converted when that is well defined, and otherwise raise :class:`ImageLoadError`, which callers count and
skip (or, in the server, turn into a 4xx).

Only the formats of :data:`DECODABLE_FORMATS` are ever decoded, recognised by content, never by name: a file of
any other format (EPS, PDF, SVG, ...) is refused before any decoder — let alone an external program such as
Ghostscript — sees it. HEIC/HEIF and AVIF are refused with a message that says to convert them. Pixels are
bounded before decoding: JPEGs asked for at a smaller size are decoded at reduced size (DCT scaling), and the
pixels that would be decoded are checked against a budget first.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# The Pillow formats decoded, by content: JPEG (with MPO, the multi-picture JPEG of many cameras, which Pillow's
# JPEG decoder opens), PNG, WebP, BMP, TIFF and GIF (its first frame).
DECODABLE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
# Formats decoded at reduced size when a smaller image is asked for.
_DRAFT_FORMATS = ("JPEG", "MPO")

# File suffixes of the images that folders are scanned for.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")

# ISO base media brands (bytes 8-12 of the file) of formats that are recognised only to be refused clearly.
_UNSUPPORTED_BRANDS = {
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"hevc": "HEIC",
    b"heim": "HEIC",
    b"heis": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
    b"avif": "AVIF",
    b"avis": "AVIF",
}

# (x1, y1, x2, y2) in full-resolution pixels, as the Revisited ground truth gives query boxes.
BoundingBox = tuple[float, float, float, float]

# Refuse to decode more pixels than this (a decompression bomb or a scan, never a landmark photo); Pillow's own
# guard refuses headers of more than Image.MAX_IMAGE_PIXELS before that.
MAX_PIXELS = 200_000_000

# Truncated files must fail, not come back half grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageLoadError(ValueError):
    """An image that cannot be decoded into a usable picture; the message names the file and the reason."""


class ImageTooLargeError(ImageLoadError):
    """An image that would decode to more pixels than allowed (or than PIL's decompression-bomb guard allows)."""


class UnsupportedFormatError(ImageLoadError):
    """A file that is no image in one of :data:`DECODABLE_FORMATS` (HEIC, AVIF, EPS, PDF, text, ...)."""


def _to_8bit_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode (1, L, LA, P, RGBA, CMYK, I;16, I, F, YCbCr, ...) to 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = values.max() if values.size else 0.0
        scale = 255.0 / top if top > 255 else 1.0
        gray = np.clip(values * scale, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGB", image.size, (255, 255, 255))
        rgba = image.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _unidentified(path: Path) -> UnsupportedFormatError:
    """Why a file that no allowed decoder recognises is refused."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        head = b""
    if head[4:8] == b"ftyp" and head[8:12] in _UNSUPPORTED_BRANDS:
        kind = _UNSUPPORTED_BRANDS[head[8:12]]
        return UnsupportedFormatError(f"{path}: {kind} images are not supported; convert it to JPEG or PNG")
    return UnsupportedFormatError(
        f"{path}: not an image in a format that can be read (JPEG, PNG, WebP, BMP, TIFF, GIF)"
    )


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """An image decoded as 8-bit RGB, EXIF orientation applied, and the size of the full image in pixels
    (width, height, after orientation) — larger than ``rgb``'s when it was decoded or resized smaller."""

    rgb: Image.Image
    original_size: tuple[int, int]


def decode(
    path: str | Path, max_side: int | None = None, max_pixels: int | None = None, reduce_only: bool = False
) -> DecodedImage:
    """Decode an image of an allowed format as 8-bit RGB, EXIF orientation applied, optionally downscaled so that
    its longest side is at most ``max_side`` (JPEGs are decoded at reduced size directly, which is several times
    faster and bounds memory).

    Args:
        path: the file; its format is recognised by content.
        max_side: longest side of the result (None: full size).
        max_pixels: the most pixels to decode (after reduced-size JPEG decoding), checked before decoding
            (None: :data:`MAX_PIXELS`).
        reduce_only: decode JPEGs at reduced size, but not below ``max_side``, and resize nothing: the caller
            resizes with its own filter (local features use area interpolation).

    Raises:
        ImageLoadError: the file is missing, truncated or corrupt; :class:`UnsupportedFormatError` for a file of
            another format; :class:`ImageTooLargeError` for more pixels than ``max_pixels``.
    """
    path = Path(path)
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=DECODABLE_FORMATS) as image:
                full_size = image.size
                draft_reduction(image, max_side)
                decoded_size = image.size
                if decoded_size[0] * decoded_size[1] > max_pixels:
                    reduced = (
                        ""
                        if decoded_size == full_size
                        else f" (decoded at {decoded_size[0]}x{decoded_size[1]})"
                    )
                    raise ImageTooLargeError(
                        f"{path}: {full_size[0]}x{full_size[1]}{reduced} exceeds {max_pixels} pixels; refusing to "
                        "decode"
                    )
                image.load()
                rgb = _to_8bit_rgb(ImageOps.exif_transpose(image) or image)
    except ImageLoadError:
        raise
    except FileNotFoundError as error:
        raise ImageLoadError(f"{path}: file not found") from error
    except UnidentifiedImageError as error:
        raise _unidentified(path) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLargeError(f"{path}: too many pixels to decode safely ({error})") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"{path}: cannot decode image ({error})") from error
    transposed = rgb.size != decoded_size
    original_size = (full_size[1], full_size[0]) if transposed else full_size
    if max_side is not None and max(rgb.size) > max_side and not reduce_only:
        rgb = resize_max_side(rgb, max_side)
    return DecodedImage(rgb, original_size)


def draft_reduction(image: Image.Image, max_side: int | None) -> int:
    """Ask an opened, not yet decoded JPEG to decode at reduced size (DCT scaling by 1/2, 1/4 or 1/8) when
    ``max_side`` is smaller than its longest side, never below ``max_side``; its size becomes the reduced one.

    Returns:
        the reduction factor: 1 (other formats, or no reduction), 2, 4 or 8.
    """
    if max_side is None or image.format not in _DRAFT_FORMATS:
        return 1
    width = image.width
    scale = max_side / max(image.size)
    if scale >= 1:
        return 1
    drafted = image.draft("RGB", (int(image.width * scale) + 1, int(image.height * scale) + 1))
    return 1 if drafted is None else round(width / drafted[1][2])


def max_side_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so that the longest side is ``max_side`` (aspect ratio kept; never below 1)."""
    if max_side <= 0:
        raise ValueError(f"max_side must be positive, got {max_side}")
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def load_rgb(path: str | Path, max_side: int | None = None, max_pixels: int | None = None) -> Image.Image:
    """:func:`decode`'s 8-bit RGB image.

    Raises:
        ImageLoadError: see :func:`decode`.
    """
    return decode(path, max_side, max_pixels).rgb


def resize_max_side(image: Image.Image, max_side: int) -> Image.Image:
    """Resize so that the longest side equals ``max_side`` (:func:`max_side_size`)."""
    return image.resize(max_side_size(image.width, image.height, max_side), Image.Resampling.BILINEAR)


def load_gray(path: str | Path, max_side: int | None = None, max_pixels: int | None = None) -> np.ndarray:
    """Load an image as a uint8 grayscale array (H, W), for local feature detectors.

    Raises:
        ImageLoadError: see :func:`decode`.
    """
    return np.asarray(load_rgb(path, max_side, max_pixels).convert("L"))


def crop_region(width: int, height: int, box: BoundingBox) -> tuple[int, int, int, int]:
    """Whole pixels (left, top, right, bottom) covering ``box`` in a ``width`` x ``height`` image, clipped to it.

    Raises:
        ValueError: the box lies outside the image.
    """
    x1, y1, x2, y2 = box
    left, top = max(0, math.floor(x1)), max(0, math.floor(y1))
    right, bottom = min(width, math.ceil(x2)), min(height, math.ceil(y2))
    if right <= left or bottom <= top:
        raise ValueError(f"crop box {box} lies outside the {width}x{height} image")
    return left, top, right, bottom


def crop(image: Image.Image, box: BoundingBox | None) -> Image.Image:
    """The part of ``image`` inside ``box`` (see :func:`crop_region`), or the image itself for None."""
    return image if box is None else image.crop(crop_region(image.width, image.height, box))
