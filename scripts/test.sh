#!/usr/bin/env bash
# The test command (README): set up if needed, then run the whole test suite on the CPU, in
# $PYTEST_WORKERS processes (default 2, CI's core count; 0 runs everything in this process).
# Most of the time goes to Python-bound work (Torch-Pruning's graph, small models), which two
# processes split; tests/conftest.py shares the cores among the workers.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
# the fused CPU kernel and the training kernel, built once before the tests share them (two workers compiling one
# at once under load would spend a per-test timeout waiting on each other)
.venv/bin/python -c "from tissuenet.kernels import cpu, grouped_train; cpu.extension(); grouped_train.extension()" || exit 1
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
