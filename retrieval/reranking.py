"""What every re-ranking method is: re-order a query's global top K from evidence about each candidate.

A method first gathers the evidence (:meth:`RerankMethod.gather`) from a store of the candidates' features, then
scores them from it (:meth:`RerankMethod.score`); methods whose :meth:`~RerankMethod.work_key` is equal gather the
same evidence, so a study scores many methods from one matching run. The features a method reads are named by
its :attr:`~RerankMethod.features`:

- ``"keypoints"`` and ``"cnn_patch"``: local features in a :class:`~retrieval.local.store.FeatureStore`
  (:mod:`retrieval.local.rerank`);
- ``"global"``: the global descriptors themselves in a :class:`~retrieval.descriptor.descriptor_table.DescriptorTable`
  (SuperGlobal, :mod:`retrieval.descriptor.superglobal`).

:func:`rerank` re-ranks one query's candidates with one method. Scores are sorted in descending order with a
stable sort of candidates already in descending global order, so equal scores keep the global order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

GLOBAL_DESCRIPTORS = "global"

QueryT = TypeVar("QueryT")
StoreT = TypeVar("StoreT")


@dataclass(frozen=True, eq=False)
class PairCorrespondences:
    """Tentative matches of one image pair, for drawing: (M, 2) float32 x, y in each ORIGINAL image's pixels,
    an (M,) bool inlier mask, and whether a verification ran (without one, the mask is all False)."""

    query_points: np.ndarray
    database_points: np.ndarray
    inliers: np.ndarray
    verified: bool

    @classmethod
    def empty(cls) -> PairCorrespondences:
        """No matches (a method that matches no keypoints)."""
        return cls(np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), np.zeros(0, dtype=bool), False)


@dataclass(frozen=True, eq=False)
class Evidence:
    """What a method's features say about K candidates; every array is (K,), in the order of the candidates.

    Attributes:
        num_matches: tentative keypoint matches (0 where nothing was matched).
        num_inliers: verified inliers (0 where no verification ran).
        match_ratio: tentative matches over the query keypoints that were matched.
        similarity: a descriptor similarity — the CNN patches' mean best cosine, SuperGlobal's refined score
            (NaN where a method did not score a candidate; 0 for keypoint methods).
        correspondences: K drawable correspondences (empty for methods that match no keypoints).
    """

    num_matches: np.ndarray
    num_inliers: np.ndarray
    match_ratio: np.ndarray
    similarity: np.ndarray
    correspondences: list[PairCorrespondences]

    def __len__(self) -> int:
        return len(self.num_matches)

    @classmethod
    def of_similarity(cls, similarity: np.ndarray) -> Evidence:
        """The evidence of a method that matches no keypoints: only a (K,) similarity."""
        zeros = np.zeros(len(similarity), dtype=np.int64)
        return cls(
            num_matches=zeros,
            num_inliers=zeros,
            match_ratio=np.zeros(len(similarity)),
            similarity=np.asarray(similarity, dtype=np.float64),
            correspondences=[PairCorrespondences.empty()] * len(similarity),  # one shared, read-only
        )


class RerankMethod(ABC, Generic[QueryT, StoreT]):
    """A re-ranking method: :meth:`gather` reads the candidates' evidence from a store (``StoreT``) given the
    query's features (``QueryT``), :meth:`score` turns it and the global scores into the re-ranked candidates'
    scores (higher first). :attr:`features` names the kind of features (module docstring)."""

    features: ClassVar[str]

    @abstractmethod
    def gather(self, query: QueryT, candidate_ids: Sequence[str], store: StoreT) -> Evidence:
        """The evidence about each candidate (ids present in ``store``)."""

    @abstractmethod
    def score(self, global_scores: np.ndarray, evidence: Evidence) -> np.ndarray:
        """(K,) float64 scores of K candidates from their (K,) global scores and their evidence."""

    @abstractmethod
    def describe(self) -> str:
        """A one-line label that states the method's formula (tables, the search page)."""

    @abstractmethod
    def work_key(self) -> Hashable:
        """Methods with equal keys gather the same evidence and differ only in :meth:`score`."""

    @abstractmethod
    def check_store(self, store: Any) -> None:
        """Raise ValueError unless this method can re-rank with what ``store`` holds."""

    def verification_key(self) -> str | None:
        """Names the settings that count verified inliers (same-place thresholds are calibrated per key,
        :mod:`retrieval.local.verdict`); None for a method that verifies no geometry."""
        return None


@dataclass(frozen=True, eq=False)
class RerankResult:
    """A re-ranked candidate list. Per-candidate arrays are indexed like the candidates given to :func:`rerank`.

    Attributes:
        order: (K,) int64 candidate positions, best first.
        ranked_ids: the candidate ids in that order.
        scores: (K,) float64 score of each candidate (the global score for those beyond the re-ranked top-K).
        num_matches: (K,) int64 tentative matches (0 where not matched).
        num_inliers: (K,) int64 verified inliers (0 where not verified).
        reranked: (T,) int64 positions of the re-ranked candidates, whose evidence ``evidence`` holds in order.
        evidence: the method's evidence about those T candidates.
    """

    order: np.ndarray
    ranked_ids: list[str]
    scores: np.ndarray
    num_matches: np.ndarray
    num_inliers: np.ndarray
    reranked: np.ndarray
    evidence: Evidence

    def correspondences(self, position: int) -> PairCorrespondences | None:
        """The drawable matches of the candidate at ``position``, None if it was not re-ranked."""
        found = np.flatnonzero(self.reranked == position)
        return self.evidence.correspondences[int(found[0])] if found.size else None


def rerank(
    query: QueryT,
    candidate_ids: Sequence[str],
    global_scores: np.ndarray,
    store: StoreT,
    method: RerankMethod[QueryT, StoreT],
    top_k: int = 100,
) -> RerankResult:
    """Re-rank the ``top_k`` candidates with the highest global scores; the others follow in global order.

    Args:
        query: the query's features, with the store's settings (local features, or its (D,) global descriptor).
        candidate_ids: K database ids present in ``store``.
        global_scores: (K,) global similarity of each candidate.
        store: the database features.
        method: the method and its settings.
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
    by_global = np.argsort(-global_scores, kind="stable")
    head = by_global[:top_k]
    evidence = method.gather(query, [candidate_ids[index] for index in head], store)
    head_scores = method.score(global_scores[head], evidence)

    scores = global_scores.copy()
    scores[head] = head_scores
    num_matches = np.zeros(len(candidate_ids), dtype=np.int64)
    num_inliers = np.zeros(len(candidate_ids), dtype=np.int64)
    num_matches[head] = evidence.num_matches
    num_inliers[head] = evidence.num_inliers
    order = np.concatenate((head[np.argsort(-head_scores, kind="stable")], by_global[top_k:]))
    return RerankResult(
        order=order,
        ranked_ids=[candidate_ids[index] for index in order],
        scores=scores,
        num_matches=num_matches,
        num_inliers=num_inliers,
        reranked=head,
        evidence=evidence,
    )
