"""Search benchmark: exact and approximate nearest-neighbour search over L2-normalised descriptors.

CPU (default): 100,000 x 512-D database, 1,000 queries, k = 100, on synthetic clustered data (about ten images
per "landmark", so that neighbours are meaningful). Rows: a numpy brute-force reference (BLAS matmul +
argpartition), faiss flat, IVF-PQ (two nprobe values) and HNSW (two ef_search values) through
:class:`retrieval.descriptor.index.DescriptorIndex`, and the chunked torch matmul + top-k of
:func:`retrieval.descriptor.index.exact_search`; build time, queries/s, recall@100 against the numpy reference, and
landmark recall@100 (the share of each query's same-landmark images in its top 100). One thread for every method
(fair comparison), plus two-thread rows for faiss flat and torch. Beyond the ~10 same-landmark images, the
top 100 are near-random distractors whose order isotropic 512-D noise sets, the hardest case for PQ codes and
graphs: recall@100 of the approximate kinds is low there while their landmark recall stays high.

GPU (``--gpu``): GLDv2 retrieval scale, 117,577 queries x 761,757 database x 512-D, random normalised data,
k = 100. Rows: torch matmul + top-k (chunked) in fp32, TF32 and bf16, faiss GPU flat when the installed faiss
has GPU support (otherwise the row says it was skipped), and faiss CPU flat on all cores for a subset of the
queries; recall@100 of each row against the fp32 torch result. Skipped with a message when CUDA is absent.

Run from the repository root (numpy's BLAS reads its thread count from the environment at import)::

    OMP_NUM_THREADS=1 python benchmarks/search.py          # writes benchmarks/results/search_cpu.{json,md}
    OMP_NUM_THREADS=1 python benchmarks/search.py --gpu    # also writes benchmarks/results/search_gpu.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import TypeVar

import faiss
import numpy as np
import torch

from benchmarks.common import write_results
from retrieval.descriptor.index import DescriptorIndex, create_index, exact_search, faiss_gpu_available

Result = TypeVar("Result")


# GLDv2 retrieval: index and test set sizes.
GLDV2_NUM_DATABASE = 761_757
GLDV2_NUM_QUERIES = 117_577


@dataclass
class Row:
    """One measured method. ``build_s`` covers training and adding; ``search_s`` the search of all queries
    (including conversion of the results); ``recall_at_k`` is the overlap with the reference top-k;
    ``landmark_recall`` (clustered data only) the fraction of the database images of each query's landmark that
    are in its top-k."""

    method: str
    threads: int | str
    build_s: float | None
    search_s: float | None
    queries_per_s: float | None
    recall_at_k: float | None
    landmark_recall: float | None
    note: str = ""


@dataclass(frozen=True)
class GroundTruth:
    """What every row is scored against: ``reference`` (Q, k) top-k indices of an exact search and, for
    clustered data, the landmark of each query (Q,) and of each database vector (N,)."""

    reference: np.ndarray
    query_landmarks: np.ndarray | None = None
    database_landmarks: np.ndarray | None = None

    def first(self, num_queries: int) -> GroundTruth:
        query_landmarks = None if self.query_landmarks is None else self.query_landmarks[:num_queries]
        return GroundTruth(self.reference[:num_queries], query_landmarks, self.database_landmarks)

    def recall_at_k(self, found: np.ndarray) -> float:
        """Mean fraction of each reference row's indices present in the same row of ``found`` (Q, k)."""
        hits = sum(
            np.intersect1d(found_row, reference_row).size
            for found_row, reference_row in zip(found, self.reference, strict=True)
        )
        return hits / self.reference.size

    def landmark_recall(self, found: np.ndarray) -> float | None:
        """Fraction of all (query, same-landmark database image) pairs found in the top-k ``found`` (Q, k)."""
        if self.query_landmarks is None or self.database_landmarks is None:
            return None
        found_landmarks = np.where(found >= 0, self.database_landmarks[found], -1)
        hits = (found_landmarks == self.query_landmarks[:, None]).sum()
        images_per_landmark = np.bincount(self.database_landmarks, minlength=self.query_landmarks.max() + 1)
        return float(hits / images_per_landmark[self.query_landmarks].sum())

    def row(
        self,
        method: str,
        threads: int | str,
        build_s: float | None,
        search_s: float,
        found: np.ndarray,
        note: str = "",
    ) -> Row:
        num_queries = len(self.reference)
        return Row(
            method,
            threads,
            build_s,
            search_s,
            num_queries / search_s,
            self.recall_at_k(found),
            self.landmark_recall(found),
            note,
        )


def clustered_data(
    num_database: int, num_queries: int, dim: int, images_per_landmark: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """L2-normalised float32 points around random unit "landmark" centres (each image at about 0.6 cosine
    similarity to the others of its landmark, near 0 to the rest), queries drawn from the same landmarks.

    Returns:
        database (num_database, dim), queries (num_queries, dim), and the landmark of each (int64).
    """
    generator = torch.Generator().manual_seed(seed)
    num_landmarks = max(1, num_database // images_per_landmark)
    centres = torch.nn.functional.normalize(torch.randn(num_landmarks, dim, generator=generator), dim=1)
    num_rows = num_database + num_queries
    landmarks = torch.randint(num_landmarks, (num_rows,), generator=generator)
    noise = torch.nn.functional.normalize(torch.randn(num_rows, dim, generator=generator), dim=1)
    points = torch.nn.functional.normalize(centres[landmarks] + 0.8 * noise, dim=1).numpy()
    landmark_array = landmarks.numpy()
    return (
        points[:num_database],
        points[num_database:],
        landmark_array[:num_database],
        landmark_array[num_database:],
    )


def numpy_top_k(queries: np.ndarray, database: np.ndarray, k: int, chunk_size: int = 256) -> np.ndarray:
    """Brute-force reference: (Q, k) int64 indices of the highest inner products, best first."""
    top_indices = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), chunk_size):
        scores = queries[start : start + chunk_size] @ database.T
        candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, candidates, axis=1), axis=1)
        top_indices[start : start + chunk_size] = np.take_along_axis(candidates, order, axis=1)
    return top_indices


def timed(function: Callable[[], Result], synchronize: bool = False) -> tuple[Result, float]:
    """``function()`` and its wall-clock seconds (after the GPU finished its work, when ``synchronize``)."""
    if synchronize:
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function()
    if synchronize:
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def set_threads(threads: int) -> None:
    faiss.omp_set_num_threads(threads)
    torch.set_num_threads(threads)


def measure_index(
    label: str,
    index: DescriptorIndex,
    database: np.ndarray,
    queries: np.ndarray,
    truth: GroundTruth,
    k: int,
    threads: int | str,
    search_settings: list[dict[str, int]] | None = None,
) -> list[Row]:
    """Build ``index`` once, then search with each of ``search_settings`` (passed to set_search_parameters)."""
    ids = [str(row) for row in range(len(database))]
    _, build_s = timed(lambda: index.add(database, ids))
    rows = []
    for settings in search_settings or [{}]:
        if settings:
            index.set_search_parameters(**settings)
        index.search(queries[:8], k)  # warm-up
        result, search_s = timed(lambda: index.search(queries, k))
        note = ", ".join(f"{name}={value}" for name, value in settings.items())
        rows.append(truth.row(label, threads, build_s, search_s, result.indices, note))
        print(format_row(rows[-1]), flush=True)
    return rows


def format_row(row: Row) -> str:
    def number(value: float | None, pattern: str) -> str:
        return "-" if value is None else format(value, pattern)

    return (
        f"| {row.method} | {row.threads} | {number(row.build_s, '.2f')} | {number(row.search_s, '.3f')} | "
        f"{number(row.queries_per_s, ',.0f')} | {number(row.recall_at_k, '.4f')} | "
        f"{number(row.landmark_recall, '.4f')} | {row.note} |"
    )


def markdown(title: str, config: dict[str, object], rows: list[Row], k: int) -> str:
    lines = [f"# {title}", "", ", ".join(f"{name}={value}" for name, value in config.items()), ""]
    lines.append(
        f"| method | threads | build s | search s | queries/s | recall@{k} | landmark recall@{k} | note |"
    )
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    lines.extend(format_row(row) for row in rows)
    return "\n".join(lines) + "\n"


def write_search_results(name: str, title: str, config: dict[str, object], rows: list[Row], k: int) -> None:
    report = {
        "config": config,
        "faiss_gpu_available": faiss_gpu_available(),
        "rows": [asdict(row) for row in rows],
    }
    write_results(name, report, markdown(title, config, rows, k))


def run_cpu(args: argparse.Namespace) -> None:
    k, dim = args.k, args.dim
    config: dict[str, object] = {
        "num_database": args.num_database,
        "num_queries": args.num_queries,
        "dim": dim,
        "k": k,
        "data": f"clustered, {args.images_per_landmark} images per landmark",
        "ivfpq": f"nlist={args.nlist}, m={args.pq_m}, nbits=8, training sample {args.training_sample_size}",
        "hnsw": f"M={args.hnsw_m}, ef_construction={args.ef_construction}",
    }
    print(json.dumps(config))
    database, queries, database_landmarks, query_landmarks = clustered_data(
        args.num_database, args.num_queries, dim, args.images_per_landmark, seed=0
    )
    print(markdown("search benchmark, CPU", {}, [], k).splitlines()[-2])

    set_threads(1)
    reference, reference_s = timed(lambda: numpy_top_k(queries, database, k))
    truth = GroundTruth(reference, query_landmarks, database_landmarks)
    rows = [truth.row("numpy brute force (reference)", 1, None, reference_s, reference)]
    print(format_row(rows[-1]), flush=True)

    database_tensor, query_tensor = torch.from_numpy(database), torch.from_numpy(queries)
    for threads in (1, 2):
        set_threads(threads)
        flat = create_index("flat", dim, "bench", "cpu")
        rows += measure_index("faiss flat", flat, database, queries, truth, k, threads)
        exact_search(query_tensor[:8], database_tensor, k)  # warm-up
        (_, found), search_s = timed(lambda: exact_search(query_tensor, database_tensor, k))
        rows.append(truth.row("torch matmul + topk", threads, None, search_s, found.numpy()))
        print(format_row(rows[-1]), flush=True)

    set_threads(1)
    ivfpq = create_index(
        "ivfpq",
        dim,
        "bench",
        "cpu",
        nlist=args.nlist,
        m=args.pq_m,
        nbits=8,
        nprobe=args.nprobe[0],
        training_sample_size=args.training_sample_size,
    )
    nprobe_settings = [{"nprobe": value} for value in args.nprobe]
    rows += measure_index("faiss IVF-PQ", ivfpq, database, queries, truth, k, 1, nprobe_settings)
    hnsw = create_index("hnsw", dim, "bench", "cpu", M=args.hnsw_m, ef_construction=args.ef_construction)
    ef_settings = [{"ef_search": value} for value in args.ef_search]
    rows += measure_index("faiss HNSW", hnsw, database, queries, truth, k, 1, ef_settings)
    write_search_results("search_cpu", "Search benchmark, CPU", config, rows, k)


def torch_gpu_rows(
    queries: torch.Tensor, database: torch.Tensor, args: argparse.Namespace
) -> tuple[list[Row], GroundTruth]:
    """Rows for the chunked torch search of ``queries`` (Q, D) in ``database`` (N, D), both on the GPU, and the
    ground truth made of the fp32 row's top-k, against which every row is scored. The bf16 row searches bf16
    copies (made before timing, as a bf16 index would be stored)."""
    rows: list[Row] = []
    truth: GroundTruth | None = None
    for label, compute_dtype, allow_tf32 in (
        ("torch matmul + topk, fp32", torch.float32, False),
        ("torch matmul + topk, TF32", torch.float32, True),
        ("torch matmul + topk, bf16", torch.bfloat16, False),
    ):
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        typed_queries, typed_database = queries.to(compute_dtype), database.to(compute_dtype)
        exact_search(typed_queries[:1024], typed_database, args.k)  # warm-up
        (_, found), search_s = timed(
            partial(
                exact_search,
                typed_queries,
                typed_database,
                args.k,
                query_chunk_size=args.gpu_query_chunk_size,
                database_chunk_size=args.gpu_database_chunk_size,
            ),
            synchronize=True,
        )
        indices = found.cpu().numpy()
        if truth is None:  # the fp32 row comes first
            truth = GroundTruth(indices)
        rows.append(truth.row(label, "GPU", None, search_s, indices))
        print(format_row(rows[-1]), flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    if truth is None:
        raise RuntimeError("the fp32 reference row did not run")
    return rows, truth


def run_gpu(args: argparse.Namespace) -> None:
    if not torch.cuda.is_available():
        print("--gpu: no CUDA device; GPU benchmark skipped")
        return
    k, dim = args.k, args.dim
    config: dict[str, object] = {
        "num_database": args.gpu_num_database,
        "num_queries": args.gpu_num_queries,
        "dim": dim,
        "k": k,
        "data": "random normalised",
        "query_chunk_size": args.gpu_query_chunk_size,
        "database_chunk_size": args.gpu_database_chunk_size,
    }
    print(json.dumps(config))
    print(markdown("search benchmark, GPU", {}, [], k).splitlines()[-2])
    generator = torch.Generator(device="cuda").manual_seed(0)
    database = torch.nn.functional.normalize(
        torch.randn(args.gpu_num_database, dim, device="cuda", generator=generator), dim=1
    )
    queries = torch.nn.functional.normalize(
        torch.randn(args.gpu_num_queries, dim, device="cuda", generator=generator), dim=1
    )
    rows, truth = torch_gpu_rows(queries, database, args)
    database_numpy, queries_numpy = database.cpu().numpy(), queries.cpu().numpy()
    del database, queries
    torch.cuda.empty_cache()

    if faiss_gpu_available():
        gpu_index = create_index("flat", dim, "bench", "gpu")
        rows += measure_index("faiss GPU flat", gpu_index, database_numpy, queries_numpy, truth, k, "GPU")
        del gpu_index
    else:
        skipped = "skipped: installed faiss has no GPU support"
        rows.append(Row("faiss GPU flat", "GPU", None, None, None, None, None, skipped))
        print(format_row(rows[-1]), flush=True)

    threads = os.cpu_count() or 1
    set_threads(threads)
    subset = args.cpu_query_subset
    cpu_index = create_index("flat", dim, "bench", "cpu")
    for row in measure_index(
        "faiss CPU flat", cpu_index, database_numpy, queries_numpy[:subset], truth.first(subset), k, threads
    ):
        row.note = f"first {subset} queries"
        rows.append(row)
    write_search_results("search_gpu", "Search benchmark, GPU", config, rows, k)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-database", type=int, default=100_000)
    parser.add_argument("--num-queries", type=int, default=1_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--images-per-landmark", type=int, default=10)
    parser.add_argument("--nlist", type=int, default=512)
    parser.add_argument("--pq-m", type=int, default=64, help="IVF-PQ sub-quantizers (bytes per vector)")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--training-sample-size", type=int, default=50_000)
    parser.add_argument("--hnsw-m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=64)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--gpu", action="store_true", help="also run the GLDv2-scale GPU benchmark")
    parser.add_argument("--skip-cpu", action="store_true", help="with --gpu: run only the GPU benchmark")
    parser.add_argument("--gpu-num-database", type=int, default=GLDV2_NUM_DATABASE)
    parser.add_argument("--gpu-num-queries", type=int, default=GLDV2_NUM_QUERIES)
    parser.add_argument("--gpu-query-chunk-size", type=int, default=4096)
    parser.add_argument("--gpu-database-chunk-size", type=int, default=262_144)
    parser.add_argument(
        "--cpu-query-subset", type=int, default=2048, help="queries for the faiss CPU row at GPU scale"
    )
    args = parser.parse_args()
    if not args.skip_cpu:
        run_cpu(args)
    if args.gpu:
        run_gpu(args)


if __name__ == "__main__":
    main()
