//! A network of fake contacts over a [`WireServer`]: what `bzapper simnet --wire` and its
//! control API drive.
//!
//! - One [`FakeContact`] per phone, made on first use. Its LID is the server's for that
//!   phone ([`WireServer::lid_for_phone`]), so a contact that also links a device keeps it.
//! - As the server's [`SignalHooks`]: serves a prekey bundle for every contact a client asks
//!   for, decrypts every message a device sends and files it, with the device's chat states,
//!   in that phone's outbox, in order.
//! - [`WireNet::inbound`]: a contact encrypts a text to a device (from the device's uploaded
//!   prekeys the first time) and the server delivers it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeValue};
use waproto::whatsapp as wa;

use crate::signal::{ClientKeys, FakeContact};
use crate::{ChatState, SignalHooks, WireServer};

/// One thing a phone's devices sent into the network, as the gateway's simulated network
/// writes its outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum OutboxItem {
    /// `{"to","text","id","at","mentions"}`.
    Message { to: String, text: String, id: String, at: DateTime<Utc>, mentions: Vec<String> },
    /// `{"presence": "composing" | "recording" | "paused", "to", "at"}`.
    Presence { presence: String, to: String, at: DateTime<Utc> },
}

/// Why [`WireNet::inbound`] could not deliver.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("no device of +{0} is online")]
    NotConnected(String),
    #[error("device {0} has not uploaded its prekeys yet")]
    NoPrekeys(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

#[derive(Default)]
struct Inner {
    /// By phone (digits).
    contacts: HashMap<String, FakeContact>,
    /// LID (digits) → phone (digits), for every contact made.
    lids: HashMap<String, String>,
    /// By phone (digits) of the sending device.
    outbox: HashMap<String, Vec<OutboxItem>>,
    /// The uploaded keys of each client device, by its JID, once a contact needed them.
    client_keys: HashMap<String, ClientKeys>,
    next_id: u64,
}

/// Looks up the server's LID of a phone (over a weak server reference).
type LidLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The hooks half: everything that does not need the server (which holds the hooks).
struct Hooks {
    inner: Mutex<Inner>,
    /// The server's LID of a phone (a closure over a weak server reference).
    lid_for: LidLookup,
}

/// Fake contacts and outboxes over a [`WireServer`]; see the module docs.
pub struct WireNet {
    server: Arc<WireServer>,
    hooks: Arc<Hooks>,
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
        self.inner().outbox.entry(phone_of(device).to_string()).or_default().push(item);
    }
}

/// The text and mentions of a message the client sent.
fn text_of(m: &wa::Message) -> (String, Vec<String>) {
    if let Some(t) = &m.conversation {
        return (t.clone(), Vec::new());
    }
    if let Some(ext) = m.extended_text_message.as_option() {
        let mentions =
            ext.context_info.as_option().map(|c| c.mentioned_jid.clone()).unwrap_or_default();
        return (ext.text.clone().unwrap_or_default(), mentions);
    }
    (String::new(), Vec::new())
}

impl SignalHooks for Hooks {
    fn on_message(&self, device: &str, message: &Node) {
        let Some(to) = message.attrs.get("to").and_then(NodeValue::to_jid) else { return };
        let id = attr(message, "id").unwrap_or_default();
        let Ok(sender) = device.parse::<Jid>() else { return };
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
                let (text, mentions) = text_of(&m);
                let at = Utc::now();
                self.push(
                    device,
                    OutboxItem::Message { to: to.to_string(), text, id, at, mentions },
                );
            }
            Ok(None) => {
                tracing::debug!(%to, "wire net: no part of the message was for the contact")
            }
            Err(e) => {
                tracing::warn!(%to, "wire net: cannot decrypt a message from {device}: {e:#}")
            }
        }
    }

    fn on_chat_state(&self, device: &str, state: &ChatState) {
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
}

impl WireNet {
    /// Wraps `server` and installs the network as its [`SignalHooks`].
    pub fn new(server: Arc<WireServer>) -> Arc<Self> {
        let weak = Arc::downgrade(&server);
        let hooks = Arc::new(Hooks {
            inner: Mutex::new(Inner::default()),
            lid_for: Box::new(move |phone| weak.upgrade().map(|s| s.lid_for_phone(phone))),
        });
        server.set_hooks(hooks.clone());
        Arc::new(Self { server, hooks })
    }

    pub fn server(&self) -> &Arc<WireServer> {
        &self.server
    }

    /// The LID (digits) of `phone` (digits): the server's, stable for its life.
    pub fn lid_of_phone(&self, phone: &str) -> String {
        self.server.lid_for_phone(phone)
    }

    /// The online device of `phone` (digits), if any (the first, sorted, if several).
    pub fn online_device(&self, phone: &str) -> Option<String> {
        self.server.connected().into_iter().find(|jid| phone_of(jid) == phone)
    }

    /// What the devices of `phone` (digits) sent, oldest first.
    pub fn outbox(&self, phone: &str) -> Vec<OutboxItem> {
        self.hooks.inner().outbox.get(phone).cloned().unwrap_or_default()
    }

    /// The contact `from` (digits) sends `text` (mentioning the phones `mentions`, digits)
    /// to the online device of `device_phone` (digits). With `as_lid` the message comes from
    /// the contact's `LID@lid` with `sender_pn` = its phone JID; otherwise from its phone JID.
    /// Returns the message id.
    pub fn inbound(
        &self,
        device_phone: &str,
        from: &str,
        text: &str,
        mentions: &[String],
        as_lid: bool,
    ) -> Result<String, InboundError> {
        let device = self
            .online_device(device_phone)
            .ok_or_else(|| InboundError::NotConnected(device_phone.to_string()))?;
        let device_jid: Jid = device.parse().map_err(|e| anyhow!("device jid {device}: {e}"))?;
        let message = if mentions.is_empty() {
            wa::Message { conversation: Some(text.to_string()), ..Default::default() }
        } else {
            wa::Message {
                extended_text_message: wa::message::ExtendedTextMessage {
                    text: Some(text.to_string()),
                    context_info: wa::ContextInfo {
                        mentioned_jid: mentions
                            .iter()
                            .map(|p| format!("{p}@s.whatsapp.net"))
                            .collect(),
                        ..Default::default()
                    }
                    .into(),
                    ..Default::default()
                }
                .into(),
                ..Default::default()
            }
        };
        let lid = self.lid_of_phone(from);
        let (id, enc) = {
            let mut guard = self.hooks.inner();
            let inner = &mut *guard;
            if !inner.client_keys.contains_key(&device) {
                let upload = self
                    .server
                    .prekey_upload(&device)
                    .ok_or_else(|| InboundError::NoPrekeys(device.clone()))?;
                inner.client_keys.insert(device.clone(), ClientKeys::from_upload(&upload)?);
            }
            self.hooks.contact(inner, from)?;
            inner.lids.insert(lid.clone(), from.to_string());
            let contact = inner.contacts.get_mut(from).expect("made above");
            let keys = inner.client_keys.get_mut(&device).expect("parsed above");
            let enc = contact.encrypt_to(keys, &device_jid, &message)?;
            inner.next_id += 1;
            (format!("3EB0WIRE{:012X}", inner.next_id), enc)
        };
        let pn = Jid::pn(from);
        let mut node = NodeBuilder::new("message");
        node = if as_lid {
            node.attr("from", Jid::lid(&lid)).attr("sender_pn", pn)
        } else {
            node.attr("from", pn)
        };
        let node = node
            .attr("id", id.clone())
            .attr("t", crate::pairing::now_secs().to_string())
            .attr("type", "text")
            .children([enc.to_enc_node()])
            .build();
        if !self.server.send_node(&device, node) {
            return Err(InboundError::NotConnected(device_phone.to_string()));
        }
        Ok(id)
    }
}
