"""Size buckets: every image comes out exactly once, in batches of one size, full ones as soon as they fill."""

import pytest
import torch

from retrieval.descriptor.batching import SizeBuckets


def image(height, width):
    return torch.zeros(3, height, width, dtype=torch.uint8)


def test_a_bucket_is_handed_out_the_moment_it_is_full():
    buckets = SizeBuckets(batch_size=2)
    assert buckets.add(0, image(4, 6)) is None
    assert buckets.add(1, image(6, 4)) is None  # another size: another bucket
    first = image(4, 6)
    buckets.add(3, image(4, 7))
    positions, batch = buckets.add(2, first)
    assert positions == [0, 2] and [item.shape for item in batch] == [(3, 4, 6)] * 2 and batch[1] is first
    assert len(buckets) == 2


def test_drain_gives_every_waiting_image_once_by_size_in_first_seen_order():
    sizes = [(4, 6), (6, 4), (4, 6), (5, 5), (6, 4), (4, 6), (4, 6)]
    buckets = SizeBuckets(batch_size=3)
    batches = [full for position, size in enumerate(sizes) if (full := buckets.add(position, image(*size)))]
    batches += list(buckets.drain())
    assert [positions for positions, _ in batches] == [[0, 2, 5], [1, 4], [3], [6]]
    for positions, batch in batches:
        assert [sizes[position] for position in positions] == [tuple(item.shape[-2:]) for item in batch]
        assert len({tuple(item.shape) for item in batch}) == 1
    assert len(buckets) == 0 and list(buckets.drain()) == []


def test_a_batch_size_below_one_is_refused():
    with pytest.raises(ValueError, match="batch_size must be positive"):
        SizeBuckets(0)
