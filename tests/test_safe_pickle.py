"""The restricted unpickler: Python 2 and 3 era gnd pickles read, code and builtins refused without side
effects, corrupt files reported."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retrieval.safe_pickle import load_restricted_pickle
from tests.datamodules.format_fixtures import (
    REVISITED_IMAGES,
    python2_era_pickle,
    revisited_gnd,
)


def test_restricted_pickle_reads_python2_era_gnd(tmp_path: Path) -> None:
    path = tmp_path / "gnd.pkl"
    path.write_bytes(python2_era_pickle(revisited_gnd()))
    assert b"cnumpy.core.multiarray\n_reconstruct" in path.read_bytes()
    content = load_restricted_pickle(path)
    assert content["imlist"] == REVISITED_IMAGES
    assert content["gnd"][0]["easy"].tolist() == [0]
    assert content["gnd"][0]["easy"].dtype == np.int64
    assert content["gnd"][1]["bbx"].tolist() == [10.0, 20.0, 30.0, 40.0]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_pickle_reads_python3_pickles(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "gnd.pkl"
    content = {"a": [np.arange(3), np.float32(1.5), (1, "x")], "b": np.zeros((2, 2))}
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    loaded = load_restricted_pickle(path)
    assert loaded["a"][0].tolist() == [0, 1, 2]
    assert loaded["a"][1] == np.float32(1.5)
    assert loaded["b"].shape == (2, 2)


class _RunsCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (self.command,))


def test_restricted_pickle_refuses_code_without_side_effect(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"gnd": [_RunsCommand(f"touch {marker}")]}, protocol=2))
    with pytest.raises(ValueError, match=r"refusing to load global '(posix|os|nt)\.system'"):
        load_restricted_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize("target", [eval, __import__, getattr])
def test_restricted_pickle_refuses_builtins(tmp_path: Path, target: Any) -> None:
    class Reducer:
        def __reduce__(self) -> tuple[Any, tuple[str, ...]]:
            return (target, ("os",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Reducer(), protocol=2))
    # Protocol 2 writes the Python 2 module name, __builtin__.
    with pytest.raises(ValueError, match=rf"'__builtin__\.{target.__name__}'"):
        load_restricted_pickle(path)


def test_restricted_pickle_reports_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "truncated.pkl"
    path.write_bytes(pickle.dumps({"imlist": ["a"] * 10}, protocol=2)[:-7])
    with pytest.raises(ValueError, match=r"truncated\.pkl"):
        load_restricted_pickle(path)


# --- Revisited reader -------------------------------------------------------------------------------------
