"""The study building blocks against crafted cases, hand-computed sizes and direct calls, and one run of each
Hydra study (RQ3, RQ4, the thesis table) on the tiny demo."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from experiments.study_outputs import markdown_table
from retrieval.benchmark import QueryGroundTruth, RetrievalBenchmark
from retrieval.cnn_patches import CnnPatchExtractor, cnn_patch_features
from retrieval.codebook import (
    asmk_bytes_per_image,
    bow_bytes_per_image,
    codebook_descriptors,
    codebook_retrieval,
    dense_bytes_per_image,
)
from retrieval.evaluation import (
    BenchmarkResult,
    benchmark_feature_store,
    evaluate_reranking,
    query_local_features,
    shortlist_positions,
)
from retrieval.feature_store import StoreMetadata, local_feature_bytes_per_image
from retrieval.local_features import LocalFeatureExtractor
from retrieval.metrics import evaluate_ranking
from retrieval.network import GlobalDescriptorNet
from retrieval.rerank import (
    DelgRerank,
    FusionRerank,
    GlobalPlusInliersRerank,
    InliersRerank,
)
from retrieval.vocabulary import (
    TwoLevelVocabulary,
    VisualVocabulary,
    VocabularySettings,
    allocate_words,
    effective_num_words,
    train_vocabulary,
)
from tests.conftest import REPO_ROOT
from tests.test_local_features import textured_scene
from tests.test_matching import WARP

EXTRACTOR = LocalFeatureExtractor("rootsift", max_keypoints=400, max_side=1024)
VERIFIED_METHODS = {
    "inliers": InliersRerank(),
    "fusion": FusionRerank(alpha=0.5),
    "fusion_ratio": FusionRerank(local_score="match_ratio", alpha=0.3),
    "delg": DelgRerank(),
    "global_plus_inliers": GlobalPlusInliersRerank(),
}


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    """A one-query plain benchmark whose only positive (a warped view of the query) is ranked second by the
    global ranking, after an unrelated scene; and its database feature store."""
    folder = tmp_path_factory.mktemp("crafted")
    query_scene = textured_scene(20)
    images = {
        "query": query_scene,
        "false_match": textured_scene(21),
        "true_match": cv2.warpPerspective(query_scene, WARP, (512, 384)),
        "other": textured_scene(22),
    }
    for name, image in images.items():
        Image.fromarray(image).save(folder / f"{name}.png")
    database = ["false_match", "true_match", "other"]
    benchmark = RetrievalBenchmark(
        name="crafted",
        protocol="plain",
        query_paths=[folder / "query.png"],
        database_paths=[folder / f"{name}.png" for name in database],
        ground_truth=[QueryGroundTruth(easy=np.array([1]))],
        query_ids=["query"],
        database_ids=database,
        query_boxes=[None],
    )
    global_result = BenchmarkResult(
        metrics={}, ranking=np.array([[0, 1, 2]]), scores=np.array([[0.9, 0.8, 0.7]], np.float32)
    )
    store = benchmark_feature_store(benchmark, EXTRACTOR, folder / "stores", progress=False)
    return benchmark, global_result, store


def test_inlier_reranking_lifts_the_true_match_the_global_ranking_put_second(crafted):
    benchmark, global_result, store = crafted
    global_map = evaluate_ranking(global_result.ranking, benchmark)["mAP"]
    assert global_map == pytest.approx(0.25)  # one positive at rank 2: (0/1 + 1/2) / 2
    query_features = query_local_features(benchmark, EXTRACTOR, store)
    results = evaluate_reranking(benchmark, global_result, query_features, store, VERIFIED_METHODS, top_k=3)
    for name, result in results.items():
        assert result.metrics["mAP"] >= global_map, name
        assert sorted(result.ranking[0]) == [0, 1, 2]
        assert result.median_ms_per_query > 0
    for name in ("inliers", "fusion", "delg", "global_plus_inliers"):
        assert results[name].ranking[0, 0] == 1
        assert results[name].metrics["mAP"] == 1.0


def test_methods_sharing_a_rerank_call_rank_as_their_own_call_would(crafted):
    benchmark, global_result, store = crafted
    query_features = query_local_features(benchmark, EXTRACTOR, store)
    shared = evaluate_reranking(benchmark, global_result, query_features, store, VERIFIED_METHODS, top_k=2)
    for name, config in VERIFIED_METHODS.items():
        alone = evaluate_reranking(benchmark, global_result, query_features, store, {name: config}, top_k=2)
        np.testing.assert_array_equal(shared[name].ranking, alone[name].ranking)
        assert shared[name].ranking[0, 2] == 2  # beyond top_k: global order


def test_shortlists_skip_junk():
    np.testing.assert_array_equal(shortlist_positions(np.array([4, 7, 1, 3, 0]), np.array([7, 3]), 2), [0, 2])
    np.testing.assert_array_equal(shortlist_positions(np.array([4, 7]), np.array([7]), 5), [0])
    with pytest.raises(ValueError, match="top_k must be positive"):
        shortlist_positions(np.array([1]), np.array([]), 0)


def test_query_crops_are_extracted_from_the_cropped_pixels(crafted, tmp_path):
    benchmark, _, store = crafted
    box = (40.4, 30.0, 300.2, 250.9)
    cropped = EXTRACTOR.from_path(benchmark.query_paths[0], box)
    full = np.asarray(Image.open(benchmark.query_paths[0]))
    expected = EXTRACTOR(np.ascontiguousarray(full[30:251, 40:301]))
    np.testing.assert_array_equal(cropped.keypoints, expected.keypoints)
    assert cropped.image_size == (261, 221)

    # A query without a box that is a database image is read from the store; one with a box is cropped.
    as_database = RetrievalBenchmark(
        name="crafted",
        protocol="plain",
        query_paths=[benchmark.database_paths[1], benchmark.database_paths[1]],
        database_paths=benchmark.database_paths,
        ground_truth=[QueryGroundTruth(easy=np.array([0]), junk=np.array([1]))] * 2,
        query_ids=["whole", "cropped"],
        database_ids=benchmark.database_ids,
        query_boxes=[None, box],
    )
    whole, crop = query_local_features(as_database, EXTRACTOR, store)
    np.testing.assert_array_equal(whole.descriptors, store.get("true_match").descriptors)
    assert crop.image_size == (261, 221)
    with pytest.raises(ValueError, match="other features"):
        query_local_features(as_database, LocalFeatureExtractor("sift", 400, 1024), store)


def test_cnn_patches_come_from_the_feature_map_and_are_stored_once(crafted, tmp_path):
    benchmark, _, _ = crafted
    torch.manual_seed(0)
    net = GlobalDescriptorNet(backbone="tf_efficientnet_lite0", pretrained=False).eval()
    extractor = CnnPatchExtractor(net, "random-weights", max_side=128, max_keypoints=1000)
    image = Image.open(benchmark.query_paths[0]).convert("RGB")
    features = extractor(image)
    resized = image.resize((128, 96), Image.Resampling.BILINEAR)
    with torch.inference_mode():
        pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255).permute(2, 0, 1)[None]
        expected = cnn_patch_features(net.feature_map(net.normalize(pixels))[0], (128, 96))
    assert len(features) == 4 * 3  # stride 32
    np.testing.assert_allclose(features.descriptors, expected.descriptors, atol=1e-5)

    store = benchmark_feature_store(benchmark, extractor, tmp_path, progress=False)
    assert store.metadata == StoreMetadata.from_extractor(extractor) and store.metadata.method == "cnn_patch"
    shard = next(tmp_path.glob("*/shard_00000.index.json"))
    written = shard.stat().st_mtime_ns
    again = benchmark_feature_store(benchmark, extractor, tmp_path, progress=False)
    assert shard.stat().st_mtime_ns == written and len(again) == 3
    other_network = CnnPatchExtractor(net, "other-weights", max_side=128, max_keypoints=1000)
    benchmark_feature_store(benchmark, other_network, tmp_path, progress=False)
    assert len(list(tmp_path.iterdir())) == 2  # a store per network


def test_rewritten_database_files_get_a_new_store(tmp_path):
    paths = []
    for index in range(2):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(textured_scene(index, 128, 96)).save(paths[-1])
    benchmark = RetrievalBenchmark(
        name="rewritten",
        protocol="plain",
        query_paths=paths[:1],
        database_paths=paths,
        ground_truth=[QueryGroundTruth(easy=np.array([1]), junk=np.array([0]))],
        query_ids=["0"],
        database_ids=["0", "1"],
        query_boxes=[None],
    )
    first = benchmark_feature_store(benchmark, EXTRACTOR, tmp_path / "stores", progress=False)
    Image.fromarray(textured_scene(7, 128, 96)).save(paths[1])
    second = benchmark_feature_store(benchmark, EXTRACTOR, tmp_path / "stores", progress=False)
    assert first.root != second.root
    assert not np.array_equal(first.get("1").descriptors, second.get("1").descriptors)


def unit_rows(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    rows = rng.normal(size=(count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["bow", "vlad", "asmk"])
def test_codebook_retrieval_finds_each_image_from_its_own_descriptors(kind):
    # Image i: 80 descriptors, 20 around each of 4 random directions of its own.
    rng = np.random.default_rng(0)
    directions = unit_rows(rng, 24, 16)
    database = []
    for image in range(6):
        around = directions[np.repeat(np.arange(4 * image, 4 * image + 4), 20)]
        noisy = around + 0.05 * rng.normal(size=around.shape).astype(np.float32)
        database.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    vocabulary = train_vocabulary(np.concatenate(database), 24, VocabularySettings(num_iterations=10))
    result = codebook_retrieval(kind, vocabulary, database, database)
    assert result.ranking.shape == (6, 6)
    np.testing.assert_array_equal(result.ranking[:, 0], np.arange(6))
    assert all(sorted(row) == list(range(6)) for row in result.ranking.tolist())
    assert result.encode_ms_per_image > 0 and result.search_ms_per_query > 0


def test_bytes_per_image_by_hand():
    assert dense_bytes_per_image(1280) == 5120
    assert local_feature_bytes_per_image(100, 128, binary=False) == 100 * (16 + 256)
    assert local_feature_bytes_per_image(100, 32, binary=True) == 100 * (16 + 32)
    assert bow_bytes_per_image(num_postings=30, num_images=3) == 80
    assert asmk_bytes_per_image(num_entries=10, num_images=2, dim=128) == 10 * (4 + 16) / 2
    assert asmk_bytes_per_image(num_entries=1, num_images=1, dim=488) == 4 + 61  # AKAZE: 488 bits
    with pytest.raises(ValueError, match="num_images"):
        bow_bytes_per_image(3, 0)


def test_codebook_sizes_follow_their_layouts():
    # Two words; image A uses word 0, image B both words, image C word 1: 4 postings, 4 ASMK entries.
    vocabulary = VisualVocabulary(np.array([[0, 0], [10, 0]], np.float32))
    database = [
        np.array([[0, 1], [1, 0]], np.float32),
        np.array([[0, 0], [10, 1]], np.float32),
        np.array([[9, 0]], np.float32),
    ]
    assert codebook_retrieval("bow", vocabulary, database, database).bytes_per_image == 4 * 8 / 3
    assert codebook_retrieval("vlad", vocabulary, database, database).bytes_per_image == 2 * 2 * 4
    assert codebook_retrieval("asmk", vocabulary, database, database).bytes_per_image == 4 * (4 + 1) / 3


def test_binary_descriptors_are_unpacked_for_codebooks():
    features = LocalFeatureExtractor("orb", 50, 1024)(textured_scene(3))
    unpacked = codebook_descriptors(features)
    assert unpacked.shape == (len(features), 256) and unpacked.dtype == np.float32
    np.testing.assert_array_equal(np.packbits(unpacked.astype(np.uint8), axis=1), features.descriptors)


def test_vocabularies_shrink_when_descriptors_are_too_few():
    assert effective_num_words(16384, 50_000, 8) == 6250
    assert effective_num_words(1024, 50_000, 8) == 1024
    with pytest.raises(ValueError, match="cannot train a single word"):
        effective_num_words(16, 7, 8)


def test_words_are_allocated_to_cells_by_largest_remainder():
    # Quotas 5, 0, 2.5, 0.5: floors 5, 0, 2, 0 and the one word left goes to the first largest remainder.
    np.testing.assert_array_equal(allocate_words(np.array([10, 0, 5, 1]), 8), [5, 0, 3, 0])
    rng = np.random.default_rng(0)
    for _ in range(50):
        sizes = rng.integers(0, 30, size=12)
        num_words = int(rng.integers(1, sizes.sum() + 1))
        words = allocate_words(sizes, num_words)
        assert words.sum() == num_words and np.all(words <= sizes) and np.all(words >= 0)
    with pytest.raises(ValueError, match="num_words"):
        allocate_words(np.array([2, 1]), 4)


def test_two_level_vocabulary_gives_every_cluster_its_share_of_words():
    centres = np.array([[0, 0], [100, 0], [0, 100], [100, 100]], np.float32)
    rng = np.random.default_rng(1)
    points = np.concatenate([centre + rng.normal(size=(400, 2)).astype(np.float32) for centre in centres])
    vocabulary = train_vocabulary(points, 16, VocabularySettings(two_level_above=4, num_iterations=10))
    assert isinstance(vocabulary, TwoLevelVocabulary) and vocabulary.num_words == 16
    nearest_centre = np.linalg.norm(vocabulary.centroids[:, None] - centres[None], axis=2).argmin(axis=1)
    np.testing.assert_array_equal(np.bincount(nearest_centre, minlength=4), [4, 4, 4, 4])


def test_two_level_assignment_is_exact_when_every_cell_is_probed_and_close_otherwise():
    rng = np.random.default_rng(2)
    descriptors = rng.normal(size=(3000, 8)).astype(np.float32)
    vocabulary = train_vocabulary(
        descriptors, 64, VocabularySettings(two_level_above=16, assignment_probes=2)
    )
    queries = rng.normal(size=(500, 8)).astype(np.float32)
    exact = np.linalg.norm(queries[:, None] - vocabulary.centroids[None], axis=2).argsort(axis=1)[:, :3]
    every_cell = TwoLevelVocabulary(
        vocabulary.coarse, vocabulary.centroids, probes=vocabulary.coarse.num_words
    )
    np.testing.assert_array_equal(every_cell.assign(queries), exact[:, 0])
    np.testing.assert_array_equal(every_cell.assign(queries, num_assignments=3), exact)
    assert np.mean(vocabulary.assign(queries) == exact[:, 0]) > 0.8  # 2 of 8 cells
    assert vocabulary.assign(np.zeros((0, 8), np.float32)).shape == (0,)
    with pytest.raises(ValueError, match="probes"):
        TwoLevelVocabulary(vocabulary.coarse, vocabulary.centroids, probes=0)


def test_markdown_tables():
    assert markdown_table(["a", "b"], [[1, "x"]]) == "| a | b |\n|---|---|\n| 1 | x |"
    with pytest.raises(ValueError, match="2 columns"):
        markdown_table(["a", "b"], [[1]])


# --- the Hydra studies on the tiny demo -----------------------------------------------------------------------


def compose_study(name, tiny_demo, tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose(
            name,
            overrides=[
                f"sources.rdemo.root={tiny_demo}/revisited",
                f"paths.output_dir={tmp_path}",
                f"cache_dir={tmp_path}/cache",
                "device=cpu",
                "progress=false",
                "num_workers=0",
                "extraction.max_side=128",
                "extraction.num_workers=0",
                "cnn_patches.max_side=128",
                *overrides,
            ],
        )


def read_report(path):
    report = json.loads(path.read_text())
    assert (path.parent / path.name.replace(".json", ".md")).is_file()
    assert (path.parent / path.name.replace(".json", ".png")).stat().st_size > 0
    return report


def test_rq4_runs_on_the_tiny_demo(tiny_demo, tmp_path):
    from experiments.rq4_reranking import run

    cfg = compose_study(
        "rq4",
        tiny_demo,
        tmp_path,
        "local_features.max_keypoints=256",
        "local_features.max_side=256",
        "top_ks=[3,8]",
        "fusion_alphas=[0.5,0.9]",
        "logger=wandb",  # offline in tests
    )
    run(cfg)
    report = read_report(tmp_path / "rq4.json")
    assert report["num_queries"] == 3 and report["protocol"] == "revisited"
    assert set(report["methods"]) == {
        "ratio_count",
        "inliers",
        "fusion_alpha0.5",
        "fusion_alpha0.9",
        "delg",
        "global_plus_inliers",
        "cnn_patches",
    }
    for method in report["methods"].values():
        for top_k in ("3", "8"):
            assert 0 <= method["top_k"][top_k]["metrics"]["medium/mAP"] <= 1
    assert "| none (global only) |" in (tmp_path / "rq4.md").read_text()
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def test_rq3_runs_on_the_tiny_demo(tiny_demo, tmp_path):
    from experiments.rq3_local_features import run

    cfg = compose_study(
        "rq3",
        tiny_demo,
        tmp_path,
        "features=[rootsift,orb,cnn_patch]",
        "local_features.max_keypoints=128",
        "local_features.max_side=256",
        "timing_images=1",
        "logger=none",
    )
    run(cfg)
    report = read_report(tmp_path / "rq3.json")
    rows = report["codebooks"]
    assert len(rows) == 3 * 5
    assert {(row["feature"], row["codebook"]) for row in rows} >= {
        ("orb", "vlad_64"),
        ("cnn_patch", "asmk_1k"),
    }
    for row in rows:
        assert 0 <= row["metrics"]["medium/mAP"] <= 1 and row["bytes_per_image"] > 0
        assert row["num_words"] <= row["requested_words"]
    scaled = [row for row in rows if row["codebook"] == "bow_16k"]
    assert all(row["num_words"] < 16384 and row["words_note"] for row in scaled)
    assert "scaled from 16,384" in (tmp_path / "rq3.md").read_text()


def test_thesis_table_runs_on_the_tiny_demo(tiny_demo, tmp_path):
    from experiments.thesis_table import run

    cfg = compose_study(
        "thesis", tiny_demo, tmp_path, "sift.max_keypoints=128", "sift.max_side=256", "top_k=5", "logger=none"
    )
    run(cfg)
    report = read_report(tmp_path / "thesis.json")
    rows = {row["experiment"]: row for row in report["rows"]}
    assert list(rows) == ["E1", "E2", "E3", "E4", "E5", "E6", "E7"]
    # Without checkpoints E2 and E3 are E1's pretrained network.
    assert rows["E2"]["metrics"] == rows["E1"]["metrics"] == rows["E3"]["metrics"]
    assert "pretrained" in rows["E3"]["weights"]
    assert "No checkpoint was given for E2 and E3" in (tmp_path / "thesis.md").read_text()
    assert all(0 <= row["metrics"]["medium/mAP"] <= 1 for row in rows.values())
    assert rows["E5"]["ms_per_query"] > 0 and rows["E1"]["ms_per_query"] is None


def test_experiment_overlays_select_one_row_or_a_training_setup(tiny_demo, tmp_path):
    cfg = compose_study("thesis", tiny_demo, tmp_path, "experiment=e6_vlad16")
    assert list(cfg.experiments) == ["e6"]
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        e2 = compose("train", overrides=["experiment=e2_classification"])
        e3 = compose("train", overrides=["experiment=e3_siamese"])
    assert e2.model._target_.endswith("ClassificationRetrievalModule")
    assert e2.loss._target_.endswith("CrossEntropyLoss")
    assert e3.model._target_.endswith("SiameseRetrievalModule")
    assert e3.loss._target_.endswith("ContrastiveLoss")
