"""Image-table benchmark: how long a collection's list of images takes to write and to load at 1M images, as
columns (``images.npz``, :mod:`retrieval.image_table`) and as the JSON object collection.json held before.

    python benchmarks/image_table.py [--num-images 1000000]

Ids and paths shaped like GLDv2's (``0/1/2/012abc…`` hexadecimal ids, ``.jpg`` paths), file stats as integers.
Prints and writes ``benchmarks/results/image_table.{json,md}``: seconds to write and to load (load: into the
id → path dict that opening a collection builds), bytes on disk, and the JSON / columns ratios.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from benchmarks.common import write_results
from experiments.tables import markdown_table
from retrieval.image_table import ImageTable

Result = TypeVar("Result")


def timed(work: Callable[[], Result]) -> tuple[float, Result]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-images", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ids = [
        f"{value[0]}/{value[1]}/{value[2]}/{value}"
        for value in (f"{n:016x}" for n in rng.integers(0, 2**63, args.num_images))
    ]
    paths = {image_id: f"{image_id}.jpg" for image_id in ids}
    files = {
        image_id: [int(size), 1_700_000_000_000_000_000 + index]
        for index, (image_id, size) in enumerate(
            zip(ids, rng.integers(10_000, 900_000, len(ids)), strict=True)
        )
    }
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        table_path, json_path = Path(folder) / "images.npz", Path(folder) / "collection.json"
        write_columns, _ = timed(lambda: ImageTable.of(ids, paths, files).save(table_path))

        def load_columns() -> dict[str, str]:
            table = ImageTable.load(table_path)
            return dict(zip(table.ids, table.paths, strict=True))

        load_columns_s, loaded = timed(load_columns)
        assert loaded == paths
        write_json, _ = timed(
            lambda: json_path.write_text(json.dumps({"images": paths, "files": files}, indent=2))
        )
        load_json, manifest = timed(lambda: json.loads(json_path.read_text())["images"])
        assert manifest == paths
        for name, write_s, load_s, size in (
            ("columns (images.npz)", write_columns, load_columns_s, table_path.stat().st_size),
            ("JSON (collection.json, format 2)", write_json, load_json, json_path.stat().st_size),
        ):
            rows.append(
                {
                    "format": name,
                    "write_s": write_s,
                    "load_s": load_s,
                    "bytes": size,
                    "bytes_per_image": size / len(ids),
                }
            )
    ratio = rows[1]["load_s"] / rows[0]["load_s"]
    markdown = "\n".join(
        [
            f"# Image table: {args.num_images:,} images",
            "",
            markdown_table(
                ["format", "write (s)", "load (s)", "MB on disk", "bytes / image"],
                [
                    [
                        row["format"],
                        f"{row['write_s']:.2f}",
                        f"{row['load_s']:.2f}",
                        f"{row['bytes'] / 1e6:.1f}",
                        f"{row['bytes_per_image']:.0f}",
                    ]
                    for row in rows
                ],
            ),
            "",
            f"Loading the columns is {ratio:.1f}× faster than the JSON; load = into the id → path dict a collection opens with.",
        ]
    )
    print(markdown)
    write_results(
        "image_table",
        {"num_images": args.num_images, "rows": rows, "load_ratio_json_to_columns": ratio},
        markdown,
    )


if __name__ == "__main__":
    main()
