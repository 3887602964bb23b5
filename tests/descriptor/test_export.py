"""TorchScript export: the file loads with torch alone and gives the network's descriptors at any size."""

import pytest
import torch

from retrieval.descriptor.export import NormalizedNet, export_torchscript
from retrieval.descriptor.network import GlobalDescriptorNet


@pytest.fixture(scope="module")
def net() -> GlobalDescriptorNet:
    return GlobalDescriptorNet("tf_efficientnet_lite0", pretrained="efficientnet_lite0_pypi").eval()


def test_the_exported_file_reproduces_the_network_at_other_sizes(net, tmp_path):
    path = export_torchscript(net, tmp_path / "net.ts")
    loaded = torch.jit.load(str(path))
    images = torch.rand(3, 3, 200, 290)
    with torch.no_grad():
        expected = net(net.normalize(images))
        exported = loaded(images)
    assert exported.shape == (3, net.output_dim)
    torch.testing.assert_close(exported, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(exported.norm(dim=1), torch.ones(3))
    assert not (tmp_path / "net.ts.tmp").exists()


def test_a_network_frozen_at_its_traced_size_is_refused(net, tmp_path, monkeypatch):
    def size_dependent(self, images):  # Python logic on the input size: tracing bakes it in
        return self.net((images - self.mean) / self.std) * float(images.shape[-1])

    monkeypatch.setattr(NormalizedNet, "forward", size_dependent)
    with pytest.raises(ValueError, match="depends on the input size"):
        export_torchscript(net, tmp_path / "net.ts")
    assert not (tmp_path / "net.ts").exists()
