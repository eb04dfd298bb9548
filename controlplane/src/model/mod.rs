//! The resources of the API, as code outside the API layer reads them.
//!
//! These types are what the store keeps (serialized as JSON documents) and what the desired-state
//! compiler of issue 6 will read from a [`crate::store::Snapshot`]. Their serde form is close to
//! Neutron's JSON (same attribute names), but the API renders them through
//! [`crate::api`] views that add derived attributes (`tenant_id`, a security group's rules, a
//! floating IP's `port_details`) and hide admin-only ones (`provider:*`, `binding:*`).
//!
//! Invariants held by every stored value (enforced by [`validate`] and the API handlers, inside
//! the transaction that writes it):
//! - a subnet's `cidr` is a network address (no host bits), its pools lie inside it, do not
//!   overlap each other and do not contain the gateway; subnets of one network do not overlap;
//! - every `fixed_ips` entry of a port is allocated to that port in the store's allocation table
//!   (unique per subnet and address) and lies inside its subnet;
//! - a port's MAC is unique in its network;
//! - a VXLAN network has a unique VNI; a flat network has a physical network used by no other
//!   flat network;
//! - every project has exactly one security group named `default`, created on first need.

pub mod ids;
pub mod request;
pub mod validate;

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
pub use weft_dataplane::wire::{MacAddr, Vni};

pub use ids::{
    FloatingIpId, NetworkId, PortForwardingId, PortId, ProjectId, Revision, RouterId,
    SecurityGroupId, SecurityGroupRuleId, StandardAttrs, SubnetId, Timestamp,
};

/// The kinds of resource the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// [`Network`].
    Network,
    /// [`Subnet`].
    Subnet,
    /// [`Port`].
    Port,
    /// [`Router`].
    Router,
    /// [`FloatingIp`].
    FloatingIp,
    /// [`SecurityGroup`].
    SecurityGroup,
    /// [`SecurityGroupRule`].
    SecurityGroupRule,
    /// [`PortForwarding`].
    PortForwarding,
    /// [`Node`] (not an API resource: agents register themselves over the node API).
    Node,
}

impl ResourceKind {
    /// The name used in the store and in the revision log (`network`, `floating_ip`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Network => "network",
            ResourceKind::Subnet => "subnet",
            ResourceKind::Port => "port",
            ResourceKind::Router => "router",
            ResourceKind::FloatingIp => "floating_ip",
            ResourceKind::SecurityGroup => "security_group",
            ResourceKind::SecurityGroupRule => "security_group_rule",
            ResourceKind::PortForwarding => "port_forwarding",
            ResourceKind::Node => "node",
        }
    }

    /// Parses [`ResourceKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "network" => ResourceKind::Network,
            "subnet" => ResourceKind::Subnet,
            "port" => ResourceKind::Port,
            "router" => ResourceKind::Router,
            "floating_ip" => ResourceKind::FloatingIp,
            "security_group" => ResourceKind::SecurityGroup,
            "security_group_rule" => ResourceKind::SecurityGroupRule,
            "port_forwarding" => ResourceKind::PortForwarding,
            "node" => ResourceKind::Node,
            _ => return None,
        })
    }
}

/// What a principal may see and change, applied by the store to every query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything (admins, and the controller's own bookkeeping).
    All,
    /// One project's resources, plus those shared with everyone (read only).
    Project {
        /// The project.
        project: ProjectId,
        /// Whether writes are allowed (members) or not (readers).
        write: bool,
    },
}

impl Scope {
    /// Whether a resource owned by `owner` may be changed under this scope.
    pub fn may_write(&self, owner: &ProjectId) -> bool {
        match self {
            Scope::All => true,
            Scope::Project { project, write } => *write && project == owner,
        }
    }

    /// Whether any write is allowed at all.
    pub fn writes(&self) -> bool {
        match self {
            Scope::All => true,
            Scope::Project { write, .. } => *write,
        }
    }

    /// Whether this scope sees every project.
    pub fn is_all(&self) -> bool {
        matches!(self, Scope::All)
    }
}

/// The segmentation of a network on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkType {
    /// A VXLAN overlay segment with its own VNI (every tenant network).
    Vxlan,
    /// Untagged on a physical network (an uplink): external networks.
    Flat,
}

impl NetworkType {
    /// Neutron's name (`vxlan`, `flat`).
    pub const fn as_str(self) -> &'static str {
        match self {
            NetworkType::Vxlan => "vxlan",
            NetworkType::Flat => "flat",
        }
    }
}

/// A layer-2 network (a VXLAN segment or a flat physical network).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Id.
    pub id: NetworkId,
    /// Owner.
    pub project_id: ProjectId,
    /// Free-form name (not unique).
    pub name: String,
    /// Free-form description.
    pub description: String,
    /// Administrative state.
    pub admin_state_up: bool,
    /// Always `ACTIVE` today.
    pub status: String,
    /// Visible to, and usable by, every project.
    pub shared: bool,
    /// An external network: routers' gateways and floating IPs come from it.
    #[serde(rename = "router:external")]
    pub external: bool,
    /// MTU of the network's ports (for VXLAN: the underlay MTU less 50 bytes by default).
    pub mtu: u32,
    /// Default `port_security_enabled` of new ports.
    pub port_security_enabled: bool,
    /// `vxlan` or `flat`.
    #[serde(rename = "provider:network_type")]
    pub network_type: NetworkType,
    /// The physical network of a flat network.
    #[serde(rename = "provider:physical_network")]
    pub physical_network: Option<String>,
    /// The VNI of a VXLAN network.
    #[serde(rename = "provider:segmentation_id")]
    pub segmentation_id: Option<Vni>,
    /// The network's subnets, in creation order.
    pub subnets: Vec<SubnetId>,
    /// Tags, sorted and unique.
    pub tags: Vec<String>,
    /// Revision number and timestamps.
    #[serde(flatten)]
    pub std: StandardAttrs,
}

/// IPv6 address configuration modes (`ipv6_ra_mode`, `ipv6_address_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ipv6Mode {
    /// Addresses from router advertisements (EUI-64 from the MAC).
    #[serde(rename = "slaac")]
    Slaac,
    /// Addresses and options from DHCPv6.
    #[serde(rename = "dhcpv6-stateful")]
    Dhcpv6Stateful,
    /// SLAAC addresses, other options from DHCPv6.
    #[serde(rename = "dhcpv6-stateless")]
    Dhcpv6Stateless,
}

impl Ipv6Mode {
    /// Whether ports get their addresses from the prefix and their MAC (EUI-64).
    pub const fn is_auto_address(self) -> bool {
        matches!(self, Ipv6Mode::Slaac | Ipv6Mode::Dhcpv6Stateless)
    }

    /// Neutron's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Ipv6Mode::Slaac => "slaac",
            Ipv6Mode::Dhcpv6Stateful => "dhcpv6-stateful",
            Ipv6Mode::Dhcpv6Stateless => "dhcpv6-stateless",
        }
    }
}

/// An inclusive range of addresses that automatic allocation draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationPool {
    /// First address.
    pub start: IpAddr,
    /// Last address.
    pub end: IpAddr,
}

/// A static route (a subnet's `host_routes`, a router's `routes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination prefix.
    pub destination: IpNetwork,
    /// Next hop.
    pub nexthop: IpAddr,
}

/// An IP subnet of a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    /// Id.
    pub id: SubnetId,
    /// Owner (the network's owner, or an admin-chosen project).
    pub project_id: ProjectId,
    /// Free-form name.
    pub name: String,
    /// Free-form description.
    pub description: String,
    /// The network.
    pub network_id: NetworkId,
    /// 4 or 6.
    pub ip_version: u8,
    /// The prefix; a network address (no host bits set).
    pub cidr: IpNetwork,
    /// The router address, if any: never allocated automatically.
    pub gateway_ip: Option<IpAddr>,
    /// Ranges for automatic allocation.
    pub allocation_pools: Vec<AllocationPool>,
    /// DNS servers handed out by DHCP.
    pub dns_nameservers: Vec<IpAddr>,
    /// Routes handed out by DHCP.
    pub host_routes: Vec<Route>,
    /// Whether the dataplane answers DHCP on this subnet.
    pub enable_dhcp: bool,
    /// What router advertisements announce (IPv6 only).
    pub ipv6_ra_mode: Option<Ipv6Mode>,
    /// How ports get addresses (IPv6 only).
    pub ipv6_address_mode: Option<Ipv6Mode>,
    /// Tags, sorted and unique.
    pub tags: Vec<String>,
    /// Revision number and timestamps.
    #[serde(flatten)]
    pub std: StandardAttrs,
}

impl Subnet {
    /// Whether ports get EUI-64 addresses here instead of allocated ones.
    pub fn is_auto_address(&self) -> bool {
        self.ipv6_address_mode
            .is_some_and(Ipv6Mode::is_auto_address)
    }
}

/// One address of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIp {
    /// The subnet the address belongs to.
    pub subnet_id: SubnetId,
    /// The address.
    pub ip_address: IpAddr,
}

/// An address (or prefix) and MAC a port may also send from (`allowed_address_pairs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPair {
    /// An address or a prefix; shown without `/32` or `/128` when it is one address.
    #[serde(with = "addr_or_cidr")]
    pub ip_address: IpNetwork,
    /// The MAC (the port's own unless given).
    pub mac_address: MacAddr,
}

/// What a node offers (`docs/node-api.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// VM ports bound to it (`binding:host_id` = its name) are configured there.
    Hypervisor,
    /// Tenant routers may be scheduled onto it.
    Router,
}

/// A node running `weft agent`, as it registered over the node API. Owned by no project and
/// never shown by the Neutron API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Its name: its certificate's common name, and the `binding:host_id` of its ports.
    pub name: String,
    /// Its VTEP address.
    pub vtep_ip: IpAddr,
    /// Its underlay MTU.
    pub underlay_mtu: u32,
    /// What it offers, sorted and unique.
    pub roles: Vec<NodeRole>,
    /// Its uplinks: physical network (Neutron's `provider:physical_network`) → host interface.
    /// External and flat networks reach this node through them.
    #[serde(default)]
    pub uplinks: BTreeMap<String, String>,
    /// Revision number and timestamps.
    #[serde(flatten)]
    pub std: StandardAttrs,
}

impl Node {
    /// Whether it offers `role`.
    pub fn has(&self, role: NodeRole) -> bool {
        self.roles.contains(&role)
    }
}

/// `device_owner` of a router's interface ports.
pub const OWNER_ROUTER_INTERFACE: &str = "network:router_interface";
/// `device_owner` of a router's gateway port.
pub const OWNER_ROUTER_GATEWAY: &str = "network:router_gateway";
/// `device_owner` of the port that holds a floating IP's address.
pub const OWNER_FLOATING_IP: &str = "network:floatingip";

/// A virtual NIC on a network (a VM's interface, a router interface, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Port {
    /// Id.
    pub id: PortId,
    /// Owner ([`ProjectId::system`] for router gateway and floating IP ports).
    pub project_id: ProjectId,
    /// Free-form name.
    pub name: String,
    /// Free-form description.
    pub description: String,
    /// The network.
    pub network_id: NetworkId,
    /// Administrative state.
    pub admin_state_up: bool,
    /// `DOWN` until an agent reports the port up (issue 6).
    pub status: String,
    /// MAC, unique in the network.
    pub mac_address: MacAddr,
    /// Addresses, each allocated to this port.
    pub fixed_ips: Vec<FixedIp>,
    /// What uses the port (a VM's id, a router's id).
    pub device_id: String,
    /// What kind of thing uses it (`compute:nova`, `network:router_interface`, ...).
    pub device_owner: String,
    /// Security groups applied to the port.
    pub security_groups: Vec<SecurityGroupId>,
    /// Anti-spoofing and security groups on (true) or off.
    pub port_security_enabled: bool,
    /// Extra addresses the port may send from.
    pub allowed_address_pairs: Vec<AddressPair>,
    /// The hypervisor the port is bound to (empty: unbound).
    #[serde(rename = "binding:host_id")]
    pub host_id: String,
    /// Tags, sorted and unique.
    pub tags: Vec<String>,
    /// Revision number and timestamps.
    #[serde(flatten)]
    pub std: StandardAttrs,
}

impl Port {
    /// Whether the port is a router's interface or gateway (managed through the router).
    pub fn is_router_owned(&self) -> bool {
        self.device_owner == OWNER_ROUTER_INTERFACE || self.device_owner == OWNER_ROUTER_GATEWAY
    }
}

/// A router's external gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayInfo {
    /// The external network.
    pub network_id: NetworkId,
    /// Source NAT of the router's internal networks behind the gateway address.
    pub enable_snat: bool,
    /// The gateway port's addresses.
    pub external_fixed_ips: Vec<FixedIp>,
}

/// A virtual router: interfaces are ports with `device_owner` `network:router_interface` and
/// `device_id` the router's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Router {
    /// Id.
    pub id: RouterId,
    /// Owner.
    pub project_id: ProjectId,
    /// Free-form name.
    pub name: String,
    /// Free-form description.
    pub description: String,
    /// Administrative state.
    pub admin_state_up: bool,
    /// Always `ACTIVE` today.
    pub status: String,
    /// The gateway, if any.
    pub external_gateway_info: Option<GatewayInfo>,
    /// The gateway port (not shown by the API, as in Neutron).
    #[serde(default)]
    pub gw_port_id: Option<PortId>,
    /// Extra routes; each next hop is on one of the router's subnets.
    pub routes: Vec<Route>,
    /// Tags, sorted and unique.
    pub tags: Vec<String>,
    /// Revision number and timestamps.
    #[serde(flatten)]
    pub std: StandardAttrs,
}

/// A public address of an external network, optionally mapped (DNAT/SNAT) to a port's address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloatingIp {
    /// Id.
    pub id: FloatingIpId,
    /// Owner.
    pub project_id: ProjectId,
    /// Free-form description.
    pub description: String,
    /// The external network the address comes from.
    pub floating_network_id: NetworkId,
    /// The public address.
    pub floating_ip_address: IpAddr,
    /// The system port holding the address (not shown by the API, as in Neutron).
    pub floating_port_id: PortId,
    /// The associated port, if any.
    pub port_id: Option<PortId>,
    /// The associated port's address it maps to.
    pub fixed_ip_address: Option<IpAddr>,
    /// The router that does the translation (gateway on the external network, interface on
    /// the port's subnet).
    pub router_id: Option<RouterId>,
    /// `ACTIVE` when associated, `DOWN` otherwise.
    pub status: String,
    /// Tags, sorted and unique.
    pub tags: Vec<String>,
    /// Revision number and timestamps.
    #[serde(flatten)]
    pub std: StandardAttrs,
}

/// The transport protocols a port forwarding forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl ForwardProtocol {
    /// Neutron's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ForwardProtocol::Tcp => "tcp",
            ForwardProtocol::Udp => "udp",
        }
    }
}

/// A floating IP port forwarding (Neutron's `floating-ip-port-forwarding`): a TCP or UDP port
/// of a floating IP that is associated with no port, forwarded to a port of one fixed IPv4
/// address of a port behind the floating IP's router.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortForwarding {
    /// Id.
    pub id: PortForwardingId,
    /// Owner (the floating IP's).
    pub project_id: ProjectId,
    /// The floating IP.
    pub floatingip_id: FloatingIpId,
    /// TCP or UDP.
    pub protocol: ForwardProtocol,
    /// The floating IP's port.
    pub external_port: u16,
    /// The port traffic is forwarded to.
    pub internal_port_id: PortId,
    /// One of its fixed IPv4 addresses.
    pub internal_ip_address: IpAddr,
    /// Its port.
    pub internal_port: u16,
    /// Free-form description.
    pub description: String,
    /// Revision number and timestamps.
    #[serde(flatten)]
    pub std: StandardAttrs,
}

/// A set of allow rules applied to ports (stateful).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroup {
    /// Id.
    pub id: SecurityGroupId,
    /// Owner.
    pub project_id: ProjectId,
    /// Name (`default` for the project's default group).
    pub name: String,
    /// Free-form description.
    pub description: String,
    /// Always true (stateful filtering).
    pub stateful: bool,
    /// Tags, sorted and unique.
    pub tags: Vec<String>,
    /// Revision number and timestamps.
    #[serde(flatten)]
    pub std: StandardAttrs,
}

/// Traffic direction of a rule, seen from the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Towards the port.
    Ingress,
    /// From the port.
    Egress,
}

/// IP version of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EtherType {
    /// IPv4.
    IPv4,
    /// IPv6.
    IPv6,
}

/// One allow rule of a security group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroupRule {
    /// Id.
    pub id: SecurityGroupRuleId,
    /// Owner (the group's).
    pub project_id: ProjectId,
    /// The group.
    pub security_group_id: SecurityGroupId,
    /// Direction.
    pub direction: Direction,
    /// IP version.
    pub ethertype: EtherType,
    /// `null` (any), a name (`tcp`, `icmp`, ...) or a number as a string, as given.
    pub protocol: Option<String>,
    /// First port (TCP/UDP/SCTP) or ICMP type.
    pub port_range_min: Option<u16>,
    /// Last port or ICMP code.
    pub port_range_max: Option<u16>,
    /// Remote prefix.
    pub remote_ip_prefix: Option<IpNetwork>,
    /// Remote group (ports in it).
    pub remote_group_id: Option<SecurityGroupId>,
    /// Free-form description.
    pub description: String,
    /// Revision number and timestamps.
    #[serde(flatten)]
    pub std: StandardAttrs,
}

/// Serializes an [`IpNetwork`] as a bare address when it is a single host.
mod addr_or_cidr {
    use std::net::IpAddr;

    use ipnetwork::IpNetwork;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &IpNetwork, s: S) -> Result<S::Ok, S::Error> {
        let full = match n {
            IpNetwork::V4(_) => 32,
            IpNetwork::V6(_) => 128,
        };
        if n.prefix() == full {
            s.collect_str(&n.ip())
        } else {
            s.collect_str(n)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpNetwork, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(IpNetwork::from(ip));
        }
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Every resource type the store holds implements this: how it is indexed.
pub trait Resource:
    Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static
{
    /// Its kind.
    const KIND: ResourceKind;
    /// Its id as a string (the store's key).
    fn key(&self) -> String;
    /// Its owner.
    fn project(&self) -> &ProjectId;
    /// Its name ("" if it has none).
    fn name(&self) -> &str {
        ""
    }
    /// The resource it belongs to, indexed: a subnet's or port's network, a rule's group, a
    /// floating IP's external network, a router's gateway network, a port forwarding's
    /// floating IP.
    fn parent(&self) -> Option<String> {
        None
    }
    /// A second indexed reference: a floating IP's port, a rule's remote group, a port
    /// forwarding's internal port.
    fn reference(&self) -> Option<String> {
        None
    }
    /// A port's `device_id` (indexed, for router interfaces).
    fn device(&self) -> Option<&str> {
        None
    }
    /// Whether every project may read it (shared or external networks, their subnets).
    fn visible_to_all(&self) -> bool {
        false
    }
    /// The standard attributes.
    fn std_mut(&mut self) -> &mut StandardAttrs;
}

impl Resource for Network {
    const KIND: ResourceKind = ResourceKind::Network;
    fn key(&self) -> String {
        self.id.to_string()
    }
    fn project(&self) -> &ProjectId {
        &self.project_id
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn visible_to_all(&self) -> bool {
        self.shared || self.external
    }
    fn std_mut(&mut self) -> &mut StandardAttrs {
        &mut self.std
    }
}

impl Resource for Subnet {
    const KIND: ResourceKind = ResourceKind::Subnet;
    fn key(&self) -> String {
        self.id.to_string()
    }
    fn project(&self) -> &ProjectId {
        &self.project_id
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn parent(&self) -> Option<String> {
        Some(self.network_id.to_string())
    }
    fn std_mut(&mut self) -> &mut StandardAttrs {
        &mut self.std
    }
}

impl Resource for Port {
    const KIND: ResourceKind = ResourceKind::Port;
    fn key(&self) -> String {
        self.id.to_string()
    }
    fn project(&self) -> &ProjectId {
        &self.project_id
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn parent(&self) -> Option<String> {
        Some(self.network_id.to_string())
    }
    fn device(&self) -> Option<&str> {
        Some(&self.device_id)
    }
    fn std_mut(&mut self) -> &mut StandardAttrs {
        &mut self.std
    }
}

impl Resource for Router {
    const KIND: ResourceKind = ResourceKind::Router;
    fn key(&self) -> String {
        self.id.to_string()
    }
    fn project(&self) -> &ProjectId {
        &self.project_id
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn parent(&self) -> Option<String> {
        self.external_gateway_info
            .as_ref()
            .map(|g| g.network_id.to_string())
    }
    fn std_mut(&mut self) -> &mut StandardAttrs {
        &mut self.std
    }
}

impl Resource for FloatingIp {
    const KIND: ResourceKind = ResourceKind::FloatingIp;
    fn key(&self) -> String {
        self.id.to_string()
    }
    fn project(&self) -> &ProjectId {
        &self.project_id
    }
    fn parent(&self) -> Option<String> {
        Some(self.floating_network_id.to_string())
    }
    fn reference(&self) -> Option<String> {
        self.port_id.map(|p| p.to_string())
    }
    fn std_mut(&mut self) -> &mut StandardAttrs {
        &mut self.std
    }
}

impl Resource for SecurityGroup {
    const KIND: ResourceKind = ResourceKind::SecurityGroup;
    fn key(&self) -> String {
        self.id.to_string()
    }
    fn project(&self) -> &ProjectId {
        &self.project_id
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn std_mut(&mut self) -> &mut StandardAttrs {
        &mut self.std
    }
}

impl Resource for SecurityGroupRule {
    const KIND: ResourceKind = ResourceKind::SecurityGroupRule;
    fn key(&self) -> String {
        self.id.to_string()
    }
    fn project(&self) -> &ProjectId {
        &self.project_id
    }
    fn parent(&self) -> Option<String> {
        Some(self.security_group_id.to_string())
    }
    fn reference(&self) -> Option<String> {
        self.remote_group_id.map(|g| g.to_string())
    }
    fn std_mut(&mut self) -> &mut StandardAttrs {
        &mut self.std
    }
}

impl Resource for PortForwarding {
    const KIND: ResourceKind = ResourceKind::PortForwarding;
    fn key(&self) -> String {
        self.id.to_string()
    }
    fn project(&self) -> &ProjectId {
        &self.project_id
    }
    fn parent(&self) -> Option<String> {
        Some(self.floatingip_id.to_string())
    }
    fn reference(&self) -> Option<String> {
        Some(self.internal_port_id.to_string())
    }
    fn std_mut(&mut self) -> &mut StandardAttrs {
        &mut self.std
    }
}

/// The owner of every node: nobody (only [`Scope::All`] reads or writes them).
static NO_PROJECT: std::sync::LazyLock<ProjectId> = std::sync::LazyLock::new(ProjectId::system);

impl Resource for Node {
    const KIND: ResourceKind = ResourceKind::Node;
    fn key(&self) -> String {
        self.name.clone()
    }
    fn project(&self) -> &ProjectId {
        &NO_PROJECT
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn std_mut(&mut self) -> &mut StandardAttrs {
        &mut self.std
    }
}

/// A new random MAC with Neutron's default OpenStack prefix `fa:16:3e`.
pub fn random_mac() -> MacAddr {
    let r = uuid::Uuid::new_v4();
    let b = r.as_bytes();
    MacAddr([0xfa, 0x16, 0x3e, b[0], b[1], b[2]])
}
