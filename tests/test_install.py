"""The installed distribution: a wheel built from the checkout holds one top-level package, its console scripts
run the apps from outside the checkout with their packaged configs, and no un-namespaced project module is
imported (setup.py's namespaced build)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO_ROOT
from tests.local.test_features import textured_scene

PROJECT_NAMES = {"retrieval", "datamodules", "lightning_modules", "experiments", "serving"}
APPS = {"train", "evaluate", "index", "search", "serve", "calibrate"}
# Runs one console-script function and fails if a project module was imported under its checkout name.
DRIVER = """
import sys
import landmark_retrieval
from landmark_retrieval import cli
app = sys.argv.pop(1)
getattr(cli, app)()
leaked = sorted({{name.split(".")[0] for name in sys.modules}} & {names!r})
assert not leaked, f"imported outside the namespace: {{leaked}}"
assert landmark_retrieval.__file__.startswith({site!r}), landmark_retrieval.__file__
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel, installed without its dependencies (they are this environment's) into a folder of its own."""
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(REPO_ROOT),
            "-w",
            wheels,
        ],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(REPO_ROOT / "build", ignore_errors=True)  # setuptools' staging folder
    (wheel,) = wheels.glob("*.whl")
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, wheel],
        check=True,
        capture_output=True,
    )
    return site


def run_installed(site: Path, cwd: Path, app: str, *overrides: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(site), "WANDB_MODE": "offline"}
    environment.pop("PROJECT_ROOT", None)
    driver = DRIVER.format(names=PROJECT_NAMES | APPS, site=str(site))
    return subprocess.run(
        [sys.executable, "-c", driver, app, *overrides],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_wheel_claims_one_top_level_name_and_ships_its_configs(installed):
    (wheel_record,) = installed.glob("landmark_retrieval-*.dist-info/RECORD")
    tops = {line.split("/")[0].split(",")[0] for line in wheel_record.read_text().splitlines()}
    assert {top for top in tops if not top.endswith(".dist-info") and top not in ("bin", "..")} == {
        "landmark_retrieval"
    }
    package = installed / "landmark_retrieval"
    assert (package / "conf" / "evaluate.yaml").is_file() and (package / "serving" / "page.html").is_file()
    assert (
        "_target_: landmark_retrieval.retrieval.descriptor.index.create_index"
        in (package / "conf" / "global_index" / "flat.yaml").read_text()
    )
    scripts = {path.name for path in (installed / "bin").iterdir()}
    assert {
        f"landmark-{app}" for app in ("train", "evaluate", "index", "search", "serve", "calibrate")
    } <= scripts
    # The rewrite touched imports and strings only: no name left undefined (a local variable may be "retrieval").
    undefined = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", "F821", package],
        capture_output=True,
        text=True,
    )
    assert undefined.returncode == 0, undefined.stdout[-3000:]
    metadata = next(installed.glob("landmark_retrieval-*.dist-info/METADATA")).read_text()
    assert "License-Expression: MIT" in metadata
    assert any(installed.glob("landmark_retrieval-*.dist-info/licenses/LICENSE"))


def test_console_scripts_index_search_and_evaluate_from_outside_the_checkout(installed, tmp_path):
    photos = tmp_path / "photos"
    for place, seeds in {"tower": (1, 2), "bridge": (3, 4)}.items():
        (photos / place).mkdir(parents=True)
        for seed in seeds:
            scene = textured_scene(seed if place == "tower" else 10 + seed, 256, 192)
            Image.fromarray(scene).convert("RGB").save(photos / place / f"{seed}.jpg", quality=90)
    work = tmp_path / "work"
    work.mkdir()
    small = ["extraction.max_side=64", "extraction.num_workers=0"]
    evaluated = run_installed(
        installed,
        work,
        "evaluate",
        "benchmarks=folder",
        f"benchmarks.folder.root={photos}",
        "extraction=single_512",
        *small,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "## folder" in evaluated.stdout
    (results,) = (work / "outputs" / "evaluate" / "runs").glob(
        "*/results.json"
    )  # under the working directory
    assert 0 <= json.loads(results.read_text())["results"]["folder"]["mAP"] <= 1
    collection = work / "collection"
    indexed = run_installed(
        installed,
        work,
        "index",
        f"images_dir={photos}",
        f"collection_dir={collection}",
        "local_features.max_keypoints=128",
        "num_workers=0",
        *small,
    )
    assert indexed.returncode == 0, indexed.stderr[-3000:]
    searched = run_installed(
        installed, work, "search", f"query={photos / 'tower' / '1.jpg'}", f"collection_dir={collection}"
    )
    assert searched.returncode == 0, searched.stderr[-3000:]
    assert "1. tower/1" in searched.stdout
    script = subprocess.run(
        [installed / "bin" / "landmark-train", "--help"],
        env={**os.environ, "PYTHONPATH": str(installed)},
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert script.returncode == 0 and "train is powered by Hydra" in script.stdout
    # --help lists the groups train composes with their current option, not every folder of conf/.
    assert "  loss=contrastive" in script.stdout and "rerank=" not in script.stdout
