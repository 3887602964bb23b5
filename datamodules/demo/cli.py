"""``python -m datamodules.demo``: generate the demo unless it is complete."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from datamodules.demo.config import DEMO_SCALES, MARKER_FILE
from datamodules.demo.writer import generate_demo


def _directory_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: generate the demo under ``--root`` unless its ``.complete`` marker exists (``--force``)."""
    parser = argparse.ArgumentParser(prog="python -m datamodules.demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=Path("data/demo"), help="output folder (default: data/demo)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed gives identical files"
    )
    parser.add_argument("--scale", choices=sorted(DEMO_SCALES), default="default", help="dataset size")
    parser.add_argument("--force", action="store_true", help="regenerate even if <root>/.complete exists")
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error(f"--seed must be non-negative, got {args.seed}")
    if (args.root / MARKER_FILE).exists() and not args.force:
        print(f"demo: {args.root} is complete; nothing to do (--force regenerates it)")
        return 0
    start = time.perf_counter()
    manifest = generate_demo(args.root, DEMO_SCALES[args.scale], args.seed)
    seconds = time.perf_counter() - start
    counts = manifest.counts
    print(
        f"demo: {counts['train_rows']} train rows ({counts['train_landmarks']} landmarks), "
        f"{counts['index_images']} index, {counts['test_images']} test, "
        f"{counts['rdemo_database_images']}+{counts['rdemo_queries']} rdemo images in {args.root}: "
        f"{_directory_bytes(args.root) / 2**20:.1f} MB, {seconds:.1f} s"
    )
    return 0
