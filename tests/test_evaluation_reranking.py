"""Re-ranking a benchmark's global ranking: a verified true match overtakes the false candidate the global
ranking put first, methods sharing their evidence rank as they would alone, junk is kept out of the shortlist,
query crops are described from their pixels, CNN-patch stores are built once per network, and a rewritten
database gets a new cached store."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from retrieval.benchmark import QueryGroundTruth, RetrievalBenchmark
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.evaluation import (
    BenchmarkResult,
    benchmark_feature_store,
    evaluate_reranking,
    query_local_features,
    shortlist_positions,
)
from retrieval.local.cnn_patches import CnnPatchExtractor, cnn_patch_features
from retrieval.local.features import LocalFeatureExtractor
from retrieval.local.hamming import CompactSettings
from retrieval.local.hamming_matching import HammingMatching
from retrieval.local.rerank import (
    CnnPatchInliersRerank,
    CnnPatchRerank,
    DelgRerank,
    FusionRerank,
    GlobalPlusInliersRerank,
    InliersRerank,
)
from retrieval.local.store import StoreMetadata
from retrieval.local.verification import VerificationConfig
from retrieval.metrics import evaluate_ranking
from retrieval.reranking import rerank
from tests.local.test_features import textured_scene
from tests.local.test_matching import WARP

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
        metrics={},
        ranking=np.array([[0, 1, 2]]),
        scores=np.array([[0.9, 0.8, 0.7]], np.float32),
        queries=np.zeros((1, 4), np.float32),
        database=np.zeros((3, 4), np.float32),
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


def test_cnn_patches_in_a_compact_store_match_by_hamming_codes(crafted, tmp_path):
    """``CnnPatchExtractor(compact=...)``: the database patches stored as Hamming codes (the strongest
    ``stored_keypoints``), queries described in full; Hamming matching on patch centres puts the query's own
    image first; the E7 patch similarity, which needs float patches, is refused."""
    benchmark, _, _ = crafted
    torch.manual_seed(0)
    net = GlobalDescriptorNet(backbone="tf_efficientnet_lite0", pretrained=False).eval()
    compact = CompactSettings(stored_keypoints=40, num_words=8, training_images=3, num_bits=64)
    extractor = CnnPatchExtractor(net, "random-weights", max_side=256, max_keypoints=48, compact=compact)
    as_database = RetrievalBenchmark(
        name="patches",
        protocol="plain",
        query_paths=[benchmark.database_paths[1]],
        database_paths=[*benchmark.database_paths, benchmark.query_paths[0]],
        ground_truth=[QueryGroundTruth(easy=np.array([1]))],
        query_ids=["query"],
        database_ids=[*benchmark.database_ids, "query"],
        query_boxes=[None],
    )
    store = benchmark_feature_store(as_database, extractor, tmp_path, progress=False)
    metadata = store.metadata
    assert (metadata.method, metadata.descriptor_dtype, metadata.dim) == ("cnn_patch", "uint8", 2 + 64 // 8)
    assert metadata.max_keypoints == 40 and metadata.query_max_keypoints == 48
    stored = store.get("true_match")
    assert stored.descriptors.dtype == np.uint8 and len(stored) == 40  # 8 x 6 patches at 256 px, 40 kept
    (query,) = query_local_features(as_database, extractor, store)
    assert query.descriptors.dtype == np.float32 and len(query) == 48  # described in full, not read back
    method = CnnPatchInliersRerank(
        matching=HammingMatching(max_distance=24),
        verification=VerificationConfig(model="homography", threshold_px=16.0, min_tentative_matches=6),
    )
    method.check_store(store)
    result = rerank(query, as_database.database_ids, np.array([0.4, 0.5, 0.3, 0.6]), store, method)
    assert result.ranked_ids[0] == "true_match"  # the query's own file, its stored codes
    assert result.num_inliers[1] > result.num_inliers[[0, 2, 3]].max()
    with pytest.raises(ValueError, match="dimensions but the store holds"):
        rerank(query, as_database.database_ids, np.zeros(4), store, CnnPatchRerank())
