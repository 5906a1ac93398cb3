//! The offline queue, with the real client: a message to a device that is offline waits for
//! its next login; a message the device got but never acknowledged (its durability hook
//! failed, as when a gateway crashes before its commit) comes again at the next login, marked
//! offline, until the device acknowledges it; an acknowledged one never comes again.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bzapper_wafake::{WireInbound, WireNet};
use common::{paired, server, until, Client};
use whatsapp_rust::types::durability_hook::InboundMessage;
use whatsapp_rust::wacore::types::events::Event;
use whatsapp_rust::InboundDurabilityHook;

/// The client's durability hook: records the texts it is given; fails while `failing`.
#[derive(Clone, Default)]
struct Hook {
    failing: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(String, bool)>>>,
}

impl Hook {
    /// The texts committed (`Ok`), in order.
    fn committed(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().filter(|s| s.1).map(|s| s.0.clone()).collect()
    }
}

#[whatsapp_rust::async_trait]
impl InboundDurabilityHook for Hook {
    async fn on_messages(
        &self,
        _: Arc<whatsapp_rust::Client>,
        batch: &[InboundMessage],
    ) -> anyhow::Result<()> {
        let ok = !self.failing.load(Ordering::SeqCst);
        for m in batch {
            let text = m.message.conversation.clone().unwrap_or_default();
            self.seen.lock().unwrap().push((text, ok));
        }
        if ok {
            Ok(())
        } else {
            anyhow::bail!("the disk is full")
        }
    }
}

fn text(t: &str) -> WireInbound {
    serde_json::from_value(serde_json::json!({"from": "+15557770001", "text": t})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_messages_come_again_at_the_next_login() {
    let server = server().await;
    let net = WireNet::new(server.clone());
    let phone = "15550000009";
    let (client, store, paired) = paired(&server, phone).await;
    let inbound = |t: &str| {
        let (net, t) = (net.clone(), t.to_string());
        async move {
            tokio::task::spawn_blocking(move || net.inbound(phone, &text(&t)).unwrap().message_id)
                .await
                .unwrap()
        }
    };

    // Online and acknowledged: the queue lets it go.
    let a = inbound("a, live").await;
    client
        .wait("a", |e| match e {
            Event::Messages(b) => b.iter().find(|m| m.info.id == a).map(|_| ()),
            _ => None,
        })
        .await;
    until("a acknowledged", || net.unacked(phone).is_empty()).await;
    client.stop().await;

    // Offline: kept, in order. More than the login's primer, so that the client has to ask
    // for the rest (`<ib><offline_batch>`).
    let mut offline = Vec::new();
    for n in 0..12 {
        offline.push(inbound(&format!("b{n}, while offline")).await);
    }
    assert_eq!(net.unacked(phone), offline);

    // The next login gets them. This client commits through a hook that fails: it gets them
    // but never acknowledges them (a gateway that crashed before its commit).
    let hook = Hook::default();
    hook.failing.store(true, Ordering::SeqCst);
    let client = Client::start_with(&server, store.clone(), Some(hook.clone())).await;
    until("the backlog offered to the hook", || hook.seen.lock().unwrap().len() >= 12).await;
    let d = inbound("d, live, never acknowledged").await;
    until("d offered to the hook", || hook.seen.lock().unwrap().len() >= 13).await;
    assert!(hook.committed().is_empty());
    let mut expected = offline.clone();
    expected.push(d.clone());
    assert_eq!(net.unacked(phone), expected, "nothing acknowledged");
    client.stop().await;

    // A login whose hook commits: all of them again (the library decrypts them afresh or
    // replays its buffered copies), in order, acknowledged this time.
    hook.failing.store(false, Ordering::SeqCst);
    let client = Client::start_with(&server, store.clone(), Some(hook.clone())).await;
    until("all committed", || hook.committed().len() == 13).await;
    let mut texts: Vec<String> = (0..12).map(|n| format!("b{n}, while offline")).collect();
    texts.push("d, live, never acknowledged".into());
    assert_eq!(hook.committed(), texts);
    until("all acknowledged", || net.unacked(phone).is_empty()).await;
    client.stop().await;

    // Nothing comes twice once acknowledged: a new login offers only the new message.
    inbound("e, while offline").await;
    let client = Client::start_with(&server, store, Some(hook.clone())).await;
    until("e committed", || hook.committed().len() == 14).await;
    until("e acknowledged", || net.unacked(phone).is_empty()).await;
    assert_eq!(hook.committed().last().map(String::as_str), Some("e, while offline"));
    assert!(!hook.committed().contains(&"a, live".to_string()));
    assert!(paired.jid.starts_with(phone));
    client.stop().await;
}
