//! Calls on the REAL WhatsApp driver against the wire-level fake, through the gateway's HTTP
//! API only: a fake contact rings the number (`<call><offer/></call>` over the wire); with
//! `reject_calls` on, the driver rejects it (the fake records the `<call><reject/></call>` it
//! got), `call.received` says so and the reply goes to the caller as an ordinary message;
//! with it off, the call is only reported. `always_online` turned on makes the device
//! announce `<presence type="available"/>`.

use serde_json::{json, Value};

mod support;
mod wire_support;

use wire_support::{Wire, ADMIN};

const ME: &str = "+5511987650031";
const CALLER: &str = "+5511912340031";

async fn ring(wire: &Wire, iid: &str, body: Value) -> String {
    let (s, v) = wire.post(&format!("/v1/sim/instances/{iid}/call"), ADMIN, body).await;
    assert_eq!(s, 200, "{v}\n{}", wire.gateway_log());
    v["call_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_rejected_and_answered_on_the_real_driver() {
    let wire = Wire::start();
    let key = wire.tenant("calls").await;
    let iid = wire.linked_number(&key, "calls", ME).await;
    let mut events = wire.events(&key, "types=call.received").await;

    // Off (the default): the call is reported and nothing is sent back.
    let first = ring(&wire, &iid, json!({"from": CALLER})).await;
    let d = events.next(&first, &wire).await["data"].clone();
    assert_eq!((&d["rejected"], &d["reply_message_id"]), (&json!(false), &Value::Null), "{d}");
    assert_eq!(d["from"]["jid"], "5511912340031@s.whatsapp.net");
    assert_eq!(d["video"], false);

    // On, with a reply, changed on the live connection.
    let reply = "This number does not take calls, write to us here.";
    let (s, v) = wire
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/instances/{iid}"),
            &key,
            Some(
                json!({"reject_calls": true, "reject_call_message": reply, "always_online": true}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let second = ring(&wire, &iid, json!({"from": CALLER, "video": true})).await;
    let d = events.next(&second, &wire).await["data"].clone();
    assert_eq!((&d["rejected"], &d["video"]), (&json!(true), &json!(true)), "{d}");
    // The fake got the rejection of that call, addressed to the caller.
    let (e, _) =
        wire.outbox_entry(&iid, "the rejection", |e| e["rejected_call"] == second.as_str()).await;
    assert_eq!(e["to"], "5511912340031@s.whatsapp.net", "{e}");
    // The reply went out as a message through the queue, to the caller.
    let mid = d["reply_message_id"].as_str().expect("a reply was queued");
    let m = wire.wait_message(&key, mid, &["sent", "delivered", "read"]).await;
    assert_eq!((m["instance_id"].as_str(), m["text"].as_str()), (Some(&*iid), Some(reply)), "{m}");
    let (e, _) = wire.outbox_entry(&iid, "the reply", |e| e["text"] == reply).await;
    assert_eq!(e["to"], "5511912340031@s.whatsapp.net", "{e}");
    // The first call was never rejected.
    let outbox = wire.outbox(&iid).await;
    assert!(!outbox.iter().any(|e| e["rejected_call"] == first.as_str()), "{outbox:?}");
    // `always_online` turned on: the device announced itself available.
    wire.outbox_entry(&iid, "available", |e| e["presence"] == "available" && e.get("to").is_none())
        .await;
    wire.assert_no_panics();
}
