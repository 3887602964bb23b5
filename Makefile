# Two commands do all set-up on a fresh machine:  `make train`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   := data/demo
COLLECTION := outputs/collections/demo
LAST_CKPT = $(lastword $(sort $(wildcard outputs/train/runs/*/checkpoints/last.ckpt)))
# One torch thread is faster than two on a 2-core CPU; override with `make train TORCH_THREADS=8`.
TORCH_THREADS ?= 1
export OMP_NUM_THREADS ?= $(TORCH_THREADS)
export WANDB_MODE ?= offline

.PHONY: setup demo train test reliability lint serve index analyze clean gpu-wheels

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(DEMO)/.complete

$(DEMO)/.complete: $(STAMP) $(wildcard datamodules/demo/*.py datamodules/demo/styles/*.py)
	$(PY) -m datamodules.demo --root $(DEMO) --force

train: demo
	$(PY) train.py $(ARGS)

index: demo
	$(PY) index.py $(ARGS)

analyze: demo
	$(PY) experiments/analyze_dataset.py $(ARGS)

serve: demo $(COLLECTION)/CURRENT
	$(PY) serve.py $(ARGS)

# The collection `make serve` serves: the demo index, described by the newest `make train` checkpoint when
# there is one (the pretrained network otherwise); rebuilt when the demo data or a newer checkpoint appear.
$(COLLECTION)/CURRENT: $(DEMO)/.complete $(LAST_CKPT)
	$(PY) index.py $(if $(LAST_CKPT),ckpt_path=$(LAST_CKPT))

test: demo
	$(PY) -m pytest $(ARGS)

# The slow part of the hostile-input tests: kill -9 of index.py mid-build, a request burst on a real server.
reliability: demo
	$(PY) -m pytest -m reliability tests/test_reliability.py $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(DEMO) outputs/*/ multirun wandb

# Wheels the GPU machine lacks (it runs Python 3.12 with PyTorch, Lightning and timm), for benchmarks/gpu_checks.sh.
gpu-wheels: setup
	mkdir -p .whl
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
	    faiss-cpu==$$($(PY) -c 'import importlib.metadata as m; print(m.version("faiss-cpu"))') \
	    hydra-core==$$($(PY) -c 'import importlib.metadata as m; print(m.version("hydra-core"))') \
	    omegaconf==$$($(PY) -c 'import importlib.metadata as m; print(m.version("omegaconf"))')
	$(PY) -m pip wheel -q --no-deps -w .whl \
	    antlr4-python3-runtime==$$($(PY) -c 'import importlib.metadata as m; print(m.version("antlr4-python3-runtime"))')
