//! The agent's control socket: a Unix stream socket, one JSON request line in, one JSON response
//! line out. Used by `weft stats`, `weft capture` and `weft reload`; only root can connect (the
//! socket is created with mode 0600).
//!
//! ```text
//! {"op":"stats"}                                         → {"ok":true,"stats":{…}}
//! {"op":"reload"}                                        → {"ok":true,"revision":7}
//! {"op":"capture_start","target":"vm-a1","file":"/tmp/a.pcap","max_packets":100}
//! {"op":"capture_stop","target":"vm-a1"}                 → {"ok":true,"packets":42}
//! ```

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_dataplane_io::pcap::PcapWriter;

use crate::capture::Capture;
use crate::client::ControllerLink;
use crate::stats::Snapshot;
use crate::worker::{Command, Waker};

/// A request on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Counters and learned MACs.
    Stats,
    /// Re-read the configuration file (as SIGHUP does).
    Reload,
    /// Start a pcap capture on a port (by name) or on `"underlay"`.
    CaptureStart {
        /// Port name or `"underlay"`.
        target: String,
        /// The pcap file to write (created or truncated).
        file: PathBuf,
        /// Stop after this many packets.
        #[serde(default)]
        max_packets: Option<u64>,
    },
    /// Stop a capture.
    CaptureStop {
        /// Port name or `"underlay"`.
        target: String,
    },
}

/// A response on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// What went wrong, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For `stats`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Snapshot>,
    /// For `reload`: the revision now running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// For `capture_stop`: packets written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
}

impl Response {
    fn ok() -> Response {
        Response {
            ok: true,
            error: None,
            stats: None,
            revision: None,
            packets: None,
        }
    }

    fn err(e: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(e.into()),
            ..Response::ok()
        }
    }
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket could not be created.
    #[error("cannot listen on control socket {path}: {source}")]
    Listen {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another agent is already listening on the socket.
    #[error("control socket {0} is in use by a running agent")]
    InUse(PathBuf),
    /// The agent could not be reached.
    #[error(
        "cannot reach the agent at {path}: {source} (is `weft agent` running with this --control socket?)"
    )]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The exchange with the agent failed.
    #[error("control socket exchange failed: {0}")]
    Exchange(String),
    /// The agent answered with an error.
    #[error("the agent refused: {0}")]
    Refused(String),
}

/// Asks the main thread to reload; it answers with the new revision or an error.
pub type ReloadRequest = Sender<Result<u64, String>>;

/// The control socket's listener.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Listens on `path` (mode 0600). A stale socket left by a dead agent is replaced; a live
    /// one is an error.
    pub fn bind(path: &Path) -> Result<ControlServer, ControlError> {
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse(path.to_owned()));
            }
            let _ = std::fs::remove_file(path);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| ControlError::Listen {
                path: path.to_owned(),
                source,
            })?;
        }
        let listener = UnixListener::bind(path).map_err(|source| ControlError::Listen {
            path: path.to_owned(),
            source,
        })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| ControlError::Listen {
                path: path.to_owned(),
                source,
            },
        )?;
        Ok(ControlServer {
            listener,
            path: path.to_owned(),
        })
    }

    /// Serves connections one at a time until the process exits. `worker` and `waker` reach the
    /// dataplane; `reload` reaches the main thread; `controller` is the controller connection's
    /// state, shown by `stats`, when the agent has one.
    pub fn serve(
        self,
        worker: Sender<Command>,
        waker: Waker,
        reload: Sender<ReloadRequest>,
        controller: Option<ControllerLink>,
    ) {
        for conn in self.listener.incoming() {
            let Ok(conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
            let resp = match read_request(&conn) {
                Ok(req) => handle(req, &worker, &waker, &reload, controller.as_ref()),
                Err(e) => Response::err(e),
            };
            let mut w = &conn;
            if let Ok(line) = serde_json::to_string(&resp) {
                let _ = writeln!(w, "{line}");
            }
        }
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads one request line (at most 64 KiB).
fn read_request(conn: &UnixStream) -> Result<Request, String> {
    let mut line = String::new();
    BufReader::new(std::io::Read::take(conn, 64 * 1024))
        .read_line(&mut line)
        .map_err(|e| format!("read failed: {e}"))?;
    serde_json::from_str(&line).map_err(|e| format!("bad request: {e}"))
}

const WORKER_TIMEOUT: Duration = Duration::from_secs(5);

fn ask<T>(
    worker: &Sender<Command>,
    waker: &Waker,
    make: impl FnOnce(Sender<T>) -> Command,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    worker
        .send(make(tx))
        .map_err(|_| "the dataplane worker has stopped".to_owned())?;
    waker.wake();
    rx.recv_timeout(WORKER_TIMEOUT)
        .map_err(|_| "the dataplane worker did not answer".to_owned())
}

fn handle(
    req: Request,
    worker: &Sender<Command>,
    waker: &Waker,
    reload: &Sender<ReloadRequest>,
    controller: Option<&ControllerLink>,
) -> Response {
    match req {
        Request::Stats => match ask(worker, waker, Command::Snapshot) {
            Ok(mut s) => Response {
                stats: Some({
                    s.controller = controller.and_then(|c| c.lock().ok().map(|c| c.clone()));
                    s
                }),
                ..Response::ok()
            },
            Err(e) => Response::err(e),
        },
        Request::Reload => {
            let (tx, rx) = mpsc::channel();
            if reload.send(tx).is_err() {
                return Response::err("the agent is shutting down");
            }
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(Ok(rev)) => Response {
                    revision: Some(rev),
                    ..Response::ok()
                },
                Ok(Err(e)) => Response::err(e),
                Err(_) => Response::err("the reload did not finish in 30 s"),
            }
        }
        Request::CaptureStart {
            target,
            file,
            max_packets,
        } => {
            let capture = match open_capture(&file, max_packets) {
                Ok(c) => c,
                Err(e) => return Response::err(format!("cannot create {}: {e}", file.display())),
            };
            match ask(worker, waker, |done| Command::StartCapture {
                target,
                capture,
                done,
            }) {
                Ok(Ok(())) => Response::ok(),
                Ok(Err(e)) | Err(e) => Response::err(e),
            }
        }
        Request::CaptureStop { target } => {
            match ask(worker, waker, |done| Command::StopCapture { target, done }) {
                Ok(Ok(n)) => Response {
                    packets: Some(n),
                    ..Response::ok()
                },
                Ok(Err(e)) | Err(e) => Response::err(e),
            }
        }
    }
}

fn open_capture(file: &Path, limit: Option<u64>) -> std::io::Result<Capture> {
    let f: File = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)?;
    let writer = PcapWriter::new(BufWriter::new(f)).map_err(std::io::Error::other)?;
    Ok(Capture::new(writer, limit))
}

/// Sends one request to the agent listening on `path` and returns its response. `Refused` when
/// the agent answered with an error.
pub fn request(path: &Path, req: &Request) -> Result<Response, ControlError> {
    let conn = UnixStream::connect(path).map_err(|source| ControlError::Connect {
        path: path.to_owned(),
        source,
    })?;
    let _ = conn.set_read_timeout(Some(Duration::from_secs(40)));
    let mut w = &conn;
    let line = serde_json::to_string(req).map_err(|e| ControlError::Exchange(e.to_string()))?;
    writeln!(w, "{line}").map_err(|e| ControlError::Exchange(e.to_string()))?;
    let mut resp = String::new();
    BufReader::new(&conn)
        .read_line(&mut resp)
        .map_err(|e| ControlError::Exchange(e.to_string()))?;
    let resp: Response = serde_json::from_str(&resp)
        .map_err(|e| ControlError::Exchange(format!("bad response: {e}")))?;
    if resp.ok {
        Ok(resp)
    } else {
        Err(ControlError::Refused(resp.error.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_stable_json_shape() {
        let r: Request = serde_json::from_str(r#"{"op":"stats"}"#).unwrap();
        assert_eq!(r, Request::Stats);
        let r: Request =
            serde_json::from_str(r#"{"op":"capture_start","target":"vm1","file":"/tmp/x.pcap"}"#)
                .unwrap();
        assert_eq!(
            r,
            Request::CaptureStart {
                target: "vm1".into(),
                file: "/tmp/x.pcap".into(),
                max_packets: None
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"op":"format_disk"}"#).is_err());
    }
}
