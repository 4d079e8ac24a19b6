#!/usr/bin/env bash
# The README's main command: set up, run the `smoke` suite on real Fashion-MNIST (CPU, minutes),
# then write the report. Results: runs/smoke/ (records, table.parquet/csv), report: runs/smoke/report/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
.venv/bin/tissuebench run smoke --results runs/smoke "$@"
.venv/bin/tissuebench report --results runs/smoke --out runs/smoke/report
