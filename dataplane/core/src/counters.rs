//! Drop reasons and per-worker counters.
//!
//! Nothing on the fast path logs: every packet the pipeline does not deliver ends with a
//! [`DropReason`], counted in the worker's [`Counters`], and every noteworthy non-drop event
//! (a reply sent by a local responder, a MAC learned) has an [`Event`] counter. Counters are plain
//! `u64`s owned by one worker; the I/O layer publishes copies for `weft stats`.

macro_rules! named_enum {
    (
        $(#[$m:meta])*
        pub enum $name:ident { $( $(#[doc = $doc:literal])* $var:ident => $s:literal, )* }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $name { $( $(#[doc = $doc])* $var, )* }

        impl $name {
            /// Every value, in declaration order (the order of the counter array).
            pub const ALL: &'static [$name] = &[$($name::$var,)*];
            /// Number of values.
            pub const COUNT: usize = [$($name::$var,)*].len();

            /// The stable snake_case name used in `weft stats` and in metrics.
            pub const fn name(self) -> &'static str {
                match self { $($name::$var => $s,)* }
            }

            /// One line saying what the value means (its doc comment).
            pub const fn description(self) -> &'static str {
                match self { $($name::$var => concat!($($doc,)*),)* }
            }

            /// Looks a value up by [`Self::name`].
            pub fn from_name(s: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.name() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_enum! {
    /// Why the dataplane dropped a packet.
    pub enum DropReason {
        /// The frame is shorter than the headers it announces.
        Truncated => "truncated",
        /// A header field is inconsistent (bad version, header length or total length).
        Malformed => "malformed",
        /// An 802.1Q/802.1ad tagged frame arrived on an untagged (access) port.
        VlanTagged => "vlan_tagged",
        /// The source MAC is not one the port may use.
        SpoofedMac => "spoofed_mac",
        /// The source IP address is not one the port may use.
        SpoofedIp => "spoofed_ip",
        /// An ARP packet whose sender hardware or protocol address the port may not use.
        SpoofedArp => "spoofed_arp",
        /// A neighbour advertisement for a target address the port may not use.
        SpoofedNd => "spoofed_nd",
        /// An EtherType other than IPv4, IPv6 or ARP from a port with port security.
        EtherTypeNotAllowed => "ethertype_not_allowed",
        /// A multicast or broadcast source MAC.
        MulticastSource => "multicast_source",
        /// The frame is larger than its segment's MTU.
        MtuExceeded => "mtu_exceeded",
        /// The destination is the port the frame came in on.
        SamePort => "same_port",
        /// VXLAN from an address that is not a configured VTEP.
        UnknownVtep => "unknown_vtep",
        /// A VXLAN header without the I flag, or too short.
        BadVxlan => "bad_vxlan",
        /// A VNI this node does not serve.
        UnknownVni => "unknown_vni",
        /// A configured VTEP sent a VNI it does not serve.
        VtepNotInSegment => "vtep_not_in_segment",
        /// A remote frame's source MAC belongs, by configuration, to a local port or another VTEP.
        RemoteMacConflict => "remote_mac_conflict",
        /// Unicast from the underlay for a MAC that lives behind another VTEP (no transit).
        NotLocal => "not_local",
        /// The buffer pool was empty.
        NoBuffer => "no_buffer",
        /// A frame larger than a packet buffer.
        TooBig => "too_big",
        /// A GSO super-frame of a type the segmenter does not handle.
        GsoUnsupported => "gso_unsupported",
        /// A GSO super-frame whose headers do not match its offload metadata.
        GsoMalformed => "gso_malformed",
        /// A port's transmit ring was full.
        TxRingFull => "tx_ring_full",
        /// The underlay socket's send buffer was full (the kernel pushed back).
        UnderlayBusy => "underlay_busy",
        /// A transmit call failed.
        TxError => "tx_error",
        /// The destination port is gone (removed by a configuration swap).
        NoSuchPort => "no_such_port",
        /// The destination port's interface is not attached (missing, or gone).
        PortDetached => "port_detached",
        /// A port sent more control packets (ARP, ND, DHCP, router solicitations) than its budget.
        PuntRateLimited => "punt_rate_limited",
        /// A DHCP request from a port with no address to hand out, or not for its own MAC.
        DhcpNoBinding => "dhcp_no_binding",
        /// A DHCP or DHCPv6 message that does not parse or breaks the protocol's rules.
        DhcpMalformed => "dhcp_malformed",
        /// A router or neighbour solicitation that fails RFC 4861's validity checks.
        NdMalformed => "nd_malformed",
        /// An IPv4 header whose checksum is wrong (at a router).
        BadChecksum => "bad_checksum",
        /// An IPv4 packet with a source route option (LSRR/SSRR), refused like Linux does.
        SourceRouted => "source_routed",
        /// A packet to route from a source no router accepts (multicast, broadcast, loopback...).
        Martian => "martian",
        /// A packet a router does not forward (to a multicast, broadcast or link-local address).
        NotRoutable => "not_routable",
        /// A routed packet whose TTL or hop limit ran out (an ICMP time exceeded goes back).
        TtlExceeded => "ttl_exceeded",
        /// A routed packet with no route to its destination (an ICMP unreachable goes back).
        NoRoute => "no_route",
        /// A routed packet too big for the next hop (frag needed / packet too big goes back).
        FragmentationNeeded => "fragmentation_needed",
        /// Traffic to the router's own address that it does not serve (TCP, fragments, UDP).
        ToRouter => "to_router",
        /// A packet no security group rule of its port allows.
        SecurityGroup => "security_group",
        /// A packet of a tracked flow that its state does not allow (TCP outside the window,
        /// bad flags, a SYN inside a connection, an echo reply to no request).
        ConntrackInvalid => "conntrack_invalid",
        /// A later fragment to or from a port with security groups (no ports to match).
        FragmentNotTracked => "fragment_not_tracked",
        /// An ICMP error about no tracked flow.
        IcmpErrorUntracked => "icmp_error_untracked",
        /// The node's connection-tracking table is full (a new flow was refused).
        ConntrackFull => "conntrack_full",
        /// The tenant's share of the connection-tracking table is full.
        ConntrackTenantFull => "conntrack_tenant_full",
        /// A later IPv4 fragment to or through SNAT (no ports to match a session with).
        NatFragment => "nat_fragment",
        /// A VM answering as a DHCP or DHCPv6 server (never allowed from a port with port
        /// security).
        DhcpServerGuard => "dhcp_server_guard",
        /// A VM sending router advertisements (never allowed from a port with port security).
        RaGuard => "ra_guard",
        /// A frame that would go from a router interface back to itself.
        RoutingLoop => "routing_loop",
        /// A router's share of the neighbour cache is full.
        NeighborTableFull => "neighbor_table_full",
        /// Too many packets already wait for this neighbour (or in all).
        NeighborQueueFull => "neighbor_queue_full",
        /// A packet held for a neighbour that never answered.
        NeighborUnresolved => "neighbor_unresolved",
        /// No NAT session could be made: the router's session limit is reached.
        NatZoneLimit => "nat_zone_limit",
        /// No NAT session could be made: the node's session limit is reached.
        NatNodeLimit => "nat_node_limit",
        /// No NAT session could be made: every port of the external address is mapped.
        NatNoFreePort => "nat_no_free_port",
        /// A packet that source NAT cannot translate (a later fragment, a protocol without ports).
        NatUnsupported => "nat_unsupported",
        /// An inbound packet to a NAT address that no session, floating IP or forwarding admits.
        NatNoSession => "nat_no_session",
    }
}

named_enum! {
    /// Events worth counting that are not drops.
    pub enum Event {
        /// ARP requests answered locally from a binding.
        ArpReplied => "arp_replied",
        /// IPv6 neighbour solicitations answered locally from a binding.
        NdReplied => "nd_replied",
        /// Frames flooded (broadcast, multicast or unknown unicast).
        Flooded => "flooded",
        /// Unknown-unicast frames among those flooded.
        UnknownUnicast => "unknown_unicast",
        /// Frames encapsulated towards one remote VTEP.
        Encapsulated => "encapsulated",
        /// VXLAN packets decapsulated.
        Decapsulated => "decapsulated",
        /// MAC addresses learned (new entries).
        Learned => "learned",
        /// Learned MAC addresses that moved to another VTEP or port.
        LearnMoved => "learn_moved",
        /// MACs not learned because their segment's learning limit was reached.
        LearnLimited => "learn_limited",
        /// Learned entries removed by aging.
        Aged => "aged",
        /// GSO super-frames split into segments.
        GsoSegmented => "gso_segmented",
        /// Checksums completed for frames that arrived with a partial checksum.
        ChecksumCompleted => "checksum_completed",
        /// Packets routed.
        Routed => "routed",
        /// IPv4 fragments made by a router.
        Fragmented => "fragmented",
        /// Echo replies sent by a router.
        EchoReplied => "echo_replied",
        /// ICMP errors sent by a router.
        IcmpErrorSent => "icmp_error_sent",
        /// ICMP errors not sent: over the router's budget.
        IcmpRateLimited => "icmp_rate_limited",
        /// ARP requests sent by a router.
        ArpRequested => "arp_requested",
        /// Neighbour solicitations sent by a router.
        NdRequested => "nd_requested",
        /// Neighbours a router resolved.
        NeighborResolved => "neighbor_resolved",
        /// DHCP offers sent.
        DhcpOffered => "dhcp_offered",
        /// DHCP acknowledgements sent.
        DhcpAcked => "dhcp_acked",
        /// DHCP negative acknowledgements sent.
        DhcpNaked => "dhcp_naked",
        /// DHCP releases and declines received.
        DhcpReleased => "dhcp_released",
        /// DHCPv6 replies and advertisements sent.
        Dhcp6Replied => "dhcp6_replied",
        /// Router advertisements sent.
        RaSent => "ra_sent",
        /// A new flow was admitted by the security groups and tracked.
        FlowCreated => "flow_created",
        /// A tracked flow the changed security groups no longer allow was cut.
        FlowCut => "flow_cut",
        /// Tracked flows or NAT sessions removed (timed out, or their port or router went).
        FlowExpired => "flow_expired",
    }
}

/// One worker's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    drops: [u64; DropReason::COUNT],
    events: [u64; Event::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            drops: [0; DropReason::COUNT],
            events: [0; Event::COUNT],
        }
    }
}

impl Counters {
    /// Counts one drop.
    #[inline]
    pub fn drop(&mut self, r: DropReason) {
        self.drops[r as usize] += 1;
    }

    /// Counts `n` drops.
    #[inline]
    pub fn drop_n(&mut self, r: DropReason, n: u64) {
        self.drops[r as usize] += n;
    }

    /// Counts one event.
    #[inline]
    pub fn event(&mut self, e: Event) {
        self.events[e as usize] += 1;
    }

    /// Counts `n` events.
    #[inline]
    pub fn event_n(&mut self, e: Event, n: u64) {
        self.events[e as usize] += n;
    }

    /// Drops counted for `r`.
    pub fn drops(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }

    /// Events counted for `e`.
    pub fn events(&self, e: Event) -> u64 {
        self.events[e as usize]
    }

    /// All drops, whatever the reason.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Every drop counter with its reason, in [`DropReason::ALL`] order.
    pub fn drop_counts(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.drops[r as usize]))
    }

    /// Every event counter, in [`Event::ALL`] order.
    pub fn event_counts(&self) -> impl Iterator<Item = (Event, u64)> + '_ {
        Event::ALL.iter().map(|&e| (e, self.events[e as usize]))
    }

    /// Adds `other` into `self` (to sum workers).
    pub fn add(&mut self, other: &Counters) {
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += b;
        }
        for (a, b) in self.events.iter_mut().zip(other.events.iter()) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        for r in DropReason::ALL {
            assert_eq!(DropReason::from_name(r.name()), Some(*r));
            assert!(!r.description().is_empty(), "{r} has no description");
        }
        for e in Event::ALL {
            assert_eq!(Event::from_name(e.name()), Some(*e));
        }
        assert_eq!(DropReason::from_name("nope"), None);
    }

    #[test]
    fn counting_and_summing() {
        let mut a = Counters::default();
        a.drop(DropReason::SpoofedMac);
        a.drop_n(DropReason::UnknownVtep, 3);
        a.event(Event::Learned);
        let mut b = Counters::default();
        b.drop(DropReason::SpoofedMac);
        b.add(&a);
        assert_eq!(b.drops(DropReason::SpoofedMac), 2);
        assert_eq!(b.drops(DropReason::UnknownVtep), 3);
        assert_eq!(b.events(Event::Learned), 1);
        assert_eq!(b.total_drops(), 5);
    }
}
