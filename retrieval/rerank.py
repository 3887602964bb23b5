"""Re-ranking the global top-K with local features read from a :class:`~retrieval.feature_store.FeatureStore`.

Database features are never re-extracted: they were stored once. One query is matched against all of its
top-K candidates with one batched matcher call, and only candidates with enough tentative matches pay for a
robust geometric fit. Methods, one typed config each:

- :class:`RatioCountRerank` (the thesis' E5): ``α·global + (1−α)·match ratio``, the match ratio being the
  ratio-test matches over the query's keypoints; no geometry.
- :class:`InliersRerank`: by spatially verified inliers, ties by global score.
- :class:`FusionRerank`: ``α·global + (1−α)·local``, local = match ratio or inliers normalised to [0, 1].
- :class:`DelgRerank` (as in DELG): candidates with at least ``min_inliers`` inliers first, by inliers then
  global score; the others after them in global order.
- :class:`GlobalPlusInliersRerank`: ``global + inlier_weight·inliers`` (``inlier_weight = 1/100`` is the
  scoring of the shared real-photo reference figures).
- :class:`CnnPatchRerank` (the thesis' E7): ``α·global + (1−α)·patch similarity``, the mean over query patches
  of the best cosine similarity to the candidate's patches.

Scores are sorted in descending order with a stable sort of candidates already in descending global order, so
equal scores keep the global order.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, get_args

import cv2
import numpy as np
import torch

from retrieval.feature_store import FeatureStore
from retrieval.local_features import LocalFeatures
from retrieval.matching import (
    MIN_SAMPLE_SIZES,
    GeometricModel,
    MatmulPrecision,
    match_descriptors,
    match_descriptors_batched,
    verify_matches,
)

LocalScore = Literal["match_ratio", "inliers"]
LOCAL_SCORES: tuple[str, ...] = get_args(LocalScore)


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


def _check_budget(name: str, value: int | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{name} must be positive or None, got {value}")


@dataclass(frozen=True)
class MatchingConfig:
    """Tentative matching (see :func:`retrieval.matching.match_descriptors_batched`).

    Attributes:
        ratio: Lowe's ratio in (0, 1].
        mutual: require mutual nearest neighbours.
        query_max_keypoints: match only the query's strongest keypoints (None: all).
        database_max_keypoints: read only each candidate's strongest keypoints from the store (None: all).
        precision: "float32", or "bfloat16" matrix products (several times faster on CPUs with AMX or
            AVX512-BF16; non-negative descriptors such as RootSIFT only).
        device: torch device of the matching ("cpu", "cuda"); verification runs on the CPU.
    """

    ratio: float = 0.8
    mutual: bool = True
    query_max_keypoints: int | None = None
    database_max_keypoints: int | None = None
    precision: MatmulPrecision = "float32"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
        _check_budget("query_max_keypoints", self.query_max_keypoints)
        _check_budget("database_max_keypoints", self.database_max_keypoints)


@dataclass(frozen=True)
class VerificationConfig:
    """Spatial verification (see :func:`retrieval.matching.verify_matches`).

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
        if self.min_tentative_matches < 0:
            raise ValueError(f"min_tentative_matches must be non-negative, got {self.min_tentative_matches}")
        if self.num_threads <= 0:
            raise ValueError(f"num_threads must be positive, got {self.num_threads}")


@dataclass(frozen=True)
class RatioCountRerank:
    """The thesis' E5: ``alpha·global + (1 − alpha)·match ratio``, ratio-test matches without geometry."""

    alpha: float = 0.8
    matching: MatchingConfig = field(default_factory=lambda: MatchingConfig(mutual=False))

    def __post_init__(self) -> None:
        _check_alpha(self.alpha)


@dataclass(frozen=True)
class InliersRerank:
    """By number of inliers, ties by global score."""

    matching: MatchingConfig = field(default_factory=MatchingConfig)
    verification: VerificationConfig = field(default_factory=VerificationConfig)


@dataclass(frozen=True)
class FusionRerank:
    """``alpha·global + (1 − alpha)·local``; local is the match ratio or ``min(inliers / inliers_at_full_score, 1)``."""

    alpha: float = 0.8
    local_score: LocalScore = "inliers"
    inliers_at_full_score: int = 100
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    verification: VerificationConfig = field(default_factory=VerificationConfig)

    def __post_init__(self) -> None:
        _check_alpha(self.alpha)
        if self.local_score not in LOCAL_SCORES:
            raise ValueError(f"local_score must be one of {LOCAL_SCORES}, got {self.local_score!r}")
        if self.inliers_at_full_score <= 0:
            raise ValueError(f"inliers_at_full_score must be positive, got {self.inliers_at_full_score}")


@dataclass(frozen=True)
class DelgRerank:
    """Candidates with at least ``min_inliers`` inliers first (by inliers, then global score), then the rest."""

    min_inliers: int = 15
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    verification: VerificationConfig = field(default_factory=VerificationConfig)

    def __post_init__(self) -> None:
        if self.min_inliers <= 0:
            raise ValueError(f"min_inliers must be positive, got {self.min_inliers}")


@dataclass(frozen=True)
class GlobalPlusInliersRerank:
    """``global + inlier_weight·inliers``."""

    inlier_weight: float = 0.01
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    verification: VerificationConfig = field(default_factory=VerificationConfig)

    def __post_init__(self) -> None:
        if self.inlier_weight < 0:
            raise ValueError(f"inlier_weight must be non-negative, got {self.inlier_weight}")


@dataclass(frozen=True)
class CnnPatchRerank:
    """The thesis' E7: ``alpha·global + (1 − alpha)·mean over query patches of the best patch cosine``."""

    alpha: float = 0.8

    def __post_init__(self) -> None:
        _check_alpha(self.alpha)


RerankConfig = (
    RatioCountRerank | InliersRerank | FusionRerank | DelgRerank | GlobalPlusInliersRerank | CnnPatchRerank
)


@dataclass(frozen=True, eq=False)
class RerankResult:
    """A re-ranked candidate list. Per-candidate arrays are indexed like the candidates given to :func:`rerank`.

    Attributes:
        order: (K,) int64 candidate positions, best first.
        ranked_ids: the candidate ids in that order.
        scores: (K,) float64 score of each candidate (the global score for those beyond the re-ranked top-K).
        num_matches: (K,) int64 tentative matches (0 where not matched).
        num_inliers: (K,) int64 verified inliers (0 where not verified).
    """

    order: np.ndarray
    ranked_ids: list[str]
    scores: np.ndarray
    num_matches: np.ndarray
    num_inliers: np.ndarray


@dataclass(frozen=True, eq=False)
class PairCorrespondences:
    """Tentative matches of one image pair, for drawing: (M, 2) float32 x, y in each ORIGINAL image's pixels
    and an (M,) bool inlier mask."""

    query_points: np.ndarray
    database_points: np.ndarray
    inliers: np.ndarray


def _check_compatible(query: LocalFeatures, store: FeatureStore) -> None:
    if query.dim != store.metadata.dim or query.binary != store.metadata.binary:
        raise ValueError(
            f"query features are {query.descriptors.dtype} with {query.dim} dimensions but the store holds "
            f"{store.metadata.method} {store.metadata.descriptor_dtype} features with {store.metadata.dim}"
        )


def _count_inliers(
    query: LocalFeatures,
    candidates: Sequence[LocalFeatures],
    matches: Sequence[np.ndarray],
    verification: VerificationConfig,
    detection_side: int | None,
) -> np.ndarray:
    """(C,) int64 inliers per candidate; 0 without verification below ``min_tentative_matches``."""
    num_inliers = np.zeros(len(candidates), dtype=np.int64)
    minimum = max(verification.min_tentative_matches, MIN_SAMPLE_SIZES[verification.model])
    to_verify = [index for index, pairs in enumerate(matches) if len(pairs) >= minimum]
    if not to_verify:
        return num_inliers
    query_points = query.points_at_side(detection_side)

    def verify(index: int) -> int:
        inliers = verify_matches(
            query_points,
            candidates[index].points_at_side(detection_side),
            matches[index],
            model=verification.model,
            threshold_px=verification.threshold_px,
            method=verification.method,
            confidence=verification.confidence,
            max_iters=verification.max_iters,
        )
        return int(inliers.sum())

    if verification.num_threads == 1:
        counts = [verify(index) for index in to_verify]
    else:
        with ThreadPoolExecutor(verification.num_threads) as executor:
            counts = list(executor.map(verify, to_verify))
    num_inliers[to_verify] = counts
    return num_inliers


def patch_similarity(
    query_descriptors: np.ndarray, candidate_descriptors: Sequence[np.ndarray]
) -> np.ndarray:
    """Mean over query patches of the best cosine similarity to each candidate's patches (the thesis' E7).

    Args:
        query_descriptors: (Nq, D) float32 L2-normalised patch descriptors.
        candidate_descriptors: C arrays (Nc, D) float32, L2-normalised.

    Returns:
        (C,) float64 similarities; 0 for an empty query or candidate.
    """
    similarities = np.zeros(len(candidate_descriptors))
    if len(query_descriptors) == 0:
        return similarities
    with torch.inference_mode():
        query = torch.from_numpy(query_descriptors)
        for index, descriptors in enumerate(candidate_descriptors):
            if len(descriptors):
                best = (query @ torch.from_numpy(descriptors).T).amax(dim=1)  # (Nq,)
                similarities[index] = float(best.double().mean())
    return similarities


def rerank(
    query: LocalFeatures,
    candidate_ids: Sequence[str],
    global_scores: np.ndarray,
    store: FeatureStore,
    config: RerankConfig,
    top_k: int = 100,
) -> RerankResult:
    """Re-rank the ``top_k`` candidates with the highest global scores; the others follow in global order.

    Args:
        query: the query's local features, extracted with the store's settings.
        candidate_ids: K database ids present in ``store``.
        global_scores: (K,) global similarity of each candidate.
        store: the database features.
        config: the method and its settings.
        top_k: how many candidates to re-rank.

    Raises:
        KeyError: a re-ranked candidate id is not in the store.
    """
    global_scores = np.asarray(global_scores, dtype=np.float64)
    if global_scores.shape != (len(candidate_ids),):
        raise ValueError(
            f"global_scores must have one score per candidate ({len(candidate_ids)}), got shape "
            f"{global_scores.shape}"
        )
    if top_k <= 0:
        raise ValueError(f"top_k must be positive, got {top_k}")
    _check_compatible(query, store)

    by_global = np.argsort(-global_scores, kind="stable")
    head = by_global[:top_k]
    head_ids = [candidate_ids[index] for index in head]
    head_global = global_scores[head]
    num_matches = np.zeros(len(candidate_ids), dtype=np.int64)
    num_inliers = np.zeros(len(candidate_ids), dtype=np.int64)

    if isinstance(config, CnnPatchRerank):
        candidates = store.get_many(head_ids)
        local = patch_similarity(query.descriptors, [candidate.descriptors for candidate in candidates])
        head_scores = config.alpha * head_global + (1 - config.alpha) * local
    else:
        matching = config.matching
        query_used = query.top(matching.query_max_keypoints)
        candidates = store.get_many(head_ids, matching.database_max_keypoints)
        matches = match_descriptors_batched(
            query_used.descriptors,
            [candidate.descriptors for candidate in candidates],
            ratio=matching.ratio,
            mutual=matching.mutual,
            precision=matching.precision,
            device=matching.device,
        )
        head_matches = np.array([len(pairs) for pairs in matches], dtype=np.int64)
        num_matches[head] = head_matches
        match_ratio = head_matches / max(1, len(query_used))
        if isinstance(config, RatioCountRerank):
            head_scores = config.alpha * head_global + (1 - config.alpha) * match_ratio
        else:
            head_inliers = _count_inliers(
                query_used, candidates, matches, config.verification, store.metadata.max_side
            )
            num_inliers[head] = head_inliers
            head_scores = _score_verified(config, head_global, match_ratio, head_inliers)

    scores = global_scores.copy()
    scores[head] = head_scores
    order = np.concatenate((head[np.argsort(-head_scores, kind="stable")], by_global[top_k:]))
    return RerankResult(
        order=order,
        ranked_ids=[candidate_ids[index] for index in order],
        scores=scores,
        num_matches=num_matches,
        num_inliers=num_inliers,
    )


def _score_verified(
    config: InliersRerank | FusionRerank | DelgRerank | GlobalPlusInliersRerank,
    global_scores: np.ndarray,
    match_ratio: np.ndarray,
    num_inliers: np.ndarray,
) -> np.ndarray:
    """(K,) scores of the verification-based methods."""
    if isinstance(config, InliersRerank):
        return num_inliers.astype(np.float64)
    if isinstance(config, FusionRerank):
        if config.local_score == "match_ratio":
            local = match_ratio
        else:
            local = np.minimum(num_inliers / config.inliers_at_full_score, 1.0)
        return config.alpha * global_scores + (1 - config.alpha) * local
    if isinstance(config, DelgRerank):
        return np.where(num_inliers >= config.min_inliers, num_inliers, 0).astype(np.float64)
    return global_scores + config.inlier_weight * num_inliers


def pair_correspondences(
    query: LocalFeatures,
    database: LocalFeatures,
    matching: MatchingConfig | None = None,
    verification: VerificationConfig | None = None,
    detection_side: int | None = None,
) -> PairCorrespondences:
    """Tentative matches and inliers of one pair, as drawn by a UI; the same rules as :func:`rerank`.

    Args:
        query: the query's features.
        database: the database image's features (e.g. ``store[image_id]``).
        matching: matching settings (defaults: :class:`MatchingConfig`).
        verification: verification settings (defaults: :class:`VerificationConfig`).
        detection_side: the longest side features were detected at (the store's ``max_side``), at which
            ``threshold_px`` applies; None uses the original pixels.
    """
    matching = matching or MatchingConfig()
    verification = verification or VerificationConfig()
    query = query.top(matching.query_max_keypoints)
    database = database.top(matching.database_max_keypoints)
    matches = match_descriptors(query.descriptors, database.descriptors, matching.ratio, matching.mutual)
    inliers = np.zeros(len(matches), dtype=bool)
    if len(matches) >= max(verification.min_tentative_matches, MIN_SAMPLE_SIZES[verification.model]):
        inliers = verify_matches(
            query.points_at_side(detection_side),
            database.points_at_side(detection_side),
            matches,
            model=verification.model,
            threshold_px=verification.threshold_px,
            method=verification.method,
            confidence=verification.confidence,
            max_iters=verification.max_iters,
        )
    return PairCorrespondences(
        query_points=query.keypoints[matches[:, 0], :2],
        database_points=database.keypoints[matches[:, 1], :2],
        inliers=inliers,
    )
