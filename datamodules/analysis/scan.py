"""The resumable parallel scan (:func:`scan_images`): ``train.csv`` streamed in chunks of rows, each chunk
analysed in a process pool and written as one CSV into ``<work_dir>/chunks/`` (atomically), so a rerun over
the same folder skips the chunks already written and ends with the same rows. A few chunks are in flight at a
time.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from datamodules.analysis.flags import SCAN_COLUMNS
from datamodules.analysis.image_properties import ImageAnalysisSettings, ImageProperties, analyze_image
from datamodules.formats.gldv2 import image_path, read_train_clean_csv

log = logging.getLogger(__name__)


STATE_FILE = "scan_state.json"


CHUNK_FOLDER = "chunks"


def _format(value: bool | int | float | str | None) -> str:
    """A CSV cell: booleans as 1/0, floats with three decimals, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def scan_row(
    image_id: str, landmark_id: int, in_clean: bool | None, properties: ImageProperties
) -> list[str]:
    """The chunk-file row (``SCAN_COLUMNS``) of one image."""
    values = asdict(properties)
    values["phash"] = f"{properties.phash:016x}" if properties.phash is not None else None
    values.update(id=image_id, landmark_id=landmark_id, in_clean=in_clean)
    return [_format(values[column]) for column in SCAN_COLUMNS]


@dataclass(frozen=True)
class ChunkTask:
    """Rows of ``train.csv`` to analyse in one worker call: ``(id, landmark_id)`` and whether each is in
    ``train_clean.csv`` (None when there is no such file)."""

    root: str
    rows: tuple[tuple[str, int], ...]
    in_clean: tuple[bool | None, ...]
    settings: ImageAnalysisSettings


def analyze_chunk(task: ChunkTask) -> list[list[str]]:
    """The chunk-file rows of every image of a chunk (run in a worker process)."""
    root = Path(task.root)
    return [
        scan_row(
            image_id, landmark_id, in_clean, analyze_image(image_path(root, "train", image_id), task.settings)
        )
        for (image_id, landmark_id), in_clean in zip(task.rows, task.in_clean, strict=True)
    ]


def iter_train_rows(path: Path) -> Iterator[tuple[str, int]]:
    """(id, landmark_id) rows of ``train.csv``, streamed (the file of GLDv2 has 4.1 million rows)."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"id", "landmark_id"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns id,url,landmark_id; found {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            try:
                yield row["id"], int(row["landmark_id"])
            except (TypeError, ValueError) as error:
                raise ValueError(f"{path}:{line}: bad landmark_id {row.get('landmark_id')!r}") from error


def file_digest(path: Path) -> str | None:
    """SHA-256 of a file's bytes (hex), or ``None`` when there is no such file."""
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_chunk(path: Path, rows: list[list[str]]) -> None:
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(SCAN_COLUMNS)
        writer.writerows(rows)
    temporary.replace(path)


def check_resume_state(state_path: Path, state: dict[str, Any]) -> None:
    """Record the inputs of resumable work in ``state_path``, or, when it exists, check that they are the same.

    Raises:
        ValueError: an input changed since the earlier run started (its partial results would not fit).
    """
    state = json.loads(json.dumps(state))  # as it reads back: tuples become lists
    if state_path.is_file():
        previous = json.loads(state_path.read_text())
        changed = sorted(key for key in state.keys() | previous.keys() if state.get(key) != previous.get(key))
        if changed:
            raise ValueError(
                f"cannot resume from {state_path.parent}: {', '.join(changed)} changed since it started "
                f"(was {[previous.get(key) for key in changed]}, now {[state.get(key) for key in changed]}); "
                "start a new run instead"
            )
        return
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps(state, indent=1) + "\n")


def scan_images(
    root: str | Path,
    work_dir: str | Path,
    settings: ImageAnalysisSettings | None = None,
    chunk_size: int = 500,
    num_workers: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Analyse every image of ``<root>/train.csv``, in chunks written to ``<work_dir>/chunks/``.

    Chunks present in ``work_dir`` from an earlier, interrupted call with the same ``train.csv``,
    ``train_clean.csv``, ``chunk_size`` and ``settings`` are kept, not recomputed.

    Args:
        root: a GLDv2-format folder (``train.csv``, optional ``train_clean.csv``, ``train/a/b/c/<id>.jpg``).
        work_dir: the folder of the chunk files and of the scan state.
        settings: how images are analysed (None: the defaults).
        chunk_size: images per chunk file (and per worker call).
        num_workers: worker processes; ``None`` is one per CPU core, 0 analyses in this process.
        progress: show a progress bar.

    Returns:
        the chunk files, in ``train.csv`` order.
    """
    root, work_dir = Path(root), Path(work_dir)
    settings = settings or ImageAnalysisSettings()
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    num_workers = (os.cpu_count() or 1) if num_workers is None else num_workers
    if num_workers < 0:
        raise ValueError(f"num_workers must be non-negative, got {num_workers}")
    train_csv, clean_csv = root / "train.csv", root / "train_clean.csv"
    if not train_csv.is_file():
        raise FileNotFoundError(f"{train_csv} not found; see the README for the GLDv2 file layout")
    chunk_folder = work_dir / CHUNK_FOLDER
    chunk_folder.mkdir(parents=True, exist_ok=True)
    check_resume_state(
        work_dir / STATE_FILE,
        {
            "train_csv_sha256": file_digest(train_csv),
            "train_clean_csv_sha256": file_digest(clean_csv),
            "chunk_size": chunk_size,
            "settings": asdict(settings),
        },
    )
    clean_ids = (
        {image_id for ids in read_train_clean_csv(clean_csv).values() for image_id in ids}
        if clean_csv.is_file()
        else None
    )
    num_rows = sum(1 for _ in iter_train_rows(train_csv))  # also checks every row before any work
    num_chunks = math.ceil(num_rows / chunk_size)
    chunk_paths = [chunk_folder / f"chunk_{index:06d}.csv" for index in range(num_chunks)]
    done = sum(1 for path in chunk_paths if path.is_file())
    if done:
        log.info("scan: resuming in %s, %d of %d chunks already done", work_dir, done, num_chunks)

    def tasks() -> Iterator[tuple[Path, ChunkTask]]:
        rows = iter_train_rows(train_csv)
        for path in chunk_paths:
            chunk = tuple(itertools.islice(rows, chunk_size))
            if path.is_file():
                continue
            in_clean = tuple(None if clean_ids is None else image_id in clean_ids for image_id, _ in chunk)
            yield path, ChunkTask(str(root), chunk, in_clean, settings)

    bar = tqdm(total=num_rows, desc="analysing images", unit="img", disable=not progress)
    bar.update(
        sum(
            min(chunk_size, num_rows - index * chunk_size)
            for index, path in enumerate(chunk_paths)
            if path.is_file()
        )
    )
    try:
        if num_workers == 0:
            for path, task in tasks():
                _write_chunk(path, analyze_chunk(task))
                bar.update(len(task.rows))
        else:
            _scan_in_pool(tasks(), num_workers, bar)
    finally:
        bar.close()
    return chunk_paths


def _scan_in_pool(tasks: Iterator[tuple[Path, ChunkTask]], num_workers: int, bar: tqdm) -> None:
    """Run the chunk tasks in ``num_workers`` processes, at most two per worker in flight (bounded memory)."""
    with ProcessPoolExecutor(max_workers=num_workers) as executor:
        pending: dict[Future[list[list[str]]], tuple[Path, int]] = {}

        def finish(futures: Iterable[Future[list[list[str]]]]) -> None:
            for future in futures:
                path, size = pending.pop(future)
                _write_chunk(path, future.result())
                bar.update(size)

        for path, task in tasks:
            if len(pending) >= 2 * num_workers:
                finish(wait(pending, return_when=FIRST_COMPLETED).done)
            pending[executor.submit(analyze_chunk, task)] = (path, len(task.rows))
        finish(wait(pending).done)


def iter_chunk_rows(chunk_paths: Sequence[Path]) -> Iterator[dict[str, str]]:
    """The rows of the chunk files, in order, as ``SCAN_COLUMNS`` → text."""
    for path in chunk_paths:
        with open(path, newline="", encoding="utf-8") as handle:
            yield from csv.DictReader(handle)
