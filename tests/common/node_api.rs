//! A scripted stand-in for the controller's node API (`docs/node-api.md`), for agent tests: an
//! HTTPS server with client-certificate authentication on 127.0.0.1 inside a namespace, and a
//! throwaway PKI made with `openssl`.
//!
//! The test decides what each watch stream starts with ([`NodeApi::greet`]) and pushes live
//! messages to the open stream ([`NodeApi::push`]); idle streams get a heartbeat every 2 s.
//! Registrations, `since` values and status reports are recorded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

/// The PKI files of one test.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub node_cert: PathBuf,
    pub node_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> bool {
    std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate for `node`, in `dir`.
/// `None` when `openssl` is not available.
pub fn make_pki(dir: &Path, node: &str) -> Option<Pki> {
    let key = |name: &str| {
        [
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([name.to_owned()])
        .collect::<Vec<_>>()
    };
    let run =
        |args: Vec<String>| openssl(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").ok()?;
    std::fs::write(dir.join("node.ext"), "extendedKeyUsage=clientAuth\n").ok()?;
    let ok = run(key("ca.key"))
        && openssl(
            dir,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=weft-test-ca",
            ],
        )
        && [("server", "controller"), ("node", node)]
            .iter()
            .all(|(f, cn)| {
                run(key(&format!("{f}.key")))
                    && openssl(
                        dir,
                        &[
                            "req",
                            "-new",
                            "-key",
                            &format!("{f}.key"),
                            "-out",
                            &format!("{f}.csr"),
                            "-subj",
                            &format!("/CN={cn}"),
                        ],
                    )
                    && openssl(
                        dir,
                        &[
                            "x509",
                            "-req",
                            "-in",
                            &format!("{f}.csr"),
                            "-CA",
                            "ca.pem",
                            "-CAkey",
                            "ca.key",
                            "-CAcreateserial",
                            "-days",
                            "2",
                            "-extfile",
                            &format!("{f}.ext"),
                            "-out",
                            &format!("{f}.pem"),
                        ],
                    )
            });
    ok.then(|| Pki {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        node_cert: dir.join("node.pem"),
        node_key: dir.join("node.key"),
    })
}

/// What the stand-in saw and what it will say.
#[derive(Debug)]
pub struct NodeApi {
    pub addr: SocketAddr,
    /// Bodies of `PUT /v1/nodes/{node}`.
    pub registrations: Mutex<Vec<serde_json::Value>>,
    /// The `since` of each watch.
    pub watches: Mutex<Vec<String>>,
    /// Bodies of `PUT /v1/nodes/{node}/status`.
    pub statuses: Mutex<Vec<serde_json::Value>>,
    /// Lines the next watch stream starts with (a heartbeat at `revision` if none).
    greeting: Mutex<Vec<String>>,
    /// The revision heartbeats announce.
    revision: AtomicU64,
    /// Answer 503 to everything.
    refuse: AtomicBool,
    live: broadcast::Sender<String>,
}

impl NodeApi {
    /// The next watch stream starts with these lines.
    pub fn greet(&self, lines: &[String]) {
        *self.greeting.lock().unwrap() = lines.to_vec();
    }

    /// Sends a line on the open watch stream(s); heartbeats announce `revision` from now on.
    pub fn push(&self, line: String, revision: u64) {
        self.revision.store(revision, Ordering::SeqCst);
        let _ = self.live.send(line);
    }

    /// Sets the revision heartbeats announce.
    pub fn set_revision(&self, revision: u64) {
        self.revision.store(revision, Ordering::SeqCst);
    }

    /// Whether to answer every request with 503 (a controller whose store is down).
    pub fn refuse(&self, on: bool) {
        self.refuse.store(on, Ordering::SeqCst);
    }

    pub fn last_status(&self) -> Option<serde_json::Value> {
        self.statuses.lock().unwrap().last().cloned()
    }

    pub fn last_since(&self) -> Option<String> {
        self.watches.lock().unwrap().last().cloned()
    }
}

/// Starts the stand-in for `node` on 127.0.0.1 in namespace `ns` (on a thread of its own that
/// lives as long as the test process).
pub fn start(ns: &str, node: &str, pki: &Pki) -> Arc<NodeApi> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let certs: Vec<_> = CertificateDer::pem_file_iter(&pki.server_cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let (tx, rx) = std::sync::mpsc::channel();
    let (ns, node) = (ns.to_owned(), node.to_owned());
    std::thread::spawn(move || {
        weft_dataplane_io::sys::netns::enter_thread(&ns).expect("enter namespace");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let api = Arc::new(NodeApi {
                addr: listener.local_addr().unwrap(),
                registrations: Mutex::default(),
                watches: Mutex::default(),
                statuses: Mutex::default(),
                greeting: Mutex::default(),
                revision: AtomicU64::new(0),
                refuse: AtomicBool::new(false),
                live: broadcast::channel(64).0,
            });
            tx.send(api.clone()).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (api, acceptor, node) = (api.clone(), acceptor.clone(), node.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = serve(tls, &api, &node).await;
                    }
                });
            }
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    api: &NodeApi,
    node: &str,
) -> std::io::Result<()> {
    // The request head, then a body of Content-Length bytes.
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        if n == 0 || buf.len() > 65536 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut words = head.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let json = || serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let base = format!("/v1/nodes/{node}");
    let reply = |status: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    if api.refuse.load(Ordering::SeqCst) {
        let r = reply(
            "503 Service Unavailable",
            r#"{"error": "store unavailable"}"#,
        );
        return s.write_all(r.as_bytes()).await;
    }
    let revision = api.revision.load(Ordering::SeqCst);
    if method == "PUT" && target == base {
        api.registrations.lock().unwrap().push(json());
        let r = reply(
            "200 OK",
            &format!(r#"{{"node": "{node}", "revision": {revision}}}"#),
        );
        return s.write_all(r.as_bytes()).await;
    }
    if method == "PUT" && target == format!("{base}/status") {
        api.statuses.lock().unwrap().push(json());
        let r = "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n";
        return s.write_all(r.as_bytes()).await;
    }
    let Some(since) = target.strip_prefix(&format!("{base}/config?since=")) else {
        let r = reply("404 Not Found", r#"{"error": "no such thing"}"#);
        return s.write_all(r.as_bytes()).await;
    };
    let mut live = api.live.subscribe();
    api.watches.lock().unwrap().push(since.to_owned());
    let greeting = std::mem::take(&mut *api.greeting.lock().unwrap());
    let heartbeat = || {
        format!(
            r#"{{"type": "heartbeat", "revision": {}}}"#,
            api.revision.load(Ordering::SeqCst)
        )
    };
    // A body that ends when the connection does (no length, no chunking).
    s.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\nconnection: close\r\n\r\n",
    )
    .await?;
    if greeting.is_empty() {
        s.write_all(format!("{}\n", heartbeat()).as_bytes()).await?;
    }
    for line in greeting {
        s.write_all(format!("{line}\n").as_bytes()).await?;
    }
    s.flush().await?;
    loop {
        let line = match tokio::time::timeout(Duration::from_secs(2), live.recv()).await {
            Ok(Ok(line)) => line,
            Ok(Err(_)) => return Ok(()),
            Err(_) => heartbeat(),
        };
        s.write_all(format!("{line}\n").as_bytes()).await?;
        s.flush().await?;
    }
}
