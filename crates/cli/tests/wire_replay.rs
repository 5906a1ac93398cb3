//! The real driver's durability, in-process, down to its storage backend: whatsapp-rust keeps
//! each decrypted message in the number's session store (our `SessionBackend`'s
//! `pending_inbound/…` rows) until the gateway's sink has recorded it, and replays it from
//! there when WhatsApp delivers it again. The sink fails (the store is down): the messages
//! stay unacknowledged with the fake, their plaintext kept in the session store; the number
//! is stopped and started again on the same session, the fake delivers them again (the
//! client's Signal session has moved past them, so only the kept copies can be read), and
//! the sink gets them all, after which nothing is kept and nothing is unacknowledged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bzapper_driver::memory::MemorySessionStore;
use bzapper_driver::whatsapp::{WhatsAppDriver, WhatsAppOptions};
use bzapper_driver::{
    ConnectOptions, Connection, Driver, DriverEvent, EventSink, InboundError, InboundMessage,
    InboundSink,
};
use bzapper_wafake::{WireInbound, WireNet, WireServer};
use tokio::sync::mpsc;

/// The gateway's side: records the texts it is given; fails while `failing`.
#[derive(Default)]
struct Sink {
    failing: AtomicBool,
    /// Every commit's texts, and whether it was accepted.
    commits: Mutex<Vec<(Vec<String>, bool)>>,
}

impl Sink {
    fn recorded(&self) -> Vec<String> {
        let commits = self.commits.lock().unwrap();
        commits.iter().filter(|c| c.1).flat_map(|c| c.0.clone()).collect()
    }

    fn offered(&self) -> usize {
        self.commits.lock().unwrap().iter().map(|c| c.0.len()).sum()
    }
}

#[async_trait]
impl InboundSink for Sink {
    async fn commit(&self, batch: Vec<InboundMessage>) -> Result<(), InboundError> {
        let ok = !self.failing.load(Ordering::SeqCst);
        let texts = batch.into_iter().map(|m| m.text).collect();
        self.commits.lock().unwrap().push((texts, ok));
        if ok {
            Ok(())
        } else {
            Err(InboundError("the store is down".into()))
        }
    }
}

type Events = mpsc::UnboundedReceiver<(String, DriverEvent)>;

async fn start(
    driver: &WhatsAppDriver,
    session: &Arc<MemorySessionStore>,
    sink: &Arc<Sink>,
) -> (Arc<dyn Connection>, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let opts = ConnectOptions {
        instance_id: "i1".into(),
        proxy: None,
        session: session.clone(),
        events: EventSink::new("i1", tx),
        inbound: sink.clone(),
    };
    (driver.start(opts).await.unwrap(), rx)
}

/// The next event `pick` accepts (pairing takes the client's 10 s grace).
async fn wait<T>(rx: &mut Events, what: &str, pick: impl Fn(DriverEvent) -> Option<T>) -> T {
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let (_, event) = rx.recv().await.expect("the driver's events ended");
            if let Some(t) = pick(event) {
                return t;
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {what} within 60 s"))
}

async fn until(what: &str, check: impl Fn() -> bool) {
    let done = tokio::time::timeout(Duration::from_secs(60), async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    done.await.unwrap_or_else(|_| panic!("{what} did not happen within 60 s"));
}

fn kept(session: &MemorySessionStore) -> usize {
    session.keys().iter().filter(|k| k.starts_with("pending_inbound/")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrecorded_messages_are_replayed_from_the_session_store_at_the_next_login() {
    let server = WireServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let net = WireNet::new(server.clone());
    let driver = WhatsAppDriver::new(WhatsAppOptions {
        ws_url: Some(server.ws_url()),
        version: Some((2, 3000, 1_023_000_000)),
        media_over_plain_http: true,
    });
    let session = Arc::new(MemorySessionStore::new());
    let sink = Arc::new(Sink::default());
    let phone = "5511987650020";

    let (conn, mut rx) = start(&driver, &session, &sink).await;
    let qr = wait(&mut rx, "QR code", |e| match e {
        DriverEvent::Qr { code, .. } => Some(code),
        _ => None,
    })
    .await;
    server.scan(&qr, phone).await.unwrap();
    wait(&mut rx, "Connected", |e| (e == DriverEvent::Connected).then_some(())).await;

    let send = |text: String| {
        let net = net.clone();
        let spec: WireInbound =
            serde_json::from_value(serde_json::json!({"from": "+5511912340020", "text": text}))
                .unwrap();
        async move { tokio::task::spawn_blocking(move || net.inbound(phone, &spec)).await }
    };

    // The store is down: the client decrypts each message, keeps it, offers it, and holds
    // its receipt.
    sink.failing.store(true, Ordering::SeqCst);
    for n in 0..3 {
        send(format!("kept {n}")).await.unwrap().unwrap();
    }
    until("the three offered", || sink.offered() >= 3).await;
    until("the three kept in the session store", || kept(&session) == 3).await;
    assert_eq!(net.unacked(phone).len(), 3, "none acknowledged");
    assert!(sink.recorded().is_empty());
    conn.stop().await;

    // The store is back; the number logs in again on the same session. The fake delivers the
    // three again; the library can only read them from the kept copies.
    sink.failing.store(false, Ordering::SeqCst);
    let (conn, mut rx) = start(&driver, &session, &sink).await;
    wait(&mut rx, "Connected again", |e| (e == DriverEvent::Connected).then_some(())).await;
    until("the three recorded", || sink.recorded().len() == 3).await;
    assert_eq!(sink.recorded(), ["kept 0", "kept 1", "kept 2"]);
    until("the three acknowledged", || net.unacked(phone).is_empty()).await;
    until("nothing kept", || kept(&session) == 0).await;

    // And live again: recorded once, acknowledged.
    send("live".into()).await.unwrap().unwrap();
    until("the live one recorded", || sink.recorded().len() == 4).await;
    until("the live one acknowledged", || net.unacked(phone).is_empty()).await;
    assert_eq!(sink.recorded().last().map(String::as_str), Some("live"));
    conn.stop().await;
}
