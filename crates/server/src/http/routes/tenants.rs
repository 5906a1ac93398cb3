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
    pub id: String,
    pub name: String,
    /// The tenant's first API key. Shown only here; store it now.
    pub api_key: String,
    /// The id of that key, for revoking it.
    pub key_id: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantList {
    pub items: Vec<TenantView>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyCreated {
    pub id: String,
    /// The key. Shown only here.
    pub api_key: String,
    pub created_at: DateTime<Utc>,
}

/// Creates a tenant and its first API key.
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

/// Lists every tenant.
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

/// Deletes a tenant with its keys and instances (each instance is logged out first).
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

/// Adds an API key to a tenant.
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

/// Revokes an API key; requests with it answer 401 from now on.
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
