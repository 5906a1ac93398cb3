//! Liveness and readiness probes (no auth).

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{extract::State, Json};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::error::ErrorBody;
use crate::http::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// `ok`
    pub status: String,
    /// The WhatsApp backend in use: `whatsapp` or `sim`.
    pub driver: String,
    /// Stored numbers this start is still bringing back (0 once every one has connected,
    /// shown a QR code or failed). The API serves meanwhile; those numbers show `connecting`.
    pub resuming: usize,
}

/// Liveness probe
///
/// No auth. Answers 200 while the process is up; it checks nothing else.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// Readiness probe
///
/// No auth. Answers 200 when the store answers a query, with the driver in use (`sim` or
/// `whatsapp`) and how many stored numbers the gateway is still resuming after its start
/// (`resuming`; it serves while it resumes them); 503 `not_ready` otherwise.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Ready),
    (status = 503, body = ErrorBody, description = "the store does not answer"),
))]
pub async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    match state.app.status.ready().await {
        Ok((driver, resuming)) => {
            Json(Ready { status: "ok".into(), driver: driver.into(), resuming }).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            crate::http::error::ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the store does not answer",
            )
            .into_response()
        }
    }
}
