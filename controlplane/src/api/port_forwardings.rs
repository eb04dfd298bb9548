//! `/v2.0/floatingips/{floatingip_id}/port_forwardings`: Neutron's floating IP port
//! forwarding (extension `floating-ip-port-forwarding`): a TCP or UDP port of a floating IP
//! forwarded to a port of one fixed IPv4 address of a port.
//!
//! Rules, as Neutron's: the floating IP is associated with no port; the internal port has the
//! internal address, has no floating IP of its own, and is behind a router with its gateway on
//! the floating IP's network and an interface on that address's subnet; every port forwarding
//! of a floating IP goes through one router (the floating IP's `router_id`, set by the first
//! and cleared with the last); `(protocol, external_port)` is unique per floating IP and
//! `(protocol, internal_ip_address, internal_port)` per internal port. The floating IP's row
//! and the internal port's row are locked for update, so concurrent requests cannot break
//! either uniqueness. Port ranges (`*_port_range`) are not implemented: refused with 400.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::query::ListParams;
use super::{ApiError, AppState, Ctx, Routes, floatingips, json_body, path_id, ports, reply};
use crate::model::request::{Field, Owner, PortForwardingRequest, parse_one};
use crate::model::validate;
use crate::model::{
    FloatingIp, FloatingIpId, ForwardProtocol, Port, PortForwarding, PortForwardingId,
    ResourceKind, Scope, StandardAttrs,
};
use crate::store::{Filter, Lock, Tx};
use crate::with_retry;

const PATH: &str = "/v2.0/floatingips/{floatingip_id}/port_forwardings";
const ITEM: &str = "/v2.0/floatingips/{floatingip_id}/port_forwardings/{id}";

/// Registers the routes.
pub fn routes(r: Routes) -> Routes {
    r.add(
        Method::GET,
        PATH,
        "floatingips",
        "List a floating IP's port forwardings",
        list,
    )
    .add(
        Method::POST,
        PATH,
        "floatingips",
        "Forward a port of a floating IP to a port of a fixed IP",
        create,
    )
    .add(
        Method::GET,
        ITEM,
        "floatingips",
        "Show a port forwarding",
        show,
    )
    .add(
        Method::PUT,
        ITEM,
        "floatingips",
        "Update a port forwarding",
        update,
    )
    .add(
        Method::DELETE,
        ITEM,
        "floatingips",
        "Delete a port forwarding",
        delete,
    )
}

/// The API view of a port forwarding (Neutron shows no project or timestamps on it).
pub fn view(pf: &PortForwarding) -> Value {
    json!({
        "id": pf.id,
        "protocol": pf.protocol.as_str(),
        "external_port": pf.external_port,
        "internal_port": pf.internal_port,
        "internal_ip_address": pf.internal_ip_address,
        "internal_port_id": pf.internal_port_id,
        "description": pf.description,
    })
}

fn bad(message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_resource_request("port_forwarding", message)
}

/// The floating IP of the path, if the caller can see it.
async fn load_fip(
    tx: &mut Tx,
    scope: &Scope,
    id: &str,
    lock: Lock,
) -> Result<FloatingIp, ApiError> {
    let id: FloatingIpId = path_id(ResourceKind::FloatingIp, id)?;
    tx.get(scope, &id.to_string(), lock)
        .await?
        .ok_or_else(|| ApiError::not_found(ResourceKind::FloatingIp, &id.to_string()))
}

async fn list(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(fip_id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = ListParams::parse(q.as_deref())?;
    let scope = ctx.scope();
    let id: FloatingIpId = path_id(ResourceKind::FloatingIp, &fip_id)?;
    let fip: FloatingIp = st
        .store
        .get(&scope, &id.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found(ResourceKind::FloatingIp, &id.to_string()))?;
    let items: Vec<PortForwarding> = st.store.list(&Scope::All, &Filter::parent(fip.id)).await?;
    let views = items.iter().map(view).collect();
    Ok(reply(
        StatusCode::OK,
        p.respond(
            "port_forwardings",
            views,
            &format!(
                "{}/v2.0/floatingips/{}/port_forwardings",
                ctx.base_url, fip.id
            ),
        )?,
    ))
}

async fn show(
    ctx: Ctx,
    State(st): State<AppState>,
    Path((fip_id, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = ListParams::parse(q.as_deref())?;
    let fip_id: FloatingIpId = path_id(ResourceKind::FloatingIp, &fip_id)?;
    let fip: FloatingIp = st
        .store
        .get(&ctx.scope(), &fip_id.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found(ResourceKind::FloatingIp, &fip_id.to_string()))?;
    let id: PortForwardingId = path_id(ResourceKind::PortForwarding, &id)?;
    let pf: PortForwarding = st
        .store
        .get::<PortForwarding>(&Scope::All, &id.to_string())
        .await?
        .filter(|pf| pf.floatingip_id == fip.id)
        .ok_or_else(|| ApiError::not_found(ResourceKind::PortForwarding, &id.to_string()))?;
    Ok(reply(
        StatusCode::OK,
        json!({"port_forwarding": p.trim(view(&pf))}),
    ))
}

fn port_number(
    what: &str,
    v: Field<crate::model::request::Num<i64>>,
) -> Result<Option<u16>, ApiError> {
    match v {
        Field::Absent => Ok(None),
        Field::Null => Err(ApiError::bad_request(format!(
            "Invalid input for {what}. Reason: a port number is required."
        ))),
        Field::Value(n) => u16::try_from(n.0)
            .ok()
            .filter(|p| *p >= 1)
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Invalid input for {what}. Reason: {} is not a port number (1 to 65535).",
                    n.0
                ))
            }),
    }
}

/// Refuses port ranges (not implemented).
fn no_ranges(req: &PortForwardingRequest) -> Result<(), ApiError> {
    for (what, v) in [
        ("external_port_range", &req.external_port_range),
        ("internal_port_range", &req.internal_port_range),
    ] {
        if v.as_ref().value().is_some_and(|v| !v.is_null()) {
            return Err(ApiError::bad_request(format!(
                "Invalid input for {what}. Reason: port ranges are not supported: give internal_port and external_port."
            )));
        }
    }
    Ok(())
}

/// Applies a request's attributes to `pf` (a new one, or a copy of the stored one).
fn apply(req: PortForwardingRequest, pf: &mut PortForwarding) -> Result<(), ApiError> {
    no_ranges(&req)?;
    match req.protocol {
        Field::Absent => {}
        Field::Null => return Err(bad("protocol is required (tcp or udp)")),
        Field::Value(p) => {
            pf.protocol = match p.to_ascii_lowercase().as_str() {
                "tcp" => ForwardProtocol::Tcp,
                "udp" => ForwardProtocol::Udp,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid input for protocol. Reason: '{p}' is not supported: only tcp and udp."
                    )));
                }
            }
        }
    }
    if let Some(p) = port_number("external_port", req.external_port)? {
        pf.external_port = p;
    }
    if let Some(p) = port_number("internal_port", req.internal_port)? {
        pf.internal_port = p;
    }
    match req.internal_ip_address {
        Field::Absent => {}
        Field::Null => return Err(bad("internal_ip_address is required")),
        Field::Value(ip) => pf.internal_ip_address = ip,
    }
    match req.internal_port_id {
        Field::Absent => {}
        Field::Null => return Err(bad("internal_port_id is required")),
        Field::Value(id) => pf.internal_port_id = id,
    }
    match req.description {
        Field::Absent => {}
        Field::Null => pf.description.clear(),
        Field::Value(d) => {
            validate::text("description", &d)?;
            pf.description = d;
        }
    }
    Ok(())
}

/// Checks `pf` (new, or changed, with its stored id) against its floating IP (locked) and
/// every other port forwarding, and points the floating IP at the router that serves it.
async fn check(
    tx: &mut Tx,
    scope: &Scope,
    fip: &mut FloatingIp,
    pf: &PortForwarding,
) -> Result<(), ApiError> {
    if let Some(port) = fip.port_id {
        return Err(ApiError::conflict(
            "FloatingIPPortAlreadyAssociated",
            format!(
                "Cannot create port forwarding on floating IP {} ({}): it is associated with port {port}.",
                fip.floating_ip_address, fip.id
            ),
        ));
    }
    let port: Port = ports::load(tx, scope, &pf.internal_port_id, Lock::Update).await?;
    if port.project_id != fip.project_id && !scope.is_all() {
        return Err(ApiError::not_found(
            ResourceKind::Port,
            &pf.internal_port_id.to_string(),
        ));
    }
    if !pf.internal_ip_address.is_ipv4() {
        return Err(bad(format!(
            "internal_ip_address {} is not an IPv4 address",
            pf.internal_ip_address
        )));
    }
    let Some(fixed) = port
        .fixed_ips
        .iter()
        .find(|f| f.ip_address == pf.internal_ip_address)
    else {
        let ips: Vec<String> = port
            .fixed_ips
            .iter()
            .map(|f| f.ip_address.to_string())
            .collect();
        return Err(bad(format!(
            "Requested internal IP address {} is not suitable for internal neutron port {}, as its fixed_ips are [{}]",
            pf.internal_ip_address,
            port.id,
            ips.join(", ")
        )));
    };
    let subnet = fixed.subnet_id;
    let bound: Vec<FloatingIp> = tx
        .list(
            &Scope::All,
            &Filter {
                reference: Some(port.id.to_string()),
                ..Filter::default()
            },
        )
        .await?;
    if let Some(b) = bound.first() {
        return Err(ApiError::conflict(
            "PortHasBindingFloatingIP",
            format!(
                "Cannot create port forwarding to floating IP {} ({}) with port {} using fixed IP {}, as that port already has a binding floating IP.",
                b.floating_ip_address, b.id, port.id, pf.internal_ip_address
            ),
        ));
    }
    let Some(router) = floatingips::router_for(tx, fip.floating_network_id, subnet).await? else {
        return Err(bad(format!(
            "External network {} is not reachable from subnet {subnet}. Cannot set Port forwarding for port {} with Floating IP {}",
            fip.floating_network_id, port.id, fip.id
        )));
    };
    if !floatingips::gateway_serves(tx, router, fip.floating_ip_address).await? {
        return Err(floatingips::not_on_gateway(fip.floating_ip_address, router));
    }
    let others: Vec<PortForwarding> = tx.list(&Scope::All, &Filter::parent(fip.id)).await?;
    let others: Vec<&PortForwarding> = others.iter().filter(|o| o.id != pf.id).collect();
    if let Some(r) = fip.router_id
        && r != router
        && !others.is_empty()
    {
        return Err(bad(format!(
            "The Floating IP {} had been set on router {r}, the internal Neutron port {} can not reach it",
            fip.id, port.id
        )));
    }
    if others
        .iter()
        .any(|o| o.protocol == pf.protocol && o.external_port == pf.external_port)
    {
        return Err(bad(format!(
            "A duplicate port forwarding entry with same attributes already exists, conflicting values are {{'floatingip_id': '{}', 'external_port': {}, 'protocol': '{}'}}",
            fip.id,
            pf.external_port,
            pf.protocol.as_str()
        )));
    }
    let same_port: Vec<PortForwarding> = tx
        .list(
            &Scope::All,
            &Filter {
                reference: Some(port.id.to_string()),
                ..Filter::default()
            },
        )
        .await?;
    if same_port.iter().any(|o| {
        o.id != pf.id
            && o.protocol == pf.protocol
            && o.internal_ip_address == pf.internal_ip_address
            && o.internal_port == pf.internal_port
    }) {
        return Err(bad(format!(
            "A duplicate port forwarding entry with same attributes already exists, conflicting values are {{'internal_port_id': '{}', 'internal_ip_address': '{}', 'internal_port': {}, 'protocol': '{}'}}",
            port.id,
            pf.internal_ip_address,
            pf.internal_port,
            pf.protocol.as_str()
        )));
    }
    if fip.router_id != Some(router) {
        fip.router_id = Some(router);
        tx.update(&Scope::All, fip).await?;
    }
    Ok(())
}

async fn create(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(fip_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let req: PortForwardingRequest = parse_one(&json_body(&body)?, "port_forwarding")?;
    no_ranges(&req)?;
    for (what, given) in [
        ("protocol", req.protocol.is_present()),
        ("external_port", req.external_port.is_present()),
        ("internal_port", req.internal_port.is_present()),
        ("internal_ip_address", req.internal_ip_address.is_present()),
        ("internal_port_id", req.internal_port_id.is_present()),
    ] {
        if !given {
            return Err(ApiError::bad_request(format!(
                "Invalid input for {what}. Reason: {what} is required."
            )));
        }
    }
    let requested = Owner {
        project_id: req.project_id.clone(),
        tenant_id: req.tenant_id.clone(),
    }
    .requested()?;
    let pf = with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let mut fip = load_fip(&mut tx, &scope, &fip_id, Lock::Update).await?;
        if !scope.may_write(&fip.project_id) {
            return Err(ApiError::forbidden("create_floatingip_port_forwarding"));
        }
        if requested
            .as_deref()
            .is_some_and(|p| p != fip.project_id.as_str())
        {
            return Err(ApiError::bad_request(
                "Invalid input for project_id. Reason: a port forwarding belongs to its floating IP's project.",
            ));
        }
        let mut pf = PortForwarding {
            id: PortForwardingId::random(),
            project_id: fip.project_id.clone(),
            floatingip_id: fip.id,
            protocol: ForwardProtocol::Tcp,
            external_port: 0,
            internal_port_id: crate::model::PortId(uuid::Uuid::nil()),
            internal_ip_address: IpAddr::from([0, 0, 0, 0]),
            internal_port: 0,
            description: String::new(),
            std: StandardAttrs::default(),
        };
        apply(req.clone(), &mut pf)?;
        check(&mut tx, &scope, &mut fip, &pf).await?;
        tx.insert(&Scope::All, &mut pf).await?;
        tx.commit().await?;
        Ok(pf)
    })?;
    tracing::info!(port_forwarding = %pf.id, floatingip = %pf.floatingip_id,
        internal = %pf.internal_ip_address, "port forwarding created");
    Ok(reply(
        StatusCode::CREATED,
        json!({"port_forwarding": view(&pf)}),
    ))
}

async fn update(
    ctx: Ctx,
    State(st): State<AppState>,
    Path((fip_id, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let id: PortForwardingId = path_id(ResourceKind::PortForwarding, &id)?;
    let req: PortForwardingRequest = parse_one(&json_body(&body)?, "port_forwarding")?;
    if req.project_id.is_present() || req.tenant_id.is_present() {
        return Err(ApiError::bad_request(
            "Invalid input for project_id. Reason: a port forwarding's project cannot change.",
        ));
    }
    let pf = with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let mut fip = load_fip(&mut tx, &scope, &fip_id, Lock::Update).await?;
        let mut pf: PortForwarding = tx
            .get::<PortForwarding>(&Scope::All, &id.to_string(), Lock::Update)
            .await?
            .filter(|pf| pf.floatingip_id == fip.id)
            .ok_or_else(|| ApiError::not_found(ResourceKind::PortForwarding, &id.to_string()))?;
        if !scope.may_write(&fip.project_id) {
            return Err(ApiError::forbidden("update_floatingip_port_forwarding"));
        }
        apply(req.clone(), &mut pf)?;
        check(&mut tx, &scope, &mut fip, &pf).await?;
        tx.update(&Scope::All, &mut pf).await?;
        tx.commit().await?;
        Ok(pf)
    })?;
    Ok(reply(StatusCode::OK, json!({"port_forwarding": view(&pf)})))
}

/// Deletes port forwardings (in `tx`); a floating IP left without any forgets their router.
pub async fn delete_in(tx: &mut Tx, pfs: &[PortForwarding]) -> Result<(), ApiError> {
    let mut fips: Vec<FloatingIpId> = Vec::new();
    for pf in pfs {
        tx.delete(&Scope::All, pf).await?;
        if !fips.contains(&pf.floatingip_id) {
            fips.push(pf.floatingip_id);
        }
    }
    for id in fips {
        let left: Vec<PortForwarding> = tx.list(&Scope::All, &Filter::parent(id)).await?;
        if !left.is_empty() {
            continue;
        }
        let fip: Option<FloatingIp> = tx.get(&Scope::All, &id.to_string(), Lock::Update).await?;
        if let Some(mut fip) = fip.filter(|f| f.port_id.is_none() && f.router_id.is_some()) {
            fip.router_id = None;
            tx.update(&Scope::All, &mut fip).await?;
        }
    }
    Ok(())
}

/// Deletes the port forwardings to `port` whose internal address it no longer has, or all of
/// them when it is being deleted (as Neutron does).
pub async fn forget_port(tx: &mut Tx, port: &Port, deleted: bool) -> Result<(), ApiError> {
    let pfs: Vec<PortForwarding> = tx
        .list(
            &Scope::All,
            &Filter {
                reference: Some(port.id.to_string()),
                ..Filter::default()
            },
        )
        .await?;
    let gone: Vec<PortForwarding> = pfs
        .into_iter()
        .filter(|pf| {
            deleted
                || !port
                    .fixed_ips
                    .iter()
                    .any(|f| f.ip_address == pf.internal_ip_address)
        })
        .collect();
    if !gone.is_empty() {
        tracing::info!(port = %port.id, count = gone.len(),
            "port forwardings to addresses the port no longer has deleted");
    }
    delete_in(tx, &gone).await
}

async fn delete(
    ctx: Ctx,
    State(st): State<AppState>,
    Path((fip_id, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let id: PortForwardingId = path_id(ResourceKind::PortForwarding, &id)?;
    with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let fip = load_fip(&mut tx, &scope, &fip_id, Lock::Update).await?;
        let pf: PortForwarding = tx
            .get::<PortForwarding>(&Scope::All, &id.to_string(), Lock::Update)
            .await?
            .filter(|pf| pf.floatingip_id == fip.id)
            .ok_or_else(|| ApiError::not_found(ResourceKind::PortForwarding, &id.to_string()))?;
        if !scope.may_write(&fip.project_id) {
            return Err(ApiError::forbidden("delete_floatingip_port_forwarding"));
        }
        delete_in(&mut tx, std::slice::from_ref(&pf)).await?;
        tx.commit().await?;
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
