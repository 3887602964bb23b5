"""Progress bars count the real work: their total is the number of work items and they reach it when the network
work is done, and every stage ends with one log line giving the count and the time."""

import logging
import re

import pytest
from PIL import Image

from retrieval import progress
from retrieval.descriptor.extract import ExtractionSettings, extract_descriptors
from retrieval.local.features import LocalFeatureExtractor
from retrieval.local.store import build_feature_store
from retrieval.progress import format_duration, stage
from tests.test_evaluation import CountingNet


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.42, "0.4 s"), (12.4, "12 s"), (185, "3 min 05 s"), (3725, "1 h 02 min")],
)
def test_durations_read_naturally(seconds, text):
    assert format_duration(seconds) == text


def final_counts(stderr: str) -> list[tuple[int, int]]:
    """Every ``done/total`` a tqdm bar printed."""
    return [(int(done), int(total)) for done, total in re.findall(r"(\d+)/(\d+) \[", stderr)]


def test_a_stage_reaches_its_total_and_logs_its_time(capsys, caplog):
    with caplog.at_level(logging.INFO), stage("counting", total=3, unit="things") as bar:
        for _ in range(3):
            bar.update(1)
    assert final_counts(capsys.readouterr().err)[-1] == (3, 3)
    assert re.search(r"counting: 3 things in \d+\.\d s", caplog.text)
    with pytest.raises(ValueError, match="non-negative"), stage("nothing", total=-1):
        pass


@pytest.fixture
def images(tmp_path):
    """Five readable images of two sizes (two size buckets) and one corrupt file."""
    paths = []
    for index in range(5):
        path = tmp_path / f"{index}.png"
        Image.new("RGB", (24, 16) if index % 2 else (16, 24), (10 * index, 0, 0)).save(path)
        paths.append(path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    return [*paths[:2], broken, *paths[2:]]


def test_extraction_counts_described_images_not_decoded_ones(images, capsys, caplog, monkeypatch):
    """With a batch larger than the collection every image waits in its size bucket until the end: the bar may
    only count an image once the network has described it (or it proved unreadable), and ends at 6/6."""
    net = CountingNet()
    seen_at_update: list[tuple[int, int]] = []

    class RecordingBar(progress.tqdm):
        def update(self, n=1):
            super().update(n)
            seen_at_update.append((self.n, net.images_seen))

    monkeypatch.setattr(progress, "tqdm", RecordingBar)
    settings = ExtractionSettings(max_side=24, scales=(1.0,), batch_size=64, num_workers=0)
    with caplog.at_level(logging.INFO):
        _, readable = extract_descriptors(net, images, settings, description="photos")
    assert net.images_seen == 5 and readable.sum() == 5
    assert all(counted <= described + 1 for counted, described in seen_at_update)  # + the unreadable one
    assert final_counts(capsys.readouterr().err)[-1] == (6, 6)
    assert "photos: 6 images in" in caplog.text


def test_a_feature_store_build_counts_the_images_it_extracts(images, tmp_path, capsys, caplog):
    extractor = LocalFeatureExtractor(method="orb", max_side=24, max_keypoints=16)
    with caplog.at_level(logging.INFO):
        build_feature_store(tmp_path / "store", {p.stem: p for p in images}, extractor, num_workers=0)
    assert final_counts(capsys.readouterr().err)[-1] == (6, 6)
    assert "orb features: 6 images in" in caplog.text


def test_a_disabled_stage_logs_its_time_at_debug_only(caplog):
    """An inner step (one block of many, progress=False) does not repeat an INFO line per block."""
    with caplog.at_level(logging.INFO), stage("inner block", total=2, enabled=False) as bar:
        bar.update(2)
    assert "inner block" not in caplog.text
    with caplog.at_level(logging.DEBUG), stage("inner block", total=2, enabled=False) as bar:
        bar.update(2)
    assert "inner block: 2 images in" in caplog.text
