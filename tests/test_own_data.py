"""The README's "Your own data" commands, run as a user runs them on a tiny folder of photos of their own: a
GLDv2-format training set from the folder, training, evaluation on the folder's gt.json, indexing and search."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from datamodules.from_folder import folder_to_gldv2, image_id
from tests.conftest import REPO_ROOT
from tests.local.test_features import textured_scene

PLACES = 7  # more than the tuple training's negatives + 1
VIEWS = 3


def view(scene: np.ndarray, number: int) -> np.ndarray:
    """The scene seen from a slightly different camera."""
    height, width = scene.shape
    shift = 12.0 * number
    source = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    target = np.float32(
        [[shift, 0], [width - shift / 2, shift / 3], [width, height], [0, height - shift / 2]]
    )
    return cv2.warpPerspective(scene, cv2.getPerspectiveTransform(source, target), (width, height))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """place_<i>/<n>.jpg, two distractors, and gt.json with one ignored photo listed nowhere else."""
    folder = tmp_path_factory.mktemp("my_photos")
    scenes: dict[str, list[str]] = {}
    for place in range(PLACES):
        scene = textured_scene(100 + place, 320, 240)
        scenes[f"place_{place}"] = []
        for number in range(VIEWS):
            relative = f"place_{place}/{number}.jpg"
            (folder / relative).parent.mkdir(exist_ok=True)
            Image.fromarray(view(scene, number)).convert("RGB").save(folder / relative, quality=90)
            scenes[f"place_{place}"].append(relative)
    (folder / "distractors").mkdir()
    for number in range(2):
        Image.fromarray(textured_scene(900 + number, 320, 240)).convert("RGB").save(
            folder / f"distractors/{number}.jpg"
        )
    Image.fromarray(textured_scene(950, 320, 240)).convert("RGB").save(folder / "blurry.jpg")
    ground_truth = {
        "scenes": scenes,
        "ignore": {"place_0": ["blurry.jpg"]},
        "distractors": ["distractors/0.jpg", "distractors/1.jpg"],
    }
    (folder / "gt.json").write_text(json.dumps(ground_truth))
    return folder


def run(*arguments: str) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [sys.executable, *arguments], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def test_a_folder_of_places_becomes_gldv2_training_data(photos, tmp_path):
    conversion = folder_to_gldv2(photos, tmp_path / "gldv2")
    assert conversion.images == PLACES * VIEWS and len(conversion.landmarks) == PLACES
    assert set(conversion.skipped) == {"blurry.jpg", "distractors/0.jpg", "distractors/1.jpg", "gt.json"}
    with open(tmp_path / "gldv2" / "train.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["id"] for row in rows} >= {image_id("place_3/1.jpg")} and len(rows) == PLACES * VIEWS
    with pytest.raises(ValueError, match=r"already holds a train\.csv"):
        folder_to_gldv2(photos, tmp_path / "gldv2")


def test_the_readme_commands_for_your_own_data(photos, tmp_path):
    data, collection = tmp_path / "mine", tmp_path / "collection"
    run("-m", "datamodules.from_folder", str(photos), "--root", str(data))
    run(
        "train.py",
        f"data.split.root={data}",
        "trainer.fast_dev_run=true",
        "logger=none",
        "data.num_workers=0",
        "data.image_size=64",
        "data.tuples_per_epoch=4",
        "mining.num_negatives=2",
        "data.split.val_fraction=0.3",
        "benchmarks=folder",
        f"benchmarks.folder.root={photos}",
        "callbacks.retrieval_evaluation.extraction.max_side=96",
        "callbacks.retrieval_evaluation.extraction.num_workers=0",
        f"hydra.run.dir={tmp_path / 'train'}",
    )
    run(
        "evaluate.py",
        "benchmarks=folder",
        f"benchmarks.folder.root={photos}",
        "extraction=single_512",
        "extraction.num_workers=0",
        f"cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={tmp_path / 'evaluate'}",
    )
    results = json.loads((tmp_path / "evaluate" / "results.json").read_text())["results"]
    assert results["folder"]["mAP"] > 0.25  # views of a place find each other (a random ranking: about 0.1)
    run(
        "index.py",
        f"images_dir={photos}",
        f"collection_dir={collection}",
        "extraction.num_workers=0",
        "num_workers=0",
        f"hydra.run.dir={tmp_path / 'index'}",
    )
    run(
        "search.py",
        f"query={photos / 'place_2' / '1.jpg'}",
        f"collection_dir={collection}",
        f"hydra.run.dir={tmp_path / 'search'}",
    )
    found = json.loads((tmp_path / "search" / "results.json").read_text())["queries"]["1"]["results"]
    assert found[0]["image_id"] == "place_2/1" and found[1]["image_id"].startswith("place_2/")


def test_from_folder_groups_each_place_and_quotes_place_names(tmp_path):
    from datamodules.from_folder import folder_to_gldv2

    photos = tmp_path / "photos"
    for place, count in {"bridge": 2, "Paris, Louvre": 1}.items():
        (photos / place).mkdir(parents=True)
        for index in range(count):
            Image.new("RGB", (40, 30), (30 * index, 90, 160)).save(photos / place / f"{index}.jpg")
    conversion = folder_to_gldv2(photos, tmp_path / "gldv2")
    with open(tmp_path / "gldv2" / "landmarks.csv", newline="") as handle:
        places = {row["place"]: int(row["landmark_id"]) for row in csv.DictReader(handle)}
    assert places == conversion.landmarks == {"Paris, Louvre": 0, "bridge": 1}
    with open(tmp_path / "gldv2" / "train_clean.csv", newline="") as handle:
        clean = {int(row["landmark_id"]): row["images"].split() for row in csv.DictReader(handle)}
    assert sorted(len(images) for images in clean.values()) == [1, 2] and len(clean[places["bridge"]]) == 2
