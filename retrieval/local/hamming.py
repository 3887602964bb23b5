"""Hamming embedding: a compact code per local descriptor, a visual word and a binary signature.

After Jégou, Douze and Schmid, "Hamming embedding and weak geometric consistency for large scale image
search" (ECCV 2008): a descriptor is assigned to its nearest visual word (k-means, :mod:`retrieval.local.vocabulary`)
and projected by a fixed random orthogonal matrix (B, D); bit ``b`` of its signature says whether projection
``b`` exceeds that word's median of projection ``b`` over the training sample. Two descriptors correspond when
they share a word and their signatures differ in few bits, which is how :mod:`retrieval.local.hamming_matching`
finds tentative matches without comparing every pair of descriptors.

A stored code row is ``2 + B/8`` bytes: the word as a little-endian uint16, then the signature's packed bits.
The embedding is trained once on a sample of a collection, saved beside its store as ``codec.npz`` (plain
arrays, no pickle) and named by a fingerprint of its arrays, so that a store never mixes two embeddings.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.local.vocabulary import (
    TwoLevelVocabulary,
    VisualVocabulary,
    VocabularySettings,
    as_float_descriptors,
    effective_num_words,
    train_vocabulary,
)

CODEC_FORMAT_VERSION = 1
SIGNATURE_BITS: tuple[int, ...] = (32, 64, 128, 256)
# Words are stored as uint16.
MAX_WORDS = 1 << 16
_WORD_BYTES = 2


@dataclass(frozen=True)
class CompactSettings:
    """How a compact local-feature store encodes database images (``local_features=compact``).

    Attributes:
        stored_keypoints: the strongest keypoints kept per database image (queries keep the extractor's
            ``max_keypoints``, described in full).
        num_words: visual words (at most 65,536; fewer when the training sample is small).
        num_bits: signature bits, one of 32, 64, 128, 256.
        training_images: images of the collection whose features train the embedding (a random sample).
        max_training_descriptors: descriptors of that sample the k-means runs on.
        seed: sampling, k-means and projection seed.
    """

    stored_keypoints: int = 512
    num_words: int = 8192
    num_bits: int = 64
    training_images: int = 1000
    max_training_descriptors: int = 200_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_bits not in SIGNATURE_BITS:
            raise ValueError(f"num_bits must be one of {SIGNATURE_BITS}, got {self.num_bits}")
        if not 1 <= self.num_words <= MAX_WORDS:
            raise ValueError(f"num_words must be in [1, {MAX_WORDS}], got {self.num_words}")
        for name in ("stored_keypoints", "training_images", "max_training_descriptors"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def code_bytes(self) -> int:
        """Bytes of one stored code row: the word and the signature."""
        return _WORD_BYTES + self.num_bits // 8

    @property
    def label(self) -> str:
        """The store's name for these settings, e.g. ``"hamming 64 bits, 8192 words"``."""
        return f"hamming {self.num_bits} bits, {self.num_words} words"


def pair_hamming(signatures_a: np.ndarray, signatures_b: np.ndarray) -> np.ndarray:
    """(M,) int64 Hamming distances between rows of two (M, B/8) uint8 signature arrays, row by row."""
    if signatures_a.shape != signatures_b.shape or signatures_a.dtype != np.uint8 or signatures_a.ndim != 2:
        raise ValueError(
            f"signatures must be two uint8 arrays of one shape (M, B/8), got {signatures_a.dtype} "
            f"{signatures_a.shape} and {signatures_b.dtype} {signatures_b.shape}"
        )
    width = signatures_a.shape[1]
    word = np.uint64 if width % 8 == 0 else np.uint32 if width % 4 == 0 else np.uint8
    xor = np.ascontiguousarray(signatures_a).view(word) ^ np.ascontiguousarray(signatures_b).view(word)
    return np.bitwise_count(xor).sum(axis=1, dtype=np.int64)


class HammingEmbedding:
    """Visual words, a projection (B, D) and per-word thresholds (k, B) that turn descriptors into codes."""

    def __init__(self, vocabulary: VisualVocabulary, projection: np.ndarray, thresholds: np.ndarray):
        num_bits = projection.shape[0] if projection.ndim == 2 else 0
        if num_bits not in SIGNATURE_BITS or projection.shape[1] != vocabulary.dim:
            raise ValueError(
                f"projection must be (B, {vocabulary.dim}) with B in {SIGNATURE_BITS}, got {projection.shape}"
            )
        if thresholds.shape != (vocabulary.num_words, num_bits):
            raise ValueError(
                f"thresholds must be ({vocabulary.num_words}, {num_bits}), got {thresholds.shape}"
            )
        if vocabulary.num_words > MAX_WORDS:
            raise ValueError(f"a code stores at most {MAX_WORDS} words, got {vocabulary.num_words}")
        self.vocabulary = vocabulary
        self.projection = np.ascontiguousarray(projection, dtype=np.float32)
        self.thresholds = np.ascontiguousarray(thresholds, dtype=np.float32)

    @property
    def num_bits(self) -> int:
        return int(self.projection.shape[0])

    @property
    def code_bytes(self) -> int:
        """Bytes of one code row."""
        return _WORD_BYTES + self.num_bits // 8

    @classmethod
    def train(cls, descriptors: np.ndarray, settings: CompactSettings) -> HammingEmbedding:
        """Words, projection and median thresholds from float descriptors (N, D); a word that no training
        descriptor falls in takes the medians of all of them."""
        descriptors = as_float_descriptors(descriptors)
        rng = np.random.default_rng(settings.seed)
        if len(descriptors) > settings.max_training_descriptors:
            chosen = rng.choice(len(descriptors), settings.max_training_descriptors, replace=False)
            descriptors = descriptors[np.sort(chosen)]
        vocabulary_settings = VocabularySettings(
            max_training_descriptors=settings.max_training_descriptors, seed=settings.seed
        )
        num_words = effective_num_words(
            settings.num_words, len(descriptors), vocabulary_settings.min_descriptors_per_word
        )
        vocabulary = train_vocabulary(descriptors, num_words, vocabulary_settings)
        dim = descriptors.shape[1]
        if settings.num_bits > dim:
            raise ValueError(
                f"{settings.num_bits} signature bits need descriptors of at least that many dimensions"
            )
        orthogonal, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        projection = orthogonal[: settings.num_bits].astype(np.float32)
        projected = descriptors @ projection.T
        words = vocabulary.assign(descriptors)
        thresholds = np.tile(np.median(projected, axis=0), (vocabulary.num_words, 1))
        order = np.argsort(words, kind="stable")
        bounds = np.searchsorted(words[order], np.arange(vocabulary.num_words + 1))
        for word in np.flatnonzero(np.diff(bounds)):
            thresholds[word] = np.median(projected[order[bounds[word] : bounds[word + 1]]], axis=0)
        return cls(vocabulary, projection, thresholds)

    def signatures(self, descriptors: np.ndarray, words: np.ndarray) -> np.ndarray:
        """(N, B/8) uint8 packed signatures of descriptors (N, D) with respect to their words (N,)."""
        bits = descriptors @ self.projection.T > self.thresholds[words]
        return np.packbits(bits, axis=1, bitorder="little")

    def encode(self, descriptors: np.ndarray, num_assignments: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Words (N, m) int64, nearest first, and signatures (N, m, B/8) uint8 for each of the m words."""
        descriptors = as_float_descriptors(descriptors, self.vocabulary.dim)
        words = self.vocabulary.assign(descriptors, num_assignments).reshape(
            len(descriptors), num_assignments
        )
        repeated = np.repeat(descriptors, num_assignments, axis=0)
        signatures = self.signatures(repeated, words.reshape(-1))
        return words, signatures.reshape(len(descriptors), num_assignments, self.num_bits // 8)

    def codes(self, descriptors: np.ndarray) -> np.ndarray:
        """(N, 2 + B/8) uint8 code rows of descriptors (N, D): nearest word (uint16 LE), then signature."""
        words, signatures = self.encode(descriptors)
        word_bytes = words[:, 0].astype("<u2").view(np.uint8).reshape(-1, _WORD_BYTES)
        return np.ascontiguousarray(np.concatenate((word_bytes, signatures[:, 0]), axis=1))

    def split_codes(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Words (N,) int64 and signatures (N, B/8) uint8 of code rows (N, 2 + B/8)."""
        if codes.ndim != 2 or codes.dtype != np.uint8 or codes.shape[1] != self.code_bytes:
            raise ValueError(
                f"codes must be uint8 rows (N, {self.code_bytes}), got {codes.dtype} {codes.shape}"
            )
        words = np.ascontiguousarray(codes[:, :_WORD_BYTES]).view("<u2")[:, 0].astype(np.int64)
        return words, codes[:, _WORD_BYTES:]

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "format_version": np.array(CODEC_FORMAT_VERSION),
            "centroids": self.vocabulary.centroids,
            "projection": self.projection,
            "thresholds": self.thresholds,
        }
        if isinstance(self.vocabulary, TwoLevelVocabulary):
            arrays["coarse"] = self.vocabulary.coarse.centroids
            arrays["probes"] = np.array(self.vocabulary.probes)
        return arrays

    @property
    def fingerprint(self) -> str:
        """16 hex digits of a SHA-256 over the arrays: equal for equal embeddings."""
        digest = hashlib.sha256()
        for name, array in sorted(self._arrays().items()):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]

    def save(self, path: str | Path) -> None:
        """Write the arrays as an ``.npz``, atomically."""
        path = Path(path)
        temporary = path.with_name(path.name + ".tmp")
        with open(temporary, "wb") as handle:
            np.savez(handle, allow_pickle=False, **self._arrays())
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str | Path) -> HammingEmbedding:
        """Read an embedding written by :meth:`save` (no pickle)."""
        with np.load(Path(path), allow_pickle=False) as arrays:
            version = int(arrays["format_version"])
            if version != CODEC_FORMAT_VERSION:
                raise ValueError(f"{path} has codec format {version}, this code reads {CODEC_FORMAT_VERSION}")
            vocabulary: VisualVocabulary
            if "coarse" in arrays:
                coarse = VisualVocabulary(arrays["coarse"])
                vocabulary = TwoLevelVocabulary(coarse, arrays["centroids"], probes=int(arrays["probes"]))
            else:
                vocabulary = VisualVocabulary(arrays["centroids"])
            return cls(vocabulary, arrays["projection"], arrays["thresholds"])
