"""precision="auto": bfloat16 matching only where this machine multiplies bfloat16 faster than float32."""

import pytest

from retrieval.local import matmul_precision
from retrieval.local.matching import MatchingConfig
from retrieval.local.matmul_precision import bfloat16_speedup, resolve_precision


def test_explicit_precisions_pass_through_and_gpus_take_bfloat16():
    assert resolve_precision("float32", "cpu") == "float32"
    assert resolve_precision("bfloat16", "cpu") == "bfloat16"
    assert bfloat16_speedup("cuda") > 1 and resolve_precision("auto", "cuda:0") == "bfloat16"


def test_the_cpu_is_measured_once():
    first = bfloat16_speedup("cpu")
    assert first > 0 and bfloat16_speedup("cpu") == first  # cached: the probe ran once


@pytest.mark.parametrize(("speedup", "chosen"), [(0.02, "float32"), (1.1, "float32"), (2.5, "bfloat16")])
def test_auto_becomes_the_precision_it_chose(monkeypatch, speedup, chosen):
    monkeypatch.setattr(matmul_precision, "bfloat16_speedup", lambda device_type: speedup)
    config = MatchingConfig(precision="auto")
    assert config.precision == chosen
    assert config == MatchingConfig(precision=chosen)  # the same work key as asking for it
    assert ("bfloat16" in config.notes()) == (chosen == "bfloat16")


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        MatchingConfig(precision="float16")  # type: ignore[arg-type]
