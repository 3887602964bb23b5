"""Revisited Oxford/Paris (``roxford5k``, ``rparis6k``, and ``rdemo`` in the same format):
``<root>/<name>/gnd_<name>.pkl`` (``imlist``, ``qimlist``, ``gnd`` with ``easy``/``hard``/``junk``/``bbx``, read
through the restricted unpickler) and ``<root>/<name>/jpg/<image>.jpg``; optionally the R1M distractors appended
to the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.formats.checks import require_file, require_files
from retrieval.benchmark import QueryGroundTruth, RetrievalBenchmark
from retrieval.safe_pickle import load_restricted_pickle

REVISITED_NAMES = ("roxford5k", "rparis6k", "rdemo")


DISTRACTORS_FOLDER = "distractors"


R1M_LIST = Path("revisitop1m") / "revisitop1m.txt"


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
    require_file(list_file, "run `python -m datamodules.download revisitop1m --root <root>`")
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
    require_file(gnd_path, f"run `python -m datamodules.download {name} --root {root}`")
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
