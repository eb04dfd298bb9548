//! End-to-end comparison: Weft against the Linux kernel doing the same job, in one run.
//!
//! Two copies of the topology of the end-to-end tests (two hypervisor namespaces joined by an
//! underlay veth, one VM namespace on each, tenant VNI 100, VM MTU 1450) run side by side: one
//! with `weft agent` on both hypervisors, one with the kernel's vxlan + bridge (static FDB
//! entries, as Weft has bindings). Measurements alternate between the two, `--rounds` times:
//!
//! - TCP throughput: iperf3, one stream, VM to VM;
//! - 64-byte packet rate: UDP datagrams of 18 bytes (60-byte frames, 64 on a wire with the FCS)
//!   blasted with sendmmsg from one VM and counted by the other;
//! - latency: ping round-trip time, average of 200 echoes.
//!
//! It prints medians for both and the ratio Weft/kernel. Run as root after building the
//! release binaries: `scripts/bench-e2e.sh` (or `sudo target/release/weft-e2e`).
//!
//! `weft-e2e blast` and `weft-e2e sink` are the traffic generator and counter it runs inside the
//! VM namespaces.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use weft_dataplane::{BATCH_SIZE, Batch, BufPool};
use weft_dataplane_io::sys::{PollEntry, poll};
use weft_dataplane_io::udp::{UdpConfig, UdpUnderlay};
use weft_testlab::Lab;

const MAC1: &str = "fa:16:3e:00:00:01";
const MAC2: &str = "fa:16:3e:00:00:02";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let r = match args.get(1).map(String::as_str) {
        Some("blast") => blast(&args[2..]),
        Some("sink") => sink(&args[2..]),
        Some("-h" | "--help") => {
            println!(
                "usage: weft-e2e [--rounds N] [--seconds S] [--weft PATH] | blast TO SECS | sink BIND SECS"
            );
            Ok(())
        }
        _ => compare(&args[1..]),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-e2e: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `blast TO SECS`: sends 18-byte UDP datagrams to TO as fast as sendmmsg allows for SECS
/// seconds; prints how many were sent.
fn blast(args: &[String]) -> Result<(), String> {
    let to: SocketAddr = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or("blast TO SECS")?;
    let secs: f64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .ok_or("blast TO SECS")?;
    let local: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .map_err(|_| "addr")?;
    let mut s = UdpUnderlay::bind(local, &UdpConfig::default()).map_err(|e| e.to_string())?;
    let payload = [0x5au8; 18];
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    while Instant::now() < end {
        let mut items = (0..BATCH_SIZE).map(|_| (to, &payload[..]));
        let st = s.send_batch(&mut items).map_err(|e| e.to_string())?;
        sent += st.sent;
    }
    println!("{sent}");
    Ok(())
}

/// `sink BIND SECS`: counts datagrams arriving on BIND; stops SECS seconds after the first, or
/// 1 s after the last. Prints `packets seconds` (from the first packet to the last).
fn sink(args: &[String]) -> Result<(), String> {
    let bind: SocketAddr = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or("sink BIND SECS")?;
    let secs: f64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .ok_or("sink BIND SECS")?;
    let mut s = UdpUnderlay::bind(bind, &UdpConfig::default()).map_err(|e| e.to_string())?;
    let mut pool = BufPool::new(256, 2048);
    let mut batch = Batch::new();
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let mut n = 0u64;
    let give_up = Instant::now() + Duration::from_secs_f64(secs + 30.0);
    loop {
        let mut fds = [PollEntry::readable(s.fd())];
        poll(&mut fds, Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
        let st = s
            .recv_batch(&mut pool, &mut batch)
            .map_err(|e| e.to_string())?;
        batch.drain(|b| pool.free(b));
        let now = Instant::now();
        if st.received > 0 {
            n += st.received;
            last = now;
            first.get_or_insert(now);
        }
        match first {
            Some(f)
                if now - f > Duration::from_secs_f64(secs)
                    || now - last > Duration::from_secs(1) =>
            {
                break;
            }
            None if now > give_up => break,
            _ => {}
        }
    }
    let span = first.map_or(0.0, |f| (last - f).as_secs_f64());
    println!("{n} {span}");
    Ok(())
}

struct Side {
    name: &'static str,
    a1: String,
    a2: String,
    lab: Lab,
}

fn topology(weft: &PathBuf, kernel: bool) -> Side {
    let mut lab = Lab::new(weft);
    let hv1 = lab.netns("hv1");
    let hv2 = lab.netns("hv2");
    lab.underlay(&hv1, "192.168.100.1/24", &hv2, "192.168.100.2/24");
    let a1 = lab.vm(&hv1, "a1", "tapa1", MAC1, &["10.0.0.1/24"]);
    let a2 = lab.vm(&hv2, "a2", "tapa2", MAC2, &["10.0.0.2/24"]);
    for (me, other, hv, mac_other) in [(1, 2, &hv1, MAC2), (2, 1, &hv2, MAC1)] {
        if kernel {
            lab.ip(hv, &format!("link add vx100 type vxlan id 100 local 192.168.100.{me} dstport 4789 dev ul nolearning"));
            lab.ip(hv, "link add br100 type bridge");
            lab.ip(hv, "link set vx100 master br100");
            lab.ip(hv, &format!("link set tapa{me} master br100"));
            lab.ip(hv, "link set vx100 up");
            lab.ip(hv, "link set br100 up");
            for mac in ["00:00:00:00:00:00", mac_other] {
                weft_testlab::must(
                    "bridge",
                    &[
                        "-n",
                        hv,
                        "fdb",
                        "append",
                        mac,
                        "dev",
                        "vx100",
                        "dst",
                        &format!("192.168.100.{other}"),
                    ],
                );
            }
        } else {
            let mac_me = if me == 1 { MAC1 } else { MAC2 };
            let cfg = format!(
                "node = \"hv{me}\"\n[underlay]\nlocal_ip = \"192.168.100.{me}\"\n[[segments]]\nvni = 100\n\
                 [[ports]]\nname = \"vm-a{me}\"\ninterface = \"tapa{me}\"\nvni = 100\nmac = \"{mac_me}\"\n\
                 ips = [\"10.0.0.{me}\"]\n[[remote_vteps]]\nip = \"192.168.100.{other}\"\nvnis = [100]\n\
                 [[remote_bindings]]\nvni = 100\nmac = \"{mac_other}\"\nips = [\"10.0.0.{other}\"]\n\
                 vtep = \"192.168.100.{other}\"\n"
            );
            lab.agent(&format!("agent-hv{me}"), hv, &cfg);
        }
    }
    assert!(
        lab.ping_until(&a1, "10.0.0.2", 10),
        "no connectivity through {}",
        if kernel { "the kernel" } else { "weft" }
    );
    Side {
        name: if kernel { "kernel" } else { "weft" },
        a1,
        a2,
        lab,
    }
}

fn tcp_gbps(s: &mut Side, secs: u32) -> f64 {
    let t = secs.to_string();
    let o = s.lab.try_exec(
        &s.a1,
        &["timeout", "60", "iperf3", "-c", "10.0.0.2", "-t", &t, "-J"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
        / 1e9
}

/// (delivered, offered) 64-byte packet rates in Mpps.
fn small_mpps(s: &mut Side, self_exe: &str, secs: u32) -> (f64, f64) {
    let label = format!("sink-{}-{}", s.name, Instant::now().elapsed().as_nanos());
    let sink = s.lab.spawn(
        &label,
        &s.a2,
        &[self_exe, "sink", "10.0.0.2:9000", &(secs - 1).to_string()],
    );
    std::thread::sleep(Duration::from_millis(300));
    let o = s.lab.try_exec(
        &s.a1,
        &[self_exe, "blast", "10.0.0.2:9000", &secs.to_string()],
    );
    let sent: f64 = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0);
    s.lab.wait(sink, Duration::from_secs(u64::from(secs) + 40));
    let out = weft_testlab::read(&s.lab.path(&format!("{label}.log")));
    let mut it = out.split_whitespace();
    let n: f64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let span: f64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let delivered = if span > 0.0 { n / span / 1e6 } else { 0.0 };
    (delivered, sent / f64::from(secs) / 1e6)
}

fn rtt_ms(s: &mut Side) -> f64 {
    let o = s.lab.try_exec(
        &s.a1,
        &["ping", "-n", "-q", "-c", "200", "-i", "0.005", "10.0.0.2"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    // rtt min/avg/max/mdev = 0.041/0.058/0.120/0.010 ms
    out.lines()
        .find(|l| l.contains("min/avg/max"))
        .and_then(|l| l.split('=').nth(1))
        .and_then(|v| v.trim().split('/').nth(1))
        .and_then(|a| a.parse().ok())
        .unwrap_or(f64::NAN)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn compare(args: &[String]) -> Result<(), String> {
    let mut rounds = 3u32;
    let mut secs = 5u32;
    let self_exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut weft = self_exe.with_file_name("weft");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => rounds = it.next().and_then(|v| v.parse().ok()).ok_or("--rounds N")?,
            "--seconds" => {
                secs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--seconds S")?
            }
            "--weft" => weft = it.next().map(PathBuf::from).ok_or("--weft PATH")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !weft.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release)",
            weft.display()
        ));
    }
    let self_exe = self_exe.to_string_lossy().into_owned();
    let mut sides = [topology(&weft, false), topology(&weft, true)];
    for s in &mut sides {
        let (a2, name) = (s.a2.clone(), format!("iperf3-{}", s.name));
        s.lab.spawn(&name, &a2, &["iperf3", "-s", "-B", "10.0.0.2"]);
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut results: Vec<[Vec<f64>; 4]> = vec![Default::default(), Default::default()];
    for round in 0..rounds {
        for (i, s) in sides.iter_mut().enumerate() {
            let t = tcp_gbps(s, secs);
            let (p, offered) = small_mpps(s, &self_exe, secs);
            let l = rtt_ms(s);
            eprintln!(
                "round {}: {:<6} TCP {t:.2} Gbit/s, 64 B {p:.3} Mpps (offered {offered:.3}), RTT {l:.3} ms",
                round + 1,
                s.name
            );
            results[i][0].push(t);
            results[i][1].push(p);
            results[i][2].push(l);
            results[i][3].push(offered);
        }
    }
    let med = |i: usize, k: usize| median(results[i][k].clone());
    println!("\nend-to-end, medians of {rounds} rounds of {secs} s (same run, alternating):");
    println!(
        "{:<26} {:>12} {:>12} {:>12}",
        "", "weft", "kernel", "weft/kernel"
    );
    for (k, what, unit) in [
        (0, "TCP throughput", "Gbit/s"),
        (1, "64 B packet rate", "Mpps"),
        (3, "64 B offered by sender", "Mpps"),
        (2, "ping RTT (avg)", "ms"),
    ] {
        let (w, kk) = (med(0, k), med(1, k));
        println!(
            "{:<26} {:>12} {:>12} {:>12.2}",
            format!("{what} ({unit})"),
            format!("{w:.3}"),
            format!("{kk:.3}"),
            w / kk
        );
    }
    Ok(())
}
