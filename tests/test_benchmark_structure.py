"""The evaluation-set structure: ground truth sorted and read-only, inconsistent benchmarks refused, query
selection that keeps the database, and the verdict of each result."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from retrieval.benchmark import QueryGroundTruth, RetrievalBenchmark
from tests.conftest import tiny_benchmark


def test_ground_truth_is_sorted_read_only_int64() -> None:
    truth = QueryGroundTruth(easy=[3, 1], junk=np.array([7], dtype=np.int32))
    assert truth.easy.tolist() == [1, 3]
    assert truth.easy.dtype == np.int64 and truth.junk.dtype == np.int64
    assert truth.hard.size == 0
    with pytest.raises(ValueError):
        truth.easy[0] = 5


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"easy": [1, 1]}, "more than once"),
        ({"easy": [-1]}, "negative"),
        ({"easy": [0.5]}, "integer"),
        ({"easy": [[1]]}, "1-D"),
        ({"easy": [1], "junk": [1]}, "both easy and junk"),
        ({"easy": [1], "hard": [1]}, "both easy and hard"),
        ({"easy": [1], "usage": "Ignored"}, "usage"),
    ],
)
def test_ground_truth_rejects_bad_input(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QueryGroundTruth(**arguments)


def test_benchmark_rejects_inconsistent_input() -> None:
    truth = QueryGroundTruth(easy=[0])
    with pytest.raises(ValueError, match="database index 2"):
        tiny_benchmark([QueryGroundTruth(easy=[2])], num_database=2)
    with pytest.raises(ValueError, match="protocol"):
        tiny_benchmark([truth], num_database=2, protocol="kaggle")
    with pytest.raises(ValueError, match="usage Public or Private"):
        tiny_benchmark([truth], num_database=2, protocol="gldv2")
    with pytest.raises(ValueError, match="hard positives"):
        tiny_benchmark([QueryGroundTruth(easy=[0], hard=[1])], num_database=2)
    benchmark = tiny_benchmark([truth], num_database=2)
    with pytest.raises(ValueError, match="query_boxes"):
        RetrievalBenchmark(**{**vars(benchmark), "query_boxes": []})
    with pytest.raises(ValueError, match="empty"):
        RetrievalBenchmark(**{**vars(benchmark), "query_boxes": [(5.0, 0.0, 5.0, 1.0)]})
    with pytest.raises(ValueError, match="more than once"):
        RetrievalBenchmark(**{**vars(benchmark), "database_ids": ["d0", "d0"]})


def test_select_queries_keeps_database() -> None:
    benchmark = tiny_benchmark([QueryGroundTruth(easy=[index]) for index in range(3)], num_database=3)
    selected = benchmark.select_queries([2, 0])
    assert selected.query_ids == ["q2", "q0"]
    assert [truth.easy.tolist() for truth in selected.ground_truth] == [[2], [0]]
    assert selected.database_ids == benchmark.database_ids
    with pytest.raises(ValueError, match="outside"):
        benchmark.select_queries([3])


# --- restricted unpickler ---------------------------------------------------------------------------------


def test_verdicts_name_each_result_of_a_query() -> None:
    benchmark = tiny_benchmark([QueryGroundTruth(easy=[1], junk=[2])], num_database=3)
    assert benchmark.verdicts(0, np.array([2, 0, 1])) == ["junk", "negative", "positive"]
