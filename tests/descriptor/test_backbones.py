"""Transformer backbones: tokens read as a patch grid, pooled as CLS, GeM over patches or both, at any size; an
output layout that is not understood is refused at construction."""

import pytest
import timm
import torch
from torch import nn

from retrieval.descriptor.backbones import FeatureMapLayout, TokenLayout, detect_layout
from retrieval.descriptor.network import GlobalDescriptorNet

TINY_VIT = "vit_tiny_patch16_224"  # random weights: 5.7 M parameters, fast on a CPU
SIZES = [(3, 64, 64), (3, 100, 150), (3, 224, 96), (3, 37, 301)]


@pytest.fixture(scope="module")
def vit() -> GlobalDescriptorNet:
    return GlobalDescriptorNet(TINY_VIT, pretrained=False).eval()


def test_a_vit_gives_unit_descriptors_for_images_of_any_size(vit):
    assert isinstance(vit.layout, TokenLayout) and vit.token_pooling == "cls" and vit.output_dim == 192
    with torch.no_grad():
        for size in SIZES:
            descriptors = vit(torch.rand(2, *size))
            assert descriptors.shape == (2, 192)
            torch.testing.assert_close(descriptors.norm(dim=1), torch.ones(2))


def test_patch_tokens_form_the_feature_map_row_by_row(vit):
    """Patch token r·columns + c (after the class token) is cell (r, c) of the map: 100×150 px → 7×10 patches."""
    images = torch.rand(1, 3, 100, 150)
    with torch.no_grad():
        tokens = vit.backbone.forward_features(images)
        feature_map = vit.feature_map(images)
    assert tokens.shape == (1, 1 + 7 * 10, 192) and feature_map.shape == (1, 192, 7, 10)
    torch.testing.assert_close(feature_map[0, :, 2, 3], tokens[0, 1 + 2 * 10 + 3])


@pytest.mark.parametrize(("token_pooling", "dim"), [("patches", 192), ("cls+patches", 384)])
def test_token_poolings(token_pooling, dim):
    net = GlobalDescriptorNet(TINY_VIT, token_pooling=token_pooling).eval()
    with torch.no_grad():
        descriptors = net(torch.rand(2, 3, 80, 120))
    assert net.output_dim == dim and descriptors.shape == (2, dim)
    if (
        token_pooling == "cls+patches"
    ):  # two unit halves, concatenated and normalised: each half has norm 1/√2
        torch.testing.assert_close(descriptors[:, :192].norm(dim=1), torch.full((2,), 2**-0.5))


def test_token_pooling_is_refused_where_it_cannot_apply():
    with pytest.raises(ValueError, match="token_pooling applies to transformer backbones"):
        GlobalDescriptorNet("resnet18", token_pooling="cls")
    with pytest.raises(ValueError, match="token_pooling must be one of"):
        GlobalDescriptorNet(TINY_VIT, token_pooling="mean")


def test_a_checkpoint_keeps_the_token_pooling(tmp_path):
    net = GlobalDescriptorNet(TINY_VIT, token_pooling="cls+patches").eval()
    net.save(tmp_path / "net.pt")
    loaded = GlobalDescriptorNet.from_checkpoint(tmp_path / "net.pt").eval()
    images = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), net(images))


class SequenceOfFeatures(nn.Module):
    """A backbone whose output is a flat sequence without a patch grid."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 8)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(images.mean(dim=(2, 3)))[:, None, :].expand(-1, 5, -1)


class FixedSize(nn.Module):
    """A backbone that takes only 224 × 224 images (timm ViTs without dynamic_img_size assert this)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        assert images.shape[-2:] == (224, 224), "Input height doesn't match model (224)"
        return images


def test_a_layout_that_is_not_understood_is_refused():
    cnn = timm.create_model("resnet18", pretrained=False, num_classes=0, global_pool="")
    assert isinstance(detect_layout(cnn, "resnet18"), FeatureMapLayout)
    with pytest.raises(ValueError, match=r"returns features of shape \(1, 5, 8\).*neither a feature map"):
        detect_layout(SequenceOfFeatures(), "sequence")
    with pytest.raises(ValueError, match="must take images of any size"):
        detect_layout(FixedSize(), "fixed")


def test_weights_in_the_official_dinov2_release_format_load(tmp_path):
    """The release files name tensors as timm does, plus the training-only mask token (and register_tokens in
    the _reg4 models): those are dropped or renamed; a file of another shape is refused."""
    from retrieval.descriptor.weights import WeightsError, load_backbone_weights

    source = timm.create_model(TINY_VIT, pretrained=False, num_classes=0, global_pool="")
    release = {**source.state_dict(), "mask_token": torch.zeros(1, 192)}
    torch.save(release, tmp_path / "dinov2_release.pth")
    net = GlobalDescriptorNet(TINY_VIT, pretrained_path=str(tmp_path / "dinov2_release.pth")).eval()
    torch.testing.assert_close(net.backbone.pos_embed, source.pos_embed)
    release["pos_embed"] = torch.zeros(1, 50, 192)
    with pytest.raises(WeightsError, match="shape mismatches 1"):
        load_backbone_weights(net.backbone, release, "another.pth")


def test_patch_tokens_are_local_features_at_their_patch_centres(vit):
    """The thesis' CNN patches from a ViT: one feature per patch token, strongest first, keypoints at the patch
    centres (16-px patches: column c at 16·c + 7.5), the last partial row and column included."""
    from PIL import Image

    from retrieval.local.cnn_patches import CnnPatchExtractor

    extractor = CnnPatchExtractor(vit, "tiny-vit", max_side=512, max_keypoints=1000)
    features = extractor(Image.new("RGB", (150, 100), (90, 120, 200)))
    assert len(features.keypoints) == 10 * 7 and features.descriptors.shape == (70, 192)
    assert sorted(set(features.keypoints[:, 0].tolist())) == [16 * column + 7.5 for column in range(10)]
    assert sorted(set(features.keypoints[:, 1].tolist())) == [16 * row + 7.5 for row in range(7)]
