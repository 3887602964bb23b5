"""Tuple mining for contrastive training (cirtorch style): each epoch, queries and positives of the same
landmark, and per query the hardest negatives of distinct other landmarks under the current model.

:func:`mine_epoch_tuples` is the epoch's whole selection, given a function that embeds images; the
``TupleDataModule`` supplies that function (a sharded, mixed-precision forward pass) and logs the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

# Embeds images by index (N,): embeddings (N, D) on the CPU and a (N,) mask of the images that could be read.
Embed = Callable[[np.ndarray], tuple[torch.Tensor, np.ndarray]]


@dataclass(frozen=True)
class TupleMining:
    """How the negatives of each epoch's tuples are chosen.

    Args:
        strategy: ``hard`` (nearest images of other landmarks under the current model) or ``random`` (ablation).
        pool_size: images embedded as negative candidates each epoch (cirtorch: 20000).
        num_negatives: negatives per tuple, each of a different landmark (cirtorch: 5).
    """

    strategy: Literal["hard", "random"] = "hard"
    pool_size: int = 20000
    num_negatives: int = 5

    def __post_init__(self) -> None:
        if self.strategy not in ("hard", "random"):
            raise ValueError(f"mining strategy must be 'hard' or 'random', got {self.strategy!r}")
        if self.num_negatives < 1 or self.pool_size < 1:
            raise ValueError("num_negatives and pool_size must be positive")


@dataclass(frozen=True)
class MiningStatistics:
    """Mean Euclidean distances of the mined tuples, logged to watch training progress."""

    mean_positive_distance: float
    mean_negative_distance: float
    num_queries: int


def mine_hard_negatives(
    query_embeddings: torch.Tensor,
    query_labels: torch.Tensor,
    pool_embeddings: torch.Tensor,
    pool_labels: torch.Tensor,
    num_negatives: int,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """For each query, the ``num_negatives`` nearest pool images of distinct other landmarks, nearest first.

    Args:
        query_embeddings: (Q, D) L2-normalised.
        query_labels: (Q,) landmark ids.
        pool_embeddings: (P, D) L2-normalised.
        pool_labels: (P,) landmark ids.
        num_negatives: negatives per query; each from a different landmark, never the query's own.
        chunk_size: queries per similarity block (bounds memory to chunk_size × P).

    Returns:
        (Q, num_negatives) int64 pool indices, nearest first.

    Raises:
        ValueError: shapes disagree, or the pool holds fewer than ``num_negatives`` landmarks other than a
            query's own.
    """
    if query_embeddings.ndim != 2 or pool_embeddings.ndim != 2:
        raise ValueError("query_embeddings and pool_embeddings must be (N, D) matrices")
    if query_embeddings.shape[1] != pool_embeddings.shape[1]:
        raise ValueError(
            f"embedding dimensions differ: queries {query_embeddings.shape[1]}, pool {pool_embeddings.shape[1]}"
        )
    if query_labels.shape != (query_embeddings.shape[0],) or pool_labels.shape != (pool_embeddings.shape[0],):
        raise ValueError("labels must be 1-D with one entry per embedding row")
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be at least 1, got {num_negatives}")

    pool_label_array = pool_labels.cpu().numpy()
    pool_landmarks, pool_landmark_index = np.unique(pool_label_array, return_inverse=True)
    num_other = len(pool_landmarks) - np.isin(query_labels.cpu().numpy(), pool_landmarks).astype(int)
    if (num_other < num_negatives).any():
        raise ValueError(
            f"the pool holds {len(pool_landmarks)} landmarks; {num_negatives} negatives of distinct other "
            "landmarks per query are not possible — enlarge the pool or lower num_negatives"
        )

    negatives = torch.empty(query_embeddings.shape[0], num_negatives, dtype=torch.long)
    pool_label_tensor = pool_labels.to(pool_embeddings.device)
    for start in range(0, query_embeddings.shape[0], chunk_size):
        stop = start + chunk_size
        similarity = query_embeddings[start:stop].to(pool_embeddings.device) @ pool_embeddings.T  # (c, P)
        own = query_labels[start:stop].to(pool_embeddings.device).unsqueeze(1) == pool_label_tensor.unsqueeze(
            0
        )
        similarity = similarity.masked_fill(own, float("-inf"))
        # Few candidates usually suffice: widen the search only for queries whose top hits crowd into few landmarks.
        width = min(pool_embeddings.shape[0], 4 * num_negatives)
        pending = np.arange(similarity.shape[0])
        while len(pending):
            top = similarity[pending].topk(width, dim=1).indices.cpu().numpy()  # (n, width)
            still_pending = []
            for row, candidates in zip(pending, top, strict=True):
                landmarks = pool_landmark_index[candidates]
                _, first = np.unique(landmarks, return_index=True)
                if len(first) >= num_negatives or width == pool_embeddings.shape[0]:
                    chosen = candidates[np.sort(first)[:num_negatives]]
                    negatives[start + row] = torch.from_numpy(chosen)
                else:
                    still_pending.append(row)
            pending = np.asarray(still_pending, dtype=np.int64)
            width = min(pool_embeddings.shape[0], 4 * width)
    return negatives


def mine_random_negatives(
    query_labels: torch.Tensor, pool_labels: torch.Tensor, num_negatives: int, generator: torch.Generator
) -> torch.Tensor:
    """The ablation of hard mining: ``num_negatives`` random pool images of distinct other landmarks.

    Returns:
        (Q, num_negatives) int64 pool indices.
    """
    pool_label_array = pool_labels.cpu().numpy()
    landmarks = np.unique(pool_label_array)
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    members = {landmark: np.flatnonzero(pool_label_array == landmark) for landmark in landmarks}
    negatives = torch.empty(len(query_labels), num_negatives, dtype=torch.long)
    for row, label in enumerate(query_labels.tolist()):
        others = landmarks[landmarks != label]
        if len(others) < num_negatives:
            raise ValueError(
                f"the pool holds {len(others)} landmarks other than {label}; {num_negatives} negatives needed"
            )
        chosen = rng.choice(others, size=num_negatives, replace=False)
        negatives[row] = torch.as_tensor([rng.choice(members[landmark]) for landmark in chosen])
    return negatives


def tuple_statistics(
    query_embeddings: torch.Tensor,
    positive_embeddings: torch.Tensor,
    negative_embeddings: torch.Tensor,
) -> MiningStatistics:
    """Mean query–positive and query–negative distances: (Q, D), (Q, D), (Q, K, D)."""
    positive_distance = (query_embeddings - positive_embeddings).norm(dim=-1)
    negative_distance = (query_embeddings.unsqueeze(1) - negative_embeddings).norm(dim=-1)
    return MiningStatistics(
        mean_positive_distance=float(positive_distance.mean()),
        mean_negative_distance=float(negative_distance.mean()),
        num_queries=int(query_embeddings.shape[0]),
    )


def sample_queries_and_positives(
    labels: np.ndarray, readable: np.ndarray, num_queries: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``num_queries`` queries (at most: images of landmarks with two or more readable images, drawn without
    replacement) and, for each, a random other readable image of its landmark.

    Args:
        labels: (N,) landmark ids.
        readable: (N,) bool, the images that may be used.
        num_queries: queries wanted.
        rng: the epoch's generator.

    Returns:
        queries and positives, two (Q,) int64 index arrays into ``labels``.

    Raises:
        ValueError: no landmark has two readable images.
    """
    members: dict[int, np.ndarray] = {}
    for landmark in np.unique(labels):
        indices = np.flatnonzero((labels == landmark) & readable)
        if len(indices) >= 2:
            members[int(landmark)] = indices
    eligible = np.concatenate(list(members.values())) if members else np.empty(0, dtype=np.int64)
    if len(eligible) == 0:
        raise ValueError("no landmark has two readable training images")
    queries = rng.choice(eligible, size=min(num_queries, len(eligible)), replace=False)
    positives = np.empty_like(queries)
    for row, query in enumerate(queries):
        candidates = members[int(labels[query])]
        positives[row] = rng.choice(candidates[candidates != query])
    return queries, positives


@dataclass(frozen=True, eq=False)
class EpochTuples:
    """One epoch's tuples.

    Attributes:
        tuples: (T, 2 + K) int64 image indices: query, positive, K negatives.
        pool_size: readable images the negatives were mined from (all images for random negatives).
        statistics: distances of the mined tuples (None for random negatives, which embed nothing).
        unreadable: indices found unreadable while embedding (never sampled again by the caller).
    """

    tuples: np.ndarray
    pool_size: int
    statistics: MiningStatistics | None
    unreadable: np.ndarray


def mine_epoch_tuples(
    labels: np.ndarray,
    readable: np.ndarray,
    mining: TupleMining,
    num_tuples: int,
    rng: np.random.Generator,
    embed: Embed,
) -> EpochTuples:
    """The epoch's tuples: queries and positives (:func:`sample_queries_and_positives`), then negatives of
    ``num_negatives`` distinct other landmarks each — random, or the nearest images of a random pool of
    ``pool_size`` under ``embed`` (:func:`mine_hard_negatives`). Tuples with an image ``embed`` could not read
    are dropped.

    Args:
        labels: (N,) landmark ids of the training images.
        readable: (N,) bool, images not known to be unreadable.
        mining: strategy, pool size, negatives per tuple.
        num_tuples: queries wanted.
        rng: the epoch's generator (the same seed gives the same tuples for the same embeddings).
        embed: embeds images by index.
    """
    queries, positives = sample_queries_and_positives(labels, readable, num_tuples, rng)
    num_negatives = mining.num_negatives
    label_tensor = torch.from_numpy(labels)
    if mining.strategy == "random":
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        pool = np.arange(len(labels))
        negatives = pool[
            mine_random_negatives(label_tensor[queries], label_tensor[pool], num_negatives, generator).numpy()
        ]
        return EpochTuples(
            np.column_stack([queries, positives, negatives]), len(pool), None, np.empty(0, dtype=np.int64)
        )

    candidates = np.flatnonzero(readable)
    pool = rng.choice(candidates, size=min(mining.pool_size, len(candidates)), replace=False)
    to_embed = np.unique(np.concatenate([queries, positives, pool]))
    embeddings, embedded = embed(to_embed)
    row_of = {int(index): row for row, index in enumerate(to_embed)}
    keep = np.array(
        [embedded[row_of[q]] and embedded[row_of[p]] for q, p in zip(queries, positives, strict=True)]
    )
    queries, positives = queries[keep], positives[keep]
    pool = pool[embedded[[row_of[int(i)] for i in pool]]]

    def rows(indices: np.ndarray) -> torch.Tensor:
        return embeddings[[row_of[int(i)] for i in indices]]

    negative_rows = mine_hard_negatives(
        rows(queries), label_tensor[queries], rows(pool), label_tensor[pool], num_negatives
    )
    negatives = pool[negative_rows.numpy()]
    statistics = tuple_statistics(
        rows(queries), rows(positives), rows(negatives.reshape(-1)).view(len(queries), num_negatives, -1)
    )
    return EpochTuples(
        np.column_stack([queries, positives, negatives]), len(pool), statistics, to_embed[~embedded]
    )
