"""An on-disk store of database local features, extracted once and memory-mapped for re-ranking.

Layout of a store directory:

- ``meta.json``: :class:`StoreMetadata` (method, keypoint budget, image side, descriptor width and dtype).
- ``shard_NNNNN.keypoints.bin``: raw little-endian float32 rows (x, y, scale, angle) of every image in the
  shard, one image after the other, strongest keypoint first. Float32 because float16 has a 2-pixel step
  beyond 2048 pixels; keypoints are 16 bytes against 256 for a float16 SIFT descriptor.
- ``shard_NNNNN.descriptors.bin``: raw rows of the descriptors in the same order, float16 for float
  descriptors (RootSIFT loses nothing that matching can see) and uint8 for packed binary descriptors.

A compact store (``StoreMetadata.codec`` set, ``local_features=compact``) keeps the strongest
``CompactSettings.stored_keypoints`` per image at 6 + B/8 bytes each: keypoints as uint16 (x, y) in
1/65535 of the image's longest side (scale and angle read back as 0), and descriptors as Hamming-embedding code
rows (:mod:`retrieval.local.hamming`), whose embedding ``codec.npz`` is trained on a sample of the images before
the first shard and saved with the store; a store built with one embedding refuses to be extended with another.
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
from itertools import repeat
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import cv2
import numpy as np
import torch

from retrieval.images import ImageLoadError
from retrieval.local.features import LocalExtractor, LocalFeatures
from retrieval.local.hamming import CompactSettings, HammingEmbedding
from retrieval.progress import stage

logger = logging.getLogger(__name__)

STORE_FORMAT_VERSION = 1
METADATA_FILE = "meta.json"
CODEC_FILE = "codec.npz"
DESCRIPTOR_DTYPES: tuple[str, ...] = ("float16", "uint8")
# Keypoint rows: float32 (x, y, scale, angle) in pixels, or uint16 (x, y) in 1/65535 of the longest side.
KEYPOINT_COLUMNS: dict[str, int] = {"float32": 4, "uint16": 2}
_KEYPOINT_RAW_DTYPES = {"float32": "<f4", "uint16": "<u2"}
_POSITION_STEPS = 65535
# Bytes of one keypoint in a store: x, y, scale and angle in float32.
KEYPOINT_BYTES = 4 * KEYPOINT_COLUMNS["float32"]
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
        descriptor_dtype: "float16" (float descriptors) or "uint8" (packed bits, or code rows).
        format_version: layout version of the files.
        keypoint_dtype: "float32" rows (x, y, scale, angle) or "uint16" rows (x, y) of a compact store.
        codec: the compact store's embedding settings (a :class:`CompactSettings` as a dict), None for plain
            features.
        query_max_keypoints: keypoints a query is described with, when it differs from ``max_keypoints``
            (a compact store keeps fewer per database image than a query has).
        patch_selection: how CNN patches were ranked ("norm" or "attention"); None for keypoints.
    """

    method: str
    max_keypoints: int
    max_side: int
    dim: int
    descriptor_dtype: str
    format_version: int = STORE_FORMAT_VERSION
    keypoint_dtype: str = "float32"
    codec: dict[str, int] | None = None
    query_max_keypoints: int | None = None
    patch_selection: str | None = None

    def __post_init__(self) -> None:
        if self.descriptor_dtype not in DESCRIPTOR_DTYPES:
            raise ValueError(
                f"descriptor_dtype must be one of {DESCRIPTOR_DTYPES}, got {self.descriptor_dtype!r}"
            )
        if self.keypoint_dtype not in KEYPOINT_COLUMNS:
            raise ValueError(
                f"keypoint_dtype must be one of {tuple(KEYPOINT_COLUMNS)}, got {self.keypoint_dtype!r}"
            )
        if self.dim <= 0 or self.max_keypoints <= 0 or self.max_side <= 0:
            raise ValueError(
                f"dim, max_keypoints and max_side must be positive, got {self.dim}, {self.max_keypoints}, "
                f"{self.max_side}"
            )

    @classmethod
    def from_extractor(cls, extractor: LocalExtractor) -> StoreMetadata:
        """The metadata of a store built with ``extractor`` (compact when its ``compact`` settings are set)."""
        compact = extractor.compact
        if compact is not None:
            return cls(
                method=extractor.method,
                max_keypoints=min(compact.stored_keypoints, extractor.max_keypoints),
                max_side=extractor.max_side,
                dim=compact.code_bytes,
                descriptor_dtype="uint8",
                keypoint_dtype="uint16",
                codec=asdict(compact),
                query_max_keypoints=extractor.max_keypoints,
                patch_selection=extractor.selection,
            )
        return cls(
            method=extractor.method,
            max_keypoints=extractor.max_keypoints,
            max_side=extractor.max_side,
            dim=extractor.descriptor_dim,
            descriptor_dtype="uint8" if extractor.binary else "float16",
            patch_selection=extractor.selection,
        )

    @property
    def binary(self) -> bool:
        """Whether descriptors are packed bits (or code rows)."""
        return self.descriptor_dtype == "uint8"

    @property
    def compact(self) -> CompactSettings | None:
        """The compact store's settings, None for plain features."""
        return None if self.codec is None else CompactSettings(**self.codec)

    @property
    def bytes_per_keypoint(self) -> int:
        """Bytes of one stored keypoint and its descriptor."""
        keypoint = (
            np.dtype(_KEYPOINT_RAW_DTYPES[self.keypoint_dtype]).itemsize
            * KEYPOINT_COLUMNS[self.keypoint_dtype]
        )
        return keypoint + self.dim * (1 if self.binary else 2)

    def mismatches(self, other: StoreMetadata) -> list[str]:
        """Human-readable differences ``field: self value != other value``; empty when they agree."""
        mine, theirs = asdict(self), asdict(other)
        return [f"{name}: {mine[name]!r} != {theirs[name]!r}" for name in mine if mine[name] != theirs[name]]


def encode_positions(keypoints: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(N, 2) uint16 x, y of keypoints (N, 4+) in 1/65535 of the image's longest side (rounded, clipped)."""
    longest = max(image_size[0], image_size[1], 1)
    steps = np.rint(keypoints[:, :2] * (_POSITION_STEPS / longest))
    return np.clip(steps, 0, _POSITION_STEPS).astype("<u2")


def decode_positions(positions: np.ndarray, longest_sides: np.ndarray) -> np.ndarray:
    """(N, 4) float32 keypoints (x, y, scale 0, angle 0) in pixels from uint16 positions (N, 2) and each
    row's image longest side (N,)."""
    keypoints = np.zeros((len(positions), 4), dtype=np.float32)
    keypoints[:, :2] = positions * (np.asarray(longest_sides, np.float32)[:, None] / _POSITION_STEPS)
    return keypoints


def _store_codec(root: Path, codec: HammingEmbedding | None) -> HammingEmbedding:
    """The embedding of the compact store at ``root``: the saved one (``codec``, if given, must be it), or
    ``codec`` saved as the store's."""
    path = root / CODEC_FILE
    if path.is_file():
        stored = HammingEmbedding.load(path)
        if codec is not None and codec.fingerprint != stored.fingerprint:
            raise ValueError(
                f"{root} was built with Hamming embedding {stored.fingerprint}, not {codec.fingerprint}: "
                "codes of two embeddings cannot be matched together; build a new store"
            )
        return stored
    if codec is None:
        raise ValueError(
            f"{root} is a compact store without its {CODEC_FILE}: give the embedding to build it with"
        )
    codec.save(path)
    return codec


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

    def __init__(
        self,
        root: str | Path,
        metadata: StoreMetadata,
        shard_size: int = 512,
        codec: HammingEmbedding | None = None,
    ):
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
        self.codec = _store_codec(self.root, codec) if metadata.codec is not None else None

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

    def _encoded(self, features: LocalFeatures) -> LocalFeatures:
        """A compact store's code rows of the strongest features (code rows read from a store of the same
        embedding pass as they are)."""
        if self.codec is None or (features.binary and features.dim == self.metadata.dim):
            return features
        if features.binary or features.dim != self.codec.vocabulary.dim:
            raise ValueError(
                f"a compact store encodes float descriptors of {self.codec.vocabulary.dim} dimensions, got "
                f"{features.descriptors.dtype} with {features.dim}"
            )
        strongest = features.top(self.metadata.max_keypoints)
        return LocalFeatures(
            strongest.keypoints, self.codec.codes(strongest.descriptors), strongest.image_size
        )

    def add(self, image_id: str, features: LocalFeatures) -> None:
        """Append the features of one image (strongest first, as extractors return them); a compact store
        encodes them."""
        self._check_new(image_id)
        features = self._encoded(features)
        if features.dim != self.metadata.dim or features.binary != self.metadata.binary:
            raise ValueError(
                f"features of {image_id!r} are {features.descriptors.dtype} with {features.dim} dimensions, "
                f"the store holds {self.metadata.descriptor_dtype} with {self.metadata.dim}"
            )
        keypoint_file, descriptor_file = self._open_shard()
        if self.metadata.keypoint_dtype == "uint16":
            keypoint_rows = encode_positions(features.keypoints, features.image_size)
        else:
            keypoint_rows = np.ascontiguousarray(features.keypoints, dtype="<f4")
        keypoint_file.write(keypoint_rows.tobytes())
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
            ids = index["ids"]
            if not len(ids) == len(index["offsets"]) == len(index["counts"]) == len(index["image_sizes"]):
                raise ValueError(
                    f"{self.root}: the index of shard {shard} is inconsistent; rebuild the store"
                )
            # zip and map run in C: a million images open in a fraction of a second
            rows = zip(repeat(shard), index["offsets"], index["counts"], strict=False)  # repeat() never ends
            self._locations.update(zip(ids, rows, strict=True))
            self._image_sizes.update(zip(ids, map(tuple, index["image_sizes"]), strict=True))
            self._shard_rows[shard] = sum(index["counts"])
            self.skipped.update(index["skipped"])
        self._maps: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._raw_dtype = np.dtype("u1" if self.metadata.binary else "<f2")
        self._keypoint_dtype = np.dtype(_KEYPOINT_RAW_DTYPES[self.metadata.keypoint_dtype])
        self._keypoint_columns = KEYPOINT_COLUMNS[self.metadata.keypoint_dtype]
        self._codec: HammingEmbedding | None = None

    @property
    def codec(self) -> HammingEmbedding:
        """The Hamming embedding of a compact store's codes.

        Raises:
            ValueError: the store is not compact.
        """
        if self.metadata.codec is None:
            raise ValueError(f"{self.root} holds {self.metadata.method} descriptors, not compact codes")
        if self._codec is None:
            self._codec = HammingEmbedding.load(self.root / CODEC_FILE)
        return self._codec

    @property
    def ids(self) -> list[str]:
        """Ids of the images with features (skipped ones excluded), in build order."""
        return list(self._locations)

    def __len__(self) -> int:
        return len(self._locations) + len(self.skipped)

    def bytes_per_image(self) -> float:
        """Mean bytes of features (keypoints and descriptors) per image with features."""
        stored = sum(row_count * self.metadata.bytes_per_keypoint for row_count in self._shard_rows.values())
        return stored / max(1, len(self._locations))

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._locations or image_id in self.skipped

    def _shard_arrays(self, shard: int) -> tuple[np.ndarray, np.ndarray]:
        if shard not in self._maps:
            rows = self._shard_rows[shard]
            stem = _shard_stem(self.root, shard)
            if rows == 0:  # an empty file cannot be memory-mapped
                keypoints = np.zeros((0, self._keypoint_columns), self._keypoint_dtype)
                descriptors = np.zeros((0, self.metadata.dim), self._raw_dtype)
            else:
                # Copy-on-write maps: the files stay read-only and the arrays writable, as torch requires.
                keypoints = np.memmap(
                    f"{stem}.keypoints.bin",
                    dtype=self._keypoint_dtype,
                    mode="c",
                    shape=(rows, self._keypoint_columns),
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
            return np.zeros((0, self._keypoint_columns), self._keypoint_dtype), np.zeros(
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
        keypoints = np.concatenate([image_keypoints for image_keypoints, _ in rows])
        if self.metadata.keypoint_dtype == "uint16":
            longest = [max(self._image_size(image_id)) for image_id in image_ids]
            keypoints = decode_positions(keypoints, np.repeat(longest, [len(kps) for kps, _ in rows]))
        keypoints = keypoints.astype(np.float32, copy=False)
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


def train_codec(
    extractor: LocalExtractor, paths: Sequence[str], settings: CompactSettings, num_workers: int = 0
) -> HammingEmbedding:
    """A Hamming embedding trained on the features of a random sample of ``settings.training_images`` of
    ``paths``: an equal share of ``settings.max_training_descriptors`` random descriptors from each image."""
    rng = np.random.default_rng(settings.seed)
    sample = sorted(rng.choice(len(paths), min(len(paths), settings.training_images), replace=False).tolist())
    per_image = -(-settings.max_training_descriptors // max(1, len(sample)))
    chunks = []
    results = _extract_in_order(extractor, [paths[index] for index in sample], num_workers)
    with stage("Hamming embedding sample", len(sample)) as bar:
        for result in results:
            if not isinstance(result, str) and len(result):
                keep = rng.choice(len(result), min(len(result), per_image), replace=False)
                chunks.append(result.descriptors[np.sort(keep)])
            bar.update(1)
    if not chunks:
        raise ValueError("cannot train a Hamming embedding: no sampled image has local features")
    return HammingEmbedding.train(np.concatenate(chunks), settings)


def build_feature_store(
    root: str | Path,
    images: Mapping[str, str | Path],
    extractor: LocalExtractor,
    num_workers: int = 0,
    shard_size: int = 512,
    progress: bool = True,
    reuse: FeatureStore | None = None,
    reuse_ids: Collection[str] = (),
    codec: HammingEmbedding | None = None,
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
        codec: the Hamming embedding a compact store encodes with (e.g. a collection's, to calibrate on a
            benchmark); by default the store's own, else ``reuse``'s, else one trained on a sample of ``images``.
        reuse, reuse_ids: a store of the same settings (e.g. the previous build's) and the images whose features
            are copied from it rather than extracted (unchanged files).

    Returns:
        The store, opened for reading.
    """
    if num_workers < 0:
        raise ValueError(f"num_workers must be non-negative, got {num_workers}")
    metadata = StoreMetadata.from_extractor(extractor)
    if extractor.compact is not None and codec is None and not (Path(root) / CODEC_FILE).is_file():
        if reuse is not None and not reuse.metadata.mismatches(metadata):
            codec = reuse.codec  # codes of the copied images stay valid
        else:
            codec = train_codec(
                extractor, [str(path) for path in images.values()], extractor.compact, num_workers
            )
    with FeatureStoreWriter(root, metadata, shard_size, codec) as writer:
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
