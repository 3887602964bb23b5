"""Validation callbacks: retrieval benchmarks scored during training, with pictures of the top 10."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger

from retrieval.benchmark import BenchmarkLoader, RetrievalBenchmark
from retrieval.descriptor.extract import ExtractionSettings
from retrieval.evaluation import BenchmarkResult, PostProcessing, evaluate_benchmark
from retrieval.visualize import render_ranking_grid, stack_rows

log = logging.getLogger(__name__)


class RetrievalEvaluation(pl.Callback):
    """At the end of validation (every ``every_n_epochs`` epochs during fit, and at every ``trainer.validate``,
    e.g. the epoch-0 baseline) extracts, searches and scores each benchmark; logs ``val/<name>/<metric>``
    to every logger, and a picture of the top ``grid_size`` results of ``num_pictured_queries`` queries
    (green: positive, red: negative, grey: junk) to W&B and to ``<run dir>/retrieval/``.

    Args:
        benchmarks: name → its loader (loaded once, at setup).
        extraction: how descriptors are extracted.
        post: query expansion, database-side augmentation and ranking depth (None: none, whole ranking).
        every_n_epochs: evaluation period during fit.
        num_pictured_queries: queries shown in the picture (0: no picture).
        grid_size: results shown per pictured query.
    """

    def __init__(
        self,
        benchmarks: dict[str, BenchmarkLoader],
        extraction: ExtractionSettings,
        post: PostProcessing | None = None,
        every_n_epochs: int = 1,
        num_pictured_queries: int = 4,
        grid_size: int = 10,
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be at least 1, got {every_n_epochs}")
        self.sources = dict(benchmarks)
        self.every_n_epochs = every_n_epochs
        self.settings = extraction
        self.post = post or PostProcessing()
        self.num_pictured_queries = num_pictured_queries
        self.grid_size = grid_size
        self.benchmarks: dict[str, RetrievalBenchmark] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not self.benchmarks:
            self.benchmarks = {name: source.load() for name, source in self.sources.items()}

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if trainer.state.fn == "fit" and (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        net = getattr(pl_module, "net", None)
        if net is None:
            raise TypeError(
                f"RetrievalEvaluation needs a module with a descriptor network `net`, got {pl_module!r}"
            )
        for name, benchmark in self.benchmarks.items():
            result = evaluate_benchmark(
                net,
                benchmark,
                self.settings,
                descriptor_id="training",  # the weights change every epoch: nothing is cached
                post=self.post,
                device=pl_module.device,
                progress=trainer.is_global_zero,
            )
            pl_module.log_dict(
                {f"val/{name}/{key}": value for key, value in result.metrics.items()}, sync_dist=False
            )
            if trainer.is_global_zero and self.num_pictured_queries:
                self._picture(trainer, name, benchmark, result)

    def _picture(
        self, trainer: pl.Trainer, name: str, benchmark: RetrievalBenchmark, result: BenchmarkResult
    ) -> None:
        rows = []
        # Evenly spaced queries, so that the picture shows several landmarks.
        pictured = np.unique(
            np.linspace(0, benchmark.num_queries - 1, self.num_pictured_queries).round().astype(int)
        )
        for query in pictured:
            top = result.ranking[query, : self.grid_size]
            rows.append(
                render_ranking_grid(
                    benchmark.query_paths[query],
                    [benchmark.database_paths[i] for i in top],
                    benchmark.verdicts(query, top),
                    result.scores[query, : self.grid_size].tolist(),
                    thumbnail_size=96,
                )
            )
        picture = stack_rows(rows)
        if trainer.state.fn == "fit":
            stage = f"epoch{trainer.current_epoch:03d}"
        else:  # trainer.validate: before training (no step yet) or after it
            stage = "before-training" if trainer.global_step == 0 else "after-training"
        folder = Path(trainer.default_root_dir) / "retrieval"
        folder.mkdir(parents=True, exist_ok=True)
        picture.save(folder / f"{name}_{stage}_step{trainer.global_step}.png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key=f"val/{name}/top{self.grid_size}",
                    images=[picture],
                    caption=[stage],
                    step=trainer.global_step,
                )
