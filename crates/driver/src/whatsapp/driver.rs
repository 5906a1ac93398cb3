//! The `whatsapp` backend of the [`Driver`] trait: one `whatsapp-rust` client per number, its
//! protocol state in our sealed store, its socket through the number's proxy, its events
//! mapped by [`super::events`].
//!
//! Each number is a separate client with its own backend, transport factory and HTTP client:
//! nothing is shared between numbers but the tokio runtime, so one number's failure or proxy
//! never touches another.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bzapper_core::{Jid, Phone};
use chrono::Utc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use whatsapp_rust::bot::Bot;
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::send::{SendError, SendOptions};
use whatsapp_rust::types::events::{Event, EventHandler};
use whatsapp_rust::wacore::net::{Transport, TransportEvent, TransportFactory};
use whatsapp_rust::wacore::types::message::AddressingMode;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{anyhow, async_channel, Client, ErrorChainExt, Jid as WaJid, TokioRuntime};

use super::backend::SessionBackend;
use super::durable::DurableInbound;
use super::events::{convert_jid, map_event, Mapped};
use super::outgoing::build_message;
use super::transport::{http_client, DialTransportFactory};
use super::{directory, media};
use crate::{
    ChatState, ConnectOptions, Connection, ContactStatus, Driver, DriverError, DriverEvent,
    DropKind, EventSink, GroupInfo, GroupSummary, InboundMedia, IncomingCall, OutgoingContent,
    OutgoingMessage, PairCode, Presence, SendAck, SessionError, SessionStore,
};

/// How long a send waits for the server's ack before it counts as not sent (the scheduler
/// then retries it with the same message id, which WhatsApp de-duplicates).
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopped client's run loop may take to end once `disconnect` (which flushes the
/// device, inbound commits and receipts) has returned; then its task is aborted. A loop still
/// dialing a dead network would otherwise hold the stop for the whole 20 s connect timeout.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a pairing code stays valid on WhatsApp's side.
const PAIR_CODE_VALIDITY: Duration = Duration::from_secs(180);
/// One-time pre-keys uploaded per batch. The library defaults to WhatsApp Web's 812; whatsmeow
/// uploads 50 (Baileys 30) and tops up when the server reports fewer than 5 left, as the
/// library does too. The 812-key upload was a ~40 KiB frame whose write buffer every freshly
/// linked number then kept (a heap profile at 300 numbers: 41 KiB of 230 KiB a number), and
/// its keys cost link time on both ends.
const PRE_KEYS_PER_UPLOAD: usize = 50;

/// Settings shared by every number of the gateway.
#[derive(Debug, Clone, Default)]
pub struct WhatsAppOptions {
    /// The websocket URL; `None` is WhatsApp's own. Tests point it at a local listener.
    pub ws_url: Option<String>,
    /// The WhatsApp Web version to announce; `None` fetches the current one at connect.
    pub version: Option<(u32, u32, u32)>,
    /// Test networks only (the wire-level fake): fetch media over plain HTTP, see
    /// `MediaHttpClient::over_plain_http`.
    pub media_over_plain_http: bool,
}

/// The real WhatsApp network.
pub struct WhatsAppDriver {
    options: WhatsAppOptions,
}

impl WhatsAppDriver {
    pub fn new(options: WhatsAppOptions) -> Self {
        Self { options }
    }
}

#[async_trait]
impl Driver for WhatsAppDriver {
    fn name(&self) -> &'static str {
        "whatsapp"
    }

    async fn start(&self, opts: ConnectOptions) -> Result<Arc<dyn Connection>, DriverError> {
        let ConnectOptions { proxy, session, events, inbound, .. } = opts;
        // A session sealed with another key (or tampered) must not be replaced by a fresh
        // device: the library would otherwise create one over it.
        if let Err(SessionError::Unreadable(detail)) =
            SessionBackend::check_readable(session.as_ref()).await
        {
            events.emit(DriverEvent::SessionUnreadable { detail });
            return Ok(Arc::new(WhatsAppConnection::ended(session)));
        }

        let acks = Arc::new(AckWaiters::default());
        let logged_out = Arc::new(AtomicBool::new(false));
        let mut dial = DialTransportFactory::new(proxy.clone());
        if let Some(url) = &self.options.ws_url {
            dial = dial.with_url(url.clone());
        }
        let transport =
            ObservedDial { inner: dial, events: events.clone(), failures: AtomicU32::new(0) };
        let forwarder = Forwarder {
            events: events.clone(),
            acks: acks.clone(),
            logged_out: logged_out.clone(),
        };

        let mut media_http = http_client(proxy.as_ref());
        if self.options.media_over_plain_http {
            media_http = media_http.over_plain_http();
        }
        let mut builder = Bot::builder()
            .with_backend(SessionBackend::new(session.clone()))
            .with_transport_factory(transport)
            .with_http_client(media_http)
            .with_runtime(TokioRuntime)
            .with_event_handler(forwarder)
            // Each inbound message reaches the event log before WhatsApp hears it arrived.
            .with_inbound_durability_hook(DurableInbound { sink: inbound })
            // A gateway relays live traffic; replaying a phone's history would flood the
            // event log and the number's first minutes.
            .skip_history_sync()
            .with_wanted_pre_key_count(PRE_KEYS_PER_UPLOAD);
        if let Some(version) = self.options.version {
            builder = builder.with_version(version);
        }
        let bot = builder.build().await.map_err(|e| DriverError::Session(e.to_string()))?;
        let client = bot.client();
        let run = tokio::spawn(bot.run());
        Ok(Arc::new(WhatsAppConnection {
            client: Some(client),
            run: Mutex::new(Some(run)),
            acks,
            logged_out,
            session,
        }))
    }
}

/// Forwards the library's events, in order (it runs inline on the library's dispatch path,
/// so it only maps and hands over).
struct Forwarder {
    events: EventSink,
    acks: Arc<AckWaiters>,
    logged_out: Arc<AtomicBool>,
}

impl EventHandler for Forwarder {
    fn handle_event(&self, event: Arc<Event>) {
        match map_event(&event, Utc::now()) {
            Mapped::Emit(list) => {
                for e in list {
                    if let DriverEvent::Disconnected { kind: DropKind::LoggedOut, .. } = &e {
                        self.logged_out.store(true, Ordering::SeqCst);
                    }
                    self.events.emit(e);
                }
            }
            Mapped::Ack { id, error } => self.acks.resolve(&id, error),
            Mapped::Ignore => {}
        }
    }
}

/// Sends waiting for the server's ack of their message id.
#[derive(Default)]
struct AckWaiters {
    waiting: Mutex<HashMap<String, oneshot::Sender<Option<String>>>>,
}

impl AckWaiters {
    fn wait_for(&self, id: &str) -> oneshot::Receiver<Option<String>> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().expect("poisoned").insert(id.to_string(), tx);
        rx
    }

    fn forget(&self, id: &str) {
        self.waiting.lock().expect("poisoned").remove(id);
    }

    fn resolve(&self, id: &str, error: Option<String>) {
        if let Some(tx) = self.waiting.lock().expect("poisoned").remove(id) {
            let _ = tx.send(error);
        }
    }
}

/// The library retries a failed dial quietly; this wrapper is how an operator sees it: the
/// first failure is a transient drop with its cause, later ones are reconnect attempts.
struct ObservedDial {
    inner: DialTransportFactory,
    events: EventSink,
    failures: AtomicU32,
}

#[async_trait]
impl TransportFactory for ObservedDial {
    async fn create_transport(
        &self,
    ) -> Result<(Arc<dyn Transport>, async_channel::Receiver<TransportEvent>), anyhow::Error> {
        let result = self.inner.create_transport().await;
        match &result {
            Ok(_) => self.failures.store(0, Ordering::Relaxed),
            Err(e) => {
                let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                self.events.emit(if n == 1 {
                    DriverEvent::Disconnected {
                        kind: DropKind::Transient,
                        detail: format!("could not reach WhatsApp ({e:#}); retrying with backoff"),
                    }
                } else {
                    DriverEvent::Reconnecting { attempt: n }
                });
            }
        }
        result
    }
}

/// One running number.
pub struct WhatsAppConnection {
    /// `None` for a connection that never started (unreadable session).
    client: Option<Arc<Client>>,
    run: Mutex<Option<JoinHandle<()>>>,
    acks: Arc<AckWaiters>,
    /// Set when WhatsApp (or an operator) unlinked the device: its session is wiped once the
    /// client has stopped writing to it.
    logged_out: Arc<AtomicBool>,
    session: Arc<dyn SessionStore>,
}

impl WhatsAppConnection {
    fn ended(session: Arc<dyn SessionStore>) -> Self {
        Self {
            client: None,
            run: Mutex::new(None),
            acks: Arc::default(),
            logged_out: Arc::default(),
            session,
        }
    }

    fn client(&self) -> Result<&Arc<Client>, DriverError> {
        self.client.as_ref().ok_or(DriverError::NotConnected)
    }

    fn connected_client(&self) -> Result<&Arc<Client>, DriverError> {
        let client = self.client()?;
        if client.is_connected() && client.is_logged_in() {
            Ok(client)
        } else {
            Err(DriverError::NotConnected)
        }
    }

    /// Sends a built message under our id and waits for the server's ack: every kind goes
    /// out this way.
    async fn send_and_wait(
        &self,
        client: &Client,
        to: WaJid,
        message: wa::Message,
        id: String,
    ) -> Result<SendAck, DriverError> {
        let ack = self.acks.wait_for(&id);
        let options = SendOptions::default().with_message_id(id.clone());
        if let Err(e) = client.send_message_with_options(to, message, options).await {
            self.acks.forget(&id);
            return Err(send_error(&e));
        }
        // `Ok` from the library means the stanza left; only the server's ack says it was
        // accepted, and a nack (463: reach-out restricted) says it was refused.
        match tokio::time::timeout(ACK_TIMEOUT, ack).await {
            Ok(Ok(None)) => Ok(SendAck { id, at: Utc::now() }),
            Ok(Ok(Some(code))) => Err(DriverError::Rejected {
                // The nack's `error` attribute is a number; one that is not keeps no code.
                code: code.parse().ok(),
                message: nack_text(&code),
            }),
            Ok(Err(_)) | Err(_) => {
                self.acks.forget(&id);
                Err(DriverError::Transport(format!(
                    "WhatsApp did not acknowledge message {id} within {}s",
                    ACK_TIMEOUT.as_secs()
                )))
            }
        }
    }
}

/// This number's JID as `msg`'s chat addresses it, for a quote or reaction of one of its own
/// messages (`None` when none is needed): the LID in a LID chat or LID-addressed group (the
/// group's addressing comes from the library's cache, which the send fills anyway), the
/// phone JID otherwise.
async fn own_jid_for(client: &Client, msg: &OutgoingMessage) -> Option<Jid> {
    let quoted = match &msg.content {
        OutgoingContent::Reaction { target, .. } => Some(target),
        _ => msg.reply_to.as_ref(),
    };
    let chat = &quoted.filter(|q| q.from_me)?.chat;
    let lid_addressed = if chat.is_group() {
        match wa_jid(chat) {
            Ok(group) => client
                .groups()
                .query_info(&group)
                .await
                .is_ok_and(|g| g.addressing_mode == AddressingMode::Lid),
            Err(_) => false,
        }
    } else {
        chat.is_lid()
    };
    let own = if lid_addressed { client.lid().or_else(|| client.pn()) } else { client.pn() };
    own.and_then(|j| convert_jid(&j.to_non_ad().to_string()))
}

/// What a failed send means: the connection gone, a request WhatsApp refuses (which a retry
/// would not change), or a network failure worth a retry.
fn send_error(e: &SendError) -> DriverError {
    if matches!(e, SendError::NotLoggedIn) || e.is_transport_unavailable() {
        return DriverError::NotConnected;
    }
    if let Some(r) = e.server_rejection() {
        return directory::refusal(&r, "the message");
    }
    match e {
        SendError::InvalidRequest(m) => DriverError::rejected(m.clone()),
        other => DriverError::Transport(other.to_string()),
    }
}

/// The library's JID for ours (both print the `user[:device]@server` form).
fn wa_jid(jid: &Jid) -> Result<WaJid, DriverError> {
    jid.to_string().parse().map_err(|e| DriverError::rejected(format!("bad JID {jid}: {e}")))
}

#[async_trait]
impl Connection for WhatsAppConnection {
    async fn send(&self, msg: OutgoingMessage) -> Result<SendAck, DriverError> {
        let client = self.connected_client()?;
        let to = wa_jid(&msg.to)?;
        // A media file goes to the CDN first; the message only carries where it is.
        let uploaded = match &msg.content {
            OutgoingContent::Media(m) => Some(media::upload(client, m).await?),
            _ => None,
        };
        let own = own_jid_for(client, &msg).await;
        let message =
            build_message(&msg, uploaded.as_ref(), own.as_ref(), Utc::now().timestamp_millis())?;
        self.send_and_wait(client, to, message, msg.id).await
    }

    async fn download_media(&self, media: &InboundMedia, dest: &Path) -> Result<u64, DriverError> {
        media::download(self.connected_client()?, media, dest).await
    }

    async fn groups(&self) -> Result<Vec<GroupSummary>, DriverError> {
        directory::list_groups(self.connected_client()?).await
    }

    async fn group(&self, jid: &Jid) -> Result<GroupInfo, DriverError> {
        directory::group(self.connected_client()?, jid).await
    }

    async fn check_contacts(&self, phones: &[Phone]) -> Result<Vec<ContactStatus>, DriverError> {
        directory::check_contacts(self.connected_client()?, phones).await
    }

    async fn set_chat_state(&self, to: &Jid, state: ChatState) -> Result<(), DriverError> {
        let client = self.connected_client()?;
        let to = wa_jid(to)?;
        let chatstate = client.chatstate();
        let sent = match state {
            ChatState::Composing => chatstate.send_composing(&to).await,
            ChatState::Recording => chatstate.send_recording(&to).await,
            ChatState::Paused => chatstate.send_paused(&to).await,
        };
        sent.map_err(|e| DriverError::Transport(e.to_string()))
    }

    async fn mark_read(
        &self,
        chat: &Jid,
        sender: Option<&Jid>,
        ids: &[String],
    ) -> Result<(), DriverError> {
        let client = self.connected_client()?;
        if ids.is_empty() {
            return Ok(());
        }
        let chat = wa_jid(chat)?;
        let sender = sender.map(wa_jid).transpose()?;
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        // `<receipt type="read">` (or `read-self` when the account hides its read receipts:
        // the library follows the account's privacy setting, as WhatsApp Web does).
        client
            .mark_as_read(&chat, sender.as_ref(), &ids)
            .await
            .map_err(|e| DriverError::Transport(e.to_string()))
    }

    async fn reject_call(&self, call: &IncomingCall) -> Result<(), DriverError> {
        let client = self.connected_client()?;
        // `<call to=FROM><reject call-id call-creator count="0"/></call>`, as WhatsApp Web
        // declines (whatsmeow's `RejectCall` and Baileys' `rejectCall` send the same); the
        // network answers nothing, the caller sees the call declined.
        let (peer, creator) = (wa_jid(&call.from)?, wa_jid(&call.creator)?);
        client
            .voip()
            .reject_call(&call.id, &peer, &creator)
            .await
            .map_err(|e| DriverError::Transport(e.to_string()))
    }

    async fn set_presence(&self, presence: Presence) -> Result<(), DriverError> {
        let client = self.connected_client()?;
        // `<presence type="available"|"unavailable" name=PUSH_NAME/>`; the library refuses
        // while the account's push name is unknown (right after pairing, until the app state
        // sync brings it), since WhatsApp ignores a nameless presence.
        let sent = match presence {
            Presence::Available => client.presence().set_available().await,
            Presence::Unavailable => client.presence().set_unavailable().await,
        };
        sent.map_err(|e| DriverError::rejected(e.to_string()))
    }

    async fn pair_code(&self, phone: &Phone) -> Result<PairCode, DriverError> {
        let client = self.client()?;
        if client.is_logged_in() {
            return Err(DriverError::NotPairing);
        }
        let options =
            PairCodeOptions { phone_number: phone.digits().to_string(), ..Default::default() };
        let code = client
            .pair_with_code(options)
            .await
            .map_err(|e| DriverError::rejected(e.to_string()))?;
        Ok(PairCode {
            code,
            expires_at: Utc::now()
                + chrono::Duration::from_std(PAIR_CODE_VALIDITY).unwrap_or_default(),
        })
    }

    async fn logout(&self) -> Result<(), DriverError> {
        let client = self.client()?;
        self.logged_out.store(true, Ordering::SeqCst);
        client.logout().await;
        Ok(())
    }

    async fn stop(&self) {
        if let Some(client) = &self.client {
            client.disconnect().await;
        }
        let run = self.run.lock().expect("poisoned").take();
        if let Some(mut run) = run {
            // The run loop ends once the client has flushed; a stuck one (dialing) must not
            // hold the number: after the abort no task of this client is left to write its
            // store, so a new client may start on it when this returns.
            if tokio::time::timeout(STOP_TIMEOUT, &mut run).await.is_err() {
                run.abort();
                let _ = run.await;
            }
        }
        if self.logged_out.load(Ordering::SeqCst) {
            if let Err(e) = self.session.clear().await {
                tracing::warn!(error = %e, "wiping the session of a logged-out number failed");
            }
        }
    }
}

/// The words for a server nack code.
fn nack_text(code: &str) -> String {
    match code {
        "463" => "WhatsApp error 463: this number may not start chats with new contacts right \
                  now (reach-out restriction)"
            .into(),
        "479" => "WhatsApp error 479: the message was malformed".into(),
        "404" => "WhatsApp error 404: the recipient was not found".into(),
        other => format!("WhatsApp refused the message (error {other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nacks_are_told_in_words_with_their_code() {
        assert!(nack_text("463").contains("463"));
        assert!(nack_text("500").contains("error 500"));
    }

    #[test]
    fn send_failures_keep_their_kind() {
        use whatsapp_rust::request::IqError;
        assert_eq!(send_error(&SendError::NotLoggedIn), DriverError::NotConnected);
        assert_eq!(send_error(&SendError::Iq(IqError::NotConnected)), DriverError::NotConnected);
        assert!(matches!(
            send_error(&SendError::InvalidRequest("newsletter".into())),
            DriverError::Rejected { .. }
        ));
        let refused = |code| {
            SendError::Iq(IqError::ServerError {
                code,
                text: "forbidden".into(),
                error_type: None,
                backoff: None,
            })
        };
        assert!(
            matches!(send_error(&refused(403)), DriverError::Rejected { message: m, .. } if m.contains("403"))
        );
        assert!(matches!(send_error(&refused(503)), DriverError::Transport(_)));
        assert!(matches!(send_error(&SendError::Iq(IqError::Timeout)), DriverError::Transport(_)));
    }

    #[test]
    fn acks_reach_only_the_waiting_send() {
        let w = AckWaiters::default();
        let mut a = w.wait_for("A");
        w.resolve("B", None);
        assert!(a.try_recv().is_err());
        w.resolve("A", Some("463".into()));
        assert_eq!(a.try_recv().unwrap(), Some("463".into()));
    }
}
