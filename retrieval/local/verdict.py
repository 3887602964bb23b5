"""The "same place" verdict: a result is verified when its geometric verification kept at least ``min_inliers``
inliers. The threshold depends on the local features and the verification settings, so it is calibrated for
each of them on a benchmark: the smallest count that at most ``max_false_accept_rate`` of the different-place
pairs reach (:func:`calibrate_threshold`). Calibrations are kept beside a collection in ``verdict.json``
(:class:`VerdictThresholds`); an uncalibrated setting uses :data:`DEFAULT_MIN_INLIERS`.

On the shared real photos no different-place pair in the top 100 reached 17 inliers at any keypoint budget
(``benchmarks/results/rerank.md``: negative maximum 11–16, 99th percentile 8–12), hence the default of 20.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

DEFAULT_MIN_INLIERS = 20
VERDICT_FILE = "verdict.json"


@dataclass(frozen=True)
class VerdictThreshold:
    """``min_inliers`` and where it comes from.

    Attributes:
        min_inliers: the fewest inliers of a verified result.
        source: "default", or the benchmark it was calibrated on.
        false_accept_rate: the share of the calibration's different-place pairs at or above the threshold.
        true_accept_rate: the share of its same-place pairs at or above it.
        num_pairs: same-place and different-place pairs measured.
    """

    min_inliers: int
    source: str = "default"
    false_accept_rate: float | None = None
    true_accept_rate: float | None = None
    num_pairs: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.min_inliers < 1:
            raise ValueError(f"min_inliers must be at least 1, got {self.min_inliers}")

    def verified(self, inliers: int | None) -> bool | None:
        """Whether a result with ``inliers`` is the same place; None when no verification ran."""
        return None if inliers is None else inliers >= self.min_inliers

    def describe(self) -> str:
        """E.g. ``≥ 20 inliers (default)`` or ``≥ 17 inliers (calibrated on realphotos: 0.08% false accepts)``."""
        if self.false_accept_rate is None:
            return f"≥ {self.min_inliers} inliers ({self.source})"
        return (
            f"≥ {self.min_inliers} inliers (calibrated on {self.source}: "
            f"{100 * self.false_accept_rate:.2f}% false accepts, {100 * (self.true_accept_rate or 0):.1f}% of "
            "same-place results verified)"
        )


DEFAULT_THRESHOLD = VerdictThreshold(DEFAULT_MIN_INLIERS)


def calibrate_threshold(
    positive_inliers: np.ndarray,
    negative_inliers: np.ndarray,
    source: str,
    max_false_accept_rate: float = 0.001,
) -> VerdictThreshold:
    """The smallest inlier count that at most ``max_false_accept_rate`` of the different-place pairs
    ``negative_inliers`` (N,) reach, measured with the same-place pairs ``positive_inliers`` (P,).

    Raises:
        ValueError: no pair of either kind, or a rate outside [0, 1).
    """
    positives = np.asarray(positive_inliers, dtype=np.int64)
    negatives = np.asarray(negative_inliers, dtype=np.int64)
    if positives.size == 0 or negatives.size == 0:
        raise ValueError(
            f"calibration needs same-place and different-place pairs, got {positives.size} and {negatives.size}"
        )
    if not 0 <= max_false_accept_rate < 1:
        raise ValueError(f"max_false_accept_rate must be in [0, 1), got {max_false_accept_rate}")
    # Share of negatives at or above t, for t = 1 … max + 1 (where it is 0).
    counts = np.bincount(negatives.clip(min=0), minlength=int(negatives.max()) + 2)
    at_or_above = counts[::-1].cumsum()[::-1] / negatives.size
    threshold = int(np.flatnonzero(at_or_above[1:] <= max_false_accept_rate)[0]) + 1
    return VerdictThreshold(
        min_inliers=threshold,
        source=source,
        false_accept_rate=float(at_or_above[threshold]),
        true_accept_rate=float((positives >= threshold).mean()),
        num_pairs=(int(positives.size), int(negatives.size)),
    )


class VerdictThresholds:
    """The calibrated thresholds of a collection by setting key (local features + verification), in
    ``<collection>/verdict.json``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._thresholds: dict[str, VerdictThreshold] = {}
        if self.path.is_file():
            content = json.loads(self.path.read_text())
            if not isinstance(content, dict):
                raise ValueError(f"{self.path}: expected an object of thresholds by setting")
            for key, fields in content.items():
                if fields.get("num_pairs") is not None:
                    fields["num_pairs"] = tuple(fields["num_pairs"])
                self._thresholds[key] = VerdictThreshold(**fields)

    def get(self, key: str | None) -> VerdictThreshold:
        """The threshold of a setting: calibrated, else the default."""
        return self._thresholds.get(key or "", DEFAULT_THRESHOLD)

    def set(self, key: str, threshold: VerdictThreshold) -> None:
        """Record a calibration and write the file atomically."""
        self._thresholds[key] = threshold
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(
            json.dumps({name: asdict(value) for name, value in self._thresholds.items()}, indent=2)
        )
        os.replace(temporary, self.path)
