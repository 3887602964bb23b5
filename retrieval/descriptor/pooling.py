"""Global pooling of a CNN feature map (B, C, H, W) into one descriptor per image (B, C).

Functional forms and ``nn.Module`` forms: MAC (max), SPoC (average), GeM (generalised mean, learnable p)
and L2 normalisation, as in Radenović et al., "Fine-tuning CNN image retrieval with no human annotation"; and
SuperGlobal's regional GeM followed by GeM+ (Shao et al., "Global Features are All You Need for Image Retrieval
and Reranking", ICCV 2023).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def mac(features: torch.Tensor) -> torch.Tensor:
    """Maximum activation of convolutions: (B, C, H, W) -> (B, C)."""
    return features.amax(dim=(-2, -1))


def spoc(features: torch.Tensor) -> torch.Tensor:
    """Sum-pooled (here: average-pooled) convolutional features: (B, C, H, W) -> (B, C)."""
    return features.mean(dim=(-2, -1))


def gem(features: torch.Tensor, p: torch.Tensor | float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """Generalised mean ``(mean(x^p))^(1/p)`` over the spatial positions: (B, C, H, W) -> (B, C).

    Activations are clamped at ``eps`` first, so negative inputs (e.g. from a backbone without a final ReLU)
    are well defined. p = 1 is average pooling; p -> inf approaches max pooling.
    """
    return features.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


def l2n(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """L2-normalise the rows of (B, D)."""
    return F.normalize(x, p=2.0, dim=-1, eps=eps)


class MAC(nn.Module):
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return mac(features)


class SPoC(nn.Module):
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return spoc(features)


class GeM(nn.Module):
    """GeM pooling with a learnable (or fixed) exponent ``p``."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learn_p: bool = True) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(f"GeM exponent p must be positive, got {p}")
        self.p = nn.Parameter(torch.tensor([float(p)]), requires_grad=learn_p)
        self.eps = eps

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return gem(features, self.p, self.eps)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.4f}, eps={self.eps}"


def regional_lp(features: torch.Tensor, p: float = 2.5, size: int = 5) -> torch.Tensor:
    """SuperGlobal's regional GeM: every position averaged half and half with the L^p norm of its ``size`` ×
    ``size`` neighbourhood, scaled by ``(size²)^(-1/p)`` so that a constant map stays constant (reflection padding,
    replication where the map is too small to reflect): (B, C, H, W) -> (B, C, H, W)."""
    pad = (size - 1) // 2
    mode = "reflect" if min(features.shape[-2:]) > pad else "replicate"
    clamped = features.clamp(min=0)
    padded = F.pad(clamped / (size * size) ** (1.0 / p), (pad, pad, pad, pad), mode=mode)
    return 0.5 * F.lp_pool2d(padded, p, size, stride=1) + 0.5 * clamped


class RegionalGeM(GeM):
    """SuperGlobal pooling: :func:`regional_lp` over the feature map, then GeM with ``p`` (the paper's GeM+: a
    fixed p = 4.6).

    Args:
        p: the GeM exponent after the regional step.
        regional_p: the exponent of the regional L^p norm (the paper: 2.5).
        size: the neighbourhood side (the paper: 5).
    """

    def __init__(
        self, p: float = 4.6, eps: float = 1e-6, learn_p: bool = False, regional_p: float = 2.5, size: int = 5
    ) -> None:
        super().__init__(p, eps, learn_p)
        if regional_p <= 0 or size < 1 or size % 2 == 0:
            raise ValueError(f"regional_p must be positive and size odd, got {regional_p} and {size}")
        self.regional_p = regional_p
        self.size = size

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return gem(regional_lp(features, self.regional_p, self.size), self.p, self.eps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, regional_p={self.regional_p}, size={self.size}"


class L2N(nn.Module):
    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return l2n(x, self.eps)


POOLINGS: dict[str, type[nn.Module]] = {"gem": GeM, "rgem": RegionalGeM, "mac": MAC, "spoc": SPoC}


def build_pooling(name: str, p: float = 3.0, learn_p: bool = True) -> nn.Module:
    """Pooling by name: ``gem`` or ``rgem`` (SuperGlobal's regional GeM + GeM; both with ``p``/``learn_p``),
    ``mac`` or ``spoc``."""
    if name not in POOLINGS:
        raise ValueError(f"unknown pooling {name!r}; choose one of {sorted(POOLINGS)}")
    if name in ("gem", "rgem"):
        return POOLINGS[name](p=p, learn_p=learn_p)
    return POOLINGS[name]()
