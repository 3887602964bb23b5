"""One resize for every path: training, mining, validation, extraction, queries and local features decode an image
file through ``retrieval.images.decode`` (JPEG draft + antialiased bilinear, ``benchmarks/results/resize.md``), so
they see the same pixels for the same side."""

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.image_datasets import ImageListDataset
from datamodules.tuples import TupleDataset
from retrieval.descriptor.extract import ExtractionSettings, load_pixels
from retrieval.images import decode, load_gray
from retrieval.local.features import LocalFeatureExtractor

SIDE = 400


def as_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


@pytest.fixture
def photo(tmp_path):
    """A 1,700 × 1,100 JPEG with texture: large enough that draft decoding applies at SIDE."""
    generator = np.random.default_rng(3)
    pixels = generator.integers(0, 256, (55, 85, 3), dtype=np.uint8)
    path = tmp_path / "photo.jpg"
    Image.fromarray(pixels).resize((1700, 1100), Image.Resampling.BICUBIC).save(path, quality=90)
    return path


def test_training_mining_and_extraction_see_the_same_pixels(photo):
    extraction = load_pixels(photo, ExtractionSettings(max_side=SIDE, scales=(1.0,)))
    assert max(extraction.shape[1:]) == SIDE
    training = ImageListDataset([photo], as_tensor, labels=[0], max_side=SIDE)[0]["image"]
    tuples = TupleDataset([photo], np.zeros((1, 3), dtype=np.int64), as_tensor, SIDE)[0]["images"]
    assert torch.equal(training, extraction)
    assert all(torch.equal(image, extraction) for image in tuples)


def test_the_chosen_resize_is_draft_then_antialiased_bilinear(photo):
    """The measured choice: the JPEG decoded at the smallest DCT scale that keeps SIDE (here 1/4: 425 × 275),
    then antialiased bilinear to SIDE."""
    with Image.open(photo) as image:
        image.draft("RGB", (SIDE, round(SIDE * 1100 / 1700)))
        assert image.size == (425, 275)
        expected = image.convert("RGB").resize((SIDE, round(SIDE * 1100 / 1700)), Image.Resampling.BILINEAR)
    assert np.array_equal(np.asarray(decode(photo, SIDE).rgb), np.asarray(expected))


def test_local_features_detect_on_the_same_decode(photo):
    """Local features detect on the same reduced-size decode (then OpenCV's area resize to their side), and map
    keypoints back to the original pixels, as the full decode would."""
    extractor = LocalFeatureExtractor(method="rootsift", max_side=SIDE, max_keypoints=256)
    features = extractor.from_path(photo)
    reduced = decode(photo, SIDE, reduce_only=True)
    assert reduced.rgb.size == (425, 275)
    direct = extractor(np.asarray(reduced.rgb.convert("L"))).in_pixels_of((1700, 1100))
    np.testing.assert_array_equal(features.keypoints, direct.keypoints)
    assert features.image_size == (1700, 1100)
    full = extractor(load_gray(photo))
    assert full.image_size == (1700, 1100)
    # The same detector on the full decode finds mostly the same places (the two decodes differ by DCT scaling).
    distances = np.linalg.norm(features.keypoints[:, None, :2] - full.keypoints[None, :, :2], axis=2).min(
        axis=1
    )
    assert np.median(distances) < 3.0
