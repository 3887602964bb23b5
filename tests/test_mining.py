import math

import numpy as np
import pytest
import torch

from retrieval.mining import mine_hard_negatives, mine_random_negatives, tuple_statistics


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
