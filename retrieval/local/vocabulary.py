"""Visual vocabularies: k-means words of local descriptors, trained flat or in two levels for large ones.

- :class:`VisualVocabulary`: k-means centroids (k from 16 to 64k) trained with faiss on a sample of local
  descriptors, saved and loaded as a plain ``.npy`` (k, D) float32 array, assigning descriptors exactly.
- :class:`TwoLevelVocabulary`: words filed under coarse cells and assigned approximately, tens of times
  faster for large vocabularies; :func:`train_vocabulary` picks the kind by size (:class:`VocabularySettings`)
  and :func:`effective_num_words` scales a vocabulary down when the descriptors are too few to train it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np


def as_float_descriptors(descriptors: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Validate (N, D) float descriptors and return them as contiguous float32."""
    if descriptors.ndim != 2 or not np.issubdtype(descriptors.dtype, np.floating):
        raise ValueError(
            f"descriptors must be a float array (N, D), got {descriptors.dtype} {descriptors.shape}"
        )
    if dim is not None and descriptors.shape[1] != dim:
        raise ValueError(f"descriptors have {descriptors.shape[1]} dimensions, the vocabulary has {dim}")
    return np.ascontiguousarray(descriptors, dtype=np.float32)


class VisualVocabulary:
    """k visual words: centroids (k, D) float32 and an exact faiss index that assigns descriptors to them."""

    def __init__(self, centroids: np.ndarray):
        centroids = as_float_descriptors(centroids)
        if len(centroids) == 0:
            raise ValueError("a vocabulary needs at least one word")
        self.centroids = centroids
        self._index = faiss.IndexFlatL2(centroids.shape[1])
        self._index.add(centroids)

    @property
    def num_words(self) -> int:
        """k."""
        return len(self.centroids)

    @property
    def dim(self) -> int:
        """Descriptor dimension D."""
        return int(self.centroids.shape[1])

    @classmethod
    def train(
        cls,
        descriptors: np.ndarray,
        num_words: int,
        max_training_descriptors: int = 500_000,
        num_iterations: int = 20,
        seed: int = 0,
    ) -> VisualVocabulary:
        """k-means on a random sample of at most ``max_training_descriptors`` of ``descriptors`` (N, D)."""
        descriptors = as_float_descriptors(descriptors)
        if num_words <= 0:
            raise ValueError(f"num_words must be positive, got {num_words}")
        if len(descriptors) < num_words:
            raise ValueError(f"cannot train {num_words} words from {len(descriptors)} descriptors")
        if max_training_descriptors < num_words:
            raise ValueError(
                f"max_training_descriptors ({max_training_descriptors}) must be at least num_words ({num_words})"
            )
        if len(descriptors) > max_training_descriptors:
            sample = np.random.default_rng(seed).choice(
                len(descriptors), max_training_descriptors, replace=False
            )
            descriptors = descriptors[np.sort(sample)]
        kmeans = faiss.Kmeans(
            descriptors.shape[1],
            num_words,
            niter=num_iterations,
            seed=seed,
            max_points_per_centroid=max(1, len(descriptors) // num_words + 1),  # we sampled already
            min_points_per_centroid=1,  # callers size k (effective_num_words); no faiss warning per cell
            verbose=False,
        )
        kmeans.train(descriptors)
        if kmeans.centroids is None:
            raise RuntimeError("faiss k-means returned no centroids")
        return cls(kmeans.centroids)

    def save(self, path: str | Path) -> None:
        """Write the centroids as a (k, D) float32 ``.npy``."""
        np.save(Path(path), self.centroids, allow_pickle=False)

    @classmethod
    def load(cls, path: str | Path) -> VisualVocabulary:
        """Read centroids written by :meth:`save`."""
        return cls(np.load(Path(path), allow_pickle=False))

    def assign(self, descriptors: np.ndarray, num_assignments: int = 1) -> np.ndarray:
        """Nearest words of descriptors (N, D): (N,) int64, or (N, num_assignments) nearest first."""
        descriptors = as_float_descriptors(descriptors, self.dim)
        if not 1 <= num_assignments <= self.num_words:
            raise ValueError(f"num_assignments must be in [1, {self.num_words}], got {num_assignments}")
        if len(descriptors) == 0:
            shape = (0,) if num_assignments == 1 else (0, num_assignments)
            return np.zeros(shape, dtype=np.int64)
        _, word_ids = self._index.search(descriptors, num_assignments)
        return word_ids[:, 0].copy() if num_assignments == 1 else word_ids


@dataclass(frozen=True)
class VocabularySettings:
    """How visual vocabularies are trained.

    Attributes:
        min_descriptors_per_word: a vocabulary gets at most (descriptors available) / this many words.
        max_training_descriptors: k-means runs on a random sample of at most this many descriptors.
        num_iterations: k-means iterations (per level).
        two_level_above: vocabularies with more words are trained in two levels: k-means into ⌈√k⌉
            cells, then each cell's descriptors into words, as many as its share of the descriptors (flat
            k-means with 16k words costs minutes on a laptop CPU; two levels, seconds), and assign
            descriptors approximately (:class:`TwoLevelVocabulary`).
        assignment_probes: cells a two-level vocabulary searches per descriptor.
        seed: sampling and k-means seed.
    """

    min_descriptors_per_word: int = 8
    max_training_descriptors: int = 131_072
    num_iterations: int = 10
    two_level_above: int = 1024
    assignment_probes: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "min_descriptors_per_word",
            "max_training_descriptors",
            "num_iterations",
            "two_level_above",
            "assignment_probes",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def effective_num_words(requested: int, num_descriptors: int, min_descriptors_per_word: int) -> int:
    """``requested``, or fewer words when ``num_descriptors`` cannot give each one
    ``min_descriptors_per_word``."""
    if requested <= 0 or min_descriptors_per_word <= 0:
        raise ValueError(
            "requested and min_descriptors_per_word must be positive, "
            f"got {requested}, {min_descriptors_per_word}"
        )
    affordable = num_descriptors // min_descriptors_per_word
    if affordable < 1:
        raise ValueError(
            f"{num_descriptors} descriptors cannot train a single word at {min_descriptors_per_word} per word"
        )
    return min(requested, affordable)


def allocate_words(cell_sizes: np.ndarray, num_words: int) -> np.ndarray:
    """Words per cell (C,) int64, proportional to its descriptors (largest remainders), never more than the
    cell holds, summing to ``num_words``.

    Args:
        cell_sizes: (C,) descriptors in each cell.
        num_words: at most their total.
    """
    sizes = np.asarray(cell_sizes, dtype=np.int64)
    total = int(sizes.sum())
    if not 0 < num_words <= total:
        raise ValueError(f"num_words must be in [1, {total}] (the descriptors in the cells), got {num_words}")
    quotas = sizes * (num_words / total)
    words = np.minimum(np.floor(quotas).astype(np.int64), sizes)
    shortfall = num_words - int(words.sum())
    # The cells with the largest fractional quotas get one more word; such a cell has quota < size.
    room = np.flatnonzero(words < sizes)
    by_remainder = room[np.argsort(-(quotas[room] - words[room]), kind="stable")]
    words[by_remainder[:shortfall]] += 1
    return words


def _sample(descriptors: np.ndarray, max_count: int, seed: int) -> np.ndarray:
    if len(descriptors) <= max_count:
        return descriptors
    chosen = np.random.default_rng(seed).choice(len(descriptors), max_count, replace=False)
    return descriptors[np.sort(chosen)]


class TwoLevelVocabulary(VisualVocabulary):
    """Words grouped under coarse cells, assigned approximately: a descriptor goes to its nearest word among
    those of its ``probes`` nearest cells (a faiss inverted file over the words), tens of times faster than
    comparing it with every word of a large vocabulary.

    Args:
        coarse: the cells (C, D).
        centroids: the words (k, D); each is filed under its nearest cell.
        probes: cells searched per descriptor, at most C.
    """

    def __init__(self, coarse: VisualVocabulary, centroids: np.ndarray, probes: int = 2):
        super().__init__(centroids)
        if coarse.dim != self.dim:
            raise ValueError(f"coarse cells have {coarse.dim} dimensions, the words {self.dim}")
        if not 1 <= probes <= coarse.num_words:
            raise ValueError(f"probes must be in [1, {coarse.num_words}], got {probes}")
        self.coarse = coarse
        self.probes = probes
        quantizer = faiss.IndexFlatL2(self.dim)
        quantizer.add(coarse.centroids)
        self._words_by_cell = faiss.IndexIVFFlat(quantizer, self.dim, coarse.num_words)
        self._words_by_cell.train(coarse.centroids)  # keeps the quantizer: it already holds every cell
        self._words_by_cell.add(self.centroids)
        self._words_by_cell.nprobe = probes
        self._quantizer = quantizer  # the index does not own it

    def assign(self, descriptors: np.ndarray, num_assignments: int = 1) -> np.ndarray:
        """Nearest words among the probed cells: (N,) int64, or (N, num_assignments) nearest first; a row
        whose probed cells hold fewer words than asked is assigned exactly."""
        descriptors = np.ascontiguousarray(descriptors, dtype=np.float32)
        if descriptors.ndim != 2 or descriptors.shape[1] != self.dim:
            raise ValueError(f"descriptors must be (N, {self.dim}), got {descriptors.shape}")
        if not 1 <= num_assignments <= self.num_words:
            raise ValueError(f"num_assignments must be in [1, {self.num_words}], got {num_assignments}")
        if len(descriptors) == 0:
            return super().assign(descriptors, num_assignments)
        _, word_ids = self._words_by_cell.search(descriptors, num_assignments)
        short = np.flatnonzero((word_ids < 0).any(axis=1))
        if short.size:
            word_ids[short] = super().assign(descriptors[short], num_assignments).reshape(len(short), -1)
        return word_ids[:, 0].copy() if num_assignments == 1 else word_ids


def train_vocabulary(
    descriptors: np.ndarray, num_words: int, settings: VocabularySettings = VocabularySettings()
) -> VisualVocabulary:
    """k-means words of descriptors (N, D) float32; above ``settings.two_level_above`` words, a
    :class:`TwoLevelVocabulary` trained in two levels."""
    if num_words <= settings.two_level_above:
        return VisualVocabulary.train(
            descriptors,
            num_words,
            max_training_descriptors=max(settings.max_training_descriptors, num_words),
            num_iterations=settings.num_iterations,
            seed=settings.seed,
        )
    sample = _sample(
        np.ascontiguousarray(descriptors, dtype=np.float32), settings.max_training_descriptors, settings.seed
    )
    if len(sample) < num_words:
        raise ValueError(f"cannot train {num_words} words from {len(sample)} sampled descriptors")
    coarse = VisualVocabulary.train(
        sample,
        math.ceil(math.sqrt(num_words)),
        max_training_descriptors=len(sample),
        num_iterations=settings.num_iterations,
        seed=settings.seed,
    )
    cells = coarse.assign(sample)
    words_per_cell = allocate_words(np.bincount(cells, minlength=coarse.num_words), num_words)
    centroids = []
    for cell, cell_words in enumerate(words_per_cell.tolist()):
        if cell_words:
            members = sample[cells == cell]
            centroids.append(
                VisualVocabulary.train(
                    members,
                    cell_words,
                    max_training_descriptors=len(members),
                    num_iterations=settings.num_iterations,
                    seed=settings.seed,
                ).centroids
            )
    return TwoLevelVocabulary(
        coarse, np.concatenate(centroids), probes=min(settings.assignment_probes, coarse.num_words)
    )
