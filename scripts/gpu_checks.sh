#!/usr/bin/env bash
# Every GPU check of the issues in one run, for a lent H100/H200 (a few minutes; prints tables).
# Run from the repo root on the device machine. torch-pruning is not installed there: carry its
# wheel (pip download --no-deps -d wheels torch-pruning==1.6.1) and this script installs it.
# NOTE: written without a GPU at hand; the CUDA paths are covered by CPU tests only.
set -euo pipefail
export PYTHONPATH=$PWD
TB="python -m benchmarks.cli"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python -m pip install -q --no-deps wheels/torch_pruning-*.whl 2>/dev/null || echo "(no torch-pruning wheel carried)"
python -m pip install -q tqdm pyarrow 2>/dev/null || true
mkdir -p "${OUT:-runs}/gpu"

echo "== stacked layer latency (grouped / per-unit / dense), CUDA"
python -m benchmarks.stacked_latency --device cuda --min-run-time 0.5 | tee "${OUT:-runs}/gpu/stacked_latency.md"

echo "== perf: ResNet-56, batch 256, harness vs DataLoader vs CUDA graphs (+ accuracy after 2 epochs)"
$TB perf --model resnet56 --batch-size 256 --steps 100 --warmup 20 --workers 12 --device cuda \
    --accuracy-epochs 2 | tee "${OUT:-runs}/gpu/perf.md"

echo "== fashion-resnet56: dense + TissueNet jobs (the full suite takes longer than one device session)"
$TB run fashion-resnet56 --device cuda --results "${OUT:-runs}/gpu/fashion-resnet56" --only '*tissuenet*' || true
$TB run fashion-resnet56 --device cuda --results "${OUT:-runs}/gpu/fashion-resnet56" --only '*dense*' || true
$TB report --results "${OUT:-runs}/gpu/fashion-resnet56"
