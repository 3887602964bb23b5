"""Leave-one-out benchmarks: a folder with one subfolder per landmark, and the shared real-photo benchmark
(``gt.json``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from datamodules.formats.checks import first_examples, require_file, require_files
from datamodules.formats.revisited import DISTRACTORS_FOLDER
from retrieval.benchmark import QueryGroundTruth, RetrievalBenchmark
from retrieval.images import IMAGE_SUFFIXES


def _leave_one_out(
    name: str,
    groups: Sequence[Sequence[Path]],
    distractors: Sequence[Path],
    ids_of: Callable[[Path], str],
    ignored: Sequence[set[Path]] | None = None,
) -> RetrievalBenchmark:
    """Every grouped image is a query once; the database is every image; the query itself and the group's
    ignored images are junk; positives are the other images of its group."""
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
        query_boxes=[None] * len(grouped_paths),
    )


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    )


def load_folder(root: str | Path, name: str | None = None) -> RetrievalBenchmark:
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


def load_realphotos(root: str | Path) -> RetrievalBenchmark:
    """The shared real-photo benchmark (``gt.json``: scenes, ignore, distractors; paths relative to root).

    Every place photo is a query once; the database is every image, the query itself and the place's
    ``ignore`` photos are junk (removed from its ranking), positives are the other photos of the place.
    """
    root = Path(root)
    gt_path = root / "gt.json"
    require_file(gt_path, "the shared real-photo benchmark lives in ../shared/realphotos")
    content = json.loads(gt_path.read_text())
    scenes: dict[str, list[str]] = content["scenes"]
    ignore: dict[str, list[str]] = content.get("ignore", {})
    unknown_places = set(ignore) - set(scenes)
    if unknown_places:
        raise ValueError(f"{gt_path}: 'ignore' names unknown places {sorted(unknown_places)}")
    places = list(scenes)
    return _leave_one_out(
        "realphotos",
        [[root / path for path in scenes[place]] for place in places],
        [root / path for path in content.get("distractors", [])],
        lambda path: path.relative_to(root).as_posix(),
        ignored=[{root / path for path in ignore.get(place, [])} for place in places],
    )
