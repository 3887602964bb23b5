"""Building blocks of the local-feature and re-ranking studies (RQ3, RQ4 and the thesis table).

- Local features of a benchmark: OpenCV's :class:`~retrieval.local_features.LocalFeatureExtractor` or the
  thesis' CNN patches (:class:`CnnPatchExtractor`). :func:`database_feature_store` extracts the database once
  into a cached :class:`~retrieval.feature_store.FeatureStore`; :func:`query_local_features` gives every
  query's features with the store's settings, cropped to its box where the benchmark has one (Revisited).
- Re-ranking a benchmark's global ranking: :func:`rerank_benchmark` re-ranks every query's global top K with
  :func:`retrieval.rerank.rerank` for several methods at once, sharing the matching and verification work of
  methods that only score it differently (:func:`candidate_scores`), and scores the rankings.
- Local-only retrieval with a codebook: :func:`codebook_retrieval` ranks the database by BoW tf-idf with an
  inverted file, VLAD or ASMK on a vocabulary from :func:`train_vocabulary` (in two levels for large ones,
  :class:`TwoLevelVocabulary`), whose size :func:`effective_num_words` scales down when the descriptors are
  too few to train it.
- Bytes per image of each representation, the headline metrics of each protocol, and markdown tables.

Pure torch/numpy/faiss/OpenCV: the Hydra scripts in ``experiments/`` wire these pieces to configs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

import faiss
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from retrieval.benchmark import BoundingBox, RetrievalBenchmark
from retrieval.codebook import AsmkIndex, InvertedFile, VisualVocabulary, vlad_encode
from retrieval.evaluation import BenchmarkResult
from retrieval.feature_store import FeatureStore, FeatureStoreWriter, StoreMetadata, build_feature_store
from retrieval.images import ImageLoadError, load_gray, load_rgb, resize_max_side
from retrieval.local_features import LocalFeatureExtractor, LocalFeatures, cnn_patch_features
from retrieval.metrics import evaluate_ranking
from retrieval.network import GlobalDescriptorNet
from retrieval.rerank import (
    CnnPatchRerank,
    DelgRerank,
    FusionRerank,
    GlobalPlusInliersRerank,
    InliersRerank,
    RatioCountRerank,
    RerankConfig,
    rerank,
)

log = logging.getLogger(__name__)

CNN_PATCH_METHOD = "cnn_patch"

# The metrics a study table shows for each protocol, the first being the one plots use.
HEADLINE_METRICS: dict[str, tuple[str, ...]] = {
    "plain": ("mAP", "mP@5", "mP@10"),
    "revisited": ("medium/mAP", "hard/mAP", "medium/mP@10"),
    "gldv2": ("mAP@100", "recall@100"),
}

# Bytes of one keypoint in a feature store: x, y, scale and angle in float32.
KEYPOINT_BYTES = 16
# Bytes of one posting of an inverted file: an int32 image id and a float32 weight.
POSTING_BYTES = 8
# Bytes of the image id of an ASMK entry (one per image and visual word).
ASMK_IMAGE_ID_BYTES = 4

# Visual words each query descriptor is assigned to by ASMK (AsmkIndex's default).
ASMK_QUERY_ASSIGNMENTS = 5

CodebookKind = Literal["bow", "vlad", "asmk"]
CODEBOOK_KINDS: tuple[str, ...] = get_args(CodebookKind)


# ------------------------------------------------------------------------------------------------------------
# Local features of a benchmark
# ------------------------------------------------------------------------------------------------------------


class CnnPatchExtractor:
    """Local features from the cells of a global network's last feature map (the thesis' E7 patches).

    Images larger than ``max_side`` are downscaled to it (never upscaled), every cell of the feature map
    becomes a patch (:func:`retrieval.local_features.cnn_patch_features`, keypoints in pixels of the image the
    network saw) and the ``max_keypoints`` strongest are kept.

    Args:
        net: the global network whose feature map is cut into patches.
        network_id: names the network's weights (e.g. :func:`retrieval.network.descriptor_id`); stores built
            by different networks never mix.
        max_side: longest image side given to the network, in pixels.
        max_keypoints: patches kept per image, strongest activation first.
        device: torch device of the forward pass (None: the network's).
    """

    method = CNN_PATCH_METHOD
    binary = False

    def __init__(
        self,
        net: GlobalDescriptorNet,
        network_id: str,
        max_side: int = 512,
        max_keypoints: int = 1024,
        device: str | torch.device | None = None,
    ):
        if max_side < 32:
            raise ValueError(
                f"max_side must be at least 32 pixels (one cell of the feature map), got {max_side}"
            )
        if max_keypoints <= 0:
            raise ValueError(f"max_keypoints must be positive, got {max_keypoints}")
        self.net = net
        self.network_id = network_id
        self.max_side = max_side
        self.max_keypoints = max_keypoints
        self.device = torch.device(device) if device is not None else next(net.parameters()).device

    def __repr__(self) -> str:
        return (
            f"CnnPatchExtractor(network_id={self.network_id!r}, max_side={self.max_side}, "
            f"max_keypoints={self.max_keypoints})"
        )

    @property
    def descriptor_dim(self) -> int:
        """Channels of the feature map."""
        return int(self.net.backbone.num_features)

    def __call__(self, image: Image.Image) -> LocalFeatures:
        """Patches of one image (any PIL mode)."""
        rgb = image.convert("RGB")
        if max(rgb.size) > self.max_side:
            rgb = resize_max_side(rgb, self.max_side)
        pixels = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        was_training = self.net.training
        self.net.eval()
        with torch.inference_mode():
            feature_map = self.net.feature_map(self.net.normalize(pixels.to(self.device)))[0]
        self.net.train(was_training)
        return cnn_patch_features(feature_map, rgb.size).top(self.max_keypoints)

    def from_path(self, path: str | Path) -> LocalFeatures:
        """Patches of an image file.

        Raises:
            retrieval.images.ImageLoadError: the file is missing, corrupt or too large.
        """
        return self(load_rgb(path, max_side=self.max_side))


LocalExtractor = LocalFeatureExtractor | CnnPatchExtractor


def store_metadata(extractor: LocalExtractor) -> StoreMetadata:
    """The metadata of a feature store written with ``extractor``."""
    if isinstance(extractor, LocalFeatureExtractor):
        return StoreMetadata.from_extractor(extractor)
    return StoreMetadata(
        method=CNN_PATCH_METHOD,
        max_keypoints=extractor.max_keypoints,
        max_side=extractor.max_side,
        dim=extractor.descriptor_dim,
        descriptor_dtype="float16",
    )


def _crop_region(width: int, height: int, box: BoundingBox) -> tuple[int, int, int, int]:
    """Whole pixels (left, top, right, bottom) covering ``box``, clipped to the image, as extract.py crops."""
    x1, y1, x2, y2 = box
    left, top = max(0, math.floor(x1)), max(0, math.floor(y1))
    right, bottom = min(width, math.ceil(x2)), min(height, math.ceil(y2))
    if right <= left or bottom <= top:
        raise ValueError(f"crop box {box} lies outside the {width}x{height} image")
    return left, top, right, bottom


def extract_local_features(
    extractor: LocalExtractor, path: str | Path, box: BoundingBox | None = None
) -> LocalFeatures:
    """Local features of one image file, or of its crop ``box`` (x1, y1, x2, y2 in full-resolution pixels;
    keypoints are then in the crop's pixels).

    Raises:
        retrieval.images.ImageLoadError: the file is missing, corrupt or too large.
    """
    if isinstance(extractor, CnnPatchExtractor):
        if box is None:
            return extractor.from_path(path)
        image = load_rgb(path)
        return extractor(image.crop(_crop_region(image.width, image.height, box)))
    if box is None:
        return extractor.from_path(path)
    gray = load_gray(path)
    left, top, right, bottom = _crop_region(gray.shape[1], gray.shape[0], box)
    return extractor(np.ascontiguousarray(gray[top:bottom, left:right]))


def files_fingerprint(paths: Sequence[Path]) -> str:
    """A hash of the files' paths, sizes and modification times: it changes when any file is rewritten (a
    regenerated demo keeps its file names), without reading the files."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            status = Path(path).stat()
            digest.update(f"{path}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()


def _store_folder_name(benchmark: RetrievalBenchmark, extractor: LocalExtractor) -> str:
    """``<benchmark>_<method>_<keypoints>kp_<side>px_<hash>``: the hash covers the database files (names, sizes
    and modification times), the extractor's settings and, for CNN patches, the network."""
    metadata = store_metadata(extractor)
    content = {
        "database": files_fingerprint(benchmark.database_paths),
        "metadata": asdict(metadata),
        "network": extractor.network_id if isinstance(extractor, CnnPatchExtractor) else None,
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
    return f"{benchmark.name}_{metadata.method}_{metadata.max_keypoints}kp_{metadata.max_side}px_{digest}"


def _build_cnn_patch_store(
    root: Path, images: Mapping[str, Path], extractor: CnnPatchExtractor, progress: bool
) -> FeatureStore:
    """Write the CNN patches of every image to a store (resuming a partly built one), in this process."""
    metadata = store_metadata(extractor)
    skipped: list[str] = []
    with FeatureStoreWriter(root, metadata) as writer:
        pending = [
            (image_id, path) for image_id, path in images.items() if image_id not in writer.completed_ids
        ]
        for image_id, path in tqdm(pending, desc="cnn patches", disable=not progress, leave=False):
            try:
                features = extractor.from_path(path)
            except ImageLoadError as error:
                writer.skip(image_id, str(error))
                skipped.append(str(error))
                continue
            writer.add(image_id, features)
    if skipped:
        log.warning(
            "feature store %s: skipped %d unreadable images (first: %s)", root, len(skipped), skipped[0]
        )
    return FeatureStore(root, expected=metadata)


def database_feature_store(
    benchmark: RetrievalBenchmark,
    extractor: LocalExtractor,
    cache_dir: str | Path,
    num_workers: int = 0,
    progress: bool = True,
) -> FeatureStore:
    """The local features of the benchmark's database, extracted once into a folder of ``cache_dir`` named
    after the benchmark, the settings and a fingerprint of the database files, and read from there afterwards
    (a partly built store is resumed; rewritten files give a new store). Store ids are the benchmark's
    database ids.

    Args:
        num_workers: extraction processes for OpenCV features (CNN patches are extracted in this process).
    """
    root = Path(cache_dir) / _store_folder_name(benchmark, extractor)
    images = dict(zip(benchmark.database_ids, benchmark.database_paths, strict=True))
    if isinstance(extractor, CnnPatchExtractor):
        return _build_cnn_patch_store(root, images, extractor, progress)
    return build_feature_store(root, images, extractor, num_workers=num_workers, progress=progress)


def query_local_features(
    benchmark: RetrievalBenchmark, extractor: LocalExtractor, store: FeatureStore
) -> list[LocalFeatures]:
    """Local features of every query with the settings of the database ``store``.

    A query without a crop box whose file is a database image (leave-one-out benchmarks) is read from the
    store: the same extractor already ran on the same file. Other queries are extracted, cropped to their box.

    Raises:
        ValueError: the store was built with other settings than ``extractor``'s.
        retrieval.images.ImageLoadError: a query image cannot be read.
    """
    differences = store.metadata.mismatches(store_metadata(extractor))
    if differences:
        raise ValueError(f"the store holds other features than the extractor gives: {'; '.join(differences)}")
    database_id_of = {
        path: image_id
        for image_id, path in zip(benchmark.database_ids, benchmark.database_paths, strict=True)
    }
    features = []
    for path, box in zip(benchmark.query_paths, benchmark.query_boxes, strict=True):
        if box is None and path in database_id_of and database_id_of[path] in store:
            features.append(store.get(database_id_of[path]))
        else:
            features.append(extract_local_features(extractor, path, box))
    return features


def extraction_ms_per_image(extractor: LocalExtractor, paths: Sequence[Path], max_images: int = 8) -> float:
    """Mean milliseconds to extract the local features of one image (decoding included), measured in this
    process on the first ``max_images`` of ``paths``."""
    if max_images <= 0:
        raise ValueError(f"max_images must be positive, got {max_images}")
    sample = list(paths[:max_images])
    if not sample:
        raise ValueError("no image to time the extraction on")
    start = time.perf_counter()
    for path in sample:
        extract_local_features(extractor, path)
    return 1000 * (time.perf_counter() - start) / len(sample)


def matching_descriptors(features: LocalFeatures) -> np.ndarray:
    """Descriptors (N, D) as float32 for codebooks: float descriptors as they are, packed binary descriptors
    unpacked into (N, 8·D) zeros and ones."""
    if features.binary:
        return np.unpackbits(features.descriptors, axis=1).astype(np.float32)
    return np.ascontiguousarray(features.descriptors, dtype=np.float32)


# ------------------------------------------------------------------------------------------------------------
# Re-ranking a benchmark's global ranking
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RerankedRanking:
    """A benchmark's global ranking with every query's top K re-ranked.

    Attributes:
        ranking: (Q, N) database indices per query, best first: the re-ranked top K, then the rest of the
            global ranking in its order.
        metrics: the benchmark protocol's metrics of ``ranking`` (fractions).
        median_ms_per_query: median over queries of the wall time of one :func:`retrieval.rerank.rerank`
            call (store reads, matching, verification, scoring); methods sharing their matching and
            verification share the measurement. The median, because other processes on a shared machine
            slow some calls down.
    """

    ranking: np.ndarray
    metrics: dict[str, float]
    median_ms_per_query: float


def shortlist_positions(ranking_row: np.ndarray, junk: np.ndarray, top_k: int) -> np.ndarray:
    """Positions (K,) in one query's ranking (N,) of its first ``top_k`` entries that are not junk.

    Junk (the query itself in leave-one-out benchmarks) is removed from the ranking before it is scored, so a
    junk candidate would only take the place of one that counts.
    """
    if top_k <= 0:
        raise ValueError(f"top_k must be positive, got {top_k}")
    return np.flatnonzero(~np.isin(ranking_row, junk))[:top_k]


def candidate_scores(
    config: RerankConfig,
    global_scores: np.ndarray,
    num_matches: np.ndarray,
    num_inliers: np.ndarray,
    num_query_keypoints: int,
) -> np.ndarray:
    """The scores :func:`retrieval.rerank.rerank` gives re-ranked candidates, from their tentative-match and
    inlier counts, so that methods with the same matching and verification share one :func:`rerank` call.

    Args:
        config: any method but :class:`~retrieval.rerank.CnnPatchRerank` (its score is a patch similarity).
        global_scores: (K,) global similarity of each candidate.
        num_matches: (K,) tentative matches of each candidate.
        num_inliers: (K,) verified inliers of each candidate.
        num_query_keypoints: keypoints of the query that were matched.

    Returns:
        (K,) float64 scores; :func:`rerank` orders candidates by decreasing score, ties in global order.
    """
    global_scores = np.asarray(global_scores, dtype=np.float64)
    match_ratio = np.asarray(num_matches) / max(1, num_query_keypoints)
    inliers = np.asarray(num_inliers)
    if isinstance(config, RatioCountRerank):
        return config.alpha * global_scores + (1 - config.alpha) * match_ratio
    if isinstance(config, InliersRerank):
        return inliers.astype(np.float64)
    if isinstance(config, FusionRerank):
        if config.local_score == "match_ratio":
            local = match_ratio
        else:
            local = np.minimum(inliers / config.inliers_at_full_score, 1.0)
        return config.alpha * global_scores + (1 - config.alpha) * local
    if isinstance(config, DelgRerank):
        return np.where(inliers >= config.min_inliers, inliers, 0).astype(np.float64)
    if isinstance(config, GlobalPlusInliersRerank):
        return global_scores + config.inlier_weight * inliers
    raise ValueError(f"{type(config).__name__} scores do not derive from match counts")


def _shared_work(name: str, config: RerankConfig) -> tuple[object, ...]:
    """Methods with equal keys run the same matching (and verification) and differ only in scoring."""
    if isinstance(config, CnnPatchRerank):
        return (CNN_PATCH_METHOD, name)
    if isinstance(config, RatioCountRerank):
        return ("matching", config.matching)
    return ("verified", config.matching, config.verification)


def rerank_benchmark(
    benchmark: RetrievalBenchmark,
    global_result: BenchmarkResult,
    query_features: Sequence[LocalFeatures],
    store: FeatureStore,
    configs: Mapping[str, RerankConfig],
    top_k: int,
) -> dict[str, RerankedRanking]:
    """Re-rank every query's global top ``top_k`` (junk excluded) with each method of ``configs``.

    Methods that share their matching and verification settings (e.g. inliers, fusion at any alpha, DELG)
    share one :func:`retrieval.rerank.rerank` call per query, run with the first of them; the others are
    scored from its match and inlier counts by :func:`candidate_scores`.

    Args:
        benchmark: the benchmark; store ids are its database ids.
        global_result: its global ranking (Q, N) and scores (Q, N), best first.
        query_features: every query's local features, with the store's settings.
        store: the database's local features.
        configs: method name -> settings.
        top_k: candidates re-ranked per query.

    Returns:
        method name -> the re-ranked ranking, its metrics and its time per query.
    """
    if len(query_features) != benchmark.num_queries:
        raise ValueError(f"{len(query_features)} query features for {benchmark.num_queries} queries")
    if global_result.ranking.shape[0] != benchmark.num_queries:
        raise ValueError(
            f"the global ranking has {global_result.ranking.shape[0]} rows "
            f"for {benchmark.num_queries} queries"
        )
    groups: dict[tuple[object, ...], list[str]] = {}
    for name, config in configs.items():
        groups.setdefault(_shared_work(name, config), []).append(name)
    rankings = {name: np.empty_like(global_result.ranking) for name in configs}
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    for names in groups.values():
        measured = configs[names[0]]
        for query, features in enumerate(query_features):
            num_query_keypoints = (
                len(features)
                if isinstance(measured, CnnPatchRerank)
                else len(features.top(measured.matching.query_max_keypoints))
            )
            row = global_result.ranking[query]
            positions = shortlist_positions(row, benchmark.ground_truth[query].junk, top_k)
            candidates = row[positions]
            global_scores = global_result.scores[query, positions].astype(np.float64)
            candidate_ids = [benchmark.database_ids[index] for index in candidates]
            start = time.perf_counter()
            result = rerank(features, candidate_ids, global_scores, store, measured, top_k=top_k)
            elapsed = time.perf_counter() - start
            rest = np.delete(row, positions)
            for name in names:
                if name == names[0]:
                    order = result.order
                else:
                    scores = candidate_scores(
                        configs[name],
                        global_scores,
                        result.num_matches,
                        result.num_inliers,
                        num_query_keypoints,
                    )
                    order = np.argsort(-scores, kind="stable")
                rankings[name][query] = np.concatenate((candidates[order], rest))
                seconds[name].append(elapsed)
    return {
        name: RerankedRanking(
            ranking=rankings[name],
            metrics=evaluate_ranking(rankings[name], benchmark),
            median_ms_per_query=1000 * float(np.median(seconds[name])) if seconds[name] else float("nan"),
        )
        for name in configs
    }


# ------------------------------------------------------------------------------------------------------------
# Local-only retrieval with a codebook
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VocabularySettings:
    """How visual vocabularies are trained.

    Attributes:
        min_descriptors_per_word: a vocabulary gets at most (descriptors available) / this many words.
        max_training_descriptors: k-means runs on a random sample of at most this many descriptors.
        num_iterations: k-means iterations (per level).
        two_level_above: vocabularies with more words are trained in two levels: k-means into ⌈√k⌉
            cells, then each cell's descriptors into words, as many as its share of the descriptors (flat
            k-means with 16k words costs minutes on a laptop CPU; two levels, seconds), and assign
            descriptors approximately (:class:`TwoLevelVocabulary`).
        assignment_probes: cells a two-level vocabulary searches per descriptor.
        seed: sampling and k-means seed.
    """

    min_descriptors_per_word: int = 8
    max_training_descriptors: int = 131_072
    num_iterations: int = 10
    two_level_above: int = 1024
    assignment_probes: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "min_descriptors_per_word",
            "max_training_descriptors",
            "num_iterations",
            "two_level_above",
            "assignment_probes",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def effective_num_words(requested: int, num_descriptors: int, min_descriptors_per_word: int) -> int:
    """``requested``, or fewer words when ``num_descriptors`` cannot give each one
    ``min_descriptors_per_word``."""
    if requested <= 0 or min_descriptors_per_word <= 0:
        raise ValueError(
            "requested and min_descriptors_per_word must be positive, "
            f"got {requested}, {min_descriptors_per_word}"
        )
    affordable = num_descriptors // min_descriptors_per_word
    if affordable < 1:
        raise ValueError(
            f"{num_descriptors} descriptors cannot train a single word at {min_descriptors_per_word} per word"
        )
    return min(requested, affordable)


def allocate_words(cell_sizes: np.ndarray, num_words: int) -> np.ndarray:
    """Words per cell (C,) int64, proportional to its descriptors (largest remainders), never more than the
    cell holds, summing to ``num_words``.

    Args:
        cell_sizes: (C,) descriptors in each cell.
        num_words: at most their total.
    """
    sizes = np.asarray(cell_sizes, dtype=np.int64)
    total = int(sizes.sum())
    if not 0 < num_words <= total:
        raise ValueError(f"num_words must be in [1, {total}] (the descriptors in the cells), got {num_words}")
    quotas = sizes * (num_words / total)
    words = np.minimum(np.floor(quotas).astype(np.int64), sizes)
    shortfall = num_words - int(words.sum())
    # The cells with the largest fractional quotas get one more word; such a cell has quota < size.
    room = np.flatnonzero(words < sizes)
    by_remainder = room[np.argsort(-(quotas[room] - words[room]), kind="stable")]
    words[by_remainder[:shortfall]] += 1
    return words


def _sample(descriptors: np.ndarray, max_count: int, seed: int) -> np.ndarray:
    if len(descriptors) <= max_count:
        return descriptors
    chosen = np.random.default_rng(seed).choice(len(descriptors), max_count, replace=False)
    return descriptors[np.sort(chosen)]


class TwoLevelVocabulary(VisualVocabulary):
    """Words grouped under coarse cells, assigned approximately: a descriptor goes to its nearest word among
    those of its ``probes`` nearest cells (a faiss inverted file over the words), tens of times faster than
    comparing it with every word of a large vocabulary.

    Args:
        coarse: the cells (C, D).
        centroids: the words (k, D); each is filed under its nearest cell.
        probes: cells searched per descriptor, at most C.
    """

    def __init__(self, coarse: VisualVocabulary, centroids: np.ndarray, probes: int = 2):
        super().__init__(centroids)
        if coarse.dim != self.dim:
            raise ValueError(f"coarse cells have {coarse.dim} dimensions, the words {self.dim}")
        if not 1 <= probes <= coarse.num_words:
            raise ValueError(f"probes must be in [1, {coarse.num_words}], got {probes}")
        self.coarse = coarse
        self.probes = probes
        quantizer = faiss.IndexFlatL2(self.dim)
        quantizer.add(coarse.centroids)
        self._words_by_cell = faiss.IndexIVFFlat(quantizer, self.dim, coarse.num_words)
        self._words_by_cell.train(coarse.centroids)  # keeps the quantizer: it already holds every cell
        self._words_by_cell.add(self.centroids)
        self._words_by_cell.nprobe = probes
        self._quantizer = quantizer  # the index does not own it

    def assign(self, descriptors: np.ndarray, num_assignments: int = 1) -> np.ndarray:
        """Nearest words among the probed cells: (N,) int64, or (N, num_assignments) nearest first; a row
        whose probed cells hold fewer words than asked is assigned exactly."""
        descriptors = np.ascontiguousarray(descriptors, dtype=np.float32)
        if descriptors.ndim != 2 or descriptors.shape[1] != self.dim:
            raise ValueError(f"descriptors must be (N, {self.dim}), got {descriptors.shape}")
        if not 1 <= num_assignments <= self.num_words:
            raise ValueError(f"num_assignments must be in [1, {self.num_words}], got {num_assignments}")
        if len(descriptors) == 0:
            return super().assign(descriptors, num_assignments)
        _, word_ids = self._words_by_cell.search(descriptors, num_assignments)
        short = np.flatnonzero((word_ids < 0).any(axis=1))
        if short.size:
            word_ids[short] = super().assign(descriptors[short], num_assignments).reshape(len(short), -1)
        return word_ids[:, 0].copy() if num_assignments == 1 else word_ids


def train_vocabulary(
    descriptors: np.ndarray, num_words: int, settings: VocabularySettings = VocabularySettings()
) -> VisualVocabulary:
    """k-means words of descriptors (N, D) float32; above ``settings.two_level_above`` words, a
    :class:`TwoLevelVocabulary` trained in two levels."""
    if num_words <= settings.two_level_above:
        return VisualVocabulary.train(
            descriptors,
            num_words,
            max_training_descriptors=max(settings.max_training_descriptors, num_words),
            num_iterations=settings.num_iterations,
            seed=settings.seed,
        )
    sample = _sample(
        np.ascontiguousarray(descriptors, dtype=np.float32), settings.max_training_descriptors, settings.seed
    )
    if len(sample) < num_words:
        raise ValueError(f"cannot train {num_words} words from {len(sample)} sampled descriptors")
    coarse = VisualVocabulary.train(
        sample,
        math.ceil(math.sqrt(num_words)),
        max_training_descriptors=len(sample),
        num_iterations=settings.num_iterations,
        seed=settings.seed,
    )
    cells = coarse.assign(sample)
    words_per_cell = allocate_words(np.bincount(cells, minlength=coarse.num_words), num_words)
    centroids = []
    for cell, cell_words in enumerate(words_per_cell.tolist()):
        if cell_words:
            members = sample[cells == cell]
            centroids.append(
                VisualVocabulary.train(
                    members,
                    cell_words,
                    max_training_descriptors=len(members),
                    num_iterations=settings.num_iterations,
                    seed=settings.seed,
                ).centroids
            )
    return TwoLevelVocabulary(
        coarse, np.concatenate(centroids), probes=min(settings.assignment_probes, coarse.num_words)
    )


@dataclass(frozen=True, eq=False)
class CodebookRetrieval:
    """Local-only retrieval with a codebook.

    Attributes:
        ranking: (Q, N) database indices per query, most similar first.
        encode_ms_per_image: database encoding (word assignment and aggregation, index building) per image.
        search_ms_per_query: query encoding and scoring of the whole database, per query.
        bytes_per_image: the database representation per image (see :func:`bow_bytes_per_image`, ...).
    """

    ranking: np.ndarray
    encode_ms_per_image: float
    search_ms_per_query: float
    bytes_per_image: float


def codebook_retrieval(
    kind: CodebookKind,
    vocabulary: VisualVocabulary,
    query_descriptors: Sequence[np.ndarray],
    database_descriptors: Sequence[np.ndarray],
) -> CodebookRetrieval:
    """Rank the database for every query with local descriptors only.

    - ``bow``: tf-idf bags of words (idf of the database) searched through an inverted file.
    - ``vlad``: VLAD vectors (intra, power and L2 normalised) compared by inner product.
    - ``asmk``: ASMK* (binarised aggregated residuals, selective kernel) with the asmk package; query
      descriptors are assigned to up to 5 words.

    Args:
        kind: "bow", "vlad" or "asmk".
        vocabulary: the visual words, trained on descriptors of the same kind.
        query_descriptors: Q arrays (N_q, D) float32.
        database_descriptors: N arrays (N_i, D) float32.
    """
    if kind not in CODEBOOK_KINDS:
        raise ValueError(f"kind must be one of {CODEBOOK_KINDS}, got {kind!r}")
    if not database_descriptors:
        raise ValueError("the database is empty")
    num_images, num_queries = len(database_descriptors), max(1, len(query_descriptors))
    start = time.perf_counter()
    if kind == "bow":
        inverted_file = InvertedFile(
            [vocabulary.assign(d) for d in database_descriptors], vocabulary.num_words
        )
        encode_seconds = time.perf_counter() - start
        start = time.perf_counter()
        ranking = np.stack([inverted_file.search(vocabulary.assign(d))[0] for d in query_descriptors])
        search_seconds = time.perf_counter() - start
        size = bow_bytes_per_image(len(inverted_file.posting_images), num_images)
    elif kind == "vlad":
        database_vlads = np.stack([vlad_encode(d, vocabulary) for d in database_descriptors])  # (N, k·D)
        encode_seconds = time.perf_counter() - start
        start = time.perf_counter()
        query_vlads = np.stack([vlad_encode(d, vocabulary) for d in query_descriptors])  # (Q, k·D)
        ranking = np.argsort(-(query_vlads @ database_vlads.T), axis=1, kind="stable")
        search_seconds = time.perf_counter() - start
        size = dense_bytes_per_image(database_vlads.shape[1])
    else:
        index = AsmkIndex(vocabulary, query_assignments=min(ASMK_QUERY_ASSIGNMENTS, vocabulary.num_words))
        index.add(database_descriptors)
        encode_seconds = time.perf_counter() - start
        start = time.perf_counter()
        ranking, _ = index.search(query_descriptors)
        search_seconds = time.perf_counter() - start
        entries = sum(len(np.unique(vocabulary.assign(d))) for d in database_descriptors)
        size = asmk_bytes_per_image(entries, num_images, vocabulary.dim)
    return CodebookRetrieval(
        ranking=ranking.reshape(len(query_descriptors), num_images).astype(np.int64),
        encode_ms_per_image=1000 * encode_seconds / num_images,
        search_ms_per_query=1000 * search_seconds / num_queries,
        bytes_per_image=size,
    )


# ------------------------------------------------------------------------------------------------------------
# Bytes per image, metrics, tables
# ------------------------------------------------------------------------------------------------------------


def dense_bytes_per_image(dim: int, bytes_per_value: int = 4) -> int:
    """A dense vector of ``dim`` values (a global descriptor, a VLAD), float32 by default."""
    if dim <= 0 or bytes_per_value <= 0:
        raise ValueError(f"dim and bytes_per_value must be positive, got {dim}, {bytes_per_value}")
    return dim * bytes_per_value


def local_feature_bytes_per_image(mean_keypoints: float, dim: int, binary: bool) -> float:
    """The feature store's bytes per image: per keypoint, 16 bytes of position, scale and angle plus the
    descriptor (``dim`` float16 values, or ``dim`` bytes of packed bits)."""
    if mean_keypoints < 0 or dim <= 0:
        raise ValueError(f"mean_keypoints must be non-negative and dim positive, got {mean_keypoints}, {dim}")
    return mean_keypoints * (KEYPOINT_BYTES + (dim if binary else 2 * dim))


def bow_bytes_per_image(num_postings: int, num_images: int) -> float:
    """An inverted file's bytes per image: 8 per posting (int32 image id, float32 tf-idf weight)."""
    if num_images <= 0 or num_postings < 0:
        raise ValueError(
            f"num_images must be positive and num_postings non-negative, got {num_images}, {num_postings}"
        )
    return num_postings * POSTING_BYTES / num_images


def asmk_bytes_per_image(num_entries: int, num_images: int, dim: int) -> float:
    """ASMK*'s bytes per image: per (image, visual word) entry, an int32 image id and the binarised aggregated
    residual (``dim`` bits, rounded up to bytes)."""
    if num_images <= 0 or num_entries < 0 or dim <= 0:
        raise ValueError(
            "num_images and dim must be positive and num_entries non-negative, "
            f"got {num_images}, {dim}, {num_entries}"
        )
    return num_entries * (ASMK_IMAGE_ID_BYTES + math.ceil(dim / 8)) / num_images


def headline_metrics(metrics: Mapping[str, float], protocol: str) -> dict[str, float]:
    """The metrics a table shows for the protocol (:data:`HEADLINE_METRICS`), in that order."""
    if protocol not in HEADLINE_METRICS:
        raise ValueError(f"protocol must be one of {tuple(HEADLINE_METRICS)}, got {protocol!r}")
    return {name: metrics[name] for name in HEADLINE_METRICS[protocol]}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; every cell is written with ``str``."""
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells for {len(header)} columns: {list(row)}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
