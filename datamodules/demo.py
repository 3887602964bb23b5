"""Deterministic mini Google-Landmarks-v2 (GLDv2) with a Revisited-Oxford-style benchmark, for the demo.

``python -m datamodules.demo --root data/demo`` writes, in about 15 CPU seconds and 11 MB, a dataset in the exact
file formats of the real GLDv2 release, so that the real loaders read it unchanged::

    <root>/train.csv                        id,url,landmark_id
    <root>/train_clean.csv                  landmark_id,images        (images: space-separated ids)
    <root>/train/<a>/<b>/<c>/<id>.jpg       a, b, c: the first three characters of the 16-hex-digit id
    <root>/index.csv, <root>/test.csv       id                        (images under index/ and test/)
    <root>/retrieval_solution_v2.1.csv      id,images,Usage           (Public, Private, or None/Ignored)
    <root>/revisited/rdemo/jpg/<name>.jpg   database and query images
    <root>/revisited/rdemo/gnd_rdemo.pkl    {'imlist', 'qimlist', 'gnd': [{'easy', 'hard', 'junk', 'bbx'}]}
    <root>/noise_manifest.json              every defect injected into train, the oracle for the dataset analysis
    <root>/README.md
    <root>/.complete                        written last

Every landmark is a procedural façade in one of eight architectural styles (random proportions, colours and
materials, with unique window contents, glyph signs and ornaments). Every photo is a perspective warp of its
landmark's canonical scene over a random background, with occluders, lighting changes, blur, noise and JPEG
compression: views of one landmark share many geometrically consistent SIFT matches, views of two do not.

Randomness comes only from ``numpy.random.Generator`` objects seeded from ``(seed, stream, index)``, so the same
seed gives byte-identical files.
"""

from __future__ import annotations

import argparse
import enum
import io
import json
import pickle
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
from PIL import Image

from retrieval.images import load_rgb

Color = tuple[int, int, int]
_T = TypeVar("_T")

MARKER_FILE = ".complete"
SOLUTION_FILE = "retrieval_solution_v2.1.csv"
RDEMO_NAME = "rdemo"
_URL_TEMPLATE = "https://example.invalid/gldv2-demo/{image_id}.jpg"
_MAX_LANDMARK_ID = 200_000
_TRUNCATED_FRACTION = 0.6
_PUBLIC, _PRIVATE, _IGNORED = "Public", "Private", "Ignored"
_CAMERAS: tuple[tuple[str, str], ...] = (
    ("Canon", "Canon EOS 5D Mark II"),
    ("NIKON CORPORATION", "NIKON D7000"),
    ("Apple", "iPhone 6"),
    ("SONY", "DSC-RX100"),
    ("samsung", "SM-G930F"),
    ("FUJIFILM", "X-T2"),
)
_EXIF_MAKE, _EXIF_MODEL, _EXIF_IFD, _EXIF_DATETIME_ORIGINAL = 0x010F, 0x0110, 0x8769, 0x9003


# ----------------------------------------------------------------------------------------------------------------
# Configuration and result
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo dataset. The defaults give ~400 train, ~140 index, ~40 test and ~120 rdemo images.

    Train rows are the ``train_images_per_landmark`` genuine views of each landmark plus the extra noise rows
    (mislabelled, distractor, corrupt, missing, near-duplicate); grayscale, near-grayscale and CMYK images are
    genuine views saved differently.
    """

    num_train_landmarks: int = 40
    min_train_images_per_landmark: int = 6
    max_train_images_per_landmark: int = 20
    num_mislabelled: int = 12
    num_train_distractors: int = 8
    num_grayscale_single_channel: int = 3
    num_grayscale_rgb: int = 3
    num_near_grayscale: int = 2
    num_missing: int = 3
    num_near_duplicates: int = 6
    exif_datetime_fraction: float = 0.7
    exif_camera_fraction: float = 0.6
    num_index_landmarks: int = 12
    min_index_images_per_landmark: int = 6
    max_index_images_per_landmark: int = 10
    num_index_distractors: int = 40
    min_test_queries_per_landmark: int = 2
    max_test_queries_per_landmark: int = 3
    num_test_non_landmark: int = 8
    public_fraction: float = 1 / 3
    num_rdemo_landmarks: int = 8
    rdemo_easy_per_landmark: int = 4
    rdemo_hard_per_landmark: int = 3
    rdemo_junk_per_landmark: int = 2
    num_rdemo_distractors: int = 30
    rdemo_queries_per_landmark: int = 2
    min_long_side: int = 320
    max_long_side: int = 480

    def __post_init__(self) -> None:
        for config_field in fields(self):
            value = getattr(self, config_field.name)
            if value < 0:
                raise ValueError(f"DemoConfig.{config_field.name} must be non-negative, got {value}")
        for name in ("exif_datetime_fraction", "exif_camera_fraction", "public_fraction"):
            if getattr(self, name) > 1:
                raise ValueError(f"DemoConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        for low, high in (
            ("min_train_images_per_landmark", "max_train_images_per_landmark"),
            ("min_index_images_per_landmark", "max_index_images_per_landmark"),
            ("min_test_queries_per_landmark", "max_test_queries_per_landmark"),
            ("min_long_side", "max_long_side"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(
                    f"DemoConfig.{low}={getattr(self, low)} exceeds DemoConfig.{high}={getattr(self, high)}"
                )
        if self.num_train_landmarks < 2 and self.num_mislabelled > 0:
            raise ValueError(
                f"mislabelled images need at least 2 train landmarks, got num_train_landmarks={self.num_train_landmarks}"
            )
        if self.min_train_images_per_landmark < 1:
            raise ValueError(
                f"DemoConfig.min_train_images_per_landmark must be at least 1, got {self.min_train_images_per_landmark}"
            )
        recoloured = self.num_grayscale_single_channel + self.num_grayscale_rgb + self.num_near_grayscale + 1
        minimum_genuine = self.num_train_landmarks * self.min_train_images_per_landmark
        if recoloured + self.num_near_duplicates > minimum_genuine:
            raise ValueError(
                f"{recoloured} grayscale/near-grayscale/CMYK images plus {self.num_near_duplicates} near-duplicate "
                f"sources need more than the {minimum_genuine} genuine train views that "
                f"num_train_landmarks={self.num_train_landmarks} and "
                f"min_train_images_per_landmark={self.min_train_images_per_landmark} guarantee"
            )
        if self.min_long_side < 64:
            raise ValueError(f"DemoConfig.min_long_side must be at least 64 pixels, got {self.min_long_side}")


DEMO_SCALES: dict[str, DemoConfig] = {
    "default": DemoConfig(),
    "small": DemoConfig(
        num_train_landmarks=5,
        min_train_images_per_landmark=6,
        max_train_images_per_landmark=8,
        num_mislabelled=2,
        num_train_distractors=2,
        num_grayscale_single_channel=1,
        num_grayscale_rgb=1,
        num_near_grayscale=1,
        num_missing=1,
        num_near_duplicates=2,
        num_index_landmarks=3,
        min_index_images_per_landmark=3,
        max_index_images_per_landmark=4,
        num_index_distractors=3,
        num_test_non_landmark=2,
        num_rdemo_landmarks=3,
        rdemo_easy_per_landmark=2,
        rdemo_hard_per_landmark=1,
        rdemo_junk_per_landmark=1,
        num_rdemo_distractors=3,
    ),
}


@dataclass(frozen=True)
class DemoManifest:
    """What :func:`generate_demo` wrote: the dataset counts and every defect injected into ``train``.

    The noise fields are written to ``noise_manifest.json`` under the same names. ``train_clean.csv`` lists, per
    landmark, the genuine views that are in none of ``mislabelled``, ``grayscale``, ``near_grayscale``,
    ``distractor``, ``corrupt``, ``missing`` and ``near_duplicate`` (CMYK images are clean), and only landmarks
    with at least two of them.
    """

    root: Path
    seed: int
    counts: Mapping[str, int]
    mislabelled: tuple[str, ...]
    grayscale: tuple[str, ...]
    near_grayscale: tuple[str, ...]
    distractor: tuple[str, ...]
    corrupt: tuple[str, ...]
    cmyk: tuple[str, ...]
    missing: tuple[str, ...]
    near_duplicate: Mapping[str, str]
    exif_datetime: Mapping[str, str]
    camera: Mapping[str, str]
    true_landmark: Mapping[str, int]

    def noise_json(self) -> dict[str, object]:
        """The content of ``noise_manifest.json``: lists sorted, mappings sorted by id, then ``counts``."""
        return {
            "mislabelled": list(self.mislabelled),
            "grayscale": list(self.grayscale),
            "near_grayscale": list(self.near_grayscale),
            "distractor": list(self.distractor),
            "corrupt": list(self.corrupt),
            "cmyk": list(self.cmyk),
            "missing": list(self.missing),
            "near_duplicate": dict(sorted(self.near_duplicate.items())),
            "exif_datetime": dict(sorted(self.exif_datetime.items())),
            "camera": dict(sorted(self.camera.items())),
            "true_landmark": dict(sorted(self.true_landmark.items())),
            "counts": dict(self.counts),
        }


# ----------------------------------------------------------------------------------------------------------------
# Random helpers
# ----------------------------------------------------------------------------------------------------------------


class _Stream(enum.IntEnum):
    """Independent random streams: the generator of item ``i`` of a stream is seeded by ``(seed, stream, i)``."""

    PLAN = 0
    SCENE = 1
    TRAIN = 2
    INDEX = 3
    TEST = 4
    RDEMO = 5
    RDEMO_QUERY = 6


def _rng(seed: int, stream: _Stream, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, int(stream), index])


def _randint(rng: np.random.Generator, low: int, high: int) -> int:
    """A uniform integer in [low, high], both included."""
    return int(rng.integers(low, high + 1))


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _pick(rng: np.random.Generator, options: Sequence[_T]) -> _T:
    return options[int(rng.integers(len(options)))]


def _color(values: Sequence[float] | np.ndarray) -> Color:
    red, green, blue = (min(255, max(0, round(float(value)))) for value in values)
    return red, green, blue


def _jitter(rng: np.random.Generator, color: Color, amount: float) -> Color:
    return _color(np.asarray(color, np.float64) + rng.uniform(-amount, amount, 3))


def _scale_color(color: Color, factor: float) -> Color:
    return _color(np.asarray(color, np.float64) * factor)


def _fractal_noise(rng: np.random.Generator, height: int, width: int, cells: int, octaves: int) -> np.ndarray:
    """Smooth multi-octave noise (height, width) float32 with a standard deviation of roughly 1.

    The coarsest octave has ``cells`` random values along the longer side; each next one doubles the resolution
    and halves the amplitude. Octaves are summed on the finest grid, which is then resized once.
    """

    def grid_size(octave: int) -> tuple[int, int]:
        along_long_side = cells * 2**octave
        return (
            max(2, round(along_long_side * width / max(height, width))),
            max(2, round(along_long_side * height / max(height, width))),
        )

    finest = grid_size(octaves - 1)
    total = np.zeros(finest[::-1], np.float32)
    for octave in range(octaves):
        size = grid_size(octave)
        grid = rng.standard_normal(size[::-1], dtype=np.float32) * np.float32(0.5**octave)
        total += grid if size == finest else cv2.resize(grid, finest, interpolation=cv2.INTER_CUBIC)
    return cv2.resize(total, (width, height), interpolation=cv2.INTER_CUBIC)


def _rect(left: float, top: float, right: float, bottom: float) -> np.ndarray:
    """The polygon (4, 2) int32 of an axis-aligned rectangle."""
    return (
        np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float64)
        .round()
        .astype(np.int32)
    )


def _polygon(points: Sequence[tuple[float, float]] | np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64).round().astype(np.int32)


# ----------------------------------------------------------------------------------------------------------------
# Materials and drawing primitives
# ----------------------------------------------------------------------------------------------------------------

_MATERIAL_COLORS: dict[str, tuple[Color, ...]] = {
    "marble": ((238, 232, 218), (226, 222, 214), (232, 220, 200), (218, 214, 206)),
    "sandstone": ((214, 190, 146), (196, 170, 124), (222, 200, 160), (186, 156, 112)),
    "granite": ((150, 148, 144), (128, 126, 124), (170, 166, 158), (112, 112, 118)),
    "brick": ((158, 66, 46), (176, 94, 62), (124, 54, 42), (188, 112, 78), (142, 82, 58)),
    "plaster": (
        (236, 204, 118),
        (228, 162, 150),
        (166, 198, 222),
        (240, 226, 198),
        (186, 218, 176),
        (232, 178, 108),
    ),
    "wood": ((150, 44, 34), (112, 70, 42), (172, 62, 40), (90, 54, 36)),
    "concrete": ((184, 182, 176), (150, 150, 148), (206, 200, 190)),
    "slate": ((70, 76, 86), (58, 62, 70), (88, 92, 100)),
    "tile": ((164, 70, 48), (138, 58, 44), (180, 96, 60), (60, 110, 90), (50, 70, 120)),
    "copper": ((86, 150, 128), (70, 132, 118), (104, 160, 140), (212, 170, 70)),
    "glass": ((70, 110, 140), (60, 90, 110), (90, 130, 150), (50, 70, 90), (100, 120, 110)),
}
_ACCENT_COLORS: tuple[Color, ...] = (
    (30, 80, 50),
    (40, 60, 120),
    (120, 30, 30),
    (90, 60, 30),
    (20, 20, 24),
    (160, 120, 40),
    (60, 110, 130),
)
_CLOTHING_COLORS: tuple[Color, ...] = (
    (200, 40, 40),
    (40, 60, 160),
    (30, 30, 30),
    (230, 230, 220),
    (240, 180, 40),
    (60, 130, 60),
    (150, 90, 160),
)


def _material_texture(
    rng: np.random.Generator, pattern: str, base: Color, height: int, width: int
) -> np.ndarray:
    """A (height, width, 3) uint8 texture: ``brick``, ``ashlar`` (stone blocks), ``tiles`` (roof), ``planks``,
    ``veined`` (marble) or ``plain``, all mottled by smooth noise and grain that is unique to this call."""
    base_rgb = np.asarray(base, np.float32)
    if pattern in ("brick", "ashlar", "tiles"):
        block_height, block_width, mortar, jitter = {
            "brick": (_randint(rng, 7, 10), _randint(rng, 18, 26), 1, 18.0),
            "ashlar": (_randint(rng, 14, 24), _randint(rng, 26, 52), 2, 12.0),
            "tiles": (_randint(rng, 6, 9), _randint(rng, 8, 13), 1, 16.0),
        }[pattern]
        rows = np.arange(height) // block_height
        offsets = np.where(rows % 2 == 1, block_width // 2, 0)
        shifted_x = np.arange(width)[None, :] + offsets[:, None]
        columns = shifted_x // block_width
        grid_shape = (int(rows[-1]) + 1, int(columns.max()) + 1)
        brightness = 1 + rng.standard_normal((*grid_shape, 1), dtype=np.float32) * np.float32(jitter / 160)
        hue = rng.standard_normal((*grid_shape, 3), dtype=np.float32) * np.float32(jitter / 4)
        texture = (base_rgb * brightness + hue)[rows[:, None], columns]
        mortar_mask = ((np.arange(height) % block_height) < mortar)[:, None] | (
            (shifted_x % block_width) < mortar
        )
        mortar_color = (190.0, 184.0, 172.0) if pattern == "brick" else tuple(base_rgb * 0.62)
        texture[mortar_mask] = mortar_color
    elif pattern == "planks":
        plank_width = _randint(rng, 6, 12)
        plank_colors = base_rgb + rng.normal(0.0, 14.0, (width // plank_width + 1, 3))
        texture = np.repeat(plank_colors[np.arange(width) // plank_width][None], height, axis=0).astype(
            np.float32
        )
        texture[:, np.arange(width) % plank_width == 0] *= 0.7
        grain = cv2.resize(
            rng.standard_normal((max(2, height // 24), width), dtype=np.float32), (width, height)
        )
        texture *= 1 + 0.06 * grain[..., None]
    else:
        texture = np.full((height, width, 3), base_rgb, np.float32)
        if pattern == "veined":
            angle = _uniform(rng, 0, np.pi)
            along = np.cos(angle) * np.arange(width)[None, :] + np.sin(angle) * np.arange(height)[:, None]
            wobble = 3.0 * _fractal_noise(rng, height, width, cells=4, octaves=3)
            veins = np.abs(np.sin(along / _uniform(rng, 18, 40) + wobble)) < 0.08
            texture[veins] *= 0.82
    mottling = _fractal_noise(rng, height, width, cells=8, octaves=3)
    texture *= 1 + 0.07 * mottling[..., None]
    texture += rng.standard_normal((height, width, 1), dtype=np.float32) * np.float32(4.0)
    return np.clip(texture, 0, 255).astype(np.uint8)


class _Canvas:
    """An RGBA drawing surface for one landmark scene: colour ``rgb`` (H, W, 3) uint8 and coverage ``alpha``
    (H, W) uint8 (255 where the landmark is)."""

    def __init__(self, height: int, width: int) -> None:
        self.rgb = np.zeros((height, width, 3), np.uint8)
        self.alpha = np.zeros((height, width), np.uint8)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    def fill(self, polygons: Sequence[np.ndarray], paint: np.ndarray | Color) -> None:
        """Fill polygons ((K, 2) int32 canvas points each) with a flat colour or a full-canvas texture (H, W, 3)."""
        if isinstance(paint, tuple):
            cv2.fillPoly(self.rgb, list(polygons), paint)
            cv2.fillPoly(self.alpha, list(polygons), 255)
            return
        points = np.concatenate(polygons)
        left, top = np.maximum(points.min(axis=0), 0)
        right, bottom = np.minimum(points.max(axis=0) + 1, (self.width, self.height))
        if right <= left or bottom <= top:
            return
        mask = np.zeros((bottom - top, right - left), np.uint8)
        cv2.fillPoly(mask, [polygon - (left, top) for polygon in polygons], 255)
        inside = mask > 0
        self.rgb[top:bottom, left:right][inside] = paint[top:bottom, left:right][inside]
        np.maximum(self.alpha[top:bottom, left:right], mask, out=self.alpha[top:bottom, left:right])

    def fill_shaded(self, left: int, top: int, paint: np.ndarray, shading: np.ndarray) -> None:
        """Paint the texture ``paint`` (H, W, 3) multiplied by ``shading`` (h, w) float32, whose top-left corner
        goes to (left, top); pixels where ``shading`` is 0 stay untouched, parts off the canvas are cut off."""
        x0, y0 = max(left, 0), max(top, 0)
        x1, y1 = min(left + shading.shape[1], self.width), min(top + shading.shape[0], self.height)
        if x1 <= x0 or y1 <= y0:
            return
        factor = shading[y0 - top : y1 - top, x0 - left : x1 - left]
        inside = factor > 0
        shaded = np.clip(paint[y0:y1, x0:x1].astype(np.float32) * factor[..., None], 0, 255).astype(np.uint8)
        self.rgb[y0:y1, x0:x1][inside] = shaded[inside]
        self.alpha[y0:y1, x0:x1][inside] = 255

    def fill_cylinder(self, box: tuple[int, int, int, int], paint: np.ndarray, light: float) -> None:
        """Paint ``box`` = (left, top, right, bottom) as a vertical cylinder lit from the side ``light``."""
        left, top, right, bottom = box
        if right > left and bottom > top:
            shading = np.broadcast_to(_cylinder_shading(right - left, light), (bottom - top, right - left))
            self.fill_shaded(left, top, paint, shading)


@dataclass(frozen=True)
class _Kit:
    """The materials of one landmark: full-canvas textures (H, W, 3) uint8 and flat colours."""

    wall: np.ndarray
    trim: np.ndarray
    roof: np.ndarray
    side_wall: np.ndarray
    trim_color: Color
    accent: Color
    glass: Color
    light: float  # horizontal light direction in [-1, 1]; the side wall faces away from it
    side: int  # +1: the receding side wall is on the right, -1: on the left


def _cylinder_shading(width: int, light: float) -> np.ndarray:
    """Brightness (width,) float32 of a vertical cylinder lit from the side ``light`` in [-1, 1]."""
    normal_x = np.linspace(-0.98, 0.98, max(width, 1), dtype=np.float32)
    normal_z = np.sqrt(1 - normal_x**2)
    lit = normal_x * light * 0.8 + normal_z * 0.6
    return 0.45 + 0.7 * np.clip(lit, 0, None)


def _draw_glyph(
    rgb: np.ndarray,
    rng: np.random.Generator,
    x: float,
    y: float,
    width: float,
    height: float,
    ink: Color,
    thickness: int,
) -> None:
    """One made-up character: 2–4 random strokes (and sometimes a dot) inside the cell (x, y, width, height)."""
    for _ in range(_randint(rng, 2, 4)):
        num_points = _randint(rng, 2, 3)
        points = np.stack(
            [x + rng.uniform(0, width, num_points), y + rng.uniform(0, height, num_points)], axis=1
        )
        cv2.polylines(rgb, [_polygon(points)], False, ink, thickness, cv2.LINE_AA)
    if rng.random() < 0.25:
        center = (round(x + _uniform(rng, 0.2, 0.8) * width), round(y + _uniform(rng, 0.2, 0.8) * height))
        cv2.circle(rgb, center, max(1, thickness), ink, -1, cv2.LINE_AA)


def _draw_glyph_sign(
    rgb: np.ndarray,
    rng: np.random.Generator,
    box: tuple[int, int, int, int],
    background: Color | None,
    ink: Color,
) -> None:
    """Rows of random glyphs in ``box`` = (left, top, right, bottom), on a bordered panel unless
    ``background`` is None (then carved straight into the surface, like an inscription)."""
    left, top, right, bottom = box
    if right - left < 10 or bottom - top < 6:
        return
    if background is not None:
        cv2.rectangle(rgb, (left, top), (right, bottom), background, -1)
        cv2.rectangle(rgb, (left, top), (right, bottom), ink, 1)
    num_rows = 1 if bottom - top < 28 else _randint(rng, 1, 2)
    padding = max(2, (bottom - top) // 8)
    row_height = (bottom - top - 2 * padding) / num_rows
    glyph_height = row_height * 0.78
    glyph_width = glyph_height * _uniform(rng, 0.55, 0.85)
    thickness = 1 if glyph_height < 14 else 2
    for row in range(num_rows):
        y = top + padding + row * row_height
        x = left + padding + _uniform(rng, 0, glyph_width)
        while x + glyph_width < right - padding:
            _draw_glyph(rgb, rng, x, y, glyph_width, glyph_height, ink, thickness)
            x += glyph_width * (1.15 if rng.random() > 0.18 else 2.0)


def _draw_rosette(
    rgb: np.ndarray, rng: np.random.Generator, center: tuple[int, int], radius: int, colors: Sequence[Color]
) -> None:
    """A rose window or rosette: concentric rings, petals and spokes in random counts and colours."""
    if radius < 4:
        return
    cv2.circle(rgb, center, radius, colors[0], -1, cv2.LINE_AA)
    num_petals = _randint(rng, 6, 16)
    phase = _uniform(rng, 0, 360)
    for ring in range(_randint(rng, 2, 3)):
        ring_radius = radius * (0.85 - 0.3 * ring)
        petal_color = _pick(rng, colors)
        for petal in range(num_petals):
            angle = np.deg2rad(phase + 360 * petal / num_petals + 15 * ring)
            petal_center = (
                round(center[0] + 0.6 * ring_radius * np.cos(angle)),
                round(center[1] + 0.6 * ring_radius * np.sin(angle)),
            )
            axes = (max(1, round(ring_radius * 0.35)), max(1, round(ring_radius * _uniform(rng, 0.1, 0.2))))
            cv2.ellipse(
                rgb, petal_center, axes, float(np.rad2deg(angle)), 0, 360, petal_color, -1, cv2.LINE_AA
            )
    for spoke in range(num_petals):
        angle = np.deg2rad(phase + 360 * (spoke + 0.5) / num_petals)
        end = (round(center[0] + radius * np.cos(angle)), round(center[1] + radius * np.sin(angle)))
        cv2.line(rgb, center, end, colors[-1], 1, cv2.LINE_AA)
    cv2.circle(rgb, center, radius, colors[-1], max(1, radius // 10), cv2.LINE_AA)
    cv2.circle(rgb, center, max(2, radius // 5), _pick(rng, colors), -1, cv2.LINE_AA)


def _draw_clock(
    rgb: np.ndarray, rng: np.random.Generator, center: tuple[int, int], radius: int, ink: Color
) -> None:
    """A clock face with ticks, made-up numerals and hands at a random time."""
    cv2.circle(rgb, center, radius, (236, 232, 216), -1, cv2.LINE_AA)
    cv2.circle(rgb, center, radius, ink, max(1, radius // 8), cv2.LINE_AA)
    for hour in range(12):
        angle = np.deg2rad(30 * hour)
        inner, outer = 0.72 * radius, 0.9 * radius
        start = (round(center[0] + inner * np.sin(angle)), round(center[1] - inner * np.cos(angle)))
        end = (round(center[0] + outer * np.sin(angle)), round(center[1] - outer * np.cos(angle)))
        cv2.line(rgb, start, end, ink, 1, cv2.LINE_AA)
        if hour % 3 == 0 and radius >= 14:
            cell = radius * 0.22
            _draw_glyph(
                rgb,
                rng,
                start[0] - cell / 2 - 0.1 * radius * np.sin(angle),
                start[1] - cell / 2 + 0.1 * radius * np.cos(angle),
                cell,
                cell,
                ink,
                1,
            )
    for length, width in ((0.5, 3), (0.8, 2)):
        angle = _uniform(rng, 0, 2 * np.pi)
        end = (
            round(center[0] + length * radius * np.sin(angle)),
            round(center[1] - length * radius * np.cos(angle)),
        )
        cv2.line(rgb, center, end, ink, width, cv2.LINE_AA)


def _draw_relief(
    rgb: np.ndarray, rng: np.random.Generator, box: tuple[int, int, int, int], base: Color
) -> None:
    """A sculpted group in ``box``: shaded ellipses and polygons in tones of ``base``."""
    left, top, right, bottom = box
    if right - left < 8 or bottom - top < 6:
        return
    for _ in range(_randint(rng, 5, 12)):
        tone = _scale_color(base, _uniform(rng, 0.55, 1.15))
        center = (_randint(rng, left, right), _randint(rng, top, bottom))
        axes = (_randint(rng, 2, max(3, (right - left) // 6)), _randint(rng, 2, max(3, (bottom - top) // 2)))
        cv2.ellipse(rgb, center, axes, _uniform(rng, 0, 180), 0, 360, tone, -1, cv2.LINE_AA)
        cv2.ellipse(rgb, center, axes, _uniform(rng, 0, 180), 0, 360, _scale_color(tone, 0.6), 1, cv2.LINE_AA)


def _draw_flag(rgb: np.ndarray, rng: np.random.Generator, x: int, y: int, size: int) -> None:
    """A flag on a pole whose foot is at (x, y): two or three random stripes and an emblem."""
    pole_top = y - size * 2
    cv2.line(rgb, (x, y), (x, pole_top), (60, 60, 60), 2, cv2.LINE_AA)
    direction = _pick(rng, (-1, 1))
    flag_width = round(size * 1.5)
    num_stripes = _randint(rng, 2, 3)
    for stripe in range(num_stripes):
        stripe_top = pole_top + stripe * size // num_stripes
        corner = (x + direction * flag_width, stripe_top + size // num_stripes)
        cv2.rectangle(rgb, (x, stripe_top), corner, _pick(rng, _CLOTHING_COLORS), -1)
    cv2.circle(
        rgb,
        (x + direction * flag_width // 2, pole_top + size // 2),
        max(1, size // 5),
        _pick(rng, _CLOTHING_COLORS),
        -1,
        cv2.LINE_AA,
    )


def _window_outline(left: float, top: float, width: float, height: float, shape: str) -> np.ndarray:
    """The outline (K, 2) int32 of a window: ``rect``, ``round`` (semicircular head) or ``pointed`` (gothic)."""
    right, bottom = left + width, top + height
    if shape == "rect":
        return _rect(left, top, right, bottom)
    center_x = left + width / 2
    if shape == "round":
        angles = np.linspace(np.pi, 2 * np.pi, 12)
        head = np.stack(
            [center_x + width / 2 * np.cos(angles), top + width / 2 + width / 2 * np.sin(angles)], 1
        )
    else:
        spring = top + min(height * 0.45, width * 0.9)
        rise = np.linspace(0, 1, 7)
        left_arc = np.stack([left + width / 2 * np.sin(rise * np.pi / 2), spring - (spring - top) * rise], 1)
        right_arc = np.stack(
            [right - width / 2 * np.sin(rise[::-1] * np.pi / 2), spring - (spring - top) * rise[::-1]], 1
        )
        head = np.concatenate([left_arc, right_arc])
    return _polygon(np.concatenate([[[left, bottom]], head, [[right, bottom]]]))


def _draw_window(
    rgb: np.ndarray,
    rng: np.random.Generator,
    kit: _Kit,
    box: tuple[float, float, float, float],
    shape: str,
    shutters: bool = False,
) -> None:
    """One window with unique contents (lit room, curtains or reflecting glass), recess shadow, glazing bars,
    frame, and optionally a sill, a flower box and shutters. ``box`` = (left, top, width, height)."""
    left, top, width, height = box
    if width < 3 or height < 4:
        return
    outline = _window_outline(left, top, width, height, shape)
    shadow_offset = np.array([round(2 * kit.light), 2], np.int32)
    cv2.fillPoly(rgb, [outline + shadow_offset], _scale_color(kit.trim_color, 0.35))
    x0, y0 = int(outline[:, 0].min()), int(outline[:, 1].min())
    x1, y1 = int(outline[:, 0].max()) + 1, int(outline[:, 1].max()) + 1
    patch_height, patch_width = y1 - y0, x1 - x0
    vertical = np.linspace(0, 1, patch_height, dtype=np.float32)[:, None, None]
    interior = rng.random()
    if interior < 0.3:
        top_color, bottom_color = np.array((250, 214, 140), np.float32), np.array((200, 150, 80), np.float32)
    else:
        glass = np.asarray(kit.glass, np.float32) * _uniform(rng, 0.7, 1.2)
        top_color, bottom_color = glass * 1.3 + 20, glass * 0.6
    patch = top_color * (1 - vertical) + bottom_color * vertical
    patch = np.broadcast_to(patch, (patch_height, patch_width, 3)).copy()
    diagonal = np.arange(patch_width)[None, :] + _uniform(rng, 0.3, 1.2) * np.arange(patch_height)[:, None]
    band_start = _uniform(rng, 0, patch_width + patch_height)
    reflection = (diagonal > band_start) & (diagonal < band_start + _uniform(rng, 2, 8))
    patch[reflection] = patch[reflection] * 0.5 + 120
    if 0.3 <= interior < 0.65:
        curtain = np.asarray(_pick(rng, _CLOTHING_COLORS), np.float32) * _uniform(rng, 0.6, 1.0)
        covered = round(_uniform(rng, 0.2, 0.5) * patch_width)
        if rng.random() < 0.5:
            patch[:, :covered] = curtain
        else:
            patch[:, patch_width - covered :] = curtain
        patch[: round(patch_height * _uniform(rng, 0.05, 0.2))] = curtain * 0.8
    mask = np.zeros((patch_height, patch_width), np.uint8)
    cv2.fillPoly(mask, [outline - (x0, y0)], 255)
    region = rgb[y0:y1, x0:x1]
    inside = mask[: region.shape[0], : region.shape[1]] > 0
    region[inside] = np.clip(patch[: region.shape[0], : region.shape[1]][inside], 0, 255).astype(np.uint8)
    frame = _scale_color(kit.trim_color, _uniform(rng, 0.9, 1.1))
    bars = _randint(rng, 0, 3)
    if bars >= 1:
        cv2.line(
            rgb,
            (round(left + width / 2), round(top)),
            (round(left + width / 2), round(top + height)),
            frame,
            1,
        )
    if bars >= 2:
        bar_y = round(top + height * _uniform(rng, 0.3, 0.5))
        cv2.line(rgb, (round(left), bar_y), (round(left + width), bar_y), frame, 1)
    if bars == 3:
        bar_y = round(top + height * _uniform(rng, 0.6, 0.8))
        cv2.line(rgb, (round(left), bar_y), (round(left + width), bar_y), frame, 1)
    cv2.polylines(rgb, [outline], True, frame, 2 if width > 14 else 1, cv2.LINE_AA)
    if rng.random() < 0.6:
        cv2.rectangle(
            rgb,
            (round(left - 2), round(top + height)),
            (round(left + width + 2), round(top + height + 3)),
            _scale_color(kit.trim_color, 1.1),
            -1,
        )
    if rng.random() < 0.15:
        for _ in range(_randint(rng, 4, 9)):
            flower = (round(left + _uniform(rng, 0, width)), round(top + height - _uniform(rng, 0, 3)))
            cv2.circle(rgb, flower, _randint(rng, 1, 2), _pick(rng, _CLOTHING_COLORS), -1)
    if shutters:
        shutter_width = width * 0.45
        for shutter_left in (left - shutter_width - 1, left + width + 1):
            corner = (round(shutter_left + shutter_width), round(top + height))
            cv2.rectangle(rgb, (round(shutter_left), round(top)), corner, kit.accent, -1)
            for slat_y in np.arange(top + 2, top + height, 3):
                cv2.line(
                    rgb,
                    (round(shutter_left), round(slat_y)),
                    (corner[0], round(slat_y)),
                    _scale_color(kit.accent, 0.7),
                    1,
                )


def _draw_window_grid(
    rgb: np.ndarray,
    rng: np.random.Generator,
    kit: _Kit,
    box: tuple[float, float, float, float],
    rows: int,
    columns: int,
    shape: str,
    shutters: bool = False,
) -> None:
    """A grid of windows inside ``box`` = (left, top, right, bottom), each window unique."""
    left, top, right, bottom = box
    if rows < 1 or columns < 1 or right - left < 8 or bottom - top < 8:
        return
    cell_width, cell_height = (right - left) / columns, (bottom - top) / rows
    width_fraction = _uniform(rng, 0.35, 0.55) * (0.7 if shutters else 1.0)
    height_fraction = _uniform(rng, 0.5, 0.75)
    for row in range(rows):
        for column in range(columns):
            width, height = cell_width * width_fraction, cell_height * height_fraction
            window_left = left + (column + 0.5) * cell_width - width / 2
            window_top = top + (row + 0.5) * cell_height - height / 2
            _draw_window(rgb, rng, kit, (window_left, window_top, width, height), shape, shutters)


def _draw_column(canvas: _Canvas, kit: _Kit, center_x: float, top: int, bottom: int, width: float) -> None:
    """A fluted round column with capital and base."""
    left, right = round(center_x - width / 2), round(center_x + width / 2)
    if right - left < 2:
        return
    canvas.fill_cylinder((left, top, right, bottom), kit.trim, kit.light)
    for flute_x in range(left + 2, right - 1, 3):
        cv2.line(canvas.rgb, (flute_x, top + 3), (flute_x, bottom - 3), _scale_color(kit.trim_color, 0.8), 1)
    cap = max(2, round(width * 0.3))
    canvas.fill([_rect(left - cap, top - cap, right + cap, top)], _scale_color(kit.trim_color, 1.05))
    canvas.fill([_rect(left - cap, bottom - cap, right + cap, bottom)], _scale_color(kit.trim_color, 0.95))


def _draw_side_wall(
    canvas: _Canvas,
    rng: np.random.Generator,
    kit: _Kit,
    edge_x: int,
    top: int,
    bottom: int,
    depth: int,
    window_rows: int,
) -> None:
    """The receding side wall of a block, seen in perspective next to its front edge ``edge_x``, with dark
    windows on it. ``kit.side`` says which side."""
    far_x = edge_x + kit.side * depth
    far_top, far_bottom = top + 0.3 * depth, bottom - 0.06 * depth
    corners = np.array([[edge_x, top], [far_x, far_top], [far_x, far_bottom], [edge_x, bottom]], np.float64)
    canvas.fill([_polygon(corners)], kit.side_wall)
    window_columns = max(1, depth // 22)
    for row in range(window_rows):
        for column in range(window_columns):
            u0, u1 = (column + 0.3) / window_columns, (column + 0.7) / window_columns
            v0, v1 = (row + 0.25) / window_rows, (row + 0.7) / window_rows
            quad = [_bilinear(corners, u, v) for u, v in ((u0, v0), (u1, v0), (u1, v1), (u0, v1))]
            cv2.fillPoly(canvas.rgb, [_polygon(quad)], _scale_color(kit.glass, _uniform(rng, 0.4, 0.8)))


def _bilinear(corners: np.ndarray, u: float, v: float) -> tuple[float, float]:
    """A point of the quad ``corners`` (4, 2) = near-top, far-top, far-bottom, near-bottom at (u along, v down)."""
    top = corners[0] + (corners[1] - corners[0]) * u
    bottom = corners[3] + (corners[2] - corners[3]) * u
    point = top + (bottom - top) * v
    return float(point[0]), float(point[1])


def _draw_gable(
    canvas: _Canvas, paint: np.ndarray | Color, left: float, right: float, base_y: float, apex_y: float
) -> None:
    canvas.fill([_polygon([(left, base_y), ((left + right) / 2, apex_y), (right, base_y)])], paint)


def _draw_spire(
    canvas: _Canvas,
    rng: np.random.Generator,
    kit: _Kit,
    left: float,
    right: float,
    base_y: float,
    apex_y: float,
) -> None:
    """A spire with crockets along both edges and a finial."""
    center_x = (left + right) / 2
    _draw_gable(canvas, kit.roof, left, right, base_y, apex_y)
    for fraction in np.linspace(0.15, 0.85, _randint(rng, 3, 6)):
        y = base_y + (apex_y - base_y) * fraction
        half_width = (right - left) / 2 * (1 - fraction)
        for direction in (-1, 1):
            x = center_x + direction * half_width
            crocket = [(x, y), (x + direction * 4, y - 3), (x, y - 6)]
            cv2.fillPoly(canvas.rgb, [_polygon(crocket)], _scale_color(kit.trim_color, 0.8))
    cv2.line(
        canvas.rgb, (round(center_x), round(apex_y)), (round(center_x), round(apex_y) - 8), kit.accent, 2
    )
    cv2.line(
        canvas.rgb,
        (round(center_x) - 4, round(apex_y) - 5),
        (round(center_x) + 4, round(apex_y) - 5),
        kit.accent,
        2,
    )
    cv2.fillPoly(
        canvas.alpha,
        [_polygon([(center_x - 4, apex_y), (center_x + 4, apex_y), (center_x, apex_y - 9)])],
        255,
    )


def _onion_outline(center_x: float, base_y: float, half_width: float, height: float) -> np.ndarray:
    """The outline (K, 2) int32 of an onion dome: a bulge above ``base_y`` that tapers to a point."""
    rise = np.linspace(0, 1, 16)
    widths = half_width * np.sin(np.pi * rise**0.75) * (1.2 - 0.5 * rise)
    right_side = np.stack([center_x + widths, base_y - rise * height], axis=1)
    left_side = np.stack([center_x - widths, base_y - rise * height], axis=1)[::-1]
    return _polygon(np.concatenate([right_side, left_side]))


def _draw_dome(
    canvas: _Canvas,
    rng: np.random.Generator,
    kit: _Kit,
    center_x: float,
    base_y: float,
    radius_x: float,
    radius_y: float,
) -> None:
    """A shaded dome (half ellipse) with ribs, a lantern and a finial."""
    left, right = round(center_x - radius_x), round(center_x + radius_x)
    top, bottom = round(base_y - radius_y), round(base_y)
    x = (np.arange(left, right) - center_x)[None, :] / radius_x
    y = (base_y - np.arange(top, bottom))[:, None] / radius_y
    inside = x**2 + y**2 <= 1
    normal_z = np.sqrt(np.clip(1 - x**2 - y**2, 0, None))
    shading = 0.4 + 0.75 * np.clip(0.6 * kit.light * x + 0.5 * y + 0.6 * normal_z, 0, None)
    canvas.fill_shaded(left, top, kit.roof, np.where(inside, shading, 0).astype(np.float32))
    rib_color = _scale_color(kit.trim_color, 0.75)
    for fraction in np.linspace(-0.8, 0.8, _randint(rng, 4, 9)):
        axes = (max(1, round(abs(fraction) * radius_x)), round(radius_y))
        start_angle = 270 if fraction > 0 else 180
        cv2.ellipse(
            canvas.rgb,
            (round(center_x), round(base_y)),
            axes,
            0,
            start_angle,
            start_angle + 90,
            rib_color,
            1,
            cv2.LINE_AA,
        )
    lantern_width = max(4, round(radius_x * 0.18))
    lantern_top = top - lantern_width
    lantern_left = round(center_x) - lantern_width // 2
    canvas.fill_cylinder(
        (lantern_left, lantern_top, lantern_left + lantern_width, top + 2), kit.trim, kit.light
    )
    finial_top = lantern_top - max(6, lantern_width)
    cv2.line(canvas.rgb, (round(center_x), lantern_top), (round(center_x), finial_top), kit.accent, 2)
    cv2.circle(canvas.rgb, (round(center_x), finial_top), 3, _pick(rng, ((212, 170, 70), kit.accent)), -1)
    cv2.rectangle(
        canvas.alpha, (round(center_x) - 3, finial_top - 3), (round(center_x) + 3, lantern_top), 255, -1
    )


def _draw_crenellations(
    canvas: _Canvas, paint: np.ndarray, left: int, right: int, top: int, merlon: int
) -> None:
    """Battlements along ``top``: merlons of width and height ``merlon`` with equal gaps."""
    merlons = [_rect(x, top - merlon, x + merlon, top) for x in range(left, right - merlon + 1, 2 * merlon)]
    if merlons:
        canvas.fill(merlons, paint)


def _draw_steps(canvas: _Canvas, kit: _Kit, left: int, right: int, top: int, bottom: int, count: int) -> None:
    """A flight of ``count`` steps between ``top`` and ``bottom``, each one wider and darker than the one above."""
    step_height = (bottom - top) / count
    for step in range(count):
        inset = (count - 1 - step) * 3
        polygon = _rect(left + inset, top + step * step_height, right - inset, top + (step + 1) * step_height)
        canvas.fill([polygon], kit.trim)
        cv2.line(canvas.rgb, tuple(polygon[3]), tuple(polygon[2]), _scale_color(kit.trim_color, 0.55), 1)


# ----------------------------------------------------------------------------------------------------------------
# Landmark scenes: one builder per architectural style
# ----------------------------------------------------------------------------------------------------------------


def _body_span(canvas: _Canvas, kit: _Kit, depth: int, margin: int) -> tuple[int, int]:
    """Left and right of the front wall, leaving room for the side wall on ``kit.side``."""
    left, right = margin, canvas.width - margin
    if kit.side > 0:
        right -= depth
    else:
        left += depth
    return left, right


def _build_classical(canvas: _Canvas, rng: np.random.Generator, kit: _Kit) -> None:
    """Temple front: steps, a portico of fluted columns, an inscribed entablature and a pediment with a relief,
    sometimes a dome behind."""
    height = canvas.height
    depth = _randint(rng, canvas.width // 20, canvas.width // 9)
    left, right = _body_span(canvas, kit, depth, margin=6)
    steps_top = height - _randint(rng, 14, 26)
    top = _randint(rng, round(0.42 * height), round(0.52 * height))
    portico_width = (right - left) * _uniform(rng, 0.55, 0.95)
    portico_left, portico_right = (left + right - portico_width) / 2, (left + right + portico_width) / 2
    if rng.random() < 0.4:
        radius = portico_width * _uniform(rng, 0.25, 0.35)
        _draw_dome(
            canvas, rng, kit, (left + right) / 2, top - radius * 0.5, radius, radius * _uniform(rng, 0.7, 1.1)
        )
    _draw_side_wall(
        canvas, rng, kit, right if kit.side > 0 else left, top, steps_top, depth, _randint(rng, 1, 2)
    )
    canvas.fill([_rect(left, top, right, steps_top)], kit.wall)
    entablature = _randint(rng, 14, 22)
    _draw_window_grid(
        canvas.rgb,
        rng,
        kit,
        (left + 6, top + entablature + 8, right - 6, steps_top - 4),
        _randint(rng, 1, 2),
        _randint(rng, 4, 9),
        _pick(rng, ("rect", "round")),
    )
    num_columns = _pick(rng, (4, 6, 8))
    spacing = portico_width / num_columns
    column_width = spacing * _uniform(rng, 0.38, 0.5)
    for column in range(num_columns):
        _draw_column(
            canvas,
            kit,
            portico_left + (column + 0.5) * spacing,
            top + entablature + 4,
            steps_top,
            column_width,
        )
    canvas.fill([_rect(portico_left - 6, top, portico_right + 6, top + entablature)], kit.trim)
    _draw_glyph_sign(
        canvas.rgb,
        rng,
        (round(portico_left + 8), top + 3, round(portico_right - 8), top + entablature - 3),
        None,
        _scale_color(kit.trim_color, 0.45),
    )
    apex_y = max(8.0, top - portico_width * _uniform(rng, 0.16, 0.28))
    _draw_gable(canvas, kit.trim, portico_left - 10, portico_right + 10, top, apex_y)
    inner = 0.78
    center_x = (portico_left + portico_right) / 2
    tympanum_left = center_x - (center_x - portico_left + 10) * inner
    tympanum_right = center_x + (portico_right + 10 - center_x) * inner
    _draw_gable(
        canvas,
        _scale_color(kit.trim_color, 0.8),
        tympanum_left,
        tympanum_right,
        top - 3,
        top - (top - apex_y) * inner,
    )
    relief_top = round(top - (top - apex_y) * inner * 0.6)
    _draw_relief(
        canvas.rgb,
        rng,
        (round(center_x - portico_width * 0.22), relief_top, round(center_x + portico_width * 0.22), top - 5),
        kit.trim_color,
    )
    _draw_steps(canvas, kit, left - 4, right + 4, steps_top, height - 1, _randint(rng, 3, 5))


def _build_gothic(canvas: _Canvas, rng: np.random.Generator, kit: _Kit) -> None:
    """Cathedral front: buttressed nave with pointed windows, a rose window, a layered portal and one or two
    towers with crocketed spires."""
    width, height = canvas.width, canvas.height
    depth = _randint(rng, width // 24, width // 10)
    left, right = _body_span(canvas, kit, depth, margin=4)
    base_y = height - 2
    nave_top = _randint(rng, round(0.4 * height), round(0.5 * height))
    tower_width = round((right - left) * _uniform(rng, 0.2, 0.27))
    two_towers = rng.random() < 0.7
    tower_top = _randint(rng, round(0.2 * height), round(0.3 * height))
    spire_apex = _randint(rng, 12, max(13, tower_top - 40))
    towers = (
        [(left, left + tower_width), (right - tower_width, right)]
        if two_towers
        else [(round((left + right - tower_width) / 2), round((left + right + tower_width) / 2))]
    )
    _draw_side_wall(canvas, rng, kit, right if kit.side > 0 else left, nave_top, base_y, depth, 3)
    _draw_gable(
        canvas,
        kit.roof,
        left + (tower_width if two_towers else 0),
        right - (tower_width if two_towers else 0),
        nave_top + 2,
        nave_top - (right - left) * _uniform(rng, 0.15, 0.25),
    )
    canvas.fill([_rect(left, nave_top, right, base_y)], kit.wall)
    for tower_left, tower_right in towers:
        canvas.fill([_rect(tower_left, tower_top, tower_right, base_y)], kit.wall)
        _draw_spire(canvas, rng, kit, tower_left - 2, tower_right + 2, tower_top, spire_apex)
        _draw_window_grid(
            canvas.rgb,
            rng,
            kit,
            (tower_left + 4, tower_top + 6, tower_right - 4, nave_top + 10),
            _randint(rng, 2, 3),
            _randint(rng, 1, 2),
            "pointed",
        )
        for buttress_x in (tower_left, tower_right - 6):
            canvas.fill(
                [_rect(buttress_x, tower_top + 10, buttress_x + 6, base_y)],
                _scale_color(kit.trim_color, 0.85),
            )
    nave_left = left + (tower_width if two_towers else 0)
    nave_right = right - (tower_width if two_towers else 0)
    if not two_towers:
        nave_left, nave_right = left, right
    center_x = (nave_left + nave_right) // 2
    rose_radius = round(min(nave_right - nave_left, height) * _uniform(rng, 0.12, 0.2))
    rose_y = nave_top + rose_radius + 8
    if two_towers:
        _draw_rosette(
            canvas.rgb,
            rng,
            (center_x, rose_y),
            rose_radius,
            [
                kit.trim_color,
                _scale_color(kit.glass, 1.4),
                (170, 40, 50),
                (40, 60, 150),
                _scale_color(kit.trim_color, 0.5),
            ],
        )
    portal_width = (nave_right - nave_left) * _uniform(rng, 0.3, 0.45)
    portal_top = max(rose_y + rose_radius + 10, round(base_y - height * _uniform(rng, 0.22, 0.3)))
    for layer in range(4):
        inset = layer * portal_width * 0.1
        outline = _window_outline(
            center_x - portal_width / 2 + inset,
            portal_top + inset,
            portal_width - 2 * inset,
            base_y - portal_top - inset,
            "pointed",
        )
        shade = 0.9 - 0.12 * layer if layer < 3 else 0.25
        cv2.fillPoly(canvas.rgb, [outline], _scale_color(kit.trim_color if layer < 3 else kit.accent, shade))
    for side_left, side_right in (
        (nave_left + 6, center_x - portal_width / 2 - 4),
        (center_x + portal_width / 2 + 4, nave_right - 6),
    ):
        _draw_window_grid(
            canvas.rgb, rng, kit, (side_left, nave_top + 8, side_right, base_y - 8), 2, 1, "pointed"
        )
    if not two_towers:
        _draw_window_grid(
            canvas.rgb,
            rng,
            kit,
            (nave_left + 8, nave_top + 6, nave_right - 8, portal_top - 6),
            1,
            _randint(rng, 3, 5),
            "pointed",
        )


def _build_brick_hall(canvas: _Canvas, rng: np.random.Generator, kit: _Kit) -> None:
    """Town hall: brick body with a window grid, a stepped or plain gable, a clock tower and a signboard."""
    width, height = canvas.width, canvas.height
    depth = _randint(rng, width // 18, width // 8)
    left, right = _body_span(canvas, kit, depth, margin=4)
    base_y = height - 2
    top = _randint(rng, round(0.38 * height), round(0.5 * height))
    floors = _randint(rng, 2, 4)
    _draw_side_wall(canvas, rng, kit, right if kit.side > 0 else left, top, base_y, depth, floors)
    tower_width = round((right - left) * _uniform(rng, 0.16, 0.22))
    tower_x = (
        round(_uniform(rng, left + tower_width, right - 2 * tower_width))
        if rng.random() < 0.4
        else (left + right - tower_width) // 2
    )
    tower_top = _randint(rng, round(0.12 * height), round(0.2 * height))
    canvas.fill([_rect(tower_x, tower_top, tower_x + tower_width, top)], kit.wall)
    cap = _pick(rng, ("pyramid", "onion", "spire"))
    if cap == "onion":
        canvas.fill(
            [
                _onion_outline(
                    tower_x + tower_width / 2, tower_top + 2, tower_width / 2 + 4, tower_width * 1.3
                )
            ],
            kit.roof,
        )
    elif cap == "spire":
        _draw_spire(
            canvas,
            rng,
            kit,
            tower_x - 2,
            tower_x + tower_width + 2,
            tower_top,
            max(10, tower_top - tower_width * 2),
        )
    else:
        _draw_gable(
            canvas, kit.roof, tower_x - 4, tower_x + tower_width + 4, tower_top, tower_top - tower_width * 0.8
        )
    clock_radius = max(5, round(tower_width * 0.32))
    _draw_clock(
        canvas.rgb,
        rng,
        (tower_x + tower_width // 2, tower_top + clock_radius + 6),
        clock_radius,
        (30, 30, 34),
    )
    for opening in range(2):
        opening_width = tower_width * 0.3
        opening_left = tower_x + tower_width * (0.12 + 0.46 * opening)
        outline = _window_outline(
            opening_left,
            tower_top + 2 * clock_radius + 12,
            opening_width,
            max(8, (top - tower_top) * 0.3),
            "round",
        )
        cv2.fillPoly(canvas.rgb, [outline], (24, 22, 20))
    if rng.random() < 0.5:
        steps = _randint(rng, 3, 5)
        gable_height = (right - left) * _uniform(rng, 0.2, 0.3)
        step_width, step_height = (right - left) / (2 * steps + 1), gable_height / steps
        for step in range(steps):
            polygon = _rect(
                left + step * step_width,
                top - (step + 1) * step_height,
                right - step * step_width,
                top - step * step_height + 1,
            )
            canvas.fill([polygon], kit.wall)
            cv2.line(canvas.rgb, tuple(polygon[0]), tuple(polygon[1]), kit.trim_color, 2)
        _draw_rosette(
            canvas.rgb,
            rng,
            ((left + right) // 2, round(top - gable_height * 0.45)),
            max(4, round(step_height * 0.7)),
            [kit.trim_color, kit.glass, kit.accent],
        )
    else:
        _draw_gable(
            canvas, kit.roof, left - 6, right + 6, top, top - (right - left) * _uniform(rng, 0.15, 0.25)
        )
    canvas.fill([_rect(left, top, right, base_y)], kit.wall)
    canvas.fill([_rect(left - 3, top, right + 3, top + 5)], kit.trim)
    door_width = (right - left) * 0.14
    door_left = (left + right - door_width) / 2
    door_top = base_y - (base_y - top) / floors * 0.85
    _draw_window_grid(
        canvas.rgb,
        rng,
        kit,
        (left + 4, top + 8, right - 4, door_top - 6),
        floors - 1,
        _randint(rng, 5, 9),
        _pick(rng, ("rect", "round")),
    )
    _draw_window_grid(canvas.rgb, rng, kit, (left + 4, door_top, door_left - 6, base_y), 1, 2, "rect")
    _draw_window_grid(
        canvas.rgb, rng, kit, (door_left + door_width + 6, door_top, right - 4, base_y), 1, 2, "rect"
    )
    cv2.fillPoly(
        canvas.rgb,
        [_window_outline(door_left, door_top + 14, door_width, base_y - door_top - 14, "round")],
        kit.accent,
    )
    _draw_glyph_sign(
        canvas.rgb,
        rng,
        (round(door_left - 10), round(door_top), round(door_left + door_width + 10), round(door_top + 12)),
        kit.accent,
        (240, 236, 220),
    )


def _build_modern(canvas: _Canvas, rng: np.random.Generator, kit: _Kit) -> None:
    """Office tower: stacked blocks of curtain-wall glass panels, concrete slab bands, a big sign and rooftop
    equipment."""
    width, height = canvas.width, canvas.height
    depth = _randint(rng, width // 14, width // 7)
    left, right = _body_span(canvas, kit, depth, margin=4)
    base_y = height - 2
    num_blocks = _randint(rng, 1, 3)
    block_top = base_y
    block_left, block_right = left, right
    for block in range(num_blocks):
        block_bottom = block_top
        block_top = (
            round(block_bottom - (base_y - 0.1 * height) / num_blocks * _uniform(rng, 0.8, 1.0))
            if block < num_blocks - 1
            else _randint(rng, round(0.08 * height), round(0.2 * height))
        )
        _draw_side_wall(
            canvas,
            rng,
            kit,
            block_right if kit.side > 0 else block_left,
            block_top,
            block_bottom,
            depth,
            max(1, (block_bottom - block_top) // 30),
        )
        canvas.fill([_rect(block_left, block_top, block_right, block_bottom)], kit.trim)
        panel_width, panel_height = _randint(rng, 12, 22), _randint(rng, 12, 20)
        for panel_top in range(block_top + 4, block_bottom - panel_height, panel_height):
            for panel_left in range(block_left + 3, block_right - panel_width, panel_width):
                tint = _scale_color(kit.glass, _uniform(rng, 0.7, 1.35))
                corner = (panel_left + panel_width - 3, panel_top + panel_height - 3)
                cv2.rectangle(canvas.rgb, (panel_left, panel_top), corner, tint, -1)
                if rng.random() < 0.35:
                    cv2.line(
                        canvas.rgb,
                        (panel_left, corner[1]),
                        (corner[0], panel_top + _randint(rng, 0, panel_height // 2)),
                        _scale_color(tint, 1.5),
                        1,
                        cv2.LINE_AA,
                    )
                if rng.random() < 0.15:
                    cv2.rectangle(
                        canvas.rgb,
                        (panel_left + 2, panel_top + 2),
                        (corner[0] - 2, corner[1] - 2),
                        (240, 220, 160),
                        -1,
                    )
            if rng.random() < 0.3:
                cv2.rectangle(
                    canvas.rgb, (block_left, panel_top - 2), (block_right, panel_top + 1), kit.trim_color, -1
                )
        inset = round((block_right - block_left) * _uniform(rng, 0.05, 0.2))
        block_left, block_right = (
            (block_left + inset, block_right) if rng.random() < 0.5 else (block_left, block_right - inset)
        )
        block_right = max(block_right, block_left + 30)
    sign_height = _randint(rng, 18, 30)
    sign_top = max(2, block_top - sign_height - 4)
    _draw_glyph_sign(
        canvas.rgb,
        rng,
        (block_left + 4, sign_top, block_right - 4, sign_top + sign_height),
        kit.accent,
        (245, 245, 240),
    )
    cv2.rectangle(canvas.alpha, (block_left + 4, sign_top), (block_right - 4, block_top), 255, -1)
    for _ in range(_randint(rng, 1, 3)):
        antenna_x = _randint(rng, block_left + 8, block_right - 8)
        antenna_top = max(1, sign_top - _randint(rng, 10, 40))
        cv2.line(canvas.rgb, (antenna_x, sign_top), (antenna_x, antenna_top), (60, 60, 66), 2)
        cv2.line(canvas.alpha, (antenna_x, sign_top), (antenna_x, antenna_top), 255, 2)
    lobby_top = base_y - _randint(rng, 18, 30)
    canvas.fill([_rect(left, lobby_top, right, base_y)], _scale_color(kit.glass, 0.5))
    _draw_glyph_sign(
        canvas.rgb,
        rng,
        (left + 10, lobby_top + 3, left + (right - left) // 3, lobby_top + 14),
        None,
        (230, 230, 230),
    )


def _build_pagoda(canvas: _Canvas, rng: np.random.Generator, kit: _Kit) -> None:
    """Pagoda: a stone platform and three to five receding wooden tiers, each with lattice windows, columns and
    an upturned tiled roof, topped by a ringed finial."""
    width, height = canvas.width, canvas.height
    base_y = height - 2
    num_tiers = _randint(rng, 3, 5)
    platform_top = base_y - _randint(rng, 10, 18)
    bottom_width, top_width = width * _uniform(rng, 0.62, 0.78), width * _uniform(rng, 0.28, 0.4)
    finial_height = round(height * _uniform(rng, 0.1, 0.16))
    tier_height = (platform_top - finial_height - 8) / num_tiers
    center_x = width / 2
    _draw_steps(
        canvas,
        kit,
        round(center_x - bottom_width / 2 - 14),
        round(center_x + bottom_width / 2 + 14),
        platform_top,
        base_y,
        3,
    )
    for tier in range(num_tiers):
        fraction = tier / max(1, num_tiers - 1)
        tier_width = bottom_width + (top_width - bottom_width) * fraction
        tier_bottom = platform_top - tier * tier_height
        roof_height = tier_height * _uniform(rng, 0.35, 0.45)
        wall_top = tier_bottom - tier_height + roof_height
        tier_left, tier_right = center_x - tier_width / 2, center_x + tier_width / 2
        canvas.fill([_rect(tier_left, wall_top, tier_right, tier_bottom)], kit.wall)
        num_bays = _randint(rng, 3, 5)
        for bay in range(num_bays + 1):
            column_x = tier_left + tier_width * bay / num_bays
            column = (round(column_x) - 2, round(wall_top), round(column_x) + 3, round(tier_bottom))
            canvas.fill_cylinder(column, kit.trim, kit.light)
        for bay in range(num_bays):
            bay_left = tier_left + tier_width * (bay + 0.2) / num_bays
            bay_width = tier_width * 0.6 / num_bays
            bay_top, bay_bottom = (
                wall_top + (tier_bottom - wall_top) * 0.2,
                tier_bottom - (tier_bottom - wall_top) * 0.15,
            )
            cv2.rectangle(
                canvas.rgb,
                (round(bay_left), round(bay_top)),
                (round(bay_left + bay_width), round(bay_bottom)),
                _scale_color(kit.accent, 0.6),
                -1,
            )
            lattice = _randint(rng, 3, 6)
            for line in range(1, lattice):
                x = round(bay_left + bay_width * line / lattice)
                y = round(bay_top + (bay_bottom - bay_top) * line / lattice)
                cv2.line(canvas.rgb, (x, round(bay_top)), (x, round(bay_bottom)), kit.trim_color, 1)
                cv2.line(
                    canvas.rgb, (round(bay_left), y), (round(bay_left + bay_width), y), kit.trim_color, 1
                )
        overhang = tier_height * _uniform(rng, 0.5, 0.8)
        lift = roof_height * _uniform(rng, 0.3, 0.6)
        roof_bottom, roof_top = wall_top + 2, wall_top - roof_height
        eave_left, eave_right = tier_left - overhang, tier_right + overhang
        roof = [
            (eave_left, roof_bottom - lift),
            (eave_left + overhang * 0.5, roof_bottom),
            (eave_right - overhang * 0.5, roof_bottom),
            (eave_right, roof_bottom - lift),
            (tier_right - tier_width * 0.1, roof_top),
            (tier_left + tier_width * 0.1, roof_top),
        ]
        canvas.fill([_polygon(roof)], kit.roof)
        cv2.polylines(
            canvas.rgb, [_polygon(roof[:4])], False, _scale_color(kit.trim_color, 0.5), 2, cv2.LINE_AA
        )
        for bell_x in (eave_left + 2, eave_right - 2):
            cv2.circle(canvas.rgb, (round(bell_x), round(roof_bottom - lift + 4)), 2, (212, 170, 70), -1)
    top_roof = platform_top - num_tiers * tier_height
    finial_top = max(2, round(top_roof - finial_height))
    cv2.line(canvas.rgb, (round(center_x), round(top_roof)), (round(center_x), finial_top), (150, 120, 50), 3)
    cv2.line(canvas.alpha, (round(center_x), round(top_roof)), (round(center_x), finial_top), 255, 3)
    for ring in range(_randint(rng, 3, 7)):
        ring_y = round(top_roof - (ring + 1) * finial_height / 9)
        cv2.ellipse(canvas.rgb, (round(center_x), ring_y), (6 - ring // 2, 2), 0, 0, 360, (200, 160, 60), -1)
        cv2.ellipse(canvas.alpha, (round(center_x), ring_y), (6 - ring // 2, 2), 0, 0, 360, 255, -1)


def _build_domed(canvas: _Canvas, rng: np.random.Generator, kit: _Kit) -> None:
    """Domed hall: an arcaded body, a windowed drum carrying a ribbed dome with a lantern, and minarets."""
    width, height = canvas.width, canvas.height
    depth = _randint(rng, width // 24, width // 10)
    minaret_width = round(width * _uniform(rng, 0.05, 0.07)) if rng.random() < 0.7 else 0
    left, right = _body_span(canvas, kit, depth, margin=4 + minaret_width)
    base_y = height - 2
    top = _randint(rng, round(0.55 * height), round(0.64 * height))
    center_x = (left + right) / 2
    drum_width = (right - left) * _uniform(rng, 0.36, 0.5)
    drum_height = height * _uniform(rng, 0.06, 0.1)
    radius_x = drum_width / 2 * 1.04
    radius_y = min(radius_x * _uniform(rng, 0.75, 1.25), top - drum_height - 0.12 * height)
    drum_top = top - drum_height
    _draw_dome(canvas, rng, kit, center_x, drum_top, radius_x, radius_y)
    canvas.fill([_rect(center_x - drum_width / 2, drum_top, center_x + drum_width / 2, top + 2)], kit.trim)
    _draw_window_grid(
        canvas.rgb,
        rng,
        kit,
        (center_x - drum_width / 2 + 4, drum_top + 2, center_x + drum_width / 2 - 4, top),
        1,
        _randint(rng, 4, 8),
        "round",
    )
    _draw_side_wall(canvas, rng, kit, right if kit.side > 0 else left, top, base_y, depth, 2)
    canvas.fill([_rect(left, top, right, base_y)], kit.wall)
    canvas.fill([_rect(left - 3, top - 4, right + 3, top + 3)], kit.trim)
    rows = _randint(rng, 1, 2)
    num_arches = _randint(rng, 5, 9)
    arch_width = (right - left) / num_arches
    for row in range(rows):
        row_top = top + 6 + row * (base_y - top - 6) / rows
        row_height = (base_y - top - 6) / rows - 4
        for arch in range(num_arches):
            arch_left = left + arch * arch_width + arch_width * 0.15
            outline = _window_outline(
                arch_left,
                row_top,
                arch_width * 0.7,
                row_height,
                "round" if row == rows - 1 else _pick(rng, ("round", "pointed")),
            )
            cv2.fillPoly(canvas.rgb, [outline], _scale_color(kit.trim_color, 0.3))
            cv2.polylines(canvas.rgb, [outline], True, kit.trim_color, 2, cv2.LINE_AA)
            if row < rows - 1 or rng.random() < 0.5:
                _draw_window(
                    canvas.rgb,
                    rng,
                    kit,
                    (
                        arch_left + arch_width * 0.15,
                        row_top + row_height * 0.35,
                        arch_width * 0.4,
                        row_height * 0.5,
                    ),
                    "round",
                )
    if minaret_width:
        minaret_top = _randint(rng, round(0.06 * height), round(0.16 * height))
        for minaret_left in (left - minaret_width - 2, right + 2 + (depth if kit.side > 0 else 0)):
            canvas.fill_cylinder(
                (minaret_left, minaret_top, minaret_left + minaret_width, base_y), kit.trim, kit.light
            )
            for balcony_y in np.linspace(minaret_top + 20, top - 10, _randint(rng, 1, 3)):
                canvas.fill(
                    [_rect(minaret_left - 3, balcony_y, minaret_left + minaret_width + 3, balcony_y + 4)],
                    kit.trim_color,
                )
            _draw_gable(
                canvas,
                kit.roof,
                minaret_left - 1,
                minaret_left + minaret_width + 1,
                minaret_top,
                minaret_top - minaret_width * 1.8,
            )


def _build_castle(canvas: _Canvas, rng: np.random.Generator, kit: _Kit) -> None:
    """Castle: a crenellated curtain wall with a gate and portcullis, a taller keep and round corner towers with
    conical roofs or battlements, and flags."""
    width, height = canvas.width, canvas.height
    base_y = height - 2
    tower_width = round(width * _uniform(rng, 0.14, 0.2))
    left, right = tower_width, width - tower_width
    wall_top = _randint(rng, round(0.5 * height), round(0.6 * height))
    merlon = _randint(rng, 6, 10)
    keep_width = (right - left) * _uniform(rng, 0.3, 0.45)
    keep_left = _uniform(rng, left + 10, right - keep_width - 10)
    keep_top = _randint(rng, round(0.22 * height), round(0.32 * height))
    canvas.fill([_rect(keep_left, keep_top, keep_left + keep_width, wall_top)], kit.side_wall)
    _draw_crenellations(
        canvas, kit.side_wall, round(keep_left), round(keep_left + keep_width), keep_top, merlon
    )
    _draw_window_grid(
        canvas.rgb,
        rng,
        kit,
        (keep_left + 6, keep_top + 6, keep_left + keep_width - 6, wall_top - 8),
        _randint(rng, 1, 3),
        _randint(rng, 2, 4),
        _pick(rng, ("rect", "round")),
    )
    _draw_flag(canvas.rgb, rng, round(keep_left + keep_width / 2), keep_top - merlon, _randint(rng, 8, 14))
    canvas.fill([_rect(left, wall_top, right, base_y)], kit.wall)
    _draw_crenellations(canvas, kit.wall, left, right, wall_top, merlon)
    gate_width = (right - left) * _uniform(rng, 0.15, 0.22)
    gate_left = (left + right - gate_width) / 2
    gate_top = base_y - (base_y - wall_top) * _uniform(rng, 0.5, 0.7)
    gate = _window_outline(gate_left, gate_top, gate_width, base_y - gate_top, "round")
    cv2.fillPoly(canvas.rgb, [gate], (26, 24, 22))
    for bar_x in np.arange(gate_left + 3, gate_left + gate_width, 5):
        cv2.line(
            canvas.rgb,
            (round(bar_x), round(gate_top + gate_width / 4)),
            (round(bar_x), base_y),
            (90, 84, 70),
            1,
        )
    for bar_y in np.arange(gate_top + gate_width / 2, base_y, 6):
        cv2.line(
            canvas.rgb,
            (round(gate_left), round(bar_y)),
            (round(gate_left + gate_width), round(bar_y)),
            (90, 84, 70),
            1,
        )
    for slit in range(_randint(rng, 2, 5)):
        slit_x = _uniform(rng, left + 8, right - 8)
        if abs(slit_x - (gate_left + gate_width / 2)) > gate_width:
            cv2.rectangle(
                canvas.rgb,
                (round(slit_x), wall_top + 10 + 6 * slit),
                (round(slit_x) + 2, wall_top + 24 + 6 * slit),
                (30, 28, 26),
                -1,
            )
    for tower_left in (0, width - tower_width):
        tower_top = _randint(rng, round(0.3 * height), round(0.45 * height))
        canvas.fill_cylinder((tower_left, tower_top, tower_left + tower_width, base_y), kit.wall, kit.light)
        _draw_window_grid(
            canvas.rgb,
            rng,
            kit,
            (tower_left + 4, tower_top + 8, tower_left + tower_width - 4, wall_top),
            _randint(rng, 1, 2),
            1,
            "round",
        )
        if rng.random() < 0.6:
            apex = max(12.0, tower_top - tower_width * _uniform(rng, 0.9, 1.5))
            _draw_gable(canvas, kit.roof, tower_left - 4, tower_left + tower_width + 4, tower_top + 2, apex)
            _draw_flag(canvas.rgb, rng, tower_left + tower_width // 2, round(apex), _randint(rng, 6, 10))
        else:
            _draw_crenellations(canvas, kit.wall, tower_left, tower_left + tower_width, tower_top, merlon)
    _draw_glyph_sign(
        canvas.rgb,
        rng,
        (round(gate_left - 6), round(gate_top - 18), round(gate_left + gate_width + 6), round(gate_top - 4)),
        _scale_color(kit.trim_color, 0.9),
        (40, 30, 20),
    )


def _build_colonial(canvas: _Canvas, rng: np.random.Generator, kit: _Kit) -> None:
    """Colonial mansion: a pastel body with an arcade, shuttered windows with balconies, a cornice, a hipped tiled
    roof and a bell gable with bells or a coat of arms."""
    width, height = canvas.width, canvas.height
    depth = _randint(rng, width // 18, width // 8)
    left, right = _body_span(canvas, kit, depth, margin=4)
    base_y = height - 2
    top = _randint(rng, round(0.4 * height), round(0.5 * height))
    floors = _randint(rng, 2, 3)
    floor_height = (base_y - top) / floors
    center_x = (left + right) / 2
    gable_width = (right - left) * _uniform(rng, 0.2, 0.3)
    gable_top = _randint(rng, round(0.12 * height), round(0.2 * height))
    gable = _window_outline(center_x - gable_width / 2, gable_top, gable_width, top - gable_top + 2, "round")
    roof_top = top - (top - gable_top) * _uniform(rng, 0.4, 0.6)
    canvas.fill(
        [
            _polygon(
                [(left - 8, top + 2), (left + 30, roof_top), (right - 30, roof_top), (right + 8, top + 2)]
            )
        ],
        kit.roof,
    )
    canvas.fill([gable], kit.wall)
    if rng.random() < 0.6:
        for bell in range(_randint(rng, 1, 3)):
            bell_width = gable_width * 0.22
            bell_left = center_x - gable_width * 0.38 + bell * gable_width * 0.27
            opening = _window_outline(
                bell_left, gable_top + gable_width * 0.55, bell_width, (top - gable_top) * 0.4, "round"
            )
            cv2.fillPoly(canvas.rgb, [opening], (30, 26, 24))
            cv2.circle(
                canvas.rgb,
                (round(bell_left + bell_width / 2), round(gable_top + gable_width * 0.55 + bell_width)),
                max(2, round(bell_width / 3)),
                (160, 120, 50),
                -1,
                cv2.LINE_AA,
            )
    else:
        _draw_rosette(
            canvas.rgb,
            rng,
            (round(center_x), round(gable_top + (top - gable_top) * 0.6)),
            max(4, round(gable_width * 0.25)),
            [kit.accent, kit.trim_color, (200, 40, 40), (212, 170, 70)],
        )
    _draw_side_wall(canvas, rng, kit, right if kit.side > 0 else left, top, base_y, depth, floors)
    canvas.fill([_rect(left, top, right, base_y)], kit.wall)
    canvas.fill([_rect(left - 4, top - 3, right + 4, top + 6)], kit.trim)
    num_bays = _randint(rng, 4, 8)
    bay_width = (right - left) / num_bays
    arcade_top = base_y - floor_height
    for bay in range(num_bays):
        arch = _window_outline(
            left + bay * bay_width + bay_width * 0.12,
            arcade_top + 6,
            bay_width * 0.76,
            floor_height - 6,
            "round",
        )
        cv2.fillPoly(canvas.rgb, [arch], _scale_color(kit.trim_color, 0.35))
        cv2.polylines(canvas.rgb, [arch], True, kit.trim_color, 2, cv2.LINE_AA)
        door_left = left + bay * bay_width + bay_width * 0.35
        cv2.rectangle(
            canvas.rgb,
            (round(door_left), round(arcade_top + floor_height * 0.45)),
            (round(door_left + bay_width * 0.3), base_y),
            kit.accent,
            -1,
        )
    _draw_window_grid(
        canvas.rgb, rng, kit, (left, top + 8, right, arcade_top), floors - 1, num_bays, "rect", shutters=True
    )
    for floor in range(1, floors):
        railing_y = round(top + 8 + floor * (arcade_top - top - 8) / (floors - 1)) - 4
        for bay in range(num_bays):
            railing_left, railing_right = (
                round(left + (bay + 0.2) * bay_width),
                round(left + (bay + 0.8) * bay_width),
            )
            cv2.line(
                canvas.rgb, (railing_left, railing_y - 8), (railing_right, railing_y - 8), (40, 40, 44), 1
            )
            for bar_x in range(railing_left, railing_right + 1, 3):
                cv2.line(canvas.rgb, (bar_x, railing_y - 8), (bar_x, railing_y), (40, 40, 44), 1)
    _draw_glyph_sign(
        canvas.rgb,
        rng,
        (round(center_x - bay_width), top + 8, round(center_x + bay_width), top + 20),
        None,
        kit.accent,
    )


_STYLES = {
    "classical": (
        _build_classical,
        ("marble", "sandstone", "granite"),
        ("veined", "ashlar", "plain"),
        ("tile", "slate", "copper"),
    ),
    "gothic": (_build_gothic, ("sandstone", "granite"), ("ashlar",), ("slate", "copper", "tile")),
    "brick_hall": (_build_brick_hall, ("brick",), ("brick",), ("slate", "tile", "copper")),
    "modern": (_build_modern, ("concrete", "granite"), ("plain",), ("slate",)),
    "pagoda": (_build_pagoda, ("wood",), ("planks",), ("tile", "slate", "copper")),
    "domed": (
        _build_domed,
        ("sandstone", "marble", "plaster"),
        ("plain", "ashlar"),
        ("copper", "tile", "slate"),
    ),
    "castle": (_build_castle, ("granite", "sandstone"), ("ashlar",), ("slate", "tile")),
    "colonial": (_build_colonial, ("plaster",), ("plain",), ("tile",)),
}


def render_landmark_scene(rng: np.random.Generator) -> np.ndarray:
    """The canonical picture of one landmark: RGBA (H, W, 4) uint8, alpha 255 on the building, 0 elsewhere.

    The style, proportions, colours and materials are drawn from ``rng``; every window, sign and ornament is
    unique, and the materials carry noise unique to this landmark, so that no two landmarks share local
    features.
    """
    style = _pick(rng, sorted(_STYLES))
    builder, materials, patterns, roof_materials = _STYLES[style]
    height, width = _randint(rng, 360, 500), _randint(rng, 380, 520)
    material = _pick(rng, materials)
    wall_color = _jitter(rng, _pick(rng, _MATERIAL_COLORS[material]), 18)
    trim_color = _jitter(rng, _scale_color(wall_color, _uniform(rng, 0.75, 1.15)), 12)
    roof_color = _jitter(rng, _pick(rng, _MATERIAL_COLORS[_pick(rng, roof_materials)]), 14)
    pattern = _pick(rng, patterns)
    light = _uniform(rng, 0.3, 1.0) * _pick(rng, (-1, 1))
    wall = _material_texture(rng, pattern, wall_color, height, width)
    kit = _Kit(
        wall=wall,
        trim=_material_texture(rng, "plain" if pattern != "planks" else "planks", trim_color, height, width),
        roof=_material_texture(rng, "tiles", roof_color, height, width),
        side_wall=cv2.convertScaleAbs(wall, alpha=_uniform(rng, 0.55, 0.72)),
        trim_color=trim_color,
        accent=_jitter(rng, _pick(rng, _ACCENT_COLORS), 20),
        glass=_jitter(rng, _pick(rng, _MATERIAL_COLORS["glass"]), 20),
        light=light,
        side=-1 if light > 0 else 1,
    )
    canvas = _Canvas(height, width)
    builder(canvas, rng, kit)
    weathering = 1 + 0.08 * _fractal_noise(rng, height, width, cells=6, octaves=4)
    streaks = cv2.blur(rng.random((height, width), dtype=np.float32), (1, 41))
    sunlight = np.linspace(1 - 0.08 * light, 1 + 0.08 * light, width, dtype=np.float32)[None, :]
    shaded = canvas.rgb.astype(np.float32) * (weathering * (1.2 - 0.4 * streaks) * sunlight)[..., None]
    rgb = np.clip(shaded, 0, 255).astype(np.uint8)
    rows = np.flatnonzero(canvas.alpha.max(axis=1))
    columns = np.flatnonzero(canvas.alpha.max(axis=0))
    top, bottom = max(0, rows[0] - 2), min(height, rows[-1] + 3)
    left, right = max(0, columns[0] - 2), min(width, columns[-1] + 3)
    return np.dstack([rgb, canvas.alpha])[top:bottom, left:right].copy()


# ----------------------------------------------------------------------------------------------------------------
# Photos: a landmark scene seen through a random camera, over a random background
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ViewStyle:
    """How a photo is taken: the ranges its random camera, clutter and processing are drawn from."""

    scale: tuple[float, float]  # landmark size relative to the frame (1: its bounding box just fits)
    shift: float  # largest offset of the landmark centre, as a fraction of the frame
    roll_degrees: float
    tilt_radians: float  # largest yaw and pitch of the façade plane
    visible: tuple[float, float]  # accepted fraction of the landmark's outline inside the frame
    occluders: tuple[int, int]
    occluder_size: float  # largest occluder, as a fraction of the frame height
    blur_sigma: float
    noise_sigma: float
    gamma: tuple[float, float]


_VIEW_STYLES: dict[str, tuple[_ViewStyle, ...]] = {
    # rdemo queries: the whole landmark in view, so that its bounding box is exact.
    "query": (_ViewStyle((0.6, 0.85), 0.05, 3, 0.15, (1.0, 1.0), (0, 1), 0.15, 0.6, 2, (0.85, 1.2)),),
    "easy": (_ViewStyle((0.55, 0.9), 0.08, 5, 0.25, (0.9, 1.0), (0, 2), 0.2, 0.8, 3, (0.8, 1.25)),),
    "medium": (_ViewStyle((0.45, 1.05), 0.15, 8, 0.4, (0.7, 1.0), (0, 4), 0.3, 1.2, 5, (0.7, 1.4)),),
    # strongly zoomed in, or far away, and heavily occluded
    "hard": (
        _ViewStyle((1.3, 1.9), 0.25, 12, 0.55, (0.3, 0.8), (2, 5), 0.4, 1.4, 6, (0.55, 1.8)),
        _ViewStyle((0.35, 0.5), 0.2, 12, 0.55, (0.9, 1.0), (2, 5), 0.3, 1.4, 6, (0.55, 1.8)),
    ),
    # barely visible: tiny, or mostly outside the frame
    "junk": (
        _ViewStyle((0.1, 0.16), 0.35, 10, 0.4, (0.9, 1.0), (0, 3), 0.3, 1.2, 5, (0.7, 1.4)),
        _ViewStyle((0.6, 1.0), 0.7, 10, 0.4, (0.05, 0.2), (0, 3), 0.3, 1.2, 5, (0.7, 1.4)),
    ),
}
_ASPECT_RATIOS = (4 / 3, 3 / 2, 16 / 9, 1.0, 5 / 4)
_SKIES: tuple[tuple[Color, Color], ...] = (
    ((90, 140, 210), (190, 215, 240)),
    ((150, 160, 170), (212, 214, 216)),
    ((70, 90, 160), (250, 180, 120)),
    ((46, 56, 96), (200, 150, 130)),
    ((120, 170, 230), (232, 240, 250)),
)
_GROUNDS: tuple[Color, ...] = (
    (96, 140, 70),
    (140, 138, 130),
    (180, 168, 140),
    (110, 110, 112),
    (150, 120, 90),
)
_MAX_CAMERA_TRIES = 200


def _frame_size(rng: np.random.Generator, config: DemoConfig) -> tuple[int, int]:
    """(width, height) of a photo: long side in the configured range, a common aspect ratio, mostly landscape."""
    long_side = _randint(rng, config.min_long_side, config.max_long_side)
    short_side = round(long_side / _pick(rng, _ASPECT_RATIOS))
    return (long_side, short_side) if rng.random() < 0.7 else (short_side, long_side)


def _sample_camera(
    rng: np.random.Generator, scene_size: tuple[int, int], frame_size: tuple[int, int], style: _ViewStyle
) -> np.ndarray:
    """The homography (3, 3) from scene to photo pixels: the façade plane turned by a random yaw and pitch,
    seen by a pinhole camera, then rolled, scaled and shifted in the frame, redrawn until the fraction of the
    landmark's outline inside the frame is in ``style.visible``."""
    scene_width, scene_height = scene_size
    frame_width, frame_height = frame_size
    corners = np.array([[0, 0], [scene_width, 0], [scene_width, scene_height], [0, scene_height]], np.float64)
    centred = corners - (scene_width / 2, scene_height / 2)
    focal = 1.4 * max(scene_size)
    frame = np.array([[0, 0], [frame_width, 0], [frame_width, frame_height], [0, frame_height]], np.float32)
    for _ in range(_MAX_CAMERA_TRIES):
        yaw = _uniform(rng, -1, 1) * style.tilt_radians
        pitch = _uniform(rng, -0.3, 1) * style.tilt_radians * 0.6
        rotation_yaw = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
        rotation_pitch = np.array(
            [[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]]
        )
        turned = (rotation_pitch @ rotation_yaw @ np.column_stack([centred, np.zeros(4)]).T).T
        points = turned + np.array([0.0, 0.0, focal])
        projected = focal * points[:, :2] / points[:, 2:]
        roll = np.deg2rad(_uniform(rng, -1, 1) * style.roll_degrees)
        projected = projected @ np.array([[np.cos(roll), np.sin(roll)], [-np.sin(roll), np.cos(roll)]])
        extent = projected.max(axis=0) - projected.min(axis=0)
        scale = _uniform(rng, *style.scale) * min(frame_width / extent[0], frame_height / extent[1])
        center = (
            frame_width * (0.5 + _uniform(rng, -1, 1) * style.shift),
            frame_height * (0.5 + _uniform(rng, -1, 1) * style.shift),
        )
        destination = (projected - (projected.max(axis=0) + projected.min(axis=0)) / 2) * scale + center
        outline = destination.astype(np.float32)
        inside_area, _ = cv2.intersectConvexConvex(outline, frame)
        visible = inside_area / max(cv2.contourArea(outline), 1e-6)
        if style.visible[0] <= visible <= style.visible[1] + 1e-6:
            return cv2.getPerspectiveTransform(corners.astype(np.float32), outline)
    raise RuntimeError(
        f"no camera within {_MAX_CAMERA_TRIES} tries gives a visible fraction in {style.visible}"
    )


def _draw_tree(image: np.ndarray, rng: np.random.Generator, x: float, foot_y: float, size: float) -> None:
    """A tree whose trunk stands at (x, foot_y), ``size`` pixels tall: a trunk and a crown of green blobs."""
    trunk_width = max(2, round(size * 0.08))
    crown_y = foot_y - size * 0.65
    cv2.rectangle(
        image,
        (round(x - trunk_width / 2), round(crown_y)),
        (round(x + trunk_width / 2), round(foot_y)),
        _jitter(rng, (84, 60, 40), 15),
        -1,
    )
    green = _jitter(rng, (60, 110, 50), 25)
    for _ in range(_randint(rng, 4, 9)):
        center = (
            round(x + _uniform(rng, -0.3, 0.3) * size),
            round(crown_y + _uniform(rng, -0.3, 0.15) * size),
        )
        cv2.circle(
            image,
            center,
            max(2, round(size * _uniform(rng, 0.12, 0.25))),
            _jitter(rng, green, 25),
            -1,
            cv2.LINE_AA,
        )


def _render_background(rng: np.random.Generator, width: int, height: int, horizon: int) -> np.ndarray:
    """Sky with clouds above ``horizon``, textured ground below, far hills or skyline and trees: (H, W, 3) uint8."""
    top_color, horizon_color = (
        np.asarray(_jitter(rng, color, 15), np.float32) for color in _pick(rng, _SKIES)
    )
    blend = np.linspace(0, 1, horizon, dtype=np.float32)[:, None, None]
    sky = np.broadcast_to(top_color * (1 - blend) + horizon_color * blend, (horizon, width, 3))
    cloud_cover = np.clip(
        (_fractal_noise(rng, horizon, width, cells=4, octaves=4) - _uniform(rng, 0.2, 1.4)) * 0.8, 0, 0.9
    )[..., None]
    sky = sky * (1 - cloud_cover) + np.float32(_uniform(rng, 200, 250)) * cloud_cover
    ground_height = height - horizon
    ground_color = np.asarray(_jitter(rng, _pick(rng, _GROUNDS), 15), np.float32)
    ground_texture = _fractal_noise(rng, ground_height, width, cells=24, octaves=4)
    ground = ground_color * (1 + 0.1 * ground_texture[..., None])
    image = np.clip(np.concatenate([sky, ground]), 0, 255).astype(np.uint8)
    haze = _scale_color(_color(horizon_color), _uniform(rng, 0.55, 0.8))
    for _ in range(_randint(rng, 0, 3)):
        if rng.random() < 0.5:
            xs = np.linspace(0, width, 9)
            ridge = horizon - rng.uniform(0.02, 0.15, 9) * height
            outline = np.concatenate([np.stack([xs, ridge], 1), [[width, horizon], [0, horizon]]])
        else:
            left = _uniform(rng, -0.1, 0.9) * width
            outline = np.array(
                _rect(
                    left,
                    horizon - _uniform(rng, 0.05, 0.25) * height,
                    left + _uniform(rng, 0.05, 0.2) * width,
                    horizon,
                ),
                np.float64,
            )
        cv2.fillPoly(image, [_polygon(outline)], _jitter(rng, haze, 12))
    for _ in range(_randint(rng, 0, 4)):
        _draw_tree(
            image,
            rng,
            _uniform(rng, 0, width),
            horizon + _uniform(rng, 0, 0.05) * height,
            _uniform(rng, 0.1, 0.3) * height,
        )
    return image


def _draw_occluders(
    image: np.ndarray, rng: np.random.Generator, count: int, max_size: float, horizon: int
) -> None:
    """``count`` random occluders in front of everything: people, poles with signs, cars, bushes and blobs."""
    height, width = image.shape[:2]
    for _ in range(count):
        kind = _pick(rng, ("person", "person", "pole", "car", "tree", "blob"))
        size = max_size * height * _uniform(rng, 0.4, 1.0)
        x = _uniform(rng, 0, width)
        foot_y = _uniform(rng, max(horizon, 0.55 * height), height + 0.2 * size)
        if kind == "person":
            body_width = size * 0.28
            shirt, trousers = _pick(rng, _CLOTHING_COLORS), _pick(rng, _CLOTHING_COLORS)
            for leg in (-1, 1):
                cv2.line(
                    image,
                    (round(x + leg * body_width * 0.25), round(foot_y - size * 0.45)),
                    (round(x + leg * body_width * 0.3), round(foot_y)),
                    trousers,
                    max(2, round(size * 0.08)),
                )
            cv2.rectangle(
                image,
                (round(x - body_width / 2), round(foot_y - size * 0.85)),
                (round(x + body_width / 2), round(foot_y - size * 0.42)),
                shirt,
                -1,
            )
            cv2.circle(
                image,
                (round(x), round(foot_y - size * 0.92)),
                max(2, round(size * 0.08)),
                _jitter(rng, (200, 160, 130), 40),
                -1,
                cv2.LINE_AA,
            )
        elif kind == "pole":
            top_y = foot_y - size * _uniform(rng, 1.5, 3.0)
            cv2.line(
                image,
                (round(x), round(foot_y)),
                (round(x), round(top_y)),
                _jitter(rng, (50, 56, 50), 15),
                max(2, round(size * 0.05)),
            )
            if rng.random() < 0.5:
                plate = (
                    round(x - size * 0.3),
                    round(top_y + size * 0.2),
                    round(x + size * 0.3),
                    round(top_y + size * 0.45),
                )
                _draw_glyph_sign(image, rng, plate, _pick(rng, _ACCENT_COLORS), (240, 240, 240))
            else:
                cv2.circle(image, (round(x), round(top_y)), max(2, round(size * 0.08)), (230, 226, 200), -1)
        elif kind == "car":
            car_width, car_height = size * 1.6, size * 0.45
            paint = _pick(rng, _CLOTHING_COLORS)
            cv2.rectangle(
                image,
                (round(x - car_width / 2), round(foot_y - car_height)),
                (round(x + car_width / 2), round(foot_y - car_height * 0.2)),
                paint,
                -1,
            )
            cv2.rectangle(
                image,
                (round(x - car_width * 0.3), round(foot_y - car_height * 1.5)),
                (round(x + car_width * 0.3), round(foot_y - car_height)),
                _scale_color(paint, 0.8),
                -1,
            )
            for wheel in (-0.3, 0.3):
                cv2.circle(
                    image,
                    (round(x + wheel * car_width), round(foot_y - car_height * 0.2)),
                    max(2, round(car_height * 0.3)),
                    (20, 20, 20),
                    -1,
                    cv2.LINE_AA,
                )
        elif kind == "tree":
            _draw_tree(image, rng, x, foot_y, size * 1.6)
        else:
            center = (round(x), round(_uniform(rng, 0.2, 1.0) * height))
            axes = (
                max(2, round(size * _uniform(rng, 0.2, 0.6))),
                max(2, round(size * _uniform(rng, 0.15, 0.4))),
            )
            color = _jitter(rng, _pick(rng, (*_CLOTHING_COLORS, (70, 120, 60))), 30)
            cv2.ellipse(image, center, axes, _uniform(rng, 0, 180), 0, 360, color, -1, cv2.LINE_AA)


def _develop(image: np.ndarray, rng: np.random.Generator, style: _ViewStyle) -> np.ndarray:
    """Camera processing of a (H, W, 3) uint8 photo: gamma, contrast, brightness and colour cast (one lookup table
    per channel), sometimes blur, uneven illumination and sensor noise."""
    height, width = image.shape[:2]
    gamma = float(np.exp(rng.uniform(np.log(style.gamma[0]), np.log(style.gamma[1]))))
    contrast, brightness = _uniform(rng, 0.75, 1.2), _uniform(rng, -25, 25)
    cast = rng.uniform(0.9, 1.1, 3)
    levels = (np.arange(256) / 255.0) ** gamma * 255
    lookup = ((levels - 127.5) * contrast + 127.5 + brightness)[:, None] * cast[None, :]
    image = cv2.LUT(image, np.clip(np.rint(lookup), 0, 255).astype(np.uint8).reshape(1, 256, 3))
    if rng.random() < 0.6:
        image = cv2.GaussianBlur(image, (0, 0), _uniform(rng, 0.3, style.blur_sigma))
    illumination = 1 + 0.12 * _fractal_noise(rng, height, width, cells=2, octaves=2)
    noise = rng.standard_normal((height, width), dtype=np.float32) * np.float32(
        _uniform(rng, 0, style.noise_sigma)
    )
    developed = image.astype(np.float32)
    developed *= illumination[..., None]
    developed += noise[..., None]
    np.clip(developed, 0, 255, out=developed)
    return developed.astype(np.uint8)


def render_landmark_photo(
    scene: np.ndarray, rng: np.random.Generator, difficulty: str, config: DemoConfig
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A photo (H, W, 3) uint8 RGB of the landmark ``scene`` (RGBA (h, w, 4) from :func:`render_landmark_scene`)
    and the landmark's bounding box (x1, y1, x2, y2) in photo pixels.

    ``difficulty`` is ``query`` (fully in view), ``easy``, ``medium``, ``hard`` (zoomed in or far away, heavily
    occluded) or ``junk`` (tiny or mostly outside the frame).
    """
    if difficulty not in _VIEW_STYLES:
        raise ValueError(f"difficulty must be one of {sorted(_VIEW_STYLES)}, got {difficulty!r}")
    style = _pick(rng, _VIEW_STYLES[difficulty])
    width, height = _frame_size(rng, config)
    scene_height, scene_width = scene.shape[:2]
    homography = _sample_camera(rng, (scene_width, scene_height), (width, height), style)
    magnification = np.sqrt(abs(np.linalg.det(homography[:2, :2])))
    if magnification < 0.8:  # low-pass the scene before shrinking it, as a lens and sensor would
        scene = cv2.GaussianBlur(scene, (0, 0), 0.5 / magnification - 0.3)
    warped = cv2.warpPerspective(
        scene,
        homography,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0, 0),
    )
    foot = cv2.perspectiveTransform(np.array([[[scene_width / 2, scene_height]]], np.float32), homography)[
        0, 0
    ]
    horizon = round(np.clip(foot[1] - _uniform(rng, 0, 0.08) * height, 0.25 * height, 0.97 * height))
    background = _render_background(rng, width, height, horizon).astype(np.float32)
    coverage = warped[..., 3:].astype(np.float32) / 255
    image = np.clip(background + (warped[..., :3] - background) * coverage + 0.5, 0, 255).astype(np.uint8)
    rows = np.flatnonzero(warped[..., 3].max(axis=1) > 127)
    columns = np.flatnonzero(warped[..., 3].max(axis=0) > 127)
    box = (0.0, 0.0, 0.0, 0.0)
    if rows.size and columns.size:
        box = (float(columns[0]), float(rows[0]), float(columns[-1] + 1), float(rows[-1] + 1))
    _draw_occluders(image, rng, _randint(rng, *style.occluders), style.occluder_size, horizon)
    return _develop(image, rng, style), box


def render_non_landmark_photo(rng: np.random.Generator, config: DemoConfig) -> np.ndarray:
    """A photo (H, W, 3) uint8 RGB that shows no landmark: a landscape, objects on a table, or a close-up
    texture (foliage, pebbles, a material)."""
    width, height = _frame_size(rng, config)
    kind = _pick(rng, ("nature", "objects", "texture"))
    if kind == "nature":
        horizon = round(_uniform(rng, 0.35, 0.7) * height)
        image = _render_background(rng, width, height, horizon)
        for layer in range(_randint(rng, 1, 3)):
            xs = np.linspace(0, width, 17)
            ridge = horizon - (rng.uniform(0.05, 0.3, 17) + 0.1 * layer) * height
            outline = np.concatenate([np.stack([xs, ridge], 1), [[width, horizon], [0, horizon]]])
            cv2.fillPoly(
                image, [_polygon(outline)], _jitter(rng, (90 - 15 * layer, 100, 110 - 20 * layer), 20)
            )
        for _ in range(_randint(rng, 3, 12)):
            _draw_tree(
                image,
                rng,
                _uniform(rng, 0, width),
                _uniform(rng, horizon, height),
                _uniform(rng, 0.1, 0.4) * height,
            )
    elif kind == "objects":
        table = _jitter(rng, _pick(rng, _MATERIAL_COLORS["wood"] + _MATERIAL_COLORS["plaster"]), 20)
        image = _material_texture(rng, _pick(rng, ("planks", "plain")), table, height, width)
        for _ in range(_randint(rng, 3, 9)):
            x, y = _uniform(rng, 0, width), _uniform(rng, 0, height)
            size = _uniform(rng, 0.08, 0.25) * min(width, height)
            color = _jitter(rng, _pick(rng, _CLOTHING_COLORS), 30)
            if rng.random() < 0.5:
                cv2.circle(
                    image,
                    (round(x + size * 0.15), round(y + size * 0.15)),
                    round(size / 2),
                    (40, 36, 30),
                    -1,
                    cv2.LINE_AA,
                )
                cv2.circle(image, (round(x), round(y)), round(size / 2), color, -1, cv2.LINE_AA)
                cv2.circle(
                    image,
                    (round(x - size * 0.15), round(y - size * 0.15)),
                    max(1, round(size / 8)),
                    _scale_color(color, 1.5),
                    -1,
                    cv2.LINE_AA,
                )
            else:
                box = (round(x), round(y), round(x + size * 1.4), round(y + size))
                _draw_glyph_sign(image, rng, box, color, _pick(rng, ((250, 250, 250), (20, 20, 20))))
    else:
        texture = _pick(rng, ("foliage", "pebbles", "material"))
        if texture == "material":
            material = _pick(rng, sorted(_MATERIAL_COLORS))
            pattern = _pick(rng, ("brick", "ashlar", "tiles", "planks", "veined", "plain"))
            image = _material_texture(
                rng, pattern, _jitter(rng, _pick(rng, _MATERIAL_COLORS[material]), 20), height, width
            )
        else:
            base = (70, 100, 50) if texture == "foliage" else (140, 130, 120)
            image = _material_texture(rng, "plain", _jitter(rng, base, 20), height, width)
            for _ in range(_randint(rng, 150, 400)):
                center = (_randint(rng, 0, width), _randint(rng, 0, height))
                if texture == "foliage":
                    axes = (_randint(rng, 3, 12), _randint(rng, 2, 5))
                    cv2.ellipse(
                        image,
                        center,
                        axes,
                        _uniform(rng, 0, 180),
                        0,
                        360,
                        _jitter(rng, base, 40),
                        -1,
                        cv2.LINE_AA,
                    )
                else:
                    cv2.circle(image, center, _randint(rng, 3, 12), _jitter(rng, base, 50), -1, cv2.LINE_AA)
    return _develop(image, rng, _VIEW_STYLES["medium"][0])


# ----------------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------------


class _Ids:
    """Unique 16-character lowercase hex image ids, as in GLDv2."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def new(self) -> str:
        image_id = self._rng.bytes(8).hex()
        while image_id in self._used:
            image_id = self._rng.bytes(8).hex()
        self._used.add(image_id)
        return image_id


def image_path(root: Path, split: str, image_id: str) -> Path:
    """GLDv2 layout: ``<root>/<split>/<id[0]>/<id[1]>/<id[2]>/<id>.jpg``."""
    return root / split / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"


def _encode_jpeg(image: Image.Image, quality: int, exif: Image.Exif | None = None) -> bytes:
    buffer = io.BytesIO()
    if exif is None:
        image.save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, "JPEG", quality=quality, exif=exif)
    return buffer.getvalue()


def _jpeg_quality(rng: np.random.Generator) -> int:
    """A JPEG quality in [60, 95], mostly at the low end as on photo-sharing sites (mean about 72)."""
    return 60 + round(35 * rng.random() ** 2)


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_lines(path: Path, header: str, lines: Sequence[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in (header, *lines)), encoding="utf-8")


def _exif(datetime_original: str | None, camera: tuple[str, str] | None) -> Image.Exif | None:
    """EXIF with DateTimeOriginal (in the Exif IFD) and Make/Model, or None when there is neither."""
    if datetime_original is None and camera is None:
        return None
    exif = Image.Exif()
    if camera is not None:
        exif[_EXIF_MAKE], exif[_EXIF_MODEL] = camera
    if datetime_original is not None:
        exif.get_ifd(_EXIF_IFD)[_EXIF_DATETIME_ORIGINAL] = datetime_original
    return exif


def _sample_datetime(rng: np.random.Generator) -> str:
    """An EXIF timestamp 'YYYY:MM:DD HH:MM:SS' between 2005 and 2019, any season, mostly in daytime."""
    hour = int(np.clip(round(rng.normal(13.5, 4.5)), 0, 23))
    return (
        f"{_randint(rng, 2005, 2019):04d}:{_randint(rng, 1, 12):02d}:{_randint(rng, 1, 28):02d} "
        f"{hour:02d}:{_randint(rng, 0, 59):02d}:{_randint(rng, 0, 59):02d}"
    )


def _remove_previous_output(root: Path) -> None:
    """Delete what an earlier generation wrote under ``root`` (and only that), marker first."""
    (root / MARKER_FILE).unlink(missing_ok=True)
    for name in ("train", "index", "test", f"revisited/{RDEMO_NAME}"):
        if (root / name).is_dir():
            shutil.rmtree(root / name)
    for name in (
        "train.csv",
        "train_clean.csv",
        "index.csv",
        "test.csv",
        SOLUTION_FILE,
        "noise_manifest.json",
        "README.md",
    ):
        (root / name).unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------------------------
# The three parts of the dataset
# ----------------------------------------------------------------------------------------------------------------


class _Kind(enum.Enum):
    """What a train.csv row really is."""

    CLEAN = "clean"
    CMYK = "cmyk"
    GRAYSCALE_SINGLE_CHANNEL = "grayscale_single_channel"
    GRAYSCALE_RGB = "grayscale_rgb"
    NEAR_GRAYSCALE = "near_grayscale"
    MISLABELLED = "mislabelled"
    DISTRACTOR = "distractor"
    TRUNCATED = "truncated"
    ZERO_BYTE = "zero_byte"
    TEXT = "text"
    MISSING = "missing"
    NEAR_DUPLICATE = "near_duplicate"


_CLEAN_KINDS = frozenset({_Kind.CLEAN, _Kind.CMYK})
_CORRUPT_KINDS = (_Kind.TRUNCATED, _Kind.ZERO_BYTE, _Kind.TEXT)
_NO_IMAGE_KINDS = frozenset({*_CORRUPT_KINDS, _Kind.MISSING})
_SEPIA = np.array([1.07, 0.95, 0.76], np.float32)
_NOT_AN_IMAGE = b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n"


@dataclass(frozen=True)
class _TrainRow:
    """One train.csv row: ``landmark_id`` as listed, ``scene`` the train landmark really shown (None: none)."""

    image_id: str
    landmark_id: int
    kind: _Kind
    scene: int | None
    source_id: str | None = None  # near-duplicates: the image they copy


@dataclass(frozen=True)
class _TrainPart:
    landmark_ids: list[int]
    rows: list[_TrainRow]
    exif_datetime: dict[str, str]
    camera: dict[str, tuple[str, str]]


def _plan_train(rng: np.random.Generator, config: DemoConfig, ids: _Ids) -> _TrainPart:
    """Landmark ids, every train row with what it really is, and the EXIF of every decodable image."""
    num_landmarks = config.num_train_landmarks
    landmark_ids = sorted(
        int(value) + 1 for value in rng.choice(_MAX_LANDMARK_ID, num_landmarks, replace=False)
    )
    spread = config.max_train_images_per_landmark - config.min_train_images_per_landmark + 1
    genuine: list[_TrainRow] = []
    for scene, landmark_id in enumerate(landmark_ids):
        count = config.min_train_images_per_landmark + min(spread - 1, int(spread * rng.random() ** 3))
        genuine += [_TrainRow(ids.new(), landmark_id, _Kind.CLEAN, scene) for _ in range(count)]
    recoloured = (
        [_Kind.GRAYSCALE_SINGLE_CHANNEL] * config.num_grayscale_single_channel
        + [_Kind.GRAYSCALE_RGB] * config.num_grayscale_rgb
        + [_Kind.NEAR_GRAYSCALE] * config.num_near_grayscale
        + [_Kind.CMYK]
    )
    chosen = [
        int(position)
        for position in rng.choice(len(genuine), len(recoloured) + config.num_near_duplicates, replace=False)
    ]
    for position, kind in zip(chosen, recoloured, strict=False):
        row = genuine[position]
        genuine[position] = _TrainRow(row.image_id, row.landmark_id, kind, row.scene)
    extra = [
        _TrainRow(
            ids.new(),
            genuine[position].landmark_id,
            _Kind.NEAR_DUPLICATE,
            genuine[position].scene,
            genuine[position].image_id,
        )
        for position in chosen[len(recoloured) :]
    ]
    for _ in range(config.num_mislabelled):
        shown = _randint(rng, 0, num_landmarks - 1)
        listed = (shown + _randint(rng, 1, num_landmarks - 1)) % num_landmarks
        extra.append(_TrainRow(ids.new(), landmark_ids[listed], _Kind.MISLABELLED, shown))
    for _ in range(config.num_train_distractors):
        extra.append(_TrainRow(ids.new(), _pick(rng, landmark_ids), _Kind.DISTRACTOR, None))
    for kind in (*_CORRUPT_KINDS, *[_Kind.MISSING] * config.num_missing):
        scene = _randint(rng, 0, num_landmarks - 1)
        extra.append(
            _TrainRow(ids.new(), landmark_ids[scene], kind, scene if kind is not _Kind.ZERO_BYTE else None)
        )
    rows = genuine + extra
    exif_datetime: dict[str, str] = {}
    camera: dict[str, tuple[str, str]] = {}
    for row in rows:
        if row.kind in _NO_IMAGE_KINDS:
            continue
        if row.source_id is not None:
            if row.source_id in exif_datetime:
                exif_datetime[row.image_id] = exif_datetime[row.source_id]
            if row.source_id in camera:
                camera[row.image_id] = camera[row.source_id]
            continue
        if rng.random() < config.exif_datetime_fraction:
            exif_datetime[row.image_id] = _sample_datetime(rng)
        if rng.random() < config.exif_camera_fraction:
            camera[row.image_id] = _pick(rng, _CAMERAS)
    return _TrainPart(landmark_ids, rows, exif_datetime, camera)


def _as_saved(rgb: np.ndarray, kind: _Kind) -> Image.Image:
    """The picture that a train row of ``kind`` stores for the photo ``rgb`` (H, W, 3) uint8."""
    if kind is _Kind.CMYK:
        return Image.fromarray(rgb).convert("CMYK")
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if kind is _Kind.GRAYSCALE_SINGLE_CHANNEL:
        return Image.fromarray(gray)
    if kind is _Kind.GRAYSCALE_RGB:
        return Image.fromarray(np.dstack([gray, gray, gray]))
    if kind is _Kind.NEAR_GRAYSCALE:
        return Image.fromarray(np.clip(gray[..., None] * _SEPIA + 6, 0, 255).astype(np.uint8))
    return Image.fromarray(rgb)


def _write_train(
    root: Path, config: DemoConfig, seed: int, part: _TrainPart, scenes: Sequence[np.ndarray]
) -> dict[int, list[str]]:
    """Render and save every train image (near-duplicates last, from their saved source), write train.csv and
    train_clean.csv; return the clean image ids per landmark written to train_clean.csv."""
    for position, row in enumerate(part.rows):
        if row.kind is _Kind.MISSING or row.kind is _Kind.NEAR_DUPLICATE:
            continue
        path = image_path(root, "train", row.image_id)
        if row.kind is _Kind.ZERO_BYTE:
            _write_bytes(path, b"")
            continue
        if row.kind is _Kind.TEXT:
            _write_bytes(path, _NOT_AN_IMAGE)
            continue
        rng = _rng(seed, _Stream.TRAIN, position)
        if row.scene is None:
            rgb = render_non_landmark_photo(rng, config)
        else:
            rgb, _ = render_landmark_photo(scenes[row.scene], rng, "medium", config)
        quality = _jpeg_quality(rng)
        exif = _exif(part.exif_datetime.get(row.image_id), part.camera.get(row.image_id))
        if row.kind is _Kind.TRUNCATED:
            encoded = _encode_jpeg(Image.fromarray(rgb), quality)
            _write_bytes(path, encoded[: int(len(encoded) * _TRUNCATED_FRACTION)])
            continue
        picture = _as_saved(rgb, row.kind)
        _write_bytes(path, _encode_jpeg(picture, quality, exif))
    for position, row in enumerate(part.rows):
        if row.kind is _Kind.NEAR_DUPLICATE and row.source_id is not None:
            rng = _rng(seed, _Stream.TRAIN, position)
            source = load_rgb(image_path(root, "train", row.source_id))
            factor = _uniform(rng, 0.6, 0.85)
            resized = source.resize(
                (round(source.width * factor), round(source.height * factor)), Image.Resampling.LANCZOS
            )
            exif = _exif(part.exif_datetime.get(row.image_id), part.camera.get(row.image_id))
            _write_bytes(
                image_path(root, "train", row.image_id), _encode_jpeg(resized, _jpeg_quality(rng), exif)
            )
    rows = sorted(part.rows, key=lambda row: row.image_id)
    _write_lines(
        root / "train.csv",
        "id,url,landmark_id",
        [f"{row.image_id},{_URL_TEMPLATE.format(image_id=row.image_id)},{row.landmark_id}" for row in rows],
    )
    clean: dict[int, list[str]] = {}
    for row in rows:
        if row.kind in _CLEAN_KINDS:
            clean.setdefault(row.landmark_id, []).append(row.image_id)
    clean = {landmark_id: clean[landmark_id] for landmark_id in sorted(clean) if len(clean[landmark_id]) >= 2}
    _write_lines(
        root / "train_clean.csv",
        "landmark_id,images",
        [f"{landmark_id},{' '.join(image_ids)}" for landmark_id, image_ids in clean.items()],
    )
    return clean


def _write_index_and_test(
    root: Path,
    config: DemoConfig,
    seed: int,
    rng: np.random.Generator,
    ids: _Ids,
    scenes: Sequence[np.ndarray],
) -> dict[str, int]:
    """Index images of landmarks never seen in train plus distractors, test queries plus non-landmark images,
    index.csv, test.csv and the retrieval solution; returns their counts."""
    index_scene: dict[str, int | None] = {}
    test_scene: dict[str, int | None] = {}
    for landmark in range(len(scenes)):
        num_index = _randint(rng, config.min_index_images_per_landmark, config.max_index_images_per_landmark)
        num_queries = _randint(
            rng, config.min_test_queries_per_landmark, config.max_test_queries_per_landmark
        )
        index_scene.update((ids.new(), landmark) for _ in range(num_index))
        test_scene.update((ids.new(), landmark) for _ in range(num_queries))
    index_scene.update((ids.new(), None) for _ in range(config.num_index_distractors))
    test_scene.update((ids.new(), None) for _ in range(config.num_test_non_landmark))
    queries = [image_id for image_id, shown in test_scene.items() if shown is not None]
    num_public = round(config.public_fraction * len(queries))
    public = {queries[int(position)] for position in rng.choice(len(queries), num_public, replace=False)}
    for split, stream, members in (("index", _Stream.INDEX, index_scene), ("test", _Stream.TEST, test_scene)):
        for position, (image_id, shown) in enumerate(members.items()):
            view_rng = _rng(seed, stream, position)
            if shown is None:
                rgb = render_non_landmark_photo(view_rng, config)
            else:
                rgb, _ = render_landmark_photo(scenes[shown], view_rng, "medium", config)
            _write_bytes(
                image_path(root, split, image_id),
                _encode_jpeg(Image.fromarray(rgb), _jpeg_quality(view_rng)),
            )
    _write_lines(root / "index.csv", "id", sorted(index_scene))
    _write_lines(root / "test.csv", "id", sorted(test_scene))
    solution = []
    for image_id in sorted(test_scene):
        shown = test_scene[image_id]
        if shown is None:
            solution.append(f"{image_id},None,{_IGNORED}")
            continue
        matches = " ".join(
            sorted(index_id for index_id, index_of in index_scene.items() if index_of == shown)
        )
        solution.append(f"{image_id},{matches},{_PUBLIC if image_id in public else _PRIVATE}")
    _write_lines(root / SOLUTION_FILE, "id,images,Usage", solution)
    return {
        "index_images": len(index_scene),
        "index_landmarks": len(scenes),
        "index_distractors": config.num_index_distractors,
        "test_images": len(test_scene),
        "test_public": num_public,
        "test_private": len(queries) - num_public,
        "test_ignored": config.num_test_non_landmark,
    }


def _write_rdemo(
    root: Path, config: DemoConfig, seed: int, rng: np.random.Generator, scenes: Sequence[np.ndarray]
) -> dict[str, int]:
    """The Revisited-Oxford-format benchmark: database photos labelled easy, hard or junk per landmark,
    distractors, and queries with the landmark's bounding box; returns its counts."""
    difficulties = (
        ["easy"] * config.rdemo_easy_per_landmark
        + ["hard"] * config.rdemo_hard_per_landmark
        + ["junk"] * config.rdemo_junk_per_landmark
    )
    database: list[tuple[int | None, str]] = [
        (scene, difficulty) for scene in range(len(scenes)) for difficulty in difficulties
    ]
    database += [(None, "distractor")] * config.num_rdemo_distractors
    num_queries = len(scenes) * config.rdemo_queries_per_landmark
    numbers = rng.permutation(len(database) + num_queries)
    names = [f"{RDEMO_NAME}_{int(number):06d}" for number in numbers]
    database_names, query_names = names[: len(database)], names[len(database) :]
    imlist = sorted(database_names)
    position_of = {name: position for position, name in enumerate(imlist)}
    folder = root / "revisited" / RDEMO_NAME
    for position, (name, (scene, difficulty)) in enumerate(zip(database_names, database, strict=True)):
        view_rng = _rng(seed, _Stream.RDEMO, position)
        if scene is None:
            rgb = render_non_landmark_photo(view_rng, config)
        else:
            rgb, _ = render_landmark_photo(scenes[scene], view_rng, difficulty, config)
        _write_bytes(
            folder / "jpg" / f"{name}.jpg", _encode_jpeg(Image.fromarray(rgb), _jpeg_quality(view_rng))
        )
    ground_truth: list[dict[str, list[int] | list[float]]] = []
    for query, name in enumerate(query_names):
        scene = query // config.rdemo_queries_per_landmark
        view_rng = _rng(seed, _Stream.RDEMO_QUERY, query)
        rgb, box = render_landmark_photo(scenes[scene], view_rng, "query", config)
        _write_bytes(
            folder / "jpg" / f"{name}.jpg", _encode_jpeg(Image.fromarray(rgb), _jpeg_quality(view_rng))
        )
        entry: dict[str, list[int] | list[float]] = {
            difficulty: sorted(
                position_of[database_name]
                for database_name, (database_scene, database_difficulty) in zip(
                    database_names, database, strict=True
                )
                if database_scene == scene and database_difficulty == difficulty
            )
            for difficulty in ("easy", "hard", "junk")
        }
        entry["bbx"] = [float(value) for value in box]
        ground_truth.append(entry)
    ground = {"imlist": imlist, "qimlist": query_names, "gnd": ground_truth}
    (folder / f"gnd_{RDEMO_NAME}.pkl").write_bytes(pickle.dumps(ground, protocol=4))
    return {
        "rdemo_database_images": len(database),
        "rdemo_landmarks": len(scenes),
        "rdemo_distractors": config.num_rdemo_distractors,
        "rdemo_queries": num_queries,
    }


def _readme(manifest: DemoManifest, config: DemoConfig) -> str:
    counts = manifest.counts
    return f"""# Demo dataset (generated by `python -m datamodules.demo`, seed {manifest.seed})

A deterministic mini Google-Landmarks-v2 in the exact GLDv2 file formats, plus a Revisited-Oxford-format
benchmark. Every landmark is a procedural façade; every photo a random perspective view of it over a random
background, with occluders, lighting changes, blur, noise and JPEG compression. Regenerate with
`python -m datamodules.demo --root <this folder> --force`; the same seed gives byte-identical files.

| part | content |
| --- | --- |
| `train.csv`, `train/` | {counts["train_rows"]} rows of {counts["train_landmarks"]} landmarks ({counts["train_files"]} files) |
| `train_clean.csv` | {counts["train_clean_images"]} clean images of {counts["train_clean_landmarks"]} landmarks |
| `index.csv`, `index/` | {counts["index_images"]} images: {counts["index_landmarks"]} landmarks not in train, {counts["index_distractors"]} distractors |
| `test.csv`, `test/`, `{SOLUTION_FILE}` | {counts["test_images"]} queries: {counts["test_public"]} Public, {counts["test_private"]} Private, {counts["test_ignored"]} Ignored (no landmark) |
| `revisited/{RDEMO_NAME}/` | {counts["rdemo_database_images"]} database images ({counts["rdemo_landmarks"]} landmarks, easy/hard/junk, {counts["rdemo_distractors"]} distractors), {counts["rdemo_queries"]} queries with a bounding box |

## Noise in train (all listed in `noise_manifest.json`)

- mislabelled: {counts["mislabelled"]} views of one landmark listed under another (`true_landmark` gives the truth);
- grayscale: {counts["grayscale"]} ({config.num_grayscale_single_channel} single-channel JPEGs, {config.num_grayscale_rgb} RGB with equal channels); near-grayscale (sepia): {counts["near_grayscale"]};
- distractor: {counts["distractor"]} images of no landmark listed under a landmark;
- corrupt: {counts["corrupt"]} (a truncated JPEG, a zero-byte file, a text file named .jpg); cmyk: {counts["cmyk"]} valid CMYK JPEG;
- missing: {counts["missing"]} rows without a file; near_duplicate: {counts["near_duplicate"]} resized, re-encoded copies (id -> original id);
- EXIF: {counts["exif_datetime"]} images carry DateTimeOriginal (`exif_datetime`), {counts["camera"]} Make and Model (`camera`).

`train_clean.csv` lists per landmark the images in none of mislabelled, grayscale, near_grayscale, distractor,
corrupt, missing and near_duplicate (CMYK images are clean), for landmarks with at least two such images.
"""


def generate_demo(root: Path, config: DemoConfig = DemoConfig(), seed: int = 0) -> DemoManifest:
    """Write the whole demo dataset under ``root`` (replacing an earlier one), the marker ``.complete`` last.

    Raises:
        ValueError: ``seed`` is negative.
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    root = Path(root)
    _remove_previous_output(root)
    root.mkdir(parents=True, exist_ok=True)
    plan_rng = _rng(seed, _Stream.PLAN, 0)
    ids = _Ids(plan_rng)
    train = _plan_train(plan_rng, config, ids)
    num_scenes = config.num_train_landmarks + config.num_index_landmarks + config.num_rdemo_landmarks
    scenes = [render_landmark_scene(_rng(seed, _Stream.SCENE, scene)) for scene in range(num_scenes)]
    train_end, index_end = config.num_train_landmarks, config.num_train_landmarks + config.num_index_landmarks
    clean = _write_train(root, config, seed, train, scenes[:train_end])
    index_counts = _write_index_and_test(root, config, seed, plan_rng, ids, scenes[train_end:index_end])
    rdemo_counts = _write_rdemo(root, config, seed, plan_rng, scenes[index_end:])
    rows_of = {kind: sorted(row.image_id for row in train.rows if row.kind is kind) for kind in _Kind}
    noise = {
        "mislabelled": tuple(rows_of[_Kind.MISLABELLED]),
        "grayscale": tuple(sorted(rows_of[_Kind.GRAYSCALE_SINGLE_CHANNEL] + rows_of[_Kind.GRAYSCALE_RGB])),
        "near_grayscale": tuple(rows_of[_Kind.NEAR_GRAYSCALE]),
        "distractor": tuple(rows_of[_Kind.DISTRACTOR]),
        "corrupt": tuple(sorted(image_id for kind in _CORRUPT_KINDS for image_id in rows_of[kind])),
        "cmyk": tuple(rows_of[_Kind.CMYK]),
        "missing": tuple(rows_of[_Kind.MISSING]),
    }
    near_duplicate = {row.image_id: row.source_id for row in train.rows if row.source_id is not None}
    true_landmark = {
        row.image_id: train.landmark_ids[row.scene]
        for row in train.rows
        if row.kind is _Kind.MISLABELLED and row.scene is not None
    }
    counts = {
        "train_rows": len(train.rows),
        "train_files": len(train.rows) - len(noise["missing"]),
        "train_landmarks": config.num_train_landmarks,
        "train_clean_landmarks": len(clean),
        "train_clean_images": sum(len(image_ids) for image_ids in clean.values()),
        **index_counts,
        **rdemo_counts,
        **{name: len(image_ids) for name, image_ids in noise.items()},
        "grayscale_single_channel": config.num_grayscale_single_channel,
        "grayscale_rgb": config.num_grayscale_rgb,
        "near_duplicate": len(near_duplicate),
        "exif_datetime": len(train.exif_datetime),
        "camera": len(train.camera),
    }
    manifest = DemoManifest(
        root=root,
        seed=seed,
        counts=counts,
        near_duplicate=near_duplicate,
        exif_datetime=dict(train.exif_datetime),
        camera={image_id: f"{make} {model}" for image_id, (make, model) in train.camera.items()},
        true_landmark=true_landmark,
        **noise,
    )
    (root / "noise_manifest.json").write_text(
        json.dumps(manifest.noise_json(), indent=1) + "\n", encoding="utf-8"
    )
    (root / "README.md").write_text(_readme(manifest, config), encoding="utf-8")
    (root / MARKER_FILE).write_bytes(b"")
    return manifest


def _directory_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: generate the demo under ``--root`` unless its ``.complete`` marker exists (``--force``)."""
    parser = argparse.ArgumentParser(prog="python -m datamodules.demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=Path("data/demo"), help="output folder (default: data/demo)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed gives identical files"
    )
    parser.add_argument("--scale", choices=sorted(DEMO_SCALES), default="default", help="dataset size")
    parser.add_argument("--force", action="store_true", help="regenerate even if <root>/.complete exists")
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error(f"--seed must be non-negative, got {args.seed}")
    if (args.root / MARKER_FILE).exists() and not args.force:
        print(f"demo: {args.root} is complete; nothing to do (--force regenerates it)")
        return 0
    start = time.perf_counter()
    manifest = generate_demo(args.root, DEMO_SCALES[args.scale], args.seed)
    seconds = time.perf_counter() - start
    counts = manifest.counts
    print(
        f"demo: {counts['train_rows']} train rows ({counts['train_landmarks']} landmarks), "
        f"{counts['index_images']} index, {counts['test_images']} test, "
        f"{counts['rdemo_database_images']}+{counts['rdemo_queries']} rdemo images in {args.root}: "
        f"{_directory_bytes(args.root) / 2**20:.1f} MB, {seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
