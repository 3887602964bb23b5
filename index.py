"""Index a collection of images for search:  python index.py images_dir=<folder> [ckpt_path=<checkpoint>]

Extracts global descriptors into a faiss index and local features into a store, once; ``search.py`` and
``serve.py`` read the resulting collection folder. The global descriptors are a Lightning prediction job: one
process by default, or many (``trainer.devices=8``, ``trainer.num_nodes=4``; launched by Lightning, torchrun or
SLURM), writing shards that a rerun after a kill does not extract again. Rank 0 then builds the collection.
"""

from __future__ import annotations

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig

from datamodules.image_prediction import ImagePredictionDataModule
from experiments.app import app_main
from lightning_modules.descriptor_prediction import DescriptorPrediction
from lightning_modules.shard_writer import DescriptorShardWriter
from retrieval.collection import build_collection, list_images, plan_global_extraction
from retrieval.descriptor.extract import ExtractionSettings
from retrieval.descriptor.network import load_network

log = logging.getLogger("index")


@app_main("index")
def main(cfg: DictConfig) -> None:
    net, descriptor_id = load_network(cfg.ckpt_path, lambda: instantiate(cfg.net))
    settings: ExtractionSettings = instantiate(cfg.extraction)
    make_index = instantiate(cfg.global_index)
    listing = list_images(cfg.images_dir)
    # Every rank plans the same work, predicts its share of the shards; rank 0 builds from all of them.
    paths, shards = plan_global_extraction(
        cfg.collection_dir, listing, net, descriptor_id, settings, make_index, cfg.shard_size
    )
    writer = DescriptorShardWriter(shards)
    trainer = instantiate(cfg.trainer, callbacks=[writer])
    trainer.predict(
        DescriptorPrediction(net, settings.scales),
        datamodule=ImagePredictionDataModule(paths, shards, settings),
        return_predictions=False,
    )
    if not trainer.is_global_zero:
        return
    local_extractor = instantiate(cfg.local_features) if cfg.get("local_features") else None
    summary = build_collection(
        cfg.collection_dir,
        listing,
        net,
        descriptor_id,
        settings,
        make_index,
        local_extractor,
        num_workers=cfg.num_workers,
        shard_size=cfg.shard_size,
    )
    print(
        f"indexed {summary['num_images']} images into {cfg.collection_dir}; {len(summary['skipped'])} files not "
        "indexed (listed with their reason under `skipped` in collection.json)"
    )


if __name__ == "__main__":
    main()
