from pathlib import Path

import pytest
import torch

from retrieval.benchmark import QueryGroundTruth, RetrievalBenchmark

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
    from datamodules.demo import DEMO_SCALES, generate_demo

    root = tmp_path_factory.mktemp("tiny_demo")
    generate_demo(root, DEMO_SCALES["tiny"], seed=0)
    return root


def tiny_benchmark(
    ground_truth: list[QueryGroundTruth], num_database: int, protocol: str = "plain"
) -> RetrievalBenchmark:
    """Q queries and N database images named q0.. and d0.. (files need not exist: nothing decodes them)."""
    return RetrievalBenchmark(
        name="tiny",
        protocol=protocol,  # type: ignore[arg-type]
        query_paths=[Path(f"q{index}.jpg") for index in range(len(ground_truth))],
        database_paths=[Path(f"d{index}.jpg") for index in range(num_database)],
        ground_truth=ground_truth,
        query_ids=[f"q{index}" for index in range(len(ground_truth))],
        database_ids=[f"d{index}" for index in range(num_database)],
        query_boxes=[None] * len(ground_truth),
    )
