//! `/v2.0/networks`: VXLAN networks (a VNI each, from the configured range) and, for admins,
//! flat networks on a physical network (uplinks, external networks).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::query::ListParams;
use super::{ApiError, AppState, Ctx, Routes, json_body, path_id, reply};
use crate::model::request::{Field, NetworkCreate, NetworkUpdate, parse_create, parse_one};
use crate::model::validate;
use crate::model::{
    Network, NetworkId, NetworkType, OWNER_FLOATING_IP, OWNER_ROUTER_GATEWAY, Port, ResourceKind,
    Scope, Subnet, Vni,
};
use crate::store::{Filter, Lock, Tx};
use crate::with_retry;

/// Registers the routes.
pub fn routes(r: Routes) -> Routes {
    r.add(
        Method::GET,
        "/v2.0/networks",
        "networks",
        "List networks",
        list,
    )
    .add(
        Method::POST,
        "/v2.0/networks",
        "networks",
        "Create networks (one or bulk)",
        create,
    )
    .add(
        Method::GET,
        "/v2.0/networks/{id}",
        "networks",
        "Show a network",
        show,
    )
    .add(
        Method::PUT,
        "/v2.0/networks/{id}",
        "networks",
        "Update a network",
        update,
    )
    .add(
        Method::DELETE,
        "/v2.0/networks/{id}",
        "networks",
        "Delete a network (no ports left on it)",
        delete,
    )
}

/// The API view of a network: `tenant_id` added, provider attributes for admins only.
pub fn view(n: &Network, admin: bool) -> Value {
    let mut v = serde_json::to_value(n).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("tenant_id".into(), json!(n.project_id));
        o.insert("availability_zone_hints".into(), json!([]));
        o.insert("availability_zones".into(), json!([]));
        if !admin {
            o.remove("provider:network_type");
            o.remove("provider:physical_network");
            o.remove("provider:segmentation_id");
        }
    }
    v
}

async fn list(
    ctx: Ctx,
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = ListParams::parse(q.as_deref())?;
    let nets: Vec<Network> = st.store.list(&ctx.scope(), &p.store_filter(None)).await?;
    let views = nets.iter().map(|n| view(n, ctx.is_admin())).collect();
    Ok(reply(
        StatusCode::OK,
        p.respond(
            "networks",
            views,
            &format!("{}/v2.0/networks", ctx.base_url),
        )?,
    ))
}

async fn show(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = ListParams::parse(q.as_deref())?;
    let id: NetworkId = path_id(ResourceKind::Network, &id)?;
    let n: Network = st
        .store
        .get(&ctx.scope(), &id.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found(ResourceKind::Network, &id.to_string()))?;
    Ok(reply(
        StatusCode::OK,
        json!({"network": p.trim(view(&n, ctx.is_admin()))}),
    ))
}

/// Loads a network the caller can see, or 404.
pub async fn load(
    tx: &mut Tx,
    scope: &Scope,
    id: &NetworkId,
    lock: Lock,
) -> Result<Network, ApiError> {
    tx.get(scope, &id.to_string(), lock)
        .await?
        .ok_or_else(|| ApiError::not_found(ResourceKind::Network, &id.to_string()))
}

async fn allocate_vni(tx: &mut Tx, st: &AppState, id: &NetworkId) -> Result<Vni, ApiError> {
    let used: std::collections::HashSet<u32> = tx
        .segments_in_use("vxlan")
        .await?
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let range = st.config.vni_range.clone();
    let mut v = *range.start();
    // Lowest free VNI; a concurrent writer taking the same one makes the claim fail and we move
    // on, so the loop ends after at most (used + concurrent) steps past the range start.
    while v <= *range.end() {
        if !used.contains(&v)
            && let Some(vni) = Vni::new(v)
            && tx
                .claim_segment("vxlan", &v.to_string(), &id.to_string())
                .await?
        {
            return Ok(vni);
        }
        v += 1;
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "NoNetworkAvailable",
        "Unable to create the network. No tenant network is available for allocation.",
    ))
}

async fn build(
    tx: &mut Tx,
    st: &AppState,
    ctx: &Ctx,
    req: NetworkCreate,
) -> Result<Network, ApiError> {
    let owner = ctx.owner(
        crate::model::request::Owner {
            project_id: req.project_id.clone(),
            tenant_id: req.tenant_id.clone(),
        }
        .requested()?,
    )?;
    let admin_only = [
        (req.shared.is_present(), "create_network:shared"),
        (req.external.is_present(), "create_network:router:external"),
        (
            req.network_type.is_present(),
            "create_network:provider:network_type",
        ),
        (
            req.physical_network.is_present(),
            "create_network:provider:physical_network",
        ),
        (
            req.segmentation_id.is_present(),
            "create_network:provider:segmentation_id",
        ),
    ];
    for (given, rule) in admin_only {
        if given && !ctx.is_admin() {
            return Err(ApiError::forbidden(rule));
        }
    }
    let id = NetworkId::random();
    let name = req.name.value().unwrap_or_default();
    let description = req.description.value().unwrap_or_default();
    validate::text("name", &name)?;
    validate::text("description", &description)?;
    let network_type = match req.network_type.value().as_deref() {
        None | Some("vxlan") => NetworkType::Vxlan,
        Some("flat") => NetworkType::Flat,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid input for provider:network_type. Reason: network type '{other}' is not supported: use vxlan or flat."
            )));
        }
    };
    let (segmentation_id, physical_network, max_mtu) = match network_type {
        NetworkType::Vxlan => {
            if req.physical_network.as_ref().value().is_some() {
                return Err(ApiError::bad_request(
                    "Invalid input for provider:physical_network. Reason: a vxlan network has no physical network.",
                ));
            }
            let vni = match req.segmentation_id.value().map(|n| n.0) {
                Some(v) => {
                    let vni = Vni::new(v).filter(|_| v >= 1).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "Invalid input for provider:segmentation_id. Reason: {v} is not a VXLAN network id (1 to 16777215)."
                        ))
                    })?;
                    if crate::compile::UPLINK_VNIS.contains(&v) {
                        return Err(ApiError::bad_request(format!(
                            "Invalid input for provider:segmentation_id. Reason: {v} is reserved: VNIs {} to {} key the segments of flat networks.",
                            crate::compile::UPLINK_VNIS.start(),
                            crate::compile::UPLINK_VNIS.end()
                        )));
                    }
                    if !tx
                        .claim_segment("vxlan", &v.to_string(), &id.to_string())
                        .await?
                    {
                        return Err(ApiError::conflict(
                            "TunnelIdInUse",
                            format!("Unable to create the network. The tunnel ID {v} is in use."),
                        ));
                    }
                    vni
                }
                None => allocate_vni(tx, st, &id).await?,
            };
            (Some(vni), None, st.config.vxlan_mtu())
        }
        NetworkType::Flat => {
            if req.segmentation_id.as_ref().value().is_some() {
                return Err(ApiError::bad_request(
                    "Invalid input for provider:segmentation_id. Reason: a flat network has no segmentation id.",
                ));
            }
            let phys = req.physical_network.value().filter(|p| !p.is_empty()).ok_or_else(|| {
                ApiError::bad_request(
                    "Invalid input for provider:physical_network. Reason: a flat network needs a physical network.",
                )
            })?;
            validate::text("provider:physical_network", &phys)?;
            if !tx.claim_segment("flat", &phys, &id.to_string()).await? {
                return Err(ApiError::conflict(
                    "FlatNetworkInUse",
                    format!(
                        "Unable to create the flat network. Physical network {phys} is in use."
                    ),
                ));
            }
            (None, Some(phys), st.config.underlay_mtu)
        }
    };
    let mtu = match req.mtu.value().map(|n| n.0) {
        None => max_mtu,
        Some(m) => check_mtu(m, max_mtu)?,
    };
    let tags = match req.tags {
        Field::Value(t) => validate::tags(&t)?,
        _ => Vec::new(),
    };
    let mut n = Network {
        id,
        project_id: owner,
        name,
        description,
        admin_state_up: req.admin_state_up.value().is_none_or(|b| b.0),
        status: "ACTIVE".into(),
        shared: req.shared.value().is_some_and(|b| b.0),
        external: req.external.value().is_some_and(|b| b.0),
        mtu,
        port_security_enabled: req.port_security_enabled.value().is_none_or(|b| b.0),
        network_type,
        physical_network,
        segmentation_id,
        subnets: Vec::new(),
        tags,
        std: Default::default(),
    };
    tx.insert(&ctx.scope(), &mut n).await?;
    tracing::info!(network = %n.id, vni = ?n.segmentation_id, "network created");
    Ok(n)
}

fn check_mtu(m: u32, max: u32) -> Result<u32, ApiError> {
    if m > max {
        return Err(ApiError::bad_request(format!(
            "Invalid input for mtu. Reason: Requested MTU is too big, maximum is {max}."
        )));
    }
    if m < 68 {
        return Err(ApiError::bad_request(format!(
            "Invalid input for mtu. Reason: '{m}' is too small - must be at least '68'."
        )));
    }
    Ok(m)
}

async fn create(ctx: Ctx, State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let body = json_body(&body)?;
    let reqs: Vec<NetworkCreate> = parse_create(&body, "network", "networks")?;
    let bulk = body.get("networks").is_some();
    let nets = with_retry!({
        let mut tx = st.store.begin(&ctx.scope(), &ctx.request_id).await?;
        let mut out = Vec::new();
        for r in reqs.clone() {
            out.push(build(&mut tx, &st, &ctx, r).await?);
        }
        tx.commit().await?;
        Ok(out)
    })?;
    let views: Vec<Value> = nets.iter().map(|n| view(n, ctx.is_admin())).collect();
    Ok(reply(
        StatusCode::CREATED,
        if bulk {
            json!({"networks": views})
        } else {
            json!({"network": views.into_iter().next()})
        },
    ))
}

async fn update(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let id: NetworkId = path_id(ResourceKind::Network, &id)?;
    let req: NetworkUpdate = parse_one(&json_body(&body)?, "network")?;
    for (given, rule) in [
        (req.shared.is_present(), "update_network:shared"),
        (req.external.is_present(), "update_network:router:external"),
    ] {
        if given && !ctx.is_admin() {
            return Err(ApiError::forbidden(rule));
        }
    }
    let n = with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let mut n = load(&mut tx, &scope, &id, Lock::Update).await?;
        if !scope.may_write(&n.project_id) {
            return Err(ApiError::forbidden("update_network"));
        }
        if let Field::Value(s) = &req.name {
            validate::text("name", s)?;
            n.name = s.clone();
        }
        if let Field::Value(s) = &req.description {
            validate::text("description", s)?;
            n.description = s.clone();
        }
        if let Field::Value(b) = req.admin_state_up {
            n.admin_state_up = b.0;
        }
        if let Field::Value(b) = req.port_security_enabled {
            n.port_security_enabled = b.0;
        }
        if let Field::Value(crate::model::request::Num(m)) = req.mtu {
            let max = match n.network_type {
                NetworkType::Vxlan => st.config.vxlan_mtu(),
                NetworkType::Flat => st.config.underlay_mtu,
            };
            n.mtu = check_mtu(m, max)?;
            if n.mtu < 1280 {
                let subnets: Vec<Subnet> = tx.list(&Scope::All, &Filter::parent(n.id)).await?;
                if subnets.iter().any(|s| s.ip_version == 6) {
                    return Err(ApiError::bad_request(
                        "Invalid input for mtu. Reason: a network with IPv6 subnets needs an MTU of at least 1280.",
                    ));
                }
            }
        }
        if let Field::Value(b) = req.external
            && n.external
            && !b.0
        {
            let ports: Vec<Port> = tx.list(&Scope::All, &Filter::parent(n.id)).await?;
            if ports.iter().any(|p| {
                p.device_owner == OWNER_ROUTER_GATEWAY || p.device_owner == OWNER_FLOATING_IP
            }) {
                return Err(ApiError::conflict(
                    "ExternalNetworkInUse",
                    format!(
                        "External network {} supports further resources (router gateways or floating IPs)",
                        n.id
                    ),
                ));
            }
        }
        if let Field::Value(b) = req.external {
            n.external = b.0;
        }
        let was_shared = n.shared;
        if let Field::Value(b) = req.shared {
            n.shared = b.0;
        }
        tx.update(&scope, &mut n).await?;
        if was_shared != n.shared {
            tx.set_children_visible(ResourceKind::Subnet, &n.id.to_string(), n.shared)
                .await?;
        }
        tx.commit().await?;
        Ok(n)
    })?;
    Ok(reply(
        StatusCode::OK,
        json!({"network": view(&n, ctx.is_admin())}),
    ))
}

async fn delete(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let id: NetworkId = path_id(ResourceKind::Network, &id)?;
    with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let n = load(&mut tx, &scope, &id, Lock::Update).await?;
        if !scope.may_write(&n.project_id) {
            return Err(ApiError::forbidden("delete_network"));
        }
        let ports: Vec<Port> = tx.list(&Scope::All, &Filter::parent(n.id)).await?;
        if !ports.is_empty() {
            return Err(ApiError::conflict(
                "NetworkInUse",
                format!(
                    "Unable to complete operation on network {}. There are one or more ports still in use on the network.",
                    n.id
                ),
            ));
        }
        let subnets: Vec<Subnet> = tx.list(&Scope::All, &Filter::parent(n.id)).await?;
        for s in &subnets {
            tx.delete(&Scope::All, s).await?;
        }
        tx.release_segments(&n.id.to_string()).await?;
        tx.delete(&scope, &n).await?;
        tx.commit().await?;
        tracing::info!(network = %n.id, "network deleted");
        Ok(())
    })?;
    Ok(axum::response::IntoResponse::into_response(
        StatusCode::NO_CONTENT,
    ))
}
