//! What `weft stats` shows: a snapshot of one agent's dataplane, as JSON on the control socket.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weft_dataplane::{Counters, DropReason, Event};

/// Counters of one local port, as seen by the I/O layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStats {
    /// The port's name.
    pub name: String,
    /// Its host interface.
    pub interface: String,
    /// Whether the interface is attached (open) right now.
    pub attached: bool,
    /// Frames received from the VM.
    pub rx_packets: u64,
    /// Bytes received from the VM.
    pub rx_bytes: u64,
    /// Frames sent to the VM.
    pub tx_packets: u64,
    /// Bytes sent to the VM.
    pub tx_bytes: u64,
    /// Frames the kernel dropped before we could read them (AF_PACKET ring overruns).
    pub kernel_drops: u64,
}

/// Counters of the underlay socket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnderlayStats {
    /// The local VTEP address.
    pub local: String,
    /// Datagrams received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Datagrams sent (one per destination VTEP).
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

/// A learned FDB entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedEntry {
    /// The segment's VNI.
    pub vni: u32,
    /// The MAC.
    pub mac: String,
    /// `port:<name>` or `vtep:<address>`.
    pub at: String,
    /// Seconds since it was last seen.
    pub age_secs: u32,
}

/// One snapshot of an agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The node's name.
    pub node: String,
    /// The configuration revision running.
    pub revision: u64,
    /// How many times the configuration was (re)loaded, the first load included.
    pub loads: u64,
    /// Drops by reason (every reason listed, zeroes included).
    pub drops: BTreeMap<String, u64>,
    /// Events by name.
    pub events: BTreeMap<String, u64>,
    /// Local ports.
    pub ports: Vec<PortStats>,
    /// The underlay socket.
    pub underlay: UnderlayStats,
    /// Learned FDB entries.
    pub learned: Vec<LearnedEntry>,
    /// The controller connection, when the agent is programmed by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<ControllerStats>,
}

/// The connection of an agent to its controller (`weft agent --controller`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerStats {
    /// The controller's node API.
    pub url: String,
    /// Whether a watch stream is open.
    pub connected: bool,
    /// Since when (Unix seconds) it has been connected, or disconnected.
    pub since_unix_secs: u64,
    /// The last revision received from the controller and applied (or loaded from the state
    /// directory at start-up).
    pub revision: u64,
    /// Connections lost (or refused) since the agent started.
    pub reconnects: u64,
    /// Why the last connection ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Snapshot {
    /// Fills the drop and event maps from pipeline counters.
    pub fn set_counters(&mut self, c: &Counters) {
        self.drops = c
            .drop_counts()
            .map(|(r, n)| (r.name().to_owned(), n))
            .collect();
        self.events = c
            .event_counts()
            .map(|(e, n)| (e.name().to_owned(), n))
            .collect();
    }

    /// Drops counted for `r`.
    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops.get(r.name()).copied().unwrap_or(0)
    }

    /// All drops, whatever the reason.
    pub fn total_drops(&self) -> u64 {
        self.drops.values().sum()
    }

    /// Events counted for `e`.
    pub fn event_count(&self, e: Event) -> u64 {
        self.events.get(e.name()).copied().unwrap_or(0)
    }

    /// The stats of the port named `name`.
    pub fn port(&self, name: &str) -> Option<&PortStats> {
        self.ports.iter().find(|p| p.name == name)
    }

    /// A human-readable rendering, nonzero drops and events only.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "node {} revision {} (loaded {} times)",
            self.node, self.revision, self.loads
        );
        if let Some(c) = &self.controller {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let _ = writeln!(
                s,
                "controller {}: {} for {} s, revision {} applied, {} reconnects{}",
                c.url,
                if c.connected {
                    "connected"
                } else {
                    "DISCONNECTED"
                },
                now.saturating_sub(c.since_unix_secs),
                c.revision,
                c.reconnects,
                match (&c.last_error, c.connected) {
                    (Some(e), false) => format!(" (last error: {e})"),
                    _ => String::new(),
                }
            );
        }
        let u = &self.underlay;
        let _ = writeln!(
            s,
            "underlay {}: rx {} pkts {} bytes, tx {} pkts {} bytes",
            u.local, u.rx_packets, u.rx_bytes, u.tx_packets, u.tx_bytes
        );
        let _ = writeln!(s, "ports:");
        for p in &self.ports {
            let _ = writeln!(
                s,
                "  {:<20} {:<15} {:<8} rx {} pkts {} bytes, tx {} pkts {} bytes, kernel drops {}",
                p.name,
                p.interface,
                if p.attached { "attached" } else { "DETACHED" },
                p.rx_packets,
                p.rx_bytes,
                p.tx_packets,
                p.tx_bytes,
                p.kernel_drops
            );
        }
        let _ = writeln!(s, "drops:");
        for (k, v) in self.drops.iter().filter(|(_, v)| **v != 0) {
            let _ = writeln!(s, "  {k:<24} {v}");
        }
        let _ = writeln!(s, "events:");
        for (k, v) in self.events.iter().filter(|(_, v)| **v != 0) {
            let _ = writeln!(s, "  {k:<24} {v}");
        }
        let _ = writeln!(s, "learned MACs: {}", self.learned.len());
        for l in &self.learned {
            let _ = writeln!(
                s,
                "  vni {} {} at {} ({} s ago)",
                l.vni, l.mac, l.at, l.age_secs
            );
        }
        s
    }
}
