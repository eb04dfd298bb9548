//! The stateful nodes of the pipeline: the security-group firewall at VM ports and NAT at
//! router gateways, with the state they keep across configuration swaps.
//!
//! ```text
//!  from a VM port ─► port_security ─► firewall(egress, the port's zone) ─► l2 / router ...
//!  ... l2 delivery to a VM port ─► firewall(ingress, that port's zone) ─► port
//!  router: from the gateway ─► DNAT (port forwarding > floating IP > SNAT session) ─► route
//!          to the gateway   ─► SNAT (port forwarding > floating IP > SNAT session) ─► out
//! ```
//!
//! Each VM port with security groups is a conntrack zone: a flow between two VMs is tracked
//! twice, once at each end (as OVN does), so each port's rules are enforced where the port is.
//! Zones, tenants and NAT zones are numbered by name and the numbers kept across swaps, so a
//! port that stays keeps its flows; a port or router that goes has its state removed.

use std::net::{IpAddr, Ipv4Addr};

use rustc_hash::FxHashMap;

use crate::config::RuleDirection;
use crate::conntrack::{CommitError, Conntrack, CtLimits, Dir, Lookup, TenantId, Zone};
use crate::counters::{DropReason, Event};
use crate::firewall::{self, Direction, PortFilter};
use crate::flow::{self, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, Transport, Tuple};
use crate::ids::{PortIdx, RifIdx, RouterIdx};
use crate::nat::{self, Nat, NatLimits, NatZone};
use crate::packet::PacketBuf;
use crate::pipeline::{Ctx, wire_drop};
use crate::tables::{RouterNat, Tables};
use crate::time::Timestamp;

/// Entries the expiry sweep looks at per run.
pub const EXPIRY_BUDGET: usize = 4096;
/// How often the expiry sweep runs.
pub const EXPIRY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Numbers for names that stay the same across swaps.
#[derive(Debug, Default)]
struct Names {
    ids: FxHashMap<String, u32>,
    next: u32,
}

impl Names {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(i) = self.ids.get(name) {
            return *i;
        }
        let i = self.next;
        self.next = self.next.wrapping_add(1);
        self.ids.insert(name.to_owned(), i);
        i
    }
}

/// Connection-tracking and NAT state of one worker.
#[derive(Debug)]
pub(crate) struct Stateful {
    /// The connection tracker, made when the first port with security groups appears.
    pub(crate) ct: Option<Conntrack>,
    /// Per port ([`PortIdx`]): its zone and tenant.
    pub(crate) port_zone: Vec<(Zone, TenantId)>,
    /// SNAT state, made when the first router with SNAT appears.
    pub(crate) nat: Option<Nat>,
    /// Per router ([`RouterIdx`]): its NAT zone.
    pub(crate) router_zone: Vec<NatZone>,
    routers: Names,
    zones: Names,
    tenants: Names,
    pub(crate) next_expiry: Timestamp,
    /// Seeds the tracker's and NAT's hashes (and NAT's port choice).
    seed: u64,
}

impl Stateful {
    pub(crate) fn new(t: &Tables, seed: u64) -> Stateful {
        let mut s = Stateful {
            ct: None,
            port_zone: Vec::new(),
            nat: None,
            router_zone: Vec::new(),
            routers: Names::default(),
            zones: Names::default(),
            tenants: Names::default(),
            next_expiry: Timestamp::ZERO,
            seed,
        };
        s.swap(t);
        s
    }

    /// Follows new tables: numbers new ports, forgets the state of ports that went.
    pub(crate) fn swap(&mut self, t: &Tables) -> usize {
        self.port_zone = t
            .ports
            .iter()
            .map(|p| {
                (
                    Zone(self.zones.id(&p.name)),
                    TenantId(self.tenants.id(&p.project)),
                )
            })
            .collect();
        let mut removed = 0;
        let gone: Vec<(String, u32)> = self
            .zones
            .ids
            .iter()
            .filter(|(name, _)| t.port_by_name(name).is_none())
            .map(|(n, i)| (n.clone(), *i))
            .collect();
        for (name, id) in gone {
            self.zones.ids.remove(&name);
            if let Some(ct) = &mut self.ct {
                removed += ct.remove_zone(Zone(id));
            }
        }
        self.router_zone = t
            .routers
            .iter()
            .map(|r| NatZone(self.routers.id(&r.name)))
            .collect();
        let gone: Vec<(String, u32)> = self
            .routers
            .ids
            .iter()
            .filter(|(name, _)| !t.routers.iter().any(|r| &r.name == *name))
            .map(|(n, i)| (n.clone(), *i))
            .collect();
        for (name, id) in gone {
            self.routers.ids.remove(&name);
            if let Some(nat) = &mut self.nat {
                removed += nat.remove_zone(NatZone(id));
            }
        }
        if self.nat.is_none()
            && t.routers
                .iter()
                .any(|r| r.nat.as_ref().is_some_and(|n| n.snat))
        {
            self.nat = Some(Nat::new(
                NatLimits {
                    max_sessions: t.limits.nat_max,
                    max_per_zone: t.limits.nat_per_router,
                    ..NatLimits::default()
                },
                self.seed,
            ));
        }
        if self.ct.is_none() && t.ports.iter().any(|p| p.filter.is_some()) {
            self.ct = Some(Conntrack::new(
                CtLimits {
                    max_flows: t.limits.conntrack_max,
                    max_per_tenant: t.limits.conntrack_per_tenant,
                },
                self.seed ^ 0xc7_0000_0000,
            ));
        }
        removed
    }

    /// Runs the bounded expiry sweeps; returns the entries removed.
    pub(crate) fn expire(&mut self, now: Timestamp) -> usize {
        self.next_expiry = now.plus(EXPIRY_INTERVAL);
        self.ct
            .as_mut()
            .map_or(0, |ct| ct.expire(now, EXPIRY_BUDGET))
            + self
                .nat
                .as_mut()
                .map_or(0, |n| n.expire(now, EXPIRY_BUDGET))
    }

    /// Whether any state needs the expiry timer.
    pub(crate) fn has_state(&self) -> bool {
        self.ct.as_ref().is_some_and(|c| !c.is_empty())
            || self.nat.as_ref().is_some_and(|n| n.sessions() > 0)
    }
}

/// A transport to classify a tracked flow's tuple again with (the rules look at protocol,
/// ports, ICMP echo type).
fn transport_of(t: &Tuple) -> Transport {
    match t.proto {
        PROTO_TCP => Transport::Tcp {
            flags: flow::tcp_flags::SYN,
            seq: 0,
            ack: 0,
            window: 0,
            wscale: None,
            payload: 0,
        },
        PROTO_UDP => Transport::Udp,
        PROTO_ICMP | PROTO_ICMPV6 => Transport::Echo { request: true },
        _ => Transport::Other,
    }
}

fn reverse(d: Direction) -> Direction {
    match d {
        RuleDirection::Ingress => RuleDirection::Egress,
        RuleDirection::Egress => RuleDirection::Ingress,
    }
}

impl Ctx<'_> {
    /// The security groups of port `idx` for an IP packet crossing it in `dir`, whose IP header
    /// starts at `l3`.
    #[inline(always)]
    pub(crate) fn firewall(
        &mut self,
        idx: PortIdx,
        filter: &PortFilter,
        dir: Direction,
        pkt: &PacketBuf,
        l3: usize,
    ) -> Result<(), DropReason> {
        // Borrowed from the result: moved out of it, the flow was copied (~20 instructions).
        let parsed = flow::parse(pkt.data().get(l3..).ok_or(DropReason::Truncated)?);
        let f = parsed.as_ref().map_err(|e| wire_drop(*e))?;
        if let Some(r) = firewall::guard(dir, f) {
            return Err(r);
        }
        if firewall::always_allowed(dir, f) {
            return Ok(());
        }
        let Some(&(zone, tenant)) = self.st.port_zone.get(idx.get()) else {
            return Err(DropReason::NoSuchPort);
        };
        let Some(ct) = self.st.ct.as_mut() else {
            return Err(DropReason::SecurityGroup);
        };
        match ct.lookup_secs(zone, f, self.now_s) {
            Lookup::Established {
                id,
                dir: cdir,
                generation,
            } => {
                if generation == filter.generation() {
                    return Ok(());
                }
                // The rules changed since the flow was classified: classify its first packet
                // again; a flow they no longer allow is cut.
                let Some(orig) = ct.original(id) else {
                    return Err(DropReason::SecurityGroup);
                };
                let odir = if cdir == Dir::Original {
                    dir
                } else {
                    reverse(dir)
                };
                if filter.allows(odir, &orig, &transport_of(&orig)) {
                    ct.set_generation(id, filter.generation());
                    Ok(())
                } else {
                    ct.remove(id);
                    self.c.event(Event::FlowCut);
                    Err(DropReason::SecurityGroup)
                }
            }
            Lookup::Related { .. } => Ok(()),
            Lookup::Invalid(r) => Err(r),
            Lookup::New => {
                if !filter.allows(dir, &f.tuple, &f.transport) {
                    return Err(DropReason::SecurityGroup);
                }
                if let Transport::IcmpOther { .. } = f.transport {
                    // Allowed by a rule; nothing to track (no reply expected by type).
                    return Ok(());
                }
                match ct.commit(zone, tenant, f, filter.generation(), self.now) {
                    Ok(_) => {
                        self.c.event(Event::FlowCreated);
                        Ok(())
                    }
                    Err(CommitError::NodeFull) => Err(DropReason::ConntrackFull),
                    Err(CommitError::TenantFull) => Err(DropReason::ConntrackTenantFull),
                    Err(CommitError::Invalid(r)) => Err(r),
                }
            }
        }
    }
}

fn v4(a: IpAddr) -> Option<Ipv4Addr> {
    match a {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

impl Ctx<'_> {
    /// The address and port a packet from inside leaves router `r` with: port forwarding,
    /// then floating IP, then an SNAT session; `None` when it leaves untranslated. Inlined
    /// into its callers (left to the compiler, it was called out of line: 15 instructions).
    #[inline(always)]
    fn snat_source(
        &mut self,
        r: RouterIdx,
        nat: &RouterNat,
        f: &flow::Flow,
    ) -> Result<Option<(Ipv4Addr, u16)>, DropReason> {
        if let Some(t) = nat.statics.outbound(f) {
            return Ok(Some((t.ip, t.port)));
        }
        if !nat.snat {
            return Ok(None);
        }
        match f.transport {
            Transport::Fragment => return Err(DropReason::NatFragment),
            Transport::Other | Transport::IcmpOther { .. } => {
                return Err(DropReason::NatUnsupported);
            }
            _ => {}
        }
        let zone = self
            .st
            .router_zone
            .get(r.get())
            .copied()
            .ok_or(DropReason::NatNodeLimit)?;
        let st = self.st.nat.as_mut().ok_or(DropReason::NatNodeLimit)?;
        let t = st
            .outbound_secs(zone, nat.gateway_ip, f, self.now_s)
            .map_err(|e| e.drop_reason())?;
        Ok(Some((t.ip, t.port)))
    }

    /// NAT for an IPv4 packet to one of router `r`'s external addresses `dst` (from outside,
    /// or from inside: hairpinning): the internal destination it is translated to, or `None`
    /// when it is for the router itself.
    #[inline(never)]
    pub(crate) fn nat_in(
        &mut self,
        r: RouterIdx,
        nat: &RouterNat,
        ingress: RifIdx,
        pkt: &mut PacketBuf,
        l3: usize,
        dst: Ipv4Addr,
    ) -> Result<Option<Ipv4Addr>, DropReason> {
        let mut parsed = flow::parse(pkt.data().get(l3..).ok_or(DropReason::Truncated)?);
        let f = parsed.as_mut().map_err(|e| wire_drop(*e))?;
        let zone = self.st.router_zone.get(r.get()).copied();
        if ingress != nat.gateway {
            // Hairpinning: from inside to an external address. Pings and other traffic to the
            // gateway address itself are for the router.
            let dnat = nat
                .statics
                .to_internal(f.tuple.proto, dst, f.tuple.dport)
                .is_some()
                || (dst == nat.gateway_ip
                    && nat.snat
                    && matches!(f.transport, Transport::Tcp { .. } | Transport::Udp));
            if !dnat {
                return Ok(None);
            }
            if let Some((ip, port)) = self.snat_source(r, nat, f)? {
                let b = pkt.data_mut().get_mut(l3..).ok_or(DropReason::Truncated)?;
                nat::rewrite_src(b, f, ip, port).map_err(wire_drop)?;
                f.tuple.src = IpAddr::V4(ip);
                f.tuple.sport = port;
                if let Transport::Echo { .. } = f.transport {
                    // One identifier for both directions.
                    f.tuple.dport = port;
                }
            }
        }
        if let Transport::IcmpError { inner, .. } = f.transport {
            // An error about a packet the router translated on its way out.
            let Some(src) = v4(inner.src) else {
                return Ok(None);
            };
            let back = if let Some(t) = nat.statics.inbound_error(&inner) {
                Some((t.ip, t.port))
            } else if src == nat.gateway_ip && nat.snat {
                match (zone, self.st.nat.as_mut()) {
                    (Some(z), Some(st)) => st
                        .inbound_error(z, &inner, self.now)
                        .map(|t| (t.ip, t.port)),
                    _ => None,
                }
            } else {
                None
            };
            let Some((ip, port)) = back else {
                return Ok(None);
            };
            let b = pkt.data_mut().get_mut(l3..).ok_or(DropReason::Truncated)?;
            nat::rewrite_icmp_error_in(b, f, ip, ip, port).map_err(wire_drop)?;
            return Ok(Some(ip));
        }
        let to = if let Some(t) = nat.statics.to_internal(f.tuple.proto, dst, f.tuple.dport) {
            Some((t.ip, t.port))
        } else if dst == nat.gateway_ip && nat.snat {
            match (zone, self.st.nat.as_mut(), f.transport) {
                (_, _, Transport::Fragment) => return Err(DropReason::NatFragment),
                (Some(z), Some(st), _) => st.inbound_secs(z, f, self.now_s).map(|t| (t.ip, t.port)),
                _ => None,
            }
        } else {
            None
        };
        match to {
            Some((ip, port)) => {
                let b = pkt.data_mut().get_mut(l3..).ok_or(DropReason::Truncated)?;
                nat::rewrite_dst(b, f, ip, port).map_err(wire_drop)?;
                Ok(Some(ip))
            }
            // To the gateway address with no session: for the router (pings), or refused
            // (address-and-port-dependent filtering).
            None if dst == nat.gateway_ip => match f.transport {
                Transport::Tcp { .. } | Transport::Udp if nat.snat => Err(DropReason::NatNoSession),
                _ => Ok(None),
            },
            None => Err(DropReason::NatNoSession),
        }
    }

    /// NAT for an IPv4 packet from inside leaving router `r` by its gateway.
    #[inline(never)]
    pub(crate) fn nat_out(
        &mut self,
        r: RouterIdx,
        nat: &RouterNat,
        pkt: &mut PacketBuf,
        l3: usize,
    ) -> Result<(), DropReason> {
        let parsed = flow::parse(pkt.data().get(l3..).ok_or(DropReason::Truncated)?);
        let f = parsed.as_ref().map_err(|e| wire_drop(*e))?;
        if let Transport::IcmpError { inner, .. } = f.transport {
            // An error about a packet that came in translated: its destination was ours.
            if v4(inner.dst).is_none() {
                return Err(DropReason::NotRoutable);
            }
            let ext = if let Some(t) = nat.statics.outbound_error(&inner) {
                Some((t.ip, t.port))
            } else {
                match (self.st.router_zone.get(r.get()), self.st.nat.as_mut()) {
                    (Some(z), Some(st)) if nat.snat => st
                        .outbound_error(*z, &inner, self.now)
                        .map(|t| (t.ip, t.port)),
                    _ => None,
                }
            };
            return match ext {
                Some((ip, port)) => {
                    let b = pkt.data_mut().get_mut(l3..).ok_or(DropReason::Truncated)?;
                    nat::rewrite_icmp_error_out(b, f, ip, ip, port).map_err(wire_drop)?;
                    Ok(())
                }
                None if nat.snat => Err(DropReason::NatNoSession),
                None => Ok(()),
            };
        }
        if let Some((ip, port)) = self.snat_source(r, nat, f)? {
            let b = pkt.data_mut().get_mut(l3..).ok_or(DropReason::Truncated)?;
            nat::rewrite_src(b, f, ip, port).map_err(wire_drop)?;
        }
        Ok(())
    }
}
