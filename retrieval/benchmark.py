"""The one structure every retrieval benchmark is read into, whatever its files look like.

A :class:`RetrievalBenchmark` lists query and database images and, for every query, a
:class:`QueryGroundTruth` of database indices. Three protocols share it:

- ``"revisited"`` (Revisited Oxford/Paris): ``easy`` and ``hard`` positives and ``junk``; the metrics derive the
  Easy, Medium and Hard settings from them. Queries carry a crop box.
- ``"gldv2"`` (Google Landmarks v2 retrieval): positives in ``easy``, the Kaggle split in ``usage``.
- ``"plain"`` (a folder of landmarks, the shared real photos): positives in ``easy``, ``junk`` removed from the
  ranking (in leave-one-out, the query itself).

Readers of the real file formats live in ``datamodules/formats/``; the metrics in ``retrieval/metrics.py``.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from retrieval.images import BoundingBox

Protocol = Literal["revisited", "gldv2", "plain"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)

# What a database image is to one query ("unknown" where there is no ground truth, e.g. a user's search).
Verdict = Literal["positive", "negative", "junk", "unknown"]


GLDV2_USAGES = ("Public", "Private")


def _empty_indices() -> np.ndarray:
    indices = np.empty(0, dtype=np.int64)
    indices.setflags(write=False)
    return indices


def _as_index_set(values: object, field_name: str) -> np.ndarray:
    """Validate database indices and return them sorted, as a read-only int64 array (N,)."""
    array = np.asarray(values)
    if array.size == 0:
        return _empty_indices()
    if array.ndim != 1:
        raise ValueError(f"{field_name} must be a 1-D array of database indices, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{field_name} must hold integer database indices, got dtype {array.dtype}")
    indices = np.sort(array.astype(np.int64))
    if indices[0] < 0:
        raise ValueError(f"{field_name} holds a negative database index: {int(indices[0])}")
    repeated = indices[1:][indices[1:] == indices[:-1]]
    if repeated.size:
        raise ValueError(f"{field_name} lists database index {int(repeated[0])} more than once")
    indices.setflags(write=False)
    return indices


@dataclass(frozen=True, eq=False)
class QueryGroundTruth:
    """Ground truth of one query as database indices; each array is (N,) int64, sorted, unique, read-only.

    Attributes:
        easy: positives. Under the "plain" and "gldv2" protocols these are all the positives.
        hard: hard positives (Revisited only; empty otherwise).
        junk: images removed from this query's ranking before scoring (Revisited junk, or the query itself
            in leave-one-out).
        usage: the GLDv2 split, "Public" or "Private"; empty for the other protocols.
    """

    easy: np.ndarray
    hard: np.ndarray = field(default_factory=_empty_indices)
    junk: np.ndarray = field(default_factory=_empty_indices)
    usage: str = ""

    def __post_init__(self) -> None:
        for field_name in ("easy", "hard", "junk"):
            object.__setattr__(self, field_name, _as_index_set(getattr(self, field_name), field_name))
        for first, second in (("easy", "hard"), ("easy", "junk"), ("hard", "junk")):
            shared = np.intersect1d(getattr(self, first), getattr(self, second))
            if shared.size:
                raise ValueError(f"database index {int(shared[0])} is in both {first} and {second}")
        if self.usage not in ("", *GLDV2_USAGES):
            raise ValueError(f"usage must be '', 'Public' or 'Private', got {self.usage!r}")

    @property
    def positives(self) -> np.ndarray:
        """All positives, easy and hard, (N,) int64 sorted."""
        return np.union1d(self.easy, self.hard)

    def remapped(self, old_to_new: np.ndarray) -> QueryGroundTruth:
        """The same ground truth with database index ``i`` renamed ``old_to_new[i]`` (which must be >= 0)."""
        return QueryGroundTruth(
            easy=old_to_new[self.easy],
            hard=old_to_new[self.hard],
            junk=old_to_new[self.junk],
            usage=self.usage,
        )


def _check_box(box: Sequence[float] | None, query_index: int) -> BoundingBox | None:
    if box is None:
        return None
    values = tuple(float(value) for value in box)
    if len(values) != 4 or not all(math.isfinite(value) for value in values):
        raise ValueError(f"query {query_index}: a box must be 4 finite numbers (x1, y1, x2, y2), got {box!r}")
    x1, y1, x2, y2 = values
    if not (x1 < x2 and y1 < y2):
        raise ValueError(f"query {query_index}: box {box!r} is empty (need x1 < x2 and y1 < y2)")
    return (x1, y1, x2, y2)


def _first_repeated(values: list[str]) -> str | None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


@dataclass(frozen=True, eq=False)
class RetrievalBenchmark:
    """Queries, database and ground truth of one benchmark under one evaluation protocol.

    Attributes:
        name: short name used in logs, e.g. "roxford5k".
        protocol: "revisited", "gldv2" or "plain" (see the module docstring).
        query_paths: image file of every query (Q entries).
        database_paths: image file of every database image (N entries).
        ground_truth: one :class:`QueryGroundTruth` per query, indices into the database.
        query_ids: unique name of every query (Q entries).
        database_ids: unique name of every database image (N entries).
        query_boxes: crop box (x1, y1, x2, y2) of every query, or None to use the whole image (Q entries).
    """

    name: str
    protocol: Protocol
    query_paths: list[Path]
    database_paths: list[Path]
    ground_truth: list[QueryGroundTruth]
    query_ids: list[str]
    database_ids: list[str]
    query_boxes: list[BoundingBox | None]

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a benchmark needs a name")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        object.__setattr__(self, "query_paths", [Path(path) for path in self.query_paths])
        object.__setattr__(self, "database_paths", [Path(path) for path in self.database_paths])
        object.__setattr__(self, "ground_truth", list(self.ground_truth))
        object.__setattr__(self, "query_ids", [str(query_id) for query_id in self.query_ids])
        object.__setattr__(self, "database_ids", [str(database_id) for database_id in self.database_ids])
        object.__setattr__(
            self, "query_boxes", [_check_box(box, index) for index, box in enumerate(self.query_boxes)]
        )
        self._check_sizes()
        self._check_ground_truth()

    def _check_sizes(self) -> None:
        num_queries = len(self.query_paths)
        for field_name in ("query_ids", "query_boxes", "ground_truth"):
            if len(getattr(self, field_name)) != num_queries:
                raise ValueError(
                    f"{self.name}: {field_name} has {len(getattr(self, field_name))} entries "
                    f"for {num_queries} query paths"
                )
        if len(self.database_ids) != len(self.database_paths):
            raise ValueError(
                f"{self.name}: database_ids has {len(self.database_ids)} entries "
                f"for {len(self.database_paths)} database paths"
            )
        for field_name in ("query_ids", "database_ids"):
            repeated = _first_repeated(getattr(self, field_name))
            if repeated is not None:
                raise ValueError(f"{self.name}: {field_name} lists {repeated!r} more than once")

    def _check_ground_truth(self) -> None:
        for query_index, truth in enumerate(self.ground_truth):
            if not isinstance(truth, QueryGroundTruth):
                raise ValueError(
                    f"{self.name}: ground truth of query {query_index} is a {type(truth).__name__}"
                )
            largest = max(
                (int(indices[-1]) for indices in (truth.easy, truth.hard, truth.junk) if indices.size),
                default=-1,
            )
            if largest >= self.num_database:
                raise ValueError(
                    f"{self.name}: query {query_index} refers to database index {largest}, "
                    f"but the database has {self.num_database} images"
                )
            if self.protocol != "revisited" and truth.hard.size:
                raise ValueError(f"{self.name}: hard positives are only defined for the revisited protocol")
            if self.protocol == "gldv2":
                if truth.usage not in GLDV2_USAGES:
                    raise ValueError(f"{self.name}: GLDv2 query {query_index} needs usage Public or Private")
                if truth.junk.size:
                    raise ValueError(f"{self.name}: the GLDv2 protocol has no junk images")
            elif truth.usage:
                raise ValueError(f"{self.name}: usage is only defined for the gldv2 protocol")

    @property
    def num_queries(self) -> int:
        return len(self.query_paths)

    @property
    def num_database(self) -> int:
        return len(self.database_paths)

    def verdicts(self, query_index: int, result_indices: np.ndarray) -> list[Verdict]:
        """Positive / negative / junk for each database index in ``result_indices`` (K,) of one query."""
        truth = self.ground_truth[query_index]
        positives, junk = set(truth.positives.tolist()), set(truth.junk.tolist())
        return [
            "positive" if i in positives else "junk" if i in junk else "negative"
            for i in np.asarray(result_indices).tolist()
        ]

    def select_queries(self, query_indices: np.ndarray | list[int]) -> RetrievalBenchmark:
        """The benchmark restricted to the given queries (in the given order); the database is unchanged."""
        indices = [int(index) for index in np.asarray(query_indices, dtype=np.int64).reshape(-1)]
        for index in indices:
            if not 0 <= index < self.num_queries:
                raise ValueError(f"{self.name}: query index {index} is outside [0, {self.num_queries})")
        return RetrievalBenchmark(
            name=self.name,
            protocol=self.protocol,
            query_paths=[self.query_paths[index] for index in indices],
            database_paths=self.database_paths,
            ground_truth=[self.ground_truth[index] for index in indices],
            query_ids=[self.query_ids[index] for index in indices],
            database_ids=self.database_ids,
            query_boxes=[self.query_boxes[index] for index in indices],
        )


class BenchmarkLoader(typing.Protocol):
    """Anything that loads a benchmark on demand (e.g. ``datamodules.formats.sources.BenchmarkSource``)."""

    def load(self) -> RetrievalBenchmark: ...
