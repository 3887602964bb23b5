"""The flags-file contract: the columns of the scan's chunk files and of ``flags.csv`` (one row per ``train.csv``
row), written by :func:`write_flags` (the analysis) and read by :func:`read_flags` (training's
:class:`datamodules.filters.DataFilters`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

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


def write_flags(
    flags_path: Path,
    rows: Iterable[Mapping[str, str]],
    near_duplicate_of: Sequence[str],
    scores: np.ndarray | None,
    threshold: float,
) -> None:
    """The flags file, atomically: each scan row plus ``near_duplicate_of`` (the id of the image kept instead,
    "" for none), ``noisy_label_score`` and ``noisy_label`` (score above ``threshold``; both empty without
    scores)."""
    temporary = flags_path.with_suffix(".tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(FLAG_COLUMNS)
        for position, row in enumerate(rows):
            score = float(scores[position]) if scores is not None else math.nan
            writer.writerow(
                [row[column] for column in SCAN_COLUMNS]
                + [
                    near_duplicate_of[position],
                    "" if math.isnan(score) else f"{score:.4f}",
                    "" if math.isnan(score) else str(int(score > threshold)),
                ]
            )
    temporary.replace(flags_path)


def read_flags(flags_path: Path) -> Iterator[dict[str, str]]:
    """The rows of a flags file.

    Raises:
        FileNotFoundError: there is no such file.
        ValueError: the file lacks columns of :data:`FLAG_COLUMNS` (not a flags file of the analysis).
    """
    if not flags_path.is_file():
        raise FileNotFoundError(
            f"flags file {flags_path} not found; write it with `python experiments/analyze_dataset.py`"
        )
    with open(flags_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing_columns = set(FLAG_COLUMNS) - set(reader.fieldnames or ())
        if missing_columns:
            raise ValueError(
                f"{flags_path} is not a flags file of the dataset analysis: no {sorted(missing_columns)}"
            )
        yield from reader
