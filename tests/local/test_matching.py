"""Descriptor matching against naive loops, and the batched matcher against the per-pair one."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from retrieval.local.features import LocalFeatureExtractor
from retrieval.local.matching import MatchingConfig, match_descriptors, match_descriptors_batched
from tests.local.test_features import textured_scene

# A perspective warp: mild rotation, shear, translation and foreshortening.
WARP = np.array([[0.9, 0.08, 30.0], [-0.05, 0.95, 20.0], [2e-4, 1e-4, 1.0]])


def naive_matches(query: np.ndarray, database: np.ndarray, ratio: float, mutual: bool) -> np.ndarray:
    """Loops over pairs: L2 for float descriptors, Hamming (popcount of XOR) for packed bits."""
    binary = query.dtype == np.uint8

    def distance(a: np.ndarray, b: np.ndarray) -> float:
        if binary:
            return float(np.unpackbits(np.bitwise_xor(a, b)).sum())
        return float(np.sqrt(((a.astype(np.float64) - b) ** 2).sum()))

    distances = np.array([[distance(a, b) for b in database] for a in query])
    pairs = []
    for i, row in enumerate(distances):
        order = np.argsort(row, kind="stable")
        nearest = order[0]
        if len(row) > 1 and not row[nearest] < ratio * row[order[1]]:
            continue
        if mutual and distances[:, nearest].min() < row[nearest]:
            continue
        pairs.append((i, nearest))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def planted(rng: np.random.Generator, query: np.ndarray, size: int, num_copies: int) -> np.ndarray:
    """Random descriptors with slightly perturbed copies of the first query descriptors planted in them."""
    database = rng.random((size, query.shape[1]), dtype=np.float32)
    database[:num_copies] = query[:num_copies] + 0.02 * rng.random(
        (num_copies, query.shape[1]), dtype=np.float32
    )
    return database


@pytest.mark.parametrize("ratio", [0.8, 1.0])
@pytest.mark.parametrize("mutual", [True, False])
def test_float_matching_equals_naive_loops(ratio, mutual):
    rng = np.random.default_rng(0)
    query = rng.random((40, 16), dtype=np.float32)
    database = planted(rng, query, 30, 10)
    np.testing.assert_array_equal(
        match_descriptors(query, database, ratio, mutual), naive_matches(query, database, ratio, mutual)
    )


@pytest.mark.parametrize("ratio", [0.8, 1.0])
@pytest.mark.parametrize("mutual", [True, False])
def test_binary_matching_equals_naive_hamming_loops(ratio, mutual):
    rng = np.random.default_rng(1)
    query = rng.integers(0, 256, (40, 8), dtype=np.uint8)
    database = rng.integers(0, 256, (30, 8), dtype=np.uint8)
    database[:10] = query[:10] ^ (rng.random((10, 8)) < 0.05).astype(np.uint8)  # a few flipped bits
    database[10:13] = query[20]  # exact ties: never an unambiguous nearest neighbour
    np.testing.assert_array_equal(
        match_descriptors(query, database, ratio, mutual), naive_matches(query, database, ratio, mutual)
    )


def test_matching_by_hand():
    query = np.array([[0, 0], [10, 0], [0, 10]], np.float32)
    database = np.array([[0.1, 0], [10, 1], [10, 1.2], [5, 4.9]], np.float32)
    # Query 0: nearest database 0 at 0.1, second (5, 4.9) at 7.00: kept at ratios 0.8 and 0.5.
    # Query 1: nearest database 1 at 1.0, second at 1.2: fails the ratio test (1.0 > 0.8 * 1.2).
    # Query 2: nearest (5, 4.9) at 7.14, second (0.1, 0) at 10.0: passes at 0.8, fails at 0.5; not mutual, as
    # (5, 4.9) is nearer to queries 0 and 1 (7.00).
    np.testing.assert_array_equal(match_descriptors(query, database, 0.8, mutual=False), [[0, 0], [2, 3]])
    np.testing.assert_array_equal(match_descriptors(query, database, 0.8, mutual=True), [[0, 0]])
    np.testing.assert_array_equal(match_descriptors(query, database, 0.5, mutual=False), [[0, 0]])
    for ratio, mutual in ((0.8, False), (0.8, True), (0.5, False)):
        [batched] = match_descriptors_batched(query, [database], ratio, mutual)
        np.testing.assert_array_equal(batched, match_descriptors(query, database, ratio, mutual))


def test_an_image_matches_itself_one_to_one():
    features = LocalFeatureExtractor("rootsift", max_keypoints=500)(textured_scene(2))
    _, first_rows = np.unique(features.descriptors, axis=0, return_index=True)
    unique = np.sort(first_rows)  # identical descriptors have no unambiguous nearest neighbour
    matches = match_descriptors(features.descriptors[unique], features.descriptors[unique])
    np.testing.assert_array_equal(matches, np.stack([np.arange(len(unique))] * 2, axis=1))
    [batched] = match_descriptors_batched(features.descriptors[unique], [features.descriptors[unique]])
    np.testing.assert_array_equal(batched, matches)


@pytest.mark.parametrize("mutual", [True, False])
@pytest.mark.parametrize("ratio", [0.8, 1.0])
def test_batched_float_matching_equals_per_pair(mutual, ratio):
    rng = np.random.default_rng(3)
    query = rng.random((90, 24), dtype=np.float32)
    sizes = [0, 1, 2, 63, 64, 65, 130, 40]
    candidates = [planted(rng, query, size, min(size, 25)) for size in sizes]
    # A small block budget forces several blocks of several candidates.
    batched = match_descriptors_batched(query, candidates, ratio, mutual, block_elements=90 * 192 * 2)
    for candidate, pairs in zip(candidates, batched, strict=True):
        np.testing.assert_array_equal(pairs, match_descriptors(query, candidate, ratio, mutual))
    assert sum(len(pairs) for pairs in batched) > 50


def test_batched_matching_of_normalised_descriptors_equals_per_pair():
    # Equal query norms take the matcher's shortcut for the mutual test (one column maximum per block).
    rng = np.random.default_rng(5)
    query = rng.random((80, 32), dtype=np.float32)
    candidates = [planted(rng, query, size, 30) for size in (50, 64, 100)]
    candidates = [rows / np.linalg.norm(rows, axis=1, keepdims=True) for rows in [query, *candidates]]
    query, candidates = candidates[0], candidates[1:]
    for mutual in (True, False):
        batched = match_descriptors_batched(query, candidates, 0.9, mutual, block_elements=80 * 128)
        for candidate, pairs in zip(candidates, batched, strict=True):
            np.testing.assert_array_equal(pairs, match_descriptors(query, candidate, 0.9, mutual))


@pytest.mark.parametrize("mutual", [True, False])
def test_batched_binary_matching_equals_per_pair(mutual):
    rng = np.random.default_rng(4)
    query = rng.integers(0, 256, (70, 32), dtype=np.uint8)
    candidates = []
    for size in (0, 1, 50, 70, 129):
        candidate = rng.integers(0, 256, (size, 32), dtype=np.uint8)
        copies = min(size, 30)
        candidate[:copies] = query[:copies] ^ (rng.random((copies, 32)) < 0.03).astype(np.uint8)
        candidates.append(candidate)
    candidates[3][40:45] = query[50]  # ties
    for ratio in (0.8, 1.0):
        batched = match_descriptors_batched(query, candidates, ratio, mutual)
        for candidate, pairs in zip(candidates, batched, strict=True):
            np.testing.assert_array_equal(pairs, match_descriptors(query, candidate, ratio, mutual))


def test_batched_bfloat16_matching_agrees_with_float32_on_real_descriptors():
    extractor = LocalFeatureExtractor("rootsift", max_keypoints=400)
    query = extractor(textured_scene(5))
    candidates = [
        extractor(cv2.warpPerspective(textured_scene(5), WARP, (512, 384))),
        extractor(textured_scene(6)),
        extractor(textured_scene(7)),
    ]
    descriptors = [candidate.descriptors for candidate in candidates]
    exact = match_descriptors_batched(query.descriptors, descriptors)
    rounded = match_descriptors_batched(query.descriptors, descriptors, precision="bfloat16")
    exact_pairs = {(index, *pair) for index, pairs in enumerate(exact) for pair in pairs.tolist()}
    rounded_pairs = {(index, *pair) for index, pairs in enumerate(rounded) for pair in pairs.tolist()}
    assert len(exact[0]) > 100
    assert len(exact_pairs & rounded_pairs) >= 0.9 * max(len(exact_pairs), len(rounded_pairs))


def test_matching_rejects_bad_input():
    floats, bits = np.zeros((3, 8), np.float32), np.zeros((3, 8), np.uint8)
    with pytest.raises(ValueError, match="cannot be matched"):
        match_descriptors(floats, bits)
    with pytest.raises(ValueError, match="dimensions"):
        match_descriptors(floats, np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="ratio"):
        match_descriptors(floats, floats, ratio=0.0)
    with pytest.raises(ValueError, match="precision"):
        match_descriptors_batched(floats, [floats], precision="float16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="float32 or packed-bit"):
        match_descriptors_batched(floats, [np.zeros((3, 8), np.float64)])
    with pytest.raises(ValueError, match="non-negative"):
        match_descriptors_batched(floats, [-np.ones((3, 8), np.float32)], precision="bfloat16")
    with pytest.raises(ValueError, match="non-negative"):
        match_descriptors_batched(-np.ones((3, 8), np.float32), [floats], precision="bfloat16")


def test_empty_inputs_match_nothing():
    empty, floats = np.zeros((0, 8), np.float32), np.ones((3, 8), np.float32)
    assert match_descriptors(empty, floats).shape == (0, 2)
    assert match_descriptors(floats, empty).shape == (0, 2)
    assert [pairs.shape for pairs in match_descriptors_batched(empty, [floats, empty])] == [(0, 2), (0, 2)]
    assert match_descriptors_batched(floats, []) == []


def test_matching_settings_are_checked_and_described():
    assert MatchingConfig().notes() == []
    assert MatchingConfig(query_max_keypoints=512, precision="bfloat16").notes() == [
        "512/all keypoints",
        "bfloat16",
    ]
    with pytest.raises(ValueError, match="ratio"):
        MatchingConfig(ratio=0.0)
    with pytest.raises(ValueError, match="database_max_keypoints"):
        MatchingConfig(database_max_keypoints=0)
    with pytest.raises(ValueError, match="precision"):
        MatchingConfig(precision="float16")  # type: ignore[arg-type]
