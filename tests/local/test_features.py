"""Local features: budgets, coordinates in original pixels, RootSIFT, binary descriptors, CNN patches."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from retrieval.images import ImageLoadError
from retrieval.local.cnn_patches import cnn_patch_features
from retrieval.local.features import (
    DESCRIPTOR_DIMS,
    LOCAL_FEATURE_METHODS,
    NO_ANGLE,
    LocalFeatureExtractor,
    LocalFeatures,
)


def textured_scene(seed: int, width: int = 512, height: int = 384) -> np.ndarray:
    """A uint8 (height, width) image that detectors like: multi-scale noise under discs and rectangles."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width), np.float32)
    for cell in (48, 12, 3):
        coarse = rng.random((height // cell + 1, width // cell + 1)).astype(np.float32)
        image += cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC) * 60
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(120):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size, shade = int(rng.integers(3, 25)), int(rng.integers(0, 256))
        if rng.random() < 0.5:
            cv2.circle(image, (x, y), size, shade, -1)
        else:
            cv2.rectangle(image, (x, y), (x + size, y + int(rng.integers(3, 25))), shade, -1)
    return image


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return textured_scene(0)


@pytest.mark.parametrize("method", LOCAL_FEATURE_METHODS)
def test_every_method_returns_its_descriptor_kind_within_budget(scene, method):
    extractor = LocalFeatureExtractor(method, max_keypoints=300, max_side=1024)
    features = extractor(scene)
    assert 100 <= len(features) <= 300
    assert features.keypoints.dtype == np.float32 and features.keypoints.shape == (len(features), 4)
    assert features.dim == DESCRIPTOR_DIMS[method] == extractor.descriptor_dim
    assert features.binary == extractor.binary == (method in ("orb", "akaze", "brisk"))
    assert features.descriptors.dtype == (np.uint8 if features.binary else np.float32)
    assert features.image_size == (512, 384)
    inside = (features.keypoints[:, 0] >= -0.5) & (features.keypoints[:, 0] <= 511.5)
    inside &= (features.keypoints[:, 1] >= -0.5) & (features.keypoints[:, 1] <= 383.5)
    assert inside.all()


def test_a_smaller_budget_keeps_the_strongest_keypoints(scene):
    full = LocalFeatureExtractor("sift", max_keypoints=1000)(scene)
    small = LocalFeatureExtractor("sift", max_keypoints=200)(scene)
    np.testing.assert_array_equal(small.keypoints, full.top(200).keypoints)
    np.testing.assert_array_equal(small.descriptors, full.top(200).descriptors)


def test_rootsift_is_the_square_root_of_l1_normalised_sift(scene):
    sift = LocalFeatureExtractor("sift", max_keypoints=300)(scene)
    rootsift = LocalFeatureExtractor("rootsift", max_keypoints=300)(scene)
    np.testing.assert_array_equal(rootsift.keypoints, sift.keypoints)
    expected = np.sqrt(sift.descriptors / sift.descriptors.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(rootsift.descriptors, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(rootsift.descriptors, axis=1), 1.0, atol=1e-5)


def test_keypoints_of_a_downscaled_detection_are_in_original_pixels(scene):
    large = cv2.resize(scene, (1024, 768), interpolation=cv2.INTER_LINEAR)
    extractor = LocalFeatureExtractor("sift", max_keypoints=300, max_side=512)
    from_large = extractor(large)
    # What the extractor detects on: the large image downscaled to 512 px by area interpolation.
    detected = extractor(cv2.resize(large, (512, 384), interpolation=cv2.INTER_AREA))
    assert from_large.image_size == (1024, 768)
    np.testing.assert_allclose(
        from_large.keypoints[:, :2], (detected.keypoints[:, :2] + 0.5) * 2 - 0.5, rtol=1e-6
    )
    np.testing.assert_allclose(from_large.keypoints[:, 2], detected.keypoints[:, 2] * 2, rtol=1e-6)
    np.testing.assert_array_equal(from_large.keypoints[:, 3], detected.keypoints[:, 3])
    # And back to the detection resolution for geometric thresholds.
    np.testing.assert_allclose(from_large.points_at_side(512), detected.keypoints[:, :2], atol=1e-4)


def test_a_flat_image_has_no_features():
    features = LocalFeatureExtractor("rootsift")(np.full((100, 80), 128, np.uint8))
    assert len(features) == 0
    assert features.descriptors.shape == (0, 128) and features.descriptors.dtype == np.float32
    assert features.image_size == (80, 100)
    orb = LocalFeatureExtractor("orb")(np.zeros((50, 50), np.uint8))
    assert orb.descriptors.shape == (0, 32) and orb.descriptors.dtype == np.uint8


def test_from_path_reads_through_load_gray(tmp_path, scene):
    path = tmp_path / "scene.png"
    Image.fromarray(scene).save(path)
    extractor = LocalFeatureExtractor("orb", max_keypoints=200)
    from_file = extractor.from_path(path)
    np.testing.assert_array_equal(from_file.keypoints, extractor(scene).keypoints)
    with pytest.raises(ImageLoadError):
        extractor.from_path(tmp_path / "missing.jpg")


@pytest.mark.parametrize(
    "arguments",
    [{"method": "surf"}, {"max_keypoints": 0}, {"max_side": -1}],
)
def test_extractor_rejects_bad_settings(arguments):
    with pytest.raises(ValueError):
        LocalFeatureExtractor(**arguments)


def test_extractor_rejects_colour_images():
    with pytest.raises(ValueError, match="grayscale"):
        LocalFeatureExtractor()(np.zeros((10, 10, 3), np.uint8))


def test_local_features_validate_shapes():
    with pytest.raises(ValueError, match="keypoints"):
        LocalFeatures(np.zeros((3, 2), np.float32), np.zeros((3, 8), np.float32), (10, 10))
    with pytest.raises(ValueError, match="pair up"):
        LocalFeatures(np.zeros((3, 4), np.float32), np.zeros((2, 8), np.float32), (10, 10))
    with pytest.raises(ValueError, match="float32 or uint8"):
        LocalFeatures(np.zeros((3, 4), np.float32), np.zeros((3, 8), np.float64), (10, 10))


def test_points_at_side_scales_about_pixel_centres():
    keypoints = np.array([[-0.5, -0.5, 1, 0], [1999.5, 999.5, 1, 0], [99.5, 49.5, 1, 0]], np.float32)
    features = LocalFeatures(keypoints, np.zeros((3, 2), np.float32), (2000, 1000))
    np.testing.assert_allclose(features.points_at_side(1000), [[-0.5, -0.5], [999.5, 499.5], [49.5, 24.5]])
    np.testing.assert_array_equal(features.points_at_side(4000), keypoints[:, :2])
    np.testing.assert_array_equal(features.points_at_side(None), keypoints[:, :2])


def test_cnn_patch_features_by_hand():
    # Two channels on a 2 x 3 map; cell (row, column) is the vector feature_map[:, row, column].
    feature_map = torch.tensor(
        [
            [[1.0, 0.0, 0.0], [3.0, 0.0, 0.0]],
            [[0.0, 2.0, 0.0], [4.0, 0.0, 0.5]],
        ]
    )
    features = cnn_patch_features(feature_map, image_size=(60, 40))
    # Norms: (0,0) 1, (0,1) 2, (0,2) 0, (1,0) 5, (1,1) 0, (1,2) 0.5 -> order (1,0), (0,1), (0,0), (1,2), (0,2), (1,1).
    np.testing.assert_allclose(
        features.descriptors,
        [[0.6, 0.8], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]],
        atol=1e-6,
    )
    # Cells are 20 x 20 pixels; centres at 10 - 0.5, 30 - 0.5, 50 - 0.5 (x) and 9.5, 29.5 (y).
    np.testing.assert_allclose(
        features.keypoints,
        [
            [9.5, 29.5, 20, NO_ANGLE],
            [29.5, 9.5, 20, NO_ANGLE],
            [9.5, 9.5, 20, NO_ANGLE],
            [49.5, 29.5, 20, NO_ANGLE],
            [49.5, 9.5, 20, NO_ANGLE],
            [29.5, 29.5, 20, NO_ANGLE],
        ],
    )
    assert features.image_size == (60, 40)
    with pytest.raises(ValueError, match="C, h, w"):
        cnn_patch_features(torch.zeros(2, 3), (10, 10))


def test_large_jpegs_give_keypoints_in_original_pixels_from_a_reduced_decode(tmp_path):
    from retrieval.local.matching import match_descriptors

    scene = cv2.resize(textured_scene(3), (2048, 1536), interpolation=cv2.INTER_CUBIC)
    Image.fromarray(scene).save(tmp_path / "large.jpg", quality=95)
    extractor = LocalFeatureExtractor("rootsift", max_keypoints=500, max_side=400)
    reduced = extractor.from_path(tmp_path / "large.jpg")  # decoded at 1/4, then to 400 px
    full = extractor(np.asarray(Image.open(tmp_path / "large.jpg").convert("L")))  # decoded in full
    assert reduced.image_size == full.image_size == (2048, 1536)
    pairs = match_descriptors(reduced.descriptors, full.descriptors)
    assert len(pairs) > 200
    offsets = np.linalg.norm(reduced.keypoints[pairs[:, 0], :2] - full.keypoints[pairs[:, 1], :2], axis=1)
    assert np.median(offsets) < 3.0  # pixels of the 2048-px original, ~0.6 px at the detection side
