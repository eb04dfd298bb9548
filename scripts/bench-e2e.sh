#!/usr/bin/env bash
# The end-to-end comparison of Weft with the kernel's vxlan + bridge (see bench/src/bin/e2e.rs).
# Needs root. Arguments go to weft-e2e (e.g. --rounds 5 --seconds 10).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release --quiet --bin weft && cargo build --release --quiet -p weft-bench --bin weft-e2e
exec target/release/weft-e2e "$@"
