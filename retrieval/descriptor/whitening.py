"""Whitening of global descriptors: an affine map ``x -> P (x - m)`` followed by L2 normalisation.

Two ways to learn it:

* :func:`learn_pca_whitening` -- unsupervised PCA whitening with dimension reduction (Jégou & Chum, 2012).
* :func:`learn_lw_whitening` -- the learned whitening "Lw" of Radenović, Tolias & Chum (ECCV 2016, TPAMI 2018),
  from matching pairs: whiten the intra-class (pair difference) covariance, then rotate onto the principal
  directions of the whitened data, as in cirtorch's ``whitenlearn``.

Learning runs in float64 numpy; a :class:`Whitening` stores float32 arrays and is saved as ``.npz`` (no pickle).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

# Added to the norm before dividing, so that a vector mapped to (near) zero stays finite.
NORMALISATION_EPS = 1e-6


@dataclass(frozen=True, eq=False)
class Whitening:
    """The affine map ``x -> projection @ (x - mean)``, L2-normalised: ``mean`` (D,), ``projection`` (D_out, D),
    rows ordered by decreasing importance, so that ``projection[:d]`` is the best ``d``-dimensional map."""

    mean: np.ndarray
    projection: np.ndarray

    def __post_init__(self) -> None:
        if self.mean.ndim != 1 or self.projection.ndim != 2 or self.projection.shape[1] != len(self.mean):
            raise ValueError(
                f"whitening needs mean (D,) and projection (D_out, D), got {self.mean.shape} and "
                f"{self.projection.shape}"
            )
        if self.projection.shape[0] > self.projection.shape[1]:
            raise ValueError(f"projection {self.projection.shape} maps to more dimensions than it reads")
        if not (np.isfinite(self.mean).all() and np.isfinite(self.projection).all()):
            raise ValueError("whitening mean and projection must be finite")
        object.__setattr__(self, "mean", np.ascontiguousarray(self.mean, dtype=np.float32))
        object.__setattr__(self, "projection", np.ascontiguousarray(self.projection, dtype=np.float32))

    @property
    def input_dim(self) -> int:
        return int(self.projection.shape[1])

    @property
    def output_dim(self) -> int:
        return int(self.projection.shape[0])

    def apply(self, embeddings: np.ndarray, chunk_size: int = 65_536) -> np.ndarray:
        """Whiten ``embeddings`` (N, D) into L2-normalised float32 (N, D_out), ``chunk_size`` rows at a time."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.input_dim:
            raise ValueError(f"embeddings must have shape (N, {self.input_dim}), got {embeddings.shape}")
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        whitened = np.empty((len(embeddings), self.output_dim), dtype=np.float32)
        for start in range(0, len(embeddings), chunk_size):
            chunk = np.asarray(embeddings[start : start + chunk_size], dtype=np.float32)
            projected = (chunk - self.mean) @ self.projection.T
            norms = np.linalg.norm(projected, axis=1, keepdims=True)
            whitened[start : start + chunk_size] = projected / (norms + NORMALISATION_EPS)
        return whitened

    def to_linear(self) -> torch.nn.Linear:
        """A ``Linear(D, D_out)`` computing ``projection @ (x - mean)``; L2-normalise its output to match
        :meth:`apply`."""
        linear = torch.nn.Linear(self.input_dim, self.output_dim, bias=True)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(self.projection))
            linear.bias.copy_(
                torch.from_numpy(-(self.projection.astype(np.float64) @ self.mean).astype(np.float32))
            )
        return linear

    def save(self, path: str | Path) -> None:
        """Write ``mean`` and ``projection`` to an ``.npz`` file (numpy adds the suffix if it is missing)."""
        np.savez(Path(path), mean=self.mean, projection=self.projection)

    @classmethod
    def load(cls, path: str | Path) -> Whitening:
        """Read a whitening written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as arrays:
            missing = {"mean", "projection"} - set(arrays.files)
            if missing:
                raise ValueError(f"{path} lacks the arrays {sorted(missing)}; not a saved Whitening")
            return cls(arrays["mean"], arrays["projection"])


def _as_float64_matrix(embeddings: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().cpu().numpy()
    matrix = np.asarray(embeddings, dtype=np.float64)
    if matrix.ndim != 2 or len(matrix) < 2:
        raise ValueError(f"embeddings must have shape (N, D) with N >= 2, got {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("embeddings contain NaN or infinite values")
    return matrix


def _check_output_dim(dim: int | None, input_dim: int) -> int:
    if dim is None:
        return input_dim
    if not 1 <= dim <= input_dim:
        raise ValueError(f"dim must be in [1, {input_dim}], got {dim}")
    return dim


def _descending_eigh(symmetric: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (D,) in decreasing order and the matching unit eigenvectors as columns (D, D)."""
    eigenvalues, eigenvectors = np.linalg.eigh(symmetric)
    return eigenvalues[::-1], eigenvectors[:, ::-1]


def learn_pca_whitening(
    embeddings: np.ndarray | torch.Tensor,
    dim: int | None = None,
    shrinkage: float = 0.0,
    eps: float = 1e-9,
) -> Whitening:
    """PCA whitening of ``embeddings`` (N, D) down to ``dim`` dimensions (default: D).

    With ``C`` the covariance of the embeddings (normalised by N), optionally shrunk towards a multiple of the
    identity, ``(1 - shrinkage) C + shrinkage * (trace(C) / D) I``, and ``C = U diag(lambda) U^T`` its
    eigen-decomposition, the projection is ``diag(lambda_i + eps)^(-1/2) U^T`` for the ``dim`` largest
    ``lambda_i``: the training data then has (up to ``eps``) identity covariance in every kept dimension.
    Directions of (near) zero variance, which exist when N <= D, blow up under whitening; keep ``dim`` below
    the rank of the data or use ``shrinkage > 0`` there.
    """
    matrix = _as_float64_matrix(embeddings)
    output_dim = _check_output_dim(dim, matrix.shape[1])
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage}")
    if eps < 0:
        raise ValueError(f"eps must be non-negative, got {eps}")
    mean = matrix.mean(axis=0)
    centred = matrix - mean
    covariance = centred.T @ centred / len(matrix)
    if shrinkage > 0:
        covariance = (1 - shrinkage) * covariance + shrinkage * np.trace(covariance) / len(
            covariance
        ) * np.eye(len(covariance))
    eigenvalues, eigenvectors = _descending_eigh(covariance)
    eigenvalues = np.clip(eigenvalues[:output_dim], 0.0, None)
    projection = eigenvectors[:, :output_dim].T / np.sqrt(eigenvalues + eps)[:, None]
    return Whitening(mean, projection)


def _regularised_cholesky(symmetric: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of ``symmetric``; if it is not positive definite, ``alpha * I`` is added with
    ``alpha`` = 1e-10, 1e-9, ... until it is (as cirtorch does)."""
    alpha = 0.0
    while True:
        try:
            return np.linalg.cholesky(symmetric + alpha * np.eye(len(symmetric)))
        except np.linalg.LinAlgError:
            alpha = 1e-10 if alpha == 0.0 else alpha * 10
            logger.warning(
                "pair-difference covariance is not positive definite; adding %.0e to its diagonal", alpha
            )


def learn_lw_whitening(
    embeddings: np.ndarray | torch.Tensor,
    query_indices: np.ndarray | torch.Tensor | list[int],
    positive_indices: np.ndarray | torch.Tensor | list[int],
    dim: int | None = None,
) -> Whitening:
    """Learned whitening "Lw" from matching pairs ``(embeddings[query_indices[i]], embeddings[positive_indices[i]])``.

    With ``m`` the mean of the query side of the pairs, ``S`` the covariance of the pair differences
    ``q_i - p_i`` (normalised by the number of pairs) and ``S = L L^T`` its Cholesky factorisation, ``L^-1``
    whitens the intra-class variation; then ``U`` are the eigenvectors (decreasing eigenvalues) of the scatter of
    all ``embeddings`` after ``x -> L^-1 (x - m)``, the inter-class variation in that space. The projection is
    ``U^T L^-1``, truncated to ``dim`` rows (default: D). Since ``L^-1 = R S^(-1/2)`` for a rotation ``R``, this
    is the ``U^T S^(-1/2)`` of the paper, up to the sign of each row.

    Args:
        embeddings: (N, D) descriptors of the whitening training images.
        query_indices, positive_indices: (P,) rows of ``embeddings`` that show the same landmark.
        dim: output dimension.
    """
    matrix = _as_float64_matrix(embeddings)
    output_dim = _check_output_dim(dim, matrix.shape[1])
    queries = np.asarray(query_indices, dtype=np.int64)
    positives = np.asarray(positive_indices, dtype=np.int64)
    if queries.ndim != 1 or queries.shape != positives.shape or len(queries) == 0:
        raise ValueError(
            f"query_indices and positive_indices must be non-empty (P,) arrays of equal length, "
            f"got shapes {queries.shape} and {positives.shape}"
        )
    for name, indices in (("query_indices", queries), ("positive_indices", positives)):
        if indices.min() < 0 or indices.max() >= len(matrix):
            raise ValueError(f"{name} must lie in [0, {len(matrix)}), got [{indices.min()}, {indices.max()}]")
    mean = matrix[queries].mean(axis=0)
    differences = matrix[queries] - matrix[positives]
    intra_class_covariance = differences.T @ differences / len(differences)
    intra_class_whitening = np.linalg.inv(_regularised_cholesky(intra_class_covariance))
    whitened = (matrix - mean) @ intra_class_whitening.T
    _, eigenvectors = _descending_eigh(whitened.T @ whitened)
    projection = eigenvectors[:, :output_dim].T @ intra_class_whitening
    return Whitening(mean, projection)
