"""SuperGlobal re-ranking against a loop-by-loop reference of the paper's formulas."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from retrieval.descriptor.index import exact_search
from retrieval.descriptor.superglobal import SuperGlobalRerank, superglobal_rerank


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
