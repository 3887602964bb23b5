"""Files in the real GLDv2 layout: ids, ``<split>/<a>/<b>/<c>/<id>.jpg`` paths, JPEG encoding with EXIF,
and removing an earlier demo.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.demo.config import MARKER_FILE, RDEMO_NAME, SOLUTION_FILE
from datamodules.demo.rng import randint

# EXIF tags: camera make and model (IFD0), the Exif IFD pointer and DateTimeOriginal inside it.
_EXIF_MAKE, _EXIF_MODEL, _EXIF_IFD, _EXIF_DATETIME_ORIGINAL = 0x010F, 0x0110, 0x8769, 0x9003


class Ids:
    """Unique 16-character lowercase hex image ids, as in GLDv2."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def new(self) -> str:
        image_id = self._rng.bytes(8).hex()
        while image_id in self._used:
            image_id = self._rng.bytes(8).hex()
        self._used.add(image_id)
        return image_id


def image_path(root: Path, split: str, image_id: str) -> Path:
    """GLDv2 layout: ``<root>/<split>/<id[0]>/<id[1]>/<id[2]>/<id>.jpg``."""
    return root / split / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"


def encode_jpeg(image: Image.Image, quality: int, exif: Image.Exif | None = None) -> bytes:
    buffer = io.BytesIO()
    if exif is None:
        image.save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, "JPEG", quality=quality, exif=exif)
    return buffer.getvalue()


def jpeg_quality(rng: np.random.Generator) -> int:
    """A JPEG quality in [60, 95], mostly at the low end as on photo-sharing sites (mean about 72)."""
    return 60 + round(35 * rng.random() ** 2)


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_lines(path: Path, header: str, lines: Sequence[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in (header, *lines)), encoding="utf-8")


def exif_of(datetime_original: str | None, camera: tuple[str, str] | None) -> Image.Exif | None:
    """EXIF with DateTimeOriginal (in the Exif IFD) and Make/Model, or None when there is neither."""
    if datetime_original is None and camera is None:
        return None
    exif = Image.Exif()
    if camera is not None:
        exif[_EXIF_MAKE], exif[_EXIF_MODEL] = camera
    if datetime_original is not None:
        exif.get_ifd(_EXIF_IFD)[_EXIF_DATETIME_ORIGINAL] = datetime_original
    return exif


def sample_datetime(rng: np.random.Generator) -> str:
    """An EXIF timestamp 'YYYY:MM:DD HH:MM:SS' between 2005 and 2019, any season, mostly in daytime."""
    hour = int(np.clip(round(rng.normal(13.5, 4.5)), 0, 23))
    return (
        f"{randint(rng, 2005, 2019):04d}:{randint(rng, 1, 12):02d}:{randint(rng, 1, 28):02d} "
        f"{hour:02d}:{randint(rng, 0, 59):02d}:{randint(rng, 0, 59):02d}"
    )


def remove_previous_output(root: Path) -> None:
    """Delete what an earlier generation wrote under ``root`` (and only that), marker first."""
    (root / MARKER_FILE).unlink(missing_ok=True)
    for name in ("train", "index", "test", f"revisited/{RDEMO_NAME}"):
        if (root / name).is_dir():
            shutil.rmtree(root / name)
    for name in (
        "train.csv",
        "train_clean.csv",
        "index.csv",
        "test.csv",
        SOLUTION_FILE,
        "noise_manifest.json",
        "README.md",
    ):
        (root / name).unlink(missing_ok=True)
