//! `/v2.0/floatingips`: an address of an external network (held by a system port on it),
//! optionally associated with a port's IPv4 address. Association needs a router with its
//! gateway on the external network and an interface on the port's subnet; one fixed address
//! has at most one floating IP (checked with the port row locked). A floating IP with port
//! forwardings (`port_forwardings.rs`) cannot be associated, nor can a port they forward to;
//! deleting the floating IP deletes its port forwardings.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ports::{self, SystemPort};
use super::query::ListParams;
use super::{ApiError, AppState, Ctx, Routes, json_body, networks, path_id, reply};
use crate::model::request::{
    Field, FixedIpRequest, FloatingIpCreate, FloatingIpUpdate, Owner, PortCreate, parse_create,
    parse_one,
};
use crate::model::validate;
use crate::model::{
    FloatingIp, FloatingIpId, NetworkId, OWNER_FLOATING_IP, OWNER_ROUTER_INTERFACE, Port,
    PortForwarding, PortId, ProjectId, ResourceKind, Router, RouterId, Scope, StandardAttrs,
    Subnet, SubnetId,
};
use crate::store::{Filter, Lock, Store, Tx};
use crate::with_retry;

/// Registers the routes.
pub fn routes(r: Routes) -> Routes {
    r.add(
        Method::GET,
        "/v2.0/floatingips",
        "floatingips",
        "List floating IPs",
        list,
    )
    .add(
        Method::POST,
        "/v2.0/floatingips",
        "floatingips",
        "Create floating IPs (optionally associated)",
        create,
    )
    .add(
        Method::GET,
        "/v2.0/floatingips/{id}",
        "floatingips",
        "Show a floating IP",
        show,
    )
    .add(
        Method::PUT,
        "/v2.0/floatingips/{id}",
        "floatingips",
        "Associate (port_id) or disassociate (port_id null)",
        update,
    )
    .add(
        Method::DELETE,
        "/v2.0/floatingips/{id}",
        "floatingips",
        "Delete a floating IP",
        delete,
    )
}

/// The API view of a floating IP, with `port_details` of the associated port.
pub fn view(f: &FloatingIp, port: Option<&Port>) -> Value {
    let mut v = serde_json::to_value(f).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("floating_port_id");
        o.insert("tenant_id".into(), json!(f.project_id));
        let details = port.map(|p| {
            json!({
                "name": p.name, "network_id": p.network_id, "mac_address": p.mac_address,
                "admin_state_up": p.admin_state_up, "status": p.status,
                "device_id": p.device_id, "device_owner": p.device_owner,
            })
        });
        o.insert("port_details".into(), details.unwrap_or(Value::Null));
    }
    v
}

async fn render(store: &Store, f: &FloatingIp) -> Result<Value, ApiError> {
    let port = match f.port_id {
        Some(p) => store.get::<Port>(&Scope::All, &p.to_string()).await?,
        None => None,
    };
    Ok(view(f, port.as_ref()))
}

async fn list(
    ctx: Ctx,
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = ListParams::parse(q.as_deref())?;
    let items: Vec<FloatingIp> = st
        .store
        .list(&ctx.scope(), &p.store_filter(Some("floating_network_id")))
        .await?;
    let mut views = Vec::with_capacity(items.len());
    for f in &items {
        views.push(render(&st.store, f).await?);
    }
    Ok(reply(
        StatusCode::OK,
        p.respond(
            "floatingips",
            views,
            &format!("{}/v2.0/floatingips", ctx.base_url),
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
    let id: FloatingIpId = path_id(ResourceKind::FloatingIp, &id)?;
    let f: FloatingIp = st
        .store
        .get(&ctx.scope(), &id.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found(ResourceKind::FloatingIp, &id.to_string()))?;
    Ok(reply(
        StatusCode::OK,
        json!({"floatingip": p.trim(render(&st.store, &f).await?)}),
    ))
}

/// Associates `f` with `port_id` (and one of its IPv4 addresses).
async fn associate(
    tx: &mut Tx,
    scope: &Scope,
    f: &mut FloatingIp,
    port_id: PortId,
    fixed: Option<std::net::IpAddr>,
) -> Result<(), ApiError> {
    let port = ports::load(tx, scope, &port_id, Lock::Update).await?;
    if port.project_id != f.project_id && !scope.is_all() {
        return Err(ApiError::not_found(
            ResourceKind::Port,
            &port_id.to_string(),
        ));
    }
    let v4: Vec<_> = port
        .fixed_ips
        .iter()
        .filter(|x| x.ip_address.is_ipv4())
        .collect();
    let chosen = match fixed {
        Some(ip) => *v4.iter().find(|x| x.ip_address == ip).ok_or_else(|| {
            ApiError::bad_resource_request(
                "floatingip",
                format!("Port {port_id} does not have fixed ip {ip}"),
            )
        })?,
        None => match v4.as_slice() {
            [one] => *one,
            [] => {
                return Err(ApiError::bad_resource_request(
                    "floatingip",
                    format!(
                        "Port {port_id} does not have any IPv4 address to associate with a floating IP"
                    ),
                ));
            }
            _ => {
                return Err(ApiError::bad_resource_request(
                    "floatingip",
                    format!(
                        "Port {port_id} has multiple fixed IPv4 addresses. Must provide a specific IPv4 address when assigning a floating IP"
                    ),
                ));
            }
        },
    };
    let others: Vec<FloatingIp> = tx
        .list(
            &Scope::All,
            &Filter {
                reference: Some(port_id.to_string()),
                ..Filter::default()
            },
        )
        .await?;
    if let Some(o) = others
        .iter()
        .find(|o| o.id != f.id && o.fixed_ip_address == Some(chosen.ip_address))
    {
        return Err(ApiError::conflict(
            "FloatingIPPortAlreadyAssociated",
            format!(
                "Cannot associate floating IP {} ({}) with port {port_id} using fixed IP {}, as that fixed IP already has a floating IP on external network {}.",
                f.floating_ip_address, f.id, chosen.ip_address, o.floating_network_id
            ),
        ));
    }
    let forwarded: Vec<PortForwarding> = tx.list(&Scope::All, &Filter::parent(f.id)).await?;
    if !forwarded.is_empty() {
        return Err(ApiError::conflict(
            "FipInUseByPortForwarding",
            format!("Floating IP {} in use by Port Forwarding resources.", f.id),
        ));
    }
    let forwarded_to: Vec<PortForwarding> = tx
        .list(
            &Scope::All,
            &Filter {
                reference: Some(port_id.to_string()),
                ..Filter::default()
            },
        )
        .await?;
    if !forwarded_to.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "PortHasPortForwarding",
            format!(
                "Cannot associate floating IP to port {port_id} because it already has a Port Forwarding binding."
            ),
        ));
    }
    let Some(router_id) = router_for(tx, f.floating_network_id, chosen.subnet_id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ExternalGatewayForFloatingIPNotFound",
            format!(
                "External network {} is not reachable from subnet {}. Therefore, cannot associate Port {port_id} with a Floating IP.",
                f.floating_network_id, chosen.subnet_id
            ),
        ));
    };
    if !gateway_serves(tx, router_id, f.floating_ip_address).await? {
        return Err(not_on_gateway(f.floating_ip_address, router_id));
    }
    f.port_id = Some(port_id);
    f.fixed_ip_address = Some(chosen.ip_address);
    f.router_id = Some(router_id);
    f.status = "ACTIVE".into();
    Ok(())
}

/// Whether `addr` lies on a subnet of router `router`'s gateway port. The dataplane answers
/// for a floating IP (ARP, NAT) on its router's gateway interface, which holds the gateway
/// port's subnets only; Neutron's L3 agent also serves addresses from the external network's
/// other subnets, Weft refuses them rather than accept and drop their traffic.
pub(crate) async fn gateway_serves(
    tx: &mut Tx,
    router: RouterId,
    addr: std::net::IpAddr,
) -> Result<bool, ApiError> {
    let r: Option<Router> = tx
        .get(&Scope::All, &router.to_string(), Lock::Share)
        .await?;
    let Some(gw) = r.and_then(|r| r.gw_port_id) else {
        return Ok(false);
    };
    let p: Option<Port> = tx.get(&Scope::All, &gw.to_string(), Lock::Share).await?;
    for ip in p.map(|p| p.fixed_ips).unwrap_or_default() {
        let s: Option<Subnet> = tx
            .get(&Scope::All, &ip.subnet_id.to_string(), Lock::Share)
            .await?;
        if s.is_some_and(|s| s.cidr.contains(addr)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The error for a floating IP outside its router's gateway subnets (see [`gateway_serves`]).
pub(crate) fn not_on_gateway(addr: std::net::IpAddr, router: RouterId) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "FloatingIpNotOnGatewaySubnet",
        format!(
            "Floating IP {addr} is not on a subnet of router {router}'s external gateway port; Weft serves floating IPs from the gateway port's subnets only."
        ),
    )
}

/// The router that takes `subnet`'s traffic to external network `net`: one with its gateway
/// on `net` and an interface on `subnet` (the first by id).
pub(crate) async fn router_for(
    tx: &mut Tx,
    net: NetworkId,
    subnet: SubnetId,
) -> Result<Option<RouterId>, ApiError> {
    let routers: Vec<Router> = tx.list(&Scope::All, &Filter::parent(net)).await?;
    for r in routers {
        let ifaces: Vec<Port> = tx
            .list(
                &Scope::All,
                &Filter {
                    device: Some(r.id.to_string()),
                    ..Filter::default()
                },
            )
            .await?;
        if ifaces.iter().any(|p| {
            p.device_owner == OWNER_ROUTER_INTERFACE
                && p.fixed_ips.iter().any(|x| x.subnet_id == subnet)
        }) {
            return Ok(Some(r.id));
        }
    }
    Ok(None)
}

fn disassociate(f: &mut FloatingIp) {
    f.port_id = None;
    f.fixed_ip_address = None;
    f.router_id = None;
    f.status = "DOWN".into();
}

async fn build(tx: &mut Tx, ctx: &Ctx, req: FloatingIpCreate) -> Result<FloatingIp, ApiError> {
    let scope = ctx.scope();
    let owner = ctx.owner(
        Owner {
            project_id: req.project_id,
            tenant_id: req.tenant_id,
        }
        .requested()?,
    )?;
    let net_id = req.floating_network_id.value().ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for floating_network_id. Reason: floating_network_id is required.",
        )
    })?;
    let net = networks::load(tx, &scope, &net_id, Lock::Share).await?;
    if !net.external {
        return Err(ApiError::bad_resource_request(
            "floatingip",
            format!("Network {net_id} is not a valid external network"),
        ));
    }
    if req.floating_ip_address.is_present() {
        ctx.require_admin("create_floatingip:floating_ip_address")?;
    }
    let fixed_ips = match (req.subnet_id.value(), req.floating_ip_address.value()) {
        (None, None) => {
            // One IPv4 address from the first IPv4 subnet with room.
            let subnets: Vec<Subnet> = tx.list(&Scope::All, &Filter::parent(net_id)).await?;
            let v4: Vec<_> = subnets.iter().filter(|s| s.ip_version == 4).collect();
            if v4.is_empty() {
                return Err(ApiError::bad_resource_request(
                    "floatingip",
                    format!("Network {net_id} has no IPv4 subnet"),
                ));
            }
            Field::Value(
                v4.iter()
                    .map(|s| FixedIpRequest {
                        subnet_id: Some(s.id),
                        ip_address: None,
                    })
                    .take(1)
                    .collect(),
            )
        }
        (subnet_id, ip_address) => Field::Value(vec![FixedIpRequest {
            subnet_id,
            ip_address,
        }]),
    };
    let id = FloatingIpId::random();
    let description = req.description.value().unwrap_or_default();
    validate::text("description", &description)?;
    let port = ports::create_in(
        tx,
        ctx,
        PortCreate {
            network_id: Field::Value(net_id),
            fixed_ips,
            ..PortCreate::default()
        },
        Some(SystemPort {
            owner: ProjectId::system(),
            device_owner: OWNER_FLOATING_IP,
            device_id: id.to_string(),
        }),
    )
    .await?;
    let Some(addr) = port
        .fixed_ips
        .iter()
        .find(|x| x.ip_address.is_ipv4())
        .map(|x| x.ip_address)
    else {
        return Err(ApiError::bad_resource_request(
            "floatingip",
            "a floating IP must be an IPv4 address",
        ));
    };
    let tags = match req.tags {
        Field::Value(t) => validate::tags(&t)?,
        _ => Vec::new(),
    };
    let mut f = FloatingIp {
        id,
        project_id: owner,
        description,
        floating_network_id: net_id,
        floating_ip_address: addr,
        floating_port_id: port.id,
        port_id: None,
        fixed_ip_address: None,
        router_id: None,
        status: "DOWN".into(),
        tags,
        std: StandardAttrs::default(),
    };
    if let Field::Value(pid) = req.port_id {
        associate(tx, &scope, &mut f, pid, req.fixed_ip_address.value()).await?;
    }
    tx.insert(&scope, &mut f).await?;
    tracing::info!(floatingip = %f.id, address = %addr, "floating IP created");
    Ok(f)
}

async fn create(ctx: Ctx, State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let body = json_body(&body)?;
    let reqs: Vec<FloatingIpCreate> = parse_create(&body, "floatingip", "floatingips")?;
    let bulk = body.get("floatingips").is_some();
    let fips = with_retry!({
        let mut tx = st.store.begin(&ctx.scope(), &ctx.request_id).await?;
        let mut out = Vec::new();
        for r in reqs.clone() {
            out.push(build(&mut tx, &ctx, r).await?);
        }
        tx.commit().await?;
        Ok(out)
    })?;
    let mut views = Vec::new();
    for f in &fips {
        views.push(render(&st.store, f).await?);
    }
    Ok(reply(
        StatusCode::CREATED,
        if bulk {
            json!({"floatingips": views})
        } else {
            json!({"floatingip": views.into_iter().next()})
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
    let id: FloatingIpId = path_id(ResourceKind::FloatingIp, &id)?;
    let req: FloatingIpUpdate = parse_one(&json_body(&body)?, "floatingip")?;
    let f = with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let mut f: FloatingIp = tx
            .get(&scope, &id.to_string(), Lock::Update)
            .await?
            .ok_or_else(|| ApiError::not_found(ResourceKind::FloatingIp, &id.to_string()))?;
        if !scope.may_write(&f.project_id) {
            return Err(ApiError::forbidden("update_floatingip"));
        }
        if let Field::Value(d) = &req.description {
            validate::text("description", d)?;
            f.description = d.clone();
        }
        match req.port_id {
            Field::Absent => {
                if req.fixed_ip_address.is_present() {
                    return Err(ApiError::bad_resource_request(
                        "floatingip",
                        "fixed_ip_address needs a port_id",
                    ));
                }
            }
            // A floating IP with port forwardings has no port but keeps their router.
            Field::Null if f.port_id.is_some() => disassociate(&mut f),
            Field::Null => {}
            Field::Value(pid) => {
                associate(
                    &mut tx,
                    &scope,
                    &mut f,
                    pid,
                    req.fixed_ip_address.clone().value(),
                )
                .await?
            }
        }
        tx.update(&scope, &mut f).await?;
        tx.commit().await?;
        Ok(f)
    })?;
    Ok(reply(
        StatusCode::OK,
        json!({"floatingip": render(&st.store, &f).await?}),
    ))
}

async fn delete(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let id: FloatingIpId = path_id(ResourceKind::FloatingIp, &id)?;
    with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let f: FloatingIp = tx
            .get(&scope, &id.to_string(), Lock::Update)
            .await?
            .ok_or_else(|| ApiError::not_found(ResourceKind::FloatingIp, &id.to_string()))?;
        if !scope.may_write(&f.project_id) {
            return Err(ApiError::forbidden("delete_floatingip"));
        }
        // Its port forwardings go with it (as Neutron's cascade).
        let forwarded: Vec<PortForwarding> = tx.list(&Scope::All, &Filter::parent(f.id)).await?;
        for pf in &forwarded {
            tx.delete(&Scope::All, pf).await?;
        }
        if let Some(p) = tx
            .get::<Port>(&Scope::All, &f.floating_port_id.to_string(), Lock::Update)
            .await?
        {
            ports::delete_in(&mut tx, &Scope::All, &p).await?;
        }
        tx.delete(&scope, &f).await?;
        tx.commit().await?;
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
