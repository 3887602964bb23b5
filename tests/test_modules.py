"""The LightningModules' optimiser set-up: layer-wise learning-rate decay for transformer backbones."""

import functools

import pytest
import torch

from lightning_modules.siamese import SiameseRetrievalModule
from retrieval.descriptor.losses import ContrastiveLoss
from retrieval.descriptor.network import GlobalDescriptorNet


def module(layer_decay):
    net = GlobalDescriptorNet("vit_tiny_patch16_224")
    optimizer = functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.01)
    return SiameseRetrievalModule(net, ContrastiveLoss(), optimizer, layer_decay=layer_decay)


def test_layer_decay_scales_each_earlier_block_by_the_factor():
    optimizer = module(0.5).configure_optimizers()
    rates = sorted({round(group["lr"] / 1e-3, 6) for group in optimizer.param_groups if not group.get("gem")})
    # 12 blocks + the embeddings: the last layer group at 1, each earlier one halved (timm's grouping).
    assert rates[-1] == 1.0 and rates == sorted({round(0.5**depth, 6) for depth in range(len(rates))})
    assert len(rates) >= 13
    parameters = [id(p) for group in optimizer.param_groups for p in group["params"]]
    trainable = [id(p) for p in module(0.5).parameters() if p.requires_grad]
    assert len(parameters) == len(set(parameters)) == len(trainable)
    assert all(group["weight_decay"] == 0.01 for group in optimizer.param_groups if not group.get("gem"))


def test_without_layer_decay_every_layer_trains_at_the_full_rate():
    optimizer = module(None).configure_optimizers()
    assert {group["lr"] for group in optimizer.param_groups if not group.get("gem")} == {1e-3}
    with pytest.raises(ValueError, match="layer_decay"):
        module(1.5)
