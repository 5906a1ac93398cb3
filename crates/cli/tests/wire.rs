//! The gateway with the REAL WhatsApp driver against the wire-level fake WhatsApp server
//! (`bzapper simnet --wire`), driven only through the gateway's HTTP API (`/v1/sim/...` maps
//! onto the fake's control API): link by QR scan, send a text, receive one, survive a restart
//! without a new scan, and be logged out; lose no inbound message when killed mid-burst. Rich
//! messages, groups and contact checks: `wire_rich.rs`.
//!
//! The fake's certificate chain is zero-signed: the `bzapper` binary built for these tests has
//! whatsapp-rust's `danger-skip-cert-chain-verify` on (a dev-dependency of this crate).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;
mod wire_support;

use wire_support::{Wire, ADMIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_driver_links_sends_receives_drops_resumes_and_is_banned_on_the_wire_fake() {
    let mut wire = Wire::start();
    let key = wire.tenant("w").await;
    let iid = wire.linked_number(&key, "wire", "+5511987650001").await;
    let inst = format!("/v1/instances/{iid}");
    let (_, v) = wire.get(&inst, &key).await;
    assert_eq!(v["phone"], "+5511987650001", "{v}");
    assert!(v["jid"].as_str().is_some_and(|j| j.starts_with("5511987650001")), "{v}");
    assert!(v["lid"].as_str().is_some_and(|l| l.ends_with("@lid")), "{v}");

    // A text goes out: `delivered`, and the fake received `composing` and then the text.
    let mid = wire
        .send(
            &key,
            json!({"to": "+5511912340002", "text": "hello over the wire", "instance_id": iid}),
        )
        .await;
    // The contact's phone acknowledges receipt: `delivered`.
    wire.wait_message(&key, &mid, &["delivered"]).await;
    let (_, before) =
        wire.outbox_entry(&iid, "the text", |e| e["text"] == "hello over the wire").await;
    assert_eq!(before["presence"], "composing", "composing before the text");

    // A contact writes: `message.received` on the event stream.
    let mut events = wire.events(&key, "types=message.received").await;
    wire.inbound(&iid, json!({"from": "+5511912340002", "text": "hi back over the wire"})).await;
    let plain = events.next("hi back over the wire", &wire).await;
    assert_eq!(plain["data"]["sender"]["jid"], "5511912340002@s.whatsapp.net", "{plain}");
    assert_eq!(plain["data"]["chat"]["type"], "direct");

    // A contact that hides its number writes by LID and mentions this number by JID: the
    // sender is reported by phone with the LID beside, and `mentions_me` compares JIDs.
    wire.inbound(
        &iid,
        json!({"from": "+5511912340003", "text": "by lid, hey @5511987650001",
               "as_lid": true, "mentions": ["+5511987650001"]}),
    )
    .await;
    let by_lid = events.next("by lid, hey", &wire).await;
    let got = &by_lid["data"];
    assert_eq!(got["sender"]["jid"], "5511912340003@s.whatsapp.net", "{by_lid}");
    assert_eq!(got["sender"]["phone"], "+5511912340003", "{by_lid}");
    assert!(got["sender"]["lid"].as_str().is_some_and(|l| l.ends_with("@lid")), "{by_lid}");
    assert_eq!(got["mentions"], json!(["5511987650001@s.whatsapp.net"]), "{by_lid}");
    assert_eq!(got["mentions_me"], true, "{by_lid}");
    drop(events);

    // A transient drop: `connecting/transient` while the driver reconnects by itself, then
    // `connected` again.
    let mut lifecycle = wire.events(&key, "types=instance.*").await;
    let (s, d) = wire
        .post(&format!("/v1/sim/instances/{iid}/drop"), ADMIN, json!({"reason": "transient"}))
        .await;
    assert_eq!(s, 200, "{d}");
    lifecycle
        .read_until(&wire, |said| {
            let dropped = said.find("\"reason\":\"transient\"");
            let connected = said.rfind("event: instance.connected");
            matches!((dropped, connected), (Some(d), Some(c)) if c > d)
        })
        .await;
    drop(lifecycle);

    // A restart on the same data dir: connected again with the stored session, no scan.
    wire.restart_gateway();
    wire.until(&inst, &key, "connected after the restart", |v| v["status"] == "connected").await;

    // Logged out by the network: disconnected/logged_out.
    let (s, d) = wire
        .post(&format!("/v1/sim/instances/{iid}/drop"), ADMIN, json!({"reason": "logged_out"}))
        .await;
    assert_eq!(s, 200, "{d}");
    wire.until(&inst, &key, "disconnected/logged_out", |v| {
        v["status"] == "disconnected" && v["reason"] == "logged_out"
    })
    .await;

    // A second number, banned by the network: disconnected/banned, out of rotation.
    let bid = wire.linked_number(&key, "wire-b", "+5511987650002").await;
    let (s, d) = wire
        .post(&format!("/v1/sim/instances/{bid}/drop"), ADMIN, json!({"reason": "banned"}))
        .await;
    assert_eq!(s, 200, "{d}");
    wire.until(&format!("/v1/instances/{bid}"), &key, "disconnected/banned", |v| {
        v["status"] == "disconnected" && v["reason"] == "banned"
    })
    .await;

    // A control the wire fake does not have: the reach-out restriction.
    let (s, v) = wire
        .post(&format!("/v1/sim/instances/{bid}/restrict"), ADMIN, json!({"reach_out": true}))
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (501, Some("not_implemented")), "{v}");
    wire.assert_no_panics();
}

/// A contact sends a burst of texts, four at a time, straight to the fake (as WhatsApp would,
/// whatever state the gateway is in); the gateway is killed with SIGKILL once a few hundred
/// were handed to the device, and started again on the same data dir. Every message the fake
/// handed over is then in the event log as `message.received` exactly once: the gateway
/// acknowledges a message only once its event is on disk (whatsapp-rust's durability hook),
/// the fake delivers what was not acknowledged again at the next login (the offline queue,
/// with the messages sent while the gateway was down), and a redelivery of a message already
/// recorded is recognised by its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_burst_records_every_delivered_message_exactly_once() {
    const TOTAL: usize = 400;
    const KILL_AFTER: usize = 250;
    let mut wire = Wire::start();
    let key = wire.tenant("burst").await;
    let phone = "5511987650010";
    let iid = wire.linked_number(&key, "burst", &format!("+{phone}")).await;

    let handed: Arc<Mutex<Vec<String>>> = Arc::default();
    let url = format!("{}/wire/devices/{phone}/inbound", wire.wire_url);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (http, url, handed, next) =
                (wire.http.clone(), url.clone(), handed.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if n >= TOTAL {
                        return;
                    }
                    let body = json!({"from": "+5511912340010", "text": format!("burst {n}")});
                    let res = http.post(&url).json(&body).send().await.unwrap();
                    let status = res.status();
                    let v: Value = res.json().await.unwrap();
                    assert!(status.is_success(), "{status}: {v}");
                    handed.lock().unwrap().push(v["message_id"].as_str().unwrap().to_string());
                }
            })
        })
        .collect();
    let started = Instant::now();
    while handed.lock().unwrap().len() < KILL_AFTER {
        assert!(started.elapsed() < Duration::from_secs(60), "the burst did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let unacked_at_kill = wire.unacked(phone).await.len();
    wire.kill_and_restart_gateway();
    let restarted = Instant::now();
    for s in senders {
        s.await.unwrap();
    }
    let handed = handed.lock().unwrap().clone();
    assert_eq!(handed.len(), TOTAL);

    // Once the device has acknowledged everything, everything is on disk (acknowledgements
    // follow the commits); a last message then marks the end of what the log can hold.
    let started = Instant::now();
    while !wire.unacked(phone).await.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the gateway never acknowledged {} messages\ngateway log:\n{}",
            wire.unacked(phone).await.len(),
            wire.gateway_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let caught_up = restarted.elapsed();
    wire.inbound(&iid, json!({"from": "+5511912340011", "text": "the end of the burst"})).await;
    let mut events = wire.events(&key, "types=message.received&last_event_id=0").await;
    let end = "the end of the burst";
    let said = events
        .read_until(&wire, |said| said.find(end).is_some_and(|at| said[at..].contains('\n')))
        .await;
    let mut recorded: HashMap<String, usize> = HashMap::new();
    let complete = said.split_inclusive('\n').filter(|l| l.ends_with('\n'));
    for line in complete.filter_map(|l| l.strip_prefix("data:")) {
        let data: Value = serde_json::from_str(line.trim()).unwrap();
        let id = data["data"]["message_id"].as_str().unwrap().to_string();
        *recorded.entry(id).or_default() += 1;
    }
    let missing: Vec<&String> = handed.iter().filter(|id| !recorded.contains_key(*id)).collect();
    let twice: Vec<(&String, &usize)> = recorded.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "{} handed to the device ({} unacknowledged when the gateway was killed; all acknowledged \
         {caught_up:?} after the restart), {} recorded, {} missing, {} recorded more than once",
        handed.len(),
        unacked_at_kill,
        recorded.len() - 1,
        missing.len(),
        twice.len()
    );
    assert!(missing.is_empty(), "{} of {} never recorded: {missing:?}", missing.len(), TOTAL);
    assert!(twice.is_empty(), "recorded more than once: {twice:?}");
    assert_eq!(recorded.len(), TOTAL + 1, "nothing but the burst and its end");
    wire.assert_no_panics();
}
