"""What the study scripts (RQ3, RQ4, the thesis table) share: the benchmark and the global network a config
names, the global ranking, and the results written into the run folder (markdown, JSON, PNG) and logged to the
configured experiment loggers (``logger=wandb``, offline without an API key; ``logger=none`` for none)."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from hydra.utils import instantiate
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import WandbLogger

from experiments.app import app_main
from lightning_modules.loggers import finishing_wandb
from retrieval.benchmark import RetrievalBenchmark
from retrieval.descriptor.extract import ExtractionSettings, files_fingerprint
from retrieval.descriptor.network import GlobalDescriptorNet, load_network, resolve_device
from retrieval.evaluation import BenchmarkResult, evaluate_benchmark
from retrieval.local.features import LocalExtractor

log = logging.getLogger(__name__)

# Config keys every study's report records.
COMMON_SETTINGS = ("benchmark", "max_queries", "extraction")

# The metrics a study table shows for each protocol, the first being the one plots use.
HEADLINE_METRICS: dict[str, tuple[str, ...]] = {
    "plain": ("mAP", "mP@5", "mP@10"),
    "revisited": ("medium/mAP", "hard/mAP", "medium/mP@10"),
    "gldv2": ("mAP@100", "recall@100"),
}


def load_study_benchmark(cfg: DictConfig) -> RetrievalBenchmark:
    """The benchmark ``cfg.benchmark`` names among ``cfg.benchmarks``, restricted to ``cfg.max_queries`` queries."""
    if cfg.benchmark not in cfg.benchmarks:
        raise ValueError(
            f"benchmark={cfg.benchmark!r} is not one of the configured benchmarks {sorted(cfg.benchmarks)}"
        )
    benchmark = instantiate(cfg.benchmarks[cfg.benchmark], max_queries=cfg.max_queries).load()
    log.info(
        "%s: %d queries, %d database images", benchmark.name, benchmark.num_queries, benchmark.num_database
    )
    return benchmark


@dataclass(frozen=True, eq=False)
class StudyNetwork:
    """A global network on its device, the id naming its weights, a description for tables, and its global
    ranking of the study's benchmark."""

    net: GlobalDescriptorNet
    descriptor_id: str
    description: str
    ranking: BenchmarkResult


def study_network(cfg: DictConfig, benchmark: RetrievalBenchmark, ckpt_path: str | None) -> StudyNetwork:
    """The network of ``ckpt_path`` (None: the pretrained ``cfg.net``) on ``cfg.device``, with its global
    ranking of ``benchmark`` (``cfg.extraction``, cached)."""
    net, weights_id, description = load_global_network(ckpt_path, cfg.net)
    net.to(resolve_device(cfg.device))
    ranking = global_ranking(net, weights_id, benchmark, cfg)
    log.info("global ranking of %s: %s", description, ranking.metrics)
    return StudyNetwork(net, weights_id, description, ranking)


def load_global_network(ckpt_path: str | None, net_cfg: DictConfig) -> tuple[GlobalDescriptorNet, str, str]:
    """The network of a checkpoint, or the pretrained ``net`` config when ``ckpt_path`` is None.

    Returns:
        the network (in eval mode), the id naming its weights (descriptor caches are keyed by it), and a
        description for tables.
    """
    net, weights_id = load_network(ckpt_path, lambda: instantiate(net_cfg))
    if ckpt_path:
        return net, weights_id, f"checkpoint {ckpt_path}"
    weights = net_cfg.pretrained_path or net_cfg.pretrained
    return net, weights_id, f"{net_cfg.backbone}, pretrained ({weights}), no checkpoint"


def global_ranking(
    net: GlobalDescriptorNet, descriptor_id: str, benchmark: RetrievalBenchmark, cfg: DictConfig
) -> BenchmarkResult:
    """The full global ranking of every query with ``cfg.extraction``.

    Descriptors are cached under ``<cache_dir>/descriptors/<fingerprint>``: the descriptor cache is keyed by
    image paths, and the fingerprint of the benchmark's files (sizes, modification times) keeps a rewritten
    benchmark (a regenerated demo) from reading stale descriptors.
    """
    settings: ExtractionSettings = instantiate(cfg.extraction, scales=tuple(cfg.extraction.scales))
    fingerprint = files_fingerprint([*benchmark.database_paths, *benchmark.query_paths])[:16]
    return evaluate_benchmark(
        net,
        benchmark,
        settings,
        descriptor_id,
        cache_dir=Path(cfg.cache_dir) / "descriptors" / fingerprint,
        device=resolve_device(cfg.device),
        progress=cfg.progress,
    )


def percent(value: float) -> str:
    """A fraction as a percentage with one decimal ("—" for NaN)."""
    return "—" if math.isnan(value) else f"{100 * value:.1f}"


def headline_names(benchmark: RetrievalBenchmark) -> tuple[str, ...]:
    """The metrics the tables show for the benchmark's protocol."""
    return HEADLINE_METRICS[benchmark.protocol]


def study_main(config_name: str, run: Callable[[DictConfig], object]) -> Callable[..., object]:
    """The command-line entry point of a study: ``run`` under Hydra with ``conf/<config_name>.yaml``."""
    return app_main(config_name)(run)


def extraction_ms_per_image(extractor: LocalExtractor, paths: Sequence[Path], max_images: int = 8) -> float:
    """Mean milliseconds to extract the local features of one image (decoding included), measured in this
    process on the first ``max_images`` of ``paths``."""
    if max_images <= 0:
        raise ValueError(f"max_images must be positive, got {max_images}")
    sample = list(paths[:max_images])
    if not sample:
        raise ValueError("no image to time the extraction on")
    start = time.perf_counter()
    for path in sample:
        extractor.from_path(path)
    return 1000 * (time.perf_counter() - start) / len(sample)


def write_results(
    output_dir: str | Path, stem: str, markdown: str, report: Mapping[str, Any], figure: Figure
) -> dict[str, Path]:
    """``<stem>.md``, ``<stem>.json`` and ``<stem>.png`` in ``output_dir``; returns them by suffix."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    files = {suffix: folder / f"{stem}.{suffix}" for suffix in ("md", "json", "png")}
    files["md"].write_text(markdown + "\n")
    files["json"].write_text(json.dumps(report, indent=2, default=str) + "\n")
    figure.savefig(files["png"], dpi=120, bbox_inches="tight")
    return files


def publish(
    cfg: DictConfig,
    stem: str,
    markdown: str,
    report: Mapping[str, Any],
    figure: Figure,
    metrics: Mapping[str, float],
    table: tuple[Sequence[str], Sequence[Sequence[object]]],
) -> dict[str, Any]:
    """Write ``<stem>.{md,json,png}`` into the run folder (:func:`write_results`), log them with ``metrics`` and
    ``report["settings"]`` to the configured loggers (:func:`log_results`), print the markdown; returns the
    report."""
    files = write_results(cfg.paths.output_dir, stem, markdown, report, figure)
    plt.close(figure)
    with finishing_wandb():
        log_results(cfg.logger, stem, report["settings"], metrics, table, files)
    print(markdown)
    log.info("%s written to %s", stem, files["md"].parent)
    return dict(report)


def log_results(
    logger_cfg: DictConfig,
    stem: str,
    hyperparameters: Mapping[str, Any],
    metrics: Mapping[str, float],
    table: tuple[Sequence[str], Sequence[Sequence[object]]],
    files: Mapping[str, Path],
) -> None:
    """Hyperparameters and metrics to every configured logger; to W&B also the table, the plot and the files as
    an artifact. Call inside :func:`lightning_modules.loggers.finishing_wandb` (as :func:`publish` does)."""
    finite = {name: float(value) for name, value in metrics.items() if math.isfinite(value)}
    for logger in (instantiate(entry) for entry in logger_cfg.values()):
        logger.log_hyperparams(dict(hyperparameters))
        logger.log_metrics(finite)
        if isinstance(logger, WandbLogger):
            import wandb

            header, rows = table
            run = logger.experiment
            run.log(
                {
                    f"{stem}/table": wandb.Table(
                        columns=list(header), data=[[str(c) for c in r] for r in rows]
                    ),
                    f"{stem}/plot": wandb.Image(str(files["png"])),
                }
            )
            artifact = wandb.Artifact(stem, type="study")
            for path in files.values():
                artifact.add_file(str(path))
            run.log_artifact(artifact)
        logger.save()


def study_report(
    cfg: DictConfig,
    benchmark: RetrievalBenchmark,
    network: StudyNetwork | None,
    settings: Sequence[str],
) -> dict[str, Any]:
    """The head of every study's JSON report: the benchmark and its size, the network (when one ranked it)
    and the resolved keys of ``cfg`` every study has (:data:`COMMON_SETTINGS`) and the study's own ``settings``."""
    report: dict[str, Any] = {
        "benchmark": benchmark.name,
        "protocol": benchmark.protocol,
        "num_queries": benchmark.num_queries,
        "num_database": benchmark.num_database,
    }
    if network is not None:
        report |= {"network": network.description, "descriptor_id": network.descriptor_id}
    return report | {"settings": settings_of(cfg, [*COMMON_SETTINGS, *settings])}


def settings_of(cfg: DictConfig, keys: Sequence[str]) -> dict[str, Any]:
    """The resolved values of ``keys`` of a config, for reports and logger hyperparameters."""
    return {
        key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
        for key in keys
    }
