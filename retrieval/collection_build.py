"""Building a collection (:mod:`retrieval.collection` describes the folder): :class:`BuildPlan` decides what a
build extracts — every rank of a distributed ``index.py`` computes the same plan — and :func:`build_planned` writes
the new generation from it, reusing the unchanged images' descriptors and local features of the current one and
the finished shards of a killed build; :func:`build_collection` is both in one process.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retrieval.collection import (
    CACHE,
    COLLECTION_FILE,
    COLLECTION_FORMAT_VERSION,
    CURRENT_FILE,
    DESCRIPTORS_FILE,
    GENERATIONS,
    GLOBAL_INDEX,
    IMAGES_FILE,
    LOCAL_STORE,
    NETWORK_FILE,
    PARTIAL_SUFFIX,
    CollectionError,
    ImageListing,
    generation_dir,
)
from retrieval.descriptor.extract import ExtractionSettings, file_stat, files_fingerprint
from retrieval.descriptor.index import DescriptorIndex
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.descriptor.shards import DEFAULT_SHARD_SIZE, DescriptorShards, extract_into_shards
from retrieval.image_table import ImageTable
from retrieval.images import ImageLoadError, decode
from retrieval.local.features import LocalFeatureExtractor
from retrieval.local.store import METADATA_FILE, FeatureStore, StoreMetadata
from retrieval.local.store_parts import DEFAULT_PART_SIZE, StoreParts
from retrieval.progress import stage

log = logging.getLogger(__name__)


def _unreadable_reason(path: Path) -> str:
    try:
        decode(path, max_side=64)
    except ImageLoadError as error:
        return str(error)
    return "unreadable during extraction"


def _switch_to(root: Path, generation: str) -> None:
    """Make ``generation`` the one readers open, atomically; keep the one it replaces, remove older ones."""
    previous = (root / CURRENT_FILE).read_text().strip() if (root / CURRENT_FILE).is_file() else None
    temporary = root / f"{CURRENT_FILE}.tmp"
    temporary.write_text(generation + "\n")
    os.replace(temporary, root / CURRENT_FILE)
    for stale in (root / GENERATIONS).iterdir():
        if stale.name not in (generation, previous):
            shutil.rmtree(stale, ignore_errors=True)
    for legacy in (
        COLLECTION_FILE,
        NETWORK_FILE,
        GLOBAL_INDEX,
        LOCAL_STORE,
    ):  # the first, single-folder layout
        target = root / legacy
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists():
            target.unlink()


def build_collection(
    output_dir: str | Path,
    listing: ImageListing,
    net: GlobalDescriptorNet,
    descriptor_id: str,
    settings: ExtractionSettings,
    make_index: Callable[..., DescriptorIndex],
    local_extractor: LocalFeatureExtractor | None,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    shard_size: int = DEFAULT_SHARD_SIZE,
    part_size: int = DEFAULT_PART_SIZE,
) -> dict[str, Any]:
    """Extract, index and store a collection as a new generation of ``output_dir``, switched in when complete;
    unreadable images are skipped, counted and listed with their reason.

    Args:
        output_dir: the collection folder (created).
        listing: the images, and the files already skipped (:func:`list_images`).
        net: the global network; saved into the collection.
        descriptor_id: names the network's weights; with the settings' key it names the index (checked when the
            index is loaded).
        settings: global extraction settings (queries use the same).
        make_index: ``make_index(dim=..., descriptor_id=..., num_vectors=...) → empty DescriptorIndex`` (flat,
            IVF-PQ, HNSW; :func:`retrieval.descriptor.index.create_index`), called before any extraction so that
            parameters the collection is too small for are refused at once.
        local_extractor: local features to store for re-ranking, or ``None``.
        num_workers: processes for local-feature extraction.
        shard_size: images per global-descriptor shard (:mod:`retrieval.descriptor.shards`).
        part_size: images per local-feature store part (:mod:`retrieval.local.store_parts`). The shards and
            parts a killed build already wrote are not extracted again.

    Returns:
        the collection summary written to ``collection.json``.
    """
    plan = BuildPlan.of(output_dir, listing, net, descriptor_id, settings, make_index, shard_size, part_size)
    return build_planned(plan, net, local_extractor, device, num_workers)


def build_planned(
    plan: BuildPlan,
    net: GlobalDescriptorNet,
    local_extractor: LocalFeatureExtractor | None,
    device: str | torch.device | None = None,
    num_workers: int = 0,
) -> dict[str, Any]:
    """:func:`build_collection` from its plan (made with the same network): what the plan's shards and store
    parts still lack is extracted in this process, then the generation is written and switched in.
    ``index.py``'s rank 0 calls it once every rank has done its share."""
    root = plan.root
    extract_into_shards(net, plan.new_paths, plan.shards, plan.settings, device=device)
    if local_extractor is not None:
        plan.extract_local(local_extractor, num_workers)
    now = time.time_ns()
    name = time.strftime("%Y%m%d-%H%M%S", time.localtime(now / 1e9)) + f".{now % 10**9:09d}-{os.getpid()}"
    partial = root / GENERATIONS / f"{name}{PARTIAL_SUFFIX}"
    partial.mkdir(parents=True)
    try:
        summary = _build_generation(partial, plan, net, local_extractor)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    os.replace(partial, root / GENERATIONS / name)
    _switch_to(root, name)
    # The generation now holds the work (descriptors.npy, the store); the cache only served a failed build.
    shutil.rmtree(root / CACHE, ignore_errors=True)
    log.info(
        "collection %s: %d images indexed, %d files skipped",
        root,
        summary["num_images"],
        len(summary["skipped"]),
    )
    return summary


def _no_sharing(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class BuildPlan:
    """The work a build of ``listing`` into the collection at ``root`` has to do, the same on every rank of a
    distributed job: the images whose files (relative path, size, modification time) are unchanged since the
    current generation was built with the same network and settings keep their descriptors and local features;
    the others (positions ``new``) are extracted, their global descriptors into ``shards``. ``index.py`` has
    every rank fill the shards (``Trainer.predict``) and the store parts (:meth:`extract_local`), then rank 0
    calls :func:`build_planned`, which finds them written."""

    root: Path
    listing: ImageListing
    descriptor_id: str
    settings: ExtractionSettings
    ids: list[str]
    paths: list[Path]
    stats: list[tuple[int, int] | None]
    previous: _PreviousBuild
    reused: list[int]
    new: list[int]
    shards: DescriptorShards
    index: DescriptorIndex
    part_size: int

    @classmethod
    def of(
        cls,
        output_dir: str | Path,
        listing: ImageListing,
        net: GlobalDescriptorNet,
        descriptor_id: str,
        settings: ExtractionSettings,
        make_index: Callable[..., DescriptorIndex],
        shard_size: int = DEFAULT_SHARD_SIZE,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> BuildPlan:
        """Raises:
        ValueError: the collection is too small for the index ``make_index`` makes (before any work)."""
        root = Path(output_dir)
        ids = list(listing.images)
        index_id = f"{descriptor_id}|{settings.key()}"
        # Refused before any work when the collection is too small for the index (e.g. IVF lists to train).
        index = make_index(dim=net.output_dim, descriptor_id=index_id, num_vectors=len(ids))
        paths = [listing.images[image_id] for image_id in ids]
        stats = [file_stat(path) for path in paths]  # one pass over the file system serves every check
        previous = _PreviousBuild.of(
            root,
            descriptor_id,
            settings,
            listing.root,
            {image_id: list(stat) if stat else None for image_id, stat in zip(ids, stats, strict=True)},
            {
                image_id: path.relative_to(listing.root).as_posix()
                for image_id, path in zip(ids, paths, strict=True)
            },
        )
        reused = [position for position, image_id in enumerate(ids) if image_id in previous.rows]
        unchanged = set(reused)
        new = [position for position in range(len(ids)) if position not in unchanged]
        fingerprint = files_fingerprint([paths[i] for i in new], [stats[i] for i in new])
        key = hashlib.sha256(f"{index_id}|{fingerprint}|{shard_size}".encode()).hexdigest()[:24]
        shards = DescriptorShards(
            root / CACHE / f"global-{key}", [ids[i] for i in new], net.output_dim, shard_size
        )
        return cls(
            root,
            listing,
            descriptor_id,
            settings,
            ids,
            paths,
            stats,
            previous,
            reused,
            new,
            shards,
            index,
            part_size,
        )

    @property
    def new_paths(self) -> list[Path]:
        return [self.paths[position] for position in self.new]

    def readable(self) -> np.ndarray:
        """(N,) bool: the listing's images that have a descriptor (unchanged, or new and decodable); the
        shards must be written."""
        readable = np.zeros(len(self.ids), dtype=bool)
        readable[self.reused] = True
        if self.new:
            readable[self.new] = self.shards.readable()
        return readable

    @functools.cached_property
    def listing_fingerprint(self) -> str:
        """:func:`files_fingerprint` of every listed file (computed once: a hash over a million stats)."""
        return files_fingerprint(self.paths, self.stats)

    def store_parts(self, extractor: LocalFeatureExtractor) -> StoreParts:
        """The parts of the local-feature store of the readable images, named by the features and the files."""
        metadata = json.dumps(asdict(StoreMetadata.from_extractor(extractor)), sort_keys=True)
        key = hashlib.sha256(f"{metadata}|{self.listing_fingerprint}".encode()).hexdigest()[:24]
        kept = np.flatnonzero(self.readable())
        return StoreParts(
            self.root / CACHE / f"local-{key}", [(self.ids[i], str(self.paths[i])) for i in kept], extractor
        )

    def extract_local(
        self,
        extractor: LocalFeatureExtractor,
        num_workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
        share: Callable[[Any], Any] = _no_sharing,
        barrier: Callable[[], None] = lambda: None,
    ) -> None:
        """Build this rank's share of the store parts, ``num_workers`` processes each: rank 0 decides a compact
        store's embedding first, then the parts not built yet (as rank 0 sees them) are dealt to the ranks in
        turn. ``share(value)`` returns rank 0's ``value`` on every rank (a distributed broadcast) and
        ``barrier()`` waits for every rank; one process needs neither."""
        parts = self.store_parts(extractor)
        reuse = self.previous.store_for(extractor)
        if rank == 0:
            parts.prepare_codec(reuse, num_workers)
        pending = share(parts.pending())
        if len(pending) < parts.num_parts and rank == 0:
            log.info(
                "local features: %d of %d store parts already built",
                parts.num_parts - len(pending),
                parts.num_parts,
            )
        mine = pending[rank::world_size]
        reuse_ids = {self.ids[position] for position in self.reused}
        total = sum(len(parts.part_images(part)) for part in mine)
        with stage(f"{extractor.method} features", total, enabled=rank == 0) as bar:
            for part in mine:
                parts.build(part, num_workers, reuse, reuse_ids, progress=False)
                bar.update(len(parts.part_images(part)))
        barrier()  # every part is built before rank 0 joins them


def _build_generation(
    partial: Path, plan: BuildPlan, net: GlobalDescriptorNet, local_extractor: LocalFeatureExtractor | None
) -> dict[str, Any]:
    """Fill the generation folder ``partial``: the unchanged images' descriptors from the current generation, the
    new ones' from their shards, the local-feature store joined from its parts. The work that takes long is kept
    in the cache until the build succeeds, so a failed or killed build resumes: global descriptors from their
    written shards, local features from the built parts (and a part after its last complete shard)."""
    listing, ids, paths, stats, previous = plan.listing, plan.ids, plan.paths, plan.stats, plan.previous
    files = {image_id: list(stat) if stat else None for image_id, stat in zip(ids, stats, strict=True)}
    relative_paths = {
        image_id: path.relative_to(listing.root).as_posix() for image_id, path in zip(ids, paths, strict=True)
    }
    descriptors = np.zeros((len(ids), net.output_dim), dtype=np.float32)
    readable = np.zeros(len(ids), dtype=bool)
    reused = plan.reused
    if reused:
        descriptors[reused] = previous.descriptors[[previous.rows[ids[position]] for position in reused]]
        readable[reused] = True
        log.info(
            "%d of %d images unchanged since the current generation: not extracted again",
            len(reused),
            len(ids),
        )
    if plan.new:
        descriptors[plan.new], readable[plan.new] = plan.shards.read()
    kept = np.flatnonzero(readable)
    skipped = dict(listing.skipped)
    for position in np.flatnonzero(~readable):
        skipped[relative_paths[ids[position]]] = _unreadable_reason(paths[position])
    index = plan.index
    index.add(descriptors[kept], [ids[i] for i in kept])
    index.save(partial / GLOBAL_INDEX)
    np.save(partial / DESCRIPTORS_FILE, descriptors[kept])
    net.save(partial / NETWORK_FILE)
    if local_extractor is not None:
        plan.store_parts(local_extractor).join(partial / LOCAL_STORE)
    summary = {
        "format_version": COLLECTION_FORMAT_VERSION,
        "descriptor_id": plan.descriptor_id,
        "index_id": index.descriptor_id,
        "num_images": len(kept),
        "images_root": str(listing.root.resolve()),
        "skipped": skipped,
        "extraction": asdict(plan.settings),
    }
    kept_ids = [ids[i] for i in kept]
    ImageTable.of(kept_ids, relative_paths, files).save(partial / IMAGES_FILE)
    (partial / COLLECTION_FILE).write_text(json.dumps(summary, indent=2))
    return summary


@dataclass(frozen=True)
class _PreviousBuild:
    """What the current generation can give a new build: the descriptors (rows by image id) of the images whose
    files are unchanged, and its local-feature store."""

    rows: dict[str, int]
    descriptors: np.ndarray
    generation: Path | None

    @classmethod
    def of(
        cls,
        root: Path,
        descriptor_id: str,
        settings: ExtractionSettings,
        images_root: Path,
        files: Mapping[str, list[int] | None],
        relative_paths: Mapping[str, str],
    ) -> _PreviousBuild:
        nothing = cls({}, np.zeros((0, 0), dtype=np.float32), None)
        try:
            generation = generation_dir(root)
        except CollectionError:
            return nothing
        # The JSON alone (read_manifest would load the image table a second time, below).
        manifest = json.loads((generation / COLLECTION_FILE).read_text())
        if "images_root" not in manifest:  # the first layout: nothing to reuse
            return nothing
        # (as JSON stores them: tuples come back as lists)
        stored = dict(manifest["extraction"], scales=tuple(manifest["extraction"]["scales"]))
        # (settings a collection was built before they existed take their defaults; batching, workers and where
        # JPEGs are decoded do not change the descriptors)
        same_extraction = ExtractionSettings(**stored).key() == settings.key()
        same_settings = manifest["descriptor_id"] == descriptor_id and same_extraction
        if not same_settings or not (generation / DESCRIPTORS_FILE).is_file():
            return nothing
        if manifest["images_root"] != str(images_root.resolve()):
            return nothing
        if (generation / IMAGES_FILE).is_file():
            table = ImageTable.load(generation / IMAGES_FILE)
            previous_paths, previous_files = (
                dict(zip(table.ids, table.paths, strict=True)),
                table.file_stats(),
            )
        elif "files" in manifest:  # format 2
            previous_paths, previous_files = manifest["images"], manifest["files"]
        else:
            return nothing
        descriptors = np.load(generation / DESCRIPTORS_FILE, mmap_mode="r")
        rows = {
            image_id: row
            for row, (image_id, relative) in enumerate(previous_paths.items())
            if relative == relative_paths.get(image_id)
            and files.get(image_id) is not None
            and previous_files.get(image_id) == files[image_id]
        }
        return cls(rows, descriptors, generation)

    def store_for(self, extractor: LocalFeatureExtractor) -> FeatureStore | None:
        """The current generation's store, if it holds the features ``extractor`` gives."""
        if self.generation is None or not (self.generation / LOCAL_STORE / METADATA_FILE).is_file():
            return None
        store = FeatureStore(self.generation / LOCAL_STORE)
        return None if store.metadata.mismatches(StoreMetadata.from_extractor(extractor)) else store
