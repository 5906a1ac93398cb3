//! Sends an API call about a number to the node that holds it. Any node accepts any call;
//! the calls that act on a number's live connection (connect, disconnect, logout, delete,
//! settings, QR code, pairing code, groups, received media) run where that connection is, so a node that does not
//! hold the number passes the request on unchanged (the holder authenticates it) and
//! returns the holder's answer. A number nobody holds is taken by the node asked.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bzapper_store::NodeRef;

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::runtime::leases::Placement;

/// The calls passed on carry small JSON bodies (settings, a phone number); the API's body
/// limit is the same.
const FORWARD_BODY_LIMIT: usize = 1024 * 1024;

/// Marks a request passed on by another node, so that it is never passed on twice.
pub const FORWARDED_BY: &str = "x-bzapper-forwarded-by";

/// The instance id of a request that must run on the number's node, if it is one.
pub fn instance_needing_holder<'a>(method: &Method, path: &'a str) -> Option<&'a str> {
    let rest = path.strip_prefix("/v1/instances/")?;
    let (id, action) = match rest.split_once('/') {
        Some((id, action)) => (id, Some(action)),
        None => (rest, None),
    };
    if id.is_empty() {
        return None;
    }
    let needs = matches!(
        (method, action),
        (&Method::DELETE | &Method::PATCH, None)
            | (&Method::POST, Some("connect" | "disconnect" | "logout" | "pair-code"))
            | (&Method::GET, Some("qr"))
    ) || (method == Method::GET
        && action
            .is_some_and(|a| a == "groups" || a.starts_with("groups/") || a.starts_with("media/")));
    needs.then_some(id)
}

pub async fn to_holder(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(leases) = state.leases.clone() else { return next.run(req).await };
    let Some(id) = instance_needing_holder(req.method(), req.uri().path()).map(str::to_string)
    else {
        return next.run(req).await;
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_calls_on_a_live_connection_go_to_the_holder() {
        let m = |s: &str| Method::from_bytes(s.as_bytes()).unwrap();
        assert_eq!(
            instance_needing_holder(&m("POST"), "/v1/instances/ins_1/connect"),
            Some("ins_1")
        );
        assert_eq!(instance_needing_holder(&m("GET"), "/v1/instances/ins_1/qr"), Some("ins_1"));
        assert_eq!(instance_needing_holder(&m("DELETE"), "/v1/instances/ins_1"), Some("ins_1"));
        assert_eq!(instance_needing_holder(&m("PATCH"), "/v1/instances/ins_1"), Some("ins_1"));
        assert_eq!(
            instance_needing_holder(&m("POST"), "/v1/instances/ins_1/pair-code"),
            Some("ins_1")
        );
        // Reads of stored state and sends run on any node.
        // Groups and received media are asked through the live connection too.
        assert_eq!(instance_needing_holder(&m("GET"), "/v1/instances/ins_1/groups"), Some("ins_1"));
        assert_eq!(
            instance_needing_holder(&m("GET"), "/v1/instances/ins_1/groups/1203@g.us"),
            Some("ins_1")
        );
        assert_eq!(
            instance_needing_holder(&m("GET"), "/v1/instances/ins_1/media/3EB0A"),
            Some("ins_1")
        );
        assert_eq!(instance_needing_holder(&m("POST"), "/v1/instances/ins_1/groups"), None);
        assert_eq!(instance_needing_holder(&m("GET"), "/v1/instances/ins_1"), None);
        assert_eq!(instance_needing_holder(&m("GET"), "/v1/instances"), None);
        assert_eq!(instance_needing_holder(&m("POST"), "/v1/instances"), None);
        assert_eq!(instance_needing_holder(&m("POST"), "/v1/messages"), None);
        assert_eq!(instance_needing_holder(&m("POST"), "/v1/instances//connect"), None);
    }
}
