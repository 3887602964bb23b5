"""Checks the readers share: every listed file exists (or a count and examples of the missing ones), CSV files
have their columns.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

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


def require_file(path: Path, hint: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; {hint}")


def read_csv_rows(path: Path, required_columns: Sequence[str]) -> list[dict[str, str]]:
    require_file(path, "run `python -m datamodules.download gldv2 --root <root>`")
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        missing = [column for column in required_columns if column not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}")
        return list(reader)


def first_examples(values: Iterable[str]) -> str:
    return ", ".join(list(values)[:_EXAMPLES_SHOWN])
