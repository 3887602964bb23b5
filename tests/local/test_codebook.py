"""Vocabulary training, bag of words, VLAD and ASMK against hand-computed values and naive formulas; local-only
retrieval with each codebook, and the bytes per image of each representation by hand."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.local.codebook import (
    AsmkIndex,
    InvertedFile,
    asmk_bytes_per_image,
    bow_bytes_per_image,
    bow_encode,
    codebook_descriptors,
    codebook_retrieval,
    dense_bytes_per_image,
    inverse_document_frequencies,
    vlad_encode,
)
from retrieval.local.features import LocalFeatureExtractor
from retrieval.local.store import local_feature_bytes_per_image
from retrieval.local.vocabulary import VisualVocabulary, VocabularySettings, train_vocabulary
from tests.local.test_features import textured_scene

CENTRES = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], np.float32)


def blobs(seed: int, per_centre: int = 200) -> np.ndarray:
    """Points (4·per_centre, 3) around CENTRES, unit spread."""
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [centre + rng.normal(size=(per_centre, 3)).astype(np.float32) for centre in CENTRES]
    )


def unit_rows(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    rows = rng.normal(size=(count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_training_finds_well_separated_clusters():
    vocabulary = VisualVocabulary.train(blobs(0), num_words=4, max_training_descriptors=400)
    assert vocabulary.num_words == 4 and vocabulary.dim == 3
    # Each true centre has one centroid within a spread of it.
    distances = np.linalg.norm(CENTRES[:, None] - vocabulary.centroids[None], axis=2)
    assert distances.min(axis=1).max() < 0.5
    assert len(set(distances.argmin(axis=1))) == 4


def test_assignment_is_the_nearest_centroid(tmp_path):
    vocabulary = VisualVocabulary.train(blobs(1), num_words=8, num_iterations=5)
    points = blobs(2, per_centre=10)
    naive = np.linalg.norm(points[:, None] - vocabulary.centroids[None], axis=2)
    np.testing.assert_array_equal(vocabulary.assign(points), naive.argmin(axis=1))
    np.testing.assert_array_equal(
        vocabulary.assign(points, num_assignments=3), np.argsort(naive, axis=1)[:, :3]
    )
    assert vocabulary.assign(np.zeros((0, 3), np.float32)).shape == (0,)

    vocabulary.save(tmp_path / "words.npy")
    loaded = VisualVocabulary.load(tmp_path / "words.npy")
    np.testing.assert_array_equal(loaded.centroids, vocabulary.centroids)
    np.testing.assert_array_equal(loaded.assign(points), vocabulary.assign(points))


def test_vocabulary_rejects_bad_input():
    with pytest.raises(ValueError, match="cannot train 10 words from 5"):
        VisualVocabulary.train(np.zeros((5, 3), np.float32), num_words=10)
    with pytest.raises(ValueError, match="num_words"):
        VisualVocabulary.train(np.zeros((5, 3), np.float32), num_words=0)
    vocabulary = VisualVocabulary(CENTRES)
    with pytest.raises(ValueError, match="dimensions"):
        vocabulary.assign(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="num_assignments"):
        vocabulary.assign(np.zeros((2, 3), np.float32), num_assignments=5)


def test_idf_by_hand():
    images = [np.array([0, 0, 1]), np.array([1, 2]), np.array([1])]
    # Word 0 in 1 of 3 images, word 1 in 3, word 2 in 1, word 3 in none.
    np.testing.assert_allclose(inverse_document_frequencies(images, 4), [np.log(3), 0.0, np.log(3), 0.0])


def test_bow_by_hand():
    # Counts (2, 0, 1) times idf (1, 2, 0.5) = (2, 0, 0.5), norm sqrt(4.25).
    np.testing.assert_allclose(
        bow_encode(np.array([0, 2, 0]), 3, idf=np.array([1.0, 2.0, 0.5])),
        np.array([2, 0, 0.5]) / np.sqrt(4.25),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        bow_encode(np.array([1, 1, 1, 2]), 3), np.array([0, 3, 1]) / np.sqrt(10), rtol=1e-6
    )
    np.testing.assert_array_equal(bow_encode(np.array([], np.int64), 3), [0, 0, 0])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        bow_encode(np.array([3]), 3)


def test_inverted_file_scores_equal_dense_cosines():
    rng = np.random.default_rng(0)
    num_words = 50
    images = [rng.integers(0, num_words, rng.integers(0, 40)) for _ in range(30)]
    inverted_file = InvertedFile(images, num_words)
    database = np.stack([bow_encode(word_ids, num_words, inverted_file.idf) for word_ids in images])
    for _ in range(5):
        query = rng.integers(0, num_words, 25)
        expected = database @ bow_encode(query, num_words, inverted_file.idf)
        np.testing.assert_allclose(inverted_file.scores(query), expected, atol=1e-6)
        indices, scores = inverted_file.search(query, top_k=7)
        np.testing.assert_array_equal(indices, np.argsort(-inverted_file.scores(query), kind="stable")[:7])
        np.testing.assert_allclose(scores, np.sort(expected)[::-1][:7], atol=1e-6)
    assert inverted_file.scores(np.array([], np.int64)).shape == (30,)


def naive_vlad(
    descriptors: np.ndarray, centroids: np.ndarray, intra: bool, power: float | None
) -> np.ndarray:
    """VLAD by explicit loops over descriptors and words."""
    num_words, dim = centroids.shape
    sums = np.zeros((num_words, dim))
    for descriptor in descriptors.astype(np.float64):
        word = int(np.argmin([np.sum((descriptor - centroid) ** 2) for centroid in centroids]))
        sums[word] += descriptor - centroids[word]
    if intra:
        for word in range(num_words):
            norm = np.linalg.norm(sums[word])
            if norm > 0:
                sums[word] /= norm
    vector = sums.reshape(-1)
    if power is not None:
        vector = np.array([np.sign(value) * abs(value) ** power for value in vector])
    return vector / np.linalg.norm(vector)


def test_vlad_by_hand():
    centroids = np.array([[0, 0], [10, 0]], np.float32)
    descriptors = np.array([[1, 0], [0, 3], [9, 0]], np.float32)
    # Residual sums: word 0 (1, 3), word 1 (-1, 0).
    vocabulary = VisualVocabulary(centroids)
    plain = np.array([1, 3, -1, 0]) / np.sqrt(11)
    np.testing.assert_allclose(
        vlad_encode(descriptors, vocabulary, intra_normalize=False, power=None), plain, rtol=1e-6
    )
    intra = np.array([1 / np.sqrt(10), 3 / np.sqrt(10), -1, 0]) / np.sqrt(2)
    np.testing.assert_allclose(
        vlad_encode(descriptors, vocabulary, intra_normalize=True, power=None), intra, rtol=1e-6
    )


@pytest.mark.parametrize("intra", [True, False])
@pytest.mark.parametrize("power", [0.5, None])
def test_vlad_equals_naive_loops(intra, power):
    vocabulary = VisualVocabulary.train(blobs(3), num_words=6, num_iterations=5)
    descriptors = blobs(4, per_centre=15)
    np.testing.assert_allclose(
        vlad_encode(descriptors, vocabulary, intra_normalize=intra, power=power),
        naive_vlad(descriptors, vocabulary.centroids, intra, power),
        atol=1e-5,
    )


def test_vlad_of_nothing_is_zero():
    vlad = vlad_encode(np.zeros((0, 3), np.float32), VisualVocabulary(CENTRES))
    np.testing.assert_array_equal(vlad, np.zeros(12))
    with pytest.raises(ValueError, match="power"):
        vlad_encode(blobs(0, 1), VisualVocabulary(CENTRES), power=2.0)


@pytest.fixture(scope="module")
def asmk_database():
    rng = np.random.default_rng(5)
    vocabulary = VisualVocabulary.train(unit_rows(rng, 2000, 16), num_words=16, num_iterations=5)
    images = [unit_rows(rng, count, 16) for count in (40, 0, 60, 30, 50)]
    return vocabulary, images


@pytest.mark.parametrize("binary", [True, False])
def test_asmk_finds_each_database_image_from_its_own_descriptors(asmk_database, binary):
    vocabulary, images = asmk_database
    index = AsmkIndex(vocabulary, binary=binary, query_assignments=1)
    index.add(images)
    queries = [images[0], images[2], images[3], images[4]]
    ranks, scores = index.search(queries)
    np.testing.assert_array_equal(ranks[:, 0], [0, 2, 3, 4])
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)  # a normalised self-similarity
    assert ranks.shape == (4, 5)
    assert (index.scores(queries)[:, 1] == 0).all()  # the database image without descriptors


def test_asmk_with_multiple_assignment_and_noisy_queries(asmk_database):
    vocabulary, images = asmk_database
    index = AsmkIndex(vocabulary, query_assignments=3)
    index.add(images)
    rng = np.random.default_rng(6)
    noisy = [
        image + 0.05 * rng.normal(size=image.shape).astype(np.float32) for image in (images[2], images[4])
    ]
    ranks, _ = index.search(noisy, top_k=2)
    np.testing.assert_array_equal(ranks[:, 0], [2, 4])
    assert ranks.shape == (2, 2)
    np.testing.assert_array_equal(index.scores([np.zeros((0, 16), np.float32)]), np.zeros((1, 5)))


def test_asmk_rejects_misuse(asmk_database):
    vocabulary, images = asmk_database
    index = AsmkIndex(vocabulary)
    with pytest.raises(ValueError, match="add"):
        index.search([images[0]])
    index.add(images)
    with pytest.raises(ValueError, match="already indexed"):
        index.add(images)
    with pytest.raises(ValueError, match="query_assignments"):
        AsmkIndex(vocabulary, query_assignments=0)


@pytest.mark.parametrize("kind", ["bow", "vlad", "asmk"])
def test_codebook_retrieval_finds_each_image_from_its_own_descriptors(kind):
    # Image i: 80 descriptors, 20 around each of 4 random directions of its own.
    rng = np.random.default_rng(0)
    directions = unit_rows(rng, 24, 16)
    database = []
    for image in range(6):
        around = directions[np.repeat(np.arange(4 * image, 4 * image + 4), 20)]
        noisy = around + 0.05 * rng.normal(size=around.shape).astype(np.float32)
        database.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    vocabulary = train_vocabulary(np.concatenate(database), 24, VocabularySettings(num_iterations=10))
    result = codebook_retrieval(kind, vocabulary, database, database)
    assert result.ranking.shape == (6, 6)
    np.testing.assert_array_equal(result.ranking[:, 0], np.arange(6))
    assert all(sorted(row) == list(range(6)) for row in result.ranking.tolist())
    assert result.encode_ms_per_image > 0 and result.search_ms_per_query > 0


def test_bytes_per_image_by_hand():
    assert dense_bytes_per_image(1280) == 5120
    assert local_feature_bytes_per_image(100, 128, binary=False) == 100 * (16 + 256)
    assert local_feature_bytes_per_image(100, 32, binary=True) == 100 * (16 + 32)
    assert bow_bytes_per_image(num_postings=30, num_images=3) == 80
    assert asmk_bytes_per_image(num_entries=10, num_images=2, dim=128) == 10 * (4 + 16) / 2
    assert asmk_bytes_per_image(num_entries=1, num_images=1, dim=488) == 4 + 61  # AKAZE: 488 bits
    with pytest.raises(ValueError, match="num_images"):
        bow_bytes_per_image(3, 0)


def test_codebook_sizes_follow_their_layouts():
    # Two words; image A uses word 0, image B both words, image C word 1: 4 postings, 4 ASMK entries.
    vocabulary = VisualVocabulary(np.array([[0, 0], [10, 0]], np.float32))
    database = [
        np.array([[0, 1], [1, 0]], np.float32),
        np.array([[0, 0], [10, 1]], np.float32),
        np.array([[9, 0]], np.float32),
    ]
    assert codebook_retrieval("bow", vocabulary, database, database).bytes_per_image == 4 * 8 / 3
    assert codebook_retrieval("vlad", vocabulary, database, database).bytes_per_image == 2 * 2 * 4
    assert codebook_retrieval("asmk", vocabulary, database, database).bytes_per_image == 4 * (4 + 1) / 3


def test_binary_descriptors_are_unpacked_for_codebooks():
    features = LocalFeatureExtractor("orb", 50, 1024)(textured_scene(3))
    unpacked = codebook_descriptors(features)
    assert unpacked.shape == (len(features), 256) and unpacked.dtype == np.float32
    np.testing.assert_array_equal(np.packbits(unpacked.astype(np.uint8), axis=1), features.descriptors)
