//! Who is calling: the admin token or a tenant API key, checked in constant time. API keys
//! look like `bzk_<key id>_<secret>`; only the SHA-256 of the secret is stored.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::error::ApiError;
use crate::http::extract::bearer_token;
use crate::http::state::AppState;
use crate::model::ids;
use crate::model::ids::TenantId;

const KEY_PREFIX: &str = "bzk_";

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A freshly made API key: the token to show once, and what the store keeps.
pub struct NewKey {
    pub id: String,
    pub token: String,
    pub secret_hash: [u8; 32],
}

pub fn new_api_key() -> NewKey {
    let id = ids::new_id("key");
    let secret = ids::new_secret();
    let token = format!("{KEY_PREFIX}{}_{secret}", id.trim_start_matches("key_"));
    NewKey { secret_hash: sha256(secret.as_bytes()), id, token }
}

/// Splits a presented token into the key id and the secret, or `None` if it is not shaped
/// like an API key.
fn split_api_key(token: &str) -> Option<(String, &str)> {
    let rest = token.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 20 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (id_ok && !secret.is_empty()).then(|| (format!("key_{id}"), secret))
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    Tenant { tenant_id: String, key_id: String },
}

impl Principal {
    /// Resolves a bearer token, or `None` when it is neither the admin token nor a live key.
    pub async fn from_token(state: &AppState, token: &str) -> Result<Option<Self>, ApiError> {
        // Hashing first makes the comparison constant-time whatever the lengths are.
        if bool::from(sha256(token.as_bytes()).ct_eq(&state.admin_token_hash)) {
            return Ok(Some(Principal::Admin));
        }
        let Some((key_id, secret)) = split_api_key(token) else { return Ok(None) };
        let rec = match state.keys.get(&key_id) {
            Some(rec) => rec,
            None => {
                let Some(rec) = state.app.tenants.find_key(&key_id).await? else { return Ok(None) };
                state.keys.put(rec.clone());
                rec
            }
        };
        if bool::from(sha256(secret.as_bytes()).ct_eq(&rec.secret_hash)) {
            Ok(Some(Principal::Tenant { tenant_id: rec.tenant_id, key_id: rec.id }))
        } else {
            Ok(None)
        }
    }

    async fn from_parts(
        parts: &Parts,
        state: &AppState,
        allow_query: bool,
    ) -> Result<Self, ApiError> {
        let token = bearer_token(parts, allow_query).ok_or_else(ApiError::unauthorized)?;
        Self::from_token(state, &token).await?.ok_or_else(ApiError::unauthorized)
    }
}

/// The admin token; a tenant key gets 403.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Principal::from_parts(parts, state, false).await? {
            Principal::Admin => Ok(Admin),
            Principal::Tenant { .. } => {
                Err(ApiError::forbidden("this route needs the admin token"))
            }
        }
    }
}

/// A tenant API key; the admin token gets 403.
pub struct Tenant {
    pub tenant_id: TenantId,
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_parts(parts, state, false).await?;
        limit_rate(state, &principal)?;
        tenant_from(principal)
    }
}

/// A tenant API key given in the header or as `?access_token=` (for SSE).
pub struct TenantOrQueryToken {
    pub tenant_id: TenantId,
    /// The key's id: a stream ends when this key is revoked.
    pub key_id: String,
}

impl FromRequestParts<AppState> for TenantOrQueryToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_parts(parts, state, true).await?;
        limit_rate(state, &principal)?;
        match principal {
            Principal::Tenant { tenant_id, key_id } => {
                Ok(TenantOrQueryToken { tenant_id: TenantId::new(tenant_id), key_id })
            }
            Principal::Admin => Err(admin_on_a_tenant_route()),
        }
    }
}

/// Takes one request of a tenant key's rate (`http/rate_limit.rs`); the admin token is not
/// limited.
fn limit_rate(state: &AppState, p: &Principal) -> Result<(), ApiError> {
    match p {
        Principal::Tenant { key_id, .. } => state.rate_limiter.check(key_id),
        Principal::Admin => Ok(()),
    }
}

fn tenant_from(p: Principal) -> Result<Tenant, ApiError> {
    match p {
        Principal::Tenant { tenant_id, .. } => Ok(Tenant { tenant_id: TenantId::new(tenant_id) }),
        Principal::Admin => Err(admin_on_a_tenant_route()),
    }
}

fn admin_on_a_tenant_route() -> ApiError {
    ApiError::forbidden("this route needs a tenant API key; the admin token manages tenants only")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_back_into_id_and_secret() {
        let k = new_api_key();
        let (id, secret) = split_api_key(&k.token).unwrap();
        assert_eq!(id, k.id);
        assert_eq!(sha256(secret.as_bytes()), k.secret_hash);
    }

    #[test]
    fn malformed_tokens_are_not_keys() {
        for t in
            ["", "bzk_", "bzk_abc_def", "xyz_aaaaaaaaaaaaaaaaaaaa_s", "bzk_AAAAAAAAAAAAAAAAAAAA_s"]
        {
            assert!(split_api_key(t).is_none(), "{t}");
        }
    }
}
