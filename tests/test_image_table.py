"""The columnar image table: what is saved is read back (ids and paths in any script, unknown stats), columns of
unequal length and ids with line breaks are refused, and the write leaves no temporary file."""

import numpy as np
import pytest

from retrieval.image_table import ImageTable


def test_ids_paths_and_stats_are_read_back_as_saved(tmp_path):
    ids = ["places/photo0", "Zürich/大教堂", "a b"]
    paths = {"places/photo0": "places/photo0.jpg", "Zürich/大教堂": "Zürich/大教堂.png", "a b": "a b.JPG"}
    files = {"places/photo0": [10, 20], "Zürich/大教堂": None, "a b": [1, 2**62]}
    ImageTable.of(ids, paths, files).save(tmp_path / "images.npz")
    table = ImageTable.load(tmp_path / "images.npz")
    assert table.ids == ids and table.paths == [paths[image_id] for image_id in ids]
    assert table.file_stats() == files
    assert [path.name for path in tmp_path.iterdir()] == ["images.npz"]
    with np.load(tmp_path / "images.npz", allow_pickle=False) as stored:  # plain arrays, no pickle
        assert {name: stored[name].dtype.kind for name in stored.files} == {
            "ids": "u",
            "paths": "u",
            "files": "i",
        }


def test_an_empty_table_is_read_back_empty(tmp_path):
    ImageTable.of([], {}, {}).save(tmp_path / "images.npz")
    table = ImageTable.load(tmp_path / "images.npz")
    assert table.ids == [] and table.paths == [] and table.files.shape == (0, 2)


def test_unequal_columns_and_line_breaks_are_refused(tmp_path):
    with pytest.raises(ValueError, match="2 ids, 1 paths"):
        ImageTable(["a", "b"], ["a.jpg"], np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="line break"):
        ImageTable(["a\nb"], ["a.jpg"], np.zeros((1, 2), dtype=np.int64)).save(tmp_path / "images.npz")
    assert not list(tmp_path.iterdir())
