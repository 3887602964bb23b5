"""A searchable collection: global descriptors in a faiss index, local features in a store, the network that
made them — all in one self-contained folder, written by :func:`build_collection` (``index.py``) and queried by
:class:`SearchEngine` (``search.py``, ``serve.py``).

Layout of a collection folder::

    collection.json   image ids and paths, extraction settings, descriptor id
    net.pt            the global network (config + weights, readable with weights_only=True)
    global/           the faiss index (retrieval.descriptor.index.DescriptorIndex)
    local/            the local-feature store (retrieval.local.store), when local features were asked for;
                      its metadata is the one record of the local-feature settings, which queries reuse
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from retrieval.descriptor.extract import ExtractionSettings, describe_images, extract_descriptors
from retrieval.descriptor.index import DescriptorIndex
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.images import IMAGE_SUFFIXES, load_rgb
from retrieval.local.features import LOCAL_FEATURE_METHODS, LocalFeatureExtractor, LocalFeatures
from retrieval.local.rerank import KEYPOINTS, PairCorrespondences, RerankMethod, RerankResult, rerank
from retrieval.local.store import METADATA_FILE, FeatureStore, StoreMetadata, build_feature_store

log = logging.getLogger(__name__)

COLLECTION_FILE = "collection.json"
LOCAL_STORE = "local"


def list_images(folder: str | Path) -> dict[str, Path]:
    """Every image below ``folder`` (recursively), keyed by its path relative to the folder without suffix."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"image folder not found: {folder}")
    images = {
        path.relative_to(folder).with_suffix("").as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    }
    if not images:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) below {folder}")
    return images


def build_collection(
    output_dir: str | Path,
    images: Mapping[str, Path],
    net: GlobalDescriptorNet,
    descriptor_id: str,
    settings: ExtractionSettings,
    make_index: Callable[..., DescriptorIndex],
    local_extractor: LocalFeatureExtractor | None,
    device: str | torch.device | None = None,
    num_workers: int = 0,
) -> dict[str, Any]:
    """Extract, index and store a collection; unreadable images are skipped, counted and listed.

    Args:
        output_dir: the collection folder (created).
        images: image id → path.
        net: the global network; saved into the folder.
        descriptor_id: names the network's weights; with the settings' key it names the index (checked when the
            index is loaded).
        settings: global extraction settings (queries use the same).
        make_index: ``make_index(dim=..., descriptor_id=...) → empty DescriptorIndex`` (flat, IVF-PQ, HNSW).
        local_extractor: local features to store for re-ranking, or ``None``.
        num_workers: processes for local-feature extraction.

    Returns:
        the collection summary written to ``collection.json``.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    ids = list(images)
    paths = [images[image_id] for image_id in ids]
    descriptors, readable = extract_descriptors(
        net, paths, settings, device=device, description="global descriptors"
    )
    kept = np.flatnonzero(readable)
    skipped = [ids[i] for i in np.flatnonzero(~readable)]
    index_id = f"{descriptor_id}|{settings.key()}"
    index = make_index(dim=net.output_dim, descriptor_id=index_id)
    index.add(descriptors[kept], [ids[i] for i in kept])
    index.save(output_dir / "global")
    net.save(output_dir / "net.pt")
    if local_extractor is not None:
        build_feature_store(
            output_dir / LOCAL_STORE,
            {ids[i]: paths[i] for i in kept},
            local_extractor,
            num_workers=num_workers,
        )
    summary = {
        "descriptor_id": descriptor_id,
        "index_id": index_id,
        "num_images": len(kept),
        "skipped": skipped,
        "images": {ids[i]: str(Path(paths[i]).resolve()) for i in kept},
        "extraction": asdict(settings),
    }
    (output_dir / COLLECTION_FILE).write_text(json.dumps(summary, indent=2))
    log.info("collection %s: %d images indexed, %d unreadable skipped", output_dir, len(kept), len(skipped))
    return summary


def query_extractor(metadata: StoreMetadata) -> LocalFeatureExtractor:
    """The extractor that gives a query the features of a store written with OpenCV's ``metadata``."""
    if metadata.method not in LOCAL_FEATURE_METHODS:
        raise ValueError(
            f"the store holds {metadata.method!r} features; a collection's queries are described with one of "
            f"{LOCAL_FEATURE_METHODS}"
        )
    return LocalFeatureExtractor(metadata.method, metadata.max_keypoints, metadata.max_side)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SearchHit:
    """One result: ``score`` is the final (possibly fused) score; ``inliers`` 0 without re-ranking.

    ``correspondences`` (only when asked for) are the matches and inliers the re-ranking itself computed
    for this result, for drawing; None for results it did not re-rank.
    """

    image_id: str
    path: str
    score: float
    global_score: float
    inliers: int
    correspondences: PairCorrespondences | None = field(default=None, repr=False, compare=False)

    def summary(self) -> dict[str, Any]:
        """The result as JSON-ready values (no correspondences)."""
        return {name: value for name, value in asdict(self).items() if name != "correspondences"}


class SearchEngine:
    """Loads a collection once; :meth:`search` is safe to call from several threads."""

    def __init__(self, collection_dir: str | Path, device: str | torch.device = "cpu") -> None:
        self.root = Path(collection_dir)
        manifest_path = self.root / COLLECTION_FILE
        if not manifest_path.is_file():
            raise ValueError(
                f"{self.root} is not a collection folder (no {COLLECTION_FILE}); build it with index.py"
            )
        self.manifest = json.loads(manifest_path.read_text())
        self.device = torch.device(device)
        self.net = GlobalDescriptorNet.from_checkpoint(self.root / "net.pt").to(self.device).eval()
        self.index = DescriptorIndex.load(
            self.root / "global",
            expected_dim=self.net.output_dim,
            # collections written before index_id existed name the index by their descriptor_id
            expected_descriptor_id=self.manifest.get("index_id", self.manifest["descriptor_id"]),
        )
        extraction = dict(self.manifest["extraction"])
        extraction["scales"] = tuple(extraction["scales"])
        self.settings = ExtractionSettings(**extraction)
        store_dir = self.root / LOCAL_STORE
        self.store = FeatureStore(store_dir) if (store_dir / METADATA_FILE).is_file() else None
        self.local_extractor = query_extractor(self.store.metadata) if self.store is not None else None
        self.paths: dict[str, str] = self.manifest["images"]
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.index)

    def check_rerank(self, rerank_config: RerankMethod) -> None:
        """Raise ValueError unless the collection's local features can re-rank with ``rerank_config``."""
        if self.store is None:
            raise ValueError(f"{self.root} was built without local features; re-ranking is not possible")
        if rerank_config.local_features != KEYPOINTS:
            raise ValueError(
                f"{rerank_config.describe()!r} re-ranks with {rerank_config.local_features} features, but "
                f"{self.root} holds {self.store.metadata.method} keypoints"
            )

    def query_features(self, image: Image.Image) -> LocalFeatures:
        """Local features of a query image, with the collection's settings."""
        if self.local_extractor is None:
            raise ValueError(f"{self.root} was built without local features; re-ranking is not possible")
        return self.local_extractor(np.asarray(image.convert("L")))

    def search(
        self,
        query: Image.Image | str | Path,
        top_k: int = 10,
        rerank_config: RerankMethod | None = None,
        shortlist: int = 100,
        with_correspondences: bool = False,
    ) -> list[SearchHit]:
        """The ``top_k`` nearest collection images to ``query``; with ``rerank_config``, the global ``shortlist``
        is re-ranked with local features first (and ``with_correspondences`` keeps each re-ranked hit's
        matches, for drawing)."""
        if top_k < 1 or shortlist < 1:
            raise ValueError("top_k and shortlist must be positive")
        if rerank_config is not None:
            self.check_rerank(rerank_config)
        image = load_rgb(query) if isinstance(query, str | Path) else query.convert("RGB")
        with self._lock:  # one forward pass at a time: the network is shared
            descriptor = describe_images(self.net, [image], self.settings, self.device)
        depth = min(max(top_k, shortlist if rerank_config is not None else top_k), len(self.index))
        result = self.index.search(descriptor, depth)
        valid = result.indices[0] >= 0
        candidate_ids = [image_id for image_id in result.ids[0]]
        global_scores = result.scores[0][valid].astype(np.float64)
        reranked: RerankResult | None = None
        if rerank_config is None or self.store is None:
            order = np.arange(len(candidate_ids))
            scores, inliers = global_scores, np.zeros(len(candidate_ids), dtype=np.int64)
        else:
            reranked = rerank(
                self.query_features(image),
                candidate_ids,
                global_scores,
                self.store,
                rerank_config,
                top_k=depth,
            )
            order, scores, inliers = reranked.order, reranked.scores, reranked.num_inliers
        return [
            SearchHit(
                image_id=candidate_ids[i],
                path=self.paths[candidate_ids[i]],
                score=float(scores[i]),
                global_score=float(global_scores[i]),
                inliers=int(inliers[i]),
                correspondences=reranked.correspondences(int(i))
                if with_correspondences and reranked is not None
                else None,
            )
            for i in order[:top_k]
        ]

    def correspondences(
        self, query: Image.Image, image_id: str, rerank_config: RerankMethod, shortlist: int = 100
    ) -> PairCorrespondences:
        """The matches between a query and one collection image that :meth:`search` with the same
        ``rerank_config`` and ``shortlist`` computed (for drawing): the search runs again and keeps them, so the
        picture shows exactly what ranked the result. An image outside the re-ranked shortlist is matched
        alone, with the same method.
        """
        self.check_rerank(rerank_config)
        if self.store is None or image_id not in self.store:
            raise ValueError(f"unknown image id {image_id!r}")
        hits = self.search(query, shortlist, rerank_config, shortlist, with_correspondences=True)
        found = next((hit.correspondences for hit in hits if hit.image_id == image_id), None)
        if found is None:
            found = rerank(
                self.query_features(query.convert("RGB")), [image_id], np.zeros(1), self.store, rerank_config
            ).evidence.correspondences[0]
        return found
