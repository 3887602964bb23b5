"""Statistics over the scanned rows (:class:`DatasetStatistics`): the landmark distribution (long tail, Gini),
colour and file defects, sizes, and EXIF time-of-day and season buckets; counters plus a few numbers per image,
so memory stays bounded.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from datamodules.analysis.image_properties import SINGLE_CHANNEL_MODES

TIME_OF_DAY_BUCKETS = ("morning", "noon", "afternoon", "night")


SEASONS = ("winter", "spring", "summer", "autumn")


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
