//! The `Driver` trait every WhatsApp backend implements, the events it reports, and the
//! simulated WhatsApp network (`sim`), a backend for tests, demos and benchmarks.
//!
//! A driver owns the connection of each number: it logs in with the number's session (read
//! and written through [`SessionStore`], which the server seals in its store), reconnects on its
//! own after a transient drop, and reports everything that happens as [`DriverEvent`]s. It
//! never decides the instance's status: the server feeds the events through the state machine
//! of `bzapper_core`.

pub mod content;
pub mod memory;
pub mod sim;
pub mod whatsapp;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bzapper_core::{Jid, Phone, ProxyUrl};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

pub use content::{
    ContactStatus, GroupInfo, GroupParticipant, GroupSummary, InboundContent, InboundMedia,
    MessageRef, OutgoingContent, OutgoingMedia, OutgoingMessage,
};

/// Where a driver keeps one number's protocol state. Values are opaque to the server, which
/// seals each one (instance id as associated data) before it reaches the disk.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// The value stored under `key`, `None` when absent, an error when it cannot be opened
    /// (tampered, or sealed with another master key).
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, SessionError>;
    /// Every value whose key starts with `prefix`, ordered by key.
    async fn load_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, SessionError>;
    /// Applies `writes` in order, atomically, and durably before returning.
    async fn write(&self, writes: Vec<SessionWrite>) -> Result<(), SessionError>;
    /// Stores `value` durably before returning.
    async fn save(&self, key: &str, value: &[u8]) -> Result<(), SessionError> {
        self.write(vec![SessionWrite::Put { key: key.to_string(), value: value.to_vec() }]).await
    }
    /// Wipes every value of this number (after a logout).
    async fn clear(&self) -> Result<(), SessionError>;
}

/// One change to a number's protocol state (see [`SessionStore::write`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionWrite {
    Put {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    /// Deletes every value whose key starts with `prefix`.
    DeletePrefix {
        prefix: String,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionError {
    #[error("the stored session could not be opened: {0}")]
    Unreadable(String),
    #[error("the session store failed: {0}")]
    Io(String),
}

/// What a driver needs to start one number.
pub struct ConnectOptions {
    pub instance_id: String,
    pub proxy: Option<ProxyUrl>,
    pub session: Arc<dyn SessionStore>,
    pub events: EventSink,
    /// Where inbound messages go, durably, before the driver acknowledges them to the network.
    pub inbound: Arc<dyn InboundSink>,
}

/// Where a driver hands the messages contacts send, and learns when it may acknowledge them
/// to the network. WhatsApp forgets a message once its receipt is acknowledged, so a driver
/// acknowledges only what [`InboundSink::commit`] accepted: a crash before that leaves the
/// message with the network, which delivers it again at the next connect (at least once);
/// the sink recognises a message it has recorded before (recorded once).
#[async_trait]
pub trait InboundSink: Send + Sync + 'static {
    /// Records `batch`, in order, durably: `Ok` only once every message of it is on disk,
    /// a message recorded before (a redelivery) counting as recorded. The driver then
    /// acknowledges the whole batch; after `Err` it acknowledges none of it, and the network
    /// delivers the messages again. Called on the driver's receive path: it must not wait on
    /// the number's connection (a send, a download), or it could wait on itself.
    async fn commit(&self, batch: Vec<InboundMessage>) -> Result<(), InboundError>;
}

/// Why a batch of inbound messages could not be recorded (the store failed); the driver
/// leaves the messages unacknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the inbound messages could not be recorded: {0}")]
pub struct InboundError(pub String);

/// The channel a driver reports events on, tagged with the instance they belong to.
#[derive(Clone)]
pub struct EventSink {
    instance_id: String,
    tx: mpsc::UnboundedSender<(String, DriverEvent)>,
    /// Told once, at the first state event emitted (see [`EventSink::on_first_state_event`]).
    first_state_event: Option<Arc<std::sync::Mutex<Option<oneshot::Sender<()>>>>>,
}

impl EventSink {
    pub fn new(
        instance_id: impl Into<String>,
        tx: mpsc::UnboundedSender<(String, DriverEvent)>,
    ) -> Self {
        Self { instance_id: instance_id.into(), tx, first_state_event: None }
    }

    /// Tells `told` when the first state event ([`DriverEvent::is_state`]) is emitted, the
    /// moment it is emitted, not once the receiver reads it: a restart bounds the handshakes in
    /// flight, and a slot is free as soon as its number's handshake has an outcome, however
    /// long the events queue at the receiver. `told` is dropped (its receiver resolves too)
    /// when every clone of the sink is dropped without one.
    pub fn on_first_state_event(mut self, told: oneshot::Sender<()>) -> Self {
        self.first_state_event = Some(Arc::new(std::sync::Mutex::new(Some(told))));
        self
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Reports an event; a closed receiver (the server shutting down) is not an error.
    pub fn emit(&self, event: DriverEvent) {
        if let Some(first) = self.first_state_event.as_ref().filter(|_| event.is_state()) {
            if let Some(told) = first.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = told.send(());
            }
        }
        let _ = self.tx.send((self.instance_id.clone(), event));
    }
}

/// Not durable: each message goes out as a [`DriverEvent::Message`] on the event channel and
/// counts as recorded at once (at most once). For tools and tests that read the channel; the
/// gateway passes a sink that writes the event log.
#[async_trait]
impl InboundSink for EventSink {
    async fn commit(&self, batch: Vec<InboundMessage>) -> Result<(), InboundError> {
        for message in batch {
            self.emit(DriverEvent::Message(message));
        }
        Ok(())
    }
}

/// A WhatsApp backend.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// A short name for logs and `/readyz` (`whatsapp`, `sim`).
    fn name(&self) -> &'static str;

    /// Starts the number's connection in the background and returns its handle at once. Every
    /// outcome (QR codes, connected, drops) arrives later as events on `opts.events`.
    async fn start(&self, opts: ConnectOptions) -> Result<Arc<dyn Connection>, DriverError>;
}

/// A running number.
#[async_trait]
pub trait Connection: Send + Sync + 'static {
    /// Sends a message of any kind. `Ok` means the server accepted it (server ack), not that
    /// it was delivered. A media file is uploaded first.
    async fn send(&self, msg: OutgoingMessage) -> Result<SendAck, DriverError>;
    /// Sends a text.
    async fn send_text(&self, msg: OutgoingText) -> Result<SendAck, DriverError> {
        self.send(msg.into()).await
    }
    /// Shows `composing`, `recording` or `paused` to the recipient.
    async fn set_chat_state(&self, to: &Jid, state: ChatState) -> Result<(), DriverError>;
    /// Sends WhatsApp's read receipt ("seen", the blue ticks) for messages the number received
    /// in `chat`; `sender` is who wrote them in a group (`None` in a direct chat). Ids as the
    /// network gave them. A backend that cannot send receipts answers a refusal.
    async fn mark_read(
        &self,
        chat: &Jid,
        sender: Option<&Jid>,
        ids: &[String],
    ) -> Result<(), DriverError> {
        let _ = (chat, sender, ids);
        Err(DriverError::rejected("this backend cannot send read receipts"))
    }
    /// Rejects an incoming call (the caller sees it declined; the number's other devices stop
    /// ringing). `call` as [`DriverEvent::Call`] reported it. A backend that cannot reject
    /// calls answers a refusal.
    async fn reject_call(&self, call: &IncomingCall) -> Result<(), DriverError> {
        let _ = call;
        Err(DriverError::rejected("this backend cannot reject calls"))
    }
    /// Announces the number's presence to its contacts (`available`: shown online). A backend
    /// that cannot set presence answers a refusal.
    async fn set_presence(&self, presence: Presence) -> Result<(), DriverError> {
        let _ = presence;
        Err(DriverError::rejected("this backend cannot set the presence"))
    }
    /// Asks for an 8-character pairing code to type on the phone (instead of a QR scan).
    async fn pair_code(&self, phone: &Phone) -> Result<PairCode, DriverError>;
    /// Downloads and decrypts a media file a contact sent into `dest` (created or
    /// truncated), returning its size.
    async fn download_media(&self, media: &InboundMedia, dest: &Path) -> Result<u64, DriverError>;
    /// The groups this number is in.
    async fn groups(&self) -> Result<Vec<GroupSummary>, DriverError>;
    /// One group with its participants; [`DriverError::NotFound`] when the number is not in it.
    async fn group(&self, jid: &Jid) -> Result<GroupInfo, DriverError>;
    /// Which of `phones` have a WhatsApp account, in the order given.
    async fn check_contacts(&self, phones: &[Phone]) -> Result<Vec<ContactStatus>, DriverError>;
    /// Unlinks the device from the account and wipes its session. The connection ends.
    async fn logout(&self) -> Result<(), DriverError>;
    /// Closes the connection and keeps the session. Idempotent.
    async fn stop(&self);
}

/// Everything a driver reports about a number.
// A message is by far the largest event and also by far the most frequent one: boxing it
// would add an allocation to the common case to shrink the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DriverEvent {
    /// A QR code to show; it replaces the previous one and is valid until `expires_at`.
    Qr { code: String, expires_at: DateTime<Utc> },
    /// The QR codes ran out without a scan. The connection ends.
    QrTimeout,
    /// A phone linked this device; it now logs in.
    Paired { phone: Phone, jid: Jid, lid: Option<Jid> },
    /// The connection is up and authenticated.
    Connected,
    /// The driver is retrying after a transient drop.
    Reconnecting { attempt: u32 },
    /// The connection ended or dropped. After `Transient` the driver reconnects by itself;
    /// after anything else the connection has ended.
    Disconnected { kind: DropKind, detail: String },
    /// The stored session could not be opened. The connection ends.
    SessionUnreadable { detail: String },
    /// An inbound message that reached the driver without going through
    /// [`ConnectOptions::inbound`] (the library acknowledged it on its own, e.g. a recovered
    /// placeholder), or one of a sink that forwards here ([`EventSink`]'s).
    Message(InboundMessage),
    /// A message this number sent reached the recipient's phone, or was read.
    Receipt { message_id: String, status: ReceiptStatus },
    /// A contact is calling the number (a call offer, ringing now). A call offered while the
    /// number was offline is over by the time it is delivered and is not reported.
    Call(IncomingCall),
}

impl DriverEvent {
    /// Whether the event tells the state of the connection (a QR code, paired, connected, a
    /// drop, ...), as opposed to traffic over it (messages, receipts, calls).
    pub fn is_state(&self) -> bool {
        !matches!(
            self,
            DriverEvent::Message(_) | DriverEvent::Receipt { .. } | DriverEvent::Call(_)
        )
    }
}

/// A call ringing on the number, as [`DriverEvent::Call`] reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncomingCall {
    /// The call's id (WhatsApp's `call-id`).
    pub id: String,
    /// The calling device as the network addressed it (a phone JID or a LID, with its device
    /// part): a rejection goes back to it.
    pub from: Jid,
    /// Who started the call (`call-creator`), as the network addressed them.
    pub creator: Jid,
    /// The caller's other address when the network gave it (the phone JID beside a LID).
    #[serde(default)]
    pub from_alt: Option<Jid>,
    pub video: bool,
    /// The group a group call is placed in, when the offer names it.
    #[serde(default)]
    pub group: Option<Jid>,
    /// A group call (also when the offer does not name the group).
    #[serde(default)]
    pub is_group: bool,
    pub at: DateTime<Utc>,
}

/// The presence a number announces to its contacts ([`Connection::set_presence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Online.
    Available,
    /// Offline ("last seen").
    Unavailable,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Available => "available",
            Presence::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    Delivered,
    Read,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropKind {
    /// The connection dropped; the driver reconnects by itself.
    Transient,
    /// The device was unlinked; its session is wiped and a new scan is needed.
    LoggedOut,
    /// WhatsApp refused the number for good (or for an unknown time).
    Banned,
    /// WhatsApp refused the number until `until`; it may connect again after that.
    TemporarilyBanned { until: DateTime<Utc> },
    /// The network ended the connection for a cause an operator must act on that is neither
    /// a logout nor a ban (another session took over, outdated client, refused connection).
    Ended,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// The WhatsApp message id.
    pub id: String,
    /// The chat: the contact's JID for a direct chat, the group's JID for a group.
    pub chat: Jid,
    /// Who wrote it, as the network addressed them (a phone JID or a LID).
    pub sender: Jid,
    /// The other address of the sender when the network gave both (phone JID ↔ LID).
    pub sender_alt: Option<Jid>,
    pub push_name: Option<String>,
    /// The text, or the caption of a media file (empty when there is none).
    pub text: String,
    /// JIDs mentioned in the message (as the network addressed them).
    pub mentions: Vec<Jid>,
    /// A media file, location, contact card or reaction.
    #[serde(default)]
    pub content: InboundContent,
    /// The WhatsApp id of the message this one quotes.
    #[serde(default)]
    pub reply_to: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutgoingText {
    /// The WhatsApp message id, fixed by the caller before the first attempt so that a resend
    /// after a crash reuses it.
    pub id: String,
    pub to: Jid,
    pub text: String,
    pub mentions: Vec<Jid>,
}

impl From<OutgoingText> for OutgoingMessage {
    fn from(t: OutgoingText) -> Self {
        OutgoingMessage {
            id: t.id,
            to: t.to,
            content: OutgoingContent::Text { text: t.text },
            mentions: t.mentions,
            reply_to: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendAck {
    pub id: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatState {
    Composing,
    /// Recording a voice note.
    Recording,
    Paused,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairCode {
    pub code: String,
    pub expires_at: DateTime<Utc>,
}

/// WhatsApp's error code for a message to a contact that never wrote to the number, refused
/// while the number is under the reach-out restriction (a sign the network distrusts it).
pub const REACH_OUT_RESTRICTED: u16 = 463;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriverError {
    #[error("the number is not connected")]
    NotConnected,
    #[error("the number is not waiting to be linked")]
    NotPairing,
    /// WhatsApp (or the driver, for a request it cannot send) refused; a retry would not
    /// change that. `code` is WhatsApp's numeric error when it gave one (463: the number may
    /// not start chats with new contacts), so that callers decide on it, never on the text.
    #[error("WhatsApp refused: {message}")]
    Rejected { code: Option<u16>, message: String },
    #[error("the connection to the network failed: {0}")]
    Transport(String),
    #[error("{0}")]
    Session(String),
    /// What was asked for does not exist on the network (a group the number is not in, a
    /// media file that expired).
    #[error("{0}")]
    NotFound(String),
}

impl DriverError {
    /// A refusal without a WhatsApp error code (a request the driver cannot send as it is).
    pub fn rejected(message: impl Into<String>) -> Self {
        DriverError::Rejected { code: None, message: message.into() }
    }

    /// A refusal with WhatsApp's error code.
    pub fn refused(code: u16, message: impl Into<String>) -> Self {
        DriverError::Rejected { code: Some(code), message: message.into() }
    }

    /// WhatsApp's error code, when this is a refusal that came with one.
    pub fn wa_code(&self) -> Option<u16> {
        match self {
            DriverError::Rejected { code, .. } => *code,
            _ => None,
        }
    }
}

#[cfg(test)]
mod event_sink_tests {
    use super::*;

    /// A restart's handshake slot is freed by the first state event, at once, and only once;
    /// traffic (a receipt) does not count, and a sink dropped without one lets the waiter go.
    #[tokio::test]
    async fn the_first_state_event_is_told_once_the_moment_it_is_emitted() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (told, mut first) = oneshot::channel();
        let sink = EventSink::new("ins_a#1", tx).on_first_state_event(told);
        let clone = sink.clone();
        clone.emit(DriverEvent::Receipt { message_id: "m".into(), status: ReceiptStatus::Read });
        assert!(first.try_recv().is_err(), "a receipt is not a state event");
        clone.emit(DriverEvent::Connected);
        assert_eq!(first.try_recv(), Ok(()), "told before anything reads the channel");
        sink.emit(DriverEvent::Reconnecting { attempt: 1 });
        let mut got = Vec::new();
        while let Ok((tag, event)) = rx.try_recv() {
            got.push((tag, event.is_state()));
        }
        assert_eq!(
            got,
            [("ins_a#1".into(), false), ("ins_a#1".into(), true), ("ins_a#1".into(), true)]
        );

        let (tx, _rx) = mpsc::unbounded_channel();
        let (told, first) = oneshot::channel::<()>();
        drop(EventSink::new("ins_b#1", tx).on_first_state_event(told));
        assert!(first.await.is_err(), "dropped without a state event: the waiter is let go");
    }
}
