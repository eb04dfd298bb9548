#!/usr/bin/env bash
# Instructions per packet of every pipeline case, counted by callgrind: repeatable whatever else
# the machine is doing (unlike times). Each case runs twice, with 200 and 1200 batches of 64;
# the difference over 64 000 packets is the per-packet cost, set-up excluded.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p weft-bench --bin weft-bench-count
bin=target/release/weft-bench-count
cases=$( ("$bin" 2>&1 || true) | sed -n "s/^  //p")
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-40s %s\n' case instructions/packet
for c in $cases; do
    a=$(count "$c" 200)
    b=$(count "$c" 1200)
    awk -v a="$a" -v b="$b" -v c="$c" 'BEGIN { printf "%-40s %.1f\n", c, (b - a) / 64000 }'
done
