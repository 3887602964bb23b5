"""The colonial style: a pastel mansion with an arcade, shuttered windows and a bell gable."""

from __future__ import annotations

import cv2
import numpy as np

from datamodules.demo.canvas import Canvas, Kit, as_polygon, rect
from datamodules.demo.ornaments import draw_glyph_sign, draw_rosette
from datamodules.demo.parts import body_span, draw_side_wall, draw_window_grid, window_outline
from datamodules.demo.rng import randint, scale_color, uniform_between


def build_colonial(canvas: Canvas, rng: np.random.Generator, kit: Kit) -> None:
    """Colonial mansion: a pastel body with an arcade, shuttered windows with balconies, a cornice, a hipped tiled
    roof and a bell gable with bells or a coat of arms."""
    width, height = canvas.width, canvas.height
    depth = randint(rng, width // 18, width // 8)
    left, right = body_span(canvas, kit, depth, margin=4)
    base_y = height - 2
    top = randint(rng, round(0.4 * height), round(0.5 * height))
    floors = randint(rng, 2, 3)
    floor_height = (base_y - top) / floors
    center_x = (left + right) / 2
    gable_width = (right - left) * uniform_between(rng, 0.2, 0.3)
    gable_top = randint(rng, round(0.12 * height), round(0.2 * height))
    gable = window_outline(center_x - gable_width / 2, gable_top, gable_width, top - gable_top + 2, "round")
    roof_top = top - (top - gable_top) * uniform_between(rng, 0.4, 0.6)
    canvas.fill(
        [
            as_polygon(
                [(left - 8, top + 2), (left + 30, roof_top), (right - 30, roof_top), (right + 8, top + 2)]
            )
        ],
        kit.roof,
    )
    canvas.fill([gable], kit.wall)
    if rng.random() < 0.6:
        for bell in range(randint(rng, 1, 3)):
            bell_width = gable_width * 0.22
            bell_left = center_x - gable_width * 0.38 + bell * gable_width * 0.27
            opening = window_outline(
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
        draw_rosette(
            canvas.rgb,
            rng,
            (round(center_x), round(gable_top + (top - gable_top) * 0.6)),
            max(4, round(gable_width * 0.25)),
            [kit.accent, kit.trim_color, (200, 40, 40), (212, 170, 70)],
        )
    draw_side_wall(canvas, rng, kit, right if kit.side > 0 else left, top, base_y, depth, floors)
    canvas.fill([rect(left, top, right, base_y)], kit.wall)
    canvas.fill([rect(left - 4, top - 3, right + 4, top + 6)], kit.trim)
    num_bays = randint(rng, 4, 8)
    bay_width = (right - left) / num_bays
    arcade_top = base_y - floor_height
    for bay in range(num_bays):
        arch = window_outline(
            left + bay * bay_width + bay_width * 0.12,
            arcade_top + 6,
            bay_width * 0.76,
            floor_height - 6,
            "round",
        )
        cv2.fillPoly(canvas.rgb, [arch], scale_color(kit.trim_color, 0.35))
        cv2.polylines(canvas.rgb, [arch], True, kit.trim_color, 2, cv2.LINE_AA)
        door_left = left + bay * bay_width + bay_width * 0.35
        cv2.rectangle(
            canvas.rgb,
            (round(door_left), round(arcade_top + floor_height * 0.45)),
            (round(door_left + bay_width * 0.3), base_y),
            kit.accent,
            -1,
        )
    draw_window_grid(
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
    draw_glyph_sign(
        canvas.rgb,
        rng,
        (round(center_x - bay_width), top + 8, round(center_x + bay_width), top + 20),
        None,
        kit.accent,
    )
