"""An on-disk store of database local features, extracted once and memory-mapped for re-ranking.

Layout of a store directory:

- ``meta.json``: :class:`StoreMetadata` (method, keypoint budget, image side, descriptor width and dtype).
- ``shard_NNNNN.keypoints.bin``: raw little-endian float32 rows (x, y, scale, angle) of every image in the
  shard, one image after the other, strongest keypoint first. Float32 because float16 has a 2-pixel step
  beyond 2048 pixels; keypoints are 16 bytes against 256 for a float16 SIFT descriptor.
- ``shard_NNNNN.descriptors.bin``: raw rows of the descriptors in the same order, float16 for float
  descriptors (RootSIFT loses nothing that matching can see) and uint8 for packed binary descriptors.
- ``shard_NNNNN.index.json``: written last, atomically, when the shard is complete: for each image id its
  row offset, keypoint count and image size, and the ids skipped because their image could not be read.

A shard without its index is incomplete: building again resumes after the last complete shard and
rewrites it. No pickle anywhere.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import cv2
import numpy as np
import torch

from retrieval.images import ImageLoadError
from retrieval.local.features import LocalExtractor, LocalFeatures
from retrieval.progress import stage

logger = logging.getLogger(__name__)

STORE_FORMAT_VERSION = 1
METADATA_FILE = "meta.json"
DESCRIPTOR_DTYPES: tuple[str, ...] = ("float16", "uint8")
_KEYPOINT_COLUMNS = 4
# Bytes of one keypoint in a store: x, y, scale and angle in float32.
KEYPOINT_BYTES = 4 * _KEYPOINT_COLUMNS
# Extraction jobs queued per worker process, so that a million images do not become a million futures.
_JOBS_PER_WORKER = 16
# prctl option: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class StoreMetadata:
    """What a store holds; a reader checks it against what it expects before using any feature.

    Attributes:
        method: the feature method ("rootsift", "orb", ..., or e.g. "cnn_patch" for features written directly).
        max_keypoints: keypoint budget per image at extraction.
        max_side: longest image side at detection, in pixels.
        dim: descriptor width (float values, or bytes of packed bits).
        descriptor_dtype: "float16" (float descriptors) or "uint8" (packed bits).
        format_version: layout version of the files.
    """

    method: str
    max_keypoints: int
    max_side: int
    dim: int
    descriptor_dtype: str
    format_version: int = STORE_FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.descriptor_dtype not in DESCRIPTOR_DTYPES:
            raise ValueError(
                f"descriptor_dtype must be one of {DESCRIPTOR_DTYPES}, got {self.descriptor_dtype!r}"
            )
        if self.dim <= 0 or self.max_keypoints <= 0 or self.max_side <= 0:
            raise ValueError(
                f"dim, max_keypoints and max_side must be positive, got {self.dim}, {self.max_keypoints}, "
                f"{self.max_side}"
            )

    @classmethod
    def from_extractor(cls, extractor: LocalExtractor) -> StoreMetadata:
        """The metadata of a store built with ``extractor``."""
        return cls(
            method=extractor.method,
            max_keypoints=extractor.max_keypoints,
            max_side=extractor.max_side,
            dim=extractor.descriptor_dim,
            descriptor_dtype="uint8" if extractor.binary else "float16",
        )

    @property
    def binary(self) -> bool:
        """Whether descriptors are packed bits."""
        return self.descriptor_dtype == "uint8"

    def mismatches(self, other: StoreMetadata) -> list[str]:
        """Human-readable differences ``field: self value != other value``; empty when they agree."""
        mine, theirs = asdict(self), asdict(other)
        return [f"{name}: {mine[name]!r} != {theirs[name]!r}" for name in mine if mine[name] != theirs[name]]


def _shard_stem(root: Path, shard: int) -> Path:
    return root / f"shard_{shard:05d}"


def _read_metadata(root: Path) -> StoreMetadata:
    path = root / METADATA_FILE
    if not path.is_file():
        raise ValueError(f"{root} is not a feature store: {METADATA_FILE} is missing")
    return StoreMetadata(**json.loads(path.read_text()))


def _completed_shards(root: Path) -> list[tuple[int, dict]]:
    """(shard number, index) of every complete shard, in order."""
    shards = []
    for path in sorted(root.glob("shard_*.index.json")):
        shard = int(path.name.split(".")[0].removeprefix("shard_"))
        shards.append((shard, json.loads(path.read_text())))
    return shards


class FeatureStoreWriter:
    """Appends features to a store, shard by shard; reopening a partly built store resumes it.

    Use as a context manager (or call :meth:`close`) so that the last, partial shard is written.
    """

    def __init__(self, root: str | Path, metadata: StoreMetadata, shard_size: int = 512):
        if shard_size <= 0:
            raise ValueError(f"shard_size must be positive, got {shard_size}")
        self.root = Path(root)
        self.metadata = metadata
        self.shard_size = shard_size
        self.root.mkdir(parents=True, exist_ok=True)
        if (self.root / METADATA_FILE).exists():
            differences = _read_metadata(self.root).mismatches(metadata)
            if differences:
                raise ValueError(
                    f"cannot resume {self.root}: it holds other features ({'; '.join(differences)})"
                )
        else:
            (self.root / METADATA_FILE).write_text(json.dumps(asdict(metadata), indent=2))

        shards = _completed_shards(self.root)
        self.completed_ids: set[str] = set()
        for _, index in shards:
            self.completed_ids.update(index["ids"])
            self.completed_ids.update(index["skipped"])
        self._next_shard = shards[-1][0] + 1 if shards else 0
        self._shard_files: tuple[BinaryIO, BinaryIO] | None = None
        self._entries: dict[str, tuple[int, int, list[int]]] = {}  # id -> (row offset, rows, [width, height])
        self._skipped: dict[str, str] = {}
        self._rows = 0

    def __enter__(self) -> FeatureStoreWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _open_shard(self) -> tuple[BinaryIO, BinaryIO]:
        if self._shard_files is None:
            stem = _shard_stem(self.root, self._next_shard)
            self._shard_files = (
                open(f"{stem}.keypoints.bin", "wb"),  # noqa: SIM115 (closed in _finish_shard)
                open(f"{stem}.descriptors.bin", "wb"),  # noqa: SIM115
            )
        return self._shard_files

    def _check_new(self, image_id: str) -> None:
        if image_id in self.completed_ids or image_id in self._entries or image_id in self._skipped:
            raise ValueError(f"image id {image_id!r} is already in the store")

    def add(self, image_id: str, features: LocalFeatures) -> None:
        """Append the features of one image (strongest first, as extractors return them)."""
        self._check_new(image_id)
        if features.dim != self.metadata.dim or features.binary != self.metadata.binary:
            raise ValueError(
                f"features of {image_id!r} are {features.descriptors.dtype} with {features.dim} dimensions, "
                f"the store holds {self.metadata.descriptor_dtype} with {self.metadata.dim}"
            )
        keypoint_file, descriptor_file = self._open_shard()
        keypoint_file.write(np.ascontiguousarray(features.keypoints, dtype="<f4").tobytes())
        descriptor_dtype = "u1" if self.metadata.binary else "<f2"
        descriptor_file.write(np.ascontiguousarray(features.descriptors, dtype=descriptor_dtype).tobytes())
        self._entries[image_id] = (self._rows, len(features), list(features.image_size))
        self._rows += len(features)
        self._finish_shard_if_full()

    def skip(self, image_id: str, reason: str) -> None:
        """Record an image that could not be read; reading it back gives empty features."""
        self._check_new(image_id)
        self._skipped[image_id] = reason
        self._finish_shard_if_full()

    def _finish_shard_if_full(self) -> None:
        if len(self._entries) + len(self._skipped) >= self.shard_size:
            self._finish_shard()

    def _finish_shard(self) -> None:
        if not self._entries and not self._skipped:
            return
        for handle in self._open_shard():
            handle.close()
        self._shard_files = None
        index = {
            "ids": list(self._entries),
            "offsets": [entry[0] for entry in self._entries.values()],
            "counts": [entry[1] for entry in self._entries.values()],
            "image_sizes": [entry[2] for entry in self._entries.values()],
            "skipped": self._skipped,
        }
        index_path = Path(f"{_shard_stem(self.root, self._next_shard)}.index.json")
        temporary_path = index_path.with_suffix(".tmp")
        temporary_path.write_text(json.dumps(index))
        os.replace(temporary_path, index_path)
        self.completed_ids.update(self._entries)
        self.completed_ids.update(self._skipped)
        self._entries, self._skipped, self._rows = {}, {}, 0
        self._next_shard += 1

    def close(self) -> None:
        """Write the last, partial shard."""
        self._finish_shard()


class FeatureStore:
    """Read-only, memory-mapped access to a feature store.

    Float descriptors come back as float32, binary ones as uint8; keypoints are float32 and in the original
    images' pixels. Looking up an image that was skipped at build time gives empty features.

    Args:
        root: the store directory.
        expected: what the caller will compare the features with (the query's extractor, or metadata);
            any difference raises ValueError. None accepts whatever the store holds.
    """

    def __init__(self, root: str | Path, expected: LocalExtractor | StoreMetadata | None = None):
        self.root = Path(root)
        self.metadata = _read_metadata(self.root)
        if self.metadata.format_version != STORE_FORMAT_VERSION:
            raise ValueError(
                f"{self.root} has store format {self.metadata.format_version}, this code reads "
                f"{STORE_FORMAT_VERSION}; rebuild it"
            )
        if expected is not None:
            if not isinstance(expected, StoreMetadata):
                expected = StoreMetadata.from_extractor(expected)
            differences = self.metadata.mismatches(expected)
            if differences:
                raise ValueError(
                    f"{self.root} holds other features than expected (store != expected: {'; '.join(differences)})"
                )
        self._locations: dict[str, tuple[int, int, int]] = {}
        self._image_sizes: dict[str, tuple[int, int]] = {}
        self.skipped: dict[str, str] = {}
        self._shard_rows: dict[int, int] = {}
        for shard, index in _completed_shards(self.root):
            for image_id, offset, count, size in zip(
                index["ids"], index["offsets"], index["counts"], index["image_sizes"], strict=True
            ):
                self._locations[image_id] = (shard, offset, count)
                self._image_sizes[image_id] = (int(size[0]), int(size[1]))
            self._shard_rows[shard] = sum(index["counts"])
            self.skipped.update(index["skipped"])
        self._maps: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._raw_dtype = np.dtype("u1" if self.metadata.binary else "<f2")

    @property
    def ids(self) -> list[str]:
        """Ids of the images with features (skipped ones excluded), in build order."""
        return list(self._locations)

    def __len__(self) -> int:
        return len(self._locations) + len(self.skipped)

    def bytes_per_image(self) -> float:
        """Mean bytes of features (keypoints and descriptors) per image with features."""
        stored = sum(
            row_count * (_KEYPOINT_COLUMNS * 4 + self.metadata.dim * self._raw_dtype.itemsize)
            for row_count in self._shard_rows.values()
        )
        return stored / max(1, len(self._locations))

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._locations or image_id in self.skipped

    def _shard_arrays(self, shard: int) -> tuple[np.ndarray, np.ndarray]:
        if shard not in self._maps:
            rows = self._shard_rows[shard]
            stem = _shard_stem(self.root, shard)
            if rows == 0:  # an empty file cannot be memory-mapped
                keypoints = np.zeros((0, _KEYPOINT_COLUMNS), np.float32)
                descriptors = np.zeros((0, self.metadata.dim), self._raw_dtype)
            else:
                # Copy-on-write maps: the files stay read-only and the arrays writable, as torch requires.
                keypoints = np.memmap(
                    f"{stem}.keypoints.bin", dtype="<f4", mode="c", shape=(rows, _KEYPOINT_COLUMNS)
                )
                descriptors = np.memmap(
                    f"{stem}.descriptors.bin",
                    dtype=self._raw_dtype,
                    mode="c",
                    shape=(rows, self.metadata.dim),
                )
            self._maps[shard] = (keypoints, descriptors)
        return self._maps[shard]

    def _rows(self, image_id: str, max_keypoints: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Memory-mapped keypoint (n, 4) and raw descriptor (n, D) rows of one image (none if skipped)."""
        if max_keypoints is not None and max_keypoints < 0:
            raise ValueError(f"max_keypoints must be non-negative or None, got {max_keypoints}")
        if image_id in self.skipped:
            return np.zeros((0, _KEYPOINT_COLUMNS), np.float32), np.zeros(
                (0, self.metadata.dim), self._raw_dtype
            )
        if image_id not in self._locations:
            raise KeyError(f"image id {image_id!r} is not in the feature store {self.root}")
        shard, offset, count = self._locations[image_id]
        if max_keypoints is not None:
            count = min(count, max_keypoints)
        keypoints, descriptors = self._shard_arrays(shard)
        return keypoints[offset : offset + count], descriptors[offset : offset + count]

    def get(self, image_id: str, max_keypoints: int | None = None) -> LocalFeatures:
        """Features of one image, its ``max_keypoints`` strongest only when given.

        Raises:
            KeyError: the id was never added to the store.
        """
        return self.get_many([image_id], max_keypoints)[0]

    def __getitem__(self, image_id: str) -> LocalFeatures:
        return self.get(image_id)

    def get_many(self, image_ids: Sequence[str], max_keypoints: int | None = None) -> list[LocalFeatures]:
        """Features of several images, in the order of ``image_ids``; their arrays are views of one block
        read and converted at once (per-image conversions cost more than the copy itself).

        Raises:
            KeyError: an id was never added to the store.
        """
        rows = [self._rows(image_id, max_keypoints) for image_id in image_ids]
        if not rows:
            return []
        keypoints = np.concatenate([image_keypoints for image_keypoints, _ in rows]).astype(
            np.float32, copy=False
        )
        descriptors = np.concatenate([image_descriptors for _, image_descriptors in rows])
        if not self.metadata.binary:
            descriptors = (
                torch.from_numpy(descriptors).float().numpy()
            )  # torch converts float16 faster than numpy
        bounds = np.cumsum([len(image_keypoints) for image_keypoints, _ in rows])[:-1]
        return [
            LocalFeatures(image_keypoints, image_descriptors, self._image_size(image_id))
            for image_id, image_keypoints, image_descriptors in zip(
                image_ids, np.split(keypoints, bounds), np.split(descriptors, bounds), strict=True
            )
        ]

    def _image_size(self, image_id: str) -> tuple[int, int]:
        return self._image_sizes.get(image_id, (0, 0))


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to end this process when its parent dies (Linux), and watch the parent otherwise, so a
    killed ``index.py`` leaves no worker behind."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) == 0 and os.getppid() == parent:
            return
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _start_worker(parent: int) -> None:
    """Worker processes share the CPUs (one OpenCV thread each) and die with their parent."""
    _die_with_parent(parent)
    cv2.setNumThreads(1)


def _extract_or_reason(extractor: LocalExtractor, path: str) -> LocalFeatures | str:
    """Features of one image, or why it could not be read."""
    try:
        return extractor.from_path(path)
    except ImageLoadError as error:
        return str(error)


def _extract_in_order(
    extractor: LocalExtractor, paths: Sequence[str], num_workers: int
) -> Iterator[LocalFeatures | str]:
    """Extraction results in the order of ``paths``, in ``num_workers`` processes (0, or an extractor that
    cannot run in workers: in this process)."""
    if num_workers == 0 or not extractor.runs_in_workers:
        for path in paths:
            yield _extract_or_reason(extractor, path)
        return
    context = multiprocessing.get_context("spawn")  # forking a process that runs torch threads can deadlock
    with ProcessPoolExecutor(
        num_workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
    ) as executor:
        in_flight: deque[Future[LocalFeatures | str]] = deque()
        for path in paths:
            in_flight.append(executor.submit(_extract_or_reason, extractor, path))
            if len(in_flight) >= num_workers * _JOBS_PER_WORKER:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()


def build_feature_store(
    root: str | Path,
    images: Mapping[str, str | Path],
    extractor: LocalExtractor,
    num_workers: int = 0,
    shard_size: int = 512,
    progress: bool = True,
    reuse: FeatureStore | None = None,
    reuse_ids: Collection[str] = (),
) -> FeatureStore:
    """Extract the features of every image once and write them to a store; resumes a partly built one.

    Images that cannot be read are counted, recorded as skipped and reported in one summary log line.

    Args:
        root: the store directory (created if missing).
        images: image id -> image path.
        extractor: the local feature extractor; queries must later use the same settings.
        num_workers: extraction processes (0 extracts in this process, as does an extractor that cannot run in
            worker processes, e.g. CNN patches).
        shard_size: images per shard file.
        progress: show a progress bar (the stage's time is logged either way).
        reuse, reuse_ids: a store of the same settings (e.g. the previous build's) and the images whose features
            are copied from it rather than extracted (unchanged files).

    Returns:
        The store, opened for reading.
    """
    if num_workers < 0:
        raise ValueError(f"num_workers must be non-negative, got {num_workers}")
    metadata = StoreMetadata.from_extractor(extractor)
    with FeatureStoreWriter(root, metadata, shard_size) as writer:
        pending = [
            (image_id, str(path)) for image_id, path in images.items() if image_id not in writer.completed_ids
        ]
        if reuse is not None and reuse_ids:
            differences = reuse.metadata.mismatches(metadata)
            if differences:
                raise ValueError(
                    f"cannot reuse {reuse.root}: it holds other features ({'; '.join(differences)})"
                )
            copied = set(reuse_ids) & set(reuse.ids)
            for image_id, _ in pending:
                if image_id in copied:
                    writer.add(image_id, reuse[image_id])
            pending = [(image_id, path) for image_id, path in pending if image_id not in copied]
        results = _extract_in_order(extractor, [path for _, path in pending], num_workers)
        skipped: list[str] = []
        with stage(f"{extractor.method} features", len(pending), enabled=progress) as bar:
            for (image_id, _), result in zip(pending, results, strict=True):
                if isinstance(result, str):
                    writer.skip(image_id, result)
                    skipped.append(result)
                else:
                    writer.add(image_id, result)
                bar.update(1)
    if skipped:
        logger.warning(
            "feature store %s: skipped %d of %d unreadable images (first: %s)",
            root,
            len(skipped),
            len(pending),
            skipped[0],
        )
    return FeatureStore(root, expected=metadata)


def local_feature_bytes_per_image(mean_keypoints: float, dim: int, binary: bool) -> float:
    """The feature store's bytes per image: per keypoint, 16 bytes of position, scale and angle plus the
    descriptor (``dim`` float16 values, or ``dim`` bytes of packed bits)."""
    if mean_keypoints < 0 or dim <= 0:
        raise ValueError(f"mean_keypoints must be non-negative and dim positive, got {mean_keypoints}, {dim}")
    return mean_keypoints * (KEYPOINT_BYTES + (dim if binary else 2 * dim))
