"""Every option of every config group composes in an app that takes the group, resolves, and fits its
constructor: every ``_target_`` block binds to its callable's signature (no missing or unknown argument), and
the options that need no data, GPU or network are instantiated into the objects the apps use."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from retrieval.descriptor.extract import ExtractionSettings
from retrieval.local.matching import Matching
from retrieval.local.verification import VerificationConfig
from retrieval.reranking import RerankMethod
from tests.conftest import REPO_ROOT

CONF = REPO_ROOT / "conf"
APPS = ("train", "evaluate", "index", "search", "serve", "rq3", "rq4", "thesis", "analyze")
# Groups that configure Hydra itself or overlay the whole config, not one constructor.
NOT_CONSTRUCTORS = {"hydra", "hparams_search", "experiment", "paths"}
# Keys of a _target_ block that Hydra reads rather than the constructor.
HYDRA_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def groups() -> list[str]:
    return sorted(path.name for path in CONF.iterdir() if path.is_dir())


def defaults_of(app: str) -> set[str]:
    """The groups an app's primary config names in its defaults list (``group`` or ``group@package``)."""
    entries = OmegaConf.load(CONF / f"{app}.yaml").get("defaults", [])
    names = set()
    for entry in entries:
        if isinstance(entry, DictConfig | dict):
            key = next(iter(entry))
            names.add(str(key).removeprefix("override ").split("@")[0].lstrip("/"))
    return names


# Groups that apps take only inside another group's option: the app and the package they are composed at.
NESTED = {
    "split": ("train", "data.split"),
    "augmentation": ("train", "data.augmentation"),
    "codec": ("index", "local_features.compact"),
}


def placement(group: str) -> tuple[str, str]:
    """The app that takes the group (the first in APPS whose defaults list names it), and its package."""
    if group in NESTED:
        return NESTED[group]
    for app in APPS:
        if group in defaults_of(app):
            return app, group
    raise AssertionError(f"no app takes the group {group!r}")


def selecting(group: str, option: str) -> tuple[str, str, str]:
    """The app, the override that selects ``option`` and the package of the group's node."""
    app, package = placement(group)
    override = f"{group}={option}" if package == group else f"{group}@{package}={option}"
    return app, override, package


CASES = [(group, option) for group in groups() if group not in NOT_CONSTRUCTORS for option in options(group)]


@pytest.fixture(scope="module")
def hydra_conf() -> Iterator[None]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield


def composed(app: str, *overrides: str) -> DictConfig:
    required = {"search": ["query=unused.jpg"]}.get(app, [])
    cfg = compose(app, overrides=[*required, *overrides], return_hydra_config=True)
    with open_dict(cfg):  # ${hydra:runtime.output_dir} needs a run; give the paths a folder instead
        cfg.paths.output_dir = "outputs/test_configs"
        del cfg["hydra"]
    return cfg


def target_blocks(node: Any, where: str = "") -> Iterator[tuple[str, DictConfig]]:
    """Every ``_target_`` block below ``node`` (itself included), with its key path."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield where, node
        for key, value in node.items_ex(resolve=False):
            yield from target_blocks(value, f"{where}.{key}" if where else str(key))
    elif OmegaConf.is_list(node):
        for index, value in enumerate(node):
            yield from target_blocks(value, f"{where}[{index}]")


def resolve_target(path: str) -> Callable[..., Any]:
    module, _, name = path.rpartition(".")
    target = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


def check_binds(where: str, block: DictConfig) -> None:
    """The block's keys are arguments of its target; with ``_partial_``, the missing ones are the caller's."""
    target = resolve_target(block._target_)
    arguments = {key: None for key in block if key not in HYDRA_KEYS}
    signature = inspect.signature(target)
    try:
        if block.get("_partial_", False):
            signature.bind_partial(**arguments)
        else:
            signature.bind(**arguments)
    except TypeError as error:
        raise AssertionError(f"{where} ({block._target_}): {error}") from error


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{group}={option}" for group, option in CASES])
def test_every_option_composes_resolves_and_fits_its_constructor(hydra_conf, group, option):
    app, override, package = selecting(group, option)
    cfg = composed(app, override)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    node = OmegaConf.select(cfg, package)
    blocks = list(target_blocks(node)) if node else []
    if option != "none":
        assert blocks or group == "logger", f"{group}={option} holds no _target_ block"
    for where, block in blocks:
        check_binds(f"{group}.{where}" if where else group, block)


# Nodes an app composes but reads only in part: the analysis takes the training `data` configs for their root
# alone (their mining and seed interpolate keys of train.yaml).
READ_IN_PART = {"analyze": {"data": ("root",)}}


@pytest.mark.parametrize("app", APPS)
def test_every_app_composes_with_its_defaults(hydra_conf, app):
    cfg = composed(app)
    partial = READ_IN_PART.get(app, {})
    for key in cfg:
        if key in partial:
            for name in partial[key]:
                OmegaConf.select(cfg, f"{key}.{name}", throw_on_resolution_failure=True)
        elif OmegaConf.is_config(cfg[key]):
            OmegaConf.to_container(cfg[key], resolve=True, throw_on_missing=False)
    for where, block in target_blocks(cfg):
        if where.split(".")[0] not in partial:
            check_binds(where, block)


def leaf(group: str, option: str) -> Any:
    app, override, package = selecting(group, option)
    return instantiate(OmegaConf.select(composed(app, override), package))


@pytest.mark.parametrize("option", options("rerank"))
def test_rerank_options_build_methods(hydra_conf, option):
    method = leaf("rerank", option)
    if option == "none":  # `{}`: the apps take an empty config as global search only
        assert not method
    else:
        assert isinstance(method, RerankMethod) and method.describe()


@pytest.mark.parametrize(
    ("group", "kind"),
    [
        ("matching", Matching),
        ("verification", VerificationConfig),
        ("extraction", ExtractionSettings),
    ],
)
def test_settings_groups_build_their_dataclasses(hydra_conf, group, kind):
    for option in options(group):
        assert isinstance(leaf(group, option), kind), option


@pytest.mark.parametrize(
    "group",
    ["local_features", "post", "vocabulary", "loss", "mining", "optimizer", "scheduler", "global_index"],
)
def test_constructor_groups_instantiate(hydra_conf, group):
    for option in options(group):
        assert leaf(group, option) is not None, option


@pytest.mark.parametrize("option", options("net"))
def test_nets_build_offline_with_random_weights_where_they_need_the_hub(hydra_conf, option):
    cfg = composed("evaluate", f"net={option}")
    overrides = {"pretrained": False} if cfg.net.pretrained is True else {}
    net = instantiate(cfg.net, **overrides)
    assert net.output_dim > 0


def test_the_training_app_builds_model_data_callbacks_and_a_cpu_trainer(hydra_conf, tmp_path):
    cfg = composed(
        "train", "model.net.pretrained=false", "trainer=cpu", "logger=csv", f"paths.root_dir={tmp_path}"
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    model = instantiate(cfg.model)
    datamodule = instantiate(cfg.data)
    callbacks = [instantiate(callback) for callback in cfg.callbacks.values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=False)
    assert model.net is not None and datamodule is not None and trainer.max_epochs == cfg.trainer.max_epochs
    evaluation = next(c for c in callbacks if type(c).__name__ == "RetrievalEvaluation")
    assert isinstance(evaluation.settings, ExtractionSettings)


def test_every_group_is_taken_by_some_app():
    for group in groups():
        if group not in NOT_CONSTRUCTORS:
            placement(group)


def test_app_configs_exist_for_every_entry_point():
    for script in ("train", "evaluate", "index", "search", "serve"):
        assert (REPO_ROOT / f"{script}.py").is_file() and (CONF / f"{script}.yaml").is_file()
    assert all(Path(CONF / f"{app}.yaml").is_file() for app in APPS)
