#!/usr/bin/env bash
# Two builds of the fused CPU kernel (tissuenet/kernels/stacked_core.h at two commits), timed alternately on the
# layers of the ResNet-56 deploy target in one process: a paired A/B that a busy machine's drift affects alike.
#   bash scripts/kernel_ab.sh OLD [NEW]     (NEW: the working tree; OMP_NUM_THREADS: threads, default 2)
# Prints, per layer, both builds' median milliseconds and the median of the per-pair ratios OLD / NEW (above 1:
# NEW is faster); fails when the two builds' outputs differ.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: bash scripts/kernel_ab.sh OLD [NEW]}
new=${2:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git show "$old:tissuenet/kernels/stacked_core.h" > "$work/core_a.h"
if [ -n "$new" ]; then git show "$new:tissuenet/kernels/stacked_core.h" > "$work/core_b.h"
else cp tissuenet/kernels/stacked_core.h "$work/core_b.h"; fi
isa=$(.venv/bin/python -c "from tissuenet.kernels.build import FLAGS, cpu_isa; print(' '.join(FLAGS[cpu_isa()]))")
for k in a b; do
    ${CXX:-g++} -O3 -std=c++17 -fopenmp -fPIC -shared $isa -DSTACKED_CORE="\"$work/core_$k.h\"" \
        -DKERNEL=kernel_$k scripts/kernel_ab/one_build.cpp -o "$work/libkernel_$k.so"
done
${CXX:-g++} -O3 -std=c++17 scripts/kernel_ab/pairs.cpp -o "$work/pairs" -L"$work" -lkernel_a -lkernel_b \
    -Wl,-rpath,"$work"
echo "A = $old, B = ${new:-the working tree}; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), flags: $isa"
echo
echo "| batch | channels | size | units | stride | A ms | B ms | A / B (median of pairs) | largest difference |"
echo "|---:|---:|---:|---|---:|---:|---:|---:|---:|"
for batch in 64 1; do
    for layer in "16 28 4 2 1" "32 14 4 2 1" "64 7 4 2 1" "16 28 4 4 2" "32 14 4 4 2"; do
        "$work/pairs" "$batch" $layer "${PAIRS:-300}"
    done
done
