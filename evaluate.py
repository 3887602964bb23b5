"""Evaluate a checkpoint (or a pretrained backbone) on retrieval benchmarks:

    python evaluate.py ckpt_path=outputs/train/runs/<time>/checkpoints/last.ckpt [benchmarks=...] [post.query_expansion_k=2]
    python evaluate.py benchmarks=realphotos rerank=global_plus_inliers   # before and after re-ranking the top 100

Writes ``results.json`` and ``results.md`` into the run folder and prints the table. With ``rerank=``, each
benchmark's entry is ``{"global": metrics, "reranked": metrics + ms_per_query + bytes_per_image}``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from datamodules.formats.gldv2 import load_gldv2_train
from experiments.app import app_main
from experiments.tables import metrics_table, reranked_table
from retrieval.descriptor.extract import ExtractionSettings, extract_cached
from retrieval.descriptor.network import GlobalDescriptorNet, load_network, resolve_device
from retrieval.descriptor.whitening import Whitening, learn_lw_whitening, learn_pca_whitening
from retrieval.evaluation import evaluate_benchmark, rerank_benchmark
from retrieval.local.rerank import KEYPOINTS
from retrieval.reranking import GLOBAL_DESCRIPTORS, RerankMethod

log = logging.getLogger("evaluate")


def learn_whitening(
    cfg: DictConfig,
    net: GlobalDescriptorNet,
    descriptor_id: str,
    settings: ExtractionSettings,
    device: torch.device,
) -> Whitening | None:
    """PCA or learned (Lw) whitening fitted on GLDv2-format training images, or loaded from ``whitening.path``."""
    options = cfg.whitening
    if options.path:
        return Whitening.load(options.path)
    if not options.method:
        return None
    if options.method not in ("pca", "lw"):
        raise ValueError(f"whitening.method must be null, pca or lw; got {options.method!r}")
    images, _ = load_gldv2_train(
        options.data_root, clean=True, max_images_per_landmark=options.max_images_per_landmark
    )
    descriptors, readable = extract_cached(
        net, images.paths, descriptor_id, cfg.cache_dir, settings, device=device, description="whitening data"
    )
    descriptors, labels = descriptors[readable], images.labels[readable]
    if options.method == "pca":
        whitening = learn_pca_whitening(descriptors, dim=options.dim)
    else:
        queries, positives = [], []
        for landmark in np.unique(labels):
            members = np.flatnonzero(labels == landmark)
            queries += members[:-1].tolist()
            positives += members[1:].tolist()
        whitening = learn_lw_whitening(descriptors, queries, positives, dim=options.dim)
    log.info(
        "learned %s whitening %d → %d on %d images",
        options.method,
        whitening.input_dim,
        whitening.output_dim,
        len(descriptors),
    )
    return whitening


def format_report(results: dict[str, Any], cfg: DictConfig, method: RerankMethod | None) -> str:
    """``results.md``: a header naming the model, checkpoint and settings, then a table per benchmark (percent)."""
    whitening = cfg.whitening.path or cfg.whitening.method or "none"
    model = (
        f"checkpoint `{cfg.ckpt_path}`"
        if cfg.ckpt_path
        else f"pretrained `{cfg.net.backbone}`, {cfg.net.pooling} pooling (no checkpoint)"
    )
    lines = [
        f"# Evaluation, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"- model: {model}",
        f"- extraction: max side {cfg.extraction.max_side}, scales {list(cfg.extraction.scales)}",
        f"- post-processing: query expansion k={cfg.post.query_expansion_k}, DBA k={cfg.post.dba_k}, "
        f"top {cfg.post.top_k or 'all'}; whitening: {whitening}",
        "",
    ]
    if method is not None:
        lines.insert(-1, f"- re-ranking: the top {cfg.rerank_top_k} by {method.describe()}")
    for name, metrics in results.items():
        if "reranked" in metrics:
            table = reranked_table(metrics["global"], metrics["reranked"])
        else:
            table = metrics_table(metrics)
        lines += [f"## {name}", "", table, ""]
    return "\n".join(lines)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    device = resolve_device(cfg.device)
    net, descriptor_id = load_network(cfg.ckpt_path, lambda: instantiate(cfg.net))
    net.to(device)
    settings: ExtractionSettings = instantiate(cfg.extraction)
    post = instantiate(cfg.post)
    whitening = learn_whitening(cfg, net, descriptor_id, settings, device)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if whitening is not None:
        whitening.save(output_dir / "whitening.npz")
    method = instantiate(cfg.rerank) if cfg.get("rerank") else None
    if method is not None and method.features not in (KEYPOINTS, GLOBAL_DESCRIPTORS):
        raise ValueError(
            f"evaluate.py re-ranks with keypoint features or global descriptors; rerank={method.describe()!r} "
            f"needs {method.features} features"
        )
    extractor = instantiate(cfg.local_features)
    results: dict[str, Any] = {}
    for name, source_cfg in cfg.benchmarks.items():
        benchmark = instantiate(source_cfg).load()
        log.info("%s: %d queries, %d database images", name, benchmark.num_queries, benchmark.num_database)
        result = evaluate_benchmark(
            net, benchmark, settings, descriptor_id, post, whitening, cfg.cache_dir, device
        )
        if method is None:
            results[name] = result.metrics
            continue
        reranked = rerank_benchmark(
            benchmark, result, extractor, method, cfg.rerank_top_k, cfg.feature_cache_dir, cfg.num_workers
        )
        results[name] = {"global": result.metrics, "reranked": reranked}
    table = format_report(results, cfg, method)
    report = {
        "descriptor_id": descriptor_id,
        "settings": OmegaConf.to_container(cfg, resolve=True),
        "results": results,
    }
    (output_dir / "results.json").write_text(json.dumps(report, indent=2))
    (output_dir / "results.md").write_text(table + "\n")
    print(table)
    log.info("results written to %s", output_dir)
    return report


@app_main("evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
