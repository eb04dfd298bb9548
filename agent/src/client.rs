//! The agent's side of the node API (`docs/node-api.md`): mutual TLS to the controller,
//! registration, the watch stream and status reports.
//!
//! It runs on its own thread (`weft-controller`) with a single-threaded tokio runtime; nothing
//! here touches packets. Configurations go to the main thread as [`ApplyRequest`]s and come back
//! accepted or refused; the port states come from the main thread over a `watch` channel and
//! are reported by a task of their own, so a slow or failing status report never holds up an
//! apply.
//!
//! ```text
//!  loop:  PUT /v1/nodes/N  ─► GET /v1/nodes/N/config?since=R ─► lines ─► Tracker ─► main thread
//!         on any error: log, wait (jittered exponential backoff), start again
//!  task:  port states changed (or reconnected, or the last report failed 10 s ago)
//!         ─► PUT /v1/nodes/N/status
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, oneshot, watch};
use weft_dataplane::config::NodeConfig;

use crate::MainEvent;
use crate::stats::ControllerStats;
use crate::watch::{Backoff, LineBuffer, MAX_LINE, Message, Revision, Step, Tracker, WatchError};

/// An agent that reads nothing on its watch stream for this long reconnects (the controller
/// sends a heartbeat at least every 10 s).
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time limit of a registration or a status report.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time limit of establishing a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the main thread has to apply a configuration before the stream is given up (and
/// resumed with a snapshot).
const APPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// A failed status report is sent again after this long if nothing changes meanwhile.
const STATUS_RETRY: Duration = Duration::from_secs(10);

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The `--controller` URL is not usable.
    #[error("--controller {url:?}: {why}")]
    Url {
        /// What was given.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// A certificate, key or CA file could not be read or parsed.
    #[error("{path}: {why}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The HTTPS client could not be built.
    #[error("cannot set up TLS to the controller: {0}")]
    Tls(String),
    /// A request failed below HTTP (connection, TLS handshake, stream).
    #[error("{what}: {why}")]
    Transport {
        /// The request.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// The controller answered with an error.
    #[error("{what}: the controller answered {status}: {message}")]
    Status {
        /// The request.
        what: &'static str,
        /// The HTTP status.
        status: StatusCode,
        /// The controller's `error`, or the body.
        message: String,
    },
    /// Nothing arrived on the watch stream for [`READ_TIMEOUT`].
    #[error("nothing received from the controller for {} s", READ_TIMEOUT.as_secs())]
    Silent,
    /// The controller ended the watch stream.
    #[error("the controller closed the watch stream")]
    Closed,
    /// The stream broke the protocol.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// The agent refused a configuration.
    #[error("configuration revision {revision} refused: {why}")]
    Refused {
        /// Its revision.
        revision: u64,
        /// Why.
        why: String,
    },
    /// The main thread did not answer an apply in time.
    #[error("applying revision {0} did not finish in {secs} s", secs = APPLY_TIMEOUT.as_secs())]
    ApplyTimeout(u64),
    /// The agent is stopping.
    #[error("the agent is stopping")]
    Stopped,
}

/// A node's role (`PUT /v1/nodes/{node}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// VM ports bound to the node are configured there.
    Hypervisor,
    /// Tenant routers may be scheduled onto the node.
    Router,
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "hypervisor" => Ok(Role::Hypervisor),
            "router" => Ok(Role::Router),
            _ => Err(format!("unknown role {s:?} (hypervisor or router)")),
        }
    }
}

/// How the agent reaches its controller (`weft agent --controller ...`).
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// `https://HOST:PORT` of the controller's node API.
    pub url: String,
    /// This node's name (its certificate's CN).
    pub node: String,
    /// The CA certificate (PEM): the only one trusted.
    pub ca: PathBuf,
    /// This node's certificate (PEM).
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
    /// Where the agent keeps its state (`state`).
    pub state_dir: PathBuf,
    /// This node's VTEP address.
    pub vtep_ip: IpAddr,
    /// The underlay's MTU.
    pub underlay_mtu: u32,
    /// The node's roles.
    pub roles: Vec<Role>,
    /// Its uplinks: physical network → host interface (external and flat networks).
    pub uplinks: BTreeMap<String, String>,
}

/// What `PUT /v1/nodes/{node}` carries.
#[derive(Debug, Clone, Serialize)]
struct Registration {
    vtep_ip: IpAddr,
    underlay_mtu: u32,
    roles: Vec<Role>,
    /// Left out when empty: controllers that predate uplinks refuse unknown fields.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    uplinks: BTreeMap<String, String>,
}

/// Parses `--uplink PHYSNET=IFACE` values into a map; a physical network given twice is an
/// error.
pub fn parse_uplinks(values: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for v in values {
        let Some((physnet, iface)) = v.split_once('=') else {
            return Err(format!(
                "--uplink {v:?}: expected PHYSNET=IFACE, e.g. public=eth1"
            ));
        };
        if physnet.is_empty() || iface.is_empty() {
            return Err(format!(
                "--uplink {v:?}: expected PHYSNET=IFACE, e.g. public=eth1"
            ));
        }
        if out.insert(physnet.to_owned(), iface.to_owned()).is_some() {
            return Err(format!(
                "--uplink: physical network {physnet} is given twice"
            ));
        }
    }
    Ok(out)
}

/// A port's state as reported to the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PortStatus {
    /// Its interface is attached to the dataplane.
    Active,
    /// It is not.
    Down,
}

/// `PUT /v1/nodes/{node}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The revision running.
    pub revision: u64,
    /// Every configured port, by name.
    pub ports: BTreeMap<String, PortStatus>,
}

/// A configuration for the main thread to validate and apply. It answers with the
/// configuration back (now running) or why it refused it.
#[derive(Debug)]
pub struct ApplyRequest {
    /// The configuration.
    pub config: Box<NodeConfig>,
    /// The answer.
    pub done: oneshot::Sender<Result<Box<NodeConfig>, String>>,
}

/// The connection state shown by `weft stats`.
pub type ControllerLink = Arc<Mutex<ControllerStats>>;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn update(link: &ControllerLink, f: impl FnOnce(&mut ControllerStats)) {
    if let Ok(mut s) = link.lock() {
        f(&mut s);
    }
}

/// The error and its sources, e.g. reqwest's "error sending request" with the TLS reason.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    let mut depth = 0;
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
        depth += 1;
        if depth > 8 {
            break;
        }
    }
    s
}

/// Parses and checks the controller's URL: `https`, with a host, no query or fragment.
pub fn parse_url(url: &str) -> Result<Url, ClientError> {
    let bad = |why: &str| ClientError::Url {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let u = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if u.scheme() != "https" {
        return Err(bad(
            "the node API is HTTPS only (https://HOST:9697, mutual TLS)",
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad("no query or fragment, just https://HOST:PORT"));
    }
    Ok(u)
}

fn read_pem(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::Pem {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// The HTTPS client of one node.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    node: String,
    registration: Arc<Registration>,
}

impl Client {
    /// Reads the CA, certificate and key and sets up mutual TLS 1.3 trusting only the CA.
    pub fn new(opts: &ControllerOptions) -> Result<Client, ClientError> {
        let base = parse_url(&opts.url)?;
        let ca =
            reqwest::Certificate::from_pem(&read_pem(&opts.ca)?).map_err(|e| ClientError::Pem {
                path: opts.ca.clone(),
                why: chain(&e),
            })?;
        let mut identity = read_pem(&opts.key)?;
        identity.push(b'\n');
        identity.extend(read_pem(&opts.cert)?);
        let identity = reqwest::Identity::from_pem(&identity).map_err(|e| ClientError::Pem {
            path: opts.cert.clone(),
            why: format!("with key {}: {}", opts.key.display(), chain(&e)),
        })?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .identity(identity)
            .min_tls_version(reqwest::tls::Version::TLS_1_3)
            .https_only(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| ClientError::Tls(chain(&e)))?;
        let mut roles = opts.roles.clone();
        roles.sort();
        roles.dedup();
        Ok(Client {
            http,
            base,
            node: opts.node.clone(),
            registration: Arc::new(Registration {
                vtep_ip: opts.vtep_ip,
                underlay_mtu: opts.underlay_mtu,
                roles,
                uplinks: opts.uplinks.clone(),
            }),
        })
    }

    /// `BASE/v1/nodes/NODE[/tail]`, the node name as one escaped path segment.
    fn url(&self, tail: Option<&str>) -> Url {
        let mut u = self.base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty().extend(["v1", "nodes", self.node.as_str()]);
            if let Some(t) = tail {
                p.push(t);
            }
        }
        u
    }

    /// Checks an answer's status; an error answer's `{"error": ...}` becomes the message.
    async fn check(
        what: &'static str,
        resp: reqwest::Response,
    ) -> Result<reqwest::Response, ClientError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        #[derive(Deserialize)]
        struct ErrorBody {
            error: String,
        }
        let body = tokio::time::timeout(REQUEST_TIMEOUT, resp.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let mut message = serde_json::from_str::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or(body);
        message.truncate(1024);
        Err(ClientError::Status {
            what,
            status,
            message,
        })
    }

    /// Sends a request and checks its answer's status.
    async fn send(
        what: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let resp = req.send().await.map_err(|e| ClientError::Transport {
            what,
            why: chain(&e),
        })?;
        Self::check(what, resp).await
    }

    /// `PUT /v1/nodes/{node}`: registers (or updates) the node; answers its current revision.
    pub async fn register(&self) -> Result<Revision, ClientError> {
        const WHAT: &str = "registering with the controller";
        #[derive(Deserialize)]
        struct Registered {
            revision: Revision,
        }
        let req = self.http.put(self.url(None)).json(&*self.registration);
        let resp = Self::send(WHAT, req.timeout(REQUEST_TIMEOUT)).await?;
        let r: Registered = resp.json().await.map_err(|e| ClientError::Transport {
            what: WHAT,
            why: chain(&e),
        })?;
        Ok(r.revision)
    }

    /// `GET /v1/nodes/{node}/config?since=REV`: the watch stream's response, headers read (no
    /// overall time limit: the body is read under [`READ_TIMEOUT`] per chunk).
    pub async fn watch(&self, since: Revision) -> Result<reqwest::Response, ClientError> {
        let mut url = self.url(Some("config"));
        url.query_pairs_mut()
            .append_pair("since", &since.to_string());
        let req = self.http.get(url);
        tokio::time::timeout(READ_TIMEOUT, Self::send("watching the configuration", req))
            .await
            .map_err(|_| ClientError::Silent)?
    }

    /// `PUT /v1/nodes/{node}/status`.
    pub async fn report(&self, report: &StatusReport) -> Result<(), ClientError> {
        let req = self.http.put(self.url(Some("status"))).json(report);
        Self::send("reporting port status", req.timeout(REQUEST_TIMEOUT))
            .await
            .map(drop)
    }
}

/// Everything the controller thread needs.
#[derive(Debug)]
pub(crate) struct Controller {
    pub client: Client,
    /// The configuration the dataplane runs at start-up (saved, or empty).
    pub running: NodeConfig,
    pub events: Sender<MainEvent>,
    pub status: watch::Receiver<Option<StatusReport>>,
    pub link: ControllerLink,
    /// Closed (its sender dropped) when the agent stops.
    pub shutdown: watch::Receiver<()>,
}

impl Controller {
    /// Runs on the calling thread until the agent stops.
    pub fn run_blocking(self) {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(self.run()),
            Err(e) => tracing::error!(error = %e,
                "cannot start the controller client; the agent runs its saved configuration"),
        }
    }

    async fn run(self) {
        let Controller {
            client,
            running,
            events,
            status,
            link,
            mut shutdown,
        } = self;
        let resend = Arc::new(Notify::new());
        let reporter = tokio::spawn(report_status(client.clone(), status, resend.clone()));
        let mut tracker = Tracker::new(running);
        let mut backoff = Backoff::default();
        loop {
            let e = tokio::select! {
                Err(e) = session(&client, &mut tracker, &mut backoff, &events, &link, &resend) => e,
                _ = shutdown.changed() => break,
            };
            if matches!(e, ClientError::Stopped) {
                break;
            }
            let delay = backoff.next_delay(fastrand::f64());
            tracing::warn!(error = %e, retry_in_ms = delay.as_millis(), since = %tracker.since(),
                "controller connection lost; the running configuration stays");
            update(&link, |s| {
                if s.connected {
                    s.since_unix_secs = unix_now();
                }
                s.connected = false;
                s.reconnects += 1;
                s.last_error = Some(e.to_string());
            });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => break,
            }
        }
        reporter.abort();
    }
}

/// One connection: register, watch, apply until something breaks. Never returns `Ok`.
async fn session(
    client: &Client,
    tracker: &mut Tracker,
    backoff: &mut Backoff,
    events: &Sender<MainEvent>,
    link: &ControllerLink,
    resend: &Notify,
) -> Result<Infallible, ClientError> {
    let registered = client.register().await?;
    let since = tracker.since();
    let mut resp = client.watch(since).await?;
    tracing::info!(since = %since, controller_revision = %registered, "watching the controller");
    update(link, |s| {
        s.connected = true;
        s.since_unix_secs = unix_now();
    });
    // The controller may have missed reports while we were away.
    resend.notify_one();
    let mut lines = LineBuffer::new(MAX_LINE);
    loop {
        let chunk = match tokio::time::timeout(READ_TIMEOUT, resp.chunk()).await {
            Err(_) => return Err(ClientError::Silent),
            Ok(Err(e)) => {
                return Err(ClientError::Transport {
                    what: "reading the watch stream",
                    why: chain(&e),
                });
            }
            Ok(Ok(None)) => return Err(ClientError::Closed),
            Ok(Ok(Some(c))) => c,
        };
        lines.push(&chunk);
        while let Some(line) = lines.next_line()? {
            match tracker.handle(Message::parse(&line)?)? {
                Step::Apply(config) => {
                    let revision = config.revision;
                    let (tx, rx) = oneshot::channel();
                    events
                        .send(MainEvent::Apply(ApplyRequest { config, done: tx }))
                        .map_err(|_| ClientError::Stopped)?;
                    match tokio::time::timeout(APPLY_TIMEOUT, rx).await {
                        Ok(Ok(Ok(cfg))) => {
                            tracker.applied(*cfg);
                            backoff.reset();
                            update(link, |s| s.revision = revision);
                        }
                        Ok(Ok(Err(why))) => {
                            tracker.refused();
                            return Err(ClientError::Refused { revision, why });
                        }
                        Ok(Err(_)) => return Err(ClientError::Stopped),
                        Err(_) => {
                            // Whether it was applied is unknown: only a snapshot settles it.
                            tracker.refused();
                            return Err(ClientError::ApplyTimeout(revision));
                        }
                    }
                }
                Step::InSync => backoff.reset(),
                Step::Nothing => {}
            }
        }
    }
}

/// Sends the latest port states whenever they change, after each (re)connection, and again
/// every [`STATUS_RETRY`] while the last attempt failed. Ends when the agent stops.
async fn report_status(
    client: Client,
    mut states: watch::Receiver<Option<StatusReport>>,
    resend: Arc<Notify>,
) {
    let mut pending = false;
    let mut failures = 0u32;
    loop {
        tokio::select! {
            r = states.changed() => {
                if r.is_err() {
                    return;
                }
                pending = true;
            }
            () = resend.notified() => pending = true,
            () = tokio::time::sleep(STATUS_RETRY), if pending => {}
        }
        let Some(report) = states.borrow_and_update().clone() else {
            pending = false;
            continue;
        };
        match client.report(&report).await {
            Ok(()) => {
                tracing::debug!(
                    revision = report.revision,
                    ports = report.ports.len(),
                    "port status reported"
                );
                pending = false;
                failures = 0;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::warn!(error = %e, "port status report failed; retrying");
                } else {
                    tracing::debug!(error = %e, failures, "port status report failed again");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_only_and_paths_escape_the_node() {
        assert!(parse_url("http://ctl:9697").is_err());
        assert!(parse_url("ctl:9697").is_err());
        assert!(parse_url("https://ctl:9697/?x=1").is_err());
        let base = parse_url("https://192.168.100.254:9697").unwrap();
        let c = Client {
            http: reqwest::Client::new(),
            base,
            node: "hv1:a".into(),
            registration: Arc::new(Registration {
                vtep_ip: "192.168.100.1".parse().unwrap(),
                underlay_mtu: 1500,
                roles: vec![Role::Hypervisor],
                uplinks: BTreeMap::new(),
            }),
        };
        assert_eq!(
            c.url(Some("status")).as_str(),
            "https://192.168.100.254:9697/v1/nodes/hv1:a/status"
        );
        assert_eq!(
            c.url(None).as_str(),
            "https://192.168.100.254:9697/v1/nodes/hv1:a"
        );
        assert_eq!(
            serde_json::to_string(&*c.registration).unwrap(),
            r#"{"vtep_ip":"192.168.100.1","underlay_mtu":1500,"roles":["hypervisor"]}"#
        );
        let with_uplink = Registration {
            uplinks: parse_uplinks(&["public=eth1".into()]).unwrap(),
            ..(*c.registration).clone()
        };
        assert_eq!(
            serde_json::to_string(&with_uplink).unwrap(),
            r#"{"vtep_ip":"192.168.100.1","underlay_mtu":1500,"roles":["hypervisor"],"uplinks":{"public":"eth1"}}"#
        );
    }

    #[test]
    fn uplink_options() {
        let m = parse_uplinks(&["public=eth1".into(), "physnet2=bond0.100".into()]).unwrap();
        assert_eq!(m["public"], "eth1");
        assert_eq!(m["physnet2"], "bond0.100");
        assert!(parse_uplinks(&["eth1".into()]).is_err());
        assert!(parse_uplinks(&["=eth1".into()]).is_err());
        assert!(parse_uplinks(&["a=eth1".into(), "a=eth2".into()]).is_err());
    }

    #[test]
    fn status_report_has_the_contract_shape() {
        let r = StatusReport {
            revision: 45,
            ports: [
                ("6f1c".to_owned(), PortStatus::Active),
                ("0b7e".to_owned(), PortStatus::Down),
            ]
            .into(),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"revision":45,"ports":{"0b7e":"DOWN","6f1c":"ACTIVE"}}"#
        );
        assert_eq!("router".parse::<Role>(), Ok(Role::Router));
        assert!("switch".parse::<Role>().is_err());
    }

    #[test]
    fn missing_pem_files_are_named() {
        let opts = ControllerOptions {
            url: "https://ctl:9697".into(),
            node: "hv1".into(),
            ca: "/nonexistent/ca.pem".into(),
            cert: "/nonexistent/hv1.pem".into(),
            key: "/nonexistent/hv1.key".into(),
            state_dir: "/nonexistent".into(),
            vtep_ip: "192.168.100.1".parse().unwrap(),
            underlay_mtu: 1500,
            roles: vec![],
            uplinks: BTreeMap::new(),
        };
        let e = Client::new(&opts).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
