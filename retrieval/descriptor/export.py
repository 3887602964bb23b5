"""Export a global network for serving without this project: a TorchScript file that maps RGB images in [0, 1]
(B, 3, H, W) float32 to L2-normalised descriptors (B, D), normalisation included::

    export_torchscript(GlobalDescriptorNet.from_checkpoint("net.pt"), "net.ts")
    descriptors = torch.jit.load("net.ts")(images)        # anywhere with torch, no timm, no project

The file is traced at one input size and checked at another: a network whose Python code depends on the input
size (and so would be frozen at the traced size) is refused rather than exported wrong. (``torch.export`` of the
EfficientNet backbones with dynamic sizes took over 3 minutes here and could not be saved; ONNX needs the
``onnx`` package, which the project does not install.)
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from retrieval.descriptor.network import GlobalDescriptorNet


class NormalizedNet(nn.Module):
    """``net`` with its input normalisation: RGB in [0, 1] (B, 3, H, W) → descriptors (B, D)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: GlobalDescriptorNet) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(net.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(net.std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - self.mean) / self.std)


@torch.no_grad()
def export_torchscript(
    net: GlobalDescriptorNet,
    path: str | Path,
    traced_size: tuple[int, int] = (384, 512),
    checked_size: tuple[int, int] = (448, 320),
    tolerance: float = 1e-4,
) -> Path:
    """Write ``net`` (on the CPU, in eval mode) as TorchScript to ``path``, atomically.

    Raises:
        ValueError: the traced file disagrees with the network at ``checked_size`` (by more than ``tolerance``).
    """
    module = NormalizedNet(net).to("cpu").eval()
    example = torch.rand(1, 3, *traced_size)
    with warnings.catch_warnings():
        # torch 2.x marks torch.jit as deprecated; TorchScript files remain the portable format that loads with
        # torch alone.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        traced = torch.jit.trace(module, example)
    check = torch.rand(2, 3, *checked_size)
    difference = float((traced(check) - module(check)).abs().max())
    if difference > tolerance:
        raise ValueError(
            f"the traced network differs from the original by {difference:.3g} at {checked_size}: its forward "
            "depends on the input size, so a traced file would be wrong at other sizes"
        )
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    traced.save(str(temporary))
    os.replace(temporary, path)
    return path
