"""Batches of equal-size images: photos of many sizes wait in a bucket per size until a full batch can go through
the network at once (``ExtractionSettings.size_step`` snaps sizes so that few buckets exist).

    buckets = SizeBuckets(batch_size=16)
    for position, image in decoded:
        if (batch := buckets.add(position, image)) is not None:
            describe(*batch)
    for batch in buckets.drain():
        describe(*batch)
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class SizeBuckets:
    """Images (3, H, W) with their positions in a work list, grouped by (H, W).

    Args:
        batch_size: images per batch; a bucket is handed out as soon as it holds this many.
    """

    def __init__(self, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        self._buckets: dict[tuple[int, int], list[tuple[int, torch.Tensor]]] = {}

    def __len__(self) -> int:
        """Images waiting."""
        return sum(len(bucket) for bucket in self._buckets.values())

    def add(self, position: int, image: torch.Tensor) -> tuple[list[int], torch.Tensor] | None:
        """Put an image in its bucket; the bucket's batch (positions, images (B, 3, H, W)) when it is full."""
        size = (int(image.shape[-2]), int(image.shape[-1]))
        bucket = self._buckets.setdefault(size, [])
        bucket.append((position, image))
        return self._batch(size) if len(bucket) >= self.batch_size else None

    def drain(self) -> Iterator[tuple[list[int], torch.Tensor]]:
        """The batches of every bucket still waiting, however small, in the order their sizes first came."""
        for size in list(self._buckets):
            yield self._batch(size)

    def _batch(self, size: tuple[int, int]) -> tuple[list[int], torch.Tensor]:
        bucket = self._buckets.pop(size)
        return [position for position, _ in bucket], torch.stack([image for _, image in bucket])
