//! The network keeps an inbound message until the gateway recorded it: a message whose
//! commit failed (or never happened: the gateway died) is delivered again at the number's
//! next login; a recorded one is acknowledged and never comes again. In-process and over the
//! HTTP service alike.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::tests::MemStore;
use super::*;
use crate::{
    ConnectOptions, Connection, Driver, DriverEvent, EventSink, InboundError, InboundMessage,
    InboundSink,
};

/// Records what it is given; fails every commit while `failing` is set.
#[derive(Default)]
struct Sink {
    failing: AtomicBool,
    /// Every commit: its message ids and whether it was accepted.
    commits: Mutex<Vec<(Vec<String>, bool)>>,
}

impl Sink {
    fn accepted(&self) -> Vec<String> {
        let commits = self.commits.lock().unwrap();
        commits.iter().filter(|c| c.1).flat_map(|c| c.0.clone()).collect()
    }

    fn tried(&self) -> Vec<String> {
        self.commits.lock().unwrap().iter().flat_map(|c| c.0.clone()).collect()
    }
}

#[async_trait]
impl InboundSink for Sink {
    async fn commit(&self, batch: Vec<InboundMessage>) -> Result<(), InboundError> {
        let ids = batch.into_iter().map(|m| m.id).collect();
        let ok = !self.failing.load(Ordering::SeqCst);
        self.commits.lock().unwrap().push((ids, ok));
        if ok {
            Ok(())
        } else {
            Err(InboundError("the disk is full".into()))
        }
    }
}

type Events = mpsc::UnboundedReceiver<(String, DriverEvent)>;

async fn start(
    driver: &SimDriver,
    store: &Arc<MemStore>,
    sink: &Arc<Sink>,
) -> (Arc<dyn Connection>, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let opts = ConnectOptions {
        instance_id: "i1".into(),
        proxy: None,
        session: store.clone(),
        events: EventSink::new("i1", tx),
        inbound: sink.clone(),
    };
    (driver.start(opts).await.unwrap(), rx)
}

async fn next(rx: &mut Events) -> DriverEvent {
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
    got.expect("no event within 10 s").expect("event channel closed").1
}

/// Polls `check` (every 5 ms, for at most 10 s of the test's clock).
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting: {what}");
}

fn text(n: u32) -> InboundSpec {
    InboundSpec { from: "+5511988881234".into(), text: format!("m{n}"), ..Default::default() }
}

/// The scenario, against `driver` and its network's control side `net`.
async fn unrecorded_messages_come_again_at_the_next_login(driver: SimDriver, net: Arc<dyn SimNet>) {
    let store = Arc::new(MemStore::default());
    let sink = Arc::new(Sink::default());
    let (conn, mut rx) = start(&driver, &store, &sink).await;
    assert!(matches!(next(&mut rx).await, DriverEvent::Qr { .. }));
    net.scan("i1", ScanRequest { phone: "+5511999990001".into() }).await.unwrap();
    assert!(matches!(next(&mut rx).await, DriverEvent::Paired { .. }));
    assert_eq!(next(&mut rx).await, DriverEvent::Connected);

    // Recorded: acknowledged, so the network lets it go.
    let a = net.inbound("i1", text(1)).await.unwrap().message_id;
    until("a recorded", || sink.accepted() == [a.clone()]).await;
    let mut unacked = Vec::new();
    for _ in 0..2000 {
        unacked = net.unacked_inbound("i1").await.unwrap();
        if unacked.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(unacked.is_empty(), "a recorded message is acknowledged: {unacked:?}");

    // Not recorded (the store failed): the network keeps them, in order.
    sink.failing.store(true, Ordering::SeqCst);
    let b = net.inbound("i1", text(2)).await.unwrap().message_id;
    let c = net.inbound("i1", text(3)).await.unwrap().message_id;
    until("b and c tried", || sink.tried().len() == 3).await;
    assert_eq!(net.unacked_inbound("i1").await.unwrap(), [b.clone(), c.clone()]);
    // They are not offered again on the same connection.
    let d = {
        sink.failing.store(false, Ordering::SeqCst);
        net.inbound("i1", text(4)).await.unwrap().message_id
    };
    until("d recorded", || sink.accepted().contains(&d)).await;
    assert_eq!(sink.accepted(), [a.clone(), d.clone()]);

    // The next login (a restart of the gateway) gets them again, and records them.
    conn.stop().await;
    let (conn, mut rx) = start(&driver, &store, &sink).await;
    assert_eq!(next(&mut rx).await, DriverEvent::Connected);
    until("b and c recorded at the next login", || sink.accepted().len() == 4).await;
    assert_eq!(sink.accepted(), [a.clone(), d.clone(), b.clone(), c.clone()]);
    for _ in 0..2000 {
        unacked = net.unacked_inbound("i1").await.unwrap();
        if unacked.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(unacked.is_empty(), "{unacked:?}");

    // Only what was never acknowledged comes again: a third login brings nothing.
    conn.stop().await;
    let (conn, mut rx) = start(&driver, &store, &sink).await;
    assert_eq!(next(&mut rx).await, DriverEvent::Connected);
    let e = net.inbound("i1", text(5)).await.unwrap().message_id;
    until("e recorded", || sink.accepted().contains(&e)).await;
    assert_eq!(sink.accepted(), [a, d, b, c, e]);

    // An unlinked device takes its unacknowledged messages with it.
    sink.failing.store(true, Ordering::SeqCst);
    net.inbound("i1", text(6)).await.unwrap();
    until("f tried", || sink.tried().len() == 8).await;
    assert_eq!(net.unacked_inbound("i1").await.unwrap().len(), 1);
    conn.logout().await.unwrap();
    assert!(net.unacked_inbound("i1").await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn in_process() {
    let net = Arc::new(SimNetwork::new(SimConfig::default()));
    unrecorded_messages_come_again_at_the_next_login(SimDriver::local(net.clone()), net).await;
}

#[tokio::test]
async fn over_the_http_service() {
    let net = Arc::new(SimNetwork::new(SimConfig::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, net, async {
        let _ = stop_rx.await;
    }));
    let driver = SimDriver::remote(&base).unwrap();
    let control = driver.control();
    unrecorded_messages_come_again_at_the_next_login(driver, control).await;
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
