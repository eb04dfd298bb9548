//! IP address management: which addresses of a subnet a port may get.
//!
//! ```text
//!   10.0.0.0/24   .0 network   .1 gateway   [.2 ........ .254] pool   .255 broadcast
//!                 never given  router only   automatic allocation      never given
//! ```
//!
//! Model: an address is *allocated* when the store's `ip_allocations` table has a row
//! (subnet, address); the table's primary key makes an address belong to at most one port, and
//! [`crate::store::Tx::claim_ip`] inserts with `ON CONFLICT DO NOTHING`, so two concurrent
//! requests can never both get it: the loser sees "taken" and tries the next candidate, on
//! SQLite and PostgreSQL alike. Allocation history rows are written in the same transaction.
//!
//! Candidates:
//! - a requested address: it must lie in the subnet, not be its network address (nor the IPv4
//!   broadcast), and may be the gateway only for router ports; pools do not restrict it;
//! - automatic allocation in a small pool (≤ [`SCAN_LIMIT`] addresses): the lowest free address,
//!   from one read of the subnet's allocations;
//! - in a large pool: random probes first (cheap while the pool is not nearly full), then the
//!   same exact scan, so "no address left" (`IpAddressGenerationFailure`) is only ever said when
//!   the pools are really full;
//! - SLAAC / DHCPv6-stateless subnets: the modified EUI-64 address of the port's MAC in the /64.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

use crate::model::{AllocationPool, MacAddr, ProjectId, Subnet};
use crate::store::{StoreError, Tx};

/// Pools up to this size are always allocated lowest-free (deterministic, one read).
pub const SCAN_LIMIT: u128 = 4096;
/// Random probes in a large pool before the exact scan.
pub const RANDOM_PROBES: usize = 24;

/// Why an address cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// Outside the subnet.
    #[error("IP address {0} is not a valid IP for the specified subnet")]
    OutsideSubnet(IpAddr),
    /// The network address or the IPv4 broadcast.
    #[error("IP address {0} is reserved in subnet {1} and cannot be allocated")]
    Reserved(IpAddr, IpNetwork),
    /// The gateway, requested by a port that is not a router's.
    #[error("IP address {0} is the gateway of subnet {1}: only a router port may use it")]
    Gateway(IpAddr, IpNetwork),
    /// A specific address on a subnet whose addresses are derived from MACs.
    #[error(
        "IPv6 address {0} can not be directly assigned to a port on subnet {1} since the subnet is configured for automatic addresses"
    )]
    AutoAddressSubnet(IpAddr, IpNetwork),
}

/// An address as a number (IPv4 in the low 32 bits).
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of number `n` in the family of `like`. `None` if `n` does not fit.
pub fn from_u128(n: u128, like: IpAddr) -> Option<IpAddr> {
    match like {
        IpAddr::V4(_) => u32::try_from(n).ok().map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        IpAddr::V6(_) => Some(IpAddr::V6(Ipv6Addr::from(n))),
    }
}

/// First and last address of a prefix, as numbers.
pub fn bounds(net: IpNetwork) -> (u128, u128) {
    let first = to_u128(net.network());
    let bits: u32 = if net.is_ipv4() { 32 } else { 128 };
    let host_bits = bits - u32::from(net.prefix());
    let last = if host_bits >= 128 {
        u128::MAX
    } else {
        first | ((1u128 << host_bits) - 1)
    };
    (first, last)
}

/// Whether `ip` is the network address or (IPv4) the broadcast address of `net`. A /31 or /32
/// IPv4 prefix has no such reserved addresses (RFC 3021).
pub fn is_reserved(net: IpNetwork, ip: IpAddr) -> bool {
    let (first, last) = bounds(net);
    let n = to_u128(ip);
    match net {
        IpNetwork::V4(v4) if v4.prefix() >= 31 => false,
        IpNetwork::V4(_) => n == first || n == last,
        IpNetwork::V6(_) => n == first,
    }
}

/// Neutron's default pools: every usable address of `cidr` except the gateway.
pub fn default_pools(cidr: IpNetwork, gateway: Option<IpAddr>) -> Vec<AllocationPool> {
    let (first, last) = bounds(cidr);
    let (lo, hi) = match cidr {
        IpNetwork::V4(v4) if v4.prefix() >= 31 => (first, last),
        IpNetwork::V4(_) => (first + 1, last - 1),
        IpNetwork::V6(_) => (first + 1, last),
    };
    if lo > hi {
        return Vec::new();
    }
    let mut ranges = vec![(lo, hi)];
    if let Some(g) = gateway.map(to_u128).filter(|g| (lo..=hi).contains(g)) {
        ranges.clear();
        if g > lo {
            ranges.push((lo, g - 1));
        }
        if g < hi {
            ranges.push((g + 1, hi));
        }
    }
    let like = cidr.network();
    ranges
        .into_iter()
        .filter_map(|(a, b)| {
            Some(AllocationPool {
                start: from_u128(a, like)?,
                end: from_u128(b, like)?,
            })
        })
        .collect()
}

/// Number of addresses in the pools.
pub fn pool_size(pools: &[AllocationPool]) -> u128 {
    pools
        .iter()
        .map(|p| {
            to_u128(p.end)
                .saturating_sub(to_u128(p.start))
                .saturating_add(1)
        })
        .fold(0u128, u128::saturating_add)
}

/// Whether `ip` is in one of the pools.
pub fn in_pools(pools: &[AllocationPool], ip: IpAddr) -> bool {
    let n = to_u128(ip);
    pools.iter().any(|p| {
        p.start.is_ipv4() == ip.is_ipv4() && (to_u128(p.start)..=to_u128(p.end)).contains(&n)
    })
}

/// The modified EUI-64 address (RFC 4291 appendix A) of `mac` in the /64 `prefix`.
pub fn eui64(prefix: IpNetwork, mac: MacAddr) -> Option<IpAddr> {
    let IpNetwork::V6(p) = prefix else {
        return None;
    };
    let mut o = p.network().octets();
    o[8..].copy_from_slice(&mac.eui64());
    Some(IpAddr::V6(Ipv6Addr::from(o)))
}

/// Checks that `ip` may be given to a port on `subnet` on request.
pub fn check_requested(subnet: &Subnet, ip: IpAddr, router_port: bool) -> Result<(), IpamError> {
    if !subnet.cidr.contains(ip) || subnet.cidr.is_ipv4() != ip.is_ipv4() {
        return Err(IpamError::OutsideSubnet(ip));
    }
    if is_reserved(subnet.cidr, ip) {
        return Err(IpamError::Reserved(ip, subnet.cidr));
    }
    if subnet.gateway_ip == Some(ip) && !router_port {
        return Err(IpamError::Gateway(ip, subnet.cidr));
    }
    if subnet.is_auto_address() && !router_port {
        return Err(IpamError::AutoAddressSubnet(ip, subnet.cidr));
    }
    Ok(())
}

/// Up to `n` free pool addresses in ascending order, given the allocated ones; skips the
/// gateway and reserved addresses even if a pool (wrongly) contained them.
pub fn lowest_free(subnet: &Subnet, allocated: &HashSet<u128>, n: usize) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let gw = subnet.gateway_ip.map(to_u128);
    let mut pools: Vec<(u128, u128)> = subnet
        .allocation_pools
        .iter()
        .map(|p| (to_u128(p.start), to_u128(p.end)))
        .collect();
    pools.sort_unstable();
    let like = subnet.cidr.network();
    for (a, b) in pools {
        let mut x = a;
        loop {
            if out.len() >= n {
                return out;
            }
            if !allocated.contains(&x)
                && Some(x) != gw
                && let Some(ip) = from_u128(x, like)
                && !is_reserved(subnet.cidr, ip)
            {
                out.push(ip);
            }
            if x >= b {
                break;
            }
            x += 1;
        }
    }
    out
}

/// A uniformly random address of the pools (weighted by pool size), from `r` random bits.
pub fn random_in_pools(subnet: &Subnet, r: u128) -> Option<IpAddr> {
    let total = pool_size(&subnet.allocation_pools);
    if total == 0 {
        return None;
    }
    let mut k = r % total;
    for p in &subnet.allocation_pools {
        let size = to_u128(p.end) - to_u128(p.start) + 1;
        if k < size {
            return from_u128(to_u128(p.start) + k, p.start);
        }
        k -= size;
    }
    None
}

/// 128 random bits (from the OS, through a version-4 UUID's generator).
pub fn random_u128() -> u128 {
    uuid::Uuid::new_v4().as_u128()
}

/// Rounds of candidates the exact scan tries before giving up (each round marks at least one
/// more address taken, so this only bounds pathological contention).
const MAX_SCAN_ROUNDS: usize = 10_000;

/// Allocates a free pool address of `subnet` to `port` (see the module doc for the order of
/// candidates). `None` when the pools are full.
pub async fn allocate(
    tx: &mut Tx,
    subnet: &Subnet,
    port: &str,
    project: &ProjectId,
) -> Result<Option<IpAddr>, StoreError> {
    let size = pool_size(&subnet.allocation_pools);
    if size == 0 {
        return Ok(None);
    }
    if size > SCAN_LIMIT {
        for _ in 0..RANDOM_PROBES {
            let Some(ip) = random_in_pools(subnet, random_u128()) else {
                break;
            };
            if Some(ip) == subnet.gateway_ip || is_reserved(subnet.cidr, ip) {
                continue;
            }
            if tx.claim_ip(subnet, ip, port, project).await? {
                return Ok(Some(ip));
            }
        }
    }
    let mut allocated = tx.allocated(&subnet.id.to_string()).await?;
    for _ in 0..MAX_SCAN_ROUNDS {
        let candidates = lowest_free(subnet, &allocated, 64);
        if candidates.is_empty() {
            return Ok(None);
        }
        for ip in candidates {
            if tx.claim_ip(subnet, ip, port, project).await? {
                return Ok(Some(ip));
            }
            allocated.insert(to_u128(ip));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NetworkId, ProjectId, StandardAttrs, SubnetId};

    fn subnet(cidr: &str, gw: Option<&str>) -> Subnet {
        let cidr: IpNetwork = cidr.parse().unwrap();
        let gateway_ip = gw.map(|g| g.parse().unwrap());
        Subnet {
            id: SubnetId::random(),
            project_id: ProjectId::new("p").unwrap(),
            name: String::new(),
            description: String::new(),
            network_id: NetworkId::random(),
            ip_version: if cidr.is_ipv4() { 4 } else { 6 },
            cidr,
            gateway_ip,
            allocation_pools: default_pools(cidr, gateway_ip),
            dns_nameservers: vec![],
            host_routes: vec![],
            enable_dhcp: true,
            ipv6_ra_mode: None,
            ipv6_address_mode: None,
            tags: vec![],
            std: StandardAttrs::default(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_pools_skip_network_broadcast_and_gateway() {
        let s = subnet("10.0.0.0/24", Some("10.0.0.1"));
        assert_eq!(
            s.allocation_pools,
            vec![AllocationPool {
                start: ip("10.0.0.2"),
                end: ip("10.0.0.254")
            }]
        );
        let s = subnet("10.0.0.0/24", Some("10.0.0.100"));
        assert_eq!(s.allocation_pools.len(), 2);
        assert_eq!(pool_size(&s.allocation_pools), 253);
        let s = subnet("2001:db8::/64", Some("2001:db8::1"));
        assert_eq!(s.allocation_pools[0].start, ip("2001:db8::2"));
        assert_eq!(
            s.allocation_pools[0].end,
            ip("2001:db8::ffff:ffff:ffff:ffff")
        );
        let s = subnet("10.0.0.0/24", None);
        assert_eq!(pool_size(&s.allocation_pools), 254);
    }

    #[test]
    fn requested_addresses_are_checked() {
        let s = subnet("10.0.0.0/24", Some("10.0.0.1"));
        assert!(check_requested(&s, ip("10.0.0.7"), false).is_ok());
        assert_eq!(
            check_requested(&s, ip("10.0.1.7"), false),
            Err(IpamError::OutsideSubnet(ip("10.0.1.7")))
        );
        assert!(matches!(
            check_requested(&s, ip("10.0.0.0"), true),
            Err(IpamError::Reserved(..))
        ));
        assert!(matches!(
            check_requested(&s, ip("10.0.0.255"), true),
            Err(IpamError::Reserved(..))
        ));
        assert!(matches!(
            check_requested(&s, ip("10.0.0.1"), false),
            Err(IpamError::Gateway(..))
        ));
        assert!(check_requested(&s, ip("10.0.0.1"), true).is_ok());
        assert!(matches!(
            check_requested(&s, ip("2001:db8::1"), false),
            Err(IpamError::OutsideSubnet(_))
        ));
    }

    #[test]
    fn lowest_free_skips_allocated() {
        let s = subnet("10.0.0.0/29", Some("10.0.0.1"));
        let taken: HashSet<u128> = [ip("10.0.0.2"), ip("10.0.0.4")]
            .into_iter()
            .map(to_u128)
            .collect();
        assert_eq!(
            lowest_free(&s, &taken, 10),
            vec![ip("10.0.0.3"), ip("10.0.0.5"), ip("10.0.0.6")]
        );
        assert_eq!(lowest_free(&s, &taken, 1), vec![ip("10.0.0.3")]);
    }

    #[test]
    fn random_addresses_stay_in_pools() {
        let s = subnet("10.0.0.0/24", Some("10.0.0.100"));
        for i in 0..2000u128 {
            let a = random_in_pools(&s, random_u128().wrapping_add(i)).unwrap();
            assert!(in_pools(&s.allocation_pools, a), "{a}");
        }
    }

    #[test]
    fn eui64_from_mac() {
        let mac: MacAddr = "fa:16:3e:12:34:56".parse().unwrap();
        assert_eq!(
            eui64("2001:db8:1::/64".parse().unwrap(), mac),
            Some(ip("2001:db8:1::f816:3eff:fe12:3456"))
        );
    }
}
