"""The re-ranking presets of ``conf/rerank/`` by name, for code outside the Hydra apps (notebooks, tests)::

from retrieval import SearchEngine
from serving.presets import rerank_preset

engine = SearchEngine.open("outputs/collections/demo")
hits = engine.search("photo.jpg", rerank_config=rerank_preset("global_plus_inliers_fast"))
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from retrieval.reranking import RerankMethod

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def rerank_presets() -> list[str]:
    """The names of the presets (the files of ``conf/rerank/``)."""
    return sorted(path.stem for path in (CONF_DIR / "rerank").glob("*.yaml"))


def rerank_preset(name: str, *overrides: str) -> RerankMethod | None:
    """The re-ranking ``conf/rerank/<name>.yaml`` describes, composed as ``search.py rerank=<name>`` composes it
    (``overrides`` as on its command line, e.g. ``"rerank.inlier_weight=0.02"``); None for ``none``.

    Raises:
        ValueError: no preset of that name.
    """
    if name not in rerank_presets():
        raise ValueError(f"unknown rerank preset {name!r}; choose one of {rerank_presets()}")
    if GlobalHydra.instance().is_initialized():
        cfg = compose("search", overrides=["query=unused", f"rerank={name}", *overrides])
    else:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("search", overrides=["query=unused", f"rerank={name}", *overrides])
    return instantiate(cfg.rerank) if cfg.get("rerank") else None
