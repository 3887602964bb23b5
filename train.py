"""Train a global landmark descriptor:  python train.py [model=resnet50] [loss=contrastive] [data=gldv2] ...

Validates before and after training, writes ``results.json`` into the run folder and prints it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor

from experiments.app import app_main
from experiments.tables import before_after_table, single_run_table
from lightning_modules.loggers import finishing_wandb
from retrieval.descriptor.weights import WeightsError

log = logging.getLogger("train")


def build_model(cfg: DictConfig) -> pl.LightningModule:
    """The LightningModule; a smoke test (``fast_dev_run``) without hub access falls back to random weights."""
    try:
        return instantiate(cfg.model)
    except InstantiationException as error:
        if not (isinstance(error.__cause__, WeightsError) and cfg.trainer.get("fast_dev_run")):
            raise
        log.warning("fast_dev_run: %s — smoke-testing with randomly initialised weights", error.__cause__)
        model_cfg = OmegaConf.merge(cfg.model, {"net": {"pretrained": False, "pretrained_path": None}})
        return instantiate(model_cfg)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the model of ``cfg``; returns the validation metrics before and after training."""
    pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    datamodule: pl.LightningDataModule = instantiate(cfg.data)
    model = build_model(cfg)
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    total = sum(parameter.numel() for parameter in model.parameters())
    log.info(
        "model %s: %.2f M parameters, %.2f M trainable", type(model).__name__, total / 1e6, trainable / 1e6
    )
    callbacks = [instantiate(callback) for callback in cfg.get("callbacks", {}).values()]
    loggers = [instantiate(logger) for logger in cfg.get("logger", {}).values()]
    if not loggers:  # logger=none: the learning-rate monitor has nowhere to write
        callbacks = [callback for callback in callbacks if not isinstance(callback, LearningRateMonitor)]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    results: dict[str, Any] = {"monitor": cfg.monitor}
    with finishing_wandb():
        if cfg.validate_before_training and cfg.ckpt_path is None:
            results["before"] = _rounded(trainer.validate(model, datamodule=datamodule, verbose=False)[0])
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=False)
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        results["best_checkpoint"] = best or None
        results["after"] = _rounded(
            trainer.validate(
                model, datamodule=datamodule, ckpt_path=best or None, verbose=False, weights_only=False
            )[0]
        )
    if trainer.is_global_zero:
        results_path = output_dir / "results.json"
        results_path.write_text(json.dumps(results, indent=2))
        if "before" in results:
            table = before_after_table(results["before"], results["after"], cfg.monitor)
        else:
            table = single_run_table(results["after"], cfg.monitor)
        (output_dir / "results.md").write_text(f"# Training run {output_dir.name}\n\n{table}\n")
        print(table)
        log.info("results written to %s and results.md (best checkpoint: %s)", results_path, best or "none")
    return results


def _rounded(metrics: Mapping[str, float]) -> dict[str, float]:
    """Metrics as JSON shows them: six decimals (a float32 0.637499988 is 0.6375)."""
    return {name: round(float(value), 6) for name, value in metrics.items()}


@app_main("train")
def main(cfg: DictConfig) -> float | None:
    results = train(cfg)
    value = results.get("after", {}).get(cfg.monitor)
    return None if value is None else float(value)  # the objective of hparams_search sweeps


if __name__ == "__main__":
    main()
