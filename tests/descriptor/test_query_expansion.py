"""αQE and αDBA against hand-computed values and naive per-vector loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from retrieval.descriptor.query_expansion import alpha_query_expansion, database_side_augmentation

SQRT3_2 = math.sqrt(3) / 2
# Unit vectors at 0, 90, 60 and 180 degrees.
DATABASE = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, SQRT3_2], [-1.0, 0.0]])


def unit(vector: list[float]) -> list[float]:
    norm = math.hypot(*vector)
    return [value / norm for value in vector]


def normalised(generator: torch.Generator, num_rows: int, dim: int) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(num_rows, dim, generator=generator), dim=1)


def naive_expansion(
    vector: np.ndarray, neighbours: np.ndarray, alpha: float, include_vector: bool
) -> np.ndarray:
    """One vector at a time, straight from the formula."""
    total = vector.copy() if include_vector else np.zeros_like(vector)
    for neighbour in neighbours:
        total += max(float(vector @ neighbour), 0.0) ** alpha * neighbour
    return total / np.linalg.norm(total)


# ---------------------------------------------------------------------------------------------- αQE


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        # q + 1 * x0 + 0.5**alpha * x2 with q = x0 = (1, 0), x2 = (0.5, sqrt(3)/2).
        (0.0, unit([1 + 1 + 0.5, SQRT3_2])),
        (1.0, unit([1 + 1 + 0.25, 0.5 * SQRT3_2])),
        (3.0, unit([1 + 1 + 0.0625, 0.125 * SQRT3_2])),
    ],
)
def test_alpha_query_expansion_by_hand(alpha: float, expected: list[float]) -> None:
    query = torch.tensor([[1.0, 0.0]])
    ranking = torch.tensor([[0, 2, 1]])
    expanded = alpha_query_expansion(query, DATABASE, ranking, k=2, alpha=alpha)
    torch.testing.assert_close(expanded, torch.tensor([expected]))


def test_negative_similarities_get_no_weight_and_padding_is_skipped() -> None:
    query = torch.tensor([[1.0, 0.0]])
    # Neighbours: x2 (similarity 0.5), x3 (similarity -1, weight 0), padding.
    expanded = alpha_query_expansion(query, DATABASE, torch.tensor([[2, 3, -1]]), k=3, alpha=2.0)
    torch.testing.assert_close(expanded, torch.tensor([unit([1 + 0.25 * 0.5, 0.25 * SQRT3_2])]))


def test_alpha_query_expansion_matches_naive_loop() -> None:
    generator = torch.Generator().manual_seed(0)
    queries, database = normalised(generator, 7, 8), normalised(generator, 40, 8)
    ranking = torch.argsort(queries @ database.T, dim=1, descending=True)[:, :6]
    expanded = alpha_query_expansion(queries, database, ranking, k=4, alpha=3.0, chunk_size=3)
    expected = [
        naive_expansion(query.numpy(), database[rows[:4]].numpy(), 3.0, include_vector=True)
        for query, rows in zip(queries, ranking, strict=True)
    ]
    np.testing.assert_allclose(expanded.numpy(), np.stack(expected), atol=1e-6)


def test_alpha_query_expansion_validates_input() -> None:
    query, ranking = torch.tensor([[1.0, 0.0]]), torch.tensor([[0, 2]])
    with pytest.raises(ValueError, match=r"ranking must have shape \(1, K >= 3\)"):
        alpha_query_expansion(query, DATABASE, ranking, k=3)
    with pytest.raises(ValueError, match=r"k must be in \[1, 4\]"):
        alpha_query_expansion(query, DATABASE, ranking, k=0)
    with pytest.raises(ValueError, match="alpha must be non-negative"):
        alpha_query_expansion(query, DATABASE, ranking, k=2, alpha=-1.0)
    with pytest.raises(ValueError, match=r"ranking entries must lie in \[-1, 4\)"):
        alpha_query_expansion(query, DATABASE, torch.tensor([[0, 4]]), k=2)
    with pytest.raises(ValueError, match="integer"):
        alpha_query_expansion(query, DATABASE, ranking.float(), k=2)
    with pytest.raises(ValueError, match="must be"):
        alpha_query_expansion(torch.tensor([[1.0, 0.0, 0.0]]), DATABASE, ranking, k=2)


# ---------------------------------------------------------------------------------------------- αDBA


def test_database_side_augmentation_by_hand() -> None:
    # Top-2 (itself included): x0 -> x0, x2 (0.5); x1 -> x1, x2 (sqrt(3)/2); x2 -> x2, x1 (sqrt(3)/2);
    # x3 -> x3, x1 (similarity 0 beats x2's -0.5), weight 0 ** 1 = 0.
    augmented = database_side_augmentation(DATABASE, k=2, alpha=1.0)
    expected = torch.tensor(
        [
            unit([1 + 0.5 * 0.5, 0.5 * SQRT3_2]),
            unit([SQRT3_2 * 0.5, 1 + SQRT3_2 * SQRT3_2]),
            unit([0.5, SQRT3_2 + SQRT3_2]),
            [-1.0, 0.0],
        ]
    )
    torch.testing.assert_close(augmented, expected)


def test_database_side_augmentation_matches_naive_loop() -> None:
    generator = torch.Generator().manual_seed(1)
    database = normalised(generator, 50, 8)
    augmented = database_side_augmentation(
        database, k=5, alpha=3.0, chunk_size=7, search_database_chunk_size=16
    )
    vectors = database.numpy()
    expected = []
    for vector in vectors:
        nearest = np.argsort(-(vectors @ vector), kind="stable")[:5]
        assert nearest[0] == len(expected)  # the vector itself comes first
        expected.append(naive_expansion(vector, vectors[nearest], 3.0, include_vector=False))
    np.testing.assert_allclose(augmented.numpy(), np.stack(expected), atol=1e-6)


def test_database_side_augmentation_with_a_given_ranking_equals_the_exact_one() -> None:
    generator = torch.Generator().manual_seed(2)
    database = normalised(generator, 30, 8)
    ranking = torch.argsort(database @ database.T, dim=1, descending=True)[:, :10]
    torch.testing.assert_close(
        database_side_augmentation(database, k=4, alpha=2.0, ranking=ranking),
        database_side_augmentation(database, k=4, alpha=2.0),
    )


def test_database_side_augmentation_with_k_1_is_the_identity() -> None:
    generator = torch.Generator().manual_seed(3)
    database = normalised(generator, 20, 8)
    torch.testing.assert_close(database_side_augmentation(database, k=1, alpha=3.0), database)
