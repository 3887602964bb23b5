"""The demo generator writes the exact GLDv2 and Revisited-Oxford formats, records every injected defect exactly,
is deterministic, and draws landmarks whose views match geometrically (and those of different landmarks do not)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import pickle
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from datamodules.demo.cli import main
from datamodules.demo.config import (
    DEMO_SCALES,
    MARKER_FILE,
    RDEMO_NAME,
    SOLUTION_FILE,
    DemoConfig,
    DemoManifest,
)
from datamodules.demo.files import image_path
from datamodules.demo.writer import generate_demo
from retrieval.images import ImageLoadError, load_gray, load_rgb

SMALL = DEMO_SCALES["small"]
HEX_ID = re.compile(r"^[0-9a-f]{16}$")
NOISE_LISTS = ("mislabelled", "grayscale", "near_grayscale", "distractor", "corrupt", "cmyk", "missing")


@dataclasses.dataclass(frozen=True)
class Demo:
    root: Path
    manifest: DemoManifest
    train_rows: list[dict[str, str]]

    def train_path(self, image_id: str) -> Path:
        return image_path(self.root, "train", image_id)

    @property
    def listed_landmark(self) -> dict[str, int]:
        return {row["id"]: int(row["landmark_id"]) for row in self.train_rows}


def read_csv(path: Path) -> tuple[str, list[dict[str, str]]]:
    """The header line and the rows of a CSV file."""
    text = path.read_text(encoding="utf-8")
    return text.splitlines()[0], list(csv.DictReader(io.StringIO(text)))


def file_hashes(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


class NoGlobalsUnpickler(pickle.Unpickler):
    """Refuses every global: a pickle of plain dicts, lists, str, int and float loads, nothing else does."""

    def find_class(self, module: str, name: str) -> None:
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    root = tmp_path_factory.mktemp("demo")
    manifest = generate_demo(root, SMALL, seed=0)
    _, train_rows = read_csv(root / "train.csv")
    return Demo(root, manifest, train_rows)


@pytest.fixture(scope="module")
def ground_truth(demo: Demo) -> dict[str, list]:
    with (demo.root / "revisited" / RDEMO_NAME / f"gnd_{RDEMO_NAME}.pkl").open("rb") as handle:
        return NoGlobalsUnpickler(handle).load()


# ------------------------------------------------------------------------------------------------------------
# Formats
# ------------------------------------------------------------------------------------------------------------


def test_train_csv_format(demo: Demo) -> None:
    header, rows = read_csv(demo.root / "train.csv")
    assert header == "id,url,landmark_id"
    for line in (demo.root / "train.csv").read_text().splitlines()[1:]:
        image_id, url, landmark_id = line.split(",")
        assert HEX_ID.match(image_id)
        assert url == f"https://example.invalid/gldv2-demo/{image_id}.jpg"
        assert re.fullmatch(r"[1-9][0-9]*", landmark_id)
    assert len({row["landmark_id"] for row in rows}) == SMALL.num_train_landmarks


def test_every_listed_train_image_has_a_file_except_the_missing_ones(demo: Demo) -> None:
    missing = set(demo.manifest.missing)
    for row in demo.train_rows:
        assert demo.train_path(row["id"]).is_file() == (row["id"] not in missing)
    files = {path.stem for path in (demo.root / "train").rglob("*.jpg")}
    assert files == {row["id"] for row in demo.train_rows} - missing


def test_ids_are_unique_across_train_index_and_test(demo: Demo) -> None:
    index_header, index_rows = read_csv(demo.root / "index.csv")
    test_header, test_rows = read_csv(demo.root / "test.csv")
    assert index_header == "id" and test_header == "id"
    all_ids = [row["id"] for row in demo.train_rows + index_rows + test_rows]
    assert all(HEX_ID.match(image_id) for image_id in all_ids)
    assert len(all_ids) == len(set(all_ids))
    for split, rows in (("index", index_rows), ("test", test_rows)):
        assert {path.stem for path in (demo.root / split).rglob("*.jpg")} == {row["id"] for row in rows}
        assert all(image_path(demo.root, split, row["id"]).is_file() for row in rows)


def test_train_clean_is_exactly_the_noise_free_rows_of_each_landmark(demo: Demo) -> None:
    header, rows = read_csv(demo.root / "train_clean.csv")
    assert header == "landmark_id,images"
    manifest = demo.manifest
    noisy = {image_id for name in NOISE_LISTS if name != "cmyk" for image_id in getattr(manifest, name)}
    noisy |= set(manifest.near_duplicate)
    expected: dict[int, set[str]] = {}
    for image_id, landmark_id in demo.listed_landmark.items():
        if image_id not in noisy:
            expected.setdefault(landmark_id, set()).add(image_id)
    expected = {landmark_id: ids for landmark_id, ids in expected.items() if len(ids) >= 2}
    clean = {int(row["landmark_id"]): row["images"].split(" ") for row in rows}
    assert {landmark_id: set(ids) for landmark_id, ids in clean.items()} == expected
    assert all(len(ids) == len(set(ids)) for ids in clean.values())
    assert set(manifest.cmyk) <= {image_id for ids in clean.values() for image_id in ids}


def test_retrieval_solution(demo: Demo) -> None:
    header, rows = read_csv(demo.root / SOLUTION_FILE)
    assert header == "id,images,Usage"
    _, test_rows = read_csv(demo.root / "test.csv")
    _, index_rows = read_csv(demo.root / "index.csv")
    index_ids = {row["id"] for row in index_rows}
    assert sorted(row["id"] for row in rows) == sorted(row["id"] for row in test_rows)
    usages = [row["Usage"] for row in rows]
    assert set(usages) == {"Public", "Private", "Ignored"}
    for row in rows:
        if row["Usage"] == "Ignored":
            assert row["images"] == "None"
        else:
            matches = row["images"].split(" ")
            assert len(matches) >= SMALL.min_index_images_per_landmark
            assert set(matches) <= index_ids
    num_queries = len(rows) - usages.count("Ignored")
    assert usages.count("Public") == round(num_queries / 3)
    assert usages.count("Ignored") == SMALL.num_test_non_landmark
    matched = {image_id for row in rows if row["Usage"] != "Ignored" for image_id in row["images"].split(" ")}
    assert len(index_ids - matched) == SMALL.num_index_distractors


def test_rdemo_ground_truth_structure(demo: Demo, ground_truth: dict[str, list]) -> None:
    assert set(ground_truth) == {"imlist", "qimlist", "gnd"}
    imlist, qimlist, gnd = ground_truth["imlist"], ground_truth["qimlist"], ground_truth["gnd"]
    assert all(isinstance(name, str) and not name.endswith(".jpg") for name in imlist + qimlist)
    assert not set(imlist) & set(qimlist)
    assert len(qimlist) == SMALL.num_rdemo_landmarks * SMALL.rdemo_queries_per_landmark == len(gnd)
    jpg = demo.root / "revisited" / RDEMO_NAME / "jpg"
    assert {path.stem for path in jpg.glob("*.jpg")} == set(imlist) | set(qimlist)
    positives: set[int] = set()
    for query_name, entry in zip(qimlist, gnd, strict=True):
        assert set(entry) == {"easy", "hard", "junk", "bbx"}
        for label, count in (
            ("easy", SMALL.rdemo_easy_per_landmark),
            ("hard", SMALL.rdemo_hard_per_landmark),
            ("junk", SMALL.rdemo_junk_per_landmark),
        ):
            assert len(entry[label]) == count
            assert all(type(index) is int and 0 <= index < len(imlist) for index in entry[label])
        labelled = entry["easy"] + entry["hard"] + entry["junk"]
        assert len(set(labelled)) == len(labelled)
        positives |= set(labelled)
        x1, y1, x2, y2 = entry["bbx"]
        assert all(type(value) is float for value in entry["bbx"])
        width, height = Image.open(jpg / f"{query_name}.jpg").size
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    assert len(imlist) - len(positives) == SMALL.num_rdemo_distractors


def test_queries_of_one_landmark_share_their_ground_truth(ground_truth: dict[str, list]) -> None:
    per_landmark = SMALL.rdemo_queries_per_landmark
    gnd = ground_truth["gnd"]
    for first in range(0, len(gnd), per_landmark):
        for other in gnd[first + 1 : first + per_landmark]:
            assert {label: other[label] for label in ("easy", "hard", "junk")} == {
                label: gnd[first][label] for label in ("easy", "hard", "junk")
            }


def test_image_sizes(demo: Demo) -> None:
    near_duplicates = set(demo.manifest.near_duplicate)
    for path in demo.root.rglob("*.jpg"):
        if path.stem in demo.manifest.corrupt or path.stem in near_duplicates:
            continue
        with Image.open(path) as image:
            assert SMALL.min_long_side <= max(image.size) <= SMALL.max_long_side, path


# ------------------------------------------------------------------------------------------------------------
# Noise: the manifest is the oracle
# ------------------------------------------------------------------------------------------------------------


def test_corrupt_and_missing_images_raise_image_load_error(demo: Demo) -> None:
    assert len(demo.manifest.corrupt) == 3
    sizes = sorted(demo.train_path(image_id).stat().st_size for image_id in demo.manifest.corrupt)
    assert sizes[0] == 0
    for image_id in (*demo.manifest.corrupt, *demo.manifest.missing):
        with pytest.raises(ImageLoadError):
            load_rgb(demo.train_path(image_id))


def test_cmyk_image_decodes_to_rgb(demo: Demo) -> None:
    (image_id,) = demo.manifest.cmyk
    with Image.open(demo.train_path(image_id)) as image:
        assert image.mode == "CMYK" and image.format == "JPEG"
        size = image.size
    rgb = load_rgb(demo.train_path(image_id))
    assert rgb.mode == "RGB" and rgb.size == size
    pixels = np.asarray(rgb, dtype=np.int16)
    assert np.abs(pixels[..., 0] - pixels[..., 2]).mean() > 3  # still in colour, not collapsed to gray


def test_grayscale_images(demo: Demo) -> None:
    modes = set()
    for image_id in demo.manifest.grayscale:
        with Image.open(demo.train_path(image_id)) as image:
            modes.add(image.mode)
        pixels = np.asarray(load_rgb(demo.train_path(image_id)))
        assert np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(
            pixels[..., 1], pixels[..., 2]
        )
    assert modes == {"L", "RGB"}
    for image_id in demo.manifest.near_grayscale:
        pixels = np.asarray(load_rgb(demo.train_path(image_id)), dtype=np.int16)
        warmth = pixels[..., 0] - pixels[..., 2]
        assert 0 < warmth.mean() < 60  # sepia: red above blue, but little colour


def test_near_duplicates_are_smaller_copies_under_the_same_landmark(demo: Demo) -> None:
    listed = demo.listed_landmark
    assert len(demo.manifest.near_duplicate) == SMALL.num_near_duplicates
    for duplicate_id, original_id in demo.manifest.near_duplicate.items():
        assert listed[duplicate_id] == listed[original_id]
        duplicate, original = load_rgb(demo.train_path(duplicate_id)), load_rgb(demo.train_path(original_id))
        assert duplicate.width < original.width and duplicate.height < original.height
        shrunk = np.asarray(original.resize(duplicate.size, Image.Resampling.BILINEAR), dtype=np.float32)
        assert np.abs(shrunk - np.asarray(duplicate, dtype=np.float32)).mean() < 10


def test_mislabelled_images_name_their_true_landmark(demo: Demo) -> None:
    listed = demo.listed_landmark
    assert set(demo.manifest.true_landmark) == set(demo.manifest.mislabelled)
    for image_id, true_landmark in demo.manifest.true_landmark.items():
        assert true_landmark != listed[image_id]
        assert true_landmark in listed.values()


def test_exif_matches_the_manifest(demo: Demo) -> None:
    undecodable = set(demo.manifest.corrupt) | set(demo.manifest.missing)
    assert (
        set(demo.manifest.exif_datetime) | set(demo.manifest.camera)
        <= set(demo.listed_landmark) - undecodable
    )
    for image_id in set(demo.listed_landmark) - undecodable:
        with Image.open(demo.train_path(image_id)) as image:
            exif = image.getexif()
        assert exif.get_ifd(0x8769).get(0x9003) == demo.manifest.exif_datetime.get(image_id)
        camera = f"{exif[0x010F]} {exif[0x0110]}" if 0x010F in exif else None
        assert camera == demo.manifest.camera.get(image_id)
    assert 0 < len(demo.manifest.exif_datetime) < len(demo.listed_landmark) - len(undecodable)
    assert len({value[:4] for value in demo.manifest.exif_datetime.values()}) > 1


def test_manifest_json_and_counts_match_the_files(demo: Demo) -> None:
    manifest = demo.manifest
    written = json.loads((demo.root / "noise_manifest.json").read_text())
    assert written == json.loads(json.dumps(manifest.noise_json()))
    counts = written["counts"]
    for name in NOISE_LISTS:
        assert counts[name] == len(written[name]) == len(set(written[name]))
    assert counts["near_duplicate"] == len(written["near_duplicate"])
    assert counts["train_rows"] == len(demo.train_rows)
    assert counts["train_files"] == sum(1 for _ in (demo.root / "train").rglob("*.jpg"))
    assert counts["index_images"] == len(read_csv(demo.root / "index.csv")[1])
    assert counts["test_images"] == len(read_csv(demo.root / "test.csv")[1])
    assert counts["rdemo_database_images"] + counts["rdemo_queries"] == sum(
        1 for _ in (demo.root / "revisited" / RDEMO_NAME / "jpg").glob("*.jpg")
    )
    assert counts["mislabelled"] == SMALL.num_mislabelled
    assert counts["grayscale"] == SMALL.num_grayscale_single_channel + SMALL.num_grayscale_rgb
    assert counts["missing"] == SMALL.num_missing and counts["cmyk"] == 1
    groups = [set(written[name]) for name in NOISE_LISTS] + [set(written["near_duplicate"])]
    assert sum(len(group) for group in groups) == len(set().union(*groups)), (
        "each image has one defect at most"
    )
    genuine_per_landmark: dict[int, int] = {}
    extra = set(written["mislabelled"]) | set(written["distractor"]) | set(written["corrupt"])
    extra |= set(written["missing"]) | set(written["near_duplicate"])
    for image_id, landmark_id in demo.listed_landmark.items():
        genuine_per_landmark[landmark_id] = genuine_per_landmark.get(landmark_id, 0) + (image_id not in extra)
    assert all(
        SMALL.min_train_images_per_landmark <= count <= SMALL.max_train_images_per_landmark
        for count in genuine_per_landmark.values()
    )
    assert (demo.root / MARKER_FILE).read_bytes() == b""
    assert (demo.root / "README.md").read_text().startswith("# Demo dataset")


# ------------------------------------------------------------------------------------------------------------
# Determinism, CLI, configuration
# ------------------------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_files(demo: Demo, tmp_path: Path) -> None:
    generate_demo(tmp_path / "again", SMALL, seed=0)
    assert file_hashes(tmp_path / "again") == file_hashes(demo.root)


def test_another_seed_gives_another_dataset(tmp_path: Path) -> None:
    tiny = DEMO_SCALES["tiny"]
    first = generate_demo(tmp_path / "first", tiny, seed=1)
    second = generate_demo(tmp_path / "second", tiny, seed=2)
    assert first.counts["train_rows"] == second.counts["train_rows"]  # fixed by the config, unlike the ids
    assert (tmp_path / "first" / "train.csv").read_text() != (tmp_path / "second" / "train.csv").read_text()


def test_regeneration_replaces_the_previous_dataset(tmp_path: Path) -> None:
    tiny = DEMO_SCALES["tiny"]
    generate_demo(tmp_path, tiny, seed=1)
    stale = tmp_path / "train" / "stale.jpg"
    stale.write_bytes(b"")
    generate_demo(tmp_path, tiny, seed=1)
    assert not stale.exists()


def test_cli_does_nothing_when_complete_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / MARKER_FILE).write_bytes(b"")
    assert main(["--root", str(tmp_path), "--scale", "small"]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == [MARKER_FILE]
    assert "nothing to do" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"min_train_images_per_landmark": 9, "max_train_images_per_landmark": 8}, "exceeds"),
        ({"num_mislabelled": -1}, "num_mislabelled must be non-negative"),
        ({"public_fraction": 1.5}, r"public_fraction must be in \[0, 1\]"),
        ({"num_train_landmarks": 1}, "at least 2 train landmarks"),
        ({"min_train_images_per_landmark": 0}, "min_train_images_per_landmark must be at least 1"),
        ({"num_near_duplicates": 100}, "genuine train views"),
        ({"min_long_side": 32, "max_long_side": 48}, "min_long_side must be at least 64"),
    ],
)
def test_invalid_config_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SMALL, **changes)


def test_negative_seed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seed"):
        generate_demo(tmp_path, SMALL, seed=-1)
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------------------------
# Landmarks behave like landmarks
# ------------------------------------------------------------------------------------------------------------


def geometric_inliers(first: np.ndarray, second: np.ndarray) -> int:
    """RANSAC homography inliers among SIFT matches that pass Lowe's ratio test (0.8), one match per keypoint
    location on each side (so that many matches collapsing onto one point count once)."""
    sift = cv2.SIFT.create(nfeatures=1000)
    keypoints_first, descriptors_first = sift.detectAndCompute(first, None)
    keypoints_second, descriptors_second = sift.detectAndCompute(second, None)
    if (
        descriptors_first is None
        or descriptors_second is None
        or min(len(keypoints_first), len(keypoints_second)) < 2
    ):
        return 0
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(descriptors_first, descriptors_second, k=2)
    passing = sorted(
        (
            best
            for best, runner_up in (pair for pair in pairs if len(pair) == 2)
            if best.distance < 0.8 * runner_up.distance
        ),
        key=lambda match: match.distance,
    )
    used_first: set[tuple[int, int]] = set()
    used_second: set[tuple[int, int]] = set()
    points_first, points_second = [], []
    for match in passing:
        point_first, point_second = keypoints_first[match.queryIdx].pt, keypoints_second[match.trainIdx].pt
        key_first, key_second = (
            tuple(np.round(point_first).astype(int)),
            tuple(np.round(point_second).astype(int)),
        )
        if key_first in used_first or key_second in used_second:
            continue
        used_first.add(key_first)
        used_second.add(key_second)
        points_first.append(point_first)
        points_second.append(point_second)
    if len(points_first) < 8:
        return 0
    _, inliers = cv2.findHomography(
        np.array(points_first, np.float32), np.array(points_second, np.float32), cv2.RANSAC, 5.0
    )
    return 0 if inliers is None else int(inliers.sum())


def test_views_of_one_landmark_match_geometrically_and_views_of_two_do_not(
    demo: Demo, ground_truth: dict[str, list]
) -> None:
    jpg = demo.root / "revisited" / RDEMO_NAME / "jpg"

    def gray(name: str) -> np.ndarray:
        return load_gray(jpg / f"{name}.jpg")

    database = {index: gray(name) for index, name in enumerate(ground_truth["imlist"])}
    same, different = [], []
    for query_name, entry in zip(ground_truth["qimlist"], ground_truth["gnd"], strict=True):
        query = gray(query_name)
        own = set(entry["easy"]) | set(entry["hard"]) | set(entry["junk"])
        others = {index for other in ground_truth["gnd"] for index in other["easy"]} - own
        same += [geometric_inliers(query, database[index]) for index in entry["easy"]]
        different += [geometric_inliers(query, database[index]) for index in sorted(others)]
    assert min(same) > max(different)
    assert np.median(same) >= 3 * max(different)


@pytest.mark.slow
def test_default_scale_sizes(tmp_path: Path) -> None:
    counts = generate_demo(tmp_path, DemoConfig(), seed=0).counts
    assert 330 <= counts["train_rows"] <= 500
    assert (
        counts["train_landmarks"] == 40 and counts["index_landmarks"] == 12 and counts["rdemo_landmarks"] == 8
    )
    assert 100 <= counts["index_images"] <= 180 and 30 <= counts["test_images"] <= 50
    assert counts["rdemo_database_images"] == 8 * 9 + 30 and counts["rdemo_queries"] == 16
    assert counts["train_clean_landmarks"] >= 35
