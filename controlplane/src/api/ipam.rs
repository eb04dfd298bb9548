//! IPAM read-outs: per-subnet utilization (Neutron's `network-ip-availability`, which
//! `openstack ip availability list/show` reads) and, beyond Neutron, the allocation history
//! (`GET /v2.0/weft/ip-allocation-history`: which port of which project got or gave back which
//! address, when, in which request). Both are scoped like everything else: a member sees its
//! project's networks and its own allocations.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::query::ListParams;
use super::{ApiError, AppState, Ctx, Routes, path_id, reply};
use crate::ipam::pool_size;
use crate::model::{Network, NetworkId, ResourceKind, Subnet};
use crate::store::Filter;

/// Registers the routes.
pub fn routes(r: Routes) -> Routes {
    r.add(
        Method::GET,
        "/v2.0/network-ip-availabilities",
        "ipam",
        "Address utilization of every network and subnet",
        list,
    )
    .add(
        Method::GET,
        "/v2.0/network-ip-availabilities/{id}",
        "ipam",
        "Address utilization of one network",
        show,
    )
    .add(
        Method::GET,
        "/v2.0/weft/ip-allocation-history",
        "ipam",
        "Allocation history (subnet_id, port_id, limit filters), newest first",
        history,
    )
}

fn clamp(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn availability(n: &Network, subnets: &[&Subnet], counts: &HashMap<String, u64>) -> Value {
    let mut total: u128 = 0;
    let mut used: u64 = 0;
    let per: Vec<Value> = subnets
        .iter()
        .map(|s| {
            let t = pool_size(&s.allocation_pools);
            let u = counts.get(&s.id.to_string()).copied().unwrap_or(0);
            total = total.saturating_add(t);
            used = used.saturating_add(u);
            json!({
                "subnet_id": s.id, "subnet_name": s.name, "cidr": s.cidr.to_string(),
                "ip_version": s.ip_version, "total_ips": clamp(t), "used_ips": u,
            })
        })
        .collect();
    json!({
        "network_id": n.id, "network_name": n.name, "project_id": n.project_id, "tenant_id": n.project_id,
        "total_ips": clamp(total), "used_ips": used, "subnet_ip_availability": per,
    })
}

async fn all(st: &AppState, ctx: &Ctx, only: Option<NetworkId>) -> Result<Vec<Value>, ApiError> {
    let scope = ctx.scope();
    let filter = Filter {
        ids: only.map(|i| vec![i.to_string()]),
        ..Filter::default()
    };
    let nets: Vec<Network> = st.store.list(&scope, &filter).await?;
    let subnets: Vec<Subnet> = st.store.list(&scope, &Filter::default()).await?;
    let counts = st.store.allocation_counts().await?;
    Ok(nets
        .iter()
        .map(|n| {
            let mine: Vec<&Subnet> = subnets.iter().filter(|s| s.network_id == n.id).collect();
            availability(n, &mine, &counts)
        })
        .collect())
}

async fn list(
    ctx: Ctx,
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = ListParams::parse(q.as_deref())?;
    let views: Vec<Value> = all(&st, &ctx, None)
        .await?
        .into_iter()
        .map(|mut v| {
            v["id"] = v["network_id"].clone();
            v
        })
        .collect();
    let mut out = p.respond(
        "network_ip_availabilities",
        views,
        &format!("{}/v2.0/network-ip-availabilities", ctx.base_url),
    )?;
    if let Some(a) = out["network_ip_availabilities"].as_array_mut() {
        for v in a {
            if let Some(o) = v.as_object_mut() {
                o.remove("id");
            }
        }
    }
    Ok(reply(StatusCode::OK, out))
}

async fn show(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: NetworkId = path_id(ResourceKind::Network, &id)?;
    let v = all(&st, &ctx, Some(id))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(ResourceKind::Network, &id.to_string()))?;
    Ok(reply(
        StatusCode::OK,
        json!({ "network_ip_availability": v }),
    ))
}

async fn history(
    ctx: Ctx,
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let mut subnet = None;
    let mut port = None;
    let mut limit: u32 = 1000;
    for (k, v) in form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "subnet_id" => subnet = Some(v.into_owned()),
            "port_id" => port = Some(v.into_owned()),
            "limit" => {
                limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=100_000).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "Invalid input for limit. Reason: '{v}' is not in 1..100000."
                        ))
                    })?;
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "[{other}] is invalid attribute for filtering"
                )));
            }
        }
    }
    let events = st
        .store
        .allocation_history(&ctx.scope(), subnet.as_deref(), port.as_deref(), limit)
        .await?;
    Ok(reply(
        StatusCode::OK,
        json!({ "ip_allocation_history": events }),
    ))
}
