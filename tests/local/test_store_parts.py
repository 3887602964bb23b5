"""A store built in parts: joined, it is byte for byte the store one build of the same images writes, whoever built
which part; a compact store's parts share one embedding; a missing part and a part size off the shard grid are
refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.local.features import LocalFeatureExtractor
from retrieval.local.hamming import CompactSettings
from retrieval.local.store import build_feature_store
from retrieval.local.store_parts import StoreParts


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


@pytest.mark.parametrize(
    "extractor",
    [
        LocalFeatureExtractor("rootsift", max_keypoints=100, max_side=320),
        LocalFeatureExtractor(
            "rootsift",
            max_keypoints=100,
            max_side=320,
            compact=CompactSettings(stored_keypoints=64, num_words=16, num_bits=64, training_images=5),
        ),
    ],
    ids=["float", "compact"],
)
def test_joined_parts_are_the_store_one_build_writes(tmp_path, image_folder, extractor):
    images = [(image_id, str(path)) for image_id, path in image_folder.items()]
    parts = StoreParts(tmp_path / "parts", images, extractor, part_size=2)
    assert parts.num_parts == 3 and parts.part_images(2) == images[4:]
    parts.prepare_codec(reuse=None)
    for part in reversed(parts.pending()):  # in any order, as ranks finish them
        parts.build(part, progress=False)
    joined = parts.join(tmp_path / "joined")
    single = build_feature_store(
        tmp_path / "single", dict(images), extractor, shard_size=2, progress=False, codec=parts.codec()
    )
    assert joined.ids == single.ids == [image_id for image_id, _ in images]
    assert files_of(tmp_path / "joined") == files_of(tmp_path / "single")


def test_a_missing_part_and_an_off_grid_part_size_are_refused(tmp_path, image_folder):
    extractor = LocalFeatureExtractor("rootsift", max_keypoints=50, max_side=320)
    images = [(image_id, str(path)) for image_id, path in image_folder.items()]
    parts = StoreParts(tmp_path / "parts", images, extractor, part_size=4)
    parts.build(0, progress=False)
    with pytest.raises(ValueError, match="1 of 2 parts are not built"):
        parts.join(tmp_path / "joined")
    with pytest.raises(ValueError, match="multiple of 512"):
        StoreParts(tmp_path / "other", images, extractor, part_size=700)
