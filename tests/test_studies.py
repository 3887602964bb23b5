"""The study scripts (RQ3, RQ4, the thesis table) run end to end through Hydra on the tiny demo, and their
report tables."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir

from experiments.tables import markdown_table
from tests.conftest import REPO_ROOT


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
                f"benchmarks.rdemo.root={tiny_demo}/revisited",
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
        "cnn_patch_inliers",
        "superglobal",
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
