import pytest
import torch

from retrieval.losses import ContrastiveLoss, TripletLoss


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
