"""The thesis table — experiments E1–E7 reproduced on one benchmark:

    python experiments/thesis_table.py                                     # the demo's rdemo benchmark
    python experiments/thesis_table.py benchmark=realphotos e3_ckpt=<checkpoint of E3>
    python experiments/thesis_table.py experiment=e4_sift_bow              # one row only

- E1 ImageNet features: the pretrained ``net``, no training, global GeM.
- E2 classification fine-tuning: ``e2_ckpt`` (``python train.py experiment=e2_classification``).
- E3 contrastive Siamese: ``e3_ckpt`` (``python train.py experiment=e3_siamese``, the default training).
- E4 SIFT only: bag of words with tf-idf and an inverted file, no global descriptor.
- E5 E3 + SIFT ratio-count re-ranking of the global top 100, fused 0.8·global + 0.2·match ratio (the thesis).
- E6 VLAD of SIFT with a 16-word codebook.
- E7 E3 + CNN-patch re-ranking of the global top 100 (patches of E3's last feature map).

Without a checkpoint, E2 and E3 (and so E5 and E7) use the pretrained ImageNet weights, and the table says so.
Writes ``thesis.md``, ``thesis.json`` and ``thesis.png`` into the run folder and logs them to the configured
loggers (``logger=wandb``, offline without an API key, by default).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from hydra.utils import instantiate
from matplotlib.figure import Figure
from omegaconf import DictConfig

from experiments import study_outputs
from experiments.tables import markdown_table
from retrieval.benchmark import RetrievalBenchmark
from retrieval.evaluation import (
    benchmark_feature_store,
    evaluate_reranking,
    query_local_features,
)
from retrieval.local.codebook import CodebookKind, codebook_descriptors, codebook_retrieval
from retrieval.local.features import LocalExtractor, LocalFeatureExtractor, LocalFeatures
from retrieval.local.store import FeatureStore
from retrieval.local.vocabulary import VocabularySettings, effective_num_words, train_vocabulary
from retrieval.metrics import evaluate_ranking
from retrieval.reranking import RerankMethod

log = logging.getLogger("thesis")

EXPERIMENTS = ("e1", "e2", "e3", "e4", "e5", "e6", "e7")


@dataclass(frozen=True)
class Row:
    """One experiment of the table; ``ms_per_query``: local search or re-ranking time (None: global only)."""

    experiment: str
    description: str
    weights: str
    metrics: dict[str, float]
    ms_per_query: float | None = None


class Study:
    """Loads networks, feature stores and rankings lazily, so a subset of experiments costs only its share."""

    def __init__(self, cfg: DictConfig, benchmark: RetrievalBenchmark):
        self.cfg = cfg
        self.benchmark = benchmark
        self._networks: dict[str | None, study_outputs.StudyNetwork] = {}

    def network(self, ckpt_path: str | None) -> study_outputs.StudyNetwork:
        """The network of a checkpoint (None: the pretrained ``net``) with its global ranking."""
        if ckpt_path not in self._networks:
            self._networks[ckpt_path] = study_outputs.study_network(self.cfg, self.benchmark, ckpt_path)
        return self._networks[ckpt_path]

    def features(self, extractor: LocalExtractor) -> tuple[FeatureStore, list[LocalFeatures]]:
        """The database store and the query features of ``extractor``."""
        store = benchmark_feature_store(
            self.benchmark,
            extractor,
            Path(self.cfg.cache_dir) / "feature_stores",
            self.cfg.num_workers,
            self.cfg.progress,
        )
        return store, query_local_features(self.benchmark, extractor, store)

    def sift(self) -> LocalFeatureExtractor:
        return instantiate(self.cfg.sift)

    def global_row(self, experiment: str, description: str, ckpt_path: str | None) -> Row:
        network = self.network(ckpt_path)
        return Row(experiment, description, network.description, network.ranking.metrics)

    def codebook_row(self, experiment: str, kind: CodebookKind, requested_words: int) -> Row:
        """Local-only retrieval with SIFT and a codebook trained on the database's descriptors."""
        extractor = self.sift()
        store, query_features = self.features(extractor)
        database = [
            codebook_descriptors(features) for features in store.get_many(self.benchmark.database_ids)
        ]
        descriptors = np.concatenate(database)
        settings: VocabularySettings = instantiate(self.cfg.vocabulary)
        num_words = effective_num_words(requested_words, len(descriptors), settings.min_descriptors_per_word)
        vocabulary = train_vocabulary(descriptors, num_words, settings)
        retrieval = codebook_retrieval(
            kind,
            vocabulary,
            [codebook_descriptors(features) for features in query_features],
            database,
        )
        words = f"{num_words:,} words"
        if num_words < requested_words:
            words += f" (scaled from {requested_words:,}: too few descriptors)"
        label = "bag of words, tf-idf, inverted file" if kind == "bow" else "VLAD"
        return Row(
            experiment,
            f"SIFT only: {label}, {words}",
            "none (local features only)",
            evaluate_ranking(retrieval.ranking, self.benchmark),
            retrieval.search_ms_per_query,
        )

    def rerank_row(
        self,
        experiment: str,
        description: str,
        extractor: LocalExtractor,
        config: RerankMethod,
        network: study_outputs.StudyNetwork,
    ) -> Row:
        store, query_features = self.features(extractor)
        reranked = evaluate_reranking(
            self.benchmark,
            network.ranking,
            query_features,
            store,
            {experiment: config},
            self.cfg.top_k,
            self.cfg.progress,
        )[experiment]
        return Row(
            experiment, description, network.description, reranked.metrics, reranked.median_ms_per_query
        )


def run_experiment(study: Study, experiment: str) -> Row:
    """One row of the table."""
    cfg = study.cfg
    if experiment == "e1":
        return study.global_row("E1", "ImageNet features, no training (global GeM)", None)
    if experiment == "e2":
        return study.global_row("E2", "classification fine-tuning (global GeM)", cfg.e2_ckpt)
    if experiment == "e3":
        return study.global_row("E3", "contrastive Siamese (global GeM)", cfg.e3_ckpt)
    if experiment == "e4":
        return study.codebook_row("E4", "bow", cfg.bow_words)
    if experiment == "e5":
        config = instantiate(cfg.ratio_count)
        return study.rerank_row(
            "E5",
            f"E3 + SIFT ratio-count re-ranking of the top {cfg.top_k}, "
            f"{config.alpha:g}·global + {1 - config.alpha:g}·match ratio",
            study.sift(),
            config,
            study.network(cfg.e3_ckpt),
        )
    if experiment == "e6":
        return study.codebook_row("E6", "vlad", cfg.vlad_words)
    if experiment == "e7":
        network = study.network(cfg.e3_ckpt)
        config = instantiate(cfg.cnn_rerank)
        extractor = instantiate(cfg.cnn_patches)(net=network.net, descriptor_id=network.descriptor_id)
        return study.rerank_row(
            "E7",
            f"E3 + CNN-patch re-ranking of the top {cfg.top_k}, "
            f"{config.alpha:g}·global + {1 - config.alpha:g}·patch similarity",
            extractor,
            config,
            network,
        )
    raise ValueError(f"experiments must be among {EXPERIMENTS}, got {experiment!r}")


def plot(rows: list[Row], metric: str) -> Figure:
    figure, axes = plt.subplots(figsize=(8, 4.5))
    values = [100 * row.metrics[metric] for row in rows]
    bars = axes.bar([row.experiment for row in rows], values, color="tab:blue")
    axes.bar_label(bars, labels=[f"{value:.1f}" for value in values], fontsize=8)
    axes.set(ylabel=f"{metric} (%)", title="the thesis' experiments", ylim=(0, 105))
    figure.tight_layout()
    return figure


def run(cfg: DictConfig) -> dict[str, Any]:
    """The table of ``cfg.experiments``, written to ``thesis.{md,json,png}`` in the run folder and logged."""
    unknown = [experiment for experiment in cfg.experiments if experiment not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"experiments must be among {EXPERIMENTS}, got {unknown}")
    benchmark = study_outputs.load_study_benchmark(cfg)
    study = Study(cfg, benchmark)
    rows = []
    for experiment in cfg.experiments:
        rows.append(run_experiment(study, experiment))
        log.info("%s: %s", rows[-1].experiment, rows[-1].metrics)

    names = study_outputs.headline_names(benchmark)
    header = ["", "experiment", "weights", *names, "ms/query (local)"]
    body = [
        [
            row.experiment,
            row.description,
            row.weights,
            *(study_outputs.percent(row.metrics[name]) for name in names),
            "—" if row.ms_per_query is None else f"{row.ms_per_query:,.1f}",
        ]
        for row in rows
    ]
    missing = [name for name, path in (("E2", cfg.e2_ckpt), ("E3", cfg.e3_ckpt)) if not path]
    markdown = "\n".join(
        [
            f"# The thesis' experiments on {benchmark.name}",
            "",
            f"{benchmark.num_queries} queries, {benchmark.num_database} database images. Global descriptors: GeM "
            f"at max side {cfg.extraction.max_side}; local features: {study.sift()!r}; CNN patches at max side "
            f"{cfg.cnn_patches.max_side}. ms/query (this CPU): re-ranking (E5, E7; median over queries) or local search (E4, E6; mean).",
            *(
                [
                    "",
                    f"No checkpoint was given for {' and '.join(missing)}: those rows (and E5, E7 when E3 has "
                    "none) use the pretrained ImageNet weights, so they equal E1 and show no training.",
                ]
                if missing
                else []
            ),
            "",
            markdown_table(header, body),
        ]
    )
    report: dict[str, Any] = study_outputs.study_report(
        cfg,
        benchmark,
        None,
        [
            "experiments",
            "e2_ckpt",
            "e3_ckpt",
            "sift",
            "cnn_patches",
            "bow_words",
            "vlad_words",
            "top_k",
            "ratio_count",
            "cnn_rerank",
        ],
    ) | {
        "rows": [asdict(row) for row in rows],
    }
    figure = plot(rows, names[0])
    metrics = {f"thesis/{row.experiment}/{name}": row.metrics[name] for row in rows for name in names}
    return study_outputs.publish(cfg, "thesis", markdown, report, figure, metrics, (header, body))


main = study_outputs.study_main("thesis", run)


if __name__ == "__main__":
    main()
