"""Noise-aware data selection: the images training leaves out, read from the dataset analysis' flags file.

``python experiments/analyze_dataset.py`` writes ``flags.csv`` (one row per ``train.csv`` row); a
:class:`DataFilters` turns the flags it is told to act on into the set of image ids that the training reader
(:func:`datamodules.formats.gldv2.load_gldv2_train`) excludes, so the training set is exactly the one the report describes::

    python train.py filters=clean filters.flags_file=outputs/analyze/runs/<time>/flags.csv
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from datamodules.analysis.flags import read_flags

log = logging.getLogger(__name__)

REASONS = ("undecodable", "grayscale", "near_grayscale", "near_duplicate", "noisy_label")


@dataclass(frozen=True, kw_only=True)
class DataFilters:
    """Which flagged images to drop from training.

    Args:
        flags_file: ``flags.csv`` written by ``experiments/analyze_dataset.py`` for the same dataset.
        drop_grayscale: drop single-channel images and RGB images with equal channels.
        drop_near_grayscale: drop near-grayscale images (sepia, toned, faded, nearly colourless).
        drop_undecodable: drop files that are missing or cannot be decoded.
        drop_near_duplicates: drop every near-duplicate but the one image the analysis kept of its group.
        drop_noisy_labels: drop noisy-label candidates (needs an analysis run with a checkpoint).
        noisy_label_threshold: drop images whose distance to their landmark's medoid exceeds this; ``None``
            keeps the analysis' own threshold (its ``noisy_label`` column).
    """

    flags_file: str
    drop_grayscale: bool
    drop_near_grayscale: bool
    drop_undecodable: bool = True
    drop_near_duplicates: bool
    drop_noisy_labels: bool
    noisy_label_threshold: float | None

    def __post_init__(self) -> None:
        if self.noisy_label_threshold is not None:
            if not self.drop_noisy_labels:
                raise ValueError(
                    f"noisy_label_threshold={self.noisy_label_threshold} has no effect with drop_noisy_labels=false"
                )
            if not 0 <= self.noisy_label_threshold <= 2:
                raise ValueError(
                    f"noisy_label_threshold is a cosine distance in [0, 2], got {self.noisy_label_threshold}"
                )

    @property
    def enabled_reasons(self) -> tuple[str, ...]:
        """The reasons of ``REASONS`` that this filter drops images for."""
        switches = {
            "undecodable": self.drop_undecodable,
            "grayscale": self.drop_grayscale,
            "near_grayscale": self.drop_near_grayscale,
            "near_duplicate": self.drop_near_duplicates,
            "noisy_label": self.drop_noisy_labels,
        }
        return tuple(reason for reason in REASONS if switches[reason])

    def reasons(self, row: Mapping[str, str]) -> list[str]:
        """The enabled reasons (of ``REASONS``) to drop the image of one flags-file row."""
        reasons = []
        if self.drop_undecodable and (row["missing"] == "1" or row["undecodable"] == "1"):
            reasons.append("undecodable")
        if self.drop_grayscale and row["grayscale"] == "1":
            reasons.append("grayscale")
        if self.drop_near_grayscale and row["near_grayscale"] == "1":
            reasons.append("near_grayscale")
        if self.drop_near_duplicates and row["near_duplicate_of"]:
            reasons.append("near_duplicate")
        if self.drop_noisy_labels and row["noisy_label_score"]:
            noisy = (
                row["noisy_label"] == "1"
                if self.noisy_label_threshold is None
                else float(row["noisy_label_score"]) > self.noisy_label_threshold
            )
            if noisy:
                reasons.append("noisy_label")
        return reasons

    def excluded_ids(self) -> frozenset[str]:
        """The ids of the images to drop; logs one line with the kept and dropped counts per reason.

        Raises:
            FileNotFoundError: there is no flags file.
            ValueError: the file is not a flags file, or noisy labels are to be dropped but it has no scores.
        """
        path = Path(self.flags_file)
        excluded: set[str] = set()
        dropped_by_reason: Counter[str] = Counter()
        num_rows = num_scored = 0
        for row in read_flags(path):
            num_rows += 1
            num_scored += bool(row["noisy_label_score"])
            reasons = self.reasons(row)
            if reasons:
                excluded.add(row["id"])
                dropped_by_reason.update(reasons)
        if self.drop_noisy_labels and num_scored == 0:
            raise ValueError(
                f"{path} has no noisy-label scores: rerun the analysis with ckpt_path=<checkpoint> "
                "or set drop_noisy_labels=false"
            )
        log.info(
            "data filters (%s): keeping %d of %d images, dropping %d (%s; an image may have several reasons)",
            path,
            num_rows - len(excluded),
            num_rows,
            len(excluded),
            ", ".join(f"{reason} {dropped_by_reason[reason]}" for reason in self.enabled_reasons)
            or "no filter enabled",
        )
        return frozenset(excluded)
