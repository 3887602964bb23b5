"""DescriptorIndex and exact_search against numpy brute force, recall of the approximate kinds, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval.descriptor.index import (
    DescriptorIndex,
    HNSWParameters,
    IVFPQParameters,
    create_index,
    exact_search,
    faiss_gpu_available,
    make_parameters,
)

DIM = 32


def normalised(rng: np.random.Generator, num_rows: int, dim: int = DIM) -> np.ndarray:
    vectors = rng.standard_normal((num_rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def clustered(
    rng: np.random.Generator, num_database: int, num_queries: int, num_clusters: int = 64, spread: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """Database (num_database, DIM) and queries (num_queries, DIM): L2-normalised points scattered around the
    same ``num_clusters`` random unit centres (landmark-like structure)."""
    centres = normalised(rng, num_clusters)
    num_rows = num_database + num_queries
    points = centres[rng.integers(num_clusters, size=num_rows)] + spread * normalised(rng, num_rows)
    points = (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)
    return points[:num_database], points[num_database:]


def brute_force(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Naive reference: full score matrix, stable descending sort."""
    scores = queries.astype(np.float64) @ database.astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def recall_at(found: np.ndarray, exact: np.ndarray) -> float:
    hits = sum(
        len(set(found_row.tolist()) & set(exact_row.tolist()))
        for found_row, exact_row in zip(found, exact, strict=True)
    )
    return hits / exact.size


def image_ids(num_rows: int) -> list[str]:
    return [f"img_{row:05d}" for row in range(num_rows)]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------- flat


def test_flat_search_matches_brute_force(rng: np.random.Generator) -> None:
    database, queries = normalised(rng, 500), normalised(rng, 20)
    index = create_index("flat", DIM, "test-descriptor", device="cpu")
    index.add(database, image_ids(500))
    result = index.search(queries, 10)
    expected_scores, expected_indices = brute_force(queries, database, 10)
    np.testing.assert_array_equal(result.indices, expected_indices)
    np.testing.assert_allclose(result.scores, expected_scores, atol=1e-5)
    assert result.scores.dtype == np.float32 and result.indices.dtype == np.int64
    assert result.ids == [[f"img_{row:05d}" for row in query_rows] for query_rows in expected_indices]


def test_search_pads_when_k_exceeds_the_index(rng: np.random.Generator) -> None:
    index = create_index("flat", DIM, "test-descriptor", device="cpu")
    index.add(normalised(rng, 3), ["a", "b", "c"])
    result = index.search(normalised(rng, 2), 5)
    assert (result.indices[:, 3:] == -1).all() and np.isneginf(result.scores[:, 3:]).all()
    assert np.isfinite(result.scores[:, :3]).all()
    assert [sorted(ids) for ids in result.ids] == [["a", "b", "c"], ["a", "b", "c"]]


def test_empty_index_returns_only_padding(rng: np.random.Generator) -> None:
    for kind in ("flat", "hnsw"):
        result = create_index(kind, DIM, "test-descriptor", device="cpu").search(normalised(rng, 2), 4)
        assert (result.indices == -1).all() and np.isneginf(result.scores).all() and result.ids == [[], []]


def test_sharded_add_equals_one_shot_add(rng: np.random.Generator) -> None:
    database, queries = normalised(rng, 300), normalised(rng, 10)
    one_shot = create_index("flat", DIM, "test-descriptor", device="cpu")
    one_shot.add(database, image_ids(300))
    sharded = create_index("flat", DIM, "test-descriptor", device="cpu")
    sharded.add(database, image_ids(300), shard_size=7)
    from_iterator = create_index("flat", DIM, "test-descriptor", device="cpu")
    from_iterator.add_shards(
        (database[start : start + 64], image_ids(300)[start : start + 64]) for start in range(0, 300, 64)
    )
    expected = one_shot.search(queries, 15)
    for index in (sharded, from_iterator):
        result = index.search(queries, 15)
        np.testing.assert_array_equal(result.indices, expected.indices)
        np.testing.assert_array_equal(result.scores, expected.scores)
        assert result.ids == expected.ids and list(index.ids) == image_ids(300)


def test_ivfpq_sharded_add_equals_one_shot_add(rng: np.random.Generator) -> None:
    database, queries = clustered(rng, 2000, 10)
    results = []
    for shard_size in (2000, 333):
        index = create_index("ivfpq", DIM, "test-descriptor", device="cpu", nlist=16, m=8, nbits=8, nprobe=4)
        index.train(database)
        index.add(database, image_ids(2000), shard_size=shard_size)
        results.append(index.search(queries, 10))
    np.testing.assert_array_equal(results[0].indices, results[1].indices)
    np.testing.assert_array_equal(results[0].scores, results[1].scores)


# ---------------------------------------------------------------------------------------------- approximate kinds


@pytest.mark.parametrize(
    ("kind", "parameters", "minimum_recall"),
    [
        ("ivfpq", {"nlist": 32, "m": 16, "nbits": 8, "nprobe": 8}, 0.85),
        ("hnsw", {"M": 16, "ef_search": 64, "ef_construction": 64}, 0.95),
    ],
)
def test_approximate_recall_at_10(
    rng: np.random.Generator, kind: str, parameters: dict[str, int], minimum_recall: float
) -> None:
    # About 10 database images per landmark, so the true top-10 are mostly the query's own landmark.
    database, queries = clustered(rng, 5000, 100, num_clusters=500)
    index = create_index(kind, DIM, "test-descriptor", device="cpu", **parameters)
    index.add(database, image_ids(5000))
    result = index.search(queries, 10)
    _, exact_indices = brute_force(queries, database, 10)
    assert recall_at(result.indices, exact_indices) >= minimum_recall
    # Inner-product metric: the scores estimate the cosine similarities of the neighbours found.
    true_scores = np.einsum("qd,qkd->qk", queries, database[result.indices])
    assert np.abs(result.scores - true_scores).mean() < 0.05


def test_ivfpq_nprobe_trades_speed_for_recall(rng: np.random.Generator) -> None:
    database, queries = clustered(rng, 3000, 50)
    index = create_index("ivfpq", DIM, "test-descriptor", device="cpu", nlist=32, m=16, nprobe=1)
    index.add(database, image_ids(3000))
    _, exact_indices = brute_force(queries, database, 10)
    recall_one_cell = recall_at(index.search(queries, 10).indices, exact_indices)
    index.set_search_parameters(nprobe=32)
    assert recall_at(index.search(queries, 10).indices, exact_indices) >= recall_one_cell
    assert isinstance(index.parameters, IVFPQParameters) and index.parameters.nprobe == 32


def test_refined_ivfpq_rescored_with_float16_recovers_what_pq_loses(rng: np.random.Generator) -> None:
    database, queries = clustered(rng, 3000, 50)
    _, exact_indices = brute_force(queries, database, 10)
    recalls = {}
    for refine in ("none", "sq8", "fp16"):
        index = create_index(
            "ivfpq",
            DIM,
            "test",
            device="cpu",
            nlist=16,
            m=4,
            nbits=6,
            nprobe=16,
            refine=refine,
            refine_k_factor=10,
        )
        index.add(database, image_ids(3000))
        result = index.search(queries, 10)
        recalls[refine] = recall_at(result.indices, exact_indices)
        if (
            refine == "fp16"
        ):  # re-scored with float16 copies: the scores are the exact ones to float16 rounding
            exact_scores = np.take_along_axis(queries @ database.T, result.indices, axis=1)
            np.testing.assert_allclose(result.scores, exact_scores, atol=2e-3)
    assert recalls["none"] < 0.8 and recalls["sq8"] > recalls["none"] + 0.1 and recalls["fp16"] >= 0.95
    with pytest.raises(ValueError, match="refine must be one of"):
        IVFPQParameters(refine="fp32")


# ---------------------------------------------------------------------------------------------- persistence


@pytest.mark.parametrize(
    ("kind", "parameters"),
    [
        ("flat", {}),
        ("ivfpq", {"nlist": 8, "m": 8, "nbits": 6, "nprobe": 3}),
        ("ivfpq", {"nlist": 8, "m": 8, "nbits": 6, "nprobe": 3, "refine": "fp16", "refine_k_factor": 3}),
        ("hnsw", {"M": 8, "ef_search": 20}),
    ],
)
def test_save_load_round_trip(
    rng: np.random.Generator, tmp_path: Path, kind: str, parameters: dict[str, int]
) -> None:
    database, queries = clustered(rng, 400, 12)
    ids = [f"photo/{row}/é" for row in range(400)]
    index = create_index(kind, DIM, "resnet50-gem@512px", device="cpu", **parameters)
    index.add(database, ids)
    index.save(tmp_path / "saved")
    loaded = DescriptorIndex.load(
        tmp_path / "saved", expected_dim=DIM, expected_descriptor_id="resnet50-gem@512px", device="cpu"
    )
    assert loaded.parameters == index.parameters and loaded.kind == kind and len(loaded) == 400
    assert list(loaded.ids) == ids
    expected, result = index.search(queries, 7), loaded.search(queries, 7)
    np.testing.assert_array_equal(result.indices, expected.indices)
    np.testing.assert_array_equal(result.scores, expected.scores)
    assert result.ids == expected.ids
    mapped = DescriptorIndex.load(tmp_path / "saved", device="cpu", mmap=True)
    from_map = mapped.search(queries, 7)
    np.testing.assert_array_equal(from_map.indices, expected.indices)
    np.testing.assert_array_equal(from_map.scores, expected.scores)
    with pytest.raises(ValueError, match="memory-mapped"):
        mapped.add(database[:2], ["x", "y"])


def test_load_refuses_another_dimension_or_descriptor(rng: np.random.Generator, tmp_path: Path) -> None:
    index = create_index("flat", DIM, "model-a", device="cpu")
    index.add(normalised(rng, 5), image_ids(5))
    index.save(tmp_path)
    with pytest.raises(ValueError, match=r"32-D.*expected 64-D"):
        DescriptorIndex.load(tmp_path, expected_dim=64)
    with pytest.raises(ValueError, match=r"'model-a'.*expected 'model-b'"):
        DescriptorIndex.load(tmp_path, expected_descriptor_id="model-b")
    with pytest.raises(ValueError, match="not a saved DescriptorIndex"):
        DescriptorIndex.load(tmp_path / "missing")


def test_load_detects_inconsistent_files(rng: np.random.Generator, tmp_path: Path) -> None:
    index = create_index("flat", DIM, "model-a", device="cpu")
    index.add(normalised(rng, 5), image_ids(5))
    index.save(tmp_path)
    (tmp_path / "ids.txt").write_text("only_one\n", encoding="utf-8")
    with pytest.raises(ValueError, match="inconsistent"):
        DescriptorIndex.load(tmp_path)


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_value_errors(rng: np.random.Generator) -> None:
    index = create_index("flat", DIM, "test-descriptor", device="cpu")
    index.add(normalised(rng, 4), image_ids(4))
    with pytest.raises(ValueError, match=r"shape \(N, 32\)"):
        index.add(normalised(rng, 4, dim=16), image_ids(4))
    with pytest.raises(ValueError, match=r"shape \(N, 32\)"):
        index.search(normalised(rng, 2, dim=64), 3)
    with pytest.raises(ValueError, match="4 embeddings but 3 ids"):
        index.add(normalised(rng, 4), image_ids(3))
    with pytest.raises(ValueError, match="line break"):
        index.add(normalised(rng, 1), ["two\nlines"])
    not_finite = normalised(rng, 4)
    not_finite[2, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        index.add(not_finite, image_ids(4))
    not_finite[2, 5] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        index.search(not_finite, 3)
    with pytest.raises(ValueError, match="k must be positive"):
        index.search(normalised(rng, 1), 0)
    assert len(index) == 4 and len(index.ids) == 4


def test_factory_validates_kind_and_parameters() -> None:
    with pytest.raises(ValueError, match="unknown index kind 'annoy'"):
        create_index("annoy", DIM, "x")
    with pytest.raises(ValueError, match=r"unknown parameters \['nprobe'\] for index kind 'hnsw'"):
        create_index("hnsw", DIM, "x", nprobe=4)
    with pytest.raises(ValueError, match="m=5 sub-quantizers must divide dim=32"):
        create_index("ivfpq", DIM, "x", m=5)
    with pytest.raises(ValueError, match="nprobe=64 exceeds nlist=8"):
        create_index("ivfpq", DIM, "x", nlist=8, nprobe=64)
    with pytest.raises(ValueError, match="M must be positive"):
        create_index("hnsw", DIM, "x", M=0)
    index = create_index("hnsw", DIM, "x", device="cpu", M=8, ef_search=10, ef_construction=20)
    assert index.parameters == HNSWParameters(M=8, ef_search=10, ef_construction=20)
    with pytest.raises(ValueError, match="nprobe applies to ivfpq"):
        index.set_search_parameters(nprobe=3)


def test_ivfpq_refuses_too_few_training_vectors(rng: np.random.Generator) -> None:
    index = create_index("ivfpq", DIM, "x", device="cpu", nlist=16, m=8, nbits=8)
    with pytest.raises(ValueError, match="at least 256 training vectors, got 100"):
        index.add(normalised(rng, 100), image_ids(100))
    assert len(index) == 0


@pytest.mark.skipif(faiss_gpu_available(), reason="this faiss has GPU support")
def test_gpu_request_without_faiss_gpu_is_refused() -> None:
    with pytest.raises(ValueError, match="no GPU support"):
        create_index("flat", DIM, "x", device="gpu")


# ---------------------------------------------------------------------------------------------- exact_search


def test_exact_search_matches_brute_force_across_chunks(rng: np.random.Generator) -> None:
    database, queries = normalised(rng, 103), normalised(rng, 17)
    expected_scores, expected_indices = brute_force(queries, database, 12)
    scores, indices = exact_search(
        torch.from_numpy(queries), torch.from_numpy(database), 12, query_chunk_size=5, database_chunk_size=8
    )
    np.testing.assert_array_equal(indices.numpy(), expected_indices)
    np.testing.assert_allclose(scores.numpy(), expected_scores, atol=1e-5)
    assert scores.dtype == torch.float32 and indices.dtype == torch.int64


def test_exact_search_in_bfloat16_is_close(rng: np.random.Generator) -> None:
    database, queries = clustered(rng, 500, 20)
    _, expected_indices = brute_force(queries, database, 10)
    _, indices = exact_search(
        torch.from_numpy(queries), torch.from_numpy(database), 10, compute_dtype=torch.bfloat16
    )
    assert recall_at(indices.numpy(), expected_indices) >= 0.8


def test_exact_search_validates_input(rng: np.random.Generator) -> None:
    database = torch.from_numpy(normalised(rng, 10))
    with pytest.raises(ValueError, match="k=11 exceeds the database size 10"):
        exact_search(database, database, 11)
    with pytest.raises(ValueError, match="must be"):
        exact_search(database[:, :5], database, 3)


@pytest.mark.parametrize(
    ("num_vectors", "nlist"),
    # 4·√N → nearest power of two, at most N // 39: 10,000 → 400 → 512, capped at 256; 1M → 4,000 → 4,096.
    [(10_000, 256), (1_000_000, 4096), (300, 7)],
)
def test_ivfpq_lists_are_chosen_from_the_collection_size(num_vectors: int, nlist: int) -> None:
    sized = make_parameters("ivfpq", nlist=None, nbits=4, nprobe=32).sized_for(num_vectors)
    assert isinstance(sized, IVFPQParameters)
    assert sized.nlist == nlist and sized.nprobe == min(32, nlist)


def test_a_collection_too_small_for_ivfpq_is_refused_with_what_to_use() -> None:
    with pytest.raises(
        ValueError, match=r"needs at least 256 training vectors.*187 images: use global_index=flat"
    ):
        create_index("ivfpq", 64, "d", m=8, nbits=8, nlist=None, num_vectors=187)
    with pytest.raises(ValueError, match=r"or global_index\.nlist=null"):
        create_index("ivfpq", 64, "d", m=8, nbits=8, nlist=4096, num_vectors=1000)
    assert create_index("flat", 64, "d", num_vectors=1).kind == "flat"
    with pytest.raises(ValueError, match="sized_for"):
        DescriptorIndex(64, "d", IVFPQParameters(nlist=None, m=8))
