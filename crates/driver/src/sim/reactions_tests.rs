//! The reaction model on the network: each rule alone, through the driver, on a paused tokio
//! clock the network's [`TokioClock`] follows; off by default; its control over HTTP.

use std::sync::Arc;
use std::time::Duration;

use super::tests::{next, paired, phone, start, text, MemStore};
use super::*;
use crate::{Connection, DriverError, DriverEvent, DropKind, OutgoingText};

fn net_with(reactions: Option<Reactions>) -> (Arc<SimNetwork>, SimDriver) {
    let net = Arc::new(SimNetwork::with_clock(SimConfig::default(), Arc::new(TokioClock::new())));
    if let Some(r) = reactions {
        net.set_reactions(r).unwrap();
    }
    let driver = SimDriver::local(net.clone());
    (net, driver)
}

/// Every rule off but the one a test sets.
fn only(f: impl FnOnce(&mut Reactions)) -> Reactions {
    let mut r = Reactions {
        first_contacts: None,
        not_on_whatsapp: None,
        identical_texts: None,
        ..Reactions::on()
    };
    f(&mut r);
    r
}

fn to(i: u32) -> String {
    format!("+55119{i:08}")
}

fn same_text(id: &str, to: &str) -> OutgoingText {
    OutgoingText { text: "Big sale today!".into(), ..text(id, to) }
}

async fn send(conn: &Arc<dyn Connection>, msg: OutgoingText) -> Result<(), DriverError> {
    conn.send_text(msg).await.map(|_| ())
}

#[tokio::test(start_paused = true)]
async fn off_by_default_a_network_takes_whatever_it_is_sent() {
    let (net, driver) = net_with(None);
    assert_eq!(net.reactions(), Reactions::default());
    assert!(!net.reactions().enabled);
    let (conn, mut rx, _, _) = paired(&driver, "i1", "+5511999990001").await;
    for i in 0..120 {
        net.set_contact(ContactRequest { phone: to(i), on_whatsapp: false }).await.unwrap();
        send(&conn, same_text(&format!("3EB0{i:012}"), &to(i))).await.unwrap();
        assert!(matches!(next(&mut rx).await, DriverEvent::Receipt { .. }));
    }
    assert!(net.is_attached("i1"));
}

#[tokio::test(start_paused = true)]
async fn a_young_number_is_refused_463_after_its_first_contacts_of_the_hour() {
    let rule = FirstContactRule { young_days: 7, per_hour: 3 };
    let (net, driver) = net_with(Some(only(|r| r.first_contacts = Some(rule))));
    let (conn, _rx, _, _) = paired(&driver, "i1", "+5511999990001").await;
    assert_eq!(net.account_age(&phone("+5511999990001")), Some(chrono::TimeDelta::zero()));
    for i in 0..3 {
        send(&conn, text(&format!("3EB0A{i}"), &to(i))).await.unwrap();
    }
    let refused = send(&conn, text("3EB0A9", &to(9))).await.unwrap_err();
    assert_eq!(refused.wa_code(), Some(crate::REACH_OUT_RESTRICTED), "{refused:?}");
    // Someone already written to, or who wrote first, is no first contact.
    send(&conn, text("3EB0B1", &to(1))).await.unwrap();
    let spec = InboundSpec { from: to(20), text: "hello".into(), ..Default::default() };
    net.inbound("i1", spec).await.unwrap();
    send(&conn, text("3EB0B2", &to(20))).await.unwrap();
    // An hour after the first ones, new contacts go through again.
    tokio::time::advance(Duration::from_secs(3600)).await;
    send(&conn, text("3EB0A9", &to(9))).await.unwrap();
    // A number old enough is never held back.
    net.set_age("i1", AgeRequest { days: 30 }).await.unwrap();
    for i in 30..40 {
        send(&conn, text(&format!("3EB0C{i}"), &to(i))).await.unwrap();
    }
    assert!(net.is_attached("i1"));
}

#[tokio::test(start_paused = true)]
async fn messages_to_phones_without_whatsapp_ban_for_a_while_then_for_good() {
    let rule =
        AbsentRule { window_seconds: 3600, temporary_ban_after: 3, ban_after: 5, ban_seconds: 600 };
    let (net, driver) = net_with(Some(only(|r| r.not_on_whatsapp = Some(rule))));
    let (conn, mut rx, store, _) = paired(&driver, "i1", "+5511999990001").await;
    for i in 0..5 {
        net.set_contact(ContactRequest { phone: to(i), on_whatsapp: false }).await.unwrap();
    }
    // Phones with WhatsApp do not count.
    send(&conn, text("3EB0F0", &to(50))).await.unwrap();
    for i in 0..3 {
        send(&conn, text(&format!("3EB0A{i}"), &to(i))).await.unwrap();
        assert!(matches!(next(&mut rx).await, DriverEvent::Receipt { .. }));
    }
    assert!(matches!(next(&mut rx).await, DriverEvent::Receipt { .. }));
    let until = match next(&mut rx).await {
        DriverEvent::Disconnected { kind: DropKind::TemporarilyBanned { until }, detail } => {
            assert!(detail.contains("not_on_whatsapp"), "{detail}");
            until
        }
        other => panic!("expected a temporary ban, got {other:?}"),
    };
    // The paused clock has not moved: the ban ends its length after the wall clock's now.
    let left = until - chrono::Utc::now();
    assert!((590..=600).contains(&left.num_seconds()), "{left}");
    // During the ban a login is refused with its end; after it, it works again.
    let (_c, mut rx) = start(&driver, "i1", &store).await;
    assert!(matches!(
        next(&mut rx).await,
        DriverEvent::Disconnected { kind: DropKind::TemporarilyBanned { .. }, .. }
    ));
    tokio::time::advance(Duration::from_secs(601)).await;
    let (conn, mut rx) = start(&driver, "i1", &store).await;
    assert_eq!(next(&mut rx).await, DriverEvent::Connected);
    // Two more over the account's life: banned for good.
    for i in 3..5 {
        send(&conn, text(&format!("3EB0A{i}"), &to(i))).await.unwrap();
    }
    loop {
        match next(&mut rx).await {
            DriverEvent::Receipt { .. } => continue,
            DriverEvent::Disconnected { kind, .. } => {
                assert_eq!(kind, DropKind::Banned);
                break;
            }
            other => panic!("expected a ban, got {other:?}"),
        }
    }
    tokio::time::advance(Duration::from_secs(30 * 86_400)).await;
    let (_c, mut rx) = start(&driver, "i1", &store).await;
    assert!(matches!(
        next(&mut rx).await,
        DriverEvent::Disconnected { kind: DropKind::Banned, .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn the_same_text_to_many_people_bans_temporarily() {
    let rule = IdenticalRule { recipients: 4, window_seconds: 3600, ban_seconds: 86_400 };
    let (net, driver) = net_with(Some(only(|r| r.identical_texts = Some(rule))));
    let (conn, mut rx, _, _) = paired(&driver, "i1", "+5511999990001").await;
    // Different texts never add up.
    for i in 0..10 {
        send(&conn, text(&format!("3EB0D{i}"), &to(i))).await.unwrap();
        assert!(matches!(next(&mut rx).await, DriverEvent::Receipt { .. }));
    }
    for i in 0..4 {
        send(&conn, same_text(&format!("3EB0E{i}"), &to(i))).await.unwrap();
        assert!(matches!(next(&mut rx).await, DriverEvent::Receipt { .. }));
    }
    match next(&mut rx).await {
        DriverEvent::Disconnected { kind: DropKind::TemporarilyBanned { .. }, detail } => {
            assert!(detail.contains("identical_texts"), "{detail}")
        }
        other => panic!("expected a temporary ban, got {other:?}"),
    }
    assert!(!net.is_attached("i1"));
}

/// The settings and the account age travel over the simulated network's HTTP control API.
#[tokio::test]
async fn the_reaction_model_is_set_over_http() {
    let net = Arc::new(SimNetwork::new(SimConfig::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, net.clone(), async {
        let _ = stop_rx.await;
    }));
    let remote = RemoteSimNet::new(&base).unwrap();
    assert_eq!(remote.get_reactions().await.unwrap(), Reactions::default());
    let mut on = Reactions::on();
    on.identical_texts = None;
    remote.put_reactions(on.clone()).await.unwrap();
    assert_eq!(net.reactions(), on);
    assert_eq!(remote.get_reactions().await.unwrap(), on);
    let mut bad = Reactions::on();
    bad.first_contacts = Some(FirstContactRule { young_days: 7, per_hour: 0 });
    let refused = remote.put_reactions(bad).await.unwrap_err();
    assert!(
        matches!(&refused, SimError::InvalidRequest(m) if m.contains("per_hour")),
        "{refused:?}"
    );
    // An instance with no linked phone has no account to age.
    let unknown = remote.set_age("nobody", AgeRequest { days: 3 }).await;
    assert_eq!(unknown, Err(SimError::NotConnected));

    let driver = SimDriver::remote(&base).unwrap();
    let store = Arc::new(MemStore::default());
    let (_conn, mut rx) = start(&driver, "r1", &store).await;
    assert!(matches!(next(&mut rx).await, DriverEvent::Qr { .. }));
    remote.scan("r1", ScanRequest { phone: "+5511999990012".into() }).await.unwrap();
    remote.set_age("r1", AgeRequest { days: 3 }).await.unwrap();
    let age = net.account_age(&phone("+5511999990012")).unwrap();
    assert_eq!(age.num_days(), 3);
    stop_tx.send(()).unwrap();
    let _ = server.await;
}
