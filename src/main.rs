//! `weft`: one binary for every Weft role. Command-line parsing only; the work is in the crates.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use weft_agent::control::{self, Request};

mod up;

/// Default control socket of the agent.
const DEFAULT_CONTROL: &str = "/run/weft/agent.sock";

#[derive(Debug, Parser)]
#[command(
    name = "weft",
    version,
    about = "Weft: a VXLAN overlay network for IaaS clouds"
)]
struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info` or `weft_agent=debug`.
    #[arg(long, global = true, env = "WEFT_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum PkiAction {
    /// Create the CA (ca.pem, ca.key) in DIR.
    Init {
        /// The PKI directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue a node certificate (NAME.pem, NAME.key) or the controller's (server.pem, server.key).
    Issue {
        /// The PKI directory (holding the CA).
        #[arg(long)]
        dir: PathBuf,
        /// A node certificate for this node name.
        #[arg(long, conflicts_with = "server", required_unless_present = "server")]
        node: Option<String>,
        /// The controller's server certificate.
        #[arg(long)]
        server: bool,
        /// DNS names and IP addresses the controller is reached at (with --server).
        #[arg(long, requires = "server")]
        san: Vec<String>,
        /// Where to write the files (default: DIR).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hypervisor agent: the dataplane for this node's VM ports and VTEP, configured by
    /// a file (--config) or by the controller (--controller, see docs/node-api.md).
    Agent {
        /// Node configuration file (TOML; JSON if it ends in .json). See docs/node-config.md.
        #[arg(long, short, required_unless_present = "controller", conflicts_with_all = [
            "controller", "node", "ca", "cert", "key", "state_dir", "vtep_ip", "underlay_mtu", "role",
            "uplink"
        ])]
        config: Option<PathBuf>,
        /// The controller's node API, https://HOST:9697 (mutual TLS).
        #[arg(long, requires_all = ["node", "ca", "cert", "key", "state_dir", "vtep_ip"])]
        controller: Option<String>,
        /// This node's name: its certificate's CN (with --controller).
        #[arg(long, requires = "controller")]
        node: Option<String>,
        /// The CA certificate (PEM), the only one trusted (with --controller).
        #[arg(long, requires = "controller")]
        ca: Option<PathBuf>,
        /// This node's certificate (PEM), signed by the CA (with --controller).
        #[arg(long, requires = "controller")]
        cert: Option<PathBuf>,
        /// This node's private key (PEM) (with --controller).
        #[arg(long, requires = "controller")]
        key: Option<PathBuf>,
        /// Where the agent keeps the last applied configuration and the taps it created, to
        /// restart headless (with --controller).
        #[arg(long, requires = "controller")]
        state_dir: Option<PathBuf>,
        /// This node's VTEP address (with --controller).
        #[arg(long, requires = "controller")]
        vtep_ip: Option<std::net::IpAddr>,
        /// The underlay's MTU (with --controller).
        #[arg(long, requires = "controller", default_value_t = 1500)]
        underlay_mtu: u32,
        /// A role of this node: hypervisor (VM ports), router (tenant routers); repeatable.
        /// Default: hypervisor.
        #[arg(long, requires = "controller", value_parser = ["hypervisor", "router"])]
        role: Vec<String>,
        /// An uplink: the host interface through which this node reaches a physical network
        /// (external and flat networks: router gateways, provider ports), PHYSNET=IFACE, e.g.
        /// public=eth1; repeatable (with --controller). Use a dedicated interface: once a
        /// segment uses it, the agent attaches it and cuts it off from the host's own stack.
        #[arg(long, requires = "controller", value_name = "PHYSNET=IFACE")]
        uplink: Vec<String>,
        /// Control socket for `weft stats`, `weft capture` and `weft reload`.
        #[arg(long, default_value = DEFAULT_CONTROL)]
        control: PathBuf,
    },
    /// Check a node configuration file and print every problem found.
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
    /// Show a running agent's counters: per port, per drop reason, learned MACs.
    Stats {
        /// The agent's control socket.
        #[arg(long, default_value = DEFAULT_CONTROL)]
        control: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Ask a running agent to re-read its configuration file (as SIGHUP does).
    Reload {
        /// The agent's control socket.
        #[arg(long, default_value = DEFAULT_CONTROL)]
        control: PathBuf,
    },
    /// Run the controller: the Neutron-compatible API, IPAM and the store (docs/api.md).
    Controller {
        /// Address to serve the API on.
        #[arg(long, default_value = "127.0.0.1:9696")]
        listen: std::net::SocketAddr,
        /// Database: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB
        /// (default: sqlite in the data directory).
        #[arg(long, env = "WEFT_DB")]
        db: Option<String>,
        /// Authentication: tokens:FILE (token → project, role), keystone:URL, or noauth.
        #[arg(long, env = "WEFT_AUTH", default_value = "tokens:/etc/weft/tokens")]
        auth: String,
        /// Data directory (the default SQLite database lives here).
        #[arg(long, default_value = "/var/lib/weft")]
        data_dir: PathBuf,
        /// The project every request belongs to under --auth noauth.
        #[arg(long, default_value = "default")]
        noauth_project: String,
        /// VNIs for new VXLAN networks, FIRST:LAST, within 1:16711679 (the VNIs above key the
        /// segments of flat networks).
        #[arg(long, default_value = "1:16711679")]
        vni_range: String,
        /// MTU of the underlay; VXLAN networks get 50 bytes less.
        #[arg(long, default_value_t = 1500)]
        underlay_mtu: u32,
        /// The URL clients reach the API at, for links (default: from each request's Host).
        #[arg(long)]
        public_url: Option<String>,
        /// Serve the node API (agents' watch streams, mutual TLS) with the certificates in this
        /// directory: ca.pem, server.pem, server.key (see `weft pki`). Off without it.
        #[arg(long)]
        pki: Option<PathBuf>,
        /// Address of the node API.
        #[arg(long, default_value = "0.0.0.0:9697")]
        node_listen: std::net::SocketAddr,
    },
    /// Run everything on this machine: the controller (embedded SQLite in the data directory,
    /// the Neutron API, the node API) and an agent for this node (hypervisor and router).
    /// Prints the admin token and how to point the openstack CLI at it.
    Up(up::UpOptions),
    /// Manage the node API's certificates: a private CA, node and controller certificates.
    Pki {
        #[command(subcommand)]
        action: PkiAction,
    },
    /// Read the controller's IPAM: per-subnet utilization and the allocation history.
    Ipam {
        /// The controller's API.
        #[arg(long, env = "WEFT_API", default_value = "http://127.0.0.1:9696")]
        url: String,
        /// Token (X-Auth-Token); not needed under --auth noauth.
        #[arg(long, env = "OS_TOKEN")]
        token: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: IpamAction,
    },
    /// Capture a port's traffic (or the underlay's) to a pcap file on a running agent.
    Capture {
        /// The agent's control socket.
        #[arg(long, default_value = DEFAULT_CONTROL)]
        control: PathBuf,
        #[command(subcommand)]
        action: CaptureAction,
    },
}

#[derive(Debug, Subcommand)]
enum IpamAction {
    /// Used and total addresses of every subnet (or of one network's).
    Utilization {
        /// Only this network (id).
        #[arg(long)]
        network: Option<String>,
    },
    /// Who got and gave back which address, newest first.
    History {
        /// Only this subnet (id).
        #[arg(long)]
        subnet: Option<String>,
        /// Only this port (id).
        #[arg(long)]
        port: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
enum CaptureAction {
    /// Start capturing.
    Start {
        /// Port name, or `underlay`.
        target: String,
        /// The pcap file to write.
        file: PathBuf,
        /// Stop writing after this many packets.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Stop capturing and print how many packets were written.
    Stop {
        /// Port name, or `underlay`.
        target: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each once: error types in this project put their cause's message
/// in their own, so a cause already shown is skipped.
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}

fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Agent {
            config,
            controller,
            node,
            ca,
            cert,
            key,
            state_dir,
            vtep_ip,
            underlay_mtu,
            role,
            uplink,
            control,
        } => {
            let source = match (config, controller) {
                (Some(file), None) => weft_agent::ConfigSource::File(file),
                (None, Some(url)) => {
                    let need = |what: &str| anyhow::anyhow!("--controller needs --{what}");
                    let mut roles = role
                        .iter()
                        .map(|r| r.parse().map_err(anyhow::Error::msg))
                        .collect::<Result<Vec<_>>>()?;
                    if roles.is_empty() {
                        roles.push(weft_agent::client::Role::Hypervisor);
                    }
                    weft_agent::ConfigSource::Controller(weft_agent::client::ControllerOptions {
                        url,
                        node: node.ok_or_else(|| need("node"))?,
                        ca: ca.ok_or_else(|| need("ca"))?,
                        cert: cert.ok_or_else(|| need("cert"))?,
                        key: key.ok_or_else(|| need("key"))?,
                        state_dir: state_dir.ok_or_else(|| need("state-dir"))?,
                        vtep_ip: vtep_ip.ok_or_else(|| need("vtep-ip"))?,
                        underlay_mtu,
                        roles,
                        uplinks: weft_agent::client::parse_uplinks(&uplink)
                            .map_err(anyhow::Error::msg)?,
                    })
                }
                _ => anyhow::bail!("give either --config FILE or --controller URL"),
            };
            weft_agent::run(weft_agent::AgentOptions { source, control })?;
        }
        Command::Controller {
            listen,
            db,
            auth,
            data_dir,
            noauth_project,
            vni_range,
            underlay_mtu,
            public_url,
            pki,
            node_listen,
        } => {
            use weft_controlplane::{ControllerConfig, api, auth as cpauth, model, store};
            let project = model::ProjectId::new(&noauth_project)?;
            let (first, last) = vni_range
                .split_once(':')
                .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
                .context("--vni-range must be FIRST:LAST, e.g. 1:16711679")?;
            let cfg = ControllerConfig {
                listen,
                db_url: db.unwrap_or_else(|| ControllerConfig::default_db(&data_dir)),
                auth: cpauth::AuthConfig::parse(&auth, &project)?,
                api: api::ApiConfig {
                    vni_range: first..=last,
                    underlay_mtu,
                    public_url,
                },
                store: store::StoreOptions::default(),
                node_api: pki.map(|pki_dir| weft_controlplane::NodeApiConfig {
                    listen: node_listen,
                    pki_dir,
                }),
            };
            weft_controlplane::server::run_blocking(cfg)?;
        }
        Command::Up(o) => up::run(o)?,
        Command::Pki { action } => {
            use weft_controlplane::pki;
            match action {
                PkiAction::Init { dir } => {
                    let p = pki::init_ca(&dir)?;
                    println!("CA created: {}", p.display());
                }
                PkiAction::Issue {
                    dir,
                    node,
                    server: _,
                    san,
                    out,
                } => {
                    let subject = match node {
                        Some(n) => pki::Subject::Node(n),
                        None => pki::Subject::Server(san),
                    };
                    let p = pki::issue(&dir, &subject, out.as_deref())?;
                    println!("certificate issued: {}", p.display());
                }
            }
        }
        Command::Ipam {
            url,
            token,
            json,
            action,
        } => {
            let out = match action {
                IpamAction::Utilization { network } => weft_controlplane::client::utilization(
                    &url,
                    token.as_deref(),
                    network.as_deref(),
                    json,
                )?,
                IpamAction::History {
                    subnet,
                    port,
                    limit,
                } => weft_controlplane::client::history(
                    &url,
                    token.as_deref(),
                    subnet.as_deref(),
                    port.as_deref(),
                    limit,
                    json,
                )?,
            };
            print!("{out}");
        }
        Command::CheckConfig { file } => {
            let (_, t) = weft_agent::load_config(&file)?;
            println!(
                "{}: valid: node {}, {} segments, {} ports, {} remote VTEPs",
                file.display(),
                t.node,
                t.segments.len(),
                t.ports.len(),
                t.vteps.len()
            );
        }
        Command::Stats { control, json } => {
            let r = control::request(&control, &Request::Stats)?;
            let s = r.stats.context("the agent sent no stats")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", s.render());
            }
        }
        Command::Reload { control } => {
            let r = control::request(&control, &Request::Reload)?;
            println!("reloaded: revision {}", r.revision.unwrap_or(0));
        }
        Command::Capture { control, action } => match action {
            CaptureAction::Start {
                target,
                file,
                count,
            } => {
                let file = std::path::absolute(&file)
                    .with_context(|| format!("cannot resolve {}", file.display()))?;
                control::request(
                    &control,
                    &Request::CaptureStart {
                        target: target.clone(),
                        file: file.clone(),
                        max_packets: count,
                    },
                )?;
                println!("capturing {target} into {}", file.display());
            }
            CaptureAction::Stop { target } => {
                let r = control::request(
                    &control,
                    &Request::CaptureStop {
                        target: target.clone(),
                    },
                )?;
                println!("{target}: {} packets written", r.packets.unwrap_or(0));
            }
        },
    }
    Ok(())
}
