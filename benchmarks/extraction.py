"""Global-descriptor extraction throughput: ``retrieval.descriptor.extract.extract_descriptors`` (size-bucketed batches,
worker decoding, bf16 + channels_last on a GPU) against a plain loop (one image at a time, as cirtorch
extracts) on the same model and images, in the same run.

    python benchmarks/extraction.py                                  # CPU, lite0, 64 demo images
    python benchmarks/extraction.py --device cuda --backbone resnet50 --images 2000 --workers 14
Writes benchmarks/results/extraction_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import write_results
from datamodules.formats.gldv2 import load_gldv2_train
from retrieval.descriptor.extract import ExtractionSettings, extract_descriptors
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.images import load_rgb


@torch.no_grad()
def plain_loop(
    net: GlobalDescriptorNet, paths: list[Path], max_side: int, device: torch.device
) -> np.ndarray:
    """The naive way: decode, resize, forward, one image after the other, fp32."""
    net.eval().to(device)
    rows = []
    for path in paths:
        image = torch.from_numpy(np.asarray(load_rgb(path, max_side)).copy()).permute(2, 0, 1)
        pixels = net.normalize(image.float().div(255).unsqueeze(0).to(device))
        rows.append(net(pixels).cpu())
    return torch.cat(rows).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--data", type=Path, default=Path("data/demo"), help="a GLDv2-format folder")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    device = torch.device(args.device)
    images, _ = load_gldv2_train(args.data, clean=True)
    paths = [images.paths[i % len(images)] for i in range(args.images)]
    net = GlobalDescriptorNet(args.backbone, pretrained=False)
    settings = ExtractionSettings(
        max_side=args.max_side, scales=(1.0,), batch_size=args.batch_size, num_workers=args.workers
    )
    extract_descriptors(net, paths[: args.batch_size], settings, device=device, progress=False)  # warm-up
    rows = {}
    variants = (
        ("framework, 1 scale", (1.0,), None),
        ("framework, 3 scales", (1.0, 2**-0.5, 0.5), None),
        ("framework, 1 scale, sizes snapped to 32 px", (1.0,), 32),
    )
    for name, scales, size_step in variants:
        start = time.perf_counter()
        variant = ExtractionSettings(
            args.max_side, scales, args.batch_size, args.workers, size_step=size_step
        )
        extract_descriptors(net, paths, variant, device=device, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rows[name] = len(paths) / (time.perf_counter() - start)
    plain_paths = paths[: max(8, len(paths) // 4)]
    start = time.perf_counter()
    plain_loop(net, plain_paths, args.max_side, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    rows["plain loop, 1 scale, fp32, batch 1"] = len(plain_paths) / (time.perf_counter() - start)
    ratio = rows["framework, 1 scale"] / rows["plain loop, 1 scale, fp32, batch 1"]
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else None
    report = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        "gpu": gpu,
        "images_per_s": rows,
        "ratio_1_scale": ratio,
    }
    lines = [
        f"# Extraction throughput ({gpu or 'CPU'}, {args.backbone}, max side {args.max_side}, {args.workers} workers)",
        "",
        "| method | images/s |",
        "|---|---|",
        *[f"| {name} | {value:.1f} |" for name, value in rows.items()],
        "",
        f"framework / plain (1 scale): {ratio:.2f}×",
    ]
    print("\n".join(lines))
    write_results(f"extraction_{args.device}", report, "\n".join(lines))


if __name__ == "__main__":
    main()
