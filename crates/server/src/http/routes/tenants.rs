//! Tenants and their API keys (admin token). A key is shown once, when it is made.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonOut;
use bzapper_core::validate;
use bzapper_store::{ApiKeyRecord, Tenant};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::auth::{new_api_key, Admin};
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path};
use crate::http::state::AppState;
use crate::model::ids::{new_id, TenantId};
use crate::model::time::now;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 1 to 64 characters.
    #[schema(min_length = 1, max_length = 64, pattern = "\\S")]
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct TenantCreated {
    /// The tenant's id (`ten_…`).
    pub id: String,
    /// The tenant's name.
    pub name: String,
    /// The tenant's first API key. Shown only here; store it now.
    pub api_key: String,
    /// The id of that key, for revoking it.
    pub key_id: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantView {
    /// The tenant's id (`ten_…`).
    pub id: String,
    /// The tenant's name.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantList {
    /// Every tenant.
    pub items: Vec<TenantView>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyCreated {
    /// The key's id (`key_…`), for revoking it.
    pub id: String,
    /// The key. Shown only here.
    pub api_key: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Create a tenant
///
/// Admin token. Creates a tenant and its first API key. The key (`api_key`) is shown only in this
/// answer and stored only as a hash; `key_id` names it for revoking.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", security(("bearer" = [])),
    request_body = CreateTenant,
    responses(
        (status = 201, body = TenantCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    Json(body): Json<CreateTenant>,
) -> ApiResult<(StatusCode, JsonOut<TenantCreated>)> {
    let name = validate::name("name", &body.name).map_err(ApiError::invalid)?;
    let created_at = now();
    let tenant = Tenant { id: new_id("ten"), name, created_at };
    let key = new_api_key();
    let rec = ApiKeyRecord {
        id: key.id.clone(),
        tenant_id: tenant.id.clone(),
        secret_hash: key.secret_hash,
        created_at,
    };
    state.app.tenants.create(&tenant, &rec).await?;
    Ok((
        StatusCode::CREATED,
        JsonOut(TenantCreated {
            id: tenant.id,
            name: tenant.name,
            api_key: key.token,
            key_id: key.id,
            created_at,
        }),
    ))
}

/// List tenants
///
/// Admin token. Every tenant, with its id, name and creation time (never its keys).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", security(("bearer" = [])),
    responses((status = 200, body = TenantList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(_: Admin, State(state): State<AppState>) -> ApiResult<JsonOut<TenantList>> {
    let items = state
        .app
        .tenants
        .list()
        .await?
        .into_iter()
        .map(|t| TenantView { id: t.id, name: t.name, created_at: t.created_at })
        .collect();
    Ok(JsonOut(TenantList { items }))
}

/// Delete a tenant
///
/// Admin token. Logs out and deletes every instance of the tenant, then the tenant with its keys;
/// its open event streams end at once, on every node.
#[utoipa::path(delete, path = "/v1/tenants/{id}", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = TenantId::new(id);
    let deleted = state.app.tenants.delete(&id).await;
    // Whatever happened, cached keys must not outlive a tenant that may be gone (forgetting
    // too often only costs a look-up).
    state.keys.forget_tenant(&id);
    deleted?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add an API key
///
/// Admin token. Adds an API key to a tenant; the key is shown only in this answer.
#[utoipa::path(post, path = "/v1/tenants/{id}/keys", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 201, body = KeyCreated), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_key(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, JsonOut<KeyCreated>)> {
    let key = new_api_key();
    let created_at = now();
    state
        .app
        .tenants
        .add_key(&ApiKeyRecord {
            id: key.id.clone(),
            tenant_id: id,
            secret_hash: key.secret_hash,
            created_at,
        })
        .await?;
    Ok((StatusCode::CREATED, JsonOut(KeyCreated { id: key.id, api_key: key.token, created_at })))
}

/// Revoke an API key
///
/// Admin token. Revokes an API key: requests with it answer 401 from now on, on every node, and its
/// open event streams end at once.
#[utoipa::path(delete, path = "/v1/tenants/{id}/keys/{key_id}", tag = "tenants", security(("bearer" = [])),
    params(("id" = String, Path, description = "tenant id"), ("key_id" = String, Path, description = "key id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_key(
    _: Admin,
    State(state): State<AppState>,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let revoked = state.app.tenants.revoke_key(&TenantId::new(id), &key_id).await;
    // As before: the key leaves the cache even when the store did not know it.
    state.keys.forget_key(&key_id);
    revoked?;
    Ok(StatusCode::NO_CONTENT)
}
