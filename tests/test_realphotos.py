"""The shared real-photo benchmark read through the project's reader and scored by its metrics.

Skipped when ../shared/realphotos is absent (its images must never be copied into the repository).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from datamodules.formats.folders import load_realphotos
from datamodules.formats.sources import load_benchmark
from retrieval.metrics import evaluate_ranking
from tests.conftest import REALPHOTOS

pytestmark = pytest.mark.skipif(not REALPHOTOS.is_dir(), reason="../shared/realphotos is absent")


@pytest.fixture(scope="module")
def gt() -> dict:
    return json.loads((REALPHOTOS / "gt.json").read_text())


def test_every_place_photo_is_a_query_against_everything(gt: dict) -> None:
    benchmark = load_realphotos(REALPHOTOS)
    num_place_photos = sum(len(paths) for paths in gt["scenes"].values())
    assert benchmark.protocol == "plain"
    assert benchmark.num_queries == num_place_photos
    assert benchmark.num_database == num_place_photos + len(gt["distractors"])
    assert all(path.is_file() for path in benchmark.database_paths)
    for query_index, (query_id, truth) in enumerate(
        zip(benchmark.query_ids, benchmark.ground_truth, strict=True)
    ):
        place = next(place for place, paths in gt["scenes"].items() if query_id in paths)
        ignored = set(gt["ignore"].get(place, []))
        expected_positives = {
            path for path in gt["scenes"][place] if path != query_id and path not in ignored
        }
        assert {benchmark.database_ids[index] for index in truth.easy} == expected_positives
        assert {benchmark.database_ids[index] for index in truth.junk} == {query_id} | ignored
        assert benchmark.database_ids[query_index] == query_id


def test_registry_reads_the_shared_folder() -> None:
    assert load_benchmark("realphotos", REALPHOTOS).num_queries == load_realphotos(REALPHOTOS).num_queries


def test_oracle_ranking_scores_one_and_reversed_ranking_scores_low() -> None:
    benchmark = load_realphotos(REALPHOTOS)
    rankings = []
    for truth in benchmark.ground_truth:
        others = np.setdiff1d(np.arange(benchmark.num_database), np.concatenate([truth.easy, truth.junk]))
        rankings.append(np.concatenate([truth.junk, truth.easy, others]))
    oracle = np.stack(rankings)
    results = evaluate_ranking(oracle, benchmark)
    # mP@k is standard precision: places with fewer than k other photos cap it. The shared README gives the
    # oracle mP@10 as 89.9.
    assert results["mP@10"] == pytest.approx(0.899, abs=0.0005)
    assert {key: value for key, value in results.items() if key not in ("mP@5", "mP@10")} == pytest.approx(
        {"mAP": 1.0, "mP@1": 1.0, "recall@1": 1.0, "recall@10": 1.0}
    )
    worst = evaluate_ranking(oracle[:, ::-1].copy(), benchmark)
    # Reversed: every negative is ranked before every positive, so AP is small and the top 10 holds none.
    assert worst["mAP"] < 0.1
    assert worst["recall@10"] == 0.0
