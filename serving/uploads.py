"""What the server accepts from a client, and in what memory: request bodies bounded before they are read
(:class:`BodySizeLimit`), uploads decoded only from the allowed formats, with the pixels they would decode to
bounded *before* decoding (JPEGs decode at reduced size), extreme aspect ratios refused, and each refusal a clear
4xx (:class:`ClientError`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

from fastapi import HTTPException, UploadFile
from fastapi.responses import JSONResponse
from PIL import Image
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retrieval.images import ImageLoadError, ImageTooLargeError, UnsupportedFormatError, decode


class ClientError(ValueError):
    """Bad input from a client; ``status_code`` is the HTTP status that says what is wrong."""

    def __init__(self, message: str, status_code: HTTPStatus) -> None:
        super().__init__(message)
        self.status_code = status_code


def format_size(num_bytes: int) -> str:
    """``10485760`` → ``"10 MB"`` (binary megabytes, as browsers count them)."""
    return f"{num_bytes / 2**20:g} MB"


@dataclass(frozen=True)
class UploadLimits:
    """What one upload may cost.

    Attributes:
        max_bytes: the largest file.
        max_pixels: the most pixels a decode of it may produce (JPEGs count at the reduced size they decode at;
            other formats at full size), checked from the header before decoding.
        max_aspect_ratio: the longest side over the shortest (panoramas pass, a 10000x3 strip does not).
        decode_side: the longest side uploads are decoded at: the largest side the search needs.
    """

    max_bytes: int = 10 * 2**20
    max_pixels: int = 30_000_000
    max_aspect_ratio: float = 20.0
    decode_side: int = 1024

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_pixels < 1 or self.decode_side < 16:
            raise ValueError(
                f"max_bytes and max_pixels must be positive and decode_side at least 16, got {self.max_bytes}, "
                f"{self.max_pixels}, {self.decode_side}"
            )
        if self.max_aspect_ratio < 1:
            raise ValueError(f"max_aspect_ratio must be at least 1, got {self.max_aspect_ratio}")


@dataclass(frozen=True, eq=False)
class Upload:
    """A validated upload: its file (decoded by the search as indexed files are), the picture at
    ``decode_side`` for drawing, and the full image's size."""

    path: Path
    image: Image.Image
    original_size: tuple[int, int]


def unreadable_upload_status(error: ImageLoadError) -> HTTPStatus:
    """415 for a file that is no image in an allowed format, 413 for an image over the pixel budget (or PIL's
    decompression-bomb guard), 422 for an image that cannot be decoded (truncated, corrupt)."""
    if isinstance(error, UnsupportedFormatError):
        return HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    if isinstance(error, ImageTooLargeError):
        return HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    return HTTPStatus.UNPROCESSABLE_ENTITY


@contextmanager
def received_upload(
    upload: UploadFile, limits: UploadLimits, decoding: threading.Semaphore | None = None
) -> Iterator[Upload]:
    """The upload written to a temporary file and validated by decoding it once within ``limits`` (holding
    ``decoding``, which bounds how many uploads decode at once); the file is deleted when the block ends.

    Raises:
        ClientError: the file is empty (400), over the size or pixel budget (413), no image of an allowed format
            (415), corrupt or truncated, or of an extreme aspect ratio (422).
    """
    name = upload.filename or "the upload"
    data = upload.file.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise ClientError(
            f"{name} is larger than the upload limit of {format_size(limits.max_bytes)}",
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
    if not data:
        raise ClientError(f"{name} is empty", HTTPStatus.BAD_REQUEST)
    with tempfile.TemporaryDirectory(prefix="search-upload-") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(data)
        del data
        try:
            with decoding or contextlib.nullcontext():
                decoded = decode(path, limits.decode_side, limits.max_pixels)
        except ImageLoadError as error:
            raise ClientError(str(error).replace(str(path), name), unreadable_upload_status(error)) from error
        width, height = decoded.original_size
        if max(width, height) > limits.max_aspect_ratio * max(1, min(width, height)):
            raise ClientError(
                f"{name} is {width}x{height}: an aspect ratio over {limits.max_aspect_ratio:g}:1 is no photo of a "
                "place",
                HTTPStatus.UNPROCESSABLE_ENTITY,
            )
        yield Upload(path, decoded.rgb, decoded.original_size)


# mallopt's option for the size above which allocations are memory-mapped (and unmapped when freed).
_M_MMAP_THRESHOLD = -3


def return_large_buffers_to_the_system(threshold_bytes: int = 1 << 20) -> bool:
    """Have glibc serve allocations over ``threshold_bytes`` (image buffers, SIFT pyramids) from their own
    mappings, returned to the system when freed, instead of keeping them in the heap: the server's RSS then falls
    back after a burst of large requests instead of staying at its peak. False where glibc is not the allocator.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold_bytes))
    except (OSError, AttributeError):
        return False


class BodySizeLimit:
    """ASGI middleware refusing request bodies over ``max_body_bytes`` with a 413: by their declared
    Content-Length before anything is read, and by the bytes actually received (chunked uploads, or a client
    that declares less than it sends)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, message: str) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.message = message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            response = JSONResponse({"detail": self.message}, status_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            await response(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # An HTTPException passes through FastAPI's body parsing to its JSON error handler.
                    raise HTTPException(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self.message)
            return message

        await self.app(scope, receive_within_limit, send)
