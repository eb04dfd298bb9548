//! End-to-end tests of `weft agent` as a process: reload on SIGHUP without dropping established
//! traffic, refusal of invalid configurations, ports whose interface appears late, a clean exit
//! on SIGTERM, and `weft check-config` / `weft stats` / `weft capture` from the command line.
//! And an agent programmed over mutual TLS by a scripted stand-in for the controller
//! (`node_api`): snapshot, deltas, taps, status reports, resnapshot, headless restart.

mod common;
#[path = "common/node_api.rs"]
mod node_api;

use std::time::Duration;

use common::{eventually, must, run, stats, weft_bin};

const MAC1: &str = "fa:16:3e:00:00:01";
const MAC2: &str = "fa:16:3e:00:00:02";

fn config(me: u8, revision: u64, extra_port: bool) -> String {
    let other = 3 - me;
    let (mac_me, mac_other) = if me == 1 { (MAC1, MAC2) } else { (MAC2, MAC1) };
    let extra = if extra_port {
        format!(
            r#"
[[ports]]
name = "vm-c{me}"
interface = "tapc{me}"
vni = 100
mac = "fa:16:3e:00:00:3{me}"
ips = ["10.0.0.3{me}"]
"#
        )
    } else {
        String::new()
    };
    format!(
        r#"
node = "hv{me}"
revision = {revision}
[underlay]
local_ip = "192.168.100.{me}"
[[segments]]
vni = 100
[[ports]]
name = "vm-a{me}"
interface = "tapa{me}"
vni = 100
mac = "{mac_me}"
ips = ["10.0.0.{me}"]
{extra}
[[remote_vteps]]
ip = "192.168.100.{other}"
vnis = [100]
[[remote_bindings]]
vni = 100
mac = "{mac_other}"
ips = ["10.0.0.{other}"]
vtep = "192.168.100.{other}"
"#
    )
}

/// SIGHUP swaps in a new configuration while a ping runs every 10 ms: not one echo is lost, the
/// new revision runs, and a port added by the reload whose interface appears only later is
/// attached as soon as it exists. An invalid file is refused and changes nothing. SIGTERM exits
/// with status 0 and removes the control socket.
#[test]
fn reload_keeps_traffic_and_sigterm_exits_cleanly() {
    let mut lab = common::lab();
    let hv1 = lab.netns("hv1");
    let hv2 = lab.netns("hv2");
    lab.underlay(&hv1, "192.168.100.1/24", &hv2, "192.168.100.2/24");
    let a1 = lab.vm(&hv1, "a1", "tapa1", MAC1, &["10.0.0.1/24"]);
    let _a2 = lab.vm(&hv2, "a2", "tapa2", MAC2, &["10.0.0.2/24"]);
    let ag1 = lab.agent("agent-hv1", &hv1, &config(1, 1, false));
    let _ag2 = lab.agent("agent-hv2", &hv2, &config(2, 1, false));
    assert!(lab.ping_until(&a1, "10.0.0.2", 5));

    // 600 echoes, 10 ms apart (6 s); reload twice in the middle.
    let ping_log = lab.path("ping.log");
    let ping = lab.spawn(
        "ping",
        &a1,
        &[
            "ping", "-n", "-q", "-c", "600", "-i", "0.01", "-W", "1", "10.0.0.2",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&ag1.config, config(1, 2, true)).unwrap();
    lab.signal(ag1.pid, libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(15), || stats(&ag1).revision == 2),
        "revision 2 not running"
    );
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&ag1.config, config(1, 3, true)).unwrap();
    let o = run(
        weft_bin(),
        &["reload", "--control", &ag1.control.to_string_lossy()],
    );
    assert!(
        o.status.success(),
        "weft reload: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(stats(&ag1).revision, 3);
    assert!(
        lab.exited(ping).is_none(),
        "the ping ended before both reloads had landed: they were not made under traffic"
    );
    let st = lab
        .wait(ping, Duration::from_secs(30))
        .expect("ping finished");
    let out = common::read(&ping_log);
    assert!(
        st.success() && out.contains("600 received"),
        "echoes lost across reloads:\n{out}"
    );
    let s = stats(&ag1);
    assert_eq!(s.loads, 3);

    // The port added by the reload is detached until its interface exists.
    let c = s.port("vm-c1").expect("vm-c1 in stats");
    assert!(!c.attached, "{}", s.render());
    let c1 = lab.vm(&hv1, "c1", "tapc1", "fa:16:3e:00:00:31", &["10.0.0.31/24"]);
    assert!(
        eventually(Duration::from_secs(10), || stats(&ag1)
            .port("vm-c1")
            .is_some_and(|p| p.attached)),
        "vm-c1 was never attached"
    );
    assert!(
        lab.ping_until(&c1, "10.0.0.1", 5),
        "the late port forwards (local switching)"
    );
    assert!(
        lab.ping_until(&c1, "10.0.0.2", 5),
        "the late port forwards (over VXLAN)"
    );

    // An invalid configuration is refused; the running one stays.
    std::fs::write(
        &ag1.config,
        config(1, 4, true).replace(MAC1, "ff:ff:ff:ff:ff:ff"),
    )
    .unwrap();
    let o = run(
        weft_bin(),
        &["reload", "--control", &ag1.control.to_string_lossy()],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("ports[0].mac") && err.contains("not a unicast MAC"),
        "{err}"
    );
    assert_eq!(stats(&ag1).revision, 3);
    assert!(
        lab.ping(&a1, "10.0.0.2", 2),
        "still forwarding after a refused reload"
    );

    // The CLI shows stats.
    let table = must(
        weft_bin(),
        &["stats", "--control", &ag1.control.to_string_lossy()],
    );
    assert!(
        table.contains("vm-a1") && table.contains("revision 3"),
        "{table}"
    );

    // SIGTERM: exit status 0, control socket removed.
    let st = lab.stop(ag1.pid).expect("agent exited");
    assert!(
        st.success(),
        "agent exit status {st}:\n{}",
        common::read(&ag1.log)
    );
    assert!(!ag1.control.exists(), "control socket left behind");
}

/// `weft check-config` accepts the documented example and lists every problem of a bad file,
/// each with its field; `weft agent` refuses to start on a bad file with the same message.
#[test]
fn check_config_reports_every_problem_by_field() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hv1.toml");
    let out = must(weft_bin(), &["check-config", example]);
    assert!(
        out.contains("valid") && out.contains("2 segments") && out.contains("2 ports"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let text = text
        .replacen(
            "mac = \"fa:16:3e:00:00:01\"",
            "mac = \"01:00:5e:00:00:01\"",
            1,
        )
        .replace("mtu = 1400", "mtu = 1460");
    std::fs::write(&bad, text).unwrap();
    let o = run(weft_bin(), &["check-config", &bad.to_string_lossy()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("ports[0].mac: 01:00:5e:00:00:01 is not a unicast MAC address"),
        "{err}"
    );
    assert!(
        err.contains("segments[1].mtu: 1460 is out of range"),
        "{err}"
    );

    let o = run(
        weft_bin(),
        &[
            "agent",
            "--config",
            &bad.to_string_lossy(),
            "--control",
            &dir.path().join("s").to_string_lossy(),
        ],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("ports[0].mac"));

    let o = run(weft_bin(), &["check-config", "/nonexistent/weft.toml"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read /nonexistent/weft.toml"));
}

/// `weft capture` writes a port's frames, both directions, to a pcap file.
#[test]
fn capture_from_the_command_line() {
    let mut lab = common::lab();
    let hv1 = lab.netns("hv1");
    let hv2 = lab.netns("hv2");
    lab.underlay(&hv1, "192.168.100.1/24", &hv2, "192.168.100.2/24");
    let a1 = lab.vm(&hv1, "a1", "tapa1", MAC1, &["10.0.0.1/24"]);
    let _a2 = lab.vm(&hv2, "a2", "tapa2", MAC2, &["10.0.0.2/24"]);
    let ag1 = lab.agent("agent-hv1", &hv1, &config(1, 1, false));
    let _ag2 = lab.agent("agent-hv2", &hv2, &config(2, 1, false));
    assert!(lab.ping_until(&a1, "10.0.0.2", 5));
    let ctl = ag1.control.to_string_lossy().into_owned();
    let port_cap = lab.path("port.pcap");
    let ul_cap = lab.path("underlay.pcap");
    must(
        weft_bin(),
        &[
            "capture",
            "--control",
            &ctl,
            "start",
            "vm-a1",
            &port_cap.to_string_lossy(),
        ],
    );
    must(
        weft_bin(),
        &[
            "capture",
            "--control",
            &ctl,
            "start",
            "underlay",
            &ul_cap.to_string_lossy(),
        ],
    );
    assert!(lab.ping(&a1, "10.0.0.2", 5));
    let out = must(weft_bin(), &["capture", "--control", &ctl, "stop", "vm-a1"]);
    assert!(out.contains("packets written"), "{out}");
    must(
        weft_bin(),
        &["capture", "--control", &ctl, "stop", "underlay"],
    );
    let o = run(weft_bin(), &["capture", "--control", &ctl, "stop", "vm-a1"]);
    assert!(!o.status.success(), "a second stop must fail");

    // 5 requests out of the VM, 5 replies in (plus possibly ARP).
    let pkts = common::pcap_packets(&port_cap);
    let icmp = |p: &&Vec<u8>| p.len() > 34 && p[12..14] == [8, 0] && p[23] == 1;
    let req = pkts.iter().filter(icmp).filter(|p| p[34] == 8).count();
    let rep = pkts.iter().filter(icmp).filter(|p| p[34] == 0).count();
    assert_eq!((req, rep), (5, 5), "{} frames", pkts.len());
    // The underlay capture shows the same echoes inside VXLAN (outer 14+20+8, VXLAN 8, inner
    // Ethernet 14, inner IPv4 20: ICMP type at 84).
    let pkts = common::pcap_packets(&ul_cap);
    let vx = pkts
        .iter()
        .filter(|p| {
            p.len() > 84 && p[36..38] == [0x12, 0xb5] || p.len() > 84 && p[34..36] == [0x12, 0xb5]
        })
        .count();
    assert!(
        vx >= 10,
        "underlay capture: {} VXLAN packets of {}",
        vx,
        pkts.len()
    );
}

fn as_json(toml: &str) -> serde_json::Value {
    let cfg = weft_dataplane::config::NodeConfig::from_toml(toml).unwrap();
    serde_json::to_value(cfg).unwrap()
}

fn snapshot(revision: u64, extra_port: bool) -> String {
    serde_json::json!({"type": "snapshot", "revision": revision,
        "config": as_json(&config(1, revision, extra_port))})
    .to_string()
}

/// The agent under `--controller`: registers, runs the snapshot (ping works), follows a delta
/// that adds a port whose tap it creates (segment MTU, up) and reports ACTIVE, answers a delta
/// out of sequence by watching again from 0, deletes the tap it created when the port goes and
/// never the VM's veth, saves each revision, and restarts from the saved one while the
/// controller is down, then resumes with `since=` that revision.
#[test]
fn controller_programs_the_agent_and_it_restarts_headless() {
    let mut lab = common::lab();
    let Some(pki) = node_api::make_pki(lab.dir.path(), "hv1") else {
        eprintln!("skipping: openssl is needed to make the test PKI");
        return;
    };
    let hv1 = lab.netns("hv1");
    let hv2 = lab.netns("hv2");
    lab.underlay(&hv1, "192.168.100.1/24", &hv2, "192.168.100.2/24");
    let a1 = lab.vm(&hv1, "a1", "tapa1", MAC1, &["10.0.0.1/24"]);
    let _a2 = lab.vm(&hv2, "a2", "tapa2", MAC2, &["10.0.0.2/24"]);
    let _ag2 = lab.agent("agent-hv2", &hv2, &config(2, 1, false));

    let api = node_api::start(&hv1, "hv1", &pki);
    api.greet(&[snapshot(5, false)]);
    api.set_revision(5);
    let url = format!("https://{}", api.addr);
    let state = lab.path("hv1-state");
    let s = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let args = [
        "--controller".to_owned(),
        url,
        "--node".into(),
        "hv1".into(),
        "--ca".into(),
        s(&pki.ca),
        "--cert".into(),
        s(&pki.node_cert),
        "--key".into(),
        s(&pki.node_key),
        "--state-dir".into(),
        s(&state),
        "--vtep-ip".into(),
        "192.168.100.1".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ag1 = lab.agent_with("agent-hv1", &hv1, &args);
    assert!(
        eventually(Duration::from_secs(10), || stats(&ag1).revision == 5),
        "snapshot 5 not running"
    );
    assert!(lab.ping_until(&a1, "10.0.0.2", 5));
    assert_eq!(
        api.registrations.lock().unwrap()[0],
        serde_json::json!({"vtep_ip": "192.168.100.1", "underlay_mtu": 1500,
            "roles": ["hypervisor"]})
    );
    assert_eq!(api.last_since().as_deref(), Some("0"));
    let active = |port: &str, rev: u64| {
        api.last_status()
            .is_some_and(|s| s["revision"] == rev && s["ports"][port] == "ACTIVE")
    };
    assert!(
        eventually(Duration::from_secs(15), || active("vm-a1", 5)),
        "no ACTIVE status for vm-a1: {:?}",
        api.last_status()
    );
    let c = stats(&ag1).controller.expect("controller stats");
    assert!(c.connected && c.revision == 5, "{c:?}");

    // A delta adds a port whose interface does not exist: the agent creates its tap.
    let port = serde_json::json!({"name": "vm-c1", "interface": "tapc1", "vni": 100,
        "mac": "fa:16:3e:00:00:31", "ips": ["10.0.0.31"]});
    api.push(
        serde_json::json!({"type": "delta", "from": 5, "revision": 6,
            "delta": {"ports": {"upsert": [port]}}})
        .to_string(),
        6,
    );
    assert!(
        eventually(Duration::from_secs(15), || stats(&ag1).revision == 6),
        "delta 6 not running"
    );
    let (mtu, up) = lab.in_netns(&hv1, || {
        (
            weft_dataplane_io::sys::interface_mtu("tapc1"),
            weft_dataplane_io::sys::interface_is_up("tapc1"),
        )
    });
    assert_eq!((mtu.ok(), up.ok()), (Some(1450), Some(true)));
    assert!(
        eventually(Duration::from_secs(15), || active("vm-c1", 6)),
        "no ACTIVE status for vm-c1: {:?}",
        api.last_status()
    );

    // A delta out of sequence: the agent keeps revision 6 and asks for a snapshot, which
    // removes the port again: its tap goes, the VM's veth stays.
    api.greet(&[snapshot(7, false)]);
    api.push(
        serde_json::json!({"type": "delta", "from": 4, "revision": 8, "delta": {}}).to_string(),
        7,
    );
    assert!(
        eventually(Duration::from_secs(10), || stats(&ag1).revision == 7),
        "resnapshot 7 not running"
    );
    assert_eq!(api.last_since().as_deref(), Some("0"));
    // Taps are deleted and the configuration saved right after the swap.
    let saved = || {
        serde_json::from_str::<serde_json::Value>(&common::read(&state.join("config.json")))
            .ok()
            .and_then(|v| v["revision"].as_u64())
    };
    assert!(
        eventually(Duration::from_secs(15), || saved() == Some(7)),
        "saved: {:?}",
        saved()
    );
    let gone = lab.in_netns(&hv1, || {
        (
            weft_dataplane_io::sys::interface_index("tapc1").is_err(),
            weft_dataplane_io::sys::interface_index("tapa1").is_ok(),
        )
    });
    assert_eq!(gone, (true, true), "(tapc1 deleted, tapa1 kept)");
    let c = stats(&ag1).controller.expect("controller stats");
    assert!(c.reconnects >= 1, "{c:?}");

    // Headless: the controller is down, the agent restarts from what it saved.
    api.refuse(true);
    lab.signal(ag1.pid, libc::SIGTERM);
    assert!(lab.wait(ag1.pid, Duration::from_secs(10)).is_some());
    let ag1 = lab.agent_with("agent-hv1-again", &hv1, &args);
    assert_eq!(stats(&ag1).revision, 7);
    assert!(lab.ping_until(&a1, "10.0.0.2", 5));
    let c = stats(&ag1).controller.expect("controller stats");
    assert!(!c.connected, "{c:?}");
    // The controller is back: the agent resumes from its revision, in sync at once.
    api.greet(&[]);
    api.refuse(false);
    assert!(
        eventually(Duration::from_secs(45), || stats(&ag1)
            .controller
            .is_some_and(|c| c.connected)),
        "did not reconnect"
    );
    assert_eq!(api.last_since().as_deref(), Some("7"));
    assert_eq!(stats(&ag1).revision, 7);
}
