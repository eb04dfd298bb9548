//! weft-agent: runs Weft's dataplane on a hypervisor.
//!
//! The configuration comes from a file (`--config`, re-read on SIGHUP) or from the controller
//! (`--controller`: registration, watch stream, status reports; see `client`). Either way it is
//! a [`NodeConfig`], validated before anything changes, swapped in by the same reload path.
//! Threads:
//!
//! ```text
//!  main        validates and applies configurations, opens sockets, handles SIGHUP (reload) and
//!              SIGTERM/SIGINT (clean exit), re-attaches interfaces that appear late, publishes
//!              port states for the controller
//!  worker-0    the dataplane loop (see `worker`): the only thread that touches packets
//!  control     the control socket (`weft stats`, `weft capture`, `weft reload`)
//!  signals     turns signals into events for main
//!  controller  (with --controller) the node API client: a single-threaded tokio runtime
//! ```
//!
//! A reload never interrupts traffic that the new configuration still allows: sockets of ports
//! that stay are kept, learned MACs that still make sense are kept, and an invalid
//! configuration leaves the running one in place. A controller-programmed agent saves each
//! configuration it applies in its state directory and starts from it at the next boot, before
//! the controller answers; without one it starts with an empty configuration, which only a full
//! snapshot replaces.

pub mod capture;
pub mod client;
pub mod control;
pub mod interfaces;
pub mod state;
pub mod stats;
pub mod watch;
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

use crate::client::{ApplyRequest, ControllerLink, ControllerOptions, PortStatus, StatusReport};
use crate::control::{ControlServer, ReloadRequest};
use crate::interfaces::Interfaces;
use crate::state::StateDir;
use crate::stats::ControllerStats;
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
    /// A configuration from the controller is not valid.
    #[error("revision {revision} from the controller: {source}")]
    Invalid {
        /// Its revision.
        revision: u64,
        /// What is wrong.
        source: ConfigError,
    },
    /// A configuration from the controller is for another node or another VTEP than this one.
    #[error("revision {revision} from the controller: {field} is {got}, this agent runs {local}")]
    Mismatch {
        /// Its revision.
        revision: u64,
        /// The field (`node`, `underlay.local_ip`, `underlay.mtu`).
        field: &'static str,
        /// What the configuration says.
        got: String,
        /// What the agent was started with.
        local: String,
    },
    /// The controller client could not be set up.
    #[error(transparent)]
    Client(#[from] client::ClientError),
    /// The state directory is not usable.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// `weft reload` on an agent programmed by the controller.
    #[error("this agent is programmed by the controller: there is no file to re-read")]
    NotFromFile,
    /// A thread or an eventfd could not be created, or signals could not be registered.
    #[error("cannot start the agent: {0}")]
    Start(std::io::Error),
}

/// Where the agent's configuration comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A node configuration file (TOML, or JSON when it ends in `.json`), re-read on SIGHUP.
    File(PathBuf),
    /// The controller's watch stream.
    Controller(ControllerOptions),
}

/// How to run the agent.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Where the configuration comes from.
    pub source: ConfigSource,
    /// The control socket.
    pub control: PathBuf,
}

/// Reads a node configuration file without validating it.
pub fn read_config(path: &Path) -> Result<NodeConfig, AgentError> {
    let text = std::fs::read_to_string(path).map_err(|source| AgentError::Read {
        path: path.to_owned(),
        source,
    })?;
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| ConfigError::Parse(e.to_string()))
    } else {
        NodeConfig::from_toml(&text)
    }
    .map_err(|source| AgentError::Config {
        path: path.to_owned(),
        source,
    })
}

/// Reads and validates a node configuration file.
pub fn load_config(path: &Path) -> Result<(NodeConfig, Arc<Tables>), AgentError> {
    let cfg = read_config(path)?;
    let tables = cfg.validate().map_err(|source| AgentError::Config {
        path: path.to_owned(),
        source,
    })?;
    Ok((cfg, Arc::new(tables)))
}

/// The configuration a controller-programmed agent starts with when it has none saved: its
/// node and VTEP, nothing else.
pub fn empty_config(opts: &ControllerOptions) -> NodeConfig {
    NodeConfig {
        node: opts.node.clone(),
        revision: 0,
        underlay: weft_dataplane::config::UnderlayConfig {
            local_ip: opts.vtep_ip,
            port: weft_dataplane::config::VXLAN_PORT,
            mtu: opts.underlay_mtu,
        },
        learning: Default::default(),
        segments: Vec::new(),
        ports: Vec::new(),
        remote_vteps: Vec::new(),
        remote_bindings: Vec::new(),
        routers: Vec::new(),
        security_groups: Vec::new(),
        address_sets: Vec::new(),
        limits: Default::default(),
    }
}

/// Checks that a configuration from the controller is for this node and this VTEP (what the
/// agent registered).
fn check_identity(cfg: &NodeConfig, opts: &ControllerOptions) -> Result<(), AgentError> {
    let mismatch = |field, got: String, local: String| AgentError::Mismatch {
        revision: cfg.revision,
        field,
        got,
        local,
    };
    if cfg.node != opts.node {
        return Err(mismatch("node", cfg.node.clone(), opts.node.clone()));
    }
    if cfg.underlay.local_ip != opts.vtep_ip {
        return Err(mismatch(
            "underlay.local_ip",
            cfg.underlay.local_ip.to_string(),
            opts.vtep_ip.to_string(),
        ));
    }
    if cfg.underlay.mtu != opts.underlay_mtu {
        return Err(mismatch(
            "underlay.mtu",
            cfg.underlay.mtu.to_string(),
            opts.underlay_mtu.to_string(),
        ));
    }
    Ok(())
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

pub(crate) enum MainEvent {
    Signal(i32),
    Reload(ReloadRequest),
    Apply(ApplyRequest),
}

/// What a controller-programmed agent keeps on the main thread.
struct ControllerSide {
    opts: ControllerOptions,
    state: StateDir,
    interfaces: Interfaces,
    /// The port states for the status reporter (latest wins).
    status: tokio::sync::watch::Sender<Option<StatusReport>>,
    /// Dropped when the agent stops: the controller thread ends.
    _shutdown: tokio::sync::watch::Sender<()>,
}

/// The running agent's main-thread state.
struct Agent {
    file: Option<PathBuf>,
    controller: Option<ControllerSide>,
    tables: Arc<Tables>,
    worker: Sender<Command>,
    waker: Arc<EventFd>,
    attach_state: AttachState,
}

/// Opens the sockets of the ports of `tables` whose interface exists.
fn open_ports(tables: &Tables) -> HashMap<String, Box<dyn FrameIo>> {
    let mut attach = HashMap::new();
    for p in &tables.ports {
        match open_port(&p.interface, tables) {
            Ok(io) => {
                attach.insert(p.interface.clone(), io);
            }
            Err(e) => tracing::warn!(port = %p.name, interface = %p.interface, error = %e,
                "interface not available yet; the port stays detached until it appears"),
        }
    }
    attach
}

/// The configuration a controller-programmed agent starts from: the saved one if it is for this
/// node and VTEP, the empty one otherwise.
fn starting_config(opts: &ControllerOptions, state: &StateDir) -> NodeConfig {
    match state.load_config() {
        Some(cfg) => match check_identity(&cfg, opts) {
            Ok(()) => {
                tracing::info!(revision = cfg.revision, dir = %state.path().display(),
                    "starting from the saved configuration");
                cfg
            }
            Err(e) => {
                tracing::warn!(error = %e, "the saved configuration is not this agent's; \
                    starting empty until the controller's snapshot");
                empty_config(opts)
            }
        },
        None => {
            tracing::info!(
                "no saved configuration; starting empty until the controller's snapshot"
            );
            empty_config(opts)
        }
    }
}

/// Runs the agent until SIGTERM or SIGINT.
pub fn run(opts: AgentOptions) -> Result<(), AgentError> {
    let (etx, erx) = mpsc::channel::<MainEvent>();
    let mut controller = None;
    let mut controller_thread = None;
    let mut link: Option<ControllerLink> = None;
    let (file, tables) = match opts.source {
        ConfigSource::File(path) => {
            let (_cfg, tables) = load_config(&path)?;
            (Some(path), tables)
        }
        ConfigSource::Controller(c) => {
            // Everything that can be wrong with the flags fails here, before anything runs.
            let client = client::Client::new(&c)?;
            let state = StateDir::open(&c.state_dir)?;
            let running = starting_config(&c, &state);
            let tables = Arc::new(running.validate().map_err(|source| AgentError::Invalid {
                revision: running.revision,
                source,
            })?);
            let mut interfaces = Interfaces::load(state.clone());
            interfaces.prepare(&running);
            let (status, status_rx) = tokio::sync::watch::channel(None);
            let (shutdown, shutdown_rx) = tokio::sync::watch::channel(());
            let l: ControllerLink = Arc::new(Mutex::new(ControllerStats {
                url: c.url.clone(),
                revision: running.revision,
                since_unix_secs: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                ..Default::default()
            }));
            link = Some(l.clone());
            controller_thread = Some(client::Controller {
                client,
                running,
                events: etx.clone(),
                status: status_rx,
                link: l,
                shutdown: shutdown_rx,
            });
            controller = Some(ControllerSide {
                opts: c,
                state,
                interfaces,
                status,
                _shutdown: shutdown,
            });
            (None, tables)
        }
    };
    let underlay = open_underlay_waiting(&tables)?;
    let attach = open_ports(&tables);
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
            .spawn(move || control.serve(w, k, rtx, link))
            .map_err(AgentError::Start)?;
    }
    if let Some(c) = controller_thread {
        thread::Builder::new()
            .name("weft-controller".into())
            .spawn(move || c.run_blocking())
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
        file,
        controller,
        tables,
        worker: wtx,
        waker,
        attach_state,
    };
    agent.publish_status();
    loop {
        match erx.recv_timeout(Duration::from_secs(1)) {
            Ok(MainEvent::Signal(signal_hook::consts::SIGHUP)) => match agent.reload_file() {
                Err(AgentError::NotFromFile) => {
                    tracing::info!("SIGHUP ignored: the configuration comes from the controller");
                }
                Err(e) => {
                    tracing::error!(error = %e, "reload failed; the running configuration stays");
                }
                Ok(_) => {}
            },
            Ok(MainEvent::Signal(s)) => {
                tracing::info!(signal = s, "stopping");
                break;
            }
            Ok(MainEvent::Reload(reply)) => {
                let _ = reply.send(agent.reload_file().map_err(|e| e.to_string()));
            }
            Ok(MainEvent::Apply(ApplyRequest { config, done })) => {
                let r = agent.apply_from_controller(config);
                if let Err(e) = &r {
                    tracing::error!(error = %e,
                        "configuration from the controller refused; the running one stays");
                }
                let _ = done.send(r.map_err(|e| e.to_string()));
            }
            Err(RecvTimeoutError::Timeout) => agent.attach_missing(),
            Err(RecvTimeoutError::Disconnected) => break,
        }
        agent.publish_status();
    }
    let _ = agent.worker.send(Command::Stop);
    agent.waker.wake();
    let _ = worker_thread.join();
    let _ = std::fs::remove_file(&control_path);
    tracing::info!("stopped");
    Ok(())
}

impl Agent {
    /// Re-reads the configuration file and swaps it in. An invalid file changes nothing.
    fn reload_file(&mut self) -> Result<u64, AgentError> {
        let path = self.file.clone().ok_or(AgentError::NotFromFile)?;
        let cfg = read_config(&path)?;
        let tables = cfg.validate().map_err(|source| AgentError::Config {
            path: path.clone(),
            source,
        })?;
        self.reload(Arc::new(tables))
    }

    /// Validates a configuration from the controller and applies it: its ports' interfaces
    /// prepared (taps created, MTU, up), swapped in, taps of removed ports deleted, saved in the
    /// state directory. Anything wrong before the swap changes nothing.
    fn apply_from_controller(
        &mut self,
        cfg: Box<NodeConfig>,
    ) -> Result<Box<NodeConfig>, AgentError> {
        let Some(c) = self.controller.as_mut() else {
            return Err(AgentError::Start(std::io::Error::other(
                "a configuration from the controller reached a file-configured agent",
            )));
        };
        check_identity(&cfg, &c.opts)?;
        let tables = cfg.validate().map_err(|source| AgentError::Invalid {
            revision: cfg.revision,
            source,
        })?;
        c.interfaces.prepare(&cfg);
        self.reload(Arc::new(tables))?;
        if let Some(c) = self.controller.as_mut() {
            c.interfaces.remove_unused(&cfg);
            // Not saving only costs a longer catch-up after a restart: the agent would resume
            // from the older saved revision.
            if let Err(e) = c.state.save_config(&cfg) {
                tracing::error!(error = %e, "cannot save the applied configuration");
            }
        }
        Ok(cfg)
    }

    /// Swaps in validated tables: opens the sockets of ports not attached yet, re-opens the
    /// underlay if the VTEP changed, and waits (bounded) for the worker to switch.
    fn reload(&mut self, tables: Arc<Tables>) -> Result<u64, AgentError> {
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

    /// Hands the ports' states to the status reporter when they changed (a controller-
    /// programmed agent only; nothing is reported before a configuration from the controller
    /// or the state directory runs).
    fn publish_status(&self) {
        let Some(c) = &self.controller else { return };
        if self.tables.revision == 0 {
            return;
        }
        let attached = self.attached();
        let report = StatusReport {
            revision: self.tables.revision,
            ports: self
                .tables
                .ports
                .iter()
                .map(|p| {
                    let s = if attached.get(&p.interface) == Some(&true) {
                        PortStatus::Active
                    } else {
                        PortStatus::Down
                    };
                    (p.name.clone(), s)
                })
                .collect(),
        };
        c.status.send_if_modified(|cur| {
            if cur.as_ref() == Some(&report) {
                false
            } else {
                *cur = Some(report);
                true
            }
        });
    }
}
