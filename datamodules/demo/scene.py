"""One landmark's canonical scene: a style drawn at random (``_STYLES``), its materials, and the builder that
draws the façade.
"""

from __future__ import annotations

import cv2
import numpy as np

from datamodules.demo.canvas import ACCENT_COLORS, MATERIAL_COLORS, Canvas, Kit, material_texture
from datamodules.demo.rng import fractal_noise, jittered, pick, randint, scale_color, uniform_between
from datamodules.demo.styles.brick_hall import build_brick_hall
from datamodules.demo.styles.castle import build_castle
from datamodules.demo.styles.classical import build_classical
from datamodules.demo.styles.colonial import build_colonial
from datamodules.demo.styles.domed import build_domed
from datamodules.demo.styles.gothic import build_gothic
from datamodules.demo.styles.modern import build_modern
from datamodules.demo.styles.pagoda import build_pagoda

_STYLES = {
    "classical": (
        build_classical,
        ("marble", "sandstone", "granite"),
        ("veined", "ashlar", "plain"),
        ("tile", "slate", "copper"),
    ),
    "gothic": (build_gothic, ("sandstone", "granite"), ("ashlar",), ("slate", "copper", "tile")),
    "brick_hall": (build_brick_hall, ("brick",), ("brick",), ("slate", "tile", "copper")),
    "modern": (build_modern, ("concrete", "granite"), ("plain",), ("slate",)),
    "pagoda": (build_pagoda, ("wood",), ("planks",), ("tile", "slate", "copper")),
    "domed": (
        build_domed,
        ("sandstone", "marble", "plaster"),
        ("plain", "ashlar"),
        ("copper", "tile", "slate"),
    ),
    "castle": (build_castle, ("granite", "sandstone"), ("ashlar",), ("slate", "tile")),
    "colonial": (build_colonial, ("plaster",), ("plain",), ("tile",)),
}


def render_landmark_scene(rng: np.random.Generator) -> np.ndarray:
    """The canonical picture of one landmark: RGBA (H, W, 4) uint8, alpha 255 on the building, 0 elsewhere.

    The style, proportions, colours and materials are drawn from ``rng``; every window, sign and ornament is
    unique, and the materials carry noise unique to this landmark, so that no two landmarks share local
    features.
    """
    style = pick(rng, sorted(_STYLES))
    builder, materials, patterns, roof_materials = _STYLES[style]
    height, width = randint(rng, 360, 500), randint(rng, 380, 520)
    material = pick(rng, materials)
    wall_color = jittered(rng, pick(rng, MATERIAL_COLORS[material]), 18)
    trim_color = jittered(rng, scale_color(wall_color, uniform_between(rng, 0.75, 1.15)), 12)
    roof_color = jittered(rng, pick(rng, MATERIAL_COLORS[pick(rng, roof_materials)]), 14)
    pattern = pick(rng, patterns)
    light = uniform_between(rng, 0.3, 1.0) * pick(rng, (-1, 1))
    wall = material_texture(rng, pattern, wall_color, height, width)
    kit = Kit(
        wall=wall,
        trim=material_texture(rng, "plain" if pattern != "planks" else "planks", trim_color, height, width),
        roof=material_texture(rng, "tiles", roof_color, height, width),
        side_wall=cv2.convertScaleAbs(wall, alpha=uniform_between(rng, 0.55, 0.72)),
        trim_color=trim_color,
        accent=jittered(rng, pick(rng, ACCENT_COLORS), 20),
        glass=jittered(rng, pick(rng, MATERIAL_COLORS["glass"]), 20),
        light=light,
        side=-1 if light > 0 else 1,
    )
    canvas = Canvas(height, width)
    builder(canvas, rng, kit)
    weathering = 1 + 0.08 * fractal_noise(rng, height, width, cells=6, octaves=4)
    streaks = cv2.blur(rng.random((height, width), dtype=np.float32), (1, 41))
    sunlight = np.linspace(1 - 0.08 * light, 1 + 0.08 * light, width, dtype=np.float32)[None, :]
    shaded = canvas.rgb.astype(np.float32) * (weathering * (1.2 - 0.4 * streaks) * sunlight)[..., None]
    rgb = np.clip(shaded, 0, 255).astype(np.uint8)
    rows = np.flatnonzero(canvas.alpha.max(axis=1))
    columns = np.flatnonzero(canvas.alpha.max(axis=0))
    top, bottom = max(0, rows[0] - 2), min(height, rows[-1] + 3)
    left, right = max(0, columns[0] - 2), min(width, columns[-1] + 3)
    return np.dstack([rgb, canvas.alpha])[top:bottom, left:right].copy()
