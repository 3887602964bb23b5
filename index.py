"""Index a collection of images for search:  python index.py images_dir=<folder> [ckpt_path=<checkpoint>]

Extracts global descriptors into a faiss index and local features into a store, once; ``search.py`` and
``serve.py`` read the resulting collection folder.
"""

from __future__ import annotations

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig

from experiments.app import app_main
from retrieval.collection import build_collection, list_images
from retrieval.descriptor.extract import ExtractionSettings
from retrieval.descriptor.network import load_network, resolve_device

log = logging.getLogger("index")


@app_main("index")
def main(cfg: DictConfig) -> None:
    net, descriptor_id = load_network(cfg.ckpt_path, lambda: instantiate(cfg.net))
    settings: ExtractionSettings = instantiate(cfg.extraction)
    local_extractor = instantiate(cfg.local_features) if cfg.get("local_features") else None
    summary = build_collection(
        cfg.collection_dir,
        list_images(cfg.images_dir),
        net,
        descriptor_id,
        settings,
        instantiate(cfg.global_index),
        local_extractor,
        device=resolve_device(cfg.device),
        num_workers=cfg.num_workers,
    )
    print(
        f"indexed {summary['num_images']} images into {cfg.collection_dir}; {len(summary['skipped'])} files not "
        "indexed (listed with their reason under `skipped` in collection.json)"
    )


if __name__ == "__main__":
    main()
