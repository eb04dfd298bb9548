//! The desired-state compiler against a real store: resources made through the Neutron API (in
//! process, SQLite), nodes registered straight into the store, and `Compiler::update` fed the
//! snapshots and change records the controller's compile loop would read. Checks what lands in
//! each node's configuration (security groups with remote groups as address sets, router gateways on
//! uplinks, floating IPs, port forwarding) and which nodes a change recompiles.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use ipnetwork::IpNetwork;
use serde_json::{Value, json};
use weft_controlplane::api::ApiConfig;
use weft_controlplane::auth::AuthConfig;
use weft_controlplane::compile::Compiler;
use weft_controlplane::model::{Node, NodeRole, ProjectId, Revision, Scope, StandardAttrs};
use weft_controlplane::store::{Store, StoreOptions};
use weft_controlplane::{ControllerConfig, Server};
use weft_dataplane::config::{NodeConfig, RuleDirection, RuleEtherType, SecurityRuleConfig};

struct Cloud {
    c: reqwest::Client,
    url: String,
    store: Store,
    compiler: Compiler,
    last: Option<Revision>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Cloud {
    async fn start() -> Cloud {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::bind(ControllerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            db_url: format!("sqlite://{}/c.db", dir.path().display()),
            auth: AuthConfig::NoAuth(ProjectId::new("demo").unwrap()),
            api: ApiConfig::default(),
            store: StoreOptions { max_connections: 4 },
            node_api: None,
        })
        .await
        .unwrap();
        let addr: SocketAddr = server.local_addr().unwrap();
        let store = server.store();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Cloud {
            c: reqwest::Client::new(),
            url: format!("http://{addr}"),
            store,
            compiler: Compiler::new(),
            last: None,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), t).await;
        }
    }

    /// Registers (or re-registers) a node, as the node API would.
    async fn node(&self, name: &str, ip: &str, roles: &[NodeRole], uplinks: &[(&str, &str)]) {
        let mut tx = self.store.begin(&Scope::All, "test").await.unwrap();
        let existing: Option<Node> = tx
            .get(&Scope::All, name, weft_controlplane::store::Lock::Update)
            .await
            .unwrap();
        let mut n = Node {
            name: name.into(),
            vtep_ip: ip.parse().unwrap(),
            underlay_mtu: 1500,
            roles: roles.to_vec(),
            uplinks: uplinks
                .iter()
                .map(|(p, i)| ((*p).to_owned(), (*i).to_owned()))
                .collect(),
            std: StandardAttrs::default(),
        };
        match existing {
            Some(old) => {
                n.std = old.std;
                tx.update(&Scope::All, &mut n).await.unwrap();
            }
            None => tx.insert(&Scope::All, &mut n).await.unwrap(),
        }
        tx.commit().await.unwrap();
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.c.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let s = resp.status().as_u16();
        (s, resp.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let (s, v) = self.call(method, path, Some(body)).await;
        assert!((200..300).contains(&s), "{path}: {s} {v}");
        v
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.ok(reqwest::Method::POST, path, body).await
    }

    async fn put(&self, path: &str, body: Value) -> Value {
        self.ok(reqwest::Method::PUT, path, body).await
    }

    async fn network(&self, name: &str, cidr: &str) -> (String, String) {
        let net = s(&self
            .post("/v2.0/networks", json!({"network": {"name": name}}))
            .await["network"]["id"]);
        let sub = s(&self
            .post(
                "/v2.0/subnets",
                json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": cidr}}),
            )
            .await["subnet"]["id"]);
        (net, sub)
    }

    /// A VM port bound to `host`, with extra attributes.
    async fn port(&self, net: &str, host: &str, extra: Value) -> Value {
        let mut body =
            json!({"network_id": net, "binding:host_id": host, "device_owner": "compute:nova"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.post("/v2.0/ports", json!({ "port": body })).await["port"].clone()
    }

    /// Compiles as the controller's loop does: everything the first time, then from the change
    /// records since the previous run. Returns the recompiled nodes' configurations, each
    /// checked by the dataplane's validation.
    async fn compile(&mut self) -> BTreeMap<String, NodeConfig> {
        let snap = self.store.snapshot().await.unwrap();
        let records = match self.last {
            Some(l) => Some(self.store.changes_since(l, 100_000).await.unwrap()),
            None => None,
        };
        self.last = Some(snap.revision);
        let out: BTreeMap<String, NodeConfig> = self
            .compiler
            .update(&snap, records.as_deref())
            .into_iter()
            .map(|c| (c.node, c.config))
            .collect();
        for (n, c) in &out {
            if let Err(e) = c.validate() {
                panic!("{n}: {e}");
            }
        }
        out
    }
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn v4_of(port: &Value) -> IpNetwork {
    let ip: std::net::IpAddr = port["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    IpNetwork::from(ip)
}

fn names(m: &BTreeMap<String, NodeConfig>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

/// The rules of group `g` in `cfg`.
fn rules<'a>(cfg: &'a NodeConfig, g: &str) -> &'a [SecurityRuleConfig] {
    &cfg.security_groups
        .iter()
        .find(|x| x.name == g)
        .unwrap_or_else(|| panic!("no group {g} in {cfg:?}"))
        .rules
}

const HV: &[NodeRole] = &[NodeRole::Hypervisor];

/// The addresses a rule matches the other end against: its own list, or its address set's
/// addresses of the rule's IP version.
fn remote_of(cfg: &NodeConfig, r: &SecurityRuleConfig) -> Option<Vec<IpNetwork>> {
    let name = r.remote_set.as_ref()?;
    assert!(r.remote.is_none());
    let set = cfg.address_sets.iter().find(|a| &a.name == name).unwrap();
    let v4 = r.ethertype == RuleEtherType::IPv4;
    Some(
        set.addresses
            .iter()
            .filter(|a| a.is_ipv4() == v4)
            .copied()
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups_with_remote_groups() {
    let mut c = Cloud::start().await;
    for (n, ip) in [
        ("hv1", "192.168.100.1"),
        ("hv2", "192.168.100.2"),
        ("hv3", "192.168.100.3"),
        ("hv4", "192.168.100.4"),
    ] {
        c.node(n, ip, HV, &[]).await;
    }
    let (net_a, _) = c.network("a", "10.0.0.0/24").await;
    let (net_b, _) = c.network("b", "10.0.1.0/24").await;
    let (net_c, _) = c.network("c", "10.0.2.0/24").await;
    // Two ports in the project's default group (the API's default) on hv1 and hv2.
    let pa1 = c.port(&net_a, "hv1", json!({})).await;
    let pa2 = c.port(&net_a, "hv2", json!({})).await;
    let default = s(&pa1["security_groups"][0]);
    // "other" on hv3 lets in what comes from members of default; "lonely" on hv4 is unrelated.
    let other = s(&c
        .post(
            "/v2.0/security-groups",
            json!({"security_group": {"name": "other"}}),
        )
        .await["security_group"]["id"]);
    c.post("/v2.0/security-group-rules", json!({"security_group_rule": {"security_group_id": other, "direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_group_id": default}})).await;
    c.post("/v2.0/security-group-rules", json!({"security_group_rule": {"security_group_id": other, "direction": "ingress", "ethertype": "IPv6", "protocol": "icmp", "remote_ip_prefix": "fd00::/8"}})).await;
    c.post("/v2.0/security-group-rules", json!({"security_group_rule": {"security_group_id": other, "direction": "ingress", "protocol": "icmp", "port_range_min": 8, "port_range_max": 0, "remote_ip_prefix": "192.0.2.7/24"}})).await;
    let lonely = s(&c
        .post(
            "/v2.0/security-groups",
            json!({"security_group": {"name": "lonely"}}),
        )
        .await["security_group"]["id"]);
    let pb = c
        .port(&net_b, "hv3", json!({"security_groups": [other]}))
        .await;
    c.port(&net_c, "hv4", json!({"security_groups": [lonely]}))
        .await;
    // A port without port security: no groups, nothing filtered.
    let open = c
        .port(
            &net_a,
            "hv1",
            json!({"port_security_enabled": false, "security_groups": []}),
        )
        .await;

    let cfgs = c.compile().await;
    assert_eq!(names(&cfgs), ["hv1", "hv2", "hv3", "hv4"], "all valid");
    let hv1 = &cfgs["hv1"];
    let p = hv1.ports.iter().find(|p| p.name == s(&pa1["id"])).unwrap();
    assert_eq!(p.security_groups, Some(vec![default.clone()]));
    assert_eq!(p.project, "demo");
    let o = hv1.ports.iter().find(|p| p.name == s(&open["id"])).unwrap();
    assert!(!o.port_security && o.security_groups == Some(vec![]));
    assert_eq!(hv1.security_groups.len(), 1, "each group once");
    // Neutron's default group: all egress, ingress from members; the two members see each other.
    let r = rules(hv1, &default);
    assert_eq!(r.len(), 4, "{r:?}");
    let members_v4 = r
        .iter()
        .find(|x| x.direction == RuleDirection::Ingress && x.ethertype == RuleEtherType::IPv4)
        .unwrap();
    assert_eq!(
        remote_of(hv1, members_v4),
        Some(vec![v4_of(&pa1), v4_of(&pa2)])
    );
    // Both member rules name one address set: the group's, sent once.
    let sets: Vec<&str> = hv1.address_sets.iter().map(|a| &*a.name).collect();
    assert_eq!(sets, [default.as_str()]);
    let members_v6 = r
        .iter()
        .find(|x| x.direction == RuleDirection::Ingress && x.ethertype == RuleEtherType::IPv6)
        .unwrap();
    assert_eq!(
        remote_of(hv1, members_v6),
        Some(vec![]),
        "no IPv6 member: matches nothing"
    );
    assert!(
        r.iter()
            .filter(|x| x.direction == RuleDirection::Egress)
            .all(|x| x.remote.is_none() && x.protocol.is_none())
    );
    // "other" on hv3: tcp/22 from default's members, ICMPv6 (icmp on an IPv6 rule), echo from
    // a prefix (normalized to its network).
    let hv3 = &cfgs["hv3"];
    assert_eq!(hv3.ports[0].security_groups, Some(vec![other.clone()]));
    let r = rules(hv3, &other);
    let ssh = r.iter().find(|x| x.protocol == Some(6)).unwrap();
    assert_eq!(
        (ssh.port_range_min, ssh.port_range_max),
        (Some(22), Some(22))
    );
    assert_eq!(remote_of(hv3, ssh), Some(vec![v4_of(&pa1), v4_of(&pa2)]));
    let icmp6 = r.iter().find(|x| x.protocol == Some(58)).unwrap();
    assert_eq!(icmp6.ethertype, RuleEtherType::IPv6);
    assert_eq!(icmp6.remote, Some(vec![net("fd00::/8")]));
    let echo = r.iter().find(|x| x.protocol == Some(1)).unwrap();
    assert_eq!(
        (echo.port_range_min, echo.port_range_max),
        (Some(8), Some(0))
    );
    assert_eq!(echo.remote, Some(vec![net("192.0.2.0/24")]));
    assert!(!hv3.security_groups.iter().any(|g| g.name == default));

    // A rule added to default: its members' nodes, and hv3 (other names default as remote
    // group: over-approximated, documented); never hv4.
    c.post("/v2.0/security-group-rules", json!({"security_group_rule": {"security_group_id": default, "direction": "ingress", "protocol": "udp", "port_range_min": 53, "port_range_max": 53}})).await;
    let cfgs = c.compile().await;
    assert_eq!(names(&cfgs), ["hv1", "hv2", "hv3"]);
    assert_eq!(rules(&cfgs["hv1"], &default).len(), 5);
    // A rule added to other: hv3 only.
    c.post("/v2.0/security-group-rules", json!({"security_group_rule": {"security_group_id": other, "direction": "egress", "protocol": "tcp", "port_range_min": 443, "port_range_max": 443}})).await;
    let cfgs = c.compile().await;
    assert_eq!(names(&cfgs), ["hv3"]);
    // Renaming a member port changes no address: net a's nodes only (hv1, hv2), not hv3.
    c.put(
        &format!("/v2.0/ports/{}", s(&pa1["id"])),
        json!({"port": {"name": "renamed"}}),
    )
    .await;
    let cfgs = c.compile().await;
    assert_eq!(names(&cfgs), ["hv1", "hv2"]);
    // A member's new allowed address pair reaches every rule that names default: hv3 too.
    c.put(
        &format!("/v2.0/ports/{}", s(&pa2["id"])),
        json!({"port": {"allowed_address_pairs": [{"ip_address": "10.0.0.200"}]}}),
    )
    .await;
    let cfgs = c.compile().await;
    assert_eq!(names(&cfgs), ["hv1", "hv2", "hv3"]);
    let ssh = rules(&cfgs["hv3"], &other)
        .iter()
        .find(|x| x.protocol == Some(6) && x.direction == RuleDirection::Ingress)
        .unwrap()
        .clone();
    assert_eq!(
        remote_of(&cfgs["hv3"], &ssh),
        Some(vec![v4_of(&pa1), v4_of(&pa2), net("10.0.0.200/32")])
    );
    // A new member on hv4 (hv4 now hosts default too): every node that reads default's
    // addresses, and hv4.
    let pc = c.port(&net_c, "hv4", json!({})).await;
    let cfgs = c.compile().await;
    assert_eq!(names(&cfgs), ["hv1", "hv2", "hv3", "hv4"]);
    let members = remote_of(
        &cfgs["hv1"],
        rules(&cfgs["hv1"], &default)
            .iter()
            .find(|x| x.direction == RuleDirection::Ingress && x.ethertype == RuleEtherType::IPv4)
            .unwrap(),
    )
    .unwrap();
    assert!(members.contains(&v4_of(&pc)), "{members:?}");
    // Leaving default for lonely: hv3 learns the address is gone.
    c.put(
        &format!("/v2.0/ports/{}", s(&pc["id"])),
        json!({"port": {"security_groups": [lonely]}}),
    )
    .await;
    let cfgs = c.compile().await;
    assert!(cfgs.contains_key("hv3") && cfgs.contains_key("hv1"));
    let ssh = rules(&cfgs["hv3"], &other)
        .iter()
        .find(|x| x.protocol == Some(6) && x.direction == RuleDirection::Ingress)
        .unwrap()
        .clone();
    assert!(!remote_of(&cfgs["hv3"], &ssh).unwrap().contains(&v4_of(&pc)));
    let _ = pb;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_gateway_on_an_uplink_and_floating_ips() {
    use weft_controlplane::compile::UPLINK_VNIS;
    let mut c = Cloud::start().await;
    c.node("hv1", "192.168.100.1", HV, &[]).await;
    // Two router nodes; only rt2 has an uplink for the physical network "public".
    c.node("rt1", "192.168.100.11", &[NodeRole::Router], &[])
        .await;
    c.node(
        "rt2",
        "192.168.100.12",
        &[NodeRole::Router],
        &[("public", "eth1"), ("other", "eth2")],
    )
    .await;
    let ext = s(&c
        .post("/v2.0/networks", json!({"network": {"name": "public", "router:external": true, "provider:network_type": "flat", "provider:physical_network": "public"}}))
        .await["network"]["id"]);
    c.post(
        "/v2.0/subnets",
        json!({"subnet": {"network_id": ext, "ip_version": 4, "cidr": "203.0.113.0/24", "enable_dhcp": false}}),
    )
    .await;
    c.post(
        "/v2.0/subnets",
        json!({"subnet": {"network_id": ext, "ip_version": 6, "cidr": "2001:db8:ff::/64", "enable_dhcp": false}}),
    )
    .await;
    let (net_a, sub_a) = c.network("a", "10.0.0.0/24").await;
    let vm = c.port(&net_a, "hv1", json!({})).await;
    let router = s(&c
        .post(
            "/v2.0/routers",
            json!({"router": {"name": "r1", "external_gateway_info": {"network_id": ext}}}),
        )
        .await["router"]["id"]);
    c.put(
        &format!("/v2.0/routers/{router}/add_router_interface"),
        json!({"subnet_id": sub_a}),
    )
    .await;
    let fip = c
        .post(
            "/v2.0/floatingips",
            json!({"floatingip": {"floating_network_id": ext, "port_id": s(&vm["id"])}}),
        )
        .await["floatingip"]
        .clone();

    let cfgs = c.compile().await;
    assert_eq!(names(&cfgs), ["hv1", "rt1", "rt2"], "all valid");
    assert!(cfgs["rt1"].routers.is_empty(), "placed where the uplink is");
    let rt2 = &cfgs["rt2"];
    // The external network: a segment on rt2's uplink, keyed by a reserved VNI.
    let seg = rt2.segments.iter().find(|x| x.name == ext).unwrap();
    assert_eq!(seg.uplink.as_deref(), Some("eth1"));
    assert!(UPLINK_VNIS.contains(&seg.vni.get()), "{}", seg.vni);
    assert_eq!(seg.gateway_mac, None);
    let r = &rt2.routers[0];
    assert_eq!(r.name, router);
    assert_eq!(r.project, "demo");
    let gw = r.gateway.as_ref().expect("a gateway");
    assert_eq!(gw.vni, seg.vni);
    assert!(gw.enable_snat);
    let gif = r.interfaces.iter().find(|i| i.vni == seg.vni).unwrap();
    assert!(
        gif.addresses
            .iter()
            .any(|a| a.is_ipv4() && a.prefix() == 24 && net("203.0.113.0/24").contains(a.ip()))
    );
    assert!(gif.addresses.iter().any(|a| a.is_ipv6()));
    let default = |d: &str| {
        r.routes
            .iter()
            .find(|x| x.destination == net(d))
            .map(|x| x.nexthop)
    };
    assert_eq!(default("0.0.0.0/0"), Some("203.0.113.1".parse().unwrap()));
    assert_eq!(default("::/0"), Some("2001:db8:ff::1".parse().unwrap()));
    assert_eq!(r.floating_ips.len(), 1);
    assert_eq!(
        r.floating_ips[0].external.to_string(),
        s(&fip["floating_ip_address"])
    );
    assert_eq!(
        IpNetwork::from(std::net::IpAddr::V4(r.floating_ips[0].internal)),
        v4_of(&vm)
    );
    // Nothing of the external network anywhere else, and never over VXLAN.
    for (n, cfg) in &cfgs {
        assert!(
            cfg.remote_vteps.iter().all(|v| !v.vnis.contains(&seg.vni)),
            "{n}"
        );
        if n != "rt2" {
            assert!(cfg.segments.iter().all(|x| x.name != ext), "{n}");
        }
    }

    // Disassociating the floating IP recompiles the router's node only.
    c.put(
        &format!("/v2.0/floatingips/{}", s(&fip["id"])),
        json!({"floatingip": {"port_id": null}}),
    )
    .await;
    let cfgs = c.compile().await;
    assert_eq!(names(&cfgs), ["rt2"]);
    assert!(cfgs["rt2"].routers[0].floating_ips.is_empty());

    // A port forwarding on another floating IP: the router's node only.
    let fip2 = c
        .post(
            "/v2.0/floatingips",
            json!({"floatingip": {"floating_network_id": ext}}),
        )
        .await["floatingip"]
        .clone();
    c.compile().await;
    let vm_ip = v4_of(&vm).ip().to_string();
    c.post(
        &format!("/v2.0/floatingips/{}/port_forwardings", s(&fip2["id"])),
        json!({"port_forwarding": {"protocol": "tcp", "internal_ip_address": vm_ip,
            "internal_port": 22, "internal_port_id": s(&vm["id"]), "external_port": 2222}}),
    )
    .await;
    let cfgs = c.compile().await;
    assert_eq!(names(&cfgs), ["rt2"]);
    let pfs = &cfgs["rt2"].routers[0].port_forwardings;
    assert_eq!(pfs.len(), 1);
    assert_eq!(
        pfs[0].protocol,
        weft_dataplane::config::ForwardProtocol::Tcp
    );
    assert_eq!(pfs[0].external.to_string(), s(&fip2["floating_ip_address"]));
    assert_eq!((pfs[0].external_port, pfs[0].internal_port), (2222, 22));
    assert_eq!(pfs[0].internal.to_string(), vm_ip);

    // rt2 loses its uplink: the router stays (no node has one), without its gateway.
    c.node("rt2", "192.168.100.12", &[NodeRole::Router], &[])
        .await;
    let cfgs = c.compile().await;
    assert_eq!(names(&cfgs), ["hv1", "rt1", "rt2"]);
    let r = &cfgs["rt2"].routers[0];
    assert!(r.gateway.is_none() && r.interfaces.len() == 1 && r.routes.is_empty());
    assert!(r.port_forwardings.is_empty());
    assert!(cfgs["rt2"].segments.iter().all(|x| x.uplink.is_none()));

    // The reserved VNIs are not for VXLAN networks.
    let (st, _) = c
        .call(
            reqwest::Method::POST,
            "/v2.0/networks",
            Some(json!({"network": {"provider:segmentation_id": *UPLINK_VNIS.start()}})),
        )
        .await;
    assert_eq!(st, 400);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_ports_and_external_vxlan_networks_use_uplinks() {
    let mut c = Cloud::start().await;
    c.node("hv1", "192.168.100.1", HV, &[("physnet1", "eth1")])
        .await;
    c.node("hv2", "192.168.100.2", HV, &[]).await;
    c.node(
        "rt1",
        "192.168.100.11",
        &[NodeRole::Router],
        &[("default", "eth9")],
    )
    .await;
    // A flat provider network with a VM port on each hypervisor: only hv1 has the uplink.
    let flat = s(&c
        .post("/v2.0/networks", json!({"network": {"name": "prov", "shared": true, "provider:network_type": "flat", "provider:physical_network": "physnet1"}}))
        .await["network"]["id"]);
    c.post(
        "/v2.0/subnets",
        json!({"subnet": {"network_id": flat, "ip_version": 4, "cidr": "198.51.100.0/24"}}),
    )
    .await;
    let p1 = c.port(&flat, "hv1", json!({})).await;
    c.port(&flat, "hv2", json!({})).await;
    // An external network without provider attributes (a VXLAN network with a VNI): routers
    // reach it through their node's "public", else "default" uplink.
    let ext = c
        .post(
            "/v2.0/networks",
            json!({"network": {"name": "ext", "router:external": true}}),
        )
        .await["network"]
        .clone();
    c.post(
        "/v2.0/subnets",
        json!({"subnet": {"network_id": s(&ext["id"]), "ip_version": 4, "cidr": "192.0.2.0/24"}}),
    )
    .await;
    let (_, sub_a) = c.network("a", "10.0.0.0/24").await;
    let router = s(&c
        .post(
            "/v2.0/routers",
            json!({"router": {"name": "r", "external_gateway_info": {"network_id": s(&ext["id"])}}}),
        )
        .await["router"]["id"]);
    c.put(
        &format!("/v2.0/routers/{router}/add_router_interface"),
        json!({"subnet_id": sub_a}),
    )
    .await;

    let cfgs = c.compile().await;
    assert_eq!(names(&cfgs), ["hv1", "hv2", "rt1"], "all valid");
    let hv1 = &cfgs["hv1"];
    let seg = hv1.segments.iter().find(|x| x.name == flat).unwrap();
    assert_eq!(seg.uplink.as_deref(), Some("eth1"));
    assert_eq!(hv1.ports.len(), 1);
    assert_eq!(hv1.ports[0].name, s(&p1["id"]));
    assert!(hv1.remote_bindings.is_empty() && hv1.remote_vteps.is_empty());
    let hv2 = &cfgs["hv2"];
    assert!(hv2.segments.is_empty() && hv2.ports.is_empty(), "{hv2:?}");
    let rt1 = &cfgs["rt1"];
    let ext_vni = ext["provider:segmentation_id"].as_u64().unwrap();
    let seg = rt1
        .segments
        .iter()
        .find(|x| u64::from(x.vni.get()) == ext_vni)
        .unwrap();
    assert_eq!(seg.uplink.as_deref(), Some("eth9"));
    assert_eq!(
        rt1.routers[0].gateway.as_ref().map(|g| g.vni),
        Some(seg.vni)
    );

    // A second external VXLAN network would fall back to the same uplink: the older network
    // keeps it, the newer one's gateway is left out, and rt1's configuration stays valid.
    let ext2 = s(&c
        .post(
            "/v2.0/networks",
            json!({"network": {"name": "ext2", "router:external": true}}),
        )
        .await["network"]["id"]);
    c.post(
        "/v2.0/subnets",
        json!({"subnet": {"network_id": ext2, "ip_version": 4, "cidr": "192.0.3.0/24"}}),
    )
    .await;
    let (_, sub_b) = c.network("b", "10.1.0.0/24").await;
    let r2 = s(&c
        .post(
            "/v2.0/routers",
            json!({"router": {"name": "r2", "external_gateway_info": {"network_id": ext2}}}),
        )
        .await["router"]["id"]);
    c.put(
        &format!("/v2.0/routers/{r2}/add_router_interface"),
        json!({"subnet_id": sub_b}),
    )
    .await;
    let cfgs = c.compile().await;
    // Only rt1 is touched; it is returned only if its configuration validates.
    assert_eq!(names(&cfgs), ["rt1"], "rt1 recompiled and valid");
    let rt1 = &cfgs["rt1"];
    let uplinks: Vec<&str> = rt1
        .segments
        .iter()
        .filter_map(|x| x.uplink.as_deref())
        .collect();
    assert_eq!(uplinks, ["eth9"], "one network per uplink");
    let gw = |id: &str| {
        rt1.routers
            .iter()
            .find(|r| r.name == id)
            .map(|r| r.gateway.is_some())
    };
    assert_eq!(gw(&router), Some(true));
    assert_eq!(gw(&r2), Some(false));
    // The conflict is known (and logged once, when it appears), and stays while it lasts.
    let conflict = |c: &Cloud| {
        c.compiler
            .uplink_conflicts()
            .into_iter()
            .map(|x| (x.node, x.interface, x.network, x.holder))
            .collect::<Vec<_>>()
    };
    let want = vec![(
        "rt1".to_owned(),
        "eth9".to_owned(),
        ext2.clone(),
        s(&ext["id"]),
    )];
    assert_eq!(conflict(&c), want);
    c.post("/v2.0/networks", json!({"network": {"name": "unrelated"}}))
        .await;
    c.compile().await;
    assert_eq!(conflict(&c), want);
    c.shutdown().await;
}
