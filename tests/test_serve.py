"""The search web app over a tiny collection: ranked results that match the engine and a brute-force global
ranking, thumbnails, match pictures, and a clear 4xx (never a 500) for every kind of bad input."""

from __future__ import annotations

import csv
import functools
import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from retrieval.collection import list_images
from retrieval.collection_build import build_collection
from retrieval.descriptor.extract import ExtractionSettings, describe_images, extract_descriptors
from retrieval.descriptor.index import create_index
from retrieval.descriptor.network import GlobalDescriptorNet, descriptor_id
from retrieval.images import load_rgb
from retrieval.local.features import LocalFeatureExtractor
from retrieval.local.hamming import CompactSettings
from retrieval.local.rerank import InliersRerank
from retrieval.local.verdict import DEFAULT_MIN_INLIERS
from retrieval.reranking import RerankMethod
from retrieval.search_engine import SearchEngine
from serving.app import FORM_OVERHEAD_BYTES, MATCHES_HEIGHT, THUMBNAIL_SIZE, create_app
from serving.presets import rerank_preset
from serving.uploads import UploadLimits
from tests.conftest import REPO_ROOT

RERANK_CONFIGS: dict[str, RerankMethod | None] = {"inliers": InliersRerank(), "none": None}
RERANK_PRESETS = sorted(path.stem for path in (REPO_ROOT / "conf" / "rerank").glob("*.yaml"))
MAX_UPLOAD_BYTES = 1 << 20
TOP_K = 10


def build_tiny_collection(
    demo_root: Path, output_dir: Path, local_extractor: LocalFeatureExtractor | None = None
) -> Path:
    """A collection of the demo's index images: small offline network, 128 px descriptors, 256 RootSIFT
    (or ``local_extractor``'s features)."""
    net = GlobalDescriptorNet("tf_efficientnet_lite0", pretrained="efficientnet_lite0_pypi")
    build_collection(
        output_dir,
        list_images(demo_root / "index"),
        net,
        descriptor_id(net),
        ExtractionSettings(max_side=128, scales=(1.0,), num_workers=0),
        functools.partial(create_index, kind="flat"),
        local_extractor or LocalFeatureExtractor(max_keypoints=256),
    )
    return output_dir


def first_landmark_query(demo_root: Path) -> tuple[Path, set[str]]:
    """The first test query that shows an indexed landmark, and the ids of the index images that show it."""
    with open(demo_root / "retrieval_solution_v2.1.csv", newline="") as handle:
        row = next(row for row in csv.DictReader(handle) if row["images"] != "None")
    query_id = row["id"]
    return demo_root / "test" / query_id[0] / query_id[1] / query_id[2] / f"{query_id}.jpg", set(
        row["images"].split()
    )


@pytest.fixture(scope="module")
def engine(tiny_demo, tmp_path_factory) -> SearchEngine:
    return SearchEngine(build_tiny_collection(tiny_demo, tmp_path_factory.mktemp("collection")))


@pytest.fixture(scope="module")
def client(engine):
    app = create_app(
        engine, RERANK_CONFIGS, uploads=UploadLimits(max_bytes=MAX_UPLOAD_BYTES), top_k=TOP_K, shortlist=100
    )
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def query(tiny_demo) -> tuple[Path, set[str]]:
    return first_landmark_query(tiny_demo)


def post_search(client: TestClient, path: Path, rerank: str | None = None):
    data = {} if rerank is None else {"rerank": rerank}
    return client.post("/search", files={"file": (path.name, path.read_bytes(), "image/jpeg")}, data=data)


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels but holds a single empty row: its header alone
    says how big it would be."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


def test_search_returns_the_top_k_in_order_with_a_correct_first_hit(client, query):
    query_path, relevant_ids = query
    response = post_search(client, query_path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rerank"] == "inliers"  # the first of RERANK_CONFIGS is the default
    assert body["timing_ms"] > 0
    results = body["results"]
    assert [result["rank"] for result in results] == list(range(1, TOP_K + 1))
    assert len({result["image_id"] for result in results}) == TOP_K
    scores = [result["score"] for result in results]
    assert scores == sorted(scores, reverse=True)
    first = results[0]
    assert first["image_id"].rsplit("/", 1)[-1] in relevant_ids
    assert first["inliers"] > 0


@pytest.mark.parametrize("rerank", ["inliers", "none"])
def test_search_returns_what_the_engine_returns(client, engine, query, rerank):
    query_path, _ = query
    body = post_search(client, query_path, rerank).json()
    assert body["rerank"] == rerank
    expected = engine.search(load_rgb(query_path), top_k=TOP_K, rerank_config=RERANK_CONFIGS[rerank])
    assert [
        (result["image_id"], result["score"], result["global_score"], result["inliers"])
        for result in body["results"]
    ] == [(hit.image_id, hit.score, hit.global_score, hit.inliers) for hit in expected]


def test_global_search_is_the_brute_force_inner_product_ranking(client, engine, query):
    query_path, _ = query
    ids = list(engine.paths)
    database = extract_descriptors(engine.net, [Path(engine.paths[i]) for i in ids], engine.settings)[0]
    query_descriptor = describe_images(engine.net, [load_rgb(query_path)], engine.settings)[0]
    similarities = database @ query_descriptor
    expected_order = np.argsort(-similarities, kind="stable")[:TOP_K]

    results = post_search(client, query_path, "none").json()["results"]
    assert [result["image_id"] for result in results] == [ids[i] for i in expected_order]
    for result, i in zip(results, expected_order, strict=True):
        assert result["global_score"] == pytest.approx(similarities[i], abs=1e-5)
        assert result["score"] == result["global_score"]
        assert result["inliers"] is None and result["verified"] is None  # not computed, not zero


def test_reranking_keeps_each_global_score(client, query):
    query_path, _ = query
    global_scores = {
        result["image_id"]: result["global_score"]
        for result in post_search(client, query_path, "none").json()["results"]
    }
    reranked = post_search(client, query_path, "inliers").json()["results"]
    shared = [result for result in reranked if result["image_id"] in global_scores]
    assert shared
    for result in shared:
        assert result["global_score"] == global_scores[result["image_id"]]


def test_concurrent_searches_return_identical_results(client, query):
    query_path, _ = query
    expected = post_search(client, query_path).json()["results"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(lambda _: post_search(client, query_path), range(8)))
    assert [response.status_code for response in responses] == [200] * 8
    assert all(response.json()["results"] == expected for response in responses)


def test_thumbnails_are_jpegs_of_the_collection_images(client, engine, query):
    query_path, _ = query
    result = post_search(client, query_path).json()["results"][0]
    original = load_rgb(engine.paths[result["image_id"]])

    response = client.get(result["thumbnail_url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    thumbnail = Image.open(io.BytesIO(response.content))
    assert thumbnail.format == "JPEG"
    assert max(thumbnail.size) == min(THUMBNAIL_SIZE, max(original.size))  # never enlarged

    small = Image.open(io.BytesIO(client.get(f"/image/{quote(result['image_id'])}?size=64").content))
    assert max(small.size) == 64
    assert small.width / small.height == pytest.approx(original.width / original.height, rel=0.05)


def test_image_ids_are_looked_up_never_joined_into_paths(client, engine):
    some_path = next(iter(engine.paths.values()))
    for image_id in ["no/such/id", "../../../../etc/passwd", some_path]:
        response = client.get(f"/image/{quote(image_id, safe='')}")
        assert response.status_code == 404
        assert response.json()["detail"] == f"unknown image id {image_id!r}"


def test_thumbnail_size_is_validated(client, engine):
    image_id = next(iter(engine.paths))
    assert client.get(f"/image/{image_id}?size=0").status_code == 422
    assert client.get(f"/image/{image_id}?size=big").status_code == 422


def test_an_unreadable_collection_file_is_a_404_with_a_message(client, engine, monkeypatch, tmp_path):
    image_id = next(iter(engine.paths))
    monkeypatch.setitem(engine.paths, image_id, str(tmp_path / "gone.jpg"))
    response = client.get(f"/image/{image_id}")
    assert response.status_code == 404
    assert response.json()["detail"] == f"image {image_id!r} is indexed but its file cannot be read"


def test_matches_draws_both_images_with_the_inliers_search_counted(client, engine, query):
    query_path, _ = query
    first = post_search(client, query_path).json()["results"][0]
    response = client.post(
        "/matches",
        files={"file": (query_path.name, query_path.read_bytes(), "image/jpeg")},
        data={"image_id": first["image_id"]},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert int(response.headers["x-inliers"]) == first["inliers"]
    assert int(response.headers["x-tentative-matches"]) >= first["inliers"]
    picture = Image.open(io.BytesIO(response.content))
    query_image, database_image = load_rgb(query_path), load_rgb(engine.paths[first["image_id"]])
    expected_width = sum(
        round(image.width * MATCHES_HEIGHT / image.height) for image in (query_image, database_image)
    )
    assert picture.size == (expected_width, MATCHES_HEIGHT)


def keypoint_presets() -> list[str]:
    """The presets a collection of keypoints can re-rank with (all but the CNN patches): by keypoints, or by
    the global descriptors alone (SuperGlobal)."""
    return [
        name
        for name in RERANK_PRESETS
        if getattr(rerank_preset(name), "features", "keypoints") in ("keypoints", "global")
    ]


def test_the_app_refuses_a_re_ranking_the_collection_cannot_run(engine):
    with pytest.raises(ValueError, match=r"'cnn_patches' cannot run: .* re-ranks with cnn_patch features"):
        create_app(engine, {"cnn_patches": rerank_preset("cnn_patches")}, UploadLimits(), TOP_K, 100)


@pytest.fixture(scope="module")
def preset_client(engine):
    presets = {name: rerank_preset(name) for name in keypoint_presets()}
    app = create_app(
        engine, presets, uploads=UploadLimits(max_bytes=MAX_UPLOAD_BYTES), top_k=TOP_K, shortlist=100
    )
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def compact_client(tiny_demo, tmp_path_factory):
    """The app over a compact collection (a small embedding, 128 stored keypoints) with every preset: only
    ``compact``, ``none`` and ``superglobal`` (no local features) can run there."""
    compact = CompactSettings(stored_keypoints=128, num_words=64, training_images=20)
    folder = build_tiny_collection(
        tiny_demo,
        tmp_path_factory.mktemp("compact"),
        LocalFeatureExtractor(max_keypoints=256, compact=compact),
    )
    presets = {name: rerank_preset(name) for name in keypoint_presets()}
    app = create_app(
        SearchEngine(folder), presets, UploadLimits(max_bytes=MAX_UPLOAD_BYTES), top_k=TOP_K, shortlist=100
    )
    with TestClient(app) as test_client:
        assert [option["name"] for option in test_client.get("/options").json()["rerank_options"]] == [
            "compact",
            "none",
            "superglobal",
        ]
        yield test_client


@pytest.mark.parametrize("preset", [name for name in RERANK_PRESETS if not name.startswith("cnn_patch")])
def test_match_pictures_count_the_inliers_search_returned_for_every_preset(request, query, preset):
    preset_client = request.getfixturevalue("compact_client" if preset == "compact" else "preset_client")
    query_path, _ = query
    results = post_search(preset_client, query_path, preset).json()["results"]
    upload = {"file": (query_path.name, query_path.read_bytes(), "image/jpeg")}
    for result in results[:3]:
        response = preset_client.post(
            "/matches", files=upload, data={"image_id": result["image_id"], "rerank": preset}
        )
        if preset in ("none", "superglobal"):
            assert response.status_code == 422
            assert "matches no keypoints" in response.json()["detail"]
            continue
        assert response.status_code == 200, response.text
        verified = response.headers["x-verified"] == "true"
        assert verified == (preset != "ratio_count")
        if verified:
            assert int(response.headers["x-inliers"]) == result["inliers"], result["image_id"]
            assert result["verified"] == (result["inliers"] >= DEFAULT_MIN_INLIERS)
        else:  # a method without geometry: no inliers and no verdict, not zero
            assert result["inliers"] is None and result["verified"] is None


def test_matches_with_an_unknown_image_id_is_a_404(client, query):
    query_path, _ = query
    response = client.post(
        "/matches",
        files={"file": (query_path.name, query_path.read_bytes(), "image/jpeg")},
        data={"image_id": "no/such/id"},
    )
    assert response.status_code == 404
    assert response.json()["detail"] == "unknown image id 'no/such/id'"


@pytest.mark.parametrize(
    ("name", "make_content", "status", "message"),
    [
        ("notes.txt", lambda jpeg: b"a landmark, honestly\n", 415, "notes.txt: not an image in a format"),
        ("half.jpg", lambda jpeg: jpeg[: len(jpeg) // 2], 422, "half.jpg: cannot decode image"),
        ("empty.jpg", lambda jpeg: b"", 400, "empty.jpg is empty"),
        (
            "bomb.png",
            lambda jpeg: png_header(20_000, 20_000),
            413,
            "bomb.png: too many pixels to decode safely",
        ),
    ],
    ids=["not-an-image", "truncated", "empty", "too-many-pixels"],
)
def test_bad_uploads_get_a_4xx_with_a_message(client, engine, query, name, make_content, status, message):
    query_path, _ = query
    content = make_content(query_path.read_bytes())
    for endpoint, data in [("/search", {}), ("/matches", {"image_id": next(iter(engine.paths))})]:
        response = client.post(endpoint, files={"file": (name, content, "image/jpeg")}, data=data)
        assert response.status_code == status, endpoint
        detail = response.json()["detail"]
        assert detail.startswith(message)
        assert "search-upload-" not in detail  # the server's temporary path is not shown


def test_an_image_over_the_upload_pixel_budget_is_a_413_even_without_pils_guard(client, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    budget = UploadLimits().max_pixels
    side = int(budget**0.5) + 1
    response = client.post("/search", files={"file": ("huge.png", png_header(side, side), "image/png")})
    assert response.status_code == 413
    assert response.json()["detail"] == f"huge.png: {side}x{side} exceeds {budget} pixels; refusing to decode"


def test_unknown_rerank_is_a_422_that_lists_the_choices(client, query):
    query_path, _ = query
    response = post_search(client, query_path, "magic")
    assert response.status_code == 422
    assert response.json()["detail"] == "unknown rerank 'magic'; choose one of: inliers, none"


def test_a_search_without_a_file_is_a_422(client):
    assert client.post("/search", data={"rerank": "none"}).status_code == 422


def test_upload_limit_is_checked_on_the_declared_and_on_the_received_size(engine, query):
    query_path, _ = query
    jpeg = query_path.read_bytes()
    app = create_app(
        engine, RERANK_CONFIGS, uploads=UploadLimits(max_bytes=len(jpeg)), top_k=TOP_K, shortlist=100
    )
    limit_message = f"the upload is larger than the limit of {len(jpeg) / 2**20:g} MB"
    with TestClient(app) as limited:
        # Exactly at the limit: accepted.
        assert limited.post("/search", files={"file": ("at.jpg", jpeg, "image/jpeg")}).status_code == 200
        # One byte over, the request body still within the form allowance: refused by the file's size.
        response = limited.post("/search", files={"file": ("over.jpg", jpeg + b"\0", "image/jpeg")})
        assert response.status_code == 413
        assert (
            response.json()["detail"]
            == f"over.jpg is larger than the upload limit of {len(jpeg) / 2**20:g} MB"
        )
        # A body over the limit with its Content-Length: refused before it is read.
        oversized = jpeg + bytes(FORM_OVERHEAD_BYTES)
        response = limited.post("/search", files={"file": ("big.jpg", oversized, "image/jpeg")})
        assert response.status_code == 413
        assert response.json()["detail"] == limit_message
        # The same body streamed without a Content-Length: refused by the bytes received.
        boundary = "landmark-boundary"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n".encode()
            + oversized
            + f"\r\n--{boundary}--\r\n".encode()
        )
        response = limited.post(
            "/search",
            content=iter([body[start : start + 4096] for start in range(0, len(body), 4096)]),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert "content-length" not in response.request.headers
        assert response.status_code == 413
        assert response.json()["detail"] == limit_message


def test_options_describe_the_choices_and_limits(client, engine):
    options = client.get("/options").json()
    assert options == {
        "rerank_options": [
            {"name": "inliers", "description": "RANSAC inliers, ties by global score"},
            {"name": "none", "description": "Global descriptor similarity only."},
        ],
        "default_rerank": "inliers",
        "top_k": TOP_K,
        "max_upload_bytes": MAX_UPLOAD_BYTES,
        "num_images": len(engine),
    }


def test_the_page_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert 'id="file-input"' in page and 'id="rerank-select"' in page
    assert "http://" not in page and "https://" not in page  # no CDN: every style and script is inline
    assert "<script src" not in page and "<link" not in page


def test_create_app_checks_its_arguments(engine, monkeypatch):
    with pytest.raises(ValueError, match="at least one choice"):
        create_app(engine, {}, uploads=UploadLimits(max_bytes=1), top_k=1, shortlist=1)
    with pytest.raises(ValueError, match="default_rerank 'fusion'"):
        create_app(
            engine,
            RERANK_CONFIGS,
            uploads=UploadLimits(max_bytes=1),
            top_k=1,
            shortlist=1,
            default_rerank="fusion",
        )
    with pytest.raises(ValueError, match="must be positive"):
        create_app(engine, RERANK_CONFIGS, uploads=UploadLimits(max_bytes=1), top_k=0, shortlist=1)
    with pytest.raises(ValueError, match="max_bytes and max_pixels must be positive"):
        UploadLimits(max_bytes=0)
    monkeypatch.setattr(engine, "store", None)
    with pytest.raises(ValueError, match=r"'inliers' cannot run: .* built without local features"):
        create_app(
            engine,
            RERANK_CONFIGS,
            uploads=UploadLimits(max_bytes=1),
            top_k=1,
            shortlist=1,
            default_rerank="inliers",
        )
    # Without a default, the choices the collection cannot run are left out: here, all but global search.
    app = create_app(engine, RERANK_CONFIGS, uploads=UploadLimits(max_bytes=1), top_k=1, shortlist=1)
    options = TestClient(app).get("/options").json()
    assert [option["name"] for option in options["rerank_options"]] == ["none"]
    assert options["default_rerank"] == "none"
    assert (
        create_app(engine, {"none": None}, uploads=UploadLimits(max_bytes=1), top_k=1, shortlist=1)
        is not None
    )
