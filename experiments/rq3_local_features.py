"""RQ3 — which local feature and which codebook, for retrieval by local features alone?

    python experiments/rq3_local_features.py                          # the demo's rdemo benchmark, a few minutes
    python experiments/rq3_local_features.py benchmark=realphotos     # ../shared/realphotos, about 10 minutes
    python experiments/rq3_local_features.py features=[sift,rootsift] '~codebooks.bow_16k' logger=none

Every local feature of ``features`` (SIFT, RootSIFT, ORB, AKAZE, BRISK: 1024 keypoints at max side 1024 by
default; CNN patches: every cell of the global network's last feature map at max side 512) is extracted once per
database into a cached feature store, and every codebook of ``codebooks`` ranks the database for each query
from local features only: bag of words with tf-idf and an inverted file (1k and 16k words), VLAD (16 and 64
words) and ASMK* (1k words). Vocabularies are trained on the database's own descriptors (unsupervised; there
is no separate training set on the benchmarks) and get fewer words than asked when the descriptors are too few
(``vocabulary.min_descriptors_per_word``), which the table says. Binary descriptors (ORB, AKAZE, BRISK) are
unpacked into 0/1 floats for k-means, VLAD and ASMK.

The table gives the protocol's headline metrics, the time to encode a database image and to search per query,
and the bytes per image of each representation; a second table the extraction time and feature-store bytes of
each local feature, beside the global descriptor. Writes ``rq3.md``, ``rq3.json`` and ``rq3.png`` into the run
folder and logs them to the configured loggers (``logger=wandb``, offline without an API key, by default).
"""

from __future__ import annotations

import logging
import time
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
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.evaluation import benchmark_feature_store, query_local_features
from retrieval.local.cnn_patches import CNN_PATCH_METHOD
from retrieval.local.codebook import (
    CODEBOOK_KINDS,
    codebook_descriptors,
    codebook_retrieval,
    dense_bytes_per_image,
)
from retrieval.local.features import (
    BINARY_METHODS,
    LOCAL_FEATURE_METHODS,
    LocalExtractor,
    LocalFeatureExtractor,
)
from retrieval.local.store import local_feature_bytes_per_image
from retrieval.local.vocabulary import (
    VisualVocabulary,
    VocabularySettings,
    effective_num_words,
    train_vocabulary,
)
from retrieval.metrics import evaluate_ranking

log = logging.getLogger("rq3")

FEATURE_LABELS = {
    "sift": "SIFT",
    "rootsift": "RootSIFT",
    "orb": "ORB",
    "akaze": "AKAZE",
    "brisk": "BRISK",
    CNN_PATCH_METHOD: "CNN patches",
}
CODEBOOK_LABELS = {"bow": "BoW tf-idf", "vlad": "VLAD", "asmk": "ASMK*"}
CODEBOOK_MARKERS = {"bow": "o", "vlad": "s", "asmk": "^"}


@dataclass(frozen=True)
class FeatureSummary:
    """One local feature on the benchmark's database; ``codebook_dim`` is the width of the descriptors the
    codebooks see (binary descriptors unpacked into bits)."""

    feature: str
    extractor: str
    mean_keypoints: float
    codebook_dim: int
    extract_ms_per_image: float
    store_bytes_per_image: float


@dataclass(frozen=True)
class CodebookRow:
    """One (local feature, codebook) cell of the study."""

    feature: str
    codebook: str
    kind: str
    requested_words: int
    num_words: int
    words_note: str
    metrics: dict[str, float]
    train_seconds: float
    encode_ms_per_image: float
    search_ms_per_query: float
    bytes_per_image: float


def make_extractor(
    feature: str, cfg: DictConfig, net: GlobalDescriptorNet, descriptor_id: str
) -> LocalExtractor:
    """An OpenCV extractor with ``cfg.local_features``' budget, or the CNN patches of the global network."""
    if feature == CNN_PATCH_METHOD:
        return instantiate(cfg.cnn_patches)(net=net, descriptor_id=descriptor_id)
    if feature not in LOCAL_FEATURE_METHODS:
        raise ValueError(
            f"features must be among {(*LOCAL_FEATURE_METHODS, CNN_PATCH_METHOD)}, got {feature!r}"
        )
    budget = cfg.local_features
    return LocalFeatureExtractor(feature, budget.max_keypoints, budget.max_side)  # type: ignore[arg-type]


def study_feature(
    feature: str,
    cfg: DictConfig,
    benchmark: RetrievalBenchmark,
    net: GlobalDescriptorNet,
    descriptor_id: str,
    settings: VocabularySettings,
) -> tuple[FeatureSummary, list[CodebookRow]]:
    """Extract (or read) one local feature and run every codebook on it."""
    extractor = make_extractor(feature, cfg, net, descriptor_id)
    store = benchmark_feature_store(
        benchmark, extractor, Path(cfg.cache_dir) / "feature_stores", cfg.num_workers, cfg.progress
    )
    query_features = query_local_features(benchmark, extractor, store)
    database_features = store.get_many(benchmark.database_ids)
    database_descriptors = [codebook_descriptors(features) for features in database_features]
    query_descriptors = [codebook_descriptors(features) for features in query_features]
    all_descriptors = np.concatenate(database_descriptors)
    mean_keypoints = float(np.mean([len(features) for features in database_features]))
    summary = FeatureSummary(
        feature=feature,
        extractor=repr(extractor),
        mean_keypoints=mean_keypoints,
        codebook_dim=all_descriptors.shape[1],
        extract_ms_per_image=study_outputs.extraction_ms_per_image(
            extractor, benchmark.database_paths, cfg.timing_images
        ),
        store_bytes_per_image=local_feature_bytes_per_image(
            mean_keypoints, extractor.descriptor_dim, extractor.binary
        ),
    )
    vocabularies: dict[int, tuple[VisualVocabulary, float]] = {}
    rows = []
    for codebook, spec in cfg.codebooks.items():
        if spec.kind not in CODEBOOK_KINDS:
            raise ValueError(f"codebooks.{codebook}.kind must be one of {CODEBOOK_KINDS}, got {spec.kind!r}")
        num_words = effective_num_words(
            spec.num_words, len(all_descriptors), settings.min_descriptors_per_word
        )
        if num_words not in vocabularies:
            start = time.perf_counter()
            vocabulary = train_vocabulary(all_descriptors, num_words, settings)
            vocabularies[num_words] = (vocabulary, time.perf_counter() - start)
        vocabulary, train_seconds = vocabularies[num_words]
        retrieval = codebook_retrieval(spec.kind, vocabulary, query_descriptors, database_descriptors)
        note = (
            ""
            if num_words == spec.num_words
            else f"{spec.num_words:,} asked; {len(all_descriptors):,} descriptors allow "
            f"{num_words:,} at {settings.min_descriptors_per_word} per word"
        )
        rows.append(
            CodebookRow(
                feature=feature,
                codebook=str(codebook),
                kind=spec.kind,
                requested_words=spec.num_words,
                num_words=num_words,
                words_note=note,
                metrics=evaluate_ranking(retrieval.ranking, benchmark),
                train_seconds=train_seconds,
                encode_ms_per_image=retrieval.encode_ms_per_image,
                search_ms_per_query=retrieval.search_ms_per_query,
                bytes_per_image=retrieval.bytes_per_image,
            )
        )
        log.info("%s %s (%d words): %s", feature, codebook, num_words, rows[-1].metrics)
    return summary, rows


def codebook_table(
    rows: list[CodebookRow], global_metrics: dict[str, float], global_bytes: int, names: tuple[str, ...]
) -> tuple[list[str], list[list[str]]]:
    header = ["feature", "codebook", "words", *names, "encode ms/img", "search ms/query", "bytes/img"]
    body = [
        [
            "global GeM (reference)",
            "—",
            "—",
            *(study_outputs.percent(global_metrics[n]) for n in names),
            "—",
            "—",
            f"{global_bytes:,}",
        ]
    ]
    for row in rows:
        words = f"{row.num_words:,}" + (f" (scaled from {row.requested_words:,})" if row.words_note else "")
        body.append(
            [
                FEATURE_LABELS[row.feature],
                CODEBOOK_LABELS[row.kind],
                words,
                *(study_outputs.percent(row.metrics[n]) for n in names),
                f"{row.encode_ms_per_image:,.1f}",
                f"{row.search_ms_per_query:,.1f}",
                f"{row.bytes_per_image:,.0f}",
            ]
        )
    return header, body


def feature_table(summaries: list[FeatureSummary], global_dim: int) -> str:
    header = ["feature", "keypoints/img", "descriptor", "extract ms/img", "store bytes/img"]
    body = [
        [
            FEATURE_LABELS[s.feature],
            f"{s.mean_keypoints:,.0f}",
            f"{s.codebook_dim} {'bits' if s.feature in BINARY_METHODS else 'floats'}",
            f"{s.extract_ms_per_image:,.1f}",
            f"{s.store_bytes_per_image:,.0f}",
        ]
        for s in summaries
    ]
    body.append(
        ["global GeM (float32)", "—", f"{global_dim} floats", "—", f"{dense_bytes_per_image(global_dim):,}"]
    )
    return markdown_table(header, body)


def plot(rows: list[CodebookRow], global_metric: float, global_bytes: int, metric: str) -> Figure:
    """The metric against bytes per image: colour = local feature, marker = codebook."""
    figure, axes = plt.subplots(figsize=(9, 6))
    colours = dict(zip(FEATURE_LABELS, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for row in rows:
        axes.scatter(
            row.bytes_per_image,
            100 * row.metrics[metric],
            color=colours[row.feature],
            marker=CODEBOOK_MARKERS[row.kind],
            s=50,
        )
        axes.annotate(f"{row.num_words}", (row.bytes_per_image, 100 * row.metrics[metric]), fontsize=6)
    axes.scatter(global_bytes, 100 * global_metric, color="black", marker="*", s=200)
    handles = [
        plt.Line2D([], [], color=colours[f], marker="o", linestyle="", label=FEATURE_LABELS[f])
        for f in dict.fromkeys(row.feature for row in rows)
    ]
    handles += [
        plt.Line2D([], [], color="grey", marker=CODEBOOK_MARKERS[k], linestyle="", label=CODEBOOK_LABELS[k])
        for k in dict.fromkeys(row.kind for row in rows)
    ]
    handles.append(plt.Line2D([], [], color="black", marker="*", linestyle="", label="global GeM"))
    axes.legend(handles=handles, fontsize=8)
    axes.set(
        xscale="log",
        xlabel="bytes per image",
        ylabel=f"{metric} (%)",
        title="local-only retrieval (number: words)",
    )
    figure.tight_layout()
    return figure


def run(cfg: DictConfig) -> dict[str, Any]:
    """The study: every feature × codebook, written to ``rq3.{md,json,png}`` in the run folder and logged."""
    benchmark = study_outputs.load_study_benchmark(cfg)
    network = study_outputs.study_network(cfg, benchmark, cfg.ckpt_path)
    settings: VocabularySettings = instantiate(cfg.vocabulary)
    summaries, rows = [], []
    for feature in cfg.features:
        summary, feature_rows = study_feature(
            feature, cfg, benchmark, network.net, network.descriptor_id, settings
        )
        summaries.append(summary)
        rows += feature_rows

    names = study_outputs.headline_names(benchmark)
    global_bytes = dense_bytes_per_image(network.net.output_dim)
    header, body = codebook_table(rows, network.ranking.metrics, global_bytes, names)
    notes = [f"- {FEATURE_LABELS[r.feature]} {r.codebook}: {r.words_note}" for r in rows if r.words_note]
    markdown = "\n".join(
        [
            f"# RQ3 — local features × codebooks on {benchmark.name}",
            "",
            f"{benchmark.num_queries} queries, {benchmark.num_database} database images; retrieval by local "
            "features only (vocabularies trained on the database's descriptors, those above "
            f"{settings.two_level_above:,} words in two levels with each descriptor assigned among the words "
            f"of its {settings.assignment_probes} nearest cells; binary descriptors unpacked to 0/1 floats). "
            f"Reference: global GeM of {network.description} at max side {cfg.extraction.max_side}. Bytes "
            "per image: BoW 8 per posting (int32 id, float32 weight), VLAD 4 per float, ASMK* per (image, "
            "word) an int32 id and one bit per descriptor dimension. Times on this machine's CPU.",
            "",
            markdown_table(header, body),
            "",
            *(["Vocabularies scaled down (too few descriptors):", *notes, ""] if notes else []),
            "## Local features",
            "",
            feature_table(summaries, network.net.output_dim),
        ]
    )
    report: dict[str, Any] = study_outputs.study_report(
        cfg,
        benchmark,
        network,
        ["ckpt_path", "features", "local_features", "cnn_patches", "codebooks", "vocabulary"],
    ) | {
        "global": {"metrics": network.ranking.metrics, "bytes_per_image": global_bytes},
        "features": [asdict(summary) for summary in summaries],
        "codebooks": [asdict(row) for row in rows],
    }
    figure = plot(rows, network.ranking.metrics[names[0]], global_bytes, names[0])
    metrics = {f"rq3/global/{n}": network.ranking.metrics[n] for n in names}
    for row in rows:
        prefix = f"rq3/{row.feature}/{row.codebook}"
        metrics.update({f"{prefix}/{n}": row.metrics[n] for n in names})
        metrics.update(
            {
                f"{prefix}/encode_ms_per_image": row.encode_ms_per_image,
                f"{prefix}/search_ms_per_query": row.search_ms_per_query,
                f"{prefix}/bytes_per_image": row.bytes_per_image,
            }
        )
    return study_outputs.publish(cfg, "rq3", markdown, report, figure, metrics, (header, body))


main = study_outputs.study_main("rq3", run)


if __name__ == "__main__":
    main()
