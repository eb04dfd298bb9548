//! Running the controller: open the store, bind, serve until SIGTERM or SIGINT, then finish the
//! requests in flight (graceful shutdown) and close the database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api::{self, ApiConfig, AppState};
use crate::auth::{AuthConfig, AuthError, Authenticator};
use crate::nodeapi::{self, Hub, NodeApi};
use crate::store::{Store, StoreError, StoreOptions};

/// Errors of starting or running the controller.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Authentication could not be set up.
    #[error("auth: {0}")]
    Auth(#[from] AuthError),
    /// The address could not be bound, or serving failed.
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    /// Serving failed.
    #[error("server: {0}")]
    Serve(std::io::Error),
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
    /// The node API's certificates could not be loaded.
    #[error("node API: {0}")]
    Pki(#[from] crate::pki::PkiError),
}

/// Everything `weft controller` needs.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// `sqlite://PATH` or `postgres://...`.
    pub db_url: String,
    /// Authentication mode.
    pub auth: AuthConfig,
    /// API settings.
    pub api: ApiConfig,
    /// Pool size.
    pub store: StoreOptions,
    /// The node API (agents' watch streams); off when `None`.
    pub node_api: Option<NodeApiConfig>,
}

/// Where and how the node API listens (`docs/node-api.md`).
#[derive(Debug, Clone)]
pub struct NodeApiConfig {
    /// Its address (default `0.0.0.0:9697`).
    pub listen: SocketAddr,
    /// The PKI directory: `ca.pem`, `server.pem`, `server.key`.
    pub pki_dir: PathBuf,
}

impl ControllerConfig {
    /// The default database: `controller.db` in the data directory.
    pub fn default_db(data_dir: &std::path::Path) -> String {
        crate::store::sqlite_url(&data_dir.join("controller.db"))
    }

    /// The default token file: `/etc/weft/tokens`.
    pub fn default_tokens() -> PathBuf {
        PathBuf::from("/etc/weft/tokens")
    }
}

/// A bound, ready controller.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
    nodes: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
    hub: Arc<Hub>,
}

impl Server {
    /// Opens the store (migrating it), sets up authentication and binds the address.
    pub async fn bind(cfg: ControllerConfig) -> Result<Server, ServerError> {
        let range = &cfg.api.vni_range;
        let last = *crate::compile::UPLINK_VNIS.start() - 1;
        if *range.start() < 1 || *range.end() > last || range.start() > range.end() {
            return Err(ServerError::Config(format!(
                "VNI range {}..={} is not within 1..={last} (the VNIs above key flat networks' segments)",
                range.start(),
                range.end()
            )));
        }
        if !(1280..=65_535).contains(&cfg.api.underlay_mtu) {
            return Err(ServerError::Config(format!(
                "underlay MTU {} is not within 1280..=65535",
                cfg.api.underlay_mtu
            )));
        }
        let auth = Authenticator::new(&cfg.auth)?;
        let store = Store::open(&cfg.db_url, &cfg.store).await?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| ServerError::Listen(cfg.listen, e))?;
        let nodes = match &cfg.node_api {
            Some(n) => {
                let tls = crate::pki::server_config(&n.pki_dir)?;
                let l = TcpListener::bind(n.listen)
                    .await
                    .map_err(|e| ServerError::Listen(n.listen, e))?;
                Some((l, tls))
            }
            None => None,
        };
        Ok(Server {
            listener,
            nodes,
            hub: Hub::new(),
            state: AppState {
                store,
                auth: Arc::new(auth),
                config: Arc::new(cfg.api),
            },
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener.local_addr().map_err(ServerError::Serve)
    }

    /// The store (for in-process readers: the compiler of issue 6, tests).
    pub fn store(&self) -> Store {
        self.state.store.clone()
    }

    /// The node API's bound address, if it is on.
    pub fn node_addr(&self) -> Option<SocketAddr> {
        self.nodes.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The compiled node configurations.
    pub fn hub(&self) -> Arc<Hub> {
        self.hub.clone()
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let store = self.state.store.clone();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        if let Some((listener, tls)) = self.nodes {
            let hub = self.hub.clone();
            tasks.spawn(nodeapi::compile_loop(
                store.clone(),
                hub.clone(),
                stop_rx.clone(),
            ));
            let app = nodeapi::router(NodeApi {
                store: store.clone(),
                hub,
            });
            tasks.spawn(nodeapi::serve(listener, tls, app, stop_rx.clone()));
        }
        let app = api::app(self.state);
        let r = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServerError::Serve);
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        store.close().await;
        r
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => tracing::info!("SIGTERM: finishing requests in flight"),
                _ = i.recv() => tracing::info!("SIGINT: finishing requests in flight"),
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `weft controller`: runs until SIGTERM/SIGINT (on its own multi-threaded runtime).
pub fn run_blocking(cfg: ControllerConfig) -> Result<(), ServerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weft-controller")
        .build()
        .map_err(ServerError::Serve)?;
    rt.block_on(async move {
        let server = Server::bind(cfg).await?;
        tracing::info!(addr = %server.local_addr()?, nodes = ?server.node_addr(), "controller listening");
        server.run(termination()).await?;
        tracing::info!("controller stopped");
        Ok(())
    })
}
