"""RQ4 — what does re-ranking the global top K buy, with local features or the global descriptors alone, and at
what cost per query?

    python experiments/rq4_reranking.py                          # the demo's rdemo benchmark, a few minutes
    python experiments/rq4_reranking.py benchmark=realphotos     # ../shared/realphotos, under 10 minutes
    python experiments/rq4_reranking.py ckpt_path=<checkpoint> top_ks=[100] fusion_alphas=[0.8] logger=none

The global ranking comes from ``ckpt_path`` (or, without one, the pretrained ``net``: ImageNet
EfficientNet-Lite0) with GeM at max side 512, one scale. Every query's global top K (junk, i.e. the query
itself in leave-one-out benchmarks, excluded), for each K in ``top_ks``, is re-ranked with database local
features extracted once into a cached feature store (RootSIFT, 2048 keypoints at 1024 px by default; query
features with the same settings, cropped to the query box where the benchmark has one) by each method of
``methods``: the thesis' ratio-count fusion (E5, no geometry), the number of MAGSAC inliers (fundamental matrix,
3 px), the fusion ``α·global + (1−α)·min(inliers/100, 1)`` for every α of ``fusion_alphas``, the DELG order,
global + inliers/100, the thesis' CNN patches (E7, from the global network's last feature map), the same patches
verified on their centres (global + inliers/100), and SuperGlobal (the global descriptors alone,
:mod:`retrieval.descriptor.superglobal`).

Writes ``rq4.md`` (the table), ``rq4.json`` (every metric and setting) and ``rq4.png`` into the run folder and
logs them to the configured loggers (``logger=wandb``, offline without an API key, by default).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from hydra.utils import instantiate
from matplotlib.figure import Figure
from omegaconf import DictConfig

from experiments import study_outputs
from experiments.tables import markdown_table
from retrieval.benchmark import RetrievalBenchmark
from retrieval.evaluation import BenchmarkResult, RerankedRanking, evaluate_reranking, rerank_inputs
from retrieval.local.cnn_patches import CNN_PATCH_METHOD
from retrieval.local.features import LocalExtractor, LocalFeatureExtractor
from retrieval.local.rerank import KEYPOINTS
from retrieval.reranking import RerankMethod

log = logging.getLogger("rq4")

GLOBAL_ONLY = "none (global only)"


def method_configs(methods_cfg: DictConfig, fusion_alphas: list[float]) -> dict[str, RerankMethod[Any, Any]]:
    """Every configured method by name; the fusion method (``methods.fusion``) becomes one entry per α of
    ``fusion_alphas``."""
    configs: dict[str, RerankMethod[Any, Any]] = {}
    for key, method_cfg in methods_cfg.items():
        name, config = str(key), instantiate(method_cfg)
        if name == "fusion":
            for alpha in fusion_alphas:
                configs[f"{name}_alpha{alpha:g}"] = replace(config, alpha=float(alpha))
        else:
            configs[name] = config
    return configs


@dataclass(frozen=True, eq=False)
class FeatureSource:
    """Methods that re-rank with one kind of features, the database's store and every query's features."""

    methods: dict[str, RerankMethod[Any, Any]]
    description: str
    store: Any
    query_features: list[Any]


def feature_sources(
    cfg: DictConfig,
    configs: dict[str, RerankMethod[Any, Any]],
    benchmark: RetrievalBenchmark,
    network: study_outputs.StudyNetwork,
) -> list[FeatureSource]:
    """Keypoint methods use ``cfg.local_features``; CNN-patch methods the global network's feature map;
    SuperGlobal the global descriptors of the study's ranking."""
    by_features: dict[str, dict[str, RerankMethod[Any, Any]]] = {}
    for name, config in configs.items():
        by_features.setdefault(config.features, {})[name] = config
    extractors: dict[str, LocalExtractor] = {
        KEYPOINTS: instantiate(cfg.local_features),
        CNN_PATCH_METHOD: instantiate(cfg.cnn_patches)(net=network.net, descriptor_id=network.descriptor_id),
    }
    sources = []
    for features, methods in by_features.items():
        extractor = extractors.get(features)
        query_features, store = rerank_inputs(
            benchmark,
            network.ranking,
            features,
            extractor,
            Path(cfg.cache_dir) / "feature_stores",
            cfg.num_workers,
            cfg.progress,
        )
        for method in methods.values():
            method.check_store(store)
        description = repr(extractor) if extractor is not None else f"global descriptors, {store!r}"
        sources.append(FeatureSource(methods, description, store, query_features))
    return sources


def rerank_all(
    sources: list[FeatureSource],
    benchmark: RetrievalBenchmark,
    global_result: BenchmarkResult,
    top_ks: list[int],
    progress: bool,
) -> dict[int, dict[str, RerankedRanking]]:
    """K -> method name -> its re-ranked ranking."""
    results: dict[int, dict[str, RerankedRanking]] = {}
    for top_k in top_ks:
        results[top_k] = {}
        for source in sources:
            results[top_k].update(
                evaluate_reranking(
                    benchmark,
                    global_result,
                    source.query_features,
                    source.store,
                    source.methods,
                    top_k,
                    progress,
                )
            )
    return results


def results_table(
    configs: dict[str, RerankMethod[Any, Any]],
    results: dict[int, dict[str, RerankedRanking]],
    global_metrics: dict[str, float],
    metric_names: tuple[str, str],
) -> tuple[list[str], list[list[str]]]:
    """Rows: global only, then each method; per K: the two metrics and ms per query."""
    header = ["method"]
    for top_k in results:
        header += [f"K={top_k} {metric_names[0]}", f"K={top_k} {metric_names[1]}", f"K={top_k} ms/query"]
    rows = [
        [GLOBAL_ONLY]
        + [
            cell
            for _ in results
            for cell in (*map(study_outputs.percent, (global_metrics[m] for m in metric_names)), "—")
        ]
    ]
    for name, config in configs.items():
        row = [config.describe()]
        for by_method in results.values():
            reranked = by_method[name]
            row += [
                study_outputs.percent(reranked.metrics[metric_names[0]]),
                study_outputs.percent(reranked.metrics[metric_names[1]]),
            ]
            row.append(f"{reranked.median_ms_per_query:,.1f}")
        rows.append(row)
    return header, rows


def plot(
    configs: dict[str, RerankMethod[Any, Any]],
    results: dict[int, dict[str, RerankedRanking]],
    global_metric: float,
    metric: str,
) -> Figure:
    """The metric and the time per query against K, one line per method."""
    figure, (accuracy, speed) = plt.subplots(1, 2, figsize=(13, 5))
    top_ks = list(results)
    for name, config in configs.items():
        label = config.describe()
        accuracy.plot(
            top_ks, [100 * results[k][name].metrics[metric] for k in top_ks], marker="o", label=label
        )
        speed.plot(top_ks, [results[k][name].median_ms_per_query for k in top_ks], marker="o", label=label)
    accuracy.axhline(100 * global_metric, color="black", linestyle="--", label=GLOBAL_ONLY)
    accuracy.set(
        xlabel="K (candidates re-ranked)", ylabel=f"{metric} (%)", title=f"{metric} after re-ranking"
    )
    speed.set(xlabel="K (candidates re-ranked)", ylabel="ms per query", yscale="log", title="re-ranking time")
    handles, labels = accuracy.get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=8)
    figure.tight_layout()
    return figure


def run(cfg: DictConfig) -> dict[str, Any]:
    """The study: re-rank, score, write ``rq4.{md,json,png}`` into ``cfg.paths.output_dir`` and log them."""
    benchmark = study_outputs.load_study_benchmark(cfg)
    network = study_outputs.study_network(cfg, benchmark, cfg.ckpt_path)
    configs = method_configs(cfg.methods, list(cfg.fusion_alphas))
    sources = feature_sources(cfg, configs, benchmark, network)
    log.info("local features of the database and the queries ready")
    results = rerank_all(sources, benchmark, network.ranking, list(cfg.top_ks), cfg.progress)
    features_used = {name: source.description for source in sources for name in source.methods}

    names = study_outputs.headline_names(benchmark)
    metric_names = (names[0], names[-1])
    header, rows = results_table(configs, results, network.ranking.metrics, metric_names)
    local_features: LocalFeatureExtractor = instantiate(cfg.local_features)
    markdown = "\n".join(
        [
            f"# RQ4 — re-ranking on {benchmark.name}",
            "",
            f"{benchmark.num_queries} queries, {benchmark.num_database} database images. Global: "
            f"{network.description}, GeM, max side {cfg.extraction.max_side}, scales "
            f"{list(cfg.extraction.scales)}. Local features: {local_features!r}; CNN patches at max side "
            f"{cfg.cnn_patches.max_side}. Re-ranked: the global top K without junk. ms/query: the median "
            "over queries of one `rerank()` call (store reads, matching, verification, scoring; methods "
            "sharing their matching and verification share it) on this machine's CPU, shared with other "
            "work; benchmarks/rerank.py measures speed on its own.",
            "",
            markdown_table(header, rows),
        ]
    )
    report: dict[str, Any] = study_outputs.study_report(
        cfg,
        benchmark,
        network,
        ["ckpt_path", "local_features", "cnn_patches", "top_ks"],
    ) | {
        "global": network.ranking.metrics,
        "methods": {
            name: {
                "label": config.describe(),
                "config": asdict(config),  # type: ignore[call-overload]  # every method is a dataclass
                "features": features_used[name],
                "top_k": {
                    str(top_k): {
                        "metrics": by_method[name].metrics,
                        "median_ms_per_query": by_method[name].median_ms_per_query,
                    }
                    for top_k, by_method in results.items()
                },
            }
            for name, config in configs.items()
        },
    }
    figure = plot(configs, results, network.ranking.metrics[metric_names[0]], metric_names[0])
    metrics = {f"rq4/global/{m}": network.ranking.metrics[m] for m in names}
    for top_k, by_method in results.items():
        for name, reranked in by_method.items():
            metrics.update({f"rq4/{name}/K{top_k}/{m}": reranked.metrics[m] for m in names})
            metrics[f"rq4/{name}/K{top_k}/median_ms_per_query"] = reranked.median_ms_per_query
    return study_outputs.publish(cfg, "rq4", markdown, report, figure, metrics, (header, rows))


main = study_outputs.study_main("rq4", run)


if __name__ == "__main__":
    main()
