"""Retrieval metrics that reproduce the official evaluation protocols, so that numbers compare with published ones.

- Revisited Oxford/Paris (revisitop ``compute_map``): average precision by the trapezoid rule, junk images
  removed by shifting the ranks of the positives below them, mP@k with the ``kq = min(max(pos), k)`` rule, and
  the Easy / Medium / Hard settings built from the easy, hard and junk lists.
- GLDv2 retrieval (DELF ``MeanAveragePrecision``): mAP@100 = sum over the first 100 predictions of
  P(i) * rel(i), divided by min(number of positives, 100), repeated predictions skipped.
- Plain protocols (a folder, the shared real photos): the revisitop AP and mP@k, and recall@k.

Conventions shared by every function:

- A ranking is an integer array (Q, K): for each query, database indices sorted best first. Entries below 0
  (faiss pads with -1 when fewer than K results exist) match nothing and occupy their rank.
- A database index repeated in one row counts only at its first occurrence; later copies occupy their rank as
  non-relevant entries (the GLDv2 rule). Every copy of a junk image is removed.
- Every metric is a fraction in [0, 1] (multiply by 100 for the tables in papers). Queries without positives
  are excluded from every mean (revisitop and DELF both do so); a mean over no query is NaN.
- Truncated rankings (K smaller than the database, e.g. a top-100 search): positives missing from the ranking
  count as ranked past its end. They add nothing to the AP sum but still count in its denominator, so the AP
  of a truncated ranking is a lower bound of the full-ranking AP, and equal to it whenever every positive is
  within the ranking. revisitop evaluates full rankings (K = database size); pass full rankings to report
  Revisited numbers. mP@k and recall@k are exact whenever k is at most the number of non-junk entries of the
  ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch

from retrieval.benchmark import RetrievalBenchmark

RevisitedSetting = Literal["easy", "medium", "hard"]
REVISITED_SETTINGS: tuple[RevisitedSetting, ...] = ("easy", "medium", "hard")
REVISITED_KS = (1, 5, 10)
PLAIN_PRECISION_KS = (1, 5, 10)
PLAIN_RECALL_KS = (1, 10)
GLDV2_MAX_PREDICTIONS = 100

# Ranking entries matched per step, so that temporaries stay near 8 MiB per array whatever Q is.
_ENTRIES_PER_CHUNK = 1 << 20


def average_precision(ranked_positive_positions: np.ndarray, num_positives: int) -> float:
    """Average precision by revisitop's trapezoid rule.

    The precision-recall curve steps up by ``1 / num_positives`` at each positive; each step adds the mean of
    the precision just before it, ``j / r`` (1 at rank 0), and just after it, ``(j + 1) / (r + 1)``, times the
    step, where ``j`` counts the positives ranked before the one at rank ``r``.

    Args:
        ranked_positive_positions: (P,) 0-based ranks of the positives that were found, strictly increasing,
            junk already removed.
        num_positives: size of the positive set; positives not in ``ranked_positive_positions`` contribute 0.
    """
    positions = np.asarray(ranked_positive_positions)
    if positions.ndim != 1:
        raise ValueError(f"ranked_positive_positions must be 1-D, got shape {positions.shape}")
    if num_positives < max(1, positions.size):
        raise ValueError(
            f"num_positives must be at least 1 and at least the {positions.size} positions given, got {num_positives}"
        )
    if positions.size and (positions[0] < 0 or np.any(np.diff(positions) <= 0)):
        raise ValueError("ranked_positive_positions must be non-negative and strictly increasing")
    ranks = positions.astype(np.float64)
    found_before = np.arange(positions.size, dtype=np.float64)
    precision_after = (found_before + 1) / (ranks + 1)
    precision_before = np.divide(found_before, ranks, out=np.ones_like(ranks), where=ranks > 0)
    return float(np.sum(precision_before + precision_after) / (2 * num_positives))


def _index_array(values: np.ndarray | Sequence[int], what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{what} must be a 1-D integer array, got shape {array.shape} and dtype {array.dtype}"
        )
    return array.astype(np.int64)


def positions_after_junk(
    ranking: np.ndarray, positives: np.ndarray | Sequence[int], junk: np.ndarray | Sequence[int] = ()
) -> np.ndarray:
    """0-based ranks of the positives found in one ranking once the junk entries are taken out.

    Args:
        ranking: (K,) database indices, best first.
        positives, junk: database indices (any order).

    Returns:
        (P,) int64 increasing ranks, one per distinct positive found in ``ranking``.
    """
    row = _index_array(ranking, "ranking")
    is_junk = np.isin(row, _index_array(junk, "junk")) & (row >= 0)
    _, first_occurrence = np.unique(row, return_index=True)
    is_first = np.zeros(row.size, dtype=bool)
    is_first[first_occurrence] = True
    is_positive = np.isin(row, _index_array(positives, "positives")) & is_first & (row >= 0)
    if np.any(is_positive & is_junk):
        raise ValueError("a database index cannot be both a positive and junk")
    rank_without_junk = np.cumsum(~is_junk) - 1
    return rank_without_junk[is_positive].astype(np.int64)


def compute_ap_for_ranking(
    ranking: np.ndarray, positives: np.ndarray | Sequence[int], junk: np.ndarray | Sequence[int] = ()
) -> float:
    """Average precision of one ranking (K,), exactly revisitop's per-query ``compute_map``; NaN without positives."""
    num_positives = np.unique(_index_array(positives, "positives")).size
    if num_positives == 0:
        return float("nan")
    return average_precision(positions_after_junk(ranking, positives, junk), num_positives)


def _check_ranking(ranking: np.ndarray) -> np.ndarray:
    array = np.asarray(ranking)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"ranking must be a 2-D integer array (Q, K), got shape {array.shape}, dtype {array.dtype}"
        )
    if array.shape[1] == 0:
        raise ValueError("ranking must hold at least one column")
    return np.ascontiguousarray(array, dtype=np.int64)


class _FlatIndexSets(NamedTuple):
    """Per-query index sets flattened: ``values[i]`` is a database index of query ``rows[i]``; both (M,)."""

    rows: np.ndarray
    values: np.ndarray


def _flatten_index_sets(index_sets: Sequence[np.ndarray | Sequence[int]], what: str) -> _FlatIndexSets:
    non_empty = [(query, indices) for query, indices in enumerate(index_sets) if len(indices)]
    if not non_empty:
        return _FlatIndexSets(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
    values = np.concatenate([np.asarray(indices).reshape(-1) for _, indices in non_empty])
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{what} must hold integer database indices, got dtype {values.dtype}")
    if values.min() < 0:
        raise ValueError(f"{what} holds a negative database index: {int(values.min())}")
    lengths = [len(indices) for _, indices in non_empty]
    rows = np.repeat(np.array([query for query, _ in non_empty], dtype=np.int64), lengths)
    return _FlatIndexSets(rows, values.astype(np.int64))


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique for int64 keys, by sorting (numpy's hash-based unique is several times slower here)."""
    ordered = np.sort(values)
    is_first = np.ones(ordered.size, dtype=bool)
    is_first[1:] = ordered[1:] != ordered[:-1]
    return ordered[is_first]


def _matching_entries(ranking: np.ndarray, keys: np.ndarray, stride: int) -> np.ndarray:
    """Flat row-major indices (ascending) of the ranking entries whose key is in ``keys`` (sorted)."""
    if keys.size == 0:
        return np.empty(0, dtype=np.int64)
    num_queries, num_columns = ranking.shape
    rows_per_chunk = max(1, _ENTRIES_PER_CHUNK // num_columns)
    matches = []
    for start in range(0, num_queries, rows_per_chunk):
        block = ranking[start : start + rows_per_chunk]
        block_keys = (
            np.arange(start, start + block.shape[0], dtype=np.int64)[:, None] * stride + block
        ).ravel()
        slots = np.minimum(np.searchsorted(keys, block_keys), keys.size - 1)
        is_match = (keys[slots] == block_keys) & (block.ravel() >= 0)
        matches.append(np.flatnonzero(is_match) + start * num_columns)
    return np.concatenate(matches) if matches else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class _RankedPositives:
    """Where every query's positives sit in its ranking, junk removed; one entry per positive found.

    Attributes:
        query_indices: (H,) query of each found positive, ascending (row-major order of the ranking).
        positions: (H,) 0-based rank among the non-junk entries of the query's ranking.
        found_before: (H,) number of positives of the same query ranked before it.
        num_positives: (Q,) size of each query's positive set.
        num_found: (Q,) number of positives found in each query's ranking.
    """

    query_indices: np.ndarray
    positions: np.ndarray
    found_before: np.ndarray
    num_positives: np.ndarray
    num_found: np.ndarray

    @property
    def has_positives(self) -> np.ndarray:
        return self.num_positives > 0

    def last_found(self) -> np.ndarray:
        """(Q,) index into the found positives of each query's lowest-ranked one (only where num_found > 0)."""
        return np.cumsum(self.num_found) - 1

    def first_found(self) -> np.ndarray:
        """(Q,) index into the found positives of each query's best-ranked one (only where num_found > 0)."""
        return np.cumsum(self.num_found) - self.num_found


def _locate_positives(
    ranking: np.ndarray,
    positives: Sequence[np.ndarray | Sequence[int]],
    junk: Sequence[np.ndarray | Sequence[int]] | None,
) -> _RankedPositives:
    """Vectorised over queries: find each query's positives in its ranking (Q, K) and rank them without junk."""
    ranking = _check_ranking(ranking)
    num_queries, num_columns = ranking.shape
    if len(positives) != num_queries:
        raise ValueError(f"got {len(positives)} positive sets for {num_queries} ranked queries")
    if junk is not None and len(junk) != num_queries:
        raise ValueError(f"got {len(junk)} junk sets for {num_queries} ranked queries")
    flat_positives = _flatten_index_sets(positives, "positives")
    flat_junk = _flatten_index_sets(junk or [], "junk")
    largest = max(
        [int(ranking.max()) if ranking.size else -1]
        + [int(flat.values.max()) for flat in (flat_positives, flat_junk) if flat.values.size]
    )
    stride = largest + 1 if largest >= 0 else 1
    positive_keys = _sorted_unique(flat_positives.rows * stride + flat_positives.values)
    junk_keys = _sorted_unique(flat_junk.rows * stride + flat_junk.values)
    if junk_keys.size and positive_keys.size:
        slots = np.minimum(np.searchsorted(junk_keys, positive_keys), junk_keys.size - 1)
        if np.any(junk_keys[slots] == positive_keys):
            raise ValueError("a database index cannot be both a positive and junk for the same query")

    # A database index repeated in a row counts only at its first occurrence (a stable sort keeps it first).
    positive_entries = _matching_entries(ranking, positive_keys, stride)
    entry_keys = (positive_entries // num_columns) * stride + ranking.ravel()[positive_entries]
    order = np.argsort(entry_keys, kind="stable")
    is_first = np.ones(order.size, dtype=bool)
    is_first[1:] = entry_keys[order][1:] != entry_keys[order][:-1]
    positive_entries = np.sort(positive_entries[order[is_first]])
    junk_entries = _matching_entries(ranking, junk_keys, stride)

    query_indices = positive_entries // num_columns
    row_starts = query_indices * num_columns
    junk_before = np.searchsorted(junk_entries, positive_entries) - np.searchsorted(junk_entries, row_starts)
    positions = positive_entries - row_starts - junk_before
    found_before = np.arange(positive_entries.size) - np.searchsorted(positive_entries, row_starts)
    return _RankedPositives(
        query_indices=query_indices,
        positions=positions,
        found_before=found_before,
        num_positives=np.bincount(positive_keys // stride, minlength=num_queries),
        num_found=np.bincount(query_indices, minlength=num_queries),
    )


def _with_nan_without_positives(values: np.ndarray, located: _RankedPositives) -> np.ndarray:
    return np.where(located.has_positives, values, np.nan)


def _average_precisions(located: _RankedPositives) -> np.ndarray:
    ranks = located.positions.astype(np.float64)
    precision_after = (located.found_before + 1) / (ranks + 1)
    precision_before = np.divide(located.found_before, ranks, out=np.ones_like(ranks), where=ranks > 0)
    sums = np.bincount(
        located.query_indices,
        weights=precision_before + precision_after,
        minlength=located.num_positives.size,
    )
    return _with_nan_without_positives(sums / np.maximum(2 * located.num_positives, 1), located)


def _precisions_at(located: _RankedPositives, k: int) -> np.ndarray:
    """revisitop's mP@k: precision at kq = min(k, rank of the last positive), ranks 1-based without junk."""
    last_rank = np.full(located.num_positives.size, np.inf)
    all_found = located.has_positives & (located.num_found == located.num_positives)
    last_rank[all_found] = located.positions[located.last_found()[all_found]] + 1
    cutoff = np.minimum(last_rank, k)
    within = (located.positions + 1) <= cutoff[located.query_indices]
    counts = np.bincount(located.query_indices, weights=within, minlength=cutoff.size)
    return _with_nan_without_positives(counts / cutoff, located)


def _hits_at(located: _RankedPositives, k: int) -> np.ndarray:
    """1.0 where a positive is among the first k non-junk entries, else 0.0."""
    best_rank = np.full(located.num_positives.size, np.inf)
    any_found = located.num_found > 0
    best_rank[any_found] = located.positions[located.first_found()[any_found]]
    return _with_nan_without_positives((best_rank < k).astype(np.float64), located)


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    checked = tuple(int(k) for k in ks)
    if any(k < 1 for k in checked):
        raise ValueError(f"every k must be at least 1, got {list(ks)}")
    return checked


@dataclass(frozen=True)
class QueryScores:
    """Per-query scores of a ranking; NaN for queries without positives. Fractions in [0, 1].

    Attributes:
        average_precision: (Q,) revisitop AP.
        precision_at: k -> (Q,) revisitop precision at min(k, rank of the last positive).
        hit_at: k -> (Q,) 1.0 if a positive is among the first k non-junk results, else 0.0.
    """

    average_precision: np.ndarray
    precision_at: dict[int, np.ndarray]
    hit_at: dict[int, np.ndarray]


def score_queries(
    ranking: np.ndarray,
    positives: Sequence[np.ndarray | Sequence[int]],
    junk: Sequence[np.ndarray | Sequence[int]] | None = None,
    ks: Sequence[int] = REVISITED_KS,
) -> QueryScores:
    """Score every query of a ranking (Q, K) at once; ``positives[q]`` and ``junk[q]`` are database indices."""
    checked_ks = _check_ks(ks)
    located = _locate_positives(ranking, positives, junk)
    return QueryScores(
        average_precision=_average_precisions(located),
        precision_at={k: _precisions_at(located, k) for k in checked_ks},
        hit_at={k: _hits_at(located, k) for k in checked_ks},
    )


def mean_over_queries(per_query: np.ndarray) -> float:
    """Mean of per-query values, skipping the NaN of queries without positives; NaN if nothing is left."""
    values = np.asarray(per_query, dtype=np.float64)
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")


def mean_average_precision(
    ranking: np.ndarray,
    positives: Sequence[np.ndarray | Sequence[int]],
    junk: Sequence[np.ndarray | Sequence[int]] | None = None,
) -> float:
    """revisitop mAP of a ranking (Q, K) over the queries that have positives."""
    return mean_over_queries(_average_precisions(_locate_positives(ranking, positives, junk)))


def mean_precision_at_k(
    ranking: np.ndarray,
    positives: Sequence[np.ndarray | Sequence[int]],
    junk: Sequence[np.ndarray | Sequence[int]] | None = None,
    ks: Sequence[int] = REVISITED_KS,
) -> dict[int, float]:
    """revisitop mP@k for each k: the mean over queries of precision at ``kq = min(max(pos), k)``."""
    located = _locate_positives(ranking, positives, junk)
    return {k: mean_over_queries(_precisions_at(located, k)) for k in _check_ks(ks)}


def recall_at_k(
    ranking: np.ndarray,
    positives: Sequence[np.ndarray | Sequence[int]],
    junk: Sequence[np.ndarray | Sequence[int]] | None = None,
    ks: Sequence[int] = PLAIN_RECALL_KS,
) -> dict[int, float]:
    """recall@k as in place recognition: the fraction of queries with a positive among the first k non-junk
    results."""
    located = _locate_positives(ranking, positives, junk)
    return {k: mean_over_queries(_hits_at(located, k)) for k in _check_ks(ks)}


def gldv2_average_precisions(
    ranking: np.ndarray,
    positives: Sequence[np.ndarray | Sequence[int]],
    max_predictions: int = GLDV2_MAX_PREDICTIONS,
) -> np.ndarray:
    """Per-query AP@max_predictions of DELF's ``MeanAveragePrecision`` (the GLDv2 retrieval metric).

    AP = sum over the first ``max_predictions`` entries i (1-based) of P(i) * rel(i), divided by
    min(number of positives, max_predictions). A repeated prediction is skipped but keeps its rank i.

    Returns:
        (Q,) AP per query, NaN for queries without positives.
    """
    if max_predictions < 1:
        raise ValueError(f"max_predictions must be at least 1, got {max_predictions}")
    located = _locate_positives(_check_ranking(ranking)[:, :max_predictions], positives, junk=None)
    precisions = (located.found_before + 1) / (located.positions + 1)
    sums = np.bincount(located.query_indices, weights=precisions, minlength=located.num_positives.size)
    expected = np.minimum(located.num_positives, max_predictions)
    return _with_nan_without_positives(sums / np.maximum(expected, 1), located)


def gldv2_mean_average_precision(
    ranking: np.ndarray,
    positives: Sequence[np.ndarray | Sequence[int]],
    max_predictions: int = GLDV2_MAX_PREDICTIONS,
) -> float:
    """GLDv2 mAP@max_predictions over the queries that have ground truth."""
    return mean_over_queries(gldv2_average_precisions(ranking, positives, max_predictions))


def revisited_ground_truth(
    benchmark: RetrievalBenchmark, setting: RevisitedSetting
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Positives and junk of every query under a Revisited setting.

    - easy: positives = easy; junk and hard images are ignored.
    - medium: positives = easy and hard; junk images are ignored.
    - hard: positives = hard; junk and easy images are ignored.
    """
    if setting == "easy":
        return (
            [truth.easy for truth in benchmark.ground_truth],
            [np.union1d(truth.junk, truth.hard) for truth in benchmark.ground_truth],
        )
    if setting == "medium":
        return (
            [truth.positives for truth in benchmark.ground_truth],
            [truth.junk for truth in benchmark.ground_truth],
        )
    if setting == "hard":
        return (
            [truth.hard for truth in benchmark.ground_truth],
            [np.union1d(truth.junk, truth.easy) for truth in benchmark.ground_truth],
        )
    raise ValueError(f"setting must be one of {REVISITED_SETTINGS}, got {setting!r}")


def _check_ranking_for(ranking: np.ndarray, benchmark: RetrievalBenchmark) -> np.ndarray:
    checked = _check_ranking(ranking)
    if checked.shape[0] != benchmark.num_queries:
        raise ValueError(
            f"ranking has {checked.shape[0]} rows but {benchmark.name} has {benchmark.num_queries} queries"
        )
    if checked.size and (checked.max() >= benchmark.num_database or checked.min() < -1):
        raise ValueError(
            f"ranking entries must lie in [-1, {benchmark.num_database}) for {benchmark.name}, "
            f"got [{checked.min()}, {checked.max()}]"
        )
    return checked


def _evaluate_revisited(ranking: np.ndarray, benchmark: RetrievalBenchmark) -> dict[str, float]:
    results: dict[str, float] = {}
    for setting in REVISITED_SETTINGS:
        positives, junk = revisited_ground_truth(benchmark, setting)
        scores = score_queries(ranking, positives, junk, ks=REVISITED_KS)
        results[f"{setting}/mAP"] = mean_over_queries(scores.average_precision)
        for k in REVISITED_KS:
            results[f"{setting}/mP@{k}"] = mean_over_queries(scores.precision_at[k])
    return results


def _evaluate_gldv2(ranking: np.ndarray, benchmark: RetrievalBenchmark) -> dict[str, float]:
    positives = [truth.easy for truth in benchmark.ground_truth]
    average_precisions = gldv2_average_precisions(ranking, positives, GLDV2_MAX_PREDICTIONS)
    usages = np.array([truth.usage for truth in benchmark.ground_truth])
    recall = recall_at_k(ranking[:, :GLDV2_MAX_PREDICTIONS], positives, ks=(GLDV2_MAX_PREDICTIONS,))
    return {
        "mAP@100": mean_over_queries(average_precisions),
        "mAP@100/public": mean_over_queries(average_precisions[usages == "Public"]),
        "mAP@100/private": mean_over_queries(average_precisions[usages == "Private"]),
        "recall@100": recall[GLDV2_MAX_PREDICTIONS],
    }


def _standard_precisions_at(located: _RankedPositives, k: int) -> np.ndarray:
    """Precision at k as usually defined: positives among the first k non-junk entries, divided by k."""
    within = located.positions < k
    counts = np.bincount(located.query_indices, weights=within, minlength=located.num_positives.size)
    return _with_nan_without_positives(counts / k, located)


def evaluate_plain_ranking(
    ranking: np.ndarray,
    positives: Sequence[np.ndarray | Sequence[int]],
    junk: Sequence[np.ndarray | Sequence[int]] | None = None,
) -> dict[str, float]:
    """The plain protocol: ``mAP`` (revisitop AP), ``mP@k`` as standard precision at k (hits in the first k
    non-junk results over k, so a query with fewer than k positives cannot reach 1), and ``recall@k``."""
    located = _locate_positives(ranking, positives, junk)
    results = {"mAP": mean_over_queries(_average_precisions(located))}
    results.update(
        {f"mP@{k}": mean_over_queries(_standard_precisions_at(located, k)) for k in PLAIN_PRECISION_KS}
    )
    results.update({f"recall@{k}": mean_over_queries(_hits_at(located, k)) for k in PLAIN_RECALL_KS})
    return results


def _evaluate_plain(ranking: np.ndarray, benchmark: RetrievalBenchmark) -> dict[str, float]:
    positives = [truth.easy for truth in benchmark.ground_truth]
    junk = [truth.junk for truth in benchmark.ground_truth]
    return evaluate_plain_ranking(ranking, positives, junk)


def evaluate_ranking(ranking: np.ndarray, benchmark: RetrievalBenchmark) -> dict[str, float]:
    """All the metrics of a benchmark's protocol, as fractions in [0, 1].

    Args:
        ranking: (Q, K) int database indices per query, best first (-1 for missing results). Revisited
            numbers comparable to published ones need full rankings (K = database size); see the module
            docstring for truncated rankings.
        benchmark: the benchmark the ranking was computed on, queries in the same order.

    Returns:
        revisited: ``{easy,medium,hard}/mAP`` and ``{easy,medium,hard}/mP@{1,5,10}``;
        gldv2: ``mAP@100``, ``mAP@100/public``, ``mAP@100/private``, ``recall@100``;
        plain: ``mAP``, ``mP@{1,5,10}``, ``recall@{1,10}``.
    """
    checked = _check_ranking_for(ranking, benchmark)
    if benchmark.protocol == "revisited":
        return _evaluate_revisited(checked, benchmark)
    if benchmark.protocol == "gldv2":
        return _evaluate_gldv2(checked, benchmark)
    return _evaluate_plain(checked, benchmark)


def leave_one_out_scores(embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Each image queries all others: positives share its label, the image itself is ignored.

    Args:
        embeddings: (N, D) L2-normalised.
        labels: (N,) landmark ids.

    Returns:
        the plain protocol's metrics (``mAP``, ``mP@k``, ``recall@k``) as fractions.
    """
    ranking = torch.argsort(embeddings @ embeddings.T, dim=1, descending=True).cpu().numpy()
    label_array = labels.cpu().numpy()
    everyone = np.arange(len(label_array))
    positives = [
        np.flatnonzero((label_array == label) & (everyone != query))
        for query, label in enumerate(label_array)
    ]
    junk = [np.array([query]) for query in everyone]
    return evaluate_plain_ranking(ranking, positives, junk)
