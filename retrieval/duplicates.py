"""Near-duplicate images: a 64-bit perceptual hash (pHash) and a bucketed search within a Hamming radius.

:func:`perceptual_hash` is the DCT hash of Zauner (2010): the luma, shrunk to 32 x 32, its 8 x 8 lowest 2-D DCT
frequencies compared with their median. Resizing, re-encoding, mild blur and colour changes move a few bits; other
photos of the same landmark differ in a third of them or more.

:func:`near_duplicate_pairs` finds every pair of hashes within ``radius`` bits without comparing all pairs, by
multi-index hashing (Norouzi et al., 2012): the 64 bits are cut into ``m`` bands, and two hashes within ``radius``
agree within ``radius // m`` bits on at least one band (pigeonhole). Each band is sorted once; each hash then looks
up the band values within ``radius // m`` flips of its own (binary search) and checks the full distance of only
those candidates. :func:`duplicate_representatives` joins the pairs into groups and picks one image to keep per
group.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator

import numpy as np
from PIL import Image

HASH_BITS = 64
_DCT_SIDE = 32
_LOW_FREQUENCY_SIDE = 8
# Candidate pairs expanded at once by the band search (bounds its memory: two int64 arrays of this length).
_MAX_CANDIDATES_PER_STEP = 1 << 22
# A band search probing more flip masks than this is far slower than choosing another number of bands.
_MAX_FLIP_MASKS = 1 << 16


def dct_matrix(size: int) -> np.ndarray:
    """The orthonormal DCT-II matrix (size, size): ``dct_matrix(n) @ x`` is the DCT of a vector ``x`` (n,)."""
    if size < 1:
        raise ValueError(f"DCT size must be positive, got {size}")
    frequencies = np.arange(size)[:, None]
    positions = np.arange(size)[None, :]
    matrix = np.cos(np.pi * (2 * positions + 1) * frequencies / (2 * size)) * np.sqrt(2 / size)
    matrix[0] /= np.sqrt(2)
    return matrix


_DCT_32 = dct_matrix(_DCT_SIDE)


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit DCT hash of an image (any mode): the luma resized to 32 x 32 with a box filter, its 2-D DCT,
    and one bit per coefficient of the 8 x 8 lowest frequencies, set when the coefficient exceeds their median.
    The most significant bit is frequency (0, 0), then row-major order."""
    luma = np.asarray(image.convert("L").resize((_DCT_SIDE, _DCT_SIDE), Image.Resampling.BOX), np.float64)
    coefficients = (_DCT_32 @ luma @ _DCT_32.T)[:_LOW_FREQUENCY_SIDE, :_LOW_FREQUENCY_SIDE].ravel()
    # Rounding makes the zero coefficients of flat areas exactly zero rather than rounding noise of either sign.
    coefficients = np.round(coefficients, 6)
    bits = np.packbits(coefficients > np.median(coefficients))
    return int.from_bytes(bits.tobytes(), "big")


def hamming_distances(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distances of two broadcastable uint64 hash arrays."""
    return np.bitwise_count(np.asarray(first, np.uint64) ^ np.asarray(second, np.uint64)).astype(np.int64)


def _band_layout(num_bands: int) -> list[tuple[int, int]]:
    """(shift, width) of each band: ``num_bands`` contiguous bit ranges covering the hash, widths within 1."""
    widths = [HASH_BITS // num_bands + (band < HASH_BITS % num_bands) for band in range(num_bands)]
    shifts = np.cumsum([0, *widths[:-1]])
    return [(int(shift), width) for shift, width in zip(shifts, widths, strict=True)]


def _num_flip_masks(width: int, max_flips: int) -> int:
    return sum(math.comb(width, flips) for flips in range(min(max_flips, width) + 1))


def _flip_masks(width: int, max_flips: int) -> np.ndarray:
    """Every ``width``-bit mask with at most ``max_flips`` bits set (uint64)."""
    masks = [
        sum(1 << bit for bit in bits)
        for flips in range(min(max_flips, width) + 1)
        for bits in itertools.combinations(range(width), flips)
    ]
    return np.asarray(masks, dtype=np.uint64)


def choose_num_bands(num_hashes: int, radius: int) -> int:
    """The number of bands with the fewest expected lookups and candidates per hash, for uniformly spread
    hashes: ``m * masks(m) * (1 + num_hashes / 2**width(m))`` over ``m`` in 1 ... radius + 1."""
    if num_hashes < 0 or not 0 <= radius <= HASH_BITS:
        raise ValueError(f"need num_hashes >= 0 and 0 <= radius <= {HASH_BITS}, got {num_hashes}, {radius}")

    def cost(num_bands: int) -> float:
        narrowest = HASH_BITS // num_bands
        masks = _num_flip_masks(narrowest, radius // num_bands)
        return num_bands * masks * (1 + num_hashes / 2.0**narrowest) if masks <= _MAX_FLIP_MASKS else math.inf

    return min(range(1, min(radius + 1, HASH_BITS) + 1), key=cost)


def near_duplicate_pairs(
    hashes: np.ndarray, radius: int, num_bands: int | None = None
) -> Iterator[np.ndarray]:
    """Every pair of hashes within ``radius`` bits, by multi-index hashing.

    Args:
        hashes: (N,) uint64 perceptual hashes.
        radius: the largest Hamming distance of a pair.
        num_bands: bands to cut the hashes into; ``None`` picks the cheapest with :func:`choose_num_bands`.

    Yields:
        blocks of pairs (P, 2) int64 ``(i, j)`` with ``i < j``, in bounded memory; a pair can appear in several
        blocks (once per band it matches on).
    """
    hashes = np.asarray(hashes)
    if hashes.ndim != 1 or hashes.dtype != np.uint64:
        raise ValueError(f"hashes must be a (N,) uint64 array, got {hashes.dtype} {hashes.shape}")
    if not 0 <= radius <= HASH_BITS:
        raise ValueError(f"radius must be in [0, {HASH_BITS}], got {radius}")
    num_bands = choose_num_bands(len(hashes), radius) if num_bands is None else num_bands
    if not 1 <= num_bands <= HASH_BITS:
        raise ValueError(f"num_bands must be in [1, {HASH_BITS}], got {num_bands}")
    if _num_flip_masks(HASH_BITS // num_bands, radius // num_bands) > _MAX_FLIP_MASKS:
        raise ValueError(
            f"radius {radius} with {num_bands} bands needs over {_MAX_FLIP_MASKS} lookups per hash and band; "
            "use more bands (or num_bands=None)"
        )
    for shift, width in _band_layout(num_bands):
        keys = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        for mask in _flip_masks(width, radius // num_bands):
            # Probing in key order keeps the probes nearly sorted: ten times faster binary searches.
            probes = sorted_keys ^ mask
            first = np.searchsorted(sorted_keys, probes, side="left")
            counts = np.searchsorted(sorted_keys, probes, side="right") - first
            yield from _verified_pairs(hashes, radius, order, first, counts, order)


def _verified_pairs(
    hashes: np.ndarray,
    radius: int,
    queries: np.ndarray,
    first: np.ndarray,
    counts: np.ndarray,
    order: np.ndarray,
) -> Iterator[np.ndarray]:
    """Expand query ``q``'s candidates ``order[first[q] : first[q] + counts[q]]`` in steps of at most
    ``_MAX_CANDIDATES_PER_STEP`` (one query's bucket is never split) and keep the pairs within ``radius``."""
    ends = np.cumsum(counts)
    start = 0
    while start < len(queries):
        budget = (ends[start - 1] if start else 0) + _MAX_CANDIDATES_PER_STEP
        stop = max(start + 1, int(np.searchsorted(ends, budget, side="right")))
        step_counts = counts[start:stop]
        query_rows = np.repeat(queries[start:stop], step_counts)
        offsets = np.arange(len(query_rows)) - np.repeat(np.cumsum(step_counts) - step_counts, step_counts)
        candidates = order[np.repeat(first[start:stop], step_counts) + offsets]
        keep = query_rows < candidates
        query_rows, candidates = query_rows[keep], candidates[keep]
        close = hamming_distances(hashes[query_rows], hashes[candidates]) <= radius
        if close.any():
            yield np.stack([query_rows[close], candidates[close]], axis=1).astype(np.int64)
        start = stop


def duplicate_representatives(pairs: Iterable[np.ndarray], priority: np.ndarray) -> np.ndarray:
    """Join near-duplicate pairs into groups (connected components) and pick the image to keep in each.

    Args:
        pairs: blocks (P, 2) of indices into ``priority`` of images that are near-duplicates.
        priority: (N,) the preference of each image, e.g. its pixel count; the highest is kept, ties go to the
            lowest index.

    Returns:
        (N,) int64: the index of the image kept in each image's group (its own index when it is kept or has no
        duplicate).
    """
    num_images = len(priority)
    parent = np.arange(num_images)

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = int(parent[node])
        return node

    for block in pairs:
        block = np.asarray(block)
        if block.size and (block.min() < 0 or block.max() >= num_images):
            raise ValueError(f"pair indices must be in [0, {num_images}), got {block.min()}..{block.max()}")
        for first, second in block.tolist():
            first_root, second_root = root(first), root(second)
            if first_root != second_root:
                parent[max(first_root, second_root)] = min(first_root, second_root)
    groups = parent
    while True:  # pointer jumping: every node ends up pointing at its root
        grandparents = groups[groups]
        if np.array_equal(grandparents, groups):
            break
        groups = grandparents
    # Rank images by (group, -priority, index); the first of each group is its representative.
    ranking = np.lexsort((np.arange(num_images), -np.asarray(priority, np.float64), groups))
    sorted_groups = groups[ranking]
    is_first = np.ones(num_images, dtype=bool)
    is_first[1:] = sorted_groups[1:] != sorted_groups[:-1]
    first_of_group = np.maximum.accumulate(np.where(is_first, np.arange(num_images), 0))
    representatives = np.empty(num_images, np.int64)
    representatives[ranking] = ranking[first_of_group]
    return representatives
