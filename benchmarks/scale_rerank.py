"""Re-ranking latency at collection scale, for ``benchmarks/scale.py``: the compact store of the shared real
photos (``benchmarks/rerank.py`` builds it under ``outputs/feature_stores/``) replicated to N images, and every
real query's global top 100 re-ranked (``rerank=compact``) with each candidate read from a random replica, so
that the reads spread over the whole N-image store as a real collection's would, while the matching and
verification work stay those of real photos (26 ms median on the 187-image store).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import REALPHOTOS, REPO_ROOT
from benchmarks.rerank import (
    COMPACT,
    COMPACT_EXTRACTOR,
    EXTRACTOR,
    candidates_of,
    global_descriptors,
    global_scores,
)
from datamodules.formats.folders import load_folder
from retrieval.local.features import LocalFeatures
from retrieval.local.store import FeatureStore, FeatureStoreWriter, build_feature_store
from retrieval.reranking import rerank

PASSES = 3  # every query re-ranked this many times, with other replicas each time


@dataclass
class RealQueries:
    """The real photos' compact store, their query features and global top 100s."""

    store: FeatureStore
    query_features: list[LocalFeatures]
    candidates: list[np.ndarray]
    scores: np.ndarray

    @classmethod
    def load(cls) -> RealQueries | None:
        if not REALPHOTOS.is_dir():
            return None
        benchmark = load_folder(REALPHOTOS)
        images = dict(zip(benchmark.database_ids, benchmark.database_paths, strict=True))
        stores = REPO_ROOT / "outputs" / "feature_stores"
        compact = build_feature_store(stores / f"{benchmark.name}-compact-512", images, COMPACT_EXTRACTOR, 2)
        full = build_feature_store(stores / f"{benchmark.name}-rootsift-2048", images, EXTRACTOR, 2)
        descriptors = global_descriptors(benchmark, REPO_ROOT / "outputs" / "descriptor_cache")
        scores = global_scores(benchmark, descriptors)
        queries = [full[query_id] for query_id in benchmark.query_ids]
        return cls(compact, queries, candidates_of(benchmark, scores), scores)


def rerank_latencies_ms(real: RealQueries, num_images: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """Wall milliseconds per query to re-rank the top 100 from an N-image replica store, and the seconds the
    store took to write. Image ``i`` of the replica store holds real image ``i mod 187``."""
    cv2.setNumThreads(1)
    real_ids = real.store.ids
    generator = np.random.default_rng(seed)
    config = COMPACT.config()
    latencies = []
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        root = Path(folder) / "store"
        with FeatureStoreWriter(root, real.store.metadata, 512, real.store.codec) as writer:
            for image in range(num_images):
                writer.add(str(image), real.store[real_ids[image % len(real_ids)]])
        write_s = time.perf_counter() - start
        store = FeatureStore(root)
        replicas = num_images // len(real_ids)
        for _ in range(PASSES):
            for query, candidates in enumerate(real.candidates):
                ids = [str(index + len(real_ids) * int(generator.integers(replicas))) for index in candidates]
                start = time.perf_counter()
                rerank(
                    real.query_features[query], ids, real.scores[query, candidates], store, config, top_k=100
                )
                latencies.append(1000 * (time.perf_counter() - start))
    return np.array(latencies), write_s
