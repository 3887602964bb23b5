"""Global search at growing collection sizes, from ready descriptors (no images decoded).

    python benchmarks/scale.py [--sizes 10000 100000] [--dim 512] [--queries 200]

Descriptors are drawn from a clustered distribution (landmarks = random unit centres, images = noisy copies), so
that IVF lists behave as on real descriptors. For each size and index (flat; IVF-PQ with the lists chosen from the
size, `global_index=ivfpq`), one torch thread: build time, peak RSS, bytes per image on disk, load time, search
latency p50/p95/p99 (one query at a time, top 100) and recall@100 against exact search. Writes
``benchmarks/results/scale_cpu.{json,md}`` and extrapolates the bytes to 10M and 100M images.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import write_results
from retrieval.descriptor.index import DescriptorIndex, create_index


def clustered_descriptors(num_images: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) unit rows around N / 20 random centres (20 images per landmark on average), noise 0.6 of a unit
    vector, and the (N,) landmark of each row (the planted positives of a query are its landmark's images)."""
    generator = np.random.default_rng(seed)
    centres = generator.standard_normal((max(1, num_images // 20), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    landmarks = generator.integers(0, len(centres), num_images)
    noise = generator.standard_normal((num_images, dim)).astype(np.float32) * (0.6 / np.sqrt(dim))
    rows = centres[landmarks] + noise
    return rows / np.linalg.norm(rows, axis=1, keepdims=True), landmarks


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def measure(
    kind: str, database: np.ndarray, queries: np.ndarray, exact: np.ndarray, positives: list[set[int]]
) -> list[dict[str, Any]]:
    """One row per search setting of one built index (IVF-PQ: nprobe 32 and 128)."""
    ids = [str(i) for i in range(len(database))]
    start = time.perf_counter()
    options = {"nlist": None} if kind == "ivfpq" else {}
    index = create_index(kind, database.shape[1], "scale", device="cpu", num_vectors=len(database), **options)
    index.add(database, ids)
    with tempfile.TemporaryDirectory() as folder:
        index.save(folder)
        build_s = time.perf_counter() - start
        disk = sum(path.stat().st_size for path in Path(folder).iterdir())
        start = time.perf_counter()
        loaded = DescriptorIndex.load(folder, device="cpu")
        load_s = time.perf_counter() - start
    rows = []
    nlist = int(getattr(index.parameters, "nlist", 0) or 0)
    for nprobe in (32, 128) if kind == "ivfpq" else (None,):
        if nprobe is not None:
            loaded.set_search_parameters(nprobe=min(nprobe, nlist))
        latencies, found, landmark_found = [], [], []
        for row, query in enumerate(queries):
            start = time.perf_counter()
            result = loaded.search(query[None], 100)
            latencies.append(1000 * (time.perf_counter() - start))
            retrieved = set(result.indices[0].tolist())
            found.append(len(retrieved & set(exact[row].tolist())) / 100)
            landmark_found.append(len(retrieved & positives[row]) / len(positives[row]))
        name = "flat" if nprobe is None else f"ivfpq nlist={nlist} nprobe={nprobe}"
        rows.append(
            {
                "num_images": len(database),
                "index": name,
                "build_s": build_s,
                "peak_rss_gb": peak_rss_gb(),
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
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
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
        exact = np.argsort(-(queries @ database.T), axis=1)[:, :100]
        for kind in ("flat", "ivfpq"):
            rows += measure(kind, database, queries, exact, positives)
            print(rows[-1], flush=True)
    header = (
        "| images | index | build s | peak RSS GB | bytes/image | load s | p50 ms | p95 ms | p99 ms | recall@100 "
        "| positives in top 100 |"
    )
    lines = [
        "# Global search at scale, CPU (synthetic clustered descriptors)",
        "",
        f"D = {args.dim}, one torch thread, {args.queries} queries one at a time, top 100; recall@100 against "
        "exact search. Peak RSS is the process's so far (grows with the largest size run). recall@100 counts the "
        "exact top 100, most of which are near-ties far from the query; 'positives in top 100' is the share of the "
        "query's own landmark (the planted positives, about 20 images) retrieved — what retrieval needs. IVF-PQ's "
        "losses come from its product quantiser (64 codes of 8 bits for 512 dimensions), not from the lists: nprobe "
        "32 → 128 adds little. Not yet measured: the 1M row (IVF k-means on 2 cores), local-feature re-ranking at "
        "scale.",
        "",
        header,
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {row['num_images']:,} | {row['index']} | {row['build_s']:.1f} | {row['peak_rss_gb']:.2f} | "
            f"{row['bytes_per_image']:.0f} | {row['load_s']:.2f} | {row['global_p50_ms']:.2f} | "
            f"{row['global_p95_ms']:.2f} | {row['global_p99_ms']:.2f} | {row['recall_at_100']:.3f} | "
            f"{row['positives_recall_at_100']:.3f} |"
            for row in rows
        ),
        "",
        "Extrapolated index size by the measured bytes per image of the largest run: "
        + ", ".join(
            f"{row['index']}: {row['bytes_per_image'] * 1e7 / 2**30:.1f} GiB at 10M, "
            f"{row['bytes_per_image'] * 1e8 / 2**30:.0f} GiB at 100M"
            for row in rows[-3:-1]
        ),
    ]
    markdown = "\n".join(lines)
    print(markdown)
    write_results("scale_cpu", {"rows": rows}, markdown)


if __name__ == "__main__":
    main()
