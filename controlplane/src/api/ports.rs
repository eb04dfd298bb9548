//! `/v2.0/ports`: addresses (IPAM), MACs, security groups, port security, allowed address
//! pairs and the binding host of every virtual NIC.
//!
//! Port creation locks the network and the subnets it allocates from for share (PostgreSQL), so
//! a subnet or network cannot be deleted under it; addresses and MACs are claimed through the
//! store's unique keys, so concurrent creations never share one.

use std::collections::HashSet;
use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use ipnetwork::IpNetwork;
use serde_json::{Value, json};

use super::query::ListParams;
use super::{
    ApiError, AppState, Ctx, Routes, json_body, networks, path_id, reply, security_groups,
};
use crate::ipam;
use crate::model::request::{
    AddressPairRequest, Field, FixedIpRequest, Owner, PortCreate, PortUpdate, parse_create,
    parse_one,
};
use crate::model::validate;
use crate::model::{
    AddressPair, FixedIp, FloatingIp, MacAddr, Network, OWNER_FLOATING_IP, Port, PortId, ProjectId,
    ResourceKind, Scope, SecurityGroup, SecurityGroupId, Subnet, random_mac,
};
use crate::store::{Filter, Lock, Tx};
use crate::with_retry;

/// Registers the routes.
pub fn routes(r: Routes) -> Routes {
    r.add(Method::GET, "/v2.0/ports", "ports", "List ports", list)
        .add(
            Method::POST,
            "/v2.0/ports",
            "ports",
            "Create ports (one or bulk)",
            create,
        )
        .add(
            Method::GET,
            "/v2.0/ports/{id}",
            "ports",
            "Show a port",
            show,
        )
        .add(
            Method::PUT,
            "/v2.0/ports/{id}",
            "ports",
            "Update a port",
            update,
        )
        .add(
            Method::DELETE,
            "/v2.0/ports/{id}",
            "ports",
            "Delete a port (its addresses are released)",
            delete,
        )
}

/// The API view of a port: binding details for admins only.
pub fn view(p: &Port, admin: bool) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("tenant_id".into(), json!(p.project_id));
        o.insert("binding:vnic_type".into(), json!("normal"));
        if admin {
            let vif = if p.host_id.is_empty() {
                "unbound"
            } else {
                "tap"
            };
            o.insert("binding:vif_type".into(), json!(vif));
            o.insert("binding:vif_details".into(), json!({}));
            o.insert("binding:profile".into(), json!({}));
        } else {
            o.remove("binding:host_id");
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
    let items: Vec<Port> = st
        .store
        .list(&ctx.scope(), &p.store_filter(Some("network_id")))
        .await?;
    let views = items.iter().map(|x| view(x, ctx.is_admin())).collect();
    Ok(reply(
        StatusCode::OK,
        p.respond("ports", views, &format!("{}/v2.0/ports", ctx.base_url))?,
    ))
}

async fn show(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = ListParams::parse(q.as_deref())?;
    let id: PortId = path_id(ResourceKind::Port, &id)?;
    let port: Port = st
        .store
        .get(&ctx.scope(), &id.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found(ResourceKind::Port, &id.to_string()))?;
    Ok(reply(
        StatusCode::OK,
        json!({"port": p.trim(view(&port, ctx.is_admin()))}),
    ))
}

/// Loads a port the caller can see, or 404.
pub async fn load(tx: &mut Tx, scope: &Scope, id: &PortId, lock: Lock) -> Result<Port, ApiError> {
    tx.get(scope, &id.to_string(), lock)
        .await?
        .ok_or_else(|| ApiError::not_found(ResourceKind::Port, &id.to_string()))
}

/// A port the controller makes for itself (router interfaces and gateways, floating IPs).
#[derive(Debug, Clone)]
pub struct SystemPort {
    /// Owner (the router's project, or [`ProjectId::system`]).
    pub owner: ProjectId,
    /// `device_owner`.
    pub device_owner: &'static str,
    /// `device_id`.
    pub device_id: String,
}

fn exhausted_network(n: &Network) -> ApiError {
    ApiError::conflict(
        "IpAddressGenerationFailure",
        format!("No more IP addresses available on network {}.", n.id),
    )
}

fn exhausted_subnet(s: &Subnet) -> ApiError {
    ApiError::conflict(
        "IpAddressGenerationFailure",
        format!("No more IP addresses available for subnet {}.", s.id),
    )
}

/// Allocates the addresses of a port: the requested ones, or by default one IPv4 address,
/// one stateful IPv6 address and the EUI-64 address of every automatic IPv6 subnet.
/// `keep` are addresses the port already holds that stay (updates).
#[allow(clippy::too_many_arguments)]
async fn assign_ips(
    tx: &mut Tx,
    network: &Network,
    subnets: &[Subnet],
    port: &str,
    project: &ProjectId,
    mac: MacAddr,
    requested: Option<Vec<FixedIpRequest>>,
    router_port: bool,
    keep: &[FixedIp],
) -> Result<Vec<FixedIp>, ApiError> {
    let mut out: Vec<FixedIp> = keep.to_vec();
    let Some(requested) = requested else {
        let mut v4_done = false;
        let mut v6_done = false;
        let has_v4 = subnets.iter().any(|s| s.ip_version == 4);
        let has_v6_stateful = subnets
            .iter()
            .any(|s| s.ip_version == 6 && !s.is_auto_address());
        for s in subnets {
            if s.ip_version == 6 && s.is_auto_address() {
                if router_port {
                    continue;
                }
                if let Some(ip) = ipam::eui64(s.cidr, mac) {
                    if !tx.claim_ip(s, ip, port, project).await? {
                        return Err(ApiError::conflict(
                            "IpAddressInUse",
                            format!(
                                "Unable to complete operation for network {}. The IP address {ip} is in use.",
                                network.id
                            ),
                        ));
                    }
                    out.push(FixedIp {
                        subnet_id: s.id,
                        ip_address: ip,
                    });
                }
                continue;
            }
            let done = if s.ip_version == 4 {
                &mut v4_done
            } else {
                &mut v6_done
            };
            if *done {
                continue;
            }
            if let Some(ip) = ipam::allocate(tx, s, port, project).await? {
                out.push(FixedIp {
                    subnet_id: s.id,
                    ip_address: ip,
                });
                *done = true;
            }
        }
        if (has_v4 && !v4_done) || (has_v6_stateful && !v6_done) {
            return Err(exhausted_network(network));
        }
        return Ok(out);
    };
    let requested_any = !requested.is_empty();
    for (i, r) in requested.into_iter().enumerate() {
        let subnet = match (r.subnet_id, r.ip_address) {
            (Some(sid), _) => subnets.iter().find(|s| s.id == sid).ok_or_else(|| {
                ApiError::invalid_input(format!(
                    "Failed to create port on network {}, because fixed_ips included invalid subnet {sid}",
                    network.id
                ))
            })?,
            (None, Some(ip)) => subnets.iter().find(|s| s.cidr.contains(ip) && s.cidr.is_ipv4() == ip.is_ipv4()).ok_or_else(|| {
                ApiError::invalid_input(format!(
                    "IP address {ip} is not a valid IP for any of the subnets on network {}",
                    network.id
                ))
            })?,
            (None, None) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid input for fixed_ips[{i}]. Reason: give a subnet_id, an ip_address or both."
                )));
            }
        };
        let ip = match r.ip_address {
            Some(ip) => {
                ipam::check_requested(subnet, ip, router_port)?;
                if out
                    .iter()
                    .any(|f| f.ip_address == ip && f.subnet_id == subnet.id)
                {
                    continue;
                }
                if !tx.claim_ip(subnet, ip, port, project).await? {
                    return Err(ApiError::conflict(
                        "IpAddressAlreadyAllocated",
                        format!("IP address {ip} already allocated in subnet {}", subnet.id),
                    ));
                }
                ip
            }
            None if subnet.is_auto_address() => {
                let ip = ipam::eui64(subnet.cidr, mac).ok_or_else(|| exhausted_subnet(subnet))?;
                if out.iter().any(|f| f.ip_address == ip) {
                    continue;
                }
                if !tx.claim_ip(subnet, ip, port, project).await? {
                    return Err(ApiError::conflict(
                        "IpAddressAlreadyAllocated",
                        format!("IP address {ip} already allocated in subnet {}", subnet.id),
                    ));
                }
                ip
            }
            None => ipam::allocate(tx, subnet, port, project)
                .await?
                .ok_or_else(|| exhausted_subnet(subnet))?,
        };
        out.push(FixedIp {
            subnet_id: subnet.id,
            ip_address: ip,
        });
    }
    // As Neutron: ports other than router ports also get the EUI-64 address of every
    // automatic-address subnet they did not ask about (on creation, `keep` is empty).
    if requested_any && keep.is_empty() && !router_port {
        for s in subnets.iter().filter(|s| s.is_auto_address()) {
            if out.iter().any(|f| f.subnet_id == s.id) {
                continue;
            }
            if let Some(ip) = ipam::eui64(s.cidr, mac)
                && tx.claim_ip(s, ip, port, project).await?
            {
                out.push(FixedIp {
                    subnet_id: s.id,
                    ip_address: ip,
                });
            }
        }
    }
    Ok(out)
}

/// Loads (share-locked) the subnets of a network, in creation order.
async fn network_subnets(tx: &mut Tx, network: &Network) -> Result<Vec<Subnet>, ApiError> {
    let mut out = Vec::new();
    for sid in &network.subnets {
        if let Some(s) = tx
            .get::<Subnet>(&Scope::All, &sid.to_string(), Lock::Share)
            .await?
        {
            out.push(s);
        }
    }
    Ok(out)
}

fn address_pairs(list: &[AddressPairRequest], mac: MacAddr) -> Result<Vec<AddressPair>, ApiError> {
    let mut out: Vec<AddressPair> = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let net: IpNetwork = match r.ip_address.parse::<IpAddr>() {
            Ok(ip) => IpNetwork::from(ip),
            Err(_) => r.ip_address.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "Invalid input for allowed_address_pairs[{i}].ip_address. Reason: '{}' is not an IP address or CIDR.",
                    r.ip_address
                ))
            })?,
        };
        validate::network_cidr("allowed_address_pairs", net)?;
        let mac = r.mac_address.unwrap_or(mac);
        if !mac.is_unicast() {
            return Err(ApiError::bad_request(format!(
                "Invalid input for allowed_address_pairs[{i}].mac_address. Reason: '{mac}' is not a unicast MAC address."
            )));
        }
        let pair = AddressPair {
            ip_address: net,
            mac_address: mac,
        };
        if out.contains(&pair) {
            return Err(ApiError::bad_request(format!(
                "Request contains duplicate address pair: mac_address {mac} ip_address {net}."
            )));
        }
        out.push(pair);
    }
    Ok(out)
}

/// Checks the requested security groups: visible to the caller and in the port's project.
async fn check_groups(
    tx: &mut Tx,
    scope: &Scope,
    owner: &ProjectId,
    ids: &[SecurityGroupId],
) -> Result<Vec<SecurityGroupId>, ApiError> {
    let mut out = Vec::new();
    for id in ids {
        let g: Option<SecurityGroup> = tx.get(scope, &id.to_string(), Lock::Share).await?;
        match g {
            Some(g) if g.project_id == *owner || scope.is_all() => {
                if !out.contains(id) {
                    out.push(*id);
                }
            }
            _ => {
                return Err(ApiError::not_found(
                    ResourceKind::SecurityGroup,
                    &id.to_string(),
                ));
            }
        }
    }
    Ok(out)
}

async fn claim_mac(
    tx: &mut Tx,
    network: &Network,
    port: &PortId,
    requested: Option<MacAddr>,
) -> Result<MacAddr, ApiError> {
    if let Some(mac) = requested {
        if !mac.is_unicast() {
            return Err(ApiError::bad_request(format!(
                "Invalid input for mac_address. Reason: '{mac}' is not a valid unicast MAC address."
            )));
        }
        if !tx
            .claim_mac(&network.id.to_string(), &mac.to_string(), &port.to_string())
            .await?
        {
            return Err(ApiError::conflict(
                "MacAddressInUse",
                format!(
                    "Unable to complete operation for network {}. The mac address {mac} is in use.",
                    network.id
                ),
            ));
        }
        return Ok(mac);
    }
    for _ in 0..16 {
        let mac = random_mac();
        if tx
            .claim_mac(&network.id.to_string(), &mac.to_string(), &port.to_string())
            .await?
        {
            return Ok(mac);
        }
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "MacAddressGenerationFailure",
        format!("Unable to generate unique mac on network {}.", network.id),
    ))
}

/// Creates a port in `tx`. `system` is set for ports the controller makes itself: they skip
/// the caller's permission checks and get no security groups.
pub async fn create_in(
    tx: &mut Tx,
    ctx: &Ctx,
    req: PortCreate,
    system: Option<SystemPort>,
) -> Result<Port, ApiError> {
    let user_scope = ctx.scope();
    let scope = if system.is_some() {
        Scope::All
    } else {
        user_scope.clone()
    };
    let network_id = req.network_id.value().ok_or_else(|| {
        ApiError::bad_request("Invalid input for network_id. Reason: a port needs a network_id.")
    })?;
    let network = networks::load(tx, &scope, &network_id, Lock::Share).await?;
    let owner = match &system {
        Some(s) => s.owner.clone(),
        None => ctx.owner(
            Owner {
                project_id: req.project_id.clone(),
                tenant_id: req.tenant_id.clone(),
            }
            .requested()?,
        )?,
    };
    let network_owner = ctx.is_admin() || network.project_id == ctx.principal.project;
    if system.is_none() {
        if !network.shared && !network_owner {
            return Err(ApiError::forbidden(
                "create_port: the network is not shared",
            ));
        }
        if req.host_id.as_ref().value().is_some_and(|h| !h.is_empty()) {
            ctx.require_admin("create_port:binding:host_id")?;
        }
        if req.mac_address.is_present() && !network_owner {
            return Err(ApiError::forbidden("create_port:mac_address"));
        }
        if req
            .device_owner
            .as_ref()
            .value()
            .is_some_and(|o| o.starts_with("network:"))
            && !network_owner
        {
            return Err(ApiError::forbidden("create_port:device_owner"));
        }
    }
    if let Field::Value(v) = &req.vnic_type
        && v != "normal"
    {
        return Err(ApiError::bad_request(format!(
            "Invalid input for binding:vnic_type. Reason: '{v}' is not supported: only 'normal'."
        )));
    }
    let id = PortId::random();
    let mac = claim_mac(tx, &network, &id, req.mac_address.value()).await?;
    let subnets = network_subnets(tx, &network).await?;
    let device_owner = system
        .as_ref()
        .map(|s| s.device_owner.to_owned())
        .or(req.device_owner.value())
        .unwrap_or_default();
    let device_id = system
        .as_ref()
        .map(|s| s.device_id.clone())
        .or(req.device_id.value())
        .unwrap_or_default();
    validate::text("device_owner", &device_owner)?;
    validate::text("device_id", &device_id)?;
    let router_port =
        device_owner.starts_with("network:router_") || device_owner == OWNER_FLOATING_IP;
    let fixed_ips = assign_ips(
        tx,
        &network,
        &subnets,
        &id.to_string(),
        &owner,
        mac,
        req.fixed_ips.value(),
        router_port,
        &[],
    )
    .await?;
    let port_security = req
        .port_security_enabled
        .value()
        .map_or(network.port_security_enabled, |b| b.0);
    let security_groups = match req.security_groups {
        Field::Value(ids) if !ids.is_empty() => {
            if !port_security {
                return Err(ApiError::bad_request(
                    "Port security must be enabled and port must have an IP address in order to use security groups.",
                ));
            }
            check_groups(tx, &user_scope, &owner, &ids).await?
        }
        Field::Value(_) | Field::Null => Vec::new(),
        Field::Absent => {
            if port_security && system.is_none() && !device_owner.starts_with("network:") {
                vec![security_groups::ensure_default(tx, &owner).await?]
            } else {
                Vec::new()
            }
        }
    };
    let allowed_address_pairs = match req.allowed_address_pairs.value() {
        Some(list) if !list.is_empty() => {
            if !port_security {
                return Err(ApiError::conflict(
                    "AddressPairAndPortSecurityRequired",
                    "Port Security must be enabled in order to have allowed address pairs on a port.",
                ));
            }
            address_pairs(&list, mac)?
        }
        _ => Vec::new(),
    };
    let tags = match req.tags {
        Field::Value(t) => validate::tags(&t)?,
        _ => Vec::new(),
    };
    let name = req.name.value().unwrap_or_default();
    let description = req.description.value().unwrap_or_default();
    validate::text("name", &name)?;
    validate::text("description", &description)?;
    let host_id = req.host_id.value().unwrap_or_default();
    validate::text("binding:host_id", &host_id)?;
    let mut port = Port {
        id,
        project_id: owner,
        name,
        description,
        network_id,
        admin_state_up: req.admin_state_up.value().is_none_or(|b| b.0),
        status: "DOWN".into(),
        mac_address: mac,
        fixed_ips,
        device_id,
        device_owner,
        security_groups,
        port_security_enabled: port_security,
        allowed_address_pairs,
        host_id,
        tags,
        std: Default::default(),
    };
    tx.insert(&scope, &mut port).await?;
    tracing::info!(port = %port.id, network = %network_id, ips = ?port.fixed_ips.iter().map(|f| f.ip_address).collect::<Vec<_>>(), "port created");
    Ok(port)
}

/// Releases a port's addresses and MAC, detaches its floating IPs, deletes the port
/// forwardings to it and deletes it.
pub async fn delete_in(tx: &mut Tx, scope: &Scope, port: &Port) -> Result<(), ApiError> {
    for f in &port.fixed_ips {
        tx.release_ip(
            &f.subnet_id.to_string(),
            f.ip_address,
            &port.id.to_string(),
            &port.project_id,
        )
        .await?;
    }
    tx.release_mac(
        &port.network_id.to_string(),
        &port.mac_address.to_string(),
        &port.id.to_string(),
    )
    .await?;
    let fips: Vec<FloatingIp> = tx
        .list(
            &Scope::All,
            &Filter {
                reference: Some(port.id.to_string()),
                ..Filter::default()
            },
        )
        .await?;
    for mut f in fips {
        f.port_id = None;
        f.fixed_ip_address = None;
        f.router_id = None;
        f.status = "DOWN".into();
        tx.update(&Scope::All, &mut f).await?;
    }
    super::port_forwardings::forget_port(tx, port, true).await?;
    tx.delete(scope, port).await?;
    tracing::info!(port = %port.id, "port deleted");
    Ok(())
}

async fn create(ctx: Ctx, State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let body = json_body(&body)?;
    let reqs: Vec<PortCreate> = parse_create(&body, "port", "ports")?;
    let bulk = body.get("ports").is_some();
    let ports = with_retry!({
        let mut tx = st.store.begin(&ctx.scope(), &ctx.request_id).await?;
        let mut out = Vec::new();
        for r in reqs.clone() {
            out.push(create_in(&mut tx, &ctx, r, None).await?);
        }
        tx.commit().await?;
        Ok(out)
    })?;
    let views: Vec<Value> = ports.iter().map(|p| view(p, ctx.is_admin())).collect();
    Ok(reply(
        StatusCode::CREATED,
        if bulk {
            json!({"ports": views})
        } else {
            json!({"port": views.into_iter().next()})
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
    let id: PortId = path_id(ResourceKind::Port, &id)?;
    let req: PortUpdate = parse_one(&json_body(&body)?, "port")?;
    if req.host_id.is_present() {
        ctx.require_admin("update_port:binding:host_id")?;
    }
    let port = with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let pre = load(&mut tx, &scope, &id, Lock::None).await?;
        let network = networks::load(&mut tx, &Scope::All, &pre.network_id, Lock::Share).await?;
        let mut p = load(&mut tx, &scope, &id, Lock::Update).await?;
        if !scope.may_write(&p.project_id) {
            return Err(ApiError::forbidden("update_port"));
        }
        let network_owner = ctx.is_admin() || network.project_id == ctx.principal.project;
        if let Field::Value(v) = &req.name {
            validate::text("name", v)?;
            p.name = v.clone();
        }
        if let Field::Value(v) = &req.description {
            validate::text("description", v)?;
            p.description = v.clone();
        }
        if let Field::Value(b) = req.admin_state_up {
            p.admin_state_up = b.0;
        }
        if let Field::Value(v) = &req.vnic_type
            && v != "normal"
        {
            return Err(ApiError::bad_request(format!(
                "Invalid input for binding:vnic_type. Reason: '{v}' is not supported: only 'normal'."
            )));
        }
        match &req.device_owner {
            Field::Value(v) => {
                if v.starts_with("network:") && !network_owner {
                    return Err(ApiError::forbidden("update_port:device_owner"));
                }
                validate::text("device_owner", v)?;
                p.device_owner = v.clone();
            }
            Field::Null => p.device_owner.clear(),
            Field::Absent => {}
        }
        match &req.device_id {
            Field::Value(v) => {
                validate::text("device_id", v)?;
                p.device_id = v.clone();
            }
            Field::Null => p.device_id.clear(),
            Field::Absent => {}
        }
        match &req.host_id {
            Field::Value(v) => {
                validate::text("binding:host_id", v)?;
                p.host_id = v.clone();
            }
            Field::Null => p.host_id.clear(),
            Field::Absent => {}
        }
        if let Field::Value(mac) = req.mac_address
            && mac != p.mac_address
        {
            if !network_owner {
                return Err(ApiError::forbidden("update_port:mac_address"));
            }
            claim_mac(&mut tx, &network, &p.id, Some(mac)).await?;
            tx.release_mac(
                &network.id.to_string(),
                &p.mac_address.to_string(),
                &p.id.to_string(),
            )
            .await?;
            p.mac_address = mac;
        }
        if req.fixed_ips.is_present() {
            let wanted = req.fixed_ips.clone().value().unwrap_or_default();
            // Keep the addresses asked for again; release the others; allocate the new ones.
            let mut keep: Vec<FixedIp> = Vec::new();
            let mut rest: Vec<FixedIpRequest> = Vec::new();
            let mut pool: Vec<FixedIp> = p.fixed_ips.clone();
            for w in wanted {
                let pos = pool.iter().position(|f| match (w.subnet_id, w.ip_address) {
                    (_, Some(ip)) => {
                        f.ip_address == ip && w.subnet_id.is_none_or(|s| s == f.subnet_id)
                    }
                    (Some(s), None) => f.subnet_id == s,
                    (None, None) => false,
                });
                match pos {
                    Some(i) => keep.push(pool.remove(i)),
                    None => rest.push(w),
                }
            }
            for f in &pool {
                tx.release_ip(
                    &f.subnet_id.to_string(),
                    f.ip_address,
                    &p.id.to_string(),
                    &p.project_id,
                )
                .await?;
            }
            let subnets = network_subnets(&mut tx, &network).await?;
            let router_port = p.device_owner.starts_with("network:router_")
                || p.device_owner == OWNER_FLOATING_IP;
            p.fixed_ips = assign_ips(
                &mut tx,
                &network,
                &subnets,
                &p.id.to_string(),
                &p.project_id.clone(),
                p.mac_address,
                Some(rest),
                router_port,
                &keep,
            )
            .await?;
            super::port_forwardings::forget_port(&mut tx, &p, false).await?;
        }
        if let Field::Value(b) = req.port_security_enabled {
            p.port_security_enabled = b.0;
        }
        match &req.security_groups {
            Field::Value(ids) => {
                let owner = p.project_id.clone();
                p.security_groups = check_groups(&mut tx, &scope, &owner, ids).await?;
            }
            Field::Null => p.security_groups.clear(),
            Field::Absent => {}
        }
        match &req.allowed_address_pairs {
            Field::Value(list) => p.allowed_address_pairs = address_pairs(list, p.mac_address)?,
            Field::Null => p.allowed_address_pairs.clear(),
            Field::Absent => {}
        }
        if !p.port_security_enabled && !p.security_groups.is_empty() {
            return Err(ApiError::conflict(
                "PortSecurityPortHasSecurityGroup",
                "Port has security group associated. Cannot disable port security or ip address until security group is removed",
            ));
        }
        if !p.port_security_enabled && !p.allowed_address_pairs.is_empty() {
            return Err(ApiError::conflict(
                "AddressPairAndPortSecurityRequired",
                "Port Security must be enabled in order to have allowed address pairs on a port.",
            ));
        }
        tx.update(&scope, &mut p).await?;
        tx.commit().await?;
        Ok(p)
    })?;
    Ok(reply(
        StatusCode::OK,
        json!({"port": view(&port, ctx.is_admin())}),
    ))
}

async fn delete(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let id: PortId = path_id(ResourceKind::Port, &id)?;
    with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let p = load(&mut tx, &scope, &id, Lock::Update).await?;
        if !scope.may_write(&p.project_id) {
            return Err(ApiError::forbidden("delete_port"));
        }
        if p.is_router_owned() || p.device_owner == OWNER_FLOATING_IP {
            return Err(ApiError::conflict(
                "L3PortInUse",
                format!(
                    "Port {} cannot be deleted directly via the port API: has device owner {}.",
                    p.id, p.device_owner
                ),
            ));
        }
        delete_in(&mut tx, &scope, &p).await?;
        tx.commit().await?;
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The subnets a router port's addresses are on.
pub fn port_subnets(p: &Port) -> HashSet<crate::model::SubnetId> {
    p.fixed_ips.iter().map(|f| f.subnet_id).collect()
}
