"""The classical style: a temple front of fluted columns, entablature and pediment."""

from __future__ import annotations

import numpy as np

from datamodules.demo.canvas import Canvas, Kit, rect
from datamodules.demo.ornaments import draw_glyph_sign, draw_relief
from datamodules.demo.parts import (
    body_span,
    draw_column,
    draw_dome,
    draw_gable,
    draw_side_wall,
    draw_steps,
    draw_window_grid,
)
from datamodules.demo.rng import pick, randint, scale_color, uniform_between


def build_classical(canvas: Canvas, rng: np.random.Generator, kit: Kit) -> None:
    """Temple front: steps, a portico of fluted columns, an inscribed entablature and a pediment with a relief,
    sometimes a dome behind."""
    height = canvas.height
    depth = randint(rng, canvas.width // 20, canvas.width // 9)
    left, right = body_span(canvas, kit, depth, margin=6)
    steps_top = height - randint(rng, 14, 26)
    top = randint(rng, round(0.42 * height), round(0.52 * height))
    portico_width = (right - left) * uniform_between(rng, 0.55, 0.95)
    portico_left, portico_right = (left + right - portico_width) / 2, (left + right + portico_width) / 2
    if rng.random() < 0.4:
        radius = portico_width * uniform_between(rng, 0.25, 0.35)
        draw_dome(
            canvas,
            rng,
            kit,
            (left + right) / 2,
            top - radius * 0.5,
            radius,
            radius * uniform_between(rng, 0.7, 1.1),
        )
    draw_side_wall(
        canvas, rng, kit, right if kit.side > 0 else left, top, steps_top, depth, randint(rng, 1, 2)
    )
    canvas.fill([rect(left, top, right, steps_top)], kit.wall)
    entablature = randint(rng, 14, 22)
    draw_window_grid(
        canvas.rgb,
        rng,
        kit,
        (left + 6, top + entablature + 8, right - 6, steps_top - 4),
        randint(rng, 1, 2),
        randint(rng, 4, 9),
        pick(rng, ("rect", "round")),
    )
    num_columns = pick(rng, (4, 6, 8))
    spacing = portico_width / num_columns
    column_width = spacing * uniform_between(rng, 0.38, 0.5)
    for column in range(num_columns):
        draw_column(
            canvas,
            kit,
            portico_left + (column + 0.5) * spacing,
            top + entablature + 4,
            steps_top,
            column_width,
        )
    canvas.fill([rect(portico_left - 6, top, portico_right + 6, top + entablature)], kit.trim)
    draw_glyph_sign(
        canvas.rgb,
        rng,
        (round(portico_left + 8), top + 3, round(portico_right - 8), top + entablature - 3),
        None,
        scale_color(kit.trim_color, 0.45),
    )
    apex_y = max(8.0, top - portico_width * uniform_between(rng, 0.16, 0.28))
    draw_gable(canvas, kit.trim, portico_left - 10, portico_right + 10, top, apex_y)
    inner = 0.78
    center_x = (portico_left + portico_right) / 2
    tympanum_left = center_x - (center_x - portico_left + 10) * inner
    tympanum_right = center_x + (portico_right + 10 - center_x) * inner
    draw_gable(
        canvas,
        scale_color(kit.trim_color, 0.8),
        tympanum_left,
        tympanum_right,
        top - 3,
        top - (top - apex_y) * inner,
    )
    relief_top = round(top - (top - apex_y) * inner * 0.6)
    draw_relief(
        canvas.rgb,
        rng,
        (round(center_x - portico_width * 0.22), relief_top, round(center_x + portico_width * 0.22), top - 5),
        kit.trim_color,
    )
    draw_steps(canvas, kit, left - 4, right + 4, steps_top, height - 1, randint(rng, 3, 5))
