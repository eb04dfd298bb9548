//! Request ids: every response carries `X-Openstack-Request-Id: req-<uuid>`, and every log
//! line written while serving the request carries the same id.
//!
//! The id is the client's (`X-OpenStack-Request-ID`, as keystoneauth's global request id) when
//! it is well formed (`req-` and a hyphenated UUID), a new one otherwise. The middleware runs
//! the rest of the request inside a `tracing` span named `request` with a `request_id` field,
//! so every event below it (handlers, the store, IPAM) is printed with it; the store also
//! writes it into the revision log and the allocation history.

use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header, in Neutron's spelling (HTTP header names are case-insensitive).
pub const HEADER: &str = "x-openstack-request-id";

/// The id of the request being served (an axum request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A new `req-<uuid>`.
    pub fn new() -> Self {
        RequestId(format!("req-{}", uuid::Uuid::new_v4().hyphenated()))
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

/// Whether `s` is `req-` followed by a hyphenated UUID.
pub fn is_well_formed(s: &str) -> bool {
    s.strip_prefix("req-")
        .is_some_and(|u| u.len() == 36 && uuid::Uuid::try_parse(u).is_ok())
}

/// The axum middleware (see the module doc).
pub async fn middleware(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| is_well_formed(s))
        .map(|s| RequestId(s.to_owned()))
        .unwrap_or_default();
    req.extensions_mut().insert(id.clone());
    let span = tracing::info_span!(
        "request",
        request_id = %id.0,
        method = %req.method(),
        path = %req.uri().path()
    );
    async move {
        let start = Instant::now();
        let mut resp = next.run(req).await;
        let status = resp.status().as_u16();
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        if status >= 500 {
            tracing::warn!(status, micros, "served");
        } else {
            tracing::info!(status, micros, "served");
        }
        if let Ok(v) = HeaderValue::from_str(&id.0) {
            resp.headers_mut().insert(HEADER, v);
        }
        resp
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_ids() {
        assert!(is_well_formed(&RequestId::new().0));
        assert!(is_well_formed("req-6f1b8c54-6a1c-4ad6-9a36-0b3c1f4e2d10"));
        assert!(!is_well_formed("req-6f1b8c546a1c4ad69a360b3c1f4e2d10"));
        assert!(!is_well_formed("6f1b8c54-6a1c-4ad6-9a36-0b3c1f4e2d10"));
        assert!(!is_well_formed("req-\n"));
    }
}
