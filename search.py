"""Search a collection:  python search.py query=<image or folder> [rerank=compact|inliers|fusion|delg|superglobal|none]

Writes, into the run folder, ``results.json`` (the top 10 of every query with global and final scores,
inliers and the same-place verdict) and one PNG per query: the query and its top 10, plus the verified matches
of the top results.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from experiments.app import app_main
from retrieval.collection import list_images
from retrieval.descriptor.network import resolve_device
from retrieval.images import ImageLoadError, decode
from retrieval.local.verdict import VerdictThreshold
from retrieval.search_engine import SearchEngine, SearchHit, describe_score
from retrieval.visualize import ResultCard, draw_matches, format_score, render_search_picture

log = logging.getLogger("search")

# Longest side of the query and result pictures the match pictures are drawn from; results whose matches are drawn.
PICTURE_SIDE = 1024
MATCHED_RESULTS = 3


def verdict(hit: SearchHit, threshold: VerdictThreshold | None, reranked: bool) -> str:
    """What local evidence says of a result, in a few words."""
    if not reranked:
        return "global similarity only"
    if threshold is None:
        return "no geometric verification"
    if hit.inliers is None:
        return "inliers not computed"
    if hit.verified:
        return f"same place: {hit.inliers} inliers"
    return f"not verified: {hit.inliers} < {threshold.min_inliers}"


@app_main("search")
def main(cfg: DictConfig) -> None:
    engine = SearchEngine(cfg.collection_dir, device=resolve_device(cfg.device))
    rerank_config = instantiate(cfg.rerank) if cfg.get("rerank") else None
    threshold = engine.verdict_threshold(rerank_config)
    score_label = describe_score(rerank_config)
    if threshold is not None:
        log.info("same place: %s", threshold.describe())
    query_path = Path(cfg.query)
    queries = list_images(query_path).images if query_path.is_dir() else {query_path.stem: query_path}
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for name, path in queries.items():
        try:
            hits = engine.search(
                path,
                top_k=cfg.top_k,
                rerank_config=rerank_config,
                shortlist=cfg.shortlist,
                with_correspondences=cfg.draw_matches,
                exclude_query_image=cfg.exclude_query_image,
            )
            query = decode(path, max_side=PICTURE_SIDE)
        except ImageLoadError as error:
            log.warning("query skipped: %s", error)
            failed[str(path)] = str(error)
            continue
        results[name] = {
            "query": str(path),
            "score": score_label,
            "same_place_threshold": threshold.describe() if threshold is not None else None,
            "results": [hit.summary() for hit in hits],
        }
        pictures = []
        for hit in hits[: MATCHED_RESULTS if cfg.draw_matches else 0]:
            matches = hit.correspondences
            if matches is not None and len(matches.inliers):
                database = decode(hit.path, max_side=PICTURE_SIDE)
                pictures.append(
                    draw_matches(
                        query.rgb,
                        database.rgb,
                        matches.query_points,
                        matches.database_points,
                        matches.inliers if matches.verified else None,
                        height=240,
                        max_width=1000,
                        point_sizes=(query.original_size, database.original_size),
                    )
                )
        captions = [verdict(hit, threshold, rerank_config is not None) for hit in hits]
        cards = [
            ResultCard(Path(hit.path), rank, hit.score, text, hit.verified)
            for rank, (hit, text) in enumerate(zip(hits, captions, strict=True), start=1)
        ]
        safe_name = name.replace("/", "_")
        render_search_picture(path, cards, pictures, score_label).save(output_dir / f"{safe_name}.png")
        print(f"{path}:  (score: {score_label})")
        for rank, (hit, text) in enumerate(zip(hits, captions, strict=True), start=1):
            print(
                f"  {rank:2d}. {hit.image_id}  score {format_score(hit.score)}  global {hit.global_score:.3f}  {text}"
            )
    (output_dir / "results.json").write_text(json.dumps({"queries": results, "failed": failed}, indent=2))
    if failed:
        print(f"{len(failed)} queries could not be read (listed under `failed` in results.json)")
    log.info("results and pictures written to %s", output_dir)


if __name__ == "__main__":
    main()
