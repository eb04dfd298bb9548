//! Control plane to agents (issue 6): the time from a Neutron API call to the new
//! configuration being applied on every node it affects, and the controller's memory per
//! 10 000 ports.
//!
//! ```text
//! weft-bench-nodes latency [--agents N] [--networks M] [--seq-ports S] [--burst-ports B]
//!                          [--clients C] [--preload P] [--db URL] [--quick]
//! weft-bench-nodes memory  [--nodes N] [--networks M] [--ports P] [--db URL] [--quick]
//! weft-bench-nodes agent   --url URL --pki DIR --node NAME --vtep IP --roles R[,R]   (internal)
//! ```
//!
//! The controller runs in this process (`Server`, `--auth noauth`, the node API with a fresh
//! PKI), on 127.0.0.1 and ephemeral ports; default database: a fresh SQLite file in a temporary
//! directory (`--db` must name an empty database).
//!
//! **latency**: N simulated agents, each its own OS process (`agent`, this binary), with its
//! own certificate (CN = node name) and mTLS connection. An agent registers, watches its
//! configuration stream and applies each snapshot or delta as `weft agent` would: the delta
//! onto a copy of its `NodeConfig`, the revision set, then `NodeConfig::validate()`, which
//! builds the dataplane's `Tables` (the in-memory dataplane; a real agent swaps them in as
//! soon as it returns). It then prints, with the wall-clock time, the ports and remote
//! bindings that are new in its configuration. M networks, two routers (nodes 0 and 1 have
//! the router role) joining them, one seed port per node on network `node % M`, and P more
//! ports the same way (`--preload`, bulk requests) to measure with a larger store. Then ports,
//! port `i` bound to node `i % N` on that node's network: first one request at a time, then
//! C concurrent clients. A port affects its host and every node with a segment on its
//! network (the other hypervisors there and the router's node); its latency on a node: from
//! just before its `POST` to that node's agent having validated a configuration containing it
//! (own port by id, remote binding by MAC). Missing ones after 60 s are failures.
//!
//! **memory**: N nodes registered (no watchers, no agents), the same networks and routers,
//! then P ports bound round robin in bulk requests of 100; this process's `VmRSS` before and
//! after the compiler has caught up (controller, SQLite's page caches, compiler and hub with
//! every node's configuration and deltas; the HTTP client that creates the ports is the only
//! other thing in the process), and again after `malloc_trim` (what is live, without the
//! freed memory the allocator keeps). Then, for scale: the compiled configurations' JSON size,
//! and what one store snapshot and one compilation of every node cost at this size.
//!
//! Prints one JSON object on stdout and a summary on stderr; exits with 3 when a port never
//! reached a node it affects (after printing the figures), so that `--quick` is a smoke test.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use weft_bench::controller::{Controller, network, post, summary};
use weft_controlplane::compile::Compiler;
use weft_controlplane::nodeapi::WatchMessage;
use weft_controlplane::pki::{self, Subject};
use weft_dataplane::config::NodeConfig;

/// How long an agent waits for any message (heartbeats come every 10 s) before reconnecting.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Consecutive failed connections after which an agent gives up.
const MAX_FAILURES: u32 = 30;
/// How long a phase waits for its last ports to reach every node.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest watch message an agent accepts.
const MAX_LINE: usize = 256 * 1024 * 1024;

fn now_ns() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn node_name(k: usize) -> String {
    format!("node-{k:03}")
}

fn vtep(k: usize) -> String {
    format!("192.168.{}.{}", k / 200, k % 200 + 1)
}

// ---------------------------------------------------------------------------------------
// Arguments

#[derive(Debug)]
enum Cmd {
    Latency {
        agents: usize,
        networks: Option<usize>,
        seq_ports: usize,
        burst_ports: usize,
        clients: usize,
        preload: usize,
        db: Option<String>,
    },
    Memory {
        nodes: usize,
        networks: Option<usize>,
        ports: usize,
        db: Option<String>,
    },
    Agent {
        url: String,
        pki: PathBuf,
        node: String,
        vtep: String,
        roles: Vec<String>,
    },
}

fn args() -> Result<Cmd, String> {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().unwrap_or_else(|| "latency".into());
    let mut kv: Vec<(String, Option<String>)> = Vec::new();
    while let Some(k) = it.next() {
        if k == "--quick" {
            kv.push((k, None));
        } else {
            let v = it.next().ok_or(format!("{k} needs a value"))?;
            kv.push((k, Some(v)));
        }
    }
    let quick = kv.iter().any(|(k, _)| k == "--quick");
    let num = |k: &str, default: usize| -> Result<usize, String> {
        match kv.iter().find(|(x, _)| x == k) {
            Some((_, Some(v))) => v.parse().map_err(|e| format!("{k}: {e}")),
            _ => Ok(default),
        }
    };
    let text = |k: &str| kv.iter().find(|(x, _)| x == k).and_then(|(_, v)| v.clone());
    let known: &[&str] = match cmd.as_str() {
        "latency" => &[
            "--agents",
            "--networks",
            "--seq-ports",
            "--burst-ports",
            "--clients",
            "--preload",
            "--db",
            "--quick",
        ],
        "memory" => &["--nodes", "--networks", "--ports", "--db", "--quick"],
        "agent" => &["--url", "--pki", "--node", "--vtep", "--roles"],
        other => return Err(format!("unknown command {other} (latency, memory)")),
    };
    if let Some((k, _)) = kv.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        return Err(format!("{cmd}: unknown argument {k}"));
    }
    let networks = match num("--networks", 0)? {
        0 => None,
        m => Some(m),
    };
    let need = |k: &str| text(k).ok_or(format!("agent: {k} is required"));
    let c = match cmd.as_str() {
        "latency" => Cmd::Latency {
            agents: num("--agents", 2)?.clamp(1, 60_000),
            networks,
            seq_ports: num("--seq-ports", if quick { 25 } else { 300 })?,
            burst_ports: num("--burst-ports", if quick { 25 } else { 1000 })?,
            clients: num("--clients", if quick { 4 } else { 16 })?.max(1),
            preload: num("--preload", 0)?,
            db: text("--db"),
        },
        "memory" => Cmd::Memory {
            nodes: num("--nodes", if quick { 10 } else { 100 })?.clamp(1, 60_000),
            networks,
            ports: num("--ports", if quick { 1000 } else { 10_000 })?.max(1),
            db: text("--db"),
        },
        _ => Cmd::Agent {
            url: need("--url")?,
            pki: PathBuf::from(need("--pki")?),
            node: need("--node")?,
            vtep: need("--vtep")?,
            roles: need("--roles")?.split(',').map(str::to_owned).collect(),
        },
    };
    Ok(c)
}

// ---------------------------------------------------------------------------------------
// The simulated agent (its own process)

fn node_client(pki_dir: &Path, node: &str) -> Result<reqwest::Client, String> {
    let tls = pki::client_config(
        &pki_dir.join(pki::CA_CERT),
        &pki_dir.join(format!("{node}.pem")),
        &pki_dir.join(format!("{node}.key")),
    )
    .map_err(|e| format!("{node}: {e}"))?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())
}

/// Keys the bench tracks in a configuration: own ports by name (the Neutron port id), remote
/// bindings by MAC.
fn keys(cfg: &NodeConfig) -> HashSet<String> {
    cfg.ports
        .iter()
        .map(|p| p.name.clone())
        .chain(cfg.remote_bindings.iter().map(|b| b.mac.to_string()))
        .collect()
}

/// The agent's state between messages: its configuration and the tables built from it.
struct Applied {
    cfg: NodeConfig,
    keys: HashSet<String>,
    _tables: weft_dataplane::tables::Tables,
}

async fn agent(url: &str, pki_dir: &Path, node: &str, vtep: &str, roles: &[String]) -> String {
    // The parent closes our stdin when it is done (or dies): then we stop.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let c = match node_client(pki_dir, node) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let mut failures = 0;
    let mut current: Option<Applied> = None;
    loop {
        if failures >= MAX_FAILURES {
            return format!("{node}: {failures} failed connections in a row; giving up");
        }
        if failures > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // Agents register at every (re)connection, before watching.
        let r = c
            .put(format!("{url}/v1/nodes/{node}"))
            .json(&json!({"vtep_ip": vtep, "roles": roles}))
            .timeout(Duration::from_secs(60))
            .send()
            .await;
        let refused = match r {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(r.status().to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(e) = refused {
            println!("error registration: {e}");
            failures += 1;
            continue;
        }
        let since = current.as_ref().map_or(0, |a| a.cfg.revision);
        match watch(&c, url, node, since, &mut current, &mut failures).await {
            Ok(()) => {}
            Err(e) => {
                println!("error {e}");
                failures += 1;
            }
        }
    }
}

/// One watch connection, until it fails or a message cannot be applied.
async fn watch(
    c: &reqwest::Client,
    url: &str,
    node: &str,
    since: u64,
    current: &mut Option<Applied>,
    failures: &mut u32,
) -> Result<(), String> {
    let mut resp = tokio::time::timeout(
        READ_TIMEOUT,
        c.get(format!("{url}/v1/nodes/{node}/config?since={since}"))
            .send(),
    )
    .await
    .map_err(|_| "watch: no answer in 30 s".to_owned())?
    .map_err(|e| format!("watch: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("watch: {}", resp.status()));
    }
    let mut buf: Vec<u8> = Vec::new();
    loop {
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let msg: WatchMessage =
                serde_json::from_slice(&line).map_err(|e| format!("bad message: {e}"))?;
            if let Err(e) = apply(msg, current) {
                // As the agent does: start again from a snapshot.
                *current = None;
                return Err(e);
            }
            *failures = 0;
        }
        let chunk = tokio::time::timeout(READ_TIMEOUT, resp.chunk())
            .await
            .map_err(|_| "watch: nothing for 30 s".to_owned())?
            .map_err(|e| format!("watch: {e}"))?
            .ok_or("watch: stream closed")?;
        if buf.len() + chunk.len() > MAX_LINE {
            return Err("watch: message too long".into());
        }
        buf.extend_from_slice(&chunk);
    }
}

/// Applies one message; prints `applied REVISION TIME_NS VALIDATE_US KEY...` with the keys new
/// in the configuration.
fn apply(msg: WatchMessage, current: &mut Option<Applied>) -> Result<(), String> {
    let mut cfg = match msg {
        WatchMessage::Heartbeat { .. } => return Ok(()),
        WatchMessage::Snapshot { revision, config } => {
            if config.revision != revision {
                return Err(format!(
                    "snapshot {revision} holds revision {}",
                    config.revision
                ));
            }
            config
        }
        WatchMessage::Delta {
            from,
            revision,
            delta,
        } => {
            let Some(cur) = current.as_ref() else {
                return Err("a delta before any snapshot".into());
            };
            if cur.cfg.revision != from {
                return Err(format!("delta from {from}, at {}", cur.cfg.revision));
            }
            let mut cfg = cur.cfg.clone();
            delta
                .apply(&mut cfg)
                .map_err(|e| format!("delta {from} → {revision}: {e}"))?;
            cfg.revision = revision;
            cfg
        }
    };
    cfg.sort_by_key();
    let t = Instant::now();
    let tables = cfg
        .validate()
        .map_err(|e| format!("revision {} does not validate: {e}", cfg.revision))?;
    let done = now_ns();
    let validate_us = t.elapsed().as_micros();
    let keys = keys(&cfg);
    let mut line = format!("applied {} {done} {validate_us}", cfg.revision);
    for k in &keys {
        if current.as_ref().is_none_or(|a| !a.keys.contains(k)) {
            line.push(' ');
            line.push_str(k);
        }
    }
    println!("{line}");
    *current = Some(Applied {
        cfg,
        keys,
        _tables: tables,
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The controller side: set-up shared by both phases

/// A fresh temporary directory with a PKI: CA, server certificate for 127.0.0.1, and one
/// certificate per node.
fn fresh_dir(kind: &str, nodes: usize) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("weft-bench-{kind}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let pki_dir = dir.join("pki");
    pki::init_ca(&pki_dir).map_err(|e| e.to_string())?;
    pki::issue(&pki_dir, &Subject::Server(vec!["127.0.0.1".into()]), None)
        .map_err(|e| e.to_string())?;
    for k in 0..nodes {
        pki::issue(&pki_dir, &Subject::Node(node_name(k)), None).map_err(|e| e.to_string())?;
    }
    Ok(dir)
}

fn roles(k: usize) -> Vec<String> {
    if k < 2 {
        vec!["hypervisor".into(), "router".into()]
    } else {
        vec!["hypervisor".into()]
    }
}

/// M networks (10.j.0.0/16) and up to two routers: router `r` joins the networks `j` with
/// `j % routers == r`. Returns the network ids.
async fn topology(c: &reqwest::Client, base: &str, m: usize) -> Result<Vec<String>, String> {
    let mut nets = Vec::new();
    let mut subs = Vec::new();
    for j in 0..m {
        let (n, s) = network(c, base, &format!("net{j}"), &format!("10.{j}.0.0/16")).await?;
        nets.push(n);
        subs.push(s);
    }
    let routers = m.min(2);
    for r in 0..routers {
        let v = post(
            c,
            &format!("{base}/v2.0/routers"),
            json!({"router": {"name": format!("r{r}")}}),
        )
        .await?;
        let id = v["router"]["id"].as_str().ok_or("no router id")?.to_owned();
        for s in subs.iter().skip(r).step_by(routers) {
            let r = c
                .put(format!("{base}/v2.0/routers/{id}/add_router_interface"))
                .json(&json!({"subnet_id": s}))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("add_router_interface: {}", r.status()));
            }
        }
    }
    Ok(nets)
}

fn port_body(net: &str, node: usize) -> Value {
    json!({"network_id": net, "binding:host_id": node_name(node), "device_owner": "compute:nova"})
}

/// Creates `count` ports in bulk requests of 100, port `i` bound to node `i % nodes` on that
/// node's network.
async fn bulk_ports(
    c: &reqwest::Client,
    base: &str,
    nets: &[String],
    nodes: usize,
    count: usize,
) -> Result<(), String> {
    let mut i = 0;
    while i < count {
        let batch: Vec<Value> = (i..count.min(i + 100))
            .map(|i| port_body(&nets[(i % nodes) % nets.len()], i % nodes))
            .collect();
        i += batch.len();
        post(c, &format!("{base}/v2.0/ports"), json!({ "ports": batch })).await?;
    }
    Ok(())
}

/// Waits until the compiler has caught up with every commit so far (bounded: 2 minutes).
async fn compiled(ctl: &Controller) -> Result<(), String> {
    let rev = ctl.store.subscribe().borrow().0;
    for _ in 0..12 {
        if ctl.hub.wait_compiled(rev).await {
            return Ok(());
        }
    }
    Err(format!(
        "the compiler did not reach revision {rev} in 2 minutes"
    ))
}

/// What both phases start with: a fresh directory and PKI, the controller with the node API,
/// an HTTP client for the Neutron API, the networks and routers.
struct Bench {
    dir: PathBuf,
    pki_dir: PathBuf,
    backend: &'static str,
    ctl: Controller,
    node_base: String,
    c: reqwest::Client,
    nets: Vec<String>,
}

impl Bench {
    async fn start(
        kind: &str,
        nodes: usize,
        networks: Option<usize>,
        db: Option<String>,
        clients: usize,
    ) -> Result<Bench, String> {
        let dir = fresh_dir(kind, nodes)?;
        let pki_dir = dir.join("pki");
        let db_url = db.unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.display()));
        let ctl = Controller::start(&db_url, Some(pki_dir.clone()), 32).await?;
        let node_base = ctl.node_base.clone().ok_or("the node API is off")?;
        let c = reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        let m = networks.unwrap_or((nodes / 2).clamp(1, 10));
        let nets = topology(&c, &ctl.base, m).await?;
        Ok(Bench {
            dir,
            pki_dir,
            backend: if db_url.starts_with("postgres") {
                "postgresql"
            } else {
                "sqlite"
            },
            ctl,
            node_base,
            c,
            nets,
        })
    }
}

// ---------------------------------------------------------------------------------------
// latency

/// What the agents told us.
#[derive(Debug, Default)]
struct Seen {
    /// Key (port id or MAC) → node → when its agent first applied a configuration with it.
    first: HashMap<String, HashMap<usize, u64>>,
    /// Per node, the last revision applied.
    applied: Vec<u64>,
    /// Validation times (µs) of every configuration applied, after the set-up.
    validate_us: Vec<u64>,
    record_validate: bool,
    /// Errors the agents reported (each is followed by a reconnection).
    errors: Vec<String>,
    /// Agents whose output ended.
    exited: BTreeSet<usize>,
}

fn lock(s: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read_line(seen: &Mutex<Seen>, k: usize, line: &str) {
    let mut s = lock(seen);
    let mut it = line.split(' ');
    match it.next() {
        Some("applied") => {
            let mut num = || it.next().and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
            let (rev, t, v) = (num(), num(), num());
            if let Some(a) = s.applied.get_mut(k) {
                *a = rev;
            }
            if s.record_validate {
                s.validate_us.push(v);
            }
            for key in it {
                s.first
                    .entry(key.to_owned())
                    .or_default()
                    .entry(k)
                    .or_insert(t);
            }
        }
        _ => s.errors.push(format!("{}: {line}", node_name(k))),
    }
}

/// A port created by the bench and where it must arrive.
struct Created {
    id: String,
    mac: String,
    host: usize,
    net: usize,
    t0: u64,
    api: Duration,
}

/// Creates the port for index `i` (bound to node `i % n`).
async fn create(
    c: &reqwest::Client,
    base: &str,
    nets: &[String],
    n: usize,
    i: usize,
) -> Result<Created, String> {
    let host = i % n;
    let net = host % nets.len();
    let t0 = now_ns();
    let start = Instant::now();
    let v = post(
        c,
        &format!("{base}/v2.0/ports"),
        json!({ "port": port_body(&nets[net], host) }),
    )
    .await?;
    let api = start.elapsed();
    let p = &v["port"];
    Ok(Created {
        id: p["id"].as_str().ok_or("no port id")?.to_owned(),
        mac: p["mac_address"]
            .as_str()
            .ok_or("no MAC")?
            .to_ascii_lowercase(),
        host,
        net,
        t0,
        api,
    })
}

/// The (port, node, key) arrivals a set of ports needs.
fn expected<'a>(
    ports: &'a [Created],
    members: &'a [BTreeSet<usize>],
) -> impl Iterator<Item = (&'a Created, usize, &'a str)> {
    ports.iter().flat_map(move |p| {
        members[p.net]
            .iter()
            .copied()
            .chain(std::iter::once(p.host))
            .collect::<BTreeSet<usize>>()
            .into_iter()
            .map(move |n| (p, n, if n == p.host { &p.id[..] } else { &p.mac[..] }))
    })
}

/// Waits (bounded) until every expected arrival is seen; then the figures.
async fn measure(seen: &Mutex<Seen>, ports: &[Created], members: &[BTreeSet<usize>]) -> Value {
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        let missing = {
            let s = lock(seen);
            expected(ports, members)
                .filter(|(_, n, key)| s.first.get(*key).is_none_or(|m| !m.contains_key(n)))
                .count()
        };
        if missing == 0 || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = lock(seen);
    let mut per_node = Vec::new();
    let mut all_nodes = Vec::new();
    let mut failures = Vec::new();
    let mut worst: BTreeMap<&str, Duration> = BTreeMap::new();
    let mut complete: HashSet<&str> = ports.iter().map(|p| p.id.as_str()).collect();
    for (p, n, key) in expected(ports, members) {
        match s.first.get(key).and_then(|m| m.get(&n)) {
            Some(t) => {
                let d = Duration::from_nanos(t.saturating_sub(p.t0));
                per_node.push(d);
                let w = worst.entry(&p.id).or_default();
                *w = (*w).max(d);
            }
            None => {
                complete.remove(p.id.as_str());
                failures.push(format!("port {} never reached {}", p.id, node_name(n)));
            }
        }
    }
    for (id, d) in worst {
        if complete.contains(id) {
            all_nodes.push(d);
        }
    }
    let mut api: Vec<Duration> = ports.iter().map(|p| p.api).collect();
    let pairs = per_node.len() + failures.len();
    json!({
        "ports": ports.len(),
        "affected_nodes_per_port": (pairs as f64 / ports.len().max(1) as f64 * 10.0).round() / 10.0,
        "api_ms": summary(&mut api),
        "per_node_ms": summary(&mut per_node),
        "all_nodes_ms": summary(&mut all_nodes),
        "failures": failures.len(),
        "failure_examples": failures.iter().take(5).collect::<Vec<_>>(),
    })
}

async fn latency(
    agents: usize,
    networks: Option<usize>,
    seq_ports: usize,
    burst_ports: usize,
    clients: usize,
    preload: usize,
    db: Option<String>,
) -> Result<Value, String> {
    let n = agents;
    let Bench {
        dir,
        pki_dir,
        backend,
        ctl,
        node_base,
        c,
        nets,
    } = Bench::start("nodes", n, networks, db, clients).await?;
    let m = nets.len();

    // The agents.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let seen = Arc::new(Mutex::new(Seen {
        applied: vec![0; n],
        ..Seen::default()
    }));
    let mut children = Vec::new();
    let setup = Instant::now();
    for k in 0..n {
        let mut child = tokio::process::Command::new(&exe)
            .args(["agent", "--url", &node_base, "--pki"])
            .arg(&pki_dir)
            .args(["--node", &node_name(k), "--vtep", &vtep(k)])
            .args(["--roles", &roles(k).join(",")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: {e}", exe.display()))?;
        let out = child.stdout.take().ok_or("no agent stdout")?;
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(out).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                read_line(&seen, k, &l);
            }
            lock(&seen).exited.insert(k);
        });
        children.push(child);
    }
    // Every agent has applied a first configuration; then one seed port per node on its
    // network, and everything settled.
    wait_for(
        &seen,
        Duration::from_secs(120),
        "every agent's first snapshot",
        |s| s.applied.iter().all(|r| *r > 0),
    )
    .await?;
    for k in 0..n {
        post(
            &c,
            &format!("{}/v2.0/ports", ctl.base),
            json!({ "port": port_body(&nets[k % m], k) }),
        )
        .await?;
    }
    bulk_ports(&c, &ctl.base, &nets, n, preload).await?;
    compiled(&ctl).await?;
    let revisions = ctl.hub.revisions();
    wait_for(
        &seen,
        Duration::from_secs(120),
        "the agents to catch up",
        |s| (0..n).all(|k| revisions.get(&node_name(k)) == Some(&s.applied[k])),
    )
    .await?;
    let setup_s = setup.elapsed().as_secs_f64();
    // Who has a segment on each network (hypervisors with a seed port, the router's node).
    let members: Vec<BTreeSet<usize>> = nets
        .iter()
        .map(|net| {
            (0..n)
                .filter(|k| {
                    ctl.hub
                        .config(&node_name(*k))
                        .is_some_and(|cfg| cfg.segments.iter().any(|s| s.name == *net))
                })
                .collect()
        })
        .collect();
    {
        let mut s = lock(&seen);
        s.record_validate = true;
        s.errors.clear();
    }

    // 1. One request at a time.
    let mut seq = Vec::new();
    let start = Instant::now();
    for i in 0..seq_ports {
        seq.push(create(&c, &ctl.base, &nets, n, i).await?);
    }
    let seq_s = start.elapsed().as_secs_f64();
    let mut sequential = measure(&seen, &seq, &members).await;
    sequential["ports_per_second"] = json!((seq_ports as f64 / seq_s).round());

    // 2. C concurrent clients.
    let next = Arc::new(AtomicUsize::new(seq_ports));
    let end = seq_ports + burst_ports;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (c, base, nets, next) = (c.clone(), ctl.base.clone(), nets.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    return Ok::<_, String>(out);
                }
                out.push(create(&c, &base, &nets, n, i).await?);
            }
        }));
    }
    let mut burst = Vec::new();
    for t in tasks {
        burst.extend(t.await.map_err(|e| e.to_string())??);
    }
    let burst_s = start.elapsed().as_secs_f64();
    let mut concurrent = measure(&seen, &burst, &members).await;
    concurrent["clients"] = json!(clients);
    concurrent["ports_per_second"] = json!((burst_ports as f64 / burst_s).round());

    let (validate, errors, exited) = {
        let mut s = lock(&seen);
        let mut v: Vec<Duration> = s
            .validate_us
            .iter()
            .map(|u| Duration::from_micros(*u))
            .collect();
        (
            summary(&mut v),
            std::mem::take(&mut s.errors),
            s.exited.len(),
        )
    };
    drop(children);
    ctl.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "scenario": "latency",
        "backend": backend,
        "agents": n,
        "agent_processes": true,
        "networks": m,
        "routers": m.min(2),
        "preloaded_ports": preload,
        "setup_seconds": (setup_s * 10.0).round() / 10.0,
        "nodes_per_network": members.iter().map(BTreeSet::len).collect::<Vec<_>>(),
        "sequential": sequential,
        "concurrent": concurrent,
        "agent_validate_ms": validate,
        "agent_errors": errors.len(),
        "agent_error_examples": errors.iter().take(5).collect::<Vec<_>>(),
        "agents_exited": exited,
    }))
}

/// Polls `ok` on what the agents said until it holds, at most `limit`.
async fn wait_for(
    seen: &Mutex<Seen>,
    limit: Duration,
    what: &str,
    ok: impl Fn(&Seen) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        {
            let s = lock(seen);
            if ok(&s) {
                return Ok(());
            }
            if !s.exited.is_empty() {
                return Err(format!(
                    "waiting for {what}: agents exited: {:?}; errors: {:?}",
                    s.exited,
                    s.errors.iter().take(5).collect::<Vec<_>>()
                ));
            }
        }
        if Instant::now() >= deadline {
            let s = lock(seen);
            return Err(format!(
                "waiting for {what}: timed out after {} s; errors: {:?}",
                limit.as_secs(),
                s.errors.iter().take(5).collect::<Vec<_>>()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// memory

/// This process's `VmRSS` and `VmHWM`, in KiB.
fn rss_kib() -> Result<(u64, u64), String> {
    let s = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or(format!("/proc/self/status: no {name}"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// KiB as MiB, rounded to 0.1.
fn mib(kib: f64) -> f64 {
    (kib / 1024.0 * 10.0).round() / 10.0
}

async fn memory(
    nodes: usize,
    networks: Option<usize>,
    ports: usize,
    db: Option<String>,
) -> Result<Value, String> {
    let Bench {
        dir,
        pki_dir,
        backend,
        ctl,
        node_base,
        c,
        nets,
    } = Bench::start("memory", nodes, networks, db, 1).await?;
    let m = nets.len();
    for k in 0..nodes {
        let nc = node_client(&pki_dir, &node_name(k))?;
        let r = nc
            .put(format!("{node_base}/v1/nodes/{}", node_name(k)))
            .json(&json!({"vtep_ip": vtep(k), "roles": roles(k)}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("register {}: {}", node_name(k), r.status()));
        }
    }
    compiled(&ctl).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (before, _) = rss_kib()?;

    let start = Instant::now();
    bulk_ports(&c, &ctl.base, &nets, nodes, ports).await?;
    let create_s = start.elapsed().as_secs_f64();
    compiled(&ctl).await?;
    let caught_up_s = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after, hwm) = rss_kib()?;
    // What is live, without the memory the allocator keeps from freed blocks (the compile
    // loop's transient store snapshots, mostly).
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it takes no pointers.
    unsafe { libc::malloc_trim(0) };
    let (trimmed, _) = rss_kib()?;

    // The compiled configurations, for scale.
    let mut json_bytes = 0usize;
    let (mut own, mut remote) = (0usize, 0usize);
    for k in 0..nodes {
        if let Some(cfg) = ctl.hub.config(&node_name(k)) {
            json_bytes += serde_json::to_vec(&*cfg).map_or(0, |v| v.len());
            own += cfg.ports.len();
            remote += cfg.remote_bindings.len();
        }
    }
    // What one full compilation costs at this size (the compile loop reads the whole store
    // on every change and recompiles the nodes it touches).
    let t = Instant::now();
    let snap = ctl.store.snapshot().await.map_err(|e| e.to_string())?;
    let snapshot_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let all = Compiler::new().update(&snap, None).len();
    let compile_all_ms = t.elapsed().as_secs_f64() * 1000.0;

    ctl.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    let per_10k = |kib: u64| mib(kib.saturating_sub(before) as f64 * 10_000.0 / ports as f64);
    Ok(json!({
        "scenario": "memory",
        "backend": backend,
        "nodes": nodes,
        "networks": m,
        "ports": ports,
        "create_seconds": (create_s * 10.0).round() / 10.0,
        "compiled_after_seconds": (caught_up_s * 10.0).round() / 10.0,
        "rss_before_mib": mib(before as f64),
        "rss_after_mib": mib(after as f64),
        "rss_peak_mib": mib(hwm as f64),
        "rss_after_trim_mib": mib(trimmed as f64),
        "mib_per_10k_ports": per_10k(after),
        "mib_per_10k_ports_after_trim": per_10k(trimmed),
        "configs": {
            "nodes": all,
            "json_bytes": json_bytes,
            "json_mib": mib(json_bytes as f64 / 1024.0),
            "ports": own,
            "remote_bindings": remote,
        },
        "store_snapshot_ms": snapshot_ms.round(),
        "compile_all_nodes_ms": compile_all_ms.round(),
    }))
}

// ---------------------------------------------------------------------------------------

fn summary_line(v: &Value) -> String {
    let f = |p: &Value| {
        format!(
            "p50 {} ms, p99 {} ms, max {} ms",
            p["p50"], p["p99"], p["max"]
        )
    };
    match v["scenario"].as_str() {
        Some("latency") => {
            let mut s = format!(
                "{} agents (processes), {} networks, {} backend\n",
                v["agents"], v["networks"], v["backend"]
            );
            for (name, ph) in [
                ("sequential", &v["sequential"]),
                ("concurrent", &v["concurrent"]),
            ] {
                s += &format!(
                    "  {name}: {} ports, {} ports/s, {} affected nodes/port, {} failures\n    per node: {}\n    all nodes: {}\n    API call: {}\n",
                    ph["ports"],
                    ph["ports_per_second"],
                    ph["affected_nodes_per_port"],
                    ph["failures"],
                    f(&ph["per_node_ms"]),
                    f(&ph["all_nodes_ms"]),
                    f(&ph["api_ms"]),
                );
            }
            s + &format!(
                "  agent validate(): {}; agent errors: {}",
                f(&v["agent_validate_ms"]),
                v["agent_errors"]
            )
        }
        _ => format!(
            "{} ports over {} nodes: RSS {} → {} MiB ({} after malloc_trim), {} MiB per 10k ports ({} after trim); configs {} MiB of JSON; full compile {} ms",
            v["ports"],
            v["nodes"],
            v["rss_before_mib"],
            v["rss_after_mib"],
            v["rss_after_trim_mib"],
            v["mib_per_10k_ports"],
            v["mib_per_10k_ports_after_trim"],
            v["configs"]["json_mib"],
            v["compile_all_nodes_ms"]
        ),
    }
}

fn main() {
    let cmd = match args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("weft-bench-nodes: {e}");
            std::process::exit(2);
        }
    };
    // An agent is one of many processes: one thread each.
    let rt = match &cmd {
        Cmd::Agent { .. } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weft-bench-nodes: {e}");
            std::process::exit(1);
        }
    };
    let r = match cmd {
        Cmd::Agent {
            url,
            pki,
            node,
            vtep,
            roles,
        } => {
            let e = rt.block_on(agent(&url, &pki, &node, &vtep, &roles));
            eprintln!("weft-bench-nodes agent: {e}");
            std::process::exit(1);
        }
        Cmd::Latency {
            agents,
            networks,
            seq_ports,
            burst_ports,
            clients,
            preload,
            db,
        } => rt.block_on(latency(
            agents,
            networks,
            seq_ports,
            burst_ports,
            clients,
            preload,
            db,
        )),
        Cmd::Memory {
            nodes,
            networks,
            ports,
            db,
        } => rt.block_on(memory(nodes, networks, ports, db)),
    };
    match r {
        Ok(v) => {
            eprintln!("{}", summary_line(&v));
            println!("{v}");
            let failed = ["sequential", "concurrent"]
                .iter()
                .any(|ph| v[ph]["failures"].as_u64().is_some_and(|f| f > 0));
            if failed {
                eprintln!("weft-bench-nodes: some ports never reached a node they affect");
                std::process::exit(3);
            }
        }
        Err(e) => {
            eprintln!("weft-bench-nodes: {e}");
            std::process::exit(1);
        }
    }
}
