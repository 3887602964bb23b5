"""A million-image collection opened and searched the way ``search.py`` and ``serve.py`` do (``SearchEngine``):
how long opening takes and what one query costs end to end — global extraction of the query photo, IVF-PQ search,
the query's local features and ``rerank=compact`` of the top 100.

    python benchmarks/serve_scale.py [--num-images 1000000] [--queries 20]

The collection is synthetic where a real one would take days to extract here: the global index holds clustered
synthetic descriptors (:func:`benchmarks.scale.clustered_descriptors`, the dimension of the network's output),
the compact store the shared real photos' features replicated to N images (:mod:`benchmarks.scale_rerank`), and
the image table points every image at its real photo. Queries are the real place photos, so extraction,
matching and verification do real work; which images the global index returns is not meaningful here. Writes
``benchmarks/results/serve_scale.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import REALPHOTOS, write_results
from benchmarks.scale import clustered_descriptors
from benchmarks.scale_rerank import COMPACT, RealQueries
from datamodules.formats.folders import load_folder
from experiments.tables import markdown_table
from retrieval.collection import (
    COLLECTION_FILE,
    COLLECTION_FORMAT_VERSION,
    CURRENT_FILE,
    GENERATIONS,
    GLOBAL_INDEX,
    IMAGES_FILE,
    LOCAL_STORE,
    NETWORK_FILE,
)
from retrieval.descriptor.extract import ExtractionSettings
from retrieval.descriptor.index import create_index
from retrieval.descriptor.network import GlobalDescriptorNet, descriptor_id
from retrieval.descriptor.weights import OFFLINE_WEIGHTS
from retrieval.image_table import ImageTable
from retrieval.local.store import FeatureStoreWriter
from retrieval.search_engine import SearchEngine


def resident_gb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def write_collection(root: Path, num_images: int, real: RealQueries) -> dict[str, float]:
    """The synthetic collection folder (one generation); seconds of each part."""
    benchmark = load_folder(REALPHOTOS)
    net = GlobalDescriptorNet("tf_efficientnet_lite0", pretrained=OFFLINE_WEIGHTS).eval()
    settings = ExtractionSettings(max_side=512, scales=(1.0,), num_workers=0)
    generation = root / GENERATIONS / "synthetic"
    generation.mkdir(parents=True)
    times = {}
    start = time.perf_counter()
    database, _ = clustered_descriptors(num_images, net.output_dim, seed=num_images)
    index_id = f"{descriptor_id(net)}|{settings.key()}"
    ids = [f"image{i:07d}" for i in range(num_images)]
    index = create_index("ivfpq", net.output_dim, index_id, device="cpu", num_vectors=num_images, nlist=None)
    index.add(database, ids)
    index.save(generation / GLOBAL_INDEX)
    del database, index
    times["global_index_s"] = time.perf_counter() - start
    start = time.perf_counter()
    real_ids, paths = real.store.ids, dict(zip(benchmark.database_ids, benchmark.database_paths, strict=True))
    with FeatureStoreWriter(generation / LOCAL_STORE, real.store.metadata, 512, real.store.codec) as writer:
        for position, image_id in enumerate(ids):
            writer.add(image_id, real.store[real_ids[position % len(real_ids)]])
    times["local_store_s"] = time.perf_counter() - start
    relative = {image_id: Path(paths[real_ids[i % len(real_ids)]]).name for i, image_id in enumerate(ids)}
    ImageTable.of(ids, relative, dict.fromkeys(ids)).save(generation / IMAGES_FILE)
    net.save(generation / NETWORK_FILE)
    manifest = {
        "format_version": COLLECTION_FORMAT_VERSION,
        "descriptor_id": descriptor_id(net),
        "index_id": index_id,
        "num_images": num_images,
        "images_root": str(REALPHOTOS.resolve()),
        "skipped": {},
        "extraction": asdict(settings),
    }
    (generation / COLLECTION_FILE).write_text(json.dumps(manifest))
    (root / CURRENT_FILE).write_text("synthetic\n")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-images", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    real = RealQueries.load()
    if real is None:
        raise SystemExit(f"{REALPHOTOS} is absent")
    benchmark = load_folder(REALPHOTOS)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as folder:
        root = Path(folder) / "collection"
        times = write_collection(root, args.num_images, real)
        before = resident_gb()
        start = time.perf_counter()
        engine = SearchEngine.open(root, device="cpu")
        open_s = time.perf_counter() - start
        rss_gb = resident_gb() - before
        config = COMPACT.config()
        global_ms, total_ms = [], []
        for path in benchmark.query_paths[: args.queries]:
            start = time.perf_counter()
            engine.search(path, top_k=10)
            global_ms.append(1000 * (time.perf_counter() - start))
            start = time.perf_counter()
            hits = engine.search(path, top_k=10, rerank_config=config, shortlist=100)
            total_ms.append(1000 * (time.perf_counter() - start))
            assert len(hits) == 10
    row = {
        "num_images": args.num_images,
        **times,
        "open_s": open_s,
        "engine_rss_gb": rss_gb,
        "search_global_p50_ms": float(np.percentile(global_ms, 50)),
        "search_global_p95_ms": float(np.percentile(global_ms, 95)),
        "search_reranked_p50_ms": float(np.percentile(total_ms, 50)),
        "search_reranked_p95_ms": float(np.percentile(total_ms, 95)),
    }
    print(row)
    markdown = "\n".join(
        [
            f"# A {args.num_images:,}-image collection through SearchEngine (CPU, one torch thread)",
            "",
            "Synthetic global index (IVF-PQ, float16 re-scoring) and the real photos' compact features replicated; "
            f"{args.queries} real place photos as queries. A query = decoding and describing the photo (512 px), "
            "searching; re-ranked: also its 2,048 RootSIFT features at 1,024 px, encoded, and `rerank=compact` "
            "of the top 100. Open: `SearchEngine.open` (network, index, image table, store); engine RSS: the resident "
            "memory opening adds (the store is memory-mapped: its pages come and go with the page cache).",
            "",
            markdown_table(
                [
                    "images",
                    "open s",
                    "engine RSS GB",
                    "query p50 / p95 ms (global)",
                    "query p50 / p95 ms (re-ranked)",
                ],
                [
                    [
                        f"{args.num_images:,}",
                        f"{open_s:.2f}",
                        f"{rss_gb:.2f}",
                        f"{row['search_global_p50_ms']:.0f} / {row['search_global_p95_ms']:.0f}",
                        f"{row['search_reranked_p50_ms']:.0f} / {row['search_reranked_p95_ms']:.0f}",
                    ]
                ],
            ),
        ]
    )
    print(markdown)
    write_results("serve_scale", {"rows": [row]}, markdown)


if __name__ == "__main__":
    main()
