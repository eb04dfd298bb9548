#!/usr/bin/env bash
# Installs what Weft's tests and benches need on a Debian machine. Idempotent: installs only what
# is missing. Needs root (or sudo) when something is missing.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need+=(iproute2)
have bridge || need+=(iproute2)
have ping || need+=(iputils-ping)
have iperf3 || need+=(iperf3)
have tcpdump || need+=(tcpdump)
have ss || need+=(iproute2)
have sysctl || need+=(procps)
have timeout || need+=(coreutils)
have ethtool || need+=(ethtool)
have dhclient || need+=(isc-dhcp-client)
have rdisc6 || need+=(ndisc6)
have traceroute || need+=(traceroute)
have tracepath || need+=(iputils-tracepath)
have stun || need+=(stun-client)
have stund || need+=(stun-server)
have python3 || need+=(python3)

if ((${#need[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

