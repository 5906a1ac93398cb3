//! `POST /v1/contacts/check`: which phone numbers are on WhatsApp, with their JID and LID,
//! asked through one of the tenant's connected numbers (paced, cached for a day in the store;
//! see [`crate::app::contacts`]).

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonOut;
use bzapper_core::{Limits, Phone};
use bzapper_driver::ContactStatus;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::auth::Tenant;
use crate::http::error::driver_error;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::Json;
use crate::http::state::AppState;
use crate::model::ids::InstanceId;

/// The most phones in one request.
pub const MAX_PHONES: usize = 500;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Phone numbers in any common notation.
    #[schema(min_items = 1, max_items = 500)]
    pub phones: Vec<String>,
    /// Ask through this number; otherwise a connected number of the tenant (of `pool`, when
    /// given) is picked.
    #[schema(value_type = Option<String>)]
    pub instance_id: Option<InstanceId>,
    /// Without `instance_id`: ask through a connected number of this pool (any pool when absent).
    pub pool: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    /// E.164 with `+`.
    pub phone: String,
    /// The phone has a WhatsApp account.
    pub on_whatsapp: bool,
    /// The phone-number JID, when on WhatsApp.
    pub jid: Option<String>,
    /// The LID, when WhatsApp gave it.
    pub lid: Option<String>,
    /// The answer is from the last day's cache.
    pub cached: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckAnswer {
    /// One per distinct phone, in the order given.
    pub items: Vec<ContactView>,
    /// The number that asked WhatsApp (`null` when every answer was cached).
    pub instance_id: Option<String>,
}

/// Check which phones are on WhatsApp
///
/// Asks WhatsApp, through a connected number, which of up to 500 phone numbers have an account,
/// with their JID and LID. Answers are cached per tenant for a day (`cached: true`), and the
/// look-ups are paced like sends (batches of 50, with the number's gap between batches). Through
/// `instance_id` when given, otherwise a connected number of `pool` (any pool when absent) on this
/// node, healthiest first; 409 `no_number_available` when there is none.
#[utoipa::path(post, path = "/v1/contacts/check", tag = "contacts", security(("bearer" = [])),
    request_body = CheckRequest,
    responses(
        (status = 200, body = CheckAnswer),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`no_number_available` or `instance_unavailable`"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn check(
    tenant: Tenant,
    State(state): State<AppState>,
    Json(body): Json<CheckRequest>,
) -> ApiResult<JsonOut<CheckAnswer>> {
    if body.phones.is_empty() || body.phones.len() > MAX_PHONES {
        return Err(ApiError::invalid(format!("give 1 to {MAX_PHONES} `phones`")));
    }
    let mut phones: Vec<Phone> = Vec::with_capacity(body.phones.len());
    for (i, raw) in body.phones.iter().enumerate() {
        let p = Phone::parse(raw).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_phone",
                format!("`phones[{i}]`: {e}"),
            )
        })?;
        if !phones.contains(&p) {
            phones.push(p);
        }
    }
    let cached = state.app.contacts.cached(&tenant.tenant_id, &phones).await?;
    let missing: Vec<Phone> = phones.iter().filter(|p| !cached.contains_key(p)).cloned().collect();
    let mut fresh: HashMap<Phone, ContactStatus> = HashMap::new();
    let mut asked_by = None;
    if !missing.is_empty() {
        let (rec, conn) = state
            .app
            .live
            .pick_asker(&tenant.tenant_id, body.instance_id.as_ref(), body.pool.as_deref())
            .await?;
        let limits = Limits::default().merged(&rec.limits).unwrap_or_default();
        let answers = state
            .app
            .contacts
            .check(&tenant.tenant_id, &rec.id, &limits, conn.as_ref(), &missing)
            .await
            .map_err(driver_error)?;
        for a in answers {
            if let (Some(j), Some(l)) = (&a.jid, &a.lid) {
                state.app.live.learn_lid(&tenant.tenant_id, l, j).await;
            }
            fresh.insert(a.phone.clone(), a);
        }
        asked_by = Some(rec.id);
    }
    let items = phones
        .iter()
        .map(|p| {
            let (status, was_cached) = match (cached.get(p), fresh.get(p)) {
                (Some(s), _) => (Some(s), true),
                (None, s) => (s, false),
            };
            ContactView {
                phone: p.e164(),
                on_whatsapp: status.is_some_and(|s| s.on_whatsapp),
                jid: status.and_then(|s| s.jid.as_ref()).map(|j| j.to_non_device().to_string()),
                lid: status.and_then(|s| s.lid.as_ref()).map(|l| l.to_non_device().to_string()),
                cached: was_cached,
            }
        })
        .collect();
    Ok(JsonOut(CheckAnswer { items, instance_id: asked_by }))
}
