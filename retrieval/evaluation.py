"""The evaluation pipeline of one benchmark: extract → (whiten) → (DBA) → search → (αQE) → score, and its
re-ranking peer: the global top K of every query re-ranked with local features → score.

- :func:`evaluate_benchmark` scores a global network; the Lightning callback and ``evaluate.py`` wrap it.
- :func:`benchmark_feature_store` extracts the local features of a benchmark's database once into a cached
  :class:`~retrieval.local.store.FeatureStore`; :func:`query_local_features` gives every query's features
  with the store's settings, cropped to its box where the benchmark has one (Revisited).
- :func:`evaluate_reranking` re-ranks every query's global top K with several methods at once, gathering the
  evidence once for methods that share it (:meth:`~retrieval.reranking.RerankMethod.work_key`), and scores them;
  :func:`rerank_inputs` gives a method its query features and database store (local features, or the global
  descriptors themselves for SuperGlobal).

Pure torch/numpy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retrieval.benchmark import RetrievalBenchmark
from retrieval.descriptor.descriptor_table import DescriptorTable
from retrieval.descriptor.extract import ExtractionSettings, extract_cached, files_fingerprint
from retrieval.descriptor.index import exact_search
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.descriptor.query_expansion import alpha_query_expansion, database_side_augmentation
from retrieval.descriptor.superglobal import SuperGlobalRerank, superglobal_rerank
from retrieval.descriptor.whitening import Whitening
from retrieval.local.features import LocalExtractor, LocalFeatures
from retrieval.local.hamming import HammingEmbedding
from retrieval.local.store import FeatureStore, StoreMetadata, build_feature_store
from retrieval.metrics import evaluate_ranking
from retrieval.progress import stage
from retrieval.reranking import GLOBAL_DESCRIPTORS, RerankMethod

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PostProcessing:
    """Optional steps after extraction.

    Args:
        query_expansion_k: αQE over the top-k (0: off). alpha: the α of αQE and DBA.
        dba_k: database-side augmentation over the top-k (0: off).
        top_k: ranking depth scored; ``None`` ranks the whole database (the Revisited protocol's choice).
        superglobal: SuperGlobal re-ranking of the global top M after the search (:mod:`retrieval.descriptor.superglobal`).
    """

    query_expansion_k: int = 0
    dba_k: int = 0
    alpha: float = 3.0
    top_k: int | None = None
    superglobal: SuperGlobalRerank | None = None

    def __post_init__(self) -> None:
        if self.query_expansion_k < 0 or self.dba_k < 0:
            raise ValueError("query_expansion_k and dba_k must be non-negative")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be positive or None, got {self.top_k}")


@dataclass(frozen=True, eq=False)
class BenchmarkResult:
    """Metrics (fractions), the ranking (Q, K) with its scores (Q, K), and the descriptors it was ranked with
    (after whitening, DBA and αQE): queries (Q, D), database (N, D) float32."""

    metrics: dict[str, float]
    ranking: np.ndarray
    scores: np.ndarray
    queries: np.ndarray
    database: np.ndarray


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
    """Score ``net`` on ``benchmark``. Every image is extracted once: a query without a crop box that is a
    database image (leave-one-out benchmarks) reuses its database descriptor. Raises ValueError if any benchmark
    image is unreadable: a benchmark with holes gives numbers that cannot be compared with anyone's."""
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
    row_of = {path: row for row, path in enumerate(benchmark.database_paths)}
    reused = [
        index
        for index, (path, box) in enumerate(zip(benchmark.query_paths, benchmark.query_boxes, strict=True))
        if box is None and path in row_of
    ]
    queries = np.zeros((benchmark.num_queries, database.shape[1]), dtype=np.float32)
    queries_ok = np.zeros(benchmark.num_queries, dtype=bool)
    rows = [row_of[benchmark.query_paths[index]] for index in reused]
    queries[reused], queries_ok[reused] = database[rows], database_ok[rows]
    extracted = sorted(set(range(benchmark.num_queries)) - set(reused))
    if extracted:
        queries[extracted], queries_ok[extracted] = extract_cached(
            net,
            [benchmark.query_paths[index] for index in extracted],
            descriptor_id,
            cache_dir,
            settings,
            [benchmark.query_boxes[index] for index in extracted],
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
    if post.superglobal is not None and depth >= 2:
        reranked_scores, ranking = superglobal_rerank(queries, database, ranking, post.superglobal)
        scores = scores.clone()
        scores[:, : reranked_scores.shape[1]] = reranked_scores
    ranking_array = ranking.cpu().numpy()
    metrics = evaluate_ranking(ranking_array, benchmark)
    return BenchmarkResult(
        metrics=metrics,
        ranking=ranking_array,
        scores=scores.cpu().numpy(),
        queries=queries.float().cpu().numpy(),
        database=database.float().cpu().numpy(),
    )


def _store_folder_name(
    benchmark: RetrievalBenchmark, extractor: LocalExtractor, codec: HammingEmbedding | None
) -> str:
    """``<benchmark>_<method>_<keypoints>kp_<side>px_<hash>``: the hash covers the database files (names, sizes
    and modification times), the extractor's settings, the weights behind its descriptors and the given
    Hamming embedding."""
    metadata = StoreMetadata.from_extractor(extractor)
    content = {
        "database": files_fingerprint(benchmark.database_paths),
        "metadata": asdict(metadata),
        "network": extractor.descriptor_id,
        "codec": None if codec is None else codec.fingerprint,
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
    return f"{benchmark.name}_{metadata.method}_{metadata.max_keypoints}kp_{metadata.max_side}px_{digest}"


def benchmark_feature_store(
    benchmark: RetrievalBenchmark,
    extractor: LocalExtractor,
    cache_dir: str | Path,
    num_workers: int = 0,
    progress: bool = True,
    codec: HammingEmbedding | None = None,
) -> FeatureStore:
    """The local features of the benchmark's database, extracted once into a folder of ``cache_dir`` named
    after the benchmark, the settings and a fingerprint of the database files, and read from there afterwards
    (a partly built store is resumed; rewritten files give a new store). Store ids are the benchmark's
    database ids.

    Args:
        num_workers: extraction processes (for extractors that can run in workers).
        codec: the Hamming embedding of a compact extractor's store (e.g. a collection's); None trains one on
            the benchmark's database.
    """
    root = Path(cache_dir) / _store_folder_name(benchmark, extractor, codec)
    images = dict(zip(benchmark.database_ids, benchmark.database_paths, strict=True))
    return build_feature_store(
        root, images, extractor, num_workers=num_workers, progress=progress, codec=codec
    )


def query_local_features(
    benchmark: RetrievalBenchmark, extractor: LocalExtractor, store: FeatureStore
) -> list[LocalFeatures]:
    """Local features of every query with the settings of the database ``store``.

    A query without a crop box whose file is a database image (leave-one-out benchmarks) is read from the
    store: the same extractor already ran on the same file. Other queries, and every query of a compact store
    (which keeps codes, not the query's full features), are extracted, cropped to their box.

    Raises:
        ValueError: the store was built with other settings than ``extractor``'s.
        retrieval.images.ImageLoadError: a query image cannot be read.
    """
    differences = store.metadata.mismatches(StoreMetadata.from_extractor(extractor))
    if differences:
        raise ValueError(f"the store holds other features than the extractor gives: {'; '.join(differences)}")
    database_id_of = {
        path: image_id
        for image_id, path in zip(benchmark.database_ids, benchmark.database_paths, strict=True)
    }
    features = []
    reuse_store = store.metadata.codec is None
    for path, box in zip(benchmark.query_paths, benchmark.query_boxes, strict=True):
        if reuse_store and box is None and path in database_id_of and database_id_of[path] in store:
            features.append(store.get(database_id_of[path]))
        else:
            features.append(extractor.from_path(path, box))
    return features


@dataclass(frozen=True, eq=False)
class RerankedRanking:
    """A benchmark's global ranking with every query's top K re-ranked.

    Attributes:
        ranking: (Q, N) database indices per query, best first: the re-ranked top K, then the rest of the
            global ranking in its order.
        metrics: the benchmark protocol's metrics of ``ranking`` (fractions).
        median_ms_per_query: median over queries of the wall time of gathering the evidence (store reads,
            matching, verification; shared by the methods that share it) and scoring. The median, because
            other processes on a shared machine slow some calls down.
    """

    ranking: np.ndarray
    metrics: dict[str, float]
    median_ms_per_query: float


def shortlist_positions(ranking_row: np.ndarray, junk: np.ndarray, top_k: int) -> np.ndarray:
    """Positions (K,) in one query's ranking (N,) of its first ``top_k`` entries that are not junk.

    Junk (the query itself in leave-one-out benchmarks) is removed from the ranking before it is scored, so a
    junk candidate would only take the place of one that counts.
    """
    if top_k <= 0:
        raise ValueError(f"top_k must be positive, got {top_k}")
    return np.flatnonzero(~np.isin(ranking_row, junk))[:top_k]


def evaluate_reranking(
    benchmark: RetrievalBenchmark,
    global_result: BenchmarkResult,
    query_features: Sequence[Any],
    store: Any,
    methods: Mapping[str, RerankMethod[Any, Any]],
    top_k: int,
    progress: bool = False,
) -> dict[str, RerankedRanking]:
    """Re-rank every query's global top ``top_k`` (junk excluded) with each method of ``methods``.

    Methods with the same :meth:`~retrieval.reranking.RerankMethod.work_key` (e.g. inliers, fusion at any alpha,
    DELG with the same matching and verification) gather the evidence once per query, with the first of them,
    and each scores it.

    Args:
        benchmark: the benchmark; store ids are its database ids.
        global_result: its global ranking (Q, N) and scores (Q, N), best first.
        query_features: every query's features, with the store's settings (:func:`rerank_inputs`).
        store: the database's features.
        methods: method name -> method.
        top_k: candidates re-ranked per query.
        progress: show a bar per group of methods that share their evidence (the time is logged either way).

    Returns:
        method name -> the re-ranked ranking, its metrics and its time per query.
    """
    if len(query_features) != benchmark.num_queries:
        raise ValueError(f"{len(query_features)} query features for {benchmark.num_queries} queries")
    if global_result.ranking.shape[0] != benchmark.num_queries:
        raise ValueError(
            f"the global ranking has {global_result.ranking.shape[0]} rows "
            f"for {benchmark.num_queries} queries"
        )
    groups: dict[Hashable, list[str]] = {}
    for name, method in methods.items():
        groups.setdefault(method.work_key(), []).append(name)
    rankings = {name: np.empty_like(global_result.ranking) for name in methods}
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    for names in groups.values():
        with stage(
            f"{benchmark.name}: re-ranking the top {top_k} ({', '.join(names)})",
            len(query_features),
            unit="queries",
            enabled=progress,
        ) as bar:
            for query, features in enumerate(query_features):
                row = global_result.ranking[query]
                positions = shortlist_positions(row, benchmark.ground_truth[query].junk, top_k)
                candidates = row[positions]
                global_scores = global_result.scores[query, positions].astype(np.float64)
                rest = np.delete(row, positions)
                start = time.perf_counter()
                evidence = methods[names[0]].gather(
                    features, [benchmark.database_ids[index] for index in candidates], store
                )
                gathered = time.perf_counter() - start
                for name in names:
                    start = time.perf_counter()
                    order = np.argsort(-methods[name].score(global_scores, evidence), kind="stable")
                    seconds[name].append(gathered + time.perf_counter() - start)
                    rankings[name][query] = np.concatenate((candidates[order], rest))
                bar.update(1)
    return {
        name: RerankedRanking(
            ranking=rankings[name],
            metrics=evaluate_ranking(rankings[name], benchmark),
            median_ms_per_query=1000 * float(np.median(seconds[name])) if seconds[name] else float("nan"),
        )
        for name in methods
    }


def verified_pair_inliers(
    benchmark: RetrievalBenchmark,
    global_result: BenchmarkResult,
    query_features: Sequence[LocalFeatures],
    store: FeatureStore,
    method: RerankMethod[LocalFeatures, FeatureStore],
    top_k: int,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The verified inliers of every query with each of its global ``top_k`` candidates (junk excluded), as the
    search re-ranks them: (P,) over same-place pairs (easy or hard positives) and (N,) over different-place
    pairs — the measurements a same-place threshold is calibrated on."""
    if method.verification_key() is None:
        raise ValueError(f"{method.describe()!r} verifies no geometry: it counts no inliers")
    positives: list[np.ndarray] = []
    negatives: list[np.ndarray] = []
    with stage(
        f"{benchmark.name}: verifying the top {top_k}", len(query_features), "queries", progress
    ) as bar:
        for query, features in enumerate(query_features):
            row = global_result.ranking[query]
            candidates = row[shortlist_positions(row, benchmark.ground_truth[query].junk, top_k)]
            evidence = method.gather(features, [benchmark.database_ids[index] for index in candidates], store)
            truth = benchmark.ground_truth[query]
            same_place = np.isin(candidates, np.union1d(truth.easy, truth.hard))
            positives.append(evidence.num_inliers[same_place])
            negatives.append(evidence.num_inliers[~same_place])
            bar.update(1)
    return np.concatenate(positives).astype(np.int64), np.concatenate(negatives).astype(np.int64)


def rerank_inputs(
    benchmark: RetrievalBenchmark,
    global_result: BenchmarkResult,
    features: str,
    extractor: LocalExtractor | None,
    cache_dir: str | Path,
    num_workers: int = 0,
    progress: bool = True,
) -> tuple[list[Any], Any]:
    """Every query's features and the database's store for methods that read ``features``
    (:attr:`RerankMethod.features`): for global descriptors, the rows of ``global_result`` and a
    :class:`DescriptorTable` of the database's; for local features, ``extractor``'s (the database's extracted once
    into ``cache_dir``, :func:`benchmark_feature_store`)."""
    if features == GLOBAL_DESCRIPTORS:
        return list(global_result.queries), DescriptorTable(benchmark.database_ids, global_result.database)
    if extractor is None:
        raise ValueError(f"re-ranking with {features} features needs their extractor")
    store = benchmark_feature_store(benchmark, extractor, cache_dir, num_workers, progress)
    return query_local_features(benchmark, extractor, store), store


def rerank_benchmark(
    benchmark: RetrievalBenchmark,
    global_result: BenchmarkResult,
    extractor: LocalExtractor,
    method: RerankMethod[Any, Any],
    top_k: int,
    cache_dir: str | Path,
    num_workers: int = 0,
    progress: bool = True,
) -> dict[str, float]:
    """The benchmark's metrics after re-ranking every query's global top ``top_k`` with ``method``, plus
    ``ms_per_query`` (median) and ``bytes_per_image`` of what the method reads per database image
    (:func:`rerank_inputs`)."""
    query_features, store = rerank_inputs(
        benchmark, global_result, method.features, extractor, cache_dir, num_workers, progress
    )
    method.check_store(store)
    reranked = evaluate_reranking(
        benchmark, global_result, query_features, store, {"reranked": method}, top_k, progress
    )["reranked"]
    return {
        **reranked.metrics,
        "ms_per_query": reranked.median_ms_per_query,
        "bytes_per_image": store.bytes_per_image(),
    }
