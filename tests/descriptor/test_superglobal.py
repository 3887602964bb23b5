"""SuperGlobal re-ranking against a loop-by-loop reference of the paper's formulas, batched and as a re-ranking
method of one query."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from retrieval.benchmark import QueryGroundTruth, RetrievalBenchmark
from retrieval.descriptor.descriptor_table import DescriptorTable
from retrieval.descriptor.index import exact_search
from retrieval.descriptor.superglobal import SuperGlobalRerank, superglobal_rerank
from retrieval.evaluation import PostProcessing, evaluate_reranking, rank_and_score, rerank_inputs
from retrieval.reranking import rerank


def reference(query, database, shortlist, k, beta):
    """One query, plainly: refine each candidate from its k nearest candidates (itself with weight 1, the others
    beta·similarity), expand the query by max-pooling its k + 1 best refined candidates, average the two scores."""
    candidates = database[shortlist]
    refined = []
    for x in candidates:
        similarity = candidates @ x
        nearest = np.argsort(-similarity, kind="stable")[: k + 1]
        weights = np.array([1.0] + [beta * similarity[j] for j in nearest[1:]])
        refined.append((weights[:, None] * candidates[nearest]).sum(0) / weights.sum())
    refined = np.stack(refined)
    first = refined @ query
    expanded = refined[np.argsort(-first, kind="stable")[: k + 1]].max(0)
    final = (first + refined @ expanded) / 2
    order = np.argsort(-final, kind="stable")
    return final[order], shortlist[order]


def test_the_reranking_is_the_papers_formula():
    generator = torch.Generator().manual_seed(0)
    database = F.normalize(torch.randn(60, 16, generator=generator), dim=1)
    queries = F.normalize(database[:5] + 0.3 * torch.randn(5, 16, generator=generator), dim=1)
    _, ranking = exact_search(queries, database, 40)
    settings = SuperGlobalRerank(top_m=20, k=4, beta=0.15)
    scores, reranked = superglobal_rerank(queries, database, ranking, settings, chunk_size=2)
    for row in range(5):
        expected_scores, expected_order = reference(
            queries[row].numpy(), database.numpy(), ranking[row, :20].numpy(), k=4, beta=0.15
        )
        np.testing.assert_allclose(scores[row].numpy(), expected_scores, rtol=1e-5, atol=1e-6)
        assert reranked[row, :20].tolist() == expected_order.tolist()
    assert torch.equal(reranked[:, 20:], ranking[:, 20:])  # the rest keeps its order
    assert sorted(reranked[0, :20].tolist()) == sorted(ranking[0, :20].tolist())


def test_settings_are_checked():
    with pytest.raises(ValueError, match="k in"):
        SuperGlobalRerank(top_m=5, k=5)
    with pytest.raises(ValueError, match="beta"):
        SuperGlobalRerank(beta=-1)


def test_as_a_rerank_method_it_scores_one_query_as_the_papers_formula():
    """Through :func:`retrieval.reranking.rerank`, one query's candidates (ids of a DescriptorTable) get the
    reference's scores and order; candidates beyond the top M follow in global order, below all of them."""
    generator = torch.Generator().manual_seed(1)
    database = F.normalize(torch.randn(30, 8, generator=generator), dim=1)
    query = F.normalize(database[3] + 0.3 * torch.randn(8, generator=generator), dim=0)
    global_scores, shortlist = exact_search(query[None], database, 25)
    ids = [f"image{row}" for row in range(30)]
    table = DescriptorTable(ids, database.numpy())
    method = SuperGlobalRerank(top_m=20, k=4, beta=0.15)
    method.check_store(table)
    candidate_ids = [ids[row] for row in shortlist[0].tolist()]
    result = rerank(query.numpy(), candidate_ids, global_scores[0].numpy(), table, method, top_k=25)
    expected_scores, expected_order = reference(
        query.numpy(), database.numpy(), shortlist[0, :20].numpy(), k=4, beta=0.15
    )
    assert result.ranked_ids[:20] == [ids[row] for row in expected_order]
    assert result.ranked_ids[20:] == candidate_ids[20:]
    np.testing.assert_allclose(np.sort(result.scores[result.order[:20]])[::-1], expected_scores, rtol=1e-5)
    assert result.scores[result.order[20:]].max() < result.scores[result.order[:20]].min()
    assert result.num_inliers.sum() == 0 and method.verification_key() is None


def test_the_method_refuses_what_it_cannot_read():
    method = SuperGlobalRerank()
    with pytest.raises(ValueError, match="re-ranks with global descriptors"):
        method.check_store(object())
    table = DescriptorTable(["a", "b"], np.eye(2, dtype=np.float32))
    with pytest.raises(ValueError, match="3 dimensions, the table 2"):
        method.gather(np.ones(3, np.float32), ["a", "b"], table)
    with pytest.raises(KeyError):
        table.get_many(["c"])
    with pytest.raises(ValueError, match="unique"):
        DescriptorTable(["a", "a"], np.eye(2, dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(N=3, D\)"):
        DescriptorTable(["a", "b", "c"], np.eye(2, dtype=np.float32))


def test_per_query_reranking_equals_the_batched_post_processing():
    """``rerank=superglobal`` (per query, evaluation's re-ranking loop) and ``post=superglobal`` (all queries at
    once) give the same ranking on a benchmark without junk."""
    generator = torch.Generator().manual_seed(2)
    database = F.normalize(torch.randn(40, 8, generator=generator), dim=1)
    queries = F.normalize(database[:6] + 0.4 * torch.randn(6, 8, generator=generator), dim=1)
    benchmark = RetrievalBenchmark(
        name="synthetic",
        protocol="plain",
        query_paths=[Path(f"q{row}.jpg") for row in range(6)],
        database_paths=[Path(f"d{row}.jpg") for row in range(40)],
        ground_truth=[QueryGroundTruth(easy=np.array([row])) for row in range(6)],
        query_ids=[f"q{row}" for row in range(6)],
        database_ids=[f"d{row}" for row in range(40)],
        query_boxes=[None] * 6,
    )
    method = SuperGlobalRerank(top_m=15, k=3, beta=0.15)
    batched = rank_and_score(queries, database, benchmark, PostProcessing(top_k=15, superglobal=method))
    plain = rank_and_score(queries, database, benchmark, PostProcessing(top_k=15))
    features, table = rerank_inputs(benchmark, plain, method.features, None, "unused")
    per_query = evaluate_reranking(benchmark, plain, features, table, {"superglobal": method}, 15)
    np.testing.assert_array_equal(per_query["superglobal"].ranking, batched.ranking)
    assert per_query["superglobal"].metrics == batched.metrics
