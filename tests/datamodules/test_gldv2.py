"""The GLDv2 training reader: the a/b/c layout, train_clean.csv subsets, exclusions, seeded landmark caps,
a split by landmark, and missing, corrupt or malformed inputs counted or refused clearly."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.formats.gldv2 import image_path, load_gldv2_train, split_by_landmark
from datamodules.image_datasets import ImageListDataset, build_eval_transform, collate_skipping_failures


def make_id(number: int) -> str:
    return f"{number:016x}"[::-1]  # varied first characters, as real ids


@pytest.fixture
def gldv2_root(tmp_path):
    """Landmark 5: ids 0–3; landmark 9: ids 4–6; landmark 11: id 7 alone. id 2's file is missing, id 6 is
    corrupt; id 3 is not in train_clean.csv."""
    rows = [(make_id(i), label) for i, label in enumerate([5, 5, 5, 5, 9, 9, 9, 11])]
    with open(tmp_path / "train.csv", "w") as handle:
        handle.write("id,url,landmark_id\n")
        handle.writelines(
            f"{image_id},https://example.invalid/{image_id}.jpg,{label}\n" for image_id, label in rows
        )
    with open(tmp_path / "train_clean.csv", "w") as handle:
        handle.write("landmark_id,images\n")
        handle.write(f"5,{make_id(0)} {make_id(1)} {make_id(2)}\n")
        handle.write(f"9,{make_id(4)} {make_id(5)} {make_id(6)}\n")
        handle.write(f"11,{make_id(7)}\n")
    for number, (image_id, _) in enumerate(rows):
        path = image_path(tmp_path, "train", image_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        if number == 2:
            continue
        if number == 6:
            path.write_bytes(b"\xff\xd8\xff\xe0 truncated")
            continue
        Image.new("RGB", (40, 30), (number * 20, 100, 50)).save(path)
    return tmp_path


def test_image_path_uses_the_abc_layout(tmp_path):
    assert image_path(tmp_path, "train", "0123456789abcdef") == tmp_path / "train/0/1/2/0123456789abcdef.jpg"


def test_clean_subset_skips_missing_files_and_small_landmarks(gldv2_root, caplog):
    with caplog.at_level(logging.INFO, logger="datamodules.formats.gldv2"):
        images, report = load_gldv2_train(gldv2_root, clean=True, min_images_per_landmark=2)
    assert images.ids == [make_id(0), make_id(1), make_id(4), make_id(5), make_id(6)]
    assert images.labels.tolist() == [5, 5, 9, 9, 9]
    assert (report.rows, report.not_clean, report.missing_files, report.filtered_by_size) == (8, 1, 1, 1)
    assert sum("skipped 1 missing files" in message for message in caplog.messages) == 1


def test_full_train_csv_and_exclusions(gldv2_root):
    images, report = load_gldv2_train(
        gldv2_root, clean=False, min_images_per_landmark=1, exclude_ids=frozenset({make_id(7)})
    )
    assert images.labels.tolist() == [5, 5, 5, 9, 9, 9]
    assert report.excluded == 1


def test_max_images_per_landmark_is_seeded(gldv2_root):
    first, _ = load_gldv2_train(gldv2_root, clean=False, max_images_per_landmark=2, seed=3)
    second, _ = load_gldv2_train(gldv2_root, clean=False, max_images_per_landmark=2, seed=3)
    assert first.ids == second.ids and np.bincount(first.labels).max() == 2


def test_split_is_by_landmark():
    from datamodules.formats.gldv2 import LandmarkImages

    labels = np.repeat(np.arange(20), 3)
    images = LandmarkImages(
        ids=[str(i) for i in range(60)], paths=[Path(f"{i}.jpg") for i in range(60)], labels=labels
    )
    train, val = split_by_landmark(images, val_fraction=0.2, seed=0)
    assert val.num_landmarks == 4 and train.num_landmarks == 16
    assert not set(train.labels.tolist()) & set(val.labels.tolist())


def test_corrupt_images_are_skipped_and_counted(gldv2_root):
    images, _ = load_gldv2_train(gldv2_root, clean=True)
    dataset = ImageListDataset(images.paths, build_eval_transform(16), labels=images.labels.tolist())
    batch = collate_skipping_failures([dataset[i] for i in range(len(dataset))])
    assert batch["num_skipped"] == 1
    assert batch["image"].shape == (4, 3, 16, 16)
    assert torch.equal(batch["index"], torch.tensor([0, 1, 2, 3]))


def test_malformed_csv_is_a_clear_error(tmp_path):
    (tmp_path / "train.csv").write_text("image,label\nabc,1\n")
    with pytest.raises(ValueError, match="expected columns"):
        load_gldv2_train(tmp_path, clean=False)


def write_csvs(root: Path, train: str, clean: str | None = None) -> None:
    (root / "train.csv").write_text("id,url,landmark_id\n" + train)
    if clean is not None:
        (root / "train_clean.csv").write_text("landmark_id,images\n" + clean)


@pytest.mark.parametrize(
    ("train", "clean", "message"),
    [
        ("a1,,5\na1,,7\n", None, r"train\.csv:3: image a1 is listed with landmark_id 7 here and 5 on line 2"),
        ("a1,,5\nb2,,x7\n", None, r"train\.csv:3: landmark_id must be an integer, got 'x7'"),
        (",,5\n", None, r"train\.csv:2: empty id"),
        ("", None, r"train\.csv lists no images"),
        ("a1,,5\n", "", r"train_clean\.csv lists no images"),
        ("a1,,5\n", "five,a1\n", r"train_clean\.csv:2: landmark_id must be an integer, got 'five'"),
        (
            "a1,,5\nb2,,5\n",
            "5,a1\n5,b2\n",
            r"train_clean\.csv:3: landmark_id 5 is listed again \(first on line 2\)",
        ),
        ("a1,,5\n", "5,a1\n6,a1\n", r"train_clean\.csv:3: image a1 is listed under two landmarks"),
        (
            "a1,,5\n",
            "6,a1\n",
            r"1 images of .*train_clean\.csv are listed under another landmark .* a1: 6 there, 5",
        ),
        ("a1,,5\n", "6,zz\n", r"no training images are left"),
    ],
    ids=[
        "conflicting-label",
        "non-numeric-label",
        "empty-id",
        "header-only-train",
        "header-only-clean",
        "non-numeric-clean-label",
        "repeated-clean-landmark",
        "image-under-two-landmarks",
        "clean-disagrees-with-train",
        "nothing-left",
    ],
)
def test_faulty_csv_files_are_refused_naming_the_file_and_line(tmp_path, train, clean, message):
    write_csvs(tmp_path, train, clean)
    with pytest.raises(ValueError, match=message):
        load_gldv2_train(tmp_path, clean=clean is not None, min_images_per_landmark=1, verify_files=False)


def test_a_repeated_row_with_the_same_label_is_skipped_and_counted(tmp_path, caplog):
    write_csvs(tmp_path, f"{make_id(1)},,5\n{make_id(2)},,5\n{make_id(1)},,5\n")
    with caplog.at_level(logging.WARNING, logger="datamodules.formats.gldv2"):
        images, report = load_gldv2_train(tmp_path, clean=False, verify_files=False)
    assert images.ids == [make_id(1), make_id(2)] and report.rows == 2
    assert "skipped 1 rows that repeat an earlier id" in caplog.text
