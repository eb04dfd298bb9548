//! The Neutron v2.0 API over HTTP (axum).
//!
//! ```text
//!   request ─► request_id middleware (span + header) ─► route ─► Ctx (token → Principal)
//!           ─► parse body (model::request) ─► one store transaction (retried whole on
//!              serialization failures) ─► view (JSON) ─► response
//! ```
//!
//! Every route is registered through [`Routes::add`], which also records it for the OpenAPI
//! document ([`crate::openapi`]), so the document lists exactly what is served.
//! Handlers never panic on request data: bodies are parsed into typed requests first, every
//! lookup of a client-given id goes through the store with the caller's scope, and errors are
//! [`ApiError`]s rendered as Neutron does.

pub mod error;
pub mod extensions;
pub mod floatingips;
pub mod ipam;
pub mod networks;
pub mod port_forwardings;
pub mod ports;
pub mod query;
pub mod routers;
pub mod security_groups;
pub mod subnets;
pub mod tags;

use std::ops::RangeInclusive;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use serde_json::{Value, json};

pub use error::ApiError;

use crate::auth::{Authenticator, Principal};
use crate::model::{ProjectId, Scope};
use crate::request_id::RequestId;
use crate::store::Store;

/// Settings the API needs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// VNIs the controller hands out to new VXLAN networks: within 1..=16711679 (the VNIs
    /// above are the keys of flat networks' segments, [`crate::compile::UPLINK_VNIS`]).
    pub vni_range: RangeInclusive<u32>,
    /// MTU of the underlay (and of flat networks); VXLAN networks get 50 bytes less.
    pub underlay_mtu: u32,
    /// The URL clients reach the API at (links in discovery and pagination); by default taken
    /// from each request's `Host` header.
    pub public_url: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            vni_range: 1..=*crate::compile::UPLINK_VNIS.start() - 1,
            underlay_mtu: 1500,
            public_url: None,
        }
    }
}

impl ApiConfig {
    /// The largest (and default) MTU of a VXLAN network: the underlay's less the 50 bytes of
    /// outer Ethernet, IPv4, UDP and VXLAN headers.
    pub fn vxlan_mtu(&self) -> u32 {
        self.underlay_mtu.saturating_sub(50)
    }
}

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Token validation.
    pub auth: Arc<Authenticator>,
    /// Settings.
    pub config: Arc<ApiConfig>,
}

/// The caller of a request: who, and the request's id.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Who.
    pub principal: Principal,
    /// The request id.
    pub request_id: String,
    /// The API's base URL as the client sees it (no trailing slash).
    pub base_url: String,
}

impl Ctx {
    /// The store scope of the caller.
    pub fn scope(&self) -> Scope {
        self.principal.scope()
    }

    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.principal.is_admin()
    }

    /// The project a new resource belongs to: the caller's own, or (admins only) the one the
    /// body names.
    pub fn owner(&self, requested: Option<String>) -> Result<ProjectId, ApiError> {
        match requested {
            None => Ok(self.principal.project.clone()),
            Some(p) => {
                let p = ProjectId::new(&p).map_err(|e| ApiError::bad_request(e.to_string()))?;
                if p != self.principal.project && !self.is_admin() {
                    return Err(ApiError::forbidden(
                        "specifying a project other than your own requires admin",
                    ));
                }
                Ok(p)
            }
        }
    }

    /// Refuses unless the caller may write at all (readers may not).
    pub fn require_write(&self) -> Result<(), ApiError> {
        if self.scope().writes() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "the reader role cannot change resources",
            ))
        }
    }

    /// Refuses unless the caller is an admin; `what` names the action.
    pub fn require_admin(&self, what: &str) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(what))
        }
    }
}

/// The base URL for links: the configured public URL, or `http://` + the Host header.
pub fn base_url(config: &ApiConfig, headers: &HeaderMap) -> String {
    if let Some(u) = &config.public_url {
        return u.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("127.0.0.1:9696");
    format!("http://{host}")
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_else(|| RequestId::new().0);
        let token = parts
            .headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.is_empty());
        let principal = state.auth.authenticate(token).await?;
        tracing::debug!(project = %principal.project, role = ?principal.role, "authenticated");
        Ok(Ctx {
            principal,
            request_id,
            base_url: base_url(&state.config, &parts.headers),
        })
    }
}

/// Parses a request body as JSON (Neutron's error for anything else).
pub fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("Resource body required"));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Malformed request body: {e}")))
}

/// A JSON response with a status.
pub fn reply(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// Runs a block that opens, uses and commits one store transaction; runs it again (up to 8
/// times, with a short random pause) when the store reports a serialization failure or
/// deadlock, so a request either fully happens once or fails as a whole.
#[macro_export]
#[doc(hidden)]
macro_rules! with_retry {
    ($body:expr) => {{
        let mut attempt: u32 = 0;
        loop {
            let r: Result<_, $crate::api::ApiError> = async { $body }.await;
            match r {
                Err(e) if e.retryable && attempt < 8 => {
                    attempt += 1;
                    let ms =
                        2u64 + (uuid::Uuid::new_v4().as_u128() % 20) as u64 * u64::from(attempt);
                    tracing::debug!(attempt, "retrying after a serialization failure");
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                }
                other => break other,
            }
        }
    }};
}

/// One documented route.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    /// HTTP method.
    pub method: Method,
    /// Path template (`/v2.0/networks/{id}`).
    pub path: &'static str,
    /// One line about it.
    pub summary: &'static str,
    /// Group (OpenAPI tag).
    pub tag: &'static str,
}

/// Builds the router and the list of routes together.
#[derive(Debug)]
pub struct Routes {
    router: Router<AppState>,
    docs: Vec<RouteDoc>,
}

impl Routes {
    fn new() -> Self {
        Routes {
            router: Router::new(),
            docs: Vec::new(),
        }
    }

    /// Serves `handler` for `method` at `path`, and documents it: the method given is the
    /// method served, so the document cannot disagree with the router.
    pub fn add<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        tag: &'static str,
        summary: &'static str,
        handler: H,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        self.router = self.router.route(path, on(filter, handler));
        self.docs.push(RouteDoc {
            method,
            path,
            summary,
            tag,
        });
        self
    }
}

/// Every route of the API, documented.
pub fn routes() -> (Router<AppState>, Vec<RouteDoc>) {
    let r = Routes::new()
        .add(
            Method::GET,
            "/",
            "discovery",
            "API versions (unauthenticated)",
            versions,
        )
        .add(
            Method::GET,
            "/v2.0/",
            "discovery",
            "Resources of API v2.0 (unauthenticated)",
            v2_resources,
        )
        .add(
            Method::GET,
            "/openapi.json",
            "discovery",
            "This document (unauthenticated)",
            crate::openapi::serve,
        );
    let r = extensions::routes(r);
    let r = networks::routes(r);
    let r = subnets::routes(r);
    let r = ports::routes(r);
    let r = routers::routes(r);
    let r = floatingips::routes(r);
    let r = port_forwardings::routes(r);
    let r = security_groups::routes(r);
    let r = ipam::routes(r);
    let r = tags::routes(r);
    (r.router, r.docs)
}

/// The whole application: routes, fallbacks, request ids.
pub fn app(state: AppState) -> Router {
    let (router, _) = routes();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024))
        .layer(axum::middleware::from_fn(crate::request_id::middleware))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "HTTPNotFound",
        "The resource could not be found.",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTPMethodNotAllowed",
        "The method is not allowed for the requested URL.",
    )
}

async fn versions(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_url(&st.config, &headers);
    reply(
        StatusCode::OK,
        json!({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{base}/v2.0/")}]}]}),
    )
}

/// The collections of API v2.0 (`GET /v2.0/`).
pub const COLLECTIONS: &[(&str, &str)] = &[
    ("network", "networks"),
    ("subnet", "subnets"),
    ("port", "ports"),
    ("router", "routers"),
    ("floatingip", "floatingips"),
    ("security_group", "security-groups"),
    ("security_group_rule", "security-group-rules"),
    ("extension", "extensions"),
    ("network_ip_availability", "network-ip-availabilities"),
];

async fn v2_resources(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_url(&st.config, &headers);
    let resources: Vec<Value> = COLLECTIONS
        .iter()
        .map(|(name, coll)| json!({"name": name, "collection": coll, "links": [{"rel": "self", "href": format!("{base}/v2.0/{coll}")}]}))
        .collect();
    reply(StatusCode::OK, json!({ "resources": resources }))
}

/// Parses a path id as a UUID; anything else is a 404 of that kind (so find-by-name falls back
/// to listing by name).
pub fn path_id<T: std::str::FromStr>(
    kind: crate::model::ResourceKind,
    s: &str,
) -> Result<T, ApiError> {
    s.parse().map_err(|_| ApiError::not_found(kind, s))
}
