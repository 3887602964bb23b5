"""The search web app: a JSON API and one self-contained page over a collection written by ``index.py``.

Routes:

- ``GET /``: the page (upload or drop a photo, pick a re-ranking, see the top results and their matches).
- ``GET /options``: the re-ranking choices, the default, the number of results and the upload limit.
- ``POST /search``: multipart ``file`` (+ ``rerank``, a name of ``rerank_configs``) → the top results as JSON.
- ``GET /image/{image_id}?size=256``: a JPEG thumbnail of a collection image; ids are looked up, never joined
  into paths, so no file outside the collection can be served.
- ``POST /matches``: multipart ``file`` + ``image_id`` (+ ``rerank``) → a PNG of both images joined by the
  matches that re-ranking computed for that result (verified inliers green; tentative matches amber for a
  method that does not verify), the counts in the ``X-Inliers``, ``X-Tentative-Matches`` and ``X-Verified``
  headers: the same matches and inliers as the ``/search`` result with the same re-ranking.

Bad input never yields a 500: an empty upload (400), a body or file over the size limit (413), a file that is
no image of an allowed format (415, decoded by content: nothing else reaches a decoder or an external program),
an image that would decode to more pixels than the budget (413, checked before decoding; JPEGs decode at reduced
size), an image that cannot be decoded, e.g. truncated, or of an extreme aspect ratio (422), an unknown
re-ranking, or matches asked for a re-ranking that matches no keypoints (422) and an unknown image id (404) all
get ``{"detail": message}`` (:mod:`serving.uploads`). At most ``max_concurrent_searches`` requests decode and
search at once, and match pictures are drawn at bounded size, so a burst of requests cannot exhaust memory.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from http import HTTPStatus
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image
from pydantic import BaseModel

from retrieval.collection import CollectionError
from retrieval.images import DecodedImage, ImageLoadError, decode
from retrieval.local.rerank import KEYPOINTS
from retrieval.reranking import RerankMethod
from retrieval.search_engine import SearchEngine, describe_score
from retrieval.visualize import draw_matches
from serving.uploads import BodySizeLimit, ClientError, UploadLimits, format_size, received_upload

log = logging.getLogger(__name__)

PAGE_FILE = Path(__file__).with_name("page.html")
# Longest side of the thumbnails that search results link to.
THUMBNAIL_SIZE = 256
# Height of the match pictures, their width at most, and the longest side their collection image is decoded at.
MATCHES_HEIGHT = 360
MATCHES_MAX_WIDTH = 1600
MATCHES_SIDE = 1024
# Room in a request body for the multipart boundaries, part headers and text fields around the file.
FORM_OVERHEAD_BYTES = 64 * 1024
NO_RERANK_DESCRIPTION = "Global descriptor similarity only."

# Form fields. Annotations are resolved in this module's namespace, so they cannot name create_app's locals.
QueryPhoto = Annotated[UploadFile, File(description="the query photo")]
RerankName = Annotated[str | None, Form(description="a re-ranking from GET /options; default: the server's")]
ImageId = Annotated[str, Form(description="a collection image id, as POST /search returns it")]


class SearchResult(BaseModel):
    """One result: ``score`` ranks it (the re-ranking's score, or ``global_score`` without re-ranking);
    ``inliers`` and ``verified`` (inliers ≥ the same-place threshold) are null when no verification ran."""

    rank: int
    image_id: str
    score: float
    global_score: float
    inliers: int | None
    verified: bool | None
    thumbnail_url: str


class SearchResponse(BaseModel):
    """The results best first, the search time (descriptor, index, re-ranking), the re-ranking used, what the
    score is, and the same-place threshold applied (null when no verification ran)."""

    results: list[SearchResult]
    timing_ms: float
    rerank: str
    score_label: str
    min_inliers: int | None
    threshold: str | None


class RerankOption(BaseModel):
    """A re-ranking the server offers, by the name that POST /search takes."""

    name: str
    description: str


class Options(BaseModel):
    """What the page needs to know about the server."""

    rerank_options: list[RerankOption]
    default_rerank: str
    top_k: int
    max_upload_bytes: int
    num_images: int


def describe_rerank(config: RerankMethod | None) -> str:
    """One line for the page: the method's own description."""
    return NO_RERANK_DESCRIPTION if config is None else config.describe()


# Form field: drop the query's own image (an indexed photo searched again).
ExcludeQueryImage = Annotated[
    bool, Form(description="drop results that are the query image itself (cosine ≥ 0.999)")
]


def encode_jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def collection_error_response(request: Request, error: Exception) -> JSONResponse:
    """A collection whose parts disagree (rebuilt or damaged under the server) is the server's problem: 503,
    and a log line for the operator."""
    log.error("collection error: %s", error)
    return JSONResponse(
        {"detail": f"the collection cannot answer: {error}"}, status_code=HTTPStatus.SERVICE_UNAVAILABLE
    )


async def client_error_response(request: Request, error: Exception) -> JSONResponse:
    """Any ``ValueError`` that escapes a route is the client's: its status (400 unless it says otherwise)
    and its message, as JSON."""
    status = error.status_code if isinstance(error, ClientError) else HTTPStatus.BAD_REQUEST
    return JSONResponse({"detail": str(error)}, status_code=status)


def _runnable(
    engine: SearchEngine, rerank_configs: Mapping[str, RerankMethod | None], default_rerank: str | None
) -> dict[str, RerankMethod | None]:
    """The choices the collection's local features can run; the others are left out with a log line, except
    the default, which must run."""
    runnable: dict[str, RerankMethod | None] = {}
    for name, config in rerank_configs.items():
        try:
            if config is not None:
                engine.check_rerank(config)
        except ValueError as error:
            if name == default_rerank or len(rerank_configs) == 1:
                raise ValueError(f"the re-ranking {name!r} cannot run: {error}") from error
            log.info("re-ranking %r is not offered: %s", name, error)
            continue
        runnable[name] = config
    if not runnable:
        raise ValueError("none of the re-rankings can run on this collection")
    return runnable


def create_app(
    engine: SearchEngine,
    rerank_configs: Mapping[str, RerankMethod | None],
    uploads: UploadLimits,
    top_k: int,
    shortlist: int,
    default_rerank: str | None = None,
    max_concurrent_searches: int = 2,
) -> FastAPI:
    """The web app over a loaded collection.

    Args:
        engine: the collection, loaded once; searches from concurrent requests share it.
        rerank_configs: the re-ranking choices offered, by name; ``None`` is global search only.
        uploads: what one upload may cost (bytes, decoded pixels, aspect ratio); uploads are decoded at the
            largest side the collection's extraction needs.
        top_k: results per search.
        shortlist: global candidates re-ranked with local features.
        default_rerank: the choice used when a request names none (default: the first of ``rerank_configs``
            that the collection can run; choices it cannot run are left out).
        max_concurrent_searches: requests decoding and searching at once; the others wait, so memory stays
            bounded however many clients there are.
    """
    if not rerank_configs:
        raise ValueError("rerank_configs must offer at least one choice (None for global search only)")
    if default_rerank is not None and default_rerank not in rerank_configs:
        raise ValueError(f"default_rerank {default_rerank!r} is not one of {sorted(rerank_configs)}")
    rerank_configs = _runnable(engine, rerank_configs, default_rerank)
    default_rerank = next(iter(rerank_configs)) if default_rerank is None else default_rerank
    if top_k < 1 or shortlist < 1 or max_concurrent_searches < 1:
        raise ValueError(
            f"top_k, shortlist and max_concurrent_searches must be positive, got {top_k}, {shortlist}, "
            f"{max_concurrent_searches}"
        )
    uploads = replace(uploads, decode_side=engine.query_side)
    max_upload_bytes = uploads.max_bytes
    searching = threading.BoundedSemaphore(max_concurrent_searches)
    # Validating an upload decodes it once (at most max_pixels): a few at a time, outside the search queue, so
    # bad uploads are refused at once.
    decoding = threading.BoundedSemaphore(max_concurrent_searches + 1)
    page = PAGE_FILE.read_text(encoding="utf-8")
    choices = ", ".join(rerank_configs)

    app = FastAPI(
        title="Landmark search",
        summary="Upload a photo, get the nearest landmark photos of a collection, verified by local matches.",
    )
    app.add_middleware(
        BodySizeLimit,
        max_body_bytes=max_upload_bytes + FORM_OVERHEAD_BYTES,
        message=f"the upload is larger than the limit of {format_size(max_upload_bytes)}",
    )
    app.add_exception_handler(CollectionError, collection_error_response)
    app.add_exception_handler(ValueError, client_error_response)

    def choose_rerank(name: str | None) -> tuple[str, RerankMethod | None]:
        name = default_rerank if name is None else name
        if name not in rerank_configs:
            raise ClientError(
                f"unknown rerank {name!r}; choose one of: {choices}", HTTPStatus.UNPROCESSABLE_ENTITY
            )
        return name, rerank_configs[name]

    def load_collection_image(image_id: str, max_side: int) -> DecodedImage:
        path = engine.paths.get(image_id)
        if path is None:
            raise ClientError(f"unknown image id {image_id!r}", HTTPStatus.NOT_FOUND)
        try:
            return decode(path, max_side=max_side)
        except ImageLoadError as error:
            log.warning("collection image %r is unreadable: %s", image_id, error)
            raise ClientError(
                f"image {image_id!r} is indexed but its file cannot be read", HTTPStatus.NOT_FOUND
            ) from error

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def show_page() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/options")
    def options() -> Options:
        return Options(
            rerank_options=[
                RerankOption(name=name, description=describe_rerank(config))
                for name, config in rerank_configs.items()
            ],
            default_rerank=default_rerank,
            top_k=top_k,
            max_upload_bytes=max_upload_bytes,
            num_images=len(engine),
        )

    @app.post("/search")
    def search(
        request: Request,
        file: QueryPhoto,
        rerank: RerankName = None,
        exclude_query_image: ExcludeQueryImage = False,
    ) -> SearchResponse:
        """The ``top_k`` nearest collection images; ``timing_ms`` is the search alone (descriptor, index,
        re-ranking), not the upload."""
        rerank_name, rerank_config = choose_rerank(rerank)
        with received_upload(file, uploads, decoding) as query, searching:
            started = time.perf_counter()
            hits = engine.search(
                query.path,
                top_k=top_k,
                rerank_config=rerank_config,
                shortlist=shortlist,
                max_pixels=uploads.max_pixels,
                exclude_query_image=exclude_query_image,
            )
            timing_ms = (time.perf_counter() - started) * 1000
        threshold = engine.verdict_threshold(rerank_config)
        log.info(
            "search %s (%dx%d, rerank %s): %.0f ms",
            file.filename,
            *query.original_size,
            rerank_name,
            timing_ms,
        )
        return SearchResponse(
            results=[
                SearchResult(
                    rank=rank,
                    image_id=hit.image_id,
                    score=hit.score,
                    global_score=hit.global_score,
                    inliers=hit.inliers,
                    verified=hit.verified,
                    thumbnail_url=str(
                        request.url_for("thumbnail", image_id=quote(hit.image_id)).include_query_params(
                            size=THUMBNAIL_SIZE
                        )
                    ),
                )
                for rank, hit in enumerate(hits, start=1)
            ],
            timing_ms=round(timing_ms, 1),
            rerank=rerank_name,
            score_label=describe_score(rerank_config),
            min_inliers=threshold.min_inliers if threshold is not None else None,
            threshold=threshold.describe() if threshold is not None else None,
        )

    @app.get(
        "/image/{image_id:path}",
        name="thumbnail",
        response_class=Response,
        responses={HTTPStatus.OK.value: {"content": {"image/jpeg": {}}}},
    )
    def thumbnail(image_id: str, size: Annotated[int, Query(ge=16, le=2048)] = THUMBNAIL_SIZE) -> Response:
        """A JPEG of a collection image, its longest side at most ``size`` pixels."""
        image = load_collection_image(image_id, max_side=size).rgb
        return Response(
            encode_jpeg(image),
            media_type="image/jpeg",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    @app.post(
        "/matches", response_class=Response, responses={HTTPStatus.OK.value: {"content": {"image/png": {}}}}
    )
    def matches(file: QueryPhoto, image_id: ImageId, rerank: RerankName = None) -> Response:
        """The query and a collection image side by side, joined by the matches that re-ranking with
        ``rerank`` computed for it: verified inliers in green, or all tentative matches in amber for a method
        that does not verify geometry."""
        rerank_name, rerank_config = choose_rerank(rerank)
        if rerank_config is None or rerank_config.features != KEYPOINTS:
            raise ClientError(
                f"rerank {rerank_name!r} matches no keypoints, so there are no matches to draw; choose a "
                "re-ranking by local features",
                HTTPStatus.UNPROCESSABLE_ENTITY,
            )
        database = load_collection_image(image_id, max_side=MATCHES_SIDE)
        with received_upload(file, uploads, decoding) as query, searching:
            correspondences = engine.correspondences(
                query.path, image_id, rerank_config, shortlist, max_pixels=uploads.max_pixels
            )
        picture = draw_matches(
            query.image,
            database.rgb,
            correspondences.query_points,
            correspondences.database_points,
            correspondences.inliers if correspondences.verified else None,
            height=MATCHES_HEIGHT,
            max_width=MATCHES_MAX_WIDTH,
            point_sizes=(query.original_size, database.original_size),
        )
        return Response(
            encode_png(picture),
            media_type="image/png",
            headers={
                "X-Inliers": str(int(correspondences.inliers.sum())),
                "X-Tentative-Matches": str(len(correspondences.inliers)),
                "X-Verified": "true" if correspondences.verified else "false",
            },
        )

    return app
