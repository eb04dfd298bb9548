#!/usr/bin/env bash
# Control-plane API benchmark (issue 5): port creation throughput and latency with concurrent
# clients, and allocation in a nearly full /16, on SQLite and on a throwaway PostgreSQL cluster.
# Release build. Prints one JSON line per store. Figures: docs/benchmarks.md.
#   scripts/bench-api.sh [--ports N] [--clients C] [--fill N]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-api-deps.sh >/dev/null
source tests/openstack/pg.sh
trap pg_stop EXIT
cargo build --release -p weft-bench --bin weft-bench-api
BIN=target/release/weft-bench-api
"$BIN" "$@"
pg_start
runuser -u postgres -- psql -q -h 127.0.0.1 -p "$(echo "$PG_URL" | sed -E 's#.*:([0-9]+)/.*#\1#')" -c "CREATE DATABASE weft_bench" >/dev/null
"$BIN" --db "${PG_URL%/*}/weft_bench" "$@"
