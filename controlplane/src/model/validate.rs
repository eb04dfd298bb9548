//! Checks of attribute values that need more than their type: CIDRs without host bits,
//! pools inside their subnet, IPv6 modes that fit together, tags, security group rules.
//!
//! Each check returns [`ValidationError`], whose message names the attribute and says what is
//! wrong, in Neutron's wording where Neutron has one. Checks that need the store (overlaps with
//! other subnets, addresses in use) are made by the API handlers inside their transaction.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::{AllocationPool, Direction, EtherType, Ipv6Mode, Route, Subnet};
use crate::ipam;

/// Longest name or description Neutron accepts.
pub const MAX_NAME_LEN: usize = 255;
/// Most DNS servers per subnet (Neutron's default `max_dns_nameservers`).
pub const MAX_DNS_NAMESERVERS: usize = 5;
/// Most host routes per subnet (Neutron's default `max_subnet_host_routes`).
pub const MAX_HOST_ROUTES: usize = 20;
/// Most tags per resource.
pub const MAX_TAGS: usize = 50;

/// An attribute value that is well typed but not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// Generic: `Invalid input for {attr}. Reason: {reason}.`
    #[error("Invalid input for {attr}. Reason: {reason}.")]
    Invalid {
        /// The attribute.
        attr: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The gateway lies in an allocation pool.
    #[error("Gateway ip {gateway} conflicts with allocation pool {start}-{end}")]
    GatewayConflictWithAllocationPools {
        /// The gateway.
        gateway: IpAddr,
        /// The pool's start.
        start: IpAddr,
        /// The pool's end.
        end: IpAddr,
    },
}

fn invalid(attr: &'static str, reason: impl Into<String>) -> ValidationError {
    ValidationError::Invalid {
        attr,
        reason: reason.into(),
    }
}

/// A name or description: at most [`MAX_NAME_LEN`] characters.
pub fn text(attr: &'static str, s: &str) -> Result<(), ValidationError> {
    if s.chars().count() > MAX_NAME_LEN {
        return Err(invalid(
            attr,
            format!(
                "'{}...' exceeds maximum length of {MAX_NAME_LEN}",
                s.chars().take(20).collect::<String>()
            ),
        ));
    }
    Ok(())
}

/// Tags: each 1..=255 characters without commas; at most [`MAX_TAGS`]. Returns them sorted and
/// without duplicates.
pub fn tags(list: &[String]) -> Result<Vec<String>, ValidationError> {
    let mut out = BTreeSet::new();
    for t in list {
        tag(t)?;
        out.insert(t.clone());
    }
    if out.len() > MAX_TAGS {
        return Err(invalid("tags", format!("more than {MAX_TAGS} tags")));
    }
    Ok(out.into_iter().collect())
}

/// One tag (see [`tags`]).
pub fn tag(t: &str) -> Result<(), ValidationError> {
    if t.is_empty()
        || t.chars().count() > MAX_NAME_LEN
        || t.contains(',')
        || t.chars().any(char::is_control)
    {
        return Err(invalid(
            "tags",
            format!("'{t}' is not a valid tag: 1 to 255 characters, no commas"),
        ));
    }
    Ok(())
}

/// A prefix given as a CIDR: no host bits set. `attr` names it in the error.
pub fn network_cidr(attr: &'static str, net: IpNetwork) -> Result<(), ValidationError> {
    if net.network() != net.ip() {
        return Err(invalid(
            attr,
            format!(
                "'{net}' isn't a recognized IP subnet cidr, '{}/{}' is recommended",
                net.network(),
                net.prefix()
            ),
        ));
    }
    Ok(())
}

/// A subnet's prefix: the right family, no host bits, room for at least two addresses.
pub fn subnet_cidr(cidr: IpNetwork, ip_version: u8) -> Result<(), ValidationError> {
    let v = if cidr.is_ipv4() { 4 } else { 6 };
    if v != ip_version {
        return Err(invalid(
            "cidr",
            format!("cidr {cidr} does not match ip_version {ip_version}"),
        ));
    }
    network_cidr("cidr", cidr)?;
    let max = if cidr.is_ipv4() { 30 } else { 126 };
    if cidr.prefix() > max && !(cidr.is_ipv4() && cidr.prefix() >= 31) {
        return Err(invalid(
            "cidr",
            format!("prefix length of {cidr} is too long"),
        ));
    }
    if cidr.prefix() == 0 {
        return Err(invalid(
            "cidr",
            format!("{cidr} covers the whole address family"),
        ));
    }
    Ok(())
}

/// Everything about one subnet that needs no other resource: gateway, pools, routes, DNS
/// servers, IPv6 modes.
pub fn subnet(s: &Subnet) -> Result<(), ValidationError> {
    text("name", &s.name)?;
    text("description", &s.description)?;
    subnet_cidr(s.cidr, s.ip_version)?;
    if let Some(gw) = s.gateway_ip {
        if gw.is_ipv4() != s.cidr.is_ipv4() || !s.cidr.contains(gw) {
            return Err(invalid(
                "gateway_ip",
                format!("gateway {gw} is not in subnet {}", s.cidr),
            ));
        }
        if ipam::is_reserved(s.cidr, gw) {
            return Err(invalid(
                "gateway_ip",
                format!(
                    "gateway {gw} is the network or broadcast address of {}",
                    s.cidr
                ),
            ));
        }
    }
    pools(s)?;
    if s.dns_nameservers.len() > MAX_DNS_NAMESERVERS {
        return Err(invalid(
            "dns_nameservers",
            format!("more than {MAX_DNS_NAMESERVERS} DNS servers"),
        ));
    }
    let mut seen = BTreeSet::new();
    for d in &s.dns_nameservers {
        if !seen.insert(*d) {
            return Err(invalid(
                "dns_nameservers",
                format!("duplicate nameserver '{d}'"),
            ));
        }
    }
    if s.host_routes.len() > MAX_HOST_ROUTES {
        return Err(invalid(
            "host_routes",
            format!("more than {MAX_HOST_ROUTES} host routes"),
        ));
    }
    routes("host_routes", &s.host_routes, Some(s.cidr.is_ipv4()))?;
    ipv6_modes(s)?;
    Ok(())
}

/// Pools inside the subnet's usable range, start ≤ end, not overlapping, gateway outside.
fn pools(s: &Subnet) -> Result<(), ValidationError> {
    let (first, last) = ipam::bounds(s.cidr);
    let (lo, hi) = match s.cidr {
        IpNetwork::V4(v4) if v4.prefix() >= 31 => (first, last),
        IpNetwork::V4(_) => (first + 1, last - 1),
        IpNetwork::V6(_) => (first + 1, last),
    };
    let mut ranges: Vec<(u128, u128, &AllocationPool)> = Vec::new();
    for p in &s.allocation_pools {
        if p.start.is_ipv4() != s.cidr.is_ipv4() || p.end.is_ipv4() != s.cidr.is_ipv4() {
            return Err(invalid(
                "allocation_pools",
                format!(
                    "pool {}-{} is not of the subnet's IP version",
                    p.start, p.end
                ),
            ));
        }
        let (a, b) = (ipam::to_u128(p.start), ipam::to_u128(p.end));
        if a > b {
            return Err(invalid(
                "allocation_pools",
                format!("pool {}-{} starts after it ends", p.start, p.end),
            ));
        }
        if a < lo || b > hi {
            return Err(invalid(
                "allocation_pools",
                format!(
                    "The allocation pool {}-{} spans beyond the subnet cidr {}",
                    p.start, p.end, s.cidr
                ),
            ));
        }
        ranges.push((a, b, p));
    }
    ranges.sort_unstable_by_key(|r| r.0);
    for w in ranges.windows(2) {
        if w[1].0 <= w[0].1 {
            return Err(invalid(
                "allocation_pools",
                format!(
                    "Found overlapping allocation pools: {}-{} and {}-{}",
                    w[0].2.start, w[0].2.end, w[1].2.start, w[1].2.end
                ),
            ));
        }
    }
    if let Some(gw) = s.gateway_ip
        && let Some(p) = s
            .allocation_pools
            .iter()
            .find(|p| ipam::in_pools(std::slice::from_ref(p), gw))
    {
        return Err(ValidationError::GatewayConflictWithAllocationPools {
            gateway: gw,
            start: p.start,
            end: p.end,
        });
    }
    Ok(())
}

/// Static routes: destinations are network prefixes; families agree (and match the subnet's
/// when `v4` is given).
pub fn routes(attr: &'static str, list: &[Route], v4: Option<bool>) -> Result<(), ValidationError> {
    let mut seen = BTreeSet::new();
    for r in list {
        network_cidr(attr, r.destination)?;
        if r.destination.is_ipv4() != r.nexthop.is_ipv4() {
            return Err(invalid(
                attr,
                format!(
                    "destination {} and nexthop {} are of different IP versions",
                    r.destination, r.nexthop
                ),
            ));
        }
        if let Some(v4) = v4
            && r.destination.is_ipv4() != v4
        {
            return Err(invalid(
                attr,
                format!(
                    "route to {} is not of the subnet's IP version",
                    r.destination
                ),
            ));
        }
        if !seen.insert((r.destination.to_string(), r.nexthop)) {
            return Err(invalid(
                attr,
                format!("duplicate route {} via {}", r.destination, r.nexthop),
            ));
        }
    }
    Ok(())
}

/// IPv6 modes: only on IPv6 subnets; equal when both are given; automatic addresses need a /64.
fn ipv6_modes(s: &Subnet) -> Result<(), ValidationError> {
    if s.ip_version == 4 {
        if s.ipv6_ra_mode.is_some() || s.ipv6_address_mode.is_some() {
            return Err(invalid(
                "ipv6_address_mode",
                "ipv6_ra_mode and ipv6_address_mode cannot be set on an IPv4 subnet",
            ));
        }
        return Ok(());
    }
    if let (Some(ra), Some(addr)) = (s.ipv6_ra_mode, s.ipv6_address_mode)
        && ra != addr
    {
        return Err(invalid(
            "ipv6_address_mode",
            format!(
                "ipv6_ra_mode set to '{}' with ipv6_address_mode set to '{}' is not valid: when both are set they must be the same value",
                ra.as_str(),
                addr.as_str()
            ),
        ));
    }
    let auto = s.ipv6_address_mode.is_some_and(Ipv6Mode::is_auto_address)
        || s.ipv6_ra_mode.is_some_and(Ipv6Mode::is_auto_address);
    if auto && s.cidr.prefix() != 64 {
        return Err(invalid(
            "cidr",
            format!(
                "Invalid CIDR {} for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64",
                s.cidr
            ),
        ));
    }
    Ok(())
}

/// Protocols Neutron knows by name, with their numbers.
const PROTOCOLS: &[(&str, u8)] = &[
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("icmp", 1),
    ("icmpv6", 58),
    ("igmp", 2),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];

/// The protocol number of a rule's protocol (a name or a number 0..=255). `any` and `""` mean
/// none (`None` returned with `Ok`).
pub fn protocol_number(p: &str) -> Result<Option<u8>, ValidationError> {
    let lower = p.to_ascii_lowercase();
    if lower.is_empty() || lower == "any" {
        return Ok(None);
    }
    if let Some((_, n)) = PROTOCOLS.iter().find(|(name, _)| *name == lower) {
        return Ok(Some(*n));
    }
    lower.parse::<u8>().map(Some).map_err(|_| {
        invalid(
            "protocol",
            format!(
                "Security group rule protocol {p} not supported. Only protocol values {} and integer representations [0 to 255] are supported",
                PROTOCOLS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

/// A rule's ports against its protocol: ranges only for TCP/UDP/SCTP/UDP-Lite (1..=65535,
/// min ≤ max) and ICMP (type and code, 0..=255).
pub fn rule_ports(
    protocol: Option<u8>,
    ethertype: EtherType,
    min: Option<i64>,
    max: Option<i64>,
) -> Result<(Option<u16>, Option<u16>), ValidationError> {
    if min.is_none() && max.is_none() {
        return Ok((None, None));
    }
    match protocol {
        Some(6 | 17 | 132 | 136) => {
            let (Some(a), Some(b)) = (min, max) else {
                return Err(invalid(
                    "port_range_min",
                    "For TCP/UDP protocols, port_range_min and port_range_max must both be given",
                ));
            };
            if !(1..=65535).contains(&a) || !(1..=65535).contains(&b) {
                return Err(invalid(
                    "port_range_min",
                    format!(
                        "Invalid value for port {}",
                        if (1..=65535).contains(&a) { b } else { a }
                    ),
                ));
            }
            if a > b {
                return Err(invalid(
                    "port_range_min",
                    "For TCP/UDP protocols, port_range_min must be <= port_range_max",
                ));
            }
            Ok((u16::try_from(a).ok(), u16::try_from(b).ok()))
        }
        Some(1 | 58) => {
            if (protocol == Some(1)) != (ethertype == EtherType::IPv4) {
                return Err(invalid(
                    "protocol",
                    "ICMP protocol does not match the ethertype",
                ));
            }
            let check =
                |v: Option<i64>, what: &'static str| -> Result<Option<u16>, ValidationError> {
                    match v {
                        None => Ok(None),
                        Some(x) if (0..=255).contains(&x) => Ok(u16::try_from(x).ok()),
                        Some(x) => Err(invalid(what, format!("Invalid value for ICMP {what} {x}"))),
                    }
                };
            if min.is_none() && max.is_some() {
                return Err(invalid(
                    "port_range_max",
                    "ICMP code (port-range-max) given without an ICMP type (port-range-min)",
                ));
            }
            Ok((check(min, "port_range_min")?, check(max, "port_range_max")?))
        }
        _ => Err(invalid(
            "port_range_min",
            "Ports can only be given for the TCP, UDP, SCTP, UDP-Lite and ICMP protocols",
        )),
    }
}

/// The default rules of a new group (and of the default group, with `remote_self`):
/// all egress, and for the default group all ingress from members of the group.
pub fn default_rules(remote_self: bool) -> Vec<(Direction, EtherType, bool)> {
    let mut v = vec![
        (Direction::Egress, EtherType::IPv4, false),
        (Direction::Egress, EtherType::IPv6, false),
    ];
    if remote_self {
        v.push((Direction::Ingress, EtherType::IPv4, true));
        v.push((Direction::Ingress, EtherType::IPv6, true));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NetworkId, ProjectId, StandardAttrs, SubnetId};

    fn subnet(cidr: &str) -> Subnet {
        let cidr: IpNetwork = cidr.parse().unwrap();
        let gw = ipam::from_u128(ipam::bounds(cidr).0 + 1, cidr.network());
        Subnet {
            id: SubnetId::random(),
            project_id: ProjectId::new("p").unwrap(),
            name: String::new(),
            description: String::new(),
            network_id: NetworkId::random(),
            ip_version: if cidr.is_ipv4() { 4 } else { 6 },
            cidr,
            gateway_ip: gw,
            allocation_pools: ipam::default_pools(cidr, gw),
            dns_nameservers: vec![],
            host_routes: vec![],
            enable_dhcp: true,
            ipv6_ra_mode: None,
            ipv6_address_mode: None,
            tags: vec![],
            std: StandardAttrs::default(),
        }
    }

    #[test]
    fn cidrs() {
        assert!(subnet_cidr("10.0.0.0/24".parse().unwrap(), 4).is_ok());
        assert!(subnet_cidr("10.0.0.1/24".parse().unwrap(), 4).is_err());
        assert!(subnet_cidr("10.0.0.0/24".parse().unwrap(), 6).is_err());
        assert!(subnet("2001:db8::/64").ip_version == 6);
        assert!(super::subnet(&subnet("2001:db8::/64")).is_ok());
    }

    #[test]
    fn pools_and_gateway() {
        let mut s = subnet("10.0.0.0/24");
        assert!(super::subnet(&s).is_ok());
        s.allocation_pools = vec![AllocationPool {
            start: "10.0.0.1".parse().unwrap(),
            end: "10.0.0.10".parse().unwrap(),
        }];
        assert!(matches!(
            super::subnet(&s),
            Err(ValidationError::GatewayConflictWithAllocationPools { .. })
        ));
        s.allocation_pools[0].start = "10.0.0.0".parse().unwrap();
        s.gateway_ip = None;
        assert!(super::subnet(&s).is_err());
        s.allocation_pools = vec![
            AllocationPool {
                start: "10.0.0.2".parse().unwrap(),
                end: "10.0.0.20".parse().unwrap(),
            },
            AllocationPool {
                start: "10.0.0.20".parse().unwrap(),
                end: "10.0.0.30".parse().unwrap(),
            },
        ];
        assert!(super::subnet(&s).is_err());
    }

    #[test]
    fn ipv6_modes_need_a_64() {
        let mut s = subnet("2001:db8::/56");
        s.ipv6_address_mode = Some(Ipv6Mode::Slaac);
        assert!(super::subnet(&s).is_err());
        let mut s = subnet("2001:db8::/64");
        s.ipv6_address_mode = Some(Ipv6Mode::Slaac);
        s.ipv6_ra_mode = Some(Ipv6Mode::Dhcpv6Stateful);
        assert!(super::subnet(&s).is_err());
        s.ipv6_ra_mode = Some(Ipv6Mode::Slaac);
        assert!(super::subnet(&s).is_ok());
    }

    #[test]
    fn rule_protocols_and_ports() {
        assert_eq!(protocol_number("TCP"), Ok(Some(6)));
        assert_eq!(protocol_number("132"), Ok(Some(132)));
        assert_eq!(protocol_number("any"), Ok(None));
        assert!(protocol_number("tcpx").is_err());
        assert_eq!(
            rule_ports(Some(6), EtherType::IPv4, Some(22), Some(22)),
            Ok((Some(22), Some(22)))
        );
        assert!(rule_ports(Some(6), EtherType::IPv4, Some(23), Some(22)).is_err());
        assert!(rule_ports(Some(6), EtherType::IPv4, Some(0), Some(22)).is_err());
        assert!(rule_ports(None, EtherType::IPv4, Some(1), Some(2)).is_err());
        assert_eq!(
            rule_ports(Some(1), EtherType::IPv4, Some(8), None),
            Ok((Some(8), None))
        );
        assert!(rule_ports(Some(1), EtherType::IPv6, Some(8), None).is_err());
    }

    #[test]
    fn tags_are_sorted_and_unique() {
        let t = tags(&["red".into(), "blue".into(), "red".into()]).unwrap();
        assert_eq!(t, vec!["blue".to_owned(), "red".to_owned()]);
        assert!(tags(&["a,b".into()]).is_err());
        assert!(tags(&["".into()]).is_err());
    }
}
