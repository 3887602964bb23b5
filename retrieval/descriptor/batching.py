"""Batches of equal-size images: photos of many sizes wait in a bucket per size until a full batch can go through
the network at once (``ExtractionSettings.size_step`` snaps sizes so that few buckets exist).

    buckets = SizeBuckets(batch_size=16)
    for position, image in decoded:
        if (batch := buckets.add(position, image)) is not None:
            describe(*batch)
    for batch in buckets.drain():
        describe(*batch)

An item is anything with a ``shape`` (..., H, W): a decoded image (3, H, W), or a JPEG file still to be decoded
on the device (:class:`retrieval.descriptor.device_decode.EncodedJpeg`, the shape of its network input).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Generic, Protocol, TypeVar


def snapped_size(size: tuple[int, int], step: int) -> tuple[int, int]:
    """Both sides of ``size`` rounded to the nearest multiple of ``step`` (at least ``step``): the sizes of
    ``ExtractionSettings.size_step``."""
    first, second = (max(step, step * round(side / step)) for side in size)
    return first, second


class Shaped(Protocol):
    @property
    def shape(self) -> Sequence[int]: ...


ItemT = TypeVar("ItemT", bound=Shaped)


class SizeBuckets(Generic[ItemT]):
    """Items with their positions in a work list, grouped by the last two sides of their shape (H, W).

    Args:
        batch_size: items per batch; a bucket is handed out as soon as it holds this many.
    """

    def __init__(self, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        self._buckets: dict[tuple[int, int], list[tuple[int, ItemT]]] = {}

    def __len__(self) -> int:
        """Items waiting."""
        return sum(len(bucket) for bucket in self._buckets.values())

    def add(self, position: int, item: ItemT) -> tuple[list[int], list[ItemT]] | None:
        """Put an item in its bucket; the bucket's batch (positions, items) when it is full."""
        size = (int(item.shape[-2]), int(item.shape[-1]))
        bucket = self._buckets.setdefault(size, [])
        bucket.append((position, item))
        return self._batch(size) if len(bucket) >= self.batch_size else None

    def drain(self) -> Iterator[tuple[list[int], list[ItemT]]]:
        """The batches of every bucket still waiting, however small, in the order their sizes first came."""
        for size in list(self._buckets):
            yield self._batch(size)

    def _batch(self, size: tuple[int, int]) -> tuple[list[int], list[ItemT]]:
        bucket = self._buckets.pop(size)
        return [position for position, _ in bucket], [item for _, item in bucket]
