"""JPEGs decoded where the network runs give the CPU path's network input: the same size, pixels within rounding,
upright as PIL turns them; every file the device path does not take, or fails on, goes the CPU path's way.
Run here with ``device="cpu"`` (torchvision's libjpeg-turbo decoder); nvJPEG on a GPU takes the same code."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from retrieval.descriptor import device_decode
from retrieval.descriptor.device_decode import EncodedJpeg, decode_batch, orient, read_jpeg
from retrieval.descriptor.extract import ExtractionSettings, load_pixels, load_pixels_or_none
from tests.conftest import REALPHOTOS, requires_realphotos


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth gradients with blobs and a little noise: what JPEG keeps well, unlike pure noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for channel in range(3):
        value = 128 + 60 * np.sin(x / (37 + 11 * channel)) * np.cos(y / (53 - 7 * channel))
        for _ in range(6):
            cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(20, 120)
            value += 50 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        channels.append(value + rng.normal(0, 3, value.shape))
    return Image.fromarray(np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8))


def save_jpeg(image: Image.Image, path, orientation: int = 1, **options) -> str:
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    image.save(path, "JPEG", quality=92, exif=exif, **options)
    return str(path)


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
# The CPU device (torchvision's libjpeg-turbo decoder, the default suite) and nvJPEG on a GPU (-m gpu).
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, requires_cuda])]
# Mean pixel difference to the CPU path: rounding and the box filter standing in for the reduced IDCT, and on a
# GPU nvJPEG's own IDCT and chroma upsampling (a bound not yet measured on a GPU).
MEAN_DIFFERENCE = {"cpu": 1.0, "cuda": 2.0}


def on_device(paths, settings, device="cpu"):
    """The device path's network inputs (3, H, W) of ``paths`` on the CPU, decoded on ``device`` in one batch
    each."""
    results = []
    for path in paths:
        item = read_jpeg(path, settings.max_side, settings.size_step)
        assert item is not None, path
        images, readable = decode_batch([item], device, lambda p: load_pixels_or_none(p, settings))
        assert readable.tolist() == [True] and images.device.type == device
        results.append(images[0].cpu())
    return results


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_turns_an_image_upright_as_pil_does(tmp_path, orientation):
    pixels = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)  # no symmetry
    path = tmp_path / "oriented.png"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    turned = orient(torch.from_numpy(pixels).permute(2, 0, 1), orientation).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(turned, upright)


@pytest.mark.parametrize(
    ("size", "max_side", "orientation", "size_step"),
    [
        ((300, 200), 512, 1, None),  # smaller than max_side: decoded as is
        ((1000, 700), 512, 1, None),  # resized, no DCT reduction (1000 // 513 = 1)
        ((1700, 1100), 256, 1, None),  # DCT reduction 4, then resized
        ((2600, 1500), 300, 6, None),  # reduction 8, a quarter turn
        ((1500, 2100), 400, 8, 32),  # portrait, the other quarter turn, snapped to 32
        ((1200, 900), 512, 3, None),  # reduction 2, upside down
        ((1300, 1000), 480, 5, 16),  # transposed, snapped
    ],
)
@pytest.mark.parametrize("device", DEVICES)
def test_the_device_path_gives_the_cpu_paths_network_input(
    tmp_path, size, max_side, orientation, size_step, device
):
    path = save_jpeg(photo_like(*size), tmp_path / "photo.jpg", orientation)
    settings = ExtractionSettings(max_side=max_side, scales=(1.0,), size_step=size_step)
    reference = load_pixels(path, settings)
    (decoded,) = on_device([path], settings, device)
    assert decoded.shape == reference.shape and decoded.dtype == torch.uint8
    difference = (decoded.float() - reference.float()).abs()
    assert difference.mean() < MEAN_DIFFERENCE[device], difference.mean()


def test_a_grayscale_jpeg_comes_out_rgb_as_on_the_cpu(tmp_path):
    path = tmp_path / "gray.jpg"
    photo_like(900, 600).convert("L").save(path, quality=92)
    settings = ExtractionSettings(max_side=400, scales=(1.0,))
    (decoded,) = on_device([path], settings)
    reference = load_pixels(path, settings)
    assert decoded.shape == reference.shape == (3, 267, 400)
    assert (decoded.float() - reference.float()).abs().mean() < 1.0


def test_files_the_device_path_does_not_take_are_left_to_the_cpu(tmp_path, monkeypatch):
    photo = photo_like(640, 480)
    png = tmp_path / "photo.png"
    photo.save(png)
    cmyk = tmp_path / "cmyk.jpg"
    photo.convert("CMYK").save(cmyk, quality=90)
    whole = save_jpeg(photo, tmp_path / "whole.jpg")
    truncated = tmp_path / "truncated.jpg"
    data = Path(whole).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    for path in (png, cmyk, truncated, text, tmp_path / "missing.jpg"):
        assert read_jpeg(path, 512, None) is None, path
    assert read_jpeg(whole, 512, None) is not None
    monkeypatch.setattr(device_decode, "DEVICE_MAX_PIXELS", 640 * 480 - 1)
    assert read_jpeg(whole, 512, None) is None  # decoded at full size on the device: too many pixels


def test_a_file_the_device_fails_on_is_decoded_on_the_cpu_or_counted_unreadable(tmp_path):
    settings = ExtractionSettings(max_side=256, scales=(1.0,))
    good = save_jpeg(photo_like(512, 384), tmp_path / "good.jpg")
    item = read_jpeg(good, settings.max_side, settings.size_step)
    assert item is not None
    # bytes the device decoder refuses (a file cut short, as if it changed after its worker read it)
    broken = EncodedJpeg(
        item.data[:1000].clone(),
        item.full_size,
        item.reduction,
        item.orientation,
        item.resized,
        item.size,
        str(tmp_path / "broken.jpg"),
    )
    decoded_by_worker = load_pixels(good, settings)
    calls = []

    def on_cpu(path):
        calls.append(path)
        return load_pixels(good, settings) if path == good else None

    images, readable = decode_batch([item, broken, decoded_by_worker], "cpu", on_cpu)
    assert images.shape == (3, 3, 192, 256) and readable.tolist() == [True, False, True]
    assert calls == [broken.path]  # only the file the device failed on goes to the CPU path
    assert images[1].eq(0).all()
    np.testing.assert_array_equal(images[2].numpy(), decoded_by_worker.numpy())
    assert (images[0].float() - decoded_by_worker.float()).abs().mean() < 1.0


@requires_realphotos
@pytest.mark.parametrize("device", DEVICES)
def test_real_photos_at_camera_size_give_the_cpu_paths_descriptors(tmp_path, device):
    """The shared photos upscaled to 4032 px (as cameras write them, so the CPU path decodes at reduced size):
    descriptors of an untrained network from the two paths agree to a cosine of 0.999."""
    from retrieval.descriptor.extract import describe_batch, multiscale_power
    from retrieval.descriptor.network import GlobalDescriptorNet

    torch.manual_seed(0)
    net = GlobalDescriptorNet("resnet18", pretrained=False).eval()
    settings = ExtractionSettings(max_side=384, scales=(1.0,))
    paths = []
    for index, source in enumerate(sorted((REALPHOTOS / "images").rglob("*.jpg"))[:6]):
        photo = Image.open(source).convert("RGB")
        scale = 4032 / max(photo.size)
        large = photo.resize(
            (round(photo.width * scale), round(photo.height * scale)), Image.Resampling.BICUBIC
        )
        paths.append(save_jpeg(large, tmp_path / f"{index}.jpg", orientation=6 if index % 2 else 1))
    power = multiscale_power(net)
    for path, decoded in zip(paths, on_device(paths, settings, device), strict=True):
        reference = load_pixels(path, settings)
        assert decoded.shape == reference.shape
        pair = describe_batch(net, torch.stack([decoded, reference]), settings.scales, power)
        assert float(pair[0] @ pair[1]) >= 0.999
