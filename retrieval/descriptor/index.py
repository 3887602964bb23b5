"""Nearest-neighbour search over global descriptors.

:class:`DescriptorIndex` wraps a faiss index (exact ``flat``, compressed ``ivfpq`` or graph-based ``hnsw``) and
keeps the string id of every vector next to it, so that a search answers with image ids rather than row numbers.
Vectors are added in bounded-memory shards, the index moves to the GPU when the installed faiss can, and
:meth:`DescriptorIndex.save` / :meth:`DescriptorIndex.load` write the faiss file, a JSON metadata file and a
plain-text id file (one id a line: about as small as the ids themselves, fine for millions of images).

All kinds use faiss's ``METRIC_INNER_PRODUCT``. On L2-normalised rows it ranks exactly as L2 does
(``|q - x|^2 = 2 - 2 q.x``), but its scores are the cosine similarities themselves, the same numbers as
:func:`exact_search` and what query expansion weights with, so no kind needs its scores converted. For IVF-PQ
faiss then trains the coarse quantizer with spherical k-means, and the PQ code of the residual ``x - c`` gives the
estimate ``q.c + q.r_hat``, which is unbiased for ``q.x``; an L2 index would add the PQ reconstruction error
``|x_hat|^2 - 1`` to every distance instead.

:func:`exact_search` is the plain chunked matrix product + top-k in torch, on any device: the reference for the
approximate kinds and the fastest exact search on a GPU.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import faiss
import numpy as np
import torch

Device = Literal["auto", "cpu", "gpu"]

INDEX_FILE = "index.faiss"
METADATA_FILE = "index.json"
IDS_FILE = "ids.txt"
METADATA_FORMAT_VERSION = 1

# faiss's GPU brute-force k-selection handles at most this many neighbours per query.
GPU_MAX_K = 2048


@dataclass(frozen=True)
class FlatParameters:
    """Exact inner-product search (``IndexFlatIP``): no training, no approximation."""

    kind: ClassVar[str] = "flat"

    def sized_for(self, num_vectors: int) -> FlatParameters:
        """Any number of vectors will do."""
        return self


# faiss index_factory suffixes of the re-scoring stage of an ivfpq index.
_REFINE_CODES = {"none": "", "fp16": ",Refine(SQfp16)", "sq8": ",Refine(SQ8)"}


@dataclass(frozen=True)
class IVFPQParameters:
    """Inverted file over ``nlist`` spherical k-means cells, residuals product-quantised into ``m`` codes of
    ``nbits`` bits each; a search visits the ``nprobe`` nearest cells. Trained on at most
    ``training_sample_size`` vectors drawn at random from the first :meth:`DescriptorIndex.add`, unless
    :meth:`DescriptorIndex.train` was called before. ``nlist=None`` chooses it from the collection size
    (:meth:`sized_for`).

    ``refine="fp16"`` (or ``"sq8"``) also keeps every vector in float16 (8-bit scalar codes): a search takes the
    ``refine_k_factor``·k best by PQ and re-scores them with those, which recovers most of what the product
    quantiser loses (faiss ``IndexRefine``; ``benchmarks/results/scale_cpu.md``: recall@100 0.56 → 0.93 at
    100k images) for 2·D (D) more bytes per image; CPU only."""

    kind: ClassVar[str] = "ivfpq"
    nlist: int | None = 1024
    m: int = 64
    nbits: int = 8
    nprobe: int = 16
    training_sample_size: int = 262_144
    refine: str = "none"
    refine_k_factor: int = 4

    def __post_init__(self) -> None:
        if self.refine not in _REFINE_CODES:
            raise ValueError(f"refine must be one of {tuple(_REFINE_CODES)}, got {self.refine!r}")
        for name in ("m", "nprobe", "training_sample_size", "refine_k_factor"):
            _check_positive(name, getattr(self, name))
        if self.nlist is not None:
            _check_positive("nlist", self.nlist)
            if self.nprobe > self.nlist:
                raise ValueError(f"nprobe={self.nprobe} exceeds nlist={self.nlist}")
        if not 1 <= self.nbits <= 16:
            raise ValueError(f"nbits must be in [1, 16], got {self.nbits}")

    @property
    def minimum_training_size(self) -> int:
        """Vectors needed to train: one per coarse cell and one per PQ centroid."""
        return max(self.nlist or 1, 2**self.nbits)

    def sized_for(self, num_vectors: int) -> IVFPQParameters:
        """These parameters for a collection of ``num_vectors``: an unset ``nlist`` becomes the power of two
        nearest 4·√N (faiss' guideline: 4·√N to 16·√N cells), capped so that every cell trains on 39 vectors
        or more, and ``nprobe`` at most ``nlist``.

        Raises:
            ValueError: too few vectors to train, with what to use instead; said before any extraction.
        """
        nlist = self.nlist
        if nlist is None:
            nearest_power = 2 ** max(0, round(math.log2(4 * math.sqrt(max(num_vectors, 1)))))
            nlist = min(nearest_power, max(1, num_vectors // 39))
        sized = dataclasses.replace(self, nlist=nlist, nprobe=min(self.nprobe, nlist))
        if num_vectors < sized.minimum_training_size:
            advice = "use global_index=flat (exact search, fast up to a few million images)"
            if self.nlist is not None and num_vectors >= 2**self.nbits:
                advice += " or global_index.nlist=null (chosen from the collection size)"
            raise ValueError(
                f"ivfpq with nlist={nlist}, nbits={self.nbits} needs at least {sized.minimum_training_size} "
                f"training vectors, and this collection has {num_vectors} images: {advice}"
            )
        return sized


@dataclass(frozen=True)
class HNSWParameters:
    """Hierarchical navigable small-world graph over the full vectors: ``M`` links per node, a candidate list of
    ``ef_construction`` while building and ``ef_search`` while searching (faiss uses at least ``k``)."""

    kind: ClassVar[str] = "hnsw"
    M: int = 32
    ef_search: int = 128
    ef_construction: int = 200

    def __post_init__(self) -> None:
        for name in ("M", "ef_search", "ef_construction"):
            _check_positive(name, getattr(self, name))

    def sized_for(self, num_vectors: int) -> HNSWParameters:
        """Any number of vectors will do."""
        return self


IndexParameters = FlatParameters | IVFPQParameters | HNSWParameters
_PARAMETER_CLASSES: dict[str, type[IndexParameters]] = {
    "flat": FlatParameters,
    "ivfpq": IVFPQParameters,
    "hnsw": HNSWParameters,
}


def _check_positive(name: str, value: int) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def make_parameters(kind: str, **parameters: Any) -> IndexParameters:
    """Build the parameters of an index ``kind`` ("flat", "ivfpq", "hnsw") from keyword arguments."""
    if kind not in _PARAMETER_CLASSES:
        raise ValueError(f"unknown index kind {kind!r}; expected one of {sorted(_PARAMETER_CLASSES)}")
    parameter_class = _PARAMETER_CLASSES[kind]
    known = {field.name for field in dataclasses.fields(parameter_class)}
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise ValueError(f"unknown parameters {unknown} for index kind {kind!r}; it takes {sorted(known)}")
    return parameter_class(**parameters)


def faiss_gpu_available() -> bool:
    """Whether the installed faiss was built with GPU support and sees at least one GPU."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class SearchResult(NamedTuple):
    """Neighbours of ``Q`` queries, best first.

    ``scores`` (Q, k) float32 inner products, ``-inf`` where there is no neighbour; ``indices`` (Q, k) int64
    insertion rows, ``-1`` where there is no neighbour; ``ids`` the image ids of the real neighbours of each
    query (padding dropped, so a list can be shorter than ``k``).
    """

    scores: np.ndarray
    indices: np.ndarray
    ids: list[list[str]]


class DescriptorIndex:
    """A faiss index of ``dim``-dimensional descriptors, each stored with its image id.

    ``descriptor_id`` names what produced the vectors (model, checkpoint, extraction settings); :meth:`load`
    checks it so that queries are never searched against descriptors of another model. ``device="auto"`` puts
    ``flat`` and ``ivfpq`` indexes on GPU 0 when :func:`faiss_gpu_available`; ``"gpu"`` insists on it.
    Use :func:`create_index` to build one from flat keyword arguments (one Hydra YAML per index).
    """

    def __init__(
        self,
        dim: int,
        descriptor_id: str,
        parameters: IndexParameters | None = None,
        device: Device = "auto",
    ) -> None:
        _check_positive("dim", dim)
        self.dim = dim
        self.descriptor_id = descriptor_id
        self.parameters: IndexParameters = parameters if parameters is not None else FlatParameters()
        if isinstance(self.parameters, IVFPQParameters):
            if dim % self.parameters.m != 0:
                raise ValueError(f"m={self.parameters.m} sub-quantizers must divide dim={dim}")
            if self.parameters.nlist is None:
                raise ValueError(
                    "nlist=None is chosen from the collection size: pass parameters.sized_for(N)"
                )
        self._ids: list[str] = []
        self._read_only = False
        self._gpu_resources: Any = None
        self._index = self._place(self._new_faiss_index(), device)
        self._apply_search_parameters()

    # ------------------------------------------------------------------ construction and placement

    def _new_faiss_index(self) -> Any:
        parameters = self.parameters
        if isinstance(parameters, IVFPQParameters):
            description = (
                f"IVF{parameters.nlist},PQ{parameters.m}x{parameters.nbits}{_REFINE_CODES[parameters.refine]}"
            )
        elif isinstance(parameters, HNSWParameters):
            description = f"HNSW{parameters.M}"
        else:
            description = "Flat"
        index: Any = faiss.index_factory(self.dim, description, faiss.METRIC_INNER_PRODUCT)
        if isinstance(parameters, IVFPQParameters):
            # The factory turns on polysemous training (simulated annealing over the PQ codes, seconds per
            # sub-quantizer), which only serves Hamming pre-filtering; this index never uses that.
            ivfpq: Any = faiss.downcast_index(faiss.extract_index_ivf(index))
            ivfpq.do_polysemous_training = False
        elif isinstance(parameters, HNSWParameters):
            index.hnsw.efConstruction = parameters.ef_construction
        return index

    def _place(self, cpu_index: Any, device: Device) -> Any:
        """Return ``cpu_index`` itself or its copy on GPU 0, as ``device`` asks and the machine allows."""
        if device not in ("auto", "cpu", "gpu"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', got {device!r}")
        supports_gpu = not isinstance(self.parameters, HNSWParameters) and not (
            isinstance(self.parameters, IVFPQParameters) and self.parameters.refine != "none"
        )
        if device == "gpu":
            if not faiss_gpu_available():
                raise ValueError("device='gpu' but the installed faiss has no GPU support or sees no GPU")
            if not supports_gpu:
                raise ValueError(
                    "faiss has no GPU implementation of HNSW or of a refined ivfpq; use device='cpu' or 'auto'"
                )
        if device == "cpu" or not supports_gpu or not faiss_gpu_available():
            return cpu_index
        self._gpu_resources = faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(self._gpu_resources, 0, cpu_index)

    @property
    def on_gpu(self) -> bool:
        return self._gpu_resources is not None

    def _apply_search_parameters(self) -> None:
        parameters = self.parameters
        if isinstance(parameters, IVFPQParameters):
            if self.on_gpu:
                faiss.GpuParameterSpace().set_index_parameter(self._index, "nprobe", parameters.nprobe)
            else:
                faiss.extract_index_ivf(self._index).nprobe = parameters.nprobe
            if parameters.refine != "none":
                refined: Any = faiss.downcast_index(self._index)
                refined.k_factor = parameters.refine_k_factor
        elif isinstance(parameters, HNSWParameters):
            self._index.hnsw.efSearch = parameters.ef_search

    def set_search_parameters(self, *, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change the speed/recall trade-off of an existing index: ``nprobe`` for ivfpq, ``ef_search`` for hnsw."""
        if nprobe is not None:
            if not isinstance(self.parameters, IVFPQParameters):
                raise ValueError(f"nprobe applies to ivfpq indexes, this one is {self.kind!r}")
            self.parameters = dataclasses.replace(self.parameters, nprobe=nprobe)
        if ef_search is not None:
            if not isinstance(self.parameters, HNSWParameters):
                raise ValueError(f"ef_search applies to hnsw indexes, this one is {self.kind!r}")
            self.parameters = dataclasses.replace(self.parameters, ef_search=ef_search)
        self._apply_search_parameters()

    # ------------------------------------------------------------------ properties

    @property
    def kind(self) -> str:
        return self.parameters.kind

    @property
    def ids(self) -> Sequence[str]:
        """Image ids in insertion order: ``ids[i]`` belongs to row ``i`` of :attr:`SearchResult.indices`."""
        return self._ids

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __repr__(self) -> str:
        return (
            f"DescriptorIndex(dim={self.dim}, descriptor_id={self.descriptor_id!r}, parameters={self.parameters}, "
            f"count={len(self)}, on_gpu={self.on_gpu})"
        )

    # ------------------------------------------------------------------ training and adding

    def train(self, embeddings: np.ndarray, seed: int = 0) -> None:
        """Train an ivfpq index on ``embeddings`` (N, D), or on ``training_sample_size`` rows of it drawn at
        random. Indexes of other kinds need no training and ignore the call."""
        if not isinstance(self.parameters, IVFPQParameters):
            return
        if len(self) > 0:
            raise ValueError(f"cannot train an index that already holds {len(self)} vectors")
        self._check_embeddings(embeddings, "training embeddings")
        needed = self.parameters.minimum_training_size
        if len(embeddings) < needed:
            raise ValueError(
                f"ivfpq with nlist={self.parameters.nlist}, nbits={self.parameters.nbits} needs at least "
                f"{needed} training vectors, got {len(embeddings)}"
            )
        sample_size = min(len(embeddings), self.parameters.training_sample_size)
        rows = np.sort(np.random.default_rng(seed).choice(len(embeddings), size=sample_size, replace=False))
        sample = np.ascontiguousarray(embeddings[rows], dtype=np.float32)
        self._check_finite(sample, "training embeddings")
        self._index.train(sample)

    def add(self, embeddings: np.ndarray, ids: Sequence[str], shard_size: int = 65_536) -> None:
        """Add ``embeddings`` (N, D) with their ``ids`` (N strings without line breaks), ``shard_size`` rows at a
        time, so that a memory-mapped array is never copied whole. An untrained ivfpq index is first trained on a
        sample of ``embeddings``. A shard that fails validation is not added; the shards before it stay."""
        _check_positive("shard_size", shard_size)
        if self._read_only:
            raise ValueError(
                "this index was loaded memory-mapped (read-only); load it with mmap=False to add"
            )
        self._check_embeddings(embeddings, "embeddings")
        if len(ids) != len(embeddings):
            raise ValueError(f"got {len(embeddings)} embeddings but {len(ids)} ids")
        if not self.is_trained:
            self.train(embeddings)
        for start in range(0, len(embeddings), shard_size):
            stop = min(start + shard_size, len(embeddings))
            shard = np.ascontiguousarray(embeddings[start:stop], dtype=np.float32)
            self._check_finite(shard, f"embeddings rows {start}:{stop}")
            shard_ids = [str(image_id) for image_id in ids[start:stop]]
            for image_id in shard_ids:
                if "\n" in image_id or "\r" in image_id:
                    raise ValueError(f"image id {image_id!r} contains a line break")
            self._index.add(shard)
            self._ids.extend(shard_ids)

    def add_shards(
        self, shards: Iterable[tuple[np.ndarray, Sequence[str]]], shard_size: int = 65_536
    ) -> None:
        """Add ``(embeddings (n, D), ids)`` pairs one after another, e.g. from a generator that reads one
        extraction file at a time; an untrained ivfpq index is trained on the first shard."""
        for embeddings, ids in shards:
            self.add(embeddings, ids, shard_size=shard_size)

    # ------------------------------------------------------------------ searching

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        """The ``k`` highest inner products of each row of ``queries`` (Q, D); see :class:`SearchResult`."""
        _check_positive("k", k)
        if self.on_gpu and k > GPU_MAX_K:
            raise ValueError(f"k={k} exceeds the {GPU_MAX_K} neighbours faiss can select on the GPU")
        self._check_embeddings(queries, "queries")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        self._check_finite(queries, "queries")
        if len(self) == 0:
            scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
            indices = np.full((len(queries), k), -1, dtype=np.int64)
        else:
            scores, indices = self._index.search(queries, k)
            scores = scores.astype(np.float32, copy=False)
            indices = indices.astype(np.int64, copy=False)
            scores[indices < 0] = -np.inf
        return SearchResult(scores, indices, self.ids_of(indices))

    def ids_of(self, indices: np.ndarray) -> list[list[str]]:
        """Image ids of ``indices`` (Q, k) rows, ``-1`` entries dropped."""
        return [[self._ids[row] for row in query_rows if row >= 0] for query_rows in indices.tolist()]

    # ------------------------------------------------------------------ persistence

    def save(self, directory: str | Path) -> None:
        """Write ``index.faiss``, ``index.json`` (dimension, kind, parameters, descriptor id, count) and
        ``ids.txt`` (one id a line) into ``directory``, which is created if needed."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cpu_index = faiss.index_gpu_to_cpu(self._index) if self.on_gpu else self._index
        faiss.write_index(cpu_index, str(directory / INDEX_FILE))
        with open(directory / IDS_FILE, "w", encoding="utf-8", newline="\n") as ids_file:
            for image_id in self._ids:
                ids_file.write(image_id)
                ids_file.write("\n")
        metadata = {
            "format_version": METADATA_FORMAT_VERSION,
            "dimension": self.dim,
            "kind": self.kind,
            "parameters": dataclasses.asdict(self.parameters),
            "descriptor_id": self.descriptor_id,
            "count": len(self),
            "index_file": INDEX_FILE,
            "ids_file": IDS_FILE,
        }
        (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(
        cls,
        directory: str | Path,
        expected_dim: int | None = None,
        expected_descriptor_id: str | None = None,
        device: Device = "auto",
        mmap: bool = False,
    ) -> DescriptorIndex:
        """Read an index written by :meth:`save`, refusing one built for another dimension or descriptor id.

        ``mmap``: map the file instead of reading it (faiss' ``IO_FLAG_MMAP``: an IVF index's inverted lists stay
        on disk and come through the page cache, so a large collection opens at once and shares its pages
        between processes); such an index is read-only.
        """
        directory = Path(directory)
        metadata_path = directory / METADATA_FILE
        if not metadata_path.is_file():
            raise ValueError(f"{directory} holds no {METADATA_FILE}; not a saved DescriptorIndex")
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
        if metadata.get("format_version") != METADATA_FORMAT_VERSION:
            raise ValueError(
                f"{metadata_path}: format_version {metadata.get('format_version')!r}, "
                f"this code reads {METADATA_FORMAT_VERSION}"
            )
        if expected_dim is not None and metadata["dimension"] != expected_dim:
            raise ValueError(
                f"index in {directory} holds {metadata['dimension']}-D descriptors, expected {expected_dim}-D"
            )
        if expected_descriptor_id is not None and metadata["descriptor_id"] != expected_descriptor_id:
            raise ValueError(
                f"index in {directory} was built from descriptor_id {metadata['descriptor_id']!r}, "
                f"expected {expected_descriptor_id!r}"
            )
        parameters = make_parameters(metadata["kind"], **metadata["parameters"])
        ids = (directory / metadata["ids_file"]).read_text(encoding="utf-8").split("\n")[:-1]
        cpu_index = faiss.read_index(
            str(directory / metadata["index_file"]), faiss.IO_FLAG_MMAP if mmap else 0
        )
        if not (metadata["count"] == len(ids) == cpu_index.ntotal) or cpu_index.d != metadata["dimension"]:
            raise ValueError(
                f"{directory} is inconsistent: metadata says {metadata['count']} vectors of dimension "
                f"{metadata['dimension']}, {IDS_FILE} holds {len(ids)} ids and {INDEX_FILE} {cpu_index.ntotal} "
                f"vectors of dimension {cpu_index.d}"
            )
        index = cls(metadata["dimension"], metadata["descriptor_id"], parameters, device="cpu")
        index._ids = ids
        index._read_only = mmap
        index._index = index._place(cpu_index, device)
        index._apply_search_parameters()
        return index

    # ------------------------------------------------------------------ validation

    def _check_embeddings(self, embeddings: np.ndarray, name: str) -> None:
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (N, {self.dim}), got {tuple(embeddings.shape)}")

    @staticmethod
    def _check_finite(array: np.ndarray, name: str) -> None:
        if not np.isfinite(array).all():
            raise ValueError(f"{name} contain NaN or infinite values")


def create_index(
    kind: str,
    dim: int,
    descriptor_id: str,
    device: Device = "auto",
    num_vectors: int | None = None,
    **parameters: Any,
) -> DescriptorIndex:
    """Build an empty :class:`DescriptorIndex` from flat keyword arguments, as a Hydra config gives them, e.g.
    ``create_index("ivfpq", 512, "gem-r101@1024px", nlist=4096, m=64, nbits=8, nprobe=32)``. With
    ``num_vectors`` (the collection size) the parameters are sized for it and refused if it is too small to
    train them — before anything is extracted."""
    chosen = make_parameters(kind, **parameters)
    if num_vectors is not None:
        chosen = chosen.sized_for(num_vectors)
    return DescriptorIndex(dim, descriptor_id, chosen, device=device)


def exact_search(
    queries: torch.Tensor,
    database: torch.Tensor,
    k: int,
    *,
    query_chunk_size: int = 1024,
    database_chunk_size: int = 65_536,
    compute_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``k`` inner products of ``queries`` (Q, D) against ``database`` (N, D), on ``queries``' device.

    The score matrix is never materialised: it is computed ``query_chunk_size`` x ``database_chunk_size`` at a
    time (database chunks are moved to the queries' device as they are needed, so the database may stay on the
    CPU) and the per-chunk top-k are merged. ``compute_dtype`` (e.g. ``torch.bfloat16`` on a GPU) sets the dtype
    of the products; by default the queries' dtype.

    Returns:
        scores (Q, k) float32 and indices (Q, k) int64 into ``database``, best first.
    """
    if queries.ndim != 2 or database.ndim != 2 or queries.shape[1] != database.shape[1]:
        raise ValueError(
            f"queries and database must be (Q, D) and (N, D), got {tuple(queries.shape)} and {tuple(database.shape)}"
        )
    _check_positive("k", k)
    _check_positive("query_chunk_size", query_chunk_size)
    _check_positive("database_chunk_size", database_chunk_size)
    if k > len(database):
        raise ValueError(f"k={k} exceeds the database size {len(database)}")
    device = queries.device
    dtype = compute_dtype if compute_dtype is not None else queries.dtype
    all_scores, all_indices = [], []
    for query_start in range(0, len(queries), query_chunk_size):
        query_chunk = queries[query_start : query_start + query_chunk_size].to(dtype)
        candidate_scores, candidate_indices = [], []
        for database_start in range(0, len(database), database_chunk_size):
            database_chunk = database[database_start : database_start + database_chunk_size].to(device, dtype)
            chunk_scores, chunk_indices = torch.topk(
                query_chunk @ database_chunk.T, min(k, len(database_chunk)), dim=1
            )
            candidate_scores.append(chunk_scores.float())
            candidate_indices.append(chunk_indices + database_start)
        merged_scores, positions = torch.topk(torch.cat(candidate_scores, dim=1), k, dim=1)
        all_scores.append(merged_scores)
        all_indices.append(torch.gather(torch.cat(candidate_indices, dim=1), 1, positions))
    if not all_scores:
        return torch.empty(0, k, device=device), torch.empty(0, k, dtype=torch.int64, device=device)
    return torch.cat(all_scores), torch.cat(all_indices)
