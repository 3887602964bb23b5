"""Experiment loggers that need more than their constructor: W&B with an explicit online/offline decision, and
the one place every app finishes its W&B run."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pytorch_lightning.loggers import WandbLogger

log = logging.getLogger(__name__)


def resolve_wandb_mode(mode: Literal["auto", "online", "offline", "disabled"]) -> str:
    """``auto`` is online only when an API key is set and ``WANDB_MODE`` does not say otherwise; never the
    blocking prompt or network wait of an unset mode."""
    if mode not in ("auto", "online", "offline", "disabled"):
        raise ValueError(f"W&B mode must be auto, online, offline or disabled; got {mode!r}")
    if mode != "auto":
        return mode
    env_mode = os.environ.get("WANDB_MODE")
    if env_mode in ("offline", "disabled", "dryrun"):
        return "offline" if env_mode == "dryrun" else env_mode
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def build_wandb_logger(
    project: str,
    save_dir: str,
    name: str | None = None,
    mode: Literal["auto", "online", "offline", "disabled"] = "auto",
    tags: list[str] | None = None,
    log_model: bool = False,
) -> WandbLogger:
    """A ``WandbLogger`` whose mode is decided and announced here (offline runs land in ``save_dir/wandb``)."""
    resolved = resolve_wandb_mode(mode)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    if resolved == "offline":
        log.info(
            "W&B: offline (no WANDB_API_KEY or WANDB_MODE=offline); run saved under %s/wandb — "
            "upload later with `wandb sync`",
            save_dir,
        )
    else:
        log.info("W&B: %s", resolved)
    return WandbLogger(
        project=project,
        name=name,
        save_dir=save_dir,
        mode=resolved,
        tags=list(tags or []),
        log_model=log_model,
    )


@contextmanager
def finishing_wandb() -> Iterator[None]:
    """Finish the W&B run, if one was started, however the block ends: a multirun's next job then starts
    cleanly, and nothing hangs at exit."""
    try:
        yield
    finally:
        if "wandb" in sys.modules:
            import wandb

            if wandb.run is not None:
                wandb.finish()
