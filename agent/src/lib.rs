//! weft-agent: runs Weft's dataplane on a hypervisor.
//!
//! Today the agent runs from a static node configuration file; the controller's watch stream
//! will feed it the same [`NodeConfig`] later. Threads:
//!
//! ```text
//!  main        loads and validates the configuration, opens sockets, handles SIGHUP (reload) and
//!              SIGTERM/SIGINT (clean exit), re-attaches interfaces that appear late
//!  worker-0    the dataplane loop (see `worker`): the only thread that touches packets
//!  control     the control socket (`weft stats`, `weft capture`, `weft reload`)
//!  signals     turns signals into events for main
//! ```
//!
//! A reload never interrupts traffic that the new configuration still allows: sockets of ports
//! that stay are kept, learned MACs that still make sense are kept, and an invalid file leaves
//! the running configuration in place.

pub mod capture;
pub mod control;
pub mod stats;
pub mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use weft_dataplane::config::{ConfigError, NodeConfig};
use weft_dataplane::tables::Tables;
use weft_dataplane_io::afpacket::{AfPacket, AfPacketConfig};
use weft_dataplane_io::sys::EventFd;
use weft_dataplane_io::udp::{UdpConfig, UdpUnderlay};
use weft_dataplane_io::{DatagramIo, FrameIo};

use crate::control::{ControlServer, ReloadRequest};
use crate::worker::{AttachState, Command, Worker};

/// Errors of the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not a valid node configuration.
    #[error("{path}: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: ConfigError,
    },
    /// The underlay socket could not be opened.
    #[error("cannot open the underlay socket: {source}")]
    Underlay {
        /// The local VTEP address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The control socket failed.
    #[error(transparent)]
    Control(#[from] control::ControlError),
    /// A thread or an eventfd could not be created, or signals could not be registered.
    #[error("cannot start the agent: {0}")]
    Start(std::io::Error),
}

/// How to run the agent.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The node configuration file (TOML, or JSON when it ends in `.json`).
    pub config: PathBuf,
    /// The control socket.
    pub control: PathBuf,
}

/// Reads and validates a node configuration file.
pub fn load_config(path: &Path) -> Result<(NodeConfig, Arc<Tables>), AgentError> {
    let text = std::fs::read_to_string(path).map_err(|source| AgentError::Read {
        path: path.to_owned(),
        source,
    })?;
    let cfg = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| ConfigError::Parse(e.to_string()))
    } else {
        NodeConfig::from_toml(&text)
    }
    .map_err(|source| AgentError::Config {
        path: path.to_owned(),
        source,
    })?;
    let tables = cfg.validate().map_err(|source| AgentError::Config {
        path: path.to_owned(),
        source,
    })?;
    Ok((cfg, Arc::new(tables)))
}

fn open_underlay(t: &Tables) -> Result<Box<dyn DatagramIo>, AgentError> {
    UdpUnderlay::bind(t.local_vtep, &UdpConfig::default())
        .map(|u| Box::new(u) as Box<dyn DatagramIo>)
        .map_err(|e| AgentError::Underlay {
            addr: t.local_vtep,
            source: e.into(),
        })
}

/// How long the agent waits at start for its VTEP address to appear (or to finish IPv6
/// duplicate address detection) before giving up.
const VTEP_ADDRESS_WAIT: Duration = Duration::from_secs(30);

/// Opens the underlay socket, waiting (bounded) while the VTEP address is not yet usable: an
/// agent started at boot may come up before the network is configured.
fn open_underlay_waiting(t: &Tables) -> Result<Box<dyn DatagramIo>, AgentError> {
    let deadline = std::time::Instant::now() + VTEP_ADDRESS_WAIT;
    let mut warned = false;
    loop {
        match open_underlay(t) {
            Err(AgentError::Underlay { source, .. })
                if source.kind() == std::io::ErrorKind::AddrNotAvailable
                    && std::time::Instant::now() < deadline =>
            {
                if !warned {
                    tracing::warn!(vtep = %t.local_vtep, error = %source,
                        "the VTEP address is not usable yet; waiting up to 30 s for it");
                    warned = true;
                }
                thread::sleep(Duration::from_millis(250));
            }
            r => return r,
        }
    }
}

/// TX ring slots per port.
const TX_SLOTS: usize = 1024;
/// RX ring blocks (of 256 KiB) per port: 4 MiB, room for 64 GSO super-frames of 64 KiB.
const RX_BLOCKS: usize = 16;

/// Opens a port's AF_PACKET socket with TX slots that hold the largest frame of `t` (2 KiB slots
/// for standard MTUs: 1024 of them in 2 MiB).
fn open_port(interface: &str, t: &Tables) -> std::io::Result<Box<dyn FrameIo>> {
    // Never attach an interface the host's own stack would also listen on (see
    // `isolate_from_host`): a VM could otherwise reach the host, and inject VXLAN.
    weft_dataplane_io::sys::isolate_from_host(interface)?;

    let slot = (t.max_frame_len() + 128).next_power_of_two().max(2048);
    let cfg = AfPacketConfig {
        tx_frame_size: slot,
        tx_frame_count: TX_SLOTS,
        block_count: RX_BLOCKS,
        block_timeout_ms: 1,

        ..AfPacketConfig::default()
    };
    AfPacket::open(interface, &cfg)
        .map(|p| Box::new(p) as Box<dyn FrameIo>)
        .map_err(Into::into)
}

enum MainEvent {
    Signal(i32),
    Reload(ReloadRequest),
}

/// The running agent's main-thread state.
struct Agent {
    opts: AgentOptions,
    tables: Arc<Tables>,
    worker: Sender<Command>,
    waker: Arc<EventFd>,
    attach_state: AttachState,
}

/// Runs the agent until SIGTERM or SIGINT.
pub fn run(opts: AgentOptions) -> Result<(), AgentError> {
    let (_cfg, tables) = load_config(&opts.config)?;
    let underlay = open_underlay_waiting(&tables)?;
    let mut attach = HashMap::new();
    for p in &tables.ports {
        match open_port(&p.interface, &tables) {
            Ok(io) => {
                attach.insert(p.interface.clone(), io);
            }
            Err(e) => tracing::warn!(port = %p.name, interface = %p.interface, error = %e,
                "interface not available yet; the port stays detached until it appears"),
        }
    }
    let control = ControlServer::bind(&opts.control)?;
    let waker = Arc::new(EventFd::new().map_err(AgentError::Start)?);
    let attach_state: AttachState = Arc::new(Mutex::new(HashMap::new()));
    let (wtx, wrx) = mpsc::channel();
    let worker = Worker::new(
        tables.clone(),
        underlay,
        attach,
        wrx,
        waker.clone(),
        attach_state.clone(),
    );
    let worker_thread = thread::Builder::new()
        .name("weft-worker-0".into())
        .spawn(move || worker.run())
        .map_err(AgentError::Start)?;

    let (etx, erx) = mpsc::channel::<MainEvent>();
    let (rtx, rrx) = mpsc::channel::<ReloadRequest>();
    {
        let etx = etx.clone();
        thread::Builder::new()
            .name("weft-reload".into())
            .spawn(move || {
                for r in rrx {
                    if etx.send(MainEvent::Reload(r)).is_err() {
                        break;
                    }
                }
            })
            .map_err(AgentError::Start)?;
    }
    let control_path = control.path().to_owned();
    {
        let (w, k) = (wtx.clone(), waker.clone());
        thread::Builder::new()
            .name("weft-control".into())
            .spawn(move || control.serve(w, k, rtx))
            .map_err(AgentError::Start)?;
    }
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(AgentError::Start)?;
    thread::Builder::new()
        .name("weft-signals".into())
        .spawn(move || {
            for s in signals.forever() {
                if etx.send(MainEvent::Signal(s)).is_err() {
                    break;
                }
            }
        })
        .map_err(AgentError::Start)?;

    tracing::info!(node = %tables.node, revision = tables.revision, ports = tables.ports.len(),
        segments = tables.segments.len(), vtep = %tables.local_vtep, control = %control_path.display(),
        "agent running");
    let mut agent = Agent {
        opts,
        tables,
        worker: wtx,
        waker,
        attach_state,
    };
    loop {
        match erx.recv_timeout(Duration::from_secs(1)) {
            Ok(MainEvent::Signal(signal_hook::consts::SIGHUP)) => {
                if let Err(e) = agent.reload() {
                    tracing::error!(error = %e, "reload failed; the running configuration stays");
                }
            }
            Ok(MainEvent::Signal(s)) => {
                tracing::info!(signal = s, "stopping");
                break;
            }
            Ok(MainEvent::Reload(reply)) => {
                let _ = reply.send(agent.reload().map_err(|e| e.to_string()));
            }
            Err(RecvTimeoutError::Timeout) => agent.attach_missing(),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = agent.worker.send(Command::Stop);
    agent.waker.wake();
    let _ = worker_thread.join();
    let _ = std::fs::remove_file(&control_path);
    tracing::info!("stopped");
    Ok(())
}

impl Agent {
    /// Re-reads the configuration and swaps it in. An invalid file changes nothing.
    fn reload(&mut self) -> Result<u64, AgentError> {
        let (_cfg, tables) = load_config(&self.opts.config)?;
        let underlay = if tables.local_vtep != self.tables.local_vtep {
            Some(open_underlay(&tables)?)
        } else {
            None
        };
        let attached = self.attached();
        let mut attach = Vec::new();
        for p in &tables.ports {
            if attached.get(&p.interface) == Some(&true) {
                continue;
            }
            match open_port(&p.interface, &tables) {
                Ok(io) => attach.push((p.interface.clone(), io)),
                Err(e) => tracing::warn!(port = %p.name, interface = %p.interface, error = %e,
                    "interface not available yet; the port stays detached until it appears"),
            }
        }
        let (tx, rx) = mpsc::channel();
        let revision = tables.revision;
        self.worker
            .send(Command::Reload {
                tables: tables.clone(),
                attach,
                underlay,
                done: tx,
            })
            .map_err(|_| {
                AgentError::Start(std::io::Error::other("the dataplane worker has stopped"))
            })?;
        self.waker.wake();
        rx.recv_timeout(Duration::from_secs(10)).map_err(|_| {
            AgentError::Start(std::io::Error::other("the dataplane worker did not answer"))
        })?;
        tracing::info!(node = %tables.node, revision, ports = tables.ports.len(), "configuration reloaded");
        self.tables = tables;
        Ok(revision)
    }

    fn attached(&self) -> HashMap<String, bool> {
        self.attach_state
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// Tries to open the interfaces of detached ports (a VM started after the agent, or a tap
    /// re-created).
    fn attach_missing(&self) {
        for (interface, attached) in self.attached() {
            if attached {
                continue;
            }
            if let Ok(io) = open_port(&interface, &self.tables) {
                if self.worker.send(Command::Attach { interface, io }).is_err() {
                    return;
                }
                self.waker.wake();
            }
        }
    }
}
