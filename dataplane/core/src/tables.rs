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

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::config::{LearningConfig, NodeConfig, vtep_addr};
use crate::ids::{PortIdx, SegIdx, VtepIdx};
use crate::wire::{MacAddr, Vni};

/// Where a MAC address lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdbDest {
    /// Behind a local port.
    Port(PortIdx),
    /// Behind a remote VTEP.
    Vtep(VtepIdx),
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
    pub(crate) fn build(c: &NodeConfig) -> Tables {
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
        for (i, p) in c.ports.iter().enumerate() {
            let idx = PortIdx(idx16(i));
            let seg = seg_of(p.vni);
            segments[seg.get()].ports.push(idx);
            bind(seg, p.mac, &p.ips, FdbDest::Port(idx));
            ports.push(Port {
                name: p.name.clone(),
                interface: p.interface.clone(),
                seg,
                mac: p.mac,
                security: p.port_security.then(|| port_security(p)),
            });
        }
        for b in &c.remote_bindings {
            let owner = FdbDest::Vtep(vtep_by_ip.get(&b.vtep).copied().unwrap_or(VtepIdx(0)));
            bind(seg_of(b.vni), b.mac, &b.ips, owner);
        }

        Tables {
            node: c.node.clone(),
            revision: c.revision,
            local_vtep: SocketAddr::new(c.underlay.local_ip, c.underlay.port),
            learning: c.learning.clone(),
            ports,
            segments,
            vteps,
            seg_by_vni,
            vtep_by_ip,
            vtep_serves,
            static_fdb,
            neigh_v4,
            neigh_v6,
        }
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

fn port_security(p: &crate::config::PortConfig) -> PortSecurity {
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
