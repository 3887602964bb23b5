"""Photos: a landmark scene seen through a random camera (perspective warp, crop, scale), over a random
background, with occluders, lighting, blur, noise and JPEG development; and photos of no landmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from datamodules.demo.canvas import (
    ACCENT_COLORS,
    CLOTHING_COLORS,
    MATERIAL_COLORS,
    as_polygon,
    material_texture,
    rect,
)
from datamodules.demo.config import DemoConfig
from datamodules.demo.ornaments import draw_glyph_sign
from datamodules.demo.rng import (
    Color,
    as_color,
    fractal_noise,
    jittered,
    pick,
    randint,
    scale_color,
    uniform_between,
)


@dataclass(frozen=True)
class _ViewStyle:
    """How a photo is taken: the ranges its random camera, clutter and processing are drawn from."""

    scale: tuple[float, float]  # landmark size relative to the frame (1: its bounding box just fits)
    shift: float  # largest offset of the landmark centre, as a fraction of the frame
    roll_degrees: float
    tilt_radians: float  # largest yaw and pitch of the façade plane
    visible: tuple[float, float]  # accepted fraction of the landmark's outline inside the frame
    occluders: tuple[int, int]
    occluder_size: float  # largest occluder, as a fraction of the frame height
    blur_sigma: float
    noise_sigma: float
    gamma: tuple[float, float]


_VIEW_STYLES: dict[str, tuple[_ViewStyle, ...]] = {
    # rdemo queries: the whole landmark in view, so that its bounding box is exact.
    "query": (_ViewStyle((0.6, 0.85), 0.05, 3, 0.15, (1.0, 1.0), (0, 1), 0.15, 0.6, 2, (0.85, 1.2)),),
    "easy": (_ViewStyle((0.55, 0.9), 0.08, 5, 0.25, (0.9, 1.0), (0, 2), 0.2, 0.8, 3, (0.8, 1.25)),),
    "medium": (_ViewStyle((0.45, 1.05), 0.15, 8, 0.4, (0.7, 1.0), (0, 4), 0.3, 1.2, 5, (0.7, 1.4)),),
    # strongly zoomed in, or far away, and heavily occluded
    "hard": (
        _ViewStyle((1.3, 1.9), 0.25, 12, 0.55, (0.3, 0.8), (2, 5), 0.4, 1.4, 6, (0.55, 1.8)),
        _ViewStyle((0.35, 0.5), 0.2, 12, 0.55, (0.9, 1.0), (2, 5), 0.3, 1.4, 6, (0.55, 1.8)),
    ),
    # barely visible: tiny, or mostly outside the frame
    "junk": (
        _ViewStyle((0.1, 0.16), 0.35, 10, 0.4, (0.9, 1.0), (0, 3), 0.3, 1.2, 5, (0.7, 1.4)),
        _ViewStyle((0.6, 1.0), 0.7, 10, 0.4, (0.05, 0.2), (0, 3), 0.3, 1.2, 5, (0.7, 1.4)),
    ),
}


_ASPECT_RATIOS = (4 / 3, 3 / 2, 16 / 9, 1.0, 5 / 4)
_SKIES: tuple[tuple[Color, Color], ...] = (
    ((90, 140, 210), (190, 215, 240)),
    ((150, 160, 170), (212, 214, 216)),
    ((70, 90, 160), (250, 180, 120)),
    ((46, 56, 96), (200, 150, 130)),
    ((120, 170, 230), (232, 240, 250)),
)


_GROUNDS: tuple[Color, ...] = (
    (96, 140, 70),
    (140, 138, 130),
    (180, 168, 140),
    (110, 110, 112),
    (150, 120, 90),
)


_MAX_CAMERA_TRIES = 200


def _frame_size(rng: np.random.Generator, config: DemoConfig) -> tuple[int, int]:
    """(width, height) of a photo: long side in the configured range, a common aspect ratio, mostly landscape."""
    long_side = randint(rng, config.min_long_side, config.max_long_side)
    short_side = round(long_side / pick(rng, _ASPECT_RATIOS))
    return (long_side, short_side) if rng.random() < 0.7 else (short_side, long_side)


def _sample_camera(
    rng: np.random.Generator, scene_size: tuple[int, int], frame_size: tuple[int, int], style: _ViewStyle
) -> np.ndarray:
    """The homography (3, 3) from scene to photo pixels: the façade plane turned by a random yaw and pitch,
    seen by a pinhole camera, then rolled, scaled and shifted in the frame, redrawn until the fraction of the
    landmark's outline inside the frame is in ``style.visible``."""
    scene_width, scene_height = scene_size
    frame_width, frame_height = frame_size
    corners = np.array([[0, 0], [scene_width, 0], [scene_width, scene_height], [0, scene_height]], np.float64)
    centred = corners - (scene_width / 2, scene_height / 2)
    focal = 1.4 * max(scene_size)
    frame = np.array([[0, 0], [frame_width, 0], [frame_width, frame_height], [0, frame_height]], np.float32)
    for _ in range(_MAX_CAMERA_TRIES):
        yaw = uniform_between(rng, -1, 1) * style.tilt_radians
        pitch = uniform_between(rng, -0.3, 1) * style.tilt_radians * 0.6
        rotation_yaw = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
        rotation_pitch = np.array(
            [[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]]
        )
        turned = (rotation_pitch @ rotation_yaw @ np.column_stack([centred, np.zeros(4)]).T).T
        points = turned + np.array([0.0, 0.0, focal])
        projected = focal * points[:, :2] / points[:, 2:]
        roll = np.deg2rad(uniform_between(rng, -1, 1) * style.roll_degrees)
        projected = projected @ np.array([[np.cos(roll), np.sin(roll)], [-np.sin(roll), np.cos(roll)]])
        extent = projected.max(axis=0) - projected.min(axis=0)
        scale = uniform_between(rng, *style.scale) * min(frame_width / extent[0], frame_height / extent[1])
        center = (
            frame_width * (0.5 + uniform_between(rng, -1, 1) * style.shift),
            frame_height * (0.5 + uniform_between(rng, -1, 1) * style.shift),
        )
        destination = (projected - (projected.max(axis=0) + projected.min(axis=0)) / 2) * scale + center
        outline = destination.astype(np.float32)
        inside_area, _ = cv2.intersectConvexConvex(outline, frame)
        visible = inside_area / max(cv2.contourArea(outline), 1e-6)
        if style.visible[0] <= visible <= style.visible[1] + 1e-6:
            return cv2.getPerspectiveTransform(corners.astype(np.float32), outline)
    raise RuntimeError(
        f"no camera within {_MAX_CAMERA_TRIES} tries gives a visible fraction in {style.visible}"
    )


def _draw_tree(image: np.ndarray, rng: np.random.Generator, x: float, foot_y: float, size: float) -> None:
    """A tree whose trunk stands at (x, foot_y), ``size`` pixels tall: a trunk and a crown of green blobs."""
    trunk_width = max(2, round(size * 0.08))
    crown_y = foot_y - size * 0.65
    cv2.rectangle(
        image,
        (round(x - trunk_width / 2), round(crown_y)),
        (round(x + trunk_width / 2), round(foot_y)),
        jittered(rng, (84, 60, 40), 15),
        -1,
    )
    green = jittered(rng, (60, 110, 50), 25)
    for _ in range(randint(rng, 4, 9)):
        center = (
            round(x + uniform_between(rng, -0.3, 0.3) * size),
            round(crown_y + uniform_between(rng, -0.3, 0.15) * size),
        )
        cv2.circle(
            image,
            center,
            max(2, round(size * uniform_between(rng, 0.12, 0.25))),
            jittered(rng, green, 25),
            -1,
            cv2.LINE_AA,
        )


def _render_background(rng: np.random.Generator, width: int, height: int, horizon: int) -> np.ndarray:
    """Sky with clouds above ``horizon``, textured ground below, far hills or skyline and trees: (H, W, 3) uint8."""
    top_color, horizon_color = (
        np.asarray(jittered(rng, color, 15), np.float32) for color in pick(rng, _SKIES)
    )
    blend = np.linspace(0, 1, horizon, dtype=np.float32)[:, None, None]
    sky = np.broadcast_to(top_color * (1 - blend) + horizon_color * blend, (horizon, width, 3))
    cloud_cover = np.clip(
        (fractal_noise(rng, horizon, width, cells=4, octaves=4) - uniform_between(rng, 0.2, 1.4)) * 0.8,
        0,
        0.9,
    )[..., None]
    sky = sky * (1 - cloud_cover) + np.float32(uniform_between(rng, 200, 250)) * cloud_cover
    ground_height = height - horizon
    ground_color = np.asarray(jittered(rng, pick(rng, _GROUNDS), 15), np.float32)
    ground_texture = fractal_noise(rng, ground_height, width, cells=24, octaves=4)
    ground = ground_color * (1 + 0.1 * ground_texture[..., None])
    image = np.clip(np.concatenate([sky, ground]), 0, 255).astype(np.uint8)
    haze = scale_color(as_color(horizon_color), uniform_between(rng, 0.55, 0.8))
    for _ in range(randint(rng, 0, 3)):
        if rng.random() < 0.5:
            xs = np.linspace(0, width, 9)
            ridge = horizon - rng.uniform(0.02, 0.15, 9) * height
            outline = np.concatenate([np.stack([xs, ridge], 1), [[width, horizon], [0, horizon]]])
        else:
            left = uniform_between(rng, -0.1, 0.9) * width
            outline = np.array(
                rect(
                    left,
                    horizon - uniform_between(rng, 0.05, 0.25) * height,
                    left + uniform_between(rng, 0.05, 0.2) * width,
                    horizon,
                ),
                np.float64,
            )
        cv2.fillPoly(image, [as_polygon(outline)], jittered(rng, haze, 12))
    for _ in range(randint(rng, 0, 4)):
        _draw_tree(
            image,
            rng,
            uniform_between(rng, 0, width),
            horizon + uniform_between(rng, 0, 0.05) * height,
            uniform_between(rng, 0.1, 0.3) * height,
        )
    return image


def _draw_occluders(
    image: np.ndarray, rng: np.random.Generator, count: int, max_size: float, horizon: int
) -> None:
    """``count`` random occluders in front of everything: people, poles with signs, cars, bushes and blobs."""
    height, width = image.shape[:2]
    for _ in range(count):
        kind = pick(rng, ("person", "person", "pole", "car", "tree", "blob"))
        size = max_size * height * uniform_between(rng, 0.4, 1.0)
        x = uniform_between(rng, 0, width)
        foot_y = uniform_between(rng, max(horizon, 0.55 * height), height + 0.2 * size)
        if kind == "person":
            body_width = size * 0.28
            shirt, trousers = pick(rng, CLOTHING_COLORS), pick(rng, CLOTHING_COLORS)
            for leg in (-1, 1):
                cv2.line(
                    image,
                    (round(x + leg * body_width * 0.25), round(foot_y - size * 0.45)),
                    (round(x + leg * body_width * 0.3), round(foot_y)),
                    trousers,
                    max(2, round(size * 0.08)),
                )
            cv2.rectangle(
                image,
                (round(x - body_width / 2), round(foot_y - size * 0.85)),
                (round(x + body_width / 2), round(foot_y - size * 0.42)),
                shirt,
                -1,
            )
            cv2.circle(
                image,
                (round(x), round(foot_y - size * 0.92)),
                max(2, round(size * 0.08)),
                jittered(rng, (200, 160, 130), 40),
                -1,
                cv2.LINE_AA,
            )
        elif kind == "pole":
            top_y = foot_y - size * uniform_between(rng, 1.5, 3.0)
            cv2.line(
                image,
                (round(x), round(foot_y)),
                (round(x), round(top_y)),
                jittered(rng, (50, 56, 50), 15),
                max(2, round(size * 0.05)),
            )
            if rng.random() < 0.5:
                plate = (
                    round(x - size * 0.3),
                    round(top_y + size * 0.2),
                    round(x + size * 0.3),
                    round(top_y + size * 0.45),
                )
                draw_glyph_sign(image, rng, plate, pick(rng, ACCENT_COLORS), (240, 240, 240))
            else:
                cv2.circle(image, (round(x), round(top_y)), max(2, round(size * 0.08)), (230, 226, 200), -1)
        elif kind == "car":
            car_width, car_height = size * 1.6, size * 0.45
            paint = pick(rng, CLOTHING_COLORS)
            cv2.rectangle(
                image,
                (round(x - car_width / 2), round(foot_y - car_height)),
                (round(x + car_width / 2), round(foot_y - car_height * 0.2)),
                paint,
                -1,
            )
            cv2.rectangle(
                image,
                (round(x - car_width * 0.3), round(foot_y - car_height * 1.5)),
                (round(x + car_width * 0.3), round(foot_y - car_height)),
                scale_color(paint, 0.8),
                -1,
            )
            for wheel in (-0.3, 0.3):
                cv2.circle(
                    image,
                    (round(x + wheel * car_width), round(foot_y - car_height * 0.2)),
                    max(2, round(car_height * 0.3)),
                    (20, 20, 20),
                    -1,
                    cv2.LINE_AA,
                )
        elif kind == "tree":
            _draw_tree(image, rng, x, foot_y, size * 1.6)
        else:
            center = (round(x), round(uniform_between(rng, 0.2, 1.0) * height))
            axes = (
                max(2, round(size * uniform_between(rng, 0.2, 0.6))),
                max(2, round(size * uniform_between(rng, 0.15, 0.4))),
            )
            color = jittered(rng, pick(rng, (*CLOTHING_COLORS, (70, 120, 60))), 30)
            cv2.ellipse(image, center, axes, uniform_between(rng, 0, 180), 0, 360, color, -1, cv2.LINE_AA)


def _develop(image: np.ndarray, rng: np.random.Generator, style: _ViewStyle) -> np.ndarray:
    """Camera processing of a (H, W, 3) uint8 photo: gamma, contrast, brightness and colour cast (one lookup table
    per channel), sometimes blur, uneven illumination and sensor noise."""
    height, width = image.shape[:2]
    gamma = float(np.exp(rng.uniform(np.log(style.gamma[0]), np.log(style.gamma[1]))))
    contrast, brightness = uniform_between(rng, 0.75, 1.2), uniform_between(rng, -25, 25)
    cast = rng.uniform(0.9, 1.1, 3)
    levels = (np.arange(256) / 255.0) ** gamma * 255
    lookup = ((levels - 127.5) * contrast + 127.5 + brightness)[:, None] * cast[None, :]
    image = cv2.LUT(image, np.clip(np.rint(lookup), 0, 255).astype(np.uint8).reshape(1, 256, 3))
    if rng.random() < 0.6:
        image = cv2.GaussianBlur(image, (0, 0), uniform_between(rng, 0.3, style.blur_sigma))
    illumination = 1 + 0.12 * fractal_noise(rng, height, width, cells=2, octaves=2)
    noise = rng.standard_normal((height, width), dtype=np.float32) * np.float32(
        uniform_between(rng, 0, style.noise_sigma)
    )
    developed = image.astype(np.float32)
    developed *= illumination[..., None]
    developed += noise[..., None]
    np.clip(developed, 0, 255, out=developed)
    return developed.astype(np.uint8)


def render_landmark_photo(
    scene: np.ndarray, rng: np.random.Generator, difficulty: str, config: DemoConfig
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A photo (H, W, 3) uint8 RGB of the landmark ``scene`` (RGBA (h, w, 4) from :func:`render_landmark_scene`)
    and the landmark's bounding box (x1, y1, x2, y2) in photo pixels.

    ``difficulty`` is ``query`` (fully in view), ``easy``, ``medium``, ``hard`` (zoomed in or far away, heavily
    occluded) or ``junk`` (tiny or mostly outside the frame).
    """
    if difficulty not in _VIEW_STYLES:
        raise ValueError(f"difficulty must be one of {sorted(_VIEW_STYLES)}, got {difficulty!r}")
    style = pick(rng, _VIEW_STYLES[difficulty])
    width, height = _frame_size(rng, config)
    scene_height, scene_width = scene.shape[:2]
    homography = _sample_camera(rng, (scene_width, scene_height), (width, height), style)
    magnification = np.sqrt(abs(np.linalg.det(homography[:2, :2])))
    if magnification < 0.8:  # low-pass the scene before shrinking it, as a lens and sensor would
        scene = cv2.GaussianBlur(scene, (0, 0), 0.5 / magnification - 0.3)
    warped = cv2.warpPerspective(
        scene,
        homography,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0, 0),
    )
    foot = cv2.perspectiveTransform(np.array([[[scene_width / 2, scene_height]]], np.float32), homography)[
        0, 0
    ]
    horizon = round(np.clip(foot[1] - uniform_between(rng, 0, 0.08) * height, 0.25 * height, 0.97 * height))
    background = _render_background(rng, width, height, horizon).astype(np.float32)
    coverage = warped[..., 3:].astype(np.float32) / 255
    image = np.clip(background + (warped[..., :3] - background) * coverage + 0.5, 0, 255).astype(np.uint8)
    rows = np.flatnonzero(warped[..., 3].max(axis=1) > 127)
    columns = np.flatnonzero(warped[..., 3].max(axis=0) > 127)
    box = (0.0, 0.0, 0.0, 0.0)
    if rows.size and columns.size:
        box = (float(columns[0]), float(rows[0]), float(columns[-1] + 1), float(rows[-1] + 1))
    _draw_occluders(image, rng, randint(rng, *style.occluders), style.occluder_size, horizon)
    return _develop(image, rng, style), box


def render_non_landmark_photo(rng: np.random.Generator, config: DemoConfig) -> np.ndarray:
    """A photo (H, W, 3) uint8 RGB that shows no landmark: a landscape, objects on a table, or a close-up
    texture (foliage, pebbles, a material)."""
    width, height = _frame_size(rng, config)
    kind = pick(rng, ("nature", "objects", "texture"))
    if kind == "nature":
        horizon = round(uniform_between(rng, 0.35, 0.7) * height)
        image = _render_background(rng, width, height, horizon)
        for layer in range(randint(rng, 1, 3)):
            xs = np.linspace(0, width, 17)
            ridge = horizon - (rng.uniform(0.05, 0.3, 17) + 0.1 * layer) * height
            outline = np.concatenate([np.stack([xs, ridge], 1), [[width, horizon], [0, horizon]]])
            cv2.fillPoly(
                image, [as_polygon(outline)], jittered(rng, (90 - 15 * layer, 100, 110 - 20 * layer), 20)
            )
        for _ in range(randint(rng, 3, 12)):
            _draw_tree(
                image,
                rng,
                uniform_between(rng, 0, width),
                uniform_between(rng, horizon, height),
                uniform_between(rng, 0.1, 0.4) * height,
            )
    elif kind == "objects":
        table = jittered(rng, pick(rng, MATERIAL_COLORS["wood"] + MATERIAL_COLORS["plaster"]), 20)
        image = material_texture(rng, pick(rng, ("planks", "plain")), table, height, width)
        for _ in range(randint(rng, 3, 9)):
            x, y = uniform_between(rng, 0, width), uniform_between(rng, 0, height)
            size = uniform_between(rng, 0.08, 0.25) * min(width, height)
            color = jittered(rng, pick(rng, CLOTHING_COLORS), 30)
            if rng.random() < 0.5:
                cv2.circle(
                    image,
                    (round(x + size * 0.15), round(y + size * 0.15)),
                    round(size / 2),
                    (40, 36, 30),
                    -1,
                    cv2.LINE_AA,
                )
                cv2.circle(image, (round(x), round(y)), round(size / 2), color, -1, cv2.LINE_AA)
                cv2.circle(
                    image,
                    (round(x - size * 0.15), round(y - size * 0.15)),
                    max(1, round(size / 8)),
                    scale_color(color, 1.5),
                    -1,
                    cv2.LINE_AA,
                )
            else:
                box = (round(x), round(y), round(x + size * 1.4), round(y + size))
                draw_glyph_sign(image, rng, box, color, pick(rng, ((250, 250, 250), (20, 20, 20))))
    else:
        texture = pick(rng, ("foliage", "pebbles", "material"))
        if texture == "material":
            material = pick(rng, sorted(MATERIAL_COLORS))
            pattern = pick(rng, ("brick", "ashlar", "tiles", "planks", "veined", "plain"))
            image = material_texture(
                rng, pattern, jittered(rng, pick(rng, MATERIAL_COLORS[material]), 20), height, width
            )
        else:
            base = (70, 100, 50) if texture == "foliage" else (140, 130, 120)
            image = material_texture(rng, "plain", jittered(rng, base, 20), height, width)
            for _ in range(randint(rng, 150, 400)):
                center = (randint(rng, 0, width), randint(rng, 0, height))
                if texture == "foliage":
                    axes = (randint(rng, 3, 12), randint(rng, 2, 5))
                    cv2.ellipse(
                        image,
                        center,
                        axes,
                        uniform_between(rng, 0, 180),
                        0,
                        360,
                        jittered(rng, base, 40),
                        -1,
                        cv2.LINE_AA,
                    )
                else:
                    cv2.circle(image, center, randint(rng, 3, 12), jittered(rng, base, 50), -1, cv2.LINE_AA)
    return _develop(image, rng, _VIEW_STYLES["medium"][0])
