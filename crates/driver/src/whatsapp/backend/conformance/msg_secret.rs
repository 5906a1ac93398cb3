//! Conformance of the message-secret store: upsert merges, message times and expiry.

use std::sync::Arc;

use whatsapp_rust::wacore::store::traits::MsgSecretEntry;

use super::*;

pub(super) const CHAT: &str = GROUP;
pub(super) const SENDER: &str = ADDR_PRIMARY;
pub(super) const IDS: [&str; 5] = ["M1", "M2", "M3", "M4", "M5"];

fn entry(msg_id: &str, secret: u8, expires_at: i64, message_ts: i64) -> MsgSecretEntry {
    MsgSecretEntry {
        chat: Arc::from(CHAT),
        sender: Arc::from(SENDER),
        msg_id: Arc::from(msg_id),
        secret: [secret; 32],
        expires_at,
        message_ts,
    }
}

pub(super) async fn run(h: &Harness) {
    let [m1, m2, m3, m4, m5] = IDS;
    assert_eq!(same!(h, "no secret", |b| b.get_msg_secret(CHAT, SENDER, m1)), None);
    same!(h, "put secret", |b| b.put_msg_secret(CHAT, SENDER, m1, &[1; 32]));
    assert_eq!(same!(h, "get secret", |b| b.get_msg_secret(CHAT, SENDER, m1)), Some(vec![1; 32]));
    assert_eq!(
        same!(h, "secret, unknown time", |b| b.get_msg_secret_with_ts(CHAT, SENDER, m1)),
        Some((vec![1; 32], 0))
    );
    assert_eq!(same!(h, "other sender", |b| b.get_msg_secret(CHAT, ADDR, m1)), None);

    let batch = vec![entry(m2, 2, 1000, 10), entry(m3, 3, 2000, 0)];
    assert_eq!(one_write!(h, "secret batch", |b| b.put_msg_secrets(batch.clone())), 2);

    // On conflict: the new secret, the later deadline, the known message time.
    same!(h, "merge earlier deadline", |b| b.put_msg_secrets(vec![entry(m2, 4, 500, 0)]));
    assert_eq!(
        same!(h, "merged secret", |b| b.get_msg_secret_with_ts(CHAT, SENDER, m2)),
        Some((vec![4; 32], 10))
    );
    same!(h, "merge never-expires", |b| b.put_msg_secrets(vec![entry(m3, 3, 0, 30)]));
    same!(h, "deadline after never", |b| b.put_msg_secrets(vec![entry(m3, 3, 3000, 0)]));

    // Rows of one batch merge with each other too.
    let dupes = vec![entry(m5, 5, 300, 5), entry(m5, 6, 100, 0), entry(m4, 7, 100, 1)];
    assert_eq!(one_write!(h, "batch with duplicates", |b| b.put_msg_secrets(dupes.clone())), 3);
    assert_eq!(
        same!(h, "merged duplicate", |b| b.get_msg_secret_with_ts(CHAT, SENDER, m5)),
        Some((vec![6; 32], 5))
    );

    // Deadlines at or before the cutoff go; "never" stays.
    assert_eq!(same!(h, "expire at 100", |b| b.delete_expired_msg_secrets(100)), 1);
    assert_eq!(same!(h, "expired secret", |b| b.get_msg_secret(CHAT, SENDER, m4)), None);
    assert_eq!(same!(h, "expire at 999", |b| b.delete_expired_msg_secrets(999)), 1);
    assert_eq!(same!(h, "expire at 1000", |b| b.delete_expired_msg_secrets(1000)), 1);
    assert_eq!(same!(h, "expired at deadline", |b| b.get_msg_secret(CHAT, SENDER, m2)), None);
    assert_eq!(same!(h, "expire far ahead", |b| b.delete_expired_msg_secrets(i64::MAX)), 0);
    assert_eq!(
        same!(h, "never-expiring secret", |b| b.get_msg_secret_with_ts(CHAT, SENDER, m3)),
        Some((vec![3; 32], 30))
    );
    same!(h, "keep a secret", |b| b.put_msg_secrets(vec![entry(m5, 8, 0, 50)]));
}
