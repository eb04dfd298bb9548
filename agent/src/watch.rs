//! The watch stream's protocol logic, without I/O (`docs/node-api.md`): NDJSON framing, the
//! messages, what the agent does with each, and the reconnection backoff. The HTTP side is in
//! `client`.
//!
//! ```text
//!            bytes ──► LineBuffer ──► Message::parse ──► Tracker::handle ──► Step
//!                      (≤ 64 MiB a line)                   │
//!   snapshot R        → Apply(config R)   the agent validates and applies it, then
//!   delta from F to R → Apply(current + delta, R) if F is the current revision
//!   heartbeat R       → InSync if R is the current revision
//!   anything else     → WatchError; `Tracker::since` tells where the next stream starts
//! ```
//!
//! Invariant: `Tracker::current` is the configuration the dataplane runs (the last one the
//! agent accepted), and nothing else. A stream that breaks mid-way, a message that cannot be
//! parsed or a configuration the agent refuses leave it as it is; only `applied` moves it on.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_dataplane::config::NodeConfig;
use weft_dataplane::config_delta::ConfigDelta;

/// A node configuration revision (the controller's store revision of the change that last
/// altered it; 0 for "none").
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Revision(pub u64);

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Longest line accepted on a watch stream: a snapshot of a large node fits with room to spare.
pub const MAX_LINE: usize = 64 * 1024 * 1024;

/// Errors of the watch protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// A line is longer than the limit.
    #[error("a watch stream line is longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// A line is not a message.
    #[error("bad message on the watch stream: {0}")]
    BadMessage(String),
    /// A snapshot for another node.
    #[error("the controller sent the configuration of node {got:?} to node {expected:?}")]
    WrongNode {
        /// This node.
        expected: String,
        /// What the snapshot says.
        got: String,
    },
    /// A snapshot whose configuration's revision is not the message's.
    #[error("snapshot {message} carries a configuration of revision {config}")]
    SnapshotRevision {
        /// The message's revision.
        message: Revision,
        /// The configuration's.
        config: Revision,
    },
    /// A delta that does not start at the running revision, or does not move forward.
    #[error("delta {from} → {revision} does not apply to the running revision {current}")]
    DeltaOutOfSequence {
        /// The delta's `from`.
        from: Revision,
        /// The delta's `revision`.
        revision: Revision,
        /// The running revision.
        current: Revision,
    },
    /// A delta made against another configuration than the running one (e.g. one saved by an
    /// older controller that did not send address sets).
    #[error("the delta does not apply to the running configuration: {0}")]
    DeltaMismatch(weft_dataplane::config_delta::DeltaError),
    /// A heartbeat announcing another revision than the running one.
    #[error("heartbeat announces revision {announced}, the agent runs {current}")]
    HeartbeatOutOfSync {
        /// The heartbeat's revision.
        announced: Revision,
        /// The running revision.
        current: Revision,
    },
}

/// Splits a byte stream into lines, refusing lines longer than a limit (the `\n` excluded).
/// A trailing `\r` is dropped; empty lines are skipped.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for a newline.
    scanned: usize,
    limit: usize,
}

impl LineBuffer {
    /// A buffer refusing lines longer than `limit` bytes.
    pub fn new(limit: usize) -> LineBuffer {
        LineBuffer {
            buf: Vec::new(),
            scanned: 0,
            limit,
        }
    }

    /// Appends received bytes. Take the complete lines out with [`LineBuffer::next_line`]
    /// before the next push.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line, `None` when none is complete yet, or `LineTooLong` as soon as
    /// the line being received exceeds the limit (the stream is unusable from there).
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, WatchError> {
        loop {
            let Some(i) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') else {
                self.scanned = self.buf.len();
                if self.buf.len() > self.limit {
                    return Err(WatchError::LineTooLong { limit: self.limit });
                }
                return Ok(None);
            };
            let end = self.scanned + i;
            self.scanned = 0;
            if end > self.limit {
                return Err(WatchError::LineTooLong { limit: self.limit });
            }
            let mut line: Vec<u8> = self.buf.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Ok(Some(line));
            }
        }
    }
}

/// One message of the watch stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// The whole configuration.
    Snapshot {
        /// Its revision.
        revision: Revision,
        /// The configuration.
        config: Box<NodeConfig>,
    },
    /// The change from revision `from` to `revision`.
    Delta {
        /// The revision it applies to.
        from: Revision,
        /// The revision it leads to.
        revision: Revision,
        /// The change.
        delta: Box<ConfigDelta>,
    },
    /// Nothing changed; the node's revision is `revision`.
    Heartbeat {
        /// The node's current revision.
        revision: Revision,
    },
    /// A message type this agent does not know (from a newer controller): ignored.
    #[serde(other)]
    Unknown,
}

impl Message {
    /// Parses one line.
    pub fn parse(line: &[u8]) -> Result<Message, WatchError> {
        serde_json::from_slice(line).map_err(|e| WatchError::BadMessage(e.to_string()))
    }
}

/// What the agent must do after a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Validate and apply this configuration, then report [`Tracker::applied`] or
    /// [`Tracker::refused`].
    Apply(Box<NodeConfig>),
    /// The agent is in sync (a heartbeat).
    InSync,
    /// Nothing to do.
    Nothing,
}

/// Where the agent stands on the stream: the configuration it runs and where to resume.
#[derive(Debug)]
pub struct Tracker {
    current: NodeConfig,
    need_snapshot: bool,
}

impl Tracker {
    /// Tracks from `running`, the configuration the dataplane runs (the saved one, or the
    /// empty start-up one with revision 0).
    pub fn new(running: NodeConfig) -> Tracker {
        Tracker {
            current: running,
            need_snapshot: false,
        }
    }

    /// The running configuration.
    pub fn current(&self) -> &NodeConfig {
        &self.current
    }

    /// The revision to watch from: the running one, or 0 (a full snapshot) after a delta that
    /// did not apply or a configuration the agent refused.
    pub fn since(&self) -> Revision {
        if self.need_snapshot {
            Revision(0)
        } else {
            Revision(self.current.revision)
        }
    }

    /// What to do with `msg`. An error ends the stream; `since` then says how to resume.
    pub fn handle(&mut self, msg: Message) -> Result<Step, WatchError> {
        let current = Revision(self.current.revision);
        match msg {
            Message::Snapshot { revision, config } => {
                if config.node != self.current.node {
                    return Err(WatchError::WrongNode {
                        expected: self.current.node.clone(),
                        got: config.node,
                    });
                }
                if Revision(config.revision) != revision {
                    self.need_snapshot = true;
                    return Err(WatchError::SnapshotRevision {
                        message: revision,
                        config: Revision(config.revision),
                    });
                }
                Ok(Step::Apply(config))
            }
            Message::Delta {
                from,
                revision,
                delta,
            } => {
                // A delta is only meaningful on top of what runs; revision 0 is the empty
                // start-up configuration, never a base the controller has deltas from.
                if from != current || revision <= from || current == Revision(0) {
                    self.need_snapshot = true;
                    return Err(WatchError::DeltaOutOfSequence {
                        from,
                        revision,
                        current,
                    });
                }
                let mut next = self.current.clone();
                if let Err(e) = delta.apply(&mut next) {
                    self.need_snapshot = true;
                    return Err(WatchError::DeltaMismatch(e));
                }
                next.revision = revision.0;
                Ok(Step::Apply(Box::new(next)))
            }
            Message::Heartbeat { revision } => {
                if revision != current {
                    self.need_snapshot = true;
                    return Err(WatchError::HeartbeatOutOfSync {
                        announced: revision,
                        current,
                    });
                }
                Ok(Step::InSync)
            }
            Message::Unknown => Ok(Step::Nothing),
        }
    }

    /// The agent applied `cfg` (from [`Step::Apply`]): it is what runs now.
    pub fn applied(&mut self, cfg: NodeConfig) {
        self.current = cfg;
        self.need_snapshot = false;
    }

    /// The agent refused the configuration of the last [`Step::Apply`]: resume with a snapshot.
    pub fn refused(&mut self) {
        self.need_snapshot = true;
    }
}

/// Reconnection delays: exponential from `initial`, capped at `max`, with full jitter (a
/// uniformly random delay up to the current ceiling), so agents that lost the controller
/// together do not come back together.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 0.5 s doubling up to 30 s.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(30))
    }
}

impl Backoff {
    /// Starts at `initial`, doubles each attempt up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The ceiling of the next delay (before jitter).
    pub fn ceiling(&self) -> Duration {
        // 2^16 × the initial delay is far past any sensible maximum.
        let factor = 1u32 << self.attempt.min(16);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The next delay: `random` (uniform in [0, 1), from the caller so tests are
    /// deterministic) times the ceiling; then the ceiling doubles.
    pub fn next_delay(&mut self, random: f64) -> Duration {
        let delay = self.ceiling().mul_f64(random.clamp(0.0, 1.0));
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Back to the initial delay (after the agent got in sync).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty(revision: u64) -> NodeConfig {
        let mut c: NodeConfig =
            serde_json::from_str(r#"{"node": "hv1", "underlay": {"local_ip": "192.168.100.1"}}"#)
                .unwrap();
        c.revision = revision;
        c
    }

    fn snapshot_line(revision: u64) -> String {
        format!(
            r#"{{"type": "snapshot", "revision": {revision}, "config": {{"node": "hv1", "revision": {revision},
               "underlay": {{"local_ip": "192.168.100.1"}}, "segments": [{{"vni": 100}}]}}}}"#
        )
        .replace('\n', " ")
    }

    fn delta_line(from: u64, revision: u64, vni: u32) -> String {
        format!(
            r#"{{"type": "delta", "from": {from}, "revision": {revision}, "delta": {{"segments": {{"upsert": [{{"vni": {vni}}}], "remove": ["100"]}}}}}}"#
        )
    }

    fn step(t: &mut Tracker, line: &str) -> Result<Step, WatchError> {
        t.handle(Message::parse(line.as_bytes())?)
    }

    fn apply(t: &mut Tracker, line: &str) -> NodeConfig {
        match step(t, line).unwrap() {
            Step::Apply(c) => {
                t.applied((*c).clone());
                *c
            }
            s => panic!("expected Apply, got {s:?}"),
        }
    }

    #[test]
    fn snapshot_then_delta_then_bad_delta_asks_for_a_snapshot() {
        let mut t = Tracker::new(empty(0));
        assert_eq!(t.since(), Revision(0));
        let c = apply(&mut t, &snapshot_line(42));
        assert_eq!(c.revision, 42);
        assert_eq!(t.since(), Revision(42));
        let c = apply(&mut t, &delta_line(42, 45, 200));
        assert_eq!(c.revision, 45);
        assert_eq!(
            c.segments.iter().map(|s| s.vni.get()).collect::<Vec<_>>(),
            vec![200]
        );
        assert_eq!(
            step(&mut t, r#"{"type":"heartbeat","revision":45}"#),
            Ok(Step::InSync)
        );
        // A delta from a revision the agent does not run: resnapshot, and nothing changes.
        assert_eq!(
            step(&mut t, &delta_line(44, 47, 300)),
            Err(WatchError::DeltaOutOfSequence {
                from: Revision(44),
                revision: Revision(47),
                current: Revision(45)
            })
        );
        assert_eq!(t.since(), Revision(0));
        assert_eq!(t.current().revision, 45);
        // The snapshot the next stream starts with puts it back in sync.
        apply(&mut t, &snapshot_line(50));
        assert_eq!(t.since(), Revision(50));
    }

    #[test]
    fn delta_to_a_set_the_running_configuration_lacks_asks_for_a_snapshot() {
        // What an agent holding a configuration saved before address sets existed gets from a
        // controller that has them: the patch cannot apply, so the agent must resnapshot
        // rather than forward with a set no rule of its old configuration uses.
        let mut t = Tracker::new(empty(0));
        apply(&mut t, &snapshot_line(42));
        let line = r#"{"type": "delta", "from": 42, "revision": 43, "delta": {"address_set_members": [{"name": "sg-1", "add": ["10.0.0.5/32"]}]}}"#;
        assert!(matches!(
            step(&mut t, line),
            Err(WatchError::DeltaMismatch(_))
        ));
        assert_eq!(t.since(), Revision(0));
        assert_eq!(t.current().revision, 42);
        assert!(t.current().address_sets.is_empty());
    }

    #[test]
    fn refused_configuration_asks_for_a_snapshot_and_keeps_what_runs() {
        let mut t = Tracker::new(empty(0));
        apply(&mut t, &snapshot_line(42));
        assert!(matches!(
            step(&mut t, &delta_line(42, 43, 7)),
            Ok(Step::Apply(_))
        ));
        t.refused();
        assert_eq!(t.since(), Revision(0));
        assert_eq!(t.current().revision, 42);
        assert_eq!(t.current().segments[0].vni.get(), 100);
    }

    #[test]
    fn deltas_that_do_not_move_forward_or_start_from_nothing_are_refused() {
        let mut t = Tracker::new(empty(0));
        // The empty start-up configuration is no base for a delta.
        assert!(step(&mut t, &delta_line(0, 3, 7)).is_err());
        apply(&mut t, &snapshot_line(5));
        assert!(step(&mut t, &delta_line(5, 5, 7)).is_err());
        assert_eq!(t.since(), Revision(0));
    }

    #[test]
    fn heartbeat_in_and_out_of_sync() {
        // Started from a saved configuration: a heartbeat at its revision is all it needs.
        let mut t = Tracker::new(empty(9));
        assert_eq!(t.since(), Revision(9));
        assert_eq!(
            step(&mut t, r#"{"type":"heartbeat","revision":9}"#),
            Ok(Step::InSync)
        );
        assert_eq!(t.since(), Revision(9));
        assert!(matches!(
            step(&mut t, r#"{"type":"heartbeat","revision":12}"#),
            Err(WatchError::HeartbeatOutOfSync { .. })
        ));
        assert_eq!(t.since(), Revision(0));
    }

    #[test]
    fn snapshots_for_another_node_or_revision_are_refused() {
        let mut t = Tracker::new(empty(0));
        let other = snapshot_line(3).replace("\"hv1\"", "\"hv2\"");
        assert!(matches!(
            step(&mut t, &other),
            Err(WatchError::WrongNode { .. })
        ));
        let mismatched = r#"{"type": "snapshot", "revision": 4, "config": {"node": "hv1",
            "revision": 3, "underlay": {"local_ip": "192.168.100.1"}}}"#;
        assert!(matches!(
            step(&mut t, mismatched),
            Err(WatchError::SnapshotRevision { .. })
        ));
        assert_eq!(t.current().revision, 0);
    }

    #[test]
    fn bad_lines_are_errors_and_unknown_types_are_ignored() {
        let mut t = Tracker::new(empty(0));
        assert!(matches!(
            Message::parse(b"{\"type\": \"snapshot\""),
            Err(WatchError::BadMessage(_))
        ));
        assert!(Message::parse(br#"{"type":"heartbeat"}"#).is_err());
        assert_eq!(
            step(&mut t, r#"{"type":"compaction","upto":3}"#),
            Ok(Step::Nothing)
        );
        // A snapshot with a field NodeConfig does not know is refused, not half-read.
        let typo = snapshot_line(3).replace("\"segments\"", "\"segmets\"");
        assert!(Message::parse(typo.as_bytes()).is_err());
    }

    #[test]
    fn lines_split_across_chunks_and_crlf() {
        let mut b = LineBuffer::new(64);
        b.push(b"{\"a\":");
        assert_eq!(b.next_line(), Ok(None));
        b.push(b"1}\r\n\n  \n{\"b\"");
        assert_eq!(b.next_line(), Ok(Some(b"{\"a\":1}".to_vec())));
        assert_eq!(b.next_line(), Ok(None));
        b.push(b":2}\n");
        assert_eq!(b.next_line(), Ok(Some(b"{\"b\":2}".to_vec())));
        assert_eq!(b.next_line(), Ok(None));
    }

    #[test]
    fn oversized_line_is_an_error_before_its_end_arrives() {
        let mut b = LineBuffer::new(16);
        b.push(b"0123456789");
        assert_eq!(b.next_line(), Ok(None));
        b.push(b"0123456789");
        assert_eq!(b.next_line(), Err(WatchError::LineTooLong { limit: 16 }));
        // Exactly at the limit is fine; one over, with its newline in the same chunk, is not.
        let mut b = LineBuffer::new(4);
        b.push(b"abcd\nabcde\n");
        assert_eq!(b.next_line(), Ok(Some(b"abcd".to_vec())));
        assert_eq!(b.next_line(), Err(WatchError::LineTooLong { limit: 4 }));
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_full_jitter_and_resets() {
        let mut b = Backoff::default();
        let ceilings: Vec<u64> = (0..10)
            .map(|_| {
                let c = b.ceiling();
                assert_eq!(b.next_delay(1.0), c);
                u64::try_from(c.as_millis()).unwrap()
            })
            .collect();
        assert_eq!(
            ceilings,
            vec![
                500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000
            ]
        );
        for _ in 0..100 {
            assert_eq!(b.ceiling(), Duration::from_secs(30));
            assert_eq!(b.next_delay(0.0), Duration::ZERO);
        }
        assert_eq!(b.clone().next_delay(0.5), Duration::from_secs(15));
        // Out-of-range randomness cannot push the delay past the ceiling.
        assert_eq!(b.clone().next_delay(7.0), Duration::from_secs(30));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(500));
        assert!(b.next_delay(0.999) < Duration::from_millis(500));
    }
}
