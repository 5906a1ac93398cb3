//! Inbound resolution on its own: LIDs reported by phone, one number's messages in arrival
//! order. Real SQLite store, paused clock.

use std::sync::Arc;

use bzapper_core::Jid;
use bzapper_driver::{InboundContent, InboundMessage};
use bzapper_store::{LidStore, Store};

use super::{received_data, Inbound, InboundJob};
use crate::events::recorder::Recorder;
use crate::runtime::test_support::{events_of, hold_clock, store_in, stored_number, until, TENANT};

const LID: &str = "123456789012345@lid";
const PHONE: &str = "5511977776666@s.whatsapp.net";

fn message(id: &str, sender: &str, text: &str) -> InboundMessage {
    let sender = Jid::parse(sender).unwrap();
    InboundMessage {
        id: id.into(),
        chat: sender.clone(),
        sender,
        sender_alt: None,
        push_name: None,
        text: text.into(),
        mentions: vec![],
        content: InboundContent::Text,
        reply_to: None,
        at: crate::model::time::now(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_lid_sender_is_reported_by_its_phone_jid_when_the_lid_map_knows_it() {
    let _clock = hold_clock();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir).await;
    let m = message("W1", LID, "hi");

    // Unknown LID: reported as it came, the LID beside.
    let data = serde_json::to_value(
        received_data(store.as_ref(), TENANT, "ins_1", (None, None), &m).await.unwrap(),
    )
    .unwrap();
    assert_eq!(data["sender"]["jid"], LID, "{data}");

    // Known: by phone, LID beside; the direct chat too.
    store.learn_lid(TENANT, LID, PHONE).await.unwrap();
    let data = serde_json::to_value(
        received_data(store.as_ref(), TENANT, "ins_1", (None, None), &m).await.unwrap(),
    )
    .unwrap();
    assert_eq!(data["sender"]["jid"], PHONE, "{data}");
    assert_eq!(data["sender"]["lid"], LID, "{data}");
    assert_eq!(data["chat"]["jid"], PHONE, "{data}");
}

#[tokio::test(start_paused = true)]
async fn a_lid_sender_with_its_phone_beside_teaches_the_lid_map() {
    let _clock = hold_clock();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir).await;
    let mut m = message("W1", LID, "hi");
    m.sender_alt = Some(Jid::parse(PHONE).unwrap());
    received_data(store.as_ref(), TENANT, "ins_1", (None, None), &m).await.unwrap();
    assert_eq!(store.phone_for_lid(TENANT, LID).await.unwrap().as_deref(), Some(PHONE));
    // Learnt for this tenant only: another tenant's events show the LID as it came.
    assert_eq!(store.phone_for_lid("another", LID).await.unwrap(), None);
    let data = serde_json::to_value(
        received_data(store.as_ref(), "another", "ins_2", (None, None), &message("W2", LID, "x"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(data["sender"]["jid"], LID, "{data}");
    assert_eq!(data["sender"]["phone"], serde_json::Value::Null, "{data}");
}

#[tokio::test(start_paused = true)]
async fn one_numbers_messages_are_recorded_in_arrival_order() {
    let _clock = hold_clock();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir).await;
    let dyn_store: Arc<dyn Store> = store.clone();
    let recorder = Recorder::new(dyn_store.clone(), None);
    let inbound =
        Inbound::spawn(dyn_store.clone(), recorder, "http://gateway.test/", Default::default());
    const N: usize = 200;
    let a = stored_number(store.as_ref(), "a").await.id;
    let b = stored_number(store.as_ref(), "b").await.id;
    for n in 0..N {
        // Two numbers interleaved: each keeps its own order.
        for instance in [&a, &b] {
            inbound.push(InboundJob {
                tenant_id: TENANT.into(),
                instance_id: instance.into(),
                own: (None, None),
                message: message(&format!("{instance}-{n}"), PHONE, &n.to_string()),
            });
        }
    }
    let received = || async {
        let all = events_of(dyn_store.as_ref()).await;
        all.into_iter().filter(|e| e.kind == "message.received").collect::<Vec<_>>()
    };
    until("every message recorded", || async { received().await.len() == 2 * N }).await;
    let events = received().await;
    for instance in [&a, &b] {
        let texts: Vec<String> = events
            .iter()
            .filter(|e| e.instance_id.as_ref() == Some(instance))
            .map(|e| e.data["text"].as_str().unwrap_or_default().to_string())
            .collect();
        let expected: Vec<String> = (0..N).map(|n| n.to_string()).collect();
        assert_eq!(texts, expected, "{instance}");
    }
}

/// The sink answers only once the batch is on disk, and a batch delivered again (WhatsApp
/// never got the acknowledgement) is recorded once; a message with the same id in another
/// chat is another message. Once the store fails, it answers `Err` (the driver then leaves
/// the batch unacknowledged).
// On the real clock: closing the store waits for its connections in real time.
#[tokio::test]
async fn the_sink_answers_once_the_batch_is_on_disk_and_records_a_redelivery_once() {
    use bzapper_driver::InboundSink;

    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir).await;
    let dyn_store: Arc<dyn Store> = store.clone();
    let recorder = Recorder::new(dyn_store.clone(), None);
    let inbound =
        Inbound::spawn(dyn_store.clone(), recorder, "http://gateway.test/", Default::default());
    let a = stored_number(store.as_ref(), "a").await.id;
    let own = Arc::new(std::sync::RwLock::new((Some(PHONE.to_string()), None)));
    let sink = inbound.sink(TENANT, &a, own);
    let received = || async {
        let all = events_of(dyn_store.as_ref()).await;
        all.into_iter().filter(|e| e.kind == "message.received").collect::<Vec<_>>()
    };

    let batch: Vec<InboundMessage> =
        (0..5).map(|n| message(&format!("W{n}"), LID, &n.to_string())).collect();
    sink.commit(batch.clone()).await.unwrap();
    // Ok means on disk: readable at once, in the batch's order.
    let texts: Vec<String> =
        received().await.iter().map(|e| e.data["text"].as_str().unwrap().to_string()).collect();
    assert_eq!(texts, ["0", "1", "2", "3", "4"]);

    // The whole batch again, with a new message in the middle, and a message with a known id
    // from another chat: only the new ones are recorded.
    let mut again = batch.clone();
    again.insert(2, message("W9", LID, "new"));
    again.push(message("W0", PHONE, "same id, other chat"));
    sink.commit(again).await.unwrap();
    let texts: Vec<String> =
        received().await.iter().map(|e| e.data["text"].as_str().unwrap().to_string()).collect();
    assert_eq!(texts, ["0", "1", "2", "3", "4", "new", "same id, other chat"]);

    // A store that stays down: the sink says so, after its retries (on the paused clock).
    store.close().await;
    tokio::time::pause();
    let t0 = tokio::time::Instant::now();
    assert!(sink.commit(vec![message("W10", LID, "lost?")]).await.is_err());
    assert!(t0.elapsed() >= std::time::Duration::from_secs(20), "retried for a while");
}

/// A commit whose store fails for a while is tried again with backoff, and the sink answers
/// `Ok` once an attempt succeeds; a store that stays down is given up after 30 s.
#[tokio::test(start_paused = true)]
async fn a_failing_commit_is_retried_with_backoff_then_given_up() {
    use std::cell::Cell;

    use super::sink::{with_retries, COMMIT_RETRY};

    let attempts = Cell::new(0);
    let t0 = tokio::time::Instant::now();
    let got: Result<u32, String> = with_retries(COMMIT_RETRY, || {
        attempts.set(attempts.get() + 1);
        let n = attempts.get();
        async move {
            if n < 3 {
                Err(format!("down {n}"))
            } else {
                Ok(n)
            }
        }
    })
    .await;
    assert_eq!(got, Ok(3));
    // 200 ms then 400 ms, ±20 %.
    let waited = t0.elapsed().as_millis();
    assert!((480..=720).contains(&waited), "{waited} ms");

    attempts.set(0);
    let t0 = tokio::time::Instant::now();
    let got: Result<(), String> =
        with_retries(COMMIT_RETRY, || async { Err("still down".to_string()) }).await;
    assert_eq!(got, Err("still down".to_string()));
    let waited = t0.elapsed();
    assert!(waited <= std::time::Duration::from_secs(30), "{waited:?}");
    assert!(waited >= std::time::Duration::from_secs(20), "{waited:?}");
}
