"""Index a collection of images for search:  python index.py images_dir=<folder> [ckpt_path=<checkpoint>]

Extracts global descriptors into a faiss index and local features into a store, once; ``search.py`` and
``serve.py`` read the resulting collection folder. The global descriptors are a Lightning prediction job: one
process by default, or many (``trainer.devices=8``, ``trainer.num_nodes=4``; launched by Lightning, torchrun or
SLURM), writing shards that a rerun after a kill does not extract again; the local features are split over the
ranks the same way (store parts, a process pool each). Rank 0 then builds the collection.
"""

from __future__ import annotations

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig

from datamodules.image_prediction import ImagePredictionDataModule
from experiments.app import app_main
from lightning_modules.descriptor_prediction import DescriptorPrediction
from lightning_modules.shard_writer import DescriptorShardWriter
from retrieval.collection import list_images
from retrieval.collection_build import BuildPlan, build_planned
from retrieval.descriptor.extract import ExtractionSettings
from retrieval.descriptor.network import load_network

log = logging.getLogger("index")


@app_main("index")
def main(cfg: DictConfig) -> None:
    net, descriptor_id = load_network(cfg.ckpt_path, lambda: instantiate(cfg.net))
    settings: ExtractionSettings = instantiate(cfg.extraction)
    make_index = instantiate(cfg.global_index)
    listing = list_images(cfg.images_dir)
    # Every rank plans the same work and does its share of the global-descriptor shards and of the local-feature
    # store parts; rank 0 then builds the collection from all of them.
    plan = BuildPlan.of(
        cfg.collection_dir, listing, net, descriptor_id, settings, make_index, cfg.shard_size, cfg.part_size
    )
    trainer = instantiate(cfg.trainer, callbacks=[DescriptorShardWriter(plan.shards)])
    trainer.predict(
        DescriptorPrediction(net, settings.scales, settings.scale_aggregation),
        datamodule=ImagePredictionDataModule(plan.new_paths, plan.shards, settings),
        return_predictions=False,
    )
    local_extractor = instantiate(cfg.local_features) if cfg.get("local_features") else None
    if local_extractor is not None:
        plan.extract_local(
            local_extractor,
            cfg.num_workers,
            trainer.global_rank,
            trainer.world_size,
            share=lambda value: trainer.strategy.broadcast(value, src=0),
            barrier=trainer.strategy.barrier,
        )
    if not trainer.is_global_zero:
        return
    summary = build_planned(plan, net, local_extractor, num_workers=cfg.num_workers)
    print(
        f"indexed {summary['num_images']} images into {cfg.collection_dir}; {len(summary['skipped'])} files not "
        "indexed (listed with their reason under `skipped` in collection.json)"
    )


if __name__ == "__main__":
    main()
