//! The simulated network over HTTP (`bzapper simnet --listen ADDR`), so that several gateway
//! nodes on one machine share one network. `/net/...` is the client side that
//! [`RemoteSimNet`](crate::sim::RemoteSimNet) speaks (attach is an NDJSON stream of
//! [`NetEvent`]s); `/v1/sim/...` is the control API with docs/api.md's paths and bodies.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bzapper_core::{Jid, Phone};
use futures::stream::{self, BoxStream, Stream, StreamExt};
use tokio::sync::watch;

use super::control::{
    AgeRequest, CallSpec, ContactRequest, CreateGroupRequest, DropRequest, InboundSpec,
    RestrictRequest, ScanRequest,
};
use super::media;
use super::network::SimNetwork;
use super::outbox::OutboxPage;
use super::reactions::Reactions;
use super::transport::{
    AckRequest, AttachRequest, ChatStateRequest, CheckContactsRequest, DetachQuery, NetEvent,
    PairCodeRequest, PresenceRequest, ReadRequest, RejectCallRequest, SimError, SimNet,
    UnackedPage, GENERATION_HEADER,
};
use crate::OutgoingMessage;

/// A blank line this often keeps idle attach streams honest: writing to a vanished client
/// fails (so the server detaches it) and the client can tell a silent server from a live one.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// An inbound may carry a file as base64 (up to 100 MiB decoded); axum's default 2 MB would
/// refuse all but small ones. Larger test files go by `size`.
const INBOUND_BODY_LIMIT: usize = 140 * 1024 * 1024;

#[derive(Clone)]
struct AppState {
    net: Arc<SimNetwork>,
    /// Flips to `true` when the server shuts down, ending every attach stream (graceful
    /// shutdown would otherwise wait forever on them).
    shutdown: watch::Receiver<bool>,
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.body())).into_response()
    }
}

/// The HTTP API of the simulated network. Attach streams never end on their own here; use
/// [`serve`] to get a shutdown that closes them.
pub fn router(net: Arc<SimNetwork>) -> Router {
    // The sender is dropped at once: a closed channel never signals shutdown.
    let (_tx, rx) = watch::channel(false);
    build_router(net, rx)
}

/// Serves [`router`] on `listener` until `shutdown` completes, then closes the attach
/// streams and waits for in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    net: Arc<SimNetwork>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (tx, rx) = watch::channel(false);
    let app = build_router(net, rx);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tx.send_replace(true);
        })
        .await
}

fn build_router(net: Arc<SimNetwork>, shutdown: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/net/instances/{id}/attach", post(attach))
        .route("/net/instances/{id}/send", post(send))
        .route("/net/instances/{id}/chat-state", post(chat_state))
        .route("/net/instances/{id}/read", post(mark_read))
        .route("/net/instances/{id}/reject-call", post(reject_call))
        .route("/net/instances/{id}/presence", post(set_presence))
        .route("/net/instances/{id}/pair-code", post(pair_code))
        .route("/net/instances/{id}/logout", post(logout))
        .route("/net/instances/{id}/detach", post(detach))
        .route("/net/instances/{id}/ack", post(ack_inbound))
        .route("/net/instances/{id}/groups", get(groups))
        .route("/net/instances/{id}/groups/{jid}", get(group))
        .route("/net/instances/{id}/check-contacts", post(check_contacts))
        .route("/net/media/{token}", get(download))
        .route("/v1/sim/instances/{id}/scan", post(scan))
        .route("/v1/sim/instances/{id}/drop", post(drop_connection))
        .route(
            "/v1/sim/instances/{id}/inbound",
            post(inbound).layer(DefaultBodyLimit::max(INBOUND_BODY_LIMIT)).get(unacked_inbound),
        )
        .route("/v1/sim/instances/{id}/outbox", get(outbox))
        .route("/v1/sim/instances/{id}/call", post(call))
        .route("/v1/sim/instances/{id}/restrict", post(restrict))
        .route("/v1/sim/groups", post(create_group))
        .route("/v1/sim/contacts", post(set_contact))
        .route("/v1/sim/reactions", get(get_reactions).put(put_reactions))
        .route("/v1/sim/instances/{id}/age", post(set_age))
        .fallback(not_found)
        .with_state(AppState { net, shutdown })
}

/// Unwraps a JSON body, answering 422 `invalid_request` in the API's error shape.
fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, SimError> {
    json.map(|Json(v)| v).map_err(|e| SimError::InvalidRequest(e.body_text()))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn not_found() -> SimError {
    SimError::NotFound("no such route on the simulated network".into())
}

async fn attach(
    State(app): State<AppState>,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Response, SimError> {
    // An empty body means "no session" (the QR flow).
    let session = if raw.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<AttachRequest>(&raw)
            .map_err(|e| SimError::InvalidRequest(format!("attach body: {e}")))?
            .session
    };
    let (generation, events) = app.net.attach_generation(&id, session);
    let body = Body::from_stream(ndjson(events, app.shutdown.clone()));
    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(GENERATION_HEADER, HeaderValue::from(generation));
    Ok(resp)
}

/// One JSON event per line, blank keep-alive lines in between. Dropping this stream (the
/// client went away, or shutdown) drops `events`, which detaches the connection.
fn ndjson(
    events: BoxStream<'static, NetEvent>,
    shutdown: watch::Receiver<bool>,
) -> impl Stream<Item = Result<String, Infallible>> + Send + 'static {
    let shutdown: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(shutting_down(shutdown));
    let start = tokio::time::Instant::now() + KEEPALIVE;
    let ticker = tokio::time::interval_at(start, KEEPALIVE);
    stream::unfold(
        (events, ticker, shutdown),
        |(mut events, mut ticker, mut shutdown)| async move {
            let line = tokio::select! {
                biased;
                _ = &mut shutdown => return None,
                event = events.next() => {
                    let event = event?;
                    match serde_json::to_string(&event) {
                        Ok(mut line) => {
                            line.push('\n');
                            line
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot encode a simnet event");
                            return None;
                        }
                    }
                }
                _ = ticker.tick() => "\n".to_string(),
            };
            Some((Ok(line), (events, ticker, shutdown)))
        },
    )
}

async fn shutting_down(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn send(
    State(app): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<OutgoingMessage>, JsonRejection>,
) -> Result<Response, SimError> {
    let ack = app.net.send(&id, body(json)?).await?;
    Ok(Json(ack).into_response())
}

async fn chat_state(
    State(app): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<ChatStateRequest>, JsonRejection>,
) -> Result<StatusCode, SimError> {
    let req = body(json)?;
    app.net.chat_state(&id, &req.to, req.state).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn mark_read(
    State(app): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<ReadRequest>, JsonRejection>,
) -> Result<StatusCode, SimError> {
    let req = body(json)?;
    app.net.mark_read(&id, &req.chat, req.sender.as_ref(), &req.ids).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reject_call(
    State(app): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<RejectCallRequest>, JsonRejection>,
) -> Result<StatusCode, SimError> {
    app.net.reject_call(&id, &body(json)?.call).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_presence(
    State(app): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<PresenceRequest>, JsonRejection>,
) -> Result<StatusCode, SimError> {
    app.net.set_presence(&id, body(json)?.presence).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pair_code(
    State(app): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<PairCodeRequest>, JsonRejection>,
) -> Result<Response, SimError> {
    let req = body(json)?;
    let phone =
        Phone::parse(&req.phone).map_err(|e| SimError::InvalidRequest(format!("phone: {e}")))?;
    let code = app.net.pair_code(&id, &phone).await?;
    Ok(Json(code).into_response())
}

async fn logout(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, SimError> {
    app.net.logout(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn detach(
    State(app): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<DetachQuery>, QueryRejection>,
) -> Result<StatusCode, SimError> {
    let Query(q) = query.map_err(|e| SimError::InvalidRequest(e.body_text()))?;
    match q.generation {
        Some(generation) => app.net.detach_generation(&id, generation),
        None => app.net.detach(&id).await?,
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn scan(
    State(app): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<ScanRequest>, JsonRejection>,
) -> Result<Response, SimError> {
    let result = app.net.scan(&id, body(json)?).await?;
    Ok(Json(result).into_response())
}

async fn drop_connection(
    State(app): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<DropRequest>, JsonRejection>,
) -> Result<StatusCode, SimError> {
    app.net.drop_connection(&id, body(json)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn inbound(
    State(app): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<InboundSpec>, JsonRejection>,
) -> Result<Response, SimError> {
    let result = app.net.inbound(&id, body(json)?).await?;
    Ok(Json(result).into_response())
}

async fn call(
    State(app): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<CallSpec>, JsonRejection>,
) -> Result<Response, SimError> {
    Ok(Json(app.net.call(&id, body(json)?).await?).into_response())
}

async fn ack_inbound(
    State(app): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<AckRequest>, JsonRejection>,
) -> Result<StatusCode, SimError> {
    app.net.ack_inbound(&id, &body(json)?.ids).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unacked_inbound(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    let unacked = app.net.unacked_inbound(&id).await?;
    Ok(Json(UnackedPage { unacked }).into_response())
}

async fn restrict(
    State(app): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<RestrictRequest>, JsonRejection>,
) -> Result<StatusCode, SimError> {
    app.net.restrict(&id, body(json)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn outbox(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response, SimError> {
    let items = app.net.outbox(&id).await?;
    Ok(Json(OutboxPage { items }).into_response())
}

async fn groups(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response, SimError> {
    Ok(Json(app.net.groups(&id).await?).into_response())
}

async fn group(
    State(app): State<AppState>,
    Path((id, jid)): Path<(String, String)>,
) -> Result<Response, SimError> {
    let jid = Jid::parse(&jid).map_err(|e| SimError::InvalidRequest(format!("group: {e}")))?;
    Ok(Json(app.net.group(&id, &jid).await?).into_response())
}

async fn check_contacts(
    State(app): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<CheckContactsRequest>, JsonRejection>,
) -> Result<Response, SimError> {
    let req = body(json)?;
    Ok(Json(app.net.check_contacts(&id, &req.phones).await?).into_response())
}

/// A media file's bytes, streamed piece by piece with their length up front (so a client
/// can tell a cut-off download from a whole one).
async fn download(
    State(app): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, SimError> {
    let bytes = app.net.media_bytes(&token).ok_or_else(media::not_found)?;
    let len = bytes.len();
    let chunks = bytes.chunks().map(|r| r.map_err(std::io::Error::other));
    let mut resp = Response::new(Body::from_stream(chunks));
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok(resp)
}

async fn create_group(
    State(app): State<AppState>,
    json: Result<Json<CreateGroupRequest>, JsonRejection>,
) -> Result<Response, SimError> {
    Ok(Json(app.net.create_group(body(json)?).await?).into_response())
}

async fn get_reactions(State(app): State<AppState>) -> Result<Response, SimError> {
    Ok(Json(app.net.get_reactions().await?).into_response())
}

async fn put_reactions(
    State(app): State<AppState>,
    json: Result<Json<Reactions>, JsonRejection>,
) -> Result<StatusCode, SimError> {
    app.net.put_reactions(body(json)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_age(
    State(app): State<AppState>,
    Path(id): Path<String>,
    json: Result<Json<AgeRequest>, JsonRejection>,
) -> Result<StatusCode, SimError> {
    app.net.set_age(&id, body(json)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_contact(
    State(app): State<AppState>,
    json: Result<Json<ContactRequest>, JsonRejection>,
) -> Result<StatusCode, SimError> {
    app.net.set_contact(body(json)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
