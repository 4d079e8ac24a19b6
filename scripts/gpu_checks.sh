#!/usr/bin/env bash
# Every GPU check in one run, for a lent H100/H200 (a few minutes; prints Markdown tables).
# Run from the repo root on the device machine, with the carried folder `carry/` holding the
# torch-pruning wheel (pip download --no-deps -d carry torch-pruning==1.6.1) and the four
# Fashion-MNIST idx files (cp /usr/share/datasets/fashion-mnist/* carry/fashion-mnist/).
# Ray is not on that machine and its wheel does not fit the carry limit: the Ray GPU measurement
# (fashion-resnet56 with --gpus-per-job 0.25) needs a machine with pip access; see README.
# Written without a GPU at hand: the CUDA paths are covered by CPU tests (Triton via its interpreter).
set -uo pipefail
export PYTHONPATH=$PWD
export TISSUEBENCH_DATA=${TISSUEBENCH_DATA:-$PWD/carry/fashion-mnist}
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
TB="python -m tissuebench"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python -m pip install -q --no-deps carry/torch_pruning-*.whl 2>/dev/null || echo "(no torch-pruning wheel carried)"
python -m pip install -q tqdm pyarrow ninja 2>/dev/null || true

echo "== 1. stacked layer and network latency on CUDA (grouped vs Triton vs dense; deployment form)"
timeout 180 python -m benchmarks.measure.stacked_speed --device cuda --min-run-time 0.5 | tee "$OUT/stacked_latency.md"

echo "== 2. the latency command, CUDA, deployment form, batch 1 / 64 / 256"
timeout 60 $TB latency tissue_resnet56 --set replace=all --dataset fashion-mnist --device cuda --deploy \
    --batch 1,64,256 --min-run-time 0.5 | tee "$OUT/latency.md"

echo "== 3. training throughput: harness vs DataLoader vs CUDA graphs"
timeout 120 $TB perf --model resnet56 --batch-size 256 --steps 50 --warmup 10 --workers 12 --device cuda \
    | tee "$OUT/perf.md"

echo "== 4. fashion-resnet56 dense + TissueNet jobs on one GPU (sequential), then the report"
timeout 240 $TB run fashion-resnet56 --device cuda --results "$OUT/fashion-resnet56" --only '*dense*'
timeout 240 $TB run fashion-resnet56 --device cuda --results "$OUT/fashion-resnet56" --only '*tissuenet*'
$TB report --results "$OUT/fashion-resnet56" --out "$OUT/report" || true
$TB show --results "$OUT/fashion-resnet56" --format markdown | tee "$OUT/fashion-resnet56.md"

echo "== 5. one job on two GPUs (data parallel, NCCL), only where the machine has two and Ray is installed"
if [ "$(nvidia-smi -L | wc -l)" -ge 2 ] && python -c "import ray.train" 2>/dev/null; then
    timeout 300 $TB run smoke --device cuda --workers-per-job 2 --results "$OUT/smoke-2gpu" --only '*dense*'
    $TB show --results "$OUT/smoke-2gpu" --format markdown | tee "$OUT/smoke-2gpu.md"
else
    echo "(skipped: one GPU here, or no Ray)"
fi
