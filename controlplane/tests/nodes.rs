//! The node API over mutual TLS, in process: registration, the compiler's output for
//! hypervisors and a router node, watch streams (snapshot, deltas, heartbeat, catch-up),
//! status reports, and one node's certificate refused another node's configuration.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use weft_controlplane::api::ApiConfig;
use weft_controlplane::auth::AuthConfig;
use weft_controlplane::compile::Compiler;
use weft_controlplane::model::ProjectId;
use weft_controlplane::nodeapi::WatchMessage;
use weft_controlplane::pki::{self, Subject};
use weft_controlplane::store::StoreOptions;
use weft_controlplane::{ControllerConfig, NodeApiConfig, Server};

fn node_client(pki_dir: &Path, node: &str) -> reqwest::Client {
    let tls = pki::client_config(
        &pki_dir.join(pki::CA_CERT),
        &pki_dir.join(format!("{node}.pem")),
        &pki_dir.join(format!("{node}.key")),
    )
    .unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap()
}

/// A watch stream, read line by line.
struct Watch {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Watch {
    async fn open(c: &reqwest::Client, base: &str, node: &str, since: u64) -> Watch {
        let resp = c
            .get(format!("{base}/v1/nodes/{node}/config?since={since}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        Watch {
            resp,
            buf: Vec::new(),
        }
    }

    async fn next(&mut self) -> WatchMessage {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return serde_json::from_slice(&line).unwrap();
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .expect("a message within 20 s")
                .unwrap()
                .expect("stream open");
            self.buf.extend_from_slice(&chunk);
        }
    }

    /// Next message that is not a heartbeat.
    async fn change(&mut self) -> WatchMessage {
        for _ in 0..5 {
            match self.next().await {
                WatchMessage::Heartbeat { .. } => continue,
                m => return m,
            }
        }
        panic!("only heartbeats");
    }
}

struct Neutron {
    c: reqwest::Client,
    url: String,
}

impl Neutron {
    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .c
            .request(method, format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(s.is_success(), "{path}: {s} {v}");
        v
    }
    async fn post(&self, path: &str, body: Value) -> Value {
        self.send(reqwest::Method::POST, path, body).await
    }
    async fn put(&self, path: &str, body: Value) -> Value {
        self.send(reqwest::Method::PUT, path, body).await
    }
    async fn get(&self, path: &str) -> Value {
        self.c
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
    async fn port(&self, net: &str, host: &str) -> Value {
        self.post(
            "/v2.0/ports",
            json!({"port": {"network_id": net, "binding:host_id": host, "device_owner": "compute:nova"}}),
        )
        .await["port"]
            .clone()
    }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_get_their_own_configuration_and_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    pki::init_ca(&pki_dir).unwrap();
    pki::issue(&pki_dir, &Subject::Server(vec!["127.0.0.1".into()]), None).unwrap();
    for n in ["hv1", "hv2", "rt1"] {
        pki::issue(&pki_dir, &Subject::Node(n.into()), None).unwrap();
    }
    // A certificate from another CA.
    let other = dir.path().join("other");
    pki::init_ca(&other).unwrap();
    pki::issue(&other, &Subject::Node("hv1".into()), None).unwrap();

    let server = Server::bind(ControllerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        db_url: format!("sqlite://{}/c.db", dir.path().display()),
        auth: AuthConfig::NoAuth(ProjectId::new("demo").unwrap()),
        api: ApiConfig::default(),
        store: StoreOptions { max_connections: 8 },
        node_api: Some(NodeApiConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            pki_dir: pki_dir.clone(),
        }),
    })
    .await
    .unwrap();
    let api_addr: SocketAddr = server.local_addr().unwrap();
    let node_addr = server.node_addr().unwrap();
    let hub = server.hub();
    let store = server.store();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let base = format!("https://127.0.0.1:{}", node_addr.port());
    let neutron = Neutron {
        c: reqwest::Client::new(),
        url: format!("http://{api_addr}"),
    };

    // Only certificates of our CA get in; only for their own node.
    let stranger = node_client(&other, "hv1");
    assert!(
        stranger
            .get(format!("{base}/v1/nodes/hv1/config"))
            .send()
            .await
            .is_err()
    );
    let plain = reqwest::Client::builder()
        .use_preconfigured_tls(
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates({
                let mut r = rustls::RootCertStore::empty();
                for c in rustls::pki_types::CertificateDer::pem_file_iter(pki_dir.join("ca.pem"))
                    .unwrap()
                {
                    r.add(c.unwrap()).unwrap();
                }
                r
            })
            .with_no_client_auth(),
        )
        .build()
        .unwrap();
    assert!(
        plain
            .get(format!("{base}/v1/nodes/hv1/config"))
            .send()
            .await
            .is_err()
    );

    let hv1 = node_client(&pki_dir, "hv1");
    let hv2 = node_client(&pki_dir, "hv2");
    let rt1 = node_client(&pki_dir, "rt1");
    for (c, n, ip, role) in [
        (&hv1, "hv1", "192.168.100.1", "hypervisor"),
        (&hv2, "hv2", "192.168.100.2", "hypervisor"),
        (&rt1, "rt1", "192.168.100.3", "router"),
    ] {
        let r = c
            .put(format!("{base}/v1/nodes/{n}"))
            .json(&json!({"vtep_ip": ip, "roles": [role]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    // Bad registrations are refused with a reason.
    let r = hv1
        .put(format!("{base}/v1/nodes/hv1"))
        .json(&json!({"vtep_ip": "0.0.0.0", "roles": ["hypervisor"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("vtep_ip"));
    for uplinks in [
        json!({"public": "an-interface-name-too-long"}),
        json!({"public": "eth1", "other": "eth1"}),
        json!({"": "eth1"}),
    ] {
        let r = rt1
            .put(format!("{base}/v1/nodes/rt1"))
            .json(&json!({"vtep_ip": "192.168.100.3", "roles": ["router"], "uplinks": uplinks}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{uplinks}");
        assert!(r.text().await.unwrap().contains("uplinks"));
    }
    // Uplinks are stored with the node.
    let r = rt1
        .put(format!("{base}/v1/nodes/rt1"))
        .json(&json!({"vtep_ip": "192.168.100.3", "roles": ["router"], "uplinks": {"public": "eth1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let snap = store.snapshot().await.unwrap();
    let rt1_node = snap.nodes.iter().find(|n| n.name == "rt1").unwrap();
    assert_eq!(
        rt1_node.uplinks.get("public").map(String::as_str),
        Some("eth1")
    );
    // Another node's configuration, registration or status: 403.
    for r in [
        hv1.get(format!("{base}/v1/nodes/hv2/config"))
            .send()
            .await
            .unwrap(),
        hv1.put(format!("{base}/v1/nodes/hv2"))
            .json(&json!({"vtep_ip": "192.168.100.9", "roles": ["hypervisor"]}))
            .send()
            .await
            .unwrap(),
        hv1.put(format!("{base}/v1/nodes/hv2/status"))
            .json(&json!({"revision": 0, "ports": {}}))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }

    // Two networks joined by a router; a VM on each hypervisor.
    let net1 = s(&neutron
        .post("/v2.0/networks", json!({"network": {"name": "n1"}}))
        .await["network"]["id"]);
    let net2 = s(&neutron
        .post("/v2.0/networks", json!({"network": {"name": "n2"}}))
        .await["network"]["id"]);
    let sub1 = s(&neutron
        .post("/v2.0/subnets", json!({"subnet": {"network_id": net1, "ip_version": 4, "cidr": "10.0.0.0/24", "dns_nameservers": ["10.0.0.53"]}}))
        .await["subnet"]["id"]);
    let sub2 = s(&neutron
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net2, "ip_version": 4, "cidr": "10.0.1.0/24"}}),
        )
        .await["subnet"]["id"]);
    // An IPv6 subnet on net1 too: Neutron gives the router a second port on net1.
    let sub1v6 = s(&neutron
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net1, "ip_version": 6, "cidr": "fd00:a::/64",
                   "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}),
        )
        .await["subnet"]["id"]);
    let router = s(&neutron
        .post("/v2.0/routers", json!({"router": {"name": "r1"}}))
        .await["router"]["id"]);
    for sub in [&sub1, &sub1v6, &sub2] {
        neutron
            .put(
                &format!("/v2.0/routers/{router}/add_router_interface"),
                json!({"subnet_id": sub}),
            )
            .await;
    }
    let p1 = neutron.port(&net1, "hv1").await;
    let p2 = neutron.port(&net2, "hv2").await;
    let p1_id = s(&p1["id"]);

    // Let the compiler catch up with every change so far: what hv1 must end up with.
    let latest = store.subscribe().borrow().0;
    assert!(hub.wait_compiled(latest).await);
    let want = hub.config("hv1").unwrap().revision;
    let mut w1 = Watch::open(&hv1, &base, "hv1", 0).await;
    let WatchMessage::Snapshot {
        revision,
        config: mut cfg1,
    } = w1.change().await
    else {
        panic!("a stream from 0 starts with a snapshot");
    };
    assert_eq!(revision, cfg1.revision);
    // The snapshot is at `want` already; deltas would follow if it were not.
    for _ in 0..10 {
        if cfg1.revision == want {
            break;
        }
        let WatchMessage::Delta {
            from,
            revision,
            delta,
        } = w1.change().await
        else {
            panic!("expected a delta");
        };
        assert_eq!(from, cfg1.revision);
        delta.apply(&mut cfg1).unwrap();
        cfg1.revision = revision;
    }
    // hv1: its port on net1, the router interface behind rt1, nothing of net2.
    assert_eq!(cfg1.ports.len(), 1, "{cfg1:?}");
    assert_eq!(cfg1.ports[0].name, p1_id);
    assert_eq!(cfg1.ports[0].interface, format!("tap{}", &p1_id[..11]));
    let p1_ips: Vec<std::net::IpAddr> = p1["fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ip_address"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(p1_ips.len(), 2, "IPv4 and SLAAC: {p1}");
    assert_eq!(cfg1.ports[0].ips, p1_ips);
    assert_eq!(cfg1.segments.len(), 1);
    let seg = &cfg1.segments[0];
    assert_eq!(seg.name, net1);
    assert_eq!(seg.mtu, Some(1450));
    assert!(seg.gateway_mac.is_some(), "the router is placed on rt1");
    assert_eq!(seg.subnets[0].gateway_ip, Some("10.0.0.1".parse().unwrap()));
    assert!(seg.subnets[0].enable_dhcp);
    assert_eq!(
        seg.subnets[0].dns_nameservers,
        vec!["10.0.0.53".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(cfg1.remote_vteps.len(), 1);
    assert_eq!(
        cfg1.remote_vteps[0].ip,
        "192.168.100.3".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(cfg1.remote_bindings.len(), 1);
    assert_eq!(Some(cfg1.remote_bindings[0].mac), seg.gateway_mac);
    assert!(cfg1.routers.is_empty());
    cfg1.validate().unwrap();

    // rt1: the router with both interfaces, both VMs as remote bindings.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let rcfg = loop {
        let c = hub.config("rt1").unwrap();
        if c.remote_bindings.len() >= 2 || tokio::time::Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(rcfg.routers.len(), 1);
    assert_eq!(rcfg.routers[0].name, router);
    // One interface per network: net1's two router ports are merged.
    assert_eq!(rcfg.routers[0].interfaces.len(), 2);
    assert!(
        rcfg.routers[0]
            .interfaces
            .iter()
            .any(|i| i.addresses.len() == 2),
        "{rcfg:?}"
    );
    assert_eq!(rcfg.remote_bindings.len(), 2);
    assert_eq!(rcfg.remote_vteps.len(), 2);
    assert!(rcfg.ports.is_empty());

    // A second VM on net1 at hv2: hv1 gets a delta (a binding and hv2 as a VTEP).
    let p3 = neutron.port(&net1, "hv2").await;
    let before = cfg1.revision;
    let WatchMessage::Delta {
        from,
        revision,
        delta,
    } = w1.change().await
    else {
        panic!("expected a delta");
    };
    assert_eq!(from, before);
    assert!(revision > before);
    assert_eq!(delta.remote_bindings.upsert.len(), 1, "{delta:?}");
    assert_eq!(
        delta.remote_bindings.upsert[0].mac.to_string(),
        s(&p3["mac_address"])
    );
    delta.apply(&mut cfg1).unwrap();
    cfg1.revision = revision;
    assert_eq!(
        *hub.config("hv1").unwrap(),
        cfg1,
        "delta applied = what the controller has"
    );

    // A change on net2 only does not touch hv1: the compiler does not even recompile it (a
    // compiler of our own, fed the same snapshots and change records as the controller's),
    // and the hub keeps its revision.
    let mut compiler = Compiler::new();
    let before_snap = store.snapshot().await.unwrap();
    assert_eq!(
        compiler.update(&before_snap, None).len(),
        3,
        "first run: every node"
    );
    let hv1_rev = hub.revisions()["hv1"];
    let hv2_rev = hub.revisions()["hv2"];
    // (Without port security: a member of the default group would change the remote-group
    // addresses hv1's port filters on, and rightly recompile hv1.)
    let _p4 = neutron
        .post(
            "/v2.0/ports",
            json!({"port": {"network_id": net2, "binding:host_id": "hv2", "device_owner": "compute:nova", "port_security_enabled": false}}),
        )
        .await;
    let snap = store.snapshot().await.unwrap();
    let records = store
        .changes_since(before_snap.revision, 1000)
        .await
        .unwrap();
    assert!(!records.is_empty());
    let mut recompiled: Vec<String> = compiler
        .update(&snap, Some(&records))
        .into_iter()
        .map(|c| c.node)
        .collect();
    recompiled.sort();
    assert_eq!(recompiled, ["hv2", "rt1"], "only the nodes on net2");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while hub.revisions()["hv2"] == hv2_rev {
        assert!(tokio::time::Instant::now() < deadline, "hv2 recompiled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hub.revisions()["hv1"], hv1_rev);

    // Reconnecting: in sync → a heartbeat first; from an older revision → the deltas; from
    // an unknown revision → a snapshot.
    drop(w1);
    let mut w = Watch::open(&hv1, &base, "hv1", cfg1.revision).await;
    assert_eq!(
        w.next().await,
        WatchMessage::Heartbeat {
            revision: cfg1.revision
        }
    );
    let mut w = Watch::open(&hv1, &base, "hv1", before).await;
    assert!(matches!(w.next().await, WatchMessage::Delta { from, .. } if from == before));
    let mut w = Watch::open(&hv1, &base, "hv1", before + 1_000_000).await;
    let WatchMessage::Snapshot { config, .. } = w.next().await else {
        panic!("a snapshot");
    };
    assert_eq!(config, cfg1);
    let r = hv1
        .get(format!("{base}/v1/nodes/hv1/config?since=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Status: hv1 sets its own port ACTIVE, not hv2's.
    let r = hv1
        .put(format!("{base}/v1/nodes/hv1/status"))
        .json(&json!({"revision": cfg1.revision, "ports": {p1_id.clone(): "ACTIVE", s(&p2["id"]): "ACTIVE"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        neutron.get(&format!("/v2.0/ports/{p1_id}")).await["port"]["status"],
        "ACTIVE"
    );
    assert_eq!(
        neutron.get(&format!("/v2.0/ports/{}", s(&p2["id"]))).await["port"]["status"],
        "DOWN"
    );
    // The same report again changes nothing (no write at all); a change is written.
    for (st, want) in [("ACTIVE", "ACTIVE"), ("DOWN", "DOWN"), ("ACTIVE", "ACTIVE")] {
        let r = hv1
            .put(format!("{base}/v1/nodes/hv1/status"))
            .json(&json!({"revision": cfg1.revision, "ports": {p1_id.clone(): st}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(
            neutron.get(&format!("/v2.0/ports/{p1_id}")).await["port"]["status"],
            want
        );
    }
    let r = hv1
        .put(format!("{base}/v1/nodes/hv1/status"))
        .json(&json!({"revision": 1, "ports": {p1_id.clone(): "SLEEPY"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("controller stops")
        .unwrap()
        .unwrap();
}
