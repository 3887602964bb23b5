"""Global search at growing collection sizes, from ready descriptors (no images decoded).

    python benchmarks/scale.py [--sizes 10000 100000 1000000] [--dim 512] [--queries 200]

Descriptors are drawn from a two-level clustered distribution (regions = random unit centres, each with ~50
landmarks = noisy copies of it, each with ~20 images = noisy copies of the landmark), so that an image's
neighbours beyond its own landmark lie in its region, as on real descriptors (with one level only, the exact top
100 beyond the ~20 planted positives are near-ties spread over the whole sphere, which no inverted file finds).
For each size and index (flat; IVF-PQ with the lists chosen from the size and float16 re-scoring,
`global_index=ivfpq`, searched with the PQ order only and re-scored), build time, peak RSS, the RSS a loaded
index adds, bytes per image on disk, load time, search latency p50/p95/p99 (one query at a time, top 100) and
recall@100 against exact search. Then re-ranking at the same size (:mod:`benchmarks.scale_rerank`): the real
photos' compact store replicated to N images and their top 100s re-ranked from random replicas (skipped when
``../shared/realphotos`` is absent). Writes ``benchmarks/results/scale_cpu.{json,md}`` and extrapolates the bytes
to 10M and 100M images.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import REPO_ROOT, write_results
from benchmarks.scale_rerank import RealQueries, rerank_latencies_ms
from retrieval.descriptor.index import DescriptorIndex, create_index


def clustered_descriptors(num_images: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) unit rows: N / 1000 random region centres, N / 20 landmark centres around them (noise 0.8 of a
    unit vector), images around their landmark (noise 0.6); and the (N,) landmark of each row (the planted
    positives of a query are its landmark's images)."""
    generator = np.random.default_rng(seed)

    def around(centres: np.ndarray, owners: np.ndarray, noise: float) -> np.ndarray:
        rows = centres[owners]
        rows += generator.standard_normal(rows.shape, dtype=np.float32) * np.float32(noise / np.sqrt(dim))
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        return rows

    regions = around(
        generator.standard_normal((max(1, num_images // 1000), dim), dtype=np.float32),
        np.arange(max(1, num_images // 1000)),
        0.0,
    )
    landmark_centres = around(regions, generator.integers(0, len(regions), max(1, num_images // 20)), 0.8)
    landmarks = generator.integers(0, len(landmark_centres), num_images)
    return around(landmark_centres, landmarks, 0.6), landmarks


_LOAD_AND_REPORT = """
import os, sys
from retrieval.descriptor.index import DescriptorIndex
def rss():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = rss()
index = DescriptorIndex.load(sys.argv[1], device="cpu")
print((rss() - before) / 2**30)
"""


def fresh_process_load_rss_gb(folder: str) -> float:
    """The resident memory that loading the saved index adds to a fresh Python process, in GiB."""
    completed = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_REPORT, folder],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    return float(completed.stdout.strip().splitlines()[-1])


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def measure(
    kind: str, database: np.ndarray, queries: np.ndarray, exact: np.ndarray, positives: list[set[int]]
) -> list[dict[str, Any]]:
    """One row per search setting of one built index (IVF-PQ: nprobe 32 and 128)."""
    ids = [str(i) for i in range(len(database))]
    start = time.perf_counter()
    options = {"nlist": None, "refine": "fp16"} if kind == "ivfpq" else {}
    index = create_index(kind, database.shape[1], "scale", device="cpu", num_vectors=len(database), **options)
    index.add(database, ids)
    with tempfile.TemporaryDirectory() as folder:
        index.save(folder)
        build_s = time.perf_counter() - start
        disk = sum(path.stat().st_size for path in Path(folder).iterdir())
        del index
        index_rss_gb = fresh_process_load_rss_gb(folder)
        start = time.perf_counter()
        loaded = DescriptorIndex.load(folder, device="cpu")
        load_s = time.perf_counter() - start
    rows = []
    nlist = int(getattr(loaded.parameters, "nlist", 0) or 0)
    settings = [(32, 1), (32, 4), (128, 4)] if kind == "ivfpq" else [(None, None)]
    for nprobe, k_factor in settings:
        if nprobe is not None:
            loaded.parameters = replace(loaded.parameters, refine_k_factor=k_factor)  # type: ignore[arg-type]
            loaded.set_search_parameters(nprobe=min(nprobe, nlist))
        latencies, found, landmark_found = [], [], []
        for row, query in enumerate(queries):
            start = time.perf_counter()
            result = loaded.search(query[None], 100)
            latencies.append(1000 * (time.perf_counter() - start))
            retrieved = set(result.indices[0].tolist())
            found.append(len(retrieved & set(exact[row].tolist())) / 100)
            landmark_found.append(len(retrieved & positives[row]) / len(positives[row]))
        name = (
            "flat"
            if nprobe is None
            else f"ivfpq nlist={nlist} nprobe={nprobe}, "
            + ("PQ order only" if k_factor == 1 else f"{k_factor}·k re-scored in float16")
        )
        rows.append(
            {
                "num_images": len(database),
                "index": name,
                "build_s": build_s,
                "peak_rss_gb": peak_rss_gb(),
                "index_rss_gb": index_rss_gb,
                "bytes_per_image": disk / len(database),
                "load_s": load_s,
                "global_p50_ms": float(np.percentile(latencies, 50)),
                "global_p95_ms": float(np.percentile(latencies, 95)),
                "global_p99_ms": float(np.percentile(latencies, 99)),
                "recall_at_100": float(np.mean(found)),
                "positives_recall_at_100": float(np.mean(landmark_found)),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    real = RealQueries.load()
    rows = []
    for size in args.sizes:
        database, landmarks = clustered_descriptors(size, args.dim, seed=size)
        generator = np.random.default_rng(1)
        chosen = generator.choice(size, args.queries, replace=False)
        picked = database[chosen]
        members: dict[int, set[int]] = {}
        for image, landmark in enumerate(landmarks.tolist()):
            members.setdefault(landmark, set()).add(image)
        positives = [members[int(landmarks[image])] for image in chosen]
        queries = picked + generator.standard_normal(picked.shape).astype(np.float32) * (
            0.3 / np.sqrt(args.dim)
        )
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        exact = np.stack([np.argpartition(-(query @ database.T), 100)[:100] for query in queries])
        size_rows: list[dict[str, Any]] = []
        for kind in ("flat", "ivfpq"):
            size_rows += measure(kind, database, queries, exact, positives)
            print(size_rows[-1], flush=True)
        del database, exact
        if real is not None:
            latencies, write_s = rerank_latencies_ms(real, size)
            local = {
                "rerank_p50_ms": float(np.percentile(latencies, 50)),
                "rerank_p95_ms": float(np.percentile(latencies, 95)),
                "local_bytes_per_image": real.store.bytes_per_image(),
                "local_store_write_s": write_s,
            }
            print(local, flush=True)
            size_rows = [{**row, **local} for row in size_rows]
        rows += size_rows
    header = (
        "| images | index | build s | peak RSS GB | index RSS GB | bytes/image | load s | p50 ms | p95 ms | p99 ms "
        "| recall@100 | positives in top 100 | re-rank p50 / p95 ms |"
    )
    largest = [row for row in rows if row["num_images"] == rows[-1]["num_images"]]
    lines = [
        "# Global search at scale, CPU (synthetic clustered descriptors)",
        "",
        f"D = {args.dim}, one torch thread (faiss: the machine's 2 cores), {args.queries} queries one at a time, "
        "top 100; recall@100 against exact search; 'positives in top 100' is the share of the query's own landmark "
        "(about 20 planted images) retrieved. Build: from ready descriptors to the saved index (IVF k-means on a "
        "sample of at most 262,144, then adding every vector). Peak RSS is the process's so far (it holds the "
        "descriptors and the exact scores too); index RSS is the resident memory that loading the saved index adds to a fresh process — what serving "
        "needs. The IVF-PQ index keeps 64 PQ bytes and a float16 copy per image; 'PQ order only' ranks by PQ "
        "(k_factor 1), the others re-score the 4·k best by PQ with the float16 copies (`global_index=ivfpq`, "
        "`refine: fp16`). Re-rank: the top 100 re-ranked with `rerank=compact` from a compact store of N images "
        "(the real photos' 187 replicated; each candidate read from a random replica; one thread; 3 passes over the "
        "67 real queries): the time of the re-ranking alone (search + re-rank = the two added); the store is written just before, so it is "
        "in the page cache (it fits in RAM here).",
        "",
        header,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {row['num_images']:,} | {row['index']} | {row['build_s']:.1f} | {row['peak_rss_gb']:.2f} | "
            f"{row['index_rss_gb']:.2f} | {row['bytes_per_image']:.0f} | {row['load_s']:.2f} | "
            f"{row['global_p50_ms']:.2f} | {row['global_p95_ms']:.2f} | {row['global_p99_ms']:.2f} | "
            f"{row['recall_at_100']:.3f} | {row['positives_recall_at_100']:.3f} | "
            + (
                f"{row['rerank_p50_ms']:.1f} / {row['rerank_p95_ms']:.1f} |"
                if "rerank_p95_ms" in row
                else "— |"
            )
            for row in rows
        ),
        "",
        "Extrapolated index size by the measured bytes per image of the largest run: "
        + ", ".join(
            f"{row['index']}: {row['bytes_per_image'] * 1e7 / 2**30:.1f} GiB at 10M, "
            f"{row['bytes_per_image'] * 1e8 / 2**30:.0f} GiB at 100M"
            for row in (largest[0], largest[-1])
        )
        + (
            f"; compact local features: {largest[0]['local_bytes_per_image'] * 1e7 / 2**30:.0f} GiB at 10M, "
            f"{largest[0]['local_bytes_per_image'] * 1e8 / 2**30:.0f} GiB at 100M"
            if "local_bytes_per_image" in largest[0]
            else ""
        ),
    ]
    markdown = "\n".join(lines)
    print(markdown)
    write_results("scale_cpu", {"rows": rows}, markdown)


if __name__ == "__main__":
    main()
