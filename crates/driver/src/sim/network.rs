//! The simulated WhatsApp network itself: who is attached, which devices are linked or
//! revoked, which phones are banned or have no WhatsApp, the LID of every phone, groups, the
//! media contacts sent, and what each instance sent. [`SimNetwork`] implements [`SimNet`]
//! in-process; [`crate::sim::service`] serves it over HTTP for gateways in other processes.
//!
//! State sits under one `std::sync::Mutex` that is never held across an `.await`; each
//! attached connection is an unbounded channel, so the network never waits on a slow client.
//! All timing uses `tokio::time`, so tests drive QR rotation with a paused clock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bzapper_core::{Jid, Phone};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::calls::Ringing;
use super::clock::{NetClock, WallClock};
use super::control::{
    AgeRequest, CallResult, CallSpec, ContactRequest, CreateGroupRequest, CreateGroupResult,
    DropRequest, InboundResult, InboundSpec, RestrictRequest, ScanRequest, ScanResult,
};
use super::groups::{Groups, NewGroup};
use super::inbound::{self, Prepared};
use super::media::{self, MediaBytes, MediaStore, SyntheticHashes};
use super::outbox::{check_outgoing, OutboxEntry, OutboxMessage};
use super::reactions::{Ledger, Penalty, Reactions};
use super::transport::{MediaStream, NetEvent, OnDropStream, SimError, SimNet};
use super::unacked::Unacked;
use crate::{
    ChatState, ContactStatus, DropKind, GroupInfo, GroupParticipant, GroupSummary, InboundContent,
    InboundMedia, InboundMessage, IncomingCall, OutgoingContent, OutgoingMessage, PairCode,
    Presence, ReceiptStatus, SendAck,
};

/// Timing of the simulated network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConfig {
    /// How long the first QR code of a pairing is valid (WhatsApp: 60 s).
    pub qr_first: Duration,
    /// How long each following code is valid (WhatsApp: 20 s).
    pub qr_next: Duration,
    /// How many codes a pairing shows before it times out.
    pub qr_codes: u32,
    /// How long the network takes to ack a send.
    pub ack_delay: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            qr_first: Duration::from_secs(60),
            qr_next: Duration::from_secs(20),
            qr_codes: 6,
            ack_delay: Duration::ZERO,
        }
    }
}

/// What a client keeps to log in again (saved by the driver under key `"sim"`):
/// `{"device_token","phone","jid","lid"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionBlob {
    pub device_token: String,
    #[serde(with = "phone_e164")]
    pub phone: Phone,
    pub jid: Jid,
    pub lid: Jid,
}

impl SessionBlob {
    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// `Phone` as its `+<digits>` form.
mod phone_e164 {
    use bzapper_core::Phone;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(phone: &Phone, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&phone.e164())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Phone, D::Error> {
        let s = String::deserialize(d)?;
        Phone::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The error code WhatsApp gives a temporary ban, and how long the sim's bans last.
const BAN_CODE: u32 = 101;
const BAN_FOR: Duration = Duration::from_secs(24 * 3600);
const PAIR_CODE_TTL: Duration = Duration::from_secs(180);
/// WhatsApp's pairing-code alphabet: no 0/O, 1/I or U, so a code read aloud is unambiguous.
const PAIR_CODE_ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTVWXYZ";
/// Bounds the memory a long benchmark spends on outboxes; the oldest entries go first.
const OUTBOX_CAP: usize = 100_000;

/// The simulated WhatsApp network. Share it with `Arc`; it must be used inside a tokio
/// runtime (QR rotation runs on a timer task).
pub struct SimNetwork {
    config: SimConfig,
    state: Arc<Mutex<State>>,
    /// What bans, account ages and the reaction model go by.
    clock: Arc<dyn NetClock>,
    /// Outside `state`: hashing a made-up file takes a while and must not hold the lock.
    synthetic: SyntheticHashes,
}

#[derive(Default)]
struct State {
    next_generation: u64,
    conns: HashMap<String, Conn>,
    /// Linked devices by token.
    devices: HashMap<String, Device>,
    /// The device each instance id last linked or logged in with, so that a logout can
    /// revoke it even after the connection is gone.
    linked: HashMap<String, String>,
    revoked: HashSet<String>,
    bans: HashMap<Phone, Ban>,
    lids: HashMap<Phone, Jid>,
    /// LID user part → phone.
    lid_owners: HashMap<String, Phone>,
    groups: Groups,
    /// What contacts sent, by download token.
    media: MediaStore,
    /// Phones marked as having no WhatsApp account (every other phone has one).
    absent: HashSet<Phone>,
    /// How many contact checks each instance made (the outbox keeps only the newest).
    checks: HashMap<String, u64>,
    outboxes: HashMap<String, VecDeque<OutboxEntry>>,
    /// Message ids each account has sent, with the time of their ack. Like WhatsApp, the
    /// network accepts a message id once per sender: a resend of the same id (a gateway
    /// retrying after a crash) is acked again and not delivered twice.
    sent_ids: HashMap<Phone, HashMap<String, DateTime<Utc>>>,
    /// Numbers under WhatsApp's reach-out restriction (error 463 to new contacts).
    restricted: HashSet<String>,
    /// The contacts that wrote to each number (a restricted number may still answer them).
    contacts: HashMap<String, HashSet<Jid>>,
    /// Inbound messages handed to each number and not acknowledged yet (delivered again at
    /// its next login).
    unacked: Unacked,
    /// The calls ringing on each number until it rejects them.
    ringing: Ringing,
    /// The reaction model's settings (off by default) and what it remembers of each account.
    reactions: Reactions,
    ledger: Ledger,
}

struct Device {
    phone: Phone,
}

struct Ban {
    code: u32,
    expires_at: DateTime<Utc>,
    /// Asked for as a temporary ban: a login during it is refused with its end, as WhatsApp
    /// refuses a temporarily banned account (not as a ban for good).
    temporary: bool,
}

impl Ban {
    /// How a login during the ban is refused.
    fn refusal(&self) -> DropKind {
        if self.temporary {
            DropKind::TemporarilyBanned { until: self.expires_at }
        } else {
            DropKind::Banned
        }
    }

    fn detail(&self) -> String {
        format!(
            "temporary ban (code {}), expires {}",
            self.code,
            self.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }
}

struct Conn {
    /// Distinguishes this attach from earlier and later ones of the same instance id, so a
    /// stale detach or timer never closes a newer connection.
    generation: u64,
    tx: mpsc::UnboundedSender<NetEvent>,
    phase: Phase,
}

impl Conn {
    fn emit(&self, event: NetEvent) {
        // A receiver that is gone will be detached by its drop guard; nothing to do here.
        let _ = self.tx.send(event);
    }
}

enum Phase {
    /// Showing QR codes; the timer rotates them.
    Pairing {
        _timer: QrTimer,
    },
    Connected {
        token: String,
        phone: Phone,
    },
}

/// Stops the QR rotation of a pairing when the pairing ends (scan, close, replace).
struct QrTimer(Option<AbortHandle>);

impl Drop for QrTimer {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves plain maps behind, still consistent enough for a
    // simulator; keep serving rather than poisoning every later call.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn utc_after(d: Duration) -> DateTime<Utc> {
    let now = Utc::now();
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `2@<ref>,<noise pub>,<identity pub>,<adv secret>`, random each time, shaped like the
/// payload of a real WhatsApp QR code.
fn qr_code() -> String {
    let mut rng = rand::thread_rng();
    let reference: [u8; 48] = {
        let mut r = [0u8; 48];
        rng.fill(&mut r[..]);
        r
    };
    let noise: [u8; 32] = rng.gen();
    let identity: [u8; 32] = rng.gen();
    let adv: [u8; 32] = rng.gen();
    format!("2@{},{},{},{}", b64(&reference), b64(&noise), b64(&identity), b64(&adv))
}

fn device_token() -> String {
    let bytes: [u8; 24] = rand::thread_rng().gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn message_id() -> String {
    format!("3EB0{:016X}", rand::thread_rng().gen::<u64>())
}

fn pair_code_text() -> String {
    let mut rng = rand::thread_rng();
    let mut pick = || PAIR_CODE_ALPHABET[rng.gen_range(0..PAIR_CODE_ALPHABET.len())] as char;
    let left: String = (0..4).map(|_| pick()).collect();
    let right: String = (0..4).map(|_| pick()).collect();
    format!("{left}-{right}")
}

impl State {
    /// The phone's LID, assigned on first sight: 15 random digits, unique.
    fn lid_for(&mut self, phone: &Phone) -> Jid {
        if let Some(lid) = self.lids.get(phone) {
            return lid.clone();
        }
        let mut rng = rand::thread_rng();
        let user = loop {
            let candidate = rng.gen_range(100_000_000_000_000u64..1_000_000_000_000_000u64);
            let candidate = candidate.to_string();
            if !self.lid_owners.contains_key(&candidate) {
                break candidate;
            }
        };
        let lid = Jid::lid(user.clone());
        self.lid_owners.insert(user, phone.clone());
        self.lids.insert(phone.clone(), lid.clone());
        lid
    }

    /// A session presented to a fresh network teaches it the phone's LID, so that LIDs stay
    /// stable across restarts of an in-process network.
    fn adopt_lid(&mut self, phone: &Phone, lid: &Jid) {
        if !lid.is_lid()
            || self.lids.contains_key(phone)
            || self.lid_owners.contains_key(lid.user())
        {
            return;
        }
        self.lid_owners.insert(lid.user().to_string(), phone.clone());
        self.lids.insert(phone.clone(), lid.to_non_device());
    }

    fn phone_for_lid(&self, lid: &Jid) -> Option<Phone> {
        self.lid_owners.get(lid.user()).cloned()
    }

    fn active_ban(&self, phone: &Phone, now: DateTime<Utc>) -> Option<&Ban> {
        self.bans.get(phone).filter(|b| b.expires_at > now)
    }

    /// Why a presented session may not log in, as the event that says so.
    fn refuse(&self, blob: &SessionBlob, now: DateTime<Utc>) -> Option<NetEvent> {
        let logged_out = |detail: &str| NetEvent::Disconnected {
            kind: DropKind::LoggedOut,
            detail: detail.to_string(),
        };
        if self.revoked.contains(&blob.device_token) {
            return Some(logged_out("the device was unlinked"));
        }
        if let Some(device) = self.devices.get(&blob.device_token) {
            if device.phone != blob.phone {
                return Some(logged_out("the session belongs to another number"));
            }
        }
        self.active_ban(&blob.phone, now)
            .map(|ban| NetEvent::Disconnected { kind: ban.refusal(), detail: ban.detail() })
    }

    /// The reaction model bans the account: the message that earned it went out, then the
    /// connection drops as it does at a ban.
    fn punish(&mut self, instance_id: &str, phone: Phone, penalty: Penalty) {
        let (ban, kind, rule) = match penalty {
            Penalty::TemporaryBan { until, rule } => (
                Ban { code: BAN_CODE, expires_at: until, temporary: true },
                DropKind::TemporarilyBanned { until },
                rule,
            ),
            Penalty::Ban { rule } => (
                Ban { code: BAN_CODE, expires_at: DateTime::<Utc>::MAX_UTC, temporary: false },
                DropKind::Banned,
                rule,
            ),
        };
        let what = if ban.temporary { ban.detail() } else { format!("banned (code {BAN_CODE})") };
        let detail = format!("{what} (reaction model: {rule})");
        tracing::info!(instance_id, phone = %phone, %detail, "simnet reaction: banned");
        self.bans.insert(phone, ban);
        if let Some(conn) = self.conns.remove(instance_id) {
            conn.emit(NetEvent::Disconnected { kind, detail });
        }
    }

    fn connected(&self, instance_id: &str) -> Result<(&Conn, &String, &Phone), SimError> {
        match self.conns.get(instance_id) {
            Some(conn @ Conn { phase: Phase::Connected { token, phone }, .. }) => {
                Ok((conn, token, phone))
            }
            _ => Err(SimError::NotConnected),
        }
    }

    fn pairing_mut(&mut self, instance_id: &str) -> Result<&mut Conn, SimError> {
        match self.conns.get_mut(instance_id) {
            Some(conn) if matches!(conn.phase, Phase::Pairing { .. }) => Ok(conn),
            _ => Err(SimError::NotPairing),
        }
    }

    fn record(&mut self, instance_id: &str, entry: OutboxEntry) {
        let outbox = self.outboxes.entry(instance_id.to_string()).or_default();
        if outbox.len() >= OUTBOX_CAP {
            outbox.pop_front();
        }
        outbox.push_back(entry);
    }

    /// A participant as WhatsApp lists it: the phone JID when known, and the LID.
    fn participant(&mut self, member: &Jid, is_admin: bool) -> GroupParticipant {
        match member.phone() {
            Some(phone) => GroupParticipant {
                jid: Some(member.clone()),
                lid: Some(self.lid_for(&phone)),
                is_admin,
            },
            None => GroupParticipant {
                jid: self.phone_for_lid(member).map(|p| p.jid()),
                lid: Some(member.clone()),
                is_admin,
            },
        }
    }
}

impl SimNetwork {
    pub fn new(config: SimConfig) -> Self {
        Self::with_clock(config, Arc::new(WallClock))
    }

    /// A network whose bans, account ages and reactions go by `clock` (e.g. a
    /// [`TokioClock`](super::clock::TokioClock) on a paused runtime).
    pub fn with_clock(config: SimConfig, clock: Arc<dyn NetClock>) -> Self {
        Self {
            config,
            state: Arc::new(Mutex::new(State::default())),
            clock,
            synthetic: SyntheticHashes::default(),
        }
    }

    /// Turns the reaction model on or off and sets its rules (docs/sending.md).
    pub fn set_reactions(&self, reactions: Reactions) -> Result<(), SimError> {
        reactions.validate().map_err(SimError::InvalidRequest)?;
        lock(&self.state).reactions = reactions;
        Ok(())
    }

    /// The reaction model's settings.
    pub fn reactions(&self) -> Reactions {
        lock(&self.state).reactions.clone()
    }

    /// How old the account of a phone is on this network; `None` when it never saw it.
    pub fn account_age(&self, phone: &Phone) -> Option<chrono::TimeDelta> {
        lock(&self.state).ledger.age(phone, self.clock.now())
    }

    pub fn config(&self) -> SimConfig {
        self.config
    }

    /// Whether the instance has an open connection (pairing or logged in).
    pub fn is_attached(&self, instance_id: &str) -> bool {
        lock(&self.state).conns.contains_key(instance_id)
    }

    /// How many connections are open.
    pub fn attached_count(&self) -> usize {
        lock(&self.state).conns.len()
    }

    /// How many contact checks the instance made (each is also an outbox entry).
    pub fn check_calls(&self, instance_id: &str) -> u64 {
        lock(&self.state).checks.get(instance_id).copied().unwrap_or(0)
    }

    /// The bytes of an inbound media file, by token (what the HTTP service streams).
    pub(crate) fn media_bytes(&self, token: &str) -> Option<MediaBytes> {
        lock(&self.state).media.get(token)
    }

    /// Attaches and returns the connection's generation with its events; dropping the
    /// stream detaches exactly this generation.
    pub(crate) fn attach_generation(
        &self,
        instance_id: &str,
        session: Option<SessionBlob>,
    ) -> (u64, BoxStream<'static, NetEvent>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut st = lock(&self.state);
        st.next_generation += 1;
        let generation = st.next_generation;
        if let Some(old) = st.conns.remove(instance_id) {
            old.emit(NetEvent::Replaced);
        }
        match session {
            Some(blob) => {
                if let Some(refusal) = st.refuse(&blob, self.clock.now()) {
                    // Not registered: dropping `tx` ends the stream after this event.
                    let _ = tx.send(refusal);
                } else {
                    // Accept the session on sight: an in-process network starts empty after a
                    // gateway restart, and stored sessions must still log in.
                    st.devices
                        .insert(blob.device_token.clone(), Device { phone: blob.phone.clone() });
                    st.linked.insert(instance_id.to_string(), blob.device_token.clone());
                    st.adopt_lid(&blob.phone, &blob.lid);
                    st.ledger.seen(&blob.phone, self.clock.now());
                    let _ = tx.send(NetEvent::Connected);
                    // What the number never acknowledged comes again, as WhatsApp's offline
                    // queue does at a login.
                    for message in st.unacked.pending(instance_id) {
                        let _ = tx.send(NetEvent::Message(Box::new(message.clone())));
                    }
                    let phase = Phase::Connected { token: blob.device_token, phone: blob.phone };
                    st.conns.insert(instance_id.to_string(), Conn { generation, tx, phase });
                }
            }
            None if self.config.qr_codes == 0 => {
                let _ = tx.send(NetEvent::QrTimeout);
            }
            None => {
                let _ = tx.send(NetEvent::Qr {
                    code: qr_code(),
                    expires_at: utc_after(self.config.qr_first),
                });
                let timer = tokio::spawn(qr_rotation(
                    Arc::downgrade(&self.state),
                    instance_id.to_string(),
                    generation,
                    self.config,
                ));
                let phase = Phase::Pairing { _timer: QrTimer(Some(timer.abort_handle())) };
                st.conns.insert(instance_id.to_string(), Conn { generation, tx, phase });
            }
        }
        drop(st);

        let state = Arc::clone(&self.state);
        let id = instance_id.to_string();
        let events = stream::poll_fn(move |cx| rx.poll_recv(cx));
        let guarded = OnDropStream::new(events, move |_ended| {
            detach_generation(&state, &id, generation);
        });
        (generation, guarded.boxed())
    }

    /// Closes the instance's connection only if it is still the given attach.
    pub(crate) fn detach_generation(&self, instance_id: &str, generation: u64) {
        detach_generation(&self.state, instance_id, generation);
    }

    fn send_now(&self, instance_id: &str, msg: OutgoingMessage) -> Result<SendAck, SimError> {
        let mut st = lock(&self.state);
        let (_, _, phone) = st.connected(instance_id)?;
        let phone = phone.clone();
        if let Some(at) = st.sent_ids.get(&phone).and_then(|ids| ids.get(&msg.id)) {
            return Ok(SendAck { id: msg.id, at: *at });
        }
        check_outgoing(&msg)?;
        let known = st.contacts.get(instance_id).is_some_and(|c| c.contains(&msg.to));
        if st.restricted.contains(instance_id) && !msg.to.is_group() && !known {
            return Err(SimError::Refused {
                code: Some(crate::REACH_OUT_RESTRICTED),
                message: "WhatsApp error 463: this number may not start chats with new contacts \
                          right now (reach-out restricted)"
                    .into(),
            });
        }
        let now = self.clock.now();
        // The reaction model knows people by phone when the network does.
        let to = match msg.to.is_lid().then(|| st.phone_for_lid(&msg.to)).flatten() {
            Some(p) => p.jid(),
            None => msg.to.to_non_device(),
        };
        let State { reactions, ledger, .. } = &mut *st;
        if let Some(message) = ledger.first_contact_refusal(reactions, &phone, &to, now) {
            return Err(SimError::Refused { code: Some(crate::REACH_OUT_RESTRICTED), message });
        }
        let absent = to.phone().is_some_and(|p| st.absent.contains(&p));
        let text = match &msg.content {
            OutgoingContent::Text { text } => Some(text.clone()),
            _ => None,
        };
        let me = phone.jid();
        let at = Utc::now();
        let id = msg.id.clone();
        st.sent_ids.entry(phone.clone()).or_default().insert(id.clone(), at);
        if msg.to.is_group() {
            st.groups.touch(&msg.to, [me]);
        }
        st.record(instance_id, OutboxEntry::Message(Box::new(OutboxMessage::new(msg, at))));
        // Every simulated phone is online: the message is delivered at once.
        if let Ok((conn, _, _)) = st.connected(instance_id) {
            conn.emit(NetEvent::Receipt { id: id.clone(), status: ReceiptStatus::Delivered });
        }
        let State { reactions, ledger, .. } = &mut *st;
        if let Some(penalty) = ledger.sent(reactions, &phone, &to, text.as_deref(), absent, now) {
            st.punish(instance_id, phone, penalty);
        }
        Ok(SendAck { id, at })
    }

    /// Delivers an inbound whose content `prepare` already checked.
    fn inbound_now(
        &self,
        instance_id: &str,
        spec: InboundSpec,
        content: Prepared,
    ) -> Result<InboundResult, SimError> {
        let invalid = |m: String| SimError::InvalidRequest(m);
        let from = Jid::parse_recipient(&spec.from).map_err(|e| invalid(format!("from: {e}")))?;
        if from.is_group() {
            return Err(invalid("from: a message is sent by a contact, not a group".into()));
        }
        let chat = match &spec.chat {
            Some(c) => {
                let jid = Jid::parse(c).map_err(|e| invalid(format!("chat: {e}")))?;
                if !jid.is_group() {
                    return Err(invalid(format!("chat: `{c}` is not a group (<id>@g.us)")));
                }
                Some(jid)
            }
            None => None,
        };
        let mentions = spec
            .mentions
            .iter()
            .map(|m| Jid::parse_recipient(m).map_err(|e| invalid(format!("mentions: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;

        let mut st = lock(&self.state);
        let my_phone = st.connected(instance_id)?.2.clone();
        let me = my_phone.jid();
        // A LID sender stays a LID; its phone is known only if the network has seen it.
        let as_lid = spec.as_lid || from.is_lid();
        let (phone, lid) = match from.phone() {
            Some(phone) => {
                let lid = st.lid_for(&phone);
                (Some(phone), lid)
            }
            None => (st.phone_for_lid(&from), from.clone()),
        };
        let phone_jid = phone.as_ref().map(Phone::jid);
        let contact = phone_jid.clone().unwrap_or_else(|| lid.clone());
        st.ledger.received(&my_phone, &contact, self.clock.now());
        st.contacts.entry(instance_id.to_string()).or_default().insert(contact);
        let (sender, sender_alt) = match (&phone_jid, as_lid) {
            (Some(pj), false) => (pj.clone(), None),
            (pj, _) => (lid.clone(), pj.clone()),
        };
        let mentions = mentions
            .into_iter()
            .map(|m| match m.phone() {
                Some(p) if as_lid => st.lid_for(&p),
                _ => m,
            })
            .collect();
        let chat = match chat {
            Some(group) => {
                st.groups.touch(&group, [me, phone_jid.clone().unwrap_or_else(|| lid.clone())]);
                group
            }
            None => sender.clone(),
        };
        let digits = phone.as_ref().map_or(lid.user(), |p| p.digits());
        let tail = &digits[digits.len().saturating_sub(4)..];
        let mut sha256 = None;
        let content = match content {
            Prepared::Text => InboundContent::Text,
            Prepared::Media(m) => {
                let size = m.bytes.len();
                let token = st.media.insert(m.bytes);
                sha256 = Some(m.sha256);
                InboundContent::Media(InboundMedia {
                    media_kind: m.kind,
                    mime: m.mime,
                    size,
                    file_name: m.file_name,
                    voice: m.voice,
                    handle: media::handle(&token),
                })
            }
            Prepared::Location(l) => InboundContent::Location(l),
            Prepared::Contact(c) => InboundContent::Contact(c),
            Prepared::Reaction { target_id, emoji } => {
                InboundContent::Reaction { target_id, emoji }
            }
        };
        let id = message_id();
        let message = InboundMessage {
            content,
            reply_to: spec.reply_to,
            id: id.clone(),
            chat,
            sender,
            sender_alt,
            push_name: Some(spec.push_name.unwrap_or_else(|| format!("Contact {tail}"))),
            text: spec.text,
            mentions,
            at: Utc::now(),
        };
        st.connected(instance_id)?.0.emit(NetEvent::Message(Box::new(message.clone())));
        st.unacked.handed(instance_id, message);
        Ok(InboundResult { message_id: id, sha256 })
    }

    /// A contact calls the instance: the offer goes to its connection, addressed like an
    /// inbound message's sender (by LID, with the phone beside, when asked to).
    fn call_now(&self, instance_id: &str, spec: CallSpec) -> Result<CallResult, SimError> {
        let invalid = |m: String| SimError::InvalidRequest(m);
        let from = Jid::parse_recipient(&spec.from).map_err(|e| invalid(format!("from: {e}")))?;
        if from.is_group() {
            return Err(invalid("from: a call is placed by a contact, not a group".into()));
        }
        let group = match &spec.group {
            Some(g) => {
                let jid = Jid::parse(g).map_err(|e| invalid(format!("group: {e}")))?;
                if !jid.is_group() {
                    return Err(invalid(format!("group: `{g}` is not a group (<id>@g.us)")));
                }
                Some(jid)
            }
            None => None,
        };
        let mut st = lock(&self.state);
        st.connected(instance_id)?;
        let (phone_jid, lid) = match from.phone() {
            Some(phone) => (Some(phone.jid()), st.lid_for(&phone)),
            None => (st.phone_for_lid(&from).map(|p| p.jid()), from.clone()),
        };
        let (caller, caller_alt) = match phone_jid {
            Some(pj) if !(spec.as_lid || from.is_lid()) => (pj, None),
            pj => (lid, pj),
        };
        let id = st.ringing.offer(instance_id);
        let call = IncomingCall {
            id: id.clone(),
            from: caller.clone(),
            creator: caller,
            from_alt: caller_alt,
            video: spec.video,
            is_group: group.is_some(),
            group,
            at: Utc::now(),
        };
        st.connected(instance_id)?.0.emit(NetEvent::Call(call));
        Ok(CallResult { call_id: id })
    }
}

fn detach_generation(state: &Mutex<State>, instance_id: &str, generation: u64) {
    let mut st = lock(state);
    if st.conns.get(instance_id).is_some_and(|c| c.generation == generation) {
        st.conns.remove(instance_id);
    }
}

/// Rotates the QR codes of one pairing, then times it out. Holds the state weakly so a
/// dropped network is not kept alive by its timers.
async fn qr_rotation(
    state: Weak<Mutex<State>>,
    instance_id: String,
    generation: u64,
    cfg: SimConfig,
) {
    let still_pairing = |st: &State| {
        st.conns
            .get(&instance_id)
            .is_some_and(|c| c.generation == generation && matches!(c.phase, Phase::Pairing { .. }))
    };
    let mut valid_for = cfg.qr_first;
    for _ in 1..cfg.qr_codes {
        tokio::time::sleep(valid_for).await;
        valid_for = cfg.qr_next;
        let Some(state) = state.upgrade() else { return };
        let st = lock(&state);
        if !still_pairing(&st) {
            return;
        }
        if let Some(conn) = st.conns.get(&instance_id) {
            conn.emit(NetEvent::Qr { code: qr_code(), expires_at: utc_after(valid_for) });
        }
    }
    tokio::time::sleep(valid_for).await;
    let Some(state) = state.upgrade() else { return };
    let mut st = lock(&state);
    if still_pairing(&st) {
        if let Some(conn) = st.conns.remove(&instance_id) {
            conn.emit(NetEvent::QrTimeout);
        }
    }
}

#[async_trait]
impl SimNet for SimNetwork {
    async fn attach(
        &self,
        instance_id: &str,
        session: Option<SessionBlob>,
    ) -> Result<BoxStream<'static, NetEvent>, SimError> {
        Ok(self.attach_generation(instance_id, session).1)
    }

    async fn send(&self, instance_id: &str, msg: OutgoingMessage) -> Result<SendAck, SimError> {
        let ack = self.send_now(instance_id, msg)?;
        if !self.config.ack_delay.is_zero() {
            tokio::time::sleep(self.config.ack_delay).await;
        }
        Ok(ack)
    }

    async fn chat_state(
        &self,
        instance_id: &str,
        to: &Jid,
        state: ChatState,
    ) -> Result<(), SimError> {
        let mut st = lock(&self.state);
        st.connected(instance_id)?;
        let entry = OutboxEntry::Presence { presence: state, to: to.clone(), at: Utc::now() };
        st.record(instance_id, entry);
        Ok(())
    }

    async fn mark_read(
        &self,
        instance_id: &str,
        chat: &Jid,
        sender: Option<&Jid>,
        ids: &[String],
    ) -> Result<(), SimError> {
        if ids.is_empty() {
            return Err(SimError::InvalidRequest(
                "a read receipt names at least one message".into(),
            ));
        }
        let mut st = lock(&self.state);
        st.connected(instance_id)?;
        let entry = OutboxEntry::Read {
            read: ids.to_vec(),
            chat: chat.to_non_device(),
            sender: sender.map(Jid::to_non_device),
            at: Utc::now(),
        };
        st.record(instance_id, entry);
        Ok(())
    }

    async fn reject_call(&self, instance_id: &str, call: &IncomingCall) -> Result<(), SimError> {
        let mut st = lock(&self.state);
        st.connected(instance_id)?;
        if !st.ringing.reject(instance_id, &call.id) {
            return Err(SimError::NotFound(format!("no call {} rings on this number", call.id)));
        }
        let entry = OutboxEntry::CallRejected {
            rejected_call: call.id.clone(),
            to: call.from.to_non_device(),
            at: Utc::now(),
        };
        st.record(instance_id, entry);
        Ok(())
    }

    async fn set_presence(&self, instance_id: &str, presence: Presence) -> Result<(), SimError> {
        let mut st = lock(&self.state);
        st.connected(instance_id)?;
        st.record(instance_id, OutboxEntry::Availability { presence, at: Utc::now() });
        Ok(())
    }

    async fn pair_code(&self, instance_id: &str, phone: &Phone) -> Result<PairCode, SimError> {
        // Any phone that then scans links the device, so the code needs no bookkeeping.
        lock(&self.state).pairing_mut(instance_id)?;
        tracing::debug!(instance_id, phone = %phone, "simnet pair code issued");
        Ok(PairCode { code: pair_code_text(), expires_at: utc_after(PAIR_CODE_TTL) })
    }

    async fn logout(&self, instance_id: &str) -> Result<(), SimError> {
        let mut st = lock(&self.state);
        let token = match st.conns.remove(instance_id) {
            Some(Conn { phase: Phase::Connected { token, .. }, .. }) => Some(token),
            _ => None,
        };
        let linked = st.linked.remove(instance_id);
        for token in token.into_iter().chain(linked) {
            st.devices.remove(&token);
            st.revoked.insert(token);
        }
        st.unacked.forget(instance_id);
        Ok(())
    }

    async fn detach(&self, instance_id: &str) -> Result<(), SimError> {
        lock(&self.state).conns.remove(instance_id);
        Ok(())
    }

    async fn download(&self, token: &str) -> Result<MediaStream, SimError> {
        self.media_bytes(token).map(MediaBytes::chunks).ok_or_else(media::not_found)
    }

    async fn groups(&self, instance_id: &str) -> Result<Vec<GroupSummary>, SimError> {
        let st = lock(&self.state);
        let me = st.connected(instance_id)?.2;
        Ok(st.groups.of_member(me))
    }

    async fn group(&self, instance_id: &str, jid: &Jid) -> Result<GroupInfo, SimError> {
        let mut st = lock(&self.state);
        let me = st.connected(instance_id)?.2.clone();
        let jid = jid.to_non_device();
        let Some(group) = st.groups.with_member(&jid, &me) else {
            return Err(SimError::NotFound(format!("the number is not in group {jid}")));
        };
        let summary = group.summary(&jid, &me.jid());
        let members = group.members();
        let participants = members.iter().map(|(m, admin)| st.participant(m, *admin)).collect();
        Ok(GroupInfo { summary, participants })
    }

    async fn check_contacts(
        &self,
        instance_id: &str,
        phones: &[Phone],
    ) -> Result<Vec<ContactStatus>, SimError> {
        let mut st = lock(&self.state);
        st.connected(instance_id)?;
        *st.checks.entry(instance_id.to_string()).or_default() += 1;
        st.record(instance_id, OutboxEntry::Check { check: phones.to_vec(), at: Utc::now() });
        let statuses = phones
            .iter()
            .map(|phone| {
                if st.absent.contains(phone) {
                    ContactStatus { phone: phone.clone(), on_whatsapp: false, jid: None, lid: None }
                } else {
                    let lid = st.lid_for(phone);
                    ContactStatus {
                        phone: phone.clone(),
                        on_whatsapp: true,
                        jid: Some(phone.jid()),
                        lid: Some(lid),
                    }
                }
            })
            .collect();
        Ok(statuses)
    }

    async fn scan(&self, instance_id: &str, req: ScanRequest) -> Result<ScanResult, SimError> {
        let phone = Phone::parse(&req.phone)
            .map_err(|e| SimError::InvalidRequest(format!("phone: {e}")))?;
        let mut st = lock(&self.state);
        st.pairing_mut(instance_id)?;
        let token = device_token();
        let lid = st.lid_for(&phone);
        st.devices.insert(token.clone(), Device { phone: phone.clone() });
        st.linked.insert(instance_id.to_string(), token.clone());
        // A new device starts with an empty queue, as on WhatsApp.
        st.unacked.forget(instance_id);
        // Pairing creates the account on the network (its age counts from here).
        let now = self.clock.now();
        st.ledger.seen(&phone, now);
        let ban = st.active_ban(&phone, now).map(|ban| (ban.refusal(), ban.detail()));
        let blob = SessionBlob {
            device_token: token.clone(),
            phone: phone.clone(),
            jid: phone.jid(),
            lid: lid.clone(),
        };
        let result = ScanResult { phone: phone.e164(), jid: phone.jid(), lid };
        if let Some((kind, detail)) = ban {
            // Linking works; logging in with a banned number does not.
            if let Some(conn) = st.conns.remove(instance_id) {
                conn.emit(NetEvent::Paired(blob));
                conn.emit(NetEvent::Disconnected { kind, detail });
            }
        } else if let Some(conn) = st.conns.get_mut(instance_id) {
            conn.emit(NetEvent::Paired(blob));
            conn.emit(NetEvent::Connected);
            // Replacing the phase drops the QR timer, which stops the rotation.
            conn.phase = Phase::Connected { token, phone };
        }
        Ok(result)
    }

    async fn drop_connection(&self, instance_id: &str, req: DropRequest) -> Result<(), SimError> {
        let mut st = lock(&self.state);
        let (_, token, phone) = st.connected(instance_id)?;
        let (token, phone) = (token.clone(), phone.clone());
        let detail = match req.reason {
            DropKind::Transient => "connection lost".to_string(),
            DropKind::LoggedOut => {
                st.devices.remove(&token);
                st.revoked.insert(token);
                st.linked.remove(instance_id);
                st.unacked.forget(instance_id);
                "the device was unlinked".to_string()
            }
            DropKind::Banned => {
                let expires_at = self
                    .clock
                    .now()
                    .checked_add_signed(TimeDelta::from_std(BAN_FOR).unwrap_or(TimeDelta::MAX))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                let ban = Ban { code: BAN_CODE, expires_at, temporary: false };
                let detail = ban.detail();
                st.bans.insert(phone, ban);
                detail
            }
            DropKind::TemporarilyBanned { until } => {
                let ban = Ban { code: BAN_CODE, expires_at: until, temporary: true };
                let detail = ban.detail();
                st.bans.insert(phone, ban);
                detail
            }
            DropKind::Ended => "another session took over this number".to_string(),
        };
        if let Some(conn) = st.conns.remove(instance_id) {
            conn.emit(NetEvent::Disconnected { kind: req.reason, detail });
        }
        Ok(())
    }

    async fn inbound(
        &self,
        instance_id: &str,
        spec: InboundSpec,
    ) -> Result<InboundResult, SimError> {
        let content = inbound::prepare(&spec, &self.synthetic).await?;
        self.inbound_now(instance_id, spec, content)
    }

    async fn call(&self, instance_id: &str, spec: CallSpec) -> Result<CallResult, SimError> {
        self.call_now(instance_id, spec)
    }

    async fn ack_inbound(&self, instance_id: &str, ids: &[String]) -> Result<(), SimError> {
        lock(&self.state).unacked.ack(instance_id, ids);
        Ok(())
    }

    async fn unacked_inbound(&self, instance_id: &str) -> Result<Vec<String>, SimError> {
        let st = lock(&self.state);
        Ok(st.unacked.pending(instance_id).map(|m| m.id.clone()).collect())
    }

    async fn restrict(&self, instance_id: &str, req: RestrictRequest) -> Result<(), SimError> {
        let mut st = lock(&self.state);
        if req.reach_out {
            st.restricted.insert(instance_id.to_string());
        } else {
            st.restricted.remove(instance_id);
        }
        Ok(())
    }

    async fn outbox(&self, instance_id: &str) -> Result<Vec<OutboxEntry>, SimError> {
        let st = lock(&self.state);
        Ok(st.outboxes.get(instance_id).map(|o| o.iter().cloned().collect()).unwrap_or_default())
    }

    async fn create_group(&self, req: CreateGroupRequest) -> Result<CreateGroupResult, SimError> {
        let new = NewGroup::parse(&req)?;
        let jid = lock(&self.state).groups.create(new);
        Ok(CreateGroupResult { jid })
    }

    async fn get_reactions(&self) -> Result<Reactions, SimError> {
        Ok(self.reactions())
    }

    async fn put_reactions(&self, reactions: Reactions) -> Result<(), SimError> {
        self.set_reactions(reactions)
    }

    async fn set_age(&self, instance_id: &str, req: AgeRequest) -> Result<(), SimError> {
        let mut st = lock(&self.state);
        let phone = match st.connected(instance_id) {
            Ok((_, _, phone)) => phone.clone(),
            Err(_) => st
                .linked
                .get(instance_id)
                .and_then(|token| st.devices.get(token))
                .map(|d| d.phone.clone())
                .ok_or(SimError::NotConnected)?,
        };
        st.ledger.set_age(&phone, req.days, self.clock.now());
        Ok(())
    }

    async fn set_contact(&self, req: ContactRequest) -> Result<(), SimError> {
        let phone = Phone::parse(&req.phone)
            .map_err(|e| SimError::InvalidRequest(format!("phone: {e}")))?;
        let mut st = lock(&self.state);
        if req.on_whatsapp {
            st.absent.remove(&phone);
        } else {
            st.absent.insert(phone);
        }
        Ok(())
    }
}
