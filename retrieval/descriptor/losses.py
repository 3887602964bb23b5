"""Metric-learning losses: tuple losses over (query, positive, negatives) and classification losses over
landmark classes.

Tuple losses take L2-normalised descriptors ``query (B, D)``, ``positive (B, D)`` and ``negatives (B, K, D)``
and return the mean over the B tuples of the tuple's summed pair terms. Classification losses take descriptors
``(B, D)`` and class indices ``(B,)``, own their class weights, and return the mean cross-entropy.
"""

from __future__ import annotations

import math

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


class ArcFaceLoss(nn.Module):
    """Additive angular margin softmax (Deng et al., ArcFace) over L2-normalised descriptors: the target class'
    logit is ``scale·cos(θ + margin)``, the others ``scale·cos θ``, with θ the angle to the class centre.

    Args:
        embedding_dim: descriptor size D.
        num_classes: number of landmarks C.
        scale: the logit scale s.
        margin: the additive angular margin m (radians); 0 gives a normalised (cosine) softmax.
    """

    def __init__(
        self, embedding_dim: int, num_classes: int, scale: float = 30.0, margin: float = 0.3
    ) -> None:
        super().__init__()
        if embedding_dim < 1 or num_classes < 2:
            raise ValueError(
                f"need embedding_dim >= 1 and num_classes >= 2, got {embedding_dim}, {num_classes}"
            )
        if scale <= 0 or not 0 <= margin < math.pi / 2:
            raise ValueError(f"need scale > 0 and 0 <= margin < π/2, got {scale}, {margin}")
        self.class_centres = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.xavier_uniform_(self.class_centres)
        self.scale = scale
        self.margin = margin

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C) logits; with ``labels`` (B,) the margin is applied to each row's target class."""
        cosine = nn.functional.linear(
            nn.functional.normalize(embeddings, dim=-1), nn.functional.normalize(self.class_centres, dim=-1)
        )
        if labels is None or self.margin == 0:
            return self.scale * cosine
        theta = torch.acos(cosine.clamp(-1 + 1e-7, 1 - 1e-7))
        target = nn.functional.one_hot(labels, cosine.shape[1]).bool()
        # cos(θ + m) only where θ + m < π stays monotonic; beyond, fall back to the CosFace-like penalty.
        with_margin = torch.where(
            theta + self.margin < math.pi,
            torch.cos(theta + self.margin),
            cosine - self.margin * math.sin(self.margin),
        )
        return self.scale * torch.where(target, with_margin, cosine)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of descriptors (B, D) against landmark classes (B,)."""
        if embeddings.ndim != 2 or labels.shape != (embeddings.shape[0],):
            raise ValueError(
                f"need embeddings (B, D) and labels (B,), got {tuple(embeddings.shape)}, {tuple(labels.shape)}"
            )
        return nn.functional.cross_entropy(self.logits(embeddings, labels), labels)

    def extra_repr(self) -> str:
        return f"classes={self.class_centres.shape[0]}, scale={self.scale}, margin={self.margin}"


class CrossEntropyLoss(nn.Module):
    """Plain classification fine-tuning (the thesis' E2): a linear classifier on the descriptors, softmax
    cross-entropy."""

    def __init__(self, embedding_dim: int, num_classes: int) -> None:
        super().__init__()
        if embedding_dim < 1 or num_classes < 2:
            raise ValueError(
                f"need embedding_dim >= 1 and num_classes >= 2, got {embedding_dim}, {num_classes}"
            )
        self.classifier = nn.Linear(embedding_dim, num_classes)

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier(embeddings)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if embeddings.ndim != 2 or labels.shape != (embeddings.shape[0],):
            raise ValueError(
                f"need embeddings (B, D) and labels (B,), got {tuple(embeddings.shape)}, {tuple(labels.shape)}"
            )
        return nn.functional.cross_entropy(self.logits(embeddings), labels)
