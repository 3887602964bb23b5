"""The feature store: round trips, skipped images, metadata checks, prefixes, resuming, parallel building."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from retrieval.local import store as feature_store
from retrieval.local.features import LocalFeatureExtractor
from retrieval.local.store import FeatureStore, FeatureStoreWriter, StoreMetadata, build_feature_store


@pytest.fixture(scope="module")
def rootsift() -> LocalFeatureExtractor:
    return LocalFeatureExtractor("rootsift", max_keypoints=200, max_side=1024)


def test_round_trip_keeps_keypoints_exactly_and_descriptors_to_float16(tmp_path, image_folder, rootsift):
    store = build_feature_store(tmp_path / "store", image_folder, rootsift, shard_size=2, progress=False)
    assert len(store) == 5 and store.ids == list("abcde") and not store.skipped
    assert sorted(path.name for path in (tmp_path / "store").glob("*.index.json")) == [
        "shard_00000.index.json",
        "shard_00001.index.json",
        "shard_00002.index.json",
    ]
    for image_id, path in image_folder.items():
        expected = rootsift.from_path(path)
        stored = store[image_id]
        np.testing.assert_array_equal(stored.keypoints, expected.keypoints)
        assert stored.descriptors.dtype == np.float32
        np.testing.assert_allclose(stored.descriptors, expected.descriptors, rtol=1e-3, atol=1e-4)
        assert stored.image_size == expected.image_size == (320, 240)
    metadata = json.loads((tmp_path / "store" / "meta.json").read_text())
    assert metadata == {
        "method": "rootsift",
        "max_keypoints": 200,
        "max_side": 1024,
        "dim": 128,
        "descriptor_dtype": "float16",
        "format_version": 1,
        "keypoint_dtype": "float32",
        "codec": None,
        "query_max_keypoints": None,
        "patch_selection": None,
    }


def test_binary_descriptors_round_trip_exactly(tmp_path, image_folder):
    orb = LocalFeatureExtractor("orb", max_keypoints=150)
    store = build_feature_store(tmp_path / "orb", image_folder, orb, progress=False)
    assert store.metadata.descriptor_dtype == "uint8"
    expected = orb.from_path(image_folder["c"])
    np.testing.assert_array_equal(store["c"].descriptors, expected.descriptors)
    assert store["c"].descriptors.dtype == np.uint8


def test_a_prefix_is_the_strongest_keypoints(tmp_path, image_folder, rootsift):
    store = build_feature_store(tmp_path / "store", image_folder, rootsift, progress=False)
    full = store["b"]
    prefix = store.get("b", max_keypoints=50)
    np.testing.assert_array_equal(prefix.keypoints, full.keypoints[:50])
    np.testing.assert_array_equal(prefix.descriptors, full.descriptors[:50])
    many = store.get_many(["e", "a"], max_keypoints=10)
    assert [len(features) for features in many] == [10, 10]
    np.testing.assert_array_equal(many[1].keypoints, store["a"].keypoints[:10])


def test_a_corrupt_image_is_a_counted_skip(tmp_path, image_folder, rootsift, caplog):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    images = {**image_folder, "broken": broken, "missing": tmp_path / "missing.jpg"}
    with caplog.at_level(logging.WARNING, logger="retrieval.local.store"):
        store = build_feature_store(tmp_path / "store", images, rootsift, shard_size=3, progress=False)
    summary = [record.getMessage() for record in caplog.records]
    assert len(summary) == 1 and "skipped 2 of 7" in summary[0]
    assert set(store.skipped) == {"broken", "missing"} and len(store) == 7 and "broken" in store
    assert store.ids == list("abcde")
    empty = store["broken"]
    assert len(empty) == 0 and empty.descriptors.shape == (0, 128) and empty.descriptors.dtype == np.float32
    assert [len(features) for features in store.get_many(["a", "missing"])][1] == 0


def test_opening_checks_the_metadata(tmp_path, image_folder, rootsift):
    build_feature_store(tmp_path / "store", image_folder, rootsift, progress=False)
    FeatureStore(tmp_path / "store", expected=rootsift)
    with pytest.raises(ValueError, match="max_keypoints: 200 != 500"):
        FeatureStore(tmp_path / "store", expected=LocalFeatureExtractor("rootsift", max_keypoints=500))
    with pytest.raises(ValueError, match="method: 'rootsift' != 'sift'"):
        FeatureStore(tmp_path / "store", expected=LocalFeatureExtractor("sift", max_keypoints=200))
    with pytest.raises(ValueError, match="cannot resume"):
        build_feature_store(tmp_path / "store", image_folder, LocalFeatureExtractor("orb"), progress=False)
    with pytest.raises(ValueError, match="not a feature store"):
        FeatureStore(tmp_path / "elsewhere")


def test_unknown_ids_raise_key_error(tmp_path, image_folder, rootsift):
    store = build_feature_store(tmp_path / "store", {"a": image_folder["a"]}, rootsift, progress=False)
    with pytest.raises(KeyError, match="'z'"):
        store["z"]


def test_building_again_resumes_after_complete_shards(tmp_path, image_folder, rootsift, monkeypatch):
    first = {image_id: image_folder[image_id] for image_id in "abc"}
    build_feature_store(tmp_path / "store", first, rootsift, shard_size=2, progress=False)
    extracted = []

    def counting_extract(extractor, path):
        extracted.append(path)
        return extractor.from_path(path)

    monkeypatch.setattr(feature_store, "_extract_or_reason", counting_extract)
    store = build_feature_store(tmp_path / "store", image_folder, rootsift, shard_size=2, progress=False)
    assert sorted(extracted) == sorted(str(image_folder[image_id]) for image_id in "de")
    assert store.ids == list("abcde")
    np.testing.assert_array_equal(store["d"].keypoints, rootsift.from_path(image_folder["d"]).keypoints)


def test_an_interrupted_shard_is_rewritten(tmp_path, image_folder, rootsift):
    first = {image_id: image_folder[image_id] for image_id in "abc"}
    build_feature_store(tmp_path / "store", first, rootsift, shard_size=2, progress=False)
    # A crash before the index of shard 1 ("c") was written leaves its data files without an index.
    (tmp_path / "store" / "shard_00001.index.json").unlink()
    assert FeatureStore(tmp_path / "store").ids == ["a", "b"]
    store = build_feature_store(tmp_path / "store", image_folder, rootsift, shard_size=2, progress=False)
    assert store.ids == list("abcde")
    for image_id in "cde":
        np.testing.assert_array_equal(
            store[image_id].keypoints, rootsift.from_path(image_folder[image_id]).keypoints
        )


def test_the_writer_rejects_duplicates_and_foreign_features(tmp_path, image_folder, rootsift):
    with FeatureStoreWriter(tmp_path / "store", StoreMetadata.from_extractor(rootsift)) as writer:
        features = rootsift.from_path(image_folder["a"])
        writer.add("a", features)
        with pytest.raises(ValueError, match="already in the store"):
            writer.skip("a", "unreadable")
        with pytest.raises(ValueError, match="the store holds float16 with 128"):
            writer.add("b", LocalFeatureExtractor("orb").from_path(image_folder["b"]))


def test_parallel_building_equals_serial_building(tmp_path, image_folder, rootsift):
    serial = build_feature_store(tmp_path / "serial", image_folder, rootsift, progress=False)
    parallel = build_feature_store(
        tmp_path / "parallel", image_folder, rootsift, num_workers=2, progress=False
    )
    assert parallel.ids == serial.ids
    for image_id in serial.ids:
        np.testing.assert_array_equal(parallel[image_id].keypoints, serial[image_id].keypoints)
        np.testing.assert_array_equal(parallel[image_id].descriptors, serial[image_id].descriptors)


def test_metadata_is_validated():
    with pytest.raises(ValueError, match="descriptor_dtype"):
        StoreMetadata("rootsift", 100, 100, 128, "float32")
    with pytest.raises(ValueError, match="positive"):
        StoreMetadata("rootsift", 0, 100, 128, "float16")
