"""Dataset-analysis benchmark: images per second of the per-image analysis, with one worker and with all cores.

What is timed is :func:`datamodules.analysis.analyze_image` (header and EXIF, decoding at reduced size through
``retrieval.images.load_rgb``, grayscale and chroma statistics, perceptual hash) over every image of a dataset, in a
process pool fed chunks of images, as the scan runs it. Each dataset is read once before timing, so the page cache
holds it and the figures measure decoding and analysis rather than the disk. Datasets:

- ``demo``: the train images of the demo (``--demo-root``, generated into a temporary folder when absent):
  small procedural JPEGs (longest side 320-480), with its corrupt and missing files;
- ``realphotos``: the real photos of ``../shared/realphotos`` (longest side 1024), when present.

A dataset's list of images is repeated up to ``--min-images`` so that every timing is long enough for the pool's
start to be negligible. For the demo it also times the whole scan (:func:`datamodules.analysis.scan_images`:
``train.csv`` streaming, chunk files, progress bar) with the most workers. Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/analysis.py                  # 1 worker and one per core
    OMP_NUM_THREADS=1 python benchmarks/analysis.py --workers 1 4 8 16

It writes ``benchmarks/results/analysis.json`` and ``analysis.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.common import REALPHOTOS, environment, write_results
from datamodules.analysis.image_properties import ImageAnalysisSettings, analyze_image
from datamodules.analysis.scan import iter_train_rows, scan_images
from datamodules.demo import generate_demo
from datamodules.formats.gldv2 import image_path

CHUNK_SIZE = 32


@dataclass
class Row:
    """One measurement: ``images_per_s`` over all workers, ``images_per_s_per_worker`` divides it by them."""

    dataset: str
    method: str
    workers: int
    images: int
    seconds: float
    images_per_s: float
    images_per_s_per_worker: float


def analyze_paths(paths: Sequence[str], settings: ImageAnalysisSettings) -> int:
    """Analyse images (in a worker process); returns how many."""
    for path in paths:
        analyze_image(path, settings)
    return len(paths)


def measure_pool(
    dataset: str, paths: Sequence[Path], workers: int, settings: ImageAnalysisSettings, repeats: int
) -> Row:
    """The best of ``repeats`` timings of analysing ``paths`` in ``workers`` processes (pool start included),
    chunks of ``CHUNK_SIZE`` images."""
    chunks = [
        [str(path) for path in paths[start : start + CHUNK_SIZE]]
        for start in range(0, len(paths), CHUNK_SIZE)
    ]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=workers) as executor:
            analysed = sum(executor.map(analyze_paths, chunks, [settings] * len(chunks)))
        best = min(best, time.perf_counter() - start)
    return Row(dataset, "analyze_image", workers, analysed, best, analysed / best, analysed / best / workers)


def measure_scan(root: Path, workers: int, settings: ImageAnalysisSettings, repeats: int) -> Row:
    """The best of ``repeats`` full scans of ``root`` into fresh folders."""
    best = float("inf")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as work_dir:
            start = time.perf_counter()
            scan_images(root, work_dir, settings, chunk_size=CHUNK_SIZE, num_workers=workers, progress=False)
            best = min(best, time.perf_counter() - start)
    rows = sum(1 for _ in iter_train_rows(root / "train.csv"))
    return Row("demo", "scan_images (whole scan)", workers, rows, best, rows / best, rows / best / workers)


def warm_cache(paths: Sequence[Path]) -> None:
    """Read every file once, so that timings measure decoding rather than the disk."""
    for path in paths:
        if path.is_file():
            path.read_bytes()


def format_table(rows: Sequence[Row]) -> str:
    lines = [
        "| dataset | method | workers | images | seconds | images/s | images/s per worker |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {row.dataset} | {row.method} | {row.workers} | {row.images} | {row.seconds:.2f} | "
        f"{row.images_per_s:,.0f} | {row.images_per_s_per_worker:,.0f} |"
        for row in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--demo-root", type=Path, default=Path("data/demo"), help="the demo dataset (default: data/demo)"
    )
    parser.add_argument(
        "--realphotos", type=Path, default=REALPHOTOS / "images", help="folder of real photos (JPEG)"
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1], help="worker counts to time"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timings per row; the best is kept")
    parser.add_argument(
        "--min-images", type=int, default=2000, help="repeat a dataset's images up to this many"
    )
    args = parser.parse_args()
    if min(args.workers) < 1 or args.repeats < 1 or args.min_images < 1:
        parser.error("--workers, --repeats and --min-images must be positive")
    settings = ImageAnalysisSettings()
    with tempfile.TemporaryDirectory() as scratch:
        demo_root = args.demo_root
        if not (demo_root / "train.csv").is_file():
            demo_root = Path(scratch) / "demo"
            print(f"{args.demo_root} has no demo; generating one in {demo_root}")
            generate_demo(demo_root)
        datasets = {
            "demo": [
                image_path(demo_root, "train", image_id)
                for image_id, _ in iter_train_rows(demo_root / "train.csv")
            ]
        }
        if args.realphotos.is_dir():
            datasets["realphotos"] = sorted(args.realphotos.rglob("*.jpg"))
        else:
            print(f"{args.realphotos} is absent; benchmarking the demo only")
        rows: list[Row] = []
        for name, images in datasets.items():
            warm_cache(images)
            paths = images * math.ceil(args.min_images / len(images))
            for workers in sorted(set(args.workers)):
                rows.append(measure_pool(name, paths, workers, settings, args.repeats))
                print(format_table(rows[-1:]).splitlines()[-1], flush=True)
        rows.append(measure_scan(demo_root, max(args.workers), settings, args.repeats))
    table = format_table(rows)
    print(table)
    machine = environment()
    write_results(
        "analysis",
        {"settings": asdict(settings), "rows": [asdict(row) for row in rows]},
        "# Dataset-analysis benchmark\n\n"
        f"Per-image analysis (`analyze_image`, max side {settings.max_side}) in a process pool, chunks of {CHUNK_SIZE} "
        f"images, each dataset repeated up to {args.min_images} images, best of {args.repeats}, files in the page "
        f"cache; {machine['cpu_count']} CPU cores, "
        f"{machine['platform']}, Python {machine['python']}, Pillow {machine['pillow']}.\n\n" + table,
    )


if __name__ == "__main__":
    main()
