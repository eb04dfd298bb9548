//! `GET /v2.0/extensions` and `/v2.0/extensions/{alias}`: only what is implemented.

use axum::extract::{Path, RawQuery};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::query::ListParams;
use super::{ApiError, Ctx, Routes, reply};

/// (alias, name, description) of every extension Weft implements.
pub const EXTENSIONS: &[(&str, &str, &str)] = &[
    (
        "allowed-address-pairs",
        "Allowed Address Pairs",
        "Provides allowed address pairs",
    ),
    (
        "binding",
        "Port Binding",
        "Expose port bindings of a virtual port to external application",
    ),
    (
        "external-net",
        "Neutron external network",
        "Adds external network attribute to network resource.",
    ),
    (
        "ext-gw-mode",
        "Neutron L3 Configurable external gateway mode",
        "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway",
    ),
    (
        "extraroute",
        "Neutron Extra Route",
        "Extra routes configuration for L3 router",
    ),
    (
        "filter-validation",
        "Filter parameters validation",
        "Provides validation on filter parameters.",
    ),
    (
        "floating-ip-port-forwarding",
        "Floating IP Port Forwarding",
        "Allows forwarding of a TCP or UDP port of a floating IP to a port of a fixed IP of a Neutron port",
    ),
    (
        "floating-ip-port-forwarding-description",
        "Floating IP Port Forwarding new attribute description",
        "Add a description field to port forwarding of floating IPs",
    ),
    (
        "fip-port-details",
        "Floating IP Port Details Extension",
        "Add port_details attribute to Floating IP resource",
    ),
    (
        "net-mtu",
        "Network MTU",
        "Provides MTU attribute for a network resource.",
    ),
    (
        "net-mtu-writable",
        "Network MTU (writable)",
        "Provides a writable MTU attribute for a network resource.",
    ),
    (
        "network-ip-availability",
        "Network IP Availability",
        "Provides IP availability data for each network and subnet.",
    ),
    (
        "pagination",
        "Pagination support",
        "Extension that indicates that pagination is enabled.",
    ),
    ("port-security", "Port Security", "Provides port security"),
    (
        "project-id",
        "project_id field enabled",
        "Extension that indicates that project_id field is enabled.",
    ),
    (
        "provider",
        "Provider Network",
        "Expose mapping of virtual networks to physical networks",
    ),
    (
        "router",
        "Neutron L3 Router",
        "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway.",
    ),
    (
        "security-group",
        "security-group",
        "The security groups extension.",
    ),
    (
        "sorting",
        "Sorting support",
        "Extension that indicates that sorting is enabled.",
    ),
    (
        "standard-attr-description",
        "standard-attr-description",
        "Extension to add descriptions to standard attributes",
    ),
    (
        "standard-attr-revisions",
        "Resource revision numbers",
        "This extension will display the revision number of neutron resources.",
    ),
    (
        "standard-attr-tag",
        "Tag support for resources with standard attribute: subnet, trunk, network_segment_range, router, network, policy, subnetpool, port, security_group, floatingip",
        "Enables to set tag on resources with standard attribute.",
    ),
    (
        "standard-attr-timestamp",
        "Resource timestamps",
        "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.",
    ),
    (
        "tag-creation",
        "Tag creation extension",
        "Allows to add tags to a resource in one request (POST).",
    ),
    (
        "weft-allocation-history",
        "Weft IP allocation history",
        "Which port of which project got or gave back which address, when, and in which request (GET /v2.0/weft/ip-allocation-history).",
    ),
];

fn view(alias: &str, name: &str, description: &str) -> Value {
    json!({"alias": alias, "name": name, "description": description, "updated": "2026-01-01T00:00:00-00:00", "links": []})
}

/// Registers the routes.
pub fn routes(r: Routes) -> Routes {
    r.add(
        Method::GET,
        "/v2.0/extensions",
        "extensions",
        "List extensions",
        list,
    )
    .add(
        Method::GET,
        "/v2.0/extensions/{alias}",
        "extensions",
        "Show an extension",
        show,
    )
}

async fn list(ctx: Ctx, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = ListParams::parse(q.as_deref())?;
    let views: Vec<Value> = EXTENSIONS.iter().map(|(a, n, d)| view(a, n, d)).collect();
    // Extensions have no id: sort and page by alias.
    let views = views
        .into_iter()
        .map(|mut v| {
            v["id"] = v["alias"].clone();
            v
        })
        .collect();
    let mut out = p.respond(
        "extensions",
        views,
        &format!("{}/v2.0/extensions", ctx.base_url),
    )?;
    if let Some(a) = out["extensions"].as_array_mut() {
        for v in a {
            if let Some(o) = v.as_object_mut() {
                o.remove("id");
            }
        }
    }
    Ok(reply(StatusCode::OK, out))
}

async fn show(_ctx: Ctx, Path(alias): Path<String>) -> Result<Response, ApiError> {
    match EXTENSIONS.iter().find(|(a, _, _)| *a == alias) {
        Some((a, n, d)) => Ok(reply(StatusCode::OK, json!({ "extension": view(a, n, d) }))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ExtensionNotFound",
            format!("Extension with alias {alias} does not exist"),
        )),
    }
}
