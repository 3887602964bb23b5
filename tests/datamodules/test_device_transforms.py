"""Training, mining and validation images decoded and transformed where the network runs (``data.decode=device``,
run here on the CPU device) against the workers' PIL path (``decode=cpu``), the reference."""

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import train
from datamodules import image_datasets
from datamodules.image_datasets import (
    ImageListDataset,
    TrainAugmentation,
    Undecoded,
    build_eval_transform,
    build_train_transform,
    collate_skipping_failures,
    transform_on_device,
)
from datamodules.tuples import TupleDataset
from retrieval.descriptor import device_decode
from retrieval.images import load_rgb
from tests.descriptor.test_device_decode import DEVICES, MEAN_DIFFERENCE, photo_like, requires_cuda, save_jpeg
from tests.test_train import compose_train

MAX_SIDE = 320
CPU = torch.device("cpu")


@pytest.fixture
def photos(tmp_path):
    """Five JPEGs of several sizes and orientations, and a PNG (decoded by PIL on every path)."""
    paths = [
        save_jpeg(photo_like(640, 480, seed=0), tmp_path / "wide.jpg"),
        save_jpeg(photo_like(480, 720, seed=1), tmp_path / "tall.jpg"),
        save_jpeg(photo_like(1300, 900, seed=2), tmp_path / "big.jpg", orientation=6),
        save_jpeg(photo_like(300, 200, seed=3), tmp_path / "small.jpg", orientation=3),
        save_jpeg(photo_like(800, 600, seed=4), tmp_path / "mirrored.jpg", orientation=5),
    ]
    png = tmp_path / "photo.png"
    photo_like(500, 400, seed=5).save(png)
    return [Path(path) for path in paths] + [png]


def on_device(dataset, transform, seed=0, device="cpu"):
    """The dataset's batch decoded and transformed on ``device``, its tensors brought back to the CPU."""
    torch.manual_seed(seed)
    batch = collate_skipping_failures([dataset[index] for index in range(len(dataset))])
    result = transform_on_device(batch, transform, torch.device(device), MAX_SIDE)
    return {key: value.cpu() if isinstance(value, torch.Tensor) else value for key, value in result.items()}


def on_cpu(paths, transform, seed=0):
    torch.manual_seed(seed)
    return torch.stack([transform(load_rgb(path, MAX_SIDE)) for path in paths])


def assert_close_to_pil(device_images, pil_images, mean=0.5 / 255, largest=6 / 255):
    assert device_images.shape == pil_images.shape
    difference = (device_images - pil_images).abs()
    assert difference.mean() < mean and difference.max() <= largest


def test_workers_hand_on_jpeg_files_and_pil_images_undecoded(photos):
    dataset = ImageListDataset(photos, build_eval_transform(64), max_side=MAX_SIDE, on_device=True)
    samples = [dataset[index]["image"] for index in range(len(photos))]
    assert all(isinstance(sample, Undecoded) and len(sample.items) == 1 for sample in samples)
    kinds = [type(sample.items[0]) for sample in samples]
    assert kinds == [device_decode.EncodedJpeg] * 5 + [torch.Tensor]  # the PNG decoded by PIL
    batch = collate_skipping_failures([dataset[index] for index in range(len(photos))])
    assert batch["index"].tolist() == list(range(6)) and len(batch["image"]) == 6


def test_evaluation_images_equal_the_pil_paths_within_a_rounding(photos):
    transform = build_eval_transform(160)
    dataset = ImageListDataset(
        photos, transform, labels=[3, 1, 4, 1, 5, 9], max_side=MAX_SIDE, on_device=True
    )
    batch = on_device(dataset, transform)
    assert batch["label"].tolist() == [3, 1, 4, 1, 5, 9] and batch["num_skipped"] == 0
    assert batch["image"].dtype == torch.float32 and type(batch["image"]) is torch.Tensor
    assert_close_to_pil(batch["image"], on_cpu(photos, transform))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("color_jitter", [0.0, 0.3])
def test_augmented_tuples_equal_the_pil_paths_for_the_same_random_draws(photos, color_jitter, device):
    """The device path draws the crops, flips and jitters from the same generator in the same order."""
    transform = build_train_transform(
        128, TrainAugmentation(min_crop_scale=0.3, color_jitter=color_jitter, horizontal_flip=True)
    )
    tuples = np.array([[0, 1, 2], [3, 4, 5]])
    dataset = TupleDataset(photos, tuples, transform, MAX_SIDE, on_device=True)
    batch = on_device(dataset, transform, seed=7, device=device)
    assert batch["images"].shape == (2, 3, 3, 128, 128)
    reference = on_cpu([photos[i] for i in tuples.ravel()], transform, seed=7).view(2, 3, 3, 128, 128)
    assert_close_to_pil(batch["images"], reference, mean=MEAN_DIFFERENCE[device] / 255, largest=12 / 255)
    other_draws = on_device(dataset, transform, seed=8, device=device)["images"]
    assert (other_draws - reference).abs().mean() > 10 / 255  # the comparison can tell draws apart


def test_a_sample_with_an_image_no_path_can_read_is_dropped_and_counted(photos, monkeypatch, caplog):
    transform = build_eval_transform(96)
    dataset = ImageListDataset(photos, transform, labels=list(range(6)), max_side=MAX_SIDE, on_device=True)
    samples = [dataset[index] for index in range(len(photos))]
    truncated = photos[0].parent / "truncated.jpg"
    truncated.write_bytes(photos[0].read_bytes()[:500])
    assert dataset.__class__([truncated], transform, max_side=MAX_SIDE, on_device=True)[0] is None  # worker
    # The device fails on two files; the first is then decoded by PIL, the second has gone in the meantime.
    real_decode = device_decode._decode
    monkeypatch.setattr(
        device_decode,
        "_decode",
        lambda items, device: [
            None if item.path in map(str, photos[1:3]) else image
            for item, image in zip(items, real_decode(items, device), strict=True)
        ],
    )
    photos[2].unlink()
    batch = collate_skipping_failures([*samples, None])
    result = transform_on_device(batch, transform, CPU, MAX_SIDE)
    assert result["num_skipped"] == 2  # the worker's None and the vanished file
    assert result["label"].tolist() == result["index"].tolist() == [0, 1, 3, 4, 5]
    kept = [photos[i] for i in (0, 1)] + [photos[i] for i in (3, 4, 5)]
    assert_close_to_pil(result["image"], on_cpu(kept, transform))
    assert "big.jpg" in caplog.text
    nothing = transform_on_device(collate_skipping_failures([samples[2]]), transform, CPU, MAX_SIDE)
    assert nothing == {"num_skipped": 1}


def test_a_batch_the_workers_transformed_passes_unchanged(photos):
    transform = build_eval_transform(64)
    dataset = ImageListDataset(photos, transform, max_side=MAX_SIDE)
    batch = collate_skipping_failures([dataset[index] for index in range(3)])
    assert transform_on_device(batch, transform, CPU, MAX_SIDE) is batch


def test_decode_is_checked_and_device_decoding_needs_a_max_side(photos):
    with pytest.raises(ValueError, match="decode must be one of"):
        device_decode.check_decode_place("gpu")
    with pytest.raises(ValueError, match="needs a max_side"):
        ImageListDataset(photos, build_eval_transform(64), on_device=True)
    assert device_decode.decodes_on_device("auto", torch.device("cuda"))
    assert not device_decode.decodes_on_device("auto", CPU)
    assert device_decode.decodes_on_device("device", CPU)
    assert not device_decode.decodes_on_device("cpu", torch.device("cuda"))


@pytest.mark.parametrize(
    "overrides",
    [("data.decode=device",), pytest.param(("trainer=gpu",), marks=[pytest.mark.gpu, requires_cuda])],
)
def test_training_with_decode_device_mines_trains_and_validates_through_the_hook(
    tiny_demo, tmp_path, monkeypatch, caplog, overrides
):
    """A real Trainer run: mining, the training tuples and validation all decode in the hook (on a GPU with
    ``data.decode=auto``, the default)."""
    decoded = []
    real = image_datasets.decode_images

    def spy(items, *arguments):
        decoded.append(sum(isinstance(item, device_decode.EncodedJpeg) for item in items))
        return real(items, *arguments)

    monkeypatch.setattr(image_datasets, "decode_images", spy)
    caplog.set_level(logging.INFO)
    cfg = compose_train(tiny_demo, tmp_path, "trainer.fast_dev_run=true", "logger=none", *overrides)
    results = train.train(cfg)
    assert 0 < results["after"]["val/mAP"] <= 1
    tuple_images = 2 * (2 + 2)  # data.batch_size=2 tuples of a query, a positive and 2 negatives
    assert tuple_images in decoded and sum(decoded) > 2 * tuple_images
    # The run ends with the line that says where its images were decoded: every demo image is a JPEG.
    assert re.search(r"decoding: JPEGs on \S+: [1-9]\d*; by the CPU workers .*: 0", caplog.text)
