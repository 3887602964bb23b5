"""Hamming embedding, the word + Hamming matcher and the compact store, against naive references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from retrieval.local.features import LocalFeatureExtractor, LocalFeatures
from retrieval.local.hamming import CompactSettings, HammingEmbedding, pair_hamming
from retrieval.local.hamming_matching import HammingMatching, match_codes_batched
from retrieval.local.matching import MatchingConfig
from retrieval.local.rerank import GlobalPlusInliersRerank
from retrieval.local.store import (
    FeatureStore,
    FeatureStoreWriter,
    StoreMetadata,
    build_feature_store,
    decode_positions,
    encode_positions,
)
from retrieval.reranking import rerank

SETTINGS = CompactSettings(stored_keypoints=64, num_words=16, num_bits=64, training_images=10)


def unit_rows(rng: np.random.Generator, count: int, dim: int = 128) -> np.ndarray:
    rows = np.abs(rng.standard_normal((count, dim))).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def embedding() -> HammingEmbedding:
    return HammingEmbedding.train(unit_rows(np.random.default_rng(0), 2000), SETTINGS)


def naive_hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array(
        [
            sum(bin(int(x) ^ int(y)).count("1") for x, y in zip(row_a, row_b, strict=True))
            for row_a, row_b in zip(a, b, strict=True)
        ]
    )


@pytest.mark.parametrize("width", [4, 8, 16, 3])
def test_pair_hamming_agrees_with_counting_bits_one_by_one(width):
    rng = np.random.default_rng(width)
    a, b = (rng.integers(0, 256, (50, width), dtype=np.uint8) for _ in range(2))
    np.testing.assert_array_equal(pair_hamming(a, b), naive_hamming(a, b))
    assert pair_hamming(a, a).sum() == 0
    assert pair_hamming(np.zeros((1, 8), np.uint8), np.full((1, 8), 255, np.uint8))[0] == 64


def test_signatures_are_the_thresholded_projections(embedding):
    descriptors = unit_rows(np.random.default_rng(1), 30)
    words, signatures = embedding.encode(descriptors)
    projected = descriptors @ embedding.projection.T
    for row in range(len(descriptors)):
        bits = projected[row] > embedding.thresholds[words[row, 0]]
        assert np.array_equal(np.unpackbits(signatures[row, 0], bitorder="little").astype(bool), bits)
    # Medians: about half of the training bits are set.
    training = unit_rows(np.random.default_rng(0), 2000)
    _, training_signatures = embedding.encode(training)
    share = np.unpackbits(training_signatures[:, 0], axis=1).mean()
    assert 0.45 < share < 0.55
    # The projection is orthonormal.
    np.testing.assert_allclose(embedding.projection @ embedding.projection.T, np.eye(64), atol=1e-5)


def test_codes_round_trip_through_bytes_and_the_saved_file(embedding, tmp_path):
    descriptors = unit_rows(np.random.default_rng(2), 40)
    codes = embedding.codes(descriptors)
    assert codes.shape == (40, SETTINGS.code_bytes) == (40, 10) and codes.dtype == np.uint8
    words, signatures = embedding.split_codes(codes)
    expected_words, expected_signatures = embedding.encode(descriptors)
    np.testing.assert_array_equal(words, expected_words[:, 0])
    np.testing.assert_array_equal(signatures, expected_signatures[:, 0])
    embedding.save(tmp_path / "codec.npz")
    loaded = HammingEmbedding.load(tmp_path / "codec.npz")
    assert loaded.fingerprint == embedding.fingerprint
    np.testing.assert_array_equal(loaded.codes(descriptors), codes)
    other = HammingEmbedding.train(unit_rows(np.random.default_rng(9), 2000), SETTINGS)
    assert other.fingerprint != embedding.fingerprint


def test_multiple_assignment_lists_the_nearest_words_first(embedding):
    descriptors = unit_rows(np.random.default_rng(3), 20)
    words, signatures = embedding.encode(descriptors, num_assignments=3)
    assert words.shape == (20, 3) and signatures.shape == (20, 3, 8)
    distances = ((descriptors[:, None] - embedding.vocabulary.centroids[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(words[:, 0], distances.argmin(1))
    assert (np.take_along_axis(distances, words, 1) == np.sort(distances, 1)[:, :3]).all()


def brute_force_matches(query_words, query_signatures, codes, embedding, max_distance):
    """Every pair sharing a word within max_distance, one-to-one by the same rule, pair by pair."""
    words, signatures = embedding.split_codes(codes)
    close = {}
    for query, slot in itertools.product(range(len(query_words)), range(query_words.shape[1])):
        for database in range(len(words)):
            if query_words[query, slot] == words[database]:
                distance = int(
                    pair_hamming(query_signatures[query, slot][None], signatures[database][None])[0]
                )
                if distance <= max_distance:
                    close[(query, database)] = distance
    best_query = {}
    for (query, database), distance in sorted(
        close.items(), key=lambda item: (item[0][1], item[1], item[0][0])
    ):
        best_query.setdefault(database, (query, distance))
    best_database = {}
    for database, (query, _distance) in sorted(
        best_query.items(), key=lambda item: (item[1][0], item[1][1], item[0])
    ):
        best_database.setdefault(query, database)
    return sorted((query, database) for query, database in best_database.items())


def test_the_batched_matcher_equals_brute_force_and_finds_planted_correspondences(embedding):
    rng = np.random.default_rng(4)
    query = unit_rows(rng, 60)
    candidates = []
    for planted in (0, 25, 40):
        noise = unit_rows(rng, 50)
        copies = query[:planted] + 0.01 * rng.standard_normal((planted, 128)).astype(np.float32)
        candidates.append(embedding.codes(np.concatenate((copies, noise))))
    candidates.append(np.zeros((0, SETTINGS.code_bytes), np.uint8))
    query_words, query_signatures = embedding.encode(query, num_assignments=2)
    matches = match_codes_batched(query_words, query_signatures, candidates, embedding, max_distance=12)
    assert len(matches) == 4 and matches[3].shape == (0, 2)
    for codes, pairs in zip(candidates, matches, strict=True):
        expected = brute_force_matches(query_words, query_signatures, codes, embedding, 12)
        assert sorted(map(tuple, pairs.tolist())) == expected
    for planted, pairs in zip((0, 25, 40), matches[:3], strict=True):
        found = {
            (query_index, database) for query_index, database in pairs.tolist() if query_index == database
        }
        assert len(found) >= 0.9 * planted  # near-copies share word and signature


def test_positions_round_trip_within_the_quantisation_step():
    keypoints = np.array([[0, 0, 5, 10], [3999.9, 1234.5, 2, 0], [4000, 3000, 1, 1]], np.float32)
    positions = encode_positions(keypoints, (4001, 3001))
    decoded = decode_positions(positions, np.full(3, 4001))
    np.testing.assert_allclose(decoded[:, :2], keypoints[:, :2], atol=4001 / 65535 / 2 + 1e-3)
    assert (decoded[:, 2:] == 0).all()


@pytest.fixture(scope="module")
def compact_extractor() -> LocalFeatureExtractor:
    return LocalFeatureExtractor("rootsift", max_keypoints=200, compact=SETTINGS)


def test_a_compact_store_keeps_the_strongest_codes_and_positions(tmp_path, image_folder, compact_extractor):
    store = build_feature_store(tmp_path / "store", image_folder, compact_extractor, progress=False)
    assert store.metadata.codec == {**SETTINGS.__dict__} and store.metadata.query_max_keypoints == 200
    assert store.metadata.max_keypoints == 64 and store.metadata.bytes_per_keypoint == 4 + 10
    full = LocalFeatureExtractor("rootsift", max_keypoints=200).from_path(image_folder["a"]).top(64)
    stored = store["a"]
    np.testing.assert_array_equal(stored.descriptors, store.codec.codes(full.descriptors))
    np.testing.assert_allclose(stored.keypoints[:, :2], full.keypoints[:, :2], atol=320 / 65535)
    assert store.bytes_per_image() == 64 * 14
    # The query extractor of a collection rebuilt from the metadata gives the same store metadata.
    assert StoreMetadata.from_extractor(compact_extractor) == store.metadata


def test_a_compact_store_refuses_another_embedding_and_resumes_with_its_own(
    tmp_path, image_folder, compact_extractor
):
    root = tmp_path / "store"
    build_feature_store(root, dict(list(image_folder.items())[:2]), compact_extractor, progress=False)
    fingerprint = FeatureStore(root).codec.fingerprint
    other = HammingEmbedding.train(unit_rows(np.random.default_rng(5), 2000), SETTINGS)
    with pytest.raises(ValueError, match=r"was built with Hamming embedding .* codes of two embeddings"):
        FeatureStoreWriter(root, StoreMetadata.from_extractor(compact_extractor), codec=other)
    store = build_feature_store(root, image_folder, compact_extractor, progress=False)  # resumes
    assert len(store) == 5 and store.codec.fingerprint == fingerprint


def test_matchings_refuse_the_other_kind_of_store(tmp_path, image_folder, compact_extractor):
    compact = build_feature_store(tmp_path / "compact", image_folder, compact_extractor, progress=False)
    plain = build_feature_store(
        tmp_path / "plain", image_folder, LocalFeatureExtractor("rootsift", 200), progress=False
    )
    with pytest.raises(ValueError, match=r"is a compact store .* Hamming matching"):
        MatchingConfig().check_store(compact)
    with pytest.raises(ValueError, match="needs a compact store"):
        HammingMatching().check_store(plain)
    with pytest.raises(ValueError, match="not compact codes"):
        _ = plain.codec
    query = compact_extractor.from_path(image_folder["a"])
    binary = LocalFeatures(query.keypoints, np.zeros((len(query), 32), np.uint8), query.image_size)
    with pytest.raises(ValueError, match="embed float rootsift descriptors"):
        HammingMatching().check_store(compact, binary)


def test_compact_reranking_puts_the_same_image_first(tmp_path, image_folder, compact_extractor):
    store = build_feature_store(tmp_path / "store", image_folder, compact_extractor, progress=False)
    query = compact_extractor.from_path(image_folder["c"])
    ids = list("abcde")
    result = rerank(query, ids, np.zeros(5), store, GlobalPlusInliersRerank(matching=HammingMatching()))
    assert result.ranked_ids[0] == "c" and result.num_inliers[2] >= 20
    assert result.num_inliers[2] > 3 * max(result.num_inliers[[0, 1, 3, 4]])
