"""Resize benchmark: which downscaling gives the best global descriptors, and at what cost?

    python benchmarks/resize.py [--benchmark-root ../shared/realphotos] [--sides 512 384]

On a folder benchmark (default: the shared real photos, 1024-px JPEGs), the untrained ImageNet EfficientNet-Lite0
with GeM, one scale, at each ``--sides`` value: every image decoded with or without JPEG DCT scaling ("draft",
decoding at 1/2, 1/4 or 1/8 of the size directly) and then resized to the side with Pillow's antialiased
bilinear, bicubic or Lanczos filter. Prints and writes ``benchmarks/results/resize.{json,md}``: mAP, mP@10 and
decode + resize milliseconds per image for each combination; the project's own path (``load_pixels``) is the
"draft on, bilinear" row.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from benchmarks.common import REALPHOTOS, write_results
from datamodules.formats.folders import load_folder
from retrieval.descriptor.extract import ExtractionSettings, describe_pixels, image_pixels, load_pixels
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.descriptor.weights import OFFLINE_WEIGHTS
from retrieval.evaluation import rank_and_score
from retrieval.images import decode

FILTERS = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class Row:
    side: int
    draft: bool
    filter: str
    map: float
    mp10: float
    ms_per_image: float


def resized(path: Path, side: int, draft: bool, resample: Image.Resampling) -> Image.Image:
    decoded = decode(path, side, reduce_only=True) if draft else decode(path)
    image = decoded.rgb
    scale = side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, resample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark-root", type=Path, default=REALPHOTOS)
    parser.add_argument("--sides", type=int, nargs="+", default=[512, 384])
    args = parser.parse_args()
    torch.set_num_threads(1)
    benchmark = load_folder(args.benchmark_root)
    if benchmark.query_paths != benchmark.database_paths[: benchmark.num_queries]:
        raise SystemExit("this benchmark needs a leave-one-out folder benchmark without query boxes")
    net = GlobalDescriptorNet("tf_efficientnet_lite0", pretrained=OFFLINE_WEIGHTS).eval()
    rows = []
    for side in args.sides:
        settings = ExtractionSettings(max_side=side, scales=(1.0,))
        for draft in (True, False):
            for name, resample in FILTERS.items():
                start = time.perf_counter()
                pixels = [
                    image_pixels(resized(path, side, draft, resample), settings)
                    for path in benchmark.database_paths
                ]
                seconds = time.perf_counter() - start
                database = torch.from_numpy(describe_pixels(net, pixels, settings))
                # Leave-one-out: the queries are the first database images (the place photos).
                result = rank_and_score(database[: benchmark.num_queries], database, benchmark)
                rows.append(
                    Row(
                        side,
                        draft,
                        name,
                        result.metrics["mAP"],
                        result.metrics["mP@10"],
                        1000 * seconds / len(pixels),
                    )
                )
                print(rows[-1], flush=True)
        # The project's own path must equal the draft + bilinear row.
        own = torch.from_numpy(
            describe_pixels(net, [load_pixels(path, settings) for path in benchmark.database_paths], settings)
        )
        own_metrics = rank_and_score(own[: benchmark.num_queries], own, benchmark).metrics
        reference = next(row for row in rows if row.side == side and row.draft and row.filter == "bilinear")
        if abs(own_metrics["mAP"] - reference.map) > 1e-9:
            raise SystemExit(f"load_pixels gives mAP {own_metrics['mAP']}, not the draft + bilinear row's")
    lines = [
        f"# Resize benchmark on {benchmark.name} ({benchmark.num_database} images; Lite0 GeM, one scale, 1 thread)",
        "",
        "Decoded with JPEG DCT scaling (draft) or in full, then resized by Pillow (antialiased). The project's "
        "path (`retrieval.descriptor.extract.load_pixels`, also queries and training decodes) is draft + "
        "bilinear; its metrics equal that row (checked). ms/image: decode + resize, this shared CPU.",
        "",
        "| side | draft | filter | mAP | mP@10 | ms/image |",
        "|---|---|---|---|---|---|",
        *(
            f"| {row.side} | {'on' if row.draft else 'off'} | {row.filter} | {100 * row.map:.2f} | "
            f"{100 * row.mp10:.2f} | {row.ms_per_image:.1f} |"
            for row in rows
        ),
    ]
    markdown = "\n".join(lines)
    print(markdown)
    write_results("resize", {"benchmark": benchmark.name, "rows": [row.__dict__ for row in rows]}, markdown)


if __name__ == "__main__":
    main()
