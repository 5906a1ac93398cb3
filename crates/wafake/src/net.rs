//! A network of fake contacts over a [`WireServer`]: what `bzapper simnet --wire` and its
//! control API drive.
//!
//! - One [`FakeContact`] per phone, made on first use. Its LID is the server's for that
//!   phone ([`WireServer::lid_for_phone`]), so a contact that also links a device keeps it.
//! - As the server's [`SignalHooks`]: serves a prekey bundle for every contact a client asks
//!   for, decrypts every message a device sends and files it, with the device's chat states,
//!   in that phone's outbox, in order.
//!   A message to a group is decrypted by the fake participants (each takes the sender key
//!   from its pairwise part, then reads the `skmsg`) and filed once, to the group.
//! - Delivery receipts: once a contact has decrypted a device's message, the device gets
//!   `<receipt from id t/>` after the server's ack ([`SignalHooks::after_ack`]); read
//!   receipts on demand ([`WireNet::read`]).
//! - [`WireNet::inbound`]: a contact encrypts a message of any kind ([`WireInbound`]) to a
//!   device (from the device's uploaded prekeys the first time) and the server delivers it;
//!   or posts it in a group, with its sender key.
//! - A media host ([`crate::media`]) on the server's IP, its own port: the `media_conn` iq
//!   names it, clients upload to it and download from it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeValue};
use waproto::whatsapp as wa;

use crate::media::MediaHost;
use crate::rich::{Content, OutboxMessage, Quote, WireInbound};
use crate::signal::{ClientKeys, FakeContact};
use crate::{ChatState, SignalHooks, WireServer};

/// One thing a phone's devices sent into the network, as the gateway's simulated network
/// writes its outbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OutboxItem {
    /// `{"to","text","id","at","mentions"}` and, by kind, `reply_to`, the media keys,
    /// `location`, `contact` or `reaction` (see [`OutboxMessage`]).
    Message(Box<OutboxMessage>),
    /// `{"presence": "composing" | "recording" | "paused", "to", "at"}`.
    Presence { presence: String, to: String, at: DateTime<Utc> },
    /// `{"check": ["+55…", …], "at"}`: one existence check (a usync contact query) the
    /// device sent, with the phones it asked about.
    Check { check: Vec<String>, at: DateTime<Utc> },
    /// `{"read": ["<id>", …], "chat", "sender"?, "at"}`: a read receipt the device sent for
    /// messages it received in `chat` (`<receipt type="read"|"read-self">`; `sender` is the
    /// receipt's `participant`, in a group).
    Read {
        read: Vec<String>,
        chat: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        sender: Option<String>,
        at: DateTime<Utc>,
    },
    /// `{"presence": "available" | "unavailable", "at"}`: the device announced its own
    /// presence (`<presence type>` without `to`).
    Availability { presence: String, at: DateTime<Utc> },
    /// `{"rejected_call": "<call id>", "to", "at"}`: the device rejected a call it was
    /// offered (`<call to><reject call-id/></call>`; `to`: the caller).
    CallRejected { rejected_call: String, to: String, at: DateTime<Utc> },
}

/// Why [`WireNet::inbound`] could not deliver.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// No device of the phone is linked (or online, for what needs it now: a read receipt).
    #[error("no device of +{0} is online")]
    NotConnected(String),
    #[error("device {0} has not uploaded its prekeys yet")]
    NoPrekeys(String),
    /// No message the device sent has that id (a read receipt for it).
    #[error("no message {0} was sent through the network by that phone")]
    UnknownMessage(String),
    /// The inbound is not one WhatsApp would deliver (a bad phone, two kinds at once, …).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

#[derive(Default)]
struct Inner {
    /// By phone (digits).
    contacts: HashMap<String, FakeContact>,
    /// LID (digits) → phone (digits), for every contact made.
    lids: HashMap<String, String>,
    /// By phone (digits) of the sending device. `None`: a media message whose file is
    /// being read back; [`WireNet::outbox`] shows the items before the first one.
    outbox: HashMap<String, Vec<Option<OutboxItem>>>,
    /// The uploaded keys of each client device, by its JID, once a contact needed them.
    client_keys: HashMap<String, ClientKeys>,
    next_id: u64,
    /// Every message sent through the network, by WhatsApp id: who wrote it (phone digits)
    /// and its text, for quotes and reactions.
    known: HashMap<String, Known>,
    /// Stanzas to send a device after the server acks one of its messages (delivery
    /// receipts), by [`after_ack_key`].
    after_ack: HashMap<String, Vec<Node>>,
}

/// A message that went through the network.
#[derive(Debug, Clone)]
struct Known {
    /// Who wrote it (phone digits).
    sender: String,
    text: String,
    /// For a message a device sent: the chat it addressed (a contact's JID, or a group).
    chat: Option<Jid>,
}

/// What [`WireNet::inbound`] sent: `{"message_id", "sha256"?}` (the lower-case hex SHA-256
/// of the media file's plaintext, when it carries one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundSent {
    pub message_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Looks up the server's LID of a phone (over a weak server reference).
type LidLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The hooks half: everything that does not need the server (which holds the hooks).
struct Hooks {
    inner: Mutex<Inner>,
    /// The server's LID of a phone (a closure over a weak server reference).
    lid_for: LidLookup,
    /// Groups and contact checks (`directory.rs`).
    directory: crate::directory::Directory,
    /// The media CDN (`media.rs`).
    media: Arc<MediaHost>,
    /// These hooks, for the media read-backs that finish off the connection's task.
    me: std::sync::Weak<Hooks>,
}

/// Fake contacts and outboxes over a [`WireServer`]; see the module docs.
pub struct WireNet {
    server: Arc<WireServer>,
    hooks: Arc<Hooks>,
    /// Dropped with the network: stops the media host.
    _media_stop: tokio::sync::oneshot::Sender<()>,
}

/// The phone (digits) of a device JID `PHONE:N@s.whatsapp.net` or `PHONE@…`.
pub fn phone_of(jid: &str) -> &str {
    jid.split([':', '@']).next().unwrap_or_default()
}

fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs.get(key).map(|v| v.as_str().into_owned())
}

impl Hooks {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("poisoned")
    }

    /// The contact of `phone` (digits), made now if new.
    fn contact<'a>(&self, inner: &'a mut Inner, phone: &str) -> Result<&'a mut FakeContact> {
        if !inner.contacts.contains_key(phone) {
            let contact = FakeContact::new(phone)?;
            if let Some(lid) = (self.lid_for)(phone) {
                inner.lids.insert(lid, phone.to_string());
            }
            inner.contacts.insert(phone.to_string(), contact);
        }
        Ok(inner.contacts.get_mut(phone).expect("just inserted"))
    }

    /// The contact's phone behind a JID the client wrote: a phone JID, or a LID we know.
    fn phone_behind(inner: &Inner, jid: &Jid) -> Option<String> {
        match jid.server {
            wacore_binary::Server::Pn => Some(jid.user_base().to_string()),
            wacore_binary::Server::Lid => inner.lids.get(jid.user_base()).cloned(),
            _ => None,
        }
    }

    fn push(&self, device: &str, item: OutboxItem) {
        self.inner().outbox.entry(phone_of(device).to_string()).or_default().push(Some(item));
    }
}

impl Hooks {
    /// The size and hash of a media file's plaintext, read back from the media host; `None`
    /// (with a warning) when it cannot be, or does not match what the message declares.
    fn plaintext(&self, f: &crate::rich::MediaRef) -> Option<crate::media::Plaintext> {
        let (Some(path), Some(key)) = (&f.direct_path, &f.media_key) else {
            tracing::warn!(?f.kind, "wire net: a media message without direct_path or media_key");
            return None;
        };
        match self.media.plaintext_of(path, key, f.kind.media_type()) {
            Ok(p) if f.file_sha256.as_deref().is_none_or(|d| d == p.sha256) => Some(p),
            Ok(p) => {
                tracing::warn!(
                    path,
                    "wire net: the file decrypts to sha256 {} but the message declares {}; \
                     reporting the declared one",
                    crate::rich::hex(&p.sha256),
                    crate::rich::hex(f.file_sha256.as_deref().unwrap_or_default())
                );
                None
            }
            Err(e) => {
                tracing::warn!(path, "wire net: cannot read back a media file: {e:#}");
                None
            }
        }
    }
}

impl Hooks {
    /// Files a message `device` sent to `to` (a contact's JID or a group) that a contact
    /// decrypted, and queues `receipts` for after the server's ack.
    fn file(&self, device: &str, m: wa::Message, to: Jid, id: String, receipts: Vec<Node>) {
        let at = Utc::now();
        // First as the message declares it (enough for quotes and reactions).
        let declared = crate::rich::outbox_message(&m, to.to_string(), id, at, |_| None);
        let phone = phone_of(device).to_string();
        let known =
            Known { sender: phone.clone(), text: declared.text.clone(), chat: Some(to.clone()) };
        let mut inner = self.inner();
        if !receipts.is_empty() {
            inner.after_ack.insert(after_ack_key(device, &declared.id), receipts);
        }
        inner.known.insert(declared.id.clone(), known);
        let outbox = inner.outbox.entry(phone.clone()).or_default();
        let (Some(_), Some(me)) = (&declared.media, self.me.upgrade()) else {
            outbox.push(Some(OutboxItem::Message(Box::new(declared))));
            return;
        };
        // A media file is decrypted off the connection's task (20 MB take seconds in a debug
        // build); its slot holds the outbox's order meanwhile.
        let slot = outbox.len();
        outbox.push(None);
        drop(inner);
        let fill = move || {
            let entry = crate::rich::outbox_message(&m, to.to_string(), declared.id, at, |f| {
                me.plaintext(f)
            });
            if let Some(s) = me.inner().outbox.get_mut(&phone).and_then(|o| o.get_mut(slot)) {
                *s = Some(OutboxItem::Message(Box::new(entry)));
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(fill)),
            Err(_) => fill(),
        }
    }

    /// A message `device` (`sender`) sent to `group`: every fake participant with a
    /// pairwise part takes the sender key in it, every one holding the sender key decrypts
    /// the `skmsg`, and the message is filed once, with a delivery receipt per participant
    /// that read it.
    fn on_group_message(
        &self,
        device: &str,
        sender: &Jid,
        group: &Jid,
        id: String,
        message: &Node,
    ) {
        let group = group.to_non_ad();
        let Some(members) = self.directory.group(&group.to_string()).map(|g| g.participants) else {
            tracing::debug!(%group, "wire net: a message to an unknown group, not recorded");
            return;
        };
        let me = phone_of(device);
        let mut inner = self.inner();
        let tos = message
            .get_optional_child("participants")
            .and_then(Node::children)
            .unwrap_or_default()
            .iter()
            .filter(|t| t.tag == "to");
        for to in tos {
            let Some(jid) = to.attrs.get("jid").and_then(NodeValue::to_jid) else { continue };
            let Some(enc) = to.get_optional_child("enc") else { continue };
            // The fake contacts have device 0 only; the rest are the sender's own devices.
            let Some(phone) = Self::phone_behind(&inner, &jid).filter(|p| p != me) else {
                continue;
            };
            if jid.device != 0 || !members.contains(&phone) {
                continue;
            }
            let accepted = self
                .contact(&mut inner, &phone)
                .and_then(|c| c.accept_group_enc(sender, &group, &enc.as_node_ref()));
            if let Err(e) = accepted {
                tracing::warn!(%group, "wire net: +{phone} cannot take the sender key of {device}: {e:#}");
            }
        }
        let skmsg = message
            .children()
            .unwrap_or_default()
            .iter()
            .find(|c| c.tag == "enc" && attr(c, "type").as_deref() == Some("skmsg"));
        let Some(skmsg) = skmsg else {
            tracing::warn!(%group, "wire net: a group message from {device} without a skmsg");
            return;
        };
        let node = skmsg.as_node_ref();
        let version = node.attrs().optional_u64("v").unwrap_or(2);
        let (Some(bytes), Ok(version)) = (node.content_bytes(), u8::try_from(version)) else {
            tracing::warn!(%group, "wire net: an unreadable skmsg from {device}");
            return;
        };
        let mut decrypted = None;
        let mut readers = Vec::new();
        for phone in members.iter().filter(|p| p.as_str() != me) {
            let Some(contact) = inner.contacts.get_mut(phone) else { continue };
            if !contact.has_sender_key(&group, sender) {
                continue;
            }
            match contact.decrypt_group(sender, &group, bytes, version) {
                Ok(m) => {
                    readers.push(phone.clone());
                    decrypted.get_or_insert(m);
                }
                Err(e) => {
                    tracing::warn!(%group, "wire net: +{phone} cannot decrypt a skmsg of {device}: {e:#}")
                }
            }
        }
        drop(inner);
        let Some(m) = decrypted else {
            tracing::warn!(%group, "wire net: no participant could decrypt a message from {device}");
            return;
        };
        let receipts =
            readers.iter().map(|p| receipt_node(&group, Some(&Jid::pn(p)), &id, None)).collect();
        self.file(device, m, group, id, receipts);
    }
}

/// The outbox item of a read receipt a device sent (`type` `read` or `read-self`); `None`
/// for its delivery receipts and retry requests, which the outbox does not show.
fn read_receipt(receipt: &Node) -> Option<OutboxItem> {
    if !matches!(attr(receipt, "type").as_deref(), Some("read" | "read-self")) {
        return None;
    }
    let chat = receipt.attrs.get("to").and_then(NodeValue::to_jid)?.to_non_ad().to_string();
    let sender = receipt
        .attrs
        .get("participant")
        .and_then(NodeValue::to_jid)
        .map(|j| j.to_non_ad().to_string());
    let read = crate::offline::acknowledged(receipt);
    Some(OutboxItem::Read { read, chat, sender, at: Utc::now() })
}

/// The key of the stanzas queued for after the ack of message `id` from `device`.
fn after_ack_key(device: &str, id: &str) -> String {
    format!("{device}\n{id}")
}

/// `<receipt from id t [participant] [type]/>`: the delivery (no type) or `read` receipt of
/// message `id` from `from` (a contact, or a group with the contact as `participant`).
fn receipt_node(from: &Jid, participant: Option<&Jid>, id: &str, kind: Option<&str>) -> Node {
    let mut b = NodeBuilder::new("receipt").attr("from", from.clone()).attr("id", id);
    if let Some(p) = participant {
        b = b.attr("participant", p.clone());
    }
    if let Some(kind) = kind {
        b = b.attr("type", kind);
    }
    b.attr("t", crate::pairing::now_secs().to_string()).build()
}

impl SignalHooks for Hooks {
    fn on_message(&self, device: &str, message: &Node) {
        let Some(to) = message.attrs.get("to").and_then(NodeValue::to_jid) else { return };
        let id = attr(message, "id").unwrap_or_default();
        let Ok(sender) = device.parse::<Jid>() else { return };
        if to.server == wacore_binary::Server::Group {
            return self.on_group_message(device, &sender, &to, id, message);
        }
        let decrypted = {
            let mut inner = self.inner();
            let Some(phone) = Self::phone_behind(&inner, &to) else {
                tracing::debug!(%to, "wire net: a message to no contact, not recorded");
                return;
            };
            self.contact(&mut inner, &phone)
                .and_then(|c| c.decrypt_stanza(&sender, &message.as_node_ref()))
        };
        match decrypted {
            Ok(Some(m)) => {
                // The contact's phone got it: a delivery receipt from the chat the client
                // addressed, after the ack.
                let to = to.to_non_ad();
                let receipt = receipt_node(&to, None, &id, None);
                self.file(device, m, to, id, vec![receipt]);
            }
            Ok(None) => {
                tracing::debug!(%to, "wire net: no part of the message was for the contact")
            }
            Err(e) => {
                tracing::warn!(%to, "wire net: cannot decrypt a message from {device}: {e:#}")
            }
        }
    }

    fn after_ack(&self, device: &str, message: &Node) -> Vec<Node> {
        let Some(id) = attr(message, "id") else { return vec![] };
        self.inner().after_ack.remove(&after_ack_key(device, &id)).unwrap_or_default()
    }

    fn on_receipt(&self, device: &str, receipt: &Node) {
        if let Some(item) = read_receipt(receipt) {
            self.push(device, item);
        }
    }

    fn on_call(&self, device: &str, call: &Node) {
        if let Some(item) = crate::calls::rejection(call) {
            self.push(device, item);
        }
    }

    fn on_chat_state(&self, device: &str, state: &ChatState) {
        let own = state.tag == "presence" && state.to.is_none();
        if own && matches!(state.state.as_str(), "available" | "unavailable") {
            let (presence, at) = (state.state.clone(), Utc::now());
            self.push(device, OutboxItem::Availability { presence, at });
            return;
        }
        if state.tag != "chatstate" {
            return;
        }
        let Some(to) = state.to.clone() else { return };
        let at = Utc::now();
        self.push(device, OutboxItem::Presence { presence: state.state.clone(), to, at });
    }

    fn prekey_bundles(&self, _device: &str, request: &Node) -> Option<Vec<Node>> {
        let users = request.get_optional_child("key")?.children()?;
        let mut inner = self.inner();
        let mut nodes = Vec::new();
        for jid in users.iter().filter_map(|u| u.attrs.get("jid").and_then(NodeValue::to_jid)) {
            // Only device 0: the fake contacts have no companions.
            if jid.device != 0 {
                continue;
            }
            let Some(phone) = Self::phone_behind(&inner, &jid) else { continue };
            match self.contact(&mut inner, &phone).and_then(|c| c.prekey_user_node(&jid)) {
                Ok(node) => nodes.push(node),
                Err(e) => tracing::warn!(%jid, "wire net: no bundle: {e:#}"),
            }
        }
        Some(vec![NodeBuilder::new("list").children(nodes).build()])
    }

    fn answer_iq(&self, device: &str, iq: &Node) -> Option<crate::IqAnswer> {
        if let Some(a) = crate::media::answer_iq(&self.media, iq) {
            return Some(a);
        }
        if let Some(a) =
            self.directory.answer_iq(device, iq, &*self.lid_for, &|item| self.push(device, item))
        {
            return Some(a);
        }
        None
    }
}

impl WireNet {
    /// Wraps `server`, installs the network as its [`SignalHooks`] and starts its media host
    /// on the server's IP (any free port; see [`WireNet::media_addr`]). Must be called
    /// within a tokio runtime; panics if no port is free there (see [`WireNet::try_new`]).
    pub fn new(server: Arc<WireServer>) -> Arc<Self> {
        Self::try_new(server).expect("binding the wire media host")
    }

    /// [`WireNet::new`], with the media host's bind error returned.
    pub fn try_new(server: Arc<WireServer>) -> std::io::Result<Arc<Self>> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let media = MediaHost::start(server.addr().ip(), async {
            let _ = stopped.await;
        })?;
        let weak = Arc::downgrade(&server);
        let hooks = Arc::new_cyclic(|me| Hooks {
            inner: Mutex::new(Inner::default()),
            lid_for: Box::new(move |phone| weak.upgrade().map(|s| s.lid_for_phone(phone))),
            directory: Default::default(),
            media,
            me: me.clone(),
        });
        server.set_hooks(hooks.clone());
        Ok(Arc::new(Self { server, hooks, _media_stop: stop }))
    }

    /// `IP:PORT` of the media host: the `hostname` the media_conn iq names. Clients build
    /// `https://IP:PORT/…` URLs from it; the host speaks plain HTTP.
    pub fn media_addr(&self) -> std::net::SocketAddr {
        self.hooks.media.addr()
    }

    /// The media host itself (to store or read back files in tests).
    pub fn media(&self) -> &Arc<MediaHost> {
        &self.hooks.media
    }

    pub fn server(&self) -> &Arc<WireServer> {
        &self.server
    }

    /// The LID (digits) of `phone` (digits): the server's, stable for its life.
    pub fn lid_of_phone(&self, phone: &str) -> String {
        self.server.lid_for_phone(phone)
    }

    /// The ids of the messages the device of `phone` (digits) that inbound messages go to has
    /// not acknowledged yet, oldest first (see [`WireServer::device_of_phone`]).
    pub fn unacked(&self, phone: &str) -> Vec<String> {
        self.server.device_of_phone(phone).map(|d| self.server.unacked(&d)).unwrap_or_default()
    }

    /// The online device of `phone` (digits), if any (the first, sorted, if several).
    pub fn online_device(&self, phone: &str) -> Option<String> {
        self.server.connected().into_iter().find(|jid| phone_of(jid) == phone)
    }

    /// The contact `from` (any phone notation, a phone JID or a known `@lid`) calls the
    /// online device of `device_phone` (digits): a voice or `video` call, by LID with the
    /// phone beside when `as_lid`, placed in `group` (a group JID) when given. The call rings
    /// now or never (an offline device misses it, as on WhatsApp). Returns the call's id.
    pub fn call(
        &self,
        device_phone: &str,
        from: &str,
        video: bool,
        as_lid: bool,
        group: Option<&str>,
    ) -> Result<String, InboundError> {
        let device = self
            .online_device(device_phone)
            .ok_or_else(|| InboundError::NotConnected(device_phone.to_string()))?;
        let caller = {
            let inner = self.hooks.inner();
            crate::rich::sender_phone(from, |lid| inner.lids.get(lid).cloned())
                .map_err(InboundError::Invalid)?
        };
        let group = group
            .map(|g| {
                g.parse::<Jid>()
                    .ok()
                    .filter(|j| j.server == wacore_binary::Server::Group)
                    .ok_or_else(|| InboundError::Invalid(format!("group: not a group JID: {g:?}")))
            })
            .transpose()?;
        let pn = Jid::pn(&caller);
        let offer = if as_lid {
            let lid = self.lid_of_phone(&caller);
            self.hooks.inner().lids.insert(lid.clone(), caller.clone());
            crate::calls::Offer { from: Jid::lid(&lid), caller_pn: Some(pn), video, group }
        } else {
            crate::calls::Offer { from: pn, caller_pn: None, video, group }
        };
        let (call_id, node) = crate::calls::offer(&offer);
        if !self.server.send_node(&device, node) {
            return Err(InboundError::NotConnected(device_phone.to_string()));
        }
        Ok(call_id)
    }

    /// What the devices of `phone` (digits) sent, oldest first. A media message shows once
    /// the fake has read its file back (and the items after it with it).
    pub fn outbox(&self, phone: &str) -> Vec<OutboxItem> {
        let inner = self.hooks.inner();
        let items = inner.outbox.get(phone).map(Vec::as_slice).unwrap_or_default();
        items.iter().map_while(Clone::clone).collect()
    }

    /// Makes a group of `participants` (phone digits), `admins` among them, and returns its
    /// JID `120363…@g.us`; the subject defaults to `Group <last 4 digits of the id>`. Its
    /// members' clients see it in their participating groups and can query it.
    pub fn create_group(
        &self,
        subject: Option<String>,
        participants: Vec<String>,
        admins: Vec<String>,
    ) -> Result<String, crate::directory::InvalidGroup> {
        self.hooks.directory.create_group(subject, participants, admins)
    }

    /// The group of `jid` (`<id>@g.us`), if it was made.
    pub fn group(&self, jid: &str) -> Option<crate::directory::FakeGroup> {
        self.hooks.directory.group(jid)
    }

    /// Marks `phone` (digits) as on WhatsApp or not, for the clients' existence checks.
    /// Every phone is on WhatsApp until marked otherwise.
    pub fn set_contact(&self, phone: &str, on_whatsapp: bool) {
        self.hooks.directory.set_contact(phone, on_whatsapp)
    }

    /// The group an inbound posts in: `chat` must be a group JID of the network, with both
    /// the sender `from` and the device's phone among its participants.
    fn group_for_inbound(
        &self,
        chat: &str,
        device_phone: &str,
        from: &str,
    ) -> Result<Jid, InboundError> {
        let jid = chat
            .parse::<Jid>()
            .ok()
            .filter(|j| j.server == wacore_binary::Server::Group)
            .ok_or_else(|| InboundError::Invalid(format!("chat: not a group JID: {chat:?}")))?;
        let group =
            self.hooks.directory.group(&jid.to_string()).ok_or_else(|| {
                InboundError::Invalid(format!("chat: no group {jid} on the network"))
            })?;
        if !group.participants.iter().any(|p| p == from) {
            return Err(InboundError::Invalid(format!(
                "from: +{from} is not a participant of {jid}"
            )));
        }
        if !group.participants.iter().any(|p| p == device_phone) {
            return Err(InboundError::Invalid(format!(
                "chat: +{device_phone} (the device's phone) is not a participant of {jid}"
            )));
        }
        Ok(jid)
    }

    /// The contact `from` (a phone in any notation, a phone JID or a known `@lid`) reads the
    /// message `message_id` the devices of `device_phone` (digits) sent: the online device
    /// gets `<receipt from=CHAT id t type="read"/>`, `CHAT` the JID the client addressed, or
    /// for a group message `from=GROUP participant=CONTACT_PHONE@s.whatsapp.net`. The
    /// contact must be the message's recipient, or a participant of its group.
    pub fn read(
        &self,
        device_phone: &str,
        message_id: &str,
        from: &str,
    ) -> Result<(), InboundError> {
        let device = self
            .online_device(device_phone)
            .ok_or_else(|| InboundError::NotConnected(device_phone.to_string()))?;
        let receipt = {
            let inner = self.hooks.inner();
            let reader = crate::rich::sender_phone(from, |lid| inner.lids.get(lid).cloned())
                .map_err(InboundError::Invalid)?;
            let chat = inner
                .known
                .get(message_id)
                .filter(|k| k.sender == device_phone)
                .and_then(|k| k.chat.clone())
                .ok_or_else(|| InboundError::UnknownMessage(message_id.to_string()))?;
            if chat.server == wacore_binary::Server::Group {
                let members = self.hooks.directory.group(&chat.to_string()).map(|g| g.participants);
                if !members.is_some_and(|m| m.contains(&reader) && reader != device_phone) {
                    return Err(InboundError::Invalid(format!(
                        "from: +{reader} is not another participant of {chat}"
                    )));
                }
                receipt_node(&chat, Some(&Jid::pn(&reader)), message_id, Some("read"))
            } else {
                if Hooks::phone_behind(&inner, &chat).as_deref() != Some(reader.as_str()) {
                    return Err(InboundError::Invalid(format!(
                        "from: message {message_id} was sent to {chat}, not to +{reader}"
                    )));
                }
                receipt_node(&chat, None, message_id, Some("read"))
            }
        };
        if !self.server.send_node(&device, receipt) {
            return Err(InboundError::NotConnected(device_phone.to_string()));
        }
        Ok(())
    }

    /// The contact `spec.from` sends `spec` to the device of `device_phone` (digits): a text,
    /// a media file (encrypted under a fresh key and stored on the media host), a location, a
    /// contact card or a reaction, with mentions and a quote. With `as_lid` the message comes
    /// from the contact's `LID@lid` with `sender_pn` = its phone JID; otherwise from its phone
    /// JID. The device is the online one, else the phone's newest linked device (it has
    /// logged in once, so its prekeys are known): the message waits in its offline queue, as
    /// every message does until the device acknowledges it (`WireServer::deliver`).
    /// Blocking: a media file (up to 100 MiB) is encrypted here.
    pub fn inbound(
        &self,
        device_phone: &str,
        spec: &WireInbound,
    ) -> Result<InboundSent, InboundError> {
        let device = self
            .server
            .device_of_phone(device_phone)
            .ok_or_else(|| InboundError::NotConnected(device_phone.to_string()))?;
        let device_jid: Jid = device.parse().map_err(|e| anyhow!("device jid {device}: {e}"))?;
        let from = {
            let inner = self.hooks.inner();
            crate::rich::sender_phone(&spec.from, |lid| inner.lids.get(lid).cloned())
                .map_err(InboundError::Invalid)?
        };
        let mentions = spec
            .mentions
            .iter()
            .map(|m| crate::rich::mention_jid(m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(InboundError::Invalid)?;
        let content = crate::rich::prepare(spec).map_err(InboundError::Invalid)?;
        let group = match spec.chat.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            None => None,
            Some(chat) => Some(self.group_for_inbound(chat, device_phone, &from)?),
        };
        {
            let mut inner = self.hooks.inner();
            if !inner.client_keys.contains_key(&device) {
                let upload = self
                    .server
                    .prekey_upload(&device)
                    .ok_or_else(|| InboundError::NoPrekeys(device.clone()))?;
                inner.client_keys.insert(device.clone(), ClientKeys::from_upload(&upload)?);
            }
        }
        let stored = match &content {
            Content::Media { kind, bytes, .. } => {
                Some(self.hooks.media.store_plaintext(bytes.reader(), kind.media_type())?)
            }
            _ => None,
        };
        let (quote, reaction_key) = {
            let inner = self.hooks.inner();
            let quote = spec.reply_to.as_ref().map(|id| {
                let known = inner.known.get(id);
                Quote {
                    id: id.clone(),
                    participant: known.map(|k| format!("{}@s.whatsapp.net", k.sender)),
                    text: known.map(|k| k.text.clone()).unwrap_or_default(),
                }
            });
            // The key as the reacting contact sees it: the chat is the device's account, and
            // `from_me` says whether the contact wrote the target.
            let key = match &content {
                Content::Reaction { target, .. } => {
                    let author = inner.known.get(target).map(|k| k.sender.clone());
                    let from_me = author.as_deref() == Some(from.as_str());
                    Some(wa::MessageKey {
                        remote_jid: Some(match &group {
                            Some(g) => g.to_string(),
                            None => format!("{device_phone}@s.whatsapp.net"),
                        }),
                        from_me: Some(from_me),
                        id: Some(target.clone()),
                        // In a group, the author of someone else's message.
                        participant: author
                            .filter(|_| group.is_some() && !from_me)
                            .map(|a| format!("{a}@s.whatsapp.net")),
                    })
                }
                _ => None,
            };
            (quote, key)
        };
        let message = crate::rich::inbound_message(
            &spec.text,
            &mentions,
            quote.as_ref(),
            &content,
            stored.as_ref(),
            reaction_key,
        );
        let lid = self.lid_of_phone(&from);
        let (id, enc) = {
            let mut guard = self.hooks.inner();
            let inner = &mut *guard;
            self.hooks.contact(inner, &from)?;
            inner.lids.insert(lid.clone(), from.clone());
            let contact = inner.contacts.get_mut(&from).expect("made above");
            let keys = inner.client_keys.get_mut(&device).expect("parsed above");
            let enc = match &group {
                Some(g) => {
                    let seen_as = if spec.as_lid { Jid::lid(&lid) } else { Jid::pn(&from) };
                    contact
                        .encrypt_group_to(keys, &device_jid, g, &seen_as, &message)?
                        .to_enc_nodes()
                }
                None => vec![contact.encrypt_to(keys, &device_jid, &message)?.to_enc_node()],
            };
            inner.next_id += 1;
            let id = format!("3EB0WIRE{:012X}", inner.next_id);
            let text = match &content {
                Content::Text | Content::Media { .. } => spec.text.clone(),
                _ => String::new(),
            };
            inner.known.insert(id.clone(), Known { sender: from.clone(), text, chat: None });
            (id, enc)
        };
        let pn = Jid::pn(&from);
        let mut node = NodeBuilder::new("message");
        node = match (&group, spec.as_lid) {
            (None, true) => node.attr("from", Jid::lid(&lid)).attr("sender_pn", pn),
            (None, false) => node.attr("from", pn),
            (Some(g), true) => node
                .attr("from", g.clone())
                .attr("participant", Jid::lid(&lid))
                .attr("participant_pn", pn)
                .attr("addressing_mode", "lid"),
            (Some(g), false) => {
                node.attr("from", g.clone()).attr("participant", pn).attr("addressing_mode", "pn")
            }
        };
        let kind = match content {
            Content::Text => "text",
            _ => wacore::send::stanza_type_from_message(&message),
        };
        node = node
            .attr("id", id.clone())
            .attr("t", crate::pairing::now_secs().to_string())
            .attr("type", kind);
        if let Some(name) = spec.push_name.as_deref().filter(|n| !n.is_empty()) {
            node = node.attr("notify", name);
        }
        let node = node.children(enc).build();
        // Online or not, the device gets it (now, or at its next login).
        self.server.deliver(&device, &id, node);
        let sha256 = stored.map(|s| crate::rich::hex(&s.file_sha256));
        Ok(InboundSent { message_id: id, sha256 })
    }
}

#[cfg(test)]
mod read_receipt_tests {
    use super::*;

    fn receipt(kind: Option<&str>, participant: Option<&str>, more: &[&str]) -> Node {
        let mut b = NodeBuilder::new("receipt")
            .attr("to", "5511900000002@s.whatsapp.net".parse::<Jid>().unwrap())
            .attr("id", "3EB0A")
            .attr("t", "1");
        if let Some(k) = kind {
            b = b.attr("type", k);
        }
        if let Some(p) = participant {
            b = b.attr("participant", p.parse::<Jid>().unwrap());
        }
        if !more.is_empty() {
            let items = more.iter().map(|i| NodeBuilder::new("item").attr("id", *i).build());
            b = b.children(vec![NodeBuilder::new("list").children(items).build()]);
        }
        b.build()
    }

    #[test]
    fn a_read_receipt_is_recorded_with_every_id_and_a_delivery_one_is_not() {
        let item = read_receipt(&receipt(Some("read"), None, &["3EB0B"])).unwrap();
        let json = serde_json::to_value(&item).unwrap();
        assert_eq!(json["read"], serde_json::json!(["3EB0A", "3EB0B"]));
        assert_eq!(json["chat"], "5511900000002@s.whatsapp.net");
        assert!(json.get("sender").is_none() && json["at"].is_string(), "{json}");
        let item =
            read_receipt(&receipt(Some("read-self"), Some("5511900000003:2@s.whatsapp.net"), &[]))
                .unwrap();
        let json = serde_json::to_value(&item).unwrap();
        assert_eq!(json["sender"], "5511900000003@s.whatsapp.net");
        assert!(read_receipt(&receipt(None, None, &[])).is_none());
        assert!(read_receipt(&receipt(Some("retry"), None, &[])).is_none());
        assert!(read_receipt(&receipt(Some("inactive"), None, &[])).is_none());
    }
}
