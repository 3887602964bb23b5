"""Benchmark structure, restricted unpickler, readers of the real file formats, and the downloader.

Every fixture is written in tmp_path in the exact format of the real files; nothing touches the network.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

from datamodules import download
from datamodules.benchmarks import (
    load_benchmark,
    load_folder,
    load_gldv2_retrieval,
    load_realphotos,
    load_revisited,
)
from datamodules.download import DownloadError, fetch, published_md5, safe_extract
from retrieval.benchmark import QueryGroundTruth, RetrievalBenchmark
from retrieval.safe_pickle import load_restricted_pickle

# --- fixtures ---------------------------------------------------------------------------------------------


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


def tiny_benchmark(
    ground_truth: list[QueryGroundTruth], num_database: int, protocol: str = "plain"
) -> RetrievalBenchmark:
    return RetrievalBenchmark(
        name="tiny",
        protocol=protocol,  # type: ignore[arg-type]
        query_paths=[Path(f"q{index}.jpg") for index in range(len(ground_truth))],
        database_paths=[Path(f"d{index}.jpg") for index in range(num_database)],
        ground_truth=ground_truth,
        query_ids=[f"q{index}" for index in range(len(ground_truth))],
        database_ids=[f"d{index}" for index in range(num_database)],
        query_boxes=[None] * len(ground_truth),
    )


# --- the benchmark structure ------------------------------------------------------------------------------


def test_ground_truth_is_sorted_read_only_int64() -> None:
    truth = QueryGroundTruth(easy=[3, 1], junk=np.array([7], dtype=np.int32))
    assert truth.easy.tolist() == [1, 3]
    assert truth.easy.dtype == np.int64 and truth.junk.dtype == np.int64
    assert truth.hard.size == 0
    with pytest.raises(ValueError):
        truth.easy[0] = 5


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"easy": [1, 1]}, "more than once"),
        ({"easy": [-1]}, "negative"),
        ({"easy": [0.5]}, "integer"),
        ({"easy": [[1]]}, "1-D"),
        ({"easy": [1], "junk": [1]}, "both easy and junk"),
        ({"easy": [1], "hard": [1]}, "both easy and hard"),
        ({"easy": [1], "usage": "Ignored"}, "usage"),
    ],
)
def test_ground_truth_rejects_bad_input(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QueryGroundTruth(**arguments)


def test_benchmark_rejects_inconsistent_input() -> None:
    truth = QueryGroundTruth(easy=[0])
    with pytest.raises(ValueError, match="database index 2"):
        tiny_benchmark([QueryGroundTruth(easy=[2])], num_database=2)
    with pytest.raises(ValueError, match="protocol"):
        tiny_benchmark([truth], num_database=2, protocol="kaggle")
    with pytest.raises(ValueError, match="usage Public or Private"):
        tiny_benchmark([truth], num_database=2, protocol="gldv2")
    with pytest.raises(ValueError, match="hard positives"):
        tiny_benchmark([QueryGroundTruth(easy=[0], hard=[1])], num_database=2)
    benchmark = tiny_benchmark([truth], num_database=2)
    with pytest.raises(ValueError, match="query_boxes"):
        RetrievalBenchmark(**{**vars(benchmark), "query_boxes": []})
    with pytest.raises(ValueError, match="empty"):
        RetrievalBenchmark(**{**vars(benchmark), "query_boxes": [(5.0, 0.0, 5.0, 1.0)]})
    with pytest.raises(ValueError, match="more than once"):
        RetrievalBenchmark(**{**vars(benchmark), "database_ids": ["d0", "d0"]})


def test_select_queries_keeps_database() -> None:
    benchmark = tiny_benchmark([QueryGroundTruth(easy=[index]) for index in range(3)], num_database=3)
    selected = benchmark.select_queries([2, 0])
    assert selected.query_ids == ["q2", "q0"]
    assert [truth.easy.tolist() for truth in selected.ground_truth] == [[2], [0]]
    assert selected.database_ids == benchmark.database_ids
    with pytest.raises(ValueError, match="outside"):
        benchmark.select_queries([3])


def test_subsample_keeps_referenced_images_and_remaps_indices() -> None:
    ground_truth = [QueryGroundTruth(easy=[2 * index], junk=[2 * index + 1]) for index in range(10)]
    benchmark = tiny_benchmark(ground_truth, num_database=40)
    small = benchmark.subsample(max_queries=3, max_database=8, seed=1)
    assert small.num_queries == 3 and small.num_database == 8
    for query_id, truth in zip(small.query_ids, small.ground_truth, strict=True):
        query = int(query_id[1:])
        # The same images as before, under their new indices.
        assert small.database_ids[int(truth.easy[0])] == f"d{2 * query}"
        assert small.database_ids[int(truth.junk[0])] == f"d{2 * query + 1}"
    assert small.database_ids == sorted(small.database_ids, key=lambda image_id: int(image_id[1:]))
    assert benchmark.subsample(3, 8, seed=1).database_ids == small.database_ids
    # Referenced images are never dropped, even past max_database.
    assert benchmark.subsample(max_queries=10, max_database=4).num_database == 20


# --- restricted unpickler ---------------------------------------------------------------------------------


def test_restricted_pickle_reads_python2_era_gnd(tmp_path: Path) -> None:
    path = tmp_path / "gnd.pkl"
    path.write_bytes(python2_era_pickle(revisited_gnd()))
    assert b"cnumpy.core.multiarray\n_reconstruct" in path.read_bytes()
    content = load_restricted_pickle(path)
    assert content["imlist"] == REVISITED_IMAGES
    assert content["gnd"][0]["easy"].tolist() == [0]
    assert content["gnd"][0]["easy"].dtype == np.int64
    assert content["gnd"][1]["bbx"].tolist() == [10.0, 20.0, 30.0, 40.0]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_pickle_reads_python3_pickles(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "gnd.pkl"
    content = {"a": [np.arange(3), np.float32(1.5), (1, "x")], "b": np.zeros((2, 2))}
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    loaded = load_restricted_pickle(path)
    assert loaded["a"][0].tolist() == [0, 1, 2]
    assert loaded["a"][1] == np.float32(1.5)
    assert loaded["b"].shape == (2, 2)


class _RunsCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (self.command,))


def test_restricted_pickle_refuses_code_without_side_effect(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"gnd": [_RunsCommand(f"touch {marker}")]}, protocol=2))
    with pytest.raises(ValueError, match=r"refusing to load global '(posix|os|nt)\.system'"):
        load_restricted_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize("target", [eval, __import__, getattr])
def test_restricted_pickle_refuses_builtins(tmp_path: Path, target: Any) -> None:
    class Reducer:
        def __reduce__(self) -> tuple[Any, tuple[str, ...]]:
            return (target, ("os",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Reducer(), protocol=2))
    # Protocol 2 writes the Python 2 module name, __builtin__.
    with pytest.raises(ValueError, match=rf"'__builtin__\.{target.__name__}'"):
        load_restricted_pickle(path)


def test_restricted_pickle_reports_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "truncated.pkl"
    path.write_bytes(pickle.dumps({"imlist": ["a"] * 10}, protocol=2)[:-7])
    with pytest.raises(ValueError, match=r"truncated\.pkl"):
        load_restricted_pickle(path)


# --- Revisited reader -------------------------------------------------------------------------------------


def test_load_revisited(tmp_path: Path) -> None:
    folder = write_revisited(tmp_path)
    benchmark = load_revisited(tmp_path, "roxford5k")
    assert benchmark.name == "roxford5k" and benchmark.protocol == "revisited"
    assert benchmark.query_ids == REVISITED_QUERIES
    assert benchmark.query_paths[0] == folder / "jpg" / "all_souls_000013.jpg"
    assert benchmark.database_paths[3] == folder / "jpg" / "radcliffe_000001.jpg"
    assert benchmark.database_ids == REVISITED_IMAGES
    assert benchmark.query_boxes == [(136.5, 34.1, 648.5, 955.7), (10.0, 20.0, 30.0, 40.0)]
    first, second = benchmark.ground_truth
    assert (first.easy.tolist(), first.hard.tolist(), first.junk.tolist()) == ([0], [1], [4])
    assert (second.easy.tolist(), second.hard.tolist(), second.junk.tolist()) == ([2], [], [3, 4])


def test_load_revisited_with_r1m_distractors(tmp_path: Path) -> None:
    write_revisited(tmp_path)
    r1m = tmp_path / "revisitop1m"
    lines = ["0/00/00000aaaa.jpg", "0/01/00001bbbb"]  # listed with and without extension
    for line in ("0/00/00000aaaa.jpg", "0/01/00001bbbb.jpg"):
        write_image(r1m / "jpg" / line)
    (r1m / "revisitop1m.txt").write_text("\n".join(lines) + "\n")
    benchmark = load_benchmark("roxford5k+1m", tmp_path)
    assert benchmark.name == "roxford5k+1m"
    assert benchmark.num_database == len(REVISITED_IMAGES) + 2
    assert benchmark.database_paths[-1] == r1m / "jpg" / "0/01/00001bbbb.jpg"
    # gnd indices still point at the original images.
    assert benchmark.database_ids[int(benchmark.ground_truth[0].easy[0])] == "all_souls_000001"


def test_load_revisited_reports_missing_images(tmp_path: Path) -> None:
    folder = write_revisited(tmp_path)
    (folder / "jpg" / "bodleian_000001.jpg").unlink()
    (folder / "jpg" / "magdalen_1.jpg").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"2 of 5 listed images are missing \(first: .*bodleian_000001"
    ):
        load_revisited(tmp_path, "roxford5k")


def test_load_revisited_without_gnd_says_how_to_download(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"datamodules\.download rparis6k"):
        load_revisited(tmp_path, "rparis6k")


# --- GLDv2 reader -----------------------------------------------------------------------------------------


def test_load_gldv2_retrieval(tmp_path: Path) -> None:
    root = write_gldv2(tmp_path / "gldv2")
    benchmark = load_benchmark("gldv2", tmp_path)
    assert benchmark.protocol == "gldv2"
    # Ignored rows and rows whose images are "None" are not queries.
    assert benchmark.query_ids == [GLDV2_TEST[0], GLDV2_TEST[2]]
    assert benchmark.database_ids == GLDV2_INDEX
    assert [truth.easy.tolist() for truth in benchmark.ground_truth] == [[0, 2], [3]]
    assert [truth.usage for truth in benchmark.ground_truth] == ["Public", "Private"]
    assert benchmark.query_paths[0] == root / "test" / "0" / "0" / "0" / f"{GLDV2_TEST[0]}.jpg"


def test_load_gldv2_reports_unknown_ids_and_missing_images(tmp_path: Path) -> None:
    root = write_gldv2(tmp_path)
    gldv2_image(root, "index", GLDV2_INDEX[1]).unlink()
    with pytest.raises(FileNotFoundError, match="1 of 4 listed images are missing"):
        load_gldv2_retrieval(root)
    write_csv(
        root / "retrieval_solution_v2.1.csv",
        ["id", "images", "Usage"],
        [[GLDV2_TEST[0], "feedfeedfeedfeed", "Public"]],
    )
    with pytest.raises(ValueError, match=r"1 ground-truth ids are not in index\.csv"):
        load_gldv2_retrieval(root)
    write_csv(
        root / "retrieval_solution_v2.1.csv",
        ["id", "images", "Usage"],
        [[GLDV2_TEST[0], GLDV2_INDEX[0], "Secret"]],
    )
    with pytest.raises(ValueError, match="unknown Usage"):
        load_gldv2_retrieval(root)


# --- folder and real-photo readers ------------------------------------------------------------------------


def test_load_folder_leave_one_out(tmp_path: Path) -> None:
    for relative in (
        "eiffel/a.jpg",
        "eiffel/b.jpg",
        "eiffel/c.JPG",
        "louvre/x.jpg",
        "louvre/y.png",
        "distractors/n.jpg",
    ):
        write_image(tmp_path / relative)
    (tmp_path / "eiffel" / "notes.txt").write_text("not an image")
    benchmark = load_benchmark("folder", tmp_path)
    assert benchmark.protocol == "plain"
    assert benchmark.query_ids == [
        "eiffel/a.jpg",
        "eiffel/b.jpg",
        "eiffel/c.JPG",
        "louvre/x.jpg",
        "louvre/y.png",
    ]
    assert benchmark.database_ids == [*benchmark.query_ids, "distractors/n.jpg"]
    # Query b (index 1): positives a and c, itself junk.
    assert benchmark.ground_truth[1].easy.tolist() == [0, 2]
    assert benchmark.ground_truth[1].junk.tolist() == [1]
    assert benchmark.ground_truth[4].easy.tolist() == [3]


def test_load_folder_without_landmarks_is_refused(tmp_path: Path) -> None:
    write_image(tmp_path / "distractors" / "n.jpg")
    with pytest.raises(ValueError, match="no landmark subfolder"):
        load_folder(tmp_path)


def test_load_realphotos_fixture_with_ignore(tmp_path: Path) -> None:
    gt = {
        "scenes": {
            "tower": ["images/tower/000.jpg", "images/tower/001.jpg", "images/tower/002.jpg"],
            "bridge": ["images/bridge/000.jpg", "images/bridge/001.jpg"],
        },
        "ignore": {"tower": ["images/tower/002.jpg", "images/distractors/0001.jpg"]},
        "distractors": ["images/distractors/0000.jpg", "images/distractors/0001.jpg"],
        "sources": {},
    }
    for paths in (*gt["scenes"].values(), gt["distractors"]):
        for relative in paths:
            write_image(tmp_path / relative)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    benchmark = load_realphotos(tmp_path)
    assert benchmark.num_queries == 5 and benchmark.num_database == 7
    # Database: tower 0-2, bridge 3-4, distractors 5-6. Query tower/000: positive tower/001 only; junk is
    # itself and the ignored tower/002 and distractor 0001.
    assert benchmark.ground_truth[0].easy.tolist() == [1]
    assert benchmark.ground_truth[0].junk.tolist() == [0, 2, 6]
    # The ignored photo is still a query; its positives are the non-ignored tower photos.
    assert benchmark.ground_truth[2].easy.tolist() == [0, 1]
    assert benchmark.ground_truth[3].easy.tolist() == [4]


def test_unknown_benchmark_name() -> None:
    with pytest.raises(ValueError, match="unknown benchmark"):
        load_benchmark("oxford105k", Path("."))


# --- downloader -------------------------------------------------------------------------------------------


def test_fetch_fails_fast_and_clearly_without_network(tmp_path: Path) -> None:
    # Port 9 (discard) on the loopback refuses the connection at once.
    with pytest.raises(DownloadError, match=r"cannot download http://127\.0\.0\.1:9/.*network"):
        fetch("http://127.0.0.1:9/oxbuild_images-v1.tgz", tmp_path / "oxbuild_images-v1.tgz", timeout=2)
    assert not (tmp_path / "oxbuild_images-v1.tgz").exists()


def test_cli_reports_offline_with_exit_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def offline(request: urllib.request.Request, timeout: float) -> None:
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert download.main(["roxford5k", "--root", str(tmp_path), "--timeout", "1"]) == 1
    error = capsys.readouterr().err
    assert (
        "error: cannot download http://cmp.felk.cvut.cz/revisitop/data/datasets/roxford5k/gnd_roxford5k.pkl"
        in error
    )
    assert "name resolution" in error


class FakeResponse(io.BytesIO):
    def __init__(self, body: bytes, status: int = 200) -> None:
        super().__init__(body)
        self.status = status
        self.headers = {"Content-Length": str(len(body))}


class FakeServer:
    """Serves ``files`` (url -> bytes) through a patched urlopen, honouring Range when ``ranges`` is set."""

    def __init__(self, files: dict[str, bytes], ranges: bool = True) -> None:
        self.files = files
        self.ranges = ranges
        self.requests: list[tuple[str, str | None]] = []

    def urlopen(self, request: urllib.request.Request, timeout: float) -> FakeResponse:
        url = request.full_url
        byte_range = request.get_header("Range")
        self.requests.append((url, byte_range))
        if url not in self.files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)  # type: ignore[arg-type]
        body = self.files[url]
        if byte_range and self.ranges:
            start = int(byte_range.removeprefix("bytes=").removesuffix("-"))
            return FakeResponse(body[start:], status=206)
        return FakeResponse(body)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    fake = FakeServer({})
    monkeypatch.setattr(urllib.request, "urlopen", fake.urlopen)
    yield fake


def test_fetch_resumes_a_partial_download(server: FakeServer, tmp_path: Path) -> None:
    server.files["http://host/file.bin"] = b"abcdef"
    (tmp_path / "file.bin.part").write_bytes(b"abc")
    fetch("http://host/file.bin", tmp_path / "file.bin")
    assert (tmp_path / "file.bin").read_bytes() == b"abcdef"
    assert server.requests == [("http://host/file.bin", "bytes=3-")]
    assert not (tmp_path / "file.bin.part").exists()
    # A finished file is not fetched again.
    fetch("http://host/file.bin", tmp_path / "file.bin")
    assert len(server.requests) == 1


def test_fetch_restarts_when_server_ignores_range(server: FakeServer, tmp_path: Path) -> None:
    server.ranges = False
    server.files["http://host/file.bin"] = b"abcdef"
    (tmp_path / "file.bin.part").write_bytes(b"abc")
    fetch("http://host/file.bin", tmp_path / "file.bin")
    assert (tmp_path / "file.bin").read_bytes() == b"abcdef"


def test_fetch_verifies_md5(server: FakeServer, tmp_path: Path) -> None:
    server.files["http://host/images_000.tar"] = b"payload"
    server.files["http://host/md5.images_000.txt"] = (
        f"{hashlib.md5(b'other').hexdigest()}  images_000.tar\n".encode()
    )
    expected = published_md5("http://host/md5.images_000.txt", timeout=1)
    with pytest.raises(DownloadError, match="differs from the published"):
        fetch("http://host/images_000.tar", tmp_path / "images_000.tar", expected_md5=expected)
    assert not (tmp_path / "images_000.tar").exists() and not (tmp_path / "images_000.tar.part").exists()
    fetch(
        "http://host/images_000.tar",
        tmp_path / "images_000.tar",
        expected_md5=hashlib.md5(b"payload").hexdigest(),
    )
    assert (tmp_path / "images_000.tar").read_bytes() == b"payload"


def test_http_error_is_reported(server: FakeServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch("http://host/missing.tgz", tmp_path / "missing.tgz")


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("member", ["../evil.txt", "a/../../evil.txt", "/tmp/evil-absolute.txt"])
def test_safe_extract_refuses_path_traversal(tmp_path: Path, member: str) -> None:
    archive = make_tar(tmp_path / "evil.tar", {member: b"owned"})
    destination = tmp_path / "out" / "jpg"
    with pytest.raises(ValueError, match="leaves the destination"):
        safe_extract(archive, destination)
    assert not (tmp_path / "out" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_refuses_links(tmp_path: Path) -> None:
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("jpg/passwd")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(ValueError, match="links"):
        safe_extract(archive, tmp_path / "out")


def test_safe_extract_keeps_or_flattens_folders(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "paris_1.tgz",
        {"paris/louvre/paris_louvre_000000.jpg": b"1", "paris/eiffel/e.jpg": b"2"},
        "w:gz",
    )
    assert safe_extract(archive, tmp_path / "flat", flatten=True) == 2
    assert sorted(path.name for path in (tmp_path / "flat").iterdir()) == ["e.jpg", "paris_louvre_000000.jpg"]
    safe_extract(archive, tmp_path / "nested")
    assert (tmp_path / "nested" / "paris" / "louvre" / "paris_louvre_000000.jpg").read_bytes() == b"1"


def test_download_gldv2_end_to_end_with_md5(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A one-archive-per-split GLDv2 served from memory; the files then load as a benchmark.
    monkeypatch.setattr(download, "GLDV2_NUM_ARCHIVES", {"index": 1, "test": 1})
    source = write_gldv2(tmp_path / "source")
    base = download.GLDV2_URL
    for name, remote in (
        ("index.csv", "metadata/index.csv"),
        ("test.csv", "metadata/test.csv"),
        ("retrieval_solution_v2.1.csv", "ground_truth/retrieval_solution_v2.1.csv"),
    ):
        server.files[f"{base}/{remote}"] = (source / name).read_bytes()
    for split in ("index", "test"):
        tar_path = tmp_path / f"{split}.tar"
        with tarfile.open(tar_path, "w") as tar:
            tar.add(source / split, arcname=".")
        body = tar_path.read_bytes()
        server.files[f"{base}/{split}/images_000.tar"] = body
        server.files[f"{base}/md5sum/{split}/md5.images_000.txt"] = (
            f"{hashlib.md5(body).hexdigest()}  images_000.tar\n".encode()
        )
    root = tmp_path / "data"
    assert download.main(["gldv2", "--root", str(root)]) == 0
    benchmark = load_benchmark("gldv2", root)
    assert benchmark.query_ids == [GLDV2_TEST[0], GLDV2_TEST[2]]
    assert not (root / "gldv2" / ".downloads" / "index-images_000.tar").exists()  # removed after extraction
    # A second run finds everything done and asks the server for nothing.
    num_requests = len(server.requests)
    assert download.main(["gldv2", "--root", str(root)]) == 0
    assert len(server.requests) == num_requests
