"""Readers that turn each benchmark's own files into a :class:`retrieval.benchmark.RetrievalBenchmark`.

- Revisited Oxford/Paris (``roxford5k``, ``rparis6k``, and ``rdemo`` in the same format):
  ``<root>/<name>/gnd_<name>.pkl`` (``imlist``, ``qimlist``, ``gnd`` with ``easy``/``hard``/``junk``/``bbx``)
  and ``<root>/<name>/jpg/<image>.jpg``; optionally the R1M distractors appended to the database.
- GLDv2 retrieval: ``index.csv``, ``test.csv``, ``retrieval_solution_v2.1.csv`` and the a/b/c image folders.
- A folder with one subfolder per landmark, evaluated leave-one-out.
- The shared real-photo benchmark (``gt.json``).

Readers never decode images; they check that every listed file exists and fail with a count and examples
otherwise, because a benchmark with silently missing images gives numbers that look valid and are not.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.gldv2 import image_path as gldv2_image_path
from retrieval.benchmark import QueryGroundTruth, RetrievalBenchmark
from retrieval.images import IMAGE_SUFFIXES
from retrieval.safe_pickle import load_restricted_pickle

REVISITED_NAMES = ("roxford5k", "rparis6k", "rdemo")
DISTRACTORS_FOLDER = "distractors"
GLDV2_SOLUTION_FILE = "retrieval_solution_v2.1.csv"
R1M_LIST = Path("revisitop1m") / "revisitop1m.txt"

_EXAMPLES_SHOWN = 5


def require_files(paths: Sequence[Path], what: str) -> None:
    """Raise FileNotFoundError naming how many of ``paths`` are missing, and the first few."""
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        examples = ", ".join(str(path) for path in missing[:_EXAMPLES_SHOWN])
        raise FileNotFoundError(
            f"{what}: {len(missing)} of {len(paths)} listed images are missing (first: {examples}); "
            "a benchmark must be complete, download or extract it again"
        )


def _require_file(path: Path, hint: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; {hint}")


# --- Revisited Oxford / Paris ------------------------------------------------------------------------------


def _string_list(content: Mapping[str, Any], key: str, source: Path) -> list[str]:
    values = content.get(key)
    if not isinstance(values, (list, tuple)) or not all(isinstance(value, str) for value in values):
        raise ValueError(f"{source}: '{key}' must be a list of image names")
    return list(values)


def _revisited_box(query_gnd: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    box = query_gnd.get("bbx")
    if box is None:
        return None
    x1, y1, x2, y2 = (float(value) for value in np.asarray(box, dtype=np.float64).reshape(-1))
    return (x1, y1, x2, y2)


def _r1m_entries(list_file: Path) -> tuple[list[str], list[Path]]:
    """Ids and paths of the R1M distractors: each line of the list is a path under ``<list folder>/jpg``."""
    _require_file(list_file, "run `python -m datamodules.download revisitop1m --root <root>`")
    lines = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
    image_folder = list_file.parent / "jpg"
    paths = [image_folder / (line if Path(line).suffix else f"{line}.jpg") for line in lines]
    ids = [f"revisitop1m/{Path(line).with_suffix('').as_posix()}" for line in lines]
    return ids, paths


def load_revisited(
    root: str | Path, name: str, distractor_list: str | Path | None = None
) -> RetrievalBenchmark:
    """Revisited Oxford/Paris (or a benchmark written in their format) under the revisited protocol.

    Args:
        root: folder holding ``<name>/gnd_<name>.pkl`` and ``<name>/jpg/``.
        name: "roxford5k", "rparis6k", "rdemo", ...
        distractor_list: the R1M list file (``revisitop1m.txt``, one image path per line relative to the
            ``jpg`` folder beside it); its images are appended to the database, so the gnd indices stay valid.
    """
    dataset_folder = Path(root) / name
    gnd_path = dataset_folder / f"gnd_{name}.pkl"
    _require_file(gnd_path, f"run `python -m datamodules.download {name} --root {root}`")
    content = load_restricted_pickle(gnd_path)
    if not isinstance(content, dict):
        raise ValueError(
            f"{gnd_path}: expected a dict with imlist, qimlist and gnd, got {type(content).__name__}"
        )
    database_names = _string_list(content, "imlist", gnd_path)
    query_names = _string_list(content, "qimlist", gnd_path)
    query_gnds = content.get("gnd")
    if not isinstance(query_gnds, list) or len(query_gnds) != len(query_names):
        raise ValueError(f"{gnd_path}: 'gnd' must be a list with one entry per query ({len(query_names)})")
    ground_truth = []
    for query_index, query_gnd in enumerate(query_gnds):
        missing_keys = {"easy", "hard", "junk"} - set(query_gnd)
        if missing_keys:
            raise ValueError(f"{gnd_path}: gnd[{query_index}] lacks {sorted(missing_keys)}")
        ground_truth.append(
            QueryGroundTruth(
                easy=np.asarray(query_gnd["easy"], dtype=np.int64),
                hard=np.asarray(query_gnd["hard"], dtype=np.int64),
                junk=np.asarray(query_gnd["junk"], dtype=np.int64),
            )
        )
    image_folder = dataset_folder / "jpg"
    query_paths = [image_folder / f"{image}.jpg" for image in query_names]
    database_paths = [image_folder / f"{image}.jpg" for image in database_names]
    database_ids = list(database_names)
    benchmark_name = name
    if distractor_list is not None:
        distractor_ids, distractor_paths = _r1m_entries(Path(distractor_list))
        database_ids += distractor_ids
        database_paths += distractor_paths
        benchmark_name = f"{name}+1m"
    require_files(query_paths, f"{name} queries")
    require_files(database_paths, f"{benchmark_name} database")
    return RetrievalBenchmark(
        name=benchmark_name,
        protocol="revisited",
        query_paths=query_paths,
        database_paths=database_paths,
        ground_truth=ground_truth,
        query_ids=query_names,
        database_ids=database_ids,
        query_boxes=[_revisited_box(query_gnd) for query_gnd in query_gnds],
    )


# --- GLDv2 retrieval ---------------------------------------------------------------------------------------


def _read_csv_rows(path: Path, required_columns: Sequence[str]) -> list[dict[str, str]]:
    _require_file(path, "run `python -m datamodules.download gldv2 --root <root>`")
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        missing = [column for column in required_columns if column not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}")
        return list(reader)


def _examples(values: Iterable[str]) -> str:
    return ", ".join(list(values)[:_EXAMPLES_SHOWN])


def load_gldv2_retrieval(root: str | Path) -> RetrievalBenchmark:
    """GLDv2 retrieval under the official protocol (mAP@100, Public/Private).

    ``root`` holds ``index.csv`` (``id``), ``test.csv`` (``id``), ``retrieval_solution_v2.1.csv``
    (``id,images,Usage``) and the ``index/`` and ``test/`` image folders (an extra ``url`` column is
    tolerated). Queries are the solution rows with Usage Public or Private and images other than "None";
    Ignored rows are not queries.
    """
    root = Path(root)
    database_ids = [row["id"] for row in _read_csv_rows(root / "index.csv", ["id"])]
    test_ids = {row["id"] for row in _read_csv_rows(root / "test.csv", ["id"])}
    solution_rows = _read_csv_rows(root / GLDV2_SOLUTION_FILE, ["id", "images", "Usage"])
    database_position = {image_id: position for position, image_id in enumerate(database_ids)}
    if len(database_position) != len(database_ids):
        raise ValueError(f"{root / 'index.csv'}: image ids are repeated")

    query_ids: list[str] = []
    ground_truth: list[QueryGroundTruth] = []
    unknown_usages = {row["Usage"] for row in solution_rows} - {"Public", "Private", "Ignored"}
    if unknown_usages:
        raise ValueError(f"{root / GLDV2_SOLUTION_FILE}: unknown Usage value(s) {sorted(unknown_usages)}")
    unknown_index_ids: list[str] = []
    for row in solution_rows:
        images = row["images"].split()
        if row["Usage"] == "Ignored" or images in ([], ["None"]):
            continue
        if len(set(images)) != len(images):
            raise ValueError(f"{root / GLDV2_SOLUTION_FILE}: query {row['id']} lists an index image twice")
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
            f"{root / GLDV2_SOLUTION_FILE}: {len(unknown_index_ids)} ground-truth ids are not in index.csv "
            f"(first: {_examples(unknown_index_ids)})"
        )
    unknown_queries = [query_id for query_id in query_ids if query_id not in test_ids]
    if unknown_queries:
        raise ValueError(
            f"{root / GLDV2_SOLUTION_FILE}: {len(unknown_queries)} query ids are not in test.csv "
            f"(first: {_examples(unknown_queries)})"
        )
    query_paths = [gldv2_image_path(root, "test", query_id) for query_id in query_ids]
    database_paths = [gldv2_image_path(root, "index", image_id) for image_id in database_ids]
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


# --- leave-one-out benchmarks: a folder, the shared real photos --------------------------------------------


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
                f"{name}: ignored images not in the benchmark (first: {_examples(map(str, unknown))})"
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
    _require_file(gt_path, "the shared real-photo benchmark lives in ../shared/realphotos")
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


# --- registry ---------------------------------------------------------------------------------------------


def _revisited_loader(name: str, with_r1m: bool) -> Callable[[Path], RetrievalBenchmark]:
    def load(root: Path) -> RetrievalBenchmark:
        return load_revisited(root, name, distractor_list=root / R1M_LIST if with_r1m else None)

    return load


BENCHMARK_LOADERS: dict[str, Callable[[Path], RetrievalBenchmark]] = {
    **{name: _revisited_loader(name, with_r1m=False) for name in REVISITED_NAMES},
    **{f"{name}+1m": _revisited_loader(name, with_r1m=True) for name in ("roxford5k", "rparis6k")},
    "gldv2": lambda root: load_gldv2_retrieval(root / "gldv2"),
    "gldv2_retrieval": load_gldv2_retrieval,
    "realphotos": lambda root: load_realphotos(root / "realphotos"),
    "folder": load_folder,
}


def load_benchmark(name: str, root: str | Path) -> RetrievalBenchmark:
    """Load a benchmark by name from the data root.

    ``root`` is the folder the downloader fills: ``<root>/roxford5k``, ``<root>/rparis6k``, ``<root>/rdemo``,
    ``<root>/revisitop1m`` (for "roxford5k+1m" / "rparis6k+1m"), ``<root>/gldv2``, ``<root>/realphotos``.
    For "folder" and "gldv2_retrieval" (any GLDv2-format folder, e.g. the demo), ``root`` is that folder itself.
    """
    if name not in BENCHMARK_LOADERS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(BENCHMARK_LOADERS)}")
    return BENCHMARK_LOADERS[name](Path(root))


@dataclass(frozen=True)
class BenchmarkSource:
    """Where a benchmark lies, as a config names it: ``kind`` is a :data:`BENCHMARK_LOADERS` name, ``root`` its
    data folder; ``max_queries`` keeps a fixed, evenly spaced subset of the queries (quick validation runs)."""

    kind: str
    root: str
    max_queries: int | None = None

    def load(self) -> RetrievalBenchmark:
        benchmark = load_benchmark(self.kind, self.root)
        if self.max_queries is not None and self.max_queries < benchmark.num_queries:
            chosen = np.linspace(0, benchmark.num_queries - 1, self.max_queries).round().astype(np.int64)
            benchmark = benchmark.select_queries(np.unique(chosen))
        return benchmark
