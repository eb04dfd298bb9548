//! Logging: every log line written while serving a request carries its request id. In its own
//! test binary: tracing caches per-callsite interest process-wide, and tests running in
//! parallel without a subscriber would disable the request span's callsite.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use weft_controlplane::api::ApiConfig;
use weft_controlplane::auth::AuthConfig;
use weft_controlplane::model::ProjectId;
use weft_controlplane::store::StoreOptions;
use weft_controlplane::{ControllerConfig, Server};

/// A writer that collects log output.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Current-thread runtime: the server's tasks run on this thread, under this subscriber.
#[tokio::test]
async fn every_log_line_of_a_request_carries_its_id() {
    let cap = Capture::default();
    let c2 = cap.clone();
    let sub = tracing_subscriber::fmt()
        .with_env_filter("weft_controlplane=debug")
        .with_ansi(false)
        .with_writer(move || c2.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(sub);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::bind(ControllerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        db_url: format!("sqlite://{}/l.db", dir.path().display()),
        auth: AuthConfig::NoAuth(ProjectId::new("default").unwrap()),
        api: ApiConfig::default(),
        store: StoreOptions::default(),
        node_api: None,
    })
    .await
    .unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    let rid = "req-11111111-2222-4333-8444-555555555555";
    let r = reqwest::Client::new()
        .post(format!("{url}/v2.0/networks"))
        .header("X-OpenStack-Request-ID", rid)
        .json(&json!({"network": {"name": "logged"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = reqwest::Client::new()
        .post(format!("{url}/v2.0/networks"))
        .header("X-OpenStack-Request-ID", rid)
        .json(&json!({"network": {"mtu": "big"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let _ = stop.send(());
    let _ = task.await;
    let text = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("network created") || l.contains("served") || l.contains("refused"))
        .collect();
    assert!(lines.len() >= 4, "{text}");
    for l in lines {
        assert!(l.contains(rid), "log line without the request id: {l}");
    }
}
