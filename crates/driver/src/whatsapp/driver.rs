//! The `whatsapp` backend of the [`Driver`] trait: one `whatsapp-rust` client per number, its
//! protocol state in our sealed store, its socket through the number's proxy, its events
//! mapped by [`super::events`].
//!
//! Each number is a separate client with its own backend, transport factory and HTTP client:
//! nothing is shared between numbers but the tokio runtime, so one number's failure or proxy
//! never touches another.

use std::collections::HashMap;
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
use whatsapp_rust::send::SendOptions;
use whatsapp_rust::types::events::{Event, EventHandler};
use whatsapp_rust::wacore::net::{Transport, TransportEvent, TransportFactory};
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{anyhow, async_channel, Client, Jid as WaJid, TokioRuntime};

use super::backend::SessionBackend;
use super::events::{map_event, Mapped};
use super::transport::{http_client, DialTransportFactory};
use crate::{
    ChatState, ConnectOptions, Connection, Driver, DriverError, DriverEvent, DropKind, EventSink,
    OutgoingText, PairCode, SendAck, SessionError, SessionStore,
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

/// Settings shared by every number of the gateway.
#[derive(Debug, Clone, Default)]
pub struct WhatsAppOptions {
    /// The websocket URL; `None` is WhatsApp's own. Tests point it at a local listener.
    pub ws_url: Option<String>,
    /// The WhatsApp Web version to announce; `None` fetches the current one at connect.
    pub version: Option<(u32, u32, u32)>,
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
        let ConnectOptions { proxy, session, events, .. } = opts;
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

        let mut builder = Bot::builder()
            .with_backend(SessionBackend::new(session.clone()))
            .with_transport_factory(transport)
            .with_http_client(http_client(proxy.as_ref()))
            .with_runtime(TokioRuntime)
            .with_event_handler(forwarder)
            // A gateway relays live traffic; replaying a phone's history would flood the
            // event log and the number's first minutes.
            .skip_history_sync();
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
}

/// The library's JID for ours (both print the `user[:device]@server` form).
fn wa_jid(jid: &Jid) -> Result<WaJid, DriverError> {
    jid.to_string().parse().map_err(|e| DriverError::Rejected(format!("bad JID {jid}: {e}")))
}

/// A text message; with mentions it must be an extended text whose context lists the
/// mentioned JIDs (WhatsApp highlights mentions from that list, not from the text).
pub(crate) fn text_message(text: &str, mentions: &[Jid]) -> wa::Message {
    if mentions.is_empty() {
        return wa::Message { conversation: Some(text.to_string()), ..Default::default() };
    }
    wa::Message {
        extended_text_message: wa::message::ExtendedTextMessage {
            text: Some(text.to_string()),
            context_info: wa::ContextInfo {
                mentioned_jid: mentions.iter().map(|j| j.to_non_device().to_string()).collect(),
                ..Default::default()
            }
            .into(),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    }
}

#[async_trait]
impl Connection for WhatsAppConnection {
    async fn send(&self, msg: crate::OutgoingMessage) -> Result<SendAck, DriverError> {
        let crate::OutgoingContent::Text { text } = msg.content else {
            return Err(DriverError::Rejected("not built yet".into()));
        };
        self.send_text(OutgoingText { id: msg.id, to: msg.to, text, mentions: msg.mentions }).await
    }

    async fn download_media(
        &self,
        _media: &crate::InboundMedia,
        _dest: &std::path::Path,
    ) -> Result<u64, DriverError> {
        Err(DriverError::Rejected("not built yet".into()))
    }

    async fn groups(&self) -> Result<Vec<crate::GroupSummary>, DriverError> {
        Err(DriverError::Rejected("not built yet".into()))
    }

    async fn group(&self, _jid: &Jid) -> Result<crate::GroupInfo, DriverError> {
        Err(DriverError::Rejected("not built yet".into()))
    }

    async fn check_contacts(
        &self,
        _phones: &[Phone],
    ) -> Result<Vec<crate::ContactStatus>, DriverError> {
        Err(DriverError::Rejected("not built yet".into()))
    }

    async fn send_text(&self, msg: OutgoingText) -> Result<SendAck, DriverError> {
        let client = self.connected_client()?;
        let to = wa_jid(&msg.to)?;
        let ack = self.acks.wait_for(&msg.id);
        let options = SendOptions::default().with_message_id(msg.id.clone());
        let sent = client
            .send_message_with_options(to, text_message(&msg.text, &msg.mentions), options)
            .await;
        if let Err(e) = sent {
            self.acks.forget(&msg.id);
            return Err(DriverError::Transport(e.to_string()));
        }
        // `Ok` from the library means the stanza left; only the server's ack says it was
        // accepted, and a nack (463: reach-out restricted) says it was refused.
        match tokio::time::timeout(ACK_TIMEOUT, ack).await {
            Ok(Ok(None)) => Ok(SendAck { id: msg.id, at: Utc::now() }),
            Ok(Ok(Some(code))) => Err(DriverError::Rejected(nack_text(&code))),
            Ok(Err(_)) | Err(_) => {
                self.acks.forget(&msg.id);
                Err(DriverError::Transport(format!(
                    "WhatsApp did not acknowledge message {} within {}s",
                    msg.id,
                    ACK_TIMEOUT.as_secs()
                )))
            }
        }
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
            .map_err(|e| DriverError::Rejected(e.to_string()))?;
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
    fn mentions_make_an_extended_text_with_the_mentioned_jids() {
        let plain = text_message("hi", &[]);
        assert_eq!(plain.conversation.as_deref(), Some("hi"));
        let j = Jid::parse("5511999990001:3@s.whatsapp.net").unwrap();
        let m = text_message("hi @5511999990001", &[j]);
        assert!(m.conversation.is_none());
        let ext = m.extended_text_message.as_option().unwrap();
        assert_eq!(ext.text.as_deref(), Some("hi @5511999990001"));
        let ctx = ext.context_info.as_option().unwrap();
        assert_eq!(ctx.mentioned_jid, vec!["5511999990001@s.whatsapp.net".to_string()]);
    }

    #[test]
    fn nacks_are_told_in_words_with_their_code() {
        assert!(nack_text("463").contains("463"));
        assert!(nack_text("500").contains("error 500"));
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
