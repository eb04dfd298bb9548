//! `weft up`: the controller and a local agent in one process, on one machine, with the
//! embedded SQLite store in a data directory. First run creates everything it needs there: the
//! node API's CA and certificates, an admin token, a `clouds.yaml` for the `openstack` CLI.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use weft_controlplane::pki::{self, Subject};

/// What `weft up` runs.
#[derive(Debug, Clone, clap::Args)]
pub struct UpOptions {
    /// Data directory (database, certificates, token, clouds.yaml, agent state).
    #[arg(long, default_value = "/var/lib/weft")]
    pub data_dir: PathBuf,
    /// Address of the Neutron API.
    #[arg(long, default_value = "127.0.0.1:9696")]
    pub listen: SocketAddr,
    /// Address of the node API (for agents on other machines, use a routable one).
    #[arg(long, default_value = "127.0.0.1:9697")]
    pub node_listen: SocketAddr,
    /// This node's name (default: the host name); VM ports bound to it are attached here.
    #[arg(long)]
    pub node: Option<String>,
    /// This node's VTEP address.
    #[arg(long, default_value = "127.0.0.1")]
    pub vtep_ip: IpAddr,
    /// The underlay's MTU.
    #[arg(long, default_value_t = 1500)]
    pub underlay_mtu: u32,
    /// The agent's control socket.
    #[arg(long, default_value = crate::DEFAULT_CONTROL)]
    pub control: PathBuf,
    /// An uplink of this node, PHYSNET=IFACE (e.g. public=eth1): the host interface of a
    /// physical network, for external networks (router gateways, floating IPs); repeatable.
    /// Use a dedicated interface: the agent attaches it and cuts it off from the host's stack.
    #[arg(long, value_name = "PHYSNET=IFACE")]
    pub uplink: Vec<String>,
}

fn host_name() -> Result<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("cannot read the host name; give --node")?;
    Ok(h.trim().to_owned())
}

fn random_token() -> Result<String> {
    let mut b = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .context("cannot read /dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The admin token in `tokens` (created on first run).
fn admin_token(tokens: &Path) -> Result<String> {
    if let Ok(text) = std::fs::read_to_string(tokens) {
        let t = text
            .lines()
            .map(|l| {
                l.split('#')
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect::<Vec<_>>()
            })
            .find(|p| p.len() == 3 && p[2] == "admin")
            .map(|p| p[0].to_owned());
        return t.with_context(|| format!("{} has no admin token", tokens.display()));
    }
    let t = random_token()?;
    write_private(
        tokens,
        &format!("# weft up: TOKEN PROJECT ROLE (docs/api.md)\n{t} admin admin\n"),
    )?;
    Ok(t)
}

/// Creates the CA, the controller's and this node's certificates if missing.
fn ensure_pki(dir: &Path, node: &str, node_listen: SocketAddr) -> Result<()> {
    if !dir.join(pki::CA_CERT).exists() {
        pki::init_ca(dir)?;
    }
    if !dir.join(pki::SERVER_CERT).exists() {
        let mut sans = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        if !node_listen.ip().is_unspecified() && !node_listen.ip().is_loopback() {
            sans.push(node_listen.ip().to_string());
        }
        pki::issue(dir, &Subject::Server(sans), None)?;
    }
    if !dir.join(format!("{node}.pem")).exists() {
        pki::issue(dir, &Subject::Node(node.to_owned()), None)?;
    }
    Ok(())
}

/// Runs until SIGTERM or SIGINT.
pub fn run(o: UpOptions) -> Result<()> {
    let node = match o.node.clone() {
        Some(n) => n,
        None => host_name()?,
    };
    let uplinks = weft_agent::client::parse_uplinks(&o.uplink).map_err(anyhow::Error::msg)?;
    if !pki::valid_node_name(&node) {
        bail!(
            "node name '{node}' is not valid (1-255 of letters, digits, '.', '_', '-', ':'); give --node"
        );
    }
    std::fs::create_dir_all(&o.data_dir)
        .with_context(|| format!("cannot create {}", o.data_dir.display()))?;
    let pki_dir = o.data_dir.join("pki");
    ensure_pki(&pki_dir, &node, o.node_listen)?;
    let tokens = o.data_dir.join("tokens");
    let token = admin_token(&tokens)?;
    let endpoint = format!("http://{}", o.listen);
    let clouds = o.data_dir.join("clouds.yaml");
    write_private(
        &clouds,
        &format!(
            "# weft up: the openstack CLI against this controller (OS_CLOUD=weft)\nclouds:\n  weft:\n    auth_type: admin_token\n    auth:\n      endpoint: \"{endpoint}\"\n      token: \"{token}\"\n"
        ),
    )?;

    let cfg = weft_controlplane::ControllerConfig {
        listen: o.listen,
        db_url: weft_controlplane::ControllerConfig::default_db(&o.data_dir),
        auth: weft_controlplane::auth::AuthConfig::Tokens(tokens),
        api: weft_controlplane::api::ApiConfig {
            underlay_mtu: o.underlay_mtu,
            ..Default::default()
        },
        store: weft_controlplane::store::StoreOptions::default(),
        node_api: Some(weft_controlplane::NodeApiConfig {
            listen: o.node_listen,
            pki_dir: pki_dir.clone(),
        }),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .thread_name("weft-controller")
        .build()?;
    let server = rt.block_on(weft_controlplane::Server::bind(cfg))?;
    let node_addr = server.node_addr().context("the node API did not start")?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = rt.spawn(server.run(async move {
        tokio::select! {
            () = weft_controlplane::server::termination() => {}
            _ = stop_rx => {}
        }
    }));

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "weft up: node {node}, data in {data}\n\
         Neutron API  {endpoint}   admin token: {token}\n\
         node API     https://{node_addr} (mutual TLS, certificates in {pki})\n\
         use the openstack CLI:\n  \
           export OS_CLIENT_CONFIG_FILE={clouds} OS_CLOUD=weft\n  \
           openstack network list\n\
         VM ports bound to host '{node}' are attached from interfaces tap<port id[:11]>.",
        data = o.data_dir.display(),
        pki = pki_dir.display(),
        clouds = clouds.display(),
    )?;
    out.flush()?;
    drop(out);

    let agent = weft_agent::AgentOptions {
        source: weft_agent::ConfigSource::Controller(weft_agent::client::ControllerOptions {
            url: format!("https://127.0.0.1:{}", node_addr.port()),
            node: node.clone(),
            ca: pki_dir.join(pki::CA_CERT),
            cert: pki_dir.join(format!("{node}.pem")),
            key: pki_dir.join(format!("{node}.key")),
            state_dir: o.data_dir.join("agent"),
            vtep_ip: o.vtep_ip,
            underlay_mtu: o.underlay_mtu,
            roles: vec![
                weft_agent::client::Role::Hypervisor,
                weft_agent::client::Role::Router,
            ],
            uplinks,
        }),
        control: o.control,
    };
    // The agent runs here until SIGTERM/SIGINT (the controller sees the same signal).
    let agent_result = weft_agent::run(agent);
    let _ = stop_tx.send(());
    let ctl =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(15), controller).await });
    rt.shutdown_timeout(Duration::from_secs(2));
    agent_result?;
    match ctl {
        Ok(Ok(r)) => r?,
        Ok(Err(e)) => bail!("the controller task failed: {e}"),
        Err(_) => bail!("the controller did not stop within 15 s"),
    }
    Ok(())
}
