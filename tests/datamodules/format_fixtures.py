"""Fixtures in the exact formats of the real files (Revisited gnd pickles as Python 2 wrote them, GLDv2 CSVs
and a/b/c folders), written into a test's folder."""

from __future__ import annotations

import csv
import io
import pickle
import struct
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image


def write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (120, 30, 200)).save(path, format="JPEG")


class Python2StylePickler(pickle._Pickler):
    """Writes str and bytes as Python 2 ``str`` (SHORT_BINSTRING / BINSTRING), as the original gnd pickles did."""

    dispatch: ClassVar[dict[type, Any]] = dict(pickle._Pickler.dispatch)

    def save_python2_str(self, value: str | bytes) -> None:
        data = value.encode("latin1") if isinstance(value, str) else value
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(value)

    dispatch[str] = save_python2_str
    dispatch[bytes] = save_python2_str


def python2_era_pickle(content: object) -> bytes:
    """A protocol-2 pickle as written by Python 2 and numpy 1.x: Python 2 strings, numpy.core globals."""
    buffer = io.BytesIO()
    Python2StylePickler(buffer, protocol=2).dump(content)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


REVISITED_IMAGES = [
    "all_souls_000001",
    "all_souls_000002",
    "bodleian_000001",
    "radcliffe_000001",
    "magdalen_1",
]
REVISITED_QUERIES = ["all_souls_000013", "bodleian_000007"]


def revisited_gnd() -> dict[str, Any]:
    # Query 0 with numpy arrays (as most pickles carry them), query 1 with plain lists and no hard positive.
    return {
        "imlist": REVISITED_IMAGES,
        "qimlist": REVISITED_QUERIES,
        "gnd": [
            {
                "bbx": [136.5, 34.1, 648.5, 955.7],
                "easy": np.array([0], dtype=np.int64),
                "hard": np.array([1], dtype=np.int64),
                "junk": np.array([4], dtype=np.int64),
            },
            {"bbx": np.array([10.0, 20.0, 30.0, 40.0]), "easy": [2], "hard": [], "junk": [3, 4]},
        ],
    }


def write_revisited(root: Path, name: str = "roxford5k") -> Path:
    folder = root / name
    for image in REVISITED_IMAGES + REVISITED_QUERIES:
        write_image(folder / "jpg" / f"{image}.jpg")
    (folder / f"gnd_{name}.pkl").write_bytes(python2_era_pickle(revisited_gnd()))
    return folder


GLDV2_INDEX = [f"{value:016x}" for value in (0xA1, 0xB2, 0xC3, 0xD4)]
GLDV2_TEST = [f"{value:016x}" for value in (0xE5, 0xF6, 0x17, 0x28)]


def gldv2_image(root: Path, split: str, image_id: str) -> Path:
    return root / split / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


def write_gldv2(root: Path) -> Path:
    write_csv(
        root / "index.csv", ["id", "url"], [[image_id, f"http://x/{image_id}"] for image_id in GLDV2_INDEX]
    )
    write_csv(root / "test.csv", ["id"], [[image_id] for image_id in GLDV2_TEST])
    write_csv(
        root / "retrieval_solution_v2.1.csv",
        ["id", "images", "Usage"],
        [
            [GLDV2_TEST[0], f"{GLDV2_INDEX[2]} {GLDV2_INDEX[0]}", "Public"],
            [GLDV2_TEST[1], "None", "Ignored"],
            [GLDV2_TEST[2], GLDV2_INDEX[3], "Private"],
            [GLDV2_TEST[3], "None", "Private"],
        ],
    )
    for image_id in GLDV2_INDEX:
        write_image(gldv2_image(root, "index", image_id))
    for image_id in GLDV2_TEST:
        write_image(gldv2_image(root, "test", image_id))
    return root
