"""Robust image loading shared by training, evaluation, local features and the dataset analysis.

Every reader in the project goes through :func:`load_rgb` (or :func:`load_gray`), so that corrupt, truncated,
CMYK, grayscale, palette, 16-bit and huge images behave the same everywhere: they are converted when that is
well defined, and otherwise raise :class:`ImageLoadError`, which callers count and skip.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

# File suffixes of the images that folders are scanned for.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

# (x1, y1, x2, y2) in full-resolution pixels, as the Revisited ground truth gives query boxes.
BoundingBox = tuple[float, float, float, float]

# Refuse images above this many pixels (a decompression bomb or a scan, never a landmark photo).
MAX_PIXELS = 200_000_000

# Truncated files must fail, not come back half grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageLoadError(ValueError):
    """An image that cannot be decoded into a usable picture; the message names the file and the reason."""


class ImageTooLargeError(ImageLoadError):
    """An image with more pixels than :data:`MAX_PIXELS` (or than PIL's decompression-bomb guard allows)."""


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


def load_rgb(path: str | Path, max_side: int | None = None) -> Image.Image:
    """Load an image as 8-bit RGB, EXIF orientation applied, optionally downscaled so that its longest side is
    at most ``max_side`` (JPEGs are decoded at reduced size directly, which is several times faster).

    Raises:
        ImageLoadError: the file is missing, truncated, not an image, or larger than ``MAX_PIXELS``.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise ImageTooLargeError(
                        f"{path}: {image.width}x{image.height} exceeds {MAX_PIXELS} pixels; refusing to decode"
                    )
                if max_side is not None and image.format == "JPEG":
                    scale = max_side / max(image.size)
                    if scale < 1:
                        image.draft("RGB", (int(image.width * scale) + 1, int(image.height * scale) + 1))
                image.load()
                rgb = _to_8bit_rgb(ImageOps.exif_transpose(image) or image)
    except ImageLoadError:
        raise
    except FileNotFoundError as error:
        raise ImageLoadError(f"{path}: file not found") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLargeError(f"{path}: too many pixels to decode safely ({error})") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"{path}: cannot decode image ({error})") from error
    if max_side is not None and max(rgb.size) > max_side:
        rgb = resize_max_side(rgb, max_side)
    return rgb


def resize_max_side(image: Image.Image, max_side: int) -> Image.Image:
    """Resize so that the longest side equals ``max_side`` (aspect ratio kept; never below 1 pixel)."""
    if max_side <= 0:
        raise ValueError(f"max_side must be positive, got {max_side}")
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR)


def load_gray(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """Load an image as a uint8 grayscale array (H, W), for local feature detectors."""
    return np.asarray(load_rgb(path, max_side).convert("L"))


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
