"""The castle style: crenellated curtain wall, gate, keep, round corner towers and flags."""

from __future__ import annotations

import cv2
import numpy as np

from datamodules.demo.canvas import Canvas, Kit, rect
from datamodules.demo.ornaments import draw_flag, draw_glyph_sign
from datamodules.demo.parts import draw_crenellations, draw_gable, draw_window_grid, window_outline
from datamodules.demo.rng import pick, randint, scale_color, uniform_between


def build_castle(canvas: Canvas, rng: np.random.Generator, kit: Kit) -> None:
    """Castle: a crenellated curtain wall with a gate and portcullis, a taller keep and round corner towers with
    conical roofs or battlements, and flags."""
    width, height = canvas.width, canvas.height
    base_y = height - 2
    tower_width = round(width * uniform_between(rng, 0.14, 0.2))
    left, right = tower_width, width - tower_width
    wall_top = randint(rng, round(0.5 * height), round(0.6 * height))
    merlon = randint(rng, 6, 10)
    keep_width = (right - left) * uniform_between(rng, 0.3, 0.45)
    keep_left = uniform_between(rng, left + 10, right - keep_width - 10)
    keep_top = randint(rng, round(0.22 * height), round(0.32 * height))
    canvas.fill([rect(keep_left, keep_top, keep_left + keep_width, wall_top)], kit.side_wall)
    draw_crenellations(
        canvas, kit.side_wall, round(keep_left), round(keep_left + keep_width), keep_top, merlon
    )
    draw_window_grid(
        canvas.rgb,
        rng,
        kit,
        (keep_left + 6, keep_top + 6, keep_left + keep_width - 6, wall_top - 8),
        randint(rng, 1, 3),
        randint(rng, 2, 4),
        pick(rng, ("rect", "round")),
    )
    draw_flag(canvas.rgb, rng, round(keep_left + keep_width / 2), keep_top - merlon, randint(rng, 8, 14))
    canvas.fill([rect(left, wall_top, right, base_y)], kit.wall)
    draw_crenellations(canvas, kit.wall, left, right, wall_top, merlon)
    gate_width = (right - left) * uniform_between(rng, 0.15, 0.22)
    gate_left = (left + right - gate_width) / 2
    gate_top = base_y - (base_y - wall_top) * uniform_between(rng, 0.5, 0.7)
    gate = window_outline(gate_left, gate_top, gate_width, base_y - gate_top, "round")
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
    for slit in range(randint(rng, 2, 5)):
        slit_x = uniform_between(rng, left + 8, right - 8)
        if abs(slit_x - (gate_left + gate_width / 2)) > gate_width:
            cv2.rectangle(
                canvas.rgb,
                (round(slit_x), wall_top + 10 + 6 * slit),
                (round(slit_x) + 2, wall_top + 24 + 6 * slit),
                (30, 28, 26),
                -1,
            )
    for tower_left in (0, width - tower_width):
        tower_top = randint(rng, round(0.3 * height), round(0.45 * height))
        canvas.fill_cylinder((tower_left, tower_top, tower_left + tower_width, base_y), kit.wall, kit.light)
        draw_window_grid(
            canvas.rgb,
            rng,
            kit,
            (tower_left + 4, tower_top + 8, tower_left + tower_width - 4, wall_top),
            randint(rng, 1, 2),
            1,
            "round",
        )
        if rng.random() < 0.6:
            apex = max(12.0, tower_top - tower_width * uniform_between(rng, 0.9, 1.5))
            draw_gable(canvas, kit.roof, tower_left - 4, tower_left + tower_width + 4, tower_top + 2, apex)
            draw_flag(canvas.rgb, rng, tower_left + tower_width // 2, round(apex), randint(rng, 6, 10))
        else:
            draw_crenellations(canvas, kit.wall, tower_left, tower_left + tower_width, tower_top, merlon)
    draw_glyph_sign(
        canvas.rgb,
        rng,
        (round(gate_left - 6), round(gate_top - 18), round(gate_left + gate_width + 6), round(gate_top - 4)),
        scale_color(kit.trim_color, 0.9),
        (40, 30, 20),
    )
