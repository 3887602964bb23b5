"""The pagoda style: receding wooden tiers with upturned tiled roofs on a stone platform."""

from __future__ import annotations

import cv2
import numpy as np

from datamodules.demo.canvas import Canvas, Kit, as_polygon, rect
from datamodules.demo.parts import draw_steps
from datamodules.demo.rng import randint, scale_color, uniform_between


def build_pagoda(canvas: Canvas, rng: np.random.Generator, kit: Kit) -> None:
    """Pagoda: a stone platform and three to five receding wooden tiers, each with lattice windows, columns and
    an upturned tiled roof, topped by a ringed finial."""
    width, height = canvas.width, canvas.height
    base_y = height - 2
    num_tiers = randint(rng, 3, 5)
    platform_top = base_y - randint(rng, 10, 18)
    bottom_width, top_width = (
        width * uniform_between(rng, 0.62, 0.78),
        width * uniform_between(rng, 0.28, 0.4),
    )
    finial_height = round(height * uniform_between(rng, 0.1, 0.16))
    tier_height = (platform_top - finial_height - 8) / num_tiers
    center_x = width / 2
    draw_steps(
        canvas,
        kit,
        round(center_x - bottom_width / 2 - 14),
        round(center_x + bottom_width / 2 + 14),
        platform_top,
        base_y,
        3,
    )
    for tier in range(num_tiers):
        fraction = tier / max(1, num_tiers - 1)
        tier_width = bottom_width + (top_width - bottom_width) * fraction
        tier_bottom = platform_top - tier * tier_height
        roof_height = tier_height * uniform_between(rng, 0.35, 0.45)
        wall_top = tier_bottom - tier_height + roof_height
        tier_left, tier_right = center_x - tier_width / 2, center_x + tier_width / 2
        canvas.fill([rect(tier_left, wall_top, tier_right, tier_bottom)], kit.wall)
        num_bays = randint(rng, 3, 5)
        for bay in range(num_bays + 1):
            column_x = tier_left + tier_width * bay / num_bays
            column = (round(column_x) - 2, round(wall_top), round(column_x) + 3, round(tier_bottom))
            canvas.fill_cylinder(column, kit.trim, kit.light)
        for bay in range(num_bays):
            bay_left = tier_left + tier_width * (bay + 0.2) / num_bays
            bay_width = tier_width * 0.6 / num_bays
            bay_top, bay_bottom = (
                wall_top + (tier_bottom - wall_top) * 0.2,
                tier_bottom - (tier_bottom - wall_top) * 0.15,
            )
            cv2.rectangle(
                canvas.rgb,
                (round(bay_left), round(bay_top)),
                (round(bay_left + bay_width), round(bay_bottom)),
                scale_color(kit.accent, 0.6),
                -1,
            )
            lattice = randint(rng, 3, 6)
            for line in range(1, lattice):
                x = round(bay_left + bay_width * line / lattice)
                y = round(bay_top + (bay_bottom - bay_top) * line / lattice)
                cv2.line(canvas.rgb, (x, round(bay_top)), (x, round(bay_bottom)), kit.trim_color, 1)
                cv2.line(
                    canvas.rgb, (round(bay_left), y), (round(bay_left + bay_width), y), kit.trim_color, 1
                )
        overhang = tier_height * uniform_between(rng, 0.5, 0.8)
        lift = roof_height * uniform_between(rng, 0.3, 0.6)
        roof_bottom, roof_top = wall_top + 2, wall_top - roof_height
        eave_left, eave_right = tier_left - overhang, tier_right + overhang
        roof = [
            (eave_left, roof_bottom - lift),
            (eave_left + overhang * 0.5, roof_bottom),
            (eave_right - overhang * 0.5, roof_bottom),
            (eave_right, roof_bottom - lift),
            (tier_right - tier_width * 0.1, roof_top),
            (tier_left + tier_width * 0.1, roof_top),
        ]
        canvas.fill([as_polygon(roof)], kit.roof)
        cv2.polylines(
            canvas.rgb, [as_polygon(roof[:4])], False, scale_color(kit.trim_color, 0.5), 2, cv2.LINE_AA
        )
        for bell_x in (eave_left + 2, eave_right - 2):
            cv2.circle(canvas.rgb, (round(bell_x), round(roof_bottom - lift + 4)), 2, (212, 170, 70), -1)
    top_roof = platform_top - num_tiers * tier_height
    finial_top = max(2, round(top_roof - finial_height))
    cv2.line(canvas.rgb, (round(center_x), round(top_roof)), (round(center_x), finial_top), (150, 120, 50), 3)
    cv2.line(canvas.alpha, (round(center_x), round(top_roof)), (round(center_x), finial_top), 255, 3)
    for ring in range(randint(rng, 3, 7)):
        ring_y = round(top_roof - (ring + 1) * finial_height / 9)
        cv2.ellipse(canvas.rgb, (round(center_x), ring_y), (6 - ring // 2, 2), 0, 0, 360, (200, 160, 60), -1)
        cv2.ellipse(canvas.alpha, (round(center_x), ring_y), (6 - ring // 2, 2), 0, 0, 360, 255, -1)
