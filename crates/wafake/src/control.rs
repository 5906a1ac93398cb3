//! The HTTP control service of the wire fake (`bzapper simnet --wire`): JSON in and out,
//! errors as `{"error":{"code","message"}}`. The routes are listed in `docs/wire-fake.md`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::net::{InboundError, OutboxItem, WireNet};
use crate::rich::WireInbound;
use crate::{Failure, WireServer};

/// The ban code `reason: "banned"` sends (102, "too many people blocked you"), with expiry 0.
pub const BANNED_CODE: u32 = 102;
/// The ban code `reason: "temporarily_banned"` sends (101, "sent to too many people").
pub const TEMP_BAN_CODE: u32 = 101;

/// An error answer: status, `code`, `message`.
#[derive(Debug)]
pub struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.1, "message": self.2}});
        (self.0, Json(body)).into_response()
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message.into())
}

fn not_connected(phone: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "not_connected", format!("no device of +{phone} is online"))
}

type ApiResult = Result<Json<Value>, ApiError>;

/// A phone in any notation (`+5511…`, `5511…`, with spaces, dashes, dots or parentheses) as
/// digits: 8 to 15 of them, not starting with 0.
pub fn parse_phone(raw: &str) -> Result<String, ApiError> {
    let trimmed = raw.trim();
    let rest = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let mut digits = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(invalid(format!("not a phone number: {raw:?}"))),
        }
    }
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return Err(invalid(format!("not a phone number: {raw:?} (8 to 15 digits)")));
    }
    Ok(digits)
}

/// The JSON body, or 422 `invalid_request` with serde's reason.
struct Body<T>(T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| invalid(format!("unreadable body: {e}")))?;
        serde_json::from_slice(&bytes).map(Body).map_err(|e| invalid(format!("bad JSON body: {e}")))
    }
}

/// The control routes over `net`.
pub fn router(net: Arc<WireNet>) -> Router {
    Router::new()
        .route("/wire", get(wire))
        .route("/wire/scan", post(scan))
        .route("/wire/devices/{phone}/fail", post(fail))
        .route(
            "/wire/devices/{phone}/inbound",
            post(inbound)
                .layer(axum::extract::DefaultBodyLimit::max(INBOUND_BODY_LIMIT))
                .get(unacked),
        )
        .route("/wire/devices/{phone}/outbox", get(outbox))
        .route("/wire/devices/{phone}/read", post(read))
        .route("/wire/devices/{phone}/call", post(call))
        .route("/wire/groups", post(create_group))
        .route("/wire/contacts", post(set_contact))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "not_found", "no such route".into()) })
        .with_state(net)
}

/// Serves the control routes on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    net: Arc<WireNet>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(net)).with_graceful_shutdown(shutdown).await
}

/// `bzapper simnet --wire`: binds the control service on `listen`, starts a [`WireServer`]
/// on `ws_listen` (default: the same IP, any free port; `GET /wire` tells it), prints
/// `bZapper wire simnet listening on http://ADDR` and serves until `shutdown` resolves.
pub async fn serve_simnet(
    listen: SocketAddr,
    ws_listen: Option<SocketAddr>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let local = listener.local_addr()?;
    let ws = ws_listen.unwrap_or(SocketAddr::new(local.ip(), 0));
    let server = WireServer::start(ws).await.with_context(|| format!("binding {ws}"))?;
    let net = WireNet::try_new(server.clone())
        .with_context(|| format!("binding the media host on {}", server.addr().ip()))?;
    println!("bZapper wire simnet listening on http://{local}");
    tracing::info!(ws_url = %server.ws_url(), media = %net.media_addr(), "wire fake accepting clients");
    let served = serve(listener, net, shutdown).await;
    server.shutdown();
    Ok(served?)
}

async fn wire(State(net): State<Arc<WireNet>>) -> ApiResult {
    Ok(Json(json!({"ws_url": net.server().ws_url(), "media_host": net.media_addr().to_string()})))
}

#[derive(Deserialize)]
struct ScanBody {
    qr: String,
    phone: String,
}

async fn scan(State(net): State<Arc<WireNet>>, Body(body): Body<ScanBody>) -> ApiResult {
    let phone = parse_phone(&body.phone)?;
    let reference = body.qr.split(',').next().unwrap_or_default();
    if !net.server().state().pairing.contains_key(reference) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "not_pairing",
            "no client is showing that QR code".into(),
        ));
    }
    let paired = net
        .server()
        .scan(&body.qr, &phone)
        .await
        .map_err(|e| ApiError(StatusCode::BAD_GATEWAY, "scan_failed", format!("{e:#}")))?;
    let lid_user = crate::net::phone_of(&paired.lid);
    Ok(Json(json!({
        "phone": format!("+{phone}"),
        "jid": format!("{phone}@s.whatsapp.net"),
        "lid": format!("{lid_user}@lid"),
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reason {
    Transient,
    LoggedOut,
    Banned,
    TemporarilyBanned,
    Replaced,
}

#[derive(Deserialize)]
struct FailBody {
    reason: Reason,
    expire_secs: Option<u64>,
}

async fn fail(
    State(net): State<Arc<WireNet>>,
    Path(phone): Path<String>,
    Body(body): Body<FailBody>,
) -> ApiResult {
    let phone = parse_phone(&phone)?;
    let device = net.online_device(&phone).ok_or_else(|| not_connected(&phone))?;
    let failure = match body.reason {
        Reason::Transient => {
            if !net.server().drop_socket(&device) {
                return Err(not_connected(&phone));
            }
            return Ok(Json(json!({"ok": true})));
        }
        Reason::LoggedOut => Failure::LoggedOut,
        Reason::Banned => Failure::Banned { code: BANNED_CODE },
        Reason::TemporarilyBanned => Failure::TempBan {
            code: TEMP_BAN_CODE,
            expire_secs: body.expire_secs.unwrap_or(3600).max(1),
        },
        Reason::Replaced => Failure::Replaced,
    };
    net.server().fail(&device, failure).map_err(|_| not_connected(&phone))?;
    Ok(Json(json!({"ok": true})))
}

/// The largest inbound body: a 100 MiB file in base64, and the rest.
const INBOUND_BODY_LIMIT: usize = 140 * 1024 * 1024;

/// `POST /wire/devices/{phone}/inbound`: a [`WireInbound`] (the simulated network's
/// `InboundSpec`, `chat` a group); `{"message_id", "sha256"?}`.
async fn inbound(
    State(net): State<Arc<WireNet>>,
    Path(phone): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    let phone = parse_phone(&phone)?;
    let spec: WireInbound =
        serde_json::from_value(body).map_err(|e| invalid(format!("bad JSON body: {e}")))?;
    // Blocking: a media file is encrypted (up to 100 MiB).
    let sent = tokio::task::spawn_blocking(move || net.inbound(&phone, &spec))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(Json(json!(sent.map_err(inbound_error)?)))
}

/// `GET /wire/devices/{phone}/inbound`: `{"unacked": [id, …]}`, the messages the phone's
/// device has not acknowledged yet (kept for it, delivered again at its next login).
async fn unacked(State(net): State<Arc<WireNet>>, Path(phone): Path<String>) -> ApiResult {
    let phone = parse_phone(&phone)?;
    Ok(Json(json!({"unacked": net.unacked(&phone)})))
}

fn inbound_error(e: InboundError) -> ApiError {
    match e {
        InboundError::NotConnected(phone) => not_connected(&phone),
        e @ InboundError::NoPrekeys(_) => {
            ApiError(StatusCode::CONFLICT, "not_ready", e.to_string())
        }
        e @ InboundError::UnknownMessage(_) => {
            ApiError(StatusCode::NOT_FOUND, "unknown_message", e.to_string())
        }
        InboundError::Invalid(e) => invalid(e),
        InboundError::Other(e) => {
            ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("{e:#}"))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    message_id: String,
    from: String,
}

/// `POST /wire/devices/{phone}/read`: the contact `from` reads a message the phone sent.
async fn read(
    State(net): State<Arc<WireNet>>,
    Path(phone): Path<String>,
    Body(body): Body<ReadBody>,
) -> ApiResult {
    let phone = parse_phone(&phone)?;
    net.read(&phone, &body.message_id, &body.from).map_err(inbound_error)?;
    Ok(Json(json!({"ok": true})))
}

/// The simulated network's `CallSpec`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    from: String,
    #[serde(default)]
    video: bool,
    #[serde(default)]
    as_lid: bool,
    #[serde(default)]
    group: Option<String>,
}

/// `POST /wire/devices/{phone}/call`: a contact calls the phone's online device;
/// `{"call_id"}`.
async fn call(
    State(net): State<Arc<WireNet>>,
    Path(phone): Path<String>,
    Body(body): Body<CallBody>,
) -> ApiResult {
    let phone = parse_phone(&phone)?;
    let call_id = net
        .call(&phone, &body.from, body.video, body.as_lid, body.group.as_deref())
        .map_err(inbound_error)?;
    Ok(Json(json!({"call_id": call_id})))
}

async fn outbox(State(net): State<Arc<WireNet>>, Path(phone): Path<String>) -> ApiResult {
    let phone = parse_phone(&phone)?;
    let items: Vec<OutboxItem> = net.outbox(&phone);
    Ok(Json(json!({"items": items})))
}

/// A group member: a phone in any notation, or a phone JID (`5511…@s.whatsapp.net`).
fn parse_member(raw: &str) -> Result<String, ApiError> {
    let trimmed = raw.trim();
    match trimmed.strip_suffix("@s.whatsapp.net") {
        Some(user) => parse_phone(user.split(':').next().unwrap_or_default()),
        None => parse_phone(trimmed),
    }
}

/// The simulated network's `CreateGroupRequest`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    #[serde(default)]
    subject: Option<String>,
    participants: Vec<String>,
    #[serde(default)]
    admins: Vec<String>,
}

async fn create_group(State(net): State<Arc<WireNet>>, Body(body): Body<GroupBody>) -> ApiResult {
    let participants =
        body.participants.iter().map(|p| parse_member(p)).collect::<Result<Vec<_>, _>>()?;
    let admins = body.admins.iter().map(|a| parse_member(a)).collect::<Result<Vec<_>, _>>()?;
    let jid =
        net.create_group(body.subject, participants, admins).map_err(|e| invalid(e.to_string()))?;
    Ok(Json(json!({"jid": jid})))
}

/// The simulated network's `ContactRequest`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactBody {
    phone: String,
    on_whatsapp: bool,
}

async fn set_contact(State(net): State<Arc<WireNet>>, Body(body): Body<ContactBody>) -> ApiResult {
    let phone = parse_phone(&body.phone)?;
    net.set_contact(&phone, body.on_whatsapp);
    Ok(Json(json!({"ok": true})))
}

#[cfg(test)]
mod tests {
    use super::{parse_member, parse_phone};

    #[test]
    fn members_by_phone_or_jid() {
        for raw in
            ["+55 11 99999-0001", "5511999990001@s.whatsapp.net", "5511999990001:2@s.whatsapp.net"]
        {
            assert_eq!(parse_member(raw).unwrap(), "5511999990001", "{raw}");
        }
        for raw in ["5511999990001@lid", "120363000000000001@g.us", "x@s.whatsapp.net"] {
            assert!(parse_member(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn phones_in_any_notation() {
        for raw in ["+5511999990000", "5511999990000", " +55 (11) 99999-0000 ", "55.11.99999.0000"]
        {
            assert_eq!(parse_phone(raw).unwrap(), "5511999990000", "{raw}");
        }
        for raw in
            ["", "+", "1234567", "0511999990000", "+55119999900001234", "55a11", "++5511999990000"]
        {
            assert!(parse_phone(raw).is_err(), "{raw}");
        }
    }
}
