"""SuperGlobal (global descriptors only) on a folder benchmark: its extraction modules — regional GeM + GeM+
(``net.pooling=rgem net.gem_p=4.6 net.learn_p=false``) and Scale-GeM (``extraction.scale_aggregation=max``) —
and its re-ranking (``post=superglobal``), beside plain GeM, cirtorch's multi-scale mean and αQE.

    python benchmarks/superglobal.py [--benchmark-root ../shared/realphotos] [--top-m 100]

EfficientNet-Lite0 (offline ImageNet weights), max side 512, one torch thread; descriptors cached under
outputs/cache/descriptors. Reports mAP, mP@10 and the post-processing's milliseconds per query (search + re-ranking,
the whole benchmark — search, post-processing and scoring — divided by its queries, best of 5 runs) to
``benchmarks/results/superglobal.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import REALPHOTOS, REPO_ROOT, write_results
from datamodules.formats.folders import load_folder
from experiments.tables import markdown_table, percent
from retrieval.descriptor.extract import ExtractionSettings, extract_cached
from retrieval.descriptor.network import GlobalDescriptorNet, descriptor_id
from retrieval.descriptor.superglobal import SuperGlobalRerank
from retrieval.evaluation import PostProcessing, rank_and_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark-root", type=Path, default=REALPHOTOS)
    parser.add_argument("--top-m", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    benchmark = load_folder(args.benchmark_root)
    m = args.top_m
    cache = REPO_ROOT / "outputs" / "cache" / "descriptors"
    single = ExtractionSettings(max_side=512, scales=(1.0,))
    three = (1.0, 1 / 2**0.5, 0.5)
    extractions = {
        "GeM p=3, one scale": ("gem", 3.0, single),
        "GeM p=3, 3 scales (power mean)": ("gem", 3.0, ExtractionSettings(max_side=512, scales=three)),
        "regional GeM + GeM+ p=4.6, one scale": ("rgem", 4.6, single),
        "regional GeM + GeM+ p=4.6, 3 scales, Scale-GeM (max)": (
            "rgem",
            4.6,
            ExtractionSettings(max_side=512, scales=three, scale_aggregation="max"),
        ),
    }
    posts = {
        "global only": PostProcessing(),
        "αQE k=2 (α=3)": PostProcessing(query_expansion_k=2),
        **{
            f"SuperGlobal M={m} k={k} β={beta}": PostProcessing(superglobal=SuperGlobalRerank(m, k, beta))
            for k, beta in ((3, 0.15), (9, 0.15))
        },
    }
    rows: list[dict[str, Any]] = []
    for extraction_name, (pooling, p, settings) in extractions.items():
        net = GlobalDescriptorNet(
            "tf_efficientnet_lite0",
            pooling=pooling,
            gem_p=p,
            learn_p=False,
            pretrained="efficientnet_lite0_pypi",
        ).eval()
        database, _ = extract_cached(net, benchmark.database_paths, descriptor_id(net), cache, settings)
        queries, _ = extract_cached(
            net, benchmark.query_paths, descriptor_id(net), cache, settings, benchmark.query_boxes
        )
        database_t, queries_t = torch.from_numpy(database), torch.from_numpy(queries)
        for name, post in posts.items():
            seconds = []
            for _ in range(5):
                start = time.perf_counter()
                result = rank_and_score(queries_t, database_t, benchmark, post)
                seconds.append(time.perf_counter() - start)
            rows.append(
                {
                    "extraction": extraction_name,
                    "setting": name,
                    "mAP": result.metrics["mAP"],
                    "mP@10": result.metrics["mP@10"],
                    "ms_per_query": 1000 * min(seconds) / benchmark.num_queries,
                }
            )
            print(rows[-1], flush=True)
    lines = [
        f"# SuperGlobal extraction and re-ranking on {args.benchmark_root.name} ({benchmark.num_queries} queries, "
        f"{benchmark.num_database} images)",
        "",
        "EfficientNet-Lite0 (ImageNet, no landmark training), max side 512, one torch thread. ms/query: exact "
        "search, post-processing and scoring of the whole benchmark divided by its queries (best of 5); the "
        "extraction is not in it.",
        "",
        markdown_table(
            ["extraction", "post-processing", "mAP", "mP@10", "ms/query"],
            [
                [
                    row["extraction"],
                    row["setting"],
                    percent(row["mAP"]),
                    percent(row["mP@10"]),
                    f"{row['ms_per_query']:.2f}",
                ]
                for row in rows
            ],
        ),
    ]
    markdown = "\n".join(lines)
    print(markdown)
    write_results("superglobal", {"benchmark_root": str(args.benchmark_root), "rows": rows}, markdown)


if __name__ == "__main__":
    main()
