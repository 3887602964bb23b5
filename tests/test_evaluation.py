"""The evaluation pipeline and the RetrievalEvaluation callback on a model whose embeddings are placed by hand."""

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader

from lightning_modules.callbacks import RetrievalEvaluation
from retrieval.benchmark import QueryGroundTruth, RetrievalBenchmark
from retrieval.descriptor.extract import ExtractionSettings
from retrieval.evaluation import PostProcessing, evaluate_benchmark, rank_and_score

# Database image i is a solid colour with red = 10·i, embedded at angle 10·i degrees; query 0 (red 200) at −5°,
# query 1 (red 210) at 55°.
ANGLES = {10 * i: 10.0 * i for i in range(6)} | {200: -5.0, 210: 55.0}


class HandPlacedNet(torch.nn.Module):
    """Maps a solid-colour image to the unit vector at the angle its red value names."""

    output_dim = 2
    pool = torch.nn.Identity()

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        reds = (images[:, 0].mean(dim=(1, 2)) * 255).round().int().tolist()
        radians = torch.tensor([math.radians(ANGLES[red]) for red in reds])
        return torch.stack([radians.cos(), radians.sin()], dim=1)


@pytest.fixture
def benchmark(tmp_path):
    def solid(name, red):
        path = tmp_path / f"{name}.png"
        Image.new("RGB", (24, 16), (red, 0, 0)).save(path)
        return path

    database = [solid(f"d{i}", 10 * i) for i in range(6)]
    queries = [solid("q0", 200), solid("q1", 210)]
    truth = [QueryGroundTruth(easy=np.array([1, 3])), QueryGroundTruth(easy=np.array([5]))]
    return RetrievalBenchmark(
        name="hand",
        protocol="plain",
        query_paths=queries,
        database_paths=database,
        ground_truth=truth,
        query_ids=["q0", "q1"],
        database_ids=[f"d{i}" for i in range(6)],
        query_boxes=[None, None],
    )


# q0 ranks d0 d1 d2 d3 d4 d5: positives d1, d3 at ranks 2 and 4 →
# AP = ½·(0/1 + 1/2)/2 + ½·(1/3 + 2/4)/2 = 0.125 + 0.2083 = 1/3 (revisitop's trapezoid rule); q1 ranks d5 first: AP 1.
EXPECTED_MAP = (1 / 3 + 1) / 2
SETTINGS = ExtractionSettings(max_side=24, scales=(1.0,), batch_size=4, num_workers=0)


def test_evaluate_benchmark_gives_the_hand_computed_map(benchmark):
    result = evaluate_benchmark(HandPlacedNet(), benchmark, SETTINGS, "hand", progress=False)
    assert result.metrics["mAP"] == pytest.approx(EXPECTED_MAP)
    assert result.ranking.tolist() == [[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]]
    assert result.metrics["mP@1"] == pytest.approx(0.5)  # q0's first result is wrong, q1's right


def test_query_expansion_and_truncation_follow_the_post_processing(benchmark):
    queries = torch.tensor([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in (-5.0, 55.0)])
    database = torch.tensor(
        [[math.cos(math.radians(10.0 * i)), math.sin(math.radians(10.0 * i))] for i in range(6)]
    )
    truncated = rank_and_score(queries, database, benchmark, PostProcessing(top_k=2))
    assert truncated.ranking.shape == (2, 2)
    expanded = rank_and_score(queries, database, benchmark, PostProcessing(query_expansion_k=2, alpha=1.0))
    assert expanded.ranking.shape == (2, 6)
    with pytest.raises(ValueError, match="dimension"):
        rank_and_score(queries, torch.zeros(6, 3), benchmark)


def test_unreadable_benchmark_images_are_an_error_not_a_silent_hole(benchmark):
    benchmark.database_paths[2].write_bytes(b"broken")
    with pytest.raises(ValueError, match="1 unreadable images"):
        evaluate_benchmark(HandPlacedNet(), benchmark, SETTINGS, "hand", progress=False)


class Holder(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = HandPlacedNet()

    def validation_step(self, batch, batch_idx):
        return None


def test_the_callback_logs_the_exact_map_in_a_real_trainer_run(benchmark, tmp_path):
    callback = RetrievalEvaluation(
        benchmarks={},
        extraction=ExtractionSettings(max_side=24, scales=(1.0,), batch_size=4, num_workers=0),
        num_pictured_queries=2,
    )
    callback.benchmarks = {"hand": benchmark}
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[callback],
        default_root_dir=tmp_path,
    )
    trainer.validate(Holder(), dataloaders=DataLoader([torch.zeros(1)]), verbose=False)
    assert trainer.callback_metrics["val/hand/mAP"].item() == pytest.approx(EXPECTED_MAP)
    pictures = list((tmp_path / "retrieval").glob("hand_before-training_*.png"))
    assert len(pictures) == 1 and Image.open(pictures[0]).width > 0


class CountingNet(HandPlacedNet):
    """HandPlacedNet that counts the images it describes."""

    def __init__(self) -> None:
        super().__init__()
        self.images_seen = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.images_seen += images.shape[0]
        return super().forward(images)


def test_a_leave_one_out_benchmark_extracts_every_image_once(tmp_path):
    """Queries that are database images without a box reuse their database descriptors: 5 images, 5 forwards,
    and the metrics of describing every query again."""
    from datamodules.formats.folders import load_subfolders
    from retrieval.descriptor.extract import extract_descriptors

    for place, reds in {"a": (0, 10, 20), "b": (40, 50)}.items():
        (tmp_path / place).mkdir()
        for red in reds:
            Image.new("RGB", (24, 16), (red, 0, 0)).save(tmp_path / place / f"{red}.png")
    benchmark = load_subfolders(tmp_path)
    net = CountingNet()
    result = evaluate_benchmark(net, benchmark, SETTINGS, "hand", progress=False)
    assert net.images_seen == len(benchmark.database_paths) == benchmark.num_queries == 5
    queries, _ = extract_descriptors(HandPlacedNet(), benchmark.query_paths, SETTINGS, progress=False)
    database, _ = extract_descriptors(HandPlacedNet(), benchmark.database_paths, SETTINGS, progress=False)
    naive = rank_and_score(torch.as_tensor(queries), torch.as_tensor(database), benchmark)
    assert result.metrics == pytest.approx(naive.metrics)
    assert result.ranking.tolist() == naive.ranking.tolist()
