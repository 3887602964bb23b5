#!/usr/bin/env bash
# The GPU checks of a session that is lent a GPU machine, in one command of under 10 minutes: the GPU throughput
# of extraction and training (each decode path against the network alone or a plain loop, the figures the
# README quotes) and the GPU tests (`pytest -m gpu`: nvJPEG against the CPU path, a train.py run on the GPU).
#
# Prepare here (the GPU machine has PyTorch, Lightning, timm and OpenCV, but no network):
#     make demo gpu-wheels          # data/demo and .whl/ (hydra-core, omegaconf, antlr4, faiss-cpu for Python 3.12)
# then run it there through the device tool, carrying both:
#     run(command="bash benchmarks/gpu_checks.sh", carry=["data/demo", ".whl"], timeout_s=600)
# Figures and logs come back under $OUT (extraction_cuda.{json,md}, training_cuda.{json,md}, one log per step): copy
# the results into benchmarks/results/, commit them and update the README's figures. GPU_CHECKS_DRY_RUN=1 runs the
# same steps on the CPU at toy sizes, a check of the script (results under $OUT, default /tmp/gpu_checks).
set -uo pipefail
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 WANDB_MODE=offline BENCHMARK_RESULTS=$OUT
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site:.
else
    export PYTHONPATH=.
fi
PYTHON=${PYTHON:-python3}
if [ "${GPU_CHECKS_DRY_RUN:-0}" = 1 ]; then
    device=cpu
    extraction=(--images 16 --batch-size 8 --workers 1)
    training=(--tuples 4 --pool 40 --copies 1 --workers 1)
    tests=(--co)
else
    device=cuda
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
    extraction=(--backbone resnet50 --images 1000 --workers 14)
    training=(--backbone resnet50 --image-size 362 --copies 30 --tuples 500 --pool 3000 --batch-size 8 --workers 14)
    tests=()
fi
status=0
step() {  # step NAME SECONDS COMMAND...: run it with a time limit, its output under $OUT/NAME.log
    local name=$1 seconds=$2
    shift 2
    echo "== $name (at most ${seconds} s)"
    timeout "$seconds" "$@" 2>&1 | tee "$OUT/$name.log" | tail -25
    local code=${PIPESTATUS[0]}
    echo "== $name: exit $code"
    [ "$code" = 0 ] || status=1
}
step extraction 200 "$PYTHON" benchmarks/extraction.py --device "$device" "${extraction[@]}"
step tests 150 "$PYTHON" -m pytest -m gpu -p no:cacheprovider -q "${tests[@]}" tests
step training 200 "$PYTHON" benchmarks/training.py --device "$device" "${training[@]}"
exit $status
