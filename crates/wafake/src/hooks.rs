//! Where the Signal side plugs in. The wire layer acks and answers everything with empty or
//! minimal stanzas; a [`SignalHooks`] installed with `WireServer::set_hooks` can see every
//! outbound message and answer prekey fetches with real bundles.

use wacore_binary::Node;

/// How the server answers an iq a hook took over.
#[derive(Debug, Clone)]
pub enum IqAnswer {
    /// `<iq type="result">` with these children.
    Result(Vec<Node>),
    /// `<iq type="error"><error code text/></iq>`, e.g. 404 `item-not-found`.
    Error { code: u16, text: String },
}

/// Callbacks the Signal module implements. Every method has a do-nothing default.
pub trait SignalHooks: Send + Sync {
    /// An outbound `<message>` from `device` (its `PHONE:N@s.whatsapp.net` JID), before the
    /// server acks it: where `<enc type="pkmsg"|"msg">` gets decrypted.
    fn on_message(&self, device: &str, message: &Node) {
        let _ = (device, message);
    }

    /// Stanzas to send `device` right after the server acked its `message` (the ack first:
    /// the client must hold the message as sent), e.g. the recipients' delivery receipts.
    fn after_ack(&self, device: &str, message: &Node) -> Vec<Node> {
        let _ = (device, message);
        vec![]
    }

    /// A `<receipt>` from `device` (delivery/read receipts of inbound messages, retry
    /// requests), before the server acks it.
    fn on_receipt(&self, device: &str, receipt: &Node) {
        let _ = (device, receipt);
    }

    /// A `<call>` stanza from `device` (a rejection of a call it was offered, …).
    fn on_call(&self, device: &str, call: &Node) {
        let _ = (device, call);
    }

    /// A `<chatstate>` or `<presence>` stanza from `device`, as recorded (see
    /// `WireServer::chat_states`), in order with its messages.
    fn on_chat_state(&self, device: &str, state: &crate::ChatState) {
        let _ = (device, state);
    }

    /// The answer's children for a prekey fetch, `<iq xmlns="encrypt" type="get"><key><user
    /// jid/>…</key></iq>`: typically one `<list>` of `<user jid>` bundles. `None` answers an
    /// empty result.
    fn prekey_bundles(&self, device: &str, request: &Node) -> Option<Vec<Node>> {
        let _ = (device, request);
        None
    }

    /// Takes over an `<iq type="get"|"set">` from `device` (media_conn, groups, contact
    /// checks, …) before the server's own answers; `None` leaves it to the server.
    fn answer_iq(&self, device: &str, iq: &Node) -> Option<IqAnswer> {
        let _ = (device, iq);
        None
    }
}
