#!/usr/bin/env bash
# The figures of the foundation issue, as recorded in docs/benchmarks.md:
# ML-100K general split accuracy and fit+eval time for each model (median of
# 5 runs, 2 threads), and reading + indexing 5M synthetic interactions.
# Run on a quiet machine:  make bench && bash bench/foundation.sh
set -eu
B=${BUILD:-build}
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for m in "pop" "itemknn" "itemknn similarity=cosine k=100" "userknn" "ease" "ease reg=250"; do
    echo "== $m"
    # shellcheck disable=SC2086
    "$B"/bench_ml100k --threads 2 --repeat 5 $m | sed 's/^/   /'
done
echo "== read + index 5,000,000 synthetic interactions (100,000 users x 200,000 items)"
"$B"/bench_read --repeat 3 | sed 's/^/   /'
