//! Neutron-shaped errors: `{"NeutronError": {"type": ..., "message": ..., "detail": ""}}` with
//! Neutron's status codes and type names, so clients (openstacksdk reads `message`) show them.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::AuthError;
use crate::ipam::IpamError;
use crate::model::ResourceKind;
use crate::model::request::RequestError;
use crate::model::validate::ValidationError;
use crate::store::StoreError;

/// An API error: status, Neutron type name, message.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Neutron's exception name (`NetworkNotFound`, `IpAddressGenerationFailure`, ...).
    pub kind: &'static str,
    /// The message shown to the user.
    pub message: String,
    /// Whether running the request again may succeed (a serialization failure).
    pub retryable: bool,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            retryable: false,
        }
    }

    /// 400 `HTTPBadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "HTTPBadRequest", message)
    }

    /// 400 `InvalidInput`: "Invalid input for operation: ...".
    pub fn invalid_input(message: impl std::fmt::Display) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            format!("Invalid input for operation: {message}."),
        )
    }

    /// 400 `BadRequest` with Neutron's "Bad {resource} request: ..." form.
    pub fn bad_resource_request(resource: &str, message: impl std::fmt::Display) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Bad {resource} request: {message}."),
        )
    }

    /// 409 with a type.
    pub fn conflict(kind: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, kind, message)
    }

    /// 403 `PolicyNotAuthorized` for an action.
    pub fn forbidden(action: &str) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            format!("({action}) is disallowed by policy"),
        )
    }

    /// 404 for a resource id of a kind: `NetworkNotFound: Network X could not be found.`
    pub fn not_found(kind: ResourceKind, id: &str) -> Self {
        let (t, name) = match kind {
            ResourceKind::Network => ("NetworkNotFound", "Network"),
            ResourceKind::Subnet => ("SubnetNotFound", "Subnet"),
            ResourceKind::Port => ("PortNotFound", "Port"),
            ResourceKind::Router => ("RouterNotFound", "Router"),
            ResourceKind::FloatingIp => ("FloatingIPNotFound", "Floating IP"),
            ResourceKind::SecurityGroup => ("SecurityGroupNotFound", "Security group"),
            ResourceKind::SecurityGroupRule => ("SecurityGroupRuleNotFound", "Security group rule"),
            ResourceKind::PortForwarding => ("PortForwardingNotFound", "Port Forwarding"),
            ResourceKind::Node => ("NodeNotFound", "Node"),
        };
        ApiError::new(
            StatusCode::NOT_FOUND,
            t,
            format!("{name} {id} could not be found."),
        )
    }

    /// 500 without details for the client (the details go to the log, with the request id).
    pub fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!(error = %what, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "HTTPInternalServerError",
            "Request Failed: internal server error while processing your request.",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            tracing::info!(status = self.status.as_u16(), kind = self.kind, message = %self.message, "refused");
        }
        let body =
            json!({"NeutronError": {"type": self.kind, "message": self.message, "detail": ""}});
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            let mut a = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The database is busy: try again",
            );
            a.retryable = true;
            return a;
        }
        match e {
            StoreError::Forbidden => ApiError::forbidden("write"),
            StoreError::Missing(kind, id) => match ResourceKind::parse(kind) {
                Some(k) => ApiError::not_found(k, &id),
                None => ApiError::new(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{kind} {id} could not be found."),
                ),
            },
            other => ApiError::internal(other),
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        match e {
            ValidationError::GatewayConflictWithAllocationPools { .. } => {
                ApiError::conflict("GatewayConflictWithAllocationPools", e.to_string())
            }
            ValidationError::Invalid { .. } => ApiError::bad_request(e.to_string()),
        }
    }
}

impl From<IpamError> for ApiError {
    fn from(e: IpamError) -> Self {
        match e {
            IpamError::OutsideSubnet(_) => ApiError::invalid_input(&e),
            IpamError::Reserved(..) | IpamError::Gateway(..) | IpamError::AutoAddressSubnet(..) => {
                ApiError::invalid_input(&e)
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::MissingToken | AuthError::InvalidToken => {
                ApiError::new(StatusCode::UNAUTHORIZED, "HTTPUnauthorized", e.to_string())
            }
            AuthError::NoRole => {
                ApiError::new(StatusCode::FORBIDDEN, "HTTPForbidden", e.to_string())
            }
            AuthError::Keystone(_) => {
                tracing::warn!(error = %e, "identity service");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The identity service could not validate the token",
                )
            }
            other => ApiError::internal(other),
        }
    }
}
