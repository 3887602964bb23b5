"""Dataset analysis of GLDv2-format training data: per-image flags, a resumable parallel scan, and statistics.

Per image (:func:`analyze_image`): missing / undecodable / truncated files, grayscale (a single channel, or three
channels equal within a tolerance), near-grayscale and sepia (colour that luminance explains), CMYK, 16 bits per
sample, size, EXIF DateTimeOriginal and camera make / model, and a perceptual hash for near-duplicates.

The scan (:func:`scan_images`) streams ``train.csv`` in chunks of rows, analyses each chunk in a process pool and
writes one CSV per chunk into ``<work_dir>/chunks/`` (atomically): a rerun over the same folder skips the chunks
already written, so an interrupted scan resumes where it stopped and ends with the same rows. Memory stays
bounded: a few chunks are in flight, and :class:`DatasetStatistics` keeps counters plus a few numbers per image.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import logging
import math
import os
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image
from tqdm import tqdm

from datamodules.gldv2 import image_path, read_train_clean_csv
from retrieval.duplicates import perceptual_hash
from retrieval.images import MAX_PIXELS, ImageLoadError, load_rgb

log = logging.getLogger(__name__)

# Columns of the scan's chunk files, in order; the flags file adds FLAG_EXTRA_COLUMNS after them.
SCAN_COLUMNS = (
    "id",
    "landmark_id",
    "in_clean",
    "missing",
    "undecodable",
    "truncated",
    "grayscale",
    "near_grayscale",
    "cmyk",
    "bits16",
    "format",
    "mode",
    "width",
    "height",
    "file_bytes",
    "exif_datetime",
    "make",
    "model",
    "phash",
    "channel_spread",
    "chroma_residual",
    "error",
)
FLAG_EXTRA_COLUMNS = ("near_duplicate_of", "noisy_label_score", "noisy_label")
FLAG_COLUMNS = SCAN_COLUMNS + FLAG_EXTRA_COLUMNS

STATE_FILE = "scan_state.json"
CHUNK_FOLDER = "chunks"
SINGLE_CHANNEL_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
TIME_OF_DAY_BUCKETS = ("morning", "noon", "afternoon", "night")
SEASONS = ("winter", "spring", "summer", "autumn")
_LUMA_BINS = 32
_PNG_BIT_DEPTH_OFFSET = 24  # 8-byte signature, IHDR length and type, width, height, then the bit depth
_MAX_TEXT = 64  # EXIF strings are cut to this many characters


# ----------------------------------------------------------------------------------------------------------------
# One image
# ----------------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------------
# EXIF time buckets and landmark distribution
# ----------------------------------------------------------------------------------------------------------------


def parse_exif_datetime(text: str) -> datetime | None:
    """``'YYYY:MM:DD HH:MM:SS'`` (EXIF; dashes are accepted in the date) → datetime, or ``None`` when it is
    blank or not a real date (cameras write ``0000:00:00 00:00:00`` when their clock was never set)."""
    text = text.strip()
    if len(text) < 19:
        return None
    try:
        return datetime.strptime(text[:10].replace("-", ":") + text[10:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def time_of_day(hour: int) -> str:
    """The thesis' buckets: morning [6, 11), noon [11, 14), afternoon [14, 19), night otherwise."""
    if not 0 <= hour <= 23:
        raise ValueError(f"hour must be in [0, 23], got {hour}")
    if 6 <= hour < 11:
        return "morning"
    if 11 <= hour < 14:
        return "noon"
    if 14 <= hour < 19:
        return "afternoon"
    return "night"


def season(month: int) -> str:
    """Meteorological seasons of the northern hemisphere: winter Dec-Feb, spring Mar-May, summer Jun-Aug,
    autumn Sep-Nov."""
    if not 1 <= month <= 12:
        raise ValueError(f"month must be in [1, 12], got {month}")
    return SEASONS[month % 12 // 3]


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (N,): 0 when all are equal, (N - 1) / N when one holds all."""
    values = np.sort(np.asarray(counts, np.float64))
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"counts must be a non-empty (N,) array, got shape {values.shape}")
    if values[0] < 0:
        raise ValueError(f"counts must be non-negative, got {values[0]}")
    total = values.sum()
    if total == 0:
        return 0.0
    ranks = np.arange(1, len(values) + 1)
    return float(2 * np.sum(ranks * values) / (len(values) * total) - (len(values) + 1) / len(values))


def landmark_distribution(
    counts: np.ndarray,
    head_fractions: Sequence[float] = (0.01, 0.1),
    tail_sizes: Sequence[int] = (1, 2, 5, 10),
) -> dict[str, float]:
    """How images spread over landmarks, from the image count of each landmark (L,).

    Returns:
        ``landmarks``, ``images``, ``gini``, ``mean``, ``median``, ``max``; for each head fraction f,
        ``head_<100 f>%_image_share``: the share of images in the ceil(f L) largest landmarks; for each tail size
        k, ``tail_<=k_landmark_share`` and ``tail_<=k_image_share``: the share of landmarks with at most k images
        and the share of images they hold.
    """
    counts = np.asarray(counts, np.int64)
    if counts.ndim != 1 or len(counts) == 0 or counts.min() < 1:
        raise ValueError("counts must be a non-empty (L,) array of positive image counts per landmark")
    total = int(counts.sum())
    descending = np.sort(counts)[::-1]
    result: dict[str, float] = {
        "landmarks": len(counts),
        "images": total,
        "gini": gini(counts),
        "mean": float(counts.mean()),
        "median": float(np.median(counts)),
        "max": int(counts.max()),
    }
    for fraction in head_fractions:
        if not 0 < fraction <= 1:
            raise ValueError(f"head fractions must be in (0, 1], got {fraction}")
        head = descending[: math.ceil(fraction * len(counts))]
        result[f"head_{100 * fraction:g}%_image_share"] = float(head.sum() / total)
    for size in tail_sizes:
        tail = counts[counts <= size]
        result[f"tail_<={size}_landmark_share"] = float(len(tail) / len(counts))
        result[f"tail_<={size}_image_share"] = float(tail.sum() / total)
    return result


@dataclass(frozen=True)
class NoisyLabelSettings:
    """How noisy-label candidates are found from a checkpoint's descriptors.

    Args:
        threshold: an image whose cosine distance to its landmark's medoid exceeds this is a candidate; ``None``
            adapts it to the checkpoint: the median score plus ``outlier_deviations`` robust standard deviations
            (1.4826 median absolute deviations), since typical distances differ from model to model.
        outlier_deviations: see ``threshold``.
        min_images: landmarks with fewer decodable images get no score.
        max_medoid_candidates: the medoid of a larger landmark is chosen among this many random members.
        block_size: images per extraction block (each block is saved, so an interrupted run resumes).
    """

    threshold: float | None = None
    outlier_deviations: float = 3.0
    min_images: int = 3
    max_medoid_candidates: int = 1000
    block_size: int = 20000

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0 <= self.threshold <= 2:
            raise ValueError(f"threshold is a cosine distance in [0, 2], got {self.threshold}")
        if self.outlier_deviations <= 0:
            raise ValueError(f"outlier_deviations must be positive, got {self.outlier_deviations}")
        if self.min_images < 1 or self.max_medoid_candidates < 1 or self.block_size < 1:
            raise ValueError(
                f"min_images, max_medoid_candidates and block_size must be positive, got {self.min_images}, "
                f"{self.max_medoid_candidates}, {self.block_size}"
            )

    def threshold_for(self, scores: np.ndarray) -> float:
        """The fixed ``threshold``, or the robust outlier threshold of the finite ``scores`` (N,)."""
        if self.threshold is not None:
            return self.threshold
        finite = scores[np.isfinite(scores)]
        if len(finite) == 0:
            return math.inf
        median = float(np.median(finite))
        deviation = 1.4826 * float(np.median(np.abs(finite - median)))
        return median + self.outlier_deviations * deviation


def medoid_distances(
    descriptors: np.ndarray,
    labels: np.ndarray,
    valid: np.ndarray,
    min_images: int = 3,
    max_medoid_candidates: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Noisy-label scores: the cosine distance of every image to its landmark's medoid.

    The medoid of a landmark is the member with the largest summed similarity to the others (a robust centre:
    a few wrong images cannot move it); for landmarks larger than ``max_medoid_candidates`` it is chosen among
    that many seeded random members, by their similarity to each other. Landmarks are read one at a time, so
    ``descriptors`` can be a memory-mapped array larger than memory.

    Args:
        descriptors: (N, D) L2-normalised descriptors (rows of invalid images are ignored).
        labels: (N,) landmark of each image.
        valid: (N,) bool, images that have a descriptor.
        min_images: landmarks with fewer valid images get no score (a medoid of two images is arbitrary).

    Returns:
        (N,) float32 ``1 - cos(image, medoid)`` in [0, 2]; NaN for invalid images and small landmarks.
    """
    labels = np.asarray(labels)
    valid = np.asarray(valid, dtype=bool)
    if not (len(descriptors) == len(labels) == len(valid)):
        raise ValueError(
            f"descriptors, labels and valid must have the same length, got {len(descriptors)}, "
            f"{len(labels)}, {len(valid)}"
        )
    if min_images < 1 or max_medoid_candidates < 1:
        raise ValueError("min_images and max_medoid_candidates must be positive")
    rng = np.random.default_rng(seed)
    scores = np.full(len(labels), np.nan, dtype=np.float32)
    rows = np.flatnonzero(valid)
    rows = rows[np.argsort(labels[rows], kind="stable")]
    boundaries = np.flatnonzero(np.diff(labels[rows])) + 1
    for members in np.split(rows, boundaries):
        if len(members) < min_images:
            continue
        vectors = np.asarray(descriptors[members], np.float32)
        candidates = (
            vectors
            if len(members) <= max_medoid_candidates
            else vectors[np.sort(rng.choice(len(members), max_medoid_candidates, replace=False))]
        )
        medoid = candidates[int(np.argmax((candidates @ candidates.T).sum(axis=1)))]
        scores[members] = np.clip(1 - vectors @ medoid, 0, 2)
    return scores


# ----------------------------------------------------------------------------------------------------------------
# The resumable parallel scan
# ----------------------------------------------------------------------------------------------------------------


def _format(value: bool | int | float | str | None) -> str:
    """A CSV cell: booleans as 1/0, floats with three decimals, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def scan_row(
    image_id: str, landmark_id: int, in_clean: bool | None, properties: ImageProperties
) -> list[str]:
    """The chunk-file row (``SCAN_COLUMNS``) of one image."""
    values = asdict(properties)
    values["phash"] = f"{properties.phash:016x}" if properties.phash is not None else None
    values.update(id=image_id, landmark_id=landmark_id, in_clean=in_clean)
    return [_format(values[column]) for column in SCAN_COLUMNS]


@dataclass(frozen=True)
class ChunkTask:
    """Rows of ``train.csv`` to analyse in one worker call: ``(id, landmark_id)`` and whether each is in
    ``train_clean.csv`` (None when there is no such file)."""

    root: str
    rows: tuple[tuple[str, int], ...]
    in_clean: tuple[bool | None, ...]
    settings: ImageAnalysisSettings


def analyze_chunk(task: ChunkTask) -> list[list[str]]:
    """The chunk-file rows of every image of a chunk (run in a worker process)."""
    root = Path(task.root)
    return [
        scan_row(
            image_id, landmark_id, in_clean, analyze_image(image_path(root, "train", image_id), task.settings)
        )
        for (image_id, landmark_id), in_clean in zip(task.rows, task.in_clean, strict=True)
    ]


def iter_train_rows(path: Path) -> Iterator[tuple[str, int]]:
    """(id, landmark_id) rows of ``train.csv``, streamed (the file of GLDv2 has 4.1 million rows)."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"id", "landmark_id"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns id,url,landmark_id; found {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            try:
                yield row["id"], int(row["landmark_id"])
            except (TypeError, ValueError) as error:
                raise ValueError(f"{path}:{line}: bad landmark_id {row.get('landmark_id')!r}") from error


def file_digest(path: Path) -> str | None:
    """SHA-256 of a file's bytes (hex), or ``None`` when there is no such file."""
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_chunk(path: Path, rows: list[list[str]]) -> None:
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(SCAN_COLUMNS)
        writer.writerows(rows)
    temporary.replace(path)


def check_resume_state(state_path: Path, state: dict[str, Any]) -> None:
    """Record the inputs of resumable work in ``state_path``, or, when it exists, check that they are the same.

    Raises:
        ValueError: an input changed since the earlier run started (its partial results would not fit).
    """
    state = json.loads(json.dumps(state))  # as it reads back: tuples become lists
    if state_path.is_file():
        previous = json.loads(state_path.read_text())
        changed = sorted(key for key in state.keys() | previous.keys() if state.get(key) != previous.get(key))
        if changed:
            raise ValueError(
                f"cannot resume from {state_path.parent}: {', '.join(changed)} changed since it started "
                f"(was {[previous.get(key) for key in changed]}, now {[state.get(key) for key in changed]}); "
                "start a new run instead"
            )
        return
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps(state, indent=1) + "\n")


def scan_images(
    root: str | Path,
    work_dir: str | Path,
    settings: ImageAnalysisSettings = ImageAnalysisSettings(),
    chunk_size: int = 500,
    num_workers: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Analyse every image of ``<root>/train.csv``, in chunks written to ``<work_dir>/chunks/``.

    Chunks present in ``work_dir`` from an earlier, interrupted call with the same ``train.csv``,
    ``train_clean.csv``, ``chunk_size`` and ``settings`` are kept, not recomputed.

    Args:
        root: a GLDv2-format folder (``train.csv``, optional ``train_clean.csv``, ``train/a/b/c/<id>.jpg``).
        work_dir: the folder of the chunk files and of the scan state.
        chunk_size: images per chunk file (and per worker call).
        num_workers: worker processes; ``None`` is one per CPU core, 0 analyses in this process.
        progress: show a progress bar.

    Returns:
        the chunk files, in ``train.csv`` order.
    """
    root, work_dir = Path(root), Path(work_dir)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    num_workers = (os.cpu_count() or 1) if num_workers is None else num_workers
    if num_workers < 0:
        raise ValueError(f"num_workers must be non-negative, got {num_workers}")
    train_csv, clean_csv = root / "train.csv", root / "train_clean.csv"
    if not train_csv.is_file():
        raise FileNotFoundError(f"{train_csv} not found; see the README for the GLDv2 file layout")
    chunk_folder = work_dir / CHUNK_FOLDER
    chunk_folder.mkdir(parents=True, exist_ok=True)
    check_resume_state(
        work_dir / STATE_FILE,
        {
            "train_csv_sha256": file_digest(train_csv),
            "train_clean_csv_sha256": file_digest(clean_csv),
            "chunk_size": chunk_size,
            "settings": asdict(settings),
        },
    )
    clean_ids = (
        {image_id for ids in read_train_clean_csv(clean_csv).values() for image_id in ids}
        if clean_csv.is_file()
        else None
    )
    num_rows = sum(1 for _ in iter_train_rows(train_csv))  # also checks every row before any work
    num_chunks = math.ceil(num_rows / chunk_size)
    chunk_paths = [chunk_folder / f"chunk_{index:06d}.csv" for index in range(num_chunks)]
    done = sum(1 for path in chunk_paths if path.is_file())
    if done:
        log.info("scan: resuming in %s, %d of %d chunks already done", work_dir, done, num_chunks)

    def tasks() -> Iterator[tuple[Path, ChunkTask]]:
        rows = iter_train_rows(train_csv)
        for path in chunk_paths:
            chunk = tuple(itertools.islice(rows, chunk_size))
            if path.is_file():
                continue
            in_clean = tuple(None if clean_ids is None else image_id in clean_ids for image_id, _ in chunk)
            yield path, ChunkTask(str(root), chunk, in_clean, settings)

    bar = tqdm(total=num_rows, desc="analysing images", unit="img", disable=not progress)
    bar.update(
        sum(
            min(chunk_size, num_rows - index * chunk_size)
            for index, path in enumerate(chunk_paths)
            if path.is_file()
        )
    )
    try:
        if num_workers == 0:
            for path, task in tasks():
                _write_chunk(path, analyze_chunk(task))
                bar.update(len(task.rows))
        else:
            _scan_in_pool(tasks(), num_workers, bar)
    finally:
        bar.close()
    return chunk_paths


def _scan_in_pool(tasks: Iterator[tuple[Path, ChunkTask]], num_workers: int, bar: tqdm) -> None:
    """Run the chunk tasks in ``num_workers`` processes, at most two per worker in flight (bounded memory)."""
    with ProcessPoolExecutor(max_workers=num_workers) as executor:
        pending: dict[Future[list[list[str]]], tuple[Path, int]] = {}

        def finish(futures: Iterable[Future[list[list[str]]]]) -> None:
            for future in futures:
                path, size = pending.pop(future)
                _write_chunk(path, future.result())
                bar.update(size)

        for path, task in tasks:
            if len(pending) >= 2 * num_workers:
                finish(wait(pending, return_when=FIRST_COMPLETED).done)
            pending[executor.submit(analyze_chunk, task)] = (path, len(task.rows))
        finish(wait(pending).done)


def iter_chunk_rows(chunk_paths: Sequence[Path]) -> Iterator[dict[str, str]]:
    """The rows of the chunk files, in order, as ``SCAN_COLUMNS`` → text."""
    for path in chunk_paths:
        with open(path, newline="", encoding="utf-8") as handle:
            yield from csv.DictReader(handle)


# ----------------------------------------------------------------------------------------------------------------
# Statistics over the scanned rows
# ----------------------------------------------------------------------------------------------------------------


def _quantiles(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {}
    points = np.percentile(values, [0, 5, 25, 50, 75, 95, 100])
    return {
        name: float(point)
        for name, point in zip(("min", "p5", "p25", "median", "p75", "p95", "max"), points, strict=True)
    }


class DatasetStatistics:
    """Streaming accumulator of the scan rows (``SCAN_COLUMNS`` → text, in ``train.csv`` order): counters and,
    per image, its landmark, size, and hash — about 40 bytes an image."""

    def __init__(self) -> None:
        self.num_rows = 0
        self.has_clean_list = False
        self.images_per_landmark: Counter[int] = Counter()
        self.clean_images_per_landmark: Counter[int] = Counter()
        self.flag_counts: Counter[str] = Counter()
        self.formats: Counter[str] = Counter()
        self.modes: Counter[str] = Counter()
        self.years: Counter[int] = Counter()
        self.seasons: Counter[str] = Counter()
        self.times_of_day: Counter[str] = Counter()
        self.hours: Counter[int] = Counter()
        self.makes: Counter[str] = Counter()
        self.models: Counter[str] = Counter()
        self.invalid_datetimes = 0
        self.labels = array("q")  # (N,) landmark of every row
        self.decodable = array("b")  # (N,) 1 when the image was decoded
        self.widths = array("q")  # sizes of the decodable images, in row order
        self.heights = array("q")
        self.hashes = array("Q")  # perceptual hashes of the decodable images, in row order

    def add(self, row: Mapping[str, str]) -> None:
        """Count one scan row."""
        self.num_rows += 1
        landmark = int(row["landmark_id"])
        self.labels.append(landmark)
        self.images_per_landmark[landmark] += 1
        if row["in_clean"]:
            self.has_clean_list = True
            if row["in_clean"] == "1":
                self.clean_images_per_landmark[landmark] += 1
        for flag in ("missing", "undecodable", "truncated", "grayscale", "near_grayscale", "cmyk", "bits16"):
            if row[flag] == "1":
                self.flag_counts[flag] += 1
        if row["grayscale"] == "1" and row["mode"] in SINGLE_CHANNEL_MODES:
            self.flag_counts["grayscale_single_channel"] += 1
        if row["format"]:
            self.formats[row["format"]] += 1
            self.modes[row["mode"]] += 1
        decodable = row["missing"] == "0" and row["undecodable"] == "0"
        self.decodable.append(decodable)
        if not decodable:
            return
        self.widths.append(int(row["width"]))
        self.heights.append(int(row["height"]))
        self.hashes.append(int(row["phash"], 16))
        if row["exif_datetime"]:
            taken = parse_exif_datetime(row["exif_datetime"])
            if taken is None:
                self.invalid_datetimes += 1
            else:
                self.years[taken.year] += 1
                self.seasons[season(taken.month)] += 1
                self.times_of_day[time_of_day(taken.hour)] += 1
                self.hours[taken.hour] += 1
        if row["make"]:
            self.makes[row["make"]] += 1
        if row["model"]:
            self.models[row["model"]] += 1

    @property
    def decodable_mask(self) -> np.ndarray:
        """(N,) bool: rows whose image was decoded."""
        return np.frombuffer(self.decodable, dtype=np.int8).astype(bool)

    def summary(self, top_cameras: int = 20) -> dict[str, Any]:
        """Everything counted, as JSON-ready nested dictionaries."""
        if self.num_rows == 0:
            raise ValueError("no rows were added: train.csv is empty")
        widths = np.frombuffer(self.widths, dtype=np.int64).astype(np.float64)
        heights = np.frombuffer(self.heights, dtype=np.int64).astype(np.float64)
        aspect = widths / np.maximum(heights, 1)
        num_decodable = len(widths)
        summary: dict[str, Any] = {
            "rows": self.num_rows,
            "decodable": num_decodable,
            "landmarks": landmark_distribution(np.fromiter(self.images_per_landmark.values(), np.int64)),
            "files": {name: self.flag_counts[name] for name in ("missing", "undecodable", "truncated")}
            | {"not_an_image": self.flag_counts["undecodable"] - self.flag_counts["truncated"]},
            "colour": {
                name: self.flag_counts[name]
                for name in ("grayscale", "grayscale_single_channel", "near_grayscale", "cmyk", "bits16")
            },
            "formats": dict(self.formats.most_common()),
            "modes": dict(self.modes.most_common()),
            "sizes": {
                "width": _quantiles(widths),
                "height": _quantiles(heights),
                "megapixels": _quantiles(widths * heights / 1e6),
                "aspect_ratio": _quantiles(aspect),
                "landscape": int(np.sum(aspect > 1.05)),
                "portrait": int(np.sum(aspect < 1 / 1.05)),
                "square": int(np.sum((aspect >= 1 / 1.05) & (aspect <= 1.05))),
            },
            "exif": {
                "with_datetime": sum(self.years.values()),
                "invalid_datetime": self.invalid_datetimes,
                "years": dict(sorted(self.years.items())),
                "seasons": {name: self.seasons[name] for name in SEASONS},
                "time_of_day": {name: self.times_of_day[name] for name in TIME_OF_DAY_BUCKETS},
                "hours": {hour: self.hours[hour] for hour in range(24)},
                "with_make": sum(self.makes.values()),
                "with_model": sum(self.models.values()),
                "makes": dict(self.makes.most_common(top_cameras)),
                "models": dict(self.models.most_common(top_cameras)),
                "distinct_makes": len(self.makes),
                "distinct_models": len(self.models),
            },
        }
        if self.has_clean_list:
            clean_counts = np.fromiter(self.clean_images_per_landmark.values(), np.int64)
            summary["clean"] = {
                "images": int(clean_counts.sum()),
                "image_share": float(clean_counts.sum() / self.num_rows),
                "landmarks": len(clean_counts),
                "landmark_share": len(clean_counts) / len(self.images_per_landmark),
                "distribution": landmark_distribution(clean_counts) if len(clean_counts) else None,
            }
        return summary
