"""Training throughput: the framework (Lightning + TupleDataModule + SiameseRetrievalModule) against a plain
PyTorch loop doing the same work on the same model, in the same run.

One epoch each of cirtorch's procedure — embed the queries, positives and a random pool with the current model,
mine hard negatives, train on the tuples — timed in two parts: mining (extraction images/s) and training
(tuple images/s, data loading included). The ratio framework / plain is the figure of merit.

The data is the demo dataset, its training images hard-linked under many new ids so that the sizes are
realistic (``--copies``). On a GPU the plain loop uses the same bf16 autocast and channels_last as the framework.

    python benchmarks/training.py                      # CPU, small sizes
    python benchmarks/training.py --device cuda --backbone resnet50 --image-size 362 --copies 30 \\
        --tuples 1000 --pool 6000 --batch-size 8 --workers 14
Writes benchmarks/results/training_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from benchmarks.common import write_results
from datamodules.formats.gldv2 import image_path, load_gldv2_train
from datamodules.image_datasets import (
    ImageListDataset,
    TrainAugmentation,
    build_eval_transform,
    build_train_transform,
    collate_skipping_failures,
)
from datamodules.landmarks import LandmarkSplit
from datamodules.tuples import TupleDataModule, TupleDataset
from lightning_modules.siamese import SiameseRetrievalModule
from retrieval.descriptor.losses import ContrastiveLoss
from retrieval.descriptor.mining import TupleMining, mine_hard_negatives
from retrieval.descriptor.network import GlobalDescriptorNet


def replicated_demo(source: Path, target: Path, copies: int) -> Path:
    """The demo's clean training images hard-linked ``copies`` times under new ids and new landmark ids."""
    if (target / "train.csv").is_file():
        return target
    images, _ = load_gldv2_train(source, clean=True)
    rows: list[tuple[str, int]] = []
    clean: dict[int, list[str]] = {}
    for copy in range(copies):
        for number, (image_id, landmark) in enumerate(zip(images.ids, images.labels.tolist(), strict=True)):
            new_id = f"{copy:04x}{number:012x}"[::-1]
            new_landmark = copy * 1_000_000 + landmark
            destination = image_path(target, "train", new_id)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.link(image_path(source, "train", image_id), destination)
            rows.append((new_id, new_landmark))
            clean.setdefault(new_landmark, []).append(new_id)
    with open(target / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "url", "landmark_id"])
        writer.writerows((image_id, "", landmark) for image_id, landmark in rows)
    with open(target / "train_clean.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["landmark_id", "images"])
        writer.writerows((landmark, " ".join(ids)) for landmark, ids in clean.items())
    return target


class EpochTimer(pl.Callback):
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.start


def run_framework(args: argparse.Namespace, root: Path, decode: str) -> dict[str, float]:
    net = GlobalDescriptorNet(args.backbone, pretrained=False)
    module = SiameseRetrievalModule(
        net, ContrastiveLoss(0.7), optimizer=lambda groups: torch.optim.Adam(groups, lr=1e-6)
    )
    datamodule = TupleDataModule(
        LandmarkSplit(str(root), val_fraction=0.0),
        TupleMining("hard", pool_size=args.pool, num_negatives=args.negatives),
        tuples_per_epoch=args.tuples,
        image_size=args.image_size,
        batch_size=args.batch_size,
        extraction_batch_size=args.extraction_batch_size,
        num_workers=args.workers,
        decode=decode,
    )
    timings: dict[str, float] = {}
    mine, embed = datamodule.mine_tuples, datamodule.embed

    def timed_mine(*positional, **keywords):
        start = time.perf_counter()
        tuples = mine(*positional, **keywords)
        timings["mining_s"] = time.perf_counter() - start
        return tuples

    def timed_embed(module, indices):
        start = time.perf_counter()
        result = embed(module, indices)
        timings["extraction_s"] = time.perf_counter() - start
        timings["embedded_images"] = len(indices)
        return result

    datamodule.mine_tuples = timed_mine  # type: ignore[method-assign]
    datamodule.embed = timed_embed  # type: ignore[method-assign]
    timer = EpochTimer()
    trainer = pl.Trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu",
        devices=1,
        precision="bf16-mixed" if args.device == "cuda" else "32-true",
        max_epochs=1,
        reload_dataloaders_every_n_epochs=1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=datamodule)
    return summarize(
        timings["mining_s"], timings["extraction_s"], int(timings["embedded_images"]), timer.seconds, args
    )


def summarize(
    mining_s: float, extraction_s: float, embedded: int, training_s: float, args: argparse.Namespace
) -> dict[str, float]:
    training_images = args.tuples * (2 + args.negatives)
    return {
        "mining_s": mining_s,
        "extraction_images_per_s": embedded / extraction_s,
        "training_s": training_s,
        "training_images_per_s": training_images / training_s,
        "epoch_s": mining_s + training_s,
        "epoch_images_per_s": training_images / (mining_s + training_s),
    }


def run_plain(args: argparse.Namespace, root: Path) -> dict[str, float]:
    """The same epoch written as a plain PyTorch script: no Lightning, no datamodule."""
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    images, _ = load_gldv2_train(root, clean=True)
    labels = images.labels
    rng = np.random.default_rng(0)
    net = GlobalDescriptorNet(args.backbone, pretrained=False).to(device)
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-6)
    loss_function = ContrastiveLoss(0.7)
    start = time.perf_counter()
    queries = rng.choice(len(labels), size=args.tuples, replace=False)
    positives = np.array(
        [rng.choice(np.flatnonzero((labels == labels[q]) & (np.arange(len(labels)) != q))) for q in queries]
    )
    pool = rng.choice(len(labels), size=min(args.pool, len(labels)), replace=False)
    to_embed = np.unique(np.concatenate([queries, positives, pool]))
    loader = DataLoader(
        ImageListDataset(
            [images.paths[i] for i in to_embed],
            build_eval_transform(args.image_size),
            max_side=2 * args.image_size,
        ),
        batch_size=args.extraction_batch_size,
        num_workers=args.workers,
        collate_fn=collate_skipping_failures,
        pin_memory=cuda,
    )
    embeddings = torch.zeros(len(to_embed), net.output_dim, device=device)
    extraction_start = time.perf_counter()
    net.eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        for batch in loader:
            pixels = net.normalize(batch["image"].to(device, non_blocking=True))
            if cuda:
                pixels = pixels.contiguous(memory_format=torch.channels_last)
            embeddings[batch["index"].to(device)] = net(pixels).float()
    if cuda:
        torch.cuda.synchronize()
    extraction_s = time.perf_counter() - extraction_start
    row = {int(index): i for i, index in enumerate(to_embed)}
    label_tensor = torch.from_numpy(labels)
    negative_rows = mine_hard_negatives(
        embeddings[[row[int(q)] for q in queries]],
        label_tensor[queries],
        embeddings[[row[int(p)] for p in pool]],
        label_tensor[pool],
        args.negatives,
    )
    tuples = np.column_stack([queries, positives, pool[negative_rows.numpy()]])
    mining_s = time.perf_counter() - start

    net.train()
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    train_loader = DataLoader(
        TupleDataset(
            images.paths,
            tuples,
            build_train_transform(args.image_size, TrainAugmentation()),
            max_side=2 * args.image_size,
        ),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        collate_fn=collate_skipping_failures,
        pin_memory=cuda,
    )
    training_start = time.perf_counter()
    for batch in train_loader:
        batch_images = batch["images"].to(device, non_blocking=True)
        size, tuple_size = batch_images.shape[:2]
        pixels = net.normalize(batch_images.flatten(0, 1))
        if cuda:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            descriptors = net(pixels).float().view(size, tuple_size, -1)
        loss = loss_function(descriptors[:, 0], descriptors[:, 1], descriptors[:, 2:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if cuda:
        torch.cuda.synchronize()
    training_s = time.perf_counter() - training_start
    return summarize(mining_s, extraction_s, len(to_embed), training_s, args)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--copies", type=int, default=2, help="replications of the demo training set")
    parser.add_argument("--tuples", type=int, default=24)
    parser.add_argument("--pool", type=int, default=300)
    parser.add_argument("--negatives", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--extraction-batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--data", type=Path, default=Path("data/benchmark_training"))
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of each, best kept")
    args = parser.parse_args()
    demo = args.data / "demo"
    if not (demo / ".complete").is_file():
        from datamodules.demo import DemoConfig, generate_demo

        generate_demo(demo, DemoConfig(), seed=0)
    root = replicated_demo(demo, args.data / f"replicated_x{args.copies}", args.copies)
    run_plain(args, root)  # warm-up: cuDNN autotuning, page cache
    decodes = ("cpu", "device")
    framework: dict[str, list[dict[str, float]]] = {decode: [] for decode in decodes}
    plain = []
    for _ in range(args.repeats):
        for decode in decodes:
            framework[decode].append(run_framework(args, root, decode))
        plain.append(run_plain(args, root))
    best = {decode: max(runs, key=lambda r: r["epoch_images_per_s"]) for decode, runs in framework.items()}
    best_plain = max(plain, key=lambda r: r["epoch_images_per_s"])
    ratios = {
        decode: {key: row[key] / best_plain[key] for key in row if key.endswith("per_s")}
        for decode, row in best.items()
    }
    report = {
        "settings": {key: str(value) for key, value in vars(args).items()},
        "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
        "framework": best["cpu"],
        "framework_decode_on_device": best["device"],
        "plain": best_plain,
        "ratio_framework_over_plain": ratios["cpu"],
        "ratio_framework_decode_on_device_over_plain": ratios["device"],
    }
    lines = [
        f"# Training throughput ({report['gpu'] or 'CPU'}, {args.backbone}, {args.image_size} px, "
        f"{args.tuples} tuples of {2 + args.negatives}, pool {args.pool}, {args.workers} workers)",
        "",
        "The framework decodes and augments JPEGs in its workers (`decode=cpu`, PIL) or where the network runs "
        "(`decode=device`); ratios are to the plain loop.",
        "",
        "| figure | framework, decode=cpu | ratio | framework, decode=device | ratio | plain PyTorch |",
        "|---|---|---|---|---|---|",
    ]
    for key in best_plain:
        cells = []
        for decode in decodes:
            ratio = f"{ratios[decode][key]:.2f}" if key in ratios[decode] else ""
            cells += [f"{best[decode][key]:.1f}", ratio]
        lines.append(f"| {key} | {' | '.join(cells)} | {best_plain[key]:.1f} |")
    print("\n".join(lines))
    write_results(f"training_{args.device}", report, "\n".join(lines))


if __name__ == "__main__":
    main()
