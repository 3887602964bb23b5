"""The modern style: an office tower of curtain-wall glass, slab bands and a big sign."""

from __future__ import annotations

import cv2
import numpy as np

from datamodules.demo.canvas import Canvas, Kit, rect
from datamodules.demo.ornaments import draw_glyph_sign
from datamodules.demo.parts import body_span, draw_side_wall
from datamodules.demo.rng import randint, scale_color, uniform_between


def build_modern(canvas: Canvas, rng: np.random.Generator, kit: Kit) -> None:
    """Office tower: stacked blocks of curtain-wall glass panels, concrete slab bands, a big sign and rooftop
    equipment."""
    width, height = canvas.width, canvas.height
    depth = randint(rng, width // 14, width // 7)
    left, right = body_span(canvas, kit, depth, margin=4)
    base_y = height - 2
    num_blocks = randint(rng, 1, 3)
    block_top = base_y
    block_left, block_right = left, right
    for block in range(num_blocks):
        block_bottom = block_top
        block_top = (
            round(block_bottom - (base_y - 0.1 * height) / num_blocks * uniform_between(rng, 0.8, 1.0))
            if block < num_blocks - 1
            else randint(rng, round(0.08 * height), round(0.2 * height))
        )
        draw_side_wall(
            canvas,
            rng,
            kit,
            block_right if kit.side > 0 else block_left,
            block_top,
            block_bottom,
            depth,
            max(1, (block_bottom - block_top) // 30),
        )
        canvas.fill([rect(block_left, block_top, block_right, block_bottom)], kit.trim)
        panel_width, panel_height = randint(rng, 12, 22), randint(rng, 12, 20)
        for panel_top in range(block_top + 4, block_bottom - panel_height, panel_height):
            for panel_left in range(block_left + 3, block_right - panel_width, panel_width):
                tint = scale_color(kit.glass, uniform_between(rng, 0.7, 1.35))
                corner = (panel_left + panel_width - 3, panel_top + panel_height - 3)
                cv2.rectangle(canvas.rgb, (panel_left, panel_top), corner, tint, -1)
                if rng.random() < 0.35:
                    cv2.line(
                        canvas.rgb,
                        (panel_left, corner[1]),
                        (corner[0], panel_top + randint(rng, 0, panel_height // 2)),
                        scale_color(tint, 1.5),
                        1,
                        cv2.LINE_AA,
                    )
                if rng.random() < 0.15:
                    cv2.rectangle(
                        canvas.rgb,
                        (panel_left + 2, panel_top + 2),
                        (corner[0] - 2, corner[1] - 2),
                        (240, 220, 160),
                        -1,
                    )
            if rng.random() < 0.3:
                cv2.rectangle(
                    canvas.rgb, (block_left, panel_top - 2), (block_right, panel_top + 1), kit.trim_color, -1
                )
        inset = round((block_right - block_left) * uniform_between(rng, 0.05, 0.2))
        block_left, block_right = (
            (block_left + inset, block_right) if rng.random() < 0.5 else (block_left, block_right - inset)
        )
        block_right = max(block_right, block_left + 30)
    sign_height = randint(rng, 18, 30)
    sign_top = max(2, block_top - sign_height - 4)
    draw_glyph_sign(
        canvas.rgb,
        rng,
        (block_left + 4, sign_top, block_right - 4, sign_top + sign_height),
        kit.accent,
        (245, 245, 240),
    )
    cv2.rectangle(canvas.alpha, (block_left + 4, sign_top), (block_right - 4, block_top), 255, -1)
    for _ in range(randint(rng, 1, 3)):
        antenna_x = randint(rng, block_left + 8, block_right - 8)
        antenna_top = max(1, sign_top - randint(rng, 10, 40))
        cv2.line(canvas.rgb, (antenna_x, sign_top), (antenna_x, antenna_top), (60, 60, 66), 2)
        cv2.line(canvas.alpha, (antenna_x, sign_top), (antenna_x, antenna_top), 255, 2)
    lobby_top = base_y - randint(rng, 18, 30)
    canvas.fill([rect(left, lobby_top, right, base_y)], scale_color(kit.glass, 0.5))
    draw_glyph_sign(
        canvas.rgb,
        rng,
        (left + 10, lobby_top + 3, left + (right - left) // 3, lobby_top + 14),
        None,
        (230, 230, 230),
    )
