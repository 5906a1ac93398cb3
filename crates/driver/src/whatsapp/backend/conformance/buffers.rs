//! Conformance of the message buffers: sent messages (retry receipts) and pending inbound
//! messages (durability hook), with their expiry sweeps.

use whatsapp_rust::wacore::store::traits::{PendingInboundKey, PendingInboundRow};
use whatsapp_rust::wacore::time::now_secs;

use super::*;

pub(super) const CHAT: &str = GROUP;
pub(super) const SENDER: &str = ADDR_PRIMARY;
pub(super) const KEPT_SENT: &str = "3EB0KEEP";
pub(super) const PENDING_IDS: [&str; 5] = ["IN1", "IN2", "IN3", "IN4", "IN5"];

pub(super) async fn run(h: &Harness) {
    sent_messages(h).await;
    pending_inbound(h).await;
}

/// Rows are stamped with the current time; the sweeps are checked with cutoffs an hour away
/// on either side so that the clock ticking during the test cannot matter.
async fn sent_messages(h: &Harness) {
    assert_eq!(same!(h, "nothing to take", |b| b.take_sent_message(CHAT, "3EB0A")), None);
    same!(h, "store sent", |b| b.store_sent_message(CHAT, "3EB0A", b"payload-a"));
    assert_eq!(
        same!(h, "take sent", |b| b.take_sent_message(CHAT, "3EB0A")),
        Some(b"payload-a".to_vec())
    );
    assert_eq!(same!(h, "taken once", |b| b.take_sent_message(CHAT, "3EB0A")), None);

    same!(h, "store sent b", |b| b.store_sent_message(CHAT, "3EB0B", b"payload-b"));
    same!(h, "overwrite sent b", |b| b.store_sent_message(CHAT, "3EB0B", b"payload-b2"));
    same!(h, "store sent c", |b| b.store_sent_message(ADDR_PRIMARY, "3EB0C", b"payload-c"));
    same!(h, "same id, other chat", |b| b.store_sent_message(ODD, "3EB0B", b"payload-d"));
    let hour_ago = now_secs() - 3600;
    assert_eq!(same!(h, "nothing expired", |b| b.delete_expired_sent_messages(hour_ago)), 0);
    assert_eq!(
        same!(h, "take overwritten", |b| b.take_sent_message(CHAT, "3EB0B")),
        Some(b"payload-b2".to_vec())
    );
    let in_an_hour = now_secs() + 3600;
    assert_eq!(same!(h, "all expired", |b| b.delete_expired_sent_messages(in_an_hour)), 2);
    assert_eq!(same!(h, "expired sent", |b| b.take_sent_message(ODD, "3EB0B")), None);
    same!(h, "keep a sent message", |b| b.store_sent_message(CHAT, KEPT_SENT, b"payload-k"));
}

async fn pending_inbound(h: &Harness) {
    let [in1, in2, in3, in4, in5] = PENDING_IDS;
    let row = |id, message| PendingInboundRow { chat: CHAT, sender: SENDER, id, message };
    let key = |id| PendingInboundKey { chat: CHAT, sender: SENDER, id };

    assert_eq!(same!(h, "no pending", |b| b.get_pending_inbound(CHAT, SENDER, in1)), None);
    same!(h, "store pending", |b| b.store_pending_inbound(CHAT, SENDER, in1, b"m-1"));
    same!(h, "overwrite pending", |b| b.store_pending_inbound(CHAT, SENDER, in1, b"m-1b"));
    assert_eq!(
        same!(h, "get pending", |b| b.get_pending_inbound(CHAT, SENDER, in1)),
        Some(b"m-1b".to_vec())
    );
    // The same stanza id from another sender is another message.
    assert_eq!(same!(h, "other sender", |b| b.get_pending_inbound(CHAT, ADDR, in1)), None);

    let rows = [row(in2, &b"m-2"[..]), row(in3, &b"m-3"[..])];
    one_write!(h, "pending batch", |b| b.store_pending_inbound_batch(&rows));
    one_write!(h, "pending delete batch", |b| b
        .delete_pending_inbound_batch(&[key(in1), key(in2)]));
    assert_eq!(same!(h, "deleted pending", |b| b.get_pending_inbound(CHAT, SENDER, in2)), None);
    assert_eq!(
        same!(h, "batched pending", |b| b.get_pending_inbound(CHAT, SENDER, in3)),
        Some(b"m-3".to_vec())
    );
    same!(h, "delete pending", |b| b.delete_pending_inbound(CHAT, SENDER, in3));

    same!(h, "store pending 4", |b| b.store_pending_inbound(CHAT, SENDER, in4, b"m-4"));
    let hour_ago = now_secs() - 3600;
    assert_eq!(same!(h, "no pending expired", |b| b.delete_expired_pending_inbound(hour_ago)), 0);
    let in_an_hour = now_secs() + 3600;
    assert_eq!(same!(h, "pending expired", |b| b.delete_expired_pending_inbound(in_an_hour)), 1);
    assert_eq!(same!(h, "expired pending", |b| b.get_pending_inbound(CHAT, SENDER, in4)), None);
    same!(h, "keep a pending", |b| b.store_pending_inbound(CHAT, SENDER, in5, b"m-5"));
}
