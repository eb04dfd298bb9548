//! The desired-state compiler: from the API's resources to one [`NodeConfig`] per registered
//! node (`docs/node-api.md`, "What the compiler puts in a node's configuration").
//!
//! [`Compiler::update`] takes a whole [`Snapshot`] and the change records since the previous
//! one, rebuilds the (cheap, in-memory) index of who is where, and recompiles only the nodes
//! whose inputs the changes can touch: nodes with a segment on a changed network (before or
//! after the change), the hosts of changed ports, the nodes of changed routers and of the
//! routers of changed floating IPs, and for security groups the nodes of the groups' members
//! (`Index::touched`). Without records (the first run, or a gap) every node is
//! compiled. Every configuration is validated with the dataplane's own checks before it is
//! handed out; one that does not validate is logged and the node keeps its previous one.
//!
//! Security groups: every local port with port security gets its groups, each compiled once
//! per node with its rules; a rule naming a remote group names an address set of the same name
//! (the group's id) holding the addresses of that group's members (every port in it, wherever
//! it is), which the node gets once however many rules name it. A member joining or leaving
//! then changes one set, and travels as its addresses in a delta (`config_delta`).
//!
//! Networks are overlays (VXLAN, a VNI each) or uplink networks (external or flat): a node
//! reaches an uplink network through its own uplink for the network's physical network
//! (`Node::uplinks`), never over VXLAN, so uplink segments have no remote VTEPs or bindings.
//! A node without that uplink gets nothing of the network (ports and router gateways on it
//! are left out, logged). Flat networks have no VNI: they get a key from [`UPLINK_VNIS`].
//!
//! Routers are placed on nodes with the `router` role: a `weft:node=NAME` tag places one
//! explicitly; otherwise it stays where it was, or goes to the router node with the fewest
//! routers; a router with a gateway only to (or stays on) a node with an uplink for its
//! external network, when one exists. Its gateway port becomes an interface on the external
//! segment with the default routes via the external subnets' gateways; its associated
//! floating IPs become 1:1 NAT entries, and the port forwardings of its floating IPs port
//! forwarding entries. NAT entries the dataplane would refuse are left out and logged.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use ipnetwork::IpNetwork;
use weft_dataplane::config::{
    AddressPair, AddressSetConfig, FloatingIpConfig, ForwardProtocol as DpForwardProtocol,
    GatewayConfig, Ipv6Mode as DpIpv6Mode, LearningConfig, NodeConfig, PortConfig,
    PortForwardingConfig, RemoteBindingConfig, RemoteVtepConfig, RouteConfig, RouterConfig,
    RouterInterfaceConfig, RuleDirection, RuleEtherType, SecurityGroupConfig, SecurityRuleConfig,
    SegmentConfig, SubnetConfig, UnderlayConfig, VXLAN_PORT,
};
use weft_dataplane::wire::vxlan::Vni;

use crate::model::{
    Direction, EtherType, FloatingIp, ForwardProtocol, Ipv6Mode, Network, NetworkType, Node,
    NodeRole, OWNER_ROUTER_GATEWAY, OWNER_ROUTER_INTERFACE, Port, PortForwarding, ResourceKind,
    Router, SecurityGroupId, SecurityGroupRule, Subnet,
};
use crate::store::{RevisionRecord, Snapshot};

/// The tag that pins a router to a node.
pub const PLACEMENT_TAG: &str = "weft:node=";

/// The VNIs the compiler gives networks that have no segmentation id of their own (flat
/// networks): a node's dataplane keys every segment by VNI, even one reached through an uplink
/// and never carried over VXLAN. The API hands out none of these to VXLAN networks (its
/// default range ends below, `--vni-range` may not reach into it, and an explicit
/// `provider:segmentation_id` in it is refused), so a key never collides with a tenant VNI.
pub const UPLINK_VNIS: RangeInclusive<u32> = 0xFF_0000..=0xFF_FFFF;

/// Uplinks tried, in order, for an external network without a physical network (an external
/// VXLAN network).
const DEFAULT_UPLINKS: [&str; 2] = ["public", "default"];

/// The host-side interface name of a port: `tap` + the first 11 characters of its id, as Nova's
/// libvirt driver names it.
pub fn tap_name(port_id: &str) -> String {
    let n = port_id
        .char_indices()
        .nth(11)
        .map_or(port_id.len(), |(i, _)| i);
    format!("tap{}", &port_id[..n])
}

/// Who is where, derived from one snapshot.
#[derive(Debug, Default)]
struct Index {
    nodes: BTreeMap<String, Node>,
    /// Networks a node can have a segment of, by id: VXLAN networks with a VNI, and uplink
    /// networks (external or flat).
    networks: HashMap<String, Network>,
    /// Each network's VNI: its segmentation id, or one of [`UPLINK_VNIS`].
    vnis: HashMap<String, Vni>,
    subnets: HashMap<String, Subnet>,
    /// Ports by network id.
    ports_by_network: HashMap<String, Vec<Port>>,
    routers: HashMap<String, Router>,
    /// Interface ports by router id (merged per network, see `merge_router_ports`).
    router_ports: HashMap<String, Vec<Port>>,
    /// Every interface port's id by router id, merged ones included.
    router_port_ids: HashMap<String, Vec<String>>,
    /// (node, uplink interface) → the one network that uses it there (see `claim_uplinks`).
    uplink_owner: HashMap<(String, String), String>,
    /// The networks left out of a node because another holds the uplink they would use there.
    uplink_conflicts: BTreeSet<UplinkConflict>,
    /// The gateway port of each router that has one.
    gateway_ports: HashMap<String, Port>,
    /// Associated floating IPs by router id.
    floating_ips: HashMap<String, Vec<FloatingIp>>,
    /// Port forwardings by router id, with their floating IP's address.
    port_forwardings: HashMap<String, Vec<(IpAddr, PortForwarding)>>,
    /// Floating IP id → its router (associated, or used by port forwardings).
    fip_router: HashMap<String, String>,
    /// Port forwarding id → its floating IP.
    pf_fip: HashMap<String, String>,
    /// Router id → node.
    placement: BTreeMap<String, String>,
    /// Node → networks it has a segment on.
    node_networks: HashMap<String, BTreeSet<String>>,
    /// Port id → its network and `binding:host_id`.
    port_location: HashMap<String, (String, String)>,
    /// Security groups (every one that exists) → their rules, by rule id.
    groups: HashMap<SecurityGroupId, Vec<SecurityGroupRule>>,
    /// Rule id → its group.
    rule_group: HashMap<String, SecurityGroupId>,
    /// Group → the groups that have a rule naming it as their remote group.
    remote_users: HashMap<SecurityGroupId, BTreeSet<SecurityGroupId>>,
    /// Group → the addresses of its members (every port in it, bound or not): fixed IPs as
    /// host networks and allowed address pairs. Sorted, unique.
    group_addrs: HashMap<SecurityGroupId, Vec<IpNetwork>>,
    /// Group → the nodes its members' ports are configured on.
    group_nodes: HashMap<SecurityGroupId, BTreeSet<String>>,
    /// Port id → what remote groups read of it: its groups and addresses.
    port_sg: HashMap<String, (Vec<SecurityGroupId>, Vec<IpNetwork>)>,
    /// Groups compiled so far from this snapshot.
    sg_cache: RefCell<HashMap<SecurityGroupId, SecurityGroupConfig>>,
}

impl Index {
    fn build(
        snap: &Snapshot,
        previous: &BTreeMap<String, String>,
        previous_uplinks: &HashMap<(String, String), String>,
        previous_conflicts: &BTreeSet<UplinkConflict>,
    ) -> Index {
        let mut ix = Index {
            nodes: snap
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.clone()))
                .collect(),
            ..Index::default()
        };
        ix.vnis = vni_keys(&snap.networks);
        for n in &snap.networks {
            if ix.vnis.contains_key(&n.id.to_string()) {
                ix.networks.insert(n.id.to_string(), n.clone());
            }
        }
        for s in &snap.subnets {
            ix.subnets.insert(s.id.to_string(), s.clone());
        }
        for p in &snap.ports {
            let net = p.network_id.to_string();
            if !ix.networks.contains_key(&net) {
                continue;
            }
            if p.device_owner == OWNER_ROUTER_INTERFACE {
                ix.router_ports
                    .entry(p.device_id.clone())
                    .or_default()
                    .push(p.clone());
            }
            if p.device_owner == OWNER_ROUTER_GATEWAY {
                ix.gateway_ports.insert(p.device_id.clone(), p.clone());
            }
            ix.port_location
                .insert(p.id.to_string(), (net.clone(), p.host_id.clone()));
            ix.ports_by_network.entry(net).or_default().push(p.clone());
        }
        for r in &snap.routers {
            ix.routers.insert(r.id.to_string(), r.clone());
        }
        // A gateway port counts only while its router names it.
        ix.gateway_ports.retain(|r, p| {
            ix.routers
                .get(r)
                .is_some_and(|r| r.external_gateway_info.is_some() && r.gw_port_id == Some(p.id))
        });
        let mut fips: HashMap<String, &FloatingIp> = HashMap::new();
        for f in &snap.floating_ips {
            let Some(r) = f.router_id else { continue };
            let r = r.to_string();
            ix.fip_router.insert(f.id.to_string(), r.clone());
            fips.insert(f.id.to_string(), f);
            if f.port_id.is_some() {
                ix.floating_ips.entry(r).or_default().push(f.clone());
            }
        }
        for pf in &snap.port_forwardings {
            let fip = pf.floatingip_id.to_string();
            ix.pf_fip.insert(pf.id.to_string(), fip.clone());
            // A floating IP associated with a port forwards nothing (the API refuses both).
            if let Some(f) = fips.get(&fip).filter(|f| f.port_id.is_none())
                && let Some(r) = f.router_id
            {
                ix.port_forwardings
                    .entry(r.to_string())
                    .or_default()
                    .push((f.floating_ip_address, pf.clone()));
            }
        }
        ix.claim_uplinks(previous_uplinks, previous_conflicts);
        ix.merge_router_ports();
        ix.place_routers(previous);
        let mut node_networks: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (net, ports) in &ix.ports_by_network {
            for p in ports {
                let Some(node) = ix.node_of(p) else { continue };
                // A node reaches an uplink network only through its uplink for it.
                if ix.is_uplink(net) && ix.uplink_of(node, net).is_none() {
                    continue;
                }
                node_networks
                    .entry(node.to_owned())
                    .or_default()
                    .insert(net.clone());
            }
        }
        ix.node_networks = node_networks;
        ix.index_security_groups(snap);
        ix
    }

    /// Whether a network is reached through uplinks (external or flat), not VXLAN.
    fn is_uplink(&self, net: &str) -> bool {
        self.networks
            .get(net)
            .is_some_and(|n| n.external || n.network_type == NetworkType::Flat)
    }

    /// The host interface through which `node` reaches an uplink network: its uplink for the
    /// network's physical network, or (an external network without one) its `public`, else
    /// its `default` uplink; `None` if another network holds that interface on the node.
    fn uplink_of(&self, node: &str, net: &str) -> Option<&str> {
        let iface = self.wanted_uplink(node, net)?;
        (self
            .uplink_owner
            .get(&(node.to_owned(), iface.to_owned()))?
            == net)
            .then_some(iface)
    }

    fn wanted_uplink(&self, node: &str, net: &str) -> Option<&str> {
        let n = self.nodes.get(node)?;
        match &self.networks.get(net)?.physical_network {
            Some(phys) => n.uplinks.get(phys),
            None => DEFAULT_UPLINKS.iter().find_map(|u| n.uplinks.get(*u)),
        }
        .map(String::as_str)
    }

    /// One uplink network per interface and node: the dataplane refuses an interface used by
    /// two segments (two external VXLAN networks both fall back to `public`, or one of them
    /// and a flat network on physical network `public`). The network that had it keeps it,
    /// else the oldest (creation time, then id); the others are left out on that node, with
    /// a warning, rather than making its whole configuration invalid.
    ///
    /// Each conflict is logged when it appears and when it goes, not on every compile.
    fn claim_uplinks(
        &mut self,
        previous: &HashMap<(String, String), String>,
        previous_conflicts: &BTreeSet<UplinkConflict>,
    ) {
        let mut nets: Vec<&Network> = self
            .networks
            .values()
            .filter(|n| self.is_uplink(&n.id.to_string()))
            .collect();
        nets.sort_by_key(|n| (n.std.created_at, n.id));
        let mut owner: HashMap<(String, String), String> = previous
            .iter()
            .filter(|((node, iface), net)| self.wanted_uplink(node, net) == Some(iface.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut conflicts = BTreeSet::new();
        for node in self.nodes.keys() {
            for n in &nets {
                let net = n.id.to_string();
                let Some(iface) = self.wanted_uplink(node, &net) else {
                    continue;
                };
                let key = (node.clone(), iface.to_owned());
                match owner.get(&key) {
                    None => {
                        owner.insert(key, net);
                    }
                    Some(first) if *first == net => {}
                    Some(first) => {
                        conflicts.insert(UplinkConflict {
                            node: node.clone(),
                            interface: iface.to_owned(),
                            network: net,
                            holder: first.clone(),
                        });
                    }
                }
            }
        }
        for c in conflicts.difference(previous_conflicts) {
            tracing::warn!(
                node = %c.node, interface = %c.interface, network = %c.network, holder = %c.holder,
                "uplink already used by another network on this node; the network is left out there"
            );
        }
        for c in previous_conflicts.difference(&conflicts) {
            tracing::info!(
                node = %c.node, interface = %c.interface, network = %c.network,
                "uplink conflict over: the network is no longer left out for it"
            );
        }
        self.uplink_owner = owner;
        self.uplink_conflicts = conflicts;
    }

    /// Groups, their rules, remote-group users and member addresses.
    fn index_security_groups(&mut self, snap: &Snapshot) {
        for g in &snap.security_groups {
            self.groups.entry(g.id).or_default();
        }
        for r in &snap.security_group_rules {
            self.rule_group
                .insert(r.id.to_string(), r.security_group_id);
            if let Some(remote) = r.remote_group_id {
                self.remote_users
                    .entry(remote)
                    .or_default()
                    .insert(r.security_group_id);
            }
            if let Some(rules) = self.groups.get_mut(&r.security_group_id) {
                rules.push(r.clone());
            }
        }
        for p in &snap.ports {
            if p.security_groups.is_empty() {
                continue;
            }
            let addrs = member_addresses(p);
            for g in &p.security_groups {
                self.group_addrs
                    .entry(*g)
                    .or_default()
                    .extend(addrs.iter().copied());
            }
            if let Some(node) = self.node_of(p).map(str::to_owned) {
                for g in &p.security_groups {
                    self.group_nodes.entry(*g).or_default().insert(node.clone());
                }
            }
            self.port_sg
                .insert(p.id.to_string(), (p.security_groups.clone(), addrs));
        }
        for a in self.group_addrs.values_mut() {
            a.sort();
            a.dedup();
        }
    }

    /// Neutron gives a router one port per IPv4 subnet (and one for the IPv6 subnets) of a
    /// network; the dataplane's router has one interface per segment. The ports of one router
    /// on one network become one: the first port holding an IPv4 address (else the first by
    /// id) keeps its MAC and takes the others' addresses; the others are dropped from the
    /// index, so hypervisors see one gateway MAC answering for all of them.
    fn merge_router_ports(&mut self) {
        for (router, ports) in &mut self.router_ports {
            self.router_port_ids.insert(
                router.clone(),
                ports.iter().map(|p| p.id.to_string()).collect(),
            );
            ports.sort_by(|a, b| {
                let v4 = |p: &Port| !p.fixed_ips.iter().any(|f| f.ip_address.is_ipv4());
                (a.network_id.to_string(), v4(a), a.id.to_string()).cmp(&(
                    b.network_id.to_string(),
                    v4(b),
                    b.id.to_string(),
                ))
            });
            let mut merged: Vec<Port> = Vec::with_capacity(ports.len());
            for p in ports.drain(..) {
                match merged.last_mut() {
                    Some(first) if first.network_id == p.network_id => {
                        first.fixed_ips.extend(p.fixed_ips.iter().copied());
                    }
                    _ => merged.push(p),
                }
            }
            *ports = merged;
        }
        let keep: HashMap<String, Port> = self
            .router_ports
            .values()
            .flatten()
            .map(|p| (p.id.to_string(), p.clone()))
            .collect();
        for ports in self.ports_by_network.values_mut() {
            ports.retain_mut(|p| {
                if p.device_owner != OWNER_ROUTER_INTERFACE {
                    return true;
                }
                match keep.get(&p.id.to_string()) {
                    Some(m) => {
                        p.fixed_ips.clone_from(&m.fixed_ips);
                        true
                    }
                    None => false,
                }
            });
        }
    }

    /// Places every router that has interfaces and is up: the tag first, then where it was,
    /// then the least loaded router node (ties by name). Routers are placed oldest first, so
    /// placement does not depend on hash order.
    fn place_routers(&mut self, previous: &BTreeMap<String, String>) {
        let router_nodes: Vec<&str> = self
            .nodes
            .values()
            .filter(|n| n.has(NodeRole::Router))
            .map(|n| n.name.as_str())
            .collect();
        let mut load: BTreeMap<&str, usize> = router_nodes.iter().map(|n| (*n, 0)).collect();
        let mut routers: Vec<&Router> = self
            .routers
            .values()
            .filter(|r| r.admin_state_up && self.router_ports.contains_key(&r.id.to_string()))
            .collect();
        routers.sort_by(|a, b| {
            (a.std.created_at.to_string(), a.id.to_string())
                .cmp(&(b.std.created_at.to_string(), b.id.to_string()))
        });
        // A router with a gateway goes to a node with an uplink for its external network, if
        // any router node has one.
        let suits = |r: &Router, node: &str| -> bool {
            let Some(g) = &r.external_gateway_info else {
                return true;
            };
            let net = g.network_id.to_string();
            self.uplink_of(node, &net).is_some()
                || !router_nodes
                    .iter()
                    .any(|n| self.uplink_of(n, &net).is_some())
        };
        let mut placement = BTreeMap::new();
        let mut unplaced = Vec::new();
        for r in &routers {
            let id = r.id.to_string();
            let tagged = r
                .tags
                .iter()
                .find_map(|t| t.strip_prefix(PLACEMENT_TAG))
                .filter(|n| load.contains_key(n));
            let sticky = previous
                .get(&id)
                .map(String::as_str)
                .filter(|n| load.contains_key(n) && suits(r, n));
            match tagged.or(sticky) {
                Some(n) => {
                    *load.entry(n).or_default() += 1;
                    placement.insert(id, n.to_owned());
                }
                None => unplaced.push(r),
            }
        }
        for r in unplaced {
            let Some((&n, _)) = load
                .iter()
                .filter(|(n, _)| suits(r, n))
                .min_by_key(|(n, l)| (**l, **n))
            else {
                break;
            };
            *load.entry(n).or_default() += 1;
            placement.insert(r.id.to_string(), n.to_owned());
        }
        self.placement = placement;
    }

    /// The node a port's traffic enters on: a router interface's or gateway's router node, a
    /// VM port's host (if it is a registered hypervisor). `None`: nowhere (unbound, admin
    /// down, a floating IP's address holder, ...).
    fn node_of(&self, p: &Port) -> Option<&str> {
        if p.device_owner == OWNER_ROUTER_INTERFACE
            || (p.device_owner == OWNER_ROUTER_GATEWAY
                && self
                    .gateway_ports
                    .get(&p.device_id)
                    .is_some_and(|g| g.id == p.id))
        {
            return self.placement.get(&p.device_id).map(String::as_str);
        }
        if p.device_owner.starts_with("network:") || !p.admin_state_up || p.host_id.is_empty() {
            return None;
        }
        self.nodes
            .get(&p.host_id)
            .filter(|n| n.has(NodeRole::Hypervisor))
            .map(|n| n.name.as_str())
    }

    fn vni(&self, net: &str) -> Option<Vni> {
        self.vnis.get(net).copied()
    }

    /// One node's configuration.
    fn compile(&self, node: &Node, revision: u64) -> NodeConfig {
        let name = node.name.as_str();
        let overhead = if node.vtep_ip.is_ipv4() { 50 } else { 70 };
        let max_mtu = node.underlay_mtu.saturating_sub(overhead);
        let mut cfg = NodeConfig {
            node: name.to_owned(),
            revision,
            underlay: UnderlayConfig {
                local_ip: node.vtep_ip,
                port: VXLAN_PORT,
                mtu: node.underlay_mtu,
            },
            learning: LearningConfig::default(),
            segments: Vec::new(),
            ports: Vec::new(),
            remote_vteps: Vec::new(),
            remote_bindings: Vec::new(),
            routers: Vec::new(),
            security_groups: Vec::new(),
            address_sets: Vec::new(),
            limits: Default::default(),
        };
        let empty = BTreeSet::new();
        let nets = self.node_networks.get(name).unwrap_or(&empty);
        let mut vteps: BTreeMap<IpAddr, BTreeSet<Vni>> = BTreeMap::new();
        let mut used_groups: BTreeSet<SecurityGroupId> = BTreeSet::new();
        for net_id in nets {
            let (Some(net), Some(vni)) = (self.networks.get(net_id), self.vni(net_id)) else {
                continue;
            };
            let ports = self
                .ports_by_network
                .get(net_id)
                .map_or(&[][..], Vec::as_slice);
            let uplink = if self.is_uplink(net_id) {
                match self.uplink_of(name, net_id) {
                    Some(u) => Some(u.to_owned()),
                    None => continue,
                }
            } else {
                None
            };
            let is_uplink = uplink.is_some();
            cfg.segments
                .push(self.segment(net, vni, ports, max_mtu, name, uplink));
            for p in ports {
                let Some(at) = self.node_of(p) else { continue };
                let ips: Vec<IpAddr> = p.fixed_ips.iter().map(|f| f.ip_address).collect();
                if at == name {
                    if !p.is_router_owned() {
                        let groups = self.port_groups(p);
                        used_groups.extend(groups.iter().copied());
                        cfg.ports.push(PortConfig {
                            name: p.id.to_string(),
                            interface: tap_name(&p.id.to_string()),
                            vni,
                            mac: p.mac_address,
                            ips,
                            port_security: p.port_security_enabled,
                            allowed_address_pairs: p
                                .allowed_address_pairs
                                .iter()
                                .map(|a| AddressPair {
                                    ip: a.ip_address,
                                    mac: Some(a.mac_address),
                                })
                                .collect(),
                            hostname: None,
                            // Always a list under the controller: [] lets nothing in.
                            security_groups: Some(groups.iter().map(ToString::to_string).collect()),
                            project: p.project_id.to_string(),
                        });
                    }
                    continue;
                }
                // What is behind another node's uplink is reached through ours, not VXLAN.
                if is_uplink {
                    continue;
                }
                let Some(other) = self.nodes.get(at) else {
                    continue;
                };
                // A VTEP of the other address family cannot be reached from this one.
                if other.vtep_ip.is_ipv4() != node.vtep_ip.is_ipv4()
                    || other.vtep_ip == node.vtep_ip
                {
                    continue;
                }
                vteps.entry(other.vtep_ip).or_default().insert(vni);
                cfg.remote_bindings.push(RemoteBindingConfig {
                    vni,
                    mac: p.mac_address,
                    ips,
                    vtep: other.vtep_ip,
                });
            }
        }
        cfg.remote_vteps = vteps
            .into_iter()
            .map(|(ip, vnis)| RemoteVtepConfig {
                ip,
                vnis: vnis.into_iter().collect(),
            })
            .collect();
        for (router_id, at) in &self.placement {
            if at != name {
                continue;
            }
            if let Some(r) = self.router(router_id, name, nets) {
                cfg.routers.push(r);
            }
        }
        for (net_id, ports) in &self.ports_by_network {
            if !self.is_uplink(net_id) || nets.contains(net_id) {
                continue;
            }
            for p in ports.iter().filter(|p| !p.is_router_owned()) {
                if self.node_of(p) == Some(name) {
                    tracing::warn!(node = name, port = %p.id, network = %net_id,
                        physical_network = ?self.networks.get(net_id).and_then(|n| n.physical_network.as_deref()),
                        "port left out: the node has no uplink for its network");
                }
            }
        }
        cfg.security_groups = used_groups
            .iter()
            .map(|g| self.security_group(*g))
            .collect();
        let remote_groups: BTreeSet<&str> = cfg
            .security_groups
            .iter()
            .flat_map(|g| &g.rules)
            .filter_map(|r| r.remote_set.as_deref())
            .collect();
        cfg.address_sets = remote_groups
            .into_iter()
            .map(|name| AddressSetConfig {
                name: name.to_owned(),
                addresses: name
                    .parse::<SecurityGroupId>()
                    .ok()
                    .and_then(|id| self.group_addrs.get(&id))
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        cfg.sort_by_key();
        cfg
    }

    /// The groups filtering a local port: none without port security (nothing is filtered
    /// then); groups that no longer exist are left out.
    fn port_groups(&self, p: &Port) -> BTreeSet<SecurityGroupId> {
        if !p.port_security_enabled {
            return BTreeSet::new();
        }
        p.security_groups
            .iter()
            .filter(|g| self.groups.contains_key(g))
            .copied()
            .collect()
    }

    /// A group with its rules, a remote group naming the address set of its members'
    /// addresses (see `address_sets`): the same on every node, so compiled once per snapshot.
    /// Rules the dataplane would refuse are left out (and logged) rather than making the whole
    /// node's configuration invalid.
    fn security_group(&self, id: SecurityGroupId) -> SecurityGroupConfig {
        if let Some(g) = self.sg_cache.borrow().get(&id) {
            return g.clone();
        }
        let mut rules: Vec<SecurityRuleConfig> = Vec::new();
        for r in self.groups.get(&id).map_or(&[][..], Vec::as_slice) {
            match rule_config(r) {
                Ok(c) => rules.push(c),
                Err(why) => tracing::warn!(group = %id, rule = %r.id, reason = %why,
                    "security group rule left out of node configurations"),
            }
        }
        rules.sort_by(|a, b| rule_order(a).cmp(&rule_order(b)));
        rules.dedup();
        let g = SecurityGroupConfig {
            name: id.to_string(),
            rules,
        };
        self.sg_cache.borrow_mut().insert(id, g.clone());
        g
    }

    fn segment(
        &self,
        net: &Network,
        vni: Vni,
        ports: &[Port],
        max_mtu: u32,
        node: &str,
        uplink: Option<String>,
    ) -> SegmentConfig {
        let net_id = net.id.to_string();
        // The gateway MAC: a placed router's interface on this network, preferring the one that
        // holds a subnet's gateway address. On an uplink segment, only one on this node (other
        // nodes' interfaces are no remote bindings there).
        let placed_interfaces: Vec<&Port> = ports
            .iter()
            .filter(|p| {
                p.device_owner == OWNER_ROUTER_INTERFACE
                    && self
                        .placement
                        .get(&p.device_id)
                        .is_some_and(|n| uplink.is_none() || n == node)
            })
            .collect();
        let gateways: BTreeSet<IpAddr> = net
            .subnets
            .iter()
            .filter_map(|s| self.subnets.get(&s.to_string()))
            .filter_map(|s| s.gateway_ip)
            .collect();
        let gateway_port = placed_interfaces
            .iter()
            .find(|p| p.fixed_ips.iter().any(|f| gateways.contains(&f.ip_address)))
            .or(placed_interfaces.first());
        let gateway_mac = gateway_port.map(|p| p.mac_address);
        let mut subnets: Vec<SubnetConfig> = net
            .subnets
            .iter()
            .filter_map(|s| self.subnets.get(&s.to_string()))
            .filter(|s| s.network_id.to_string() == net_id)
            .map(|s| subnet(s, gateway_mac.is_some()))
            .collect();
        subnets.sort_by_key(|s| s.cidr.to_string());
        SegmentConfig {
            vni,
            name: net_id,
            mtu: Some(net.mtu.min(max_mtu)),
            gateway_mac,
            dns_domain: None,
            subnets,
            uplink,
        }
    }

    /// A port's addresses with their subnets' prefixes.
    fn addresses(&self, p: &Port) -> Vec<IpNetwork> {
        p.fixed_ips
            .iter()
            .filter_map(|f| {
                let s = self.subnets.get(&f.subnet_id.to_string())?;
                IpNetwork::new(f.ip_address, s.cidr.prefix()).ok()
            })
            .collect()
    }

    /// A router placed on `node` (which has segments on `nets`): its interfaces, its gateway
    /// (an interface on the external network's uplink segment, with the default routes via the
    /// external subnets' gateways), its floating IPs and port forwardings.
    fn router(&self, router_id: &str, node: &str, nets: &BTreeSet<String>) -> Option<RouterConfig> {
        let r = self.routers.get(router_id)?;
        let mut interfaces: Vec<RouterInterfaceConfig> = Vec::new();
        for p in self.router_ports.get(router_id)? {
            let net = p.network_id.to_string();
            let Some(vni) = self.vni(&net) else {
                continue;
            };
            if !nets.contains(&net) {
                tracing::warn!(node, router = router_id, network = %net,
                    "router interface left out: the node has no uplink for its network");
                continue;
            }
            interfaces.push(RouterInterfaceConfig {
                vni,
                mac: p.mac_address,
                addresses: self.addresses(p),
                mtu: None,
            });
        }
        let mut routes: Vec<RouteConfig> = r
            .routes
            .iter()
            .map(|x| RouteConfig {
                destination: x.destination,
                nexthop: x.nexthop,
            })
            .collect();
        let gateway = self.gateway(r, node, nets, &mut interfaces, &mut routes);
        interfaces.sort_by_key(|i| i.vni);
        let (floating_ips, port_forwardings) = match &gateway {
            Some(g) => {
                let fips = self.floating_ips(router_id, node, g.vni, &interfaces);
                let pfs = self.port_forwardings(router_id, node, g.vni, &interfaces, &fips);
                (fips, pfs)
            }
            None => {
                if self.floating_ips.contains_key(router_id)
                    || self.port_forwardings.contains_key(router_id)
                {
                    tracing::warn!(
                        node,
                        router = router_id,
                        "floating IPs and port forwardings left out: the router has no gateway here"
                    );
                }
                (Vec::new(), Vec::new())
            }
        };
        Some(RouterConfig {
            name: router_id.to_owned(),
            interfaces,
            routes,
            project: r.project_id.to_string(),
            gateway,
            floating_ips,
            port_forwardings,
        })
    }

    /// The router's gateway, if it has one this node can reach: its interface (added to
    /// `interfaces`), default routes (added to `routes` for each address family the user did
    /// not route by default already) and, with an IPv4 address, the [`GatewayConfig`].
    fn gateway(
        &self,
        r: &Router,
        node: &str,
        nets: &BTreeSet<String>,
        interfaces: &mut Vec<RouterInterfaceConfig>,
        routes: &mut Vec<RouteConfig>,
    ) -> Option<GatewayConfig> {
        let info = r.external_gateway_info.as_ref()?;
        let id = r.id.to_string();
        let port = self.gateway_ports.get(&id)?;
        let net = port.network_id.to_string();
        let vni = self.vni(&net)?;
        if !nets.contains(&net) {
            let phys = self
                .networks
                .get(&net)
                .and_then(|n| n.physical_network.clone());
            tracing::warn!(node, router = %id, network = %net, physical_network = ?phys,
                "router gateway left out: the node has no uplink for the external network");
            return None;
        }
        if interfaces.iter().any(|i| i.vni == vni) {
            tracing::warn!(node, router = %id, network = %net,
                "router gateway left out: the router also has an interface on the external network");
            return None;
        }
        let addresses = self.addresses(port);
        for f in &port.fixed_ips {
            let Some(gw) = self
                .subnets
                .get(&f.subnet_id.to_string())
                .and_then(|s| s.gateway_ip)
            else {
                continue;
            };
            let default: IpNetwork = if gw.is_ipv4() {
                IpNetwork::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
            } else {
                IpNetwork::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
            }
            .ok()?;
            if gw != f.ip_address && !routes.iter().any(|x| x.destination == default) {
                routes.push(RouteConfig {
                    destination: default,
                    nexthop: gw,
                });
            }
        }
        let v4 = addresses.iter().any(IpNetwork::is_ipv4);
        interfaces.push(RouterInterfaceConfig {
            vni,
            mac: port.mac_address,
            addresses,
            mtu: None,
        });
        if !v4 {
            tracing::warn!(node, router = %id,
                "router gateway without an IPv4 address: no SNAT or floating IPs");
            return None;
        }
        Some(GatewayConfig {
            vni,
            enable_snat: info.enable_snat,
        })
    }

    /// The router's port forwardings that the dataplane can take: the floating IP on the
    /// gateway's network and not a 1:1 floating IP, the internal address on another of the
    /// router's networks and without a 1:1 floating IP, `(protocol, external, port)` and
    /// `(protocol, internal, port)` each once.
    fn port_forwardings(
        &self,
        router_id: &str,
        node: &str,
        gw_vni: Vni,
        interfaces: &[RouterInterfaceConfig],
        fips: &[FloatingIpConfig],
    ) -> Vec<PortForwardingConfig> {
        let (outside, inside): (Vec<_>, Vec<_>) = interfaces.iter().partition(|i| i.vni == gw_vni);
        let on = |ifs: &[&RouterInterfaceConfig], a: Ipv4Addr| {
            ifs.iter()
                .any(|i| i.addresses.iter().any(|n| n.contains(IpAddr::V4(a))))
        };
        let mut pfs: Vec<&(IpAddr, PortForwarding)> = self
            .port_forwardings
            .get(router_id)
            .map_or(Vec::new(), |v| v.iter().collect());
        pfs.sort_by_key(|(a, pf)| (*a, pf.protocol, pf.external_port, pf.id));
        let (mut outs, mut ins) = (HashSet::new(), HashSet::new());
        let mut out = Vec::new();
        for (external, pf) in pfs {
            let (IpAddr::V4(external), IpAddr::V4(internal)) = (*external, pf.internal_ip_address)
            else {
                continue;
            };
            let protocol = match pf.protocol {
                ForwardProtocol::Tcp => DpForwardProtocol::Tcp,
                ForwardProtocol::Udp => DpForwardProtocol::Udp,
            };
            let why = if !on(&outside, external) {
                "the floating IP is not on the gateway's network"
            } else if fips.iter().any(|f| f.external == external) {
                "the floating IP is associated with a port"
            } else if !on(&inside, internal) {
                "the internal address is on none of the router's internal networks"
            } else if fips.iter().any(|f| f.internal == internal) {
                "the internal address has a floating IP"
            } else if pf.external_port == 0 || pf.internal_port == 0 {
                "port 0"
            } else if outs.contains(&(protocol, external, pf.external_port))
                || ins.contains(&(protocol, internal, pf.internal_port))
            {
                "forwarded twice"
            } else {
                outs.insert((protocol, external, pf.external_port));
                ins.insert((protocol, internal, pf.internal_port));
                out.push(PortForwardingConfig {
                    protocol,
                    external,
                    external_port: pf.external_port,
                    internal,
                    internal_port: pf.internal_port,
                });
                continue;
            };
            tracing::warn!(node, router = router_id, port_forwarding = %pf.id, reason = why,
                "port forwarding left out of the node's configuration");
        }
        out
    }

    /// The router's floating IPs that the dataplane can take: the external address on the
    /// gateway's network, the internal one on another of the router's networks, each once.
    fn floating_ips(
        &self,
        router_id: &str,
        node: &str,
        gw_vni: Vni,
        interfaces: &[RouterInterfaceConfig],
    ) -> Vec<FloatingIpConfig> {
        let (outside, inside): (Vec<_>, Vec<_>) = interfaces.iter().partition(|i| i.vni == gw_vni);
        let on = |ifs: &[&RouterInterfaceConfig], a: Ipv4Addr| {
            ifs.iter()
                .any(|i| i.addresses.iter().any(|n| n.contains(IpAddr::V4(a))))
        };
        let mut fips: Vec<&FloatingIp> = self
            .floating_ips
            .get(router_id)
            .map_or(Vec::new(), |v| v.iter().collect());
        fips.sort_by_key(|f| (f.floating_ip_address, f.id));
        let mut internal_seen = HashSet::new();
        let mut out = Vec::new();
        for f in fips {
            let (IpAddr::V4(external), Some(IpAddr::V4(internal))) =
                (f.floating_ip_address, f.fixed_ip_address)
            else {
                continue;
            };
            let why = if !on(&outside, external) {
                "its address is not on the gateway's network"
            } else if !on(&inside, internal) {
                "its fixed address is on none of the router's internal networks"
            } else if !internal_seen.insert(internal) {
                "its fixed address already has a floating IP"
            } else {
                out.push(FloatingIpConfig { external, internal });
                continue;
            };
            tracing::warn!(node, router = router_id, floatingip = %f.id, reason = why,
                "floating IP left out of the node's configuration");
        }
        out
    }

    /// Networks a change can touch (before or after it), and whether it touches every node.
    fn touched(
        &self,
        rec: &RevisionRecord,
        nets: &mut BTreeSet<String>,
        hosts: &mut BTreeSet<String>,
    ) -> bool {
        let id = rec.resource_id.as_str();
        match rec.resource_type {
            ResourceKind::Network => {
                nets.insert(id.to_owned());
            }
            ResourceKind::Subnet => {
                if let Some(s) = self.subnets.get(id) {
                    nets.insert(s.network_id.to_string());
                }
            }
            ResourceKind::Port => {
                if let Some((net, host)) = self.port_location.get(id) {
                    nets.insert(net.clone());
                    hosts.insert(host.clone());
                }
            }
            ResourceKind::Router => {
                for p in self.router_ports.get(id).map_or(&[][..], Vec::as_slice) {
                    nets.insert(p.network_id.to_string());
                }
                if let Some(n) = self.placement.get(id) {
                    hosts.insert(n.clone());
                }
            }
            // A node that comes, goes or moves its VTEP changes its neighbours' lists.
            ResourceKind::Node => return true,
            // A group's rules are compiled on the nodes of its members; its members' addresses
            // on the nodes of the groups that name it as a remote group. A rule change only
            // needs the first; both are taken (over-approximation: cheap, and the hub drops
            // configurations that come out unchanged).
            ResourceKind::SecurityGroup | ResourceKind::SecurityGroupRule => {
                let group = if rec.resource_type == ResourceKind::SecurityGroup {
                    id.parse().ok()
                } else {
                    self.rule_group.get(id).copied()
                };
                if let Some(g) = group {
                    self.group_users_nodes(g, true, hosts);
                }
            }
            ResourceKind::FloatingIp | ResourceKind::PortForwarding => {
                let fip = if rec.resource_type == ResourceKind::FloatingIp {
                    Some(id)
                } else {
                    self.pf_fip.get(id).map(String::as_str)
                };
                if let Some(n) = fip
                    .and_then(|f| self.fip_router.get(f))
                    .and_then(|r| self.placement.get(r))
                {
                    hosts.insert(n.clone());
                }
            }
        }
        false
    }

    /// The nodes of the members of `g` (with `members`) and of the members of every group that
    /// names `g` as a remote group.
    fn group_users_nodes(&self, g: SecurityGroupId, members: bool, hosts: &mut BTreeSet<String>) {
        let users = self.remote_users.get(&g).into_iter().flatten();
        for u in members.then_some(&g).into_iter().chain(users) {
            if let Some(n) = self.group_nodes.get(u) {
                hosts.extend(n.iter().cloned());
            }
        }
    }
}

/// The VNI of every network a node can have a segment of: a VXLAN network's segmentation id;
/// for a network without one (flat), a key from [`UPLINK_VNIS`]: the low 16 bits of a hash of
/// its id, probing upwards past keys taken (by any network's segmentation id, or by an older
/// flat network). A network keeps its key for life unless an older network that took the one
/// it would have got is deleted.
fn vni_keys(networks: &[Network]) -> HashMap<String, Vni> {
    let mut out = HashMap::new();
    let mut used: HashSet<u32> = HashSet::new();
    let mut keyless: Vec<&Network> = Vec::new();
    for n in networks {
        match n.segmentation_id {
            Some(v) => {
                used.insert(v.get());
                out.insert(n.id.to_string(), v);
            }
            None if n.network_type == NetworkType::Flat => keyless.push(n),
            None => {}
        }
    }
    keyless.sort_by_key(|n| (n.std.created_at, n.id));
    let base = *UPLINK_VNIS.start();
    let span = UPLINK_VNIS.end() - base + 1;
    for n in keyless {
        // FNV-1a: stable across builds and platforms (std's hasher is not).
        let h = n.id.to_string().bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        let key = (0..span)
            .map(|k| base + (h.wrapping_add(k) % span))
            .find(|v| !used.contains(v))
            .and_then(Vni::new);
        if let Some(v) = key {
            used.insert(v.get());
            out.insert(n.id.to_string(), v);
        }
    }
    out
}

/// A port whose groups or addresses changed changes the remote-group expansions of the groups
/// that name any of its groups (before or after) as a remote group: their members' nodes are
/// recompiled. A port change that leaves both alone (a status report, a rename) touches only
/// the port's own node.
fn remote_group_touched(old: &Index, new: &Index, port: &str, hosts: &mut BTreeSet<String>) {
    let (before, after) = (old.port_sg.get(port), new.port_sg.get(port));
    if before == after {
        return;
    }
    let groups: BTreeSet<SecurityGroupId> = before
        .into_iter()
        .chain(after)
        .flat_map(|(g, _)| g.iter().copied())
        .collect();
    for g in groups {
        old.group_users_nodes(g, false, hosts);
        new.group_users_nodes(g, false, hosts);
    }
}

/// What a port contributes to the groups it is in: its fixed IPs as host networks and its
/// allowed address pairs.
fn member_addresses(p: &Port) -> Vec<IpNetwork> {
    p.fixed_ips
        .iter()
        .map(|f| IpNetwork::from(f.ip_address))
        .chain(p.allowed_address_pairs.iter().map(|a| a.ip_address))
        .collect()
}

/// A total order on compiled rules (the node configuration is compared and diffed).
fn rule_order(r: &SecurityRuleConfig) -> impl Ord + '_ {
    (
        r.direction == RuleDirection::Egress,
        r.ethertype == RuleEtherType::IPv6,
        r.protocol,
        r.port_range_min,
        r.port_range_max,
        &r.remote,
        &r.remote_set,
    )
}

/// One Neutron rule as the dataplane takes it: the protocol as a number (`icmp` on an IPv6
/// rule is ICMPv6, as Neutron reads it), the ports (the ICMP type and code for ICMP), the remote
/// prefix, or the remote group as the address set of its members. `Err`: a rule the dataplane
/// would refuse, with the reason.
fn rule_config(r: &SecurityGroupRule) -> Result<SecurityRuleConfig, String> {
    let v4 = r.ethertype == EtherType::IPv4;
    let protocol = match r.protocol.as_deref() {
        None => None,
        Some(p) => crate::model::validate::protocol_number(p).map_err(|e| e.to_string())?,
    };
    let protocol = match protocol {
        Some(1) if !v4 => Some(58),
        other => other,
    };
    let (remote, remote_set) = match (r.remote_ip_prefix, r.remote_group_id) {
        (Some(p), _) => {
            if p.is_ipv4() != v4 {
                return Err(format!("remote prefix {p} is not of the rule's ethertype"));
            }
            (
                Some(vec![IpNetwork::new(p.network(), p.prefix()).unwrap_or(p)]),
                None,
            )
        }
        (None, Some(g)) => (None, Some(g.to_string())),
        (None, None) => (None, None),
    };
    let icmp = matches!((protocol, v4), (Some(1), true) | (Some(58), false));
    let ported = matches!(protocol, Some(6 | 17 | 33 | 132 | 136));
    match (r.port_range_min, r.port_range_max) {
        (None, None) => {}
        (min, max) if icmp => {
            if min.is_none() || min.is_some_and(|t| t > 255) || max.is_some_and(|c| c > 255) {
                return Err("ICMP type and code out of range".into());
            }
        }
        (Some(min), Some(max)) if ported => {
            if min == 0 || min > max {
                return Err(format!("{min}-{max} is not a port range"));
            }
        }
        _ => {
            return Err(format!(
                "port range on protocol {protocol:?} ({})",
                if v4 { "IPv4" } else { "IPv6" }
            ));
        }
    }
    Ok(SecurityRuleConfig {
        direction: match r.direction {
            Direction::Ingress => RuleDirection::Ingress,
            Direction::Egress => RuleDirection::Egress,
        },
        ethertype: if v4 {
            RuleEtherType::IPv4
        } else {
            RuleEtherType::IPv6
        },
        protocol,
        port_range_min: r.port_range_min,
        port_range_max: r.port_range_max,
        remote,
        remote_set,
    })
}

fn subnet(s: &Subnet, has_router: bool) -> SubnetConfig {
    let mode = |m: Ipv6Mode| match m {
        Ipv6Mode::Slaac => DpIpv6Mode::Slaac,
        Ipv6Mode::Dhcpv6Stateful => DpIpv6Mode::Dhcpv6Stateful,
        Ipv6Mode::Dhcpv6Stateless => DpIpv6Mode::Dhcpv6Stateless,
    };
    SubnetConfig {
        cidr: s.cidr,
        gateway_ip: s.gateway_ip,
        // DHCPv4 answers from the gateway address; a subnet without one gets no DHCP server
        // (Neutron would run one on its own port).
        enable_dhcp: s.enable_dhcp && s.gateway_ip.is_some(),
        dns_nameservers: s.dns_nameservers.clone(),
        host_routes: s
            .host_routes
            .iter()
            .map(|r| RouteConfig {
                destination: r.destination,
                nexthop: r.nexthop,
            })
            .collect(),
        dhcp_server: None,
        lease_secs: 86_400,
        // Router advertisements come from the router: none while no router is attached.
        ipv6_ra_mode: s.ipv6_ra_mode.filter(|_| has_router).map(mode),
        ipv6_address_mode: s
            .ipv6_address_mode
            .filter(|_| has_router || s.ipv6_ra_mode.is_none())
            .map(mode),
    }
}

/// A node the compiler recompiled, with its configuration (possibly equal to the previous one:
/// [`crate::nodeapi::Hub::publish`] keeps only real changes).
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    /// The node.
    pub node: String,
    /// Its configuration (its `revision` is the snapshot's).
    pub config: NodeConfig,
}

/// The compiler's state between two snapshots: the index of the last one (the nodes'
/// configurations live in the hub only).
#[derive(Debug, Default)]
pub struct Compiler {
    index: Option<Index>,
}

/// A network left out of a node because another network already uses the uplink interface it
/// would use there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UplinkConflict {
    /// The node.
    pub node: String,
    /// The host interface both networks would use.
    pub interface: String,
    /// The network left out.
    pub network: String,
    /// The network that keeps the interface.
    pub holder: String,
}

impl Compiler {
    /// A compiler that has seen nothing.
    pub fn new() -> Compiler {
        Compiler::default()
    }

    /// Where each placed router runs.
    pub fn placement(&self) -> BTreeMap<String, String> {
        self.index
            .as_ref()
            .map(|i| i.placement.clone())
            .unwrap_or_default()
    }

    /// The networks left out of a node because another network holds the uplink interface
    /// they would use there (see the node API docs: one interface serves one network a node).
    pub fn uplink_conflicts(&self) -> Vec<UplinkConflict> {
        self.index
            .as_ref()
            .map(|i| i.uplink_conflicts.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The Neutron ports of the routers placed on each node: interfaces and gateway ports.
    /// They are not VM ports, so no agent reports them; the node that runs their router does.
    pub fn router_ports(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let Some(ix) = &self.index else { return out };
        for (router, node) in &ix.placement {
            let ids = out.entry(node.clone()).or_default();
            ids.extend(
                ix.router_port_ids
                    .get(router)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
            // The gateway port only where the node has the uplink to serve it.
            ids.extend(
                ix.gateway_ports
                    .get(router)
                    .filter(|p| ix.uplink_of(node, &p.network_id.to_string()).is_some())
                    .map(|p| p.id.to_string()),
            );
        }
        out
    }

    /// Takes the state as of `snap` and the changes since the previous update (`None`: unknown,
    /// recompile everything). Returns every node it recompiled whose configuration validates,
    /// with that configuration.
    pub fn update(&mut self, snap: &Snapshot, changes: Option<&[RevisionRecord]>) -> Vec<Compiled> {
        let previous_placement = self.placement();
        let (previous_uplinks, previous_conflicts) = self
            .index
            .as_ref()
            .map(|i| (i.uplink_owner.clone(), i.uplink_conflicts.clone()))
            .unwrap_or_default();
        let new = Index::build(
            snap,
            &previous_placement,
            &previous_uplinks,
            &previous_conflicts,
        );
        let revision = snap.revision.0;
        let targets: BTreeSet<String> = match (&self.index, changes) {
            (Some(old), Some(records)) => {
                let mut nets = BTreeSet::new();
                let mut hosts = BTreeSet::new();
                let mut all = false;
                for rec in records {
                    all |= old.touched(rec, &mut nets, &mut hosts);
                    all |= new.touched(rec, &mut nets, &mut hosts);
                    if rec.resource_type == ResourceKind::Port {
                        remote_group_touched(old, &new, &rec.resource_id, &mut hosts);
                    }
                }
                if new.placement != old.placement {
                    for (r, n) in old.placement.iter().chain(new.placement.iter()) {
                        if old.placement.get(r) != new.placement.get(r) {
                            hosts.insert(n.clone());
                            for p in new.router_ports.get(r).map_or(&[][..], Vec::as_slice) {
                                nets.insert(p.network_id.to_string());
                            }
                        }
                    }
                }
                // A flat network's key moves when an older one that held its hashed key goes;
                // an uplink interface changes hands when the network holding it goes. Both
                // change nodes the change records do not name.
                for net in old.vnis.keys().chain(new.vnis.keys()) {
                    if old.vnis.get(net) != new.vnis.get(net) {
                        nets.insert(net.clone());
                    }
                }
                for key in old.uplink_owner.keys().chain(new.uplink_owner.keys()) {
                    if old.uplink_owner.get(key) != new.uplink_owner.get(key) {
                        hosts.insert(key.0.clone());
                    }
                }
                if all {
                    new.nodes.keys().cloned().collect()
                } else {
                    new.nodes
                        .keys()
                        .filter(|n| {
                            hosts.contains(*n)
                                || [old, &new].iter().any(|ix| {
                                    ix.node_networks
                                        .get(*n)
                                        .is_some_and(|s| s.iter().any(|x| nets.contains(x)))
                                })
                        })
                        .cloned()
                        .collect()
                }
            }
            _ => new.nodes.keys().cloned().collect(),
        };
        let mut out = Vec::with_capacity(targets.len());
        for name in &targets {
            let Some(node) = new.nodes.get(name) else {
                continue;
            };
            let cfg = new.compile(node, revision);
            if let Err(e) = cfg.validate() {
                tracing::error!(node = %name, revision, error = %e,
                    "compiled configuration does not validate; the node keeps its previous one");
                continue;
            }
            out.push(Compiled {
                node: name.clone(),
                config: cfg,
            });
        }
        self.index = Some(new);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NetworkId, ProjectId, StandardAttrs, Timestamp};

    fn network(flat: bool, vni: Option<u32>, created: i64) -> Network {
        Network {
            id: NetworkId::random(),
            project_id: ProjectId::system(),
            name: String::new(),
            description: String::new(),
            admin_state_up: true,
            status: "ACTIVE".into(),
            shared: false,
            external: flat,
            mtu: 1500,
            port_security_enabled: true,
            network_type: if flat {
                NetworkType::Flat
            } else {
                NetworkType::Vxlan
            },
            physical_network: flat.then(|| "public".to_owned()),
            segmentation_id: vni.and_then(Vni::new),
            subnets: Vec::new(),
            tags: Vec::new(),
            std: StandardAttrs::new(Timestamp(created)),
        }
    }

    #[test]
    fn flat_networks_get_stable_reserved_keys() {
        let a = network(true, None, 1);
        let b = network(true, None, 2);
        let t = network(false, Some(7), 3);
        let keys = vni_keys(&[a.clone(), b.clone(), t.clone()]);
        let (ka, kb) = (keys[&a.id.to_string()], keys[&b.id.to_string()]);
        assert!(UPLINK_VNIS.contains(&ka.get()) && UPLINK_VNIS.contains(&kb.get()));
        assert_ne!(ka, kb);
        assert_eq!(keys[&t.id.to_string()].get(), 7);
        // Independent of order and of unrelated networks coming and going.
        let again = vni_keys(&[t, network(false, Some(9), 4), b.clone(), a.clone()]);
        assert_eq!(again[&a.id.to_string()], ka);
        assert_eq!(again[&b.id.to_string()], kb);
        assert_eq!(vni_keys(std::slice::from_ref(&b))[&b.id.to_string()], kb);
        // A VXLAN network holding a flat network's key (an old database) pushes it further.
        let squatter = network(false, Some(ka.get()), 0);
        let moved = vni_keys(&[a.clone(), squatter])[&a.id.to_string()];
        assert_ne!(moved, ka);
        assert!(UPLINK_VNIS.contains(&moved.get()));
    }
}
