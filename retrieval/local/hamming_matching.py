"""Tentative matches against a compact store: shared visual words, then a Hamming threshold.

The query's float descriptors are encoded with the store's :class:`~retrieval.local.hamming.HammingEmbedding`,
each to its ``num_assignments`` nearest words (multiple assignment, on the query side only, as Jégou et al.
do); a database code and a query code correspond when they share a word and their signatures differ in at most
``max_distance`` bits. All K candidates of a query are matched in one pass: the query's (word, signature) rows
are sorted by word, every database code finds its word's rows by binary search, and only those pairs are
compared — work proportional to the pairs that share a word, not to Nq × Nd. Each database keypoint then keeps
its closest query keypoint and each query keypoint its closest database keypoint (one-to-one), so that
verification (:mod:`retrieval.local.verification`) sees clean correspondences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from retrieval.local.features import LocalFeatures
from retrieval.local.hamming import HammingEmbedding, pair_hamming
from retrieval.local.matching import Matching, check_budgets

if TYPE_CHECKING:
    from retrieval.local.store import FeatureStore

# Word-sharing pairs compared at once: bounds memory for degenerate images (one word everywhere).
_PAIRS_PER_BLOCK = 1 << 21


def _first_of_groups(keys: np.ndarray) -> np.ndarray:
    """Mask of the first row of each run of equal sorted ``keys``."""
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return first


def match_codes_batched(
    query_words: np.ndarray,
    query_signatures: np.ndarray,
    candidate_codes: Sequence[np.ndarray],
    embedding: HammingEmbedding,
    max_distance: int,
) -> list[np.ndarray]:
    """One-to-one matches of one query with each candidate.

    Args:
        query_words: (Nq, m) words of each query keypoint.
        query_signatures: (Nq, m, B/8) its signature for each of those words.
        candidate_codes: K arrays (Nc, 2 + B/8) of code rows.
        embedding: the embedding of the codes.
        max_distance: the most differing bits of a match.

    Returns:
        K arrays (Mc, 2) int64 of (query index, database index) pairs, by database index.
    """
    if max_distance < 0:
        raise ValueError(f"max_distance must be non-negative, got {max_distance}")
    num_query, assignments = query_words.shape
    flat_words = query_words.reshape(-1)
    order = np.argsort(flat_words, kind="stable")
    sorted_words = flat_words[order]
    sorted_signatures = query_signatures.reshape(num_query * assignments, -1)[order]
    sorted_owners = (order // assignments).astype(np.int64)

    lengths = np.array([len(codes) for codes in candidate_codes], dtype=np.int64)
    if not candidate_codes or lengths.sum() == 0 or num_query == 0:
        return [np.zeros((0, 2), dtype=np.int64) for _ in candidate_codes]
    words, signatures = embedding.split_codes(np.concatenate(candidate_codes))
    low = np.searchsorted(sorted_words, words, side="left")
    counts = np.searchsorted(sorted_words, words, side="right") - low

    kept_query, kept_database, kept_distance = [], [], []
    ends = np.cumsum(counts)
    start = 0
    while start < len(words):
        stop = max(
            start + 1, int(np.searchsorted(ends, ends[start] - counts[start] + _PAIRS_PER_BLOCK, "right"))
        )
        block_counts = counts[start:stop]
        total = int(block_counts.sum())
        database_rows = np.repeat(np.arange(start, stop), block_counts)
        offsets = np.arange(total) - np.repeat(np.cumsum(block_counts) - block_counts, block_counts)
        query_rows = np.repeat(low[start:stop], block_counts) + offsets
        distances = pair_hamming(sorted_signatures[query_rows], signatures[database_rows])
        close = distances <= max_distance
        kept_query.append(sorted_owners[query_rows[close]])
        kept_database.append(database_rows[close])
        kept_distance.append(distances[close])
        start = stop
    query_index = np.concatenate(kept_query)
    database_row = np.concatenate(kept_database)
    distance = np.concatenate(kept_distance)

    candidate = np.repeat(np.arange(len(lengths)), lengths)[database_row]
    # Each database keypoint keeps its closest query keypoint (ties: the lower index), ...
    by_database = np.lexsort((query_index, distance, database_row))
    by_database = by_database[_first_of_groups(database_row[by_database])]
    # ... then each query keypoint its closest database keypoint of the same candidate.
    pair_key = candidate[by_database] * num_query + query_index[by_database]
    by_query = np.lexsort((database_row[by_database], distance[by_database], pair_key))
    chosen = by_database[by_query[_first_of_groups(pair_key[by_query])]]
    chosen = chosen[np.argsort(database_row[chosen], kind="stable")]

    starts = np.cumsum(lengths) - lengths
    pairs = np.stack((query_index[chosen], database_row[chosen] - starts[candidate[chosen]]), axis=1)
    bounds = np.searchsorted(candidate[chosen], np.arange(1, len(lengths)))
    return np.split(pairs, bounds)


@dataclass(frozen=True)
class HammingMatching(Matching):
    """Matching against a compact store (``local_features=compact``): shared word, Hamming distance.

    Attributes:
        max_distance: the most differing signature bits of a match (20 of 64 bits: the best mAP on the real
            photos, benchmarks/results/rerank.md).
        num_assignments: nearest words each query descriptor is encoded to.
        query_max_keypoints: match only the query's strongest keypoints (None: all).
        database_max_keypoints: read only each candidate's strongest keypoints from the store (None: all).
    """

    max_distance: int = 20
    num_assignments: int = 3
    query_max_keypoints: int | None = None
    database_max_keypoints: int | None = None

    def __post_init__(self) -> None:
        check_budgets(self)
        if self.max_distance < 0:
            raise ValueError(f"max_distance must be non-negative, got {self.max_distance}")
        if self.num_assignments <= 0:
            raise ValueError(f"num_assignments must be positive, got {self.num_assignments}")

    def check_store(self, store: FeatureStore, query: LocalFeatures | None = None) -> None:
        if store.metadata.codec is None:
            raise ValueError(
                f"Hamming matching needs a compact store (local_features=compact); {store.root} holds "
                f"{store.metadata.method} {store.metadata.descriptor_dtype} descriptors: use an exact matching preset"
            )
        if query is not None and (query.binary or query.dim != store.codec.vocabulary.dim):
            raise ValueError(
                f"query features are {query.descriptors.dtype} with {query.dim} dimensions; the store's codes "
                f"embed float {store.metadata.method} descriptors with {store.codec.vocabulary.dim}"
            )

    def match(
        self, query: LocalFeatures, candidates: Sequence[LocalFeatures], store: FeatureStore
    ) -> list[np.ndarray]:
        embedding = store.codec
        assignments = min(self.num_assignments, embedding.vocabulary.num_words)
        words, signatures = embedding.encode(query.descriptors, assignments)
        return match_codes_batched(
            words,
            signatures,
            [candidate.descriptors for candidate in candidates],
            embedding,
            self.max_distance,
        )

    def notes(self) -> list[str]:
        notes = [f"compact codes, shared word and Hamming ≤ {self.max_distance}"]
        if self.num_assignments != HammingMatching().num_assignments:
            notes.append(f"{self.num_assignments} words per query descriptor")
        return notes + super().notes()
