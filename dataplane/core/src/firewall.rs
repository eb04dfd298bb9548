//! Security groups: the per-port rule sets the firewall classifies new flows with.
//!
//! Neutron's semantics, per port with port security:
//!
//! - A port's groups are a union of allow rules, per direction, seen from the VM: ingress rules
//!   match traffic to it (remote = the source), egress rules traffic from it (remote = the
//!   destination). Nothing matches: denied. No group at all: everything denied.
//! - A rule matches by IP version, protocol (any when absent), destination port range for TCP,
//!   UDP, SCTP, DCCP and UDP-Lite, ICMP type and code, and the remote addresses: a list in the
//!   rule, or a named address set ([`AddressSets`]; the controller sends each remote group as
//!   one, holding its members' addresses).
//! - Stateful: only the first packet of a flow is classified ([`PortFilter::allows`]); the
//!   connection tracker lets the rest of the flow and its replies through. Each filter carries a
//!   generation ([`PortFilter::generation`], a hash of its rules and of the contents of the
//!   address sets they name): a tracked flow classified under another generation is classified
//!   again, so established flows the new rules no longer allow are cut, as are flows with a
//!   remote group member that left the group.
//! - Always allowed, whatever the groups ([`always_allowed`]): what a VM needs to configure its
//!   addresses (DHCP and DHCPv6 as a client, neighbour discovery, router solicitations and
//!   advertisements in, MLD). Always refused ([`guard`]): a VM acting as a DHCP or DHCPv6
//!   server or sending router advertisements.
//!
//! Classification is a linear walk over the port's rules (ports have few; a remote group of
//! many members is one hashed set, built once per configuration and shared by every port whose
//! rules name it), done once per flow.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use ipnetwork::IpNetwork;
use rustc_hash::{FxHashMap, FxHashSet, FxHasher};

use crate::config::{AddressSetConfig, RuleDirection, RuleEtherType, SecurityGroupConfig};
use crate::counters::DropReason;
use crate::flow::{Flow, PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP, Transport, Tuple};

/// Which way a packet crosses a port, seen from the VM.
pub type Direction = RuleDirection;

/// A set of remote addresses: hosts hashed, prefixes walked.
#[derive(Debug, Clone, Default)]
struct Remote {
    hosts: FxHashSet<IpAddr>,
    nets: Vec<IpNetwork>,
}

impl Remote {
    fn new<'a>(list: impl IntoIterator<Item = &'a IpNetwork>) -> Remote {
        let mut s = Remote::default();
        for n in list {
            let host = match n {
                IpNetwork::V4(n) => n.prefix() == 32,
                IpNetwork::V6(n) => n.prefix() == 128,
            };
            if host {
                s.hosts.insert(n.ip());
            } else {
                s.nets.push(*n);
            }
        }
        s
    }

    fn contains(&self, a: IpAddr) -> bool {
        self.hosts.contains(&a) || self.nets.iter().any(|n| n.contains(a))
    }
}

/// A node's address sets, each built once per configuration and shared by the filters of every
/// port whose rules name it.
#[derive(Debug, Default)]
pub struct AddressSets(FxHashMap<String, (Arc<Remote>, u64)>);

impl AddressSets {
    /// The sets of a configuration.
    pub fn build(sets: &[AddressSetConfig]) -> AddressSets {
        AddressSets(
            sets.iter()
                .map(|s| {
                    let mut h = FxHasher::default();
                    s.addresses.hash(&mut h);
                    let set = Arc::new(Remote::new(&s.addresses));
                    (s.name.clone(), (set, h.finish()))
                })
                .collect(),
        )
    }

    /// The set named `name` and a hash of its contents; an empty one for a name not configured
    /// (validation refuses such a configuration).
    fn get(&self, name: &str) -> (Arc<Remote>, u64) {
        self.0
            .get(name)
            .cloned()
            .unwrap_or_else(|| (Arc::new(Remote::default()), 0))
    }
}

#[derive(Debug, Clone)]
enum Match {
    Any,
    /// Destination ports, inclusive.
    Ports(u16, u16),
    /// ICMP type and optionally code.
    Icmp(u8, Option<u8>),
}

#[derive(Debug, Clone)]
struct Rule {
    v6: bool,
    proto: Option<u8>,
    m: Match,
    /// `None`: any address.
    remote: Option<Arc<Remote>>,
}

impl Rule {
    fn matches(&self, t: &Tuple, transport: &Transport, remote: IpAddr) -> bool {
        if self.v6 != t.src.is_ipv6() {
            return false;
        }
        if self.proto.is_some_and(|p| p != t.proto) {
            return false;
        }
        let ok = match self.m {
            Match::Any => true,
            Match::Ports(lo, hi) => {
                !matches!(transport, Transport::Fragment) && (lo..=hi).contains(&t.dport)
            }
            Match::Icmp(ty, code) => match *transport {
                Transport::Echo { request } => {
                    let want = match (self.v6, request) {
                        (false, true) => 8,
                        (false, false) => 0,
                        (true, true) => 128,
                        (true, false) => 129,
                    };
                    ty == want && code.is_none_or(|c| c == 0)
                }
                Transport::IcmpError {
                    ty: t2, code: c2, ..
                }
                | Transport::IcmpOther { ty: t2, code: c2 } => {
                    ty == t2 && code.is_none_or(|c| c == c2)
                }
                _ => false,
            },
        };
        ok && self.remote.as_ref().is_none_or(|r| r.contains(remote))
    }
}

/// A port's compiled security groups.
#[derive(Debug, Clone)]
pub struct PortFilter {
    ingress: Vec<Rule>,
    egress: Vec<Rule>,
    generation: u64,
}

impl PortFilter {
    /// The union of `groups`' rules, with the address sets they name taken from `sets`.
    pub fn build<'a>(
        groups: impl IntoIterator<Item = &'a SecurityGroupConfig>,
        sets: &AddressSets,
    ) -> PortFilter {
        let mut f = PortFilter {
            ingress: Vec::new(),
            egress: Vec::new(),
            generation: 0,
        };
        let mut h = FxHasher::default();
        for g in groups {
            for r in &g.rules {
                r.hash(&mut h);
                let v6 = r.ethertype == RuleEtherType::IPv6;
                let icmp = matches!(
                    (r.protocol, v6),
                    (Some(PROTO_ICMP), false) | (Some(PROTO_ICMPV6), true)
                );
                let m = match (r.port_range_min, r.port_range_max) {
                    (Some(t), c) if icmp => Match::Icmp(
                        u8::try_from(t).unwrap_or(u8::MAX),
                        c.map(|c| u8::try_from(c).unwrap_or(u8::MAX)),
                    ),
                    (Some(lo), Some(hi)) => Match::Ports(lo, hi),
                    _ => Match::Any,
                };
                let remote = match (&r.remote, &r.remote_set) {
                    (Some(list), _) => Some(Arc::new(Remote::new(list))),
                    (None, Some(name)) => {
                        let (set, contents) = sets.get(name);
                        contents.hash(&mut h);
                        Some(set)
                    }
                    (None, None) => None,
                };
                let rule = Rule {
                    v6,
                    proto: r.protocol,
                    m,
                    remote,
                };
                match r.direction {
                    RuleDirection::Ingress => f.ingress.push(rule),
                    RuleDirection::Egress => f.egress.push(rule),
                }
            }
        }
        f.generation = h.finish() | 1;
        f
    }

    /// The rules' generation: equal rule sets have equal generations (never 0).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the rules allow a flow whose first packet is `t` crossing the port in `dir`.
    pub fn allows(&self, dir: Direction, t: &Tuple, transport: &Transport) -> bool {
        let (rules, remote) = match dir {
            RuleDirection::Ingress => (&self.ingress, t.src),
            RuleDirection::Egress => (&self.egress, t.dst),
        };
        rules.iter().any(|r| r.matches(t, transport, remote))
    }
}

/// Traffic a port may never send: DHCP and DHCPv6 server replies, router advertisements
/// (a VM is not the network's DHCP server or router).
pub fn guard(dir: Direction, f: &Flow) -> Option<DropReason> {
    if dir != RuleDirection::Egress {
        return None;
    }
    match f.transport {
        Transport::Udp if f.tuple.sport == 67 && f.tuple.dport == 68 => {
            Some(DropReason::DhcpServerGuard)
        }
        Transport::Udp if f.tuple.sport == 547 && f.tuple.dport == 546 => {
            Some(DropReason::DhcpServerGuard)
        }
        Transport::IcmpOther { ty: 134, .. } if f.tuple.proto == PROTO_ICMPV6 => {
            Some(DropReason::RaGuard)
        }
        _ => None,
    }
}

/// Traffic every port with port security may send and receive, whatever its groups: address
/// configuration (DHCP, DHCPv6 as a client; neighbour and router discovery; MLD).
pub fn always_allowed(dir: Direction, f: &Flow) -> bool {
    let t = &f.tuple;
    match f.transport {
        Transport::Udp if t.proto == PROTO_UDP => match dir {
            RuleDirection::Egress => {
                (t.sport, t.dport) == (68, 67) || (t.sport, t.dport) == (546, 547)
            }
            RuleDirection::Ingress => {
                (t.sport, t.dport) == (67, 68) || (t.sport, t.dport) == (547, 546)
            }
        },
        Transport::IcmpOther { ty, .. } if t.proto == PROTO_ICMPV6 => match ty {
            // MLD query/report/done, MLDv2 report; neighbour solicitation and advertisement.
            130..=132 | 143 | 135 | 136 => true,
            // Router solicitation out, router advertisement in.
            133 => dir == RuleDirection::Egress,
            134 => dir == RuleDirection::Ingress,
            _ => false,
        },
        _ => false,
    }
}

/// Whether a flooded frame (broadcast, multicast, unknown unicast) may be copied to `port`.
/// Ports with security groups get only address-configuration traffic (neighbour discovery,
/// MLD, DHCP replies) and non-IP frames (ARP) by flooding: flooded IP is not tracked, so it is
/// not classified either. Stricter than Neutron, which lets ingress rules admit broadcasts.
pub fn flood_allowed(port: &crate::tables::Port, frame: &[u8]) -> bool {
    if port.filter.is_none() {
        return true;
    }
    let Ok(l2) = crate::wire::ethernet::parse_l2(frame) else {
        return false;
    };
    match l2.ethertype {
        crate::wire::ethernet::EtherType::Ipv4 | crate::wire::ethernet::EtherType::Ipv6 => frame
            .get(l2.l3_offset..)
            .and_then(|b| crate::flow::parse(b).ok())
            .is_some_and(|f| always_allowed(RuleDirection::Ingress, &f)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecurityRuleConfig;
    use crate::flow::tcp_flags;

    fn rule(
        dir: RuleDirection,
        v6: bool,
        proto: Option<u8>,
        min: Option<u16>,
        max: Option<u16>,
        remote: Option<Vec<&str>>,
    ) -> SecurityRuleConfig {
        SecurityRuleConfig {
            direction: dir,
            ethertype: if v6 {
                RuleEtherType::IPv6
            } else {
                RuleEtherType::IPv4
            },
            protocol: proto,
            port_range_min: min,
            port_range_max: max,
            remote: remote.map(|l| l.iter().map(|s| s.parse().unwrap()).collect()),
            remote_set: None,
        }
    }

    fn group(rules: Vec<SecurityRuleConfig>) -> SecurityGroupConfig {
        SecurityGroupConfig {
            name: "g".into(),
            rules,
        }
    }

    fn tcp(src: &str, dst: &str, dport: u16) -> (Tuple, Transport) {
        (
            Tuple {
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                proto: 6,
                sport: 40000,
                dport,
            },
            Transport::Tcp {
                flags: tcp_flags::SYN,
                seq: 1,
                ack: 0,
                window: 1000,
                wscale: None,
                payload: 0,
            },
        )
    }

    #[test]
    fn neutron_default_group_allows_out_and_members_in() {
        use RuleDirection::*;
        let g = group(vec![
            rule(Egress, false, None, None, None, None),
            rule(Egress, true, None, None, None, None),
            rule(
                Ingress,
                false,
                None,
                None,
                None,
                Some(vec!["10.0.0.5/32", "10.0.0.6/32"]),
            ),
        ]);
        let f = PortFilter::build([&g], &AddressSets::default());
        let (t, tr) = tcp("10.0.0.4", "198.51.100.1", 443);
        assert!(f.allows(Egress, &t, &tr));
        let (t, tr) = tcp("10.0.0.5", "10.0.0.4", 22);
        assert!(f.allows(Ingress, &t, &tr));
        let (t, tr) = tcp("10.0.0.7", "10.0.0.4", 22);
        assert!(!f.allows(Ingress, &t, &tr));
        let (t, tr) = tcp("2001:db8::7", "2001:db8::4", 22);
        assert!(!f.allows(Ingress, &t, &tr));
    }

    #[test]
    fn ports_icmp_and_prefixes() {
        use RuleDirection::*;
        let g = group(vec![
            rule(
                Ingress,
                false,
                Some(6),
                Some(80),
                Some(81),
                Some(vec!["192.0.2.0/24"]),
            ),
            rule(Ingress, false, Some(1), Some(8), None, None),
            rule(Ingress, true, Some(58), Some(128), Some(0), None),
        ]);
        let f = PortFilter::build([&g], &AddressSets::default());
        for (port, ok) in [(79, false), (80, true), (81, true), (82, false)] {
            let (t, tr) = tcp("192.0.2.9", "10.0.0.4", port);
            assert_eq!(f.allows(Ingress, &t, &tr), ok, "{port}");
        }
        let (t, tr) = tcp("192.0.3.9", "10.0.0.4", 80);
        assert!(!f.allows(Ingress, &t, &tr));
        let echo = |src: &str, dst: &str, request| {
            (
                Tuple {
                    src: src.parse().unwrap(),
                    dst: dst.parse().unwrap(),
                    proto: if src.contains(':') { 58 } else { 1 },
                    sport: 7,
                    dport: 7,
                },
                Transport::Echo { request },
            )
        };
        let (t, tr) = echo("192.0.3.9", "10.0.0.4", true);
        assert!(f.allows(Ingress, &t, &tr));
        let (t, tr) = echo("192.0.3.9", "10.0.0.4", false);
        assert!(!f.allows(Ingress, &t, &tr));
        let (t, tr) = echo("2001:db8::1", "2001:db8::4", true);
        assert!(f.allows(Ingress, &t, &tr));
        // Nothing allows egress.
        let (t, tr) = tcp("10.0.0.4", "192.0.2.9", 80);
        assert!(!f.allows(Egress, &t, &tr));
    }

    #[test]
    fn generations_follow_the_rules() {
        use RuleDirection::*;
        let a = group(vec![rule(
            Ingress,
            false,
            Some(6),
            Some(22),
            Some(22),
            None,
        )]);
        let b = group(vec![rule(
            Ingress,
            false,
            Some(6),
            Some(23),
            Some(23),
            None,
        )]);
        assert_eq!(
            PortFilter::build([&a], &AddressSets::default()).generation(),
            PortFilter::build([&a.clone()], &AddressSets::default()).generation()
        );
        assert_ne!(
            PortFilter::build([&a], &AddressSets::default()).generation(),
            PortFilter::build([&b], &AddressSets::default()).generation()
        );
        assert_ne!(
            PortFilter::build([], &AddressSets::default()).generation(),
            0
        );
    }

    #[test]
    fn address_sets_match_their_members_of_the_rules_version() {
        use RuleDirection::*;
        let mut r4 = rule(Ingress, false, Some(6), Some(22), Some(22), None);
        r4.remote_set = Some("members".into());
        let mut r6 = r4.clone();
        r6.ethertype = RuleEtherType::IPv6;
        let g = group(vec![r4, r6]);
        let set = |addrs: &[&str]| {
            AddressSets::build(&[AddressSetConfig {
                name: "members".into(),
                addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            }])
        };
        let sets = set(&["10.0.0.7/32", "192.0.2.0/24", "2001:db8::7/128"]);
        let f = PortFilter::build([&g], &sets);
        for (src, ok) in [
            ("10.0.0.7", true),
            ("10.0.0.8", false),
            ("192.0.2.200", true),
            ("2001:db8::7", true),
            ("2001:db8::8", false),
        ] {
            let dst = if src.contains(':') {
                "2001:db8::4"
            } else {
                "10.0.0.4"
            };
            let (t, tr) = tcp(src, dst, 22);
            assert_eq!(f.allows(Ingress, &t, &tr), ok, "{src}");
        }
        // Ports sharing the set share one copy of it.
        let again = PortFilter::build([&g], &sets);
        let remote = |f: &PortFilter| f.ingress[0].remote.clone().unwrap();
        assert!(Arc::ptr_eq(&remote(&f), &remote(&again)));
        // A member leaving changes the generation: flows it had are classified again.
        let fewer = PortFilter::build([&g], &set(&["192.0.2.0/24", "2001:db8::7/128"]));
        assert_ne!(f.generation(), fewer.generation());
        assert_eq!(f.generation(), again.generation());
        let (t, tr) = tcp("10.0.0.7", "10.0.0.4", 22);
        assert!(!fewer.allows(Ingress, &t, &tr));
        // A set that is not configured matches nothing.
        let none = PortFilter::build([&g], &AddressSets::default());
        assert!(!none.allows(Ingress, &t, &tr));
    }

    #[test]
    fn guards_and_address_configuration() {
        let udp = |sport, dport| Flow {
            tuple: Tuple {
                src: "10.0.0.4".parse().unwrap(),
                dst: "255.255.255.255".parse().unwrap(),
                proto: 17,
                sport,
                dport,
            },
            transport: Transport::Udp,
            l4: 20,
            fragmented: false,
        };
        assert_eq!(
            guard(RuleDirection::Egress, &udp(67, 68)),
            Some(DropReason::DhcpServerGuard)
        );
        assert_eq!(guard(RuleDirection::Ingress, &udp(67, 68)), None);
        assert!(always_allowed(RuleDirection::Egress, &udp(68, 67)));
        assert!(!always_allowed(RuleDirection::Egress, &udp(67, 68)));
        let icmp6 = |ty| Flow {
            tuple: Tuple {
                src: "fe80::1".parse().unwrap(),
                dst: "ff02::1".parse().unwrap(),
                proto: 58,
                sport: 0,
                dport: 0,
            },
            transport: Transport::IcmpOther { ty, code: 0 },
            l4: 40,
            fragmented: false,
        };
        assert_eq!(
            guard(RuleDirection::Egress, &icmp6(134)),
            Some(DropReason::RaGuard)
        );
        assert!(always_allowed(RuleDirection::Ingress, &icmp6(134)));
        assert!(always_allowed(RuleDirection::Egress, &icmp6(135)));
        assert!(!always_allowed(RuleDirection::Egress, &icmp6(134)));
    }
}
