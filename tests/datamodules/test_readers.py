"""Readers of the real file formats (Revisited with R1M, GLDv2 retrieval, folders, the real-photo gt.json) on
fixtures in those formats; missing images are counted and named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datamodules.formats.folders import load_folder, load_realphotos
from datamodules.formats.gldv2 import load_gldv2_retrieval
from datamodules.formats.revisited import load_revisited
from datamodules.formats.sources import load_benchmark
from tests.datamodules.format_fixtures import (
    GLDV2_INDEX,
    GLDV2_TEST,
    REVISITED_IMAGES,
    REVISITED_QUERIES,
    gldv2_image,
    write_csv,
    write_gldv2,
    write_image,
    write_revisited,
)


def test_load_revisited(tmp_path: Path) -> None:
    folder = write_revisited(tmp_path)
    benchmark = load_revisited(tmp_path, "roxford5k")
    assert benchmark.name == "roxford5k" and benchmark.protocol == "revisited"
    assert benchmark.query_ids == REVISITED_QUERIES
    assert benchmark.query_paths[0] == folder / "jpg" / "all_souls_000013.jpg"
    assert benchmark.database_paths[3] == folder / "jpg" / "radcliffe_000001.jpg"
    assert benchmark.database_ids == REVISITED_IMAGES
    assert benchmark.query_boxes == [(136.5, 34.1, 648.5, 955.7), (10.0, 20.0, 30.0, 40.0)]
    first, second = benchmark.ground_truth
    assert (first.easy.tolist(), first.hard.tolist(), first.junk.tolist()) == ([0], [1], [4])
    assert (second.easy.tolist(), second.hard.tolist(), second.junk.tolist()) == ([2], [], [3, 4])


def test_load_revisited_with_r1m_distractors(tmp_path: Path) -> None:
    write_revisited(tmp_path)
    r1m = tmp_path / "revisitop1m"
    lines = ["0/00/00000aaaa.jpg", "0/01/00001bbbb"]  # listed with and without extension
    for line in ("0/00/00000aaaa.jpg", "0/01/00001bbbb.jpg"):
        write_image(r1m / "jpg" / line)
    (r1m / "revisitop1m.txt").write_text("\n".join(lines) + "\n")
    benchmark = load_benchmark("roxford5k+1m", tmp_path)
    assert benchmark.name == "roxford5k+1m"
    assert benchmark.num_database == len(REVISITED_IMAGES) + 2
    assert benchmark.database_paths[-1] == r1m / "jpg" / "0/01/00001bbbb.jpg"
    # gnd indices still point at the original images.
    assert benchmark.database_ids[int(benchmark.ground_truth[0].easy[0])] == "all_souls_000001"


def test_load_revisited_reports_missing_images(tmp_path: Path) -> None:
    folder = write_revisited(tmp_path)
    (folder / "jpg" / "bodleian_000001.jpg").unlink()
    (folder / "jpg" / "magdalen_1.jpg").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"2 of 5 listed images are missing \(first: .*bodleian_000001"
    ):
        load_revisited(tmp_path, "roxford5k")


def test_load_revisited_without_gnd_says_how_to_download(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"datamodules\.download rparis6k"):
        load_revisited(tmp_path, "rparis6k")


# --- GLDv2 reader -----------------------------------------------------------------------------------------


def test_load_gldv2_retrieval(tmp_path: Path) -> None:
    root = write_gldv2(tmp_path / "gldv2")
    benchmark = load_benchmark("gldv2", tmp_path)
    assert benchmark.protocol == "gldv2"
    # Ignored rows and rows whose images are "None" are not queries.
    assert benchmark.query_ids == [GLDV2_TEST[0], GLDV2_TEST[2]]
    assert benchmark.database_ids == GLDV2_INDEX
    assert [truth.easy.tolist() for truth in benchmark.ground_truth] == [[0, 2], [3]]
    assert [truth.usage for truth in benchmark.ground_truth] == ["Public", "Private"]
    assert benchmark.query_paths[0] == root / "test" / "0" / "0" / "0" / f"{GLDV2_TEST[0]}.jpg"


def test_load_gldv2_reports_unknown_ids_and_missing_images(tmp_path: Path) -> None:
    root = write_gldv2(tmp_path)
    gldv2_image(root, "index", GLDV2_INDEX[1]).unlink()
    with pytest.raises(FileNotFoundError, match="1 of 4 listed images are missing"):
        load_gldv2_retrieval(root)
    write_csv(
        root / "retrieval_solution_v2.1.csv",
        ["id", "images", "Usage"],
        [[GLDV2_TEST[0], "feedfeedfeedfeed", "Public"]],
    )
    with pytest.raises(ValueError, match=r"1 ground-truth ids are not in index\.csv"):
        load_gldv2_retrieval(root)
    write_csv(
        root / "retrieval_solution_v2.1.csv",
        ["id", "images", "Usage"],
        [[GLDV2_TEST[0], GLDV2_INDEX[0], "Secret"]],
    )
    with pytest.raises(ValueError, match="unknown Usage"):
        load_gldv2_retrieval(root)


# --- folder and real-photo readers ------------------------------------------------------------------------


def test_load_folder_leave_one_out(tmp_path: Path) -> None:
    for relative in (
        "eiffel/a.jpg",
        "eiffel/b.jpg",
        "eiffel/c.JPG",
        "louvre/x.jpg",
        "louvre/y.png",
        "distractors/n.jpg",
    ):
        write_image(tmp_path / relative)
    (tmp_path / "eiffel" / "notes.txt").write_text("not an image")
    benchmark = load_benchmark("folder", tmp_path)
    assert benchmark.protocol == "plain"
    assert benchmark.query_ids == [
        "eiffel/a.jpg",
        "eiffel/b.jpg",
        "eiffel/c.JPG",
        "louvre/x.jpg",
        "louvre/y.png",
    ]
    assert benchmark.database_ids == [*benchmark.query_ids, "distractors/n.jpg"]
    # Query b (index 1): positives a and c, itself junk.
    assert benchmark.ground_truth[1].easy.tolist() == [0, 2]
    assert benchmark.ground_truth[1].junk.tolist() == [1]
    assert benchmark.ground_truth[4].easy.tolist() == [3]


def test_load_folder_without_landmarks_is_refused(tmp_path: Path) -> None:
    write_image(tmp_path / "distractors" / "n.jpg")
    with pytest.raises(ValueError, match="no landmark subfolder"):
        load_folder(tmp_path)


def test_load_realphotos_fixture_with_ignore(tmp_path: Path) -> None:
    gt = {
        "scenes": {
            "tower": ["images/tower/000.jpg", "images/tower/001.jpg", "images/tower/002.jpg"],
            "bridge": ["images/bridge/000.jpg", "images/bridge/001.jpg"],
        },
        "ignore": {"tower": ["images/tower/002.jpg", "images/distractors/0001.jpg"]},
        "distractors": ["images/distractors/0000.jpg", "images/distractors/0001.jpg"],
        "sources": {},
    }
    for paths in (*gt["scenes"].values(), gt["distractors"]):
        for relative in paths:
            write_image(tmp_path / relative)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    benchmark = load_realphotos(tmp_path)
    assert benchmark.num_queries == 5 and benchmark.num_database == 7
    # Database: tower 0-2, bridge 3-4, distractors 5-6. Query tower/000: positive tower/001 only; junk is
    # itself and the ignored tower/002 and distractor 0001.
    assert benchmark.ground_truth[0].easy.tolist() == [1]
    assert benchmark.ground_truth[0].junk.tolist() == [0, 2, 6]
    # The ignored photo is still a query; its positives are the non-ignored tower photos.
    assert benchmark.ground_truth[2].easy.tolist() == [0, 1]
    assert benchmark.ground_truth[3].easy.tolist() == [4]


def test_unknown_benchmark_name() -> None:
    with pytest.raises(ValueError, match="unknown benchmark"):
        load_benchmark("oxford105k", Path("."))


def test_a_gt_json_folder_keeps_ignored_only_photos_in_the_database_and_crops_boxed_queries(
    tmp_path: Path,
) -> None:
    gt = {
        "scenes": {"tower": ["tower/0.jpg", "tower/1.jpg"], "bridge": ["bridge/0.jpg", "bridge/1.jpg"]},
        "ignore": {"tower": ["blurry/0.jpg"]},  # listed nowhere else: a database image junk for tower queries
        "distractors": ["other/0.jpg"],
        "boxes": {"bridge/1.jpg": [1, 1, 6, 5]},
    }
    for relative in [
        "tower/0.jpg",
        "tower/1.jpg",
        "bridge/0.jpg",
        "bridge/1.jpg",
        "blurry/0.jpg",
        "other/0.jpg",
    ]:
        write_image(tmp_path / relative)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    benchmark = load_folder(tmp_path, name="mine")
    assert benchmark.name == "mine" and benchmark.num_queries == 4 and benchmark.num_database == 6
    assert benchmark.database_ids == [
        "tower/0.jpg",
        "tower/1.jpg",
        "bridge/0.jpg",
        "bridge/1.jpg",
        "other/0.jpg",
        "blurry/0.jpg",
    ]
    blurry = benchmark.database_ids.index("blurry/0.jpg")
    assert blurry in benchmark.ground_truth[0].junk and blurry not in benchmark.ground_truth[2].junk
    assert benchmark.query_boxes == [None, None, None, (1.0, 1.0, 6.0, 5.0)]
    (tmp_path / "gt.json").write_text(json.dumps({**gt, "boxes": {"other/0.jpg": [0, 0, 1, 1]}}))
    with pytest.raises(ValueError, match="'boxes' names photos that are no query"):
        load_folder(tmp_path)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    assert load_benchmark("folder", tmp_path).num_database == 6
