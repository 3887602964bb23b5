"""The evaluation pipeline of one benchmark: extract → (whiten) → (DBA) → search → (αQE) → score.

Pure torch/numpy; the Lightning callback and ``evaluate.py`` are thin wrappers around :func:`evaluate_benchmark`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from retrieval.benchmark import RetrievalBenchmark
from retrieval.extract import ExtractionSettings, extract_cached
from retrieval.index import exact_search
from retrieval.metrics import evaluate_ranking
from retrieval.network import GlobalDescriptorNet
from retrieval.query_expansion import alpha_query_expansion, database_side_augmentation
from retrieval.visualize import Verdict
from retrieval.whitening import Whitening

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PostProcessing:
    """Optional steps after extraction.

    Args:
        query_expansion_k: αQE over the top-k (0: off). alpha: the α of αQE and DBA.
        dba_k: database-side augmentation over the top-k (0: off).
        top_k: ranking depth scored; ``None`` ranks the whole database (the Revisited protocol's choice).
    """

    query_expansion_k: int = 0
    dba_k: int = 0
    alpha: float = 3.0
    top_k: int | None = None

    def __post_init__(self) -> None:
        if self.query_expansion_k < 0 or self.dba_k < 0:
            raise ValueError("query_expansion_k and dba_k must be non-negative")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be positive or None, got {self.top_k}")


@dataclass(frozen=True)
class BenchmarkResult:
    """Metrics (fractions) and the ranking (Q, K) with its scores (Q, K)."""

    metrics: dict[str, float]
    ranking: np.ndarray
    scores: np.ndarray


def evaluate_benchmark(
    net: GlobalDescriptorNet,
    benchmark: RetrievalBenchmark,
    settings: ExtractionSettings,
    descriptor_id: str,
    post: PostProcessing = PostProcessing(),
    whitening: Whitening | None = None,
    cache_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> BenchmarkResult:
    """Score ``net`` on ``benchmark``. Raises ValueError if any benchmark image is unreadable: a benchmark
    with holes gives numbers that cannot be compared with anyone's."""
    database, database_ok = extract_cached(
        net,
        benchmark.database_paths,
        descriptor_id,
        cache_dir,
        settings,
        None,
        device,
        progress,
        f"{benchmark.name}: database",
    )
    queries, queries_ok = extract_cached(
        net,
        benchmark.query_paths,
        descriptor_id,
        cache_dir,
        settings,
        benchmark.query_boxes,
        device,
        progress,
        f"{benchmark.name}: queries",
    )
    unreadable = [str(p) for p, ok in zip(benchmark.database_paths, database_ok, strict=True) if not ok]
    unreadable += [str(p) for p, ok in zip(benchmark.query_paths, queries_ok, strict=True) if not ok]
    if unreadable:
        raise ValueError(f"{benchmark.name}: {len(unreadable)} unreadable images, e.g. {unreadable[:3]}")
    if whitening is not None:
        database, queries = whitening.apply(database), whitening.apply(queries)
    return rank_and_score(torch.from_numpy(queries), torch.from_numpy(database), benchmark, post)


def rank_and_score(
    queries: torch.Tensor,
    database: torch.Tensor,
    benchmark: RetrievalBenchmark,
    post: PostProcessing = PostProcessing(),
) -> BenchmarkResult:
    """Search ``queries`` (Q, D) in ``database`` (N, D), apply DBA/αQE, and score the ranking."""
    if queries.shape[1] != database.shape[1]:
        raise ValueError(
            f"query dimension {queries.shape[1]} differs from database dimension {database.shape[1]}"
        )
    depth = len(database) if post.top_k is None else min(post.top_k, len(database))
    if post.dba_k:
        database = database_side_augmentation(database, k=min(post.dba_k, len(database)), alpha=post.alpha)
    scores, ranking = exact_search(queries, database, depth)
    if post.query_expansion_k:
        queries = alpha_query_expansion(
            queries, database, ranking, k=min(post.query_expansion_k, depth), alpha=post.alpha
        )
        scores, ranking = exact_search(queries, database, depth)
    ranking_array = ranking.cpu().numpy()
    metrics = evaluate_ranking(ranking_array, benchmark)
    return BenchmarkResult(metrics=metrics, ranking=ranking_array, scores=scores.cpu().numpy())


def verdicts(benchmark: RetrievalBenchmark, query_index: int, result_indices: np.ndarray) -> list[Verdict]:
    """Positive / negative / junk for each result of one query (for pictures)."""
    truth = benchmark.ground_truth[query_index]
    positives, junk = set(truth.positives.tolist()), set(truth.junk.tolist())
    return [
        "positive" if i in positives else "junk" if i in junk else "negative" for i in result_indices.tolist()
    ]
