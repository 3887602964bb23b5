"""Building parts shared by the styles: windows and window grids, columns, side walls, gables, spires, domes,
crenellations and steps.
"""

from __future__ import annotations

import cv2
import numpy as np

from datamodules.demo.canvas import CLOTHING_COLORS, Canvas, Kit, as_polygon, rect
from datamodules.demo.rng import Color, pick, randint, scale_color, uniform_between


def window_outline(left: float, top: float, width: float, height: float, shape: str) -> np.ndarray:
    """The outline (K, 2) int32 of a window: ``rect``, ``round`` (semicircular head) or ``pointed`` (gothic)."""
    right, bottom = left + width, top + height
    if shape == "rect":
        return rect(left, top, right, bottom)
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
    return as_polygon(np.concatenate([[[left, bottom]], head, [[right, bottom]]]))


def draw_window(
    rgb: np.ndarray,
    rng: np.random.Generator,
    kit: Kit,
    box: tuple[float, float, float, float],
    shape: str,
    shutters: bool = False,
) -> None:
    """One window with unique contents (lit room, curtains or reflecting glass), recess shadow, glazing bars,
    frame, and optionally a sill, a flower box and shutters. ``box`` = (left, top, width, height)."""
    left, top, width, height = box
    if width < 3 or height < 4:
        return
    outline = window_outline(left, top, width, height, shape)
    shadow_offset = np.array([round(2 * kit.light), 2], np.int32)
    cv2.fillPoly(rgb, [outline + shadow_offset], scale_color(kit.trim_color, 0.35))
    x0, y0 = int(outline[:, 0].min()), int(outline[:, 1].min())
    x1, y1 = int(outline[:, 0].max()) + 1, int(outline[:, 1].max()) + 1
    patch_height, patch_width = y1 - y0, x1 - x0
    vertical = np.linspace(0, 1, patch_height, dtype=np.float32)[:, None, None]
    interior = rng.random()
    if interior < 0.3:
        top_color, bottom_color = np.array((250, 214, 140), np.float32), np.array((200, 150, 80), np.float32)
    else:
        glass = np.asarray(kit.glass, np.float32) * uniform_between(rng, 0.7, 1.2)
        top_color, bottom_color = glass * 1.3 + 20, glass * 0.6
    patch = top_color * (1 - vertical) + bottom_color * vertical
    patch = np.broadcast_to(patch, (patch_height, patch_width, 3)).copy()
    diagonal = (
        np.arange(patch_width)[None, :] + uniform_between(rng, 0.3, 1.2) * np.arange(patch_height)[:, None]
    )
    band_start = uniform_between(rng, 0, patch_width + patch_height)
    reflection = (diagonal > band_start) & (diagonal < band_start + uniform_between(rng, 2, 8))
    patch[reflection] = patch[reflection] * 0.5 + 120
    if 0.3 <= interior < 0.65:
        curtain = np.asarray(pick(rng, CLOTHING_COLORS), np.float32) * uniform_between(rng, 0.6, 1.0)
        covered = round(uniform_between(rng, 0.2, 0.5) * patch_width)
        if rng.random() < 0.5:
            patch[:, :covered] = curtain
        else:
            patch[:, patch_width - covered :] = curtain
        patch[: round(patch_height * uniform_between(rng, 0.05, 0.2))] = curtain * 0.8
    mask = np.zeros((patch_height, patch_width), np.uint8)
    cv2.fillPoly(mask, [outline - (x0, y0)], 255)
    region = rgb[y0:y1, x0:x1]
    inside = mask[: region.shape[0], : region.shape[1]] > 0
    region[inside] = np.clip(patch[: region.shape[0], : region.shape[1]][inside], 0, 255).astype(np.uint8)
    frame = scale_color(kit.trim_color, uniform_between(rng, 0.9, 1.1))
    bars = randint(rng, 0, 3)
    if bars >= 1:
        cv2.line(
            rgb,
            (round(left + width / 2), round(top)),
            (round(left + width / 2), round(top + height)),
            frame,
            1,
        )
    if bars >= 2:
        bar_y = round(top + height * uniform_between(rng, 0.3, 0.5))
        cv2.line(rgb, (round(left), bar_y), (round(left + width), bar_y), frame, 1)
    if bars == 3:
        bar_y = round(top + height * uniform_between(rng, 0.6, 0.8))
        cv2.line(rgb, (round(left), bar_y), (round(left + width), bar_y), frame, 1)
    cv2.polylines(rgb, [outline], True, frame, 2 if width > 14 else 1, cv2.LINE_AA)
    if rng.random() < 0.6:
        cv2.rectangle(
            rgb,
            (round(left - 2), round(top + height)),
            (round(left + width + 2), round(top + height + 3)),
            scale_color(kit.trim_color, 1.1),
            -1,
        )
    if rng.random() < 0.15:
        for _ in range(randint(rng, 4, 9)):
            flower = (
                round(left + uniform_between(rng, 0, width)),
                round(top + height - uniform_between(rng, 0, 3)),
            )
            cv2.circle(rgb, flower, randint(rng, 1, 2), pick(rng, CLOTHING_COLORS), -1)
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
                    scale_color(kit.accent, 0.7),
                    1,
                )


def draw_window_grid(
    rgb: np.ndarray,
    rng: np.random.Generator,
    kit: Kit,
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
    width_fraction = uniform_between(rng, 0.35, 0.55) * (0.7 if shutters else 1.0)
    height_fraction = uniform_between(rng, 0.5, 0.75)
    for row in range(rows):
        for column in range(columns):
            width, height = cell_width * width_fraction, cell_height * height_fraction
            window_left = left + (column + 0.5) * cell_width - width / 2
            window_top = top + (row + 0.5) * cell_height - height / 2
            draw_window(rgb, rng, kit, (window_left, window_top, width, height), shape, shutters)


def draw_column(canvas: Canvas, kit: Kit, center_x: float, top: int, bottom: int, width: float) -> None:
    """A fluted round column with capital and base."""
    left, right = round(center_x - width / 2), round(center_x + width / 2)
    if right - left < 2:
        return
    canvas.fill_cylinder((left, top, right, bottom), kit.trim, kit.light)
    for flute_x in range(left + 2, right - 1, 3):
        cv2.line(canvas.rgb, (flute_x, top + 3), (flute_x, bottom - 3), scale_color(kit.trim_color, 0.8), 1)
    cap = max(2, round(width * 0.3))
    canvas.fill([rect(left - cap, top - cap, right + cap, top)], scale_color(kit.trim_color, 1.05))
    canvas.fill([rect(left - cap, bottom - cap, right + cap, bottom)], scale_color(kit.trim_color, 0.95))


def draw_side_wall(
    canvas: Canvas,
    rng: np.random.Generator,
    kit: Kit,
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
    canvas.fill([as_polygon(corners)], kit.side_wall)
    window_columns = max(1, depth // 22)
    for row in range(window_rows):
        for column in range(window_columns):
            u0, u1 = (column + 0.3) / window_columns, (column + 0.7) / window_columns
            v0, v1 = (row + 0.25) / window_rows, (row + 0.7) / window_rows
            quad = [_bilinear(corners, u, v) for u, v in ((u0, v0), (u1, v0), (u1, v1), (u0, v1))]
            cv2.fillPoly(
                canvas.rgb, [as_polygon(quad)], scale_color(kit.glass, uniform_between(rng, 0.4, 0.8))
            )


def _bilinear(corners: np.ndarray, u: float, v: float) -> tuple[float, float]:
    """A point of the quad ``corners`` (4, 2) = near-top, far-top, far-bottom, near-bottom at (u along, v down)."""
    top = corners[0] + (corners[1] - corners[0]) * u
    bottom = corners[3] + (corners[2] - corners[3]) * u
    point = top + (bottom - top) * v
    return float(point[0]), float(point[1])


def draw_gable(
    canvas: Canvas, paint: np.ndarray | Color, left: float, right: float, base_y: float, apex_y: float
) -> None:
    canvas.fill([as_polygon([(left, base_y), ((left + right) / 2, apex_y), (right, base_y)])], paint)


def draw_spire(
    canvas: Canvas,
    rng: np.random.Generator,
    kit: Kit,
    left: float,
    right: float,
    base_y: float,
    apex_y: float,
) -> None:
    """A spire with crockets along both edges and a finial."""
    center_x = (left + right) / 2
    draw_gable(canvas, kit.roof, left, right, base_y, apex_y)
    for fraction in np.linspace(0.15, 0.85, randint(rng, 3, 6)):
        y = base_y + (apex_y - base_y) * fraction
        half_width = (right - left) / 2 * (1 - fraction)
        for direction in (-1, 1):
            x = center_x + direction * half_width
            crocket = [(x, y), (x + direction * 4, y - 3), (x, y - 6)]
            cv2.fillPoly(canvas.rgb, [as_polygon(crocket)], scale_color(kit.trim_color, 0.8))
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
        [as_polygon([(center_x - 4, apex_y), (center_x + 4, apex_y), (center_x, apex_y - 9)])],
        255,
    )


def onion_outline(center_x: float, base_y: float, half_width: float, height: float) -> np.ndarray:
    """The outline (K, 2) int32 of an onion dome: a bulge above ``base_y`` that tapers to a point."""
    rise = np.linspace(0, 1, 16)
    widths = half_width * np.sin(np.pi * rise**0.75) * (1.2 - 0.5 * rise)
    right_side = np.stack([center_x + widths, base_y - rise * height], axis=1)
    left_side = np.stack([center_x - widths, base_y - rise * height], axis=1)[::-1]
    return as_polygon(np.concatenate([right_side, left_side]))


def draw_dome(
    canvas: Canvas,
    rng: np.random.Generator,
    kit: Kit,
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
    rib_color = scale_color(kit.trim_color, 0.75)
    for fraction in np.linspace(-0.8, 0.8, randint(rng, 4, 9)):
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
    cv2.circle(canvas.rgb, (round(center_x), finial_top), 3, pick(rng, ((212, 170, 70), kit.accent)), -1)
    cv2.rectangle(
        canvas.alpha, (round(center_x) - 3, finial_top - 3), (round(center_x) + 3, lantern_top), 255, -1
    )


def draw_crenellations(
    canvas: Canvas, paint: np.ndarray, left: int, right: int, top: int, merlon: int
) -> None:
    """Battlements along ``top``: merlons of width and height ``merlon`` with equal gaps."""
    merlons = [rect(x, top - merlon, x + merlon, top) for x in range(left, right - merlon + 1, 2 * merlon)]
    if merlons:
        canvas.fill(merlons, paint)


def draw_steps(canvas: Canvas, kit: Kit, left: int, right: int, top: int, bottom: int, count: int) -> None:
    """A flight of ``count`` steps between ``top`` and ``bottom``, each one wider and darker than the one above."""
    step_height = (bottom - top) / count
    for step in range(count):
        inset = (count - 1 - step) * 3
        polygon = rect(left + inset, top + step * step_height, right - inset, top + (step + 1) * step_height)
        canvas.fill([polygon], kit.trim)
        cv2.line(canvas.rgb, tuple(polygon[3]), tuple(polygon[2]), scale_color(kit.trim_color, 0.55), 1)


def body_span(canvas: Canvas, kit: Kit, depth: int, margin: int) -> tuple[int, int]:
    """Left and right of the front wall, leaving room for the side wall on ``kit.side``."""
    left, right = margin, canvas.width - margin
    if kit.side > 0:
        right -= depth
    else:
        left += depth
    return left, right
