"""The images of a collection as columns: ids, paths relative to the images folder, and file stats, in one
``images.npz`` that loads a million images in a fraction of a second (the same as a JSON object takes seconds;
``benchmarks/image_table.py`` measures both).

Arrays (no pickles): ``ids`` and ``paths`` are the UTF-8 bytes (uint8) of the newline-joined strings (an id or
path holds no line break: :func:`retrieval.collection.list_images` refuses such names); ``files`` (N, 2) int64 is
each file's (size, modification time in ns), -1 where unknown.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True, eq=False)
class ImageTable:
    """Columns of equal length N: ``ids``, relative ``paths`` and ``files`` (N, 2) int64."""

    ids: list[str]
    paths: list[str]
    files: np.ndarray

    def __post_init__(self) -> None:
        if not len(self.ids) == len(self.paths) == len(self.files):
            raise ValueError(f"{len(self.ids)} ids, {len(self.paths)} paths and {len(self.files)} file stats")

    @classmethod
    def of(
        cls, ids: Sequence[str], paths: Mapping[str, str], files: Mapping[str, Sequence[int] | None]
    ) -> ImageTable:
        """The table of ``ids`` (in order) with their relative paths and stats by id."""
        stats = np.array([files[image_id] or (-1, -1) for image_id in ids], dtype=np.int64).reshape(-1, 2)
        return cls(list(ids), [paths[image_id] for image_id in ids], stats)

    def save(self, path: str | Path) -> None:
        """Write atomically (a temporary file renamed).

        Raises:
            ValueError: an id or a path holds a line break.
        """
        path = Path(path)
        temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(temporary, ids=_joined(self.ids), paths=_joined(self.paths), files=self.files)
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str | Path) -> ImageTable:
        with np.load(path, allow_pickle=False) as stored:
            return cls(_split(stored["ids"]), _split(stored["paths"]), stored["files"].reshape(-1, 2))

    def file_stats(self) -> dict[str, list[int] | None]:
        """id → [size, modification time in ns], or None where unknown."""
        return {
            image_id: None if size < 0 else [size, mtime]
            for image_id, (size, mtime) in zip(self.ids, self.files.tolist(), strict=True)
        }


def _joined(texts: Sequence[str]) -> np.ndarray:
    text = "\n".join(texts)
    if text.count("\n") != max(0, len(texts) - 1):
        raise ValueError("an image id or path holds a line break")
    return np.frombuffer(text.encode(), dtype=np.uint8)


def _split(data: np.ndarray) -> list[str]:
    text = data.tobytes().decode()
    return text.split("\n") if data.size else []
