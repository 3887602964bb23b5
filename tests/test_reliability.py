"""Hostile but legitimate input, and faults, kept from coming back: a corpus generated here (an EPS named like a
photo, HEIC, animated GIF, a 10000x3 strip, a huge JPEG, colliding names, a line break in a name, truncated
files), collections killed mid-build or changed under a reader, worker processes orphaned by a kill, and the
query path agreeing with the index path. The slow part (a real ``kill -9`` of ``index.py`` and a burst of
requests against a real server on 127.0.0.1) is marked ``reliability``: ``make reliability``."""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from retrieval.collection import (
    CURRENT_FILE,
    GENERATIONS,
    IMAGES_FILE,
    CollectionError,
    generation_dir,
    list_images,
)
from retrieval.collection_build import build_collection
from retrieval.descriptor.extract import ExtractionSettings
from retrieval.descriptor.index import create_index
from retrieval.descriptor.network import GlobalDescriptorNet, descriptor_id
from retrieval.image_table import ImageTable
from retrieval.local.features import LocalFeatureExtractor
from retrieval.local.rerank import InliersRerank
from retrieval.local.store import build_feature_store
from retrieval.search_engine import SearchEngine
from serving.app import create_app
from serving.uploads import UploadLimits
from tests.conftest import REPO_ROOT
from tests.local.test_features import textured_scene
from tests.test_images import EPS

SETTINGS = ExtractionSettings(max_side=128, scales=(1.0,), num_workers=0)
EXTRACTOR = LocalFeatureExtractor(max_keypoints=256, max_side=512)


@pytest.fixture(scope="module")
def net() -> GlobalDescriptorNet:
    return GlobalDescriptorNet("tf_efficientnet_lite0", pretrained="efficientnet_lite0_pypi").eval()


def build(folder: Path, collection: Path, net: GlobalDescriptorNet) -> dict:
    return build_collection(
        collection,
        list_images(folder),
        net,
        descriptor_id(net),
        SETTINGS,
        functools.partial(create_index, kind="flat"),
        EXTRACTOR,
    )


def scene_jpeg(path: Path, seed: int, size: tuple[int, int] = (512, 384)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(textured_scene(seed, *size)).convert("RGB")
    image.save(path, quality=90)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A photo folder as users have them: good photos and every kind of file that is not one."""
    folder = tmp_path_factory.mktemp("corpus")
    for seed in range(4):
        scene_jpeg(folder / "places" / f"photo{seed}.jpg", seed)
    scene_jpeg(folder / "collide.jpg", 10)
    Image.fromarray(textured_scene(11)).save(folder / "collide.png")
    frames = [Image.fromarray(textured_scene(12)).convert("RGB"), Image.new("RGB", (512, 384), (0, 90, 0))]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100)
    (folder / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    (folder / "disguised.jpg").write_bytes(EPS)
    (folder / "notes.txt").write_text("a landmark, honestly")
    scene_jpeg(folder / "line\nbreak.jpg", 13)
    half = (folder / "places" / "photo0.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(half[: len(half) // 2])
    (folder / ".hidden.jpg").write_bytes(half)
    return folder


def test_every_file_is_indexed_or_named_with_its_reason(corpus, net, tmp_path):
    listing = list_images(corpus)
    assert set(listing.images) == {
        "places/photo0",
        "places/photo1",
        "places/photo2",
        "places/photo3",
        "collide.jpg",
        "collide.png",
        "animated",
        "disguised",
        "truncated",
    }
    assert "HEIC" in listing.skipped["photo.heic"] and "unsupported file type" in listing.skipped["notes.txt"]
    assert "line break" in listing.skipped["line\nbreak.jpg"]
    summary = build(corpus, tmp_path / "collection", net)  # the odd name does not abort the run
    assert summary["num_images"] == 7  # the GIF's first frame and both colliding files are indexed
    assert "not an image in a format" in summary["skipped"]["disguised.jpg"]
    assert "cannot decode" in summary["skipped"]["truncated.jpg"]
    assert set(summary["skipped"]) == {
        "photo.heic",
        "notes.txt",
        "line\nbreak.jpg",
        "disguised.jpg",
        "truncated.jpg",
    }


def test_an_indexed_image_as_a_query_finds_itself(corpus, net, tmp_path):
    collection = tmp_path / "collection"
    build(corpus, collection, net)
    engine = SearchEngine(collection)
    for image_id in ("places/photo1", "collide.png", "animated"):
        path = engine.paths[image_id]
        indexed = engine.index.search(engine.query_descriptor(path), 1)
        assert indexed.ids[0][0] == image_id and indexed.scores[0][0] > 0.999
        hits = engine.search(path, top_k=1, rerank_config=InliersRerank())
        assert hits[0].image_id == image_id and hits[0].inliers > 100 and hits[0].verified
        others = engine.search(path, top_k=3, rerank_config=InliersRerank(), exclude_query_image=True)
        assert len(others) == 3 and image_id not in [hit.image_id for hit in others]
        assert all(hit.global_score < 0.999 for hit in others)


def test_the_verdict_follows_the_collections_calibration(corpus, net, tmp_path):
    """Default 20 inliers; a calibration written to verdict.json for this setting moves it; global-only and
    geometry-free searches give no verdict."""
    from retrieval.local.rerank import RatioCountRerank
    from retrieval.local.verdict import VerdictThreshold

    collection = tmp_path / "collection"
    build(corpus, collection, net)
    engine = SearchEngine(collection)
    query = engine.paths["places/photo1"]
    method = InliersRerank()
    hits = engine.search(query, top_k=4, rerank_config=method)
    assert all(hit.verified == (hit.inliers >= 20) for hit in hits)
    own_inliers = hits[0].inliers
    engine.verdicts.set(engine.verdict_key(method), VerdictThreshold(own_inliers + 1, "hand"))
    reopened = SearchEngine(collection)
    assert reopened.verdict_threshold(method).min_inliers == own_inliers + 1
    assert reopened.search(query, top_k=1, rerank_config=method)[0].verified is False
    assert reopened.verdict_threshold(None) is None and reopened.verdict_threshold(RatioCountRerank()) is None
    for hit in reopened.search(query, top_k=2) + reopened.search(
        query, top_k=2, rerank_config=RatioCountRerank()
    ):
        assert hit.inliers is None and hit.verified is None


def test_a_build_that_dies_leaves_the_previous_collection_searchable(corpus, net, tmp_path, monkeypatch):
    collection = tmp_path / "collection"
    build(corpus, collection, net)
    before = generation_dir(collection)

    def killed(*arguments, **keywords):
        raise KeyboardInterrupt  # as a kill during the local-feature extraction

    monkeypatch.setattr("retrieval.local.store_parts.build_feature_store", killed)
    with pytest.raises(KeyboardInterrupt):
        build(corpus, collection, net)
    assert generation_dir(collection) == before
    assert (
        SearchEngine(collection).search(corpus / "places" / "photo2.jpg", top_k=1)[0].image_id
        == "places/photo2"
    )
    monkeypatch.undo()
    build(corpus, collection, net)  # the next build clears the partial one
    assert [path.name.endswith(".partial") for path in (collection / GENERATIONS).iterdir()] == [False, False]


def test_an_index_the_collection_is_too_small_for_is_refused_before_any_work(
    corpus, net, tmp_path, monkeypatch
):
    def no_extraction(*arguments, **keywords):
        raise AssertionError("extraction started")

    monkeypatch.setattr("retrieval.collection_build.extract_into_shards", no_extraction)
    collection = tmp_path / "collection"
    ivfpq = functools.partial(create_index, kind="ivfpq", nlist=None, m=8, nbits=8)
    with pytest.raises(ValueError, match="use global_index=flat"):
        build_collection(collection, list_images(corpus), net, descriptor_id(net), SETTINGS, ivfpq, EXTRACTOR)
    assert not collection.exists()


def test_a_failed_build_resumes_from_its_descriptors_and_features(corpus, net, tmp_path, monkeypatch):
    """A build killed after extraction keeps its descriptors and its local features under cache/: the rerun
    extracts nothing again (in this process: num_workers=0), and the cache is gone afterwards."""
    collection = tmp_path / "collection"

    def killed_when_done(*arguments, **keywords):
        build_feature_store(*arguments, **keywords)
        raise KeyboardInterrupt  # as a kill right after the local features

    monkeypatch.setattr("retrieval.local.store_parts.build_feature_store", killed_when_done)
    with pytest.raises(KeyboardInterrupt):
        build(corpus, collection, net)
    monkeypatch.undo()
    assert not (collection / GENERATIONS).exists()  # no generation was begun
    cached = sorted(path.name for path in (collection / "cache").iterdir())
    assert len(cached) == 2 and cached[0].startswith("global-") and cached[1].startswith("local-")
    extracted: list[int] = []
    real_extract = LocalFeatureExtractor.from_path
    monkeypatch.setattr(
        LocalFeatureExtractor,
        "from_path",
        lambda self, *arguments, **keywords: (
            extracted.append(1) or real_extract(self, *arguments, **keywords)
        ),
    )
    monkeypatch.setattr(
        "retrieval.descriptor.shards.extract_descriptors",
        lambda *arguments, **keywords: pytest.fail("global descriptors extracted again"),
    )
    summary = build(corpus, collection, net)
    assert not extracted
    assert summary["num_images"] == 7
    assert not (collection / "cache").exists()  # the generation holds the work now


def test_indexing_again_extracts_only_new_and_changed_files(corpus, net, tmp_path, monkeypatch):
    """Add a photo and rewrite another: the rebuild extracts those two (global and local), reuses the rest, and
    gives the collection a fresh build gives."""
    import retrieval.descriptor.extract as extract

    folder = tmp_path / "photos"
    shutil.copytree(corpus / "places", folder)
    collection = tmp_path / "collection"
    build(folder, collection, net)
    scene_jpeg(folder / "new.jpg", 20)
    scene_jpeg(folder / "photo1.jpg", 21)  # rewritten: same name, another picture
    described: list[str] = []
    extracted: list[str] = []
    real_load, real_from_path = extract.load_pixels, LocalFeatureExtractor.from_path
    monkeypatch.setattr(
        extract,
        "load_pixels",
        lambda path, *a, **k: described.append(Path(path).name) or real_load(path, *a, **k),
    )
    monkeypatch.setattr(
        LocalFeatureExtractor,
        "from_path",
        lambda self, path, *a, **k: extracted.append(Path(path).name) or real_from_path(self, path, *a, **k),
    )
    summary = build(folder, collection, net)
    monkeypatch.undo()
    assert sorted(described) == sorted(extracted) == ["new.jpg", "photo1.jpg"]
    assert summary["num_images"] == 5
    fresh = tmp_path / "fresh"
    build(folder, fresh, net)
    incremental, rebuilt = SearchEngine(collection), SearchEngine(fresh)
    for image_id in ("new", "photo1", "photo2"):
        query = folder / f"{image_id}.jpg"
        got = incremental.search(query, top_k=3, rerank_config=InliersRerank())
        expected = rebuilt.search(query, top_k=3, rerank_config=InliersRerank())
        assert [(hit.image_id, hit.inliers) for hit in got] == [
            (hit.image_id, hit.inliers) for hit in expected
        ]
        assert [hit.global_score for hit in got] == pytest.approx(
            [hit.global_score for hit in expected], abs=1e-6
        )


def test_a_rebuild_after_the_pictures_changed_uses_no_stale_features(corpus, net, tmp_path):
    folder = tmp_path / "photos"
    shutil.copytree(corpus / "places", folder)
    collection = tmp_path / "collection"
    build(folder, collection, net)
    scene_jpeg(folder / "photo1.jpg", 99)  # another picture under the same name
    build(folder, collection, net)
    hits = SearchEngine(collection).search(folder / "photo1.jpg", top_k=1, rerank_config=InliersRerank())
    assert hits[0].image_id == "photo1" and hits[0].inliers > 100


def test_a_collection_whose_parts_disagree_is_refused_and_the_server_answers_503(corpus, net, tmp_path):
    collection = tmp_path / "collection"
    build(corpus, collection, net)
    generation = generation_dir(collection)
    table = ImageTable.load(generation / IMAGES_FILE)
    kept = [position for position, image_id in enumerate(table.ids) if image_id != "places/photo3"]
    ImageTable([table.ids[i] for i in kept], [table.paths[i] for i in kept], table.files[kept]).save(
        generation / IMAGES_FILE
    )
    with pytest.raises(
        CollectionError, match=r"parts disagree: the index holds 7 images and images\.npz lists 6"
    ):
        SearchEngine(collection)
    (collection / CURRENT_FILE).write_text("gone\n")
    with pytest.raises(CollectionError, match="names gone, which is missing"):
        SearchEngine(collection)

    build(corpus, collection, net)
    engine = SearchEngine(collection)
    app = create_app(engine, {"inliers": InliersRerank()}, UploadLimits(), top_k=5, shortlist=20)
    shutil.rmtree(engine.generation / "local")  # the store vanishes under a running server
    with TestClient(app) as client:
        photo = (corpus / "places" / "photo0.jpg").read_bytes()
        response = client.post("/search", files={"file": ("photo0.jpg", photo, "image/jpeg")})
    assert response.status_code == 503 and "cannot answer" in response.json()["detail"]


@pytest.fixture(scope="module")
def client(corpus, net, tmp_path_factory):
    collection = tmp_path_factory.mktemp("served")
    build(corpus / "places", collection, net)
    app = create_app(
        SearchEngine(collection), {"inliers": InliersRerank()}, UploadLimits(), top_k=3, shortlist=10
    )
    with TestClient(app) as test_client:
        yield test_client


def post(client: TestClient, endpoint: str, name: str, content: bytes, **data: str):
    return client.post(endpoint, files={"file": (name, content, "image/jpeg")}, data=data)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_eps_upload_never_reaches_ghostscript(client, monkeypatch):
    def no_programs(*arguments, **keywords):
        raise AssertionError(f"an external program was started: {arguments}")

    for name in ("Popen", "run", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, no_programs)
    for endpoint, data in (("/search", {}), ("/matches", {"image_id": "photo0"})):
        response = post(client, endpoint, "photo.jpg", EPS, **data)
        assert response.status_code == 415, endpoint
        assert "not an image in a format that can be read" in response.json()["detail"]


def test_a_heic_upload_says_what_to_do(client):
    response = post(client, "/search", "photo.heic", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    assert (
        response.status_code == 415
        and "HEIC images are not supported; convert it" in response.json()["detail"]
    )


def test_a_thin_strip_is_refused_before_any_matching_or_drawing(client):
    strip = png_bytes(Image.new("L", (10000, 3), 128))
    started = time.perf_counter()
    response = post(client, "/matches", "strip.png", strip, image_id="photo0")
    assert response.status_code == 422 and "aspect ratio over 20:1" in response.json()["detail"]
    assert time.perf_counter() - started < 10  # not a timing test: a 23 s, 3 GB request would not get here


def test_a_huge_jpeg_is_decoded_at_reduced_size_and_searched(client, tmp_path):
    path = scene_jpeg(tmp_path / "huge.jpg", 1, size=(512, 384))
    Image.open(path).resize((6144, 4608)).save(path, quality=70)  # 28 MP: a tenth of it is decoded
    response = post(client, "/search", "huge.jpg", path.read_bytes())
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["image_id"] == "photo1"
    matches = post(client, "/matches", "huge.jpg", path.read_bytes(), image_id="photo1")
    assert matches.status_code == 200 and int(matches.headers["x-inliers"]) > 30
    assert Image.open(io.BytesIO(matches.content)).width <= 1600  # drawn at bounded size


def test_a_folder_query_with_a_bad_image_answers_the_rest(corpus, net, tmp_path):
    collection = tmp_path / "collection"
    build(corpus / "places", collection, net)
    queries = tmp_path / "queries"
    queries.mkdir()
    shutil.copy(corpus / "places" / "photo2.jpg", queries / "good.jpg")
    shutil.copy(corpus / "truncated.jpg", queries / "bad.jpg")
    output = tmp_path / "out"
    completed = subprocess.run(
        [
            sys.executable,
            "search.py",
            f"query={queries}",
            f"collection_dir={collection}",
            "rerank=none",
            f"hydra.run.dir={output}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    results = json.loads((output / "results.json").read_text())
    assert results["queries"]["good"]["results"][0]["image_id"] == "photo2"
    assert list(results["failed"]) == [str(queries / "bad.jpg")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie is dead
        return handle.read().split(")")[-1].split()[0] != "Z"


def test_extraction_workers_die_with_a_killed_parent(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys, time, multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            from retrieval.local.store import _start_worker

            if __name__ == "__main__":
                context = multiprocessing.get_context("spawn")
                pool = ProcessPoolExecutor(2, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),))
                for future in [pool.submit(time.sleep, 0.5) for _ in range(2)]:
                    future.result()
                print(" ".join(str(pid) for pid in pool._processes), flush=True)
                time.sleep(600)
            """
        )
    )
    parent = subprocess.Popen(
        [sys.executable, str(script)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers)
    finally:
        parent.kill()


@pytest.mark.reliability
def test_kill_9_of_index_py_mid_build_keeps_the_collection_and_the_rerun_completes(corpus, tmp_path):
    collection = tmp_path / "collection"
    command = [
        sys.executable,
        "index.py",
        f"images_dir={corpus / 'places'}",
        f"collection_dir={collection}",
        "extraction.max_side=128",
        "extraction.num_workers=0",
        "num_workers=2",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, timeout=600)
    before = generation_dir(collection)
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300

    def building() -> (
        bool
    ):  # work under cache/ (the local-feature parts), or the new generation being written
        partial = any(path.name.endswith(".partial") for path in (collection / GENERATIONS).iterdir())
        return partial or (collection / "cache").exists()

    while not building():
        assert process.poll() is None and time.monotonic() < deadline, (
            "the build ended before it could be killed"
        )
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert generation_dir(collection) == before
    assert len(SearchEngine(collection)) == 4
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, timeout=600)
    assert generation_dir(collection) != before and len(SearchEngine(collection)) == 4


@pytest.mark.reliability
def test_a_burst_of_mixed_requests_on_a_real_server_is_answered_without_a_500(client, corpus, tmp_path):
    import httpx

    from tests.support.server import running_server

    good = (corpus / "places" / "photo0.jpg").read_bytes()
    bad = [
        (EPS, 415),
        (good[: len(good) // 2], 422),
        (b"", 400),
        (png_bytes(Image.new("L", (9000, 4), 0)), 422),
    ]
    requests = [(good, 200)] * 8 + bad * 3
    with running_server(client.app) as base:

        def send(item: tuple[bytes, int]) -> int:
            content, _ = item
            return httpx.post(
                f"{base}/search", files={"file": ("x.jpg", content, "image/jpeg")}, timeout=120
            ).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(send, requests))
    assert statuses == [expected for _, expected in requests]


def test_a_collection_of_format_2_opens_and_a_rebuild_reuses_its_descriptors(
    corpus, net, tmp_path, monkeypatch
):
    """Format 2 listed the images and their file stats in collection.json; such a collection opens as it is, and
    indexing it again extracts nothing (its stats say every file is unchanged) and writes format 3."""
    collection = tmp_path / "collection"
    build(corpus / "places", collection, net)
    generation = generation_dir(collection)
    table = ImageTable.load(generation / IMAGES_FILE)
    manifest = json.loads((generation / "collection.json").read_text())
    manifest.update(
        format_version=2, images=dict(zip(table.ids, table.paths, strict=True)), files=table.file_stats()
    )
    (generation / "collection.json").write_text(json.dumps(manifest))
    (generation / IMAGES_FILE).unlink()
    assert set(SearchEngine(collection).paths) == set(table.ids)
    monkeypatch.setattr(
        "retrieval.descriptor.shards.extract_descriptors",
        lambda *arguments, **keywords: pytest.fail("global descriptors extracted again"),
    )
    summary = build(corpus / "places", collection, net)
    assert summary["format_version"] == 3 and (generation_dir(collection) / IMAGES_FILE).is_file()
