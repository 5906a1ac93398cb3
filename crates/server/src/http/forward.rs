//! Sends an API call about a number to the node that holds it. Any node accepts any call;
//! the calls that act on a number's live connection (connect, disconnect, logout, delete,
//! settings, QR code, pairing code, groups, received media; the router marks them) run where
//! that connection is, so a node that does not hold the number passes the request on unchanged
//! (with its `Authorization`; the holder authenticates it again) and returns the holder's
//! answer. A number nobody holds is taken by the node asked, but only for its own tenant: the
//! caller is authenticated and the number checked to be theirs before anything is placed, so
//! no request can make a node take a lease it was not entitled to ask for.

use axum::body::Body;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bzapper_store::NodeRef;

use crate::http::auth::Tenant;
use crate::http::error::ApiError;
use crate::http::extract::undecodable_path;
use crate::http::state::AppState;
use crate::model::ids::InstanceId;
use crate::runtime::leases::Placement;

/// The calls passed on carry small JSON bodies (settings, a phone number); the API's body
/// limit is the same.
const FORWARD_BODY_LIMIT: usize = 1024 * 1024;

pub use crate::cluster::FORWARDED_BY;

/// The layer the router puts on each holder-bound route: the route's `{id}` names the
/// number.
pub async fn to_holder(
    State(state): State<AppState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    req: Request,
    next: Next,
) -> Response {
    let Ok(params) = params else { return undecodable_path().into_response() };
    let Some(leases) = state.leases.clone() else { return next.run(req).await };
    let Some(id) = params.iter().find(|(name, _)| *name == "id").map(|(_, v)| v.to_string()) else {
        return next.run(req).await;
    };
    // Authenticated and the caller's own number before a lease is taken or a node asked.
    let (mut parts, body) = req.into_parts();
    let tenant = match Tenant::from_request_parts(&mut parts, &state).await {
        Ok(t) => t,
        Err(refused) => return refused.into_response(),
    };
    if let Err(e) = state.app.instances.get(&tenant.tenant_id, &InstanceId::new(id.clone())).await {
        return ApiError::from(e).into_response();
    }
    let req = Request::from_parts(parts, body);
    let placement = match leases.place(&id).await {
        Ok(p) => p,
        // No such instance (or a database error): the handler answers it as it would.
        Err(e) => {
            tracing::debug!(instance = %id, error = %e, "placing a request failed");
            return next.run(req).await;
        }
    };
    match placement {
        Placement::Here => next.run(req).await,
        Placement::Elsewhere(_) if req.headers().contains_key(FORWARDED_BY) => moving(),
        Placement::Elsewhere(node) => forward(&state, req, node).await,
    }
}

/// The number moved between the two nodes while the request travelled.
fn moving() -> Response {
    let mut r = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "instance_moving",
        "the number is moving to another node; retry in a second",
    )
    .into_response();
    r.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
    r
}

async fn forward(state: &AppState, req: Request, node: NodeRef) -> Response {
    let unreachable = |why: String| {
        let mut r = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "node_unavailable",
            format!(
                "the node holding this number ({}) did not answer: {why}; if it is down, another node takes the number over within the lease time",
                node.id
            ),
        )
        .into_response();
        r.headers_mut().insert("retry-after", HeaderValue::from_static("2"));
        r
    };
    let Some(cluster) = state.cluster.as_ref() else { return unreachable("no cluster".into()) };
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{}{}", node.url.trim_end_matches('/'), path);
    let body = match axum::body::to_bytes(body, FORWARD_BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => return unreachable(format!("reading the request failed: {e}")),
    };
    let mut out = state.forwarder.request(parts.method.clone(), &url).body(body);
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH {
            out = out.header(name, value);
        }
    }
    out = out.header(FORWARDED_BY, cluster.node_id());
    let answer = match out.send().await {
        Ok(a) => a,
        Err(e) => return unreachable(e.to_string()),
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != axum::http::header::CONTENT_LENGTH
            && name != axum::http::header::TRANSFER_ENCODING
        {
            response = response.header(name, value);
        }
    }
    match answer.bytes().await {
        Ok(bytes) => {
            response.body(Body::from(bytes)).unwrap_or_else(|e| unreachable(e.to_string()))
        }
        Err(e) => unreachable(e.to_string()),
    }
}
