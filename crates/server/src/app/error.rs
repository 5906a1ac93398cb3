//! The one error type of the use cases: what went wrong, with the stable code and sentence the
//! API answers; the HTTP layer only picks the status for each kind.

use bzapper_store::StoreError;

use crate::media::MediaError;

/// Why a use case refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The thing named does not exist (for this tenant).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// The request is well-formed but names something that cannot be used (422).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// The request conflicts with the current state (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A per-tenant quota would be passed (429 `quota_exceeded`); `retry_after_secs` when
    /// waiting helps (the queue drains).
    #[error("{message}")]
    QuotaExceeded { message: String, retry_after_secs: Option<u64> },
    /// A media file could not be used (its kind picks the answer).
    #[error(transparent)]
    Media(#[from] MediaError),
    /// WhatsApp, through the number's connection, failed or refused.
    #[error(transparent)]
    Driver(#[from] bzapper_driver::DriverError),
    /// The store failed (a unique-key conflict is a 409 `conflict`, anything else internal).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something that should not happen: logged, never shown.
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    pub fn not_found(message: impl Into<String>) -> Self {
        AppError::NotFound { code: "not_found", message: message.into() }
    }

    /// The API's answer for any id that names nothing of the tenant's.
    pub fn no_such_resource() -> Self {
        Self::not_found("no such resource")
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Unprocessable { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Conflict { code, message: message.into() }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        AppError::Internal(cause.to_string())
    }
}

pub type AppResult<T> = Result<T, AppError>;
