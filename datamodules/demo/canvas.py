"""Drawing surfaces: materials (textures with noise unique to each landmark), the RGBA canvas a façade is drawn
on, and the kit of materials one landmark is built from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from datamodules.demo.rng import Color, fractal_noise, randint, uniform_between


def rect(left: float, top: float, right: float, bottom: float) -> np.ndarray:
    """The polygon (4, 2) int32 of an axis-aligned rectangle."""
    return (
        np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float64)
        .round()
        .astype(np.int32)
    )


def as_polygon(points: Sequence[tuple[float, float]] | np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64).round().astype(np.int32)


MATERIAL_COLORS: dict[str, tuple[Color, ...]] = {
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


ACCENT_COLORS: tuple[Color, ...] = (
    (30, 80, 50),
    (40, 60, 120),
    (120, 30, 30),
    (90, 60, 30),
    (20, 20, 24),
    (160, 120, 40),
    (60, 110, 130),
)


CLOTHING_COLORS: tuple[Color, ...] = (
    (200, 40, 40),
    (40, 60, 160),
    (30, 30, 30),
    (230, 230, 220),
    (240, 180, 40),
    (60, 130, 60),
    (150, 90, 160),
)


def material_texture(
    rng: np.random.Generator, pattern: str, base: Color, height: int, width: int
) -> np.ndarray:
    """A (height, width, 3) uint8 texture: ``brick``, ``ashlar`` (stone blocks), ``tiles`` (roof), ``planks``,
    ``veined`` (marble) or ``plain``, all mottled by smooth noise and grain that is unique to this call."""
    base_rgb = np.asarray(base, np.float32)
    if pattern in ("brick", "ashlar", "tiles"):
        block_height, block_width, mortar, jitter = {
            "brick": (randint(rng, 7, 10), randint(rng, 18, 26), 1, 18.0),
            "ashlar": (randint(rng, 14, 24), randint(rng, 26, 52), 2, 12.0),
            "tiles": (randint(rng, 6, 9), randint(rng, 8, 13), 1, 16.0),
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
        plank_width = randint(rng, 6, 12)
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
            angle = uniform_between(rng, 0, np.pi)
            along = np.cos(angle) * np.arange(width)[None, :] + np.sin(angle) * np.arange(height)[:, None]
            wobble = 3.0 * fractal_noise(rng, height, width, cells=4, octaves=3)
            veins = np.abs(np.sin(along / uniform_between(rng, 18, 40) + wobble)) < 0.08
            texture[veins] *= 0.82
    mottling = fractal_noise(rng, height, width, cells=8, octaves=3)
    texture *= 1 + 0.07 * mottling[..., None]
    texture += rng.standard_normal((height, width, 1), dtype=np.float32) * np.float32(4.0)
    return np.clip(texture, 0, 255).astype(np.uint8)


class Canvas:
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
class Kit:
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
