"""Which precision the matching's matrix products run in: ``"auto"`` picks bfloat16 only where this machine
multiplies it natively.

bfloat16 products are several times faster than float32 on GPUs and on CPUs with AMX or AVX512-BF16, but a CPU
without them emulates bfloat16: measured here on an AVX2 AMD EPYC, a (2048, 128) × (128, 20480) product took
20.7 s in bfloat16 against 0.35 s in float32 — 60 times slower. :func:`bfloat16_speedup` measures the ratio
once per process and device type (a small product, ~0.1 s where bfloat16 is emulated).
"""

from __future__ import annotations

import functools
import logging
import time

import torch

log = logging.getLogger(__name__)

AUTO = "auto"
# bfloat16 is chosen where it is at least this much faster than float32.
_MIN_SPEEDUP = 1.2
_PROBE_SHAPE = (256, 129, 1024)  # query keypoints, descriptor width + 1, candidate keypoints


def _seconds(left: torch.Tensor, right: torch.Tensor, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        left @ right
        best = min(best, time.perf_counter() - start)
    return best


@functools.cache
def bfloat16_speedup(device_type: str) -> float:
    """float32 over bfloat16 time of one (256, 129) × (129, 1024) product on ``device_type`` ("cpu"); CUDA
    devices, whose tensor cores take bfloat16, count as 4 without measuring."""
    if device_type != "cpu":
        return 4.0
    rows, width, columns = _PROBE_SHAPE
    generator = torch.Generator().manual_seed(0)
    left, right = (
        torch.rand(rows, width, generator=generator),
        torch.rand(width, columns, generator=generator),
    )
    with torch.inference_mode():
        float32 = _seconds(left, right, repeats=5)
        left16, right16 = left.bfloat16(), right.bfloat16()
        left16[:2] @ right16  # first-call set-up outside the timing
        bfloat16 = _seconds(left16, right16, repeats=1)
    return float32 / max(bfloat16, 1e-9)


def resolve_precision(precision: str, device: str) -> str:
    """``precision`` itself, or for ``"auto"``: ``"bfloat16"`` where :func:`bfloat16_speedup` is at least 1.2 on
    ``device``'s type, ``"float32"`` elsewhere (logged once per process)."""
    if precision != AUTO:
        return precision
    speedup = bfloat16_speedup(torch.device(device).type)
    chosen = "bfloat16" if speedup >= _MIN_SPEEDUP else "float32"
    _log_choice(chosen, speedup, device)
    return chosen


@functools.cache
def _log_choice(chosen: str, speedup: float, device: str) -> None:
    log.info(
        "matching precision auto on %s: %s (bfloat16 products %.2fx as fast as float32)",
        device,
        chosen,
        speedup,
    )
