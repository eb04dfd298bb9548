//! `/v2.0/routers`: routers, their external gateway (a port on an external network, SNAT on
//! or off), extra routes, and interfaces (`add_router_interface` / `remove_router_interface`).
//!
//! Interfaces are ports owned by the router's project with `device_owner`
//! `network:router_interface` and the subnet's gateway address; the gateway is a port owned by
//! nobody (admins see it) with `device_owner` `network:router_gateway`. Neither can be deleted
//! through the port API. The subnets of one router never overlap; a route's next hop must be on
//! one of them; an interface used by a route or a floating IP cannot be removed.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ports::{self, SystemPort};
use super::query::ListParams;
use super::{ApiError, AppState, Ctx, Routes, json_body, networks, path_id, reply, subnets};
use crate::model::request::{
    Field, GatewayRequest, InterfaceRequest, Owner, PortCreate, RouterCreate, RouterUpdate,
    parse_create, parse_one,
};
use crate::model::validate;
use crate::model::{
    FixedIp, FloatingIp, GatewayInfo, OWNER_ROUTER_GATEWAY, OWNER_ROUTER_INTERFACE, Port,
    PortForwarding, ProjectId, ResourceKind, Router, RouterId, Scope, StandardAttrs, Subnet,
};
use crate::store::{Filter, Lock, Tx};
use crate::with_retry;

/// Registers the routes.
pub fn routes(r: Routes) -> Routes {
    r.add(
        Method::GET,
        "/v2.0/routers",
        "routers",
        "List routers",
        list,
    )
    .add(
        Method::POST,
        "/v2.0/routers",
        "routers",
        "Create routers",
        create,
    )
    .add(
        Method::GET,
        "/v2.0/routers/{id}",
        "routers",
        "Show a router",
        show,
    )
    .add(
        Method::PUT,
        "/v2.0/routers/{id}",
        "routers",
        "Update a router (gateway, routes, ...)",
        update,
    )
    .add(
        Method::DELETE,
        "/v2.0/routers/{id}",
        "routers",
        "Delete a router (no interfaces left)",
        delete,
    )
    .add(
        Method::PUT,
        "/v2.0/routers/{id}/add_router_interface",
        "routers",
        "Attach a subnet or port",
        add_interface,
    )
    .add(
        Method::PUT,
        "/v2.0/routers/{id}/remove_router_interface",
        "routers",
        "Detach a subnet or port",
        remove_interface,
    )
}

/// The API view of a router.
pub fn view(r: &Router) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("gw_port_id");
        o.insert("tenant_id".into(), json!(r.project_id));
        // Weft routers are neither highly available pairs nor distributed (as Neutron shows
        // them without the l3-ha and dvr extensions).
        o.insert("ha".into(), json!(false));
        o.insert("distributed".into(), json!(false));
    }
    v
}

async fn list(
    ctx: Ctx,
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = ListParams::parse(q.as_deref())?;
    let items: Vec<Router> = st.store.list(&ctx.scope(), &p.store_filter(None)).await?;
    let views = items.iter().map(view).collect();
    Ok(reply(
        StatusCode::OK,
        p.respond("routers", views, &format!("{}/v2.0/routers", ctx.base_url))?,
    ))
}

async fn show(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = ListParams::parse(q.as_deref())?;
    let id: RouterId = path_id(ResourceKind::Router, &id)?;
    let r: Router = st
        .store
        .get(&ctx.scope(), &id.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found(ResourceKind::Router, &id.to_string()))?;
    Ok(reply(StatusCode::OK, json!({"router": p.trim(view(&r))})))
}

async fn load(tx: &mut Tx, scope: &Scope, id: &RouterId, lock: Lock) -> Result<Router, ApiError> {
    tx.get(scope, &id.to_string(), lock)
        .await?
        .ok_or_else(|| ApiError::not_found(ResourceKind::Router, &id.to_string()))
}

/// The router's interface ports.
async fn interfaces(tx: &mut Tx, router: &Router) -> Result<Vec<Port>, ApiError> {
    let ports: Vec<Port> = tx
        .list(
            &Scope::All,
            &Filter {
                device: Some(router.id.to_string()),
                ..Filter::default()
            },
        )
        .await?;
    Ok(ports
        .into_iter()
        .filter(|p| p.device_owner == OWNER_ROUTER_INTERFACE)
        .collect())
}

/// The subnets of the router's interfaces.
async fn interface_subnets(tx: &mut Tx, router: &Router) -> Result<Vec<(Subnet, Port)>, ApiError> {
    let mut out = Vec::new();
    for p in interfaces(tx, router).await? {
        for f in &p.fixed_ips {
            if let Some(s) = tx
                .get::<Subnet>(&Scope::All, &f.subnet_id.to_string(), Lock::None)
                .await?
            {
                out.push((s, p.clone()));
            }
        }
    }
    Ok(out)
}

/// Sets the gateway of `router` (which must have none).
async fn set_gateway(
    tx: &mut Tx,
    ctx: &Ctx,
    router: &mut Router,
    g: GatewayRequest,
) -> Result<(), ApiError> {
    if g.enable_snat.is_some() {
        ctx.require_admin("create_router:external_gateway_info:enable_snat")?;
    }
    if g.external_fixed_ips.is_some() {
        ctx.require_admin("create_router:external_gateway_info:external_fixed_ips")?;
    }
    let Some(net_id) = g.network_id else {
        return Ok(());
    };
    let net = networks::load(tx, &ctx.scope(), &net_id, Lock::Share).await?;
    if !net.external {
        return Err(ApiError::bad_resource_request(
            "router",
            format!("Network {} is not an external network", net.id),
        ));
    }
    let req = PortCreate {
        network_id: Field::Value(net.id),
        fixed_ips: match g.external_fixed_ips {
            Some(list) if !list.is_empty() => Field::Value(list),
            _ => Field::Absent,
        },
        ..PortCreate::default()
    };
    let port = ports::create_in(
        tx,
        ctx,
        req,
        Some(SystemPort {
            owner: ProjectId::system(),
            device_owner: OWNER_ROUTER_GATEWAY,
            device_id: router.id.to_string(),
        }),
    )
    .await?;
    router.external_gateway_info = Some(GatewayInfo {
        network_id: net.id,
        enable_snat: g.enable_snat.is_none_or(|b| b.0),
        external_fixed_ips: port.fixed_ips.clone(),
    });
    router.gw_port_id = Some(port.id);
    Ok(())
}

/// Removes the gateway of `router` (refused while floating IPs go through it).
async fn clear_gateway(tx: &mut Tx, router: &mut Router) -> Result<(), ApiError> {
    let Some(info) = router.external_gateway_info.clone() else {
        return Ok(());
    };
    let fips: Vec<FloatingIp> = tx
        .list(&Scope::All, &Filter::parent(info.network_id))
        .await?;
    if fips.iter().any(|f| f.router_id == Some(router.id)) {
        return Err(ApiError::conflict(
            "RouterExternalGatewayInUseByFloatingIp",
            format!(
                "Gateway cannot be updated for router {}, since a gateway to external network {} is required by one or more floating IPs.",
                router.id, info.network_id
            ),
        ));
    }
    if let Some(pid) = router.gw_port_id
        && let Some(p) = tx
            .get::<Port>(&Scope::All, &pid.to_string(), Lock::Update)
            .await?
    {
        ports::delete_in(tx, &Scope::All, &p).await?;
    }
    router.external_gateway_info = None;
    router.gw_port_id = None;
    Ok(())
}

async fn create(ctx: Ctx, State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let body = json_body(&body)?;
    let reqs: Vec<RouterCreate> = parse_create(&body, "router", "routers")?;
    let bulk = body.get("routers").is_some();
    let routers = with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let mut out = Vec::new();
        for req in reqs.clone() {
            let owner = ctx.owner(
                Owner {
                    project_id: req.project_id,
                    tenant_id: req.tenant_id,
                }
                .requested()?,
            )?;
            let name = req.name.value().unwrap_or_default();
            let description = req.description.value().unwrap_or_default();
            validate::text("name", &name)?;
            validate::text("description", &description)?;
            let tags = match req.tags {
                Field::Value(t) => validate::tags(&t)?,
                _ => Vec::new(),
            };
            let mut r = Router {
                id: RouterId::random(),
                project_id: owner,
                name,
                description,
                admin_state_up: req.admin_state_up.value().is_none_or(|b| b.0),
                status: "ACTIVE".into(),
                external_gateway_info: None,
                gw_port_id: None,
                routes: Vec::new(),
                tags,
                std: StandardAttrs::default(),
            };
            if let Field::Value(g) = req.external_gateway_info {
                set_gateway(&mut tx, &ctx, &mut r, g).await?;
            }
            tx.insert(&scope, &mut r).await?;
            out.push(r);
        }
        tx.commit().await?;
        Ok(out)
    })?;
    let views: Vec<Value> = routers.iter().map(view).collect();
    Ok(reply(
        StatusCode::CREATED,
        if bulk {
            json!({"routers": views})
        } else {
            json!({"router": views.into_iter().next()})
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
    let id: RouterId = path_id(ResourceKind::Router, &id)?;
    let req: RouterUpdate = parse_one(&json_body(&body)?, "router")?;
    let r = with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let mut r = load(&mut tx, &scope, &id, Lock::Update).await?;
        if !scope.may_write(&r.project_id) {
            return Err(ApiError::forbidden("update_router"));
        }
        if let Field::Value(v) = &req.name {
            validate::text("name", v)?;
            r.name = v.clone();
        }
        if let Field::Value(v) = &req.description {
            validate::text("description", v)?;
            r.description = v.clone();
        }
        if let Field::Value(b) = req.admin_state_up {
            r.admin_state_up = b.0;
        }
        match &req.external_gateway_info {
            Field::Absent => {}
            Field::Null => clear_gateway(&mut tx, &mut r).await?,
            Field::Value(g) if g.network_id.is_none() => clear_gateway(&mut tx, &mut r).await?,
            Field::Value(g) => {
                let same_net = r
                    .external_gateway_info
                    .as_ref()
                    .is_some_and(|i| Some(i.network_id) == g.network_id);
                if same_net && g.external_fixed_ips.is_none() {
                    if let Some(snat) = g.enable_snat {
                        ctx.require_admin("update_router:external_gateway_info:enable_snat")?;
                        if let Some(info) = r.external_gateway_info.as_mut() {
                            info.enable_snat = snat.0;
                        }
                    }
                } else {
                    clear_gateway(&mut tx, &mut r).await?;
                    set_gateway(&mut tx, &ctx, &mut r, g.clone()).await?;
                }
            }
        }
        match &req.routes {
            Field::Absent => {}
            Field::Null => r.routes.clear(),
            Field::Value(routes) => {
                validate::routes("routes", routes, None)?;
                let connected = interface_subnets(&mut tx, &r).await?;
                for rt in routes {
                    if !connected.iter().any(|(s, _)| {
                        s.cidr.contains(rt.nexthop) && s.cidr.is_ipv4() == rt.nexthop.is_ipv4()
                    }) {
                        return Err(ApiError::bad_request(format!(
                            "Invalid format for routes: {{'destination': '{}', 'nexthop': '{}'}}, the nexthop is not connected with router",
                            rt.destination, rt.nexthop
                        )));
                    }
                }
                r.routes = routes.clone();
            }
        }
        tx.update(&scope, &mut r).await?;
        tx.commit().await?;
        Ok(r)
    })?;
    Ok(reply(StatusCode::OK, json!({"router": view(&r)})))
}

async fn delete(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let id: RouterId = path_id(ResourceKind::Router, &id)?;
    with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let mut r = load(&mut tx, &scope, &id, Lock::Update).await?;
        if !scope.may_write(&r.project_id) {
            return Err(ApiError::forbidden("delete_router"));
        }
        if !interfaces(&mut tx, &r).await?.is_empty() {
            return Err(ApiError::conflict(
                "RouterInUse",
                format!("Router {} still has ports", r.id),
            ));
        }
        clear_gateway(&mut tx, &mut r).await?;
        tx.delete(&scope, &r).await?;
        tx.commit().await?;
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn interface_info(r: &Router, port: &Port, subnet: Option<&Subnet>) -> Value {
    let subnet_ids: Vec<String> = port
        .fixed_ips
        .iter()
        .map(|f| f.subnet_id.to_string())
        .collect();
    json!({
        "id": r.id,
        "tenant_id": r.project_id,
        "project_id": r.project_id,
        "port_id": port.id,
        "network_id": port.network_id,
        "subnet_id": subnet.map(|s| s.id.to_string()).or_else(|| subnet_ids.first().cloned()),
        "subnet_ids": subnet_ids,
        "tags": [],
    })
}

async fn check_no_overlap(tx: &mut Tx, r: &Router, new: &[Subnet]) -> Result<(), ApiError> {
    for (s, _) in interface_subnets(tx, r).await? {
        for n in new {
            if s.id == n.id {
                return Err(ApiError::bad_resource_request(
                    "router",
                    format!("Router already has a port on subnet {}", n.id),
                ));
            }
            if s.cidr.is_ipv4() == n.cidr.is_ipv4()
                && (s.cidr.contains(n.cidr.network()) || n.cidr.contains(s.cidr.network()))
            {
                return Err(ApiError::bad_resource_request(
                    "router",
                    format!(
                        "Cidr {} of subnet {} overlaps with cidr {} of subnet {}",
                        n.cidr, n.id, s.cidr, s.id
                    ),
                ));
            }
        }
    }
    Ok(())
}

async fn add_interface(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let id: RouterId = path_id(ResourceKind::Router, &id)?;
    let req: InterfaceRequest = crate::model::request::parse_attrs(&json_body(&body)?)?;
    let info = with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let mut r = load(&mut tx, &scope, &id, Lock::Update).await?;
        if !scope.may_write(&r.project_id) {
            return Err(ApiError::forbidden("add_router_interface"));
        }
        let info = match (req.subnet_id, req.port_id) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_resource_request(
                    "router",
                    "Cannot specify both subnet-id and port-id",
                ));
            }
            (None, None) => {
                return Err(ApiError::bad_resource_request(
                    "router",
                    "Either subnet_id or port_id must be specified",
                ));
            }
            (Some(sid), None) => {
                let s = subnets::load(&mut tx, &scope, &sid, Lock::Share).await?;
                let Some(gw) = s.gateway_ip else {
                    return Err(ApiError::bad_resource_request(
                        "router",
                        "Subnet for router interface must have a gateway IP",
                    ));
                };
                check_no_overlap(&mut tx, &r, std::slice::from_ref(&s)).await?;
                if let Some(owner) = tx.ip_owner(&s.id.to_string(), gw).await? {
                    return Err(ApiError::conflict(
                        "IpAddressInUse",
                        format!(
                            "Unable to complete operation for network {}. The IP address {gw} is in use (port {owner}).",
                            s.network_id
                        ),
                    ));
                }
                let port_req = PortCreate {
                    network_id: Field::Value(s.network_id),
                    fixed_ips: Field::Value(vec![crate::model::request::FixedIpRequest {
                        subnet_id: Some(s.id),
                        ip_address: Some(gw),
                    }]),
                    ..PortCreate::default()
                };
                let port = ports::create_in(
                    &mut tx,
                    &ctx,
                    port_req,
                    Some(SystemPort {
                        owner: r.project_id.clone(),
                        device_owner: OWNER_ROUTER_INTERFACE,
                        device_id: r.id.to_string(),
                    }),
                )
                .await?;
                interface_info(&r, &port, Some(&s))
            }
            (None, Some(pid)) => {
                let mut port = ports::load(&mut tx, &scope, &pid, Lock::Update).await?;
                if !scope.may_write(&port.project_id) {
                    return Err(ApiError::forbidden(
                        "add_router_interface: the port belongs to another project",
                    ));
                }
                if !port.device_id.is_empty() || !port.device_owner.is_empty() {
                    return Err(ApiError::conflict(
                        "PortInUse",
                        format!(
                            "Unable to complete operation on port {} for network {}. Port already has an attached device {}.",
                            port.id, port.network_id, port.device_id
                        ),
                    ));
                }
                if port.fixed_ips.is_empty() {
                    return Err(ApiError::bad_resource_request(
                        "router",
                        "Router port must have at least one fixed IP",
                    ));
                }
                let mut subs = Vec::new();
                for f in &port.fixed_ips {
                    subs.push(
                        subnets::load(&mut tx, &Scope::All, &f.subnet_id, Lock::Share).await?,
                    );
                }
                check_no_overlap(&mut tx, &r, &subs).await?;
                port.device_owner = OWNER_ROUTER_INTERFACE.into();
                port.device_id = r.id.to_string();
                port.security_groups.clear();
                tx.update(&scope, &mut port).await?;
                interface_info(&r, &port, subs.first())
            }
        };
        tx.update(&scope, &mut r).await?;
        tx.commit().await?;
        Ok(info)
    })?;
    Ok(reply(StatusCode::OK, info))
}

async fn remove_interface(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let id: RouterId = path_id(ResourceKind::Router, &id)?;
    let req: InterfaceRequest = crate::model::request::parse_attrs(&json_body(&body)?)?;
    let info = with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let mut r = load(&mut tx, &scope, &id, Lock::Update).await?;
        if !scope.may_write(&r.project_id) {
            return Err(ApiError::forbidden("remove_router_interface"));
        }
        let ifaces = interfaces(&mut tx, &r).await?;
        let (mut port, subnet_ids): (Port, Vec<crate::model::SubnetId>) =
            match (req.subnet_id, req.port_id) {
                (None, None) => {
                    return Err(ApiError::bad_resource_request(
                        "router",
                        "Either subnet_id or port_id must be specified",
                    ));
                }
                (_, Some(pid)) => {
                    let p = ifaces
                        .iter()
                        .find(|p| p.id == pid)
                        .cloned()
                        .ok_or_else(|| {
                            ApiError::new(
                                StatusCode::NOT_FOUND,
                                "RouterInterfaceNotFound",
                                format!("Router {} does not have an interface with id {pid}", r.id),
                            )
                        })?;
                    if let Some(sid) = req.subnet_id
                        && !p.fixed_ips.iter().any(|f| f.subnet_id == sid)
                    {
                        return Err(ApiError::bad_resource_request(
                            "router",
                            format!("Subnet {sid} is not on port {pid}"),
                        ));
                    }
                    let ids = p.fixed_ips.iter().map(|f| f.subnet_id).collect();
                    (p, ids)
                }
                (Some(sid), None) => {
                    let p = ifaces
                        .iter()
                        .find(|p| p.fixed_ips.iter().any(|f| f.subnet_id == sid))
                        .cloned()
                        .ok_or_else(|| {
                            ApiError::new(
                                StatusCode::NOT_FOUND,
                                "RouterInterfaceNotFoundForSubnet",
                                format!("Router {} has no interface on subnet {sid}", r.id),
                            )
                        })?;
                    (p, vec![sid])
                }
            };
        let removed: Vec<Subnet> = {
            let mut v = Vec::new();
            for sid in &subnet_ids {
                if let Some(s) = tx
                    .get::<Subnet>(&Scope::All, &sid.to_string(), Lock::None)
                    .await?
                {
                    v.push(s);
                }
            }
            v
        };
        for rt in &r.routes {
            if removed.iter().any(|s| s.cidr.contains(rt.nexthop)) {
                return Err(ApiError::conflict(
                    "RouterInterfaceInUseByRoute",
                    format!(
                        "Router interface for subnet on router {} cannot be deleted, as it is required by one or more routes.",
                        r.id
                    ),
                ));
            }
        }
        let fips: Vec<FloatingIp> = tx.list(&Scope::All, &Filter::default()).await?;
        for f in fips.iter().filter(|f| f.router_id == Some(r.id)) {
            let mut internal: Vec<std::net::IpAddr> = f.fixed_ip_address.into_iter().collect();
            let forwarded: Vec<PortForwarding> =
                tx.list(&Scope::All, &Filter::parent(f.id)).await?;
            internal.extend(forwarded.iter().map(|pf| pf.internal_ip_address));
            if internal
                .iter()
                .any(|ip| removed.iter().any(|s| s.cidr.contains(*ip)))
            {
                return Err(ApiError::conflict(
                    "RouterInterfaceInUseByFloatingIP",
                    format!(
                        "Router interface for subnet on router {} cannot be deleted, as it is required by one or more floating IPs.",
                        r.id
                    ),
                ));
            }
        }
        let info = interface_info(&r, &port, removed.first());
        let remaining: Vec<FixedIp> = port
            .fixed_ips
            .iter()
            .filter(|f| !subnet_ids.contains(&f.subnet_id))
            .copied()
            .collect();
        if remaining.is_empty() {
            let p = ports::load(&mut tx, &Scope::All, &port.id, Lock::Update).await?;
            ports::delete_in(&mut tx, &Scope::All, &p).await?;
        } else {
            for f in port
                .fixed_ips
                .iter()
                .filter(|f| subnet_ids.contains(&f.subnet_id))
            {
                tx.release_ip(
                    &f.subnet_id.to_string(),
                    f.ip_address,
                    &port.id.to_string(),
                    &port.project_id,
                )
                .await?;
            }
            port.fixed_ips = remaining;
            tx.update(&Scope::All, &mut port).await?;
        }
        tx.update(&scope, &mut r).await?;
        tx.commit().await?;
        Ok(info)
    })?;
    Ok(reply(StatusCode::OK, info))
}
