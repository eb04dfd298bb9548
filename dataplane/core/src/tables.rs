//! The immutable table set the pipeline runs on, built from a validated [`NodeConfig`].
//!
//! A `Tables` is only ever built by [`NodeConfig::validate`], so holding one proves the
//! configuration was checked: every index in it is in range and every cross-reference resolves.
//! Workers share it behind an `Arc`; a reload builds a new one and swaps it in between batches
//! (in-flight batches finish on the old one).
//!
//! ```text
//!   segments[SegIdx] ── vni, mtu, local ports, flood VTEPs, precomputed VXLAN header
//!   ports[PortIdx]   ── interface, segment, MAC, port security (allowed MAC/IP pairs)
//!   vteps[VtepIdx]   ── underlay address, the segments it serves
//!   static FDB       ── (segment, MAC) → local port | remote VTEP       (from ports + bindings)
//!   neighbours       ── (segment, IP) → MAC, owner                      (ARP/ND answered locally)
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::addr_filter::AddrFilter;
use crate::config::{
    ConfigProblem, ForwardProtocol, Ipv6Mode, LearningConfig, NodeConfig, PortConfig, RouterConfig,
    SegmentConfig, StateLimits, vtep_addr,
};
use crate::firewall::{AddressSets, PortFilter};
use crate::ids::{PortIdx, RifIdx, RouterIdx, SegIdx, VtepIdx};
use crate::lpm::{Lpm4, Lpm6, LpmError, RouteId};
use crate::nat::{FloatingIp, PortForward, StaticNat, StaticNatError};
use crate::wire::{MacAddr, Vni};

/// Where a MAC address lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdbDest {
    /// Behind a local port.
    Port(PortIdx),
    /// Behind a remote VTEP.
    Vtep(VtepIdx),
    /// A router interface hosted on this node.
    Router(RifIdx),
}

/// A MAC address bound to an IP address in a segment (answered by the ARP/ND responder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The MAC that owns the IP.
    pub mac: MacAddr,
    /// Where that MAC lives.
    pub owner: FdbDest,
}

/// One tenant L2 network on this node.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Its VNI.
    pub vni: Vni,
    /// Its name, for humans.
    pub name: String,
    /// The largest Ethernet payload it carries.
    pub mtu: u32,
    /// Local ports on it (flood targets).
    pub ports: Vec<PortIdx>,
    /// Remote VTEPs serving it (head-end replication targets).
    pub flood_vteps: Vec<VtepIdx>,
    /// The VXLAN header for this VNI, ready to copy in front of a frame.
    pub vxlan_header: [u8; 8],
    /// What the local services (DHCPv4, DHCPv6, router advertisements) hand out here.
    pub services: Services,
    /// The uplink port of an external segment.
    pub uplink: Option<PortIdx>,
}

/// The local services of one segment.
#[derive(Debug, Clone)]
pub struct Services {
    /// The segment's router interface MAC, if it has a router.
    pub gateway_mac: Option<MacAddr>,
    /// The MAC DHCP replies come from: the gateway's, or `02:77:65` followed by the VNI (a
    /// locally administered address) on segments without a router.
    pub server_mac: MacAddr,
    /// The link-local address DHCPv6 replies and router advertisements come from (EUI-64 of
    /// `server_mac`).
    pub server_link_local: Ipv6Addr,
    /// DNS domain.
    pub domain: Option<String>,
    /// IPv4 subnets.
    pub subnets4: Vec<Subnet4>,
    /// IPv6 subnets.
    pub subnets6: Vec<Subnet6>,
    /// Whether this node sends router advertisements to its local ports on this segment (a
    /// gateway MAC and at least one IPv6 subnet with an `ipv6_ra_mode`).
    pub sends_ra: bool,
    /// The MTU to advertise (the segment's).
    pub mtu: u32,
}

/// An IPv4 subnet as DHCPv4 serves it.
#[derive(Debug, Clone)]
pub struct Subnet4 {
    /// The network.
    pub net: Ipv4Network,
    /// The router (option 3, and the default route in option 121).
    pub gateway: Option<Ipv4Addr>,
    /// Whether DHCPv4 is served.
    pub dhcp: bool,
    /// The server identifier (option 54): the configured DHCP server address, else the gateway.
    pub server_id: Option<Ipv4Addr>,
    /// DNS servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// Classless static routes (option 121): host routes, then the default route via the
    /// gateway (RFC 3442: clients ignore option 3 when 121 is present).
    pub routes: Vec<(Ipv4Addr, u8, Ipv4Addr)>,
    /// Lease time, seconds.
    pub lease_secs: u32,
}

/// An IPv6 subnet as router advertisements and DHCPv6 serve it.
#[derive(Debug, Clone)]
pub struct Subnet6 {
    /// The network.
    pub net: Ipv6Network,
    /// The gateway address.
    pub gateway: Option<Ipv6Addr>,
    /// Who advertises it (this node, if set).
    pub ra_mode: Option<Ipv6Mode>,
    /// How VMs get addresses.
    pub address_mode: Option<Ipv6Mode>,
    /// DNS servers (DHCPv6 option 23 and RDNSS).
    pub dns: Vec<Ipv6Addr>,
    /// Valid lifetime of DHCPv6 leases, seconds.
    pub lease_secs: u32,
}

/// A port's DHCP bindings and host name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DhcpBinding {
    /// The IPv4 address DHCPv4 hands out, and the index of its subnet in `subnets4`.
    pub v4: Option<(Ipv4Addr, u16)>,
    /// The IPv6 address stateful DHCPv6 hands out, and its subnet's index in `subnets6`.
    pub v6: Option<(Ipv6Addr, u16)>,
    /// The host name (option 12).
    pub hostname: String,
}

/// What a port with port security may send: for each MAC it may use, the addresses it may use
/// with that MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedMac {
    /// A source MAC the port may use.
    pub mac: MacAddr,
    /// IPv4 sources allowed with this MAC.
    pub v4: Vec<Ipv4Network>,
    /// IPv6 sources allowed with this MAC (including its EUI-64 link-local address).
    pub v6: Vec<Ipv6Network>,
}

impl AllowedMac {
    /// Whether `ip` is an allowed IPv4 source with this MAC.
    #[inline]
    pub fn allows_v4(&self, ip: Ipv4Addr) -> bool {
        self.v4.iter().any(|n| n.contains(ip))
    }

    /// Whether `ip` is an allowed IPv6 source with this MAC.
    #[inline]
    pub fn allows_v6(&self, ip: Ipv6Addr) -> bool {
        self.v6.iter().any(|n| n.contains(ip))
    }
}

/// Anti-spoofing rules of one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSecurity {
    /// The port's own MAC first, then the allowed address pairs' other MACs.
    pub allowed: Vec<AllowedMac>,
}

impl PortSecurity {
    /// The rules for source MAC `mac`, if the port may use it at all.
    #[inline]
    pub fn for_mac(&self, mac: MacAddr) -> Option<&AllowedMac> {
        self.allowed.iter().find(|a| a.mac == mac)
    }
}

/// A local VM-facing port.
#[derive(Debug, Clone)]
pub struct Port {
    /// Identifier (e.g. the Neutron port id).
    pub name: String,
    /// Host interface.
    pub interface: String,
    /// Its segment.
    pub seg: SegIdx,
    /// The VM's MAC.
    pub mac: MacAddr,
    /// Anti-spoofing rules; `None` when port security is off.
    pub security: Option<PortSecurity>,
    /// Security groups; `None` when port security is off or the port has no group list
    /// (nothing filtered statefully).
    pub filter: Option<Arc<PortFilter>>,
    /// The tenant (project) owning the port.
    pub project: String,
    /// The uplink of an external segment, not a VM: no local services, no filtering.
    pub uplink: bool,
    /// What DHCP hands this port.
    pub dhcp: DhcpBinding,
}

/// A router interface.
#[derive(Debug, Clone)]
pub struct RouterIf {
    /// Its router.
    pub router: RouterIdx,
    /// Its segment.
    pub seg: SegIdx,
    /// Its segment's VNI.
    pub vni: Vni,
    /// Its MAC.
    pub mac: MacAddr,
    /// Largest packet it sends.
    pub mtu: u32,
    /// Its IPv4 addresses with their networks.
    pub v4: Vec<Ipv4Network>,
    /// Its IPv6 addresses with their networks (the link-local one not included).
    pub v6: Vec<Ipv6Network>,
    /// Its link-local address (EUI-64 of the MAC).
    pub link_local: Ipv6Addr,
    /// Its router's FIB takes at least [`BATCH_FIB_BYTES`]: the pipeline routes the packets
    /// that arrive here together, after the rest of their batch, with their route lookups
    /// interleaved.
    pub batch_fib: bool,
}

impl RouterIf {
    /// The address ICMPv4 errors about packets received here come from.
    pub fn primary_v4(&self) -> Option<Ipv4Addr> {
        self.v4.first().map(|n| n.ip())
    }

    /// The address ICMPv6 errors about packets received here come from: a global address if
    /// there is one, else the link-local one.
    pub fn primary_v6(&self) -> Ipv6Addr {
        self.v6.first().map_or(self.link_local, |n| n.ip())
    }
}

/// The FIB size (IPv4 and IPv6 tables of a router together) from which the pipeline looks up
/// routes a batch at a time ([`RouterIf::batch_fib`]): beyond it, a lookup mostly waits for
/// memory, and interleaving a batch's lookups lets those waits overlap. Smaller tables stay in
/// the caches, where one lookup at a time costs less.
pub const BATCH_FIB_BYTES: usize = 256 * 1024;

/// Where a route leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The egress interface.
    pub rif: RifIdx,
    /// The next hop; `None` for a connected network (the destination itself).
    pub nexthop: Option<IpAddr>,
}

/// A tenant router.
#[derive(Debug)]
pub struct Router {
    /// Its name.
    pub name: String,
    /// Its interfaces.
    pub interfaces: Vec<RifIdx>,
    /// Its routes, by [`RouteId`] (connected networks first, then static routes).
    pub routes: Vec<Route>,
    /// IPv4 forwarding table.
    pub fib4: Lpm4,
    /// IPv6 forwarding table.
    pub fib6: Lpm6,
    /// Its gateway and static NAT, if it has a gateway.
    pub nat: Option<RouterNat>,
    /// The tenant (project) owning it.
    pub project: String,
    /// IPv4 addresses the router treats specially: its own, and its networks' broadcasts.
    /// Routers have few; a linear scan of this short list beats hashing.
    local4: Vec<(u32, Local4)>,
    own6: Vec<(u128, RifIdx)>,
    /// Filters of `local4` and `own6`: every packet the router forwards is checked against
    /// them, and almost none is for the router itself (the scan cost ~40 instructions a packet
    /// with three interfaces).
    local4_filter: AddrFilter,
    own6_filter: AddrFilter,
}

/// A router's NAT: its gateway and the static translations (floating IPs, port forwarding).
/// SNAT sessions are state, kept by the worker ([`crate::nat::Nat`]).
#[derive(Debug)]
pub struct RouterNat {
    /// The interface on the external segment.
    pub gateway: RifIdx,
    /// The gateway's IPv4 address.
    pub gateway_ip: Ipv4Addr,
    /// Translate tenant sources leaving by the gateway to `gateway_ip`.
    pub snat: bool,
    /// Floating IPs and port forwardings.
    pub statics: StaticNat,
}

impl RouterNat {
    /// Whether `a` is one of the router's external addresses (gateway, floating IPs, port
    /// forwarding addresses).
    #[inline(always)]
    pub fn is_external(&self, a: Ipv4Addr) -> bool {
        a == self.gateway_ip || self.statics.is_external(a)
    }

    /// The external addresses other than the gateway's (answered for ARP on the external
    /// segment).
    fn extra_addresses(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .statics
            .external_addresses()
            .filter(|a| *a != self.gateway_ip)
            .map(IpAddr::V4)
            .collect();
        v.sort();
        v
    }
}

fn router_nat(
    rc: &RouterConfig,
    interfaces: &[RifIdx],
    ifs: &[RouterIf],
) -> Result<Option<RouterNat>, StaticNatError> {
    let Some(gw) = rc.gateway.as_ref() else {
        return Ok(None);
    };
    let Some((gateway, gateway_ip)) = interfaces.iter().find_map(|r| {
        let i = ifs.get(r.get())?;
        (i.vni == gw.vni).then(|| i.v4.first().map(|n| (*r, n.ip())))?
    }) else {
        return Ok(None);
    };
    let fips: Vec<FloatingIp> = rc
        .floating_ips
        .iter()
        .map(|f| FloatingIp {
            external: f.external,
            internal: f.internal,
        })
        .collect();
    let forwards: Vec<PortForward> = rc
        .port_forwardings
        .iter()
        .map(|f| PortForward {
            proto: match f.protocol {
                ForwardProtocol::Tcp => crate::flow::PROTO_TCP,
                ForwardProtocol::Udp => crate::flow::PROTO_UDP,
            },
            external: f.external,
            external_port: f.external_port,
            internal: f.internal,
            internal_port: f.internal_port,
        })
        .collect();
    Ok(Some(RouterNat {
        gateway,
        gateway_ip,
        snat: gw.enable_snat,
        statics: StaticNat::new(&fips, &forwards)?,
    }))
}

/// What an IPv4 destination means to a router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local4 {
    /// One of its addresses, on this interface.
    Own(RifIdx),
    /// The broadcast address of one of its networks (never forwarded).
    DirectedBroadcast,
}

impl Router {
    /// Whether IPv4 address `a` is the router's own or a directed broadcast of its networks.
    /// The filter is asked inline, the list scanned out of line.
    #[inline(always)]
    pub fn local_v4(&self, a: Ipv4Addr) -> Option<Local4> {
        if !self.local4_filter.may_contain_v4(a) {
            return None;
        }
        self.local_v4_scan(a)
    }

    #[inline(never)]
    fn local_v4_scan(&self, a: Ipv4Addr) -> Option<Local4> {
        let a = u32::from(a);
        self.local4.iter().find(|(x, _)| *x == a).map(|(_, l)| *l)
    }

    /// The interface owning IPv4 address `a`, if it is one of the router's.
    #[inline]
    pub fn owns_v4(&self, a: Ipv4Addr) -> Option<RifIdx> {
        match self.local_v4(a) {
            Some(Local4::Own(r)) => Some(r),
            _ => None,
        }
    }

    /// The interface owning IPv6 address `a` (link-local ones included), if it is the router's.
    #[inline]
    pub fn owns_v6(&self, a: Ipv6Addr) -> Option<RifIdx> {
        if !self.own6_filter.may_contain_v6(a) {
            return None;
        }
        let a = u128::from(a);
        self.own6.iter().find(|(x, _)| *x == a).map(|(_, r)| *r)
    }

    /// The route for IPv4 destination `a`.
    #[inline(always)]
    pub fn route_v4(&self, a: Ipv4Addr) -> Option<Route> {
        self.route(self.fib4.lookup(a))
    }

    /// The route for IPv6 destination `a`.
    #[inline(always)]
    pub fn route_v6(&self, a: Ipv6Addr) -> Option<Route> {
        self.route(self.fib6.lookup(a))
    }

    /// The route a FIB lookup answered.
    #[inline(always)]
    pub fn route(&self, id: Option<RouteId>) -> Option<Route> {
        self.route_entry(id).copied()
    }

    /// Where the route a FIB lookup answered is kept.
    #[inline(always)]
    pub fn route_entry(&self, id: Option<RouteId>) -> Option<&Route> {
        self.routes.get(usize::try_from(id?).ok()?)
    }
}

/// A remote VTEP.
#[derive(Debug, Clone)]
pub struct Vtep {
    /// Its underlay address and VXLAN port.
    pub addr: SocketAddr,
    /// The segments it serves.
    pub segments: Vec<SegIdx>,
}

/// The validated, immutable table set.
#[derive(Debug)]
pub struct Tables {
    /// The node's name.
    pub node: String,
    /// The configuration revision these tables were built from.
    pub revision: u64,
    /// This node's VTEP address and port.
    pub local_vtep: SocketAddr,
    /// Learning settings.
    pub learning: LearningConfig,
    /// Local ports, by [`PortIdx`].
    pub ports: Vec<Port>,
    /// Segments, by [`SegIdx`].
    pub segments: Vec<Segment>,
    /// Remote VTEPs, by [`VtepIdx`].
    pub vteps: Vec<Vtep>,
    /// Routers hosted here, by [`RouterIdx`].
    pub routers: Vec<Router>,
    /// Their interfaces, by [`RifIdx`].
    pub router_ifs: Vec<RouterIf>,
    /// Limits of the connection tracker and NAT.
    pub limits: StateLimits,
    seg_by_vni: FxHashMap<u32, SegIdx>,
    vtep_by_ip: FxHashMap<IpAddr, VtepIdx>,
    vtep_serves: FxHashSet<u32>,
    static_fdb: FxHashMap<u64, FdbDest>,
    neigh_v4: FxHashMap<u64, Binding>,
    neigh_v6: FxHashMap<(u16, u128), Binding>,
}

/// The FDB key of `mac` in `seg`: the segment in the top 16 bits, the MAC in the low 48.
#[inline]
pub fn fdb_key(seg: SegIdx, mac: MacAddr) -> u64 {
    (u64::from(seg.0) << 48) | mac.to_u64()
}

#[inline]
fn vtep_seg_key(v: VtepIdx, s: SegIdx) -> u32 {
    (u32::from(v.0) << 16) | u32::from(s.0)
}

/// Index of the `i`th element of a table the validator bounded to `u16::MAX` entries.
fn idx16(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

impl Tables {
    /// Builds the tables. Only [`NodeConfig::validate`] calls this, after checking `c`: every
    /// lookup below succeeds on a validated configuration.
    pub(crate) fn build(c: &NodeConfig) -> Result<Tables, ConfigProblem> {
        let default_mtu = c.default_segment_mtu();
        let mut segments: Vec<Segment> = c
            .segments
            .iter()
            .map(|s| Segment {
                vni: s.vni,
                name: s.name.clone(),
                mtu: s.mtu.unwrap_or(default_mtu),
                ports: Vec::new(),
                flood_vteps: Vec::new(),
                vxlan_header: vxlan_header(s.vni),
                services: services(s, s.mtu.unwrap_or(default_mtu)),
                uplink: None,
            })
            .collect();
        let seg_by_vni: FxHashMap<u32, SegIdx> = segments
            .iter()
            .enumerate()
            .map(|(i, s)| (s.vni.get(), SegIdx(idx16(i))))
            .collect();
        let seg_of = |vni: Vni| seg_by_vni.get(&vni.get()).copied().unwrap_or(SegIdx(0));

        let mut vteps = Vec::with_capacity(c.remote_vteps.len());
        let mut vtep_by_ip = FxHashMap::default();
        let mut vtep_serves = FxHashSet::default();
        for (i, r) in c.remote_vteps.iter().enumerate() {
            let idx = VtepIdx(idx16(i));
            let segs: Vec<SegIdx> = r.vnis.iter().map(|v| seg_of(*v)).collect();
            for s in &segs {
                vtep_serves.insert(vtep_seg_key(idx, *s));
                segments[s.get()].flood_vteps.push(idx);
            }
            vtep_by_ip.insert(r.ip, idx);
            vteps.push(Vtep {
                addr: vtep_addr(c, r.ip),
                segments: segs,
            });
        }

        let mut static_fdb = FxHashMap::default();
        let mut neigh_v4 = FxHashMap::default();
        let mut neigh_v6 = FxHashMap::default();
        let mut bind = |seg: SegIdx, mac: MacAddr, ips: &[IpAddr], owner: FdbDest| {
            static_fdb.insert(fdb_key(seg, mac), owner);
            for ip in ips {
                let b = Binding { mac, owner };
                match ip {
                    IpAddr::V4(a) => {
                        neigh_v4.insert(neigh_v4_key(seg, *a), b);
                    }
                    IpAddr::V6(a) => {
                        neigh_v6.insert((seg.0, u128::from(*a)), b);
                    }
                }
            }
        };

        let mut ports = Vec::with_capacity(c.ports.len());
        // Ports with the same groups share one filter, and all filters share the address sets.
        let address_sets = AddressSets::build(&c.address_sets);
        let mut filters: FxHashMap<&[String], Arc<PortFilter>> = FxHashMap::default();
        for (i, p) in c.ports.iter().enumerate() {
            let idx = PortIdx(idx16(i));
            let seg = seg_of(p.vni);
            segments[seg.get()].ports.push(idx);
            bind(seg, p.mac, &p.ips, FdbDest::Port(idx));
            let groups = p.security_groups.as_ref().filter(|_| p.port_security);
            let filter = groups.map(|names| {
                filters
                    .entry(names.as_slice())
                    .or_insert_with(|| {
                        let groups = names
                            .iter()
                            .filter_map(|g| c.security_groups.iter().find(|x| &x.name == g));
                        Arc::new(PortFilter::build(groups, &address_sets))
                    })
                    .clone()
            });
            ports.push(Port {
                name: p.name.clone(),
                interface: p.interface.clone(),
                seg,
                mac: p.mac,
                security: p.port_security.then(|| port_security(p)),
                filter,
                project: p.project.clone(),
                uplink: false,
                dhcp: dhcp_binding(p, &segments[seg.get()].services),
            });
        }
        // Uplinks: ports without security or services, learning what lives outside.
        for s in &c.segments {
            let Some(u) = &s.uplink else { continue };
            let idx = PortIdx(idx16(ports.len()));
            let seg = seg_of(s.vni);
            segments[seg.get()].ports.push(idx);
            segments[seg.get()].uplink = Some(idx);
            ports.push(Port {
                name: format!("uplink-{}", s.vni),
                interface: u.clone(),
                seg,
                mac: MacAddr::ZERO,
                security: None,
                filter: None,
                project: String::new(),
                uplink: true,
                dhcp: DhcpBinding::default(),
            });
        }
        for b in &c.remote_bindings {
            let owner = FdbDest::Vtep(vtep_by_ip.get(&b.vtep).copied().unwrap_or(VtepIdx(0)));
            bind(seg_of(b.vni), b.mac, &b.ips, owner);
        }

        let mut routers = Vec::with_capacity(c.routers.len());
        let mut router_ifs: Vec<RouterIf> = Vec::new();
        for (ri, rc) in c.routers.iter().enumerate() {
            let ridx = RouterIdx(idx16(ri));
            let mut interfaces = Vec::with_capacity(rc.interfaces.len());
            for ic in &rc.interfaces {
                let rif = RifIdx(idx16(router_ifs.len()));
                let seg = seg_of(ic.vni);
                let mut ips: Vec<IpAddr> = ic.addresses.iter().map(IpNetwork::ip).collect();
                ips.push(IpAddr::V6(ic.mac.link_local()));
                bind(seg, ic.mac, &ips, FdbDest::Router(rif));
                router_ifs.push(RouterIf {
                    router: ridx,
                    seg,
                    vni: ic.vni,
                    mac: ic.mac,
                    mtu: ic.mtu.unwrap_or(segments[seg.get()].mtu),
                    v4: ic
                        .addresses
                        .iter()
                        .filter_map(|a| match a {
                            IpNetwork::V4(n) => Some(*n),
                            IpNetwork::V6(_) => None,
                        })
                        .collect(),
                    v6: ic
                        .addresses
                        .iter()
                        .filter_map(|a| match a {
                            IpNetwork::V6(n) => Some(*n),
                            IpNetwork::V4(_) => None,
                        })
                        .collect(),
                    link_local: ic.mac.link_local(),
                    batch_fib: false,
                });
                interfaces.push(rif);
            }
            let router =
                build_router(rc, &interfaces, &router_ifs).map_err(|(field, message)| {
                    ConfigProblem {
                        field: format!("routers[{ri}].{field}"),
                        message,
                    }
                })?;
            // The gateway answers ARP for the floating IPs too.
            if let Some(nat) = &router.nat {
                let g = &router_ifs[nat.gateway.get()];
                bind(
                    g.seg,
                    g.mac,
                    &nat.extra_addresses(),
                    FdbDest::Router(nat.gateway),
                );
            }
            if router.fib4.memory_bytes() + router.fib6.memory_bytes() >= BATCH_FIB_BYTES {
                for rif in &router.interfaces {
                    router_ifs[rif.get()].batch_fib = true;
                }
            }
            routers.push(router);
        }
        // A segment's gateway answers for its link-local address too, wherever it lives.
        for (si, seg) in segments.iter().enumerate() {
            let Some(gw) = seg.services.gateway_mac else {
                continue;
            };
            let sidx = SegIdx(idx16(si));
            if let Some(owner) = static_fdb.get(&fdb_key(sidx, gw)).copied() {
                neigh_v6
                    .entry((sidx.0, u128::from(gw.link_local())))
                    .or_insert(Binding { mac: gw, owner });
            }
        }

        Ok(Tables {
            node: c.node.clone(),
            revision: c.revision,
            local_vtep: SocketAddr::new(c.underlay.local_ip, c.underlay.port),
            learning: c.learning.clone(),
            ports,
            segments,
            vteps,
            routers,
            router_ifs,
            limits: c.limits.clone(),
            seg_by_vni,
            vtep_by_ip,
            vtep_serves,
            static_fdb,
            neigh_v4,
            neigh_v6,
        })
    }

    /// The segment carrying `vni`.
    #[inline]
    pub fn segment_by_vni(&self, vni: u32) -> Option<SegIdx> {
        self.seg_by_vni.get(&vni).copied()
    }

    /// The configured VTEP at underlay address `ip`.
    #[inline]
    pub fn vtep_by_ip(&self, ip: IpAddr) -> Option<VtepIdx> {
        self.vtep_by_ip.get(&ip).copied()
    }

    /// Whether VTEP `v` serves segment `s` (VXLAN from it is accepted for that segment).
    #[inline]
    pub fn vtep_serves(&self, v: VtepIdx, s: SegIdx) -> bool {
        self.vtep_serves.contains(&vtep_seg_key(v, s))
    }

    /// Where the configuration places `mac` in `seg`.
    #[inline]
    pub fn static_fdb(&self, seg: SegIdx, mac: MacAddr) -> Option<FdbDest> {
        self.static_fdb.get(&fdb_key(seg, mac)).copied()
    }

    /// Every configured (key, destination) pair of the static FDB.
    pub fn static_fdb_entries(&self) -> impl Iterator<Item = (u64, FdbDest)> + '_ {
        self.static_fdb.iter().map(|(k, d)| (*k, *d))
    }

    /// Who owns IPv4 address `ip` in `seg`.
    #[inline]
    pub fn neighbour_v4(&self, seg: SegIdx, ip: Ipv4Addr) -> Option<Binding> {
        self.neigh_v4.get(&neigh_v4_key(seg, ip)).copied()
    }

    /// Who owns IPv6 address `ip` in `seg`.
    #[inline]
    pub fn neighbour_v6(&self, seg: SegIdx, ip: Ipv6Addr) -> Option<Binding> {
        self.neigh_v6.get(&(seg.0, u128::from(ip))).copied()
    }

    /// The port named `name`.
    pub fn port_by_name(&self, name: &str) -> Option<PortIdx> {
        self.ports
            .iter()
            .position(|p| p.name == name)
            .map(|i| PortIdx(idx16(i)))
    }

    /// The largest frame any segment carries: the biggest MTU plus an Ethernet header and one
    /// 802.1Q tag.
    pub fn max_frame_len(&self) -> usize {
        let mtu = self.segments.iter().map(|s| s.mtu).max().unwrap_or(1500);
        usize::try_from(mtu)
            .unwrap_or(usize::MAX)
            .saturating_add(18)
    }
}

#[inline]
fn neigh_v4_key(seg: SegIdx, ip: Ipv4Addr) -> u64 {
    (u64::from(seg.0) << 32) | u64::from(u32::from(ip))
}

/// The 8-byte VXLAN header for `vni`: I flag set, reserved fields zero (RFC 7348 §5).
pub fn vxlan_header(vni: Vni) -> [u8; 8] {
    let v = vni.get().to_be_bytes();
    [0x08, 0, 0, 0, v[1], v[2], v[3], 0]
}

/// The services of segment `s` (validated configuration).
fn services(s: &SegmentConfig, mtu: u32) -> Services {
    let v = s.vni.get().to_be_bytes();
    let server_mac = s
        .gateway_mac
        .unwrap_or(MacAddr([0x02, 0x77, 0x65, v[1], v[2], v[3]]));
    let mut subnets4 = Vec::new();
    let mut subnets6 = Vec::new();
    for sub in &s.subnets {
        match sub.cidr {
            IpNetwork::V4(net) => {
                let v4 = |a: &IpAddr| match a {
                    IpAddr::V4(a) => Some(*a),
                    IpAddr::V6(_) => None,
                };
                let gateway = sub.gateway_ip.as_ref().and_then(v4);
                let mut routes: Vec<(Ipv4Addr, u8, Ipv4Addr)> = sub
                    .host_routes
                    .iter()
                    .filter_map(|r| match (r.destination, r.nexthop) {
                        (IpNetwork::V4(d), IpAddr::V4(n)) => Some((d.network(), d.prefix(), n)),
                        _ => None,
                    })
                    .collect();
                if let Some(g) = gateway
                    && !routes.iter().any(|r| r.1 == 0)
                {
                    routes.push((Ipv4Addr::UNSPECIFIED, 0, g));
                }
                subnets4.push(Subnet4 {
                    net,
                    gateway,
                    dhcp: sub.enable_dhcp,
                    server_id: sub.dhcp_server.as_ref().and_then(v4).or(gateway),
                    dns: sub.dns_nameservers.iter().filter_map(v4).collect(),
                    routes,
                    lease_secs: sub.lease_secs,
                });
            }
            IpNetwork::V6(net) => subnets6.push(Subnet6 {
                net,
                gateway: match sub.gateway_ip {
                    Some(IpAddr::V6(g)) => Some(g),
                    _ => None,
                },
                ra_mode: sub.ipv6_ra_mode,
                address_mode: sub.ipv6_address_mode.or(sub.ipv6_ra_mode),
                dns: sub
                    .dns_nameservers
                    .iter()
                    .filter_map(|a| match a {
                        IpAddr::V6(a) => Some(*a),
                        IpAddr::V4(_) => None,
                    })
                    .collect(),
                lease_secs: sub.lease_secs,
            }),
        }
    }
    let sends_ra = s.gateway_mac.is_some() && subnets6.iter().any(|n| n.ra_mode.is_some());
    Services {
        gateway_mac: s.gateway_mac,
        server_mac,
        server_link_local: server_mac.link_local(),
        domain: s
            .dns_domain
            .as_ref()
            .map(|d| d.trim_end_matches('.').to_owned()),
        subnets4,
        subnets6,
        sends_ra,
        mtu,
    }
}

/// What DHCP hands port `p`: its first IPv4 address in a DHCP-enabled subnet, its first IPv6
/// address in a stateful-DHCPv6 subnet, and its host name (configured, or derived from its
/// first address the way Neutron does: `host-10-0-0-5`).
fn dhcp_binding(p: &PortConfig, sv: &Services) -> DhcpBinding {
    let v4 = p.ips.iter().find_map(|ip| match ip {
        IpAddr::V4(a) => sv
            .subnets4
            .iter()
            .position(|s| s.dhcp && s.net.contains(*a))
            .map(|i| (*a, idx16(i))),
        IpAddr::V6(_) => None,
    });
    let v6 = p.ips.iter().find_map(|ip| match ip {
        IpAddr::V6(a) => sv
            .subnets6
            .iter()
            .position(|s| s.address_mode == Some(Ipv6Mode::Dhcpv6Stateful) && s.net.contains(*a))
            .map(|i| (*a, idx16(i))),
        IpAddr::V4(_) => None,
    });
    let hostname = p.hostname.clone().unwrap_or_else(|| match p.ips.first() {
        Some(IpAddr::V4(a)) => format!("host-{}", a.to_string().replace('.', "-")),
        Some(IpAddr::V6(a)) => format!("host-{}", a.to_string().replace(':', "-")),
        None => format!("host-{}", p.mac.to_string().replace(':', "")),
    });
    DhcpBinding { v4, v6, hostname }
}

/// The routes of router `rc`: its connected networks, then its static routes (each leaving
/// through the interface whose network holds its next hop), in LPM tables.
fn build_router(
    rc: &RouterConfig,
    interfaces: &[RifIdx],
    ifs: &[RouterIf],
) -> Result<Router, (&'static str, String)> {
    let lpm = |e: LpmError| ("routes", format!("cannot build the forwarding table: {e}"));
    let mut routes: Vec<Route> = Vec::new();
    let mut v4: Vec<(Ipv4Addr, u8, RouteId)> = Vec::new();
    let mut v6: Vec<(Ipv6Addr, u8, RouteId)> = Vec::new();
    let mut local4: Vec<(u32, Local4)> = Vec::new();
    let mut own6: Vec<(u128, RifIdx)> = Vec::new();
    let id = |routes: &Vec<Route>| RouteId::try_from(routes.len()).unwrap_or(RouteId::MAX - 1);
    for &rif in interfaces {
        let Some(i) = ifs.get(rif.get()) else {
            continue;
        };
        own6.push((u128::from(i.link_local), rif));
        for n in &i.v4 {
            local4.push((u32::from(n.ip()), Local4::Own(rif)));
            if n.prefix() < 31 {
                local4.push((u32::from(n.broadcast()), Local4::DirectedBroadcast));
            }
            v4.push((n.network(), n.prefix(), id(&routes)));
            routes.push(Route { rif, nexthop: None });
        }
        for n in &i.v6 {
            own6.push((u128::from(n.ip()), rif));
            v6.push((n.network(), n.prefix(), id(&routes)));
            routes.push(Route { rif, nexthop: None });
        }
    }
    for r in &rc.routes {
        let via = interfaces.iter().copied().find(|rif| {
            ifs.get(rif.get()).is_some_and(|i| match r.nexthop {
                IpAddr::V4(a) => i.v4.iter().any(|n| n.contains(a)),
                IpAddr::V6(a) => i.v6.iter().any(|n| n.contains(a)),
            })
        });
        let Some(rif) = via else { continue };
        match r.destination {
            IpNetwork::V4(d) => v4.push((d.network(), d.prefix(), id(&routes))),
            IpNetwork::V6(d) => v6.push((d.network(), d.prefix(), id(&routes))),
        }
        routes.push(Route {
            rif,
            nexthop: Some(r.nexthop),
        });
    }
    Ok(Router {
        name: rc.name.clone(),
        interfaces: interfaces.to_vec(),
        routes,
        fib4: Lpm4::build(&v4).map_err(lpm)?,
        fib6: Lpm6::build(&v6).map_err(lpm)?,
        nat: router_nat(rc, interfaces, ifs).map_err(|e| ("floating_ips", e.to_string()))?,
        project: rc.project.clone(),
        local4_filter: local4.iter().fold(AddrFilter::default(), |mut f, &(a, _)| {
            f.add_v4(Ipv4Addr::from(a));
            f
        }),
        own6_filter: own6.iter().fold(AddrFilter::default(), |mut f, &(a, _)| {
            f.add_v6(Ipv6Addr::from(a));
            f
        }),
        local4,
        own6,
    })
}

fn port_security(p: &PortConfig) -> PortSecurity {
    let mut own = AllowedMac {
        mac: p.mac,
        v4: Vec::new(),
        v6: Vec::new(),
    };
    let mut others: Vec<AllowedMac> = Vec::new();
    fn add(a: &mut AllowedMac, net: IpNetwork) {
        match net {
            IpNetwork::V4(n) => a.v4.push(n),
            IpNetwork::V6(n) => a.v6.push(n),
        }
    }
    for ip in &p.ips {
        add(&mut own, IpNetwork::from(*ip));
    }
    for pair in &p.allowed_address_pairs {
        match pair.mac {
            None => add(&mut own, pair.ip),
            Some(m) if m == p.mac => add(&mut own, pair.ip),
            Some(m) => match others.iter_mut().find(|a| a.mac == m) {
                Some(a) => add(a, pair.ip),
                None => {
                    let mut a = AllowedMac {
                        mac: m,
                        v4: Vec::new(),
                        v6: Vec::new(),
                    };
                    add(&mut a, pair.ip);
                    others.push(a);
                }
            },
        }
    }
    // Every MAC the port may use may also use its own EUI-64 link-local address (what Neutron
    // allows: ND and DHCPv6 need it before any global address exists).
    let mut allowed = vec![own];
    allowed.extend(others);
    for a in &mut allowed {
        add(a, IpNetwork::V6(Ipv6Network::from(a.mac.link_local())));
    }
    PortSecurity { allowed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> Tables {
        let c = NodeConfig::from_toml(crate::config::tests_support::EXAMPLE).unwrap();
        c.validate().unwrap()
    }

    #[test]
    fn lookups_resolve() {
        let t = tables();
        let a = t.segment_by_vni(100).unwrap();
        let b = t.segment_by_vni(200).unwrap();
        assert_eq!(t.segment_by_vni(300), None);
        let mac1: MacAddr = "fa:16:3e:00:00:01".parse().unwrap();
        // The same MAC lives on two different ports in two segments.
        assert_eq!(t.static_fdb(a, mac1), Some(FdbDest::Port(PortIdx(0))));
        assert_eq!(t.static_fdb(b, mac1), Some(FdbDest::Port(PortIdx(1))));
        let v = t.vtep_by_ip("192.168.100.2".parse().unwrap()).unwrap();
        assert!(t.vtep_serves(v, a) && t.vtep_serves(v, b));
        assert_eq!(t.vteps[v.get()].addr, "192.168.100.2:4789".parse().unwrap());
        let n = t.neighbour_v6(a, "fd00::2".parse().unwrap()).unwrap();
        assert_eq!(n.owner, FdbDest::Vtep(v));
        assert_eq!(t.neighbour_v4(b, "10.0.0.2".parse().unwrap()), None);
        assert_eq!(t.segments[a.get()].flood_vteps, vec![v]);
        assert_eq!(t.segments[a.get()].ports, vec![PortIdx(0)]);
        assert_eq!(t.segments[a.get()].vxlan_header, [8, 0, 0, 0, 0, 0, 100, 0]);
        assert_eq!(t.max_frame_len(), 1450 + 18);
    }

    #[test]
    fn port_security_rules() {
        let t = tables();
        let sec = t.ports[0].security.as_ref().unwrap();
        let own = sec.for_mac(t.ports[0].mac).unwrap();
        assert!(own.allows_v4("10.0.0.1".parse().unwrap()));
        assert!(own.allows_v4("10.0.0.100".parse().unwrap()));
        assert!(!own.allows_v4("10.0.0.2".parse().unwrap()));
        assert!(
            !own.allows_v4("10.1.0.5".parse().unwrap()),
            "10.1.0.0/24 is for the other MAC"
        );
        assert!(own.allows_v6("fd00::1".parse().unwrap()));
        assert!(own.allows_v6(t.ports[0].mac.link_local()));
        let other = sec.for_mac("fa:16:3e:00:01:00".parse().unwrap()).unwrap();
        assert!(other.allows_v4("10.1.0.5".parse().unwrap()));
        assert!(sec.for_mac("fa:16:3e:00:00:09".parse().unwrap()).is_none());
        assert!(t.ports[1].security.is_none());
    }
}
