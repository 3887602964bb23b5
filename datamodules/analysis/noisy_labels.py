"""Noisy-label candidates: the cosine distance of every image to its landmark's medoid descriptor
(:func:`medoid_distances`) from a checkpoint's descriptors of the scanned images (:func:`noisy_label_scores`,
resumable block by block), and the threshold that flags outliers (:class:`NoisyLabelSettings`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datamodules.analysis.scan import check_resume_state, file_digest, iter_chunk_rows
from datamodules.analysis.statistics import DatasetStatistics
from datamodules.formats.gldv2 import image_path
from retrieval.descriptor.extract import ExtractionSettings, extract_descriptors
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.progress import stage


@dataclass(frozen=True)
class NoisyLabelSettings:
    """How noisy-label candidates are found from a checkpoint's descriptors.

    Args:
        threshold: an image whose cosine distance to its landmark's medoid exceeds this is a candidate; ``None``
            adapts it to the checkpoint: the median score plus ``outlier_deviations`` robust standard deviations
            (1.4826 median absolute deviations), since typical distances differ from model to model.
        outlier_deviations: see ``threshold``.
        min_images: landmarks with fewer decodable images get no score.
        max_medoid_candidates: the medoid of a larger landmark is chosen among this many random members.
        block_size: images per extraction block (each block is saved, so an interrupted run resumes).
    """

    threshold: float | None = None
    outlier_deviations: float = 3.0
    min_images: int = 3
    max_medoid_candidates: int = 1000
    block_size: int = 20000

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0 <= self.threshold <= 2:
            raise ValueError(f"threshold is a cosine distance in [0, 2], got {self.threshold}")
        if self.outlier_deviations <= 0:
            raise ValueError(f"outlier_deviations must be positive, got {self.outlier_deviations}")
        if self.min_images < 1 or self.max_medoid_candidates < 1 or self.block_size < 1:
            raise ValueError(
                f"min_images, max_medoid_candidates and block_size must be positive, got {self.min_images}, "
                f"{self.max_medoid_candidates}, {self.block_size}"
            )

    def threshold_for(self, scores: np.ndarray) -> float:
        """The fixed ``threshold``, or the robust outlier threshold of the finite ``scores`` (N,)."""
        if self.threshold is not None:
            return self.threshold
        finite = scores[np.isfinite(scores)]
        if len(finite) == 0:
            return math.inf
        median = float(np.median(finite))
        deviation = 1.4826 * float(np.median(np.abs(finite - median)))
        return median + self.outlier_deviations * deviation


def medoid_distances(
    descriptors: np.ndarray,
    labels: np.ndarray,
    valid: np.ndarray,
    min_images: int = 3,
    max_medoid_candidates: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Noisy-label scores: the cosine distance of every image to its landmark's medoid.

    The medoid of a landmark is the member with the largest summed similarity to the others (a robust centre:
    a few wrong images cannot move it); for landmarks larger than ``max_medoid_candidates`` it is chosen among
    that many seeded random members, by their similarity to each other. Landmarks are read one at a time, so
    ``descriptors`` can be a memory-mapped array larger than memory.

    Args:
        descriptors: (N, D) L2-normalised descriptors (rows of invalid images are ignored).
        labels: (N,) landmark of each image.
        valid: (N,) bool, images that have a descriptor.
        min_images: landmarks with fewer valid images get no score (a medoid of two images is arbitrary).

    Returns:
        (N,) float32 ``1 - cos(image, medoid)`` in [0, 2]; NaN for invalid images and small landmarks.
    """
    labels = np.asarray(labels)
    valid = np.asarray(valid, dtype=bool)
    if not (len(descriptors) == len(labels) == len(valid)):
        raise ValueError(
            f"descriptors, labels and valid must have the same length, got {len(descriptors)}, "
            f"{len(labels)}, {len(valid)}"
        )
    if min_images < 1 or max_medoid_candidates < 1:
        raise ValueError("min_images and max_medoid_candidates must be positive")
    rng = np.random.default_rng(seed)
    scores = np.full(len(labels), np.nan, dtype=np.float32)
    rows = np.flatnonzero(valid)
    rows = rows[np.argsort(labels[rows], kind="stable")]
    boundaries = np.flatnonzero(np.diff(labels[rows])) + 1
    for members in np.split(rows, boundaries):
        if len(members) < min_images:
            continue
        vectors = np.asarray(descriptors[members], np.float32)
        candidates = (
            vectors
            if len(members) <= max_medoid_candidates
            else vectors[np.sort(rng.choice(len(members), max_medoid_candidates, replace=False))]
        )
        medoid = candidates[int(np.argmax((candidates @ candidates.T).sum(axis=1)))]
        scores[members] = np.clip(1 - vectors @ medoid, 0, 2)
    return scores


# Descriptor blocks of the noisy-label scores, under the analysis folder.
DESCRIPTOR_FOLDER = "descriptors"


def noisy_label_scores(
    chunk_paths: Sequence[Path],
    root: Path,
    statistics: DatasetStatistics,
    ckpt_path: Path,
    extraction: ExtractionSettings,
    settings: NoisyLabelSettings,
    device: torch.device,
    work_dir: Path,
    progress: bool = True,
) -> np.ndarray:
    """Cosine distance of every row (N,) to its landmark's medoid descriptor (NaN where undefined).

    Descriptors are extracted in blocks of ``settings.block_size`` rows, each saved to
    ``<work_dir>/descriptors/block_<i>.npy`` (float16; zero rows for unreadable images) and skipped when present,
    then gathered into one memory-mapped (N, D) array that the medoids read a landmark at a time.
    """
    folder = work_dir / DESCRIPTOR_FOLDER
    check_resume_state(
        folder / "state.json",
        {
            "checkpoint_sha256": file_digest(ckpt_path),
            "max_side": extraction.max_side,
            "scales": extraction.scales,
            "block_size": settings.block_size,
            "rows": statistics.num_rows,
        },
    )
    net = GlobalDescriptorNet.from_checkpoint(ckpt_path)
    num_blocks = math.ceil(statistics.num_rows / settings.block_size)
    block_paths = [folder / f"block_{index:06d}.npy" for index in range(num_blocks)]
    rows = iter_chunk_rows(chunk_paths)
    with stage("noisy labels: descriptors", statistics.num_rows, enabled=progress) as bar:
        for block_path in block_paths:
            block = list(itertools.islice(rows, settings.block_size))
            if not block_path.is_file():
                readable_rows = [
                    position
                    for position, row in enumerate(block)
                    if row["missing"] == "0" and row["undecodable"] == "0"
                ]
                paths = [image_path(root, "train", block[position]["id"]) for position in readable_rows]
                descriptors, readable = extract_descriptors(
                    net, paths, extraction, device=device, progress=False
                )
                block_descriptors = np.zeros((len(block), net.output_dim), dtype=np.float16)
                block_descriptors[np.asarray(readable_rows, dtype=np.int64)[readable]] = descriptors[readable]
                temporary = block_path.with_suffix(".tmp")
                with open(temporary, "wb") as handle:
                    np.save(handle, block_descriptors)
                temporary.replace(block_path)
            bar.update(len(block))
    descriptors = np.lib.format.open_memmap(
        folder / "descriptors.npy", mode="w+", dtype=np.float16, shape=(statistics.num_rows, net.output_dim)
    )
    valid = np.zeros(statistics.num_rows, dtype=bool)
    for index, block_path in enumerate(block_paths):
        block = np.load(block_path)
        start = index * settings.block_size
        descriptors[start : start + len(block)] = block
        valid[start : start + len(block)] = np.any(block != 0, axis=1)
    descriptors.flush()
    labels = np.frombuffer(statistics.labels, dtype=np.int64)
    return medoid_distances(descriptors, labels, valid, settings.min_images, settings.max_medoid_candidates)
