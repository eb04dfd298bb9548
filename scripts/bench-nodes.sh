#!/usr/bin/env bash
# Control plane to agents (issue 6): time from a Neutron API call to the configuration being
# applied on every affected node, with 2 and 100 simulated agents (agent processes with
# in-memory dataplanes), also with 10 000 ports already in the store; and the controller's
# memory per 10 000 ports. SQLite in a temporary directory. Release build. Prints one JSON line
# per run (summaries on stderr). Figures: docs/benchmarks.md.
#   scripts/bench-nodes.sh [RUNS]    (default 1; the figures in docs are medians of 3)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-1}"
cargo build --release -p weft-bench --bin weft-bench-nodes
BIN=target/release/weft-bench-nodes
for _ in $(seq "$runs"); do
    "$BIN" latency --agents 2
    "$BIN" latency --agents 100
    "$BIN" latency --agents 100 --preload 10000
    "$BIN" memory --nodes 100 --ports 10000
done
