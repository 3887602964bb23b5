"""PCA whitening and learned whitening Lw: whitening invariants, a naive reference from the paper's formulas,
and the effect Lw is for (matching pairs closer, relative to non-matching ones)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval.descriptor.whitening import Whitening, learn_lw_whitening, learn_pca_whitening

DIM = 16


def anisotropic(rng: np.random.Generator, num_rows: int, dim: int = DIM) -> np.ndarray:
    """Correlated data with very different variances along different directions, and a non-zero mean."""
    mixing = rng.standard_normal((dim, dim)) * np.geomspace(3.0, 0.05, dim)
    return rng.standard_normal((num_rows, dim)) @ mixing.T + rng.standard_normal(dim)


def landmark_pairs(
    rng: np.random.Generator, num_landmarks: int, images_per_landmark: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """L2-normalised descriptors of landmarks whose images vary mostly along four "nuisance" directions
    (viewpoint, lighting) shared by all landmarks, and the matching pairs (first image, each other image).

    Returns:
        embeddings (num_landmarks * images_per_landmark, DIM), landmark label of each row, query_indices and
        positive_indices (num_landmarks * (images_per_landmark - 1),).
    """
    centres = rng.standard_normal((num_landmarks, DIM))
    nuisance = np.zeros((DIM, DIM))
    nuisance[:4, :4] = 4.0 * np.linalg.qr(rng.standard_normal((4, 4)))[0]
    labels = np.repeat(np.arange(num_landmarks), images_per_landmark)
    variation = rng.standard_normal((len(labels), DIM)) @ nuisance.T + 0.1 * rng.standard_normal(
        (len(labels), DIM)
    )
    embeddings = centres[labels] + variation
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    firsts = np.arange(num_landmarks) * images_per_landmark
    query_indices = np.repeat(firsts, images_per_landmark - 1)
    positive_indices = (firsts[:, None] + np.arange(1, images_per_landmark)).ravel()
    return embeddings, labels, query_indices, positive_indices


def naive_lw(embeddings: np.ndarray, query_indices: np.ndarray, positive_indices: np.ndarray) -> np.ndarray:
    """The paper's formulas, term by term: C_S = sum over pairs of (q - p)(q - p)^T, its inverse square root,
    C_D = sum over all images of the whitened (x - m)(x - m)^T, P = eig(C_D)^T C_S^(-1/2)."""
    mean = embeddings[query_indices].mean(axis=0)
    intra_class_covariance = np.zeros((DIM, DIM))
    for query, positive in zip(query_indices, positive_indices, strict=True):
        difference = embeddings[query] - embeddings[positive]
        intra_class_covariance += np.outer(difference, difference)
    intra_class_covariance /= len(query_indices)
    values, vectors = np.linalg.eigh(intra_class_covariance)
    inverse_square_root = vectors @ np.diag(values**-0.5) @ vectors.T
    inter_class_covariance = np.zeros((DIM, DIM))
    for embedding in embeddings:
        whitened = inverse_square_root @ (embedding - mean)
        inter_class_covariance += np.outer(whitened, whitened)
    values, vectors = np.linalg.eigh(inter_class_covariance)
    return vectors[:, np.argsort(values)[::-1]].T @ inverse_square_root


def sign_aligned(projection: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``projection`` with each row's sign flipped to agree with the same row of ``reference``."""
    signs = np.sign(np.sum(projection * reference, axis=1, keepdims=True))
    return projection * signs


def distance_ratio(embeddings: np.ndarray, labels: np.ndarray) -> float:
    """Mean distance between images of the same landmark over mean distance between different landmarks."""
    distances = np.linalg.norm(embeddings[:, None] - embeddings[None], axis=2)
    same = labels[:, None] == labels[None]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    return float(distances[same & off_diagonal].mean() / distances[~same].mean())


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------- PCA whitening


@pytest.mark.parametrize("dim", [None, 6])
def test_pca_whitened_training_data_has_identity_covariance(
    rng: np.random.Generator, dim: int | None
) -> None:
    embeddings = anisotropic(rng, 3000)
    whitening = learn_pca_whitening(embeddings, dim=dim, eps=0.0)
    output_dim = dim or DIM
    assert whitening.mean.shape == (DIM,) and whitening.projection.shape == (output_dim, DIM)
    projected = (embeddings - whitening.mean) @ whitening.projection.T.astype(np.float64)
    np.testing.assert_allclose(projected.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(projected.T @ projected / len(projected), np.eye(output_dim), atol=1e-4)


def test_pca_whitening_keeps_the_largest_variance_directions(rng: np.random.Generator) -> None:
    embeddings = anisotropic(rng, 3000)
    full, reduced = learn_pca_whitening(embeddings), learn_pca_whitening(embeddings, dim=5)
    np.testing.assert_allclose(reduced.projection, full.projection[:5], rtol=1e-5, atol=1e-6)
    row_norms = np.linalg.norm(full.projection, axis=1)  # 1 / sqrt(variance along each direction)
    assert (np.diff(row_norms) > 0).all()


def test_full_shrinkage_is_a_scaled_rotation(rng: np.random.Generator) -> None:
    embeddings = anisotropic(rng, 500)
    whitening = learn_pca_whitening(embeddings, shrinkage=1.0, eps=0.0)
    mean_variance = np.trace(np.cov(embeddings.T, bias=True)) / DIM
    gram = whitening.projection.astype(np.float64) @ whitening.projection.T
    np.testing.assert_allclose(gram, np.eye(DIM) / mean_variance, rtol=1e-4, atol=1e-6)


def test_pca_whitening_rejects_bad_arguments(rng: np.random.Generator) -> None:
    embeddings = anisotropic(rng, 50)
    with pytest.raises(ValueError, match=r"dim must be in \[1, 16\], got 17"):
        learn_pca_whitening(embeddings, dim=17)
    with pytest.raises(ValueError, match="shrinkage must be in"):
        learn_pca_whitening(embeddings, shrinkage=1.5)
    embeddings[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        learn_pca_whitening(embeddings)


# ---------------------------------------------------------------------------------------------- Whitening object


def test_apply_is_affine_map_then_l2_normalisation(rng: np.random.Generator) -> None:
    mean = np.array([1.0, 0.0, -1.0], dtype=np.float32)
    projection = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]], dtype=np.float32)
    whitening = Whitening(mean, projection)
    whitened = whitening.apply(np.array([[4.0, 7.0, 3.0], [1.0, 5.0, -1.0 + 2 / 3]], dtype=np.float32))
    # (2 * 3, 3 * 4) = (6, 12) and (0, 2), each normalised.
    np.testing.assert_allclose(whitened, [[1 / np.sqrt(5), 2 / np.sqrt(5)], [0.0, 1.0]], atol=1e-6)
    assert whitened.dtype == np.float32
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        whitening.apply(np.zeros((2, 4), dtype=np.float32))


def test_to_linear_matches_apply(rng: np.random.Generator) -> None:
    embeddings = anisotropic(rng, 400).astype(np.float32)
    whitening = learn_pca_whitening(embeddings, dim=8)
    linear = whitening.to_linear()
    assert (linear.in_features, linear.out_features) == (DIM, 8)
    with torch.no_grad():
        from_linear = torch.nn.functional.normalize(linear(torch.from_numpy(embeddings)), dim=1).numpy()
    np.testing.assert_allclose(from_linear, whitening.apply(embeddings), atol=1e-4)


def test_save_load_round_trip(rng: np.random.Generator, tmp_path: Path) -> None:
    whitening = learn_pca_whitening(anisotropic(rng, 200), dim=4)
    whitening.save(tmp_path / "whitening.npz")
    loaded = Whitening.load(tmp_path / "whitening.npz")
    np.testing.assert_array_equal(loaded.mean, whitening.mean)
    np.testing.assert_array_equal(loaded.projection, whitening.projection)
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match=r"lacks the arrays \['mean', 'projection'\]"):
        Whitening.load(tmp_path / "other.npz")


def test_whitening_validates_shapes() -> None:
    with pytest.raises(ValueError, match="mean"):
        Whitening(np.zeros(3), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="more dimensions"):
        Whitening(np.zeros(2), np.zeros((3, 2)))


# ---------------------------------------------------------------------------------------------- Lw


def test_lw_matches_naive_reference_from_the_paper(rng: np.random.Generator) -> None:
    embeddings, _, query_indices, positive_indices = landmark_pairs(rng, 60)
    whitening = learn_lw_whitening(embeddings, query_indices, positive_indices)
    reference = naive_lw(embeddings, query_indices, positive_indices)
    np.testing.assert_allclose(whitening.mean, embeddings[query_indices].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(sign_aligned(whitening.projection, reference), reference, rtol=1e-3, atol=1e-3)


def test_lw_whitens_the_pair_differences(rng: np.random.Generator) -> None:
    embeddings, _, query_indices, positive_indices = landmark_pairs(rng, 60)
    projection = learn_lw_whitening(embeddings, query_indices, positive_indices).projection.astype(np.float64)
    differences = (embeddings[query_indices] - embeddings[positive_indices]) @ projection.T
    np.testing.assert_allclose(differences.T @ differences / len(differences), np.eye(DIM), atol=1e-4)


def test_lw_brings_matching_pairs_closer_on_held_out_landmarks(rng: np.random.Generator) -> None:
    training, _, query_indices, positive_indices = landmark_pairs(rng, 200)
    test, test_labels, _, _ = landmark_pairs(rng, 50)
    whitening = learn_lw_whitening(training, query_indices, positive_indices, dim=12)
    before = distance_ratio(test, test_labels)
    after = distance_ratio(whitening.apply(test), test_labels)
    unsupervised = distance_ratio(learn_pca_whitening(training, dim=12).apply(test), test_labels)
    assert after < 0.6 * before
    assert after < unsupervised  # the pairs tell Lw which variation is nuisance; PCA cannot know


def test_lw_regularises_a_singular_pair_covariance(
    rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    embeddings, _, query_indices, positive_indices = landmark_pairs(rng, 20)
    with caplog.at_level(logging.WARNING, logger="retrieval.descriptor.whitening"):
        whitening = learn_lw_whitening(
            embeddings, query_indices[:5], positive_indices[:5]
        )  # 5 pairs < 16 dims
    assert "not positive definite" in caplog.text
    assert np.isfinite(whitening.apply(embeddings)).all()


def test_lw_rejects_bad_pairs(rng: np.random.Generator) -> None:
    embeddings, _, query_indices, positive_indices = landmark_pairs(rng, 10)
    with pytest.raises(ValueError, match="equal length"):
        learn_lw_whitening(embeddings, query_indices, positive_indices[:-1])
    with pytest.raises(ValueError, match=r"positive_indices must lie in \[0, 40\)"):
        learn_lw_whitening(embeddings, query_indices, positive_indices + 40)
