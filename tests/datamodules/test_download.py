"""The downloader without the network: offline failures are fast and clear, partial downloads resume, md5s are
checked, archives are extracted safely, and the GLDv2 plan runs end to end against a fake server."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from datamodules import download
from datamodules.download import DownloadError, fetch, published_md5, safe_extract
from datamodules.formats.sources import load_benchmark
from tests.datamodules.format_fixtures import (
    GLDV2_TEST,
    write_gldv2,
)


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
