//! From the API to packets: a controller, two hypervisor agents and a router node in
//! namespaces; everything created through the API with the real `openstack` CLI; VMs get their
//! addresses by DHCP and SLAAC and reach each other across hypervisors and subnets; they reach
//! an "internet" host through SNAT on r1's gateway, and it reaches vm-c by its floating IP on
//! the ports its security group allows. Then the failure cases: a node's certificate cannot read another node's configuration; with the
//! controller killed traffic keeps flowing; an agent restarted meanwhile forwards again from
//! its saved state; deleting a port cuts its traffic.
//!
//! ```text
//!        ctl: weft controller 192.168.100.254 (:9696 Neutron API, :9697 node API)
//!                                  │ underlay switch
//!   hv1 192.168.100.1 ─────────────┼───────────── hv2 192.168.100.2        rt 192.168.100.3
//!     vm-a: net1 10.0.0.0/24        │               vm-b: net1               router r1
//!           + fd00:a::/64 SLAAC     │               vm-c: net2 10.1.0.0/24   │ upl0 (physnet ext)
//!                                                                          inet 203.0.113.1
//! ```
//!
//! The `openstack` CLI comes from `scripts/install-api-deps.sh` (a virtualenv); `scripts/test.sh`
//! passes it in `WEFT_OPENSTACK`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Lab, eventually, lab, read, weft_bin};
use serde_json::Value;

const CTL: &str = "192.168.100.254";
/// The "internet" host on the external network, also its gateway.
const INET: &str = "203.0.113.1";

fn openstack_cli() -> String {
    std::env::var("WEFT_OPENSTACK").unwrap_or_else(|_| {
        panic!(
            "WEFT_OPENSTACK must name the openstack CLI: run scripts/test.sh, or \
             WEFT_OPENSTACK=$(scripts/install-api-deps.sh)/bin/openstack cargo test --test cloud"
        )
    })
}

struct Cloud {
    lab: Lab,
    ctl: String,
    osc: String,
    clouds: PathBuf,
    pki: PathBuf,
}

impl Cloud {
    /// `openstack ARGS` in the controller's namespace; its standard output.
    fn run_os(&self, args: &[&str]) -> Vec<u8> {
        let cfg = format!("OS_CLIENT_CONFIG_FILE={}", self.clouds.display());
        let mut v = vec!["env", "OS_CLOUD=weft", &cfg, &self.osc];
        v.extend_from_slice(args);
        let o = self.lab.try_exec(&self.ctl, &v);
        assert!(
            o.status.success(),
            "openstack {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    }

    /// `openstack ARGS -f json`, parsed.
    fn os(&self, args: &[&str]) -> Value {
        let mut v = args.to_vec();
        v.extend_from_slice(&["-f", "json"]);
        serde_json::from_slice(&self.run_os(&v)).unwrap_or(Value::Null)
    }

    /// `openstack ARGS` for commands without output.
    fn os_quiet(&self, args: &[&str]) {
        self.run_os(args);
    }

    fn start_controller(&mut self) -> u32 {
        let weft = weft_bin().to_owned();
        let data = self.lab.path("ctl-data").to_string_lossy().into_owned();
        let pki = self.pki.to_string_lossy().into_owned();
        let pid = self.lab.spawn(
            "controller",
            &self.ctl.clone(),
            &[
                &weft,
                "--log",
                "info",
                "controller",
                "--listen",
                &format!("{CTL}:9696"),
                "--auth",
                "noauth",
                "--data-dir",
                &data,
                "--pki",
                &pki,
                "--node-listen",
                &format!("{CTL}:9697"),
            ],
        );
        let ok = eventually(Duration::from_secs(20), || {
            self.lab
                .try_exec(&self.ctl, &["curl", "-sf", &format!("http://{CTL}:9696/")])
                .status
                .success()
        });
        assert!(
            ok,
            "controller did not answer:\n{}",
            read(&self.lab.path("controller.log"))
        );
        pid
    }

    fn start_agent(&mut self, node: &str, ns: &str, vtep: &str, role: &str, extra: &[&str]) -> u32 {
        let weft = weft_bin().to_owned();
        let p = |s: &str| self.pki.join(s).to_string_lossy().into_owned();
        let (ca, cert, key) = (
            p("ca.pem"),
            p(&format!("{node}.pem")),
            p(&format!("{node}.key")),
        );
        let state = self
            .lab
            .path(&format!("{node}-state"))
            .to_string_lossy()
            .into_owned();
        let control = self
            .lab
            .path(&format!("{node}.sock"))
            .to_string_lossy()
            .into_owned();
        let url = format!("https://{CTL}:9697");
        let mut argv = vec![
            &weft,
            "--log",
            "info",
            "agent",
            "--controller",
            &url,
            "--node",
            node,
            "--ca",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "--state-dir",
            &state,
            "--vtep-ip",
            vtep,
            "--role",
            role,
            "--control",
            &control,
        ];
        argv.extend_from_slice(extra);
        self.lab.spawn(&format!("agent-{node}"), ns, &argv)
    }

    fn port(&self, name: &str, net: &str, host: &str) -> (String, String) {
        let p = self.os(&["port", "create", "--network", net, "--host", host, name]);
        (
            p["id"].as_str().expect("port id").to_owned(),
            p["mac_address"].as_str().expect("port mac").to_owned(),
        )
    }

    fn port_status(&self, id: &str) -> String {
        self.os(&["port", "show", id])["status"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

fn tap(id: &str) -> String {
    format!("tap{}", &id[..11])
}

fn curl_node_api(c: &Cloud, as_node: &str, path: &str) -> String {
    let p = |s: &str| c.pki.join(s).to_string_lossy().into_owned();
    let o = c.lab.try_exec(
        &c.ctl,
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            "--cacert",
            &p("ca.pem"),
            "--cert",
            &p(&format!("{as_node}.pem")),
            "--key",
            &p(&format!("{as_node}.key")),
            &format!("https://{CTL}:9697{path}"),
        ],
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn pki(dir: &Path) {
    let weft = weft_bin();
    let d = dir.to_string_lossy().into_owned();
    common::must(weft, &["pki", "init", "--dir", &d]);
    common::must(
        weft,
        &["pki", "issue", "--dir", &d, "--server", "--san", CTL],
    );
    for n in ["hv1", "hv2", "rt"] {
        common::must(weft, &["pki", "issue", "--dir", &d, "--node", n]);
    }
}

#[test]
fn openstack_cli_to_packets_across_hypervisors_and_through_failures() {
    let osc = openstack_cli();
    let mut lab = lab();
    let ctl = lab.netns("ctl");
    let hv1 = lab.netns("hv1");
    let hv2 = lab.netns("hv2");
    let rt = lab.netns("rt");
    lab.underlay_switch(&[
        (&ctl, &format!("{CTL}/24")),
        (&hv1, "192.168.100.1/24"),
        (&hv2, "192.168.100.2/24"),
        (&rt, "192.168.100.3/24"),
    ]);
    let pki_dir = lab.path("pki");
    pki(&pki_dir);
    let clouds = lab.path("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  weft:\n    auth_type: none\n    auth:\n      endpoint: \"http://{CTL}:9696\"\n"
        ),
    )
    .unwrap();
    let mut c = Cloud {
        lab,
        ctl: ctl.clone(),
        osc,
        clouds,
        pki: pki_dir,
    };
    let ctl_pid = c.start_controller();

    // The tenant's networks, as a cloud user creates them.
    c.os(&["network", "create", "net1"]);
    c.os(&["network", "create", "net2"]);
    c.os(&[
        "subnet",
        "create",
        "--network",
        "net1",
        "--subnet-range",
        "10.0.0.0/24",
        "sub1",
    ]);
    c.os(&[
        "subnet",
        "create",
        "--network",
        "net1",
        "--ip-version",
        "6",
        "--ipv6-ra-mode",
        "slaac",
        "--ipv6-address-mode",
        "slaac",
        "--subnet-range",
        "fd00:a::/64",
        "sub1v6",
    ]);
    c.os(&[
        "subnet",
        "create",
        "--network",
        "net2",
        "--subnet-range",
        "10.1.0.0/24",
        "sub2",
    ]);
    c.os(&["router", "create", "r1"]);
    for s in ["sub1", "sub1v6", "sub2"] {
        c.os_quiet(&["router", "add", "subnet", "r1", s]);
    }
    let (a_id, a_mac) = c.port("vm-a", "net1", "hv1");
    let (b_id, b_mac) = c.port("vm-b", "net1", "hv2");
    let (c_id, c_mac) = c.port("vm-c", "net2", "hv2");
    let ip_of = |c: &Cloud, id: &str, v4: bool| -> String {
        c.os(&["port", "show", id])["fixed_ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["ip_address"].as_str().unwrap().to_owned())
            .find(|a| a.contains(':') != v4)
            .unwrap()
    };
    let (a_ip, b_ip, c_ip) = (
        ip_of(&c, &a_id, true),
        ip_of(&c, &b_id, true),
        ip_of(&c, &c_id, true),
    );
    let a_ip6 = ip_of(&c, &a_id, false);
    let b_ip6 = ip_of(&c, &b_id, false);

    // The VMs' NICs, named as Nova names them, before the agents start.
    let vm_a = c.lab.bare_vm(&hv1, "vm-a", &tap(&a_id), &a_mac);
    let vm_b = c.lab.bare_vm(&hv2, "vm-b", &tap(&b_id), &b_mac);
    let vm_c = c.lab.bare_vm(&hv2, "vm-c", &tap(&c_id), &c_mac);
    c.lab.sysctl(&vm_a, "net.ipv6.conf.eth0.accept_ra=2");
    c.lab.sysctl(&vm_b, "net.ipv6.conf.eth0.accept_ra=2");

    // The router node's uplink to the external network, where an "internet" host sits.
    let inet = c.lab.netns("inet");
    c.lab.ip(
        &rt,
        &format!("link add upl0 type veth peer name eth0 netns {inet}"),
    );
    c.lab.sysctl(&rt, "net.ipv6.conf.upl0.disable_ipv6=1");
    c.lab.ip(&inet, &format!("addr add {INET}/24 dev eth0"));
    c.lab.ip(&inet, "link set eth0 up");

    let hv1_pid = c.start_agent("hv1", &hv1, "192.168.100.1", "hypervisor", &[]);
    c.start_agent("hv2", &hv2, "192.168.100.2", "hypervisor", &[]);
    c.start_agent(
        "rt",
        &rt,
        "192.168.100.3",
        "router",
        &["--uplink", "ext=upl0"],
    );

    // The agents attach the ports and say so.
    for id in [&a_id, &b_id, &c_id] {
        let ok = eventually(Duration::from_secs(30), || c.port_status(id) == "ACTIVE");
        assert!(
            ok,
            "port {id} not ACTIVE:\n{}\n{}",
            read(&c.lab.path("agent-hv1.log")),
            read(&c.lab.path("agent-hv2.log"))
        );
    }

    // DHCPv4 gives each VM exactly its port's address; SLAAC gives vm-a its EUI-64 address.
    for (vm, ip) in [(&vm_a, &a_ip), (&vm_b, &b_ip), (&vm_c, &c_ip)] {
        let lease = c.lab.dhclient(vm, "-4");
        assert_eq!(lease.get("new_ip_address"), Some(ip), "{vm}: {lease:?}");
        let prefix = lease.get("new_subnet_mask").cloned().unwrap_or_default();
        let bits: u32 = prefix
            .split('.')
            .map(|o| o.parse::<u8>().unwrap_or(0).count_ones())
            .sum();
        c.lab.ip(vm, &format!("addr add {ip}/{bits} dev eth0"));
        let gw = lease.get("new_routers").cloned().unwrap_or_default();
        assert!(!gw.is_empty(), "{vm}: no router in {lease:?}");
        c.lab.ip(vm, &format!("route add default via {gw}"));
    }
    for (vm, ip6) in [(&vm_a, &a_ip6), (&vm_b, &b_ip6)] {
        let ok = eventually(Duration::from_secs(30), || {
            c.lab
                .exec(vm, &["ip", "-6", "addr", "show", "dev", "eth0"])
                .contains(ip6.as_str())
        });
        assert!(ok, "{vm}: no SLAAC address {ip6}");
    }

    // Across hypervisors on one network, across networks through the router, over IPv6.
    assert!(
        c.lab.ping_until(&vm_a, &b_ip, 20),
        "vm-a → vm-b (net1, hv1 → hv2)"
    );
    assert!(
        c.lab.ping_until(&vm_a, &c_ip, 20),
        "vm-a → vm-c (net1 → r1 → net2)"
    );
    assert!(c.lab.ping_until(&vm_c, &a_ip, 20), "vm-c → vm-a");
    assert!(c.lab.ping_until(&vm_a, &b_ip6, 20), "vm-a → vm-b over IPv6");

    // The external network, on the router node's uplink: r1 gets a gateway there with SNAT,
    // vm-c a floating IP; the default security group lets TCP 8080 in.
    c.os(&[
        "network",
        "create",
        "--external",
        "--provider-network-type",
        "flat",
        "--provider-physical-network",
        "ext",
        "public",
    ]);
    c.os(&[
        "subnet",
        "create",
        "--network",
        "public",
        "--no-dhcp",
        "--subnet-range",
        "203.0.113.0/24",
        "--gateway",
        INET,
        "--allocation-pool",
        "start=203.0.113.10,end=203.0.113.99",
        "public-v4",
    ]);
    c.os_quiet(&["router", "set", "--external-gateway", "public", "r1"]);
    let gw_ip = c.os(&["router", "show", "r1"])["external_gateway_info"]["external_fixed_ips"]
        [0]["ip_address"]
        .as_str()
        .expect("r1's gateway address")
        .to_owned();
    c.os(&[
        "security",
        "group",
        "rule",
        "create",
        "--protocol",
        "tcp",
        "--dst-port",
        "8080",
        "default",
    ]);
    let fip = c.os(&["floating", "ip", "create", "--port", &c_id, "public"])["floating_ip_address"]
        .as_str()
        .expect("floating IP address")
        .to_owned();
    c.lab.tell_peer_server(&inet, 7000);
    c.lab.tell_peer_server(&vm_c, 8080);
    c.lab.tell_peer_server(&vm_c, 8081);

    // vm-a reaches the outside through SNAT, seen as r1's gateway address; vm-c as its
    // floating IP. The outside reaches vm-c by its floating IP on 8080 only.
    let seen = c
        .lab
        .ask_peer_until(&vm_a, INET, 7000)
        .unwrap_or_else(|| panic!("vm-a → internet:\n{}", read(&c.lab.path("agent-rt.log"))));
    assert!(
        seen.starts_with(&format!("{gw_ip}:")),
        "vm-a seen as {seen}"
    );
    let seen = c
        .lab
        .ask_peer_until(&vm_c, INET, 7000)
        .expect("vm-c → internet");
    assert!(seen.starts_with(&format!("{fip}:")), "vm-c seen as {seen}");
    let seen = c
        .lab
        .ask_peer_until(&inet, &fip, 8080)
        .expect("internet → floating IP:8080");
    assert!(
        seen.starts_with(&format!("{INET}:")),
        "internet seen by vm-c as {seen}"
    );
    assert_eq!(
        c.lab.ask_peer(&inet, &fip, 8081),
        None,
        "8081 is not in vm-c's security group"
    );
    assert_eq!(
        c.lab.ask_peer(&inet, &gw_ip, 7000),
        None,
        "nothing unsolicited gets in through SNAT"
    );

    // The router's interface and gateway ports are up where it runs.
    let router_ports_active = eventually(Duration::from_secs(20), || {
        let ports = c.os(&["port", "list", "--router", "r1"]);
        let ports = ports.as_array().cloned().unwrap_or_default();
        ports.len() == 4 && ports.iter().all(|p| p["Status"] == "ACTIVE")
    });
    assert!(
        router_ports_active,
        "r1's ports: {}",
        c.os(&["port", "list", "--router", "r1"])
    );

    // One node's certificate reads its own configuration only.
    assert_eq!(curl_node_api(&c, "hv1", "/v1/nodes/hv2/config"), "403");
    assert_eq!(curl_node_api(&c, "hv2", "/v1/nodes/hv1/config"), "403");

    // Controller killed: traffic keeps flowing; an agent restarted meanwhile forwards again
    // from its saved configuration.
    c.lab.signal(ctl_pid, libc::SIGKILL);
    c.lab.wait(ctl_pid, Duration::from_secs(5));
    assert!(
        c.lab.ping(&vm_a, &c_ip, 3),
        "vm-a → vm-c without the controller"
    );
    assert!(
        c.lab.ask_peer(&inet, &fip, 8080).is_some(),
        "floating IP without the controller"
    );
    assert!(
        c.lab.stop(hv1_pid).is_some_and(|s| s.success()),
        "hv1 agent stops cleanly"
    );
    c.start_agent("hv1", &hv1, "192.168.100.1", "hypervisor", &[]);
    assert!(
        c.lab.ping_until(&vm_a, &c_ip, 30),
        "restarted hv1 agent forwards from its saved state:\n{}",
        read(&c.lab.path("agent-hv1.log"))
    );
    assert!(c.lab.ping_until(&vm_a, &b_ip, 10));

    // Controller back; deleting vm-b's port cuts its traffic.
    c.start_controller();
    c.os_quiet(&["port", "delete", &b_id]);
    let cut = eventually(Duration::from_secs(30), || !c.lab.ping(&vm_a, &b_ip, 1));
    assert!(cut, "vm-b still reachable after its port was deleted");
    assert!(c.lab.ping(&vm_a, &c_ip, 2), "others keep working");
}
