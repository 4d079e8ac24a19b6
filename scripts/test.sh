#!/usr/bin/env bash
# The test command (README): set up if needed, then run the whole test suite on the CPU, in
# $PYTEST_WORKERS processes (default 2, CI's core count; 0 runs everything in this process).
# Most of the time goes to Python-bound work (Torch-Pruning's graph, small models), which two
# processes split; tests/conftest.py shares the cores among the workers.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
# the fused CPU kernel, the training kernel and the fused kernel as each ONNX runtime's operation, built once before
# the tests share them (two workers compiling one at once under load would spend a per-test timeout waiting on each
# other), the four at once: each is one compiler process, and this machine has more than one core
pids=()
for build in "cpu.extension()" "grouped_train.extension()" "build.runtime_library('onnxruntime')" \
    "build.runtime_library('openvino')"; do
    .venv/bin/python -c "from tissuenet.kernels import build, cpu, grouped_train; $build" & pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || exit 1; done
# --maxschedchunk 1: a worker takes the next test when it has one left, so the longest tests (collected first,
# tests/conftest.py) spread over both workers; pytest-xdist's default hands each worker a quarter of the
# collection at once, which put every long test on the first worker (its tail set CI's time)
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --maxschedchunk 1 "$@"
rc=$?
if [ $rc -eq 5 ]; then
    echo "test.sh: pytest collected no tests: that is a broken test set-up, not a pass" >&2
    exit 1
fi
exit $rc
