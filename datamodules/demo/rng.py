"""Seeded randomness: one independent generator per (seed, stream, index), so that a part of the dataset never
shifts another's draws, and small helpers that draw numbers and colours from a generator.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TypeVar

import cv2
import numpy as np

Color = tuple[int, int, int]
_T = TypeVar("_T")


class Stream(enum.IntEnum):
    """Independent random streams: the generator of item ``i`` of a stream is seeded by ``(seed, stream, i)``."""

    PLAN = 0
    SCENE = 1
    TRAIN = 2
    INDEX = 3
    TEST = 4
    RDEMO = 5
    RDEMO_QUERY = 6


def stream_rng(seed: int, stream: Stream, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, int(stream), index])


def randint(rng: np.random.Generator, low: int, high: int) -> int:
    """A uniform integer in [low, high], both included."""
    return int(rng.integers(low, high + 1))


def uniform_between(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def pick(rng: np.random.Generator, options: Sequence[_T]) -> _T:
    return options[int(rng.integers(len(options)))]


def as_color(values: Sequence[float] | np.ndarray) -> Color:
    red, green, blue = (min(255, max(0, round(float(value)))) for value in values)
    return red, green, blue


def jittered(rng: np.random.Generator, color: Color, amount: float) -> Color:
    return as_color(np.asarray(color, np.float64) + rng.uniform(-amount, amount, 3))


def scale_color(color: Color, factor: float) -> Color:
    return as_color(np.asarray(color, np.float64) * factor)


def fractal_noise(rng: np.random.Generator, height: int, width: int, cells: int, octaves: int) -> np.ndarray:
    """Smooth multi-octave noise (height, width) float32 with a standard deviation of roughly 1.

    The coarsest octave has ``cells`` random values along the longer side; each next one doubles the resolution
    and halves the amplitude. Octaves are summed on the finest grid, which is then resized once.
    """

    def grid_size(octave: int) -> tuple[int, int]:
        along_long_side = cells * 2**octave
        return (
            max(2, round(along_long_side * width / max(height, width))),
            max(2, round(along_long_side * height / max(height, width))),
        )

    finest = grid_size(octaves - 1)
    total = np.zeros(finest[::-1], np.float32)
    for octave in range(octaves):
        size = grid_size(octave)
        grid = rng.standard_normal(size[::-1], dtype=np.float32) * np.float32(0.5**octave)
        total += grid if size == finest else cv2.resize(grid, finest, interpolation=cv2.INTER_CUBIC)
    return cv2.resize(total, (width, height), interpolation=cv2.INTER_CUBIC)
