"""SuperGlobal re-ranking with global descriptors only (Shao, Chen, Karpur, Cui, Araujo, Cao: "Global Features
are All You Need for Image Retrieval and Reranking", ICCV 2023; the official code's ``MDescAug`` and
``RerankwMDA``).

For each query, among its global top ``top_m``:

1. every candidate ``x_i`` is refined from its ``k`` nearest candidates (its neighbours within the top M, itself
   first): ``x_i' = (x_i + beta · sum_j s_ij x_j) / (1 + beta · sum_j s_ij)``, ``s_ij`` their similarities;
2. the query is expanded by element-wise max-pooling the ``k + 1`` refined candidates it ranks highest (as the
   official code does), ``q'``;
3. candidates are re-ranked by ``(q · x_i' + q' · x_i') / 2``.

The cost is two (M × M) and two (M) products of D-vectors per query — thousands of times cheaper than matching
local features; the rest of the ranking keeps its order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SuperGlobalRerank:
    """The settings of :func:`superglobal_rerank` (the paper's M, K and β; it uses 400, 9 and 0.15)."""

    top_m: int = 100
    k: int = 9
    beta: float = 0.15

    def __post_init__(self) -> None:
        if self.top_m < 2 or not 1 <= self.k < self.top_m:
            raise ValueError(f"top_m must be at least 2 and k in [1, top_m), got {self.top_m} and {self.k}")
        if self.beta < 0:
            raise ValueError(f"beta must be non-negative, got {self.beta}")


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
        # Row i of the (c, M, M) mixing matrix holds candidate i's weights at its neighbours' columns.
        mixing = torch.zeros_like(similarity).scatter_(2, nearest, weights / weights.sum(-1, keepdim=True))
        refined = mixing @ candidates  # (c, M, D)
        first = torch.einsum("cd,cmd->cm", query, refined)
        top = first.topk(neighbours, dim=-1).indices
        expanded = torch.gather(refined, 1, top[..., None].expand(-1, -1, refined.shape[-1])).amax(1)
        second = torch.einsum("cd,cmd->cm", expanded, refined)
        scores, order = ((first + second) / 2).sort(dim=-1, descending=True)
        reordered[start : start + chunk_size, :depth] = torch.gather(shortlist, 1, order)
        all_scores.append(scores)
    return torch.cat(all_scores), reordered
