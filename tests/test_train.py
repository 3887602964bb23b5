"""Real Trainer runs of train.py on a tiny demo dataset, through Hydra's compose API and its command line."""

import json
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir

import train
from tests.conftest import REPO_ROOT


def tiny_overrides(demo_root, tuple_data=True):
    """Overrides that make a run small: the tiny demo, 64-px images, few tuples, no worker processes."""
    overrides = [
        f"data.split.root={demo_root}",
        f"benchmarks.rdemo.root={demo_root}/revisited",
        f"benchmarks.demo_gldv2.root={demo_root}",
        "data.num_workers=0",
        "data.image_size=64",
        "callbacks.retrieval_evaluation.extraction.max_side=96",
        "callbacks.retrieval_evaluation.extraction.num_workers=0",
    ]
    if tuple_data:
        overrides += ["data.tuples_per_epoch=4", "data.batch_size=2", "mining.num_negatives=2"]
    return overrides


def compose_train(demo_root, output_dir, *overrides):
    tuple_data = not any(override.startswith("data=") for override in overrides)
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose(
            "train",
            overrides=[*tiny_overrides(demo_root, tuple_data), f"paths.output_dir={output_dir}", *overrides],
        )


def run_train_command(*arguments):
    subprocess.run(
        [sys.executable, "train.py", *arguments], cwd=REPO_ROOT, check=True, capture_output=True, timeout=600
    )


def test_fast_dev_run_trains_validates_and_writes_results(tiny_demo, tmp_path):
    cfg = compose_train(tiny_demo, tmp_path, "trainer.fast_dev_run=true", "logger=csv")
    results = train.train(cfg)
    assert set(results) >= {"before", "after"}
    assert 0 < results["after"]["val/mAP"] <= 1
    assert "val/rdemo/medium/mAP" in results["after"] and "val/demo_gldv2/mAP@100" in results["after"]
    assert json.loads((tmp_path / "results.json").read_text())["after"] == results["after"]
    assert all(value == round(value, 6) for value in results["after"].values())
    table = (tmp_path / "results.md").read_text().splitlines()
    assert table[2] == "| metric | before | after | change |"
    assert table[4].startswith(f"| **{cfg.monitor}** | ")  # the monitored metric first
    _, before, after, change = (cell.strip() for cell in table[5].strip("|").split("|"))
    assert float(change) == pytest.approx(float(after) - float(before), abs=2e-4)


def test_offline_hub_weights_fall_back_only_for_fast_dev_run(tiny_demo, tmp_path, monkeypatch):
    from retrieval.descriptor import weights

    monkeypatch.setattr(weights, "_hub_reachable", lambda timeout_s=3.0: False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_cache"))
    cfg = compose_train(
        tiny_demo,
        tmp_path,
        "model=resnet50",
        "model.net.backbone=resnet18",
        "trainer.fast_dev_run=true",
        "logger=none",
    )
    assert train.build_model(cfg).net.config["backbone"] == "resnet18"
    cfg = compose_train(tiny_demo, tmp_path, "model=resnet50", "model.net.backbone=resnet18", "logger=none")
    with pytest.raises(Exception, match="offline"):
        train.build_model(cfg)


def test_resume_continues_from_a_checkpoint(tiny_demo, tmp_path):
    overrides = ("logger=csv", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1")
    first = compose_train(tiny_demo, tmp_path / "first", "trainer.max_epochs=1", *overrides)
    train.train(first)
    checkpoint_path = tmp_path / "first/checkpoints/last.ckpt"
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 0 and checkpoint["net_config"]["backbone"] == "tf_efficientnet_lite0"
    second = compose_train(
        tiny_demo, tmp_path / "second", "trainer.max_epochs=2", f"ckpt_path={checkpoint_path}", *overrides
    )
    train.train(second)
    resumed = torch.load(tmp_path / "second/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["epoch"] == 1 and resumed["global_step"] == 2


def test_multirun_from_the_command_line(tiny_demo, tmp_path):
    run_train_command(
        "-m",
        "loss.margin=0.5,0.7",
        "trainer.fast_dev_run=true",
        "logger=csv",
        *tiny_overrides(tiny_demo),
        f"hydra.sweep.dir={tmp_path}",
    )
    assert sorted(path.parent.name for path in tmp_path.glob("*/results.json")) == ["0", "1"]


def test_ddp_on_two_cpu_processes(tiny_demo, tmp_path):
    """Mining and validation gather over ranks; the distributed sampler's padding is not double counted."""
    run_train_command(
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.precision=32-true",
        "trainer.fast_dev_run=true",
        "logger=csv",
        *tiny_overrides(tiny_demo),
        f"hydra.run.dir={tmp_path}",
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert 0 < results["after"]["val/mAP"] <= 1


@pytest.mark.parametrize("loss", ["arcface", "cross_entropy"])
def test_classification_training_runs(tiny_demo, tmp_path, loss):
    cfg = compose_train(
        tiny_demo,
        tmp_path,
        "model=classification",
        f"loss={loss}",
        "data=demo_classification",
        "data.batch_size=4",
        "trainer.fast_dev_run=true",
        "logger=none",
    )
    results = train.train(cfg)
    assert 0 < results["after"]["val/mAP"] <= 1


def test_a_tuple_loss_with_the_classification_model_is_a_clear_error(tiny_demo, tmp_path):
    cfg = compose_train(
        tiny_demo,
        tmp_path,
        "model=classification",
        "loss=contrastive",
        "data=demo_classification",
        "logger=none",
    )
    with pytest.raises(Exception, match="tuple loss"):
        train.build_model(cfg)


def test_undecodable_validation_images_are_counted_and_logged(tiny_demo, tmp_path, caplog):
    import shutil

    from datamodules.formats.gldv2 import image_path, read_train_clean_csv

    demo = tmp_path / "demo"
    shutil.copytree(tiny_demo, demo)
    broken = 0
    for ids in read_train_clean_csv(demo / "train_clean.csv").values():
        path = image_path(
            demo, "train", ids[0]
        )  # the first image of every landmark: some are validation images
        if path.is_file():
            path.write_bytes(path.read_bytes()[:100])
            broken += 1
    cfg = compose_train(
        demo, tmp_path / "run", "trainer.fast_dev_run=true", "logger=none", "~callbacks.retrieval_evaluation"
    )
    results = train.train(cfg)
    assert 0 < results["before"]["val/skipped_images"] <= broken
    assert "validation: " in caplog.text and "unreadable images skipped" in caplog.text


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=-1", "the optimizer or scheduler config is invalid: Invalid learning rate: -1"),
        ("data.batch_size=abc", "data.batch_size must be an integer of at least 1, got 'abc'"),
    ],
)
def test_a_bad_setting_is_refused_at_once_and_leaves_no_run_folder(tiny_demo, tmp_path, override, message):
    """Refused while the config is instantiated (before any validation pass), naming the key; the run folder
    Hydra made for the failed start is removed."""
    run_dir = tmp_path / "run"
    process = subprocess.run(
        [
            sys.executable,
            "train.py",
            *tiny_overrides(tiny_demo),
            "logger=none",
            f"hydra.run.dir={run_dir}",
            override,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode != 0
    assert message in process.stderr
    assert "val/" not in process.stderr + process.stdout  # failed before validating
    assert not run_dir.exists()


def test_a_vit_trains_and_validates_in_a_fast_dev_run(tiny_demo, tmp_path):
    """A DINOv2-shaped ViT-S/14 with random weights through the whole Siamese pipeline (mining, training,
    retrieval validation): the README's ViT smoke test."""
    cfg = compose_train(
        tiny_demo, tmp_path, "model=dinov2_vits14", "trainer.fast_dev_run=true", "logger=none"
    )
    results = train.train(cfg)
    assert 0 < results["after"]["val/mAP"] <= 1
