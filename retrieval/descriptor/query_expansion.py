"""Query expansion (αQE) and database-side augmentation (αDBA) for global descriptors (Radenović et al., TPAMI
2018; αQE with ``alpha = 0`` is the average query expansion AQE of Chum et al.).

Both replace a vector by the L2-normalised sum of itself and its top-``k`` neighbours ``x_j``, each neighbour
weighted by ``max(sim, 0) ** alpha`` where ``sim`` is its inner product with the vector. Rows are processed in
chunks, so that only ``(chunk_size, k, D)`` neighbours are gathered at a time, for databases of millions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from retrieval.descriptor.index import exact_search


def _check_inputs(
    vectors: torch.Tensor, database: torch.Tensor, k: int, alpha: float, chunk_size: int
) -> None:
    if vectors.ndim != 2 or database.ndim != 2 or vectors.shape[1] != database.shape[1]:
        raise ValueError(
            f"vectors and database must be (Q, D) and (N, D), got {tuple(vectors.shape)} and {tuple(database.shape)}"
        )
    if vectors.device != database.device:
        raise ValueError(f"vectors are on {vectors.device} but the database on {database.device}")
    if not 1 <= k <= len(database):
        raise ValueError(f"k must be in [1, {len(database)}] (the database size), got {k}")
    if alpha < 0:
        raise ValueError(f"alpha must be non-negative, got {alpha}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")


def _check_ranking(ranking: torch.Tensor, num_rows: int, num_database: int, k: int) -> None:
    if ranking.ndim != 2 or len(ranking) != num_rows or ranking.shape[1] < k:
        raise ValueError(f"ranking must have shape ({num_rows}, K >= {k}), got {tuple(ranking.shape)}")
    if ranking.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"ranking must hold integer database rows, got dtype {ranking.dtype}")
    top = ranking[:, :k]
    if len(top) and (top.min() < -1 or top.max() >= num_database):
        raise ValueError(f"ranking entries must lie in [-1, {num_database}) (-1 = no neighbour)")


def _expand(
    vectors: torch.Tensor,
    database: torch.Tensor,
    ranking: torch.Tensor,
    k: int,
    alpha: float,
    include_vector: bool,
    chunk_size: int,
) -> torch.Tensor:
    """``normalise([v_i if include_vector] + sum_j w_ij x_j)`` over the first ``k`` rows ``j`` of ``ranking[i]``,
    ``w_ij = max(v_i . x_j, 0) ** alpha`` (``0 ** 0 = 1``) and ``w_ij = 0`` where ``ranking`` is -1.

    Shapes: vectors (Q, D), database (N, D), ranking (Q, K >= k); returns float32 (Q, D).
    """
    expanded = []
    for start in range(0, len(vectors), chunk_size):
        vector_chunk = vectors[start : start + chunk_size].float()
        neighbour_rows = ranking[start : start + chunk_size, :k].to(device=database.device, dtype=torch.int64)
        neighbours = database[neighbour_rows.clamp(min=0)].float()  # (chunk, k, D)
        similarities = torch.einsum("qd,qkd->qk", vector_chunk, neighbours).clamp(min=0)
        weights = similarities.pow(alpha) * (neighbour_rows >= 0)
        combined = torch.einsum("qk,qkd->qd", weights, neighbours)
        if include_vector:
            combined = combined + vector_chunk
        expanded.append(F.normalize(combined, dim=1))
    if not expanded:
        return torch.empty(0, vectors.shape[1], device=vectors.device)
    return torch.cat(expanded)


def alpha_query_expansion(
    query: torch.Tensor,
    database: torch.Tensor,
    ranking: torch.Tensor,
    k: int,
    alpha: float = 3.0,
    chunk_size: int = 4096,
) -> torch.Tensor:
    """αQE: each query becomes ``normalise(q + sum_{j < k} max(q . x_j, 0) ** alpha x_j)`` over its top-``k``
    database neighbours ``x_j`` (the query counts with weight ``1 = (q . q) ** alpha``); ``alpha = 0`` is AQE.

    Args:
        query: (Q, D) L2-normalised queries.
        database: (N, D) L2-normalised database, on the queries' device.
        ranking: (Q, K >= k) database rows of each query's neighbours, best first; -1 (padding) is skipped.
        k: neighbours used per query.
        alpha: weighting exponent.
        chunk_size: queries processed at a time.

    Returns:
        (Q, D) float32 expanded queries, L2-normalised; search the database again with them.
    """
    _check_inputs(query, database, k, alpha, chunk_size)
    _check_ranking(ranking, len(query), len(database), k)
    return _expand(query, database, ranking, k, alpha, include_vector=True, chunk_size=chunk_size)


def database_side_augmentation(
    database: torch.Tensor,
    k: int,
    alpha: float = 3.0,
    ranking: torch.Tensor | None = None,
    chunk_size: int = 4096,
    search_database_chunk_size: int = 65_536,
) -> torch.Tensor:
    """αDBA: each database vector becomes ``normalise(sum_{j < k} max(x . x_j, 0) ** alpha x_j)`` over its
    top-``k`` neighbours in the database, which include the vector itself (similarity 1, weight 1).

    Args:
        database: (N, D) L2-normalised database.
        k: neighbours per vector, the vector itself included.
        alpha: weighting exponent (0: plain mean).
        ranking: (N, K >= k) precomputed neighbours of each database vector (e.g. from a
            :class:`~retrieval.descriptor.index.DescriptorIndex` searched with the database itself), best first, -1 skipped;
            by default an exact chunked search (:func:`~retrieval.descriptor.index.exact_search`) on the database's device.
        chunk_size: database vectors augmented (and searched) at a time.
        search_database_chunk_size: database rows scored at a time by the exact search.

    Returns:
        (N, D) float32 augmented database, L2-normalised; queries are then searched against it.
    """
    _check_inputs(database, database, k, alpha, chunk_size)
    if ranking is None:
        _, ranking = exact_search(
            database, database, k, query_chunk_size=chunk_size, database_chunk_size=search_database_chunk_size
        )
    _check_ranking(ranking, len(database), len(database), k)
    return _expand(database, database, ranking, k, alpha, include_vector=False, chunk_size=chunk_size)
