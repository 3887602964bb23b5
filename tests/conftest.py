from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
REALPHOTOS = REPO_ROOT.parent / "shared" / "realphotos"

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch):
    """Tests never talk to W&B servers."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


requires_realphotos = pytest.mark.skipif(not REALPHOTOS.is_dir(), reason="../shared/realphotos is absent")


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    """A small demo dataset in the real GLDv2 / Revisited formats, generated once per test session."""
    from datamodules.demo import DemoConfig, generate_demo

    root = tmp_path_factory.mktemp("tiny_demo")
    config = DemoConfig(
        num_train_landmarks=10,
        min_train_images_per_landmark=4,
        max_train_images_per_landmark=6,
        num_mislabelled=2,
        num_train_distractors=2,
        num_grayscale_single_channel=1,
        num_grayscale_rgb=1,
        num_near_grayscale=1,
        num_missing=1,
        num_near_duplicates=1,
        num_index_landmarks=3,
        min_index_images_per_landmark=3,
        max_index_images_per_landmark=4,
        num_index_distractors=4,
        num_test_non_landmark=2,
        num_rdemo_landmarks=3,
        rdemo_easy_per_landmark=2,
        rdemo_hard_per_landmark=1,
        rdemo_junk_per_landmark=1,
        num_rdemo_distractors=3,
        rdemo_queries_per_landmark=1,
        min_long_side=160,
        max_long_side=200,
    )
    generate_demo(root, config, seed=0)
    return root
