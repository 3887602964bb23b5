"""Pictures of rankings: a query and its top results in a row, framed by correctness."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from retrieval.benchmark import Verdict
from retrieval.images import ImageLoadError, load_rgb

FRAME_COLORS: dict[str, tuple[int, int, int]] = {
    "query": (40, 90, 220),
    "positive": (30, 170, 60),
    "negative": (210, 40, 40),
    "junk": (150, 150, 150),
    "unknown": (255, 255, 255),
}


def _thumbnail(path: Path, size: int) -> Image.Image:
    try:
        image = load_rgb(path, max_side=size)
    except ImageLoadError:
        image = Image.new("RGB", (size, size), (60, 60, 60))
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return canvas


def render_ranking_grid(
    query_path: Path,
    result_paths: Sequence[Path],
    verdicts: Sequence[Verdict] | None = None,
    scores: Sequence[float] | None = None,
    thumbnail_size: int = 160,
    frame: int = 6,
) -> Image.Image:
    """One row: the query (blue frame), then each result framed green (positive), red (negative), grey (junk)
    or white (unknown), with its rank and score written under it."""
    verdicts = list(verdicts) if verdicts is not None else ["unknown"] * len(result_paths)
    if len(verdicts) != len(result_paths) or (scores is not None and len(scores) != len(result_paths)):
        raise ValueError("verdicts and scores must have one entry per result")
    cell = thumbnail_size + 2 * frame
    caption = 18
    grid = Image.new("RGB", (cell * (1 + len(result_paths)), cell + caption), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    entries = [(query_path, "query", "query")] + [
        (path, verdict, f"{rank}" + (f"  {scores[rank - 1]:.3f}" if scores is not None else ""))
        for rank, (path, verdict) in enumerate(zip(result_paths, verdicts, strict=True), start=1)
    ]
    for column, (path, verdict, text) in enumerate(entries):
        left = column * cell
        draw.rectangle((left, 0, left + cell - 1, cell - 1), fill=FRAME_COLORS[verdict])
        grid.paste(_thumbnail(path, thumbnail_size), (left + frame, frame))
        draw.text((left + frame, cell + 2), text, fill=(0, 0, 0))
    return grid


def stack_rows(rows: Sequence[Image.Image]) -> Image.Image:
    """Rows of possibly different widths, top to bottom on a white background."""
    if not rows:
        raise ValueError("no rows to stack")
    grid = Image.new(
        "RGB", (max(row.width for row in rows), sum(row.height for row in rows)), (255, 255, 255)
    )
    top = 0
    for row in rows:
        grid.paste(row, (0, top))
        top += row.height
    return grid


INLIER_COLOR = (40, 220, 80)
OUTLIER_COLOR = (230, 60, 60)
TENTATIVE_COLOR = (245, 170, 30)


def draw_matches(
    query: Image.Image,
    database: Image.Image,
    query_points: np.ndarray,
    database_points: np.ndarray,
    inliers: np.ndarray | None,
    height: int = 360,
    show_outliers: bool = False,
    max_width: int | None = None,
    point_sizes: tuple[tuple[int, int], tuple[int, int]] | None = None,
) -> Image.Image:
    """Both images side by side at ``height`` pixels (each at most half of ``max_width`` wide, so the picture
    stays bounded whatever the aspect ratios), matched points joined: inliers green (outliers red, if asked), or
    every match amber when ``inliers`` is None (tentative matches that no verification judged).

    Args:
        query, database: the two pictures (any size: e.g. reduced-size decodes).
        query_points, database_points: (M, 2) x, y in pixels of images of ``point_sizes`` (default: the two
            pictures' own sizes).
        inliers: (M,) bool, or None.
    """
    if len(query_points) != len(database_points) or (
        inliers is not None and len(inliers) != len(query_points)
    ):
        raise ValueError("query_points, database_points and inliers must have the same length")
    sizes = point_sizes or (query.size, database.size)
    panels = []
    for image in (query, database):
        scale = height / image.height
        if max_width is not None:
            scale = min(scale, (max_width // 2) / image.width)
        panels.append(
            image.convert("RGB").resize(
                (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            )
        )
    left, right = panels
    canvas = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    draw = ImageDraw.Draw(canvas)
    # Points are scaled from the images they were found in to the panels.
    point_scales = [
        panel.width / size[0] if size[0] else 1.0 for panel, size in zip(panels, sizes, strict=True)
    ]
    for index, ((qx, qy), (dx, dy)) in enumerate(zip(query_points, database_points, strict=True)):
        if inliers is None:
            color = TENTATIVE_COLOR
        elif inliers[index]:
            color = INLIER_COLOR
        elif show_outliers:
            color = OUTLIER_COLOR
        else:
            continue
        start = (float(qx) * point_scales[0], float(qy) * point_scales[0])
        end = (left.width + float(dx) * point_scales[1], float(dy) * point_scales[1])
        draw.line([start, end], fill=color, width=1)
        for x, y in (start, end):
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), outline=color)
    return canvas


@dataclass(frozen=True)
class ResultCard:
    """One result of a search picture: its image, rank, score and what local verification said of it
    (``verified``: True green, False grey, None no verdict)."""

    path: Path
    rank: int
    score: float
    caption: str
    verified: bool | None = None


def format_score(score: float) -> str:
    """Whole numbers (inlier counts) stay whole; other scores get three decimals."""
    return f"{score:.0f}" if float(score).is_integer() else f"{score:.3f}"


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def render_search_picture(
    query_path: Path,
    cards: Sequence[ResultCard],
    match_pictures: Sequence[Image.Image] = (),
    score_label: str = "score",
    columns: int = 5,
    thumbnail_size: int = 200,
    max_match_width: int = 1000,
) -> Image.Image:
    """A search at a glance: the query (large, left), the results as a grid of ``columns`` with rank, score and
    caption in legible type (``score_label`` says what the score is), and the match pictures of the top
    results beside them at bounded width."""
    title, body = _font(20), _font(15)
    gap, caption_height = 12, 44
    query = _thumbnail(query_path, 2 * thumbnail_size)
    rows = -(-len(cards) // columns) if cards else 0
    cell_width, cell_height = thumbnail_size + gap, thumbnail_size + caption_height + gap
    grid_width = columns * cell_width
    scaled = [
        picture.resize((max_match_width, round(picture.height * max_match_width / picture.width)))
        if picture.width > max_match_width
        else picture
        for picture in match_pictures
    ]
    matches_width = max((picture.width for picture in scaled), default=0)
    width = gap + query.width + 2 * gap + grid_width + (gap + matches_width if scaled else 0)
    height = gap + 28 + max(query.height, rows * cell_height, sum(p.height + gap for p in scaled))
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((gap, gap), "query", fill=(40, 90, 220), font=title)
    canvas.paste(query, (gap, gap + 28))
    left = gap + query.width + 2 * gap
    draw.text((left, gap), f"top {len(cards)}", fill=(0, 0, 0), font=title)
    draw.text((left + 90, gap + 4), f"score: {score_label}", fill=(70, 70, 70), font=body)
    for index, card in enumerate(cards):
        x = left + (index % columns) * cell_width
        y = gap + 28 + (index // columns) * cell_height
        canvas.paste(_thumbnail(card.path, thumbnail_size), (x, y))
        draw.text(
            (x, y + thumbnail_size + 2),
            f"#{card.rank}  score {format_score(card.score)}",
            fill=(0, 0, 0),
            font=body,
        )
        colour = {True: (20, 130, 60), False: (110, 110, 110), None: (70, 70, 70)}[card.verified]
        draw.text((x, y + thumbnail_size + 21), card.caption, fill=colour, font=body)
    top = gap + 28
    for picture in scaled:
        canvas.paste(picture, (left + grid_width + gap, top))
        top += picture.height + gap
    return canvas
