"""Metric-learning losses over training tuples (query, positive, negatives).

Every loss takes L2-normalised descriptors ``query (B, D)``, ``positive (B, D)`` and ``negatives (B, K, D)``
and returns the mean over the B tuples of the tuple's summed pair terms.
"""

from __future__ import annotations

import torch
from torch import nn


def _check_tuple_shapes(query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor) -> None:
    if query.ndim != 2 or positive.shape != query.shape:
        raise ValueError(
            f"query and positive must both be (B, D); got {tuple(query.shape)}, {tuple(positive.shape)}"
        )
    if negatives.ndim != 3 or negatives.shape[0] != query.shape[0] or negatives.shape[2] != query.shape[1]:
        raise ValueError(
            f"negatives must be (B, K, D) = ({query.shape[0]}, K, {query.shape[1]}); got {tuple(negatives.shape)}"
        )


class ContrastiveLoss(nn.Module):
    """Contrastive loss in the cirtorch form: for each pair at Euclidean distance d,
    ``0.5·d²`` for the positive pair and ``0.5·max(0, margin − d)²`` for each negative pair."""

    def __init__(self, margin: float = 0.7, eps: float = 1e-6) -> None:
        super().__init__()
        if margin <= 0:
            raise ValueError(f"margin must be positive, got {margin}")
        self.margin = margin
        self.eps = eps

    def forward(self, query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        _check_tuple_shapes(query, positive, negatives)
        positive_distance = (query - positive + self.eps).norm(dim=-1)  # (B,)
        negative_distance = (query.unsqueeze(1) - negatives + self.eps).norm(dim=-1)  # (B, K)
        positive_term = 0.5 * positive_distance.pow(2)
        negative_term = 0.5 * (self.margin - negative_distance).clamp(min=0).pow(2).sum(dim=1)
        return (positive_term + negative_term).mean()

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


class TripletLoss(nn.Module):
    """Triplet loss ``max(0, d(q, p)² − d(q, n)² + margin)`` summed over the K negatives of each tuple."""

    def __init__(self, margin: float = 0.1) -> None:
        super().__init__()
        if margin <= 0:
            raise ValueError(f"margin must be positive, got {margin}")
        self.margin = margin

    def forward(self, query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        _check_tuple_shapes(query, positive, negatives)
        positive_distance_sq = (query - positive).pow(2).sum(dim=-1, keepdim=True)  # (B, 1)
        negative_distance_sq = (query.unsqueeze(1) - negatives).pow(2).sum(dim=-1)  # (B, K)
        return (positive_distance_sq - negative_distance_sq + self.margin).clamp(min=0).sum(dim=1).mean()

    def extra_repr(self) -> str:
        return f"margin={self.margin}"
