"""The town-hall style: brick body, window grid, stepped or plain gable, clock tower and signboard."""

from __future__ import annotations

import cv2
import numpy as np

from datamodules.demo.canvas import Canvas, Kit, rect
from datamodules.demo.ornaments import draw_clock, draw_glyph_sign, draw_rosette
from datamodules.demo.parts import (
    body_span,
    draw_gable,
    draw_side_wall,
    draw_spire,
    draw_window_grid,
    onion_outline,
    window_outline,
)
from datamodules.demo.rng import pick, randint, uniform_between


def build_brick_hall(canvas: Canvas, rng: np.random.Generator, kit: Kit) -> None:
    """Town hall: brick body with a window grid, a stepped or plain gable, a clock tower and a signboard."""
    width, height = canvas.width, canvas.height
    depth = randint(rng, width // 18, width // 8)
    left, right = body_span(canvas, kit, depth, margin=4)
    base_y = height - 2
    top = randint(rng, round(0.38 * height), round(0.5 * height))
    floors = randint(rng, 2, 4)
    draw_side_wall(canvas, rng, kit, right if kit.side > 0 else left, top, base_y, depth, floors)
    tower_width = round((right - left) * uniform_between(rng, 0.16, 0.22))
    tower_x = (
        round(uniform_between(rng, left + tower_width, right - 2 * tower_width))
        if rng.random() < 0.4
        else (left + right - tower_width) // 2
    )
    tower_top = randint(rng, round(0.12 * height), round(0.2 * height))
    canvas.fill([rect(tower_x, tower_top, tower_x + tower_width, top)], kit.wall)
    cap = pick(rng, ("pyramid", "onion", "spire"))
    if cap == "onion":
        canvas.fill(
            [onion_outline(tower_x + tower_width / 2, tower_top + 2, tower_width / 2 + 4, tower_width * 1.3)],
            kit.roof,
        )
    elif cap == "spire":
        draw_spire(
            canvas,
            rng,
            kit,
            tower_x - 2,
            tower_x + tower_width + 2,
            tower_top,
            max(10, tower_top - tower_width * 2),
        )
    else:
        draw_gable(
            canvas, kit.roof, tower_x - 4, tower_x + tower_width + 4, tower_top, tower_top - tower_width * 0.8
        )
    clock_radius = max(5, round(tower_width * 0.32))
    draw_clock(
        canvas.rgb,
        rng,
        (tower_x + tower_width // 2, tower_top + clock_radius + 6),
        clock_radius,
        (30, 30, 34),
    )
    for opening in range(2):
        opening_width = tower_width * 0.3
        opening_left = tower_x + tower_width * (0.12 + 0.46 * opening)
        outline = window_outline(
            opening_left,
            tower_top + 2 * clock_radius + 12,
            opening_width,
            max(8, (top - tower_top) * 0.3),
            "round",
        )
        cv2.fillPoly(canvas.rgb, [outline], (24, 22, 20))
    if rng.random() < 0.5:
        steps = randint(rng, 3, 5)
        gable_height = (right - left) * uniform_between(rng, 0.2, 0.3)
        step_width, step_height = (right - left) / (2 * steps + 1), gable_height / steps
        for step in range(steps):
            polygon = rect(
                left + step * step_width,
                top - (step + 1) * step_height,
                right - step * step_width,
                top - step * step_height + 1,
            )
            canvas.fill([polygon], kit.wall)
            cv2.line(canvas.rgb, tuple(polygon[0]), tuple(polygon[1]), kit.trim_color, 2)
        draw_rosette(
            canvas.rgb,
            rng,
            ((left + right) // 2, round(top - gable_height * 0.45)),
            max(4, round(step_height * 0.7)),
            [kit.trim_color, kit.glass, kit.accent],
        )
    else:
        draw_gable(
            canvas,
            kit.roof,
            left - 6,
            right + 6,
            top,
            top - (right - left) * uniform_between(rng, 0.15, 0.25),
        )
    canvas.fill([rect(left, top, right, base_y)], kit.wall)
    canvas.fill([rect(left - 3, top, right + 3, top + 5)], kit.trim)
    door_width = (right - left) * 0.14
    door_left = (left + right - door_width) / 2
    door_top = base_y - (base_y - top) / floors * 0.85
    draw_window_grid(
        canvas.rgb,
        rng,
        kit,
        (left + 4, top + 8, right - 4, door_top - 6),
        floors - 1,
        randint(rng, 5, 9),
        pick(rng, ("rect", "round")),
    )
    draw_window_grid(canvas.rgb, rng, kit, (left + 4, door_top, door_left - 6, base_y), 1, 2, "rect")
    draw_window_grid(
        canvas.rgb, rng, kit, (door_left + door_width + 6, door_top, right - 4, base_y), 1, 2, "rect"
    )
    cv2.fillPoly(
        canvas.rgb,
        [window_outline(door_left, door_top + 14, door_width, base_y - door_top - 14, "round")],
        kit.accent,
    )
    draw_glyph_sign(
        canvas.rgb,
        rng,
        (round(door_left - 10), round(door_top), round(door_left + door_width + 10), round(door_top + 12)),
        kit.accent,
        (240, 236, 220),
    )
