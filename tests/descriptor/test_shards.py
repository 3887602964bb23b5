"""Descriptor shards: whole shards written atomically in list order whatever order their rows come in, reads that
refuse missing or foreign shards, and a one-process extraction that equals the plain one and skips written shards."""

import numpy as np
import pytest
import torch

from retrieval.descriptor import shards as shards_module
from retrieval.descriptor.extract import ExtractionSettings, extract_descriptors
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.descriptor.shards import DescriptorShards, extract_into_shards

SETTINGS = ExtractionSettings(64, (1.0,), 2, 0)


def test_positions_split_the_list_into_shards_the_last_one_shorter(tmp_path):
    shards = DescriptorShards(tmp_path, [f"id{i}" for i in range(7)], dim=2, shard_size=3)
    assert shards.num_shards == 3
    assert [list(shards.positions(shard)) for shard in range(3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert shards.pending() == [0, 1, 2]
    with pytest.raises(ValueError, match="out of range"):
        shards.positions(3)


def test_rows_in_any_order_are_read_back_in_list_order(tmp_path):
    shards = DescriptorShards(tmp_path, ["a", "b", "c"], dim=2, shard_size=2)
    shards.write(0, [1, 0], np.array([[1, 1], [0, 0]]), np.array([True, False]))
    shards.write(1, [2], np.array([[2, 2]]), np.array([True]))
    descriptors, readable = shards.read()
    np.testing.assert_array_equal(descriptors, [[0, 0], [1, 1], [2, 2]])
    np.testing.assert_array_equal(readable, [False, True, True])
    assert shards.pending() == [] and not list(tmp_path.glob("*.tmp*"))


def test_a_shard_with_other_positions_or_shape_is_refused(tmp_path):
    shards = DescriptorShards(tmp_path, ["a", "b", "c"], dim=2, shard_size=2)
    with pytest.raises(ValueError, match="not exactly those"):
        shards.write(0, [0], np.zeros((1, 2)), np.ones(1, dtype=bool))
    with pytest.raises(ValueError, match="expected \\(2, 2\\)"):
        shards.write(0, [0, 1], np.zeros((2, 3)), np.ones(2, dtype=bool))
    assert shards.pending() == [0, 1]


def test_reading_refuses_missing_shards_and_shards_of_another_list(tmp_path):
    shards = DescriptorShards(tmp_path, ["a", "b", "c"], dim=2, shard_size=2)
    shards.write(0, [0, 1], np.zeros((2, 2)), np.ones(2, dtype=bool))
    with pytest.raises(ValueError, match="1 of 2 shards are not written"):
        shards.read()
    shards.write(1, [2], np.zeros((1, 2)), np.ones(1, dtype=bool))
    with pytest.raises(ValueError, match="holds other images"):
        DescriptorShards(tmp_path, ["a", "x", "c"], dim=2, shard_size=2).read()


@pytest.fixture
def photos_and_a_broken_one(photos, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    return [*photos[:2], tmp_path / "broken.png", *photos[2:]]


def test_extraction_into_shards_equals_the_plain_one_and_skips_written_shards(
    photos_and_a_broken_one, tmp_path, monkeypatch
):
    photos = photos_and_a_broken_one
    torch.manual_seed(0)
    net = GlobalDescriptorNet("resnet18", pretrained=False).eval()
    expected, expected_readable = extract_descriptors(net, photos, SETTINGS, progress=False)
    shards = DescriptorShards(
        tmp_path / "shards", [path.stem for path in photos], net.output_dim, shard_size=2
    )
    extract_into_shards(net, photos, shards, SETTINGS, progress=False)
    descriptors, readable = shards.read()
    np.testing.assert_allclose(descriptors, expected, atol=1e-5)
    np.testing.assert_array_equal(readable, expected_readable)
    assert readable.tolist() == [True, True, False, True, True, True]

    shards.path(1).unlink()  # as after a kill: shards 0 and 2 are written, 1 is not
    extracted: list[int] = []

    def counting(net, paths, *arguments, **keywords):
        extracted.append(len(paths))
        return extract_descriptors(net, paths, *arguments, **keywords)

    monkeypatch.setattr(shards_module, "extract_descriptors", counting)
    extract_into_shards(net, photos, shards, SETTINGS, progress=False)
    assert extracted == [2]
    np.testing.assert_allclose(shards.read()[0], expected, atol=1e-5)
