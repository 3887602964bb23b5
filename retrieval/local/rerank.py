"""Re-ranking methods over local features read from a :class:`~retrieval.local.store.FeatureStore`
(:mod:`retrieval.reranking` says what a method is).

Database features are never re-extracted: they were stored once. Keypoint methods match one query against all of
its candidates with one batched matcher call, and only candidates with enough tentative matches pay for a robust
geometric fit.

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
- :class:`CnnPatchInliersRerank`: the patches matched as keypoints and verified on their centres,
  ``global + inlier_weight·inliers``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal, get_args

import numpy as np

from retrieval.local.cnn_patches import CNN_PATCH_METHOD, patch_similarity
from retrieval.local.features import LocalFeatures
from retrieval.local.matching import Matching, MatchingConfig
from retrieval.local.store import FeatureStore
from retrieval.local.verification import MIN_SAMPLE_SIZES, VerificationConfig, verify_matches
from retrieval.reranking import Evidence, PairCorrespondences, RerankMethod

LocalScore = Literal["match_ratio", "inliers"]
LOCAL_SCORES: tuple[str, ...] = get_args(LocalScore)
KEYPOINTS = "keypoints"


def _bracketed(notes: list[str]) -> str:
    """`` [a, b]`` after a label, or nothing without notes."""
    return f" [{', '.join(notes)}]" if notes else ""


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


class LocalRerank(RerankMethod[LocalFeatures, FeatureStore]):
    """Methods that re-rank with local features: ``"keypoints"`` (any OpenCV method) or ``"cnn_patch"``."""

    def check_store(self, store: FeatureStore) -> None:
        if not isinstance(store, FeatureStore):
            raise ValueError(
                f"{self.describe()!r} re-ranks with local features in a feature store, got {store!r}"
            )
        if (store.metadata.method == CNN_PATCH_METHOD) != (self.features == CNN_PATCH_METHOD):
            raise ValueError(
                f"{self.describe()!r} re-ranks with {self.features} features, but {store.root} holds "
                f"{store.metadata.method} features"
            )


@dataclass(frozen=True, kw_only=True)
class KeypointRerank(LocalRerank):
    """Methods that match keypoint descriptors; :meth:`_verify` (geometry) is the step subclasses add."""

    features: ClassVar[str] = KEYPOINTS
    matching: Matching = field(default_factory=MatchingConfig)

    def work_key(self) -> Hashable:
        return (KEYPOINTS, self.matching)

    def check_store(self, store: FeatureStore) -> None:
        super().check_store(store)
        self.matching.check_store(store)

    def _verify(
        self,
        query: LocalFeatures,
        candidates: Sequence[LocalFeatures],
        matches: Sequence[np.ndarray],
        detection_side: int,
    ) -> list[np.ndarray] | None:
        """(Mc,) bool inlier masks per candidate, or None when the method does not verify geometry."""
        return None

    def gather(self, query: LocalFeatures, candidate_ids: Sequence[str], store: FeatureStore) -> Evidence:
        self.matching.check_store(store, query)
        query_used = query.top(self.matching.query_max_keypoints)
        candidates = store.get_many(candidate_ids, self.matching.database_max_keypoints)
        matches = self.matching.match(query_used, candidates, store)
        masks = self._verify(query_used, candidates, matches, store.metadata.max_side)
        num_matches = np.array([len(pairs) for pairs in matches], dtype=np.int64)
        inlier_masks = masks or [np.zeros(len(pairs), dtype=bool) for pairs in matches]
        return Evidence(
            num_matches=num_matches,
            num_inliers=np.array([int(mask.sum()) for mask in inlier_masks], dtype=np.int64),
            match_ratio=num_matches / max(1, len(query_used)),
            similarity=np.zeros(len(candidates)),
            correspondences=[
                PairCorrespondences(
                    query_points=query_used.keypoints[pairs[:, 0], :2],
                    database_points=candidate.keypoints[pairs[:, 1], :2],
                    inliers=mask,
                    verified=masks is not None,
                )
                for candidate, pairs, mask in zip(candidates, matches, inlier_masks, strict=True)
            ],
        )


@dataclass(frozen=True, kw_only=True)
class RatioCountRerank(KeypointRerank):
    """The thesis' E5: ``alpha·global + (1 − alpha)·match ratio``, ratio-test matches without geometry."""

    alpha: float = 0.8
    matching: Matching = field(default_factory=lambda: MatchingConfig(mutual=False))

    def __post_init__(self) -> None:
        _check_alpha(self.alpha)

    def score(self, global_scores: np.ndarray, evidence: Evidence) -> np.ndarray:
        return self.alpha * global_scores + (1 - self.alpha) * evidence.match_ratio

    def describe(self) -> str:
        return (
            f"ratio-count (E5): {self.alpha:g}·global + {1 - self.alpha:g}·match ratio, no geometry"
            f"{_bracketed(self.matching.notes())}"
        )


@dataclass(frozen=True, kw_only=True)
class VerifiedRerank(KeypointRerank):
    """Keypoint methods that count spatially verified inliers (:func:`retrieval.local.verification.verify_matches`)."""

    verification: VerificationConfig = field(default_factory=VerificationConfig)

    def work_key(self) -> Hashable:
        return ("verified", self.matching, self.verification)

    def verification_key(self) -> str | None:
        # Threads change the speed, not the inliers.
        return repr((self.matching, replace(self.verification, num_threads=1)))

    def _verify(
        self,
        query: LocalFeatures,
        candidates: Sequence[LocalFeatures],
        matches: Sequence[np.ndarray],
        detection_side: int,
    ) -> list[np.ndarray]:
        """Inlier masks; candidates below ``min_tentative_matches`` are not verified (all False)."""
        verification = self.verification
        masks = [np.zeros(len(pairs), dtype=bool) for pairs in matches]
        minimum = max(verification.min_tentative_matches, MIN_SAMPLE_SIZES[verification.model])
        to_verify = [index for index, pairs in enumerate(matches) if len(pairs) >= minimum]
        if not to_verify:
            return masks
        query_points = query.points_at_side(detection_side)

        def verify(index: int) -> np.ndarray:
            return verify_matches(
                query_points,
                candidates[index].points_at_side(detection_side),
                matches[index],
                model=verification.model,
                threshold_px=verification.threshold_px,
                method=verification.method,
                confidence=verification.confidence,
                max_iters=verification.max_iters,
            )

        if verification.num_threads == 1:
            verified = [verify(index) for index in to_verify]
        else:
            with ThreadPoolExecutor(verification.num_threads) as executor:
                verified = list(executor.map(verify, to_verify))
        for index, mask in zip(to_verify, verified, strict=True):
            masks[index] = mask
        return masks

    def _settings(self) -> str:
        return _bracketed(self.matching.notes() + self.verification.notes())


@dataclass(frozen=True, kw_only=True)
class InliersRerank(VerifiedRerank):
    """By number of inliers, ties by global score."""

    def score(self, global_scores: np.ndarray, evidence: Evidence) -> np.ndarray:
        return evidence.num_inliers.astype(np.float64)

    def describe(self) -> str:
        return f"RANSAC inliers, ties by global score{self._settings()}"


@dataclass(frozen=True, kw_only=True)
class FusionRerank(VerifiedRerank):
    """``alpha·global + (1 − alpha)·local``; local is the match ratio or ``min(inliers / inliers_at_full_score, 1)``."""

    alpha: float = 0.8
    local_score: LocalScore = "inliers"
    inliers_at_full_score: int = 100

    def __post_init__(self) -> None:
        _check_alpha(self.alpha)
        if self.local_score not in LOCAL_SCORES:
            raise ValueError(f"local_score must be one of {LOCAL_SCORES}, got {self.local_score!r}")
        if self.inliers_at_full_score <= 0:
            raise ValueError(f"inliers_at_full_score must be positive, got {self.inliers_at_full_score}")

    def score(self, global_scores: np.ndarray, evidence: Evidence) -> np.ndarray:
        if self.local_score == "match_ratio":
            local = evidence.match_ratio
        else:
            local = np.minimum(evidence.num_inliers / self.inliers_at_full_score, 1.0)
        return self.alpha * global_scores + (1 - self.alpha) * local

    def describe(self) -> str:
        local = (
            "match ratio"
            if self.local_score == "match_ratio"
            else f"min(inliers/{self.inliers_at_full_score}, 1)"
        )
        return f"fusion α={self.alpha:g}: α·global + (1−α)·{local}{self._settings()}"


@dataclass(frozen=True, kw_only=True)
class DelgRerank(VerifiedRerank):
    """Candidates with at least ``min_inliers`` inliers first (by inliers, then global score), then the rest."""

    min_inliers: int = 15

    def __post_init__(self) -> None:
        if self.min_inliers <= 0:
            raise ValueError(f"min_inliers must be positive, got {self.min_inliers}")

    def score(self, global_scores: np.ndarray, evidence: Evidence) -> np.ndarray:
        inliers = evidence.num_inliers
        return np.where(inliers >= self.min_inliers, inliers, 0).astype(np.float64)

    def describe(self) -> str:
        return f"DELG order (≥ {self.min_inliers} inliers first){self._settings()}"


@dataclass(frozen=True, kw_only=True)
class GlobalPlusInliersRerank(VerifiedRerank):
    """``global + inlier_weight·inliers``."""

    inlier_weight: float = 0.01

    def __post_init__(self) -> None:
        if self.inlier_weight < 0:
            raise ValueError(f"inlier_weight must be non-negative, got {self.inlier_weight}")

    def score(self, global_scores: np.ndarray, evidence: Evidence) -> np.ndarray:
        return global_scores + self.inlier_weight * evidence.num_inliers

    def describe(self) -> str:
        return f"global + {self.inlier_weight:g}·inliers{self._settings()}"


@dataclass(frozen=True, kw_only=True)
class CnnPatchInliersRerank(GlobalPlusInliersRerank):
    """``global + inlier_weight·inliers`` with CNN patches (or ViT patch tokens) as the keypoints: patches
    matched by mutual nearest neighbours and the ratio test, then verified on the patch centres — a threshold
    of about half a cell suits their coarse positions."""

    features: ClassVar[str] = CNN_PATCH_METHOD

    def describe(self) -> str:
        return f"CNN patches + geometry: global + {self.inlier_weight:g}·inliers on patch centres{self._settings()}"


@dataclass(frozen=True, kw_only=True)
class CnnPatchRerank(LocalRerank):
    """The thesis' E7: ``alpha·global + (1 − alpha)·mean over query patches of the best patch cosine``."""

    features: ClassVar[str] = CNN_PATCH_METHOD
    alpha: float = 0.8

    def __post_init__(self) -> None:
        _check_alpha(self.alpha)

    def work_key(self) -> Hashable:
        return (CNN_PATCH_METHOD,)

    def gather(self, query: LocalFeatures, candidate_ids: Sequence[str], store: FeatureStore) -> Evidence:
        _check_patches(query, store)
        candidates = store.get_many(candidate_ids)
        return Evidence.of_similarity(
            patch_similarity(query.descriptors, [candidate.descriptors for candidate in candidates])
        )

    def score(self, global_scores: np.ndarray, evidence: Evidence) -> np.ndarray:
        return self.alpha * global_scores + (1 - self.alpha) * evidence.similarity

    def describe(self) -> str:
        return f"CNN patches (E7): {self.alpha:g}·global + {1 - self.alpha:g}·patch similarity"


def _check_patches(query: LocalFeatures, store: FeatureStore) -> None:
    if query.dim != store.metadata.dim or query.binary != store.metadata.binary:
        raise ValueError(
            f"query features are {query.descriptors.dtype} with {query.dim} dimensions but the store holds "
            f"{store.metadata.method} {store.metadata.descriptor_dtype} features with {store.metadata.dim}"
        )
