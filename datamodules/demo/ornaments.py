"""Unique details that give every landmark its own local features: glyph signs, rosettes, clocks, reliefs and
flags.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from datamodules.demo.canvas import CLOTHING_COLORS, as_polygon
from datamodules.demo.rng import Color, pick, randint, scale_color, uniform_between


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
    for _ in range(randint(rng, 2, 4)):
        num_points = randint(rng, 2, 3)
        points = np.stack(
            [x + rng.uniform(0, width, num_points), y + rng.uniform(0, height, num_points)], axis=1
        )
        cv2.polylines(rgb, [as_polygon(points)], False, ink, thickness, cv2.LINE_AA)
    if rng.random() < 0.25:
        center = (
            round(x + uniform_between(rng, 0.2, 0.8) * width),
            round(y + uniform_between(rng, 0.2, 0.8) * height),
        )
        cv2.circle(rgb, center, max(1, thickness), ink, -1, cv2.LINE_AA)


def draw_glyph_sign(
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
    num_rows = 1 if bottom - top < 28 else randint(rng, 1, 2)
    padding = max(2, (bottom - top) // 8)
    row_height = (bottom - top - 2 * padding) / num_rows
    glyph_height = row_height * 0.78
    glyph_width = glyph_height * uniform_between(rng, 0.55, 0.85)
    thickness = 1 if glyph_height < 14 else 2
    for row in range(num_rows):
        y = top + padding + row * row_height
        x = left + padding + uniform_between(rng, 0, glyph_width)
        while x + glyph_width < right - padding:
            _draw_glyph(rgb, rng, x, y, glyph_width, glyph_height, ink, thickness)
            x += glyph_width * (1.15 if rng.random() > 0.18 else 2.0)


def draw_rosette(
    rgb: np.ndarray, rng: np.random.Generator, center: tuple[int, int], radius: int, colors: Sequence[Color]
) -> None:
    """A rose window or rosette: concentric rings, petals and spokes in random counts and colours."""
    if radius < 4:
        return
    cv2.circle(rgb, center, radius, colors[0], -1, cv2.LINE_AA)
    num_petals = randint(rng, 6, 16)
    phase = uniform_between(rng, 0, 360)
    for ring in range(randint(rng, 2, 3)):
        ring_radius = radius * (0.85 - 0.3 * ring)
        petal_color = pick(rng, colors)
        for petal in range(num_petals):
            angle = np.deg2rad(phase + 360 * petal / num_petals + 15 * ring)
            petal_center = (
                round(center[0] + 0.6 * ring_radius * np.cos(angle)),
                round(center[1] + 0.6 * ring_radius * np.sin(angle)),
            )
            axes = (
                max(1, round(ring_radius * 0.35)),
                max(1, round(ring_radius * uniform_between(rng, 0.1, 0.2))),
            )
            cv2.ellipse(
                rgb, petal_center, axes, float(np.rad2deg(angle)), 0, 360, petal_color, -1, cv2.LINE_AA
            )
    for spoke in range(num_petals):
        angle = np.deg2rad(phase + 360 * (spoke + 0.5) / num_petals)
        end = (round(center[0] + radius * np.cos(angle)), round(center[1] + radius * np.sin(angle)))
        cv2.line(rgb, center, end, colors[-1], 1, cv2.LINE_AA)
    cv2.circle(rgb, center, radius, colors[-1], max(1, radius // 10), cv2.LINE_AA)
    cv2.circle(rgb, center, max(2, radius // 5), pick(rng, colors), -1, cv2.LINE_AA)


def draw_clock(
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
        angle = uniform_between(rng, 0, 2 * np.pi)
        end = (
            round(center[0] + length * radius * np.sin(angle)),
            round(center[1] - length * radius * np.cos(angle)),
        )
        cv2.line(rgb, center, end, ink, width, cv2.LINE_AA)


def draw_relief(
    rgb: np.ndarray, rng: np.random.Generator, box: tuple[int, int, int, int], base: Color
) -> None:
    """A sculpted group in ``box``: shaded ellipses and polygons in tones of ``base``."""
    left, top, right, bottom = box
    if right - left < 8 or bottom - top < 6:
        return
    for _ in range(randint(rng, 5, 12)):
        tone = scale_color(base, uniform_between(rng, 0.55, 1.15))
        center = (randint(rng, left, right), randint(rng, top, bottom))
        axes = (randint(rng, 2, max(3, (right - left) // 6)), randint(rng, 2, max(3, (bottom - top) // 2)))
        cv2.ellipse(rgb, center, axes, uniform_between(rng, 0, 180), 0, 360, tone, -1, cv2.LINE_AA)
        cv2.ellipse(
            rgb, center, axes, uniform_between(rng, 0, 180), 0, 360, scale_color(tone, 0.6), 1, cv2.LINE_AA
        )


def draw_flag(rgb: np.ndarray, rng: np.random.Generator, x: int, y: int, size: int) -> None:
    """A flag on a pole whose foot is at (x, y): two or three random stripes and an emblem."""
    pole_top = y - size * 2
    cv2.line(rgb, (x, y), (x, pole_top), (60, 60, 60), 2, cv2.LINE_AA)
    direction = pick(rng, (-1, 1))
    flag_width = round(size * 1.5)
    num_stripes = randint(rng, 2, 3)
    for stripe in range(num_stripes):
        stripe_top = pole_top + stripe * size // num_stripes
        corner = (x + direction * flag_width, stripe_top + size // num_stripes)
        cv2.rectangle(rgb, (x, stripe_top), corner, pick(rng, CLOTHING_COLORS), -1)
    cv2.circle(
        rgb,
        (x + direction * flag_width // 2, pole_top + size // 2),
        max(1, size // 5),
        pick(rng, CLOTHING_COLORS),
        -1,
        cv2.LINE_AA,
    )
