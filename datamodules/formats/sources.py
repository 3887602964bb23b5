"""Benchmarks by name: :func:`load_benchmark` and :class:`BenchmarkSource` (what configs name: a kind and a root)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules.formats.folders import load_folder, load_realphotos
from datamodules.formats.gldv2 import load_gldv2_retrieval
from datamodules.formats.revisited import R1M_LIST, REVISITED_NAMES, load_revisited
from retrieval.benchmark import RetrievalBenchmark


def _revisited_loader(name: str, with_r1m: bool) -> Callable[[Path], RetrievalBenchmark]:
    def load(root: Path) -> RetrievalBenchmark:
        return load_revisited(root, name, distractor_list=root / R1M_LIST if with_r1m else None)

    return load


BENCHMARK_LOADERS: dict[str, Callable[[Path], RetrievalBenchmark]] = {
    **{name: _revisited_loader(name, with_r1m=False) for name in REVISITED_NAMES},
    **{f"{name}+1m": _revisited_loader(name, with_r1m=True) for name in ("roxford5k", "rparis6k")},
    "gldv2": lambda root: load_gldv2_retrieval(root / "gldv2"),
    "gldv2_retrieval": load_gldv2_retrieval,
    "realphotos": load_realphotos,
    "folder": load_folder,
}


def load_benchmark(name: str, root: str | Path) -> RetrievalBenchmark:
    """Load a benchmark by name from the data root.

    ``root`` is the folder the downloader fills: ``<root>/roxford5k``, ``<root>/rparis6k``, ``<root>/rdemo``,
    ``<root>/revisitop1m`` (for "roxford5k+1m" / "rparis6k+1m"), ``<root>/gldv2``. For "folder" (your own photos:
    a ``gt.json`` folder or one subfolder per place), "realphotos" (``../shared/realphotos``) and
    "gldv2_retrieval" (any GLDv2-format folder, e.g. the demo), ``root`` is that folder itself.
    """
    if name not in BENCHMARK_LOADERS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(BENCHMARK_LOADERS)}")
    return BENCHMARK_LOADERS[name](Path(root))


@dataclass(frozen=True)
class BenchmarkSource:
    """Where a benchmark lies, as a config names it: ``kind`` is a :data:`BENCHMARK_LOADERS` name, ``root`` its
    data folder; ``max_queries`` keeps a fixed, evenly spaced subset of the queries (quick validation runs)."""

    kind: str
    root: str
    max_queries: int | None = None

    def load(self) -> RetrievalBenchmark:
        benchmark = load_benchmark(self.kind, self.root)
        if self.max_queries is not None and self.max_queries < benchmark.num_queries:
            chosen = np.linspace(0, benchmark.num_queries - 1, self.max_queries).round().astype(np.int64)
            benchmark = benchmark.select_queries(np.unique(chosen))
        return benchmark
