"""What every benchmark script shares: where results and the shared real photos are, the machine a figure was
measured on, and writing a result pair (``<name>.json`` + ``<name>.md``) atomically."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import PIL
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
# BENCHMARK_RESULTS=<folder> writes elsewhere (benchmarks/gpu_checks.sh: under the GPU machine's $OUT).
RESULTS_DIRECTORY = Path(os.environ.get("BENCHMARK_RESULTS", REPO_ROOT / "benchmarks" / "results"))
REALPHOTOS = REPO_ROOT.parent / "shared" / "realphotos"


def environment() -> dict[str, Any]:
    """The machine and library versions behind a measurement."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "pillow": PIL.__version__,
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_results(name: str, report: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """``benchmarks/results/<name>.json`` (``report`` plus the environment) and ``<name>.md``, each written to a
    temporary file first and renamed, so an interrupted run never leaves half a result."""
    RESULTS_DIRECTORY.mkdir(parents=True, exist_ok=True)
    files = (RESULTS_DIRECTORY / f"{name}.json", RESULTS_DIRECTORY / f"{name}.md")
    contents = (
        json.dumps({**report, "environment": environment()}, indent=2, default=str) + "\n",
        markdown.rstrip("\n") + "\n",
    )
    for path, content in zip(files, contents, strict=True):
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(content, encoding="utf-8")
        temporary.replace(path)
    print(f"written to {files[0]} and {files[1].name}")
    return files
