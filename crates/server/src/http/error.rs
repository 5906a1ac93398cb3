//! The one error type of the HTTP layer: every failure a handler can meet becomes an
//! [`ApiError`], answered in the docs/api.md shape `{"error": {"code", "message"}}`. A 500 logs its
//! cause and shows the client nothing internal.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429s where waiting helps).
    pub retry_after_secs: Option<u64>,
}

/// The error body every non-2xx answer carries.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong: a stable code and a sentence.
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code, e.g. `not_found`, `invalid_proxy`.
    pub code: String,
    /// A human sentence.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after_secs: None }
    }

    /// Adds a `Retry-After` of `secs` seconds to the answer.
    pub fn retry_after(mut self, secs: Option<u64>) -> Self {
        self.retry_after_secs = secs;
        self
    }

    /// 429 `rate_limited`: this key sent more requests than its rate allows.
    pub fn rate_limited(per_sec: u32, burst: u32, retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "rate limited: at most {per_sec} requests a second per API key (bursts of \
                 {burst}); retry after {retry_after_secs} s"
            ),
        )
        .retry_after(Some(retry_after_secs))
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` header is required",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// The client stopped sending its request body for longer than the body read timeout.
    pub fn body_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body stopped arriving; send it without long pauses",
        )
    }

    /// An unexpected failure: the cause goes to the log, the client gets a generic sentence.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the gateway failed to handle this request; it has been logged",
        )
    }
}

/// The longest error message answered: past it, the message is cut (a backstop: no message
/// of the gateway's own comes near it, so only an echoed input could).
pub const MAX_ERROR_MESSAGE_CHARS: usize = 512;

/// An error message as answered: every quoted span (`` `…` `` or `"…"`, where messages
/// repeat what the client sent, the gateway's own and serde's alike) shortened to
/// [`bzapper_core::validate::shown`], and the whole cut at [`MAX_ERROR_MESSAGE_CHARS`].
/// An error never echoes an unbounded input back.
pub fn bounded_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_ERROR_MESSAGE_CHARS + 4));
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest[open..].chars().next().unwrap_or('`');
        out.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        match after.find(quote) {
            Some(close) => {
                out.push_str(&bzapper_core::validate::shown(&after[..close]));
                out.push(quote);
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&bzapper_core::validate::shown(after));
                rest = "";
            }
        }
        if out.len() > 4 * MAX_ERROR_MESSAGE_CHARS {
            break;
        }
    }
    out.push_str(rest);
    if out.chars().nth(MAX_ERROR_MESSAGE_CHARS).is_some() {
        out = out.chars().take(MAX_ERROR_MESSAGE_CHARS).collect();
        out.push('…');
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = bounded_message(&self.message);
        let body = ErrorBody { error: ErrorDetail { code: self.code.into(), message } };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<bzapper_store::StoreError> for ApiError {
    fn from(e: bzapper_store::StoreError) -> Self {
        match e {
            bzapper_store::StoreError::Conflict(what) => Self::conflict("conflict", what),
            other => Self::internal(other),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The API answer for each failure: 413 `media_too_large`, 422 `invalid_media`,
/// 422 `media_unreachable` (no connection, an address the outbound guard refuses, or a non-2xx
/// answer), 422 `media_timeout`,
/// 404 `not_found`, and 500 for the store's own failures.
impl From<crate::media::MediaError> for ApiError {
    fn from(e: crate::media::MediaError) -> Self {
        let message = e.to_string();
        match e {
            crate::media::MediaError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "media_too_large", message)
            }
            crate::media::MediaError::WrongType { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_media", message)
            }
            crate::media::MediaError::Unreachable(_)
            | crate::media::MediaError::NotAllowed
            | crate::media::MediaError::NoAnswer
            | crate::media::MediaError::Status(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "media_unreachable", message)
            }
            crate::media::MediaError::Timeout => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "media_timeout", message)
            }
            crate::media::MediaError::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            crate::media::MediaError::Io(_) => ApiError::internal(message),
        }
    }
}

/// The status of each use-case error; the code and sentence are the use case's.
impl From<crate::app::AppError> for ApiError {
    fn from(e: crate::app::AppError) -> Self {
        use crate::app::AppError;
        match e {
            AppError::NotFound { code, message } => Self::new(StatusCode::NOT_FOUND, code, message),
            AppError::Unprocessable { code, message } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            AppError::Conflict { code, message } => Self::conflict(code, message),
            AppError::QuotaExceeded { message, retry_after_secs } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", message)
                    .retry_after(retry_after_secs)
            }
            AppError::Media(e) => e.into(),
            AppError::Driver(e) => driver_error(e),
            AppError::Store(e) => e.into(),
            AppError::Internal(cause) => Self::internal(cause),
        }
    }
}

/// A driver failure as an API error: the number dropped (409), the thing is not there (404),
/// WhatsApp refused (502) or could not be reached (503). Never a 500: none of these is the
/// gateway's fault.
pub fn driver_error(e: bzapper_driver::DriverError) -> ApiError {
    match e {
        bzapper_driver::DriverError::NotConnected | bzapper_driver::DriverError::NotPairing => {
            ApiError::conflict(
                "instance_unavailable",
                "the instance lost its connection; try again once it is connected",
            )
        }
        bzapper_driver::DriverError::NotFound(m) => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", m)
        }
        bzapper_driver::DriverError::Rejected { message: m, .. } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "whatsapp_refused",
            format!("WhatsApp refused: {m}"),
        ),
        bzapper_driver::DriverError::Transport(m) | bzapper_driver::DriverError::Session(m) => {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "network_unavailable",
                format!("WhatsApp could not be reached: {m}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_message_never_echoes_long_input() {
        let long = "x".repeat(100_000);
        let m = bounded_message(&format!("unknown variant `{long}`, expected `slack` or `json`"));
        assert!(m.starts_with(&format!("unknown variant `{}…`", "x".repeat(64))), "{m}");
        assert!(m.ends_with(", expected `slack` or `json`"), "{m}");
        let m = bounded_message(&format!("invalid type: string \"{long}\", expected u32"));
        assert!(m.len() < 200 && m.ends_with("expected u32"), "{m}");
        // Unclosed, or outside quotes: the whole is cut.
        assert!(bounded_message(&format!("`{long}")).chars().count() <= 67);
        assert!(bounded_message(&long).chars().count() <= MAX_ERROR_MESSAGE_CHARS + 1);
        // Short messages are untouched.
        let own = "`secret` must be 16 to 128 characters";
        assert_eq!(bounded_message(own), own);
    }
}
