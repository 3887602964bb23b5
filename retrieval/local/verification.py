"""Spatial verification: a robust fit of a geometric model to tentative matches, and its settings.

The fundamental matrix suits any rigid 3-D scene, a homography a plane (or a pure rotation), an affine map
small, distant views. OpenCV's USAC estimators (MAGSAC by default) run on the CPU and release the GIL, so
candidates can be verified in threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import cv2
import numpy as np

GeometricModel = Literal["fundamental", "homography", "affine"]
GEOMETRIC_MODELS: tuple[str, ...] = get_args(GeometricModel)

# Fewest correspondences each model is estimated from (OpenCV's RANSAC for the fundamental matrix needs 8).
MIN_SAMPLE_SIZES: dict[str, int] = {"fundamental": 8, "homography": 4, "affine": 3}


@dataclass(frozen=True)
class VerificationConfig:
    """How re-ranking verifies tentative matches (:func:`verify_matches`).

    Attributes:
        model: "fundamental", "homography" or "affine".
        threshold_px: inlier threshold in pixels at the detection resolution (keypoints are rescaled so that
            the longest image side is the store's ``max_side``).
        method: OpenCV robust estimator flag.
        confidence: RANSAC confidence.
        max_iters: most RANSAC iterations.
        min_tentative_matches: candidates with fewer tentative matches are not verified and get 0 inliers;
            at least the model's minimal sample.
        num_threads: candidates verified in parallel (OpenCV releases the GIL).
    """

    model: GeometricModel = "fundamental"
    threshold_px: float = 3.0
    method: int = cv2.USAC_MAGSAC
    confidence: float = 0.999
    max_iters: int = 10_000
    min_tentative_matches: int = 12
    num_threads: int = 1

    def __post_init__(self) -> None:
        if self.model not in MIN_SAMPLE_SIZES:
            raise ValueError(f"model must be one of {tuple(MIN_SAMPLE_SIZES)}, got {self.model!r}")
        _check_fit_settings(self.threshold_px, self.confidence, self.max_iters)
        if self.min_tentative_matches < 0:
            raise ValueError(f"min_tentative_matches must be non-negative, got {self.min_tentative_matches}")
        if self.num_threads <= 0:
            raise ValueError(f"num_threads must be positive, got {self.num_threads}")

    def notes(self) -> list[str]:
        """What differs from the default verification, for labels (e.g. ``["1,000 iterations"]``)."""
        default = VerificationConfig()
        notes = []
        if (self.model, self.threshold_px) != (default.model, default.threshold_px):
            notes.append(f"{self.model} {self.threshold_px:g} px")
        if self.max_iters != default.max_iters:
            notes.append(f"{self.max_iters:,} iterations")
        if self.min_tentative_matches != default.min_tentative_matches:
            notes.append(f"verified from {self.min_tentative_matches} matches")
        return notes


def _check_fit_settings(threshold_px: float, confidence: float, max_iters: int) -> None:
    if threshold_px <= 0:
        raise ValueError(f"threshold_px must be positive, got {threshold_px}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if max_iters <= 0:
        raise ValueError(f"max_iters must be positive, got {max_iters}")


def verify_matches(
    query_keypoints: np.ndarray,
    database_keypoints: np.ndarray,
    matches: np.ndarray,
    model: GeometricModel = "fundamental",
    threshold_px: float = 3.0,
    method: int = cv2.USAC_MAGSAC,
    confidence: float = 0.999,
    max_iters: int = 10_000,
) -> np.ndarray:
    """Spatially verify tentative matches with a robust fit of a geometric model.

    Args:
        query_keypoints: (Nq, 2+) keypoints of the query; the first two columns are x, y in pixels.
        database_keypoints: (Nd, 2+) keypoints of the database image.
        matches: (M, 2) pairs (query index, database index).
        model: "fundamental" (any rigid 3-D scene), "homography" (a plane, or a pure rotation) or "affine".
        threshold_px: inlier threshold in pixels (reprojection error; Sampson distance for the fundamental
            matrix).
        method: OpenCV robust estimator flag, e.g. ``cv2.USAC_MAGSAC``, ``cv2.USAC_ACCURATE``, ``cv2.RANSAC``.
        confidence: RANSAC confidence in (0, 1).
        max_iters: most RANSAC iterations.

    Returns:
        (M,) bool inlier mask; all False when there are fewer matches than the model's minimal sample
        (``MIN_SAMPLE_SIZES``) or when OpenCV finds the configuration degenerate.
    """
    if model not in GEOMETRIC_MODELS:
        raise ValueError(f"model must be one of {GEOMETRIC_MODELS}, got {model!r}")
    _check_fit_settings(threshold_px, confidence, max_iters)
    matches = np.asarray(matches)
    if matches.ndim != 2 or matches.shape[1] != 2:
        raise ValueError(f"matches must be an (M, 2) array of index pairs, got shape {matches.shape}")
    no_inliers = np.zeros(len(matches), dtype=bool)
    if len(matches) < MIN_SAMPLE_SIZES[model]:
        return no_inliers

    query_points = np.ascontiguousarray(query_keypoints[matches[:, 0], :2], dtype=np.float32)
    database_points = np.ascontiguousarray(database_keypoints[matches[:, 1], :2], dtype=np.float32)
    try:
        if model == "fundamental":
            _, mask = cv2.findFundamentalMat(
                query_points, database_points, method, threshold_px, confidence, max_iters
            )
        elif model == "homography":
            _, mask = cv2.findHomography(
                query_points, database_points, method, threshold_px, maxIters=max_iters, confidence=confidence
            )
        else:
            _, mask = cv2.estimateAffine2D(
                query_points,
                database_points,
                method=method,
                ransacReprojThreshold=threshold_px,
                maxIters=max_iters,
                confidence=confidence,
            )
    except cv2.error:
        # OpenCV rejects some degenerate samples (e.g. every point identical) by raising.
        return no_inliers
    if mask is None:
        return no_inliers
    return mask.reshape(-1).astype(bool)
