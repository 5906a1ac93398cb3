//! How a client reaches the simulated network: the object-safe [`SimNet`] trait (client ops
//! and control ops), the events and errors it speaks (the control bodies are in
//! [`crate::sim::control`], the outbox in [`crate::sim::outbox`]), and [`RemoteSimNet`], its
//! implementation over loopback HTTP against [`crate::sim::service`].
//!
//! The same trait is implemented by the in-process [`SimNetwork`](crate::sim::SimNetwork), so
//! the driver and the gateway's `/v1/sim/...` routes do not care where the network runs.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use bzapper_core::{Jid, Phone};
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use super::control::{
    AgeRequest, CallResult, CallSpec, ContactRequest, CreateGroupRequest, CreateGroupResult,
    DropRequest, InboundResult, InboundSpec, RestrictRequest, ScanRequest, ScanResult,
};
use super::network::SessionBlob;
use super::outbox::{OutboxEntry, OutboxPage};
use super::reactions::Reactions;
use crate::{
    ChatState, ContactStatus, DropKind, GroupInfo, GroupSummary, InboundMessage, IncomingCall,
    OutgoingMessage, PairCode, Presence, SendAck,
};

/// The bytes of a media file, in pieces, as a download reads them.
pub type MediaStream = BoxStream<'static, Result<Bytes, SimError>>;

/// What the network tells one attached client. One JSON object per line on the wire
/// (`{"type":"qr",...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NetEvent {
    /// A QR code to show, replacing the previous one.
    Qr { code: String, expires_at: DateTime<Utc> },
    /// The QR codes ran out; the network closes the connection.
    QrTimeout,
    /// A phone linked this device; the client must keep this session to log in later.
    Paired(SessionBlob),
    /// Logged in.
    Connected,
    /// Another attach for the same instance id took over; this connection is closed. The
    /// client must not reconnect (that would fight the new holder).
    Replaced,
    /// The network dropped the connection. After `Transient` the client may reconnect.
    Disconnected { kind: DropKind, detail: String },
    /// A message from a contact (boxed: it is much larger than the other events).
    Message(Box<InboundMessage>),
    /// A message this number sent reached the recipient (or was read).
    Receipt { id: String, status: crate::ReceiptStatus },
    /// A contact is calling the number.
    Call(IncomingCall),
}

/// Why the network refused an op. [`SimError::code`] and [`SimError::status`] give the API
/// error code and HTTP status; [`SimError::body`] the `{"error":{...}}` body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// No such route (the network itself treats unknown instance ids as not attached).
    #[error("{0}")]
    NotFound(String),
    #[error("the instance is not showing a QR code on the simulated network")]
    NotPairing,
    #[error("the instance is not connected to the simulated network")]
    NotConnected,
    #[error("{0}")]
    InvalidRequest(String),
    /// The remote simulated network could not be reached or answered nonsense.
    #[error("the simulated network is unavailable: {0}")]
    Unavailable(String),
    /// WhatsApp refused the message, with its error code when it gives one (for example
    /// 463, reach-out restricted).
    #[error("{message}")]
    Refused { code: Option<u16>, message: String },
}

impl SimError {
    pub fn code(&self) -> &'static str {
        match self {
            SimError::NotFound(_) => "not_found",
            SimError::NotPairing => "not_pairing",
            SimError::NotConnected => "not_connected",
            SimError::InvalidRequest(_) => "invalid_request",
            SimError::Unavailable(_) => "unavailable",
            SimError::Refused { .. } => "refused",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            SimError::NotFound(_) => 404,
            SimError::NotPairing | SimError::NotConnected => 409,
            SimError::InvalidRequest(_) => 422,
            SimError::Unavailable(_) => 503,
            SimError::Refused { .. } => 409,
        }
    }

    /// `{"error":{"code","message"}}`
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message: self.to_string(),
                wa_code: match self {
                    SimError::Refused { code, .. } => *code,
                    _ => None,
                },
            },
        }
    }

    /// Rebuilds an error from its API form (what [`RemoteSimNet`] receives), WhatsApp's
    /// error code included.
    pub fn from_detail(detail: ErrorDetail) -> Self {
        match (detail.code.as_str(), detail.wa_code) {
            ("refused", code @ Some(_)) => SimError::Refused { code, message: detail.message },
            (code, _) => SimError::from_code(code, detail.message),
        }
    }

    /// Rebuilds an error from its code and message (a refusal then has no WhatsApp code).
    pub fn from_code(code: &str, message: String) -> Self {
        match code {
            "not_found" => SimError::NotFound(message),
            "not_pairing" => SimError::NotPairing,
            "not_connected" => SimError::NotConnected,
            "invalid_request" => SimError::InvalidRequest(message),
            "refused" => SimError::Refused { code: None, message },
            _ => SimError::Unavailable(message),
        }
    }
}

/// The error envelope of docs/api.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    /// WhatsApp's numeric error of a `refused` (463: reach-out restricted); absent otherwise,
    /// so every other body is as it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_code: Option<u16>,
}

/// The simulated network as a client (the driver) and an operator (tests, the gateway's
/// `/v1/sim` routes) see it. Object-safe: use it as `Arc<dyn SimNet>`.
#[async_trait]
pub trait SimNet: Send + Sync {
    /// Opens the instance's connection, with its stored session or without one (QR flow).
    /// The stream ends when the network closes the connection; dropping it detaches. A new
    /// attach for the same instance closes the previous one (which receives `Replaced`).
    async fn attach(
        &self,
        instance_id: &str,
        session: Option<SessionBlob>,
    ) -> Result<BoxStream<'static, NetEvent>, SimError>;
    /// Sends a message of any kind; recorded in the outbox. `NotConnected` unless logged in.
    /// A media file's bytes stay with the client, which checked them: the network gets the
    /// metadata. A resend of an id already sent is acked again and not delivered twice.
    async fn send(&self, instance_id: &str, msg: OutgoingMessage) -> Result<SendAck, SimError>;
    /// Records a presence update in the outbox. `NotConnected` unless logged in.
    async fn chat_state(
        &self,
        instance_id: &str,
        to: &Jid,
        state: ChatState,
    ) -> Result<(), SimError>;
    /// Records a read receipt for messages received in `chat` (see
    /// [`OutboxEntry::Read`]). `NotConnected` unless logged in.
    async fn mark_read(
        &self,
        instance_id: &str,
        chat: &Jid,
        sender: Option<&Jid>,
        ids: &[String],
    ) -> Result<(), SimError>;
    /// Rejects a call ringing on the instance; recorded in the outbox (see
    /// [`OutboxEntry::CallRejected`]). `NotConnected` unless logged in, `NotFound` for a call
    /// that does not ring there (never offered, or already rejected).
    async fn reject_call(&self, instance_id: &str, call: &IncomingCall) -> Result<(), SimError>;
    /// Records the number's own presence in the outbox (see [`OutboxEntry::Availability`]).
    /// `NotConnected` unless logged in.
    async fn set_presence(&self, instance_id: &str, presence: Presence) -> Result<(), SimError>;
    /// An 8-character code to type on the phone. `NotPairing` unless the QR flow runs.
    async fn pair_code(&self, instance_id: &str, phone: &Phone) -> Result<PairCode, SimError>;
    /// Unlinks the instance's device (its session stops working) and closes the connection.
    async fn logout(&self, instance_id: &str) -> Result<(), SimError>;
    /// Closes the instance's connection, if any, keeping its device linked.
    async fn detach(&self, instance_id: &str) -> Result<(), SimError>;
    /// The bytes of a media file a contact sent, by the token of its download handle.
    /// `NotFound` for a token the network does not hold (never given, or forgotten).
    async fn download(&self, token: &str) -> Result<MediaStream, SimError>;
    /// The groups the instance's phone is in. `NotConnected` unless logged in.
    async fn groups(&self, instance_id: &str) -> Result<Vec<GroupSummary>, SimError>;
    /// One group with its participants; `NotFound` unless the instance's phone is in it.
    async fn group(&self, instance_id: &str, jid: &Jid) -> Result<GroupInfo, SimError>;
    /// Which of `phones` have WhatsApp, in order; recorded in the outbox as one check.
    async fn check_contacts(
        &self,
        instance_id: &str,
        phones: &[Phone],
    ) -> Result<Vec<ContactStatus>, SimError>;

    /// Control: a phone scans the current QR code.
    async fn scan(&self, instance_id: &str, req: ScanRequest) -> Result<ScanResult, SimError>;
    /// Control: the network drops a logged-in connection.
    async fn drop_connection(&self, instance_id: &str, req: DropRequest) -> Result<(), SimError>;
    /// The client acknowledges inbound messages it has recorded (by WhatsApp id): the network
    /// stops keeping them. Until then every message handed to the instance is delivered again
    /// at its next login (after `Connected`).
    async fn ack_inbound(&self, instance_id: &str, ids: &[String]) -> Result<(), SimError>;

    /// Control: a contact writes to a logged-in instance. Returns the WhatsApp id the message
    /// is delivered (and, unacknowledged, delivered again) with.
    async fn inbound(
        &self,
        instance_id: &str,
        spec: InboundSpec,
    ) -> Result<InboundResult, SimError>;
    /// Control: a contact calls a logged-in instance; the call rings until the instance
    /// rejects it. Returns the call's id.
    async fn call(&self, instance_id: &str, spec: CallSpec) -> Result<CallResult, SimError>;
    /// Control: the ids of the inbound messages handed to the instance that it has not
    /// acknowledged yet, oldest first.
    async fn unacked_inbound(&self, instance_id: &str) -> Result<Vec<String>, SimError>;
    /// Control: what the network received from the instance, oldest first.
    async fn outbox(&self, instance_id: &str) -> Result<Vec<OutboxEntry>, SimError>;
    /// Turns WhatsApp's reach-out restriction on or off for the number: while on, a message
    /// to a contact that never wrote to it is refused with error 463.
    async fn restrict(&self, instance_id: &str, req: RestrictRequest) -> Result<(), SimError>;
    /// Control: a group with these phones in it exists.
    async fn create_group(&self, req: CreateGroupRequest) -> Result<CreateGroupResult, SimError>;
    /// Control: whether a phone has WhatsApp (every phone has until marked otherwise).
    async fn set_contact(&self, req: ContactRequest) -> Result<(), SimError>;
    /// Control: the reaction model's settings (off unless set).
    async fn get_reactions(&self) -> Result<Reactions, SimError>;
    /// Control: turns the reaction model on or off and sets its rules.
    async fn put_reactions(&self, reactions: Reactions) -> Result<(), SimError>;
    /// Control: how many days old the account of the instance's linked phone is.
    async fn set_age(&self, instance_id: &str, req: AgeRequest) -> Result<(), SimError>;
}

/// A stream that runs a callback when dropped, told whether the stream had ended by itself.
/// Dropping an attach stream is how a client detaches.
pub(crate) struct OnDropStream<S> {
    inner: S,
    ended: bool,
    on_drop: Option<Box<dyn FnOnce(bool) + Send>>,
}

impl<S> OnDropStream<S> {
    pub(crate) fn new(inner: S, on_drop: impl FnOnce(bool) + Send + 'static) -> Self {
        Self { inner, ended: false, on_drop: Some(Box::new(on_drop)) }
    }
}

impl<S: Stream + Unpin> Stream for OnDropStream<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        let next = Pin::new(&mut this.inner).poll_next(cx);
        if let Poll::Ready(None) = next {
            this.ended = true;
        }
        next
    }
}

impl<S> Drop for OnDropStream<S> {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f(self.ended);
        }
    }
}

/// The header carrying the generation of an attach, so that the client's detach on drop only
/// closes that connection and never a newer one.
pub(crate) const GENERATION_HEADER: &str = "x-sim-generation";

/// Body of `POST /net/instances/{id}/attach`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AttachRequest {
    #[serde(default)]
    pub session: Option<SessionBlob>,
}

/// Body of `POST /net/instances/{id}/chat-state`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChatStateRequest {
    pub to: Jid,
    pub state: ChatState,
}

/// Body of `POST /net/instances/{id}/read`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReadRequest {
    pub chat: Jid,
    #[serde(default)]
    pub sender: Option<Jid>,
    pub ids: Vec<String>,
}

/// Body of `POST /net/instances/{id}/reject-call`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RejectCallRequest {
    pub call: IncomingCall,
}

/// Body of `POST /net/instances/{id}/presence`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PresenceRequest {
    pub presence: Presence,
}

/// Body of `POST /net/instances/{id}/pair-code`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PairCodeRequest {
    pub phone: String,
}

/// Body of `POST /net/instances/{id}/check-contacts`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CheckContactsRequest {
    pub phones: Vec<Phone>,
}

/// Body of `POST /net/instances/{id}/ack`: inbound message ids the client recorded.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AckRequest {
    pub ids: Vec<String>,
}

/// Answer of `GET /v1/sim/instances/{id}/inbound`: what the instance has not acknowledged.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UnackedPage {
    pub unacked: Vec<String>,
}

/// Query of `POST /net/instances/{id}/detach`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DetachQuery {
    pub generation: Option<u64>,
}

/// How long a plain request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The service writes a blank line every 15 s; three missed ones mean the peer is gone
/// (a half-open TCP connection would otherwise hang the client forever).
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// A line longer than this is not an event of ours.
const MAX_LINE: usize = 1 << 20;

/// The simulated network in another process (`bzapper simnet`), over HTTP.
#[derive(Debug, Clone)]
pub struct RemoteSimNet {
    client: reqwest::Client,
    base: Url,
}

impl RemoteSimNet {
    /// `base_url` is where `bzapper simnet --listen` listens, e.g. `http://127.0.0.1:7900`.
    pub fn new(base_url: &str) -> Result<Self, SimError> {
        let base = Url::parse(base_url).map_err(|e| {
            SimError::InvalidRequest(format!("`{base_url}` is not a valid URL: {e}"))
        })?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(SimError::InvalidRequest(format!(
                "`{base_url}` is not an http(s) URL of the simulated network"
            )));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| SimError::Unavailable(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client, base })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `new` refused cannot-be-a-base URLs, so this always succeeds; ignoring the error
        // keeps the path unchanged rather than panicking.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn instance_url(&self, scope: &str, instance_id: &str, op: &str) -> Url {
        match scope {
            "net" => self.url(&["net", "instances", instance_id, op]),
            _ => self.url(&["v1", "sim", "instances", instance_id, op]),
        }
    }

    async fn call<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, SimError> {
        let resp = self.request(req).await?;
        resp.json::<T>().await.map_err(|e| SimError::Unavailable(format!("unreadable answer: {e}")))
    }

    async fn call_empty(&self, req: reqwest::RequestBuilder) -> Result<(), SimError> {
        self.request(req).await.map(|_| ())
    }

    async fn request(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, SimError> {
        let resp = req
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| SimError::Unavailable(e.to_string()))?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(error_from(resp).await)
        }
    }
}

async fn error_from(resp: reqwest::Response) -> SimError {
    let status = resp.status();
    match resp.json::<ErrorBody>().await {
        Ok(body) => SimError::from_detail(body.error),
        Err(_) => SimError::Unavailable(format!("the simulated network answered {status}")),
    }
}

/// Turns a byte stream of NDJSON into events. Blank lines are keep-alives; the stream ends
/// on EOF, a transport error or a silent peer.
fn ndjson_events<S, B, E>(bytes: S) -> BoxStream<'static, NetEvent>
where
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let state = (Box::pin(bytes), Vec::<u8>::new());
    stream::unfold(state, |(mut bytes, mut buf)| async move {
        loop {
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<NetEvent>(line) {
                    Ok(event) => return Some((event, (bytes, buf))),
                    // An event from a newer simnet: skip it rather than drop the connection.
                    Err(e) => tracing::warn!(error = %e, "skipping an unreadable simnet event"),
                }
            }
            if buf.len() > MAX_LINE {
                tracing::warn!("the simulated network sent an overlong line; closing");
                return None;
            }
            match tokio::time::timeout(STREAM_IDLE_TIMEOUT, bytes.next()).await {
                Ok(Some(Ok(chunk))) => buf.extend_from_slice(chunk.as_ref()),
                Ok(Some(Err(e))) => {
                    tracing::debug!(error = %e, "simnet event stream failed");
                    return None;
                }
                Ok(None) => return None,
                Err(_) => {
                    tracing::warn!("the simulated network went silent; closing the stream");
                    return None;
                }
            }
        }
    })
    .boxed()
}

#[async_trait]
impl SimNet for RemoteSimNet {
    async fn attach(
        &self,
        instance_id: &str,
        session: Option<SessionBlob>,
    ) -> Result<BoxStream<'static, NetEvent>, SimError> {
        let req = self
            .client
            .post(self.instance_url("net", instance_id, "attach"))
            .json(&AttachRequest { session });
        // No overall timeout (the body streams forever), but the headers must come promptly.
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, req.send())
            .await
            .map_err(|_| SimError::Unavailable("the attach request timed out".into()))?
            .map_err(|e| SimError::Unavailable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(error_from(resp).await);
        }
        let generation = resp
            .headers()
            .get(GENERATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let events = ndjson_events(resp.bytes_stream());

        let client = self.client.clone();
        let mut detach_url = self.instance_url("net", instance_id, "detach");
        let on_drop = move |ended: bool| {
            // The server detaches by itself when it sees the socket close, but a pooled or
            // proxied connection may stay open; saying so explicitly is cheap. Without a
            // generation this connection cannot be targeted alone, so leave it to the server.
            let Some(generation) = generation else { return };
            if ended {
                return;
            }
            detach_url.query_pairs_mut().append_pair("generation", &generation.to_string());
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let sent = client.post(detach_url).timeout(Duration::from_secs(5)).send();
                    if let Err(e) = sent.await {
                        tracing::debug!(error = %e, "simnet detach failed");
                    }
                });
            }
        };
        Ok(OnDropStream::new(events, on_drop).boxed())
    }

    async fn send(&self, instance_id: &str, msg: OutgoingMessage) -> Result<SendAck, SimError> {
        // The message as it is: a media file travels as its metadata (path, size, hash), which
        // the network records without reading the file.
        let url = self.instance_url("net", instance_id, "send");
        self.call(self.client.post(url).json(&msg)).await
    }

    async fn chat_state(
        &self,
        instance_id: &str,
        to: &Jid,
        state: ChatState,
    ) -> Result<(), SimError> {
        let url = self.instance_url("net", instance_id, "chat-state");
        let body = ChatStateRequest { to: to.clone(), state };
        self.call_empty(self.client.post(url).json(&body)).await
    }

    async fn mark_read(
        &self,
        instance_id: &str,
        chat: &Jid,
        sender: Option<&Jid>,
        ids: &[String],
    ) -> Result<(), SimError> {
        let url = self.instance_url("net", instance_id, "read");
        let body = ReadRequest { chat: chat.clone(), sender: sender.cloned(), ids: ids.to_vec() };
        self.call_empty(self.client.post(url).json(&body)).await
    }

    async fn reject_call(&self, instance_id: &str, call: &IncomingCall) -> Result<(), SimError> {
        let url = self.instance_url("net", instance_id, "reject-call");
        let body = RejectCallRequest { call: call.clone() };
        self.call_empty(self.client.post(url).json(&body)).await
    }

    async fn set_presence(&self, instance_id: &str, presence: Presence) -> Result<(), SimError> {
        let url = self.instance_url("net", instance_id, "presence");
        self.call_empty(self.client.post(url).json(&PresenceRequest { presence })).await
    }

    async fn pair_code(&self, instance_id: &str, phone: &Phone) -> Result<PairCode, SimError> {
        let url = self.instance_url("net", instance_id, "pair-code");
        let body = PairCodeRequest { phone: phone.e164() };
        self.call(self.client.post(url).json(&body)).await
    }

    async fn logout(&self, instance_id: &str) -> Result<(), SimError> {
        let url = self.instance_url("net", instance_id, "logout");
        self.call_empty(self.client.post(url)).await
    }

    async fn detach(&self, instance_id: &str) -> Result<(), SimError> {
        let url = self.instance_url("net", instance_id, "detach");
        self.call_empty(self.client.post(url)).await
    }

    async fn download(&self, token: &str) -> Result<MediaStream, SimError> {
        let url = self.url(&["net", "media", token]);
        // No overall timeout (a 100 MiB file may take a while), but the headers must come
        // promptly and the body must keep moving.
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.client.get(url).send())
            .await
            .map_err(|_| SimError::Unavailable("the download request timed out".into()))?
            .map_err(|e| SimError::Unavailable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(error_from(resp).await);
        }
        Ok(idle_limited(resp.bytes_stream()))
    }

    async fn groups(&self, instance_id: &str) -> Result<Vec<GroupSummary>, SimError> {
        let url = self.instance_url("net", instance_id, "groups");
        self.call(self.client.get(url)).await
    }

    async fn group(&self, instance_id: &str, jid: &Jid) -> Result<GroupInfo, SimError> {
        let url = self.url(&["net", "instances", instance_id, "groups", &jid.to_string()]);
        self.call(self.client.get(url)).await
    }

    async fn check_contacts(
        &self,
        instance_id: &str,
        phones: &[Phone],
    ) -> Result<Vec<ContactStatus>, SimError> {
        let url = self.instance_url("net", instance_id, "check-contacts");
        let body = CheckContactsRequest { phones: phones.to_vec() };
        self.call(self.client.post(url).json(&body)).await
    }

    async fn scan(&self, instance_id: &str, req: ScanRequest) -> Result<ScanResult, SimError> {
        let url = self.instance_url("sim", instance_id, "scan");
        self.call(self.client.post(url).json(&req)).await
    }

    async fn drop_connection(&self, instance_id: &str, req: DropRequest) -> Result<(), SimError> {
        let url = self.instance_url("sim", instance_id, "drop");
        self.call_empty(self.client.post(url).json(&req)).await
    }

    async fn inbound(
        &self,
        instance_id: &str,
        spec: InboundSpec,
    ) -> Result<InboundResult, SimError> {
        let url = self.instance_url("sim", instance_id, "inbound");
        self.call(self.client.post(url).json(&spec)).await
    }

    async fn call(&self, instance_id: &str, spec: CallSpec) -> Result<CallResult, SimError> {
        let url = self.instance_url("sim", instance_id, "call");
        self.call(self.client.post(url).json(&spec)).await
    }

    async fn ack_inbound(&self, instance_id: &str, ids: &[String]) -> Result<(), SimError> {
        let url = self.instance_url("net", instance_id, "ack");
        let body = AckRequest { ids: ids.to_vec() };
        self.call_empty(self.client.post(url).json(&body)).await
    }

    async fn unacked_inbound(&self, instance_id: &str) -> Result<Vec<String>, SimError> {
        let url = self.instance_url("sim", instance_id, "inbound");
        let page: UnackedPage = self.call(self.client.get(url)).await?;
        Ok(page.unacked)
    }

    async fn restrict(&self, instance_id: &str, req: RestrictRequest) -> Result<(), SimError> {
        let url = self.instance_url("sim", instance_id, "restrict");
        self.call_empty(self.client.post(url).json(&req)).await
    }

    async fn outbox(&self, instance_id: &str) -> Result<Vec<OutboxEntry>, SimError> {
        let url = self.instance_url("sim", instance_id, "outbox");
        let page: OutboxPage = self.call(self.client.get(url)).await?;
        Ok(page.items)
    }

    async fn create_group(&self, req: CreateGroupRequest) -> Result<CreateGroupResult, SimError> {
        let url = self.url(&["v1", "sim", "groups"]);
        self.call(self.client.post(url).json(&req)).await
    }

    async fn set_contact(&self, req: ContactRequest) -> Result<(), SimError> {
        let url = self.url(&["v1", "sim", "contacts"]);
        self.call_empty(self.client.post(url).json(&req)).await
    }

    async fn get_reactions(&self) -> Result<Reactions, SimError> {
        let url = self.url(&["v1", "sim", "reactions"]);
        self.call(self.client.get(url)).await
    }

    async fn put_reactions(&self, reactions: Reactions) -> Result<(), SimError> {
        let url = self.url(&["v1", "sim", "reactions"]);
        self.call_empty(self.client.put(url).json(&reactions)).await
    }

    async fn set_age(&self, instance_id: &str, req: AgeRequest) -> Result<(), SimError> {
        let url = self.instance_url("sim", instance_id, "age");
        self.call_empty(self.client.post(url).json(&req)).await
    }
}

/// A download body that ends with an error when a piece fails or the peer goes silent for
/// [`STREAM_IDLE_TIMEOUT`] (a half-open connection would otherwise hang the download).
fn idle_limited<S, E>(bytes: S) -> MediaStream
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display,
{
    stream::unfold(Some(Box::pin(bytes)), |state| async move {
        let mut bytes = state?;
        let failed = |m: String| Some((Err(SimError::Unavailable(m)), None));
        match tokio::time::timeout(STREAM_IDLE_TIMEOUT, bytes.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(bytes))),
            Ok(Some(Err(e))) => failed(format!("the download broke off: {e}")),
            Ok(None) => None,
            Err(_) => failed("the simulated network went silent during a download".into()),
        }
    })
    .boxed()
}
