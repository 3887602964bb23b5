"""Visual vocabularies: scaled down when descriptors are too few, words allocated to cells by largest
remainder, two-level vocabularies giving every cluster its share and assigning (nearly) exactly."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.local.vocabulary import (
    TwoLevelVocabulary,
    VocabularySettings,
    allocate_words,
    effective_num_words,
    train_vocabulary,
)


def test_vocabularies_shrink_when_descriptors_are_too_few():
    assert effective_num_words(16384, 50_000, 8) == 6250
    assert effective_num_words(1024, 50_000, 8) == 1024
    with pytest.raises(ValueError, match="cannot train a single word"):
        effective_num_words(16, 7, 8)


def test_words_are_allocated_to_cells_by_largest_remainder():
    # Quotas 5, 0, 2.5, 0.5: floors 5, 0, 2, 0 and the one word left goes to the first largest remainder.
    np.testing.assert_array_equal(allocate_words(np.array([10, 0, 5, 1]), 8), [5, 0, 3, 0])
    rng = np.random.default_rng(0)
    for _ in range(50):
        sizes = rng.integers(0, 30, size=12)
        num_words = int(rng.integers(1, sizes.sum() + 1))
        words = allocate_words(sizes, num_words)
        assert words.sum() == num_words and np.all(words <= sizes) and np.all(words >= 0)
    with pytest.raises(ValueError, match="num_words"):
        allocate_words(np.array([2, 1]), 4)


def test_two_level_vocabulary_gives_every_cluster_its_share_of_words():
    centres = np.array([[0, 0], [100, 0], [0, 100], [100, 100]], np.float32)
    rng = np.random.default_rng(1)
    points = np.concatenate([centre + rng.normal(size=(400, 2)).astype(np.float32) for centre in centres])
    vocabulary = train_vocabulary(points, 16, VocabularySettings(two_level_above=4, num_iterations=10))
    assert isinstance(vocabulary, TwoLevelVocabulary) and vocabulary.num_words == 16
    nearest_centre = np.linalg.norm(vocabulary.centroids[:, None] - centres[None], axis=2).argmin(axis=1)
    np.testing.assert_array_equal(np.bincount(nearest_centre, minlength=4), [4, 4, 4, 4])


def test_two_level_assignment_is_exact_when_every_cell_is_probed_and_close_otherwise():
    rng = np.random.default_rng(2)
    descriptors = rng.normal(size=(3000, 8)).astype(np.float32)
    vocabulary = train_vocabulary(
        descriptors, 64, VocabularySettings(two_level_above=16, assignment_probes=2)
    )
    queries = rng.normal(size=(500, 8)).astype(np.float32)
    exact = np.linalg.norm(queries[:, None] - vocabulary.centroids[None], axis=2).argsort(axis=1)[:, :3]
    every_cell = TwoLevelVocabulary(
        vocabulary.coarse, vocabulary.centroids, probes=vocabulary.coarse.num_words
    )
    np.testing.assert_array_equal(every_cell.assign(queries), exact[:, 0])
    np.testing.assert_array_equal(every_cell.assign(queries, num_assignments=3), exact)
    assert np.mean(vocabulary.assign(queries) == exact[:, 0]) > 0.8  # 2 of 8 cells
    assert vocabulary.assign(np.zeros((0, 8), np.float32)).shape == (0,)
    with pytest.raises(ValueError, match="probes"):
        TwoLevelVocabulary(vocabulary.coarse, vocabulary.centroids, probes=0)
