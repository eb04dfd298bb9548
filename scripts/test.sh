#!/usr/bin/env bash
# Runs every Weft test: unit and integration tests of all crates (the end-to-end tests build
# network namespaces, so this must run as root), the benches once in test mode, and each fuzz
# target briefly. Installs missing system packages first.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: the end-to-end tests create network namespaces; run it as root" >&2

    exit 1
fi
./scripts/install-deps.sh
# The openstack CLI (a virtualenv; also PostgreSQL for test-api.sh): tests/cloud.rs drives the
# controller with it.
WEFT_OPENSTACK="$(./scripts/install-api-deps.sh)/bin/openstack"
export WEFT_OPENSTACK

cargo build --workspace --all-targets
# The end-to-end tests share two CPU cores with the agents they start: run test binaries with
# at most 2 tests at a time.
cargo test --workspace --lib --bins --tests -- --test-threads 2
# Control-plane API: the crate's tests on PostgreSQL too, the openstack CLI scenario and
# openstacksdk's functional network tests against `weft controller` (scripts/test-api.sh).
./scripts/test-api.sh
# Benches in criterion's test mode: every case once, checking it runs and forwards as expected.
cargo test -p weft-bench --benches
# Control plane to agents (issue 6), a few seconds: 2 agent processes get 50 ports, and the
# memory phase with 1000 ports; fails if a port never reaches a node it affects.
target/debug/weft-bench-nodes latency --quick >/dev/null
target/debug/weft-bench-nodes memory --quick >/dev/null


./scripts/fuzz-smoke.sh "${FUZZ_SECONDS:-15}"
echo "all tests passed"
