#!/usr/bin/env bash
# Weft's main job on one machine: `weft up` (the controller with its embedded store, and an
# agent for this node) and a tenant built with the unmodified `openstack` CLI: two networks
# joined by a router, three VMs (network namespaces) that get their addresses by DHCP from Weft
# and reach each other on a network and through the router.
#
#   ./scripts/demo.sh          (as root) build, set up, ping, show ports and counters; then, when
#                              run from a terminal, keep everything up until Ctrl-C
#   ./scripts/demo.sh --once   clean up right after the counters, even from a terminal
#
# `weft up` runs in its own namespace (weftup-<pid>-host) so that nothing touches the machine's
# own network; everything (namespaces, processes, the data directory) is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
once=0
[ "${1:-}" = "--once" ] && once=1
[ -t 0 ] || once=1
if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh creates network namespaces; run it as root" >&2
    exit 1
fi
./scripts/install-deps.sh
venv="$(./scripts/install-api-deps.sh)"
cargo build --release --quiet
weft="$PWD/target/release/weft"
p="weftup-$$"
work=$(mktemp -d)
data="$work/data"
pids=()
cleanup() {
    for f in "$work"/*.dhcp.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in $(ip netns list | awk '{print $1}' | grep "^$p-" || true); do ip netns del "$ns"; done
    rm -rf "$work"
}
trap cleanup EXIT

ns() { ip netns add "$p-$1"; ip -n "$p-$1" link set lo up; }
ns host
ip netns exec "$p-host" "$weft" up --data-dir "$data" --node demo-host --control "$work/agent.sock" \
    >"$work/up.out" 2>"$work/up.log" &
pids+=($!)
for _ in $(seq 200); do
    ip netns exec "$p-host" curl -sf http://127.0.0.1:9696/ >/dev/null 2>&1 && break
    sleep 0.1
done
cat "$work/up.out"
os() { ip netns exec "$p-host" env OS_CLIENT_CONFIG_FILE="$data/clouds.yaml" OS_CLOUD=weft "$venv/bin/openstack" "$@"; }
say() { echo "\$ openstack $*"; os "$@"; }

echo; echo "== a tenant, with the openstack CLI"
say network create net1 -f value -c id
say subnet create --network net1 --subnet-range 10.0.0.0/24 --dns-nameserver 10.0.0.53 sub1 -f value -c id
say network create net2 -f value -c id
say subnet create --network net2 --subnet-range 10.1.0.0/24 sub2 -f value -c id
say router create r1 -f value -c id
say router add subnet r1 sub1
say router add subnet r1 sub2

# A VM, the way Nova makes one: a port, the VM's NIC plugged in as the port's tap (named as
# Nova names it), then the port bound to this node; the VM asks for its address by DHCP.
vm() { # vm <name> <network>
    local id mac
    read -r id mac < <(os port create --network "$2" "$1" -f value -c id -c mac_address | paste -sd' ')
    ns "$1"
    ip -n "$p-host" link add "tap${id:0:11}" type veth peer name eth0 netns "$p-$1"
    ip -n "$p-$1" link set eth0 address "$mac" up
    os port set --host demo-host "$id"
    # The lease goes into the VM's namespace only (never the machine's resolv.conf).
    printf '#!/bin/sh\ncase "$reason" in BOUND|RENEW|REBOOT) ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"; ip link set "$interface" mtu "${new_interface_mtu:-1450}"; ip route replace default via "$new_routers";; esac\n' >"$work/$1.dhcp.sh"
    chmod +x "$work/$1.dhcp.sh"
    ip netns exec "$p-$1" dhclient -4 -1 -sf "$work/$1.dhcp.sh" -lf "$work/$1.lease" -pf "$work/$1.dhcp.pid" eth0 2>"$work/$1.dhcp.log"
    echo "$1: $(ip -n "$p-$1" -4 -br addr show dev eth0 | awk '{print $3}') (port $id)"
}
echo; echo "== three VMs, addressed by Weft's DHCP"
vm vm-a net1
vm vm-b net1
vm vm-c net2
addr() { ip -n "$p-$1" -4 -br addr show dev eth0 | awk '{print $3}' | cut -d/ -f1; }

echo; echo "== vm-a -> vm-b (net1), vm-a -> vm-c (net1 -> r1 -> net2)"
ip netns exec "$p-vm-a" ping -c 3 -i 0.2 "$(addr vm-b)"
ip netns exec "$p-vm-a" ping -c 3 -i 0.2 "$(addr vm-c)"
echo; echo "== ports as the API shows them (the agent reports them ACTIVE)"
os port list -c Name -c 'Fixed IP Addresses' -c Status
echo; echo "== counters of the agent (weft stats)"
"$weft" stats --control "$work/agent.sock"
if [ "$once" -eq 0 ]; then
    echo "try: ip netns exec $p-vm-a ping $(addr vm-c)"
    echo "Ctrl-C to stop and clean up"
    wait
fi
