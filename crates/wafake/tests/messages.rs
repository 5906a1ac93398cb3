//! Messages both ways through the hook points, with the signal module's `FakeContact`s
//! behind them. Outbound: the fake answers the client's usync with one device per user, the
//! [`SignalHooks`] serve the prekey bundle and decrypt the `<enc>`, and the server acks the
//! `<message>`, so `send_message` returns `Ok`. Inbound: a contact encrypts to the client's
//! uploaded prekeys, `WireServer::deliver_message` delivers it, the client decrypts it and sends a
//! receipt, which the server acks.

mod common;

use std::sync::{Arc, Mutex};

use bzapper_wafake::signal::{ClientKeys, FakeContact};
use bzapper_wafake::SignalHooks;
use common::{paired, server, until};
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeValue};
use waproto::whatsapp as wa;
use whatsapp_rust::wacore::types::events::Event;

struct OneContact {
    contact: Mutex<FakeContact>,
    /// What the contact decrypted, or why it could not.
    received: Mutex<Vec<Result<String, String>>>,
    /// The ids of the client's receipts.
    receipts: Mutex<Vec<String>>,
}

impl SignalHooks for OneContact {
    fn on_receipt(&self, _device: &str, receipt: &Node) {
        let id = receipt.attrs.get("id").map(|v| v.as_str().into_owned()).unwrap_or_default();
        self.receipts.lock().unwrap().push(id);
    }

    fn prekey_bundles(&self, _device: &str, request: &Node) -> Option<Vec<Node>> {
        let users = request.get_optional_child("key")?.children()?;
        let mut contact = self.contact.lock().unwrap();
        let user = contact.jid().user.clone();
        let nodes = users
            .iter()
            .filter_map(|u| u.attrs.get("jid").and_then(NodeValue::to_jid))
            .filter(|jid| jid.user == user)
            .map(|jid| contact.prekey_user_node(&jid).expect("bundle"))
            .collect::<Vec<_>>();
        Some(vec![NodeBuilder::new("list").children(nodes).build()])
    }

    fn on_message(&self, device: &str, message: &Node) {
        // A 1:1 message to one device carries `<enc>` directly; to several, under
        // `<participants><to jid>`.
        let mut encs: Vec<&Node> = message.get_children_by_tag("enc").collect();
        if let Some(parts) = message.get_optional_child("participants") {
            for to in parts.get_children_by_tag("to") {
                encs.extend(to.get_children_by_tag("enc"));
            }
        }
        let sender: Jid = device.parse().expect("device jid");
        let mut contact = self.contact.lock().unwrap();
        for enc in encs {
            let got = contact
                .decrypt_enc(&sender, &enc.as_node_ref())
                .map(|m: wa::Message| m.conversation.unwrap_or_default())
                .map_err(|e| format!("{e:#}"));
            self.received.lock().unwrap().push(got);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_both_ways() {
    let server = server().await;
    let hooks = Arc::new(OneContact {
        contact: Mutex::new(FakeContact::new("15557770000").unwrap()),
        received: Mutex::new(Vec::new()),
        receipts: Mutex::new(Vec::new()),
    });
    server.set_hooks(hooks.clone());
    let (client, _store, paired) = paired(&server, "15550000003").await;

    let to: Jid = "15557770000@s.whatsapp.net".parse().unwrap();
    let message = wa::Message { conversation: Some("hello fake".into()), ..Default::default() };
    let sent = tokio::time::timeout(common::WAIT, client.handle.client().send_message(to, message))
        .await
        .expect("send_message hung")
        .expect("send_message failed");
    assert!(!sent.message_id.is_empty());
    until("the contact to see the message", || !hooks.received.lock().unwrap().is_empty()).await;
    let received = hooks.received.lock().unwrap().clone();
    assert!(received.contains(&Ok("hello fake".to_string())), "{received:?}");

    // Inbound, from a contact the client never wrote to: a pkmsg on its uploaded prekeys.
    let mut carol = FakeContact::new("15557770001").unwrap();
    let mut keys = ClientKeys::from_upload(&server.prekey_upload(&paired.jid).unwrap()).unwrap();
    let device: Jid = paired.jid.parse().unwrap();
    let text = wa::Message { conversation: Some("hi from carol".into()), ..Default::default() };
    let enc = carol.encrypt_to(&mut keys, &device, &text).unwrap();
    assert_eq!(enc.enc_type, "pkmsg");
    let id = "3EB0FAKE00000001";
    assert!(server.deliver_message(&paired.jid, carol.jid(), id, vec![enc.to_enc_node()]));
    let (got, _) = client
        .wait("the inbound message", |e| match e {
            Event::Messages(batch) => batch.iter().find_map(|m| m.message.conversation.clone()),
            Event::UndecryptableMessage(_) => panic!("the client could not decrypt carol's pkmsg"),
            _ => None,
        })
        .await;
    assert_eq!(got, "hi from carol");
    until("the client's receipt", || hooks.receipts.lock().unwrap().iter().any(|r| r == id)).await;
    client.stop().await;
}
