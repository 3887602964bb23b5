"""Leave-one-out benchmarks: a folder with one subfolder per landmark, and the shared real-photo benchmark
(``gt.json``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from datamodules.formats.checks import first_examples, require_file, require_files
from datamodules.formats.revisited import DISTRACTORS_FOLDER
from retrieval.benchmark import QueryGroundTruth, RetrievalBenchmark
from retrieval.images import IMAGE_SUFFIXES, BoundingBox


def _leave_one_out(
    name: str,
    groups: Sequence[Sequence[Path]],
    distractors: Sequence[Path],
    ids_of: Callable[[Path], str],
    ignored: Sequence[set[Path]] | None = None,
    boxes: Mapping[Path, BoundingBox] | None = None,
) -> RetrievalBenchmark:
    """Every grouped image is a query once (cropped to its box, if it has one); the database is every image; the
    query itself and the group's ignored images are junk; positives are the other images of its group."""
    grouped_paths = [path for group in groups for path in group]
    database_paths = grouped_paths + list(distractors)
    position = {path: index for index, path in enumerate(database_paths)}
    if len(position) != len(database_paths):
        raise ValueError(f"{name}: an image is listed twice")
    ground_truth = []
    for group_index, group in enumerate(groups):
        group_ignored = ignored[group_index] if ignored is not None else set()
        unknown = [path for path in group_ignored if path not in position]
        if unknown:
            raise ValueError(
                f"{name}: ignored images not in the benchmark (first: {first_examples(map(str, unknown))})"
            )
        for query in group:
            junk = {position[query]} | {position[path] for path in group_ignored}
            positives = [position[path] for path in group if path != query and path not in group_ignored]
            ground_truth.append(
                QueryGroundTruth(
                    easy=np.array(positives, dtype=np.int64), junk=np.array(sorted(junk), dtype=np.int64)
                )
            )
    require_files(database_paths, name)
    database_ids = [ids_of(path) for path in database_paths]
    return RetrievalBenchmark(
        name=name,
        protocol="plain",
        query_paths=grouped_paths,
        database_paths=database_paths,
        ground_truth=ground_truth,
        query_ids=database_ids[: len(grouped_paths)],
        database_ids=database_ids,
        query_boxes=[(boxes or {}).get(path) for path in grouped_paths],
    )


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    )


def load_subfolders(root: str | Path, name: str | None = None) -> RetrievalBenchmark:
    """A folder with one subfolder of images per landmark, evaluated leave-one-out (protocol "plain").

    Every image is a query once against all images; the query itself is junk and the other images of its
    subfolder are the positives. Images in an optional ``distractors/`` subfolder are database-only.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"benchmark folder {root} not found")
    landmark_folders = sorted(
        path for path in root.iterdir() if path.is_dir() and path.name != DISTRACTORS_FOLDER
    )
    groups = [_images_in(folder) for folder in landmark_folders]
    if not any(groups):
        raise ValueError(f"{root}: no landmark subfolder with images")
    distractor_folder = root / DISTRACTORS_FOLDER
    distractors = _images_in(distractor_folder) if distractor_folder.is_dir() else []
    return _leave_one_out(
        name or root.name,
        [group for group in groups if group],
        distractors,
        lambda path: path.relative_to(root).as_posix(),
    )


GROUND_TRUTH_FILE = "gt.json"


def load_ground_truth_folder(root: str | Path, name: str | None = None) -> RetrievalBenchmark:
    """A folder of images described by ``gt.json`` (the shared real-photo benchmark's format), evaluated
    leave-one-out (protocol "plain").

    ``gt.json`` holds, with paths relative to ``root``:

    - ``scenes``: place → its photos. Every photo of a place is a query once; the other photos of the place are
      its positives.
    - ``ignore`` (optional): place → photos that are junk for that place's queries (removed from their ranking,
      e.g. ambiguous views). They stay in the database, listed under a scene, the distractors or nowhere else.
    - ``distractors`` (optional): photos of no place, database-only.
    - ``boxes`` (optional): photo → [x1, y1, x2, y2], a crop of the photo when it is a query (full-resolution
      pixels, as Revisited's query boxes).

    The database is every image named anywhere in the file; the query itself is junk.

    Raises:
        FileNotFoundError: ``gt.json`` or a listed image is missing.
        ValueError: ``gt.json`` is malformed (unknown places, an image listed twice, a box outside its image's
            list).
    """
    root = Path(root)
    gt_path = root / GROUND_TRUTH_FILE
    require_file(gt_path, f"a folder benchmark describes its images in {GROUND_TRUTH_FILE}")
    content = json.loads(gt_path.read_text())
    if not isinstance(content.get("scenes"), dict) or not content["scenes"]:
        raise ValueError(f"{gt_path}: 'scenes' must map each place to its photos")
    scenes: dict[str, list[str]] = content["scenes"]
    ignore: dict[str, list[str]] = content.get("ignore", {})
    unknown_places = set(ignore) - set(scenes)
    if unknown_places:
        raise ValueError(f"{gt_path}: 'ignore' names unknown places {sorted(unknown_places)}")
    listed = {path for photos in scenes.values() for path in photos} | set(content.get("distractors", []))
    ignored_only = sorted({path for photos in ignore.values() for path in photos} - listed)
    boxes: dict[str, list[float]] = content.get("boxes", {})
    queries = {path for photos in scenes.values() for path in photos}
    unknown_boxes = set(boxes) - queries
    if unknown_boxes:
        raise ValueError(
            f"{gt_path}: 'boxes' names photos that are no query: {first_examples(sorted(unknown_boxes))}"
        )
    places = list(scenes)
    return _leave_one_out(
        name or root.name,
        [[root / path for path in scenes[place]] for place in places],
        [root / path for path in [*content.get("distractors", []), *ignored_only]],
        lambda path: path.relative_to(root).as_posix(),
        ignored=[{root / path for path in ignore.get(place, [])} for place in places],
        boxes={root / path: _box(box, path, gt_path) for path, box in boxes.items()},
    )


def _box(values: Sequence[float], photo: str, source: Path) -> BoundingBox:
    if len(values) != 4:
        raise ValueError(f"{source}: the box of {photo} must be [x1, y1, x2, y2], got {values!r}")
    x1, y1, x2, y2 = (float(value) for value in values)
    return (x1, y1, x2, y2)


def load_folder(root: str | Path, name: str | None = None) -> RetrievalBenchmark:
    """Your own benchmark: a folder with ``gt.json`` (:func:`load_ground_truth_folder`), or else one subfolder
    of images per place (:func:`load_subfolders`)."""
    root = Path(root)
    if (root / GROUND_TRUTH_FILE).is_file():
        return load_ground_truth_folder(root, name)
    return load_subfolders(root, name)


def load_realphotos(root: str | Path) -> RetrievalBenchmark:
    """The shared real-photo benchmark (``../shared/realphotos``): a ``gt.json`` folder named "realphotos"."""
    return load_ground_truth_folder(root, "realphotos")
