//! API benchmark of the controller (issue 5): ports created per second and the latency of port
//! creation (p50/p99) with concurrent clients over HTTP, and allocation in a nearly full /16.
//!
//! ```text
//! weft-bench-api [--db URL] [--ports N] [--clients C] [--fill N]
//! ```
//! The controller runs in this process (the same `Server` as `weft controller`, `--auth
//! noauth`) on 127.0.0.1 and an ephemeral port; the clients are HTTP clients in the same
//! process. Default database: a fresh SQLite file in a temporary directory. Prints one JSON
//! object with the figures.

use std::time::Instant;

use serde_json::{Value, json};
use weft_bench::controller::{Controller, network, pct, post};

struct Args {
    db: Option<String>,
    ports: usize,
    clients: usize,
    fill: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        db: None,
        ports: 2000,
        clients: 16,
        fill: 65_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--db" => a.db = Some(v()?),
            "--ports" => a.ports = v()?.parse().map_err(|e| format!("--ports: {e}"))?,
            "--clients" => a.clients = v()?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--fill" => a.fill = v()?.parse().map_err(|e| format!("--fill: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.fill > 65_500 {
        return Err("--fill: a /16 has 65533 pool addresses; leave some free".into());
    }
    Ok(a)
}

async fn run(a: Args) -> Result<Value, String> {
    let dir = std::env::temp_dir().join(format!("weft-bench-api-{}", std::process::id()));
    let db =
        a.db.clone()
            .unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.display()));
    let ctl = Controller::start(&db, None, 32).await?;
    let base = ctl.base.clone();
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(a.clients)
        .build()
        .map_err(|e| e.to_string())?;

    // 1. Port creation throughput and latency, C concurrent clients, N ports on a /16.
    let (net, _) = network(&c, &base, "bench", "10.0.0.0/16").await?;
    let per = a.ports.div_ceil(a.clients.max(1));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.clients {
        let c = c.clone();
        let url = format!("{base}/v2.0/ports");
        let net = net.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for _ in 0..per {
                let t = Instant::now();
                post(&c, &url, json!({"port": {"network_id": net}})).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, String>(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.map_err(|e| e.to_string())??);
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let created = lat.len();

    // 2. Allocation in a nearly full /16: fill with bulk requests, then time single creations.
    let (full, _) = network(&c, &base, "full", "10.1.0.0/16").await?;
    let fill_start = Instant::now();
    let mut left = a.fill;
    while left > 0 {
        let n = left.min(500);
        let ports: Vec<Value> = (0..n).map(|_| json!({"network_id": full})).collect();
        post(&c, &format!("{base}/v2.0/ports"), json!({ "ports": ports })).await?;
        left -= n;
    }
    let fill_secs = fill_start.elapsed().as_secs_f64();
    let mut nearly = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        post(
            &c,
            &format!("{base}/v2.0/ports"),
            json!({"port": {"network_id": full}}),
        )
        .await?;
        nearly.push(t.elapsed());
    }
    nearly.sort();

    ctl.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "backend": if db.starts_with("postgres") { "postgresql" } else { "sqlite" },
        "clients": a.clients,
        "ports_created": created,
        "ports_per_second": (created as f64 / secs).round(),
        "create_latency_ms": {"p50": pct(&lat, 500), "p99": pct(&lat, 990)},
        "nearly_full_16": {
            "prefilled": a.fill,
            "prefill_ports_per_second": (a.fill as f64 / fill_secs).round(),
            "free_before": 65_533 - a.fill,
            "create_latency_ms": {"p50": pct(&nearly, 500), "p99": pct(&nearly, 990)},
        },
    }))
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("weft-bench-api: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weft-bench-api: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(run(a)) {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("weft-bench-api: {e}");
            std::process::exit(1);
        }
    }
}
