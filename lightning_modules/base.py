"""What every descriptor-training LightningModule shares: the forward pass, frozen BatchNorm, the GeM
learning-rate rule, leave-one-out validation on held-out landmarks, and the checkpoint's network config."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from timm.optim import param_groups_layer_decay
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.metrics import leave_one_out_scores

log = logging.getLogger(__name__)

# Frozen BatchNorm layers are in eval mode on purpose; Lightning's start-of-fit notice about them is noise.
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")

OptimizerFactory = Callable[[Iterable[dict[str, Any]]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]


class DescriptorModule(pl.LightningModule):
    """Base of the training modules; validates by leave-one-out retrieval on held-out landmarks
    (``val/mAP``, ``val/mP@10``, ...).

    Args:
        net: the descriptor network (backbone → pooling → whitening → L2N).
        optimizer: a partial optimizer taking parameter groups (Hydra ``_partial_``).
        scheduler: a partial scheduler taking the optimizer, stepped every epoch, or ``None``.
        freeze_batchnorm: keep BatchNorm running statistics fixed during training (cirtorch).
        gem_lr_multiplier: learning-rate factor of the GeM exponent, which also gets no weight decay.
        layer_decay: layer-wise learning-rate decay of the backbone (BEiT / DINOv2 fine-tuning): the last block
            trains at the full rate, each earlier one at ``layer_decay`` times the next (timm's layer groups);
            None trains every layer at the full rate.
    """

    def __init__(
        self,
        net: GlobalDescriptorNet,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        freeze_batchnorm: bool = True,
        gem_lr_multiplier: float = 10.0,
        layer_decay: float | None = None,
    ) -> None:
        super().__init__()
        if gem_lr_multiplier <= 0:
            raise ValueError(f"model.gem_lr_multiplier must be positive, got {gem_lr_multiplier}")
        if layer_decay is not None and not 0 < layer_decay <= 1:
            raise ValueError(f"model.layer_decay must be in (0, 1] or null, got {layer_decay}")
        self.layer_decay = layer_decay
        _try_optimizer(optimizer, scheduler)
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.freeze_batchnorm = freeze_batchnorm
        self.gem_lr_multiplier = gem_lr_multiplier
        self._val_embeddings: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []
        self._val_indices: list[torch.Tensor] = []
        self._val_skipped = 0
        self._skipped = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (B, 3, H, W) → L2-normalised descriptors (B, D)."""
        pixels = self.net.normalize(images)
        if pixels.is_cuda:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        return self.net(pixels)

    def on_fit_start(self) -> None:
        if self.device.type == "cuda":  # channels_last convolutions are markedly faster on tensor cores
            self.net.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True) -> DescriptorModule:
        super().train(mode)
        if mode and self.freeze_batchnorm:
            for module in self.net.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def on_train_epoch_end(self) -> None:
        self.log("train/skipped_samples", float(self._skipped))
        gem_p = getattr(self.net.pool, "p", None)
        if isinstance(gem_p, torch.Tensor):
            self.log("train/gem_p", float(gem_p.detach().mean()))

    # -------------------------------------------------------------------------------------------- validation
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._val_skipped += int(batch.get("num_skipped", 0))
        if "image" not in batch:
            return
        self._val_embeddings.append(self(batch["image"]).float())
        self._val_labels.append(batch["label"])
        self._val_indices.append(batch["index"])

    def on_validation_epoch_end(self) -> None:
        skipped, self._val_skipped = self._val_skipped, 0
        if skipped:
            log.warning("validation: %d unreadable images skipped", skipped)
        self.log("val/skipped_images", float(skipped), sync_dist=True)
        if not self._val_embeddings:
            return
        embeddings = torch.cat(self._val_embeddings)
        labels = torch.cat(self._val_labels)
        indices = torch.cat(self._val_indices)
        self._val_embeddings.clear()
        self._val_labels.clear()
        self._val_indices.clear()
        if self.trainer.world_size > 1:
            embeddings = self._gathered(embeddings)
            labels = self._gathered(labels)
            # The distributed sampler pads the ranks' shares with repeated images: keep each image once.
            indices = self._gathered(indices)
            _, first = np.unique(indices.cpu().numpy(), return_index=True)
            keep = torch.from_numpy(first).to(embeddings.device)
            embeddings, labels = embeddings[keep], labels[keep]
        scores = leave_one_out_scores(embeddings, labels)
        self.log_dict({f"val/{name}": value for name, value in scores.items()}, prog_bar=True)

    def _gathered(self, rows: torch.Tensor) -> torch.Tensor:
        """Every rank's rows (N, ...) stacked into (world · N, ...)."""
        gathered = self.all_gather(rows)
        if not isinstance(gathered, torch.Tensor):
            raise TypeError(f"all_gather of a tensor gave a {type(gathered).__name__}")
        return gathered.flatten(0, 1)

    # ------------------------------------------------------------------------------------------- optimisers
    def trainable_groups(self) -> list[dict[str, Any]]:
        """Parameter groups: the network (with ``layer_decay``, the backbone's layers as groups of decreasing
        ``lr_scale``), and the GeM exponent (no weight decay; its lr is multiplied)."""
        gem_parameters = [
            p for name, p in self.net.named_parameters() if name.startswith("pool.") and p.requires_grad
        ]
        gem_ids = {id(p) for p in gem_parameters}
        groups: list[dict[str, Any]] = []
        if self.layer_decay is not None:
            # timm's layer groups with their lr_scale; the weight decay stays the optimizer's.
            layered = param_groups_layer_decay(self.net.backbone, layer_decay=self.layer_decay)
            groups = [
                {"params": [p for p in group["params"] if p.requires_grad], "lr_scale": group["lr_scale"]}
                for group in layered
            ]
            gem_ids |= {id(p) for group in groups for p in group["params"]}
        other = [p for p in self.parameters() if p.requires_grad and id(p) not in gem_ids]
        groups = [group for group in groups if group["params"]] + [{"params": other}]
        if gem_parameters:
            groups.append({"params": gem_parameters, "weight_decay": 0.0, "gem": True})
        return groups

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.trainable_groups())
        for group in optimizer.param_groups:
            group["lr"] *= group.get("lr_scale", 1.0)
            if group.get("gem"):
                group["lr"] *= self.gem_lr_multiplier
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["net_config"] = self.net.config


def _try_optimizer(optimizer: OptimizerFactory, scheduler: SchedulerFactory | None) -> None:
    """Build the optimizer and scheduler once on a stand-in parameter, so that a bad setting (``optimizer.lr=-1``)
    is refused when the model is built, not after the first validation."""
    try:
        built = optimizer([{"params": [torch.nn.Parameter(torch.zeros(1))]}])
        if scheduler is not None:
            scheduler(built)
    except (ValueError, TypeError) as error:
        raise ValueError(f"the optimizer or scheduler config is invalid: {error}") from error
