"""The domed style: an arcaded hall under a windowed drum, a ribbed dome and minarets."""

from __future__ import annotations

import cv2
import numpy as np

from datamodules.demo.canvas import Canvas, Kit, rect
from datamodules.demo.parts import (
    body_span,
    draw_dome,
    draw_gable,
    draw_side_wall,
    draw_window,
    draw_window_grid,
    window_outline,
)
from datamodules.demo.rng import pick, randint, scale_color, uniform_between


def build_domed(canvas: Canvas, rng: np.random.Generator, kit: Kit) -> None:
    """Domed hall: an arcaded body, a windowed drum carrying a ribbed dome with a lantern, and minarets."""
    width, height = canvas.width, canvas.height
    depth = randint(rng, width // 24, width // 10)
    minaret_width = round(width * uniform_between(rng, 0.05, 0.07)) if rng.random() < 0.7 else 0
    left, right = body_span(canvas, kit, depth, margin=4 + minaret_width)
    base_y = height - 2
    top = randint(rng, round(0.55 * height), round(0.64 * height))
    center_x = (left + right) / 2
    drum_width = (right - left) * uniform_between(rng, 0.36, 0.5)
    drum_height = height * uniform_between(rng, 0.06, 0.1)
    radius_x = drum_width / 2 * 1.04
    radius_y = min(radius_x * uniform_between(rng, 0.75, 1.25), top - drum_height - 0.12 * height)
    drum_top = top - drum_height
    draw_dome(canvas, rng, kit, center_x, drum_top, radius_x, radius_y)
    canvas.fill([rect(center_x - drum_width / 2, drum_top, center_x + drum_width / 2, top + 2)], kit.trim)
    draw_window_grid(
        canvas.rgb,
        rng,
        kit,
        (center_x - drum_width / 2 + 4, drum_top + 2, center_x + drum_width / 2 - 4, top),
        1,
        randint(rng, 4, 8),
        "round",
    )
    draw_side_wall(canvas, rng, kit, right if kit.side > 0 else left, top, base_y, depth, 2)
    canvas.fill([rect(left, top, right, base_y)], kit.wall)
    canvas.fill([rect(left - 3, top - 4, right + 3, top + 3)], kit.trim)
    rows = randint(rng, 1, 2)
    num_arches = randint(rng, 5, 9)
    arch_width = (right - left) / num_arches
    for row in range(rows):
        row_top = top + 6 + row * (base_y - top - 6) / rows
        row_height = (base_y - top - 6) / rows - 4
        for arch in range(num_arches):
            arch_left = left + arch * arch_width + arch_width * 0.15
            outline = window_outline(
                arch_left,
                row_top,
                arch_width * 0.7,
                row_height,
                "round" if row == rows - 1 else pick(rng, ("round", "pointed")),
            )
            cv2.fillPoly(canvas.rgb, [outline], scale_color(kit.trim_color, 0.3))
            cv2.polylines(canvas.rgb, [outline], True, kit.trim_color, 2, cv2.LINE_AA)
            if row < rows - 1 or rng.random() < 0.5:
                draw_window(
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
        minaret_top = randint(rng, round(0.06 * height), round(0.16 * height))
        for minaret_left in (left - minaret_width - 2, right + 2 + (depth if kit.side > 0 else 0)):
            canvas.fill_cylinder(
                (minaret_left, minaret_top, minaret_left + minaret_width, base_y), kit.trim, kit.light
            )
            for balcony_y in np.linspace(minaret_top + 20, top - 10, randint(rng, 1, 3)):
                canvas.fill(
                    [rect(minaret_left - 3, balcony_y, minaret_left + minaret_width + 3, balcony_y + 4)],
                    kit.trim_color,
                )
            draw_gable(
                canvas,
                kit.roof,
                minaret_left - 1,
                minaret_left + minaret_width + 1,
                minaret_top,
                minaret_top - minaret_width * 1.8,
            )
