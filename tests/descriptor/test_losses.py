"""Contrastive, triplet, ArcFace and cross-entropy losses against hand-computed values."""

import math

import pytest
import torch

from retrieval.descriptor.losses import ContrastiveLoss, TripletLoss


def unit(*values: float) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(values), dim=-1)


def test_contrastive_loss_hand_computed():
    # Query (1, 0); positive at 90° → d = √2; negatives at 180° (d = 2) and at 60° (d = 1).
    query = unit(1.0, 0.0).view(1, 2)
    positive = unit(0.0, 1.0).view(1, 2)
    negatives = torch.stack([unit(-1.0, 0.0), unit(0.5, 3**0.5 / 2)]).view(1, 2, 2)
    loss = ContrastiveLoss(margin=1.5, eps=0.0)(query, positive, negatives)
    # 0.5·2 + 0.5·max(0, 1.5 − 2)² + 0.5·max(0, 1.5 − 1)² = 1 + 0 + 0.125
    assert loss.item() == pytest.approx(1.125, abs=1e-6)


def test_contrastive_loss_averages_over_tuples():
    query = torch.stack([unit(1.0, 0.0), unit(0.0, 1.0)])
    positive = query.clone()
    negatives = (-query).unsqueeze(1)  # d = 2 > margin: no loss at all
    assert ContrastiveLoss(margin=0.7, eps=0.0)(query, positive, negatives).item() == pytest.approx(0.0)
    negatives = query.unsqueeze(1)  # d = 0: 0.5·0.7² per tuple
    assert ContrastiveLoss(margin=0.7, eps=0.0)(query, positive, negatives).item() == pytest.approx(0.245)


def test_triplet_loss_hand_computed():
    query = unit(1.0, 0.0).view(1, 2)
    positive = unit(0.0, 1.0).view(1, 2)  # d² = 2
    negatives = torch.stack([unit(-1.0, 0.0), unit(0.0, -1.0)]).view(1, 2, 2)  # d² = 4, 2
    # max(0, 2 − 4 + 0.5) + max(0, 2 − 2 + 0.5) = 0 + 0.5
    assert TripletLoss(margin=0.5)(query, positive, negatives).item() == pytest.approx(0.5)


def test_losses_reject_wrong_shapes():
    query = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="negatives"):
        ContrastiveLoss()(query, query, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="margin"):
        TripletLoss(margin=0.0)


def test_arcface_hand_computed():
    from retrieval.descriptor.losses import ArcFaceLoss

    loss = ArcFaceLoss(embedding_dim=2, num_classes=2, scale=2.0, margin=0.5)
    with torch.no_grad():
        loss.class_centres.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    # θ to the own centre is 0, so its logit is 2·cos(0.5); the other centre is at 90°: logit 0.
    value = loss(torch.tensor([[3.0, 0.0]]), torch.tensor([0]))
    # (acos is clamped just inside [-1, 1] for finite gradients: θ = 5e-4 instead of 0, hence the tolerance.)
    assert value.item() == pytest.approx(math.log(1 + math.exp(-2 * math.cos(0.5))), abs=2e-4)
    # Without labels no margin applies.
    torch.testing.assert_close(loss.logits(torch.tensor([[1.0, 0.0]])), torch.tensor([[2.0, 0.0]]))


def test_arcface_margin_raises_the_loss_and_zero_margin_is_cosine_softmax():
    from retrieval.descriptor.losses import ArcFaceLoss

    torch.manual_seed(0)
    embeddings, labels = torch.randn(8, 4), torch.randint(0, 3, (8,))
    with_margin = ArcFaceLoss(4, 3, scale=10.0, margin=0.3)
    without = ArcFaceLoss(4, 3, scale=10.0, margin=0.0)
    without.load_state_dict(with_margin.state_dict())
    assert with_margin(embeddings, labels) > without(embeddings, labels)
    cosine = (
        torch.nn.functional.normalize(embeddings) @ torch.nn.functional.normalize(without.class_centres).T
    )
    torch.testing.assert_close(
        without(embeddings, labels), torch.nn.functional.cross_entropy(10 * cosine, labels)
    )


def test_classification_losses_reject_bad_arguments():
    from retrieval.descriptor.losses import ArcFaceLoss, CrossEntropyLoss

    with pytest.raises(ValueError, match="num_classes"):
        CrossEntropyLoss(8, 1)
    with pytest.raises(ValueError, match="margin"):
        ArcFaceLoss(8, 4, margin=2.0)
    with pytest.raises(ValueError, match="labels"):
        ArcFaceLoss(8, 4)(torch.zeros(2, 8), torch.zeros(3, dtype=torch.long))
