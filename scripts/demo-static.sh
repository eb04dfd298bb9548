#!/usr/bin/env bash
# Weft with hand-written node configurations (no controller; see demo.sh for `weft up`): two
# "hypervisors" in network namespaces joined by an underlay link, a `weft agent` on each, and two
# tenants whose VMs (namespaces) use the same addresses and talk over isolated VXLAN networks.
#
#   ./scripts/demo-static.sh   (as root) build, set up, ping, show counters; then, when run from a
#                              terminal, keep everything up until Ctrl-C
#   ./scripts/demo-static.sh --once  clean up right after the counters, even from a terminal
#
# Everything it creates (namespaces named weftdemo-<pid>-*, and the agents) is removed on exit.
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
cargo build --release --quiet
weft="$PWD/target/release/weft"
p="weftdemo-$$"
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in $(ip netns list | awk '{print $1}' | grep "^$p-" || true); do ip netns del "$ns"; done
    rm -rf "$work"
}
trap cleanup EXIT

ns() { ip netns add "$p-$1"; ip -n "$p-$1" link set lo up; }
ns hv1; ns hv2
ip -n "$p-hv1" link add ul type veth peer name ul netns "$p-hv2"
ip -n "$p-hv1" addr add 192.168.100.1/24 dev ul; ip -n "$p-hv1" link set ul up
ip -n "$p-hv2" addr add 192.168.100.2/24 dev ul; ip -n "$p-hv2" link set ul up
vm() { # vm <hv> <name> <tap> <mac> <ipv4> <ipv6>
    ns "$2"
    ip -n "$p-$1" link add "$3" type veth peer name eth0 netns "$p-$2"
    ip netns exec "$p-$1" sysctl -q -w "net.ipv6.conf.$3.disable_ipv6=1"
    ip -n "$p-$1" link set "$3" up
    # 1450: the segments' MTU (1500 minus 50 bytes of VXLAN), as DHCP would tell a real VM.
    ip -n "$p-$2" link set eth0 address "$4" mtu 1450
    ip -n "$p-$2" addr add "$5" dev eth0
    ip -n "$p-$2" -6 addr add "$6" dev eth0 nodad
    ip -n "$p-$2" link set eth0 up
}
vm hv1 a1 tapa1 fa:16:3e:00:00:01 10.0.0.1/24 fd00:a::1/64
vm hv1 b1 tapb1 fa:16:3e:00:00:01 10.0.0.1/24 fd00:b::1/64
vm hv2 a2 tapa2 fa:16:3e:00:00:02 10.0.0.2/24 fd00:a::2/64
vm hv2 b2 tapb2 fa:16:3e:00:00:02 10.0.0.2/24 fd00:b::2/64

# The documented example configurations: examples/hv1.toml and its mirror examples/hv2.toml.
for h in hv1 hv2; do
    "$weft" check-config "examples/$h.toml"
    ip netns exec "$p-$h" "$weft" agent --config "examples/$h.toml" --control "$work/$h.sock" 2>"$work/$h.log" &
    pids+=($!)
done
for h in hv1 hv2; do
    for _ in $(seq 100); do "$weft" stats --control "$work/$h.sock" >/dev/null 2>&1 && break; sleep 0.1; done
done

echo; echo "== tenant A (VNI 100): vm-a1 -> vm-a2, IPv4 and IPv6"
ip netns exec "$p-a1" ping -c 3 -i 0.2 10.0.0.2
ip netns exec "$p-a1" ping -c 3 -i 0.2 fd00:a::2
echo; echo "== tenant B (VNI 200), the same addresses: vm-b1 -> vm-b2"
ip netns exec "$p-b1" ping -c 3 -i 0.2 10.0.0.2
echo; echo "== a VM spoofing another address is dropped (counted as spoofed_arp or spoofed_ip)"
ip -n "$p-a1" addr add 10.0.0.99/24 dev eth0
ip netns exec "$p-a1" ping -c 2 -W 1 -I 10.0.0.99 10.0.0.2 || true
echo; echo "== counters of hv1 (weft stats)"
"$weft" stats --control "$work/hv1.sock"
if [ "$once" -eq 0 ]; then
    echo "namespaces $p-{hv1,hv2,a1,a2,b1,b2} are up; try: ip netns exec $p-a1 ping 10.0.0.2"
    echo "Ctrl-C to stop and clean up"
    wait
fi
