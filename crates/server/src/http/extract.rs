//! Request extractors that answer their rejections in the docs/api.md error shape instead of
//! axum's plain-text ones: JSON bodies, query strings, path parameters and the bearer token.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::http::error::ApiError;

/// A JSON body. Syntax errors are 400 `malformed_json`, wrong types, missing or unknown fields
/// are 422 `invalid_request`, a wrong content type is 415, an oversized body 413.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// An optional JSON body (`Option<Json<T>>`): `None` when the request has no body and no
/// content type; anything else is read as [`Json`] is.
impl<S, T> axum::extract::OptionalFromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let empty = !req.headers().contains_key(axum::http::header::CONTENT_TYPE)
            && req
                .headers()
                .get(axum::http::header::CONTENT_LENGTH)
                .is_none_or(|l| l.as_bytes() == b"0");
        if empty {
            return Ok(None);
        }
        <Json<T> as FromRequest<S>>::from_request(req, state).await.map(Some)
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    if body_timed_out(&r) {
        return ApiError::body_timeout();
    }
    let (code, message) = match &r {
        JsonRejection::JsonSyntaxError(_) => ("malformed_json", r.body_text()),
        JsonRejection::JsonDataError(_) => ("invalid_request", r.body_text()),
        JsonRejection::MissingJsonContentType(_) => (
            "unsupported_media_type",
            "the body must be JSON with `Content-Type: application/json`".to_string(),
        ),
        _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ("payload_too_large", "the request body is larger than the limit".to_string())
        }
        _ => ("invalid_request", r.body_text()),
    };
    ApiError::new(r.status(), code, message)
}

/// Whether reading a request body failed because the client paused longer than the body read
/// timeout (`--body-read-timeout-secs`; the server wraps every request body in a
/// [`tower_http::timeout::TimeoutBody`]).
pub fn body_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// A query string, refused with 422 `invalid_request` when it does not parse.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(r) => Err(query_rejection(r)),
        }
    }
}

fn query_rejection(r: QueryRejection) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", r.body_text())
}

/// Path parameters (a typed id, a name). One that cannot be decoded (`%FF` is not UTF-8)
/// names no resource: 404 `not_found`, like an unknown id, in the API's error shape.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(r) => Err(path_rejection(r)),
        }
    }
}

fn path_rejection(r: PathRejection) -> ApiError {
    match r {
        PathRejection::FailedToDeserializePathParams(_) => undecodable_path(),
        // A route declared without the parameters its handler reads: the gateway's bug.
        other => ApiError::internal(other.body_text()),
    }
}

/// A path whose parameters do not decode. The input is not echoed.
pub fn undecodable_path() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such resource: a path parameter is not valid percent-encoded UTF-8",
    )
}

/// The bearer token of a request: the `Authorization` header, or `?access_token=` where a
/// route allows it (browsers' EventSource cannot set headers).
pub fn bearer_token(parts: &Parts, allow_query: bool) -> Option<String> {
    if let Some(v) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string());
    }
    if allow_query {
        let q = parts.uri.query()?;
        return url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned());
    }
    None
}

/// The `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters (docs/api.md).
pub fn idempotency_key(
    headers: &axum::http::HeaderMap,
) -> crate::http::error::ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let k = v.to_str().map_err(|_| ApiError::invalid("`Idempotency-Key` must be visible ASCII"))?;
    let k = k.trim();
    if k.is_empty() || k.len() > 255 {
        return Err(ApiError::invalid("`Idempotency-Key` must be 1 to 255 characters"));
    }
    Ok(Some(k.to_string()))
}
