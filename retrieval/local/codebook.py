"""Encodings on a visual vocabulary (:mod:`retrieval.local.vocabulary`): bag of words with tf-idf, VLAD, and ASMK,
and local-only retrieval with them.

- :func:`bow_encode`: the dense tf-idf bag of words of one image, L2-normalised; :class:`InvertedFile`
  searches a database of bags of words without ever materialising them (same scores, sparse).
- :func:`vlad_encode`: VLAD (the thesis' E6), the sum of residuals to the nearest word per word, with
  intra-normalisation, power-law normalisation and a final L2 normalisation.
- :class:`AsmkIndex`: Aggregated Selective Match Kernels through the ``asmk`` package (binarised aggregated
  residuals per word, a selective kernel, an inverted file).
- :func:`codebook_retrieval`: ranks a database for every query with one of the three, timed, with the bytes
  per image of the representation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from asmk import ASMKMethod
from asmk import codebook as asmk_codebook
from asmk import index as asmk_index

from retrieval.local.features import LocalFeatures
from retrieval.local.vocabulary import VisualVocabulary, as_float_descriptors

CodebookKind = Literal["bow", "vlad", "asmk"]
CODEBOOK_KINDS: tuple[str, ...] = get_args(CodebookKind)

# Bytes of one posting of an inverted file: an int32 image id and a float32 weight.
POSTING_BYTES = 8
# Bytes of the image id of an ASMK entry (one per image and visual word).
ASMK_IMAGE_ID_BYTES = 4
# Visual words each query descriptor is assigned to by ASMK (AsmkIndex's default).
ASMK_QUERY_ASSIGNMENTS = 5


def _check_word_ids(word_ids: np.ndarray, num_words: int) -> np.ndarray:
    word_ids = np.asarray(word_ids)
    if word_ids.ndim != 1 or (word_ids.size and not np.issubdtype(word_ids.dtype, np.integer)):
        raise ValueError(f"word_ids must be a 1-D integer array, got {word_ids.dtype} {word_ids.shape}")
    if word_ids.size and (word_ids.min() < 0 or word_ids.max() >= num_words):
        raise ValueError(
            f"word ids must be in [0, {num_words}), got range [{word_ids.min()}, {word_ids.max()}]"
        )
    return word_ids.astype(np.int64)


def inverse_document_frequencies(word_ids_per_image: Sequence[np.ndarray], num_words: int) -> np.ndarray:
    """idf (num_words,) float64: ``log(number of images / images containing the word)``, 0 for unseen words."""
    document_frequencies = np.zeros(num_words, dtype=np.int64)
    for word_ids in word_ids_per_image:
        document_frequencies[np.unique(_check_word_ids(word_ids, num_words))] += 1
    idf = np.zeros(num_words)
    seen = document_frequencies > 0
    idf[seen] = np.log(len(word_ids_per_image) / document_frequencies[seen])
    return idf


def bow_encode(word_ids: np.ndarray, num_words: int, idf: np.ndarray | None = None) -> np.ndarray:
    """Bag of words of one image: (num_words,) float32 word counts times idf (when given), L2-normalised.

    Args:
        word_ids: (N,) word of each local descriptor (hard assignment).
        num_words: vocabulary size.
        idf: (num_words,) inverse document frequencies, or None for plain term frequencies.
    """
    word_ids = _check_word_ids(word_ids, num_words)
    weights = np.bincount(word_ids, minlength=num_words).astype(np.float64)
    if idf is not None:
        if idf.shape != (num_words,):
            raise ValueError(f"idf must have shape ({num_words},), got {idf.shape}")
        weights *= idf
    norm = np.linalg.norm(weights)
    return (weights / norm if norm > 0 else weights).astype(np.float32)


def _sparse_tfidf(word_ids: np.ndarray, idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(words, weights) of the L2-normalised tf-idf vector, only its non-zero entries."""
    words, counts = np.unique(word_ids, return_counts=True)
    weights = counts * idf[words]
    norm = np.linalg.norm(weights)
    keep = weights > 0
    return words[keep], (weights[keep] / norm if norm > 0 else weights[keep])


class InvertedFile:
    """tf-idf bag-of-words search: per word, the database images that contain it and their tf-idf weight.

    ``search`` returns the cosine similarities of :func:`bow_encode` vectors (with this file's idf), touching only
    the posting lists of the query's words.

    Args:
        word_ids_per_image: for each database image, the (N_i,) word ids of its local descriptors.
        num_words: vocabulary size.
    """

    def __init__(self, word_ids_per_image: Sequence[np.ndarray], num_words: int):
        if num_words <= 0:
            raise ValueError(f"num_words must be positive, got {num_words}")
        self.num_words = num_words
        self.num_images = len(word_ids_per_image)
        self.idf = inverse_document_frequencies(word_ids_per_image, num_words)
        words, images, weights = [], [], []
        for image, word_ids in enumerate(word_ids_per_image):
            image_words, image_weights = _sparse_tfidf(_check_word_ids(word_ids, num_words), self.idf)
            words.append(image_words)
            images.append(np.full(len(image_words), image, dtype=np.int64))
            weights.append(image_weights)
        all_words = np.concatenate(words) if words else np.zeros(0, np.int64)
        by_word = np.argsort(all_words, kind="stable")
        self.posting_images = np.concatenate(images)[by_word] if images else np.zeros(0, np.int64)
        self.posting_weights = np.concatenate(weights)[by_word] if weights else np.zeros(0)
        # Postings of word w: positions posting_offsets[w] to posting_offsets[w + 1].
        self.posting_offsets = np.concatenate(([0], np.cumsum(np.bincount(all_words, minlength=num_words))))

    def scores(self, word_ids: np.ndarray) -> np.ndarray:
        """(num_images,) float64 cosine similarity of the query's tf-idf vector to every database image's."""
        query_words, query_weights = _sparse_tfidf(_check_word_ids(word_ids, self.num_words), self.idf)
        starts = self.posting_offsets[query_words]
        lengths = self.posting_offsets[query_words + 1] - starts
        # Positions of every posting of every query word, in one vectorised gather.
        positions = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        return np.bincount(
            self.posting_images[positions],
            weights=self.posting_weights[positions] * np.repeat(query_weights, lengths),
            minlength=self.num_images,
        )

    def search(self, word_ids: np.ndarray, top_k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Database images by decreasing similarity: (K,) int64 indices and (K,) float64 scores; ties keep
        database order; K = ``top_k`` (all images for None)."""
        scores = self.scores(word_ids)
        order = np.argsort(-scores, kind="stable")[:top_k]
        return order, scores[order]


def vlad_encode(
    descriptors: np.ndarray,
    vocabulary: VisualVocabulary,
    intra_normalize: bool = True,
    power: float | None = 0.5,
) -> np.ndarray:
    """VLAD of one image: (k·D,) float32, word-major.

    Per word, the sum of the residuals ``descriptor - centroid`` of the descriptors assigned to it; then, in
    this order, each word's block L2-normalised (``intra_normalize``), ``sign(x)·|x|^power`` (``power``), and
    the whole vector L2-normalised. An image without descriptors gives the zero vector.

    Args:
        descriptors: (N, D) float local descriptors.
        vocabulary: the k words.
        intra_normalize: L2-normalise each word's residual sum.
        power: power-law exponent in (0, 1], or None to skip it.
    """
    descriptors = as_float_descriptors(descriptors, vocabulary.dim)
    if power is not None and not 0.0 < power <= 1.0:
        raise ValueError(f"power must be in (0, 1] or None, got {power}")
    word_ids = vocabulary.assign(descriptors)
    residual_sums = np.zeros((vocabulary.num_words, vocabulary.dim), dtype=np.float64)
    np.add.at(residual_sums, word_ids, descriptors - vocabulary.centroids[word_ids])
    if intra_normalize:
        block_norms = np.linalg.norm(residual_sums, axis=1, keepdims=True)
        residual_sums = np.divide(residual_sums, block_norms, out=residual_sums, where=block_norms > 0)
    vlad = residual_sums.reshape(-1)
    if power is not None:
        vlad = np.sign(vlad) * np.abs(vlad) ** power
    norm = np.linalg.norm(vlad)
    return (vlad / norm if norm > 0 else vlad).astype(np.float32)


class AsmkIndex:
    """ASMK search with the ``asmk`` package, on a vocabulary of this module.

    Per image and visual word, the residuals of the descriptors assigned to the word are summed, L2-normalised
    and (``binary``) binarised; two images are compared word by word with the selective kernel
    ``sim^alpha`` for similarities above ``similarity_threshold``.

    Args:
        vocabulary: the visual words (descriptors should be L2-normalised, e.g. RootSIFT).
        binary: binarise the aggregated residuals (ASMK*), 1 bit per dimension.
        alpha: selectivity exponent of the kernel.
        similarity_threshold: word similarities below it are ignored.
        query_assignments: words each query descriptor is assigned to (multiple assignment).
        database_assignments: words each database descriptor is assigned to.
        use_idf: weight words by inverse document frequency.
    """

    def __init__(
        self,
        vocabulary: VisualVocabulary,
        binary: bool = True,
        alpha: float = 3.0,
        similarity_threshold: float = 0.0,
        query_assignments: int = 5,
        database_assignments: int = 1,
        use_idf: bool = False,
    ):
        for name, value in (
            ("query_assignments", query_assignments),
            ("database_assignments", database_assignments),
        ):
            if not 1 <= value <= vocabulary.num_words:
                raise ValueError(f"{name} must be in [1, {vocabulary.num_words}], got {value}")
        self.vocabulary = vocabulary
        self.num_images = 0
        params = {
            "index": {"gpu_id": None},
            "train_codebook": {"codebook": {"size": vocabulary.num_words}},
            "build_ivf": {
                "kernel": {"binary": binary},
                "ivf": {"use_idf": use_idf},
                "quantize": {"multiple_assignment": database_assignments},
                "aggregate": {},
            },
            "query_ivf": {
                "quantize": {"multiple_assignment": query_assignments},
                "aggregate": {},
                "search": {"topk": None},
                "similarity": {"similarity_threshold": similarity_threshold, "alpha": alpha},
            },
        }
        codebook = asmk_codebook.Codebook(asmk_index.initialize_index(gpu_id=None), size=vocabulary.num_words)
        codebook.index(vocabulary.centroids)
        self._method = ASMKMethod(params, {}, codebook=codebook)

    @staticmethod
    def _stack(
        descriptors_per_image: Sequence[np.ndarray], dim: int
    ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Concatenated descriptors, their image ids, and the images that have any descriptor."""
        checked = [as_float_descriptors(descriptors, dim) for descriptors in descriptors_per_image]
        nonempty = [image for image, descriptors in enumerate(checked) if len(descriptors)]
        if not nonempty:
            return np.zeros((0, dim), np.float32), np.zeros(0, np.int64), []
        vectors = np.concatenate([checked[image] for image in nonempty])
        image_ids = np.repeat(np.array(nonempty, dtype=np.int64), [len(checked[image]) for image in nonempty])
        return vectors, image_ids, nonempty

    def add(self, descriptors_per_image: Sequence[np.ndarray]) -> None:
        """Index the database: for each image, its (N_i, D) float local descriptors. Call once."""
        if self._method.inverted_file is not None:
            raise ValueError("the database is already indexed; build a new AsmkIndex to index another")
        vectors, image_ids, _ = self._stack(descriptors_per_image, self.vocabulary.dim)
        if len(vectors) == 0:
            raise ValueError("no database image has any descriptor")
        self._method = self._method.build_ivf(vectors, image_ids)
        self.num_images = len(descriptors_per_image)

    def scores(self, descriptors_per_query: Sequence[np.ndarray]) -> np.ndarray:
        """(Q, num_images) float64 ASMK similarities; 0 for images or queries without descriptors."""
        if self._method.inverted_file is None:
            raise ValueError("index the database with add() before searching")
        scores = np.zeros((len(descriptors_per_query), self.num_images))
        vectors, query_ids, nonempty = self._stack(descriptors_per_query, self.vocabulary.dim)
        if not nonempty:
            return scores
        _, queries, ranks, query_scores = self._method.query_ivf(vectors, query_ids)
        for row, query in enumerate(queries):
            scores[query, ranks[row]] = query_scores[row]
        return scores

    def search(
        self, descriptors_per_query: Sequence[np.ndarray], top_k: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Database images by decreasing ASMK similarity per query: (Q, K) int64 indices and (Q, K) scores;
        ties keep database order; K = ``top_k`` (all images for None)."""
        scores = self.scores(descriptors_per_query)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
        return order, np.take_along_axis(scores, order, axis=1)


def codebook_descriptors(features: LocalFeatures) -> np.ndarray:
    """Descriptors (N, D) as float32 for codebooks: float descriptors as they are, packed binary descriptors
    unpacked into (N, 8·D) zeros and ones."""
    if features.binary:
        return np.unpackbits(features.descriptors, axis=1).astype(np.float32)
    return np.ascontiguousarray(features.descriptors, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class CodebookRetrieval:
    """Local-only retrieval with a codebook.

    Attributes:
        ranking: (Q, N) database indices per query, most similar first.
        encode_ms_per_image: database encoding (word assignment and aggregation, index building) per image.
        search_ms_per_query: query encoding and scoring of the whole database, per query.
        bytes_per_image: the database representation per image (see :func:`bow_bytes_per_image`, ...).
    """

    ranking: np.ndarray
    encode_ms_per_image: float
    search_ms_per_query: float
    bytes_per_image: float


def codebook_retrieval(
    kind: CodebookKind,
    vocabulary: VisualVocabulary,
    query_descriptors: Sequence[np.ndarray],
    database_descriptors: Sequence[np.ndarray],
) -> CodebookRetrieval:
    """Rank the database for every query with local descriptors only.

    - ``bow``: tf-idf bags of words (idf of the database) searched through an inverted file.
    - ``vlad``: VLAD vectors (intra, power and L2 normalised) compared by inner product.
    - ``asmk``: ASMK* (binarised aggregated residuals, selective kernel) with the asmk package; query
      descriptors are assigned to up to 5 words.

    Args:
        kind: "bow", "vlad" or "asmk".
        vocabulary: the visual words, trained on descriptors of the same kind.
        query_descriptors: Q arrays (N_q, D) float32.
        database_descriptors: N arrays (N_i, D) float32.
    """
    if kind not in CODEBOOK_KINDS:
        raise ValueError(f"kind must be one of {CODEBOOK_KINDS}, got {kind!r}")
    if not database_descriptors:
        raise ValueError("the database is empty")
    num_images, num_queries = len(database_descriptors), max(1, len(query_descriptors))
    start = time.perf_counter()
    if kind == "bow":
        inverted_file = InvertedFile(
            [vocabulary.assign(d) for d in database_descriptors], vocabulary.num_words
        )
        encode_seconds = time.perf_counter() - start
        start = time.perf_counter()
        ranking = np.stack([inverted_file.search(vocabulary.assign(d))[0] for d in query_descriptors])
        search_seconds = time.perf_counter() - start
        size = bow_bytes_per_image(len(inverted_file.posting_images), num_images)
    elif kind == "vlad":
        database_vlads = np.stack([vlad_encode(d, vocabulary) for d in database_descriptors])  # (N, k·D)
        encode_seconds = time.perf_counter() - start
        start = time.perf_counter()
        query_vlads = np.stack([vlad_encode(d, vocabulary) for d in query_descriptors])  # (Q, k·D)
        ranking = np.argsort(-(query_vlads @ database_vlads.T), axis=1, kind="stable")
        search_seconds = time.perf_counter() - start
        size = dense_bytes_per_image(database_vlads.shape[1])
    else:
        index = AsmkIndex(vocabulary, query_assignments=min(ASMK_QUERY_ASSIGNMENTS, vocabulary.num_words))
        index.add(database_descriptors)
        encode_seconds = time.perf_counter() - start
        start = time.perf_counter()
        ranking, _ = index.search(query_descriptors)
        search_seconds = time.perf_counter() - start
        entries = sum(len(np.unique(vocabulary.assign(d))) for d in database_descriptors)
        size = asmk_bytes_per_image(entries, num_images, vocabulary.dim)
    return CodebookRetrieval(
        ranking=ranking.reshape(len(query_descriptors), num_images).astype(np.int64),
        encode_ms_per_image=1000 * encode_seconds / num_images,
        search_ms_per_query=1000 * search_seconds / num_queries,
        bytes_per_image=size,
    )


def dense_bytes_per_image(dim: int, bytes_per_value: int = 4) -> int:
    """A dense vector of ``dim`` values (a global descriptor, a VLAD), float32 by default."""
    if dim <= 0 or bytes_per_value <= 0:
        raise ValueError(f"dim and bytes_per_value must be positive, got {dim}, {bytes_per_value}")
    return dim * bytes_per_value


def bow_bytes_per_image(num_postings: int, num_images: int) -> float:
    """An inverted file's bytes per image: 8 per posting (int32 image id, float32 tf-idf weight)."""
    if num_images <= 0 or num_postings < 0:
        raise ValueError(
            f"num_images must be positive and num_postings non-negative, got {num_images}, {num_postings}"
        )
    return num_postings * POSTING_BYTES / num_images


def asmk_bytes_per_image(num_entries: int, num_images: int, dim: int) -> float:
    """ASMK*'s bytes per image: per (image, visual word) entry, an int32 image id and the binarised aggregated
    residual (``dim`` bits, rounded up to bytes)."""
    if num_images <= 0 or num_entries < 0 or dim <= 0:
        raise ValueError(
            "num_images and dim must be positive and num_entries non-negative, "
            f"got {num_images}, {dim}, {num_entries}"
        )
    return num_entries * (ASMK_IMAGE_ID_BYTES + math.ceil(dim / 8)) / num_images
