"""Fixtures shared by the global-descriptor tests."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def photos(tmp_path):
    """Five random PNGs of three sizes (landscape, portrait, square), ``0.png`` to ``4.png``."""
    rng = np.random.default_rng(0)
    paths = []
    for index, size in enumerate([(96, 64), (64, 96), (96, 64), (80, 80), (96, 64)]):
        path = tmp_path / f"{index}.png"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths
