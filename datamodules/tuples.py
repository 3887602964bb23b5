"""Tuple training data: (query, positive, negatives) from landmark-labelled images, re-mined every epoch.

At the start of every training epoch :meth:`TupleDataModule.train_dataloader` (called again each epoch because
the trainer runs with ``reload_dataloaders_every_n_epochs=1``) samples queries, one positive of the same landmark
per query, and a random pool; embeds them with the current model in eval mode; and picks, per query, the hardest
negatives — one per other landmark (cirtorch's scheme). The datasets never hold the network.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from datamodules.image_datasets import Transform, build_train_transform, collate_skipping_failures
from datamodules.landmarks import IdFilter, LandmarkDataModule
from retrieval.images import ImageLoadError, load_rgb
from retrieval.mining import mine_hard_negatives, mine_random_negatives, tuple_statistics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TupleMining:
    """How the negatives of each epoch's tuples are chosen.

    Args:
        strategy: ``hard`` (nearest images of other landmarks under the current model) or ``random`` (ablation).
        pool_size: images embedded as negative candidates each epoch (cirtorch: 20000).
        num_negatives: negatives per tuple, each of a different landmark (cirtorch: 5).
    """

    strategy: Literal["hard", "random"] = "hard"
    pool_size: int = 20000
    num_negatives: int = 5

    def __post_init__(self) -> None:
        if self.strategy not in ("hard", "random"):
            raise ValueError(f"mining strategy must be 'hard' or 'random', got {self.strategy!r}")
        if self.num_negatives < 1 or self.pool_size < 1:
            raise ValueError("num_negatives and pool_size must be positive")


class TupleDataset(Dataset):
    """``dataset[i]`` → ``{"images": (2 + K, 3, S, S)}`` in the order query, positive, K negatives,
    or ``None`` when one of its images cannot be read."""

    def __init__(
        self, paths: list[Path], tuples: np.ndarray, transform: Transform, max_side: int | None
    ) -> None:
        if tuples.ndim != 2 or tuples.shape[1] < 3:
            raise ValueError(f"tuples must be (T, 2 + K) image indices, got shape {tuples.shape}")
        self.paths = paths
        self.tuples = tuples
        self.transform = transform
        self.max_side = max_side

    def __len__(self) -> int:
        return len(self.tuples)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        try:
            images = [self.transform(load_rgb(self.paths[i], self.max_side)) for i in self.tuples[index]]
        except ImageLoadError as error:
            log.debug("skipping tuple %d: %s", index, error)
            return None
        return {"images": torch.stack(images)}


class TupleDataModule(LandmarkDataModule):
    """GLDv2-format landmark data → mined training tuples and a validation set of held-out landmarks.

    Args:
        root, clean, min_images_per_landmark, max_images_per_landmark, val_fraction, image_size,
        extraction_batch_size, num_workers, filters, seed: see :class:`LandmarkDataModule`.
        mining: the negative-mining scheme.
        tuples_per_epoch: queries (hence tuples) per epoch (cirtorch: 2000).
        batch_size: tuples per training batch.
        min_crop_scale / color_jitter / horizontal_flip: training augmentation.
    """

    def __init__(
        self,
        root: str,
        mining: TupleMining,
        clean: bool = True,
        min_images_per_landmark: int = 2,
        max_images_per_landmark: int | None = None,
        val_fraction: float = 0.1,
        tuples_per_epoch: int = 2000,
        image_size: int = 362,
        batch_size: int = 5,
        extraction_batch_size: int = 32,
        num_workers: int = 4,
        min_crop_scale: float = 0.5,
        color_jitter: float = 0.2,
        horizontal_flip: bool = False,
        filters: IdFilter | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            root=root,
            clean=clean,
            min_images_per_landmark=max(2, min_images_per_landmark),
            max_images_per_landmark=max_images_per_landmark,
            val_fraction=val_fraction,
            image_size=image_size,
            extraction_batch_size=extraction_batch_size,
            num_workers=num_workers,
            filters=filters,
            seed=seed,
        )
        if tuples_per_epoch < 1 or batch_size < 1:
            raise ValueError("tuples_per_epoch and batch_size must be positive")
        self.mining = mining
        self.tuples_per_epoch = tuples_per_epoch
        self.batch_size = batch_size
        self.train_transform = build_train_transform(
            image_size, min_crop_scale, color_jitter, horizontal_flip
        )
        self.unreadable: set[int] = set()  # train image indices found unreadable while mining

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        assert self.train_images is not None
        if self.train_images.num_landmarks <= self.mining.num_negatives:
            raise ValueError(
                f"{self.train_images.num_landmarks} training landmarks cannot give {self.mining.num_negatives} "
                "negatives of distinct other landmarks per tuple"
            )

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        if trainer is None or trainer.lightning_module is None:
            raise RuntimeError(
                "TupleDataModule.train_dataloader mines with the model: use it inside Trainer.fit"
            )
        if trainer.reload_dataloaders_every_n_epochs != 1:
            raise ValueError("tuple mining needs Trainer(reload_dataloaders_every_n_epochs=1)")
        tuples = self.mine_tuples(trainer.lightning_module, epoch=trainer.current_epoch)
        assert self.train_images is not None
        dataset = TupleDataset(
            self.train_images.paths, tuples, self.train_transform, max_side=2 * self.image_size
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
    def sample_queries_and_positives(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``tuples_per_epoch`` queries (images of landmarks with ≥ 2 readable images) and, for each, a random
        other image of its landmark: two (Q,) index arrays into ``train_images``."""
        assert self.train_images is not None
        labels = self.train_images.labels
        readable = np.ones(len(labels), dtype=bool)
        readable[list(self.unreadable)] = False
        members: dict[int, np.ndarray] = {}
        for landmark in np.unique(labels):
            indices = np.flatnonzero((labels == landmark) & readable)
            if len(indices) >= 2:
                members[int(landmark)] = indices
        eligible = np.concatenate(list(members.values())) if members else np.empty(0, dtype=np.int64)
        if len(eligible) == 0:
            raise ValueError("no landmark has two readable training images")
        queries = rng.choice(eligible, size=min(self.tuples_per_epoch, len(eligible)), replace=False)
        positives = np.empty_like(queries)
        for row, query in enumerate(queries):
            candidates = members[int(labels[query])]
            positives[row] = rng.choice(candidates[candidates != query])
        return queries, positives

    def mine_tuples(self, module: pl.LightningModule, epoch: int) -> np.ndarray:
        """The epoch's tuples (T, 2 + K): query, positive, K negatives (indices into ``train_images``)."""
        assert self.train_images is not None
        rng = np.random.default_rng([self.seed, epoch])
        labels = torch.from_numpy(self.train_images.labels)
        queries, positives = self.sample_queries_and_positives(rng)
        num_negatives = self.mining.num_negatives
        if self.mining.strategy == "random":
            generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
            pool = np.arange(len(labels))
            negatives = pool[
                mine_random_negatives(labels[queries], labels[pool], num_negatives, generator).numpy()
            ]
            return np.column_stack([queries, positives, negatives])

        candidates = np.setdiff1d(np.arange(len(labels)), np.fromiter(self.unreadable, dtype=np.int64))
        pool = rng.choice(candidates, size=min(self.mining.pool_size, len(candidates)), replace=False)
        to_embed = np.unique(np.concatenate([queries, positives, pool]))
        embeddings, readable = self.embed(module, to_embed)
        newly_unreadable = to_embed[~readable]
        if len(newly_unreadable):
            self.unreadable.update(newly_unreadable.tolist())
            log.warning(
                "mining: %d unreadable images skipped (%d so far)",
                len(newly_unreadable),
                len(self.unreadable),
            )
        row_of = {int(index): row for row, index in enumerate(to_embed)}
        keep = np.array(
            [readable[row_of[q]] and readable[row_of[p]] for q, p in zip(queries, positives, strict=True)]
        )
        queries, positives = queries[keep], positives[keep]
        pool = pool[readable[[row_of[int(i)] for i in pool]]]

        def rows(indices: np.ndarray) -> torch.Tensor:
            return embeddings[[row_of[int(i)] for i in indices]]

        negative_rows = mine_hard_negatives(
            rows(queries), labels[queries], rows(pool), labels[pool], num_negatives
        )
        negatives = pool[negative_rows.numpy()]
        stats = tuple_statistics(
            rows(queries), rows(positives), rows(negatives.reshape(-1)).view(len(queries), num_negatives, -1)
        )
        for logger in self.trainer.loggers if self.trainer else []:
            logger.log_metrics(
                {
                    "mining/mean_positive_distance": stats.mean_positive_distance,
                    "mining/mean_negative_distance": stats.mean_negative_distance,
                    "mining/unreadable_images": float(len(self.unreadable)),
                },
                step=self.trainer.global_step,
            )
        log.info(
            "epoch %d: mined %d tuples from a pool of %d; mean distance positive %.3f, negative %.3f",
            epoch,
            len(queries),
            len(pool),
            stats.mean_positive_distance,
            stats.mean_negative_distance,
        )
        return np.column_stack([queries, positives, negatives])

    @torch.no_grad()
    def embed(self, module: pl.LightningModule, indices: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """Embed train images ``indices`` (N,) with the model in eval mode, sharded over the ranks.

        Returns:
            embeddings (N, D) on the CPU (rows of unreadable images are zero) and a (N,) readable mask.
        """
        assert self.train_images is not None
        trainer = self.trainer
        world_size = trainer.world_size if trainer else 1
        rank = trainer.global_rank if trainer else 0
        shard = indices[rank::world_size]
        was_training = module.training
        module.eval()
        shard_embeddings: torch.Tensor | None = None
        shard_readable = torch.zeros(len(shard), dtype=torch.bool, device=module.device)
        loader = self._eval_loader([self.train_images.paths[i] for i in shard])
        # The trainer's precision (e.g. bf16 autocast) applies here too, outside Lightning's step hooks.
        precision_context = trainer.precision_plugin.forward_context if trainer else contextlib.nullcontext
        for batch in tqdm(loader, desc="mining: embedding", disable=rank != 0, leave=False):
            if "image" not in batch:
                continue
            with precision_context():
                output = module(batch["image"].to(module.device, non_blocking=True)).float()
            if shard_embeddings is None:
                shard_embeddings = torch.zeros(len(shard), output.shape[1], device=module.device)
            shard_embeddings[batch["index"].to(module.device)] = output
            shard_readable[batch["index"].to(module.device)] = True
        module.train(was_training)
        if shard_embeddings is None:
            raise ImageLoadError(f"none of the {len(shard)} images sampled for mining could be read")
        if world_size == 1:
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
