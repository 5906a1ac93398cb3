//! The real whatsapp-rust client (cert-chain signature check off) against the fake server:
//! pairing by QR, reconnecting over IK, injected failures and a dropped socket.
//!
//! Pairing costs ~10 s of the client's own key-share grace before `Connected`, so each test
//! pairs once and then walks through several scenarios; the two run in parallel.

mod common;

use std::sync::Arc;

use bzapper_wafake::{Failure, WireServer};
use common::{paired, server, until, Client};
use whatsapp_rust::wacore::store::InMemoryBackend;
use whatsapp_rust::wacore::types::events::Event;
use whatsapp_rust::Jid;

/// Waits for the client's app-state bootstrap to end: until it has, each login repeats the
/// 10 s key-share grace before `Connected` (correct, only slow).
async fn bootstrapped(server: &WireServer, jid: &str) {
    until("the app-state bootstrap", || {
        let asked = server.app_state_requests(jid);
        ["regular", "regular_high", "regular_low"].iter().all(|c| asked.iter().any(|a| a == c))
    })
    .await;
}

/// Stops `client` and connects a new client on the same store: Connected over IK, no scan.
async fn reconnect(server: &WireServer, client: Client, store: Arc<InMemoryBackend>) -> Client {
    client.stop().await;
    until("the old socket to close", || server.connected().is_empty()).await;
    let again = Client::start(server, store).await;
    let ((), skipped) = again
        .wait("Connected", |e| match e {
            Event::Connected(_) => Some(()),
            Event::PairingQrCode(_) => panic!("a registered device was asked to pair again"),
            _ => None,
        })
        .await;
    assert!(!skipped.iter().any(|s| s.contains("PairSuccess")), "{skipped:?}");
    again
}

/// (a) QR → scan → PairSuccess → Connected, prekeys kept, chat states recorded;
/// (b) the same store reconnects without a scan; (c) logged out, and refused afterwards.
/// One pairing for all three: pairing costs the client's 10 s key-share grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_reconnect_then_log_out() {
    let server = server().await;
    let (client, store, paired) = paired(&server, "15550000001").await;
    assert_eq!(server.connected(), vec![paired.jid.clone()]);
    assert_eq!(server.lid_of(&paired.jid), Some(paired.lid.clone()));
    // The client uploads its prekeys after login; the fake keeps them for the Signal side.
    until("the prekey upload", || server.prekey_upload(&paired.jid).is_some()).await;
    let upload = server.prekey_upload(&paired.jid).unwrap();
    assert!(upload.get_optional_child("list").is_some(), "{upload:?}");

    // Chat states and presence stanzas are recorded per device.
    let bob: Jid = "15559990000@s.whatsapp.net".parse().unwrap();
    let c = client.handle.client();
    c.chatstate().send_composing(&bob).await.unwrap();
    c.chatstate().send_recording(&bob).await.unwrap();
    c.chatstate().send_paused(&bob).await.unwrap();
    c.presence().subscribe(&bob).await.unwrap();
    until("four recorded stanzas", || server.chat_states(&paired.jid).len() >= 4).await;
    let seen: Vec<(String, String)> = server
        .chat_states(&paired.jid)
        .into_iter()
        .filter(|s| s.to.as_deref() == Some("15559990000@s.whatsapp.net"))
        .map(|s| (s.tag, s.state))
        .collect();
    let want = [
        ("chatstate", "composing"),
        ("chatstate", "recording"),
        ("chatstate", "paused"),
        ("presence", "subscribe"),
    ];
    assert_eq!(seen, want.map(|(t, s)| (t.to_string(), s.to_string())).to_vec());

    bootstrapped(&server, &paired.jid).await;
    let client = reconnect(&server, client, store.clone()).await;
    assert_eq!(server.connected(), vec![paired.jid.clone()]);

    server.fail(&paired.jid, Failure::LoggedOut).unwrap();
    client.wait("LoggedOut", |e| matches!(e, Event::LoggedOut(_)).then_some(())).await;
    client.stop().await;
    assert!(server.connected().is_empty());
    // The same store again: never logged in, whatever the library does with the refusal.
    let again = Client::start(&server, store).await;
    again
        .wait("LoggedOut or a new QR", |e| match e {
            Event::LoggedOut(_) | Event::PairingQrCode(_) => Some(()),
            Event::Connected(_) => panic!("a logged-out device connected"),
            _ => None,
        })
        .await;
    assert!(!server.connected().contains(&paired.jid));
    again.stop().await;
}

/// (f) a dropped socket → the client reconnects by itself; (e) replaced → StreamReplaced;
/// (d) temp ban → TemporaryBan with code and expiry, refused again on the next login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_replace_then_temp_ban() {
    let server = server().await;
    let (client, store, paired) = paired(&server, "15550000002").await;
    bootstrapped(&server, &paired.jid).await;

    assert!(server.drop_socket(&paired.jid));
    client.wait("Disconnected", |e| matches!(e, Event::Disconnected(_)).then_some(())).await;
    client.wait("Connected again", |e| matches!(e, Event::Connected(_)).then_some(())).await;
    assert_eq!(server.connected(), vec![paired.jid.clone()]);

    server.fail(&paired.jid, Failure::Replaced).unwrap();
    client.wait("StreamReplaced", |e| matches!(e, Event::StreamReplaced(_)).then_some(())).await;

    let client = reconnect(&server, client, store.clone()).await;
    server.fail(&paired.jid, Failure::TempBan { code: 101, expire_secs: 3600 }).unwrap();
    let ((code, expire), _) = client
        .wait("TemporaryBan", |e| match e {
            Event::TemporaryBan(b) => Some((b.code.code(), b.expire)),
            _ => None,
        })
        .await;
    assert_eq!(code, 101);
    assert_eq!(expire.num_seconds(), 3600);
    client.stop().await;

    let again = Client::start(&server, store).await;
    let ((code, expire), _) = again
        .wait("TemporaryBan on the next login", |e| match e {
            Event::TemporaryBan(b) => Some((b.code.code(), b.expire)),
            Event::Connected(_) => panic!("a banned phone connected"),
            _ => None,
        })
        .await;
    assert_eq!(code, 101);
    assert!(expire.num_seconds() > 3500 && expire.num_seconds() <= 3600, "{expire}");
    assert!(server.connected().is_empty());
    again.stop().await;
}
