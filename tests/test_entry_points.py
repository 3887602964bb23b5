"""evaluate.py, index.py, calibrate.py and search.py end to end on the tiny demo, through Hydra's compose API."""

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

import calibrate
import evaluate
import index
import search
from retrieval.collection import generation_dir, read_manifest
from tests.conftest import REPO_ROOT


def composed(config_name, *overrides):
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose(config_name, overrides=list(overrides))


def test_evaluate_prints_and_writes_the_revisited_and_gldv2_tables(tiny_demo, tmp_path, capsys):
    cfg = composed(
        "evaluate",
        f"benchmarks.rdemo.root={tiny_demo}/revisited",
        f"benchmarks.demo_gldv2.root={tiny_demo}",
        f"paths.output_dir={tmp_path}",
        "extraction.max_side=96",
        "extraction.num_workers=0",
        f"cache_dir={tmp_path}/cache",
        "whitening.method=pca",
        f"whitening.data_root={tiny_demo}",
        "post.query_expansion_k=2",
    )
    report = evaluate.evaluate(cfg)
    assert {"easy/mAP", "medium/mAP", "hard/mAP", "medium/mP@10"} <= set(report["results"]["rdemo"])
    assert 0 < report["results"]["demo_gldv2"]["mAP@100"] <= 1
    printed = capsys.readouterr().out
    assert "- model: pretrained `tf_efficientnet_lite0`, gem pooling (no checkpoint)" in printed
    rdemo = printed.split("## rdemo\n\n")[1].splitlines()
    assert rdemo[0] == "|  | mAP | mP@1 | mP@5 | mP@10 |"  # the protocol's order, not alphabetical
    assert [row.split(" | ")[0] for row in rdemo[2:5]] == ["| E", "| M", "| H"]
    assert f"{100 * report['results']['rdemo']['medium/mAP']:.2f}" in rdemo[3]
    assert json.loads((tmp_path / "results.json").read_text())["results"] == report["results"]
    assert (tmp_path / "results.md").is_file() and (tmp_path / "whitening.npz").is_file()


@pytest.fixture(scope="module")
def collection(tiny_demo, tmp_path_factory):
    folder = tmp_path_factory.mktemp("collection")
    cfg = composed(
        "index",
        f"images_dir={tiny_demo}/index",
        f"collection_dir={folder}",
        "extraction.max_side=128",
        "extraction.num_workers=0",
        "local_features.max_keypoints=256",
        "local_features.max_side=256",
        "num_workers=0",
    )
    index.main(cfg)
    return folder


def test_index_writes_a_self_contained_collection(collection, tiny_demo):
    generation = generation_dir(collection)
    manifest = read_manifest(generation)
    assert manifest["num_images"] == len(list((tiny_demo / "index").rglob("*.jpg")))
    assert {"global", "local", "net.pt"} <= {path.name for path in generation.iterdir()}
    assert manifest["images_root"] == str((tiny_demo / "index").resolve())
    assert all(not Path(path).is_absolute() for path in manifest["images"].values())


def test_search_writes_the_top_10_and_its_picture(collection, tiny_demo, tmp_path):
    solution = (tiny_demo / "retrieval_solution_v2.1.csv").read_text().splitlines()[1:]
    query_id, expected, _ = next(line.split(",") for line in solution if line.split(",")[1] != "None")
    query = next((tiny_demo / "test").rglob(f"{query_id}.jpg"))
    cfg = composed("search", f"query={query}", f"collection_dir={collection}", f"paths.output_dir={tmp_path}")
    search.main(cfg)
    results = json.loads((tmp_path / "results.json").read_text())["queries"][query_id]["results"]
    assert len(results) == min(10, len(list((tiny_demo / "index").rglob("*.jpg"))))
    assert results[0]["image_id"].rsplit("/", 1)[-1] in expected.split()  # the best hit shows the landmark
    assert (tmp_path / f"{query_id}.png").is_file()


def test_calibrate_writes_a_threshold_that_search_applies(collection, tiny_demo, tmp_path):
    cfg = composed(
        "calibrate",
        f"collection_dir={collection}",
        f"benchmarks.rdemo.root={tiny_demo}/revisited",
        f"cache_dir={tmp_path}/cache",
        f"paths.output_dir={tmp_path}",
        "top_k=20",
        "num_workers=0",
        "progress=false",
        "max_false_accept_rate=0.0",
    )
    threshold = calibrate.calibrate(cfg)
    stored = json.loads((collection / "verdict.json").read_text())
    assert [entry["min_inliers"] for entry in stored.values()] == [threshold.min_inliers]
    assert threshold.source == "rdemo" and threshold.false_accept_rate == 0.0
    query = next((tiny_demo / "test").rglob("*.jpg"))
    search.main(
        composed("search", f"query={query}", f"collection_dir={collection}", f"paths.output_dir={tmp_path}")
    )
    results = json.loads((tmp_path / "results.json").read_text())["queries"][query.stem]
    assert results["same_place_threshold"] == threshold.describe()
    assert all(hit["verified"] == (hit["inliers"] >= threshold.min_inliers) for hit in results["results"])
    with pytest.raises(ValueError, match="verifies geometry"):
        calibrate.calibrate(composed("calibrate", f"collection_dir={collection}", "rerank=ratio_count"))


def demo_rerank_evaluation(tiny_demo, tmp_path, *overrides: str):
    """evaluate.py on the tiny demo's rdemo benchmark, small single-scale extraction, caches under tmp_path."""
    return composed(
        "evaluate",
        "benchmarks=demo",
        "~benchmarks.demo_gldv2",
        f"benchmarks.rdemo.root={tiny_demo}/revisited",
        f"paths.output_dir={tmp_path}",
        "extraction=single_512",
        "extraction.max_side=96",
        "extraction.num_workers=0",
        f"cache_dir={tmp_path}/cache",
        f"feature_cache_dir={tmp_path}/features",
        *overrides,
    )


def test_evaluate_reports_before_and_after_reranking_with_its_cost(tiny_demo, tmp_path, capsys):
    from retrieval.local.store import FeatureStore

    cfg = demo_rerank_evaluation(
        tiny_demo,
        tmp_path,
        "rerank=inliers",
        "rerank_top_k=5",
        "local_features.max_keypoints=128",
        "local_features.max_side=256",
        "num_workers=0",
    )
    report = evaluate.evaluate(cfg)
    rdemo = report["results"]["rdemo"]
    assert set(rdemo) == {"global", "reranked"}
    assert set(rdemo["reranked"]) == set(rdemo["global"]) | {"ms_per_query", "bytes_per_image"}
    assert all(0 <= rdemo["reranked"][name] <= 1 for name in rdemo["global"])
    # Bytes per image: (x, y, scale, angle) float32 + 128 float16 per keypoint, over the stored keypoints.
    (store_dir,) = (tmp_path / "features").iterdir()
    store = FeatureStore(store_dir)
    keypoints = np.mean([len(store.get(image_id).keypoints) for image_id in store.ids])
    assert rdemo["reranked"]["bytes_per_image"] == pytest.approx(keypoints * (4 * 4 + 128 * 2))
    printed = capsys.readouterr().out
    assert "| re-ranked |" in printed and "ms per query (median)" in printed
    assert "- re-ranking: the top 5 by RANSAC inliers" in printed


def test_evaluate_rerank_compact_builds_a_compact_store_and_reports_its_size(tiny_demo, tmp_path, capsys):
    from retrieval.local.store import FeatureStore

    cfg = demo_rerank_evaluation(
        tiny_demo,
        tmp_path,
        "rerank=compact",
        "rerank_top_k=5",
        "local_features.max_keypoints=256",
        "local_features.max_side=256",
        "local_features.compact.stored_keypoints=128",
        "local_features.compact.num_words=64",
        "num_workers=0",
    )
    assert cfg.local_features.compact.num_bits == 64  # the preset chose the compact features
    reranked = evaluate.evaluate(cfg)["results"]["rdemo"]["reranked"]
    (store_dir,) = (tmp_path / "features").iterdir()
    store = FeatureStore(store_dir)
    assert store.metadata.codec is not None and (store_dir / "codec.npz").is_file()
    keypoints = np.mean([len(store.get(image_id).keypoints) for image_id in store.ids])
    assert 0 < keypoints <= 128
    # Bytes per image: uint16 (x, y) + a 2-byte word + 64 signature bits per stored keypoint.
    assert reranked["bytes_per_image"] == pytest.approx(keypoints * (4 + 2 + 8))
    assert reranked["medium/mAP"] > 0 and reranked["ms_per_query"] > 0
    assert "compact codes, shared word and Hamming ≤ 20" in capsys.readouterr().out


def test_evaluate_rerank_superglobal_needs_no_local_features(tiny_demo, tmp_path, capsys):
    """``rerank=superglobal`` re-ranks with the global descriptors the evaluation already has: no feature store is
    built, and the bytes per image are one float32 descriptor."""
    cfg = demo_rerank_evaluation(tiny_demo, tmp_path, "rerank=superglobal", "rerank_top_k=8", "rerank.k=3")
    report = evaluate.evaluate(cfg)
    reranked = report["results"]["rdemo"]["reranked"]
    assert not (tmp_path / "features").exists()
    assert reranked["bytes_per_image"] == 4 * 1280  # one float32 EfficientNet-Lite0 GeM descriptor
    assert 0 <= reranked["medium/mAP"] <= 1 and reranked["ms_per_query"] > 0
    assert (
        "- re-ranking: the top 8 by SuperGlobal (global descriptors only): top 100, k=3"
        in capsys.readouterr().out
    )


def test_search_reranks_with_superglobal_from_the_collection(collection, tiny_demo, tmp_path):
    query = next((tiny_demo / "test").rglob("*.jpg"))
    cfg = composed(
        "search",
        f"query={query}",
        f"collection_dir={collection}",
        f"paths.output_dir={tmp_path}",
        "rerank=superglobal",
    )
    search.main(cfg)
    (entry,) = json.loads((tmp_path / "results.json").read_text())["queries"].values()
    assert entry["score"].startswith("SuperGlobal (global descriptors only)")
    assert all(result["inliers"] is None for result in entry["results"])


def test_evaluate_a_vit_on_the_demo_benchmarks(tiny_demo, tmp_path):
    cfg = composed(
        "evaluate",
        "net=dinov2_vits14",
        f"benchmarks.rdemo.root={tiny_demo}/revisited",
        f"benchmarks.demo_gldv2.root={tiny_demo}",
        f"paths.output_dir={tmp_path}",
        "extraction=single_512",
        "extraction.max_side=98",
        "extraction.num_workers=0",
        f"cache_dir={tmp_path}/cache",
    )
    report = evaluate.evaluate(cfg)
    assert (
        0 <= report["results"]["rdemo"]["medium/mAP"] <= 1
        and 0 <= report["results"]["demo_gldv2"]["mAP@100"] <= 1
    )
