"""Tuple training data: (query, positive, negatives) from landmark-labelled images, re-mined every epoch.

At the start of every training epoch :meth:`TupleDataModule.train_dataloader` (called again each epoch because
the trainer runs with ``reload_dataloaders_every_n_epochs=1``) samples queries, one positive of the same landmark
per query, and a random pool; embeds them with the current model in eval mode; and picks, per query, the hardest
negatives — one per other landmark (cirtorch's scheme). The datasets never hold the network.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.image_datasets import (
    TrainAugmentation,
    Transform,
    Undecoded,
    collate_skipping_failures,
    transform_on_device,
    undecoded_image,
)
from datamodules.landmarks import LandmarkDataModule, LandmarkSplit, checked_int
from retrieval.descriptor.mining import TupleMining, mine_epoch_tuples
from retrieval.images import ImageLoadError, load_rgb
from retrieval.progress import stage

log = logging.getLogger(__name__)


class TupleDataset(Dataset):
    """``dataset[i]`` → ``{"images": (2 + K, 3, S, S)}`` in the order query, positive, K negatives,
    or ``None`` when one of its images cannot be read; with ``on_device`` the images are
    :class:`datamodules.image_datasets.Undecoded`."""

    def __init__(
        self,
        paths: list[Path],
        tuples: np.ndarray,
        transform: Transform,
        max_side: int | None,
        on_device: bool = False,
    ) -> None:
        if tuples.ndim != 2 or tuples.shape[1] < 3:
            raise ValueError(f"tuples must be (T, 2 + K) image indices, got shape {tuples.shape}")
        if on_device and max_side is None:
            raise ValueError("decoding on the device needs a max_side")
        self.paths = paths
        self.tuples = tuples
        self.transform = transform
        self.max_side = max_side
        self.on_device = on_device

    def __len__(self) -> int:
        return len(self.tuples)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        try:
            if self.on_device and self.max_side is not None:
                items = tuple(undecoded_image(self.paths[i], self.max_side) for i in self.tuples[index])
                return {"images": Undecoded(items, stack=True)}
            images = [self.transform(load_rgb(self.paths[i], self.max_side)) for i in self.tuples[index]]
        except ImageLoadError as error:
            log.debug("skipping tuple %d: %s", index, error)
            return None
        return {"images": torch.stack(images)}


class TupleDataModule(LandmarkDataModule):
    """GLDv2-format landmark data → mined training tuples and a validation set of held-out landmarks.

    Args:
        split, image_size, extraction_batch_size, num_workers, decode_max_side, augmentation, decode: see
            :class:`LandmarkDataModule`.
        mining: the negative-mining scheme.
        tuples_per_epoch: queries (hence tuples) per epoch (cirtorch: 2000).
        batch_size: tuples per training batch.
    """

    min_images_per_landmark = 2  # a query needs a positive

    def __init__(
        self,
        split: LandmarkSplit,
        mining: TupleMining,
        tuples_per_epoch: int = 2000,
        image_size: int = 362,
        batch_size: int = 5,
        extraction_batch_size: int = 32,
        num_workers: int = 4,
        augmentation: TrainAugmentation | None = None,
        decode_max_side: int | None = None,
        decode: str = "auto",
    ) -> None:
        super().__init__(
            split, image_size, extraction_batch_size, num_workers, decode_max_side, augmentation, decode
        )
        checked_int("tuples_per_epoch", tuples_per_epoch)
        checked_int("batch_size", batch_size)
        self.mining = mining
        self.tuples_per_epoch = tuples_per_epoch
        self.batch_size = batch_size
        self.unreadable: set[int] = set()  # train image indices found unreadable while mining

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self.training_images.num_landmarks <= self.mining.num_negatives:
            raise ValueError(
                f"{self.training_images.num_landmarks} training landmarks cannot give {self.mining.num_negatives} "
                "negatives of distinct other landmarks per tuple"
            )

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        if trainer is None or trainer.lightning_module is None:
            raise RuntimeError(
                "TupleDataModule.train_dataloader mines with the model: use it inside Trainer.fit"
            )
        if trainer.reload_dataloaders_every_n_epochs != 1:  # type: ignore[attr-defined]
            raise ValueError("tuple mining needs Trainer(reload_dataloaders_every_n_epochs=1)")
        tuples = self.mine_tuples(trainer.lightning_module, epoch=trainer.current_epoch)
        dataset = TupleDataset(
            self.training_images.paths,
            tuples,
            self.train_transform,
            self.decode_max_side,
            self.decodes_on_device(),
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            collate_fn=collate_skipping_failures,
            drop_last=False,
            pin_memory=torch.cuda.is_available(),
        )

    # ------------------------------------------------------------------------------------------------ mining
    def mine_tuples(self, module: pl.LightningModule, epoch: int) -> np.ndarray:
        """The epoch's tuples (T, 2 + K): query, positive, K negatives (indices into ``train_images``),
        mined with ``module``; images found unreadable are remembered and never sampled again."""
        readable = np.ones(len(self.training_images), dtype=bool)
        readable[list(self.unreadable)] = False
        mined = mine_epoch_tuples(
            self.training_images.labels,
            readable,
            self.mining,
            self.tuples_per_epoch,
            np.random.default_rng([self.seed, epoch]),
            lambda indices: self.embed(module, indices),
        )
        if len(mined.unreadable):
            self.unreadable.update(mined.unreadable.tolist())
            log.warning(
                "mining: %d unreadable images skipped (%d so far)",
                len(mined.unreadable),
                len(self.unreadable),
            )
        stats = mined.statistics
        if stats is None:
            return mined.tuples
        trainer = self.trainer
        for logger in trainer.loggers if trainer else []:
            logger.log_metrics(
                {
                    "mining/mean_positive_distance": stats.mean_positive_distance,
                    "mining/mean_negative_distance": stats.mean_negative_distance,
                    "mining/unreadable_images": float(len(self.unreadable)),
                },
                step=trainer.global_step if trainer else 0,
            )
        log.info(
            "epoch %d: mined %d tuples from a pool of %d; mean distance positive %.3f, negative %.3f",
            epoch,
            len(mined.tuples),
            mined.pool_size,
            stats.mean_positive_distance,
            stats.mean_negative_distance,
        )
        return mined.tuples

    @torch.no_grad()
    def embed(self, module: pl.LightningModule, indices: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """Embed train images ``indices`` (N,) with the model in eval mode, sharded over the ranks.

        Returns:
            embeddings (N, D) on the CPU (rows of unreadable images are zero) and a (N,) readable mask.
        """
        trainer = self.trainer
        world_size = trainer.world_size if trainer else 1
        rank = trainer.global_rank if trainer else 0
        shard = indices[rank::world_size]
        was_training = module.training
        module.eval()
        shard_embeddings: torch.Tensor | None = None
        shard_readable = torch.zeros(len(shard), dtype=torch.bool, device=module.device)
        loader = self._eval_loader([self.training_images.paths[i] for i in shard], device=module.device)
        # The trainer's precision (e.g. bf16 autocast) applies here too, outside Lightning's step hooks.
        precision_context = trainer.precision_plugin.forward_context if trainer else contextlib.nullcontext
        with stage("mining: embedding", len(shard), enabled=rank == 0) as bar:
            for undecoded in loader:
                batch = transform_on_device(
                    undecoded, self.eval_transform, module.device, self.decode_max_side, self.decode_counts
                )
                if "image" not in batch:
                    bar.update(batch["num_skipped"])
                    continue
                with precision_context():
                    output = module(batch["image"].to(module.device, non_blocking=True)).float()
                if shard_embeddings is None:
                    shard_embeddings = torch.zeros(len(shard), output.shape[1], device=module.device)
                shard_embeddings[batch["index"].to(module.device)] = output
                shard_readable[batch["index"].to(module.device)] = True
                bar.update(batch["num_skipped"] + len(batch["index"]))
        module.train(was_training)
        if shard_embeddings is None:
            raise ImageLoadError(f"none of the {len(shard)} images sampled for mining could be read")
        if trainer is None or world_size == 1:
            return shard_embeddings.cpu(), shard_readable.cpu().numpy()
        # Equal-length shards for all_gather: pad, gather (world, m, D), then undo the strided split.
        length = -(-len(indices) // world_size)
        padded = torch.zeros(length, shard_embeddings.shape[1], device=module.device)
        padded[: len(shard)] = shard_embeddings
        padded_readable = torch.zeros(length, dtype=torch.bool, device=module.device)
        padded_readable[: len(shard)] = shard_readable
        gathered = trainer.strategy.all_gather(padded).cpu()  # (world, m, D)
        gathered_readable = trainer.strategy.all_gather(padded_readable).cpu()
        embeddings = torch.zeros(len(indices), shard_embeddings.shape[1])
        readable = np.zeros(len(indices), dtype=bool)
        for source_rank in range(world_size):
            count = len(indices[source_rank::world_size])
            embeddings[source_rank::world_size] = gathered[source_rank, :count]
            readable[source_rank::world_size] = gathered_readable[source_rank, :count].numpy()
        return embeddings, readable
