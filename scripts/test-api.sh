#!/usr/bin/env bash
# Control-plane API tests (issue 5):
#   1. the crate's Rust tests (unit, API over HTTP, logging) on SQLite and on a throwaway
#      PostgreSQL cluster;
#   2. on each store, a `weft controller --auth noauth` on 127.0.0.1 and a free port, driven by
#      the real `openstack` CLI (tests/openstack/cli-scenario.sh) and by openstacksdk's own
#      functional network tests (shipped in its wheel).
# Needs root (PostgreSQL runs as the postgres user). Cleans up every process and directory it
# made, by PID and path, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

VENV="$(./scripts/install-api-deps.sh)"
source tests/openstack/pg.sh
WORK="$(mktemp -d /tmp/weft-api-test.XXXXXX)"
CTL_PID=""
cleanup() {
    if [ -n "$CTL_PID" ]; then kill "$CTL_PID" 2>/dev/null || true; wait "$CTL_PID" 2>/dev/null || true; fi
    pg_stop
    rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --bin weft
pg_start
echo "== Rust tests of weft-controlplane (SQLite and PostgreSQL)"
WEFT_TEST_POSTGRES_URL="$PG_URL" cargo test -p weft-controlplane -- --test-threads 2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

start_controller() { # start_controller DB_URL LOG
    local port; port="$(free_port)"
    "$ROOT/target/debug/weft" controller --auth noauth --listen "127.0.0.1:$port" --db "$1" >"$2" 2>&1 &
    CTL_PID=$!
    ENDPOINT="http://127.0.0.1:$port"
    for _ in $(seq 1 100); do
        curl -fsS "$ENDPOINT/" >/dev/null 2>&1 && return 0
        kill -0 "$CTL_PID" 2>/dev/null || { cat "$2" >&2; return 1; }
        sleep 0.1
    done
    echo "controller did not answer on $ENDPOINT" >&2
    return 1
}

stop_controller() {
    kill -TERM "$CTL_PID"
    local rc=0
    wait "$CTL_PID" || rc=$?
    CTL_PID=""
    [ "$rc" -eq 0 ] || { echo "controller exited with status $rc after SIGTERM" >&2; return 1; }
}

SDK_DIR="$("$VENV/bin/python" -c 'import openstack,os;print(os.path.dirname(openstack.__file__))')/tests/functional/network/v2"
SDK_TESTS=()
for t in network subnet port router router_add_remove_interface floating_ip security_group security_group_rule extension; do
    SDK_TESTS+=("$SDK_DIR/test_$t.py")
done

runuser -u postgres -- psql -q -h 127.0.0.1 -p "$(echo "$PG_URL" | sed -E 's#.*:([0-9]+)/.*#\1#')" -c "CREATE DATABASE weft_api_test" >/dev/null
for backend in sqlite postgres; do
    if [ "$backend" = sqlite ]; then db="sqlite://$WORK/controller.db"; else db="${PG_URL%/*}/weft_api_test"; fi
    echo "== openstack CLI scenario and openstacksdk functional tests on $backend"
    start_controller "$db" "$WORK/controller-$backend.log"
    sed "s#@ENDPOINT@#$ENDPOINT#" tests/openstack/clouds.yaml.in >"$WORK/clouds.yaml"
    export OS_CLIENT_CONFIG_FILE="$WORK/clouds.yaml"
    OSC="$VENV/bin/openstack" tests/openstack/cli-scenario.sh
    # The floating IP tests look for an existing external network with a subnet (devstack's
    # "public"): make one.
    "$VENV/bin/openstack" --os-cloud weft network create --external --provider-network-type flat \
        --provider-physical-network public public >/dev/null
    "$VENV/bin/openstack" --os-cloud weft subnet create --network public --subnet-range 172.24.4.0/24 public-subnet >/dev/null
    (cd "$WORK" && "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${SDK_TESTS[@]}")
    stop_controller
    sed 's/\x1b\[[0-9;]*m//g' "$WORK/controller-$backend.log" >"$WORK/plain.log"
    grep -q "request_id=req-" "$WORK/plain.log" || { echo "no request ids in the controller's log" >&2; exit 1; }
done
echo "api tests passed"
