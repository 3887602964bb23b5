"""Serve the search page and its JSON API:  python serve.py [collection_dir=<folder>] [port=8000]

Loads a collection written by ``index.py`` once (network, faiss index, local features), then serves
``http://<host>:<port>/``: upload or drop a photo, see its nearest collection photos with their scores and,
for any result, the verified local matches. The API is described at ``/docs``.
"""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI
from hydra.utils import instantiate
from omegaconf import DictConfig

from experiments.app import app_main
from retrieval.descriptor.network import resolve_device
from retrieval.search_engine import SearchEngine
from serving.app import create_app
from serving.uploads import UploadLimits, return_large_buffers_to_the_system

log = logging.getLogger("serve")


def build_app(cfg: DictConfig) -> FastAPI:
    """The app that ``cfg`` (``conf/serve.yaml``) describes, its collection loaded."""
    return_large_buffers_to_the_system()
    engine = SearchEngine(cfg.collection_dir, device=resolve_device(cfg.device))
    rerank_configs = {
        name: instantiate(config) if config else None for name, config in cfg.rerank_options.items()
    }
    log.info("%d images loaded from %s", len(engine), cfg.collection_dir)
    return create_app(
        engine,
        rerank_configs,
        UploadLimits(
            max_bytes=round(cfg.max_upload_mb * 2**20),
            max_pixels=round(cfg.max_upload_megapixels * 1e6),
            max_aspect_ratio=cfg.max_aspect_ratio,
        ),
        top_k=cfg.top_k,
        shortlist=cfg.shortlist,
        default_rerank=cfg.default_rerank,
        max_concurrent_searches=cfg.max_concurrent_searches,
    )


@app_main("serve")
def main(cfg: DictConfig) -> None:
    app = build_app(cfg)
    log.info("serving http://%s:%d/", cfg.host, cfg.port)
    # log_config=None keeps Hydra's logging: uvicorn's lines go to the console and the run's log file.
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_config=None)


if __name__ == "__main__":
    main()
