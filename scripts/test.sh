#!/usr/bin/env bash
# The test command (README): set up if needed, then run the whole test suite on the CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
.venv/bin/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
    echo "test.sh: pytest collected no tests: that is a broken test set-up, not a pass" >&2
    exit 1
fi
exit $rc
