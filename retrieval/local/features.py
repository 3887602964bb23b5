"""Local features: keypoints with descriptors, and the OpenCV detectors that extract them.

Every :class:`LocalFeatures` keeps its keypoints strongest first (by detector response, or by activation norm
for CNN patches), so that a smaller budget is always a prefix: ``features.top(512)`` is what a detector limited
to 512 keypoints would have kept. Keypoints are in pixels of the ORIGINAL image (the one given to the extractor,
before any downscaling to ``max_side``), with OpenCV's convention that pixel centres sit on integer coordinates.

Descriptors are float32 for SIFT and RootSIFT and packed bits (uint8) for the binary methods; matching them is
:mod:`retrieval.local.matching`'s job. Any :class:`LocalExtractor` (OpenCV's here, the CNN patches of
:mod:`retrieval.local.cnn_patches`) fills a feature store and describes queries the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, get_args

import cv2
import numpy as np

from retrieval.images import BoundingBox, crop_region, decode, load_gray
from retrieval.local.hamming import CompactSettings

LocalFeatureMethod = Literal["sift", "rootsift", "orb", "akaze", "brisk"]
LOCAL_FEATURE_METHODS: tuple[str, ...] = get_args(LocalFeatureMethod)
BINARY_METHODS: tuple[str, ...] = ("orb", "akaze", "brisk")

# Descriptor width per method: float values for SIFT/RootSIFT, bytes of packed bits for the binary methods.
DESCRIPTOR_DIMS: dict[str, int] = {"sift": 128, "rootsift": 128, "orb": 32, "akaze": 61, "brisk": 64}

# Added to the L1 norm before dividing, so that an all-zero SIFT descriptor stays zero instead of NaN.
_ROOTSIFT_EPS = 1e-7

# OpenCV's KeyPoint.angle for "no orientation".
NO_ANGLE = -1.0


@dataclass(frozen=True, eq=False)
class LocalFeatures:
    """Keypoints and descriptors of one image, strongest keypoint first.

    Attributes:
        keypoints: (N, 4) float32 rows of x, y, scale, angle. x and y are pixels of the original image, scale is
            the diameter of the described region in the same pixels (OpenCV's ``KeyPoint.size``), angle is in
            degrees (``NO_ANGLE`` = -1 where the method has no orientation).
        descriptors: (N, D) float32, or (N, D) uint8 packed bits for binary methods (D bytes = 8·D bits).
        image_size: (width, height) of the original image in pixels.
    """

    keypoints: np.ndarray
    descriptors: np.ndarray
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        if self.keypoints.ndim != 2 or self.keypoints.shape[1] != 4 or self.keypoints.dtype != np.float32:
            raise ValueError(
                f"keypoints must be a float32 array (N, 4), got {self.keypoints.dtype} {self.keypoints.shape}"
            )
        if self.descriptors.ndim != 2 or self.descriptors.dtype not in (np.float32, np.uint8):
            raise ValueError(
                "descriptors must be a float32 or uint8 array (N, D), "
                f"got {self.descriptors.dtype} {self.descriptors.shape}"
            )
        if len(self.keypoints) != len(self.descriptors):
            raise ValueError(
                f"{len(self.keypoints)} keypoints but {len(self.descriptors)} descriptors; they must pair up"
            )
        width, height = self.image_size
        if width < 0 or height < 0:
            raise ValueError(f"image_size must be a non-negative (width, height), got {self.image_size}")

    def __len__(self) -> int:
        return len(self.keypoints)

    @property
    def binary(self) -> bool:
        """Whether the descriptors are packed bits (compared by Hamming distance)."""
        return self.descriptors.dtype == np.uint8

    @property
    def dim(self) -> int:
        """Descriptor width: float values, or bytes of packed bits."""
        return int(self.descriptors.shape[1])

    @classmethod
    def empty(cls, dim: int, binary: bool, image_size: tuple[int, int] = (0, 0)) -> LocalFeatures:
        """Features of an image where nothing was detected (or that could not be read)."""
        dtype = np.uint8 if binary else np.float32
        return cls(np.zeros((0, 4), np.float32), np.zeros((0, dim), dtype), image_size)

    def top(self, max_keypoints: int | None) -> LocalFeatures:
        """The ``max_keypoints`` strongest keypoints (all of them for None); shares memory with ``self``."""
        if max_keypoints is None or max_keypoints >= len(self):
            return self
        if max_keypoints < 0:
            raise ValueError(f"max_keypoints must be non-negative or None, got {max_keypoints}")
        return LocalFeatures(
            self.keypoints[:max_keypoints], self.descriptors[:max_keypoints], self.image_size
        )

    def in_pixels_of(self, image_size: tuple[int, int]) -> LocalFeatures:
        """The same features with keypoints (position and scale) mapped from this image's pixels to those of the
        same picture at ``image_size`` (width, height): e.g. from a reduced-size decode to the original."""
        if image_size == self.image_size:
            return self
        scales = np.array(image_size, np.float32) / np.array(self.image_size, np.float32)
        keypoints = self.keypoints.copy()
        keypoints[:, :2] = (keypoints[:, :2] + 0.5) * scales - 0.5
        keypoints[:, 2] *= scales.max()
        return LocalFeatures(keypoints, self.descriptors, image_size)

    def points_at_side(self, side: int | None) -> np.ndarray:
        """Keypoint positions (N, 2) float32 rescaled as if the image were resized so that its longest side
        is at most ``side`` pixels (unchanged for None or smaller images).

        Geometric thresholds are set in pixels at the detection resolution; this puts keypoints of images of
        any original size there.
        """
        points = self.keypoints[:, :2]
        longest = max(self.image_size)
        if side is None or longest <= side:
            return points
        scale = side / longest
        return ((points + 0.5) * scale - 0.5).astype(np.float32)


class LocalExtractor(Protocol):
    """What a feature store and re-ranking need of a local-feature extractor.

    Attributes:
        method: names the features ("rootsift", "orb", "cnn_patch", ...).
        max_keypoints: features kept per image, strongest first.
        max_side: longest image side at detection, in pixels.
        descriptor_dim: descriptor width (float values, or bytes of packed bits).
        binary: whether descriptors are packed bits.
        descriptor_id: names learned weights behind the descriptors (None for hand-crafted features), so that
            stores of different weights never mix.
        runs_in_workers: whether extraction may run in worker processes (False for one that holds a network
            on a device).
        compact: how a store encodes database features compactly (:mod:`retrieval.local.hamming`); None
            stores them as extracted. Queries are described in full either way.
        selection: how CNN patches are ranked strongest first ("norm" or "attention",
            :mod:`retrieval.local.cnn_patches`); None for keypoints (OpenCV's detector response).
    """

    @property
    def method(self) -> str: ...

    @property
    def max_keypoints(self) -> int: ...

    @property
    def max_side(self) -> int: ...

    @property
    def descriptor_dim(self) -> int: ...

    @property
    def binary(self) -> bool: ...

    @property
    def descriptor_id(self) -> str | None: ...

    @property
    def runs_in_workers(self) -> bool: ...

    @property
    def compact(self) -> CompactSettings | None: ...

    @property
    def selection(self) -> str | None: ...

    def from_path(self, path: str | Path, box: BoundingBox | None = None) -> LocalFeatures:
        """Features of an image file, or of its crop ``box`` (full-resolution pixels; keypoints are then in
        the crop's pixels).

        Raises:
            retrieval.images.ImageLoadError: the file is missing, corrupt or too large.
        """
        ...


def _create_detector(method: str, max_keypoints: int) -> cv2.Feature2D:
    if method in ("sift", "rootsift"):
        return cv2.SIFT.create(nfeatures=max_keypoints)
    if method == "orb":
        return cv2.ORB.create(nfeatures=max_keypoints)
    if method == "akaze":
        return cv2.AKAZE.create()
    return cv2.BRISK.create()


class LocalFeatureExtractor:
    """Detect and describe keypoints with OpenCV, keeping the ``max_keypoints`` strongest by response.

    Images are downscaled (area interpolation) so that their longest side is at most ``max_side`` before
    detection; keypoints are mapped back to the original image's pixels. RootSIFT descriptors are SIFT
    descriptors L1-normalised then square-rooted, hence L2-normalised. The extractor holds no OpenCV object,
    so it pickles into worker processes; a detector costs microseconds to create per call.
    """

    descriptor_id: str | None = None
    runs_in_workers = True
    selection = None  # keypoints come strongest first by the detector's response

    def __init__(
        self,
        method: LocalFeatureMethod = "rootsift",
        max_keypoints: int = 2048,
        max_side: int = 1024,
        compact: CompactSettings | None = None,
    ):
        if method not in LOCAL_FEATURE_METHODS:
            raise ValueError(f"method must be one of {LOCAL_FEATURE_METHODS}, got {method!r}")
        if max_keypoints <= 0:
            raise ValueError(f"max_keypoints must be positive, got {max_keypoints}")
        if max_side <= 0:
            raise ValueError(f"max_side must be positive, got {max_side}")
        if compact is not None and method not in ("sift", "rootsift"):
            raise ValueError(f"compact stores embed SIFT or RootSIFT descriptors, not {method!r}")
        self.method = method
        self.max_keypoints = max_keypoints
        self.max_side = max_side
        self.compact = compact

    def __repr__(self) -> str:
        compact = "" if self.compact is None else f", compact={self.compact}"
        return (
            f"LocalFeatureExtractor(method={self.method!r}, max_keypoints={self.max_keypoints}, "
            f"max_side={self.max_side}{compact})"
        )

    @property
    def binary(self) -> bool:
        """Whether descriptors are packed bits."""
        return self.method in BINARY_METHODS

    @property
    def descriptor_dim(self) -> int:
        """Descriptor width: float values, or bytes of packed bits."""
        return DESCRIPTOR_DIMS[self.method]

    def __call__(self, gray: np.ndarray) -> LocalFeatures:
        """Extract features from a uint8 grayscale image (H, W)."""
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ValueError(f"expected a uint8 grayscale image (H, W), got {gray.dtype} {gray.shape}")
        height, width = gray.shape
        image_size = (width, height)
        scale = self.max_side / max(height, width, 1)
        if scale < 1.0:
            detection_size = (max(1, round(width * scale)), max(1, round(height * scale)))
            detection_image = cv2.resize(gray, detection_size, interpolation=cv2.INTER_AREA)
        else:
            detection_size = image_size
            detection_image = gray

        detector = _create_detector(self.method, self.max_keypoints)
        cv_keypoints, cv_descriptors = detector.detectAndCompute(detection_image, None)
        if cv_descriptors is None or not cv_keypoints:
            return LocalFeatures.empty(self.descriptor_dim, self.binary, image_size)

        rows = np.array(
            [
                (keypoint.response, keypoint.pt[0], keypoint.pt[1], keypoint.size, keypoint.angle)
                for keypoint in cv_keypoints
            ],
            dtype=np.float32,
        )
        # Strongest first; position, size and angle break ties (SIFT repeats a point for each orientation), so
        # the order does not depend on OpenCV's and a smaller budget is a prefix of a larger one.
        strongest = np.lexsort((rows[:, 4], rows[:, 3], rows[:, 2], rows[:, 1], -rows[:, 0]))[
            : self.max_keypoints
        ]
        keypoints = np.ascontiguousarray(rows[strongest, 1:])
        if detection_size != image_size:
            # Pixel centres sit on integers: detection x maps to original (x + 0.5) * width / detection width - 0.5.
            axis_scales = np.array(image_size, np.float32) / np.array(detection_size, np.float32)
            keypoints[:, :2] = (keypoints[:, :2] + 0.5) * axis_scales - 0.5
            keypoints[:, 2] *= axis_scales.max()

        descriptors = cv_descriptors[strongest]
        if self.method == "rootsift":
            descriptors = descriptors / (np.abs(descriptors).sum(axis=1, keepdims=True) + _ROOTSIFT_EPS)
            descriptors = np.sqrt(descriptors)
        dtype = np.uint8 if self.binary else np.float32
        return LocalFeatures(keypoints, np.ascontiguousarray(descriptors, dtype=dtype), image_size)

    def from_path(
        self, path: str | Path, box: BoundingBox | None = None, max_pixels: int | None = None
    ) -> LocalFeatures:
        """Extract features from an image file; keypoints come back in the original image's pixels (the crop's
        pixels, with ``box``). Large JPEGs are decoded at reduced size, never below ``max_side``, so memory is
        bounded by the detection side, not the photo; a crop is taken from the full-resolution image.

        Args:
            path: the image file.
            box: a crop (x1, y1, x2, y2) in full-resolution pixels, or None.
            max_pixels: the most pixels to decode (see :func:`retrieval.images.decode`).

        Raises:
            retrieval.images.ImageLoadError: the file is missing, corrupt, of another format or too large.
        """
        if box is not None:
            gray = load_gray(path, max_pixels=max_pixels)
            left, top, right, bottom = crop_region(gray.shape[1], gray.shape[0], box)
            return self(np.ascontiguousarray(gray[top:bottom, left:right]))
        decoded = decode(path, self.max_side, max_pixels, reduce_only=True)
        features = self(np.asarray(decoded.rgb.convert("L")))
        return features.in_pixels_of(decoded.original_size)
