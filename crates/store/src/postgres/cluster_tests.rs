//! Tests of [`ClusterStore`] on PostgreSQL: two stores on one schema stand for two nodes.
//! Expiry is simulated by moving a lease's or heartbeat's time back in the database, not by
//! waiting. They run when `BZAPPER_TEST_DATABASE_URL` is set.

use std::collections::HashSet;
use std::time::Duration;

use bzapper_core::InstanceState;
use chrono::Utc;

use super::*;
use crate::cluster::{Acquired, ClusterStore, NodeInfo, NodeRef, Signal};
use crate::conformance::{event, instance, message, pg_schema, with_tenant, PgSchema};
use crate::{EventLog, InstanceStore};
use crate::{MasterKey, MessageStatus, MessageStore, StateChange};

const TTL: Duration = Duration::from_secs(15);

struct Nodes {
    a: PgStore,
    b: PgStore,
    _schema: PgSchema,
}

async fn two_nodes() -> Option<Nodes> {
    let (options, schema) = pg_schema().await?;
    let key = MasterKey::generate();
    let a = PgStore::open_with(options.clone(), Sealer::new(key.clone())).await.unwrap();
    let b = PgStore::open_with(options, Sealer::new(key)).await.unwrap();
    with_tenant(&a, "t1").await;
    for (s, id) in [(&a, "A"), (&b, "B")] {
        s.heartbeat(&node(id), TTL).await.unwrap();
    }
    Some(Nodes { a, b, _schema: schema })
}

fn node(id: &str) -> NodeInfo {
    NodeInfo { id: id.into(), url: format!("http://{id}.example:8080"), started_at: Utc::now() }
}

async fn active_instance(s: &PgStore, id: &str) {
    s.create_instance(&instance(id, "t1", id)).await.unwrap();
    let state = InstanceState::new_stopped()
        .apply(&bzapper_core::Trigger::Start { has_session: true })
        .unwrap()
        .to;
    s.update_instance_state(id, &StateChange::state(state)).await.unwrap();
}

/// Makes every lease of `node` expired, as if it had stopped renewing a lease time ago.
async fn expire_leases_of(s: &PgStore, node: &str) {
    sqlx::query("UPDATE instances SET lease_until = bz_now_ms() - 1 WHERE lease_node = $1")
        .bind(node)
        .execute(s.raw_pool())
        .await
        .unwrap();
}

async fn silence(s: &PgStore, node: &str) {
    sqlx::query("UPDATE nodes SET heartbeat_at = bz_now_ms() - 60000 WHERE id = $1")
        .bind(node)
        .execute(s.raw_pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_expires_then_another_node_takes_it() {
    let Some(n) = two_nodes().await else { return };
    active_instance(&n.a, "i1").await;
    assert_eq!(n.a.acquire("i1", "A", TTL).await.unwrap(), Acquired::Yes { previous: None });
    // Asking again for what one holds is a renewal.
    assert_eq!(n.a.acquire("i1", "A", TTL).await.unwrap(), Acquired::Yes { previous: None });
    let a_ref = NodeRef { id: "A".into(), url: "http://A.example:8080".into() };
    assert_eq!(n.b.acquire("i1", "B", TTL).await.unwrap(), Acquired::HeldBy(a_ref.clone()));
    assert_eq!(n.b.holder("i1").await.unwrap(), Some(a_ref));
    // Only the holder can release.
    n.b.release("i1", "B").await.unwrap();
    assert_eq!(n.a.heartbeat(&node("A"), TTL).await.unwrap(), vec!["i1".to_string()]);
    assert!(n.a.orphans(10).await.unwrap().is_empty());

    // A stops renewing: once the lease has expired the number is an orphan, B takes it and
    // learns whose it was, and A's next heartbeat no longer lists it.
    expire_leases_of(&n.a, "A").await;
    assert_eq!(n.b.holder("i1").await.unwrap(), None);
    let orphans = n.b.orphans(10).await.unwrap();
    assert_eq!(orphans.len(), 1);
    assert_eq!(
        (orphans[0].instance.id.as_str(), orphans[0].previous_node.as_deref()),
        ("i1", Some("A"))
    );
    assert_eq!(
        n.b.acquire("i1", "B", TTL).await.unwrap(),
        Acquired::Yes { previous: Some("A".into()) }
    );
    assert!(n.a.heartbeat(&node("A"), TTL).await.unwrap().is_empty());
    assert_eq!(n.b.heartbeat(&node("B"), TTL).await.unwrap(), vec!["i1".to_string()]);

    // A released lease is free at once, with no previous holder to report.
    n.b.release("i1", "B").await.unwrap();
    assert_eq!(n.a.acquire("i1", "A", TTL).await.unwrap(), Acquired::Yes { previous: None });
    assert!(n.a.acquire("missing", "A", TTL).await.is_err());
}

/// A number waiting for its temporary ban to end should run: with nobody holding it, it is
/// an orphan (a node takes it and connects it when the ban ends) and counts in the shares.
/// Without an expiry, a banned number is left alone.
#[tokio::test]
async fn a_number_waiting_for_its_ban_to_end_is_placed_like_an_active_one() {
    let Some(n) = two_nodes().await else { return };
    let banned = InstanceState::disconnected(bzapper_core::Reason::Banned, Some("code 101".into()));
    for id in ["waiting", "for-good"] {
        n.a.create_instance(&instance(id, "t1", id)).await.unwrap();
    }
    let until = crate::now_millis() + chrono::Duration::hours(1);
    let change = StateChange { ban_until: Some(until), ..StateChange::state(banned.clone()) };
    n.a.update_instance_state("waiting", &change).await.unwrap();
    n.a.update_instance_state("for-good", &StateChange::state(banned)).await.unwrap();
    let orphans = n.b.orphans(10).await.unwrap();
    let ids: Vec<&str> = orphans.iter().map(|o| o.instance.id.as_str()).collect();
    assert_eq!(ids, ["waiting"]);
    assert_eq!(n.b.placement(TTL).await.unwrap().active_instances, 1);
    assert!(matches!(n.b.acquire("waiting", "B", TTL).await.unwrap(), Acquired::Yes { .. }));
    assert_eq!(n.b.placement(TTL).await.unwrap().held_active.get("B"), Some(&1));
    assert!(n.a.orphans(10).await.unwrap().is_empty());
    // An operator's command clears the expiry: it no longer needs a holder.
    assert!(n.b.clear_ban_expiry("waiting").await.unwrap());
    assert_eq!(n.b.placement(TTL).await.unwrap().active_instances, 0);
}

#[tokio::test]
async fn two_nodes_racing_for_the_same_numbers_never_both_get_one() {
    let Some(n) = two_nodes().await else { return };
    let ids: Vec<String> = (0..40).map(|i| format!("i{i:02}")).collect();
    for id in &ids {
        active_instance(&n.a, id).await;
    }
    let race = |s: PgStore, me: &'static str, ids: Vec<String>| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            for id in ids {
                if let Acquired::Yes { .. } = s.acquire(&id, me, TTL).await.unwrap() {
                    got.push(id);
                }
            }
            got
        })
    };
    let mut reversed = ids.clone();
    reversed.reverse();
    let (a, b) =
        tokio::join!(race(n.a.clone(), "A", ids.clone()), race(n.b.clone(), "B", reversed));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), ids.len(), "a: {a:?} b: {b:?}");
    let a: HashSet<_> = a.into_iter().collect();
    assert!(b.iter().all(|id| !a.contains(id)));
    let placement = n.a.placement(TTL).await.unwrap();
    assert_eq!((placement.live_nodes, placement.active_instances), (2, 40));
    assert_eq!(placement.held_active.values().sum::<u32>(), 40);
    let nodes = n.a.nodes(TTL, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(nodes.iter().map(|v| v.instances.len()).sum::<usize>(), 40);
    assert!(nodes.iter().all(|v| v.live));
}

#[tokio::test]
async fn leaving_frees_leases_claims_and_roles_at_once() {
    let Some(n) = two_nodes().await else { return };
    active_instance(&n.a, "i1").await;
    n.a.acquire("i1", "A", TTL).await.unwrap();
    assert!(n.a.hold_role("webhooks", "A", TTL).await.unwrap());
    assert!(!n.b.hold_role("webhooks", "B", TTL).await.unwrap());
    let mut m1 = message("m1", "t1", None);
    m1.content = Some(crate::conformance::content());
    n.a.insert_message(&m1).await.unwrap();
    assert!(n.a.claim_message("m1", "A").await.unwrap());
    assert!(!n.b.claim_message("m1", "B").await.unwrap());

    let mut signals = n.b.listen().await.unwrap();
    n.a.leave("A").await.unwrap();
    let mut got = HashSet::new();
    while got.len() < 2 {
        let s = tokio::time::timeout(Duration::from_secs(5), signals.recv()).await.unwrap();
        got.insert(s.unwrap());
    }
    assert_eq!(got, HashSet::from([Signal::Leases, Signal::Queue]));
    assert_eq!(n.b.holder("i1").await.unwrap(), None);
    assert!(n.b.hold_role("webhooks", "B", TTL).await.unwrap());
    let pools = [("t1".to_string(), "default".to_string())];
    let claimed = n.b.claim_messages("B", TTL, &[], &pools, 10).await.unwrap();
    // Claimed whole, content included.
    assert_eq!(claimed, [m1]);
    let nodes = n.b.nodes(TTL, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(nodes.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["B"]);
}

#[tokio::test]
async fn releasing_all_claims_of_a_node_id_frees_only_those_and_signals_the_queue() {
    let Some(n) = two_nodes().await else { return };
    for id in ["mA", "mB"] {
        n.a.insert_message(&message(id, "t1", None)).await.unwrap();
    }
    assert!(n.a.claim_message("mA", "A").await.unwrap());
    assert!(n.b.claim_message("mB", "B").await.unwrap());
    let mut signals = n.b.listen().await.unwrap();
    n.a.release_all_claims("A").await.unwrap();
    assert_eq!(next(&mut signals).await, Signal::Queue);
    let pools = [("t1".to_string(), "default".to_string())];
    let claimed = n.b.claim_messages("B", TTL, &[], &pools, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["mA"], "B's own stays");
}

#[tokio::test]
async fn an_accepted_send_is_stored_claimed_or_unclaimed_with_one_signal_for_its_batch() {
    let Some(n) = two_nodes().await else { return };
    let mut signals = n.b.listen().await.unwrap();
    // Claimed in the statement that stores it: no other node takes it.
    n.a.insert_accepted(&message("mine", "t1", None), Some("A")).await.unwrap();
    let pools = [("t1".to_string(), "default".to_string())];
    assert!(n.b.claim_messages("B", TTL, &[], &pools, 10).await.unwrap().is_empty());
    assert!(!n.b.claim_message("mine", "B").await.unwrap());
    // Unclaimed ones, accepted together (one batch) with a duplicate key: the duplicate
    // alone is refused, and the others are signalled once committed.
    let (k1, k2) = (message("k1", "t1", Some("key")), message("k2", "t1", Some("key")));
    let (free1, free2) = (message("free1", "t1", None), message("free2", "t1", None));
    let (r1, r2, r3, r4) = tokio::join!(
        n.a.insert_accepted(&free1, None),
        n.a.insert_accepted(&free2, None),
        n.a.insert_accepted(&k1, None),
        n.a.insert_accepted(&k2, None),
    );
    r1.unwrap();
    r2.unwrap();
    assert!(r3.is_ok() != r4.is_ok(), "exactly one holder of the key is stored");
    assert!(matches!(r3.err().or(r4.err()), Some(crate::StoreError::Conflict(_))));
    assert_eq!(next(&mut signals).await, Signal::Queue);
    let claimed = n.b.claim_messages("B", TTL, &[], &pools, 10).await.unwrap();
    let mut ids: Vec<&str> = claimed.iter().map(|m| m.id.as_str()).collect();
    ids.sort_unstable();
    let stored_key = if ids.contains(&"k1") { "k1" } else { "k2" };
    assert_eq!(ids, ["free1", "free2", stored_key]);
    // A key already stored is refused in a later batch too, the rest of the batch stored.
    let (k3, free3) = (message("k3", "t1", Some("key")), message("free3", "t1", None));
    let (again, other) =
        tokio::join!(n.a.insert_accepted(&k3, Some("A")), n.a.insert_accepted(&free3, Some("A")),);
    assert!(matches!(again, Err(crate::StoreError::Conflict(_))), "{again:?}");
    other.unwrap();
    assert_eq!(n.a.find_by_idempotency_key("t1", "key").await.unwrap().unwrap().id, stored_key);
    assert!(n.a.get_message_by_id("free3").await.unwrap().is_some());
}

#[tokio::test]
async fn a_role_passes_to_another_node_only_once_its_lease_expires() {
    let Some(n) = two_nodes().await else { return };
    assert!(n.a.hold_role("webhooks", "A", TTL).await.unwrap());
    assert!(n.a.hold_role("webhooks", "A", TTL).await.unwrap(), "renewal");
    assert!(!n.b.hold_role("webhooks", "B", TTL).await.unwrap());
    sqlx::query("UPDATE roles SET lease_until = bz_now_ms() - 1")
        .execute(n.a.raw_pool())
        .await
        .unwrap();
    assert!(n.b.hold_role("webhooks", "B", TTL).await.unwrap());
    assert!(!n.a.hold_role("webhooks", "A", TTL).await.unwrap());
}

#[tokio::test]
async fn sends_are_claimed_by_the_node_that_can_make_them_and_once() {
    let Some(n) = two_nodes().await else { return };
    active_instance(&n.a, "iA").await;
    active_instance(&n.a, "iB").await;
    let mut forced_b = message("forced-to-iB", "t1", None);
    forced_b.instance_id = Some("iB".into());
    forced_b.forced = true;
    let mut other_pool = message("other-pool", "t1", None);
    other_pool.pool = "sales".into();
    let mut in_doubt = message("in-doubt-on-iA", "t1", None);
    in_doubt.instance_id = Some("iA".into());
    in_doubt.status = MessageStatus::Sending;
    for m in [&forced_b, &other_pool, &in_doubt] {
        n.a.insert_message(m).await.unwrap();
    }
    for i in 0..60 {
        n.a.insert_message(&message(&format!("p{i:02}"), "t1", None)).await.unwrap();
    }
    let default = vec![("t1".to_string(), "default".to_string())];
    // Both nodes serve the default pool; A holds iA, B holds iB. They claim at once.
    let claim = |s: PgStore, me: &'static str, held: Vec<String>| {
        let pools = default.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let page = s.claim_messages(me, TTL, &held, &pools, 7).await.unwrap();
                if page.is_empty() {
                    break got;
                }
                got.extend(page.into_iter().map(|m| m.id));
            }
        })
    };
    let (a, b) = tokio::join!(
        claim(n.a.clone(), "A", vec!["iA".into()]),
        claim(n.b.clone(), "B", vec!["iB".into()])
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.contains(&"in-doubt-on-iA".to_string()), "a sending message stays with its number");
    assert!(b.contains(&"forced-to-iB".to_string()), "a forced message goes to its number's node");
    assert!(!a.contains(&"other-pool".to_string()) && !b.contains(&"other-pool".to_string()));
    let all: HashSet<&String> = a.iter().chain(&b).collect();
    assert_eq!(all.len(), a.len() + b.len(), "claimed twice: a {a:?} b {b:?}");
    assert_eq!(all.len(), 62);

    // A dies: once its heartbeat is older than the lease time, B may claim what A had.
    assert!(n.b.claim_messages("B", TTL, &["iA".into()], &default, 100).await.unwrap().is_empty());
    silence(&n.a, "A").await;
    let taken = n.b.claim_messages("B", TTL, &["iA".into()], &default, 100).await.unwrap();
    assert_eq!(taken.len(), a.len());
    // Released sends are claimable again by anyone who can make them.
    let ids: Vec<String> = taken.iter().map(|m| m.id.clone()).collect();
    n.b.release_messages("B", &ids).await.unwrap();
    n.a.heartbeat(&node("A"), TTL).await.unwrap();
    let again = n.a.claim_messages("A", TTL, &["iA".into()], &default, 100).await.unwrap();
    assert_eq!(again.len(), ids.len());
}

#[tokio::test]
async fn the_pool_check_sees_connected_healthy_numbers_of_every_node() {
    let Some(n) = two_nodes().await else { return };
    active_instance(&n.a, "i1").await;
    assert!(!n.b.pool_has_connected_number("t1", "default", 40).await.unwrap(), "connecting");
    let connected = InstanceState::new_stopped()
        .apply(&bzapper_core::Trigger::Start { has_session: true })
        .unwrap()
        .to
        .apply(&bzapper_core::Trigger::Connected)
        .unwrap()
        .to;
    n.a.update_instance_state("i1", &StateChange::state(connected)).await.unwrap();
    assert!(n.b.pool_has_connected_number("t1", "default", 40).await.unwrap());
    assert!(!n.b.pool_has_connected_number("t1", "sales", 40).await.unwrap());
    n.a.set_instance_health("i1", 39).await.unwrap();
    assert!(!n.b.pool_has_connected_number("t1", "default", 40).await.unwrap());
}

#[tokio::test]
async fn every_node_hears_appends_and_signals() {
    let Some(n) = two_nodes().await else { return };
    let mut on_b = n.b.listen().await.unwrap();
    n.a.append_events(&[event("t1", None, "instance.qr")]).await.unwrap();
    assert_eq!(next(&mut on_b).await, Signal::Events);
    n.a.signal(Signal::Queue).await.unwrap();
    assert_eq!(next(&mut on_b).await, Signal::Queue);
    n.a.signal(Signal::Webhooks).await.unwrap();
    assert_eq!(next(&mut on_b).await, Signal::Webhooks);
    n.a.signal(Signal::Keys).await.unwrap();
    assert_eq!(next(&mut on_b).await, Signal::Keys);
}

async fn next(rx: &mut tokio::sync::mpsc::Receiver<Signal>) -> Signal {
    tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_send_scheduled_for_later_is_claimed_only_once_due_and_in_due_order() {
    let Some(n) = two_nodes().await else { return };
    let t0 = crate::now_millis();
    let mut later = message("m-later", "t1", None);
    later.created_at = t0 - chrono::Duration::seconds(10);
    later.send_at = Some(t0 + chrono::Duration::hours(1));
    let mut due = message("m-due", "t1", None);
    due.created_at = t0;
    let mut was_scheduled = message("m-was", "t1", None);
    was_scheduled.created_at = t0 - chrono::Duration::minutes(10);
    was_scheduled.send_at = Some(t0 - chrono::Duration::seconds(1));
    for m in [&later, &due, &was_scheduled] {
        n.a.insert_message(m).await.unwrap();
    }
    assert!(!n.a.claim_message("m-later", "A").await.unwrap(), "not before its time");
    let pools = [("t1".to_string(), "default".to_string())];
    let claimed = n.b.claim_messages("B", TTL, &[], &pools, 10).await.unwrap();
    assert_eq!(
        claimed.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["m-was", "m-due"],
        "due ones, by when they fell due"
    );
}

#[tokio::test]
async fn a_send_to_a_contact_sticky_to_another_nodes_number_is_claimed_by_that_node() {
    use crate::{ConversationStore, StartedBy};
    let Some(n) = two_nodes().await else { return };
    for id in ["iA", "iB"] {
        active_instance(&n.a, id).await;
    }
    let connected = |id: &'static str| {
        sqlx::query("UPDATE instances SET status = 'connected' WHERE id = $1")
            .bind(id)
            .execute(n.a.raw_pool())
    };
    connected("iA").await.unwrap();
    connected("iB").await.unwrap();
    let m = message("to-bs-contact", "t1", None);
    let contact = m.to.to_string();
    n.a.touch_conversation("t1", "iB", &contact, StartedBy::In, Utc::now()).await.unwrap();
    n.a.insert_message(&m).await.unwrap();
    let default = vec![("t1".to_string(), "default".to_string())];

    // A holds iA only: the contact's number is B's, connected, so A leaves it.
    let a = n.a.claim_messages("A", TTL, &["iA".into()], &default, 10).await.unwrap();
    assert!(a.is_empty(), "claimed away from the contact's number: {a:?}");
    let b = n.b.claim_messages("B", TTL, &["iB".into()], &default, 10).await.unwrap();
    assert_eq!(b.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["to-bs-contact"]);

    // Once the contact's number is not connected, any node with a number of the pool may.
    n.b.release_messages("B", &["to-bs-contact".to_string()]).await.unwrap();
    sqlx::query("UPDATE instances SET status = 'disconnected' WHERE id = 'iB'")
        .execute(n.a.raw_pool())
        .await
        .unwrap();
    let a = n.a.claim_messages("A", TTL, &["iA".into()], &default, 10).await.unwrap();
    assert_eq!(a.len(), 1, "the pool's other number takes it over");
}
