"""The entry point every Hydra app shares (train, evaluate, index, search, serve, calibrate, the studies and the
dataset analysis): ``conf/<name>.yaml``, the torch thread setting, and no run folder left behind by a run that
failed before writing anything of its own (a typo in an override, a refused setting)::

    @app_main("evaluate")
    def main(cfg: DictConfig) -> None: ...
"""

from __future__ import annotations

import functools
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from retrieval.descriptor.network import configure_threads

# The folder above the packages: a checkout, or the installed ``landmark_retrieval`` package (conf/ is in both).
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PACKAGE_ROOT / "conf"
# Runs write data and outputs under paths.root_dir = PROJECT_ROOT: the checkout when run from one, else (an
# installed distribution) the working directory.
os.environ.setdefault(
    "PROJECT_ROOT", str(PACKAGE_ROOT if (PACKAGE_ROOT / "pyproject.toml").is_file() else Path.cwd())
)
Result = TypeVar("Result")


def _app_groups(choices: DictConfig) -> str:
    """The ``--help`` lines of the groups an app composes: ``  group=option``, Hydra's own groups left out."""
    pairs = [(str(group), str(option)) for group, option in choices.items()]
    return "\n".join("  " + group + "=" + option for group, option in pairs if not group.startswith("hydra"))


if not OmegaConf.has_resolver("app_groups"):
    OmegaConf.register_new_resolver("app_groups", _app_groups)

# Third-party noise, filtered here once and on purpose: Lightning 2.5 calls a torch pytree API that torch 2.14
# deprecates, once per epoch; nothing in this project can act on it.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


def remove_if_empty(run_dir: Path) -> bool:
    """Delete ``run_dir`` if it holds nothing but Hydra's ``.hydra/`` record and log files; True if it did."""
    if not run_dir.is_dir():
        return False
    files = [path for path in run_dir.rglob("*") if path.is_file()]
    if any(".hydra" not in path.relative_to(run_dir).parts and path.suffix != ".log" for path in files):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return True


def app_main(config_name: str) -> Callable[[Callable[[DictConfig], Result]], Callable[..., Result]]:
    """``hydra.main`` over ``conf/<config_name>.yaml`` that also sets the torch threads and, when the run fails,
    removes its run folder if the run wrote nothing into it (the error is on the console)."""

    def decorate(run: Callable[[DictConfig], Result]) -> Callable[..., Result]:
        @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
        @functools.wraps(run)
        def main(cfg: DictConfig) -> Result:
            configure_threads()
            try:
                return run(cfg)
            except BaseException:
                if HydraConfig.initialized():
                    remove_if_empty(Path(HydraConfig.get().runtime.output_dir))
                raise

        return main

    return decorate
