//! The node configuration: what one node's dataplane must do, as a serde document.
//!
//! Today an operator writes it by hand (TOML, see `docs/node-config.md`); later the controller
//! compiles it from the API state and streams it to the node's agent (JSON). Either way it is
//! checked once by [`NodeConfig::validate`] into an immutable [`Tables`]; the pipeline only
//! ever sees validated tables.
//!
//! Validation collects every problem it finds, each naming the field by its path
//! (`ports[1].mac`), so an operator can fix a file in one pass.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::tables::Tables;
use crate::wire::{MacAddr, Vni};

/// The IANA port for VXLAN (RFC 7348 §5).
pub const VXLAN_PORT: u16 = 4789;

/// Bytes VXLAN adds over an IPv4 underlay: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.
pub const VXLAN_OVERHEAD_V4: u32 = 50;
/// Bytes VXLAN adds over an IPv6 underlay: outer IPv6 40 + UDP 8 + VXLAN 8 + inner Ethernet 14.
pub const VXLAN_OVERHEAD_V6: u32 = 70;

/// Smallest segment MTU accepted (RFC 791's minimum IPv4 MTU).
pub const MIN_MTU: u32 = 68;
/// Largest segment MTU accepted (jumbo frames).
pub const MAX_MTU: u32 = 9000;

/// One node's dataplane configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name (the hypervisor's host name as the controller knows it).
    pub node: String,
    /// Monotonic revision of this configuration (0 for hand-written files).
    #[serde(default)]
    pub revision: u64,
    /// The underlay: this node's VTEP.
    pub underlay: UnderlayConfig,
    /// MAC learning from the underlay.
    #[serde(default)]
    pub learning: LearningConfig,
    /// The tenant L2 networks this node takes part in.
    #[serde(default)]
    pub segments: Vec<SegmentConfig>,
    /// Local VM-facing ports.
    #[serde(default)]
    pub ports: Vec<PortConfig>,
    /// Other VTEPs and the VNIs they serve (flood lists and the VXLAN accept list).
    #[serde(default)]
    pub remote_vteps: Vec<RemoteVtepConfig>,
    /// Addresses of VMs behind other VTEPs (the controller's L2 population).
    #[serde(default)]
    pub remote_bindings: Vec<RemoteBindingConfig>,
    /// Tenant routers hosted on this node.
    #[serde(default)]
    pub routers: Vec<RouterConfig>,
    /// Security groups the ports refer to (`ports[].security_groups`).
    #[serde(default)]
    pub security_groups: Vec<SecurityGroupConfig>,
    /// Named sets of addresses that security group rules match the other end against
    /// (`rules[].remote_set`): the controller turns each remote group into one, holding its
    /// members' addresses, so that a member joining or leaving travels as one address in a
    /// delta rather than as every rule that names the group.
    #[serde(default)]
    pub address_sets: Vec<AddressSetConfig>,
    /// Connection-tracking and NAT table limits.
    #[serde(default)]
    pub limits: StateLimits,
}

/// Limits of the stateful tables (per worker), so that one tenant cannot exhaust another's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateLimits {
    /// Connection-tracking entries on the node (security groups).
    #[serde(default = "default_conntrack_max")]
    pub conntrack_max: u32,
    /// Connection-tracking entries one tenant (project) may hold.
    #[serde(default = "default_conntrack_per_tenant")]
    pub conntrack_per_tenant: u32,
    /// SNAT sessions on the node.
    #[serde(default = "default_nat_max")]
    pub nat_max: u32,
    /// SNAT sessions one router may hold.
    #[serde(default = "default_nat_per_router")]
    pub nat_per_router: u32,
}

impl Default for StateLimits {
    fn default() -> StateLimits {
        StateLimits {
            conntrack_max: default_conntrack_max(),
            conntrack_per_tenant: default_conntrack_per_tenant(),
            nat_max: default_nat_max(),
            nat_per_router: default_nat_per_router(),
        }
    }
}

fn default_conntrack_max() -> u32 {
    1 << 20
}
fn default_conntrack_per_tenant() -> u32 {
    1 << 18
}
fn default_nat_max() -> u32 {
    1 << 20
}
fn default_nat_per_router() -> u32 {
    1 << 17
}

/// A security group: a named set of rules (Neutron's semantics: stateful; a port with port
/// security and no group allows nothing but the address-configuration traffic every port may
/// send and receive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupConfig {
    /// Identifier (e.g. the Neutron security group id), unique on the node.
    pub name: String,
    /// What it allows; anything else is denied.
    #[serde(default)]
    pub rules: Vec<SecurityRuleConfig>,
}

/// Which way a security group rule applies, seen from the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleDirection {
    /// Traffic to the VM.
    Ingress,
    /// Traffic from the VM.
    Egress,
}

/// The IP version a rule applies to (Neutron's `ethertype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RuleEtherType {
    /// IPv4.
    IPv4,
    /// IPv6.
    IPv6,
}

/// One security group rule: what it allows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityRuleConfig {
    /// Ingress (to the VM) or egress (from the VM).
    pub direction: RuleDirection,
    /// IPv4 or IPv6.
    pub ethertype: RuleEtherType,
    /// IP protocol number; any protocol when absent.
    #[serde(default)]
    pub protocol: Option<u8>,
    /// TCP/UDP/SCTP/DCCP/UDP-Lite: the lowest destination port; ICMP/ICMPv6: the type.
    #[serde(default)]
    pub port_range_min: Option<u16>,
    /// TCP/UDP/SCTP/DCCP/UDP-Lite: the highest destination port; ICMP/ICMPv6: the code.
    #[serde(default)]
    pub port_range_max: Option<u16>,
    /// The other end's addresses (the source for ingress rules, the destination for egress
    /// ones), all of the rule's ethertype; any address when both this and `remote_set` are
    /// absent. An empty list matches nothing.
    #[serde(default)]
    pub remote: Option<Vec<IpNetwork>>,
    /// Or the other end's address is in this address set (a name in `address_sets`; its
    /// addresses of the rule's ethertype count). An empty set matches nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_set: Option<String>,
}

/// A named set of addresses (the controller's expansion of a remote security group: the
/// fixed IPs and allowed address pairs of its member ports), either IP version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressSetConfig {
    /// Identifier (the controller uses the remote group's id), unique on the node.
    pub name: String,
    /// Host addresses (`/32`, `/128`) and prefixes. Kept sorted and without duplicates by
    /// [`NodeConfig::sort_by_key`], which deltas rely on.
    #[serde(default)]
    pub addresses: Vec<IpNetwork>,
}

/// This node's VTEP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnderlayConfig {
    /// The local VTEP address: VXLAN is received and sent from it.
    pub local_ip: IpAddr,
    /// UDP port VXLAN uses, here and on every remote VTEP.
    #[serde(default = "default_vxlan_port")]
    pub port: u16,
    /// MTU of the underlay network; every segment's MTU plus the VXLAN overhead must fit.
    #[serde(default = "default_underlay_mtu")]
    pub mtu: u32,
}

/// MAC learning from the underlay, for addresses the configuration does not list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearningConfig {
    /// Learn source MACs of frames arriving from remote VTEPs (and from local ports without port
    /// security).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Seconds after which a learned entry that has not been seen again is forgotten.
    #[serde(default = "default_aging_secs")]
    pub aging_secs: u32,
    /// At most this many learned entries per segment, so one tenant cannot fill the table.
    #[serde(default = "default_max_learned")]
    pub max_per_segment: u32,
}

impl Default for LearningConfig {
    fn default() -> Self {
        LearningConfig {
            enabled: true,
            aging_secs: default_aging_secs(),
            max_per_segment: default_max_learned(),
        }
    }
}

/// One tenant L2 network on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentConfig {
    /// The VXLAN network identifier.
    pub vni: Vni,
    /// A name for humans (e.g. the Neutron network id).
    #[serde(default)]
    pub name: String,
    /// Largest L3 packet (Ethernet payload) on this segment. Defaults to the underlay MTU minus
    /// the VXLAN overhead.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// The MAC of the segment's router interface: the source of router advertisements sent to
    /// local ports (from its EUI-64 link-local address) and of DHCP replies. It must be a router
    /// interface on this node or a remote binding in this segment.
    #[serde(default)]
    pub gateway_mac: Option<MacAddr>,
    /// DNS domain handed to VMs by DHCPv4 (option 15) and DHCPv6 (domain search list).
    #[serde(default)]
    pub dns_domain: Option<String>,
    /// The subnets on this segment: what the local services (DHCPv4, DHCPv6, router
    /// advertisements) hand out. Port addresses must lie in them when any are given.
    #[serde(default)]
    pub subnets: Vec<SubnetConfig>,
    /// A provider (external) network reached through this host interface (plain Ethernet)
    /// instead of VXLAN: its frames leave by the uplink and nothing of it goes to remote VTEPs.
    /// Routers' gateways sit on such segments.
    #[serde(default)]
    pub uplink: Option<String>,
}

impl SegmentConfig {
    /// A segment with defaults: no name, the default MTU, no router, no subnets.
    pub fn new(vni: Vni) -> SegmentConfig {
        SegmentConfig {
            vni,
            name: String::new(),
            mtu: None,
            gateway_mac: None,
            dns_domain: None,
            subnets: Vec::new(),
            uplink: None,
        }
    }
}

/// One subnet of a segment, as Neutron defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetConfig {
    /// The network, e.g. `10.0.0.0/24` or `fd00:a::/64` (no host bits).
    pub cidr: IpNetwork,
    /// The router's address on it (DHCPv4 option 3 and the default route of option 121).
    #[serde(default)]
    pub gateway_ip: Option<IpAddr>,
    /// Serve DHCPv4 on an IPv4 subnet (DHCPv6 follows `ipv6_address_mode`).
    #[serde(default = "default_true")]
    pub enable_dhcp: bool,
    /// DNS servers handed out (DHCPv4 option 6; DHCPv6 option 23 and RDNSS for IPv6).
    #[serde(default)]
    pub dns_nameservers: Vec<IpAddr>,
    /// Extra routes handed to VMs (DHCPv4 option 121).
    #[serde(default)]
    pub host_routes: Vec<RouteConfig>,
    /// The DHCPv4 server's address (server identifier); the gateway's when absent.
    #[serde(default)]
    pub dhcp_server: Option<IpAddr>,
    /// DHCPv4 lease and DHCPv6 valid lifetime, seconds.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u32,
    /// IPv6: who sends router advertisements for this subnet; with a mode, this node does (to
    /// its local ports).
    #[serde(default)]
    pub ipv6_ra_mode: Option<Ipv6Mode>,
    /// IPv6: how VMs get addresses: SLAAC, stateful DHCPv6, or SLAAC plus stateless DHCPv6.
    #[serde(default)]
    pub ipv6_address_mode: Option<Ipv6Mode>,
}

/// Neutron's `ipv6_ra_mode` / `ipv6_address_mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ipv6Mode {
    /// Addresses by SLAAC (RA prefix with A set), no DHCPv6.
    Slaac,
    /// Addresses by DHCPv6 (RA with M set).
    Dhcpv6Stateful,
    /// Addresses by SLAAC, other configuration by DHCPv6 (RA with O set).
    Dhcpv6Stateless,
}

/// A route: a destination network and the next hop towards it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The destination network.
    pub destination: IpNetwork,
    /// The next hop, on a directly connected network.
    pub nexthop: IpAddr,
}

/// A tenant router hosted on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Identifier (e.g. the Neutron router id), unique on the node.
    pub name: String,
    /// Its interfaces, one per segment it joins.
    #[serde(default)]
    pub interfaces: Vec<RouterInterfaceConfig>,
    /// Static and extra routes (Neutron's `routes`).
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// The tenant (project) owning the router.
    #[serde(default)]
    pub project: String,
    /// Its gateway on an external network: SNAT, floating IPs and port forwarding.
    #[serde(default)]
    pub gateway: Option<GatewayConfig>,
    /// Floating IPs: external addresses translated 1:1 to internal ones.
    #[serde(default)]
    pub floating_ips: Vec<FloatingIpConfig>,
    /// Port forwardings: an external address and port to an internal address and port.
    #[serde(default)]
    pub port_forwardings: Vec<PortForwardingConfig>,
}

/// A router's gateway: its interface on an external (uplink) segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The external segment; one of the router's interfaces must be on it, with an IPv4
    /// address (the SNAT address).
    pub vni: Vni,
    /// Translate the sources of the tenant's IPv4 traffic leaving by the gateway to the
    /// gateway's address (Neutron's `enable_snat`). IPv6 is always routed without translation.
    #[serde(default = "default_true")]
    pub enable_snat: bool,
}

/// A floating IP: `external` (on the gateway's network) stands for `internal` (a VM's fixed
/// address behind the router) both ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloatingIpConfig {
    /// The address outside hosts use.
    pub external: Ipv4Addr,
    /// The VM's fixed address.
    pub internal: Ipv4Addr,
}

/// The transport protocols port forwarding applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A port forwarding (Neutron's floating IP port forwarding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortForwardingConfig {
    /// TCP or UDP.
    pub protocol: ForwardProtocol,
    /// The floating IP outside hosts use.
    pub external: Ipv4Addr,
    /// Its port.
    pub external_port: u16,
    /// The VM's fixed address.
    pub internal: Ipv4Addr,
    /// The VM's port.
    pub internal_port: u16,
}

/// A router's interface on one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterInterfaceConfig {
    /// The segment.
    pub vni: Vni,
    /// The interface's MAC (the VMs' gateway MAC).
    pub mac: MacAddr,
    /// Its addresses with their networks, e.g. `10.0.0.1/24`, `fd00:a::1/64` (the connected
    /// routes). Its EUI-64 link-local address is added.
    pub addresses: Vec<IpNetwork>,
    /// Largest packet it sends; the segment's MTU when absent (larger packets get
    /// fragmentation-needed / packet-too-big errors, or IPv4 fragmentation).
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// A local VM-facing port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Identifier (e.g. the Neutron port id), unique on the node.
    pub name: String,
    /// The host interface (veth or tap) the VM is attached to.
    pub interface: String,
    /// The segment the port is on.
    pub vni: Vni,
    /// The VM's MAC address.
    pub mac: MacAddr,
    /// The VM's fixed IP addresses.
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// Anti-spoofing: the port may only send from its own MAC and IPs (plus the allowed address
    /// pairs). `false` lets it send anything.
    #[serde(default = "default_true")]
    pub port_security: bool,
    /// Further (MAC, IP or CIDR) pairs the port may send from (Neutron's allowed_address_pairs).
    #[serde(default)]
    pub allowed_address_pairs: Vec<AddressPair>,
    /// Host name handed out by DHCP (option 12); `host-10-0-0-5` style when absent.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Security groups (names in `security_groups`) filtering the port's traffic when port
    /// security is on. An empty list: nothing but address configuration (DHCP, ND) passes
    /// (Neutron's semantics; the controller always sets this). Absent: no stateful filtering,
    /// only anti-spoofing (hand-written configurations without security groups).
    #[serde(default)]
    pub security_groups: Option<Vec<String>>,
    /// The tenant (project) owning the port: connection-tracking limits are per tenant.
    #[serde(default)]
    pub project: String,
}

/// An allowed address pair: an address or CIDR, and the MAC it may be used with (the port's own
/// when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressPair {
    /// An address (`10.0.0.5`) or a network (`10.0.0.0/24`).
    pub ip: IpNetwork,
    /// The MAC it may be sent from; the port's MAC when absent.
    #[serde(default)]
    pub mac: Option<MacAddr>,
}

/// Another VTEP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteVtepConfig {
    /// Its underlay address.
    pub ip: IpAddr,
    /// The VNIs it serves: it receives this node's floods for them, and VXLAN from it is
    /// accepted for them only.
    pub vnis: Vec<Vni>,
}

/// A VM behind another VTEP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteBindingConfig {
    /// Its segment.
    pub vni: Vni,
    /// Its MAC.
    pub mac: MacAddr,
    /// Its IP addresses (answered locally for ARP and neighbour solicitations).
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// The VTEP it is behind.
    pub vtep: IpAddr,
}

fn default_true() -> bool {
    true
}
fn default_vxlan_port() -> u16 {
    VXLAN_PORT
}
fn default_underlay_mtu() -> u32 {
    1500
}
fn default_aging_secs() -> u32 {
    300
}
fn default_max_learned() -> u32 {
    4096
}
fn default_lease_secs() -> u32 {
    86400
}

/// One problem in a configuration, with the path of the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The field, e.g. `ports[1].mac`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The document could not be read as a node configuration.
    #[error("cannot parse the node configuration: {0}")]
    Parse(String),
    /// The document was read but is not a valid configuration; every problem found is listed.
    #[error("invalid node configuration: {}", list(.0))]
    Invalid(Vec<ConfigProblem>),
}

fn list(p: &[ConfigProblem]) -> String {
    p.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ConfigError {
    /// The problems, when the document was readable.
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            ConfigError::Invalid(p) => p,
            ConfigError::Parse(_) => &[],
        }
    }
}

impl NodeConfig {
    /// Reads a TOML document (the hand-written form). Does not validate.
    pub fn from_toml(s: &str) -> Result<NodeConfig, ConfigError> {
        toml::from_str(s).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// The VXLAN overhead over this node's underlay family.
    pub fn vxlan_overhead(&self) -> u32 {
        if self.underlay.local_ip.is_ipv4() {
            VXLAN_OVERHEAD_V4
        } else {
            VXLAN_OVERHEAD_V6
        }
    }

    /// The MTU a segment gets when its configuration names none.
    pub fn default_segment_mtu(&self) -> u32 {
        self.underlay.mtu.saturating_sub(self.vxlan_overhead())
    }

    /// Checks everything and builds the table set the pipeline runs on.
    pub fn validate(&self) -> Result<Tables, ConfigError> {
        let mut v = Validator::default();
        v.check(self);
        if !v.problems.is_empty() {
            return Err(ConfigError::Invalid(v.problems));
        }
        Tables::build(self).map_err(|p| ConfigError::Invalid(vec![p]))
    }
}

#[derive(Default)]
struct Validator {
    problems: Vec<ConfigProblem>,
}

impl Validator {
    fn bad(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            field: field.into(),
            message: message.into(),
        });
    }

    fn check(&mut self, c: &NodeConfig) {
        if !valid_name(&c.node) {
            self.bad(
                "node",
                "must be 1 to 255 characters of letters, digits, '.', '_', '-' or ':'",
            );
        }
        self.check_underlay(c);
        let segment_mtus = self.check_segments(c);
        self.check_ports(c, &segment_mtus);
        let served = self.check_vteps(c, &segment_mtus);
        self.check_bindings(c, &segment_mtus, &served);
        self.check_subnets(c);
        self.check_routers(c, &segment_mtus);
        self.check_uniqueness(c);
        self.check_gateways(c);
        self.check_limits(c);
        self.check_security_groups(c);
        self.check_uplinks(c);
        self.check_nat(c);
    }

    fn check_security_groups(&mut self, c: &NodeConfig) {
        let set_names: HashSet<&str> = c.address_sets.iter().map(|a| a.name.as_str()).collect();
        let mut names = HashSet::new();
        for (gi, g) in c.security_groups.iter().enumerate() {
            if !names.insert(g.name.as_str()) {
                self.bad(
                    format!("security_groups[{gi}].name"),
                    format!("{:?} is used twice", g.name),
                );
            }
            for (ri, r) in g.rules.iter().enumerate() {
                let f = |x: &str| format!("security_groups[{gi}].rules[{ri}].{x}");
                let icmp = matches!(
                    (r.protocol, r.ethertype),
                    (Some(1), RuleEtherType::IPv4) | (Some(58), RuleEtherType::IPv6)
                );
                let ported = matches!(r.protocol, Some(6 | 17 | 33 | 132 | 136));
                match (r.port_range_min, r.port_range_max) {
                    (None, None) => {}
                    (min, max) if icmp => {
                        if min.is_none()
                            || min.is_some_and(|t| t > 255)
                            || max.is_some_and(|c| c > 255)
                        {
                            self.bad(
                                f("port_range_min"),
                                "for ICMP, port_range_min is the type (0-255) and port_range_max \
                                 the code (0-255, only with a type)",
                            );
                        }
                    }
                    (Some(min), Some(max)) if ported => {
                        if min == 0 || min > max {
                            self.bad(
                                f("port_range_min"),
                                format!("{min}-{max} is not a port range (1-65535, min <= max)"),
                            );
                        }
                    }
                    _ if ported => {
                        self.bad(f("port_range_max"), "give both ends of the port range");
                    }
                    _ => self.bad(
                        f("port_range_min"),
                        "port ranges apply only to TCP, UDP, SCTP, DCCP, UDP-Lite and ICMP",
                    ),
                }
                for (j, n) in r.remote.iter().flatten().enumerate() {
                    let v4 = r.ethertype == RuleEtherType::IPv4;
                    if n.is_ipv4() != v4 {
                        self.bad(
                            f(&format!("remote[{j}]")),
                            format!("{n} does not match the rule's ethertype"),
                        );
                    }
                }
                match &r.remote_set {
                    Some(_) if r.remote.is_some() => self.bad(
                        f("remote_set"),
                        "give either remote addresses or a remote set, not both",
                    ),
                    Some(s) if !set_names.contains(s.as_str()) => {
                        self.bad(f("remote_set"), format!("no address set named {s:?}"));
                    }
                    _ => {}
                }
            }
        }
        let mut sets = HashSet::new();
        for (i, a) in c.address_sets.iter().enumerate() {
            if a.name.is_empty() || !sets.insert(a.name.as_str()) {
                self.bad(
                    format!("address_sets[{i}].name"),
                    format!("{:?} is empty or used twice", a.name),
                );
            }
        }
        for (pi, p) in c.ports.iter().enumerate() {
            for (j, g) in p.security_groups.iter().flatten().enumerate() {
                if !names.contains(g.as_str()) {
                    self.bad(
                        format!("ports[{pi}].security_groups[{j}]"),
                        format!("no security group named {g:?}"),
                    );
                }
            }
        }
    }

    fn check_uplinks(&mut self, c: &NodeConfig) {
        let mut ifaces: HashSet<&str> = c.ports.iter().map(|p| p.interface.as_str()).collect();
        let mut uplinked = HashSet::new();
        for (si, s) in c.segments.iter().enumerate() {
            let Some(u) = &s.uplink else { continue };
            uplinked.insert(s.vni);
            if !valid_ifname(u) {
                self.bad(
                    format!("segments[{si}].uplink"),
                    format!("{u:?} is not a valid interface name"),
                );
            }
            if !ifaces.insert(u.as_str()) {
                self.bad(
                    format!("segments[{si}].uplink"),
                    format!("interface {u:?} is already used by a port or another uplink"),
                );
            }
        }
        for (vi, v) in c.remote_vteps.iter().enumerate() {
            for (j, vni) in v.vnis.iter().enumerate() {
                if uplinked.contains(vni) {
                    self.bad(
                        format!("remote_vteps[{vi}].vnis[{j}]"),
                        format!("VNI {vni} is reached through an uplink, not VXLAN"),
                    );
                }
            }
        }
    }

    fn check_nat(&mut self, c: &NodeConfig) {
        let mut externals: HashMap<Ipv4Addr, String> = HashMap::new();
        for (ri, r) in c.routers.iter().enumerate() {
            let f = |x: &str| format!("routers[{ri}].{x}");
            let nat = !r.floating_ips.is_empty() || !r.port_forwardings.is_empty();
            let Some(gw) = &r.gateway else {
                if nat {
                    self.bad(
                        f("gateway"),
                        "floating IPs and port forwardings need a gateway",
                    );
                }
                continue;
            };
            let external = c
                .segments
                .iter()
                .any(|s| s.vni == gw.vni && s.uplink.is_some());
            if !external {
                self.bad(
                    f("gateway.vni"),
                    format!("VNI {} is not a segment with an uplink", gw.vni),
                );
            }
            let Some(gif) = r.interfaces.iter().find(|i| i.vni == gw.vni) else {
                self.bad(
                    f("gateway.vni"),
                    format!("the router has no interface on VNI {}", gw.vni),
                );
                continue;
            };
            let gw_nets: Vec<ipnetwork::Ipv4Network> = gif
                .addresses
                .iter()
                .filter_map(|a| match a {
                    IpNetwork::V4(n) => Some(*n),
                    IpNetwork::V6(_) => None,
                })
                .collect();
            let Some(snat) = gw_nets.first().map(|n| n.ip()) else {
                self.bad(
                    f("gateway.vni"),
                    "the gateway interface needs an IPv4 address",
                );
                continue;
            };
            externals.insert(snat, f("gateway"));
            let inside = |a: Ipv4Addr| {
                r.interfaces
                    .iter()
                    .filter(|i| i.vni != gw.vni)
                    .any(|i| i.addresses.iter().any(|n| n.contains(IpAddr::V4(a))))
            };
            let mut fips = HashSet::new();
            let mut fixed = HashSet::new();
            for (j, fip) in r.floating_ips.iter().enumerate() {
                let here = f(&format!("floating_ips[{j}]"));
                if !gw_nets.iter().any(|n| n.contains(fip.external)) {
                    self.bad(
                        format!("{here}.external"),
                        format!("{} is not on the gateway's network", fip.external),
                    );
                }
                if let Some(prev) = externals.insert(fip.external, here.clone()) {
                    self.bad(
                        format!("{here}.external"),
                        format!("{} is already used by {prev}", fip.external),
                    );
                }
                fips.insert(fip.external);
                if !inside(fip.internal) {
                    self.bad(
                        format!("{here}.internal"),
                        format!(
                            "{} is not on one of the router's internal networks",
                            fip.internal
                        ),
                    );
                }
                if !fixed.insert(fip.internal) {
                    self.bad(
                        format!("{here}.internal"),
                        format!("{} already has a floating IP", fip.internal),
                    );
                }
            }
            let mut pf_out = HashSet::new();
            let mut pf_in = HashSet::new();
            for (j, pf) in r.port_forwardings.iter().enumerate() {
                let here = f(&format!("port_forwardings[{j}]"));
                if !gw_nets.iter().any(|n| n.contains(pf.external)) {
                    self.bad(
                        format!("{here}.external"),
                        format!("{} is not on the gateway's network", pf.external),
                    );
                }
                if fips.contains(&pf.external) {
                    self.bad(
                        format!("{here}.external"),
                        format!("{} is a floating IP of a port", pf.external),
                    );
                }
                if !inside(pf.internal) {
                    self.bad(
                        format!("{here}.internal"),
                        format!(
                            "{} is not on one of the router's internal networks",
                            pf.internal
                        ),
                    );
                }
                if pf.external_port == 0 || pf.internal_port == 0 {
                    self.bad(format!("{here}.external_port"), "ports must not be 0");
                }
                if !pf_out.insert((pf.protocol, pf.external, pf.external_port)) {
                    self.bad(
                        format!("{here}.external_port"),
                        format!("{}:{} is forwarded twice", pf.external, pf.external_port),
                    );
                }
                if !pf_in.insert((pf.protocol, pf.internal, pf.internal_port)) {
                    self.bad(
                        format!("{here}.internal_port"),
                        format!("{}:{} is forwarded to twice", pf.internal, pf.internal_port),
                    );
                }
            }
            let pf_ext: HashSet<Ipv4Addr> = r.port_forwardings.iter().map(|p| p.external).collect();
            for a in pf_ext {
                if a == snat {
                    continue;
                }
                // Each address once (a set), and not a floating IP here (checked above): a
                // previous owner is another router's.
                if let Some(prev) = externals.insert(a, f("port_forwardings")) {
                    self.bad(
                        f("port_forwardings"),
                        format!("{a} is already used by {prev}"),
                    );
                }
            }
        }
    }

    fn check_underlay(&mut self, c: &NodeConfig) {
        let u = &c.underlay;
        if u.local_ip.is_unspecified() || u.local_ip.is_multicast() || is_broadcast(u.local_ip) {
            self.bad(
                "underlay.local_ip",
                format!("{} cannot be a VTEP address", u.local_ip),
            );
        }
        if u.port == 0 {
            self.bad("underlay.port", "must not be 0");
        }
        let min = MIN_MTU + c.vxlan_overhead();
        if !(min..=65535).contains(&u.mtu) {
            self.bad(
                "underlay.mtu",
                format!("{} is out of range [{min}, 65535]", u.mtu),
            );
        }
        let l = &c.learning;
        if l.enabled && l.aging_secs == 0 {
            self.bad(
                "learning.aging_secs",
                "must be at least 1 when learning is enabled",
            );
        }
    }

    fn check_segments(&mut self, c: &NodeConfig) -> HashMap<Vni, u32> {
        let mut mtus = HashMap::new();
        let max = c
            .underlay
            .mtu
            .saturating_sub(c.vxlan_overhead())
            .min(MAX_MTU);
        for (i, s) in c.segments.iter().enumerate() {
            let mtu = s.mtu.unwrap_or_else(|| c.default_segment_mtu());
            if !(MIN_MTU..=max).contains(&mtu) {
                self.bad(
                    format!("segments[{i}].mtu"),
                    format!(
                        "{mtu} is out of range [{MIN_MTU}, {max}] (the underlay MTU {} minus {} \
                         bytes of VXLAN overhead)",
                        c.underlay.mtu,
                        c.vxlan_overhead()
                    ),
                );
            }
            if mtus.insert(s.vni, mtu).is_some() {
                self.bad(
                    format!("segments[{i}].vni"),
                    format!("VNI {} is listed twice", s.vni),
                );
            }
        }
        mtus
    }

    fn check_ports(&mut self, c: &NodeConfig, segs: &HashMap<Vni, u32>) {
        let mut names = HashSet::new();
        let mut ifaces = HashSet::new();
        for (i, p) in c.ports.iter().enumerate() {
            let f = |x: &str| format!("ports[{i}].{x}");
            if !valid_name(&p.name) {
                self.bad(
                    f("name"),
                    "must be 1 to 255 characters of letters, digits, '.', '_', '-' or ':'",
                );
            } else if !names.insert(p.name.as_str()) {
                self.bad(f("name"), format!("port name {:?} is used twice", p.name));
            }
            if !valid_ifname(&p.interface) {
                self.bad(
                    f("interface"),
                    format!("{:?} is not a valid interface name (1 to 15 characters, no '/', ':' or whitespace)", p.interface),
                );
            } else if !ifaces.insert(p.interface.as_str()) {
                self.bad(
                    f("interface"),
                    format!("interface {:?} is used by two ports", p.interface),
                );
            }
            if !segs.contains_key(&p.vni) {
                self.bad(f("vni"), format!("VNI {} is not in segments", p.vni));
            }
            if !p.mac.is_unicast() {
                self.bad(f("mac"), format!("{} is not a unicast MAC address", p.mac));
            }
            for (j, ip) in p.ips.iter().enumerate() {
                if !host_address(*ip) {
                    self.bad(
                        f(&format!("ips[{j}]")),
                        format!("{ip} cannot be a port address"),
                    );
                }
            }
            for (j, pair) in p.allowed_address_pairs.iter().enumerate() {
                if let Some(m) = pair.mac
                    && !m.is_unicast()
                {
                    self.bad(
                        f(&format!("allowed_address_pairs[{j}].mac")),
                        format!("{m} is not a unicast MAC address"),
                    );
                }
                if pair.ip.ip().is_multicast() {
                    self.bad(
                        f(&format!("allowed_address_pairs[{j}].ip")),
                        format!("{} is a multicast network", pair.ip),
                    );
                }
            }
        }
    }

    fn check_vteps(
        &mut self,
        c: &NodeConfig,
        segs: &HashMap<Vni, u32>,
    ) -> HashMap<IpAddr, HashSet<Vni>> {
        let mut served: HashMap<IpAddr, HashSet<Vni>> = HashMap::new();
        for (i, r) in c.remote_vteps.iter().enumerate() {
            let f = |x: &str| format!("remote_vteps[{i}].{x}");
            if !host_address(r.ip) || is_broadcast(r.ip) {
                self.bad(f("ip"), format!("{} cannot be a VTEP address", r.ip));
            } else if r.ip == c.underlay.local_ip {
                self.bad(f("ip"), format!("{} is this node's own VTEP address", r.ip));
            } else if r.ip.is_ipv4() != c.underlay.local_ip.is_ipv4() {
                self.bad(
                    f("ip"),
                    format!(
                        "{} is not of the underlay's address family ({})",
                        r.ip, c.underlay.local_ip
                    ),
                );
            }
            if served.contains_key(&r.ip) {
                self.bad(f("ip"), format!("VTEP {} is listed twice", r.ip));
                continue;
            }
            let mut vnis = HashSet::new();
            for (j, vni) in r.vnis.iter().enumerate() {
                if !segs.contains_key(vni) {
                    self.bad(
                        f(&format!("vnis[{j}]")),
                        format!("VNI {vni} is not in segments"),
                    );
                }
                if !vnis.insert(*vni) {
                    self.bad(
                        f(&format!("vnis[{j}]")),
                        format!("VNI {vni} is listed twice"),
                    );
                }
            }
            served.insert(r.ip, vnis);
        }
        served
    }

    fn check_bindings(
        &mut self,
        c: &NodeConfig,
        segs: &HashMap<Vni, u32>,
        served: &HashMap<IpAddr, HashSet<Vni>>,
    ) {
        for (i, b) in c.remote_bindings.iter().enumerate() {
            let f = |x: &str| format!("remote_bindings[{i}].{x}");
            if !segs.contains_key(&b.vni) {
                self.bad(f("vni"), format!("VNI {} is not in segments", b.vni));
            }
            if !b.mac.is_unicast() {
                self.bad(f("mac"), format!("{} is not a unicast MAC address", b.mac));
            }
            match served.get(&b.vtep) {
                None => self.bad(f("vtep"), format!("{} is not in remote_vteps", b.vtep)),
                Some(v) if !v.contains(&b.vni) => self.bad(
                    f("vtep"),
                    format!(
                        "VTEP {} does not serve VNI {} (add it to its vnis)",
                        b.vtep, b.vni
                    ),
                ),
                Some(_) => {}
            }
            for (j, ip) in b.ips.iter().enumerate() {
                if !host_address(*ip) {
                    self.bad(
                        f(&format!("ips[{j}]")),
                        format!("{ip} cannot be a VM address"),
                    );
                }
            }
        }
    }

    /// A MAC or an IP may have one owner per segment, whether local port or remote binding.
    fn check_uniqueness(&mut self, c: &NodeConfig) {
        let mut macs: HashMap<(Vni, MacAddr), String> = HashMap::new();
        let mut ips: HashMap<(Vni, IpAddr), String> = HashMap::new();
        let router_ips: Vec<Vec<(String, IpAddr)>> = c
            .routers
            .iter()
            .flat_map(|r| r.interfaces.iter())
            .map(|i| {
                i.addresses
                    .iter()
                    .enumerate()
                    .map(|(j, a)| (format!("addresses[{j}]"), a.ip()))
                    .collect()
            })
            .collect();
        let named = |ips: &[IpAddr]| -> Vec<(String, IpAddr)> {
            ips.iter()
                .enumerate()
                .map(|(j, ip)| (format!("ips[{j}]"), *ip))
                .collect()
        };
        // (who, segment, MAC, [(field, address)])
        type Owner = (String, Vni, MacAddr, Vec<(String, IpAddr)>);
        let mut owners: Vec<Owner> = Vec::new();
        for (i, p) in c.ports.iter().enumerate() {
            owners.push((format!("ports[{i}]"), p.vni, p.mac, named(&p.ips)));
        }
        for (i, b) in c.remote_bindings.iter().enumerate() {
            owners.push((format!("remote_bindings[{i}]"), b.vni, b.mac, named(&b.ips)));
        }
        let mut k = 0;
        for (ri, r) in c.routers.iter().enumerate() {
            for (ii, iface) in r.interfaces.iter().enumerate() {
                let ips = router_ips.get(k).cloned().unwrap_or_default();
                k += 1;
                owners.push((
                    format!("routers[{ri}].interfaces[{ii}]"),
                    iface.vni,
                    iface.mac,
                    ips,
                ));
            }
        }
        for (owner, vni, mac, addrs) in owners {
            if let Some(prev) = macs.insert((vni, mac), owner.clone()) {
                self.bad(
                    format!("{owner}.mac"),
                    format!("{mac} is already used by {prev} in VNI {vni}"),
                );
            }
            for (field, ip) in &addrs {
                if let Some(prev) = ips.insert((vni, *ip), owner.clone()) {
                    self.bad(
                        format!("{owner}.{field}"),
                        format!("{ip} is already used by {prev} in VNI {vni}"),
                    );
                }
            }
        }
    }

    fn check_subnets(&mut self, c: &NodeConfig) {
        for (si, seg) in c.segments.iter().enumerate() {
            if let Some(d) = &seg.dns_domain
                && !valid_dns_name(d)
            {
                self.bad(
                    format!("segments[{si}].dns_domain"),
                    format!("{d:?} is not a DNS name"),
                );
            }
            for (ni, sub) in seg.subnets.iter().enumerate() {
                let f = |x: &str| format!("segments[{si}].subnets[{ni}].{x}");
                let net = sub.cidr;
                let v4 = net.is_ipv4();
                if net.ip() != net.network() {
                    self.bad(
                        f("cidr"),
                        format!(
                            "{net} has host bits set (the network is {}/{})",
                            net.network(),
                            net.prefix()
                        ),
                    );
                }
                for (nj, other) in seg.subnets.iter().enumerate().take(ni) {
                    if other.cidr.is_ipv4() == v4
                        && (other.cidr.contains(net.network())
                            || net.contains(other.cidr.network()))
                    {
                        self.bad(
                            f("cidr"),
                            format!("{net} overlaps subnets[{nj}] ({})", other.cidr),
                        );
                    }
                }
                let usable = |ip: IpAddr| {
                    net.contains(ip)
                        && match (net, ip) {
                            (IpNetwork::V4(n), IpAddr::V4(a)) => {
                                n.prefix() >= 31 || (a != n.network() && a != n.broadcast())
                            }
                            (IpNetwork::V6(n), IpAddr::V6(a)) => {
                                a != n.network() || n.prefix() == 128
                            }
                            _ => false,
                        }
                };
                for (what, ip) in [
                    ("gateway_ip", sub.gateway_ip),
                    ("dhcp_server", sub.dhcp_server),
                ] {
                    if let Some(ip) = ip
                        && !usable(ip)
                    {
                        self.bad(f(what), format!("{ip} is not a host address of {net}"));
                    }
                }
                for (j, d) in sub.dns_nameservers.iter().enumerate() {
                    if d.is_ipv4() != v4 || !host_address(*d) {
                        self.bad(
                            f(&format!("dns_nameservers[{j}]")),
                            format!("{d} cannot be a DNS server of {net}"),
                        );
                    }
                }
                for (j, r) in sub.host_routes.iter().enumerate() {
                    if r.destination.is_ipv4() != v4 || r.nexthop.is_ipv4() != v4 {
                        self.bad(
                            f(&format!("host_routes[{j}]")),
                            format!(
                                "route to {} via {} is not of {net}'s family",
                                r.destination, r.nexthop
                            ),
                        );
                    }
                }
                if !(60..=u32::MAX / 2).contains(&sub.lease_secs) {
                    self.bad(
                        f("lease_secs"),
                        format!("{} is out of range [60, {}]", sub.lease_secs, u32::MAX / 2),
                    );
                }
                if v4 {
                    if sub.ipv6_ra_mode.is_some() || sub.ipv6_address_mode.is_some() {
                        self.bad(f("ipv6_ra_mode"), "IPv6 modes apply to IPv6 subnets only");
                    }
                    if sub.enable_dhcp && sub.gateway_ip.is_none() && sub.dhcp_server.is_none() {
                        self.bad(f("dhcp_server"), "a DHCP-enabled subnet needs a gateway_ip or a dhcp_server address (the server identifier)");
                    }
                } else {
                    if let (Some(ra), Some(am)) = (sub.ipv6_ra_mode, sub.ipv6_address_mode)
                        && ra != am
                    {
                        self.bad(
                            f("ipv6_address_mode"),
                            format!("must equal ipv6_ra_mode when both are set ({ra:?} vs {am:?})"),
                        );
                    }
                    if sub.ipv6_ra_mode.is_some() && seg.gateway_mac.is_none() {
                        self.bad(format!("segments[{si}].gateway_mac"), "required when a subnet has an ipv6_ra_mode (router advertisements come from it)");
                    }
                    if sub.ipv6_ra_mode.is_some()
                        && net.prefix() != 64
                        && sub.ipv6_address_mode != Some(Ipv6Mode::Dhcpv6Stateful)
                    {
                        self.bad(f("cidr"), format!("SLAAC needs a /64 ({net})"));
                    }
                }
            }
        }
        for (pi, p) in c.ports.iter().enumerate() {
            if let Some(h) = &p.hostname
                && !valid_dns_name(h)
            {
                self.bad(
                    format!("ports[{pi}].hostname"),
                    format!("{h:?} is not a DNS name"),
                );
            }
            let Some(seg) = c.segments.iter().find(|s| s.vni == p.vni) else {
                continue;
            };
            if seg.subnets.is_empty() {
                continue;
            }
            for (j, ip) in p.ips.iter().enumerate() {
                let link_local = matches!(ip, IpAddr::V6(a) if a.is_unicast_link_local());
                if !link_local && !seg.subnets.iter().any(|s| s.cidr.contains(*ip)) {
                    self.bad(
                        format!("ports[{pi}].ips[{j}]"),
                        format!("{ip} is in none of VNI {}'s subnets", p.vni),
                    );
                }
            }
        }
    }

    fn check_routers(&mut self, c: &NodeConfig, segs: &HashMap<Vni, u32>) {
        let mut names = HashSet::new();
        for (ri, r) in c.routers.iter().enumerate() {
            let f = |x: &str| format!("routers[{ri}].{x}");
            if !valid_name(&r.name) {
                self.bad(
                    f("name"),
                    "must be 1 to 255 characters of letters, digits, '.', '_', '-' or ':'",
                );
            } else if !names.insert(r.name.as_str()) {
                self.bad(f("name"), format!("router name {:?} is used twice", r.name));
            }
            let mut vnis = HashSet::new();
            let mut nets: Vec<(usize, IpNetwork)> = Vec::new();
            for (ii, iface) in r.interfaces.iter().enumerate() {
                let g = |x: &str| format!("routers[{ri}].interfaces[{ii}].{x}");
                match segs.get(&iface.vni) {
                    None => self.bad(g("vni"), format!("VNI {} is not in segments", iface.vni)),
                    Some(mtu) => {
                        if let Some(m) = iface.mtu
                            && !(MIN_MTU..=*mtu).contains(&m)
                        {
                            self.bad(
                                g("mtu"),
                                format!(
                                    "{m} is out of range [{MIN_MTU}, {mtu}] (the segment's MTU)"
                                ),
                            );
                        }
                    }
                }
                if !vnis.insert(iface.vni) {
                    self.bad(
                        g("vni"),
                        format!("the router already has an interface on VNI {}", iface.vni),
                    );
                }
                if !iface.mac.is_unicast() {
                    self.bad(
                        g("mac"),
                        format!("{} is not a unicast MAC address", iface.mac),
                    );
                }
                if iface.addresses.is_empty() {
                    self.bad(g("addresses"), "an interface needs at least one address");
                }
                for (j, a) in iface.addresses.iter().enumerate() {
                    let host = a.ip();
                    let ok = host_address(host)
                        && match a {
                            IpNetwork::V4(n) => {
                                n.prefix() >= 31
                                    || (n.ip() != n.network() && n.ip() != n.broadcast())
                            }
                            IpNetwork::V6(n) => n.prefix() == 128 || n.ip() != n.network(),
                        }
                        && !matches!(host, IpAddr::V6(h) if h.is_unicast_link_local());
                    if !ok {
                        self.bad(
                            g(&format!("addresses[{j}]")),
                            format!("{a} is not a usable router address"),
                        );
                    }
                    let net = IpNetwork::new(a.network(), a.prefix()).unwrap_or(*a);
                    if let Some((oi, on)) = nets.iter().find(|(_, on)| {
                        on.is_ipv4() == net.is_ipv4()
                            && (on.contains(net.network()) || net.contains(on.network()))
                    }) {
                        self.bad(
                            g(&format!("addresses[{j}]")),
                            format!("{net} overlaps interfaces[{oi}]'s {on}"),
                        );
                    }
                    nets.push((ii, net));
                }
            }
            for (k, route) in r.routes.iter().enumerate() {
                let d = route.destination;
                if d.ip() != d.network() {
                    self.bad(
                        f(&format!("routes[{k}].destination")),
                        format!("{d} has host bits set"),
                    );
                }
                if d.is_ipv4() != route.nexthop.is_ipv4() {
                    self.bad(
                        f(&format!("routes[{k}].nexthop")),
                        format!("{} is not of {d}'s family", route.nexthop),
                    );
                } else if !nets.iter().any(|(_, n)| n.contains(route.nexthop)) {
                    self.bad(
                        f(&format!("routes[{k}].nexthop")),
                        format!("{} is on none of the router's networks", route.nexthop),
                    );
                }
            }
        }
    }

    /// A segment's gateway MAC must be a router interface on this node or a remote binding.
    fn check_gateways(&mut self, c: &NodeConfig) {
        for (si, seg) in c.segments.iter().enumerate() {
            let Some(mac) = seg.gateway_mac else { continue };
            let local = c
                .routers
                .iter()
                .flat_map(|r| &r.interfaces)
                .any(|i| i.vni == seg.vni && i.mac == mac);
            let remote = c
                .remote_bindings
                .iter()
                .any(|b| b.vni == seg.vni && b.mac == mac);
            if !local && !remote {
                self.bad(
                    format!("segments[{si}].gateway_mac"),
                    format!("{mac} is neither a router interface on VNI {} here nor a remote binding in it", seg.vni),
                );
            }
        }
    }

    fn check_limits(&mut self, c: &NodeConfig) {
        let max = usize::from(u16::MAX);
        for (what, n) in [
            ("ports", c.ports.len()),
            ("segments", c.segments.len()),
            ("remote_vteps", c.remote_vteps.len()),
            ("routers", c.routers.len()),
            (
                "router interfaces",
                c.routers.iter().map(|r| r.interfaces.len()).sum(),
            ),
        ] {
            if n > max {
                self.bad(what, format!("{n} entries; at most {max} are supported"));
            }
        }
    }
}

fn valid_name(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

/// Linux interface names: at most IFNAMSIZ-1 = 15 bytes, not "." or "..", no '/', ':' or
/// whitespace (dev_valid_name in the kernel).
fn valid_ifname(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

/// A DNS name: dot-separated labels of 1 to 63 letters, digits and hyphens (not at either end),
/// 253 characters at most; a trailing dot is allowed.
fn valid_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    (1..=253).contains(&s.len())
        && s.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn host_address(ip: IpAddr) -> bool {
    !(ip.is_unspecified() || ip.is_multicast())
}

fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(a) if a.is_broadcast())
}

/// The socket address remote VTEPs are reached at.
pub(crate) fn vtep_addr(c: &NodeConfig, ip: IpAddr) -> SocketAddr {
    SocketAddr::new(ip, c.underlay.port)
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// A small but complete configuration used by the unit tests of several modules.
    pub(crate) const EXAMPLE: &str = r#"
node = "hv1"

[underlay]
local_ip = "192.168.100.1"

[[segments]]
vni = 100
name = "tenant-a"

[[segments]]
vni = 200
mtu = 1400

[[ports]]
name = "vm-a1"
interface = "tap-a1"
vni = 100
mac = "fa:16:3e:00:00:01"
ips = ["10.0.0.1", "fd00::1"]
allowed_address_pairs = [{ ip = "10.0.0.100/32" }, { ip = "10.1.0.0/24", mac = "fa:16:3e:00:01:00" }]

[[ports]]
name = "vm-b1"
interface = "tap-b1"
vni = 200
mac = "fa:16:3e:00:00:01"
ips = ["10.0.0.1"]
port_security = false

[[remote_vteps]]
ip = "192.168.100.2"
vnis = [100, 200]

[[remote_bindings]]
vni = 100
mac = "fa:16:3e:00:00:02"
ips = ["10.0.0.2", "fd00::2"]
vtep = "192.168.100.2"
"#;
}

#[cfg(test)]
mod tests {
    use super::tests_support::EXAMPLE;
    use super::*;

    fn example() -> NodeConfig {
        NodeConfig::from_toml(EXAMPLE).unwrap()
    }

    #[test]
    fn example_is_valid_and_defaults_apply() {
        let c = example();
        assert_eq!(c.underlay.port, VXLAN_PORT);
        assert_eq!(c.underlay.mtu, 1500);
        assert!(c.learning.enabled);
        assert!(c.ports[0].port_security);
        let t = c.validate().unwrap();
        assert_eq!(t.segments.len(), 2);
        assert_eq!(t.segments[0].mtu, 1450);
        assert_eq!(t.segments[1].mtu, 1400);
    }

    #[test]
    fn json_round_trip() {
        let c = example();
        let j = serde_json::to_string(&c).unwrap();
        let back: NodeConfig = serde_json::from_str(&j).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_parse_errors() {
        let e = NodeConfig::from_toml(&EXAMPLE.replace("name = \"tenant-a\"", "nmae = \"x\""))
            .unwrap_err();
        assert!(e.to_string().contains("nmae"), "{e}");
        let e = NodeConfig::from_toml(&EXAMPLE.replace("vni = 200\nmtu", "vni = 16777216\nmtu"))
            .unwrap_err();
        assert!(e.to_string().contains("16777216"), "{e}");
        let e = NodeConfig::from_toml(&EXAMPLE.replace("fa:16:3e:00:00:02", "fa:16:3e:00:00"))
            .unwrap_err();
        assert!(e.to_string().contains("MAC"), "{e}");
    }

    fn problems(c: &NodeConfig) -> Vec<String> {
        match c.validate() {
            Ok(_) => vec![],
            Err(e) => e.problems().iter().map(ToString::to_string).collect(),
        }
    }

    fn assert_problem(c: &NodeConfig, field: &str, needle: &str) {
        let p = problems(c);
        assert!(
            p.iter()
                .any(|s| s.starts_with(&format!("{field}:")) && s.contains(needle)),
            "expected a problem at {field} mentioning {needle:?}, got {p:?}"
        );
    }

    #[test]
    fn each_problem_names_its_field() {
        let mut c = example();
        c.segments[1].mtu = Some(1460);
        assert_problem(&c, "segments[1].mtu", "out of range");

        let mut c = example();
        c.ports[1].interface = "a-very-long-interface".into();
        assert_problem(&c, "ports[1].interface", "not a valid interface name");

        let mut c = example();
        c.ports[0].vni = Vni::new(300).unwrap();
        assert_problem(&c, "ports[0].vni", "not in segments");

        let mut c = example();
        c.ports[0].mac = "01:00:5e:00:00:01".parse().unwrap();
        assert_problem(&c, "ports[0].mac", "not a unicast");

        let mut c = example();
        c.remote_bindings[0].mac = c.ports[0].mac;
        assert_problem(&c, "remote_bindings[0].mac", "already used by ports[0]");

        let mut c = example();
        c.remote_bindings[0].ips[0] = "10.0.0.1".parse().unwrap();
        assert_problem(&c, "remote_bindings[0].ips[0]", "already used by ports[0]");

        let mut c = example();
        c.remote_vteps[0].vnis = vec![Vni::new(200).unwrap()];
        assert_problem(&c, "remote_bindings[0].vtep", "does not serve VNI 100");

        let mut c = example();
        c.remote_vteps[0].ip = "fd00::9".parse().unwrap();
        assert_problem(&c, "remote_vteps[0].ip", "address family");

        let mut c = example();
        c.remote_vteps[0].ip = c.underlay.local_ip;
        assert_problem(&c, "remote_vteps[0].ip", "own VTEP");

        let mut c = example();
        c.ports[1].name = "vm-a1".into();
        assert_problem(&c, "ports[1].name", "used twice");

        let mut c = example();
        c.ports[0].ips.push("224.0.0.1".parse().unwrap());
        assert_problem(&c, "ports[0].ips[2]", "cannot be a port address");

        let mut c = example();
        c.underlay.mtu = 100;
        assert_problem(&c, "underlay.mtu", "out of range");

        let rule = |remote: Option<Vec<IpNetwork>>, set: Option<&str>| SecurityRuleConfig {
            direction: RuleDirection::Ingress,
            ethertype: RuleEtherType::IPv4,
            protocol: None,
            port_range_min: None,
            port_range_max: None,
            remote,
            remote_set: set.map(str::to_owned),
        };
        let set = |name: &str| AddressSetConfig {
            name: name.into(),
            addresses: vec!["10.0.0.9/32".parse().unwrap()],
        };
        let mut c = example();
        c.security_groups = vec![SecurityGroupConfig {
            name: "g".into(),
            rules: vec![
                rule(None, Some("members")),
                rule(None, Some("absent")),
                rule(Some(vec![]), Some("members")),
            ],
        }];
        c.address_sets = vec![set("members"), set("other"), set("other")];
        assert_problem(
            &c,
            "security_groups[0].rules[1].remote_set",
            "no address set",
        );
        assert_problem(&c, "security_groups[0].rules[2].remote_set", "not both");
        assert_problem(&c, "address_sets[2].name", "used twice");
        assert_eq!(problems(&c).len(), 3, "{:?}", problems(&c));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut c = example();
        c.ports[0].mac = MacAddr::BROADCAST;
        c.ports[1].interface = String::new();
        c.segments[1].mtu = Some(10);
        assert_eq!(problems(&c).len(), 3, "{:?}", problems(&c));
    }

    #[test]
    fn same_mac_and_ip_in_different_segments_is_fine() {
        // vm-a1 and vm-b1 share MAC and 10.0.0.1 on VNIs 100 and 200: tenants overlap freely.
        assert!(problems(&example()).is_empty());
    }
}
