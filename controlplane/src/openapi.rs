//! The OpenAPI 3.0 document of the API, served at `GET /openapi.json`.
//!
//! Paths and methods come from [`crate::api::routes`], the same list the router is built from,
//! so every served route is documented and nothing else is. Schemas describe the resources'
//! attributes (from [`crate::model`]) and the Neutron error body.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use crate::api::{AppState, RouteDoc, base_url};

fn props(list: &[(&str, &str)]) -> Value {
    let mut m = Map::new();
    for (name, ty) in list {
        let schema = match *ty {
            "string" | "integer" | "boolean" | "object" => json!({"type": ty}),
            "string?" => json!({"type": "string", "nullable": true}),
            "integer?" => json!({"type": "integer", "nullable": true}),
            "object?" => json!({"type": "object", "nullable": true}),
            "strings" => json!({"type": "array", "items": {"type": "string"}}),
            "objects" => json!({"type": "array", "items": {"type": "object"}}),
            other => json!({"$ref": format!("#/components/schemas/{other}")}),
        };
        m.insert((*name).to_owned(), schema);
    }
    Value::Object(m)
}

const STD: &[(&str, &str)] = &[
    ("id", "string"),
    ("project_id", "string"),
    ("tenant_id", "string"),
    ("revision_number", "integer"),
    ("created_at", "string"),
    ("updated_at", "string"),
];

fn resource(extra: &[(&str, &str)]) -> Value {
    let all: Vec<(&str, &str)> = STD.iter().chain(extra.iter()).copied().collect();
    json!({"type": "object", "properties": props(&all)})
}

fn schemas() -> Value {
    json!({
        "Network": resource(&[("name","string"),("description","string"),("admin_state_up","boolean"),("status","string"),
            ("shared","boolean"),("router:external","boolean"),("mtu","integer"),("port_security_enabled","boolean"),
            ("provider:network_type","string"),("provider:physical_network","string?"),("provider:segmentation_id","integer?"),
            ("subnets","strings"),("tags","strings")]),
        "Subnet": resource(&[("name","string"),("description","string"),("network_id","string"),("ip_version","integer"),
            ("cidr","string"),("gateway_ip","string?"),("allocation_pools","objects"),("dns_nameservers","strings"),
            ("host_routes","objects"),("enable_dhcp","boolean"),("ipv6_ra_mode","string?"),("ipv6_address_mode","string?"),("tags","strings")]),
        "Port": resource(&[("name","string"),("description","string"),("network_id","string"),("admin_state_up","boolean"),
            ("status","string"),("mac_address","string"),("fixed_ips","objects"),("device_id","string"),("device_owner","string"),
            ("security_groups","strings"),("port_security_enabled","boolean"),("allowed_address_pairs","objects"),
            ("binding:host_id","string"),("binding:vnic_type","string"),("tags","strings")]),
        "Router": resource(&[("name","string"),("description","string"),("admin_state_up","boolean"),("status","string"),
            ("external_gateway_info","object?"),("routes","objects"),("tags","strings")]),
        "FloatingIP": resource(&[("description","string"),("floating_network_id","string"),("floating_ip_address","string"),
            ("port_id","string?"),("fixed_ip_address","string?"),("router_id","string?"),("status","string"),("port_details","object?"),("tags","strings")]),
        "SecurityGroup": resource(&[("name","string"),("description","string"),("stateful","boolean"),("shared","boolean"),
            ("security_group_rules","objects"),("tags","strings")]),
        "SecurityGroupRule": resource(&[("security_group_id","string"),("direction","string"),("ethertype","string"),
            ("protocol","string?"),("port_range_min","integer?"),("port_range_max","integer?"),("remote_ip_prefix","string?"),
            ("remote_group_id","string?"),("description","string")]),
        "NeutronError": {"type": "object", "properties": {"NeutronError": {"type": "object", "properties": props(&[("type","string"),("message","string"),("detail","string")])}}},
    })
}

/// The resource schema of a path (by its collection).
fn schema_of(path: &str) -> Option<(&'static str, &'static str)> {
    let coll = path.strip_prefix("/v2.0/")?.split('/').next()?;
    Some(match coll {
        "networks" => ("network", "Network"),
        "subnets" => ("subnet", "Subnet"),
        "ports" => ("port", "Port"),
        "routers" => ("router", "Router"),
        "floatingips" => ("floatingip", "FloatingIP"),
        "security-groups" => ("security_group", "SecurityGroup"),
        "security-group-rules" => ("security_group_rule", "SecurityGroupRule"),
        _ => return None,
    })
}

fn operation(d: &RouteDoc) -> Value {
    let params: Vec<Value> = d
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    let is_item = d.path.ends_with("{id}");
    let mut responses = Map::new();
    let ok = match d.method.as_str() {
        "POST" => "201",
        "DELETE" => "204",
        _ => "200",
    };
    let body = match (schema_of(d.path), d.method.as_str(), is_item) {
        (Some((key, schema)), "GET" | "PUT", true) | (Some((key, schema)), "POST", false)
            if !d.path.contains("/tags") =>
        {
            json!({"content": {"application/json": {"schema": {"type": "object", "properties": {key: {"$ref": format!("#/components/schemas/{schema}")}}}}}})
        }
        _ => json!({}),
    };
    let mut okv = json!({"description": "success"});
    if let (Some(o), Some(b)) = (okv.as_object_mut(), body.as_object()) {
        o.extend(b.clone());
    }
    responses.insert(ok.to_owned(), okv);
    for (code, what) in [
        ("400", "invalid request"),
        ("401", "no or bad token"),
        ("403", "not allowed"),
        ("404", "not found"),
        ("409", "conflict"),
    ] {
        responses.insert(
            code.to_owned(),
            json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NeutronError"}}}}),
        );
    }
    let mut op = json!({
        "summary": d.summary,
        "tags": [d.tag],
        "operationId": format!("{} {}", d.method, d.path),
        "parameters": params,
        "responses": responses,
    });
    if matches!(d.method.as_str(), "POST" | "PUT") && !d.path.ends_with("/tags/{tag}") {
        op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
    }
    if d.path.starts_with("/v2.0/") && d.path != "/v2.0/" {
        op["security"] = json!([{"token": []}]);
    }
    op
}

/// The document, with `server` as its server URL.
pub fn document(server: &str) -> Value {
    let (_, docs) = crate::api::routes();
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for d in &docs {
        paths
            .entry(d.path)
            .or_default()
            .insert(d.method.as_str().to_ascii_lowercase(), operation(d));
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Weft networking API (Neutron v2.0 subset)",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "What Weft's controller serves: Neutron v2.0 networks, subnets, ports, routers, floating IPs, security groups, tags, extensions, IP availability and Weft's allocation history. Errors are {\"NeutronError\": {type, message, detail}}. Every response carries X-Openstack-Request-Id.",
        },
        "servers": [{"url": server}],
        "components": {
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}},
            "schemas": schemas(),
        },
        "paths": paths,
    })
}

/// `GET /openapi.json`.
pub async fn serve(State(st): State<AppState>, headers: HeaderMap) -> Json<Value> {
    Json(document(&base_url(&st.config, &headers)))
}
