"""Evaluation time benchmark: the README's evaluation commands on a folder benchmark, from an empty cache.

    python benchmarks/evaluation.py [--benchmark-root ../shared/realphotos]

Runs ``python evaluate.py benchmarks=folder benchmarks.folder.root=<root>`` as a user would (its own thread
setting: one torch thread on machines with two cores or fewer), with the default multi-scale extraction (max side
1024, scales 1, 1/√2, 1/2), with ``extraction=single_512``, with the Lite1 and Lite2 offline weights, and with
re-ranking (``rerank=global_plus_inliers local_features=rootsift_2048``), each from empty caches, and writes the
wall time and the metrics (after re-ranking, with its cost, for the last) to
``benchmarks/results/evaluation.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REALPHOTOS, REPO_ROOT, write_results
from experiments.tables import markdown_table, percent

SETTINGS = {
    "default (multi-scale, max side 1024)": [],
    "extraction=single_512": ["extraction=single_512"],
    "extraction=single_512 net=efficientnet_lite1": ["extraction=single_512", "net=efficientnet_lite1"],
    "extraction=single_512 net=efficientnet_lite2": ["extraction=single_512", "net=efficientnet_lite2"],
    # Re-ranked rows report the metrics after re-ranking (the global ones are the single_512 row's).
    "extraction=single_512 rerank=global_plus_inliers local_features=rootsift_2048": [
        "extraction=single_512",
        "rerank=global_plus_inliers",
        "local_features=rootsift_2048",
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark-root", type=Path, default=REALPHOTOS)
    args = parser.parse_args()
    environment = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    rows = []
    for name, overrides in SETTINGS.items():
        with tempfile.TemporaryDirectory() as scratch:
            command = [
                sys.executable,
                "evaluate.py",
                "benchmarks=folder",
                f"benchmarks.folder.root={args.benchmark_root}",
                *overrides,
                f"cache_dir={scratch}/cache",
                f"feature_cache_dir={scratch}/features",
                f"hydra.run.dir={scratch}/run",
            ]
            start = time.perf_counter()
            subprocess.run(command, cwd=REPO_ROOT, env=environment, check=True, capture_output=True)
            seconds = time.perf_counter() - start
            metrics = json.loads((Path(scratch) / "run" / "results.json").read_text())["results"]["folder"]
        metrics = metrics.get("reranked", metrics)
        rows.append(
            {
                "setting": name,
                "seconds": round(seconds, 1),
                "mAP": metrics["mAP"],
                "mP@10": metrics["mP@10"],
                "ms_per_query": metrics.get("ms_per_query"),
                "bytes_per_image": metrics.get("bytes_per_image"),
            }
        )
        print(rows[-1], flush=True)
    lines = [
        f"# Evaluation time on {args.benchmark_root.name} (`python evaluate.py benchmarks=folder`)",
        "",
        f"From an empty descriptor cache, as a user runs it (the app's own thread setting), {os.cpu_count()} CPU "
        "cores shared with other jobs; every image is extracted once (leave-one-out queries reuse their database "
        "descriptors).",
        "",
        markdown_table(
            ["setting", "wall time", "mAP", "mP@10", "re-ranking ms/query", "local features KB/image"],
            [
                [
                    row["setting"],
                    f"{row['seconds'] / 60:.1f} min",
                    percent(row["mAP"]),
                    percent(row["mP@10"]),
                    "—" if row["ms_per_query"] is None else f"{row['ms_per_query']:.0f}",
                    "—" if row["bytes_per_image"] is None else f"{row['bytes_per_image'] / 1024:.0f}",
                ]
                for row in rows
            ],
        ),
    ]
    markdown = "\n".join(lines)
    print(markdown)
    write_results("evaluation", {"benchmark_root": str(args.benchmark_root), "rows": rows}, markdown)


if __name__ == "__main__":
    main()
