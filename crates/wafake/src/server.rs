//! The server object: the listener, the accounts it knows (phones and their linked devices),
//! who is online, and the public API tests drive it with.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};
use wacore_libsignal::protocol::KeyPair;

use crate::hooks::SignalHooks;
use crate::noise::ServerIdentity;

/// What a connection task is told to do by the rest of the server.
pub(crate) enum Out {
    /// Encrypt and send this node.
    Node(Node),
    /// Close the socket (after everything queued before).
    Close,
}

/// The sending side of one live connection.
#[derive(Clone)]
pub(crate) struct ConnHandle {
    pub id: u64,
    pub tx: mpsc::UnboundedSender<Out>,
}

impl ConnHandle {
    pub fn send(&self, node: Node) {
        let _ = self.tx.send(Out::Node(node));
    }
    pub fn close(&self) {
        let _ = self.tx.send(Out::Close);
    }
}

/// A phone (primary device) the fake knows: its account key and its stable LID.
pub(crate) struct Phone {
    pub lid: String,
    pub account_key: KeyPair,
    pub next_device: u32,
    /// Temp ban: `(code, until)`.
    pub banned: Option<(u32, Instant)>,
    /// Permanent ban: its code.
    pub banned_for_good: Option<u32>,
}

impl Phone {
    /// A phone the fake just met: a new account key and a random LID.
    pub(crate) fn fresh() -> Self {
        Self {
            lid: crate::pairing::random_lid(),
            account_key: KeyPair::generate(&mut crate::noise::rng()),
            next_device: 1,
            banned: None,
            banned_for_good: None,
        }
    }
}

/// A linked (companion) device.
pub(crate) struct Device {
    pub phone: String,
    pub lid_jid: String,
    pub logged_out: bool,
    /// The last prekey upload (`<iq xmlns="encrypt" type="set">`) in its wire form: as a
    /// node tree its 812 keys took most of the fake's memory per device, marshalled they are a
    /// tenth of it (read back, rarely, by [`WireServer::prekey_upload`]).
    pub prekey_upload: Option<Box<[u8]>>,
    pub chat_states: Vec<ChatState>,
    /// App-state collections the device asked for, in order (repeats kept).
    pub app_state: Vec<String>,
}

#[derive(Default)]
pub(crate) struct State {
    pub phones: HashMap<String, Phone>,
    /// Keyed by the device's phone-number JID, `PHONE:N@s.whatsapp.net`.
    pub devices: HashMap<String, Device>,
    pub online: HashMap<String, ConnHandle>,
    /// QR refs handed to a connection waiting to be paired.
    pub pairing: HashMap<String, ConnHandle>,
    /// Answers awaited for iqs the server sent, by iq id.
    pub waiters: HashMap<String, oneshot::Sender<Node>>,
    pub next_id: u64,
    /// Every device's unacknowledged messages (`offline.rs`).
    pub offline: crate::offline::Queues,
    /// Connections (by id) whose login has taken the offline backlog: a message to their
    /// device goes out at once; before that it waits in the backlog, so it is sent once.
    pub live: std::collections::HashSet<u64>,
}

impl State {
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// A presence or chat-state stanza a device sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatState {
    /// `chatstate` or `presence`.
    pub tag: String,
    /// The `to` attribute, if any (the chat for a chat state; absent for own presence).
    pub to: Option<String>,
    /// `composing`, `recording` (composing with `media="audio"`), `paused`, or for a
    /// presence its `type` (`available`, `unavailable`, `subscribe`, …).
    pub state: String,
}

/// A failure the server can inflict on a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// `<failure reason="401"/>`; the device is refused from then on.
    LoggedOut,
    /// `<failure reason="402" code expire/>`; the device's phone is refused until expiry.
    TempBan { code: u32, expire_secs: u64 },
    /// `<failure reason="402" code expire="0"/>`: a ban without an end (the client reports
    /// a `TemporaryBan` with a zero expiry); the device's phone is refused from then on.
    Banned { code: u32 },
    /// `<stream:error><conflict type="replaced"/></stream:error>`.
    Replaced,
}

/// A device the fake phone linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paired {
    /// The device's phone-number JID, `PHONE:N@s.whatsapp.net`.
    pub jid: String,
    /// The device's LID JID, `LID:N@lid` (the LID is the phone's, stable for the server's life).
    pub lid: String,
}

/// The fake WhatsApp server. Start it with [`WireServer::start`]; point a client at
/// [`WireServer::ws_url`].
pub struct WireServer {
    addr: SocketAddr,
    pub(crate) identity: ServerIdentity,
    state: Mutex<State>,
    hooks: RwLock<Option<Arc<dyn SignalHooks>>>,
    accept: Mutex<Option<AbortHandle>>,
}

impl WireServer {
    /// Binds `addr` (e.g. `127.0.0.1:0`) and starts accepting clients on `/ws/chat`.
    pub async fn start(addr: SocketAddr) -> Result<Arc<Self>> {
        let listener = TcpListener::bind(addr).await?;
        let server = Arc::new(Self {
            addr: listener.local_addr()?,
            identity: ServerIdentity::generate(),
            state: Mutex::new(State::default()),
            hooks: RwLock::new(None),
            accept: Mutex::new(None),
        });
        let weak = Arc::downgrade(&server);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let Some(server) = weak.upgrade() else { return };
                tokio::spawn(crate::conn::serve(server, tcp));
            }
        });
        *server.accept.lock().expect("poisoned") = Some(task.abort_handle());
        Ok(server)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to give `TokioWebSocketTransportFactory::with_url`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(&self) {
        if let Some(task) = self.accept.lock().expect("poisoned").take() {
            task.abort();
        }
        let st = self.state();
        for conn in st.online.values().chain(st.pairing.values()) {
            conn.close();
        }
    }

    /// Installs the Signal side (message decryption, prekey bundles); see [`SignalHooks`].
    pub fn set_hooks(&self, hooks: Arc<dyn SignalHooks>) {
        *self.hooks.write().expect("poisoned") = Some(hooks);
    }

    pub(crate) fn hooks(&self) -> Option<Arc<dyn SignalHooks>> {
        self.hooks.read().expect("poisoned").clone()
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("poisoned")
    }

    /// Plays the phone scanning `qr_code` (the string of a `PairingQrCode` event): links a
    /// new device of `phone` (digits only), waits for the client's signature and sends the
    /// `515` that makes it reconnect as a registered device.
    pub async fn scan(&self, qr_code: &str, phone: &str) -> Result<Paired> {
        crate::pairing::scan(self, qr_code, phone).await
    }

    /// Inflicts `failure` on device `jid` (it need not be online: a logout or ban still
    /// holds for its next login). Closes its socket if it is online.
    pub fn fail(&self, jid: &str, failure: Failure) -> Result<()> {
        let mut st = self.state();
        let device = st.devices.get_mut(jid).ok_or_else(|| anyhow!("unknown device {jid}"))?;
        let node = match failure {
            Failure::LoggedOut => {
                device.logged_out = true;
                st.offline.forget(jid);
                NodeBuilder::new("failure").attr("reason", "401").build()
            }
            Failure::TempBan { code, expire_secs } => {
                let phone = device.phone.clone();
                if let Some(p) = st.phones.get_mut(&phone) {
                    p.banned = Some((code, Instant::now() + Duration::from_secs(expire_secs)));
                }
                temp_ban_node(code, expire_secs)
            }
            Failure::Banned { code } => {
                let phone = device.phone.clone();
                if let Some(p) = st.phones.get_mut(&phone) {
                    p.banned_for_good = Some(code);
                }
                temp_ban_node(code, 0)
            }
            Failure::Replaced => NodeBuilder::new("stream:error")
                .children([NodeBuilder::new("conflict").attr("type", "replaced").build()])
                .build(),
        };
        if let Some(conn) = st.online.remove(jid) {
            conn.send(node);
            conn.close();
        }
        Ok(())
    }

    /// Closes device `jid`'s socket without a word (the client sees a network drop).
    /// Returns whether it was online.
    pub fn drop_socket(&self, jid: &str) -> bool {
        match self.state().online.remove(jid) {
            Some(conn) => {
                conn.close();
                true
            }
            None => false,
        }
    }

    /// The devices logged in right now (sent `<success>` on a live socket), sorted.
    pub fn connected(&self) -> Vec<String> {
        let mut v: Vec<String> = self.state().online.keys().cloned().collect();
        v.sort();
        v
    }

    /// The presence and chat-state stanzas device `jid` sent, oldest first.
    pub fn chat_states(&self, jid: &str) -> Vec<ChatState> {
        self.state().devices.get(jid).map(|d| d.chat_states.clone()).unwrap_or_default()
    }

    /// The app-state collections device `jid` asked to sync, in order. A fresh device
    /// settles its bootstrap once it has synced all five (`critical_block`,
    /// `critical_unblock_low`, `regular`, `regular_high`, `regular_low`); until then each
    /// login repeats the client's 10 s key-share grace before `Connected`.
    pub fn app_state_requests(&self, jid: &str) -> Vec<String> {
        self.state().devices.get(jid).map(|d| d.app_state.clone()).unwrap_or_default()
    }

    /// The last prekey upload of device `jid`: the raw `<iq xmlns="encrypt" type="set">`
    /// (`<registration>`, `<identity>`, `<list>` of `<key>`, `<skey>`).
    pub fn prekey_upload(&self, jid: &str) -> Option<Node> {
        let wire = self.state().devices.get(jid).and_then(|d| d.prekey_upload.clone())?;
        crate::frame::decode_node(&wire)
    }

    /// The LID (digits) of `phone` (digits only), assigned now if the phone is new: the
    /// same LID its devices get when it pairs, stable for the server's life.
    pub fn lid_for_phone(&self, phone: &str) -> String {
        let mut st = self.state();
        st.phones.entry(phone.to_string()).or_insert_with(Phone::fresh).lid.clone()
    }

    /// The LID JID (`LID:N@lid`) of device `jid`.
    pub fn lid_of(&self, jid: &str) -> Option<String> {
        self.state().devices.get(jid).map(|d| d.lid_jid.clone())
    }

    /// Delivers a 1:1 message to device `jid`:
    /// `<message from id t type="text"><enc …/>…</message>`, addressed by phone number.
    /// `enc` are the `<enc>` nodes the Signal side produced (e.g. `Encrypted::to_enc_node`).
    /// The client answers with a `<receipt id>` (see `SignalHooks::on_receipt`). Kept until
    /// then, like every message ([`WireServer::deliver`]); returns whether `jid` is online.
    pub fn deliver_message(&self, jid: &str, from: &Jid, id: &str, enc: Vec<Node>) -> bool {
        let node = NodeBuilder::new("message")
            .attr("from", from.clone())
            .attr("id", id)
            .attr("t", crate::pairing::now_secs().to_string())
            .attr("type", "text")
            .children(enc)
            .build();
        self.deliver(jid, id, node)
    }

    /// Hands message `id` (its whole `<message>` stanza) to device `jid` the way WhatsApp
    /// does: kept in the device's offline queue until the device acknowledges it (its
    /// receipt), sent at once if the device is online, and sent again, marked offline, at
    /// each login until then (see `offline.rs`). Returns whether it went out now; a device
    /// the server does not know (or that was unlinked) gets nothing.
    pub fn deliver(&self, jid: &str, id: &str, node: Node) -> bool {
        let mut st = self.state();
        if st.devices.get(jid).is_none_or(|d| d.logged_out) {
            return false;
        }
        st.offline.keep(jid, id, node.clone());
        let conn = st.online.get(jid).filter(|c| st.live.contains(&c.id));
        match conn {
            Some(conn) => {
                conn.send(node);
                true
            }
            None => false,
        }
    }

    /// The ids of the messages device `jid` has not acknowledged yet, oldest first.
    pub fn unacked(&self, jid: &str) -> Vec<String> {
        self.state().offline.pending(jid)
    }

    /// The device of `phone` (digits) messages go to: the online one, else the newest one
    /// still linked (its messages wait for its next login).
    pub fn device_of_phone(&self, phone: &str) -> Option<String> {
        let st = self.state();
        let online = st.online.keys().filter(|jid| crate::net::phone_of(jid) == phone).min();
        if let Some(jid) = online {
            return Some(jid.clone());
        }
        let number = |jid: &str| -> u32 {
            jid.split('@')
                .next()
                .and_then(|u| u.split(':').nth(1))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        st.devices
            .iter()
            .filter(|(_, d)| d.phone == phone && !d.logged_out)
            .max_by_key(|(jid, _)| number(jid))
            .map(|(jid, _)| jid.clone())
    }

    /// Sends `node` to device `jid` if it is online (for inbound messages, notifications).
    /// Returns whether it was online.
    pub fn send_node(&self, jid: &str, node: Node) -> bool {
        match self.state().online.get(jid) {
            Some(conn) => {
                conn.send(node);
                true
            }
            None => false,
        }
    }
}

pub(crate) fn temp_ban_node(code: u32, expire_secs: u64) -> Node {
    NodeBuilder::new("failure")
        .attr("reason", "402")
        .attr("code", code.to_string())
        .attr("expire", expire_secs.to_string())
        .build()
}
