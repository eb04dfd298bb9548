//! Helpers of the control-plane benches (`weft-bench-api`, `weft-bench-nodes`): the controller
//! in this process, Neutron requests over HTTP, percentiles.
//!
//! Errors are strings: these run inside bench binaries, which print them and exit.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use weft_controlplane::api::ApiConfig;
use weft_controlplane::auth::AuthConfig;
use weft_controlplane::model::ProjectId;
use weft_controlplane::nodeapi::Hub;
use weft_controlplane::store::StoreOptions;
use weft_controlplane::{ControllerConfig, NodeApiConfig, Server, Store};

/// A controller running in this process (`--auth noauth`, project `bench`) on 127.0.0.1 and
/// ephemeral ports.
#[derive(Debug)]
pub struct Controller {
    /// The Neutron API's base URL, `http://127.0.0.1:PORT`.
    pub base: String,
    /// The node API's base URL, `https://127.0.0.1:PORT`, when it is on.
    pub node_base: Option<String>,
    /// The store.
    pub store: Store,
    /// The compiled node configurations.
    pub hub: std::sync::Arc<Hub>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), weft_controlplane::ServerError>>,
}

impl Controller {
    /// Opens `db_url` and serves the Neutron API, plus the node API with the PKI in `pki_dir`
    /// (its `ca.pem`, `server.pem` for 127.0.0.1, `server.key`) when given.
    pub async fn start(
        db_url: &str,
        pki_dir: Option<PathBuf>,
        max_connections: u32,
    ) -> Result<Controller, String> {
        let any = |s: &str| s.parse().map_err(|e| format!("{s}: {e}"));
        let server = Server::bind(ControllerConfig {
            listen: any("127.0.0.1:0")?,
            db_url: db_url.to_owned(),
            auth: AuthConfig::NoAuth(ProjectId::new("bench").map_err(|e| e.to_string())?),
            api: ApiConfig::default(),
            store: StoreOptions { max_connections },
            node_api: match pki_dir {
                Some(pki_dir) => Some(NodeApiConfig {
                    listen: any("127.0.0.1:0")?,
                    pki_dir,
                }),
                None => None,
            },
        })
        .await
        .map_err(|e| e.to_string())?;
        let base = format!("http://{}", server.local_addr().map_err(|e| e.to_string())?);
        let node_base = server
            .node_addr()
            .map(|a| format!("https://127.0.0.1:{}", a.port()));
        let store = server.store();
        let hub = server.hub();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Ok(Controller {
            base,
            node_base,
            store,
            hub,
            stop,
            task,
        })
    }

    /// Stops serving and waits (at most 30 s) for the server to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

/// `POST url` with a JSON body; the answer's JSON, or the status and body as the error.
pub async fn post(c: &reqwest::Client, url: &str, body: Value) -> Result<Value, String> {
    let r = c
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{url}: {status}: {v}"));
    }
    Ok(v)
}

/// A network with one IPv4 subnet `cidr`: (network id, subnet id).
pub async fn network(
    c: &reqwest::Client,
    base: &str,
    name: &str,
    cidr: &str,
) -> Result<(String, String), String> {
    let v = post(
        c,
        &format!("{base}/v2.0/networks"),
        json!({"network": {"name": name}}),
    )
    .await?;
    let net = v["network"]["id"]
        .as_str()
        .ok_or("no network id")?
        .to_owned();
    let v = post(
        c,
        &format!("{base}/v2.0/subnets"),
        json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": cidr}}),
    )
    .await?;
    let sub = v["subnet"]["id"].as_str().ok_or("no subnet id")?.to_owned();
    Ok((net, sub))
}

/// The nearest-rank percentile `per_mille`/1000 of sorted latencies, in milliseconds.
pub fn pct(sorted: &[Duration], per_mille: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = (sorted.len() - 1) * per_mille.min(1000) / 1000;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// p50, p99 and max of latencies (sorted here), in milliseconds rounded to 0.01 ms, and
/// their count.
pub fn summary(lat: &mut [Duration]) -> Value {
    lat.sort();
    let r = |ms: f64| (ms * 100.0).round() / 100.0;
    json!({
        "count": lat.len(),
        "p50": r(pct(lat, 500)),
        "p99": r(pct(lat, 990)),
        "max": r(pct(lat, 1000)),
    })
}
