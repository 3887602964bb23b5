"""The console scripts (``landmark-train``, ``landmark-evaluate``, ``landmark-index``, ``landmark-search``,
``landmark-serve``, ``landmark-calibrate``, ``landmark-analyze``): each runs its Hydra app with the command line's
overrides, e.g. ``landmark-evaluate benchmarks=folder benchmarks.folder.root=photos``. Installed, the apps are
modules of this package; in a checkout they are the scripts at its top level."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

_INSTALLED = (Path(__file__).resolve().parent / "retrieval").is_dir()


def _app(name: str) -> ModuleType:
    return importlib.import_module(f"{__package__}.{name}" if _INSTALLED else name)


def train() -> None:
    _app("train").main()


def evaluate() -> None:
    _app("evaluate").main()


def index() -> None:
    _app("index").main()


def search() -> None:
    _app("search").main()


def serve() -> None:
    _app("serve").main()


def calibrate() -> None:
    _app("calibrate").main()


def analyze() -> None:
    _app("experiments.analyze_dataset").main()
