"""Re-ranking: a geometrically verified true match overtakes false candidates with higher global scores,
and every method's scores follow its formula."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from retrieval.local.cnn_patches import cnn_patch_features, patch_similarity
from retrieval.local.features import LocalFeatureExtractor
from retrieval.local.matching import MatchingConfig
from retrieval.local.rerank import (
    CnnPatchInliersRerank,
    CnnPatchRerank,
    DelgRerank,
    FusionRerank,
    GlobalPlusInliersRerank,
    InliersRerank,
    RatioCountRerank,
)
from retrieval.local.store import FeatureStore, FeatureStoreWriter, StoreMetadata, build_feature_store
from retrieval.local.verification import VerificationConfig
from retrieval.reranking import rerank
from tests.local.test_features import textured_scene
from tests.local.test_matching import WARP

EXTRACTOR = LocalFeatureExtractor("rootsift", max_keypoints=400, max_side=1024)
# The true match has the lowest global score of the re-ranked three; "tail" is beyond top_k = 3.
CANDIDATES = ["other1", "other2", "match", "tail"]
GLOBAL_SCORES = np.array([0.6, 0.55, 0.5, 0.1])


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """The query's features and a store with a warped view of the query scene among unrelated scenes."""
    folder = tmp_path_factory.mktemp("rerank")
    query_scene = textured_scene(10)
    images = {
        "other1": textured_scene(11),
        "other2": textured_scene(12),
        "match": cv2.warpPerspective(query_scene, WARP, (512, 384)),
        "tail": textured_scene(13),
    }
    paths = {}
    for image_id, image in images.items():
        paths[image_id] = folder / f"{image_id}.png"
        Image.fromarray(image).save(paths[image_id])
    store = build_feature_store(folder / "store", paths, EXTRACTOR, progress=False)
    return EXTRACTOR(query_scene), store


VERIFIED_METHODS = [
    InliersRerank(),
    FusionRerank(),
    FusionRerank(local_score="match_ratio", alpha=0.5),
    DelgRerank(),
    GlobalPlusInliersRerank(),
    RatioCountRerank(alpha=0.5),
]


@pytest.mark.parametrize("config", VERIFIED_METHODS, ids=lambda config: type(config).__name__)
def test_the_true_match_overtakes_false_candidates(scenes, config):
    query, store = scenes
    result = rerank(query, CANDIDATES, GLOBAL_SCORES, store, config, top_k=3)
    assert result.ranked_ids[0] == "match"
    assert result.ranked_ids[-1] == "tail"  # beyond top_k: after the re-ranked, in global order
    np.testing.assert_array_equal(result.order[0], 2)
    assert result.scores[3] == GLOBAL_SCORES[3]
    assert result.num_matches[2] > 100 and result.num_matches[3] == 0
    if not result.evidence.correspondences[0].verified:
        np.testing.assert_array_equal(result.num_inliers, 0)
    else:
        assert result.num_inliers[2] > 100
        assert result.num_inliers[:2].max() < 15
        assert result.num_inliers[3] == 0


def test_scores_follow_each_formula(scenes):
    query, store = scenes
    plus = rerank(
        query, CANDIDATES, GLOBAL_SCORES, store, GlobalPlusInliersRerank(inlier_weight=0.01), top_k=3
    )
    np.testing.assert_allclose(plus.scores[:3], GLOBAL_SCORES[:3] + plus.num_inliers[:3] / 100)

    fusion = rerank(
        query, CANDIDATES, GLOBAL_SCORES, store, FusionRerank(alpha=0.7, inliers_at_full_score=50)
    )
    local = np.minimum(fusion.num_inliers / 50, 1.0)
    np.testing.assert_allclose(fusion.scores, 0.7 * GLOBAL_SCORES + 0.3 * local)

    ratio_count = rerank(query, CANDIDATES, GLOBAL_SCORES, store, RatioCountRerank(alpha=0.8))
    np.testing.assert_allclose(
        ratio_count.scores, 0.8 * GLOBAL_SCORES + 0.2 * ratio_count.num_matches / len(query)
    )

    inliers = rerank(query, CANDIDATES, GLOBAL_SCORES, store, InliersRerank())
    np.testing.assert_array_equal(inliers.scores, inliers.num_inliers)
    # Every other candidate ties at few inliers or none: ties keep the global order.
    np.testing.assert_array_equal(inliers.order, np.lexsort((-GLOBAL_SCORES, -inliers.num_inliers)))


def test_delg_puts_only_candidates_above_the_inlier_threshold_first(scenes):
    query, store = scenes
    result = rerank(query, CANDIDATES, GLOBAL_SCORES, store, DelgRerank(min_inliers=15))
    assert result.ranked_ids == ["match", "other1", "other2", "tail"]
    unreachable = rerank(query, CANDIDATES, GLOBAL_SCORES, store, DelgRerank(min_inliers=100_000))
    assert unreachable.ranked_ids == CANDIDATES


def test_candidates_with_few_tentative_matches_are_not_verified(scenes):
    query, store = scenes
    config = InliersRerank(verification=VerificationConfig(min_tentative_matches=100_000))
    result = rerank(query, CANDIDATES, GLOBAL_SCORES, store, config)
    np.testing.assert_array_equal(result.num_inliers, 0)
    assert result.ranked_ids == CANDIDATES
    assert result.num_matches[2] > 100


def test_budgets_threads_and_bfloat16_keep_the_true_match_first(scenes):
    query, store = scenes
    config = GlobalPlusInliersRerank(
        matching=MatchingConfig(query_max_keypoints=300, database_max_keypoints=200, precision="bfloat16"),
        verification=VerificationConfig(num_threads=2, model="homography"),
    )
    result = rerank(query, CANDIDATES, GLOBAL_SCORES, store, config)
    assert result.ranked_ids[0] == "match"
    assert result.num_matches[2] <= 200 and result.num_inliers[2] > 30


def test_the_global_scores_decide_which_candidates_are_re_ranked(scenes):
    query, store = scenes
    shuffled = [3, 0, 2, 1]
    ids = [CANDIDATES[index] for index in shuffled]
    result = rerank(query, ids, GLOBAL_SCORES[shuffled], store, InliersRerank(), top_k=3)
    assert result.ranked_ids == ["match", "other1", "other2", "tail"]
    assert result.num_matches[0] == 0  # "tail" was not matched


def test_correspondences_are_the_drawable_matches_the_ranking_counted(scenes):
    query, store = scenes
    result = rerank(query, CANDIDATES, GLOBAL_SCORES, store, InliersRerank(), top_k=3)
    pair = result.correspondences(2)
    assert pair is not None and pair.verified
    assert pair.query_points.shape == pair.database_points.shape == (len(pair.inliers), 2)
    assert pair.inliers.sum() == result.num_inliers[2] > 100
    assert len(pair.inliers) == result.num_matches[2]
    projected = cv2.perspectiveTransform(pair.query_points[pair.inliers][None].astype(np.float64), WARP)[0]
    assert np.median(np.linalg.norm(projected - pair.database_points[pair.inliers], axis=1)) < 1.0
    unrelated = result.correspondences(0)
    assert unrelated is not None and unrelated.inliers.sum() == result.num_inliers[0] < 15
    assert result.correspondences(3) is None  # beyond top_k: not re-ranked
    unverified = rerank(query, CANDIDATES, GLOBAL_SCORES, store, RatioCountRerank()).correspondences(2)
    assert unverified is not None and not unverified.verified and not unverified.inliers.any()


def test_every_method_describes_its_formula_and_settings():
    assert InliersRerank().describe() == "RANSAC inliers, ties by global score"
    fast = GlobalPlusInliersRerank(
        matching=MatchingConfig(query_max_keypoints=512, database_max_keypoints=256, precision="bfloat16"),
        verification=VerificationConfig(max_iters=1000, min_tentative_matches=15),
    )
    assert fast.describe() == (
        "global + 0.01·inliers [512/256 keypoints, bfloat16, 1,000 iterations, verified from 15 matches]"
    )
    assert GlobalPlusInliersRerank().describe() != fast.describe()
    assert FusionRerank(alpha=0.7).describe() == "fusion α=0.7: α·global + (1−α)·min(inliers/100, 1)"
    assert "match ratio" in RatioCountRerank().describe()
    assert "patch similarity" in CnnPatchRerank().describe()


def test_methods_that_score_the_same_evidence_share_a_work_key():
    assert InliersRerank().work_key() == FusionRerank(alpha=0.3).work_key() == DelgRerank().work_key()
    assert InliersRerank().work_key() != RatioCountRerank().work_key()
    faster = InliersRerank(verification=VerificationConfig(max_iters=100))
    assert faster.work_key() != InliersRerank().work_key()


def test_cnn_patch_similarity_by_hand():
    query = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    candidates = [np.array([[0.6, 0.8]], np.float32), np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)]
    # Candidate 0: best cosines 0.6 and 0.8 -> 0.7; candidate 1: 1 and 1 -> 1.
    np.testing.assert_allclose(
        patch_similarity(query, [*candidates, np.zeros((0, 2), np.float32)]), [0.7, 1.0, 0.0]
    )


def patch_store(
    root, feature_maps: dict[str, torch.Tensor], image_size: tuple[int, int], max_side: int
) -> FeatureStore:
    """A store of every cell of each (C, h, w) feature map as a CNN patch, for an image of ``image_size``."""
    channels, rows, columns = next(iter(feature_maps.values())).shape
    metadata = StoreMetadata(
        method="cnn_patch",
        max_keypoints=rows * columns,
        max_side=max_side,
        dim=channels,
        descriptor_dtype="float16",
    )
    with FeatureStoreWriter(root, metadata) as writer:
        for image_id, feature_map in feature_maps.items():
            writer.add(image_id, cnn_patch_features(feature_map, image_size))
    return FeatureStore(root, expected=metadata)


def test_cnn_patch_rerank_fuses_the_patch_similarity(tmp_path):
    generator = torch.Generator().manual_seed(0)
    feature_maps = {image_id: torch.randn(8, 3, 4, generator=generator) for image_id in ("a", "b", "c")}
    store = patch_store(tmp_path / "patches", feature_maps, (64, 48), max_side=64)
    query = cnn_patch_features(feature_maps["b"], (64, 48))
    global_scores = np.array([0.3, 0.2, 0.25])
    result = rerank(query, ["a", "b", "c"], global_scores, store, CnnPatchRerank(alpha=0.5))

    def naive(candidate: torch.Tensor) -> float:
        cells_query = torch.nn.functional.normalize(feature_maps["b"].reshape(8, -1).T, dim=1)
        cells_candidate = torch.nn.functional.normalize(candidate.reshape(8, -1).T, dim=1)
        return float(np.mean([max(float(q @ c) for c in cells_candidate) for q in cells_query]))

    expected = [
        0.5 * score + 0.5 * naive(feature_maps[image_id])
        for image_id, score in zip("abc", global_scores, strict=True)
    ]
    np.testing.assert_allclose(result.scores, expected, atol=2e-3)  # float16 storage
    assert result.ranked_ids[0] == "b"


def test_rerank_rejects_bad_input(scenes, tmp_path):
    query, store = scenes
    with pytest.raises(ValueError, match="one score per candidate"):
        rerank(query, CANDIDATES, GLOBAL_SCORES[:2], store, InliersRerank())
    with pytest.raises(ValueError, match="top_k"):
        rerank(query, CANDIDATES, GLOBAL_SCORES, store, InliersRerank(), top_k=0)
    orb_query = LocalFeatureExtractor("orb")(textured_scene(10))
    with pytest.raises(ValueError, match="store holds rootsift"):
        rerank(orb_query, CANDIDATES, GLOBAL_SCORES, store, InliersRerank())
    with pytest.raises(ValueError, match="alpha"):
        FusionRerank(alpha=1.5)
    with pytest.raises(ValueError, match="ratio"):
        MatchingConfig(ratio=0.0)
    with pytest.raises(ValueError, match="database_max_keypoints"):
        MatchingConfig(database_max_keypoints=0)
    with pytest.raises(ValueError, match="local_score"):
        FusionRerank(local_score="inlier_ratio")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_threads"):
        VerificationConfig(num_threads=0)


def test_cnn_patches_verified_on_their_centres_lift_the_shifted_view(tmp_path):
    """The candidate whose feature map is the query's shifted by two cells (a translation: a homography) gets
    every overlapping patch as an inlier and overtakes candidates with higher global scores; a keypoint store is
    refused."""
    generator = torch.Generator().manual_seed(1)
    query_map = torch.randn(16, 6, 8, generator=generator)
    shifted = torch.randn(16, 6, 8, generator=generator)
    shifted[:, :, 2:] = query_map[:, :, :6]  # the same scene two cells to the right
    feature_maps = {"other1": torch.randn(16, 6, 8, generator=generator), "shifted": shifted}
    feature_maps["other2"] = torch.randn(16, 6, 8, generator=generator)
    store = patch_store(tmp_path / "patches", feature_maps, (256, 192), max_side=256)
    method = CnnPatchInliersRerank(
        matching=MatchingConfig(ratio=1.0),
        verification=VerificationConfig(model="homography", threshold_px=16.0, min_tentative_matches=6),
    )
    method.check_store(store)
    query = cnn_patch_features(query_map, (256, 192))
    result = rerank(query, ["other1", "other2", "shifted"], np.array([0.6, 0.5, 0.4]), store, method)
    assert result.ranked_ids[0] == "shifted"
    assert result.num_inliers[2] >= 6 * 6 * 0.9  # the 36 overlapping cells, up to float16 ties
    assert result.num_inliers[:2].max() < result.num_inliers[2] / 4  # chance agreements of random patches
    np.testing.assert_allclose(result.scores, [0.6, 0.5, 0.4] + result.num_inliers / 100)
    keypoint_metadata = StoreMetadata("rootsift", 48, 256, 128, "float16")
    with FeatureStoreWriter(tmp_path / "keypoints", keypoint_metadata):
        pass
    with pytest.raises(ValueError, match="re-ranks with cnn_patch features"):
        method.check_store(FeatureStore(tmp_path / "keypoints"))
