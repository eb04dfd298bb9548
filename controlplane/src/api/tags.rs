//! Tags (`standard-attr-tag`, `tag-creation`) on networks, subnets, ports, routers, floating
//! IPs and security groups: `/v2.0/{collection}/{id}/tags[/{tag}]`. Tags are kept sorted and
//! unique; changing them is a change of the resource (revision number + 1).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiError, AppState, Ctx, Routes, json_body, reply};
use crate::model::request::{TagsBody, parse_attrs};
use crate::model::validate;
use crate::model::{FloatingIp, Network, Port, Resource, Router, SecurityGroup, Subnet};
use crate::store::Lock;
use crate::with_retry;

/// A resource with tags.
pub trait Taggable: Resource {
    /// Its tags.
    fn tags_mut(&mut self) -> &mut Vec<String>;
}

macro_rules! taggable {
    ($($t:ty),*) => {$(
        impl Taggable for $t {
            fn tags_mut(&mut self) -> &mut Vec<String> {
                &mut self.tags
            }
        }
    )*};
}
taggable!(Network, Subnet, Port, Router, FloatingIp, SecurityGroup);

macro_rules! tag_routes {
    ($r:expr, $t:ty, $coll:literal) => {
        $r.add(
            Method::GET,
            concat!("/v2.0/", $coll, "/{id}/tags"),
            "tags",
            concat!("Tags of one of ", $coll),
            list::<$t>,
        )
        .add(
            Method::PUT,
            concat!("/v2.0/", $coll, "/{id}/tags"),
            "tags",
            concat!("Replace the tags of one of ", $coll),
            replace::<$t>,
        )
        .add(
            Method::POST,
            concat!("/v2.0/", $coll, "/{id}/tags"),
            "tags",
            concat!("Add tags to one of ", $coll),
            add_many::<$t>,
        )
        .add(
            Method::DELETE,
            concat!("/v2.0/", $coll, "/{id}/tags"),
            "tags",
            concat!("Remove every tag of one of ", $coll),
            clear::<$t>,
        )
        .add(
            Method::GET,
            concat!("/v2.0/", $coll, "/{id}/tags/{tag}"),
            "tags",
            "Whether the tag is set (204 or 404)",
            check::<$t>,
        )
        .add(
            Method::PUT,
            concat!("/v2.0/", $coll, "/{id}/tags/{tag}"),
            "tags",
            "Add one tag",
            add_one::<$t>,
        )
        .add(
            Method::DELETE,
            concat!("/v2.0/", $coll, "/{id}/tags/{tag}"),
            "tags",
            "Remove one tag (404 if absent)",
            remove_one::<$t>,
        )
    };
}

/// Registers the routes.
pub fn routes(r: Routes) -> Routes {
    let r = tag_routes!(r, Network, "networks");
    let r = tag_routes!(r, Subnet, "subnets");
    let r = tag_routes!(r, Port, "ports");
    let r = tag_routes!(r, Router, "routers");
    let r = tag_routes!(r, FloatingIp, "floatingips");
    tag_routes!(r, SecurityGroup, "security-groups")
}

async fn read<T: Taggable>(st: &AppState, ctx: &Ctx, id: &str) -> Result<T, ApiError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::not_found(T::KIND, id));
    }
    st.store
        .get::<T>(&ctx.scope(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(T::KIND, id))
}

/// Changes the tags of one resource in one transaction; returns the new tags.
async fn change<T: Taggable>(
    st: &AppState,
    ctx: &Ctx,
    id: &str,
    f: impl Fn(&mut Vec<String>) -> Result<(), ApiError>,
) -> Result<Vec<String>, ApiError> {
    ctx.require_write()?;
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::not_found(T::KIND, id));
    }
    with_retry!({
        let scope = ctx.scope();
        let mut tx = st.store.begin(&scope, &ctx.request_id).await?;
        let mut r: T = tx
            .get(&scope, id, Lock::Update)
            .await?
            .ok_or_else(|| ApiError::not_found(T::KIND, id))?;
        if !scope.may_write(r.project()) {
            return Err(ApiError::forbidden("update tags"));
        }
        let mut tags = r.tags_mut().clone();
        f(&mut tags)?;
        let tags = validate::tags(&tags)?;
        if tags != *r.tags_mut() {
            *r.tags_mut() = tags.clone();
            tx.update(&scope, &mut r).await?;
        }
        tx.commit().await?;
        Ok(tags)
    })
}

async fn list<T: Taggable>(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let mut r: T = read(&st, &ctx, &id).await?;
    Ok(reply(StatusCode::OK, json!({"tags": r.tags_mut().clone()})))
}

async fn check<T: Taggable>(
    ctx: Ctx,
    State(st): State<AppState>,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let mut r: T = read(&st, &ctx, &id).await?;
    if r.tags_mut().contains(&tag) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "TagNotFound",
            format!("Tag {tag} could not be found for resource {id}."),
        ))
    }
}

async fn replace<T: Taggable>(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: TagsBody = parse_attrs(&json_body(&body)?)?;
    let tags = change::<T>(&st, &ctx, &id, |t| {
        *t = b.tags.clone();
        Ok(())
    })
    .await?;
    Ok(reply(StatusCode::OK, json!({ "tags": tags })))
}

async fn add_many<T: Taggable>(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: TagsBody = parse_attrs(&json_body(&body)?)?;
    let tags = change::<T>(&st, &ctx, &id, |t| {
        t.extend(b.tags.iter().cloned());
        Ok(())
    })
    .await?;
    Ok(reply(StatusCode::CREATED, json!({ "tags": tags })))
}

async fn clear<T: Taggable>(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    change::<T>(&st, &ctx, &id, |t| {
        t.clear();
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn add_one<T: Taggable>(
    ctx: Ctx,
    State(st): State<AppState>,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    validate::tag(&tag)?;
    change::<T>(&st, &ctx, &id, |t| {
        t.push(tag.clone());
        Ok(())
    })
    .await?;
    Ok(StatusCode::CREATED.into_response())
}

async fn remove_one<T: Taggable>(
    ctx: Ctx,
    State(st): State<AppState>,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    change::<T>(&st, &ctx, &id, |t| {
        let before = t.len();
        t.retain(|x| *x != tag);
        if t.len() == before {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "TagNotFound",
                format!("Tag {tag} could not be found for resource {id}."),
            ));
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
