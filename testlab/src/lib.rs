//! A lab of network namespaces for end-to-end tests of the `weft` binary.
//!
//! Every namespace a [`Lab`] creates has a name unique to this process and lab
//! (`weft-<pid>-<n>-<role>`), and every process it starts is remembered by PID. When the lab is
//! dropped, even by a failing test's panic, it stops those processes (SIGTERM, then SIGKILL after
//! a bounded wait) and deletes its namespaces. Nothing here touches the host's own interfaces:
//! links are created directly inside the lab's namespaces (`ip -n NS link add ...`).
//!
//! The tests need root (they create namespaces); CI runs them as root.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use weft_agent::control::{self, Request};
use weft_agent::stats::Snapshot;

static LABS: AtomicU32 = AtomicU32::new(0);

/// Runs a command, returning its output (not checking the status).
pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e} (is it installed? see .ci/run)"))
}

/// Runs a command and panics with its output if it fails.
pub fn must(cmd: &str, args: &[&str]) -> String {
    let o = run(cmd, args);
    assert!(
        o.status.success(),
        "`{cmd} {}` failed ({}):\n{}{}",
        args.join(" "),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A process the lab started.
#[derive(Debug)]
struct Proc {
    label: String,
    child: Child,
    log: Option<PathBuf>,
}

/// A running `weft agent`.
#[derive(Debug, Clone)]
pub struct AgentRef {
    /// Its control socket.
    pub control: PathBuf,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    /// Its PID.
    pub pid: u32,
}

/// A set of namespaces and processes, removed on drop.
#[derive(Debug)]
pub struct Lab {
    weft: PathBuf,
    prefix: String,
    /// Scratch directory (configuration files, sockets, captures, logs).
    pub dir: tempfile::TempDir,
    namespaces: Vec<String>,
    procs: Vec<Proc>,
}

impl Lab {
    /// A new lab whose agents run the `weft` binary at `weft`. Panics unless running as root.
    pub fn new(weft: impl Into<PathBuf>) -> Lab {
        assert!(
            weft_dataplane_io::sys::is_root(),
            "the end-to-end tests create network namespaces and must run as root (see README)"
        );
        let n = LABS.fetch_add(1, Ordering::SeqCst);
        Lab {
            weft: weft.into(),
            prefix: format!("weft-{}-{n}", std::process::id()),
            dir: tempfile::tempdir().expect("tempdir"),
            namespaces: Vec::new(),
            procs: Vec::new(),
        }
    }

    /// Creates a namespace for `role` with loopback up; returns its name.
    pub fn netns(&mut self, role: &str) -> String {
        let name = format!("{}-{role}", self.prefix);
        must("ip", &["netns", "add", &name]);
        self.namespaces.push(name.clone());
        must("ip", &["-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// Runs `ip -n NS <args>` (split on whitespace), checking success.
    pub fn ip(&self, ns: &str, args: &str) {
        let mut v = vec!["-n", ns];
        v.extend(args.split_whitespace());
        must("ip", &v);
    }

    /// Runs a command inside `ns`, checking success; returns stdout.
    pub fn exec(&self, ns: &str, args: &[&str]) -> String {
        let mut v = vec!["netns", "exec", ns];
        v.extend_from_slice(args);
        must("ip", &v)
    }

    /// Runs a command inside `ns`; returns its output whatever the status.
    pub fn try_exec(&self, ns: &str, args: &[&str]) -> Output {
        let mut v = vec!["netns", "exec", ns];
        v.extend_from_slice(args);
        run("ip", &v)
    }

    /// Sets a sysctl inside `ns`.
    pub fn sysctl(&self, ns: &str, kv: &str) {
        self.exec(ns, &["sysctl", "-q", "-w", kv]);
    }

    /// Joins two namespaces with a veth pair `ul` (underlay) and addresses them.
    pub fn underlay(&self, a: &str, a_cidr: &str, b: &str, b_cidr: &str) {
        self.ip(a, &format!("link add ul type veth peer name ul netns {b}"));
        for (ns, cidr) in [(a, a_cidr), (b, b_cidr)] {
            let nodad = if cidr.contains(':') { " nodad" } else { "" };
            self.ip(ns, &format!("addr add {cidr} dev ul{nodad}"));
        }

        self.ip(a, "link set ul up");
        self.ip(b, "link set ul up");
    }

    /// Joins several namespaces on one underlay network: a switch namespace with a bridge, and a
    /// veth `ul` in each node (addressed with its CIDR, IPv6 without DAD) plugged into it.
    pub fn underlay_switch(&mut self, nodes: &[(&str, &str)]) {
        let sw = self.netns("ulsw");
        self.ip(&sw, "link add br0 type bridge");
        self.ip(&sw, "link set br0 up");
        for (i, (ns, cidr)) in nodes.iter().enumerate() {
            self.ip(
                ns,
                &format!("link add ul type veth peer name p{i} netns {sw}"),
            );
            let nodad = if cidr.contains(':') { " nodad" } else { "" };
            self.ip(ns, &format!("addr add {cidr} dev ul{nodad}"));
            self.ip(ns, "link set ul up");
            self.ip(&sw, &format!("link set p{i} master br0"));
            self.ip(&sw, &format!("link set p{i} up"));
        }
    }

    /// A VM namespace like [`Lab::vm`] but with no addresses and the interface's default MTU:
    /// it gets its configuration from DHCP and router advertisements. Duplicate address
    /// detection is off, so its link-local address is usable at once.
    pub fn bare_vm(&mut self, hv: &str, role: &str, tap: &str, mac: &str) -> String {
        let vm = self.netns(role);
        self.ip(
            hv,
            &format!("link add {tap} type veth peer name eth0 netns {vm}"),
        );
        self.sysctl(hv, &format!("net.ipv6.conf.{tap}.disable_ipv6=1"));
        self.ip(hv, &format!("link set {tap} up"));
        self.sysctl(&vm, "net.ipv6.conf.eth0.accept_dad=0");
        self.ip(&vm, &format!("link set eth0 address {mac}"));
        self.ip(&vm, "link set eth0 up");
        vm
    }

    /// Runs ISC `dhclient` (`-4` or `-6`) in `vm` in the foreground, with a script that only
    /// records what it was given (the machine's own configuration is never touched), and waits
    /// (at most 20 s) for a lease. Returns the variables the client passed for it
    /// (`new_ip_address`, `new_interface_mtu`, ...).
    pub fn dhclient(
        &mut self,
        vm: &str,
        family: &str,
    ) -> std::collections::BTreeMap<String, String> {
        let tag = format!("{vm}{family}");
        let env = self.path(&format!("{tag}.env"));
        let script = self.path(&format!("{tag}.sh"));
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ncase \"$reason\" in BOUND|BOUND6|REBOOT|RENEW|RENEW6|REBIND6) env | grep -E '^(new_|reason=)' > '{}.tmp' && mv '{}.tmp' '{}';; esac\nexit 0\n",
                env.display(),
                env.display(),
                env.display()
            ),
        )
        .expect("write dhclient script");
        must("chmod", &["0755", &script.to_string_lossy()]);
        let lease = self.path(&format!("{tag}.leases"));
        let pid = self.path(&format!("{tag}.pid"));
        let (s, l, p) = (
            script.to_string_lossy().into_owned(),
            lease.to_string_lossy().into_owned(),
            pid.to_string_lossy().into_owned(),
        );
        self.spawn(
            &format!("dhclient-{tag}"),
            vm,
            &[
                "dhclient", family, "-d", "-v", "-sf", &s, "-lf", &l, "-pf", &p, "eth0",
            ],
        );
        assert!(
            eventually(Duration::from_secs(20), || env.exists()),
            "dhclient {family} in {vm} got no lease:\n{}",
            read(&self.path(&format!("dhclient-{tag}.log")))
        );
        read(&env)
            .lines()
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
            })
            .collect()
    }

    /// Creates a VM namespace `role` whose `eth0` is attached to hypervisor namespace `hv` as
    /// interface `tap`, with the given MAC and addresses (IPv6 without DAD) and MTU 1450, the
    /// segment MTU over a 1500-byte underlay (what DHCP and RAs tell a real VM). Returns the VM
    /// namespace's name.
    pub fn vm(&mut self, hv: &str, role: &str, tap: &str, mac: &str, addrs: &[&str]) -> String {
        let vm = self.netns(role);
        self.ip(
            hv,
            &format!("link add {tap} type veth peer name eth0 netns {vm}"),
        );
        // The hypervisor side carries no addresses: keep its kernel quiet on the VM's link.
        self.sysctl(hv, &format!("net.ipv6.conf.{tap}.disable_ipv6=1"));
        self.ip(hv, &format!("link set {tap} up"));
        self.ip(&vm, &format!("link set eth0 address {mac} mtu 1450"));
        for a in addrs {
            if a.contains(':') {
                self.ip(&vm, &format!("-6 addr add {a} dev eth0 nodad"));
            } else {
                self.ip(&vm, &format!("addr add {a} dev eth0"));
            }
        }
        self.ip(&vm, "link set eth0 up");
        vm
    }

    /// Starts a long-running command inside `ns`; stdout and stderr go to a log file.
    pub fn spawn(&mut self, label: &str, ns: &str, args: &[&str]) -> u32 {
        let log = self.dir.path().join(format!("{label}.log"));
        let f = File::create(&log).expect("log file");
        let f2 = f.try_clone().expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(f2)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
        let pid = child.id();
        self.procs.push(Proc {
            label: label.to_owned(),
            child,
            log: Some(log),
        });
        pid
    }

    /// Writes `config` and starts `weft agent` in `ns`; returns once its control socket answers.
    pub fn agent(&mut self, label: &str, ns: &str, config: &str) -> AgentRef {
        let cfg = self.dir.path().join(format!("{label}.toml"));
        std::fs::write(&cfg, config).expect("write config");
        let cfg_s = cfg.to_string_lossy().into_owned();
        let mut a = self.agent_with(label, ns, &["--config", &cfg_s]);
        a.config = cfg;
        a
    }

    /// Starts `weft agent ARGS --control SOCKET` in `ns` (e.g. with `--controller ...`);
    /// returns once its control socket answers.
    pub fn agent_with(&mut self, label: &str, ns: &str, args: &[&str]) -> AgentRef {
        let control = self.dir.path().join(format!("{label}.sock"));
        let ctl_s = control.to_string_lossy().into_owned();
        let weft = self.weft.to_string_lossy().into_owned();
        let mut argv = vec![weft.as_str(), "--log", "info", "agent"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--control", &ctl_s]);
        let pid = self.spawn(label, ns, &argv);
        let log = self.dir.path().join(format!("{label}.log"));
        let a = AgentRef {
            control,
            config: PathBuf::new(),
            log,
            pid,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if control::request(&a.control, &Request::Stats).is_ok() {
                return a;
            }
            if let Some(st) = self.exited(pid) {
                panic!("agent {label} exited ({st}) at start:\n{}", read(&a.log));
            }
            assert!(
                Instant::now() < deadline,
                "agent {label} did not come up:\n{}",
                read(&a.log)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit status of a process the lab started, if it has exited.
    pub fn exited(&mut self, pid: u32) -> Option<std::process::ExitStatus> {
        self.procs
            .iter_mut()
            .find(|p| p.child.id() == pid)
            .and_then(|p| p.child.try_wait().ok().flatten())
    }

    /// Sends `signal` to a process the lab started.
    pub fn signal(&self, pid: u32, signal: i32) {
        assert!(
            self.procs.iter().any(|p| p.child.id() == pid),
            "pid {pid} is not ours"
        );
        let pid = i32::try_from(pid).expect("pid");
        // SAFETY: kill(2) on a PID we spawned and still hold (not yet reaped); no memory involved.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// Waits (at most `timeout`) for a process the lab started to exit; returns its status.
    pub fn wait(&mut self, pid: u32, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exited(pid) {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops a process the lab started (SIGTERM, then SIGKILL after 5 s).
    pub fn stop(&mut self, pid: u32) -> Option<std::process::ExitStatus> {
        self.signal(pid, libc::SIGTERM);
        if let Some(s) = self.wait(pid, Duration::from_secs(5)) {
            return Some(s);
        }
        self.signal(pid, libc::SIGKILL);
        self.wait(pid, Duration::from_secs(5))
    }

    /// `ping` from `ns` to `addr`: `count` echo requests; true if all were answered.
    pub fn ping(&self, ns: &str, addr: &str, count: u32) -> bool {
        let c = count.to_string();
        let o = self.try_exec(
            ns,
            &["ping", "-n", "-q", "-c", &c, "-i", "0.2", "-W", "2", addr],
        );
        o.status.success()
    }

    /// `ping` with a payload pattern (hex byte), to find the packets again in captures.
    pub fn ping_pattern(&self, ns: &str, addr: &str, count: u32, pattern: &str) -> bool {
        let c = count.to_string();
        let o = self.try_exec(
            ns,
            &[
                "ping", "-n", "-q", "-c", &c, "-i", "0.2", "-W", "2", "-p", pattern, addr,
            ],
        );
        o.status.success()
    }

    /// Pings until one answer comes back (the first packets may wait for address resolution),
    /// at most `tries` times.
    pub fn ping_until(&self, ns: &str, addr: &str, tries: u32) -> bool {
        (0..tries).any(|_| self.ping(ns, addr, 1))
    }

    /// Starts a TCP server in `ns` on `port` (python3) that answers every connection with the
    /// peer's address and port as it sees them (`ADDR:PORT`), then closes.
    pub fn tell_peer_server(&mut self, ns: &str, port: u16) -> u32 {
        let code = format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('0.0.0.0',{port}))\ns.listen(64)\nwhile True:\n c,a=s.accept()\n \
             c.sendall(('%s:%d\\n'%a).encode())\n c.close()\n"
        );
        self.spawn(
            &format!("server-{ns}-{port}"),
            ns,
            &["python3", "-c", &code],
        )
    }

    /// Connects from `ns` to a [`Lab::tell_peer_server`] at `addr:port` (3 s timeout): what the
    /// server saw, or `None` if the connection failed.
    pub fn ask_peer(&self, ns: &str, addr: &str, port: u16) -> Option<String> {
        let code = format!(
            "import socket,sys\ntry:\n c=socket.create_connection(('{addr}',{port}),timeout=3)\n \
             print(c.recv(100).decode().strip())\nexcept OSError as e:\n print('ERR',e)\n sys.exit(1)\n"
        );
        let out = self.try_exec(ns, &["python3", "-c", &code]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// [`Lab::ask_peer`] until it answers, at most ten times within 30 s, 300 ms apart (the
    /// first packets may wait for address resolution, the server may not be listening yet,
    /// or configuration may not have reached the agents).
    pub fn ask_peer_until(&self, ns: &str, addr: &str, port: u16) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        for _ in 0..10 {
            if let Some(seen) = self.ask_peer(ns, addr, port) {
                return Some(seen);
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        None
    }

    /// The path of a file in the lab's scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `f` on a thread that has entered namespace `ns` (sockets it opens live there).
    pub fn in_netns<T: Send + 'static>(
        &self,
        ns: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let ns = ns.to_owned();
        std::thread::spawn(move || {
            weft_dataplane_io::sys::netns::enter_thread(&ns).expect("enter namespace");
            f()
        })
        .join()
        .expect("namespace thread panicked")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::env::var_os("WEFT_KEEP_LAB").is_some() {
            // For debugging a failure by hand: keep everything, say what is there.
            eprintln!(
                "WEFT_KEEP_LAB: keeping namespaces {:?} and {}",
                self.namespaces,
                self.dir.path().display()
            );
            std::mem::forget(std::mem::replace(
                &mut self.dir,
                tempfile::tempdir().expect("tempdir"),
            ));
            for p in &self.procs {
                eprintln!("  {} pid {}", p.label, p.child.id());
            }
            return;
        }
        for p in &mut self.procs {
            if p.child.try_wait().ok().flatten().is_some() {
                continue;
            }
            if let Ok(pid) = i32::try_from(p.child.id()) {
                // SAFETY: kill(2) on our own, not yet reaped child.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            let deadline = Instant::now() + Duration::from_secs(3);
            while p.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if p.child.try_wait().ok().flatten().is_none() {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
        if std::thread::panicking() {
            for p in &self.procs {
                if let Some(log) = &p.log {
                    eprintln!("---- {} ({}) ----\n{}", p.label, log.display(), read(log));
                }
            }
        }
        for ns in self.namespaces.iter().rev() {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

/// A file's contents, or a note that it could not be read.
pub fn read(p: &Path) -> String {
    let mut s = String::new();
    match File::open(p).and_then(|mut f| f.read_to_string(&mut s)) {
        Ok(_) => s,
        Err(e) => format!("(cannot read {}: {e})", p.display()),
    }
}

/// Counters of a running agent.
pub fn stats(a: &AgentRef) -> Snapshot {
    control::request(&a.control, &Request::Stats)
        .unwrap_or_else(|e| panic!("stats from {}: {e}\n{}", a.control.display(), read(&a.log)))
        .stats
        .expect("stats in response")
}

/// Packets of a pcap file (any byte order and timestamp precision).
pub fn pcap_packets(path: &Path) -> Vec<Vec<u8>> {
    let f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let r =
        weft_dataplane_io::pcap::PcapReader::new(std::io::BufReader::new(f)).expect("pcap header");
    r.map(|rec| rec.expect("pcap record").data).collect()
}

/// The complete packets of a pcap file still being written (none if it has no header yet).
pub fn pcap_packets_so_far(path: &Path) -> Vec<Vec<u8>> {
    let Ok(f) = File::open(path) else {
        return Vec::new();
    };
    match weft_dataplane_io::pcap::PcapReader::new(std::io::BufReader::new(f)) {
        Ok(r) => r.map_while(|rec| rec.ok().map(|rec| rec.data)).collect(),
        Err(_) => Vec::new(),
    }
}

/// Whether `hay` contains `n` consecutive bytes equal to `b`.
pub fn contains_run(hay: &[u8], b: u8, n: usize) -> bool {
    hay.windows(n).any(|w| w.iter().all(|x| *x == b))
}

/// Waits until `f` holds (polling every 50 ms, at most `timeout`).
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One line per frame: length, ethertype, and for IP the protocol and first payload bytes (for
/// failure messages).
pub fn describe(pkts: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for p in pkts {
        let et = p
            .get(12..14)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        let (proto, l4) = match et {
            0x0800 => (
                p.get(23).copied().unwrap_or(0),
                14 + usize::from(p.get(14).map_or(5, |b| b & 15)) * 4,
            ),
            0x86dd => (p.get(20).copied().unwrap_or(0), 54),
            _ => (0, 14),
        };
        let head: Vec<String> = p
            .iter()
            .skip(l4)
            .take(24)
            .map(|b| format!("{b:02x}"))
            .collect();
        out.push_str(&format!(
            "  len {:4} type {et:04x} proto {proto:3} {}\n",
            p.len(),
            head.join("")
        ));
    }
    out
}
