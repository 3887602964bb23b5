"""Download the evaluation benchmarks from their official locations.

    python -m datamodules.download {roxford5k,rparis6k,revisitop1m,gldv2} --root DIR

writes the layout that :func:`datamodules.formats.sources.load_benchmark` reads:

- ``DIR/roxford5k/jpg/*.jpg`` and ``DIR/roxford5k/gnd_roxford5k.pkl`` (same for ``rparis6k``): the Oxford and
  Paris Buildings images from robots.ox.ac.uk, the revisited ground truth from cmp.felk.cvut.cz (revisitop).
- ``DIR/revisitop1m/jpg/...`` and ``DIR/revisitop1m/revisitop1m.txt``: the R1M distractors (100 archives).
- ``DIR/gldv2/{index.csv,test.csv,retrieval_solution_v2.1.csv}`` and ``DIR/gldv2/{index,test}/a/b/c/<id>.jpg``
  from the google-landmark S3 bucket; every tar is checked against its published md5.

Downloads resume: finished files are kept, a ``.part`` file continues with an HTTP Range request, and an
extracted archive leaves a marker so that it is not fetched again. Tar members are written one by one and
refused when they are links, devices, absolute paths or contain "..". Without a network the first request
fails within ``--timeout`` seconds with a message saying so. Only GLDv2 publishes checksums; the other files are
taken as served.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.client import HTTPException, HTTPResponse
from pathlib import Path, PurePosixPath

from tqdm import tqdm

log = logging.getLogger(__name__)

OXFORD_IMAGES_URL = "https://www.robots.ox.ac.uk/~vgg/data/oxbuildings/oxbuild_images-v1.tgz"
PARIS_IMAGES_URLS = (
    "https://www.robots.ox.ac.uk/~vgg/data/parisbuildings/paris_1-v1.tgz",
    "https://www.robots.ox.ac.uk/~vgg/data/parisbuildings/paris_2-v1.tgz",
)
REVISITOP_GND_URL = "http://cmp.felk.cvut.cz/revisitop/data/datasets/{name}/gnd_{name}.pkl"
R1M_URL = "http://ptak.felk.cvut.cz/revisitop/revisitop1m"
R1M_NUM_ARCHIVES = 100
GLDV2_URL = "https://s3.amazonaws.com/google-landmark"
GLDV2_NUM_ARCHIVES = {"index": 100, "test": 20}

DATASETS = ("roxford5k", "rparis6k", "revisitop1m", "gldv2")
DEFAULT_TIMEOUT_S = 10.0
_CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """A file could not be fetched or verified; the message says which and what to do."""


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch to ``destination`` (relative to the root), checked against a published md5 if any."""

    url: str
    destination: str
    md5_url: str | None = None


@dataclass(frozen=True)
class RemoteArchive:
    """A tar to fetch, verify and extract into ``extract_to`` (relative to the root).

    ``flatten`` keeps only the file names (the Oxford and Paris tarballs hold one subfolder per landmark).
    """

    url: str
    extract_to: str
    flatten: bool = False
    md5_url: str | None = None

    @property
    def local_name(self) -> str:
        """``<remote folder>-<file name>``: GLDv2 names the index and test tars alike (images_000.tar)."""
        remote = PurePosixPath(self.url)
        return f"{remote.parent.name}-{remote.name}"


def dataset_plan(name: str) -> tuple[list[RemoteFile], list[RemoteArchive]]:
    """The files and archives that make up one dataset, with their official URLs."""
    if name == "roxford5k":
        return (
            [RemoteFile(REVISITOP_GND_URL.format(name=name), f"{name}/gnd_{name}.pkl")],
            [RemoteArchive(OXFORD_IMAGES_URL, f"{name}/jpg", flatten=True)],
        )
    if name == "rparis6k":
        return (
            [RemoteFile(REVISITOP_GND_URL.format(name=name), f"{name}/gnd_{name}.pkl")],
            [RemoteArchive(url, f"{name}/jpg", flatten=True) for url in PARIS_IMAGES_URLS],
        )
    if name == "revisitop1m":
        return (
            [RemoteFile(f"{R1M_URL}/revisitop1m.txt", "revisitop1m/revisitop1m.txt")],
            [
                RemoteArchive(f"{R1M_URL}/jpg/revisitop1m.{number}.tar.gz", "revisitop1m/jpg")
                for number in range(1, R1M_NUM_ARCHIVES + 1)
            ],
        )
    if name == "gldv2":
        files = [
            RemoteFile(f"{GLDV2_URL}/metadata/index.csv", "gldv2/index.csv"),
            RemoteFile(f"{GLDV2_URL}/metadata/test.csv", "gldv2/test.csv"),
            RemoteFile(
                f"{GLDV2_URL}/ground_truth/retrieval_solution_v2.1.csv", "gldv2/retrieval_solution_v2.1.csv"
            ),
        ]
        archives = [
            RemoteArchive(
                f"{GLDV2_URL}/{split}/images_{number:03d}.tar",
                f"gldv2/{split}",
                md5_url=f"{GLDV2_URL}/md5sum/{split}/md5.images_{number:03d}.txt",
            )
            for split, count in GLDV2_NUM_ARCHIVES.items()
            for number in range(count)
        ]
        return files, archives
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")


def _unreachable(url: str, error: BaseException) -> DownloadError:
    reason = getattr(error, "reason", error)
    return DownloadError(
        f"cannot download {url}: {reason}. Check the network connection (no network here?) and rerun; "
        "finished files are kept and partial downloads resume."
    )


def _open(url: str, timeout: float, offset: int = 0) -> tuple[HTTPResponse, int]:
    """Open ``url`` from byte ``offset``; returns the response and the offset its body actually starts at (0 when
    the server sends the whole file, or when the partial file is already as long as the remote one)."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE and offset:
            return _open(url, timeout)
        raise DownloadError(f"cannot download {url}: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError, HTTPException) as error:
        raise _unreachable(url, error) from error
    return response, offset if response.status == HTTPStatus.PARTIAL_CONTENT else 0


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def published_md5(md5_url: str, timeout: float) -> str:
    """The checksum in an md5sum file (``<hex digest>  <file name>``)."""
    response, _ = _open(md5_url, timeout)
    try:
        with response:
            text = response.read().decode("ascii", errors="replace")
    except (OSError, HTTPException) as error:
        raise _unreachable(md5_url, error) from error
    digest = text.split()[0].lower() if text.split() else ""
    if len(digest) != 32 or any(character not in "0123456789abcdef" for character in digest):
        raise DownloadError(f"{md5_url} does not hold an md5 checksum: {text[:80]!r}")
    return digest


def fetch(
    url: str, destination: Path, timeout: float = DEFAULT_TIMEOUT_S, expected_md5: str | None = None
) -> Path:
    """Download ``url`` to ``destination`` unless it is already there, resuming a previous ``.part`` file.

    Raises:
        DownloadError: the server is unreachable, answers with an error, or the md5 does not match (the bad
            file is deleted so that the next run fetches it again).
    """
    if destination.is_file():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    offset = partial.stat().st_size if partial.is_file() else 0
    response, start = _open(url, timeout, offset)
    try:
        with response, partial.open("ab" if start else "wb") as sink:
            remaining = response.headers.get("Content-Length")
            total = start + int(remaining) if remaining is not None else None
            with tqdm(
                total=total, initial=start, unit="B", unit_scale=True, desc=destination.name
            ) as progress:
                while chunk := response.read(_CHUNK_BYTES):
                    sink.write(chunk)
                    progress.update(len(chunk))
    except (OSError, HTTPException) as error:
        raise _unreachable(url, error) from error
    if expected_md5 is not None:
        actual = md5_of(partial)
        if actual != expected_md5:
            partial.unlink()
            raise DownloadError(
                f"{url}: md5 {actual} differs from the published {expected_md5}; the file was deleted, rerun"
            )
    partial.replace(destination)
    return destination


def _member_problem(member: tarfile.TarInfo) -> str | None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        return "its path leaves the destination folder"
    if member.issym() or member.islnk():
        return "links are not extracted"
    if not (member.isfile() or member.isdir()):
        return "only regular files and folders are extracted"
    return None


def safe_extract(archive: Path, destination: Path, flatten: bool = False) -> int:
    """Extract the regular files of a (possibly compressed) tar into ``destination``; returns how many.

    Every member is checked before it is written: absolute paths, ".." components, links and devices raise
    ValueError. With ``flatten`` only file names are kept (subfolders dropped).
    """
    destination = destination.resolve()
    destination.mkdir(parents=True, exist_ok=True)
    num_files = 0
    with tarfile.open(archive) as tar:
        for member in tar:
            problem = _member_problem(member)
            if problem is not None:
                raise ValueError(f"{archive}: refusing member {member.name!r}: {problem}")
            if member.isdir():
                continue
            relative = PurePosixPath(member.name)
            target = (destination / (relative.name if flatten else Path(*relative.parts))).resolve()
            if not target.is_relative_to(destination):
                raise ValueError(
                    f"{archive}: refusing member {member.name!r}: its path leaves the destination"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:
                raise ValueError(f"{archive}: cannot read member {member.name!r}")
            with source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink, _CHUNK_BYTES)
            num_files += 1
    return num_files


def download_dataset(
    name: str, root: Path, timeout: float = DEFAULT_TIMEOUT_S, keep_archives: bool = False
) -> None:
    """Fetch, verify and extract one dataset under ``root``; rerunning continues where it stopped."""
    files, archives = dataset_plan(name)
    downloads = root / name / ".downloads"
    for remote in files:
        expected = published_md5(remote.md5_url, timeout) if remote.md5_url else None
        fetch(remote.url, root / remote.destination, timeout, expected)
    for index, remote_archive in enumerate(archives, start=1):
        marker = downloads / f"{remote_archive.local_name}.extracted"
        if marker.is_file():
            continue
        log.info("[%d/%d] %s", index, len(archives), remote_archive.url)
        expected = published_md5(remote_archive.md5_url, timeout) if remote_archive.md5_url else None
        archive = fetch(remote_archive.url, downloads / remote_archive.local_name, timeout, expected)
        num_files = safe_extract(archive, root / remote_archive.extract_to, flatten=remote_archive.flatten)
        log.info("extracted %d files from %s", num_files, archive.name)
        marker.write_text(f"{num_files}\n")
        if not keep_archives:
            archive.unlink()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument(
        "--root", type=Path, required=True, help="data root; the dataset goes to ROOT/<dataset>"
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per network operation"
    )
    parser.add_argument("--keep-archives", action="store_true", help="keep the tars after extraction")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        download_dataset(arguments.dataset, arguments.root, arguments.timeout, arguments.keep_archives)
    except (DownloadError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    log.info("%s is ready under %s", arguments.dataset, arguments.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
