#!/usr/bin/env bash
# Instructions per packet of every pipeline case, counted by callgrind: repeatable whatever else
# the machine is doing (unlike times). Counting is switched on only inside
# `Pipeline::process`, so neither the set-up (table builds, whose hash maps are randomly
# seeded) nor the bench's own restoring of the batch between iterations is counted: the figure
# is the pipeline's work alone, over 1000 batches of 64 (plus the case's check, one pass over
# its batches).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p weft-bench --bin weft-bench-count
bin=target/release/weft-bench-count
cases=$( ("$bin" 2>&1 || true) | sed -n "s/^  //p")
batches=1000
printf '%-40s %s\n' case instructions/packet
for c in $cases; do
    out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        --toggle-collect='weft_dataplane::pipeline::Pipeline::process' "$bin" "$c" "$batches" 2>&1)
    n=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' <<<"$out")
    b=$(sed -n 's/^batches processed: \([0-9]*\)$/\1/p' <<<"$out")
    awk -v n="$n" -v b="$b" -v c="$c" 'BEGIN { printf "%-40s %.1f\n", c, n / (b * 64) }'
done
