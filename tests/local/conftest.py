"""Fixtures shared by the local-feature tests."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.local.test_features import textured_scene


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Five scene PNGs, ids "a" to "e"."""
    folder = tmp_path_factory.mktemp("scenes")
    images = {}
    for seed, image_id in enumerate("abcde"):
        path = folder / f"{image_id}.png"
        Image.fromarray(textured_scene(seed, 320, 240)).save(path)
        images[image_id] = path
    return images
