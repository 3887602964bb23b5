"""Global descriptors looked up by image id: the store of the methods that re-rank with global descriptors only
(:mod:`retrieval.descriptor.superglobal`), as a feature store is that of local-feature methods."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class DescriptorTable:
    """``descriptors`` (N, D), row i the descriptor of ``ids[i]``; a memory-mapped array stays mapped (rows are
    read when asked for)."""

    def __init__(self, ids: Sequence[str], descriptors: np.ndarray):
        if descriptors.ndim != 2 or len(descriptors) != len(ids):
            raise ValueError(f"descriptors must be (N={len(ids)}, D), got shape {descriptors.shape}")
        self.descriptors = descriptors
        self._rows = {image_id: row for row, image_id in enumerate(ids)}
        if len(self._rows) != len(ids):
            raise ValueError("image ids must be unique")

    @property
    def dim(self) -> int:
        return int(self.descriptors.shape[1])

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._rows

    def get_many(self, ids: Sequence[str]) -> np.ndarray:
        """(K, D) float32 descriptors of ``ids``, in their order. Raises KeyError for an unknown id."""
        rows = [self._rows[image_id] for image_id in ids]
        return np.asarray(self.descriptors[rows], dtype=np.float32)

    def bytes_per_image(self) -> float:
        """Bytes a re-ranking reads per image: one float32 descriptor (what a collection keeps beside its index)."""
        return 4.0 * self.dim

    def __repr__(self) -> str:
        return f"DescriptorTable({len(self)} images, D={self.dim})"
