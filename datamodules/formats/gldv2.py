"""Readers of the Google Landmarks v2 files: the training set and the retrieval benchmark, in the a/b/c layout.

Training: ``train.csv`` (``id,url,landmark_id``), ``train_clean.csv`` (``landmark_id,images``, space-separated
ids), images at ``train/<id[0]>/<id[1]>/<id[2]>/<id>.jpg``. Rows whose image is missing are counted and skipped
with one summary log line; undecodable images are skipped later, where they are decoded.

Retrieval: ``index.csv``, ``test.csv``, ``retrieval_solution_v2.1.csv`` and the ``index/`` and ``test/`` folders.
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datamodules.formats.checks import first_examples, read_csv_rows, require_files
from retrieval.benchmark import QueryGroundTruth, RetrievalBenchmark

log = logging.getLogger(__name__)

SOLUTION_FILE = "retrieval_solution_v2.1.csv"


def image_path(root: Path, split: str, image_id: str) -> Path:
    """GLDv2 layout: ``<root>/<split>/<a>/<b>/<c>/<id>.jpg`` with a, b, c the first three characters of the id."""
    if len(image_id) < 3:
        raise ValueError(f"GLDv2 image ids have 16 characters; got {image_id!r}")
    return root / split / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"


@dataclass(frozen=True)
class LandmarkImages:
    """Images with their landmark labels: ``paths[i]`` shows landmark ``labels[i]``."""

    ids: list[str]
    paths: list[Path]
    labels: np.ndarray  # (N,) int64

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.paths) == len(self.labels)):
            raise ValueError("ids, paths and labels must have the same length")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_landmarks(self) -> int:
        return len(np.unique(self.labels))

    def subset(self, indices: np.ndarray) -> LandmarkImages:
        return LandmarkImages(
            ids=[self.ids[i] for i in indices],
            paths=[self.paths[i] for i in indices],
            labels=self.labels[indices],
        )


@dataclass
class GLDv2Report:
    """Counts of what the reader kept and skipped, for one summary line."""

    rows: int = 0
    kept: int = 0
    missing_files: int = 0
    not_clean: int = 0
    filtered_by_size: int = 0
    excluded: int = 0
    skipped_examples: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"GLDv2: {self.rows} rows, kept {self.kept}; skipped {self.missing_files} missing files"
            f"{' (e.g. ' + ', '.join(self.skipped_examples[:3]) + ')' if self.skipped_examples else ''}, "
            f"{self.not_clean} outside train_clean, {self.excluded} excluded by filters, "
            f"{self.filtered_by_size} by min/max images per landmark"
        )


def _landmark_id(value: str | None, path: Path, line: int) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}:{line}: landmark_id must be an integer, got {value!r}") from error


def read_train_csv(path: Path) -> list[tuple[str, int]]:
    """(id, landmark_id) rows of ``train.csv``; a row repeating an earlier (id, landmark_id) is skipped and
    counted in one warning.

    Raises:
        ValueError: a column is missing, a landmark_id is not an integer, an id is empty or listed again with
            another landmark_id (the file and lines are named), or the file lists no images.
    """
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"id", "landmark_id"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns id,url,landmark_id; found {reader.fieldnames}")
        rows = []
        first_line: dict[str, tuple[int, int]] = {}  # id -> (line, landmark_id)
        repeated = 0
        for line, row in enumerate(reader, start=2):
            image_id, landmark = (row["id"] or "").strip(), _landmark_id(row["landmark_id"], path, line)
            if not image_id:
                raise ValueError(f"{path}:{line}: empty id")
            if image_id in first_line:
                earlier_line, earlier_landmark = first_line[image_id]
                if earlier_landmark != landmark:
                    raise ValueError(
                        f"{path}:{line}: image {image_id} is listed with landmark_id {landmark} here and "
                        f"{earlier_landmark} on line {earlier_line}; which landmark it shows is ambiguous"
                    )
                repeated += 1
                continue
            first_line[image_id] = (line, landmark)
            rows.append((image_id, landmark))
    if not rows:
        raise ValueError(f"{path} lists no images")
    if repeated:
        log.warning("%s: skipped %d rows that repeat an earlier id with the same landmark_id", path, repeated)
    return rows


def read_train_clean_csv(path: Path) -> dict[int, list[str]]:
    """landmark_id → clean image ids, from ``train_clean.csv``.

    Raises:
        ValueError: a column is missing, a landmark_id is not an integer or listed twice, an image is listed
            under two landmarks (the file and lines are named), or the file lists no images.
    """
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"landmark_id", "images"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns landmark_id,images; found {reader.fieldnames}")
        by_landmark: dict[int, list[str]] = {}
        landmark_line: dict[int, int] = {}
        image_line: dict[str, int] = {}
        for line, row in enumerate(reader, start=2):
            landmark = _landmark_id(row["landmark_id"], path, line)
            if landmark in landmark_line:
                raise ValueError(
                    f"{path}:{line}: landmark_id {landmark} is listed again (first on line {landmark_line[landmark]})"
                )
            landmark_line[landmark] = line
            images = (row["images"] or "").split()
            for image_id in images:
                if image_id in image_line:
                    raise ValueError(
                        f"{path}:{line}: image {image_id} is listed under two landmarks (also on line "
                        f"{image_line[image_id]})"
                    )
                image_line[image_id] = line
            by_landmark[landmark] = images
    if not image_line:
        raise ValueError(f"{path} lists no images")
    return by_landmark


def load_gldv2_train(
    root: str | Path,
    clean: bool = True,
    min_images_per_landmark: int = 2,
    max_images_per_landmark: int | None = None,
    exclude_ids: frozenset[str] = frozenset(),
    verify_files: bool = True,
    seed: int = 0,
) -> tuple[LandmarkImages, GLDv2Report]:
    """Read the GLDv2 training set.

    Args:
        root: folder with ``train.csv``, ``train_clean.csv`` (when ``clean``) and ``train/``.
        clean: keep only the images listed in ``train_clean.csv``.
        min_images_per_landmark: drop landmarks with fewer images (a tuple needs a query and a positive).
        max_images_per_landmark: keep at most this many images per landmark (a seeded random choice).
        exclude_ids: image ids to drop (e.g. flagged by the dataset analysis).
        verify_files: check that every image file exists (rows that point nowhere are counted and skipped).
        seed: for the choice under ``max_images_per_landmark``.
    """
    root = Path(root)
    if min_images_per_landmark < 1:
        raise ValueError(f"min_images_per_landmark must be at least 1, got {min_images_per_landmark}")
    if max_images_per_landmark is not None and max_images_per_landmark < min_images_per_landmark:
        raise ValueError("max_images_per_landmark must be at least min_images_per_landmark")
    train_csv = root / "train.csv"
    if not train_csv.is_file():
        raise FileNotFoundError(f"{train_csv} not found; see the README for the GLDv2 file layout")
    rows = read_train_csv(train_csv)
    report = GLDv2Report(rows=len(rows))
    if clean:
        clean_csv = root / "train_clean.csv"
        clean_landmark = {
            image_id: landmark
            for landmark, ids in read_train_clean_csv(clean_csv).items()
            for image_id in ids
        }
        conflicting = [
            (image_id, landmark, clean_landmark[image_id])
            for image_id, landmark in rows
            if clean_landmark.get(image_id, landmark) != landmark
        ]
        if conflicting:
            image_id, landmark, listed = conflicting[0]
            raise ValueError(
                f"{len(conflicting)} images of {clean_csv} are listed under another landmark than in "
                f"{train_csv}, e.g. {image_id}: {listed} there, {landmark} in train.csv"
            )
        kept_rows = [row for row in rows if row[0] in clean_landmark]
        report.not_clean = len(rows) - len(kept_rows)
        rows = kept_rows
    if exclude_ids:
        kept_rows = [row for row in rows if row[0] not in exclude_ids]
        report.excluded = len(rows) - len(kept_rows)
        rows = kept_rows
    if verify_files:
        present = []
        for image_id, landmark in rows:
            if image_path(root, "train", image_id).is_file():
                present.append((image_id, landmark))
            else:
                report.missing_files += 1
                if len(report.skipped_examples) < 3:
                    report.skipped_examples.append(image_id)
        rows = present

    by_landmark: dict[int, list[str]] = defaultdict(list)
    for image_id, landmark in rows:
        by_landmark[landmark].append(image_id)
    rng = np.random.default_rng(seed)
    ids: list[str] = []
    labels: list[int] = []
    for landmark in sorted(by_landmark):
        members = by_landmark[landmark]
        if len(members) < min_images_per_landmark:
            report.filtered_by_size += len(members)
            continue
        if max_images_per_landmark is not None and len(members) > max_images_per_landmark:
            report.filtered_by_size += len(members) - max_images_per_landmark
            members = sorted(rng.choice(members, size=max_images_per_landmark, replace=False).tolist())
        ids.extend(members)
        labels.extend([landmark] * len(members))
    report.kept = len(ids)
    log.info(report.summary())
    if not ids:
        raise ValueError(f"{root}: no training images are left ({report.summary()})")
    images = LandmarkImages(
        ids=ids, paths=[image_path(root, "train", i) for i in ids], labels=np.asarray(labels, dtype=np.int64)
    )
    return images, report


def split_by_landmark(
    images: LandmarkImages, val_fraction: float = 0.1, seed: int = 0
) -> tuple[LandmarkImages, LandmarkImages]:
    """Split into (train, val) so that no landmark appears in both; ``val_fraction`` of the landmarks go to val."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    landmarks = np.unique(images.labels)
    num_val = round(len(landmarks) * val_fraction)
    if val_fraction > 0 and num_val < 2:
        raise ValueError(
            f"val_fraction={val_fraction} of {len(landmarks)} landmarks leaves fewer than 2 for validation"
        )
    val_landmarks = np.random.default_rng(seed).choice(landmarks, size=num_val, replace=False)
    is_val = np.isin(images.labels, val_landmarks)
    return images.subset(np.flatnonzero(~is_val)), images.subset(np.flatnonzero(is_val))


def load_gldv2_retrieval(root: str | Path) -> RetrievalBenchmark:
    """GLDv2 retrieval under the official protocol (mAP@100, Public/Private).

    ``root`` holds ``index.csv`` (``id``), ``test.csv`` (``id``), ``retrieval_solution_v2.1.csv``
    (``id,images,Usage``) and the ``index/`` and ``test/`` image folders (an extra ``url`` column is
    tolerated). Queries are the solution rows with Usage Public or Private and images other than "None";
    Ignored rows are not queries.
    """
    root = Path(root)
    database_ids = [row["id"] for row in read_csv_rows(root / "index.csv", ["id"])]
    test_ids = {row["id"] for row in read_csv_rows(root / "test.csv", ["id"])}
    solution_rows = read_csv_rows(root / SOLUTION_FILE, ["id", "images", "Usage"])
    database_position = {image_id: position for position, image_id in enumerate(database_ids)}
    if len(database_position) != len(database_ids):
        raise ValueError(f"{root / 'index.csv'}: image ids are repeated")

    query_ids: list[str] = []
    ground_truth: list[QueryGroundTruth] = []
    unknown_usages = {row["Usage"] for row in solution_rows} - {"Public", "Private", "Ignored"}
    if unknown_usages:
        raise ValueError(f"{root / SOLUTION_FILE}: unknown Usage value(s) {sorted(unknown_usages)}")
    unknown_index_ids: list[str] = []
    for row in solution_rows:
        images = row["images"].split()
        if row["Usage"] == "Ignored" or images in ([], ["None"]):
            continue
        if len(set(images)) != len(images):
            raise ValueError(f"{root / SOLUTION_FILE}: query {row['id']} lists an index image twice")
        unknown = [image_id for image_id in images if image_id not in database_position]
        if unknown:
            unknown_index_ids += unknown
            continue
        query_ids.append(row["id"])
        ground_truth.append(
            QueryGroundTruth(
                easy=np.array([database_position[image_id] for image_id in images], dtype=np.int64),
                usage=row["Usage"],
            )
        )
    if unknown_index_ids:
        raise ValueError(
            f"{root / SOLUTION_FILE}: {len(unknown_index_ids)} ground-truth ids are not in index.csv "
            f"(first: {first_examples(unknown_index_ids)})"
        )
    unknown_queries = [query_id for query_id in query_ids if query_id not in test_ids]
    if unknown_queries:
        raise ValueError(
            f"{root / SOLUTION_FILE}: {len(unknown_queries)} query ids are not in test.csv "
            f"(first: {first_examples(unknown_queries)})"
        )
    query_paths = [image_path(root, "test", query_id) for query_id in query_ids]
    database_paths = [image_path(root, "index", image_id) for image_id in database_ids]
    require_files(query_paths, "gldv2 queries")
    require_files(database_paths, "gldv2 index")
    return RetrievalBenchmark(
        name="gldv2",
        protocol="gldv2",
        query_paths=query_paths,
        database_paths=database_paths,
        ground_truth=ground_truth,
        query_ids=query_ids,
        database_ids=database_ids,
        query_boxes=[None] * len(query_ids),
    )
