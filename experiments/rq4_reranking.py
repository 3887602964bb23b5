"""RQ4 — what does re-ranking the global top K with local features buy, and at what cost per query?

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
global + inliers/100, and the thesis' CNN patches (E7, from the global network's last feature map).

Writes ``rq4.md`` (the table), ``rq4.json`` (every metric and setting) and ``rq4.png`` into the run folder and
logs them to the configured loggers (``logger=wandb``, offline without an API key, by default).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra
import matplotlib.pyplot as plt
from hydra.utils import instantiate
from matplotlib.figure import Figure
from omegaconf import DictConfig

from experiments.study_outputs import (
    finishing_wandb,
    global_ranking,
    headline_names,
    load_global_network,
    load_study_benchmark,
    log_results,
    percent,
    settings_of,
    write_results,
)
from retrieval.benchmark import RetrievalBenchmark
from retrieval.evaluation import BenchmarkResult
from retrieval.feature_store import FeatureStore
from retrieval.local_features import LocalFeatureExtractor, LocalFeatures
from retrieval.network import GlobalDescriptorNet, resolve_device
from retrieval.rerank import (
    CnnPatchRerank,
    DelgRerank,
    FusionRerank,
    GlobalPlusInliersRerank,
    InliersRerank,
    RatioCountRerank,
    RerankConfig,
)
from retrieval.studies import (
    CnnPatchExtractor,
    LocalExtractor,
    RerankedRanking,
    database_feature_store,
    markdown_table,
    query_local_features,
    rerank_benchmark,
)

log = logging.getLogger("rq4")

GLOBAL_ONLY = "none (global only)"


def method_configs(methods_cfg: DictConfig, fusion_alphas: list[float]) -> dict[str, RerankConfig]:
    """Every configured method by name; a fusion method becomes one entry per α of ``fusion_alphas``."""
    configs: dict[str, RerankConfig] = {}
    for key, method_cfg in methods_cfg.items():
        name, config = str(key), instantiate(method_cfg)
        if isinstance(config, FusionRerank):
            for alpha in fusion_alphas:
                configs[f"{name}_alpha{alpha:g}"] = replace(config, alpha=float(alpha))
        else:
            configs[name] = config
    return configs


def describe(config: RerankConfig) -> str:
    """A table label that states the method's formula."""
    if isinstance(config, RatioCountRerank):
        return f"ratio-count (E5): {config.alpha:g}·global + {1 - config.alpha:g}·match ratio, no geometry"
    if isinstance(config, InliersRerank):
        return "RANSAC inliers (ties: global)"
    if isinstance(config, FusionRerank):
        local = (
            "match ratio"
            if config.local_score == "match_ratio"
            else f"min(inliers/{config.inliers_at_full_score}, 1)"
        )
        return f"fusion α={config.alpha:g}: α·global + (1−α)·{local}"
    if isinstance(config, DelgRerank):
        return f"DELG order (≥ {config.min_inliers} inliers first)"
    if isinstance(config, GlobalPlusInliersRerank):
        return f"global + {config.inlier_weight:g}·inliers"
    return f"CNN patches (E7): {config.alpha:g}·global + {1 - config.alpha:g}·patch similarity"


@dataclass(frozen=True, eq=False)
class FeatureSource:
    """Methods that re-rank with one kind of local features, the database's store and every query's features."""

    methods: dict[str, RerankConfig]
    extractor: LocalExtractor
    store: FeatureStore
    query_features: list[LocalFeatures]


def feature_sources(
    cfg: DictConfig,
    configs: dict[str, RerankConfig],
    benchmark: RetrievalBenchmark,
    net: GlobalDescriptorNet,
    network_id: str,
) -> list[FeatureSource]:
    """Keypoint methods use ``cfg.local_features``; CNN-patch methods the global network's feature map."""
    keypoint_methods: dict[str, RerankConfig] = {}
    patch_methods: dict[str, RerankConfig] = {}
    for name, config in configs.items():
        (patch_methods if isinstance(config, CnnPatchRerank) else keypoint_methods)[name] = config
    wanted: list[tuple[dict[str, RerankConfig], LocalExtractor]] = []
    if keypoint_methods:
        wanted.append((keypoint_methods, instantiate(cfg.local_features)))
    if patch_methods:
        patches = cfg.cnn_patches
        wanted.append(
            (patch_methods, CnnPatchExtractor(net, network_id, patches.max_side, patches.max_keypoints))
        )
    sources = []
    for methods, extractor in wanted:
        store = database_feature_store(
            benchmark, extractor, Path(cfg.cache_dir) / "feature_stores", cfg.num_workers, cfg.progress
        )
        sources.append(
            FeatureSource(methods, extractor, store, query_local_features(benchmark, extractor, store))
        )
    return sources


def rerank_all(
    sources: list[FeatureSource],
    benchmark: RetrievalBenchmark,
    global_result: BenchmarkResult,
    top_ks: list[int],
) -> dict[int, dict[str, RerankedRanking]]:
    """K -> method name -> its re-ranked ranking."""
    results: dict[int, dict[str, RerankedRanking]] = {}
    for top_k in top_ks:
        results[top_k] = {}
        for source in sources:
            results[top_k].update(
                rerank_benchmark(
                    benchmark, global_result, source.query_features, source.store, source.methods, top_k
                )
            )
        log.info("re-ranked every query's top %d", top_k)
    return results


def results_table(
    configs: dict[str, RerankConfig],
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
        + [cell for _ in results for cell in (*map(percent, (global_metrics[m] for m in metric_names)), "—")]
    ]
    for name, config in configs.items():
        row = [describe(config)]
        for by_method in results.values():
            reranked = by_method[name]
            row += [percent(reranked.metrics[metric_names[0]]), percent(reranked.metrics[metric_names[1]])]
            row.append(f"{reranked.median_ms_per_query:,.1f}")
        rows.append(row)
    return header, rows


def plot(
    configs: dict[str, RerankConfig],
    results: dict[int, dict[str, RerankedRanking]],
    global_metric: float,
    metric: str,
) -> Figure:
    """The metric and the time per query against K, one line per method."""
    figure, (accuracy, speed) = plt.subplots(1, 2, figsize=(13, 5))
    top_ks = list(results)
    for name, config in configs.items():
        label = describe(config)
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
    with finishing_wandb():
        benchmark = load_study_benchmark(cfg)
        log.info(
            "%s: %d queries, %d database images",
            benchmark.name,
            benchmark.num_queries,
            benchmark.num_database,
        )
        net, network_id, network_description = load_global_network(cfg.ckpt_path, cfg.net)
        net.to(resolve_device(cfg.device))
        global_result = global_ranking(net, network_id, benchmark, cfg)
        log.info("global ranking: %s", global_result.metrics)
        configs = method_configs(cfg.methods, list(cfg.fusion_alphas))
        sources = feature_sources(cfg, configs, benchmark, net, network_id)
        log.info("local features of the database and the queries ready")
        results = rerank_all(sources, benchmark, global_result, list(cfg.top_ks))
        features_used = {name: repr(source.extractor) for source in sources for name in source.methods}

        names = headline_names(benchmark)
        metric_names = (names[0], names[-1])
        header, rows = results_table(configs, results, global_result.metrics, metric_names)
        local_features: LocalFeatureExtractor = instantiate(cfg.local_features)
        markdown = "\n".join(
            [
                f"# RQ4 — re-ranking on {benchmark.name}",
                "",
                f"{benchmark.num_queries} queries, {benchmark.num_database} database images. Global: "
                f"{network_description}, GeM, max side {cfg.extraction.max_side}, scales "
                f"{list(cfg.extraction.scales)}. Local features: {local_features!r}; CNN patches at max side "
                f"{cfg.cnn_patches.max_side}. Re-ranked: the global top K without junk. ms/query: the median "
                "over queries of one `rerank()` call (store reads, matching, verification, scoring; methods "
                "sharing their matching and verification share it) on this machine's CPU, shared with other "
                "work; benchmarks/rerank.py measures speed on its own.",
                "",
                markdown_table(header, rows),
            ]
        )
        report: dict[str, Any] = {
            "benchmark": benchmark.name,
            "protocol": benchmark.protocol,
            "num_queries": benchmark.num_queries,
            "num_database": benchmark.num_database,
            "network": network_description,
            "network_id": network_id,
            "settings": settings_of(
                cfg,
                [
                    "benchmark",
                    "max_queries",
                    "ckpt_path",
                    "extraction",
                    "local_features",
                    "cnn_patches",
                    "top_ks",
                ],
            ),
            "global": global_result.metrics,
            "methods": {
                name: {
                    "label": describe(config),
                    "config": asdict(config),
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
        figure = plot(configs, results, global_result.metrics[metric_names[0]], metric_names[0])
        files = write_results(cfg.paths.output_dir, "rq4", markdown, report, figure)
        plt.close(figure)
        metrics = {f"rq4/global/{m}": global_result.metrics[m] for m in names}
        for top_k, by_method in results.items():
            for name, reranked in by_method.items():
                metrics.update({f"rq4/{name}/K{top_k}/{m}": reranked.metrics[m] for m in names})
                metrics[f"rq4/{name}/K{top_k}/median_ms_per_query"] = reranked.median_ms_per_query
        log_results(cfg.logger, "rq4", report["settings"], metrics, (header, rows), files)
        print(markdown)
        log.info("RQ4 written to %s", files["md"].parent)
    return report


@hydra.main(version_base="1.3", config_path="../conf", config_name="rq4")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
