"""Landmark retrieval, pure torch/numpy/faiss/OpenCV (never Lightning or Hydra), in two wings over a shared
ground — the thesis' own "global and local features":

- ``retrieval.descriptor``: the global descriptor (network, weights, pooling, losses, mining, extraction, its
  batching and shards, whitening, query expansion, faiss index);
- ``retrieval.local``: local features, their store (built in parts), matching, verification, re-ranking,
  vocabularies and codebooks;
- the ground: images (``images``), benchmarks and their metrics (``benchmark``, ``metrics``), evaluation of
  both wings (``evaluation``), collections (``collection``, ``image_table``) and their search
  (``search_engine``), near-duplicates (``duplicates``),
  pictures (``visualize``) and the restricted unpickler (``safe_pickle``).

The names below are the public face; each is imported from its module on first use, so ``import retrieval``
stays cheap::

    from retrieval import GlobalDescriptorNet, SearchEngine
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "GlobalDescriptorNet": "retrieval.descriptor.network",
    "load_network": "retrieval.descriptor.network",
    "ExtractionSettings": "retrieval.descriptor.extract",
    "extract_descriptors": "retrieval.descriptor.extract",
    "DescriptorIndex": "retrieval.descriptor.index",
    "LocalFeatureExtractor": "retrieval.local.features",
    "LocalFeatures": "retrieval.local.features",
    "FeatureStore": "retrieval.local.store",
    "MatchingConfig": "retrieval.local.matching",
    "VerificationConfig": "retrieval.local.verification",
    "RerankMethod": "retrieval.reranking",
    "rerank": "retrieval.reranking",
    "RetrievalBenchmark": "retrieval.benchmark",
    "evaluate_benchmark": "retrieval.evaluation",
    "evaluate_reranking": "retrieval.evaluation",
    "SearchEngine": "retrieval.search_engine",
    "build_collection": "retrieval.collection_build",
    "BuildPlan": "retrieval.collection_build",
    "list_images": "retrieval.collection",
    "load_rgb": "retrieval.images",
    "ImageLoadError": "retrieval.images",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'retrieval' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
