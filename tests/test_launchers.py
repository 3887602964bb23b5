"""The SLURM launcher config takes nodes, tasks and GPUs from the trainer, for indexing and training alike, and a
submitit launch (the local executor, the one that runs without a cluster) of a tiny indexing job builds its
collection."""

import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from retrieval.collection import generation_dir, read_manifest
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize("app", ["index", "train"])
def test_the_slurm_launcher_asks_for_the_trainers_nodes_and_gpus(app):
    overrides = ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=8", "trainer.num_nodes=4"]
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(app, overrides=[*overrides, "hydra.launcher.partition=gpu"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (4, 8, 8)
    assert launcher.partition == "gpu" and launcher.timeout_min > 0


def test_a_submitit_launch_of_a_tiny_indexing_job_builds_its_collection(tiny_demo, tmp_path):
    collection = tmp_path / "collection"
    completed = subprocess.run(
        [
            sys.executable,
            "index.py",
            "-m",
            "hydra/launcher=submitit_local",
            f"hydra.sweep.dir={tmp_path}/sweep",
            f"images_dir={tiny_demo}/index",
            f"collection_dir={collection}",
            "~local_features",
            "extraction.max_side=64",
            "extraction.num_workers=0",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    num_images = len(list((tiny_demo / "index").rglob("*.jpg")))
    (job_log,) = (tmp_path / "sweep" / ".submitit").glob("*/*_0_log.out")
    assert (
        f"indexed {num_images} images" in job_log.read_text()
    )  # printed by the submitit job, not this process
    assert len(read_manifest(generation_dir(collection))["images"]) == num_images
