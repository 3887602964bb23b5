"""Hard-negative mining for tuple training (cirtorch style, one negative per other landmark)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


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
