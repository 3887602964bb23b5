"""Calibrate the "same place" verdict of a collection:  python calibrate.py benchmarks=realphotos benchmark=realphotos

Verifies every benchmark query against its global top K with the collection's network, local features and the
``rerank`` setting, and writes the smallest inlier count that at most ``max_false_accept_rate`` of the
different-place pairs reach to ``<collection_dir>/verdict.json``; ``search.py``, ``serve.py`` and
``SearchEngine`` read it (uncalibrated settings use the default of 20 inliers).
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from experiments.app import app_main
from retrieval.descriptor.network import resolve_device
from retrieval.evaluation import (
    benchmark_feature_store,
    evaluate_benchmark,
    query_local_features,
    verified_pair_inliers,
)
from retrieval.local.verdict import VerdictThreshold, calibrate_threshold
from retrieval.search_engine import SearchEngine

log = logging.getLogger("calibrate")


def calibrate(cfg: DictConfig) -> VerdictThreshold:
    """Measure, calibrate and record the threshold of ``cfg.rerank`` on ``cfg.benchmark``."""
    if cfg.benchmark not in cfg.benchmarks:
        raise ValueError(f"benchmark={cfg.benchmark!r} is not one of benchmarks: {sorted(cfg.benchmarks)}")
    engine = SearchEngine.open(cfg.collection_dir, device=str(resolve_device(cfg.device)))
    method = instantiate(cfg.rerank)
    key = engine.verdict_key(method) if method is not None else None
    if key is None or engine.local_extractor is None or engine.store is None:
        raise ValueError(
            "calibration needs a re-ranking that verifies geometry (rerank=compact, inliers, global_plus_inliers, …) and "
            "a collection built with local features"
        )
    benchmark = instantiate(cfg.benchmarks[cfg.benchmark]).load()
    global_result = evaluate_benchmark(
        engine.net,
        benchmark,
        engine.settings,
        engine.manifest["descriptor_id"],
        cache_dir=Path(cfg.cache_dir) / "descriptors",
        device=engine.device,
        progress=cfg.progress,
    )
    store = benchmark_feature_store(
        benchmark,
        engine.local_extractor,
        Path(cfg.cache_dir) / "feature_stores",
        cfg.num_workers,
        cfg.progress,
        codec=engine.store.codec if engine.store.metadata.codec is not None else None,
    )
    positives, negatives = verified_pair_inliers(
        benchmark,
        global_result,
        query_local_features(benchmark, engine.local_extractor, store),
        store,
        method,
        cfg.top_k,
        cfg.progress,
    )
    threshold = calibrate_threshold(positives, negatives, benchmark.name, cfg.max_false_accept_rate)
    engine.verdicts.set(key, threshold)
    print(
        f"{method.describe()}: same place at {threshold.describe()}; different-place pairs: max "
        f"{int(negatives.max())} inliers; written to {engine.verdicts.path}"
    )
    return threshold


@app_main("calibrate")
def main(cfg: DictConfig) -> None:
    calibrate(cfg)


if __name__ == "__main__":
    main()
