"""Tuple mining on hand-placed points: hard negatives are the nearest images of distinct other landmarks (and
agree with a naive search), random negatives are distinct other landmarks, the epoch's selection samples
queries and positives of one landmark, skips what cannot be read, and mines from what the model embeds."""

import math

import numpy as np
import pytest
import torch

from retrieval.descriptor.mining import (
    Embed,
    EpochTuples,
    TupleMining,
    mine_epoch_tuples,
    mine_hard_negatives,
    mine_random_negatives,
    sample_queries_and_positives,
    tuple_statistics,
)


def on_circle(degrees: list[float]) -> torch.Tensor:
    radians = torch.tensor(degrees) * math.pi / 180
    return torch.stack([radians.cos(), radians.sin()], dim=1)


def test_hard_negatives_are_nearest_distinct_other_landmarks():
    # Query at 0°, landmark 7. Pool by angle: own landmark at 1° (never a negative), landmark 1 at 10° and 20°
    # (only the nearer may be taken), landmark 2 at 30°, landmark 3 at 90°, landmark 4 at 180°.
    query = on_circle([0.0])
    pool = on_circle([1.0, 20.0, 10.0, 30.0, 90.0, 180.0])
    pool_labels = torch.tensor([7, 1, 1, 2, 3, 4])
    negatives = mine_hard_negatives(query, torch.tensor([7]), pool, pool_labels, num_negatives=3)
    assert negatives.tolist() == [[2, 3, 4]]


def test_hard_mining_widens_the_search_when_near_hits_share_a_landmark():
    # Forty images of landmark 1 sit nearest; the second landmark is far behind them.
    pool = on_circle([float(i) * 0.1 + 1 for i in range(40)] + [170.0])
    pool_labels = torch.tensor([1] * 40 + [2])
    negatives = mine_hard_negatives(on_circle([0.0]), torch.tensor([9]), pool, pool_labels, num_negatives=2)
    assert negatives.tolist() == [[0, 40]]


def test_hard_mining_matches_a_naive_search():
    generator = torch.Generator().manual_seed(0)
    queries = torch.nn.functional.normalize(torch.randn(30, 8, generator=generator), dim=1)
    pool = torch.nn.functional.normalize(torch.randn(200, 8, generator=generator), dim=1)
    query_labels = torch.randint(0, 15, (30,), generator=generator)
    pool_labels = torch.randint(0, 15, (200,), generator=generator)
    mined = mine_hard_negatives(queries, query_labels, pool, pool_labels, num_negatives=4, chunk_size=7)
    for q in range(30):
        order = torch.argsort(pool @ queries[q], descending=True).tolist()
        expected, seen = [], {int(query_labels[q])}
        for index in order:
            if int(pool_labels[index]) not in seen:
                seen.add(int(pool_labels[index]))
                expected.append(index)
        assert mined[q].tolist() == expected[:4]


def test_too_few_landmarks_raise():
    with pytest.raises(ValueError, match="landmarks"):
        mine_hard_negatives(
            on_circle([0.0]), torch.tensor([1]), on_circle([5.0, 6.0]), torch.tensor([1, 2]), 2
        )


def test_random_negatives_are_distinct_other_landmarks():
    pool_labels = torch.tensor([0, 0, 1, 1, 2, 3, 3, 4])
    negatives = mine_random_negatives(torch.tensor([0, 3]), pool_labels, 3, torch.Generator().manual_seed(0))
    for query_label, row in zip([0, 3], negatives.tolist(), strict=True):
        labels = pool_labels[row].tolist()
        assert len(set(labels)) == 3 and query_label not in labels


def test_tuple_statistics():
    query = on_circle([0.0])
    stats = tuple_statistics(query, on_circle([90.0]), on_circle([180.0, 60.0]).unsqueeze(0))
    assert stats.mean_positive_distance == pytest.approx(math.sqrt(2))
    assert stats.mean_negative_distance == pytest.approx(1.5)
    assert np.isclose(stats.num_queries, 1)


def test_queries_and_positives_share_a_landmark_and_skip_unreadable_images():
    labels = np.array([0, 0, 0, 1, 1, 2, 3, 3])  # landmark 2 has one image: never a query
    readable = np.array([True, True, True, True, False, True, True, True])  # image 4 unreadable
    queries, positives = sample_queries_and_positives(labels, readable, 100, np.random.default_rng(0))
    assert sorted(queries.tolist()) == [0, 1, 2, 6, 7]  # landmark 1 lost its pair; every eligible image once
    assert all(
        labels[q] == labels[p] and q != p and readable[p] for q, p in zip(queries, positives, strict=True)
    )
    again = sample_queries_and_positives(labels, readable, 100, np.random.default_rng(0))
    np.testing.assert_array_equal(again[0], queries)
    assert len(sample_queries_and_positives(labels, readable, 2, np.random.default_rng(0))[0]) == 2
    with pytest.raises(ValueError, match="two readable training images"):
        sample_queries_and_positives(np.array([0, 1]), np.ones(2, dtype=bool), 4, np.random.default_rng(0))


def mine_epoch(
    labels: np.ndarray, mining: TupleMining, num_tuples: int, seed: int, embed: Embed
) -> EpochTuples:
    """One epoch's tuples over images all believed readable."""
    readable = np.ones(len(labels), dtype=bool)
    return mine_epoch_tuples(labels, readable, mining, num_tuples, np.random.default_rng(seed), embed)


def test_an_epoch_mines_the_nearest_other_landmarks_of_what_the_model_embeds():
    # Landmark a at 0° and 2°, landmark b at 10° and 12°, landmark c at 100° and 102°, landmark d at 210°:
    # the hardest negative of a is b, of b is a, of c is b.
    labels = np.array([0, 0, 1, 1, 2, 2, 3])
    angles = [0.0, 2.0, 10.0, 12.0, 100.0, 102.0, 210.0]
    points = on_circle(angles)
    asked: list[np.ndarray] = []

    def embed(indices: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        asked.append(indices)
        return points[indices], np.ones(len(indices), dtype=bool)

    mined = mine_epoch(labels, TupleMining(pool_size=7, num_negatives=1), 10, 0, embed)
    assert len(asked) == 1 and sorted(asked[0].tolist()) == list(range(7))  # each image embedded once
    hardest = {0: 1, 1: 0, 2: 1}
    for query, positive, negative in mined.tuples.tolist():
        assert labels[query] == labels[positive] and labels[negative] == hardest[labels[query]]
    assert mined.pool_size == 7 and mined.statistics is not None and mined.unreadable.size == 0


def test_an_epoch_drops_tuples_whose_images_could_not_be_read():
    labels = np.array([0, 0, 1, 1, 2, 2])
    points = on_circle([0.0, 2.0, 50.0, 52.0, 100.0, 102.0])

    def embed(indices: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        return points[indices], indices != 1  # image 1 turns out unreadable

    mined = mine_epoch(labels, TupleMining(pool_size=6, num_negatives=1), 10, 1, embed)
    assert mined.unreadable.tolist() == [1]
    assert 1 not in mined.tuples and 0 not in mined.tuples[:, 0]  # image 0 has no readable positive left
    assert len(mined.tuples) == 4


def test_random_mining_embeds_nothing():
    labels = np.array([0, 0, 1, 1, 2, 2])

    def embed(indices: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        raise AssertionError("random mining must not embed")

    mined = mine_epoch(labels, TupleMining("random", num_negatives=2), 3, 0, embed)
    assert mined.tuples.shape == (3, 4) and mined.statistics is None
    for query, _, *negatives in mined.tuples.tolist():
        assert len({labels[n] for n in negatives}) == 2 and labels[query] not in {
            labels[n] for n in negatives
        }
