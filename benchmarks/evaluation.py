"""Evaluation time benchmark: the README's evaluation commands on a folder benchmark, from an empty cache.

    python benchmarks/evaluation.py [--benchmark-root ../shared/realphotos]

Runs ``python evaluate.py benchmarks=folder benchmarks.folder.root=<root>`` as a user would (its own thread
setting: one torch thread on machines with two cores or fewer), with the default multi-scale extraction (max side
1024, scales 1, 1/√2, 1/2) and with ``extraction=single_512``, each from an empty descriptor cache, and writes the
wall time and the metrics to ``benchmarks/results/evaluation.{json,md}``.
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

SETTINGS = {"default (multi-scale, max side 1024)": [], "extraction=single_512": ["extraction=single_512"]}


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
                f"hydra.run.dir={scratch}/run",
            ]
            start = time.perf_counter()
            subprocess.run(command, cwd=REPO_ROOT, env=environment, check=True, capture_output=True)
            seconds = time.perf_counter() - start
            metrics = json.loads((Path(scratch) / "run" / "results.json").read_text())["results"]["folder"]
        rows.append(
            {"setting": name, "seconds": round(seconds, 1), "mAP": metrics["mAP"], "mP@10": metrics["mP@10"]}
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
            ["setting", "wall time", "mAP", "mP@10"],
            [
                [row["setting"], f"{row['seconds'] / 60:.1f} min", percent(row["mAP"]), percent(row["mP@10"])]
                for row in rows
            ],
        ),
    ]
    markdown = "\n".join(lines)
    print(markdown)
    write_results("evaluation", {"benchmark_root": str(args.benchmark_root), "rows": rows}, markdown)


if __name__ == "__main__":
    main()
