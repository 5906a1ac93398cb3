//! One client connection: WebSocket upgrade on `/ws/chat`, the Noise handshake, then a loop
//! that decrypts the client's nodes (answered by [`crate::iq`]) and sends what the rest of
//! the server queues for it.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_websockets::{Message, ServerBuilder, WebSocketStream};
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};
use waproto::whatsapp as wa;

use crate::frame::{frame, Deframer, Transport};
use crate::noise::{self, Keys, Started};
use crate::server::{temp_ban_node, ConnHandle, Out, WireServer};

type Ws = WebSocketStream<TcpStream>;

/// Serves one accepted TCP connection until either side closes it.
pub(crate) async fn serve(server: Arc<WireServer>, tcp: TcpStream) {
    // Small frames, request then answer: as WhatsApp's own servers, no Nagle delay on them.
    let _ = tcp.set_nodelay(true);
    let id = server.state().next_id();
    if let Err(e) = run(&server, tcp, id).await {
        tracing::debug!(conn = id, "wafake connection ended: {e:#}");
    }
    let mut st = server.state();
    st.online.retain(|_, c| c.id != id);
    st.pairing.retain(|_, c| c.id != id);
    st.live.remove(&id);
}

/// Reads socket messages until the deframer yields a frame.
async fn read_frame(ws: &mut Ws, deframer: &mut Deframer) -> Result<Vec<u8>> {
    loop {
        if let Some(f) = deframer.next_frame() {
            return Ok(f);
        }
        let msg = ws.next().await.ok_or_else(|| anyhow!("socket closed"))??;
        if msg.is_close() {
            bail!("client closed the socket");
        }
        if msg.is_binary() {
            deframer.feed(msg.as_payload())?;
        }
    }
}

async fn run(server: &Arc<WireServer>, tcp: TcpStream, id: u64) -> Result<()> {
    let (request, mut ws) = ServerBuilder::new().accept(tcp).await.context("upgrade")?;
    if request.uri().path() != "/ws/chat" {
        let _ = ws.close().await;
        bail!("upgrade on {}, not /ws/chat", request.uri().path());
    }
    let mut deframer = Deframer::default();
    let hello = read_frame(&mut ws, &mut deframer).await?;
    let (keys, payload): (Keys, wa::ClientPayload) = match noise::respond(&server.identity, &hello)?
    {
        Started::Xx { reply, pending } => {
            ws.send(Message::binary(frame(&reply)?)).await?;
            let finish = read_frame(&mut ws, &mut deframer).await?;
            pending.finish(&finish)?
        }
        Started::Ik { reply, keys, client_payload } => {
            ws.send(Message::binary(frame(&reply)?)).await?;
            (keys, client_payload)
        }
    };
    let mut transport = Transport::new(keys.read, keys.write);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let conn = ConnHandle { id, tx };
    let mut session =
        Session { server: server.clone(), conn: conn.clone(), device: None, drain: None };
    session.start(&payload);

    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Node(node)) => {
                    ws.send(Message::binary(transport.seal(&node)?)).await?;
                }
                Some(Out::Close) | None => {
                    let _ = ws.close().await;
                    return Ok(());
                }
            },
            msg = ws.next() => {
                let Some(msg) = msg else { return Ok(()) };
                let msg = msg?;
                if msg.is_close() {
                    return Ok(());
                }
                if !msg.is_binary() {
                    continue;
                }
                deframer.feed(msg.as_payload())?;
                while let Some(f) = deframer.next_frame() {
                    let node = transport.open(f)?;
                    session.handle(node);
                }
            }
        }
    }
}

/// What the server knows about the client on the other end of one connection.
pub(crate) struct Session {
    pub server: Arc<WireServer>,
    pub conn: ConnHandle,
    /// The logged-in device (`PHONE:N@s.whatsapp.net`), once `<success>` went out.
    pub device: Option<String>,
    /// The delivery of the device's offline backlog, while the client still asks for it.
    pub drain: Option<crate::offline::Drain>,
}

impl Session {
    /// A fresh client gets `<pair-device>`; a registered one `<success>` or a `<failure>`.
    fn start(&mut self, payload: &wa::ClientPayload) {
        let registered = payload.username.filter(|_| payload.device_pairing_data.is_unset());
        let Some(user) = registered else {
            let node = crate::pairing::pair_device(&self.server, &self.conn);
            self.conn.send(node);
            return;
        };
        let jid = match payload.device.unwrap_or(0) {
            0 => format!("{user}@s.whatsapp.net"),
            d => format!("{user}:{d}@s.whatsapp.net"),
        };
        let refusal = {
            let mut st = self.server.state();
            match st.devices.get(&jid) {
                None => Some(NodeBuilder::new("failure").attr("reason", "401").build()),
                Some(d) if d.logged_out => {
                    Some(NodeBuilder::new("failure").attr("reason", "401").build())
                }
                Some(d) => {
                    let now = std::time::Instant::now();
                    let phone = st.phones.get(&d.phone);
                    let for_good = phone.and_then(|p| p.banned_for_good);
                    let ban = phone.and_then(|p| p.banned).filter(|(_, until)| *until > now);
                    match (for_good, ban) {
                        (Some(code), _) => Some(temp_ban_node(code, 0)),
                        (None, Some((code, until))) => {
                            let left = until.duration_since(now).as_secs().max(1);
                            Some(temp_ban_node(code, left))
                        }
                        (None, None) => {
                            let lid = d.lid_jid.clone();
                            st.online.insert(jid.clone(), self.conn.clone());
                            self.device = Some(jid.clone());
                            self.conn.send(success_node(&lid));
                            None
                        }
                    }
                }
            }
        };
        if let Some(node) = refusal {
            self.conn.send(node);
            self.conn.close();
        }
    }

    /// Handles one node the client sent.
    fn handle(&mut self, node: Node) {
        match node.tag.as_ref() {
            "iq" => crate::iq::handle_iq(self, &node),
            "chatstate" | "presence" => self.record_chat_state(&node),
            "message" => crate::iq::handle_message(self, &node),
            "receipt" => crate::iq::handle_receipt(self, &node),
            "ack" => self.acknowledged(&node),
            "ib" => self.offline_batch(&node),
            "call" => self.on_call(&node),
            _ => {}
        }
    }

    /// The device's `<receipt>` or `<ack class="message">`: the offline queue lets go of the
    /// messages it names.
    pub(crate) fn acknowledged(&self, node: &Node) {
        let Some(device) = &self.device else { return };
        let ids = crate::offline::acknowledged(node);
        if !ids.is_empty() {
            self.server.state().offline.ack(device, ids.iter().map(String::as_str));
        }
    }

    /// At login, after the passive iq: the device's offline backlog, or `count="0"` (the
    /// client waits 60 s for the end of its offline messages otherwise).
    pub(crate) fn start_offline_drain(&mut self) {
        let backlog = match &self.device {
            Some(device) => {
                let mut st = self.server.state();
                // From here on a new message goes out at once, not into this backlog.
                st.live.insert(self.conn.id);
                st.offline.backlog(device)
            }
            None => Default::default(),
        };
        let (now, drain) = crate::offline::Drain::start(backlog);
        for node in now {
            self.conn.send(node);
        }
        self.drain = drain;
    }

    /// `<ib><offline_batch count=K/>`: the next K stanzas of the backlog.
    fn offline_batch(&mut self, node: &Node) {
        let (Some(count), Some(drain)) = (crate::offline::batch_request(node), &mut self.drain)
        else {
            return;
        };
        for node in drain.take(count) {
            self.conn.send(node);
        }
        if drain.is_done() {
            self.drain = None;
        }
    }

    /// A `<call>` the device sent (it rejects a call): to the hooks. The real server answers
    /// a rejection with nothing, and so does this one.
    fn on_call(&self, node: &Node) {
        let (Some(jid), Some(hooks)) = (&self.device, self.server.hooks()) else { return };
        hooks.on_call(jid, node);
    }

    fn record_chat_state(&self, node: &Node) {
        let Some(jid) = &self.device else { return };
        let attr = |n: &Node, k: &str| n.attrs.get(k).map(|v| v.as_str().into_owned());
        let state = if node.tag == "presence" {
            attr(node, "type").unwrap_or_else(|| "available".to_string())
        } else {
            match node.children().and_then(|c| c.first()) {
                Some(c) if c.tag == "composing" && attr(c, "media").as_deref() == Some("audio") => {
                    "recording".to_string()
                }
                Some(c) => c.tag.to_string(),
                None => String::new(),
            }
        };
        let record = crate::ChatState { tag: node.tag.to_string(), to: attr(node, "to"), state };
        if let Some(hooks) = self.server.hooks() {
            hooks.on_chat_state(jid, &record);
        }
        if let Some(d) = self.server.state().devices.get_mut(jid) {
            d.chat_states.push(record);
        }
    }
}

fn success_node(lid_device_jid: &str) -> Node {
    // `<success lid>` names the account's LID, without the device part.
    let lid_user = lid_device_jid.split([':', '@']).next().unwrap_or_default();
    NodeBuilder::new("success")
        .attr("t", crate::pairing::now_secs().to_string())
        .attr("lid", Jid::new(lid_user, wacore_binary::Server::Lid))
        .attr("props", "1")
        .attr("abprops", "1")
        .build()
}
