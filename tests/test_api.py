"""The notebook API: open a collection, search with a path or an image in memory, re-rank by a preset's name,
and get descriptors of a list of images — two lines each."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from retrieval import SearchEngine
from retrieval.descriptor.descriptor_table import DescriptorTable
from retrieval.local.rerank import GlobalPlusInliersRerank
from retrieval.reranking import rerank
from serving.presets import rerank_preset, rerank_presets
from tests.test_serve import build_tiny_collection, first_landmark_query


@pytest.fixture(scope="module")
def collection(tiny_demo, tmp_path_factory):
    return build_tiny_collection(tiny_demo, tmp_path_factory.mktemp("api"))


def test_search_a_collection_in_two_lines(collection, tiny_demo):
    query, relevant = first_landmark_query(tiny_demo)
    engine = SearchEngine.open(collection)
    hits = engine.search(query, rerank_config=rerank_preset("inliers"))
    assert hits[0].image_id.rsplit("/", 1)[-1] in relevant and hits[0].inliers > 0
    in_memory = engine.search(Image.open(query), rerank_config=rerank_preset("inliers"))
    assert in_memory[0].image_id == hits[0].image_id


def test_presets_by_name_and_descriptors_of_a_list_of_images(collection, tiny_demo):
    fast = rerank_preset("global_plus_inliers_fast", "rerank.inlier_weight=0.02")
    assert isinstance(fast, GlobalPlusInliersRerank) and fast.inlier_weight == 0.02
    assert fast.matching.query_max_keypoints == 512
    assert rerank_preset("none") is None and "inliers" in rerank_presets()
    with pytest.raises(ValueError, match="unknown rerank preset 'best'"):
        rerank_preset("best")
    engine = SearchEngine.open(collection)
    paths = list(engine.paths.values())[:3]
    descriptors = engine.descriptors(paths)
    assert descriptors.shape == (3, engine.net.output_dim)
    np.testing.assert_allclose(np.linalg.norm(descriptors, axis=1), 1.0, atol=1e-5)
    found = engine.index.search(descriptors, 1)
    assert [ids[0] for ids in found.ids] == list(engine.paths)[:3]  # an indexed file finds itself


def test_superglobal_reranks_with_the_indexed_descriptors(collection, tiny_demo, tmp_path):
    """``rerank=superglobal`` on a collection re-ranks the global shortlist from the descriptors the collection
    keeps: the same order as the method over freshly extracted descriptors of every image; no inliers."""
    query, _ = first_landmark_query(tiny_demo)
    engine = SearchEngine.open(collection)
    method = rerank_preset("superglobal")
    hits = engine.search(query, top_k=5, rerank_config=method, shortlist=12)
    assert all(hit.inliers is None and hit.verified is None for hit in hits)

    shortlist = engine.search(query, top_k=12)
    table = DescriptorTable(list(engine.paths), engine.descriptors(list(engine.paths.values())))
    expected = rerank(
        engine.query_descriptor(query)[0],
        [hit.image_id for hit in shortlist],
        np.array([hit.global_score for hit in shortlist]),
        table,
        method,
        top_k=12,
    )
    assert [hit.image_id for hit in hits] == expected.ranked_ids[:5]
    np.testing.assert_allclose([hit.score for hit in hits], expected.scores[expected.order[:5]], atol=1e-5)

    copy = tmp_path / "copy"
    shutil.copytree(collection, copy, symlinks=True)
    for descriptors in copy.rglob("descriptors.npy"):
        descriptors.unlink()
    with pytest.raises(ValueError, match=r"keeps no descriptors\.npy"):
        SearchEngine.open(copy).search(query, rerank_config=method)
