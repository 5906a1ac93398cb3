//! Features the protocol library marks experimental answer 501, saying so, rather than
//! pretending to work.

use axum::http::StatusCode;

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ErrorBody};

fn experimental(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        format!(
            "{what} is experimental in the WhatsApp protocol library and unreliable, so bZapper \
             does not offer it"
        ),
    )
}

/// Forward a message (not implemented)
///
/// Experimental: forwarding a message is not implemented and answers 501 `not_implemented`.
#[utoipa::path(post, path = "/v1/messages/forward", tag = "messages", security(("bearer" = [])),
    responses((status = 501, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn forward(_t: Tenant) -> ApiError {
    experimental("forwarding")
}

/// Labels (not implemented)
///
/// Experimental: labels are not implemented and answer 501 `not_implemented`.
#[utoipa::path(post, path = "/v1/labels", tag = "messages", security(("bearer" = [])),
    responses((status = 501, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn labels(_t: Tenant) -> ApiError {
    experimental("labels")
}

/// Start a call (not implemented)
///
/// Experimental: calls are not implemented and answer 501 `not_implemented`.
#[utoipa::path(post, path = "/v1/calls", tag = "messages", security(("bearer" = [])),
    responses((status = 501, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn calls(_t: Tenant) -> ApiError {
    experimental("starting a call")
}
