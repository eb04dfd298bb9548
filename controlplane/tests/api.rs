//! API tests of the controller over HTTP, in process, on SQLite and (when
//! `WEFT_TEST_POSTGRES_URL` names a PostgreSQL server where databases may be created) on
//! PostgreSQL too: each test gets a fresh database.

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};
use weft_controlplane::api::ApiConfig;
use weft_controlplane::auth::AuthConfig;
use weft_controlplane::model::{ProjectId, Revision};
use weft_controlplane::store::{Store, StoreOptions};
use weft_controlplane::{ControllerConfig, Server};

struct Ctl {
    url: String,
    store: Store,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Ctl {
    async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), t).await;
        }
    }
}

/// Database URLs to run a test on: a fresh SQLite file, and a fresh PostgreSQL database if
/// `WEFT_TEST_POSTGRES_URL` is set.
async fn backends(dir: &std::path::Path) -> Vec<String> {
    let mut v = vec![format!(
        "sqlite://{}/t-{}.db",
        dir.display(),
        uuid::Uuid::new_v4()
    )];
    if let Ok(admin) = std::env::var("WEFT_TEST_POSTGRES_URL") {
        sqlx::any::install_default_drivers();
        let name = format!("weft_test_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::AnyPool::connect(&admin)
            .await
            .expect("connect to WEFT_TEST_POSTGRES_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .expect("create database");
        pool.close().await;
        let (base, query) = admin
            .split_once('?')
            .map_or((admin.as_str(), ""), |(b, q)| (b, q));
        let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
        let url = if query.is_empty() {
            format!("{base}/{name}")
        } else {
            format!("{base}/{name}?{query}")
        };
        v.push(url);
    }
    v
}

async fn start(db: &str, auth: AuthConfig) -> Ctl {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ControllerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        db_url: db.to_owned(),
        auth,
        api: ApiConfig::default(),
        store: StoreOptions { max_connections: 8 },
        node_api: None,
    };
    let server = Server::bind(cfg).await.expect("bind");
    let addr: SocketAddr = server.local_addr().unwrap();
    let store = server.store();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
    });
    Ctl {
        url: format!("http://{addr}"),
        store,
        stop: Some(tx),
        task: Some(task),
        _dir: dir,
    }
}

fn noauth() -> AuthConfig {
    AuthConfig::NoAuth(ProjectId::new("default").unwrap())
}

#[derive(Clone)]
struct Api {
    c: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Api {
    fn new(url: &str, token: Option<&str>) -> Api {
        Api {
            c: reqwest::Client::new(),
            url: url.to_owned(),
            token: token.map(str::to_owned),
        }
    }
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.c.request(method, format!("{}{path}", self.url));
        if let Some(t) = &self.token {
            r = r.header("X-Auth-Token", t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, b: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(b)).await
    }
    async fn put(&self, path: &str, b: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, Some(b)).await
    }
    async fn delete(&self, path: &str) -> StatusCode {
        self.call(reqwest::Method::DELETE, path, None).await.0
    }
}

fn err_type(v: &Value) -> &str {
    v["NeutronError"]["type"].as_str().unwrap_or("")
}

fn err_msg(v: &Value) -> &str {
    v["NeutronError"]["message"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crud_validation_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    for db in backends(dir.path()).await {
        let ctl = start(&db, noauth()).await;
        let api = Api::new(&ctl.url, None);
        let (s, v) = api.get("/").await;
        assert_eq!(s, 200);
        assert_eq!(
            v["versions"][0]["links"][0]["href"],
            format!("{}/v2.0/", ctl.url)
        );
        let (s, v) = api.get("/v2.0/extensions/external-net").await;
        assert_eq!(
            (s, v["extension"]["name"].as_str()),
            (StatusCode::OK, Some("Neutron external network"))
        );
        assert_eq!(api.get("/v2.0/extensions/qos").await.0, 404);

        let (s, v) = api
            .post("/v2.0/networks", json!({"network": {"name": "n1"}}))
            .await;
        assert_eq!(s, 201, "{v}");
        let net = v["network"]["id"].as_str().unwrap().to_owned();
        assert_eq!(v["network"]["provider:network_type"], "vxlan");
        assert!(v["network"]["provider:segmentation_id"].as_u64().unwrap() >= 1);
        assert_eq!(v["network"]["mtu"], 1450);
        assert_eq!(v["network"]["revision_number"], 0);
        // Unknown ids and names are 404 (find-by-name falls back to a list).
        let (s, v) = api.get("/v2.0/networks/n1").await;
        assert_eq!(
            (s, err_type(&v)),
            (StatusCode::NOT_FOUND, "NetworkNotFound")
        );
        let (s, v) = api
            .get(&format!("/v2.0/networks/{}", uuid::Uuid::new_v4()))
            .await;
        assert_eq!(s, 404, "{v}");
        let (_, v) = api.get("/v2.0/networks?name=n1&fields=id").await;
        assert_eq!(v["networks"], json!([{"id": net}]));
        // Bad bodies name the attribute and store nothing.
        let (s, v) = api
            .post(
                "/v2.0/networks",
                json!({"network": {"name": "x", "colour": "red"}}),
            )
            .await;
        assert_eq!(s, 400);
        assert!(err_msg(&v).contains("colour"), "{v}");
        let (s, v) = api
            .post(
                "/v2.0/networks",
                json!({"network": {"admin_state_up": "perhaps"}}),
            )
            .await;
        assert_eq!(s, 400);
        assert!(err_msg(&v).contains("admin_state_up"), "{v}");
        let (s, _) = api.post("/v2.0/networks", json!("not an object")).await;
        assert_eq!(s, 400);
        let (s, v) = api
            .post(
                "/v2.0/networks",
                json!({"networks": [{"name": "bulk-ok"}, {"name": "bulk-bad", "mtu": 100000}]}),
            )
            .await;
        assert_eq!(s, 400, "{v}");
        let (_, v) = api.get("/v2.0/networks?name=bulk-ok").await;
        assert_eq!(
            v["networks"],
            json!([]),
            "a failed bulk request stored nothing"
        );
        let (s, v) = api
            .put(
                &format!("/v2.0/networks/{net}"),
                json!({"network": {"name": "n1b"}}),
            )
            .await;
        assert_eq!(
            (s, v["network"]["revision_number"].as_u64()),
            (StatusCode::OK, Some(1))
        );

        // Subnets: CIDR checks, overlap, defaults.
        let (s, v) = api
            .post(
                "/v2.0/subnets",
                json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.0.0.0/33"}}),
            )
            .await;
        assert_eq!(s, 400);
        assert!(err_msg(&v).contains("cidr"), "{v}");
        let (s, v) = api
            .post(
                "/v2.0/subnets",
                json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.0.0.1/24"}}),
            )
            .await;
        assert_eq!(s, 400);
        assert!(err_msg(&v).contains("10.0.0.0/24"), "{v}");
        let (s, v) = api
            .post("/v2.0/subnets", json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.0.0.0/24", "dns_nameservers": ["10.0.0.53"], "host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}]}}))
            .await;
        assert_eq!(s, 201, "{v}");
        let sub = v["subnet"]["id"].as_str().unwrap().to_owned();
        assert_eq!(v["subnet"]["gateway_ip"], "10.0.0.1");
        assert_eq!(
            v["subnet"]["allocation_pools"],
            json!([{"start": "10.0.0.2", "end": "10.0.0.254"}])
        );
        let (s, v) = api
            .post(
                "/v2.0/subnets",
                json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.0.0.128/25"}}),
            )
            .await;
        assert_eq!(s, 400);
        assert!(err_msg(&v).contains("overlaps"), "{v}");
        let (s, _) = api
            .post("/v2.0/subnets", json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.1.0.0/24", "gateway_ip": "10.1.0.5", "allocation_pools": [{"start": "10.1.0.2", "end": "10.1.0.10"}]}}))
            .await;
        assert_eq!(s, 409, "gateway inside a pool");

        // Ports: addresses, MACs, protection of the gateway.
        let (s, v) = api
            .post(
                "/v2.0/ports",
                json!({"port": {"network_id": net, "name": "p1"}}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let p1 = v["port"]["id"].as_str().unwrap().to_owned();
        assert_eq!(v["port"]["fixed_ips"][0]["ip_address"], "10.0.0.2");
        assert_eq!(v["port"]["status"], "DOWN");
        assert_eq!(
            v["port"]["security_groups"].as_array().unwrap().len(),
            1,
            "the default group"
        );
        let mac = v["port"]["mac_address"].as_str().unwrap().to_owned();
        let (s, v) = api
            .post(
                "/v2.0/ports",
                json!({"port": {"network_id": net, "mac_address": mac}}),
            )
            .await;
        assert_eq!((s, err_type(&v)), (StatusCode::CONFLICT, "MacAddressInUse"));
        let (s, v) = api
            .post(
                "/v2.0/ports",
                json!({"port": {"network_id": net, "fixed_ips": [{"ip_address": "10.9.0.5"}]}}),
            )
            .await;
        assert_eq!(s, 400, "{v}");
        let (s, v) = api
            .post("/v2.0/ports", json!({"port": {"network_id": net, "fixed_ips": [{"subnet_id": sub, "ip_address": "10.0.0.1"}]}}))
            .await;
        assert_eq!(s, 400, "the gateway is for routers: {v}");
        let (s, v) = api
            .post("/v2.0/ports", json!({"port": {"network_id": net, "fixed_ips": [{"subnet_id": sub, "ip_address": "10.0.0.2"}]}}))
            .await;
        assert_eq!(
            (s, err_type(&v)),
            (StatusCode::CONFLICT, "IpAddressAlreadyAllocated")
        );
        let (s, v) = api
            .post("/v2.0/ports", json!({"port": {"network_id": net, "fixed_ips": [{"subnet_id": sub, "ip_address": "10.0.0.200"}], "allowed_address_pairs": [{"ip_address": "10.0.0.0/28"}]}}))
            .await;
        assert_eq!(s, 201, "{v}");
        let p2 = v["port"]["id"].as_str().unwrap().to_owned();
        let (_, v) = api
            .get("/v2.0/ports?fixed_ips=ip_address%3D10.0.0.200&fields=id")
            .await;
        assert_eq!(v["ports"], json!([{"id": p2}]));
        // Subnet in use; network in use.
        assert_eq!(api.delete(&format!("/v2.0/subnets/{sub}")).await, 409);
        assert_eq!(api.delete(&format!("/v2.0/networks/{net}")).await, 409);
        // Sorting and pagination.
        let (_, v) = api
            .get("/v2.0/ports?sort_key=name&sort_dir=desc&limit=1&fields=name")
            .await;
        assert_eq!(v["ports"].as_array().unwrap().len(), 1);
        assert!(
            v["ports_links"][0]["href"]
                .as_str()
                .unwrap()
                .contains("marker="),
            "{v}"
        );
        // Release on delete: the address is free again.
        assert_eq!(api.delete(&format!("/v2.0/ports/{p1}")).await, 204);
        let (_, v) = api
            .post("/v2.0/ports", json!({"port": {"network_id": net}}))
            .await;
        assert_eq!(v["port"]["fixed_ips"][0]["ip_address"], "10.0.0.2");
        // Tags.
        let (s, v) = api
            .put(
                &format!("/v2.0/networks/{net}/tags"),
                json!({"tags": ["red", "blue", "red"]}),
            )
            .await;
        assert_eq!(
            (s, v["tags"].clone()),
            (StatusCode::OK, json!(["blue", "red"]))
        );
        let (_, v) = api.get("/v2.0/networks?tags=red&fields=id").await;
        assert_eq!(v["networks"], json!([{"id": net}]));
        // Every response has a request id; a well-formed one sent by the client is kept.
        let rid = "req-0b0e8e2a-3b1c-4c4d-9e5f-6a7b8c9d0e1f";
        let r = reqwest::Client::new()
            .get(format!("{}/v2.0/networks", ctl.url))
            .header("X-OpenStack-Request-ID", rid)
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-openstack-request-id"], rid);
        let r = reqwest::Client::new()
            .get(format!("{}/nope", ctl.url))
            .header("X-OpenStack-Request-ID", "bogus")
            .send()
            .await
            .unwrap();
        let got = r.headers()["x-openstack-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(got.starts_with("req-") && got != "bogus");
        // The revision log saw it all, in order, with request ids.
        let changes = ctl.store.changes_since(Revision(0), 10_000).await.unwrap();
        assert!(changes.len() > 10);
        assert!(changes.windows(2).all(|w| w[0].revision < w[1].revision));
        assert!(changes.iter().all(|c| c.request_id.starts_with("req-")));
        let snap = ctl.store.snapshot().await.unwrap();
        assert_eq!(snap.revision, changes.last().unwrap().revision);
        assert_eq!(snap.networks.len(), 1);
        ctl.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_allocation_has_no_duplicates_and_exhausts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for db in backends(dir.path()).await {
        let ctl = start(&db, noauth()).await;
        let api = Api::new(&ctl.url, None);
        let rev = ctl.store.subscribe();
        let (_, v) = api
            .post("/v2.0/networks", json!({"network": {"name": "small"}}))
            .await;
        let net = v["network"]["id"].as_str().unwrap().to_owned();
        let (s, v) = api
            .post("/v2.0/subnets", json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.50.0.0/24", "allocation_pools": [{"start": "10.50.0.10", "end": "10.50.0.109"}]}}))
            .await;
        assert_eq!(s, 201, "{v}");
        assert!(
            rev.has_changed().unwrap(),
            "commits announce the new revision"
        );
        let sub = v["subnet"]["id"].as_str().unwrap().to_owned();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let api = api.clone();
            let net = net.clone();
            tasks.push(tokio::spawn(async move {
                api.post(
                    "/v2.0/ports",
                    json!({"port": {"network_id": net, "name": format!("c{i}")}}),
                )
                .await
            }));
        }
        let mut ok = Vec::new();
        let mut exhausted = 0;
        for t in tasks {
            let (s, v) = t.await.unwrap();
            match s.as_u16() {
                201 => ok.push(
                    v["port"]["fixed_ips"][0]["ip_address"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                ),
                409 => {
                    assert_eq!(err_type(&v), "IpAddressGenerationFailure", "{v}");
                    exhausted += 1;
                }
                other => panic!("unexpected {other}: {v}"),
            }
        }
        let unique: HashSet<&String> = ok.iter().collect();
        assert_eq!(ok.len(), 100, "every pool address handed out ({db})");
        assert_eq!(unique.len(), 100, "no address twice ({db})");
        assert_eq!(exhausted, 100);
        let (_, v) = api
            .get(&format!("/v2.0/network-ip-availabilities/{net}"))
            .await;
        assert_eq!(v["network_ip_availability"]["used_ips"], 100);
        assert_eq!(v["network_ip_availability"]["total_ips"], 100);
        let (_, v) = api
            .get(&format!(
                "/v2.0/weft/ip-allocation-history?subnet_id={sub}&limit=1000"
            ))
            .await;
        let hist = v["ip_allocation_history"].as_array().unwrap();
        assert_eq!(hist.len(), 100);
        assert!(
            hist.iter().all(|h| h["action"] == "allocate"
                && h["request_id"].as_str().unwrap().starts_with("req-"))
        );
        ctl.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_are_isolated_and_readers_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let mut f = std::fs::File::create(&tokens).unwrap();
    writeln!(f, "# token project role\nadm-token admin admin\na-token projA member\nb-token projB member\nar-token projA reader").unwrap();
    for db in backends(dir.path()).await {
        let ctl = start(&db, AuthConfig::Tokens(tokens.clone())).await;
        let admin = Api::new(&ctl.url, Some("adm-token"));
        let a = Api::new(&ctl.url, Some("a-token"));
        let b = Api::new(&ctl.url, Some("b-token"));
        let ar = Api::new(&ctl.url, Some("ar-token"));
        assert_eq!(Api::new(&ctl.url, None).get("/v2.0/networks").await.0, 401);
        assert_eq!(
            Api::new(&ctl.url, Some("wrong"))
                .get("/v2.0/networks")
                .await
                .0,
            401
        );
        assert_eq!(
            Api::new(&ctl.url, None).get("/").await.0,
            200,
            "discovery needs no token"
        );
        let (s, v) = a
            .post("/v2.0/networks", json!({"network": {"name": "a-net"}}))
            .await;
        assert_eq!(s, 201);
        assert!(
            v["network"].get("provider:segmentation_id").is_none(),
            "provider attributes are for admins"
        );
        let net = v["network"]["id"].as_str().unwrap().to_owned();
        let (s, _) = a
            .post(
                "/v2.0/networks",
                json!({"network": {"name": "x", "shared": true}}),
            )
            .await;
        assert_eq!(s, 403);
        let (s, _) = a
            .post(
                "/v2.0/networks",
                json!({"network": {"name": "x", "project_id": "projB"}}),
            )
            .await;
        assert_eq!(s, 403);
        // B sees nothing of A and cannot touch it.
        assert_eq!(b.get(&format!("/v2.0/networks/{net}")).await.0, 404);
        assert_eq!(b.get("/v2.0/networks").await.1["networks"], json!([]));
        assert_eq!(
            b.put(
                &format!("/v2.0/networks/{net}"),
                json!({"network": {"name": "mine"}})
            )
            .await
            .0,
            404
        );
        assert_eq!(b.delete(&format!("/v2.0/networks/{net}")).await, 404);
        assert_eq!(
            b.post("/v2.0/ports", json!({"port": {"network_id": net}}))
                .await
                .0,
            404
        );
        // The reader of A reads but cannot write.
        assert_eq!(ar.get(&format!("/v2.0/networks/{net}")).await.0, 200);
        assert_eq!(
            ar.post("/v2.0/networks", json!({"network": {"name": "r"}}))
                .await
                .0,
            403
        );
        assert_eq!(
            ar.put(
                &format!("/v2.0/networks/{net}"),
                json!({"network": {"name": "r"}})
            )
            .await
            .0,
            403
        );
        assert_eq!(ar.delete(&format!("/v2.0/networks/{net}")).await, 403);
        // Each project gets its own default group; B does not see A's.
        let (_, va) = a.get("/v2.0/security-groups?name=default&fields=id").await;
        let (_, vb) = b.get("/v2.0/security-groups?name=default&fields=id").await;
        assert_eq!(va["security_groups"].as_array().unwrap().len(), 1);
        assert_eq!(vb["security_groups"].as_array().unwrap().len(), 1);
        assert_ne!(va["security_groups"], vb["security_groups"]);
        let (_, v) = a
            .get(&format!(
                "/v2.0/security-groups/{}",
                va["security_groups"][0]["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(
            v["security_group"]["security_group_rules"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
        assert_eq!(
            a.delete(&format!(
                "/v2.0/security-groups/{}",
                va["security_groups"][0]["id"].as_str().unwrap()
            ))
            .await,
            409
        );
        // The admin sees and changes everything; a shared network becomes visible to B.
        assert_eq!(admin.get(&format!("/v2.0/networks/{net}")).await.0, 200);
        assert_eq!(
            admin
                .put(
                    &format!("/v2.0/networks/{net}"),
                    json!({"network": {"shared": true}})
                )
                .await
                .0,
            200
        );
        assert_eq!(b.get(&format!("/v2.0/networks/{net}")).await.0, 200);
        assert_eq!(
            b.put(
                &format!("/v2.0/networks/{net}"),
                json!({"network": {"name": "mine"}})
            )
            .await
            .0,
            403
        );
        ctl.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_slaac_routers_and_floating_ips() {
    let dir = tempfile::tempdir().unwrap();
    for db in backends(dir.path()).await {
        let ctl = start(&db, noauth()).await;
        let api = Api::new(&ctl.url, None);
        let (_, v) = api
            .post("/v2.0/networks", json!({"network": {"name": "public", "router:external": true, "provider:network_type": "flat", "provider:physical_network": "uplink"}}))
            .await;
        let ext = v["network"]["id"].as_str().unwrap().to_owned();
        assert_eq!(v["network"]["mtu"], 1500);
        let (s, _) = api
            .post("/v2.0/networks", json!({"network": {"name": "again", "provider:network_type": "flat", "provider:physical_network": "uplink"}}))
            .await;
        assert_eq!(s, 409, "one flat network per physical network");
        api.post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": ext, "ip_version": 4, "cidr": "203.0.113.0/24"}}),
        )
        .await;
        let (_, v) = api
            .post("/v2.0/networks", json!({"network": {"name": "inner"}}))
            .await;
        let net = v["network"]["id"].as_str().unwrap().to_owned();
        let (_, v) = api
            .post(
                "/v2.0/subnets",
                json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.0.0.0/24"}}),
            )
            .await;
        let sub4 = v["subnet"]["id"].as_str().unwrap().to_owned();
        let (s, v) = api
            .post("/v2.0/subnets", json!({"subnet": {"network_id": net, "ip_version": 6, "cidr": "2001:db8:1::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}))
            .await;
        assert_eq!(s, 201, "{v}");
        let sub6 = v["subnet"]["id"].as_str().unwrap().to_owned();
        let (s, _) = api
            .post("/v2.0/subnets", json!({"subnet": {"network_id": net, "ip_version": 6, "cidr": "2001:db8:2::/60", "ipv6_address_mode": "slaac"}}))
            .await;
        assert_eq!(s, 400, "SLAAC needs a /64");
        let (s, v) = api
            .post(
                "/v2.0/ports",
                json!({"port": {"network_id": net, "mac_address": "fa:16:3e:12:34:56"}}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let port = v["port"]["id"].as_str().unwrap().to_owned();
        let ips: Vec<&str> = v["port"]["fixed_ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["ip_address"].as_str().unwrap())
            .collect();
        assert_eq!(ips, vec!["10.0.0.2", "2001:db8:1:0:f816:3eff:fe12:3456"]);
        // Router: gateway, interfaces, routes, floating IP.
        let (s, v) = api
            .post(
                "/v2.0/routers",
                json!({"router": {"name": "r1", "external_gateway_info": {"network_id": ext}}}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let r = v["router"]["id"].as_str().unwrap().to_owned();
        assert_eq!(v["router"]["external_gateway_info"]["enable_snat"], true);
        assert_eq!(
            v["router"]["external_gateway_info"]["external_fixed_ips"][0]["ip_address"],
            "203.0.113.2"
        );
        let (s, v) = api
            .put(
                &format!("/v2.0/routers/{r}/add_router_interface"),
                json!({"subnet_id": sub4}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let iface = v["port_id"].as_str().unwrap().to_owned();
        let (s, _) = api
            .put(
                &format!("/v2.0/routers/{r}/add_router_interface"),
                json!({"subnet_id": sub4}),
            )
            .await;
        assert_eq!(s, 400, "already attached");
        assert_eq!(
            api.delete(&format!("/v2.0/ports/{iface}")).await,
            409,
            "router ports go through the router"
        );
        let (s, _) = api.put(&format!("/v2.0/routers/{r}"), json!({"router": {"routes": [{"destination": "192.168.0.0/16", "nexthop": "10.9.9.9"}]}})).await;
        assert_eq!(s, 400, "next hop not on the router");
        let (s, _) = api.put(&format!("/v2.0/routers/{r}"), json!({"router": {"routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}]}})).await;
        assert_eq!(s, 200);
        let (s, _) = api
            .put(
                &format!("/v2.0/routers/{r}/remove_router_interface"),
                json!({"subnet_id": sub4}),
            )
            .await;
        assert_eq!(s, 409, "in use by a route");
        api.put(
            &format!("/v2.0/routers/{r}"),
            json!({"router": {"routes": []}}),
        )
        .await;
        let (s, v) = api
            .post(
                "/v2.0/floatingips",
                json!({"floatingip": {"floating_network_id": ext, "port_id": port}}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let fip = v["floatingip"]["id"].as_str().unwrap().to_owned();
        assert_eq!(v["floatingip"]["fixed_ip_address"], "10.0.0.2");
        assert_eq!(v["floatingip"]["router_id"], r.as_str());
        assert_eq!(
            v["floatingip"]["port_details"]["mac_address"],
            "fa:16:3e:12:34:56"
        );
        let (s, _) = api
            .post(
                "/v2.0/floatingips",
                json!({"floatingip": {"floating_network_id": ext, "port_id": port}}),
            )
            .await;
        assert_eq!(s, 409, "one floating IP per fixed address");
        assert_eq!(
            api.put(
                &format!("/v2.0/routers/{r}/remove_router_interface"),
                json!({"subnet_id": sub4})
            )
            .await
            .0,
            409
        );
        let (s, v) = api
            .put(
                &format!("/v2.0/floatingips/{fip}"),
                json!({"floatingip": {"port_id": null}}),
            )
            .await;
        assert_eq!(
            (s, v["floatingip"]["status"].as_str()),
            (StatusCode::OK, Some("DOWN"))
        );
        // A floating IP from another subnet of the external network than the gateway's
        // cannot be served by the router: refused, not accepted and dropped.
        api.post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": ext, "ip_version": 4, "cidr": "198.51.100.0/24"}}),
        )
        .await;
        let (s, v) = api
            .post(
                "/v2.0/floatingips",
                json!({"floatingip": {"floating_network_id": ext, "floating_ip_address": "198.51.100.5", "port_id": port}}),
            )
            .await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["NeutronError"]["type"], "FloatingIpNotOnGatewaySubnet");
        assert_eq!(
            api.put(
                &format!("/v2.0/routers/{r}/remove_router_interface"),
                json!({"subnet_id": sub4})
            )
            .await
            .0,
            200
        );
        assert_eq!(api.delete(&format!("/v2.0/floatingips/{fip}")).await, 204);
        assert_eq!(api.delete(&format!("/v2.0/routers/{r}")).await, 204);
        // The SLAAC subnet can go while ports have automatic addresses on it.
        assert_eq!(api.delete(&format!("/v2.0/subnets/{sub6}")).await, 204);
        let (_, v) = api.get(&format!("/v2.0/ports/{port}")).await;
        assert_eq!(v["port"]["fixed_ips"].as_array().unwrap().len(), 1);
        ctl.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floating_ip_port_forwarding() {
    let dir = tempfile::tempdir().unwrap();
    for db in backends(dir.path()).await {
        let ctl = start(&db, noauth()).await;
        let api = Api::new(&ctl.url, None);
        let (s, v) = api
            .get("/v2.0/extensions/floating-ip-port-forwarding")
            .await;
        assert_eq!(s, 200, "{v}");
        let (_, v) = api
            .post("/v2.0/networks", json!({"network": {"name": "public", "router:external": true, "provider:network_type": "flat", "provider:physical_network": "public"}}))
            .await;
        let ext = v["network"]["id"].as_str().unwrap().to_owned();
        api.post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": ext, "ip_version": 4, "cidr": "203.0.113.0/24"}}),
        )
        .await;
        let (_, v) = api
            .post("/v2.0/networks", json!({"network": {"name": "inner"}}))
            .await;
        let net = v["network"]["id"].as_str().unwrap().to_owned();
        let (_, v) = api
            .post(
                "/v2.0/subnets",
                json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.0.0.0/24"}}),
            )
            .await;
        let sub = v["subnet"]["id"].as_str().unwrap().to_owned();
        let mut vms = Vec::new();
        for _ in 0..2 {
            let (_, v) = api
                .post("/v2.0/ports", json!({"port": {"network_id": net}}))
                .await;
            vms.push((
                v["port"]["id"].as_str().unwrap().to_owned(),
                v["port"]["fixed_ips"][0]["ip_address"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ));
        }
        let (vm, vm_ip) = vms[0].clone();
        let (_, v) = api
            .post(
                "/v2.0/routers",
                json!({"router": {"name": "r1", "external_gateway_info": {"network_id": ext}}}),
            )
            .await;
        let r = v["router"]["id"].as_str().unwrap().to_owned();
        let mut fips = Vec::new();
        for _ in 0..3 {
            let (s, v) = api
                .post(
                    "/v2.0/floatingips",
                    json!({"floatingip": {"floating_network_id": ext}}),
                )
                .await;
            assert_eq!(s, 201, "{v}");
            fips.push(v["floatingip"]["id"].as_str().unwrap().to_owned());
        }
        let pfs = format!("/v2.0/floatingips/{}/port_forwardings", fips[0]);
        let ssh = |ext_port: u16, int_port: u16| {
            json!({"port_forwarding": {"protocol": "tcp", "internal_ip_address": vm_ip,
                "internal_port": int_port, "internal_port_id": vm, "external_port": ext_port,
                "description": "ssh"}})
        };
        // No router serves the port's subnet yet.
        let (s, v) = api.post(&pfs, ssh(2222, 22)).await;
        assert_eq!(s, 400, "{v}");
        assert!(err_msg(&v).contains("not reachable"), "{v}");
        api.put(
            &format!("/v2.0/routers/{r}/add_router_interface"),
            json!({"subnet_id": sub}),
        )
        .await;
        let (s, v) = api.post(&pfs, ssh(2222, 22)).await;
        assert_eq!(s, 201, "{v}");
        let pf = v["port_forwarding"]["id"].as_str().unwrap().to_owned();
        assert_eq!(v["port_forwarding"]["internal_port"], 22);
        assert_eq!(v["port_forwarding"]["external_port"], 2222);
        assert_eq!(v["port_forwarding"]["protocol"], "tcp");
        assert_eq!(v["port_forwarding"]["internal_ip_address"], vm_ip.as_str());
        assert_eq!(v["port_forwarding"]["description"], "ssh");
        // The floating IP now goes through the router.
        let (_, v) = api.get(&format!("/v2.0/floatingips/{}", fips[0])).await;
        assert_eq!(v["floatingip"]["router_id"], r.as_str());
        assert!(v["floatingip"]["port_id"].is_null());
        let (s, v) = api.get(&pfs).await;
        assert_eq!(s, 200);
        assert_eq!(v["port_forwardings"].as_array().unwrap().len(), 1);
        let (s, v) = api.get(&format!("{pfs}?external_port=2222")).await;
        assert_eq!(
            (s, v["port_forwardings"].as_array().map(Vec::len)),
            (StatusCode::OK, Some(1))
        );
        let (s, v) = api.get(&format!("{pfs}/{pf}")).await;
        assert_eq!(
            (s, v["port_forwarding"]["id"].as_str()),
            (StatusCode::OK, Some(pf.as_str()))
        );
        // Another floating IP's path does not show it.
        let other = format!("/v2.0/floatingips/{}/port_forwardings", fips[1]);
        assert_eq!(api.get(&format!("{other}/{pf}")).await.0, 404);

        // Duplicates: (protocol, external port) per floating IP, (protocol, internal address,
        // internal port) per internal port (through any floating IP).
        let (s, v) = api.post(&pfs, ssh(2222, 23)).await;
        assert_eq!(s, 400, "{v}");
        assert!(err_msg(&v).contains("duplicate"), "{v}");
        let (s, _) = api.post(&other, ssh(2200, 22)).await;
        assert_eq!(s, 400);
        let mut udp = ssh(2222, 22);
        udp["port_forwarding"]["protocol"] = json!("udp");
        assert_eq!(api.post(&pfs, udp).await.0, 201, "udp is another port");
        // Wrong address, protocol, ports, ranges, missing attributes.
        let mut wrong = ssh(3000, 30);
        wrong["port_forwarding"]["internal_ip_address"] = json!("10.0.0.250");
        assert_eq!(api.post(&pfs, wrong).await.0, 400);
        let mut icmp = ssh(3001, 31);
        icmp["port_forwarding"]["protocol"] = json!("icmp");
        assert_eq!(api.post(&pfs, icmp).await.0, 400);
        assert_eq!(api.post(&pfs, ssh(0, 22)).await.0, 400);
        let mut range = ssh(3002, 32);
        range["port_forwarding"]["external_port_range"] = json!("3002:3003");
        let (s, v) = api.post(&pfs, range).await;
        assert_eq!(s, 400);
        assert!(err_msg(&v).contains("port ranges are not supported"), "{v}");
        let (s, _) = api
            .post(
                &pfs,
                json!({"port_forwarding": {"protocol": "tcp", "external_port": 1}}),
            )
            .await;
        assert_eq!(s, 400);
        let mut unknown = ssh(3004, 34);
        unknown["port_forwarding"]["colour"] = json!(1);
        assert_eq!(api.post(&pfs, unknown).await.0, 400);

        // Update: another external port; onto a taken one: refused.
        let (s, v) = api
            .put(
                &format!("{pfs}/{pf}"),
                json!({"port_forwarding": {"external_port": 2022}}),
            )
            .await;
        assert_eq!(
            (s, v["port_forwarding"]["external_port"].as_u64()),
            (StatusCode::OK, Some(2022))
        );
        let (s, _) = api.post(&pfs, ssh(2023, 23)).await;
        assert_eq!(s, 201);
        let (s, _) = api
            .put(
                &format!("{pfs}/{pf}"),
                json!({"port_forwarding": {"external_port": 2023}}),
            )
            .await;
        assert_eq!(s, 400);

        // A floating IP with port forwardings is not associated with a port, and the port
        // forwarded to gets no floating IP of its own.
        let (s, v) = api
            .put(
                &format!("/v2.0/floatingips/{}", fips[0]),
                json!({"floatingip": {"port_id": vms[1].0}}),
            )
            .await;
        assert_eq!(
            (s, err_type(&v)),
            (StatusCode::CONFLICT, "FipInUseByPortForwarding")
        );
        let (s, v) = api
            .put(
                &format!("/v2.0/floatingips/{}", fips[1]),
                json!({"floatingip": {"port_id": vm}}),
            )
            .await;
        assert_eq!(
            (s, err_type(&v)),
            (StatusCode::BAD_REQUEST, "PortHasPortForwarding")
        );
        // ... and the other way round.
        let (s, _) = api
            .put(
                &format!("/v2.0/floatingips/{}", fips[1]),
                json!({"floatingip": {"port_id": vms[1].0}}),
            )
            .await;
        assert_eq!(s, 200);
        let mut to_other = ssh(4000, 40);
        to_other["port_forwarding"]["internal_port_id"] = json!(vms[1].0);
        to_other["port_forwarding"]["internal_ip_address"] = json!(vms[1].1);
        let (s, v) = api.post(&other, to_other.clone()).await;
        assert_eq!(
            (s, err_type(&v)),
            (StatusCode::CONFLICT, "FloatingIPPortAlreadyAssociated")
        );
        let (s, v) = api.post(&pfs, to_other).await;
        assert_eq!(
            (s, err_type(&v)),
            (StatusCode::CONFLICT, "PortHasBindingFloatingIP")
        );
        // The router interface and the gateway they go through stay.
        assert_eq!(
            api.put(
                &format!("/v2.0/routers/{r}/remove_router_interface"),
                json!({"subnet_id": sub})
            )
            .await
            .0,
            409
        );
        assert_eq!(
            api.put(
                &format!("/v2.0/routers/{r}"),
                json!({"router": {"external_gateway_info": {}}})
            )
            .await
            .0,
            409
        );

        // Deleting the last one frees the floating IP from the router.
        let (_, v) = api.get(&pfs).await;
        for p in v["port_forwardings"].as_array().unwrap() {
            let id = p["id"].as_str().unwrap();
            assert_eq!(api.delete(&format!("{pfs}/{id}")).await, 204);
        }
        assert_eq!(api.delete(&format!("{pfs}/{pf}")).await, 404);
        let (_, v) = api.get(&format!("/v2.0/floatingips/{}", fips[0])).await;
        assert!(v["floatingip"]["router_id"].is_null(), "{v}");
        // Deleting the floating IP deletes its port forwardings; deleting the internal port
        // too.
        let third = format!("/v2.0/floatingips/{}/port_forwardings", fips[2]);
        let (s, v) = api.post(&third, ssh(5000, 50)).await;
        assert_eq!(s, 201, "{v}");
        let pf3 = v["port_forwarding"]["id"].as_str().unwrap().to_owned();
        assert_eq!(api.delete(&format!("/v2.0/ports/{vm}")).await, 204);
        assert_eq!(api.get(&format!("{third}/{pf3}")).await.0, 404);
        let (_, v) = api.get(&format!("/v2.0/floatingips/{}", fips[2])).await;
        assert!(v["floatingip"]["router_id"].is_null(), "{v}");
        let (s, v) = api
            .post(
                "/v2.0/ports",
                json!({"port": {"network_id": net, "fixed_ips": [{"ip_address": "10.0.0.77"}]}}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let vm3 = v["port"]["id"].as_str().unwrap().to_owned();
        let mut to3 = ssh(5001, 51);
        to3["port_forwarding"]["internal_port_id"] = json!(vm3);
        to3["port_forwarding"]["internal_ip_address"] = json!("10.0.0.77");
        let (s, v) = api.post(&third, to3).await;
        assert_eq!(s, 201, "{v}");
        let pf4 = v["port_forwarding"]["id"].as_str().unwrap().to_owned();
        // The port loses the address: its port forwarding goes.
        let (s, _) = api
            .put(
                &format!("/v2.0/ports/{vm3}"),
                json!({"port": {"fixed_ips": [{"ip_address": "10.0.0.78"}]}}),
            )
            .await;
        assert_eq!(s, 200);
        assert_eq!(api.get(&format!("{third}/{pf4}")).await.0, 404);
        let mut to3 = ssh(5002, 52);
        to3["port_forwarding"]["internal_port_id"] = json!(vm3);
        to3["port_forwarding"]["internal_ip_address"] = json!("10.0.0.78");
        let (s, v) = api.post(&third, to3).await;
        assert_eq!(s, 201, "{v}");
        let pf5 = v["port_forwarding"]["id"].as_str().unwrap().to_owned();
        assert_eq!(
            api.delete(&format!("/v2.0/floatingips/{}", fips[2])).await,
            204
        );
        let rows: Vec<weft_controlplane::model::PortForwarding> = ctl
            .store
            .list(
                &weft_controlplane::model::Scope::All,
                &weft_controlplane::store::Filter::default(),
            )
            .await
            .unwrap();
        assert!(rows.iter().all(|p| p.id.to_string() != pf5), "cascaded");
        assert_eq!(
            api.get(&format!("/v2.0/floatingips/{}/port_forwardings", fips[2]))
                .await
                .0,
            404
        );
        ctl.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_served_route() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/o.db", dir.path().display());
    let ctl = start(&db, noauth()).await;
    let api = Api::new(&ctl.url, None);
    let (s, doc) = api.get("/openapi.json").await;
    assert_eq!(s, 200);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 30);
    let (_, served) = weft_controlplane::api::routes();
    assert_eq!(
        served.len(),
        paths
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum::<usize>()
    );
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", &uuid::Uuid::new_v4().to_string())
                .replace("{floatingip_id}", &uuid::Uuid::new_v4().to_string())
                .replace("{alias}", "router")
                .replace("{tag}", "t");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = matches!(method.as_str(), "post" | "put").then(|| json!({}));
            let (s, v) = api.call(m, &concrete, body).await;
            assert!(
                s != 405 && err_type(&v) != "HTTPNotFound",
                "{method} {path}: {s} {v}"
            );
        }
    }
    ctl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_tokens_are_validated_and_cached() {
    use axum::http::HeaderMap;
    let hits = Arc::new(Mutex::new(0u32));
    let h = hits.clone();
    let ks = axum::Router::new().route(
        "/v3/auth/tokens",
        axum::routing::get(move |headers: HeaderMap| {
            let h = h.clone();
            async move {
                *h.lock().unwrap() += 1;
                let subject = headers.get("x-subject-token").and_then(|v| v.to_str().ok()).unwrap_or("");
                match subject {
                    "good" => (StatusCode::OK, axum::Json(json!({"token": {"project": {"id": "p1"}, "roles": [{"name": "member"}], "expires_at": "2999-01-01T00:00:00.000000Z"}}))),
                    "norole" => (StatusCode::OK, axum::Json(json!({"token": {"project": {"id": "p1"}, "roles": [{"name": "auditor"}]}}))),
                    _ => (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"code": 404}}))),
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ks_addr = l.local_addr().unwrap();
    let ks_task = tokio::spawn(async move {
        let _ = axum::serve(l, ks).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let ctl = start(
        &format!("sqlite://{}/k.db", dir.path().display()),
        AuthConfig::Keystone(format!("http://{ks_addr}/v3")),
    )
    .await;
    let good = Api::new(&ctl.url, Some("good"));
    let (s, v) = good
        .post("/v2.0/networks", json!({"network": {"name": "k"}}))
        .await;
    assert_eq!(s, 201);
    assert_eq!(v["network"]["project_id"], "p1");
    for _ in 0..5 {
        assert_eq!(good.get("/v2.0/networks").await.0, 200);
    }
    assert_eq!(*hits.lock().unwrap(), 1, "validated once, then cached");
    assert_eq!(
        Api::new(&ctl.url, Some("bad"))
            .get("/v2.0/networks")
            .await
            .0,
        401
    );
    assert_eq!(
        Api::new(&ctl.url, Some("norole"))
            .get("/v2.0/networks")
            .await
            .0,
        403
    );
    ctl.shutdown().await;
    ks_task.abort();
}
