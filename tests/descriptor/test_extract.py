"""Global extraction against plain forward passes: batching does not change descriptors, multi-scale is the
GeM power mean, unreadable images give zero rows, query boxes crop before resizing, and the cache is keyed by
weights, images and settings."""

import numpy as np
import pytest
import torch
from PIL import Image

from retrieval.descriptor import extract
from retrieval.descriptor.extract import (
    ExtractionSettings,
    describe_images,
    extract_cached,
    extract_descriptors,
    snap_size,
)
from retrieval.descriptor.network import GlobalDescriptorNet


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return GlobalDescriptorNet("resnet18", pretrained=False).eval()


def reference(net, path, max_side):
    image = extract.resize_max_side(Image.open(path).convert("RGB"), max_side)
    pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    with torch.no_grad():
        return net(net.normalize(pixels))[0].numpy()


def test_single_scale_equals_a_plain_forward_pass_whatever_the_batching(net, photos):
    one_by_one, readable = extract_descriptors(
        net, photos, ExtractionSettings(64, (1.0,), 1, 0), progress=False
    )
    batched, _ = extract_descriptors(net, photos, ExtractionSettings(64, (1.0,), 8, 0), progress=False)
    assert readable.all()
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    for row, path in zip(one_by_one, photos, strict=True):
        np.testing.assert_allclose(row, reference(net, path, 64), atol=1e-5)


def test_multiscale_is_the_gem_power_mean_of_the_scales(net, photos):
    scales = (1.0, 0.5)
    multi, _ = extract_descriptors(net, photos[:1], ExtractionSettings(64, scales, 1, 0), progress=False)
    image = extract.resize_max_side(Image.open(photos[0]).convert("RGB"), 64)
    pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    p = float(net.pool.p.detach())
    with torch.no_grad():
        per_scale = [
            net(
                net.normalize(
                    torch.nn.functional.interpolate(pixels, scale_factor=s, mode="bilinear", antialias=True)
                    if s != 1
                    else pixels
                )
            )
            for s in scales
        ]
    expected = torch.nn.functional.normalize(
        (sum(d.clamp(min=0) ** p for d in per_scale) / 2) ** (1 / p), dim=-1
    )
    np.testing.assert_allclose(multi[0], expected[0].numpy(), atol=1e-5)


def test_unreadable_images_give_zero_rows_and_a_false_mask(net, photos, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really")
    descriptors, readable = extract_descriptors(
        net, [photos[0], broken], ExtractionSettings(64, (1.0,), 4, 0), progress=False
    )
    assert readable.tolist() == [True, False]
    assert not descriptors[1].any() and np.isclose(np.linalg.norm(descriptors[0]), 1)


def test_query_boxes_crop_before_resizing(net, photos, tmp_path):
    box = (10.0, 5.0, 70.0, 50.0)
    cropped_path = tmp_path / "cropped.png"
    Image.open(photos[0]).crop((10, 5, 70, 50)).save(cropped_path)
    settings = ExtractionSettings(48, (1.0,), 1, 0)
    with_box, _ = extract_descriptors(net, [photos[0]], settings, boxes=[box], progress=False)
    precropped, _ = extract_descriptors(net, [cropped_path], settings, progress=False)
    np.testing.assert_allclose(with_box, precropped, atol=1e-5)


def test_the_cache_is_keyed_by_weights_images_and_settings(net, photos, tmp_path, monkeypatch):
    settings = ExtractionSettings(64, (1.0,), 4, 0)
    first, _ = extract_cached(net, photos, "weights-a", tmp_path, settings, progress=False)

    def fail(*args, **kwargs):
        raise AssertionError("extracted again despite the cache")

    monkeypatch.setattr(extract, "extract_descriptors", fail)
    again, _ = extract_cached(net, photos, "weights-a", tmp_path, settings, progress=False)
    np.testing.assert_array_equal(again, first)
    with pytest.raises(AssertionError, match="extracted again"):
        extract_cached(net, photos, "weights-b", tmp_path, settings, progress=False)


def test_in_memory_images_match_files(net, photos):
    from_files, _ = extract_descriptors(net, photos[:2], ExtractionSettings(64, (1.0,), 1, 0), progress=False)
    in_memory = describe_images(
        net, [Image.open(path) for path in photos[:2]], ExtractionSettings(64, (1.0,), 1, 0)
    )
    np.testing.assert_allclose(in_memory, from_files, atol=1e-5)


def test_snapped_sizes_are_multiples_of_the_step():
    assert snap_size(Image.new("RGB", (512, 341)), 32).size == (512, 352)
    assert snap_size(Image.new("RGB", (10, 500)), 32).size == (32, 512)  # at least one step; 500 → 512
    with pytest.raises(ValueError, match="size_step"):
        ExtractionSettings(max_side=64, size_step=0)


def test_scale_gem_max_is_the_elementwise_max_of_the_normalised_scales(net, photos):
    scales = (1.0, 0.5)
    settings = ExtractionSettings(64, scales, 1, 0, scale_aggregation="max")
    multi, _ = extract_descriptors(net, photos[:1], settings, progress=False)
    image = extract.resize_max_side(Image.open(photos[0]).convert("RGB"), 64)
    pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    with torch.no_grad():
        half = torch.nn.functional.interpolate(pixels, scale_factor=0.5, mode="bilinear", antialias=True)
        per_scale = [torch.nn.functional.normalize(net(net.normalize(x)), dim=-1) for x in (pixels, half)]
    expected = torch.nn.functional.normalize(torch.maximum(*per_scale), dim=-1)
    np.testing.assert_allclose(multi[0], expected[0].numpy(), atol=1e-5)
    assert settings.key().endswith("|scales_by=max")
    with pytest.raises(ValueError, match="scale_aggregation"):
        ExtractionSettings(scale_aggregation="mean")
