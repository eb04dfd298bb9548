#!/usr/bin/env bash
# The unmodified `openstack` CLI against a running Weft controller (--auth noauth): creates,
# lists, shows, updates and deletes every resource Weft implements. Needs OS_CLIENT_CONFIG_FILE
# (tests/openstack/clouds.yaml.in filled in) and OSC, the openstack executable. Prints one line
# per step; exits non-zero at the first failure.
set -euo pipefail
OSC="${OSC:-openstack}"
os() { "$OSC" --os-cloud weft "$@"; }
step=0
ok() { step=$((step + 1)); echo "ok $step - $*"; }
val() { os "$@" -f value -c id; }
expect() { # expect PATTERN COMMAND...: the command's output contains PATTERN
    local pat="$1"; shift
    local out; out="$("$@" 2>&1)" || { echo "FAILED: $*: $out" >&2; exit 1; }
    grep -q -- "$pat" <<<"$out" || { echo "FAILED: '$pat' not in output of $*:" >&2; echo "$out" >&2; exit 1; }
}
fails() { # fails PATTERN COMMAND...: the command fails and says PATTERN
    local pat="$1"; shift
    local out
    if out="$("$@" 2>&1)"; then echo "FAILED: $* should have failed: $out" >&2; exit 1; fi
    grep -qi -- "$pat" <<<"$out" || { echo "FAILED: '$pat' not in error of $*:" >&2; echo "$out" >&2; exit 1; }
}

expect "Neutron external network" os extension show external-net; ok "extension show"
expect "router" os extension list -c Alias -f value; ok "extension list"

ext=$(val network create --external --provider-network-type flat --provider-physical-network cli-uplink cli-public)
expect "True" os network show cli-public -c router:external -f value; ok "external network create/show"
extsub=$(val subnet create --network cli-public --subnet-range 198.51.100.0/24 --no-dhcp cli-public-v4); ok "external subnet"

net=$(val network create --mtu 1400 --description "cli test" cli-net)
expect "1400" os network show cli-net -c mtu -f value
expect "vxlan" os network show cli-net -c provider:network_type -f value
expect "cli-net" os network list -c Name -f value
os network set --name cli-net2 --description changed cli-net
expect "changed" os network show cli-net2 -c description -f value
os network set --tag blue cli-net2
expect "cli-net2" os network list --tags blue -c Name -f value
ok "network create/list/show/set"
sub=$(val subnet create --network cli-net2 --subnet-range 10.77.0.0/24 --dns-nameserver 10.77.0.53 \
    --allocation-pool start=10.77.0.10,end=10.77.0.20 --host-route destination=10.88.0.0/16,gateway=10.77.0.254 cli-sub4)
expect "10.77.0.1" os subnet show cli-sub4 -c gateway_ip -f value
expect "10.77.0.53" os subnet show cli-sub4 -c dns_nameservers -f value
fails "overlaps" os subnet create --network cli-net2 --subnet-range 10.77.0.128/25 cli-overlap
fails "cidr" os subnet create --network cli-net2 --subnet-range 10.77.300.0/24 cli-bad
sub6=$(val subnet create --network cli-net2 --ip-version 6 --subnet-range 2001:db8:77::/64 \
    --ipv6-ra-mode slaac --ipv6-address-mode slaac cli-sub6)
os subnet set --name cli-sub4b --no-dhcp cli-sub4
expect "False" os subnet show cli-sub4b -c enable_dhcp -f value
expect "cli-sub6" os subnet list --network cli-net2 -c Name -f value
ok "subnet create/list/show/set (IPv4 and IPv6 SLAAC)"

sg=$(val security group create --description "web servers" cli-web)
rule=$(os security group rule create --protocol tcp --dst-port 22 --ingress cli-web -f value -c id)
expect "22" os security group rule show "$rule" -c port_range_min -f value
expect "tcp" os security group rule list cli-web -c "IP Protocol" -f value
fails "already exists" os security group rule create --protocol tcp --dst-port 22 --ingress cli-web
os security group set --name cli-web2 cli-web
expect "cli-web2" os security group show "$sg" -c name -f value
expect "default" os security group list -c Name -f value
ok "security group and rule create/list/show/set"

port=$(val port create --network cli-net2 --fixed-ip subnet=cli-sub4b,ip-address=10.77.0.15 \
    --mac-address fa:16:3e:77:00:01 --security-group cli-web2 --allowed-address ip-address=10.77.0.100 \
    --host hv1 --device-owner compute:nova --device vm-1 cli-port)
expect "10.77.0.15" os port show cli-port -c fixed_ips -f value
expect "2001:db8:77:0:f816:3eff:fe77:1" os port show cli-port -c fixed_ips -f value
expect "hv1" os port show cli-port -c binding_host_id -f value
expect "cli-port" os port list --network cli-net2 -c Name -f value
fails "in use" os port create --network cli-net2 --mac-address fa:16:3e:77:00:01 cli-dup
fails "already allocated" os port create --network cli-net2 --fixed-ip subnet=cli-sub4b,ip-address=10.77.0.15 cli-dup
os port set --name cli-port2 --no-security-group --disable-port-security --no-allowed-address cli-port
expect "False" os port show cli-port2 -c port_security_enabled -f value
os port set --enable-port-security --security-group cli-web2 cli-port2
ok "port create/list/show/set"

router=$(val router create cli-router)
os router set --external-gateway cli-public cli-router
expect "198.51.100" os router show cli-router -c external_gateway_info -f value
os router add subnet cli-router cli-sub4b
os router set --route destination=10.99.0.0/16,gateway=10.77.0.20 cli-router
expect "10.99.0.0/16" os router show cli-router -c routes -f value
fails "route" os router remove subnet cli-router cli-sub4b
os router unset --route destination=10.99.0.0/16,gateway=10.77.0.20 cli-router
expect "cli-router" os router list -c Name -f value
ok "router create/set gateway/add subnet/routes/list/show"

fip=$(val floating ip create --port cli-port2 cli-public)
expect "10.77.0.15" os floating ip show "$fip" -c fixed_ip_address -f value
expect "$fip" os floating ip list -c ID -f value
os floating ip unset --port "$fip"
expect "None" os floating ip show "$fip" -c port_id -f value
os floating ip set --port cli-port2 "$fip"
expect "10.77.0.15" os floating ip show "$fip" -c fixed_ip_address -f value
os floating ip unset --port "$fip"
ok "floating ip create/associate/disassociate/list/show"

expect "10.77.0" os ip availability show cli-net2
ok "ip availability show"

os floating ip delete "$fip"
os router remove subnet cli-router cli-sub4b
os router unset --external-gateway cli-router
os router delete cli-router
os port delete cli-port2
fails "not found\|could not be found\|No Port found" os port show cli-port2
os security group rule delete "$rule"
os security group delete cli-web2
os subnet delete cli-sub6 cli-sub4b
os network delete cli-net2
os subnet delete cli-public-v4
os network delete cli-public
fails "not found\|could not be found\|No Network found" os network show cli-net2
ok "delete everything"
echo "cli scenario: $step steps passed"
