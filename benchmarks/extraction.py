"""Global-descriptor extraction throughput: ``retrieval.descriptor.extract.extract_descriptors`` (size-bucketed batches,
worker decoding, bf16 + channels_last on a GPU), JPEGs decoded on the device (``decode="device"``), and index.py's
prediction job (``Trainer.predict`` over ``ImagePredictionDataModule``, shards written) against the network alone
(uint8 batches already on the device, the ceiling) and a plain loop (one image at a time, as cirtorch extracts),
on the same model and images, in the same run.

    python benchmarks/extraction.py                                  # CPU, lite0, 64 demo images
    python benchmarks/extraction.py --device cuda --backbone resnet50 --images 2000 --workers 14
Writes benchmarks/results/extraction_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from benchmarks.common import write_results
from datamodules.formats.gldv2 import load_gldv2_train
from datamodules.image_prediction import ImagePredictionDataModule
from lightning_modules.descriptor_prediction import DescriptorPrediction
from lightning_modules.shard_writer import DescriptorShardWriter
from retrieval.descriptor.batching import SizeBuckets
from retrieval.descriptor.extract import (
    ExtractionSettings,
    describe_batch,
    extract_descriptors,
    load_pixels,
    multiscale_power,
)
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.descriptor.shards import DescriptorShards
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


@torch.no_grad()
def network_only(
    net: GlobalDescriptorNet, paths: list[Path], settings: ExtractionSettings, device: torch.device
) -> float:
    """Images/s of the network alone on the framework's batches: every image decoded and sized beforehand,
    grouped by :class:`SizeBuckets` as ``extract_descriptors`` groups them, each batch already on the device."""
    buckets: SizeBuckets[torch.Tensor] = SizeBuckets(settings.batch_size)
    batches: list[list[torch.Tensor]] = []
    for position, path in enumerate(paths):
        if (full := buckets.add(position, load_pixels(path, settings))) is not None:
            batches.append(full[1])
    batches.extend(images for _, images in buckets.drain())
    on_device = [torch.stack(images).to(device) for images in batches]
    net.eval().to(device)
    if device.type == "cuda":
        net.to(memory_format=torch.channels_last)
    power = multiscale_power(net)
    describe_batch(net, on_device[0], (1.0,), power)  # warm-up
    start = time.perf_counter()
    for images_on_device in on_device:
        describe_batch(net, images_on_device, (1.0,), power)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(paths) / (time.perf_counter() - start)


def prediction_job(
    net: GlobalDescriptorNet, paths: list[Path], settings: ExtractionSettings, device: torch.device
) -> float:
    """Images/s of index.py's global-descriptor job on one device: shards of 256 images written to a temporary
    folder."""
    with tempfile.TemporaryDirectory() as folder:
        ids = [f"{index}" for index in range(len(paths))]
        shards = DescriptorShards(Path(folder) / "shards", ids, net.output_dim, shard_size=256)
        trainer = pl.Trainer(
            accelerator=device.type,
            devices=1,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[DescriptorShardWriter(shards)],
        )
        start = time.perf_counter()
        trainer.predict(
            DescriptorPrediction(net, settings.scales, settings.scale_aggregation),
            datamodule=ImagePredictionDataModule(paths, shards, settings),
            return_predictions=False,
        )
        return len(paths) / (time.perf_counter() - start)


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
    ceiling_name = "network only, 1 scale, snapped (the same batches, already on the device)"
    snapped = ExtractionSettings(args.max_side, (1.0,), args.batch_size, args.workers, size_step=32)
    rows = {ceiling_name: network_only(net, paths, snapped, device)}
    variants = (
        ("framework, 1 scale", (1.0,), None, "cpu"),
        ("framework, 3 scales", (1.0, 2**-0.5, 0.5), None, "cpu"),
        ("framework, 1 scale, sizes snapped to 32 px", (1.0,), 32, "cpu"),
        ("framework, 1 scale, snapped, JPEGs decoded on the device", (1.0,), 32, "device"),
    )
    for name, scales, size_step, decode in variants:
        start = time.perf_counter()
        variant = ExtractionSettings(
            args.max_side, scales, args.batch_size, args.workers, size_step=size_step, decode=decode
        )
        extract_descriptors(net, paths, variant, device=device, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rows[name] = len(paths) / (time.perf_counter() - start)
    for decode in ("cpu", "device"):
        variant = ExtractionSettings(
            args.max_side, (1.0,), args.batch_size, args.workers, size_step=32, decode=decode
        )
        rows[f"index.py prediction job, snapped, decode={decode}"] = prediction_job(
            net, paths, variant, device
        )
    plain_paths = paths[: max(8, len(paths) // 4)]
    start = time.perf_counter()
    plain_loop(net, plain_paths, args.max_side, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    rows["plain loop, 1 scale, fp32, batch 1"] = len(plain_paths) / (time.perf_counter() - start)
    ratio = rows["framework, 1 scale"] / rows["plain loop, 1 scale, fp32, batch 1"]
    ceiling = rows[ceiling_name]
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else None
    report = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        "gpu": gpu,
        "images_per_s": rows,
        "ratio_1_scale": ratio,
        "ratio_to_network_only": {name: value / ceiling for name, value in rows.items()},
    }
    lines = [
        f"# Extraction throughput ({gpu or 'CPU'}, {args.backbone}, max side {args.max_side}, {args.workers} workers)",
        "",
        f"{len(paths)} images; the network alone runs the snapped rows' batches, decoded and moved to the device "
        "beforehand.",
        "",
        "| method | images/s | of network only |",
        "|---|---|---|",
        *[f"| {name} | {value:.1f} | {value / ceiling:.2f} |" for name, value in rows.items()],
        "",
        f"framework / plain (1 scale): {ratio:.2f}×",
    ]
    print("\n".join(lines))
    write_results(f"extraction_{args.device}", report, "\n".join(lines))


if __name__ == "__main__":
    main()
