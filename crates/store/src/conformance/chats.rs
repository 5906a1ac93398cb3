//! The chat store's part of the conformance suite: the chat list, one chat's history in both
//! directions with keyset pages, a LID chat moving to its phone JID, unread counts, pruning.

use chrono::{DateTime, Duration, Utc};

use super::{inbound, instance, message, with_tenant, Harness};
use crate::{
    now_millis, ChatEntry, ChatEntryPosition, ChatQuery, InboundRecord, MessageRecord,
    MessageStatus, MessageUpdate, Store,
};

const ANA: &str = "5511999990001@s.whatsapp.net";
const ANA_LID: &str = "777000111@lid";
const BEA: &str = "5511999990002@s.whatsapp.net";

fn received(
    instance_id: &str,
    tenant_id: &str,
    wa_id: &str,
    chat: &str,
    at: DateTime<Utc>,
) -> InboundRecord {
    InboundRecord {
        chat: chat.into(),
        sender: chat.into(),
        chat_jid: chat.into(),
        sender_jid: chat.into(),
        kind: "text".into(),
        media: None,
        text: format!("hi {wa_id}"),
        received_at: at,
        ..inbound(instance_id, tenant_id, wa_id)
    }
}

fn sent(
    id: &str,
    tenant_id: &str,
    instance_id: Option<&str>,
    to: &str,
    at: DateTime<Utc>,
) -> MessageRecord {
    MessageRecord {
        instance_id: instance_id.map(Into::into),
        forced: instance_id.is_some(),
        to: bzapper_core::Jid::parse(to).unwrap(),
        menu: None,
        created_at: at,
        updated_at: at,
        ..message(id, tenant_id, None)
    }
}

async fn two_tenants(store: &dyn Store) {
    with_tenant(store, "t1").await;
    with_tenant(store, "t2").await;
    for (i, t) in [("i1", "t1"), ("i2", "t1"), ("i3", "t2")] {
        store.create_instance(&instance(i, t, i)).await.unwrap();
    }
}

fn ids(entries: &[ChatEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match e {
            ChatEntry::Received(r) => r.wa_id.clone(),
            ChatEntry::Sent(m) => m.id.clone(),
        })
        .collect()
}

pub(crate) async fn chats_are_listed_newest_first_with_unread_counts(h: &Harness) {
    let store = &*h.s;
    two_tenants(store).await;
    let t0 = now_millis() - Duration::minutes(10);
    let at = |s: i64| t0 + Duration::seconds(s);
    store.record_inbound(&[received("i1", "t1", "WA1", ANA, at(1))]).await.unwrap();
    store.record_inbound(&[received("i1", "t1", "WA2", ANA, at(2))]).await.unwrap();
    store.record_inbound(&[received("i1", "t1", "WB1", BEA, at(3))]).await.unwrap();
    store.record_inbound(&[received("i3", "t2", "WX1", ANA, at(4))]).await.unwrap();
    let since = t0 - Duration::days(1);
    let list = store.list_chats("t1", None, since, None, 10).await.unwrap();
    let rows: Vec<(&str, &str, u64)> =
        list.iter().map(|c| (c.instance_id.as_str(), c.jid.as_str(), c.unread)).collect();
    assert_eq!(rows, [("i1", BEA, 1), ("i1", ANA, 2)], "newest first; the other tenant apart");
    assert_eq!(list[1].push_name.as_deref(), Some("Ana"));
    assert_eq!(list[1].last_at, at(2));

    // The number replies (a forced send: its chat at accept): what came before is read.
    store.insert_message(&sent("m1", "t1", Some("i1"), ANA, at(5))).await.unwrap();
    store.record_inbound(&[received("i1", "t1", "WA3", ANA, at(6))]).await.unwrap();
    let ana = store.get_chat("i1", ANA).await.unwrap().unwrap();
    assert_eq!((ana.unread, ana.last_at), (1, at(6)));

    // A pool message joins the chat of the number that takes it.
    store.insert_message(&sent("m2", "t1", None, BEA, at(7))).await.unwrap();
    assert_eq!(store.get_chat("i2", BEA).await.unwrap(), None);
    let take = MessageUpdate {
        status: MessageStatus::Sending,
        instance_id: Some("i2".into()),
        error: None,
        at: at(8),
        chosen_by: None,
    };
    store.update_message("m2", &take).await.unwrap();
    assert_eq!(store.get_chat("i2", BEA).await.unwrap().unwrap().last_at, at(7));

    // Pages of one, then the number filter.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_chats("t1", None, since, after.as_ref(), 1).await.unwrap();
        let Some(c) = page.first() else { break };
        seen.push((c.instance_id.clone(), c.jid.clone()));
        after = Some(c.position());
    }
    let expected =
        [("i2", BEA), ("i1", ANA), ("i1", BEA)].map(|(i, j)| (i.to_string(), j.to_string()));
    assert_eq!(seen, expected);
    let only = store.list_chats("t1", Some("i2"), since, None, 10).await.unwrap();
    assert_eq!(only.len(), 1);
    assert!(store.list_chats("t2", Some("i1"), since, None, 10).await.unwrap().is_empty());

    // Read up to the newest message: nothing unread; an unknown chat is not found.
    assert!(store.mark_chat_read("i1", ANA, at(6)).await.unwrap());
    assert_eq!(store.get_chat("i1", ANA).await.unwrap().unwrap().unread, 0);
    assert!(!store.mark_chat_read("i1", "5511000000000@s.whatsapp.net", at(6)).await.unwrap());

    // The window and pruning.
    assert_eq!(store.list_chats("t1", None, at(6), None, 10).await.unwrap().len(), 2);
    assert_eq!(store.prune_chats(at(7)).await.unwrap(), 3, "every tenant's");
    assert_eq!(store.list_chats("t1", None, since, None, 10).await.unwrap().len(), 1);
}

pub(crate) async fn a_chats_messages_are_paged_both_directions_newest_first(h: &Harness) {
    let store = &*h.s;
    two_tenants(store).await;
    let t0 = now_millis() - Duration::minutes(10);
    let at = |s: i64| t0 + Duration::seconds(s);
    // Interleaved, and two pairs sharing a millisecond.
    store.record_inbound(&[received("i1", "t1", "WA1", ANA, at(1))]).await.unwrap();
    store.insert_message(&sent("m1", "t1", Some("i1"), ANA, at(2))).await.unwrap();
    store
        .record_inbound(&[
            received("i1", "t1", "WA2", ANA, at(3)),
            received("i1", "t1", "WA3", ANA, at(3)),
        ])
        .await
        .unwrap();
    store.insert_message(&sent("m2", "t1", Some("i1"), ANA, at(3))).await.unwrap();
    store.insert_message(&sent("m3", "t1", None, ANA, at(4))).await.unwrap();
    store.record_inbound(&[received("i2", "t1", "WA4", ANA, at(5))]).await.unwrap();
    store.insert_message(&sent("m4", "t1", Some("i1"), BEA, at(6))).await.unwrap();
    store.record_inbound(&[received("i3", "t2", "WA5", ANA, at(7))]).await.unwrap();

    let jids = [ANA.to_string()];
    let query = |before, instance_id, limit| ChatQuery {
        tenant_id: "t1",
        instance_id,
        jids: &jids,
        since: t0,
        before,
        limit,
    };
    let all = store.chat_entries(&query(None, None, 100)).await.unwrap();
    assert_eq!(ids(&all), ["WA4", "m3", "m2", "WA3", "WA2", "m1", "WA1"]);
    for size in [1, 2, 3] {
        let mut paged = Vec::new();
        let mut before: Option<ChatEntryPosition> = None;
        loop {
            let q = ChatQuery { before: before.as_ref(), limit: size, ..query(None, None, 0) };
            let page = store.chat_entries(&q).await.unwrap();
            if page.is_empty() {
                break;
            }
            before = page.last().map(ChatEntry::position);
            paged.extend(ids(&page));
        }
        assert_eq!(paged, ids(&all), "pages of {size}: no gap, no repeat");
    }
    let one = store.chat_entries(&query(None, Some("i1"), 100)).await.unwrap();
    assert_eq!(
        ids(&one),
        ["m2", "WA3", "WA2", "m1", "WA1"],
        "one number's (a queued pool message has none)"
    );
    let other = ChatQuery { tenant_id: "t2", ..query(None, None, 100) };
    assert_eq!(ids(&store.chat_entries(&other).await.unwrap()), ["WA5"]);
    let recent = ChatQuery { since: at(4), ..query(None, None, 100) };
    assert_eq!(ids(&store.chat_entries(&recent).await.unwrap()), ["WA4", "m3"]);
}

pub(crate) async fn a_chat_first_seen_by_lid_is_found_by_its_phone(h: &Harness) {
    let store = &*h.s;
    two_tenants(store).await;
    let t0 = now_millis() - Duration::minutes(10);
    let at = |s: i64| t0 + Duration::seconds(s);
    // Before the phone is known: a chat under the LID, and an older one under the phone.
    store.insert_message(&sent("m1", "t1", Some("i1"), ANA, at(1))).await.unwrap();
    let by_lid = InboundRecord {
        sender_lid: Some(ANA_LID.into()),
        ..received("i1", "t1", "WL1", ANA_LID, at(2))
    };
    store.record_inbound(&[by_lid]).await.unwrap();
    let lid_only = InboundRecord {
        sender_lid: Some(ANA_LID.into()),
        ..received("i2", "t1", "WL2", ANA_LID, at(3))
    };
    store.record_inbound(&[lid_only]).await.unwrap();
    assert_eq!(store.list_chats("t1", None, t0, None, 10).await.unwrap().len(), 3);

    store.learn_lid("t1", ANA_LID, ANA).await.unwrap();
    let list = store.list_chats("t1", None, t0, None, 10).await.unwrap();
    let rows: Vec<(&str, &str, Option<&str>, u64)> = list
        .iter()
        .map(|c| (c.instance_id.as_str(), c.jid.as_str(), c.lid.as_deref(), c.unread))
        .collect();
    assert_eq!(rows, [("i2", ANA, Some(ANA_LID), 1), ("i1", ANA, Some(ANA_LID), 1)], "merged");
    assert_eq!(store.get_chat("i1", ANA_LID).await.unwrap().unwrap().jid, ANA);
    // The other tenant's chats are untouched by this tenant's mapping.
    store.record_inbound(&[received("i3", "t2", "WL3", ANA_LID, at(4))]).await.unwrap();
    assert_eq!(store.list_chats("t2", None, t0, None, 10).await.unwrap()[0].jid, ANA_LID);

    let jids = [ANA.to_string(), ANA_LID.to_string()];
    let q = ChatQuery {
        tenant_id: "t1",
        instance_id: Some("i1"),
        jids: &jids,
        since: t0,
        before: None,
        limit: 10,
    };
    assert_eq!(ids(&store.chat_entries(&q).await.unwrap()), ["WL1", "m1"]);
    // A later send to the LID itself joins the phone's chat.
    store.insert_message(&sent("m2", "t1", Some("i1"), ANA_LID, at(5))).await.unwrap();
    let c = store.get_chat("i1", ANA).await.unwrap().unwrap();
    assert_eq!((c.last_at, c.unread), (at(5), 0));
    assert_eq!(store.list_chats("t1", Some("i1"), t0, None, 10).await.unwrap().len(), 1);
}
