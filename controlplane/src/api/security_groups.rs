//! `/v2.0/security-groups` and `/v2.0/security-group-rules`.
//!
//! Every project has one group named `default` (created on first need: its first port, its
//! first look at its groups, its first group), with Neutron's default rules: all egress, and
//! ingress from members of the same group, for IPv4 and IPv6. It cannot be renamed, and only an
//! admin can delete it. A new group gets the two egress rules. Rules are unique within a group.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use ipnetwork::IpNetwork;
use serde_json::{Value, json};

use super::query::ListParams;
use super::{ApiError, AppState, Ctx, Routes, json_body, path_id, reply};
use crate::model::request::{
    Field, Owner, ProtocolValue, RuleCreate, SecurityGroupCreate, SecurityGroupUpdate,
    parse_create, parse_one,
};
use crate::model::validate;
use crate::model::{
    Direction, EtherType, Port, ProjectId, ResourceKind, Scope, SecurityGroup, SecurityGroupId,
    SecurityGroupRule, SecurityGroupRuleId, StandardAttrs,
};
use crate::store::{Filter, Lock, Tx};
use crate::with_retry;

/// Registers the routes.
pub fn routes(r: Routes) -> Routes {
    r.add(
        Method::GET,
        "/v2.0/security-groups",
        "security-groups",
        "List security groups",
        list,
    )
    .add(
        Method::POST,
        "/v2.0/security-groups",
        "security-groups",
        "Create security groups",
        create,
    )
    .add(
        Method::GET,
        "/v2.0/security-groups/{id}",
        "security-groups",
        "Show a security group with its rules",
        show,
    )
    .add(
        Method::PUT,
        "/v2.0/security-groups/{id}",
        "security-groups",
        "Update a security group",
        update,
    )
    .add(
        Method::DELETE,
        "/v2.0/security-groups/{id}",
        "security-groups",
        "Delete a security group (not in use)",
        delete,
    )
    .add(
        Method::GET,
        "/v2.0/security-group-rules",
        "security-group-rules",
        "List security group rules",
        list_rules,
    )
    .add(
        Method::POST,
        "/v2.0/security-group-rules",
        "security-group-rules",
        "Create security group rules",
        create_rule,
    )
    .add(
        Method::GET,
        "/v2.0/security-group-rules/{id}",
        "security-group-rules",
        "Show a rule",
        show_rule,
    )
    .add(
        Method::DELETE,
        "/v2.0/security-group-rules/{id}",
        "security-group-rules",
        "Delete a rule",
        delete_rule,
    )
}

/// The API view of a rule.
pub fn rule_view(r: &SecurityGroupRule) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("tenant_id".into(), json!(r.project_id));
        o.insert("remote_address_group_id".into(), Value::Null);
        o.insert(
            "normalized_cidr".into(),
            json!(
                r.remote_ip_prefix
                    .map(|p| format!("{}/{}", p.network(), p.prefix()))
            ),
        );
    }
    v
}

/// The API view of a group, with its rules.
pub fn view(g: &SecurityGroup, rules: &[&SecurityGroupRule]) -> Value {
    let mut v = serde_json::to_value(g).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("tenant_id".into(), json!(g.project_id));
        o.insert("shared".into(), json!(false));
        o.insert(
            "security_group_rules".into(),
            Value::Array(rules.iter().map(|r| rule_view(r)).collect()),
        );
    }
    v
}

fn new_rule(
    g: &SecurityGroup,
    direction: Direction,
    ethertype: EtherType,
    remote_self: bool,
) -> SecurityGroupRule {
    SecurityGroupRule {
        id: SecurityGroupRuleId::random(),
        project_id: g.project_id.clone(),
        security_group_id: g.id,
        direction,
        ethertype,
        protocol: None,
        port_range_min: None,
        port_range_max: None,
        remote_ip_prefix: None,
        remote_group_id: remote_self.then_some(g.id),
        description: String::new(),
        std: StandardAttrs::default(),
    }
}

/// The default group of `project`, created (with its rules) if it has none yet. Safe under
/// concurrency: the store's one-row-per-project key decides which creation wins.
pub async fn ensure_default(tx: &mut Tx, project: &ProjectId) -> Result<SecurityGroupId, ApiError> {
    if let Some(id) = tx.default_group(project).await? {
        return Ok(id);
    }
    let id = SecurityGroupId::random();
    if !tx.claim_default_group(project, &id).await? {
        return tx
            .default_group(project)
            .await?
            .ok_or_else(|| ApiError::internal("default security group vanished"));
    }
    let mut g = SecurityGroup {
        id,
        project_id: project.clone(),
        name: "default".into(),
        description: "Default security group".into(),
        stateful: true,
        tags: Vec::new(),
        std: StandardAttrs::default(),
    };
    tx.insert(&Scope::All, &mut g).await?;
    for (d, e, remote_self) in validate::default_rules(true) {
        let mut r = new_rule(&g, d, e, remote_self);
        tx.insert(&Scope::All, &mut r).await?;
    }
    tracing::info!(project = %project, group = %id, "default security group created");
    Ok(id)
}

async fn ensure_default_for_caller(st: &AppState, ctx: &Ctx) -> Result<(), ApiError> {
    if !ctx.scope().writes()
        || st
            .store
            .default_security_group(&ctx.principal.project)
            .await?
            .is_some()
    {
        return Ok(());
    }
    with_retry!({
        let mut tx = st.store.begin(&ctx.scope(), &ctx.request_id).await?;
        ensure_default(&mut tx, &ctx.principal.project).await?;
        tx.commit().await?;
        Ok(())
    })
}

async fn list(
    ctx: Ctx,
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = ListParams::parse(q.as_deref())?;
    ensure_default_for_caller(&st, &ctx).await?;
    let groups: Vec<SecurityGroup> = st.store.list(&ctx.scope(), &p.store_filter(None)).await?;
    let rules: Vec<SecurityGroupRule> = st.store.list(&ctx.scope(), &Filter::default()).await?;
    let views = groups
        .iter()
        .map(|g| {
            view(
                g,
                &rules
                    .iter()
                    .filter(|r| r.security_group_id == g.id)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    Ok(reply(
        StatusCode::OK,
        p.respond(
            "security_groups",
            views,
            &format!("{}/v2.0/security-groups", ctx.base_url),
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
    let id: SecurityGroupId = path_id(ResourceKind::SecurityGroup, &id)?;
    let g: SecurityGroup = st
        .store
        .get(&ctx.scope(), &id.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found(ResourceKind::SecurityGroup, &id.to_string()))?;
    let rules: Vec<SecurityGroupRule> = st.store.list(&ctx.scope(), &Filter::parent(id)).await?;
    Ok(reply(
        StatusCode::OK,
        json!({"security_group": p.trim(view(&g, &rules.iter().collect::<Vec<_>>()))}),
    ))
}

async fn create(ctx: Ctx, State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let body = json_body(&body)?;
    let reqs: Vec<SecurityGroupCreate> = parse_create(&body, "security_group", "security_groups")?;
    let bulk = body.get("security_groups").is_some();
    let out = with_retry!({
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
            ensure_default(&mut tx, &owner).await?;
            let name = req.name.value().unwrap_or_default();
            let description = req.description.value().unwrap_or_default();
            validate::text("name", &name)?;
            validate::text("description", &description)?;
            if name == "default" {
                return Err(ApiError::conflict(
                    "SecurityGroupDefaultAlreadyExists",
                    "Default security group already exists.",
                ));
            }
            if req.stateful.value().is_some_and(|b| !b.0) {
                return Err(ApiError::bad_request(
                    "Invalid input for stateful. Reason: only stateful security groups are supported.",
                ));
            }
            let tags = match req.tags {
                Field::Value(t) => validate::tags(&t)?,
                _ => Vec::new(),
            };
            let mut g = SecurityGroup {
                id: SecurityGroupId::random(),
                project_id: owner,
                name,
                description,
                stateful: true,
                tags,
                std: StandardAttrs::default(),
            };
            tx.insert(&scope, &mut g).await?;
            let mut rules = Vec::new();
            for (d, e, remote_self) in validate::default_rules(false) {
                let mut r = new_rule(&g, d, e, remote_self);
                tx.insert(&scope, &mut r).await?;
                rules.push(r);
            }
            out.push((g, rules));
        }
        tx.commit().await?;
        Ok(out)
    })?;
    let views: Vec<Value> = out
        .iter()
        .map(|(g, r)| view(g, &r.iter().collect::<Vec<_>>()))
        .collect();
    Ok(reply(
        StatusCode::CREATED,
        if bulk {
            json!({"security_groups": views})
        } else {
            json!({"security_group": views.into_iter().next()})
        },
    ))
}

async fn load(
    tx: &mut Tx,
    scope: &Scope,
    id: &SecurityGroupId,
    lock: Lock,
) -> Result<SecurityGroup, ApiError> {
    tx.get(scope, &id.to_string(), lock)
        .await?
        .ok_or_else(|| ApiError::not_found(ResourceKind::SecurityGroup, &id.to_string()))
}

async fn update(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let id: SecurityGroupId = path_id(ResourceKind::SecurityGroup, &id)?;
    let req: SecurityGroupUpdate = parse_one(&json_body(&body)?, "security_group")?;
    let (g, rules) = with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let mut g = load(&mut tx, &scope, &id, Lock::Update).await?;
        if let Field::Value(n) = &req.name {
            validate::text("name", n)?;
            let is_default = tx.default_group(&g.project_id).await? == Some(g.id);
            if is_default && *n != g.name {
                return Err(ApiError::conflict(
                    "SecurityGroupCannotUpdateDefault",
                    "Updating default security group not allowed.",
                ));
            }
            if !is_default && n == "default" {
                return Err(ApiError::conflict(
                    "SecurityGroupDefaultAlreadyExists",
                    "Default security group already exists.",
                ));
            }
            g.name = n.clone();
        }
        if let Field::Value(d) = &req.description {
            validate::text("description", d)?;
            g.description = d.clone();
        }
        tx.update(&scope, &mut g).await?;
        let rules: Vec<SecurityGroupRule> = tx.list(&Scope::All, &Filter::parent(g.id)).await?;
        tx.commit().await?;
        Ok((g, rules))
    })?;
    Ok(reply(
        StatusCode::OK,
        json!({"security_group": view(&g, &rules.iter().collect::<Vec<_>>())}),
    ))
}

async fn delete(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let id: SecurityGroupId = path_id(ResourceKind::SecurityGroup, &id)?;
    with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let g = load(&mut tx, &scope, &id, Lock::Update).await?;
        if !scope.may_write(&g.project_id) {
            return Err(ApiError::forbidden("delete_security_group"));
        }
        let is_default = tx.default_group(&g.project_id).await? == Some(g.id);
        if is_default && !ctx.is_admin() {
            return Err(ApiError::conflict(
                "SecurityGroupCannotRemoveDefault",
                "Insufficient rights for removing default security group.",
            ));
        }
        let ports: Vec<Port> = tx.list(&Scope::All, &Filter::default()).await?;
        if ports.iter().any(|p| p.security_groups.contains(&g.id)) {
            return Err(ApiError::conflict(
                "SecurityGroupInUse",
                format!("Security Group {} in use.", g.id),
            ));
        }
        let own: Vec<SecurityGroupRule> = tx.list(&Scope::All, &Filter::parent(g.id)).await?;
        let referring: Vec<SecurityGroupRule> = tx
            .list(
                &Scope::All,
                &Filter {
                    reference: Some(g.id.to_string()),
                    ..Filter::default()
                },
            )
            .await?;
        let mut done = std::collections::HashSet::new();
        for r in own.iter().chain(referring.iter()) {
            if done.insert(r.id) {
                tx.delete(&Scope::All, r).await?;
            }
        }
        if is_default {
            tx.forget_default_group(&g.id).await?;
        }
        tx.delete(&scope, &g).await?;
        tx.commit().await?;
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_rules(
    ctx: Ctx,
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = ListParams::parse(q.as_deref())?;
    ensure_default_for_caller(&st, &ctx).await?;
    let rules: Vec<SecurityGroupRule> = st
        .store
        .list(&ctx.scope(), &p.store_filter(Some("security_group_id")))
        .await?;
    let views = rules.iter().map(rule_view).collect();
    Ok(reply(
        StatusCode::OK,
        p.respond(
            "security_group_rules",
            views,
            &format!("{}/v2.0/security-group-rules", ctx.base_url),
        )?,
    ))
}

async fn show_rule(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = ListParams::parse(q.as_deref())?;
    let id: SecurityGroupRuleId = path_id(ResourceKind::SecurityGroupRule, &id)?;
    let r: SecurityGroupRule = st
        .store
        .get(&ctx.scope(), &id.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found(ResourceKind::SecurityGroupRule, &id.to_string()))?;
    Ok(reply(
        StatusCode::OK,
        json!({"security_group_rule": p.trim(rule_view(&r))}),
    ))
}

/// The normalized identity of a rule: direction, ethertype, protocol number, ports, remote
/// prefix, remote group.
type RuleKey = (
    Direction,
    EtherType,
    Option<u8>,
    Option<u16>,
    Option<u16>,
    Option<String>,
    Option<SecurityGroupId>,
);

/// The normalized identity of a rule, for duplicate detection.
fn rule_key(r: &SecurityGroupRule) -> RuleKey {
    let proto = r
        .protocol
        .as_deref()
        .and_then(|p| validate::protocol_number(p).ok().flatten());
    let prefix = r
        .remote_ip_prefix
        .filter(|p| p.prefix() != 0)
        .map(|p| format!("{}/{}", p.network(), p.prefix()));
    (
        r.direction,
        r.ethertype,
        proto,
        r.port_range_min,
        r.port_range_max,
        prefix,
        r.remote_group_id,
    )
}

async fn build_rule(
    tx: &mut Tx,
    ctx: &Ctx,
    req: RuleCreate,
) -> Result<SecurityGroupRule, ApiError> {
    let scope = ctx.scope();
    let gid = req.security_group_id.value().ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for security_group_id. Reason: a rule needs a security_group_id.",
        )
    })?;
    let mut g = load(tx, &scope, &gid, Lock::Update).await?;
    if !scope.may_write(&g.project_id) {
        return Err(ApiError::forbidden("create_security_group_rule"));
    }
    if let Some(p) = (Owner {
        project_id: req.project_id,
        tenant_id: req.tenant_id,
    })
    .requested()?
        && p != g.project_id.as_str()
    {
        return Err(ApiError::bad_request(
            "Invalid input for project_id. Reason: a rule belongs to its group's project.",
        ));
    }
    let direction = req.direction.value().ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for direction. Reason: direction is required (ingress or egress).",
        )
    })?;
    let ethertype = req.ethertype.value().unwrap_or(EtherType::IPv4);
    let protocol = match req.protocol {
        Field::Value(ProtocolValue::Text(s)) => Some(s),
        Field::Value(ProtocolValue::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let number = match &protocol {
        Some(p) => validate::protocol_number(p)?,
        None => None,
    };
    let protocol = protocol.filter(|_| number.is_some());
    let (port_range_min, port_range_max) = validate::rule_ports(
        number,
        ethertype,
        req.port_range_min.value().map(|n| n.0),
        req.port_range_max.value().map(|n| n.0),
    )?;
    if req
        .remote_address_group_id
        .as_ref()
        .value()
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::bad_request(
            "Invalid input for remote_address_group_id. Reason: address groups are not supported.",
        ));
    }
    let remote_ip_prefix: Option<IpNetwork> = req.remote_ip_prefix.value();
    let remote_group_id = req.remote_group_id.value();
    if remote_ip_prefix.is_some() && remote_group_id.is_some() {
        return Err(ApiError::bad_request(
            "Only remote_ip_prefix or remote_group_id may be provided.",
        ));
    }
    if let Some(p) = remote_ip_prefix
        && p.is_ipv4() != (ethertype == EtherType::IPv4)
    {
        return Err(ApiError::bad_request(format!(
            "Conflicting value ethertype {ethertype:?} for CIDR {p}"
        )));
    }
    if let Some(rg) = remote_group_id {
        load(tx, &scope, &rg, Lock::Share).await?;
    }
    let description = req.description.value().unwrap_or_default();
    validate::text("description", &description)?;
    let mut r = SecurityGroupRule {
        id: SecurityGroupRuleId::random(),
        project_id: g.project_id.clone(),
        security_group_id: g.id,
        direction,
        ethertype,
        protocol,
        port_range_min,
        port_range_max,
        remote_ip_prefix,
        remote_group_id,
        description,
        std: StandardAttrs::default(),
    };
    let existing: Vec<SecurityGroupRule> = tx.list(&Scope::All, &Filter::parent(g.id)).await?;
    if let Some(dup) = existing.iter().find(|e| rule_key(e) == rule_key(&r)) {
        return Err(ApiError::conflict(
            "SecurityGroupRuleExists",
            format!("Security group rule already exists. Rule id is {}.", dup.id),
        ));
    }
    tx.insert(&scope, &mut r).await?;
    tx.update(&scope, &mut g).await?;
    Ok(r)
}

async fn create_rule(
    ctx: Ctx,
    State(st): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let body = json_body(&body)?;
    let reqs: Vec<RuleCreate> = parse_create(&body, "security_group_rule", "security_group_rules")?;
    let bulk = body.get("security_group_rules").is_some();
    let rules = with_retry!({
        let mut tx = st.store.begin(&ctx.scope(), &ctx.request_id).await?;
        let mut out = Vec::new();
        for r in reqs.clone() {
            out.push(build_rule(&mut tx, &ctx, r).await?);
        }
        tx.commit().await?;
        Ok(out)
    })?;
    let views: Vec<Value> = rules.iter().map(rule_view).collect();
    Ok(reply(
        StatusCode::CREATED,
        if bulk {
            json!({"security_group_rules": views})
        } else {
            json!({"security_group_rule": views.into_iter().next()})
        },
    ))
}

async fn delete_rule(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    ctx.require_write()?;
    let id: SecurityGroupRuleId = path_id(ResourceKind::SecurityGroupRule, &id)?;
    with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let r: SecurityGroupRule = tx
            .get(&scope, &id.to_string(), Lock::Update)
            .await?
            .ok_or_else(|| ApiError::not_found(ResourceKind::SecurityGroupRule, &id.to_string()))?;
        if !scope.may_write(&r.project_id) {
            return Err(ApiError::forbidden("delete_security_group_rule"));
        }
        tx.delete(&scope, &r).await?;
        if let Some(mut g) = tx
            .get::<SecurityGroup>(&Scope::All, &r.security_group_id.to_string(), Lock::Update)
            .await?
        {
            tx.update(&Scope::All, &mut g).await?;
        }
        tx.commit().await?;
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
