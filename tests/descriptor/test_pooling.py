"""MAC, SPoC, GeM and L2N against hand-computed maps and the naive formulas."""

import math

import pytest
import torch

from retrieval.descriptor.pooling import GeM, build_pooling, gem, l2n, mac, spoc


def naive_gem(features: torch.Tensor, p: float) -> torch.Tensor:
    batch, channels = features.shape[:2]
    out = torch.empty(batch, channels)
    for b in range(batch):
        for c in range(channels):
            values = features[b, c].flatten().clamp(min=1e-6).tolist()
            out[b, c] = (sum(v**p for v in values) / len(values)) ** (1 / p)
    return out


def test_pooling_on_a_hand_computed_map():
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # (1, 1, 2, 2)
    assert mac(features).item() == 4.0
    assert spoc(features).item() == 2.5
    # GeM p=2: sqrt((1 + 4 + 9 + 16) / 4) = sqrt(7.5)
    assert gem(features, 2.0).item() == pytest.approx(math.sqrt(7.5))


@pytest.mark.parametrize("p", [1.0, 3.0, 6.5])
def test_gem_matches_the_naive_formula(p):
    features = torch.rand(2, 5, 3, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(gem(features, p), naive_gem(features, p), rtol=1e-5, atol=1e-6)


def test_gem_limits_are_average_and_max_pooling():
    features = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1)) + 0.1
    torch.testing.assert_close(gem(features, 1.0), spoc(features))
    torch.testing.assert_close(gem(features, 200.0), mac(features), rtol=0.03, atol=0)


def test_gem_module_learns_p():
    pooling = GeM(p=3.0)
    features = torch.rand(2, 4, 3, 3) + 0.1
    pooling(features).sum().backward()
    assert pooling.p.grad is not None and pooling.p.grad.abs().item() > 0


def test_l2n_gives_unit_rows():
    x = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    torch.testing.assert_close(l2n(x), torch.tensor([[0.6, 0.8], [0.0, 1.0]]))


def test_bad_pooling_arguments_raise():
    with pytest.raises(ValueError, match="unknown pooling"):
        build_pooling("median")
    with pytest.raises(ValueError, match="positive"):
        GeM(p=0.0)


def naive_regional_lp(features: torch.Tensor, p: float, size: int) -> torch.Tensor:
    """Per position: 0.5·x + 0.5·(Σ over the size × size reflected neighbourhood of (x / (size²)^(1/p))^p)^(1/p)."""
    _, _, height, width = features.shape
    pad = (size - 1) // 2

    def reflect(index: int, length: int) -> int:
        return -index if index < 0 else 2 * (length - 1) - index if index >= length else index

    out = torch.empty_like(features)
    scale = (size * size) ** (1 / p)
    for b, c, y, x in torch.cartesian_prod(*(torch.arange(n) for n in features.shape)).tolist():
        total = sum(
            (features[b, c, reflect(y + dy, height), reflect(x + dx, width)].item() / scale) ** p
            for dy in range(-pad, pad + 1)
            for dx in range(-pad, pad + 1)
        )
        out[b, c, y, x] = 0.5 * total ** (1 / p) + 0.5 * features[b, c, y, x]
    return out


def test_regional_gem_matches_the_naive_formula_and_keeps_a_flat_map_flat():
    torch.manual_seed(0)
    features = torch.rand(1, 2, 5, 6)
    pooling = build_pooling("rgem", p=4.6, learn_p=False)
    expected = naive_gem(naive_regional_lp(features, 2.5, 5), 4.6)
    torch.testing.assert_close(pooling(features), expected, atol=1e-5, rtol=1e-5)
    flat = torch.full((1, 3, 4, 4), 0.7)
    torch.testing.assert_close(pooling(flat), torch.full((1, 3), 0.7))
    assert pooling(torch.rand(2, 3, 1, 2)).shape == (2, 3)  # a map too small to reflect is replicated
    assert not pooling.p.requires_grad
