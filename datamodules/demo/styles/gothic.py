"""The gothic style: a cathedral front with pointed windows, a rose window and spires."""

from __future__ import annotations

import cv2
import numpy as np

from datamodules.demo.canvas import Canvas, Kit, rect
from datamodules.demo.ornaments import draw_rosette
from datamodules.demo.parts import (
    body_span,
    draw_gable,
    draw_side_wall,
    draw_spire,
    draw_window_grid,
    window_outline,
)
from datamodules.demo.rng import randint, scale_color, uniform_between


def build_gothic(canvas: Canvas, rng: np.random.Generator, kit: Kit) -> None:
    """Cathedral front: buttressed nave with pointed windows, a rose window, a layered portal and one or two
    towers with crocketed spires."""
    width, height = canvas.width, canvas.height
    depth = randint(rng, width // 24, width // 10)
    left, right = body_span(canvas, kit, depth, margin=4)
    base_y = height - 2
    nave_top = randint(rng, round(0.4 * height), round(0.5 * height))
    tower_width = round((right - left) * uniform_between(rng, 0.2, 0.27))
    two_towers = rng.random() < 0.7
    tower_top = randint(rng, round(0.2 * height), round(0.3 * height))
    spire_apex = randint(rng, 12, max(13, tower_top - 40))
    towers = (
        [(left, left + tower_width), (right - tower_width, right)]
        if two_towers
        else [(round((left + right - tower_width) / 2), round((left + right + tower_width) / 2))]
    )
    draw_side_wall(canvas, rng, kit, right if kit.side > 0 else left, nave_top, base_y, depth, 3)
    draw_gable(
        canvas,
        kit.roof,
        left + (tower_width if two_towers else 0),
        right - (tower_width if two_towers else 0),
        nave_top + 2,
        nave_top - (right - left) * uniform_between(rng, 0.15, 0.25),
    )
    canvas.fill([rect(left, nave_top, right, base_y)], kit.wall)
    for tower_left, tower_right in towers:
        canvas.fill([rect(tower_left, tower_top, tower_right, base_y)], kit.wall)
        draw_spire(canvas, rng, kit, tower_left - 2, tower_right + 2, tower_top, spire_apex)
        draw_window_grid(
            canvas.rgb,
            rng,
            kit,
            (tower_left + 4, tower_top + 6, tower_right - 4, nave_top + 10),
            randint(rng, 2, 3),
            randint(rng, 1, 2),
            "pointed",
        )
        for buttress_x in (tower_left, tower_right - 6):
            canvas.fill(
                [rect(buttress_x, tower_top + 10, buttress_x + 6, base_y)],
                scale_color(kit.trim_color, 0.85),
            )
    nave_left = left + (tower_width if two_towers else 0)
    nave_right = right - (tower_width if two_towers else 0)
    if not two_towers:
        nave_left, nave_right = left, right
    center_x = (nave_left + nave_right) // 2
    rose_radius = round(min(nave_right - nave_left, height) * uniform_between(rng, 0.12, 0.2))
    rose_y = nave_top + rose_radius + 8
    if two_towers:
        draw_rosette(
            canvas.rgb,
            rng,
            (center_x, rose_y),
            rose_radius,
            [
                kit.trim_color,
                scale_color(kit.glass, 1.4),
                (170, 40, 50),
                (40, 60, 150),
                scale_color(kit.trim_color, 0.5),
            ],
        )
    portal_width = (nave_right - nave_left) * uniform_between(rng, 0.3, 0.45)
    portal_top = max(rose_y + rose_radius + 10, round(base_y - height * uniform_between(rng, 0.22, 0.3)))
    for layer in range(4):
        inset = layer * portal_width * 0.1
        outline = window_outline(
            center_x - portal_width / 2 + inset,
            portal_top + inset,
            portal_width - 2 * inset,
            base_y - portal_top - inset,
            "pointed",
        )
        shade = 0.9 - 0.12 * layer if layer < 3 else 0.25
        cv2.fillPoly(canvas.rgb, [outline], scale_color(kit.trim_color if layer < 3 else kit.accent, shade))
    for side_left, side_right in (
        (nave_left + 6, center_x - portal_width / 2 - 4),
        (center_x + portal_width / 2 + 4, nave_right - 6),
    ):
        draw_window_grid(
            canvas.rgb, rng, kit, (side_left, nave_top + 8, side_right, base_y - 8), 2, 1, "pointed"
        )
    if not two_towers:
        draw_window_grid(
            canvas.rgb,
            rng,
            kit,
            (nave_left + 8, nave_top + 6, nave_right - 8, portal_top - 6),
            1,
            randint(rng, 3, 5),
            "pointed",
        )
