//! `/v2.0/subnets`: IPv4 and IPv6 subnets of a network, with pools, gateway, DNS servers,
//! host routes and IPv6 modes. Subnets of one network never overlap (checked with the network
//! row locked, so concurrent creations cannot both pass).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::networks;
use super::query::ListParams;
use super::{ApiError, AppState, Ctx, Routes, json_body, path_id, reply};
use crate::ipam;
use crate::model::request::{Field, Owner, SubnetCreate, SubnetUpdate, parse_create, parse_one};
use crate::model::validate;
use crate::model::{FixedIp, Port, ResourceKind, Scope, Subnet, SubnetId};
use crate::store::{Filter, Lock, Tx};
use crate::with_retry;

/// Registers the routes.
pub fn routes(r: Routes) -> Routes {
    r.add(
        Method::GET,
        "/v2.0/subnets",
        "subnets",
        "List subnets",
        list,
    )
    .add(
        Method::POST,
        "/v2.0/subnets",
        "subnets",
        "Create subnets (one or bulk)",
        create,
    )
    .add(
        Method::GET,
        "/v2.0/subnets/{id}",
        "subnets",
        "Show a subnet",
        show,
    )
    .add(
        Method::PUT,
        "/v2.0/subnets/{id}",
        "subnets",
        "Update a subnet",
        update,
    )
    .add(
        Method::DELETE,
        "/v2.0/subnets/{id}",
        "subnets",
        "Delete a subnet (no addresses in use)",
        delete,
    )
}

/// The API view of a subnet.
pub fn view(s: &Subnet) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("tenant_id".into(), json!(s.project_id));
        o.insert("subnetpool_id".into(), Value::Null);
        o.insert("service_types".into(), json!([]));
    }
    v
}

async fn list(
    ctx: Ctx,
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = ListParams::parse(q.as_deref())?;
    let items: Vec<Subnet> = st
        .store
        .list(&ctx.scope(), &p.store_filter(Some("network_id")))
        .await?;
    let views = items.iter().map(view).collect();
    Ok(reply(
        StatusCode::OK,
        p.respond("subnets", views, &format!("{}/v2.0/subnets", ctx.base_url))?,
    ))
}

async fn show(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = ListParams::parse(q.as_deref())?;
    let id: SubnetId = path_id(ResourceKind::Subnet, &id)?;
    let s: Subnet = st
        .store
        .get(&ctx.scope(), &id.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found(ResourceKind::Subnet, &id.to_string()))?;
    Ok(reply(StatusCode::OK, json!({"subnet": p.trim(view(&s))})))
}

/// Loads a subnet the caller can see, or 404.
pub async fn load(
    tx: &mut Tx,
    scope: &Scope,
    id: &SubnetId,
    lock: Lock,
) -> Result<Subnet, ApiError> {
    tx.get(scope, &id.to_string(), lock)
        .await?
        .ok_or_else(|| ApiError::not_found(ResourceKind::Subnet, &id.to_string()))
}

async fn build(tx: &mut Tx, ctx: &Ctx, req: SubnetCreate) -> Result<Subnet, ApiError> {
    let scope = ctx.scope();
    let network_id = req.network_id.value().ok_or_else(|| {
        ApiError::bad_request("Invalid input for network_id. Reason: a subnet needs a network_id.")
    })?;
    let mut network = networks::load(tx, &scope, &network_id, Lock::Update).await?;
    let owner = ctx.owner(
        Owner {
            project_id: req.project_id.clone(),
            tenant_id: req.tenant_id.clone(),
        }
        .requested()?,
    )?;
    if !ctx.is_admin() && network.project_id != ctx.principal.project {
        return Err(ApiError::forbidden(
            "create_subnet: the network belongs to another project",
        ));
    }
    if req
        .subnetpool_id
        .as_ref()
        .value()
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::bad_request(
            "Invalid input for subnetpool_id. Reason: subnet pools are not supported.",
        ));
    }
    let ip_version = req.ip_version.value().map(|n| n.0).ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for ip_version. Reason: ip_version is required (4 or 6).",
        )
    })?;
    if ip_version != 4 && ip_version != 6 {
        return Err(ApiError::bad_request(format!(
            "Invalid input for ip_version. Reason: {ip_version} is not in [4, 6]."
        )));
    }
    let cidr = req.cidr.value().ok_or_else(|| {
        ApiError::bad_request("Invalid input for cidr. Reason: cidr is required.")
    })?;
    validate::subnet_cidr(cidr, ip_version)?;
    let gateway_ip = match req.gateway_ip {
        Field::Absent => ipam::from_u128(ipam::bounds(cidr).0 + 1, cidr.network())
            .filter(|g| !ipam::is_reserved(cidr, *g)),
        Field::Null => None,
        Field::Value(g) => Some(g),
    };
    let allocation_pools = match req.allocation_pools {
        Field::Value(p) if !p.is_empty() => p,
        _ => ipam::default_pools(cidr, gateway_ip),
    };
    let tags = match req.tags {
        Field::Value(t) => validate::tags(&t)?,
        _ => Vec::new(),
    };
    let mut s = Subnet {
        id: SubnetId::random(),
        project_id: owner,
        name: req.name.value().unwrap_or_default(),
        description: req.description.value().unwrap_or_default(),
        network_id,
        ip_version,
        cidr,
        gateway_ip,
        allocation_pools,
        dns_nameservers: req.dns_nameservers.value().unwrap_or_default(),
        host_routes: req.host_routes.value().unwrap_or_default(),
        enable_dhcp: req.enable_dhcp.value().is_none_or(|b| b.0),
        ipv6_ra_mode: req.ipv6_ra_mode.value(),
        ipv6_address_mode: req.ipv6_address_mode.value(),
        tags,
        std: Default::default(),
    };
    validate::subnet(&s)?;
    if ip_version == 6 && network.mtu < 1280 {
        return Err(ApiError::bad_request(format!(
            "Invalid input for operation: IPv6 subnet cannot be created on network {} with an MTU below 1280.",
            network.id
        )));
    }
    let siblings: Vec<Subnet> = tx.list(&Scope::All, &Filter::parent(network_id)).await?;
    if let Some(o) = siblings.iter().find(|o| {
        o.cidr.is_ipv4() == cidr.is_ipv4()
            && (o.cidr.contains(cidr.network()) || cidr.contains(o.cidr.network()))
    }) {
        return Err(ApiError::invalid_input(format!(
            "Requested subnet with cidr: {cidr} for network: {network_id} overlaps with another subnet ({} of subnet {})",
            o.cidr, o.id
        )));
    }
    tx.insert(&scope, &mut s).await?;
    if network.shared {
        tx.set_visible(ResourceKind::Subnet, &s.id.to_string(), true)
            .await?;
    }
    network.subnets.push(s.id);
    tx.update(&Scope::All, &mut network).await?;
    if s.is_auto_address() {
        // As Neutron: every port already on the network gets its EUI-64 address here.
        let ports: Vec<Port> = tx.list(&Scope::All, &Filter::parent(network_id)).await?;
        for mut p in ports {
            if p.is_router_owned() {
                continue;
            }
            if let Some(ip) = ipam::eui64(s.cidr, p.mac_address)
                && tx
                    .claim_ip(&s, ip, &p.id.to_string(), &p.project_id)
                    .await?
            {
                p.fixed_ips.push(FixedIp {
                    subnet_id: s.id,
                    ip_address: ip,
                });
                tx.update(&Scope::All, &mut p).await?;
            }
        }
    }
    tracing::info!(subnet = %s.id, cidr = %s.cidr, network = %network_id, "subnet created");
    Ok(s)
}

async fn create(ctx: Ctx, State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let body = json_body(&body)?;
    let reqs: Vec<SubnetCreate> = parse_create(&body, "subnet", "subnets")?;
    let bulk = body.get("subnets").is_some();
    let subnets = with_retry!({
        let mut tx = st.store.begin(&ctx.scope(), &ctx.request_id).await?;
        let mut out = Vec::new();
        for r in reqs.clone() {
            out.push(build(&mut tx, &ctx, r).await?);
        }
        tx.commit().await?;
        Ok(out)
    })?;
    let views: Vec<Value> = subnets.iter().map(view).collect();
    Ok(reply(
        StatusCode::CREATED,
        if bulk {
            json!({"subnets": views})
        } else {
            json!({"subnet": views.into_iter().next()})
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
    let id: SubnetId = path_id(ResourceKind::Subnet, &id)?;
    let req: SubnetUpdate = parse_one(&json_body(&body)?, "subnet")?;
    let s = with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let mut s = load(&mut tx, &scope, &id, Lock::Update).await?;
        if !scope.may_write(&s.project_id) {
            return Err(ApiError::forbidden("update_subnet"));
        }
        if let Field::Value(v) = &req.name {
            s.name = v.clone();
        }
        if let Field::Value(v) = &req.description {
            s.description = v.clone();
        }
        let old_gw = s.gateway_ip;
        match req.gateway_ip {
            Field::Absent => {}
            Field::Null => s.gateway_ip = None,
            Field::Value(g) => s.gateway_ip = Some(g),
        }
        match &req.allocation_pools {
            Field::Absent => {}
            Field::Null => s.allocation_pools = ipam::default_pools(s.cidr, s.gateway_ip),
            Field::Value(p) => s.allocation_pools = p.clone(),
        }
        match &req.dns_nameservers {
            Field::Absent => {}
            Field::Null => s.dns_nameservers.clear(),
            Field::Value(v) => s.dns_nameservers = v.clone(),
        }
        match &req.host_routes {
            Field::Absent => {}
            Field::Null => s.host_routes.clear(),
            Field::Value(v) => s.host_routes = v.clone(),
        }
        if let Field::Value(b) = req.enable_dhcp {
            s.enable_dhcp = b.0;
        }
        validate::subnet(&s)?;
        if let Some(g) = s.gateway_ip
            && Some(g) != old_gw
            && let Some(owner) = tx.ip_owner(&s.id.to_string(), g).await?
        {
            let p: Option<Port> = tx.get(&Scope::All, &owner, Lock::None).await?;
            if !p.is_some_and(|p| p.is_router_owned()) {
                return Err(ApiError::conflict(
                    "GatewayIpInUse",
                    format!("Gateway ip {g} conflicts with the address of port {owner}"),
                ));
            }
        }
        tx.update(&scope, &mut s).await?;
        tx.commit().await?;
        Ok(s)
    })?;
    Ok(reply(StatusCode::OK, json!({"subnet": view(&s)})))
}

async fn delete(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let id: SubnetId = path_id(ResourceKind::Subnet, &id)?;
    with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let pre = load(&mut tx, &scope, &id, Lock::None).await?;
        // Lock order: network, then subnet (as port creation does).
        let mut network =
            networks::load(&mut tx, &Scope::All, &pre.network_id, Lock::Update).await?;
        let s = load(&mut tx, &scope, &id, Lock::Update).await?;
        if !scope.may_write(&s.project_id) {
            return Err(ApiError::forbidden("delete_subnet"));
        }
        let holders = tx.ports_on_subnet(&s.id.to_string()).await?;
        let mut ports = Vec::new();
        for h in &holders {
            if let Some(p) = tx.get::<Port>(&Scope::All, h, Lock::Update).await? {
                ports.push(p);
            }
        }
        // Automatic (SLAAC) addresses of ordinary ports go with the subnet, as in Neutron;
        // anything else keeps the subnet in use.
        if !(holders.is_empty()
            || s.is_auto_address() && ports.iter().all(|p| !p.is_router_owned()))
        {
            return Err(ApiError::conflict(
                "SubnetInUse",
                format!(
                    "Unable to complete operation on subnet {}: One or more ports have an IP allocation from this subnet.",
                    s.id
                ),
            ));
        }
        for mut p in ports {
            let (gone, kept): (Vec<FixedIp>, Vec<FixedIp>) =
                p.fixed_ips.iter().partition(|f| f.subnet_id == s.id);
            for f in gone {
                tx.release_ip(
                    &s.id.to_string(),
                    f.ip_address,
                    &p.id.to_string(),
                    &p.project_id,
                )
                .await?;
            }
            p.fixed_ips = kept;
            tx.update(&Scope::All, &mut p).await?;
        }
        network.subnets.retain(|x| *x != s.id);
        tx.update(&Scope::All, &mut network).await?;
        tx.delete(&scope, &s).await?;
        tx.commit().await?;
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
