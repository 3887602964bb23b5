"""Spatial verification on known geometry: a homography recovered within a pixel (on a synthetic scene and on
a real photo), every model verifying the warp, random matches and minimal samples giving no inliers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from retrieval.images import load_gray
from retrieval.local.features import LocalFeatureExtractor
from retrieval.local.matching import match_descriptors
from retrieval.local.verification import MIN_SAMPLE_SIZES, VerificationConfig, verify_matches
from tests.conftest import REALPHOTOS, requires_realphotos
from tests.local.test_features import textured_scene
from tests.local.test_matching import WARP


@pytest.fixture(scope="module")
def warped_pair():
    """RootSIFT of a scene and of its perspective warp by WARP, with their tentative matches."""
    scene = textured_scene(8)
    extractor = LocalFeatureExtractor("rootsift", max_keypoints=800)
    original, warped = extractor(scene), extractor(cv2.warpPerspective(scene, WARP, (512, 384)))
    return original, warped, match_descriptors(original.descriptors, warped.descriptors)


def test_verification_recovers_a_known_homography_within_a_pixel(warped_pair):
    original, warped, matches = warped_pair
    inliers = verify_matches(
        original.keypoints, warped.keypoints, matches, model="homography", threshold_px=2.0
    )
    assert inliers.sum() > 150
    source = original.keypoints[matches[inliers, 0], :2]
    target = warped.keypoints[matches[inliers, 1], :2]
    fitted, _ = cv2.findHomography(source, target, 0)  # least squares on the inliers
    corners = np.array([[[0, 0], [511, 0], [511, 383], [0, 383]]], np.float32)
    error = np.linalg.norm(
        cv2.perspectiveTransform(corners, fitted) - cv2.perspectiveTransform(corners, WARP), axis=2
    )
    assert error.max() < 1.0
    # Every inlier is consistent with the true warp.
    projected = cv2.perspectiveTransform(source[None], WARP)[0]
    assert np.linalg.norm(projected - target, axis=1).max() < 3.0


@requires_realphotos
def test_verification_recovers_a_homography_on_a_real_photo():
    photo = load_gray(REALPHOTOS / "images" / "fountain_p11" / "000.jpg", max_side=640)
    height, width = photo.shape
    extractor = LocalFeatureExtractor("rootsift", max_keypoints=1000)
    original, warped = extractor(photo), extractor(cv2.warpPerspective(photo, WARP, (width, height)))
    matches = match_descriptors(original.descriptors, warped.descriptors)
    inliers = verify_matches(
        original.keypoints, warped.keypoints, matches, model="homography", threshold_px=2.0
    )
    assert inliers.sum() > 100
    fitted, _ = cv2.findHomography(
        original.keypoints[matches[inliers, 0], :2], warped.keypoints[matches[inliers, 1], :2], 0
    )
    corners = np.array([[[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]]], np.float32)
    error = np.linalg.norm(
        cv2.perspectiveTransform(corners, fitted) - cv2.perspectiveTransform(corners, WARP), axis=2
    )
    assert error.max() < 1.0


def test_fundamental_and_affine_models_verify_the_warp(warped_pair):
    original, warped, matches = warped_pair
    fundamental = verify_matches(original.keypoints, warped.keypoints, matches, model="fundamental")
    homography = verify_matches(original.keypoints, warped.keypoints, matches, model="homography")
    assert fundamental.dtype == bool and fundamental.shape == (len(matches),)
    assert fundamental.sum() >= 0.9 * homography.sum()  # a homography is a degenerate fundamental matrix
    # An affine map fits the mild perspective locally: a large share of the matches, not all of them.
    affine = verify_matches(original.keypoints, warped.keypoints, matches, model="affine", threshold_px=3.0)
    assert 0.2 * homography.sum() < affine.sum() <= len(matches)


def test_random_matches_have_few_inliers(warped_pair):
    original, warped, matches = warped_pair
    shuffled = np.stack([matches[:, 0], np.random.default_rng(0).permutation(matches[:, 1])], axis=1)
    inliers = verify_matches(original.keypoints, warped.keypoints, shuffled, model="homography")
    assert inliers.sum() < 0.1 * len(matches)


@pytest.mark.parametrize("model", list(MIN_SAMPLE_SIZES))
def test_fewer_matches_than_the_minimal_sample_give_no_inliers(model):
    keypoints = np.random.default_rng(0).uniform(0, 100, (10, 4)).astype(np.float32)
    matches = np.stack([np.arange(MIN_SAMPLE_SIZES[model] - 1)] * 2, axis=1)
    np.testing.assert_array_equal(verify_matches(keypoints, keypoints, matches, model=model), False)
    assert verify_matches(keypoints, keypoints, np.zeros((0, 2), np.int64), model=model).shape == (0,)


@pytest.mark.parametrize("model", list(MIN_SAMPLE_SIZES))
def test_degenerate_matches_give_no_inliers(model):
    keypoints = np.zeros((20, 4), np.float32)  # every point identical
    matches = np.stack([np.arange(20)] * 2, axis=1)
    assert verify_matches(keypoints, keypoints, matches, model=model).sum() == 0


def test_verification_rejects_bad_settings():
    keypoints, matches = np.zeros((10, 4), np.float32), np.zeros((10, 2), np.int64)
    with pytest.raises(ValueError, match="model"):
        verify_matches(keypoints, keypoints, matches, model="similarity")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold_px"):
        verify_matches(keypoints, keypoints, matches, threshold_px=0)
    with pytest.raises(ValueError, match="confidence"):
        verify_matches(keypoints, keypoints, matches, confidence=1.0)
    with pytest.raises(ValueError, match="matches"):
        verify_matches(keypoints, keypoints, np.zeros((10, 3), np.int64))


def test_verification_settings_are_checked_and_described():
    assert VerificationConfig().notes() == []
    assert VerificationConfig(max_iters=1000, model="homography").notes() == [
        "homography 3 px",
        "1,000 iterations",
    ]
    with pytest.raises(ValueError, match="num_threads"):
        VerificationConfig(num_threads=0)
    with pytest.raises(ValueError, match="threshold_px"):
        VerificationConfig(threshold_px=0)
