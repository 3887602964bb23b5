"""Dataset analysis and data filters: every detector on crafted files, the aggregate numbers on fixtures with
hand-computed answers, multi-index hashing against brute force, resuming after an interruption, and an end-to-end
run on a generated demo whose counts must equal the generator's noise manifest."""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import ExifTags, Image

from datamodules.analysis import scan
from datamodules.analysis.flags import FLAG_COLUMNS, SCAN_COLUMNS
from datamodules.analysis.image_properties import ImageAnalysisSettings, ImageProperties, analyze_image
from datamodules.analysis.noisy_labels import NoisyLabelSettings, medoid_distances
from datamodules.analysis.scan import scan_images, scan_row
from datamodules.analysis.statistics import (
    DatasetStatistics,
    gini,
    landmark_distribution,
    parse_exif_datetime,
    season,
    time_of_day,
)
from datamodules.demo import DEMO_SCALES, generate_demo
from datamodules.filters import DataFilters
from datamodules.formats.gldv2 import load_gldv2_train, read_train_clean_csv, read_train_csv
from experiments.analyze_dataset import AnalysisOutputs, analyze_dataset, run
from retrieval.descriptor.extract import ExtractionSettings
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.duplicates import (
    choose_num_bands,
    dct_matrix,
    duplicate_representatives,
    hamming_distances,
    near_duplicate_pairs,
    perceptual_hash,
)
from tests.conftest import REPO_ROOT

SEPIA = np.array([1.07, 0.95, 0.76])


# ----------------------------------------------------------------------------------------------------------------
# Crafted images
# ----------------------------------------------------------------------------------------------------------------


def colour_photo(seed: int, width: int = 160, height: int = 120) -> np.ndarray:
    """A smooth random colour field with fine detail (H, W, 3) uint8: colourful and full of structure."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


def jpeg_bytes(image: Image.Image, quality: int = 90, exif: Image.Exif | None = None) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, exif=exif if exif is not None else b"")
    return buffer.getvalue()


def save_jpeg(path: Path, image: Image.Image, quality: int = 90, exif: Image.Exif | None = None) -> Path:
    path.write_bytes(jpeg_bytes(image, quality, exif))
    return path


def test_colour_photo_is_neither_grayscale_nor_near_grayscale(tmp_path: Path) -> None:
    properties = analyze_image(save_jpeg(tmp_path / "colour.jpg", Image.fromarray(colour_photo(0))))
    assert (properties.grayscale, properties.near_grayscale, properties.cmyk, properties.bits16) == (
        False,
        False,
        False,
        False,
    )
    assert (properties.format, properties.mode, properties.width, properties.height) == (
        "JPEG",
        "RGB",
        160,
        120,
    )
    assert not (properties.missing or properties.undecodable or properties.truncated)
    assert properties.phash is not None and properties.file_bytes == (tmp_path / "colour.jpg").stat().st_size


def test_grayscale_single_channel_and_saved_as_rgb(tmp_path: Path) -> None:
    gray = luma(colour_photo(1))
    single = analyze_image(save_jpeg(tmp_path / "l.jpg", Image.fromarray(gray)))
    as_rgb = analyze_image(save_jpeg(tmp_path / "rgb.jpg", Image.fromarray(np.dstack([gray, gray, gray]))))
    assert single.grayscale and single.mode == "L" and not single.near_grayscale
    assert as_rgb.grayscale and as_rgb.mode == "RGB" and not as_rgb.near_grayscale
    assert as_rgb.channel_spread is not None and as_rgb.channel_spread <= 3


def test_sepia_is_near_grayscale(tmp_path: Path) -> None:
    sepia = np.clip(luma(colour_photo(2))[..., None] * SEPIA + 6, 0, 255).astype(np.uint8)
    properties = analyze_image(save_jpeg(tmp_path / "sepia.jpg", Image.fromarray(sepia)))
    assert properties.near_grayscale and not properties.grayscale
    # A stricter tolerance than the image's residual turns the flag off: the flag is that threshold.
    assert properties.chroma_residual is not None
    strict = ImageAnalysisSettings(near_grayscale_tolerance=properties.chroma_residual / 2)
    assert not analyze_image(tmp_path / "sepia.jpg", strict).near_grayscale


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = save_jpeg(tmp_path / "cmyk.jpg", Image.fromarray(colour_photo(3)).convert("CMYK"))
    properties = analyze_image(path)
    assert properties.cmyk and properties.mode == "CMYK"
    assert not (properties.undecodable or properties.grayscale or properties.near_grayscale)


def test_sixteen_bit_pngs(tmp_path: Path) -> None:
    gray16 = (luma(colour_photo(4)).astype(np.uint16) * 257).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "gray16.png")
    cv2.imwrite(str(tmp_path / "rgb16.png"), colour_photo(5).astype(np.uint16) * 257)
    gray = analyze_image(tmp_path / "gray16.png")
    rgb = analyze_image(tmp_path / "rgb16.png")
    assert gray.bits16 and gray.grayscale and gray.mode.startswith("I")
    assert rgb.bits16 and not rgb.grayscale and rgb.format == "PNG"
    Image.fromarray(colour_photo(5)).save(tmp_path / "rgb8.png")
    assert not analyze_image(tmp_path / "rgb8.png").bits16


def test_missing_truncated_and_not_an_image(tmp_path: Path) -> None:
    encoded = jpeg_bytes(Image.fromarray(colour_photo(6)))
    (tmp_path / "truncated.jpg").write_bytes(encoded[: len(encoded) * 6 // 10])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "page.jpg").write_bytes(b"<html><body>404 Not Found</body></html>\n")
    missing = analyze_image(tmp_path / "absent.jpg")
    truncated = analyze_image(tmp_path / "truncated.jpg")
    assert missing == ImageProperties(missing=True)
    assert truncated.undecodable and truncated.truncated and truncated.format == "JPEG" and truncated.error
    assert truncated.phash is None
    for name in ("empty.jpg", "page.jpg"):
        properties = analyze_image(tmp_path / name)
        assert properties.undecodable and not properties.truncated and not properties.missing
        assert properties.format == "" and properties.file_bytes == (tmp_path / name).stat().st_size


def test_exif_date_and_camera(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Canon"
    exif[ExifTags.Base.Model] = "Canon EOS 5D Mark II"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2015:07:04 12:30:00"
    picture = Image.fromarray(colour_photo(7))
    with_exif = analyze_image(save_jpeg(tmp_path / "exif.jpg", picture, exif=exif))
    without = analyze_image(save_jpeg(tmp_path / "plain.jpg", picture))
    assert (with_exif.exif_datetime, with_exif.make, with_exif.model) == (
        "2015:07:04 12:30:00",
        "Canon",
        "Canon EOS 5D Mark II",
    )
    assert (without.exif_datetime, without.make, without.model) == ("", "", "")
    camera_only = Image.Exif()
    camera_only[ExifTags.Base.Make] = "SONY"
    dateless = analyze_image(save_jpeg(tmp_path / "dateless.jpg", picture, exif=camera_only))
    assert (dateless.exif_datetime, dateless.make) == ("", "SONY")


def test_near_duplicate_close_and_other_photo_far(tmp_path: Path) -> None:
    original = Image.fromarray(colour_photo(8, 320, 240))
    save_jpeg(tmp_path / "original.jpg", original)
    smaller = Image.open(tmp_path / "original.jpg").resize((224, 168), Image.Resampling.LANCZOS)
    save_jpeg(tmp_path / "copy.jpg", smaller, quality=60)
    save_jpeg(tmp_path / "other.jpg", Image.fromarray(colour_photo(9, 320, 240)))
    hashes = np.array(
        [analyze_image(tmp_path / name).phash for name in ("original.jpg", "copy.jpg", "other.jpg")],
        np.uint64,
    )
    assert hamming_distances(hashes[0], hashes[1]) <= 4
    assert hamming_distances(hashes[0], hashes[2]) >= 16
    pairs = np.concatenate(list(near_duplicate_pairs(hashes, radius=4)))
    assert np.unique(pairs, axis=0).tolist() == [[0, 1]]
    # The larger image is the one kept.
    assert duplicate_representatives(
        [pairs], priority=np.array([320 * 240, 224 * 168, 320 * 240])
    ).tolist() == [
        0,
        0,
        2,
    ]


# ----------------------------------------------------------------------------------------------------------------
# Hashing and near-duplicate search
# ----------------------------------------------------------------------------------------------------------------


def test_dct_matrix_is_orthonormal_and_constant_image_hash() -> None:
    matrix = dct_matrix(32)
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(32), atol=1e-12)
    # A flat image has only a DC coefficient: it alone exceeds the median (0), so only the top bit is set.
    assert perceptual_hash(Image.new("RGB", (50, 40), (90, 120, 200))) == 1 << 63
    # The hash sees luminance only: a grayscale copy hashes the same.
    photo = Image.fromarray(colour_photo(10))
    assert perceptual_hash(photo) == perceptual_hash(photo.convert("L"))


def brute_force_pairs(hashes: np.ndarray, radius: int) -> set[tuple[int, int]]:
    return {
        (first, second)
        for first in range(len(hashes))
        for second in range(first + 1, len(hashes))
        if bin(int(hashes[first]) ^ int(hashes[second])).count("1") <= radius
    }


@pytest.mark.parametrize("radius", [0, 3, 6, 10])
@pytest.mark.parametrize("num_bands", [None, 2, 3, 8])
def test_multi_index_hashing_finds_exactly_the_brute_force_pairs(radius: int, num_bands: int | None) -> None:
    rng = np.random.default_rng(radius)
    hashes = rng.integers(0, np.iinfo(np.uint64).max, 300, dtype=np.uint64, endpoint=True)
    for _ in range(60):  # plant neighbours at every distance up to radius + 2
        source, target = rng.integers(len(hashes), size=2)
        bits = rng.choice(64, size=rng.integers(0, radius + 3), replace=False)
        hashes[target] = hashes[source] ^ np.uint64(sum(1 << int(bit) for bit in bits))
    if num_bands is not None and radius // num_bands > 3:
        with pytest.raises(ValueError, match="lookups"):
            list(near_duplicate_pairs(hashes, radius, num_bands))
        return
    blocks = list(near_duplicate_pairs(hashes, radius, num_bands))
    found = {tuple(pair) for block in blocks for pair in block.tolist()}
    assert found == brute_force_pairs(hashes, radius)
    assert all(block[:, 0].max() < len(hashes) and (block[:, 0] < block[:, 1]).all() for block in blocks)


def test_choose_num_bands_grows_bands_with_the_radius_and_shrinks_them_with_the_data() -> None:
    assert choose_num_bands(1000, 0) == 1
    assert choose_num_bands(400, 4) == 5  # tiny data: exact matches on 5 narrow bands
    assert choose_num_bands(4_000_000, 4) == 3  # GLDv2: 3 wide bands, one flip each
    with pytest.raises(ValueError):
        choose_num_bands(10, 65)
    with pytest.raises(ValueError, match="uint64"):
        list(near_duplicate_pairs(np.arange(4), 2))


def test_duplicate_groups_are_connected_components_kept_by_priority() -> None:
    pairs = [np.array([[0, 1], [1, 2]]), np.array([[4, 5], [0, 1]])]
    priority = np.array([10, 50, 50, 7, 1, 2])
    # {0, 1, 2}: 1 and 2 tie on priority, the lower index wins; {3} alone; {4, 5}: 5 is larger.
    assert duplicate_representatives(pairs, priority).tolist() == [1, 1, 1, 3, 5, 5]
    with pytest.raises(ValueError, match="pair indices"):
        duplicate_representatives([np.array([[0, 6]])], priority)


# ----------------------------------------------------------------------------------------------------------------
# Aggregate numbers
# ----------------------------------------------------------------------------------------------------------------


def test_gini_hand_computed() -> None:
    assert gini(np.array([3, 3, 3, 3])) == 0
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(0.75)  # (N - 1) / N
    # Sum over ordered pairs of |x_i - x_j| is 100, 2 N^2 mean = 2 * 25 * 4 = 200.
    assert gini(np.array([12, 1, 4, 1, 2])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="non-negative"):
        gini(np.array([-1, 2]))


def test_landmark_distribution_head_and_tail_shares() -> None:
    result = landmark_distribution(
        np.array([1, 1, 2, 4, 12]), head_fractions=(0.2, 0.5), tail_sizes=(1, 2, 5)
    )
    assert result["landmarks"] == 5 and result["images"] == 20
    assert result["gini"] == pytest.approx(0.5)
    assert (result["mean"], result["median"], result["max"]) == (4.0, 2.0, 12)
    assert result["head_20%_image_share"] == pytest.approx(12 / 20)  # 1 landmark
    assert result["head_50%_image_share"] == pytest.approx(18 / 20)  # ceil(2.5) = 3 landmarks: 12 + 4 + 2
    assert result["tail_<=1_landmark_share"] == pytest.approx(2 / 5)
    assert result["tail_<=1_image_share"] == pytest.approx(2 / 20)
    assert result["tail_<=2_landmark_share"] == pytest.approx(3 / 5)
    assert result["tail_<=2_image_share"] == pytest.approx(4 / 20)
    assert result["tail_<=5_image_share"] == pytest.approx(8 / 20)


def test_time_of_day_season_and_exif_parsing() -> None:
    buckets = {hour: time_of_day(hour) for hour in range(24)}
    assert [hour for hour, bucket in buckets.items() if bucket == "morning"] == [6, 7, 8, 9, 10]
    assert [hour for hour, bucket in buckets.items() if bucket == "noon"] == [11, 12, 13]
    assert [hour for hour, bucket in buckets.items() if bucket == "afternoon"] == [14, 15, 16, 17, 18]
    assert [hour for hour, bucket in buckets.items() if bucket == "night"] == [
        0,
        1,
        2,
        3,
        4,
        5,
        19,
        20,
        21,
        22,
        23,
    ]
    assert [season(month) for month in range(1, 13)] == ["winter"] * 2 + ["spring"] * 3 + ["summer"] * 3 + [
        "autumn"
    ] * 3 + ["winter"]
    assert (
        parse_exif_datetime("2015:07:04 12:30:00") == parse_exif_datetime("2015-07-04 12:30:00") is not None
    )
    for invalid in ("", "0000:00:00 00:00:00", "2015:13:01 10:00:00", "yesterday"):
        assert parse_exif_datetime(invalid) is None
    with pytest.raises(ValueError):
        time_of_day(24)
    with pytest.raises(ValueError):
        season(0)


def test_dataset_statistics_on_a_fixture() -> None:
    photo = ImageProperties(format="JPEG", mode="RGB", width=400, height=300, phash=1)

    def taken(when: str) -> ImageProperties:
        return dataclasses.replace(photo, exif_datetime=when)

    rows = [
        scan_row("a", 1, True, taken("2010:07:15 06:00:00")),  # morning, summer
        scan_row("b", 1, True, taken("2012:12:01 10:59:59")),  # morning, winter
        scan_row("c", 1, False, taken("2012:03:01 11:00:00")),  # noon, spring
        scan_row("d", 2, True, taken("2015:10:10 14:00:00")),  # afternoon, autumn
        scan_row("e", 2, False, taken("2015:01:01 19:00:00")),  # night, winter
        scan_row("f", 3, True, taken("0000:00:00 00:00:00")),  # invalid
        scan_row("g", 3, False, dataclasses.replace(photo, mode="L", grayscale=True, make="Canon")),
        scan_row("h", 4, False, ImageProperties(missing=True)),
        scan_row("i", 4, False, ImageProperties(undecodable=True, truncated=True, format="JPEG", mode="RGB")),
        scan_row("j", 4, False, ImageProperties(undecodable=True, file_bytes=0)),
    ]
    statistics = DatasetStatistics()
    for row in rows:
        statistics.add(dict(zip(SCAN_COLUMNS, row, strict=True)))
    summary = statistics.summary()
    assert (summary["rows"], summary["decodable"]) == (10, 7)
    assert summary["files"] == {"missing": 1, "undecodable": 2, "truncated": 1, "not_an_image": 1}
    assert summary["colour"]["grayscale"] == 1 and summary["colour"]["grayscale_single_channel"] == 1
    assert summary["landmarks"]["landmarks"] == 4 and summary["landmarks"]["gini"] == pytest.approx(0.1)
    exif = summary["exif"]
    assert (exif["with_datetime"], exif["invalid_datetime"]) == (5, 1)
    assert exif["years"] == {2010: 1, 2012: 2, 2015: 2}
    assert exif["time_of_day"] == {"morning": 2, "noon": 1, "afternoon": 1, "night": 1}
    assert exif["seasons"] == {"winter": 2, "spring": 1, "summer": 1, "autumn": 1}
    assert exif["makes"] == {"Canon": 1} and exif["with_model"] == 0
    clean = summary["clean"]
    assert (clean["images"], clean["landmarks"]) == (4, 3)
    assert clean["image_share"] == pytest.approx(0.4) and clean["landmark_share"] == pytest.approx(0.75)
    assert summary["sizes"]["landscape"] == 7 and summary["sizes"]["aspect_ratio"]["median"] == pytest.approx(
        4 / 3
    )


def test_medoid_distances_hand_made() -> None:
    east, north, up = np.eye(3, dtype=np.float32)
    near_east = np.array([0.8, 0.0, 0.6], np.float32)
    descriptors = np.stack([east, east, near_east, north, up, up, east, north])
    labels = np.array([7, 7, 7, 7, 8, 8, 9, 9])
    valid = np.array([True, True, True, True, True, True, True, False])
    scores = medoid_distances(descriptors, labels, valid, min_images=3)
    # Landmark 7's medoid is an `east` image (summed similarity 1 + 1 + 0.8 + 0): the outlier `north` scores 1.
    np.testing.assert_allclose(scores[:4], [0, 0, 0.2, 1], atol=1e-6)
    assert np.isnan(scores[4:]).all()  # landmark 8 has two images, landmark 9 one valid image
    with pytest.raises(ValueError, match="same length"):
        medoid_distances(descriptors, labels[:3], valid)


def test_noisy_label_threshold_adapts_to_the_scores() -> None:
    scores = np.array([0.10, 0.12, 0.14, 0.16, 0.18, 0.9, np.nan])
    # median 0.15, median absolute deviation 0.03.
    assert NoisyLabelSettings(outlier_deviations=2).threshold_for(scores) == pytest.approx(
        0.15 + 2 * 1.4826 * 0.03
    )
    assert NoisyLabelSettings(threshold=0.4).threshold_for(scores) == 0.4
    with pytest.raises(ValueError, match="cosine distance"):
        NoisyLabelSettings(threshold=3)


# ----------------------------------------------------------------------------------------------------------------
# Scans of generated demos
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny demo: 10 landmarks of 3-5 views at 160-200 pixels, one of every kind of noise."""
    root = tmp_path_factory.mktemp("analysis_demo")
    config = dataclasses.replace(
        DEMO_SCALES["tiny"],
        min_train_images_per_landmark=3,
        max_train_images_per_landmark=5,
        num_missing=2,
        num_near_duplicates=2,
        num_index_landmarks=1,
        min_index_images_per_landmark=1,
        max_index_images_per_landmark=1,
        num_index_distractors=1,
        min_test_queries_per_landmark=1,
        max_test_queries_per_landmark=1,
        num_test_non_landmark=1,
        num_rdemo_landmarks=1,
        rdemo_easy_per_landmark=1,
        num_rdemo_distractors=1,
    )
    generate_demo(root, config, seed=0)
    return root


@pytest.fixture(scope="module")
def demo_analysis(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> AnalysisOutputs:
    """The analysis of the demo in two worker processes (the parallel path), chunks of 16 images."""
    return analyze_dataset(
        demo, tmp_path_factory.mktemp("analysis_run"), chunk_size=16, num_workers=2, progress=False
    )


def read_flags(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_analysis_finds_exactly_the_noise_the_demo_planted(
    demo: Path, demo_analysis: AnalysisOutputs
) -> None:
    manifest = json.loads((demo / "noise_manifest.json").read_text())
    flags = read_flags(demo_analysis.flags_file)
    assert [row["id"] for row in flags] == [image_id for image_id, _ in read_train_csv(demo / "train.csv")]

    def flagged(column: str) -> list[str]:
        return sorted(row["id"] for row in flags if row[column] == "1")

    assert flagged("grayscale") == manifest["grayscale"]
    assert flagged("near_grayscale") == manifest["near_grayscale"]
    assert flagged("cmyk") == manifest["cmyk"]
    assert flagged("missing") == manifest["missing"]
    assert flagged("undecodable") == manifest["corrupt"]
    assert len(flagged("truncated")) == 1  # of the three corrupt files, only the truncated JPEG has a header
    assert {row["id"]: row["near_duplicate_of"] for row in flags if row["near_duplicate_of"]} == manifest[
        "near_duplicate"
    ]
    assert {row["id"]: row["exif_datetime"] for row in flags if row["exif_datetime"]} == manifest[
        "exif_datetime"
    ]
    assert {row["id"]: f"{row['make']} {row['model']}" for row in flags if row["make"]} == manifest["camera"]
    clean_ids = {
        image_id for ids in read_train_clean_csv(demo / "train_clean.csv").values() for image_id in ids
    }
    assert {row["id"] for row in flags if row["in_clean"] == "1"} == clean_ids

    counts = manifest["counts"]
    summary = json.loads(demo_analysis.summary_file.read_text())
    assert summary["rows"] == counts["train_rows"]
    assert summary["files"]["missing"] == counts["missing"]
    assert summary["files"]["undecodable"] == counts["corrupt"]
    assert summary["colour"]["grayscale"] == counts["grayscale"]
    assert summary["colour"]["grayscale_single_channel"] == counts["grayscale_single_channel"]
    assert summary["colour"]["near_grayscale"] == counts["near_grayscale"]
    assert summary["colour"]["cmyk"] == counts["cmyk"]
    assert summary["near_duplicates"]["images_flagged"] == counts["near_duplicate"]
    assert summary["exif"]["with_datetime"] == counts["exif_datetime"]
    assert summary["exif"]["with_make"] == counts["camera"]
    assert summary["clean"]["images"] == counts["train_clean_images"]
    assert summary["landmarks"]["landmarks"] == counts["train_landmarks"]


def test_report_embeds_its_plots(demo_analysis: AnalysisOutputs) -> None:
    report = demo_analysis.report_file.read_text()
    assert {"landmark_long_tail", "flags", "image_sizes", "exif_time", "cameras"} <= set(demo_analysis.plots)
    for path in demo_analysis.plots.values():
        assert f"]({path.name})" in report
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Gini" in report and "Not computed: no checkpoint was given" in report  # said, not silent


class Interrupted(Exception):
    """Stands for a crash or Ctrl-C in the middle of a scan."""


def test_interrupted_scan_resumes_to_the_same_flags(
    demo: Path, demo_analysis: AnalysisOutputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    analyzed_chunks: list[int] = []
    original = scan.analyze_chunk

    def interrupted(task: scan.ChunkTask) -> list[list[str]]:
        if len(analyzed_chunks) == 2:
            raise Interrupted
        analyzed_chunks.append(len(task.rows))
        return original(task)

    monkeypatch.setattr(scan, "analyze_chunk", interrupted)
    with pytest.raises(Interrupted):
        analyze_dataset(demo, tmp_path, chunk_size=16, num_workers=0, progress=False)
    assert len(list((tmp_path / "chunks").glob("*.csv"))) == 2 and not (tmp_path / "flags.csv").exists()

    def counted(task: scan.ChunkTask) -> list[list[str]]:
        analyzed_chunks.append(len(task.rows))
        return original(task)

    monkeypatch.setattr(scan, "analyze_chunk", counted)
    resumed = analyze_dataset(demo, tmp_path, chunk_size=16, num_workers=0, progress=False)
    num_rows = json.loads(demo_analysis.summary_file.read_text())["rows"]
    assert sum(analyzed_chunks) == num_rows  # every image analysed once over both runs
    assert resumed.flags_file.read_bytes() == demo_analysis.flags_file.read_bytes()
    with pytest.raises(ValueError, match="chunk_size changed"):
        scan_images(demo, tmp_path, chunk_size=8, num_workers=0, progress=False)


def test_noisy_label_scores_from_a_checkpoint(demo: Path, tmp_path: Path) -> None:
    torch_net = GlobalDescriptorNet(backbone="resnet10t", pooling="gem", pretrained=False)
    torch_net.save(tmp_path / "net.pt")
    analyze = functools.partial(
        analyze_dataset,
        demo,
        tmp_path / "run",
        ckpt_path=tmp_path / "net.pt",
        extraction=ExtractionSettings(max_side=64, scales=(1.0,), batch_size=16, num_workers=0),
        noisy_labels=NoisyLabelSettings(block_size=20),
        num_workers=0,
        device="cpu",
        progress=False,
    )
    outputs = analyze()
    flags = read_flags(outputs.flags_file)
    threshold = outputs.summary["noisy_labels"]["threshold"]
    decodable_per_landmark: dict[str, int] = {}
    for row in flags:
        if row["missing"] == row["undecodable"] == "0":
            decodable_per_landmark[row["landmark_id"]] = decodable_per_landmark.get(row["landmark_id"], 0) + 1
    for row in flags:
        scored = (
            row["missing"] == row["undecodable"] == "0" and decodable_per_landmark[row["landmark_id"]] >= 3
        )
        assert bool(row["noisy_label_score"]) == scored
        if scored:
            assert row["noisy_label"] == str(int(float(row["noisy_label_score"]) > threshold))
    lowest_score: dict[str, float] = {}
    for row in flags:
        if row["noisy_label_score"]:
            score = float(row["noisy_label_score"])
            lowest_score[row["landmark_id"]] = min(score, lowest_score.get(row["landmark_id"], score))
    assert max(lowest_score.values()) < 1e-3  # every scored landmark contains its medoid
    assert outputs.plots["noisy_label_scores"].is_file()
    rerun = analyze()  # descriptor blocks reused
    assert rerun.flags_file.read_bytes() == outputs.flags_file.read_bytes()


def test_command_line_config_runs_the_analysis(demo: Path, tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "analyze",
            overrides=[
                f"data.split.root={demo}",
                f"paths.output_dir={tmp_path}",
                "logger=none",
                "num_workers=0",
            ],
        )
        default_root = compose("analyze", overrides=["data=gldv2"]).data_root
    assert default_root.endswith("/gldv2")
    outputs = run(cfg)
    assert outputs.output_dir == tmp_path and outputs.flags_file.is_file() and outputs.report_file.is_file()


# ----------------------------------------------------------------------------------------------------------------
# Filters
# ----------------------------------------------------------------------------------------------------------------


def clean_filters(
    flags_file: Path,
    drop_near_grayscale: bool = True,
    drop_undecodable: bool = True,
    drop_near_duplicates: bool = True,
    drop_noisy_labels: bool = False,
    noisy_label_threshold: float | None = None,
) -> DataFilters:
    """The `clean` preset on ``flags_file``, with changes."""
    return DataFilters(
        flags_file=str(flags_file),
        drop_grayscale=True,
        drop_near_grayscale=drop_near_grayscale,
        drop_undecodable=drop_undecodable,
        drop_near_duplicates=drop_near_duplicates,
        drop_noisy_labels=drop_noisy_labels,
        noisy_label_threshold=noisy_label_threshold,
    )


def test_filters_drop_exactly_what_the_flags_say(
    demo: Path, demo_analysis: AnalysisOutputs, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = json.loads((demo / "noise_manifest.json").read_text())
    with caplog.at_level(logging.INFO, logger="datamodules.filters"):
        excluded = clean_filters(demo_analysis.flags_file).excluded_ids()
    planted = {
        *manifest["grayscale"],
        *manifest["near_grayscale"],
        *manifest["corrupt"],
        *manifest["missing"],
        *manifest["near_duplicate"],
    }
    assert excluded == planted
    [line] = [record.getMessage() for record in caplog.records if record.name == "datamodules.filters"]
    rows = manifest["counts"]["train_rows"]
    assert f"keeping {rows - len(planted)} of {rows} images, dropping {len(planted)}" in line
    assert f"grayscale {len(manifest['grayscale'])}," in line
    assert f"near_duplicate {len(manifest['near_duplicate'])}" in line

    only_grayscale = clean_filters(
        demo_analysis.flags_file,
        drop_near_grayscale=False,
        drop_undecodable=False,
        drop_near_duplicates=False,
    )
    assert only_grayscale.excluded_ids() == set(manifest["grayscale"])
    images, _ = load_gldv2_train(demo, clean=False, min_images_per_landmark=1, exclude_ids=excluded)
    assert not set(images.ids) & planted


def test_filters_on_noisy_labels(tmp_path: Path) -> None:
    flags = tmp_path / "flags.csv"
    with open(flags, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FLAG_COLUMNS)
        for image_id, score, noisy in (
            ("a", "0.10", "0"),
            ("b", "0.35", "1"),
            ("c", "0.60", "1"),
            ("d", "", ""),
        ):
            values = dict.fromkeys(FLAG_COLUMNS, "0") | {
                "id": image_id,
                "near_duplicate_of": "",
                "noisy_label_score": score,
                "noisy_label": noisy,
            }
            writer.writerow([values[column] for column in FLAG_COLUMNS])
    assert clean_filters(flags, drop_noisy_labels=True).excluded_ids() == {
        "b",
        "c",
    }  # the analysis' threshold
    assert clean_filters(flags, drop_noisy_labels=True, noisy_label_threshold=0.5).excluded_ids() == {"c"}
    assert clean_filters(flags).excluded_ids() == frozenset()
    with pytest.raises(ValueError, match="no effect"):
        clean_filters(flags, noisy_label_threshold=0.5)


def test_filters_refuse_bad_flags_files(demo: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="analyze_dataset"):
        clean_filters(tmp_path / "absent.csv").excluded_ids()
    with pytest.raises(ValueError, match="not a flags file"):
        clean_filters(demo / "train.csv").excluded_ids()
    unscored = tmp_path / "unscored.csv"
    unscored.write_text(",".join(FLAG_COLUMNS) + "\n")
    with pytest.raises(ValueError, match="no noisy-label scores"):
        clean_filters(unscored, drop_noisy_labels=True).excluded_ids()


def test_training_data_uses_the_filters(demo: Path, demo_analysis: AnalysisOutputs, tmp_path: Path) -> None:
    """`python train.py filters=clean filters.flags_file=...` trains on the filtered set; `+filters=clean`,
    which Hydra would suggest, is refused rather than ignored."""
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"data.split.root={demo}",
                "data.split.clean=false",
                f"paths.output_dir={tmp_path}",
                "filters=clean",
                f"filters.flags_file={demo_analysis.flags_file}",
            ],
        )
        with pytest.raises(ConfigCompositionException):
            compose("train", overrides=["+filters=clean"])
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    training_ids = set(datamodule.train_images.ids) | set(datamodule.val_images.ids)
    excluded = clean_filters(demo_analysis.flags_file).excluded_ids()
    all_ids = {image_id for image_id, _ in read_train_csv(demo / "train.csv")}
    assert excluded and training_ids == all_ids - excluded


@pytest.mark.parametrize("preset", ["clean", "strict"])
def test_filter_presets_instantiate(preset: str, demo_analysis: AnalysisOutputs) -> None:
    config = OmegaConf.load(REPO_ROOT / "conf" / "filters" / f"{preset}.yaml")
    config.flags_file = str(demo_analysis.flags_file)
    filters = instantiate(config)
    assert isinstance(filters, DataFilters) and filters.drop_grayscale and filters.drop_undecodable
    assert filters.drop_noisy_labels == (preset == "strict")
