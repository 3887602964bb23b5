"""Search over a collection folder (:mod:`retrieval.collection`): :class:`SearchEngine` loads one consistent
generation once — the network, the faiss index and the local-feature store — and answers queries (``search.py``,
``serve.py``, notebooks), a query file decoded exactly as indexed files were. Re-ranking reads the local-feature
store, or the indexed global descriptors (``descriptors.npy``, memory-mapped) for a method that re-ranks with
them (SuperGlobal).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from retrieval.collection import (
    DESCRIPTORS_FILE,
    GLOBAL_INDEX,
    IMAGES_FILE,
    LOCAL_STORE,
    NETWORK_FILE,
    CollectionError,
    generation_dir,
    image_paths,
    read_manifest,
)
from retrieval.descriptor.descriptor_table import DescriptorTable
from retrieval.descriptor.extract import ExtractionSettings, describe_images, describe_pixels, load_pixels
from retrieval.descriptor.index import DescriptorIndex
from retrieval.descriptor.network import GlobalDescriptorNet, resolve_device
from retrieval.local.features import LOCAL_FEATURE_METHODS, LocalFeatureExtractor, LocalFeatures
from retrieval.local.store import METADATA_FILE, FeatureStore, StoreMetadata
from retrieval.local.verdict import VERDICT_FILE, VerdictThreshold, VerdictThresholds
from retrieval.reranking import GLOBAL_DESCRIPTORS, PairCorrespondences, RerankMethod, RerankResult, rerank

log = logging.getLogger(__name__)

# A query: an image file (decoded as indexed files are) or an image in memory.
Query = Image.Image | str | Path


def query_extractor(metadata: StoreMetadata) -> LocalFeatureExtractor:
    """The extractor that gives a query the features of a store written with OpenCV's ``metadata``."""
    if metadata.method not in LOCAL_FEATURE_METHODS:
        raise ValueError(
            f"the store holds {metadata.method!r} features; a collection's queries are described with one of "
            f"{LOCAL_FEATURE_METHODS}"
        )
    return LocalFeatureExtractor(
        metadata.method,  # type: ignore[arg-type]
        metadata.query_max_keypoints or metadata.max_keypoints,
        metadata.max_side,
        compact=metadata.compact,
    )


# A result at this cosine or above is the query's own image (or an exact copy): an indexed image searched as a
# query scores > 0.999 (tests/test_reliability.py), different photos of one place stay far below.
SAME_IMAGE_COSINE = 0.999


def describe_score(rerank_config: RerankMethod | None) -> str:
    """What a search's ``score`` is: the re-ranking's formula, or the global cosine similarity."""
    return "cosine similarity of global descriptors" if rerank_config is None else rerank_config.describe()


@dataclass(frozen=True)
class SearchHit:
    """One result: ``score`` ranks it (the re-ranking's score, else ``global_score``, the cosine similarity).

    ``inliers`` are the verified inliers, and ``verified`` whether they reach the same-place threshold
    (:meth:`SearchEngine.verdict_threshold`); both None when no verification ran for this result (no
    re-ranking, a method without geometry, or a result outside the re-ranked shortlist).
    ``correspondences`` (only when asked for) are the matches and inliers the re-ranking itself computed
    for this result, for drawing; None for results it did not re-rank.
    """

    image_id: str
    path: str
    score: float
    global_score: float
    inliers: int | None = None
    verified: bool | None = None
    correspondences: PairCorrespondences | None = field(default=None, repr=False, compare=False)

    def summary(self) -> dict[str, Any]:
        """The result as JSON-ready values (no correspondences)."""
        return {name: value for name, value in asdict(self).items() if name != "correspondences"}


class SearchEngine:
    """Loads a collection once; :meth:`search` is safe to call from several threads."""

    def __init__(
        self,
        collection_dir: str | Path,
        device: str | torch.device = "cpu",
        images_root: str | Path | None = None,
    ) -> None:
        """Open the collection's current generation.

        Args:
            collection_dir: the folder ``index.py`` wrote.
            device: where the network runs.
            images_root: where the indexed images are now, if they moved (default: where they were indexed).

        Raises:
            CollectionError: the folder is no collection, or its parts disagree (index, images, store).
        """
        self.root = Path(collection_dir)
        self.generation = generation_dir(self.root)
        self.manifest = read_manifest(self.generation)
        self.device = torch.device(device)
        self.net = GlobalDescriptorNet.from_checkpoint(self.generation / NETWORK_FILE).to(self.device).eval()
        self.index = DescriptorIndex.load(
            self.generation / GLOBAL_INDEX,
            expected_dim=self.net.output_dim,
            # collections written before index_id existed name the index by their descriptor_id
            expected_descriptor_id=self.manifest.get("index_id", self.manifest["descriptor_id"]),
            mmap=True,  # an IVF index's lists stay on disk, shared by every server process of the collection
        )
        extraction = dict(self.manifest["extraction"])
        extraction["scales"] = tuple(extraction["scales"])
        self.settings = ExtractionSettings(**extraction)
        store_dir = self.generation / LOCAL_STORE
        self.store = FeatureStore(store_dir) if (store_dir / METADATA_FILE).is_file() else None
        self.local_extractor = query_extractor(self.store.metadata) if self.store is not None else None
        self.paths: dict[str, str] = image_paths(self.manifest, images_root)
        self.verdicts = VerdictThresholds(self.root / VERDICT_FILE)
        self._check_consistent()
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls, collection_dir: str | Path, device: str = "auto", images_root: str | Path | None = None
    ) -> SearchEngine:
        """The engine over a collection, on the GPU when there is one (``device="auto"``)::

        engine = SearchEngine.open("outputs/collections/demo")
        hits = engine.search("photo.jpg", rerank_config=InliersRerank())
        """
        return cls(collection_dir, resolve_device(device), images_root)

    def descriptors(self, images: Sequence[Query]) -> np.ndarray:
        """Global descriptors (N, D) float32 of image files or images in memory, with the collection's network
        and settings (a file exactly as when indexed).

        Raises:
            retrieval.images.ImageLoadError: a file cannot be read.
        """
        rows = [self.query_descriptor(image) for image in images]
        return np.concatenate(rows) if rows else np.zeros((0, self.net.output_dim), dtype=np.float32)

    def _check_consistent(self) -> None:
        """Raise CollectionError unless the index, the image list and the store hold the same images."""
        indexed, listed = set(self.index.ids), set(self.paths)
        problems = []
        if len(self.index) != len(self.paths) or indexed != listed:
            problems.append(
                f"the index holds {len(self.index)} images and {IMAGES_FILE} lists {len(self.paths)} "
                f"({len(indexed - listed)} indexed but not listed, {len(listed - indexed)} listed but not indexed)"
            )
        if self.store is not None:
            missing = [image_id for image_id in listed if image_id not in self.store]
            if missing:
                problems.append(f"{len(missing)} images have no local features (e.g. {missing[0]!r})")
        if problems:
            raise CollectionError(
                f"{self.generation}: the collection's parts disagree: {'; '.join(problems)}; rebuild it with index.py"
            )

    def __len__(self) -> int:
        return len(self.index)

    @property
    def query_side(self) -> int:
        """The longest image side a query is decoded at: the larger of the global and local extraction's."""
        local = self.local_extractor.max_side if self.local_extractor is not None else 0
        return max(self.settings.max_side, local)

    @cached_property
    def descriptor_table(self) -> DescriptorTable:
        """The indexed images' global descriptors by id (memory-mapped; built on first use)."""
        path = self.generation / DESCRIPTORS_FILE
        if not path.is_file():
            raise ValueError(f"{self.generation} keeps no {DESCRIPTORS_FILE}; rebuild it with index.py")
        return DescriptorTable(self.index.ids, np.load(path, mmap_mode="r"))

    def rerank_store(self, rerank_config: RerankMethod) -> DescriptorTable | FeatureStore:
        """What ``rerank_config`` reads: the global descriptors or the local-feature store.

        Raises:
            ValueError: the collection does not keep them.
        """
        if rerank_config.features == GLOBAL_DESCRIPTORS:
            return self.descriptor_table
        if self.store is None:
            raise ValueError(f"{self.root} was built without local features; re-ranking is not possible")
        return self.store

    def check_rerank(self, rerank_config: RerankMethod) -> None:
        """Raise ValueError unless the collection keeps what ``rerank_config`` re-ranks with."""
        rerank_config.check_store(self.rerank_store(rerank_config))

    def verdict_key(self, rerank_config: RerankMethod) -> str | None:
        """The key of the same-place threshold of ``rerank_config`` on this collection (its local features and
        verification settings); None for a method that verifies no geometry."""
        verification = rerank_config.verification_key()
        if verification is None or self.store is None:
            return None
        return f"{self.store.metadata}|{verification}"

    def verdict_threshold(self, rerank_config: RerankMethod | None) -> VerdictThreshold | None:
        """The same-place threshold a search with ``rerank_config`` applies: calibrated for this collection
        (``verdict.json``) or the default; None when that search verifies nothing."""
        key = None if rerank_config is None else self.verdict_key(rerank_config)
        return None if key is None else self.verdicts.get(key)

    def query_features(self, query: Query, max_pixels: int | None = None) -> LocalFeatures:
        """Local features of a query, with the collection's settings (a file exactly as an indexed one).

        Raises:
            retrieval.images.ImageLoadError: a query file cannot be read.
        """
        if self.local_extractor is None:
            raise ValueError(f"{self.root} was built without local features; re-ranking is not possible")
        if isinstance(query, str | Path):
            return self.local_extractor.from_path(query, max_pixels=max_pixels)
        return self.local_extractor(np.asarray(query.convert("L")))

    def query_descriptor(self, query: Query, max_pixels: int | None = None) -> np.ndarray:
        """The global descriptor (1, D) of a query; a file is decoded exactly as an indexed one, so an indexed
        image finds its own descriptor.

        Raises:
            retrieval.images.ImageLoadError: a query file cannot be read.
        """
        if isinstance(query, str | Path):
            pixels = load_pixels(query, self.settings, max_pixels=max_pixels)
            with self._lock:  # one forward pass at a time: the network is shared
                return describe_pixels(self.net, [pixels], self.settings, self.device)
        with self._lock:
            return describe_images(self.net, [query.convert("RGB")], self.settings, self.device)

    def search(
        self,
        query: Query,
        top_k: int = 10,
        rerank_config: RerankMethod | None = None,
        shortlist: int = 100,
        with_correspondences: bool = False,
        max_pixels: int | None = None,
        exclude_query_image: bool = False,
    ) -> list[SearchHit]:
        """The ``top_k`` nearest collection images to ``query`` (a file, decoded as indexed files are, or an
        image in memory); with ``rerank_config``, the global ``shortlist`` is re-ranked with local features
        first (and ``with_correspondences`` keeps each re-ranked hit's matches, for drawing). ``max_pixels``
        bounds what a query file may decode to. ``exclude_query_image`` drops the query's own image: the
        indexed file at the query's path, and any result at cosine :data:`SAME_IMAGE_COSINE` or above.

        Raises:
            retrieval.images.ImageLoadError: a query file cannot be read.
        """
        if top_k < 1 or shortlist < 1:
            raise ValueError("top_k and shortlist must be positive")
        if rerank_config is not None:
            self.check_rerank(rerank_config)
        descriptor = self.query_descriptor(query, max_pixels)
        wanted = max(top_k, shortlist if rerank_config is not None else top_k)
        # One extra result: the query's own image, if it is excluded.
        depth = min(wanted + int(exclude_query_image), len(self.index))
        result = self.index.search(descriptor, depth)
        valid = result.indices[0] >= 0
        candidate_ids = [image_id for image_id in result.ids[0]]
        global_scores = result.scores[0][valid].astype(np.float64)
        if exclude_query_image:
            candidate_ids, global_scores = self._without_query_image(
                query, candidate_ids, global_scores, wanted
            )
        reranked: RerankResult | None = None
        threshold = self.verdict_threshold(rerank_config)
        inliers: np.ndarray | None = None
        if rerank_config is None:
            order = np.arange(len(candidate_ids))
            scores = global_scores
        else:
            store = self.rerank_store(rerank_config)
            features = (
                descriptor[0]
                if rerank_config.features == GLOBAL_DESCRIPTORS
                else self.query_features(query, max_pixels)
            )
            try:
                reranked = rerank(features, candidate_ids, global_scores, store, rerank_config, top_k=depth)
            except (KeyError, FileNotFoundError) as error:  # the store changed or vanished under this engine
                raise CollectionError(
                    f"{self.generation}: the re-ranking features cannot be read ({error})"
                ) from error
            order, scores = reranked.order, reranked.scores
            if threshold is not None:
                inliers = reranked.num_inliers
        hits = []
        for i in order[:top_k]:
            count = int(inliers[i]) if inliers is not None else None
            hits.append(
                SearchHit(
                    image_id=candidate_ids[i],
                    path=self.paths[candidate_ids[i]],
                    score=float(scores[i]),
                    global_score=float(global_scores[i]),
                    inliers=count,
                    verified=threshold.verified(count) if threshold is not None else None,
                    correspondences=reranked.correspondences(int(i))
                    if with_correspondences and reranked is not None
                    else None,
                )
            )
        return hits

    def _without_query_image(
        self, query: Query, candidate_ids: list[str], global_scores: np.ndarray, keep: int
    ) -> tuple[list[str], np.ndarray]:
        """The first ``keep`` candidates that are not the query's own image."""
        own_path = Path(query).resolve() if isinstance(query, str | Path) else None

        def is_query_file(image_id: str) -> bool:
            # The file name first: only a candidate of the same name costs a resolve (a system call).
            candidate = Path(self.paths[image_id])
            return (
                own_path is not None and candidate.name == own_path.name and candidate.resolve() == own_path
            )

        kept = [
            position
            for position, image_id in enumerate(candidate_ids)
            if global_scores[position] < SAME_IMAGE_COSINE and not is_query_file(image_id)
        ][:keep]
        return [candidate_ids[position] for position in kept], global_scores[kept]

    def correspondences(
        self,
        query: Query,
        image_id: str,
        rerank_config: RerankMethod,
        shortlist: int = 100,
        max_pixels: int | None = None,
    ) -> PairCorrespondences:
        """The matches between a query and one collection image that :meth:`search` with the same
        ``rerank_config`` and ``shortlist`` computed (for drawing): the search runs again and keeps them, so the
        picture shows exactly what ranked the result. An image outside the re-ranked shortlist is matched
        alone, with the same method.
        """
        self.check_rerank(rerank_config)
        if self.store is None or image_id not in self.store:
            raise ValueError(f"unknown image id {image_id!r}")
        hits = self.search(query, shortlist, rerank_config, shortlist, True, max_pixels)
        found = next((hit.correspondences for hit in hits if hit.image_id == image_id), None)
        if found is None:
            found = rerank(
                self.query_features(query, max_pixels), [image_id], np.zeros(1), self.store, rerank_config
            ).evidence.correspondences[0]
        return found
