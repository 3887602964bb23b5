"""SuperGlobal re-ranking with global descriptors only (Shao, Chen, Karpur, Cui, Araujo, Cao: "Global Features
are All You Need for Image Retrieval and Reranking", ICCV 2023; the official code's ``MDescAug`` and
``RerankwMDA``).

For each query, among its global top ``top_m``:

1. every candidate ``x_i`` is refined from its ``k`` nearest candidates (its neighbours within the top M, itself
   first): ``x_i' = (x_i + beta · sum_j s_ij x_j) / (1 + beta · sum_j s_ij)``, ``s_ij`` their similarities;
2. the query is expanded by element-wise max-pooling the ``k + 1`` refined candidates it ranks highest (as the
   official code does), ``q'``;
3. candidates are re-ranked by ``(q · x_i' + q' · x_i') / 2``.

The cost is one (M × M) product of D-vectors per query (the candidates' similarities), k + 1 refined candidates
and a few (M)-vector products — thousands of times cheaper than matching local features; the rest of the ranking
keeps its order.

:class:`SuperGlobalRerank` is both a re-ranking method (``rerank=superglobal``: per query, from a
:class:`~retrieval.descriptor.descriptor_table.DescriptorTable`, beside the local-feature methods) and the
settings of the batched :func:`superglobal_rerank` (``post=superglobal``: every query of a benchmark at once).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from retrieval.descriptor.descriptor_table import DescriptorTable
from retrieval.reranking import GLOBAL_DESCRIPTORS, Evidence, RerankMethod


@dataclass(frozen=True)
class SuperGlobalRerank(RerankMethod[np.ndarray, DescriptorTable]):
    """SuperGlobal with the paper's M, K and β (it uses 400, 9 and 0.15). As a method, the query is its (D,)
    global descriptor and the store a :class:`DescriptorTable` of the database's; candidates beyond the top M
    follow in global order."""

    features: ClassVar[str] = GLOBAL_DESCRIPTORS
    top_m: int = 100
    k: int = 9
    beta: float = 0.15

    def __post_init__(self) -> None:
        if self.top_m < 2 or not 1 <= self.k < self.top_m:
            raise ValueError(f"top_m must be at least 2 and k in [1, top_m), got {self.top_m} and {self.k}")
        if self.beta < 0:
            raise ValueError(f"beta must be non-negative, got {self.beta}")

    def check_store(self, store: Any) -> None:
        if not isinstance(store, DescriptorTable):
            raise ValueError(f"{self.describe()!r} re-ranks with global descriptors, not with {store!r}")

    def gather(self, query: np.ndarray, candidate_ids: Sequence[str], store: DescriptorTable) -> Evidence:
        """SuperGlobal's score of the first ``top_m`` candidates (in the given, global order); NaN after them."""
        query = np.asarray(query, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != store.dim:
            raise ValueError(f"the query descriptor has {query.shape[1]} dimensions, the table {store.dim}")
        similarity = np.full(len(candidate_ids), np.nan)
        if len(candidate_ids) < 2:
            return Evidence.of_similarity(similarity)
        candidates = torch.from_numpy(store.get_many(candidate_ids))
        shortlist = torch.arange(len(candidate_ids))[None]
        scores, order = superglobal_rerank(torch.from_numpy(query), candidates, shortlist, self)
        depth = scores.shape[1]
        similarity[order[0, :depth].numpy()] = scores[0].double().numpy()
        return Evidence.of_similarity(similarity)

    def score(self, global_scores: np.ndarray, evidence: Evidence) -> np.ndarray:
        scores = evidence.similarity.copy()
        rest = np.isnan(scores)
        if rest.all():
            return global_scores.astype(np.float64)
        if rest.any():  # below every refined score, in global order
            scores[rest] = global_scores[rest] - global_scores[rest].max() + scores[~rest].min() - 1.0
        return scores

    def describe(self) -> str:
        return f"SuperGlobal (global descriptors only): top {self.top_m}, k={self.k}, β={self.beta:g}"

    def work_key(self) -> Hashable:
        return (GLOBAL_DESCRIPTORS, self)


@torch.no_grad()
def superglobal_rerank(
    queries: torch.Tensor,
    database: torch.Tensor,
    ranking: torch.Tensor,
    settings: SuperGlobalRerank,
    chunk_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-rank the first ``top_m`` entries of every row of ``ranking``.

    Shapes: queries (Q, D) and database (N, D), L2-normalised; ranking (Q, K) database rows best first, K ≥ 2.
    Returns the scores (Q, M) of the re-ranked shortlist and the new ranking (Q, K) (its first M entries
    re-ordered, M = min(top_m, K)).
    """
    if queries.ndim != 2 or database.ndim != 2 or queries.shape[1] != database.shape[1]:
        raise ValueError(
            f"queries (Q, D) and database (N, D) expected, got {tuple(queries.shape)}, {tuple(database.shape)}"
        )
    if ranking.ndim != 2 or len(ranking) != len(queries) or ranking.shape[1] < 2:
        raise ValueError(f"ranking must be (Q={len(queries)}, K >= 2), got {tuple(ranking.shape)}")
    depth = min(settings.top_m, ranking.shape[1])
    neighbours = min(settings.k, depth - 1) + 1  # with the candidate itself
    reordered = ranking.clone()
    all_scores = []
    for start in range(0, len(queries), chunk_size):
        query = queries[start : start + chunk_size].float()
        shortlist = ranking[start : start + chunk_size, :depth]
        candidates = database[shortlist].float()  # (c, M, D)
        similarity = candidates @ candidates.transpose(1, 2)  # (c, M, M)
        values, nearest = similarity.topk(neighbours, dim=-1)  # (c, M, k + 1), itself first
        weights = torch.cat([torch.ones_like(values[..., :1]), settings.beta * values[..., 1:]], dim=-1)
        # Row i of the (c, M, M) mixing matrix holds candidate i's weights at its neighbours' columns; the refined
        # candidates are mixing @ candidates, but only the k + 1 the query ranks highest are formed: a score
        # q · refined_i is the mixing of the scores q · c_j, (M × M)(M) instead of (M × M)(M × D).
        mixing = torch.zeros_like(similarity).scatter_(2, nearest, weights / weights.sum(-1, keepdim=True))
        first = (mixing @ (candidates @ query[..., None]))[..., 0]  # (c, M)
        top = first.topk(neighbours, dim=-1).indices
        top_mixing = torch.gather(mixing, 1, top[..., None].expand(-1, -1, mixing.shape[-1]))  # (c, k + 1, M)
        expanded = (top_mixing @ candidates).amax(1)  # (c, D)
        second = (mixing @ (candidates @ expanded[..., None]))[..., 0]
        scores, order = ((first + second) / 2).sort(dim=-1, descending=True)
        reordered[start : start + chunk_size, :depth] = torch.gather(shortlist, 1, order)
        all_scores.append(scores)
    return torch.cat(all_scores), reordered
