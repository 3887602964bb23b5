"""Patch tokens kept by the class token's attention: the weights against a head-by-head reference built from the
qkv weight matrix, the selection that follows them, and backbones that cannot give them."""

import numpy as np
import pytest
import torch
from PIL import Image

from retrieval.descriptor.class_attention import ClassAttention, class_attention
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.local.cnn_patches import CnnPatchExtractor, cnn_patch_features
from retrieval.local.store import StoreMetadata

TINY_VIT = "vit_tiny_patch16_224"


@pytest.fixture(scope="module")
def vit() -> GlobalDescriptorNet:
    torch.manual_seed(0)
    return GlobalDescriptorNet(TINY_VIT, pretrained=False).eval()


def reference_class_attention(attention, tokens: torch.Tensor) -> torch.Tensor:
    """Head by head: q and k of head h are rows h·d … (h+1)·d of the q and k thirds of the qkv weights; the class
    token's softmax(q₀·kⱼ / √d) over tokens j, averaged over heads."""
    width = tokens.shape[-1]
    weight, bias = attention.qkv.weight, attention.qkv.bias
    heads, depth = attention.num_heads, attention.head_dim
    rows = []
    for head in range(heads):
        q_rows = slice(head * depth, (head + 1) * depth)
        k_rows = slice(width + head * depth, width + (head + 1) * depth)
        query = tokens[0, 0] @ weight[q_rows].T + bias[q_rows]
        keys = tokens[0] @ weight[k_rows].T + bias[k_rows]
        rows.append(torch.softmax(keys @ query / depth**0.5, dim=0))
    return torch.stack(rows).mean(0)


def test_the_class_attention_is_the_blocks_softmax_head_by_head(vit):
    attention = vit.backbone.blocks[-1].attn
    tokens = torch.randn(1, 1 + 12, vit.backbone.num_features)
    with torch.no_grad():
        found = class_attention(attention, tokens)[0]
        expected = reference_class_attention(attention, tokens)
    torch.testing.assert_close(found, expected, rtol=1e-5, atol=1e-6)
    assert found.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_patches_are_kept_by_attention_strongest_first(vit):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (100, 150, 3), dtype=np.uint8))
    recorder = ClassAttention(vit.backbone, vit.layout)
    pixels = torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad(), recorder.recording():
        feature_map = vit.feature_map(vit.normalize(pixels))[0]
    attention = recorder.patches[0]
    assert attention.shape == (7 * 10,)  # the 7 x 10 patch grid of a 150 x 100 image, prefix dropped

    by_attention = CnnPatchExtractor(vit, "tiny-vit", max_side=512, max_keypoints=5, selection="attention")
    by_norm = CnnPatchExtractor(vit, "tiny-vit", max_side=512, max_keypoints=5)
    kept = by_attention(image)
    strongest = torch.argsort(attention, descending=True)[:5]
    expected = cnn_patch_features(feature_map, image.size, (16.0, 16.0), attention).top(5)
    np.testing.assert_array_equal(kept.keypoints, expected.keypoints)
    np.testing.assert_allclose(kept.descriptors, expected.descriptors, atol=1e-6)
    np.testing.assert_array_equal(kept.keypoints[:, 0], (strongest % 10).numpy() * 16 + 7.5)
    assert not np.array_equal(kept.keypoints, by_norm(image).keypoints)  # a different choice than the norm
    # stores of the two selections never mix
    assert StoreMetadata.from_extractor(by_attention).mismatches(StoreMetadata.from_extractor(by_norm)) == [
        "patch_selection: 'attention' != 'norm'"
    ]


def test_a_backbone_without_class_attention_is_refused():
    cnn = GlobalDescriptorNet("resnet18", pretrained=False)
    with pytest.raises(ValueError, match="needs a vision transformer with a class token"):
        CnnPatchExtractor(cnn, "cnn", selection="attention")
    with pytest.raises(ValueError, match="selection must be one of"):
        CnnPatchExtractor(cnn, "cnn", selection="saliency")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one value per cell"):
        cnn_patch_features(torch.zeros(4, 2, 3), (48, 32), strength=torch.zeros(5))
