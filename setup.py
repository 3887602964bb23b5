"""How a wheel is built: every project package and app under one top-level package, ``landmark_retrieval``.

A checkout keeps the design card's top-level folders (``retrieval/``, ``datamodules/``, ``lightning_modules/``,
``experiments/``, ``serving/``, ``conf/``) and app scripts (``train.py`` …), and the editable install
(``make setup``) maps those names as they are. Installed as they are, such generic names would clash with other
distributions (a ``retrieval`` or ``experiments`` package of someone else's), so ``pip install .`` instead writes
``landmark_retrieval/retrieval/``, …, ``landmark_retrieval/train.py``, … and ``landmark_retrieval/conf/``, with
every import of a project package and every config ``_target_`` rewritten to its namespaced name
(``retrieval.images`` → ``landmark_retrieval.retrieval.images``). ``tests/test_install.py`` builds the wheel,
installs it and runs the console scripts from outside the checkout, checking that no un-namespaced project module
was imported.
"""

from __future__ import annotations

import io
import re
import shutil
import tokenize
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

NAMESPACE = "landmark_retrieval"
PACKAGES = ("retrieval", "datamodules", "lightning_modules", "experiments", "serving")
APPS = ("train", "evaluate", "index", "search", "serve", "calibrate")
ROOT = Path(__file__).resolve().parent
# Copied with their packages (besides Python files).
PACKAGE_DATA = ("*.html",)

_IMPORT = re.compile(rf"^(\s*(?:from|import)\s+)({'|'.join(PACKAGES + APPS)})\b", re.MULTILINE)
_DOTTED = re.compile(rf"(?<![\w.])({'|'.join(PACKAGES)})(?=\.[A-Za-z_])")


_STRING_TOKENS = {tokenize.STRING} | (
    {tokenize.FSTRING_MIDDLE} if hasattr(tokenize, "FSTRING_MIDDLE") else set()
)


def _in_names(text: str) -> str:
    return _DOTTED.sub(rf"{NAMESPACE}.\1", text)


def namespaced_yaml(text: str) -> str:
    """A config with its ``_target_``s (every dotted project name) under :data:`NAMESPACE`."""
    return _in_names(text)


def namespaced_python(text: str) -> str:
    """Python source with its project imports, and the dotted project names inside its string literals (lazy
    import tables, docstrings), under :data:`NAMESPACE`. Code is not touched otherwise: a local variable may be
    called ``retrieval``."""
    text = _IMPORT.sub(rf"\1{NAMESPACE}.\2", text)
    line_starts = [0]
    for line in text.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    pieces, done = [], 0
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in _STRING_TOKENS:
            start = line_starts[token.start[0] - 1] + token.start[1]
            end = line_starts[token.end[0] - 1] + token.end[1]
            pieces += [text[done:start], _in_names(text[start:end])]
            done = end
    return "".join([*pieces, text[done:]])


class NamespacedBuildPy(build_py):
    """``build_py`` that writes the namespaced layout; editable installs keep the checkout's layout."""

    def run(self) -> None:
        if getattr(self, "editable_mode", False):
            super().run()
            return
        target = Path(self.build_lib) / NAMESPACE
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(ROOT / NAMESPACE, target, ignore=shutil.ignore_patterns("__pycache__"))
        sources = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
        sources += [
            path
            for package in PACKAGES
            for pattern in PACKAGE_DATA
            for path in (ROOT / package).rglob(pattern)
        ]
        sources += [ROOT / f"{app}.py" for app in APPS]
        sources += list((ROOT / "conf").rglob("*.yaml"))
        for source in sources:
            if "__pycache__" in source.parts:
                continue
            destination = target / source.relative_to(ROOT)
            destination.parent.mkdir(parents=True, exist_ok=True)
            if source.suffix in (".py", ".yaml"):
                rewrite = namespaced_python if source.suffix == ".py" else namespaced_yaml
                destination.write_text(rewrite(source.read_text(encoding="utf-8")), encoding="utf-8")
            else:
                shutil.copyfile(source, destination)


setup(cmdclass={"build_py": NamespacedBuildPy})
