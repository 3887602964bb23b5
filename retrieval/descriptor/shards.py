"""Global descriptors of a long list of images, written shard by shard: the work of many processes, GPUs and
nodes (``index.py trainer.devices=8 trainer.num_nodes=4``) lands in one folder, and a killed job resumes by
skipping the shards already written.

Shard ``k`` holds the images at positions ``[k * shard_size, (k + 1) * shard_size)`` of the list, in
``shard_KKKKK.npz``: ``positions`` (n,) int64, ``ids`` (n,) str, ``descriptors`` (n, D) float32 (zero rows for
unreadable images) and ``readable`` (n,) bool. A shard is written under a temporary name and renamed once
complete, so a shard file on disk is always whole. Float32, not float16: the collection's ``descriptors.npy``
and a flat index keep the network's exact output, and shards are removed once the collection is built.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from retrieval.descriptor.extract import ExtractionSettings, extract_descriptors
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.progress import stage

log = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = 1024


class DescriptorShards:
    """The shard folder of one list of images (its ids, in order) and one descriptor dimension.

    Args:
        root: the folder (created); one folder per list, network and settings (the caller names it).
        ids: the image ids, in list order; stored with each shard and checked when read.
        dim: descriptor dimension D.
        shard_size: images per shard (the last one may hold fewer).
    """

    def __init__(self, root: str | Path, ids: Sequence[str], dim: int, shard_size: int = DEFAULT_SHARD_SIZE):
        if shard_size < 1:
            raise ValueError(f"shard_size must be positive, got {shard_size}")
        if dim < 1:
            raise ValueError(f"the descriptor dimension must be positive, got {dim}")
        self.root = Path(root)
        self.ids = list(ids)
        self.dim = dim
        self.shard_size = shard_size

    @property
    def num_shards(self) -> int:
        return -(-len(self.ids) // self.shard_size)

    def positions(self, shard: int) -> range:
        """The list positions shard ``shard`` holds."""
        if not 0 <= shard < self.num_shards:
            raise ValueError(f"shard {shard} out of range (the list has {self.num_shards} shards)")
        return range(shard * self.shard_size, min(len(self.ids), (shard + 1) * self.shard_size))

    def path(self, shard: int) -> Path:
        return self.root / f"shard_{shard:05d}.npz"

    def pending(self) -> list[int]:
        """The shards not written yet, in order."""
        return [shard for shard in range(self.num_shards) if not self.path(shard).is_file()]

    def write(
        self, shard: int, positions: Sequence[int], descriptors: np.ndarray, readable: np.ndarray
    ) -> None:
        """Write one whole shard atomically; rows may come in any order (they are sorted by position).

        Raises:
            ValueError: the rows are not exactly the shard's positions, or have the wrong shape.
        """
        order = np.argsort(np.asarray(positions, dtype=np.int64), kind="stable")
        sorted_positions = np.asarray(positions, dtype=np.int64)[order]
        expected = self.positions(shard)
        if not np.array_equal(sorted_positions, np.arange(expected.start, expected.stop)):
            raise ValueError(
                f"shard {shard} holds positions {expected.start}..{expected.stop - 1}; got {len(positions)} rows "
                "that are not exactly those"
            )
        descriptors = np.asarray(descriptors, dtype=np.float32)[order]
        if descriptors.shape != (len(expected), self.dim):
            raise ValueError(
                f"shard {shard}: descriptors of shape {descriptors.shape}, expected ({len(expected)}, {self.dim})"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.root / f".{self.path(shard).stem}.{os.getpid()}.tmp.npz"
        np.savez(
            temporary,
            positions=sorted_positions,
            ids=np.array([self.ids[position] for position in expected]),
            descriptors=descriptors,
            readable=np.asarray(readable, dtype=bool)[order],
        )
        os.replace(temporary, self.path(shard))

    def readable(self) -> np.ndarray:
        """The (N,) readable mask alone (what every rank needs to split the local features), without loading
        the descriptors.

        Raises:
            ValueError: a shard is missing.
        """
        self._check_complete()
        masks = []
        for shard in range(self.num_shards):
            with np.load(self.path(shard), allow_pickle=False) as stored:
                masks.append(stored["readable"])
        return np.concatenate(masks) if masks else np.zeros(0, dtype=bool)

    def _check_complete(self) -> None:
        missing = self.pending()
        if missing:
            raise ValueError(
                f"{self.root}: {len(missing)} of {self.num_shards} shards are not written (first: {missing[0]})"
            )

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """Every shard together: descriptors (N, D) float32 and the (N,) readable mask, in list order.

        Raises:
            ValueError: a shard is missing, or holds other ids or another dimension than this list.
        """
        self._check_complete()
        descriptors = np.zeros((len(self.ids), self.dim), dtype=np.float32)
        readable = np.zeros(len(self.ids), dtype=bool)
        for shard in range(self.num_shards):
            rows = self.positions(shard)
            with np.load(self.path(shard), allow_pickle=False) as stored:
                if stored["ids"].tolist() != self.ids[rows.start : rows.stop]:
                    raise ValueError(
                        f"{self.path(shard)} holds other images than this list; remove {self.root}"
                    )
                if stored["descriptors"].shape != (len(rows), self.dim):
                    raise ValueError(
                        f"{self.path(shard)}: descriptors of shape {stored['descriptors'].shape}"
                    )
                descriptors[rows.start : rows.stop] = stored["descriptors"]
                readable[rows.start : rows.stop] = stored["readable"]
        return descriptors, readable


def extract_into_shards(
    net: GlobalDescriptorNet,
    paths: Sequence[Path],
    shards: DescriptorShards,
    settings: ExtractionSettings,
    device: str | torch.device | None = None,
    progress: bool = True,
    description: str = "global descriptors",
) -> None:
    """Fill the pending shards in this process (:func:`extract_descriptors` shard by shard): the one-process
    run of the job that ``index.py`` runs under Lightning (:mod:`lightning_modules.descriptor_prediction`)."""
    if len(paths) != len(shards.ids):
        raise ValueError(f"{len(paths)} paths for a shard list of {len(shards.ids)} images")
    pending = shards.pending()
    if not pending:
        log.debug("%s: all %d shards written in %s", description, shards.num_shards, shards.root)
        return
    if len(pending) < shards.num_shards:
        log.info(
            "%s: %d of %d shards already written in %s",
            description,
            shards.num_shards - len(pending),
            shards.num_shards,
            shards.root,
        )
    with stage(description, sum(len(shards.positions(shard)) for shard in pending), enabled=progress) as bar:
        for shard in pending:
            rows = shards.positions(shard)
            descriptors, readable = extract_descriptors(
                net, [paths[position] for position in rows], settings, device=device, progress=False
            )
            shards.write(shard, list(rows), descriptors, readable)
            bar.update(len(rows))
