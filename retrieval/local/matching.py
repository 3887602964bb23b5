"""Tentative matching of local descriptors: the ratio test and mutual nearest neighbours.

Distances are computed with matrix products: ``||a - b||² = ||a||² + ||b||² - 2 a·b`` (which is ``2 - 2 a·b``
for L2-normalised descriptors such as RootSIFT). Binary descriptors (packed uint8 bits) are unpacked into 0/1
floats, for which the same formula gives the Hamming distance exactly, so one code path serves both.

The ratio test keeps query descriptor ``i`` when its nearest database descriptor is closer than ``ratio`` times
the second nearest (L2 distance for float descriptors, Hamming distance for binary ones; strict, so exact ties
never match). The mutual test further requires ``i`` to be a nearest query descriptor of that database
descriptor.

:func:`match_descriptors` matches one pair; :func:`match_descriptors_batched` matches one query against many
candidates with one large matrix product per block of candidates, and finds second neighbours and mutual
partners without any full sort: this is the hot path of re-ranking. :class:`Matching` is what re-ranking
matches with: :class:`MatchingConfig` (these nearest neighbours, over a store of float or binary descriptors) or
:class:`~retrieval.local.hamming_matching.HammingMatching` (a compact store); :mod:`retrieval.local.verification`
fits geometry to the matches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
import torch

from retrieval.local.features import LocalFeatures
from retrieval.local.matmul_precision import AUTO, resolve_precision

if TYPE_CHECKING:
    from retrieval.local.store import FeatureStore

MatmulPrecision = Literal["float32", "bfloat16"]
MATMUL_PRECISIONS: tuple[str, ...] = get_args(MatmulPrecision)

# Entries of one block of the (query, candidate keypoint) score matrix: 16 MiB of float32.
DEFAULT_BLOCK_ELEMENTS = 1 << 22

# Relative spread of query norms below which they count as equal (float32 rounding of normalised descriptors).
_EQUAL_NORMS_TOLERANCE = 1e-6

_NEGATIVE_BFLOAT16_MESSAGE = (
    "bfloat16 matching needs non-negative descriptors (SIFT, RootSIFT, packed bits); use precision='float32'"
)

# Columns per group of the two-level nearest-neighbour reduction (candidates are padded to a multiple).
_GROUP = 64


class Matching(ABC):
    """How re-ranking finds the tentative matches of a query with its candidates read from a store.

    Subclasses are frozen dataclasses with the keypoint budgets ``query_max_keypoints`` (match only the
    query's strongest keypoints; None: all) and ``database_max_keypoints`` (read only each candidate's
    strongest from the store).
    """

    query_max_keypoints: int | None
    database_max_keypoints: int | None

    @abstractmethod
    def check_store(self, store: FeatureStore, query: LocalFeatures | None = None) -> None:
        """Raise ValueError when this matching cannot match what ``store`` holds (with ``query``'s features,
        when given)."""

    @abstractmethod
    def match(
        self, query: LocalFeatures, candidates: Sequence[LocalFeatures], store: FeatureStore
    ) -> list[np.ndarray]:
        """(Mc, 2) int64 (query index, database index) pairs per candidate."""

    def notes(self) -> list[str]:
        """What differs from the defaults, for labels (e.g. ``["512/256 keypoints"]``)."""
        if self.query_max_keypoints is None and self.database_max_keypoints is None:
            return []
        budgets = (self.query_max_keypoints, self.database_max_keypoints)
        return ["/".join("all" if budget is None else str(budget) for budget in budgets) + " keypoints"]


def check_budgets(matching: Matching) -> None:
    """Keypoint budgets are positive or None."""
    for name in ("query_max_keypoints", "database_max_keypoints"):
        value = getattr(matching, name)
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be positive or None, got {value}")


@dataclass(frozen=True)
class MatchingConfig(Matching):
    """How re-ranking matches a query with its candidates (:func:`match_descriptors_batched`).

    Attributes:
        ratio: Lowe's ratio in (0, 1].
        mutual: require mutual nearest neighbours.
        query_max_keypoints: match only the query's strongest keypoints (None: all).
        database_max_keypoints: read only each candidate's strongest keypoints from the store (None: all).
        precision: "float32", or "bfloat16" matrix products (several times faster on CPUs with AMX or
            AVX512-BF16 and on GPUs, but many times slower where a CPU emulates them; non-negative descriptors
            such as RootSIFT only), or "auto": bfloat16 where it is measured faster
            (:mod:`retrieval.local.matmul_precision`), resolved at construction.
        device: torch device of the matching ("cpu", "cuda"); verification runs on the CPU.
    """

    ratio: float = 0.8
    mutual: bool = True
    query_max_keypoints: int | None = None
    database_max_keypoints: int | None = None
    precision: MatmulPrecision | Literal["auto"] = "float32"
    device: str = "cpu"

    def __post_init__(self) -> None:
        _check_ratio(self.ratio)
        check_budgets(self)
        if self.precision not in (*MATMUL_PRECISIONS, AUTO):
            raise ValueError(f"precision must be one of {(*MATMUL_PRECISIONS, AUTO)}, got {self.precision!r}")
        # A frozen dataclass: "auto" becomes the precision it chose, so labels and keys name what runs.
        object.__setattr__(self, "precision", resolve_precision(self.precision, self.device))

    def check_store(self, store: FeatureStore, query: LocalFeatures | None = None) -> None:
        metadata = store.metadata
        if metadata.codec is not None:
            raise ValueError(
                f"{store.root} is a compact store ({metadata.codec}): match it with Hamming matching "
                "(rerank=compact, or matching=hamming)"
            )
        if query is not None and (query.dim != metadata.dim or query.binary != metadata.binary):
            raise ValueError(
                f"query features are {query.descriptors.dtype} with {query.dim} dimensions but the store holds "
                f"{metadata.method} {metadata.descriptor_dtype} features with {metadata.dim}"
            )

    def match(
        self, query: LocalFeatures, candidates: Sequence[LocalFeatures], store: FeatureStore
    ) -> list[np.ndarray]:
        return match_descriptors_batched(
            query.descriptors,
            [candidate.descriptors for candidate in candidates],
            ratio=self.ratio,
            mutual=self.mutual,
            precision="bfloat16" if self.precision == "bfloat16" else "float32",  # "auto" was resolved
            device=self.device,
        )

    def notes(self) -> list[str]:
        """What differs from matching every keypoint in float32, for labels (e.g. ``["512/256 keypoints"]``)."""
        return super().notes() + ([self.precision] if self.precision != "float32" else [])


def _check_descriptor_pair(query_descriptors: np.ndarray, database_descriptors: np.ndarray) -> None:
    for name, descriptors in (("query", query_descriptors), ("database", database_descriptors)):
        if descriptors.ndim != 2 or descriptors.dtype not in (np.float32, np.uint8):
            raise ValueError(
                f"{name} descriptors must be a float32 or packed-bit uint8 array (N, D), "
                f"got {descriptors.dtype} {descriptors.shape}"
            )
    if query_descriptors.dtype != database_descriptors.dtype:
        raise ValueError(
            f"query descriptors are {query_descriptors.dtype} but database descriptors are "
            f"{database_descriptors.dtype}; float and binary descriptors cannot be matched"
        )
    if query_descriptors.shape[1] != database_descriptors.shape[1]:
        raise ValueError(
            f"query descriptors have {query_descriptors.shape[1]} dimensions but database descriptors have "
            f"{database_descriptors.shape[1]}"
        )


def _check_ratio(ratio: float) -> None:
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")


def _matching_tensor(descriptors: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """(N, D) float32 as is, or (N, D) packed bits unpacked to (N, 8·D) float32 zeros and ones."""
    if descriptors.dtype == np.uint8:
        descriptors = np.unpackbits(descriptors, axis=1)
    return torch.from_numpy(np.ascontiguousarray(descriptors)).to(device=device, dtype=torch.float32)


def _squared_ratio_factor(ratio: float, binary: bool) -> float:
    """``f`` such that the ratio test reads ``second_squared_distance > f · nearest_squared_distance``.

    For binary descriptors the "squared distance" of the unpacked bits is the Hamming distance itself.
    """
    return 1.0 / ratio if binary else 1.0 / ratio**2


def _empty_matches() -> np.ndarray:
    return np.zeros((0, 2), dtype=np.int64)


def match_descriptors(
    query_descriptors: np.ndarray, database_descriptors: np.ndarray, ratio: float = 0.8, mutual: bool = True
) -> np.ndarray:
    """Match one pair of images by brute force.

    Args:
        query_descriptors: (Nq, D) float32, or (Nq, D) uint8 packed bits.
        database_descriptors: (Nd, D), the same kind as the query's.
        ratio: Lowe's ratio in (0, 1]; 1 keeps every unambiguous nearest neighbour.
        mutual: also require the query descriptor to be a nearest neighbour of its match.

    Returns:
        (M, 2) int64 pairs (query index, database index), sorted by query index.
    """
    _check_descriptor_pair(query_descriptors, database_descriptors)
    _check_ratio(ratio)
    if len(query_descriptors) == 0 or len(database_descriptors) == 0:
        return _empty_matches()
    binary = query_descriptors.dtype == np.uint8
    with torch.inference_mode():
        # Float64 keeps the reference exact for bits and free of cancellation for large SIFT values.
        query = _matching_tensor(query_descriptors, "cpu").double()
        database = _matching_tensor(database_descriptors, "cpu").double()
        squared_distances = (
            query.square().sum(dim=1)[:, None]
            + database.square().sum(dim=1)[None, :]
            - 2.0 * query @ database.T
        ).clamp_min(0.0)  # (Nq, Nd)
        num_neighbours = min(2, len(database))
        neighbour_distances, neighbour_indices = squared_distances.topk(num_neighbours, dim=1, largest=False)
        nearest = neighbour_distances[:, 0]
        matched_database_indices = neighbour_indices[:, 0]
        if num_neighbours == 2:
            keep = neighbour_distances[:, 1] > nearest * _squared_ratio_factor(ratio, binary)
        else:
            keep = torch.ones(len(query), dtype=torch.bool)
        if mutual:
            keep &= nearest <= squared_distances.amin(dim=0)[matched_database_indices]
        query_indices = torch.nonzero(keep).squeeze(1)
        pairs = torch.stack((query_indices, matched_database_indices[query_indices]), dim=1)
    return pairs.numpy().astype(np.int64)


def match_descriptors_batched(
    query_descriptors: np.ndarray,
    candidate_descriptors: Sequence[np.ndarray],
    ratio: float = 0.8,
    mutual: bool = True,
    precision: MatmulPrecision = "float32",
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
    device: torch.device | str = "cpu",
) -> list[np.ndarray]:
    """Match one query against many candidate images at once: per candidate, the same pairs as
    :func:`match_descriptors` up to floating-point rounding of near-tied distances.

    Every candidate is zero-padded to the same width (a multiple of ``_GROUP`` columns), and candidates are
    scored in blocks of at most ``block_elements`` scores (at least one candidate per block), each one matrix
    product into buffers reused from block to block. Per query row and candidate, the two nearest neighbours
    come from a max-reduction over groups of ``_GROUP`` columns, a top-2 of the group maxima and a top-2 of the
    winning group; only the rows that pass the ratio test look up their mutual partners.

    Args:
        query_descriptors: (Nq, D) float32, or (Nq, D) uint8 packed bits.
        candidate_descriptors: C arrays (Nc, D) of the query's kind; they may be empty.
        ratio: Lowe's ratio in (0, 1].
        mutual: also require mutual nearest neighbours.
        precision: "float32", or "bfloat16" for the matrix product: several times faster on CPUs with AMX or
            AVX512-BF16 and on GPUs, for non-negative descriptors only (SIFT, RootSIFT, bits); scores are
            rounded to 8 significant bits, which suits L2-normalised descriptors (RootSIFT) and changes a few
            near-tied matches.
        block_elements: scores per block.
        device: torch device of the computation.

    Returns:
        C arrays (Mc, 2) int64 of (query index, candidate index) pairs, sorted by query index.
    """
    _check_ratio(ratio)
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"precision must be one of {MATMUL_PRECISIONS}, got {precision!r}")
    if block_elements <= 0:
        raise ValueError(f"block_elements must be positive, got {block_elements}")
    for descriptors in candidate_descriptors:
        _check_descriptor_pair(query_descriptors, descriptors)
    results = [_empty_matches() for _ in candidate_descriptors]
    nonempty = [index for index, descriptors in enumerate(candidate_descriptors) if len(descriptors)]
    if len(query_descriptors) == 0 or not nonempty:
        return results

    width = _GROUP * max(2, -(-max(len(candidate_descriptors[index]) for index in nonempty) // _GROUP))
    block_size = max(1, block_elements // (len(query_descriptors) * width))
    with torch.inference_mode():
        scorer = _BlockScorer(
            _matching_tensor(query_descriptors, device),
            width,
            min(block_size, len(nonempty)),
            query_descriptors.dtype == np.uint8,
            ratio,
            mutual,
            precision,
        )
        for start in range(0, len(nonempty), block_size):
            block = nonempty[start : start + block_size]
            block_matches = scorer.match([candidate_descriptors[index] for index in block])
            for candidate_index, pairs in zip(block, block_matches, strict=True):
                results[candidate_index] = pairs
    return results


def _top_two(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Largest value, its index and the runner-up along the last dimension (a tie gives runner-up = largest).

    ``torch.topk`` is several times slower than these three reductions on short rows.
    """
    largest, largest_index = values.max(dim=-1)
    lowest = -torch.inf if values.is_floating_point() else torch.iinfo(values.dtype).min
    runner_up = values.scatter(-1, largest_index[..., None], lowest).amax(dim=-1)
    return largest, largest_index, runner_up


class _BlockScorer:
    """Scores one query against blocks of candidates, reusing its buffers from block to block (fresh
    multi-megabyte tensors per block would spend more time in page faults than in the matrix product).

    In float32, the scores are ``u = q·c - ||c||²/2``: for a fixed query row ``||q - c||² = ||q||² - 2u``, so
    the nearest candidate descriptors have the largest scores; padding columns (``||c||² = inf``) score -inf.

    In bfloat16, descriptors get one more coordinate (1 for the query, ``(K - ||c||²)/2`` for the candidates,
    ``K`` the block's largest ``||c||²``) so that the product itself is ``u + K/2``, which is non-negative for
    non-negative descriptors: the bit patterns of non-negative bfloat16 values, read as int16, sort like the
    values, and int16 reductions are several times faster than converting to float32 first. Padding columns
    score -1, a negative int16 below every real score.
    """

    def __init__(
        self,
        query: torch.Tensor,
        width: int,
        max_block_size: int,
        binary: bool,
        ratio: float,
        mutual: bool,
        precision: MatmulPrecision,
    ):
        num_query, dim = query.shape
        self.binary = binary
        self.query_squared_norms = self._squared_norms(query)[:, None]  # (Nq, 1)
        # For a fixed column, ||q - c||² ranks query rows as ||q||²/2 - score. With equal query norms (L2-normalised
        # descriptors, up to float32 rounding) the scores alone rank them, which saves a gather per matched column.
        spread = self.query_squared_norms.max() - self.query_squared_norms.min()
        self.equal_query_norms = bool(spread <= _EQUAL_NORMS_TOLERANCE * self.query_squared_norms.max())
        self.width = width
        self.factor = _squared_ratio_factor(ratio, binary)
        self.mutual = mutual
        self.bfloat16 = precision == "bfloat16"
        device = query.device
        columns = max_block_size * width
        self.half_squared_norms = torch.empty(columns, device=device)
        if self.bfloat16:
            if bool(query.amin() < 0):
                raise ValueError(_NEGATIVE_BFLOAT16_MESSAGE)
            self.matmul_query = torch.cat((query, torch.ones(num_query, 1, device=device)), dim=1).bfloat16()
            self.candidates = torch.empty(columns, dim + 1, dtype=torch.bfloat16, device=device)
            self.products = torch.empty(num_query * columns, dtype=torch.bfloat16, device=device)
        else:
            self.matmul_query = query
            self.candidates = torch.empty(columns, dim, device=device)
            self.scores = torch.empty(num_query * columns, device=device)
        self.half_offset = 0.0  # K / 2 of the current bfloat16 block

    def _squared_norms(self, rows: torch.Tensor) -> torch.Tensor:
        """(N,) squared L2 norms of (N, D') float32 rows; exact popcounts for unpacked bits (their own squares)."""
        if self.binary:
            return rows.sum(dim=1)
        return torch.linalg.vector_norm(rows, dim=1).square_()  # one pass, several times faster than vecdot

    def _score(self, candidate_descriptors: Sequence[np.ndarray]) -> torch.Tensor:
        """(Nq, G·width) ordered scores: float32 ``u``, or int16 views of bfloat16 ``u + K/2``."""
        num_query = len(self.query_squared_norms)
        columns = len(candidate_descriptors) * self.width
        sizes = [len(descriptors) for descriptors in candidate_descriptors]
        # One float32 block of every real row: one norm pass, one sign check, one conversion into the buffer.
        rows = _matching_tensor(np.concatenate(candidate_descriptors), self.candidates.device)
        if self.bfloat16 and bool(rows.amin() < 0):
            raise ValueError(_NEGATIVE_BFLOAT16_MESSAGE)
        dim = rows.shape[1]
        candidates = self.candidates[:columns]
        half_squared_norms = self.half_squared_norms[:columns]
        if all(size == self.width for size in sizes):
            candidates[:, :dim] = rows
            torch.div(self._squared_norms(rows), 2, out=half_squared_norms)
        else:
            slots = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
            starts = torch.repeat_interleave(torch.tensor(np.cumsum(sizes) - sizes), torch.tensor(sizes))
            positions = (slots * self.width + torch.arange(len(rows)) - starts).to(rows.device)
            candidates.zero_()
            candidates[:, :dim].index_copy_(0, positions, rows.to(candidates.dtype))
            half_squared_norms.fill_(torch.inf)
            half_squared_norms.index_copy_(0, positions, self._squared_norms(rows) / 2)
        is_padding = torch.isinf(half_squared_norms)

        if not self.bfloat16:
            scores = self.scores[: num_query * columns].view(num_query, columns)
            return torch.addmm(half_squared_norms.neg()[None, :], self.matmul_query, candidates.T, out=scores)
        self.half_offset = float(half_squared_norms.masked_fill(is_padding, -torch.inf).max())
        candidates[:, dim] = torch.where(is_padding, -1.0, self.half_offset - half_squared_norms)
        products = self.products[: num_query * columns].view(num_query, columns)
        torch.mm(self.matmul_query, candidates.T, out=products)
        return products.view(torch.int16)

    def _distances(self, ordered_scores: torch.Tensor) -> torch.Tensor:
        """Squared distances (float32) of query rows to the columns behind ``ordered_scores`` (Nq, ...)."""
        if not self.bfloat16:
            return (self.query_squared_norms - 2 * ordered_scores).clamp_min_(0.0)
        values = ordered_scores.view(torch.bfloat16).float() - self.half_offset
        distances = (self.query_squared_norms - 2 * values).clamp_min_(0.0)
        return distances.masked_fill_(ordered_scores < 0, torch.inf)  # padding

    def match(self, candidate_descriptors: Sequence[np.ndarray]) -> list[np.ndarray]:
        """(Mc, 2) int64 (query index, candidate index) pairs for each of G non-empty candidates."""
        num_candidates = len(candidate_descriptors)
        num_query = len(self.query_squared_norms)
        ordered = self._score(candidate_descriptors)
        grouped = ordered.view(num_query, num_candidates, self.width // _GROUP, _GROUP)

        # Two best columns per (query row, candidate): the best two group maxima, then the best two of the
        # winning group. The runner-up is the better of the winning group's second and the second group maximum.
        best, winning_group, second_group_best = _top_two(grouped.amax(dim=3))  # (Nq, G) each
        group_rows = (
            torch.arange(num_query * num_candidates, device=ordered.device).view(num_query, num_candidates)
            * (self.width // _GROUP)
            + winning_group
        )
        winning_scores = ordered.reshape(-1, _GROUP).index_select(0, group_rows.view(-1))
        _, index_in_group, second_in_group = _top_two(winning_scores.view(num_query, num_candidates, _GROUP))
        runner_up = torch.maximum(second_in_group, second_group_best)

        nearest = self._distances(best)
        second = self._distances(runner_up)  # +inf for one-keypoint candidates
        query_indices, slots = torch.nonzero(second > nearest * self.factor, as_tuple=True)
        candidate_indices = (
            winning_group[query_indices, slots] * _GROUP + index_in_group[query_indices, slots]
        )
        if self.mutual:
            columns = slots * self.width + candidate_indices
            if self.equal_query_norms:
                # Column scores then rank query rows like distances: one max over every row of the block.
                is_mutual = ordered.amax(dim=0)[columns] <= best[query_indices, slots]
            else:
                # Distances from every query row to each matched column (Nq, M), against the matched row's.
                matched_columns = self._distances(ordered[:, columns])
                matched = matched_columns[
                    query_indices, torch.arange(len(query_indices), device=ordered.device)
                ]
                is_mutual = matched_columns.amin(dim=0) >= matched
            query_indices, slots, candidate_indices = (
                query_indices[is_mutual],
                slots[is_mutual],
                candidate_indices[is_mutual],
            )

        order = torch.argsort(slots * num_query + query_indices)
        pairs = (
            torch.stack((query_indices[order], candidate_indices[order]), dim=1)
            .cpu()
            .numpy()
            .astype(np.int64)
        )
        counts = torch.bincount(slots, minlength=num_candidates).cpu().numpy()
        return np.split(pairs, np.cumsum(counts)[:-1])
