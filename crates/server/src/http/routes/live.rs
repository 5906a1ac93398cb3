//! What the routes that talk to WhatsApp through a number share: finding the number's live
//! connection on this node, and answering the driver's errors in the API.md shape.

use std::sync::Arc;

use axum::http::StatusCode;
use bzapper_core::Status;
use bzapper_driver::{Connection, DriverError};
use bzapper_store::InstanceRecord;

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult};
use crate::http::state::AppState;

fn unavailable(rec: &InstanceRecord) -> ApiError {
    ApiError::conflict(
        "instance_unavailable",
        format!(
            "the instance is {}; it must be connected to ask WhatsApp",
            rec.state.status.as_str()
        ),
    )
}

/// The tenant's instance `id` and its live connection; 404 for an unknown instance, 409
/// `instance_unavailable` when it is not connected.
pub async fn connection(
    state: &AppState,
    tenant: &Tenant,
    id: &str,
) -> ApiResult<(InstanceRecord, Arc<dyn Connection>)> {
    let rec =
        state.store.get_instance(&tenant.tenant_id, id).await?.ok_or_else(ApiError::not_found)?;
    if rec.state.status != Status::Connected {
        return Err(unavailable(&rec));
    }
    let conn = state.supervisor.connection(id).await.ok_or_else(|| unavailable(&rec))?;
    Ok((rec, conn))
}

/// A driver failure as an API error: the number dropped (409), the thing is not there (404),
/// WhatsApp refused (502) or could not be reached (503). Never a 500: none of these is the
/// gateway's fault.
pub fn driver_error(e: DriverError) -> ApiError {
    match e {
        DriverError::NotConnected | DriverError::NotPairing => ApiError::conflict(
            "instance_unavailable",
            "the instance lost its connection; try again once it is connected",
        ),
        DriverError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
        DriverError::Rejected { message: m, .. } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "whatsapp_refused",
            format!("WhatsApp refused: {m}"),
        ),
        DriverError::Transport(m) | DriverError::Session(m) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "network_unavailable",
            format!("WhatsApp could not be reached: {m}"),
        ),
    }
}
