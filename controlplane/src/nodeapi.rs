//! The node API (`docs/node-api.md`): agents register, watch their configuration and report
//! port status over HTTPS with mutual TLS.
//!
//! ```text
//!  store commit ─► watch(latest revision) ─► compile task: snapshot + change records
//!                                              │ Compiler::update → nodes recompiled
//!                                              ▼
//!                                   Hub: per node, the current configuration, a bounded log
//!                                   of deltas (pre-serialized lines), a watch of its revision
//!                                              │
//!  agent ─TLS 1.3, client cert (CN = node)─► GET /v1/nodes/{node}/config?since=REV
//!                                            snapshot | deltas, then deltas + heartbeats
//! ```
//!
//! The certificate's node name is attached to every request of its connection; a path naming
//! another node is refused (403) before anything is read.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use weft_dataplane::config::NodeConfig;
use weft_dataplane::config_delta::{self, ConfigDelta};

use crate::compile::{Compiled, Compiler};
use crate::model::{Node, NodeRole, Port, Scope, StandardAttrs, Timestamp};
use crate::store::{Store, StoreError};

/// Deltas kept per node for agents that reconnect (older ones get a snapshot).
const DELTA_LOG: usize = 256;
/// ... and at most this many bytes of them, or the size of the node's configuration as JSON
/// if larger: a chain of deltas longer than a snapshot is not worth keeping (a security group
/// with many members is resent whole in every delta that changes its members).
const DELTA_LOG_MIN_BYTES: usize = 64 * 1024;
/// Heartbeat period on watch streams.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// At most this many change records are read per compilation; more means "recompile all".
const MAX_RECORDS: u32 = 10_000;
/// How long registration waits for the compiler to catch up with it.
const COMPILE_WAIT: Duration = Duration::from_secs(10);

/// The node a connection's client certificate names.
#[derive(Debug, Clone)]
pub struct NodeIdentity(pub String);

/// One line of a watch stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum WatchMessage {
    /// A whole configuration.
    Snapshot {
        /// Its revision.
        revision: u64,
        /// The configuration.
        config: NodeConfig,
    },
    /// What changed from `from` to `revision`.
    Delta {
        /// The revision it applies to.
        from: u64,
        /// The revision it gives.
        revision: u64,
        /// The changes.
        delta: ConfigDelta,
    },
    /// Nothing new; the node's current revision.
    Heartbeat {
        /// The revision.
        revision: u64,
    },
}

impl WatchMessage {
    fn line(&self) -> Bytes {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    }
}

#[derive(Debug)]
struct NodeState {
    config: Arc<NodeConfig>,
    /// Deltas in order: (from, to, line).
    log: VecDeque<(u64, u64, Bytes)>,
    /// Bytes of the lines in `log`.
    log_bytes: usize,
    revision: watch::Sender<u64>,
}

/// Every node's current configuration and recent deltas.
#[derive(Debug, Default)]
pub struct Hub {
    nodes: Mutex<HashMap<String, NodeState>>,
    /// Node → the Neutron ports of the routers placed on it (see [`Hub::set_router_ports`]).
    router_ports: Mutex<BTreeMap<String, Vec<String>>>,
    /// The store revision the compiler has caught up with.
    compiled: watch::Sender<u64>,
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, NodeState>> {
        self.nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the compiler's output for one store revision. A configuration equal to the node's
    /// current one (but for the revision) changes nothing: the node keeps its revision and its
    /// streams send nothing. Returns how many nodes changed.
    pub fn publish(&self, store_revision: u64, compiled: Vec<Compiled>) -> usize {
        let mut changed = 0;
        let mut nodes = self.lock();
        for Compiled { node, mut config } in compiled {
            let rev = config.revision;
            match nodes.get_mut(&node) {
                Some(st) => {
                    config.revision = st.config.revision;
                    if *st.config == config {
                        continue;
                    }
                    config.revision = rev;
                    changed += 1;
                    match config_delta::diff(&st.config, &config) {
                        Some(delta) => {
                            let line = WatchMessage::Delta {
                                from: st.config.revision,
                                revision: rev,
                                delta,
                            }
                            .line();
                            st.log_bytes += line.len();
                            st.log.push_back((st.config.revision, rev, line));
                            // The configuration's size is only worth measuring (serializing
                            // it all) once the log outgrows the floor.
                            let budget = if st.log_bytes > DELTA_LOG_MIN_BYTES {
                                serde_json::to_vec(&config)
                                    .map_or(0, |v| v.len())
                                    .max(DELTA_LOG_MIN_BYTES)
                            } else {
                                DELTA_LOG_MIN_BYTES
                            };
                            // The newest delta always stays: live streams follow it.
                            while st.log.len() > DELTA_LOG
                                || (st.log.len() > 1 && st.log_bytes > budget)
                            {
                                if let Some((_, _, old)) = st.log.pop_front() {
                                    st.log_bytes -= old.len();
                                }
                            }
                        }
                        // Not expressible as a delta: streams send a snapshot.
                        None => {
                            st.log.clear();
                            st.log_bytes = 0;
                        }
                    }
                    st.config = Arc::new(config);
                    st.revision.send_replace(rev);
                }
                None => {
                    changed += 1;
                    nodes.insert(
                        node,
                        NodeState {
                            config: Arc::new(config),
                            log: VecDeque::new(),
                            log_bytes: 0,
                            revision: watch::Sender::new(rev),
                        },
                    );
                }
            }
        }
        drop(nodes);
        self.compiled.send_if_modified(|c| {
            let newer = store_revision > *c;
            if newer {
                *c = store_revision;
            }
            newer
        });
        changed
    }

    /// Records the compiler's router placement as node → router port ids. A node's status
    /// report marks its routers' ports ACTIVE: they are up where their router runs.
    pub fn set_router_ports(&self, ports: BTreeMap<String, Vec<String>>) {
        *self
            .router_ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = ports;
    }

    fn router_ports_of(&self, node: &str) -> Vec<String> {
        self.router_ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(node)
            .cloned()
            .unwrap_or_default()
    }

    /// The node's current configuration.
    pub fn config(&self, node: &str) -> Option<Arc<NodeConfig>> {
        self.lock().get(node).map(|s| s.config.clone())
    }

    /// What brings a node from `since` to its current configuration: nothing (in sync), the
    /// deltas, or a snapshot; and the revision it ends at.
    fn catch_up(&self, node: &str, since: u64) -> Option<(Vec<Bytes>, u64)> {
        let nodes = self.lock();
        let st = nodes.get(node)?;
        let current = st.config.revision;
        if since == current {
            return Some((Vec::new(), current));
        }
        if let Some(start) = st.log.iter().position(|(from, _, _)| *from == since) {
            let lines: Vec<Bytes> = st
                .log
                .iter()
                .skip(start)
                .map(|(_, _, l)| l.clone())
                .collect();
            return Some((lines, current));
        }
        let snap = WatchMessage::Snapshot {
            revision: current,
            config: (*st.config).clone(),
        };
        Some((vec![snap.line()], current))
    }

    fn subscribe(&self, node: &str) -> Option<watch::Receiver<u64>> {
        self.lock().get(node).map(|s| s.revision.subscribe())
    }

    /// Waits (bounded) until the compiler has caught up with `revision`.
    pub async fn wait_compiled(&self, revision: u64) -> bool {
        let mut rx = self.compiled.subscribe();
        tokio::time::timeout(COMPILE_WAIT, rx.wait_for(|c| *c >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Where routers run, and per node its revision (for `weft` tooling and tests).
    pub fn revisions(&self) -> BTreeMap<String, u64> {
        self.lock()
            .iter()
            .map(|(n, s)| (n.clone(), s.config.revision))
            .collect()
    }
}

/// Compiles on every store change until `shutdown` fires; publishes into `hub`.
pub async fn compile_loop(store: Store, hub: Arc<Hub>, mut shutdown: watch::Receiver<bool>) {
    let mut latest = store.subscribe();
    let mut compiler = Compiler::new();
    let mut last: Option<u64> = None;
    loop {
        let seen = *latest.borrow_and_update();
        match compile_once(&store, &mut compiler, last).await {
            Ok((rev, compiled)) => {
                let n = compiled.len();
                let changed = hub.publish(rev, compiled);
                hub.set_router_ports(compiler.router_ports());
                if changed > 0 {
                    tracing::info!(
                        revision = rev,
                        nodes = changed,
                        compiled = n,
                        "node configurations changed"
                    );
                }
                last = Some(rev);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the store to compile; retrying in 1 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        }
        if last.is_some_and(|l| l < seen.0) {
            continue;
        }
        tokio::select! {
            r = latest.changed() => if r.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

async fn compile_once(
    store: &Store,
    compiler: &mut Compiler,
    last: Option<u64>,
) -> Result<(u64, Vec<Compiled>), StoreError> {
    let snap = store.snapshot().await?;
    let rev = snap.revision.0;
    let records = match last {
        Some(l) => {
            let mut r = store
                .changes_since(crate::model::Revision(l), MAX_RECORDS)
                .await?;
            if r.len() >= MAX_RECORDS as usize {
                None
            } else {
                r.retain(|x| x.revision.0 <= rev);
                Some(r)
            }
        }
        None => None,
    };
    Ok((rev, compiler.update(&snap, records.as_deref())))
}

/// State of the node API's handlers.
#[derive(Debug, Clone)]
pub struct NodeApi {
    /// The store.
    pub store: Store,
    /// Compiled configurations.
    pub hub: Arc<Hub>,
}

#[derive(Debug)]
struct NodeApiError(StatusCode, String);

impl IntoResponse for NodeApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({"error": self.1}))).into_response()
    }
}

impl From<StoreError> for NodeApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "node API: store error");
        NodeApiError(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}"))
    }
}

fn same_node(id: &NodeIdentity, node: &str) -> Result<(), NodeApiError> {
    if id.0 == node {
        return Ok(());
    }
    tracing::warn!(certificate = %id.0, requested = %node,
        "node API: a node asked for another node's resources; refused");
    Err(NodeApiError(
        StatusCode::FORBIDDEN,
        format!("this certificate is node '{}', not '{node}'", id.0),
    ))
}

/// The node API's routes (without TLS; [`serve`] adds the connection's identity).
pub fn router(api: NodeApi) -> Router {
    Router::new()
        .route("/v1/nodes/{node}", put(register))
        .route("/v1/nodes/{node}/config", get(watch_config))
        .route("/v1/nodes/{node}/status", put(status))
        .layer(axum::extract::DefaultBodyLimit::max(8 * 1024 * 1024))
        .with_state(api)
}

/// `PUT /v1/nodes/{node}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The node's VTEP address.
    pub vtep_ip: IpAddr,
    /// Its underlay MTU.
    #[serde(default = "default_mtu")]
    pub underlay_mtu: u32,
    /// What it offers.
    pub roles: Vec<NodeRole>,
    /// Physical network → host interface of its uplinks (external and flat networks).
    #[serde(default)]
    pub uplinks: BTreeMap<String, String>,
}

fn default_mtu() -> u32 {
    1500
}

/// A Linux interface name: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
fn valid_ifname(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

impl Registration {
    fn check(&self) -> Result<(), String> {
        let ip = self.vtep_ip;
        let bad = ip.is_unspecified()
            || ip.is_multicast()
            || matches!(ip, IpAddr::V4(v) if v.is_broadcast());
        if bad {
            return Err(format!("vtep_ip {ip} is not a unicast address"));
        }
        if !(1280..=65_535).contains(&self.underlay_mtu) {
            return Err(format!(
                "underlay_mtu {} is not within 1280..=65535",
                self.underlay_mtu
            ));
        }
        if self.roles.is_empty() {
            return Err("roles: at least one of hypervisor, router".into());
        }
        let mut ifaces = std::collections::BTreeSet::new();
        for (physnet, iface) in &self.uplinks {
            if physnet.is_empty() || physnet.len() > 255 || physnet.chars().any(char::is_control) {
                return Err(format!(
                    "uplinks: {physnet:?} is not a physical network name (1-255 characters)"
                ));
            }
            if !valid_ifname(iface) {
                return Err(format!(
                    "uplinks: {physnet}: {iface:?} is not an interface name (1-15 characters, no '/', ':' or whitespace)"
                ));
            }
            if !ifaces.insert(iface.as_str()) {
                return Err(format!(
                    "uplinks: interface {iface} is given for two physical networks"
                ));
            }
        }
        Ok(())
    }
}

async fn register(
    State(api): State<NodeApi>,
    Extension(id): Extension<NodeIdentity>,
    Path(node): Path<String>,
    body: Result<Json<Registration>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, NodeApiError> {
    same_node(&id, &node)?;
    let Json(reg) = body.map_err(|e| NodeApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    reg.check()
        .map_err(|e| NodeApiError(StatusCode::BAD_REQUEST, e))?;
    let mut roles = reg.roles.clone();
    roles.sort();
    roles.dedup();
    let mut attempt = 0;
    let revision = loop {
        attempt += 1;
        match write_node(&api.store, &node, &reg, &roles).await {
            Ok(r) => break r,
            Err(e) if e.is_retryable() && attempt < 8 => continue,
            Err(e) => return Err(e.into()),
        }
    };
    if !api.hub.wait_compiled(revision).await {
        tracing::warn!(node = %node, revision, "registration: the compiler has not caught up yet");
    }
    let cfg = api.hub.config(&node);
    tracing::info!(node = %node, vtep = %reg.vtep_ip, roles = ?roles, uplinks = ?reg.uplinks,
        "node registered");
    Ok(Json(serde_json::json!({
        "node": node,
        "revision": cfg.map_or(0, |c| c.revision),
    })))
}

async fn write_node(
    store: &Store,
    node: &str,
    reg: &Registration,
    roles: &[NodeRole],
) -> Result<u64, StoreError> {
    let mut tx = store.begin(&Scope::All, &format!("node:{node}")).await?;
    let existing: Option<Node> = tx
        .get(&Scope::All, node, crate::store::Lock::Update)
        .await?;
    match existing {
        Some(n)
            if n.vtep_ip == reg.vtep_ip
                && n.underlay_mtu == reg.underlay_mtu
                && n.roles == roles
                && n.uplinks == reg.uplinks => {}
        Some(mut n) => {
            n.vtep_ip = reg.vtep_ip;
            n.underlay_mtu = reg.underlay_mtu;
            n.roles = roles.to_vec();
            n.uplinks.clone_from(&reg.uplinks);
            tx.update(&Scope::All, &mut n).await?;
        }
        None => {
            let mut n = Node {
                name: node.to_owned(),
                vtep_ip: reg.vtep_ip,
                underlay_mtu: reg.underlay_mtu,
                roles: roles.to_vec(),
                uplinks: reg.uplinks.clone(),
                std: StandardAttrs::new(Timestamp::now()),
            };
            tx.insert(&Scope::All, &mut n).await?;
        }
    }
    Ok(tx.commit().await?.0)
}

/// `since=REV` (absent: 0); anything else in the query is refused.
fn parse_since(q: Option<&str>) -> Result<u64, String> {
    let mut since = 0;
    for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        match &*k {
            "since" => {
                since = v
                    .parse()
                    .map_err(|_| format!("since: '{v}' is not a revision number"))?;
            }
            other => return Err(format!("unknown query parameter '{other}'")),
        }
    }
    Ok(since)
}

async fn watch_config(
    State(api): State<NodeApi>,
    Extension(id): Extension<NodeIdentity>,
    Path(node): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, NodeApiError> {
    same_node(&id, &node)?;
    let since =
        parse_since(query.as_deref()).map_err(|e| NodeApiError(StatusCode::BAD_REQUEST, e))?;
    let not_found = || {
        NodeApiError(
            StatusCode::NOT_FOUND,
            format!("node '{node}' is not registered (or has no valid configuration yet)"),
        )
    };
    let mut rx = api.hub.subscribe(&node).ok_or_else(not_found)?;
    let (first, mut at) = api.hub.catch_up(&node, since).ok_or_else(not_found)?;
    rx.mark_unchanged();
    let (tx, out) = mpsc::channel::<Bytes>(16);
    let hub = api.hub.clone();
    tokio::spawn(async move {
        let mut pending = first;
        if pending.is_empty() {
            pending.push(WatchMessage::Heartbeat { revision: at }.line());
        }
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.reset();
        loop {
            for line in pending.drain(..) {
                if tx.send(line).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                r = rx.changed() => {
                    if r.is_err() {
                        return;
                    }
                    match hub.catch_up(&node, at) {
                        Some((lines, now)) => {
                            pending = lines;
                            at = now;
                        }
                        None => return,
                    }
                }
                _ = beat.tick() => pending.push(WatchMessage::Heartbeat { revision: at }.line()),
                () = tx.closed() => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(out, |mut out| async move {
        out.recv().await.map(|b| (Ok::<_, Infallible>(b), out))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `PUT /v1/nodes/{node}/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    /// The configuration revision the agent runs.
    pub revision: u64,
    /// Port id → `ACTIVE` or `DOWN`.
    pub ports: BTreeMap<String, String>,
}

async fn status(
    State(api): State<NodeApi>,
    Extension(id): Extension<NodeIdentity>,
    Path(node): Path<String>,
    body: Result<Json<StatusReport>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, NodeApiError> {
    same_node(&id, &node)?;
    let Json(report) = body.map_err(|e| NodeApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    if let Some((p, s)) = report
        .ports
        .iter()
        .find(|(_, s)| *s != "ACTIVE" && *s != "DOWN")
    {
        return Err(NodeApiError(
            StatusCode::BAD_REQUEST,
            format!("port {p}: status '{s}' is not ACTIVE or DOWN"),
        ));
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let router_ports = api.hub.router_ports_of(&node);
        match status_changes(&api.store, &node, &report, &router_ports).await {
            Ok(false) => return Ok(StatusCode::NO_CONTENT),
            Ok(true) => {}
            Err(e) if e.is_retryable() && attempt < 8 => continue,
            Err(e) => return Err(e.into()),
        }
        match write_status(&api.store, &node, &report, &router_ports).await {
            Ok(()) => return Ok(StatusCode::NO_CONTENT),
            Err(e) if e.is_retryable() && attempt < 8 => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// What a node's report asks for, in order: the ports of the routers placed on it ACTIVE (the
/// node runs them, as it reports), then its VM ports as reported. `true` marks router ports.
fn wanted<'a>(
    report: &'a StatusReport,
    router_ports: &'a [String],
) -> impl Iterator<Item = (&'a str, &'a str, bool)> {
    router_ports
        .iter()
        .map(|id| (id.as_str(), "ACTIVE", true))
        .chain(
            report
                .ports
                .iter()
                .map(|(id, st)| (id.as_str(), st.as_str(), false)),
        )
}

/// Whether the report may set `port`'s status: a router's port for a router placed on the
/// node; otherwise only the node's own ports.
fn settable(port: &Port, node: &str, router: bool) -> bool {
    if router {
        port.device_owner.starts_with("network:router")
    } else {
        port.host_id == node
    }
}

/// Whether the report changes any port's status, read without locking anything. Most reports
/// change nothing (an agent reports after every configuration it applies), and then no write
/// transaction is needed.
async fn status_changes(
    store: &Store,
    node: &str,
    report: &StatusReport,
    router_ports: &[String],
) -> Result<bool, StoreError> {
    for (id, st, router) in wanted(report, router_ports) {
        let port: Option<Port> = store.get(&Scope::All, id).await?;
        if port.is_some_and(|p| settable(&p, node, router) && p.status != st) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Writes a node's report (see [`wanted`]).
async fn write_status(
    store: &Store,
    node: &str,
    report: &StatusReport,
    router_ports: &[String],
) -> Result<(), StoreError> {
    let mut tx = store
        .begin(&Scope::All, &format!("node:{node}:status"))
        .await?;
    for (id, st, router) in wanted(report, router_ports) {
        let port: Option<Port> = tx.get(&Scope::All, id, crate::store::Lock::Update).await?;
        let Some(mut port) = port.filter(|p| settable(p, node, router)) else {
            continue;
        };
        if port.status != st {
            st.clone_into(&mut port.status);
            tx.update(&Scope::All, &mut port).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Serves the node API on `listener` with mutual TLS until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "node API: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        conns.spawn(async move { connection(acceptor, tcp, peer, app).await });
        while conns.try_join_next().is_some() {}
    }
    conns.abort_all();
}

async fn connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
) {
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "node API: TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "node API: TLS handshake timed out");
            return;
        }
    };
    let name = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(crate::pki::node_name);
    let Some(name) = name else {
        tracing::warn!(%peer, "node API: client certificate without a valid node name");
        return;
    };
    let svc =
        hyper_util::service::TowerToHyperService::new(app.layer(Extension(NodeIdentity(name))));
    let io = hyper_util::rt::TokioIo::new(tls);
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, svc)
        .await
    {
        tracing::debug!(%peer, error = %e, "node API: connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_dataplane::config::{RuleDirection, RuleEtherType, SecurityGroupConfig};
    use weft_dataplane::config::{SecurityRuleConfig, UnderlayConfig};

    /// A configuration whose one security group lets in `members` addresses.
    fn config(revision: u64, members: u32) -> NodeConfig {
        let remote = (0..members)
            .map(|i| ipnetwork::IpNetwork::from(IpAddr::from((0x0a00_0000 + i).to_be_bytes())))
            .collect();
        NodeConfig {
            node: "hv1".into(),
            revision,
            underlay: UnderlayConfig {
                local_ip: "192.168.100.1".parse().unwrap(),
                port: 4789,
                mtu: 1500,
            },
            learning: Default::default(),
            segments: Vec::new(),
            ports: Vec::new(),
            remote_vteps: Vec::new(),
            remote_bindings: Vec::new(),
            routers: Vec::new(),
            security_groups: vec![SecurityGroupConfig {
                name: "default".into(),
                rules: vec![SecurityRuleConfig {
                    direction: RuleDirection::Ingress,
                    ethertype: RuleEtherType::IPv4,
                    protocol: None,
                    port_range_min: None,
                    port_range_max: None,
                    remote: Some(remote),
                    remote_set: None,
                }],
            }],
            address_sets: Vec::new(),
            limits: Default::default(),
        }
    }

    #[test]
    fn delta_log_is_bounded_by_the_configuration_size() {
        let hub = Hub::new();
        let publish = |rev: u64, members: u32| {
            hub.publish(
                rev,
                vec![Compiled {
                    node: "hv1".into(),
                    config: config(rev, members),
                }],
            )
        };
        publish(1, 2000);
        // Every change resends the whole group: each delta is about a snapshot's size.
        for rev in 2..40 {
            assert_eq!(publish(rev, 2000 + u32::try_from(rev).unwrap()), 1);
        }
        let nodes = hub.lock();
        let st = &nodes["hv1"];
        let snapshot = serde_json::to_vec(&*st.config).unwrap().len();
        assert!(st.log.len() < 5, "{} deltas kept", st.log.len());
        assert!(st.log_bytes <= snapshot.max(DELTA_LOG_MIN_BYTES) || st.log.len() == 1);
        assert_eq!(
            st.log_bytes,
            st.log.iter().map(|(_, _, l)| l.len()).sum::<usize>()
        );
        drop(nodes);
        // The newest delta is there for live streams; an agent further behind gets a snapshot.
        let (lines, at) = hub.catch_up("hv1", 38).unwrap();
        assert_eq!((lines.len(), at), (1, 39));
        assert!(lines[0].starts_with(br#"{"type":"delta""#));
        let (lines, _) = hub.catch_up("hv1", 2).unwrap();
        assert!(lines[0].starts_with(br#"{"type":"snapshot""#));
    }
}
