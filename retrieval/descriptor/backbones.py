"""What a timm backbone's ``forward_features`` returns, and how to read it as a feature map.

- CNNs (ResNet, EfficientNet, …) return a feature map (B, C, h, w): :class:`FeatureMapLayout`.
- Vision transformers (ViT, DINOv2, DINOv3, CLIP, SigLIP, …) return tokens (B, P + h·w, C): P prefix tokens (the
  class token, registers) then one token per patch, row by row: :class:`TokenLayout`, which gives the patch
  tokens as a feature map (B, C, h, w) — so GeM, the CNN-patch local features and everything downstream work
  unchanged — and the class token.

:func:`detect_layout` runs the backbone once on a small image at construction and refuses an output it does not
understand, rather than pooling a token sequence as if it were a feature map.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch


class BackboneLayout(ABC):
    """Reads a backbone's ``forward_features`` output."""

    @abstractmethod
    def feature_map(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """(B, C, h, w) from the output for images of ``image_size`` (H, W)."""

    def class_token(self, features: torch.Tensor) -> torch.Tensor | None:
        """(B, C) class token, or None for a backbone without one."""
        return None

    def patch_pixels(self) -> tuple[float, float] | None:
        """(width, height) in pixels of one feature-map cell, when fixed (a transformer's patch); None when the
        image is divided evenly by the map (a CNN's strides)."""
        return None


@dataclass(frozen=True)
class FeatureMapLayout(BackboneLayout):
    """The output already is the feature map."""

    def feature_map(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        return features


@dataclass(frozen=True)
class TokenLayout(BackboneLayout):
    """``num_prefix_tokens`` tokens (class token first), then the patch grid of ``patch_size`` pixels row by row;
    images are padded up to a multiple of the patch size (timm's ``dynamic_img_pad``)."""

    num_prefix_tokens: int
    patch_size: tuple[int, int]
    has_class_token: bool

    def grid(self, image_size: tuple[int, int]) -> tuple[int, int]:
        return math.ceil(image_size[0] / self.patch_size[0]), math.ceil(image_size[1] / self.patch_size[1])

    def feature_map(self, features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        rows, columns = self.grid(image_size)
        patches = features[:, self.num_prefix_tokens :]
        if patches.shape[1] != rows * columns:
            raise ValueError(
                f"{patches.shape[1]} patch tokens for a {rows}x{columns} grid of {image_size[0]}x{image_size[1]} px"
            )
        return patches.transpose(1, 2).reshape(features.shape[0], features.shape[2], rows, columns)

    def class_token(self, features: torch.Tensor) -> torch.Tensor | None:
        return features[:, 0] if self.has_class_token else None

    def patch_pixels(self) -> tuple[float, float] | None:
        return float(self.patch_size[1]), float(self.patch_size[0])


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


@torch.no_grad()
def detect_layout(backbone: Any, name: str) -> BackboneLayout:
    """The layout of ``backbone`` (timm model ``name``), checked on a 2:3 image of a few patches or strides.

    Raises:
        ValueError: the output is neither a feature map nor tokens that fit the patch grid.
    """
    patch_embed = getattr(backbone, "patch_embed", None)
    patch_size = _pair(patch_embed.patch_size) if patch_embed is not None else (32, 32)
    image_size = (2 * patch_size[0] + 3, 3 * patch_size[1] + 5)  # not a multiple: padding must work too
    was_training = backbone.training
    backbone.eval()
    try:
        parameter = next(backbone.parameters())
        output = backbone.forward_features(
            torch.zeros(1, 3, *image_size, device=parameter.device, dtype=parameter.dtype)
        )
    except (AssertionError, RuntimeError) as error:
        raise ValueError(
            f"backbone {name!r} cannot describe a {image_size[0]}x{image_size[1]} image ({error}); "
            "a descriptor network must take images of any size"
        ) from error
    finally:
        backbone.train(was_training)
    if output.ndim == 4:
        return FeatureMapLayout()
    num_prefix = getattr(backbone, "num_prefix_tokens", None)
    if output.ndim == 3 and patch_embed is not None and num_prefix is not None:
        layout = TokenLayout(
            int(num_prefix), patch_size, bool(getattr(backbone, "cls_token", None) is not None)
        )
        rows, columns = layout.grid(image_size)
        if output.shape[1] == num_prefix + rows * columns:
            return layout
    raise ValueError(
        f"backbone {name!r} returns features of shape {tuple(output.shape)} for a {image_size[0]}x{image_size[1]} "
        "image: neither a feature map (B, C, h, w) nor prefix + patch tokens (B, P + h·w, C) this network can pool"
    )
