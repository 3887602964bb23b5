"""index.py's global descriptors as a Lightning prediction job: the job gives the descriptors of plain extraction,
two CPU processes (DDP over gloo) build the collection one process builds, and a run killed with SIGKILL after two
shards resumes from them to the collection an uninterrupted run builds."""

import logging
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from datamodules import image_prediction
from datamodules.image_prediction import ImagePredictionDataModule
from lightning_modules.descriptor_prediction import DescriptorPrediction
from lightning_modules.shard_writer import DescriptorShardWriter
from retrieval.collection import generation_dir, read_manifest
from retrieval.descriptor.device_decode import decode_batch
from retrieval.descriptor.extract import ExtractionSettings, extract_descriptors
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.descriptor.shards import DescriptorShards
from retrieval.search_engine import SearchEngine
from tests.conftest import REPO_ROOT
from tests.descriptor.test_device_decode import DEVICES, photo_like, save_jpeg


def test_the_prediction_job_gives_the_descriptors_of_plain_extraction(tmp_path):
    rng = np.random.default_rng(0)
    photos = []
    for index, size in enumerate([(96, 64), (64, 96), (96, 64), (80, 80), (96, 64), (64, 96), (96, 64)]):
        photos.append(tmp_path / f"{index}.png")
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(photos[-1])
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    photos.insert(3, tmp_path / "broken.jpg")
    torch.manual_seed(0)
    net = GlobalDescriptorNet("resnet18", pretrained=False).eval()
    settings = ExtractionSettings(64, (1.0, 0.5), batch_size=2, num_workers=2)
    expected, expected_readable = extract_descriptors(net, photos, settings, progress=False)
    shards = DescriptorShards(
        tmp_path / "shards", [path.name for path in photos], net.output_dim, shard_size=3
    )
    writer = DescriptorShardWriter(shards)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, callbacks=[writer]
    )
    trainer.predict(
        DescriptorPrediction(net, settings.scales, settings.scale_aggregation),
        datamodule=ImagePredictionDataModule(photos, shards, settings),
        return_predictions=False,
    )
    assert writer.shards_written == 3
    descriptors, readable = shards.read()
    np.testing.assert_array_equal(readable, expected_readable)
    assert not readable[3] and readable.sum() == 7
    np.testing.assert_allclose(descriptors, expected, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_jpegs_decoded_on_the_device_give_the_descriptors_of_the_cpu_path(
    tmp_path, monkeypatch, caplog, device
):
    """``extraction.decode=device`` (the CPU device; nvJPEG with -m gpu): JPEGs decoded in the batch-transfer
    hook, PNGs and an unreadable file by the workers, batches mixing both; the job equals extraction decoding the
    same way, and the CPU path's descriptors to a cosine of 0.999."""
    photos = []
    for index, (width, height) in enumerate([(300, 200), (200, 300), (300, 200), (240, 240), (300, 200)]):
        photos.append(
            Path(
                save_jpeg(photo_like(width, height, index), tmp_path / f"{index}.jpg", 6 if index == 1 else 1)
            )
        )
    photo_like(300, 200, 9).save(tmp_path / "png.png")
    photos.insert(2, tmp_path / "png.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    photos.insert(4, tmp_path / "broken.jpg")
    torch.manual_seed(0)
    net = GlobalDescriptorNet("resnet18", pretrained=False).eval()
    settings = ExtractionSettings(128, (1.0,), batch_size=2, num_workers=2, decode="device")
    caplog.set_level(logging.INFO)
    expected, expected_readable = extract_descriptors(
        net, photos, settings, device=torch.device(device), progress=False
    )
    assert (
        f"decoding: JPEGs on {device}: 5; by the CPU workers (other formats, CMYK, truncated or huge JPEGs): 1"
        in caplog.text
    )
    caplog.clear()
    on_cpu, _ = extract_descriptors(
        net, photos, replace(settings, decode="cpu"), device=torch.device(device), progress=False
    )
    shards = DescriptorShards(
        tmp_path / "shards", [path.name for path in photos], net.output_dim, shard_size=4
    )
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        callbacks=[DescriptorShardWriter(shards)],
    )
    decoded_in_hook = []

    def spy(items, device, decode_on_cpu):
        decoded_in_hook.extend(type(item).__name__ for item in items)
        return decode_batch(items, device, decode_on_cpu)

    monkeypatch.setattr(image_prediction, "decode_batch", spy)
    trainer.predict(
        DescriptorPrediction(net, settings.scales, settings.scale_aggregation),
        datamodule=ImagePredictionDataModule(photos, shards, settings),
        return_predictions=False,
    )
    assert sorted(decoded_in_hook) == ["EncodedJpeg"] * 5 + ["Tensor"] * (len(decoded_in_hook) - 5)
    # One line per job says which path the files took: 5 JPEGs on the device, the PNG by the workers (the
    # truncated file is unreadable on every path).
    line = f"decoding: JPEGs on {trainer.strategy.root_device}: 5; by the CPU workers"
    assert f"{line} (other formats, CMYK, truncated or huge JPEGs): 1" in caplog.text
    descriptors, readable = shards.read()
    np.testing.assert_array_equal(readable, expected_readable)
    assert readable.sum() == 6 and not readable[4]
    np.testing.assert_allclose(descriptors, expected, atol=1e-5 if device == "cpu" else 1e-3)  # bf16 on a GPU
    assert (descriptors[readable] * on_cpu[readable]).sum(axis=1).min() >= 0.999


def index_command(tiny_demo: Path, collection: Path, *overrides: str) -> list[str]:
    return [
        "index.py",
        f"images_dir={tiny_demo}/index",
        f"collection_dir={collection}",
        f"hydra.run.dir={collection}-run",
        "extraction.max_side=96",
        "extraction.num_workers=0",
        "local_features.max_keypoints=128",
        "local_features.max_side=192",
        "num_workers=0",
        "shard_size=4",
        "part_size=4",
        "trainer.accelerator=cpu",
        *overrides,
    ]


def run_index(arguments: list[str], prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, *(prefix or []), *arguments]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=environment
    )


@pytest.fixture(scope="module")
def one_process(tiny_demo, tmp_path_factory):
    collection = tmp_path_factory.mktemp("indexing") / "one"
    completed = run_index(index_command(tiny_demo, collection, "trainer.devices=1"))
    assert completed.returncode == 0, completed.stderr[-3000:]
    return collection


def assert_same_collection(collection: Path, reference: Path, query: Path) -> None:
    mine, theirs = generation_dir(collection), generation_dir(reference)
    assert read_manifest(mine)["images"] == read_manifest(theirs)["images"]
    np.testing.assert_allclose(
        np.load(mine / "descriptors.npy"), np.load(theirs / "descriptors.npy"), atol=1e-5
    )
    local = sorted(
        path.relative_to(mine).as_posix() for path in (mine / "local").rglob("*") if path.is_file()
    )
    assert local == sorted(
        path.relative_to(theirs).as_posix() for path in (theirs / "local").rglob("*") if path.is_file()
    )
    for name in local:
        assert (mine / name).read_bytes() == (theirs / name).read_bytes(), name
    hits = [
        [hit.image_id for hit in SearchEngine.open(folder, "cpu").search(query)]
        for folder in (collection, reference)
    ]
    assert hits[0] == hits[1]


def test_two_cpu_processes_index_the_collection_one_process_indexes(tiny_demo, one_process):
    collection = one_process.parent / "two"
    completed = run_index(index_command(tiny_demo, collection, "trainer.devices=2"))
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Starting with 2 processes" in completed.stderr + completed.stdout
    assert_same_collection(collection, one_process, next((tiny_demo / "test").rglob("*.jpg")))


KILL_AFTER_TWO_SHARDS = """
import os, signal, sys
from retrieval.descriptor.shards import DescriptorShards
write = DescriptorShards.write
def write_then_die(self, *arguments, **keywords):
    write(self, *arguments, **keywords)
    if self.num_shards - len(self.pending()) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
DescriptorShards.write = write_then_die
sys.argv = sys.argv[1:]
import index
index.main()
"""


def test_a_killed_run_resumes_from_its_finished_shards(tiny_demo, one_process):
    collection = one_process.parent / "killed"
    arguments = index_command(tiny_demo, collection, "trainer.devices=1")
    killed = run_index(arguments, ["-c", KILL_AFTER_TWO_SHARDS])
    assert killed.returncode == -signal.SIGKILL
    (cache,) = (collection / "cache").glob("global-*")
    assert len(list(cache.glob("shard_*.npz"))) == 2 and not (collection / "CURRENT").exists()
    resumed = run_index(arguments)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    num_images = len(read_manifest(generation_dir(one_process))["images"])
    logged = resumed.stdout  # Hydra's console log
    assert f"2 of {-(-num_images // 4)} shards already written" in logged
    assert f"global descriptors: {num_images - 8} images in" in logged  # only the other shards
    assert_same_collection(collection, one_process, next((tiny_demo / "test").rglob("*.jpg")))
