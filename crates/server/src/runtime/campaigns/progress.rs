//! A campaign's progress counts, from its record and the counts of its messages by number and
//! status. Pure. Every recipient is in exactly one bucket, so the buckets add up to
//! `recipients` at every moment.

use std::collections::BTreeMap;

use bzapper_store::{CampaignCount, CampaignRecord, CampaignStatus, MessageStatus};
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::events::campaign::Totals;

/// What one number carried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct NumberTotals {
    /// The number.
    pub instance_id: String,
    /// Went out; no delivery receipt yet.
    pub sent: u64,
    /// Reached the phone; not read yet.
    pub delivered: u64,
    /// Read by the recipient.
    pub read: u64,
    /// The send failed.
    pub failed: u64,
}

impl Totals {
    /// Messages the campaign still has to send: pending, queued or sending.
    pub fn remaining(&self) -> u64 {
        self.pending + self.queued + self.sending
    }
}

/// The campaign's totals and its numbers' counts (by instance id).
pub fn totals(c: &CampaignRecord, counts: &[CampaignCount]) -> (Totals, Vec<NumberTotals>) {
    let mut t = Totals {
        recipients: u64::from(c.recipients),
        skipped: u64::from(c.skipped),
        ..Totals::default()
    };
    let mut numbers: BTreeMap<&str, NumberTotals> = BTreeMap::new();
    let mut stored = 0u64;
    for n in counts {
        stored += n.count;
        if n.skipped {
            // Left out before a first contact: nothing was sent, by any number.
            t.skipped += n.count;
            continue;
        }
        let bucket = match n.status {
            MessageStatus::Queued => &mut t.queued,
            MessageStatus::Sending => &mut t.sending,
            MessageStatus::Sent => &mut t.sent,
            MessageStatus::Delivered => &mut t.delivered,
            MessageStatus::Read => &mut t.read,
            MessageStatus::Failed => &mut t.failed,
            MessageStatus::Expired => &mut t.expired,
        };
        *bucket += n.count;
        let Some(id) = n.instance_id.as_deref() else { continue };
        let per = numbers
            .entry(id)
            .or_insert_with(|| NumberTotals { instance_id: id.to_string(), ..Default::default() });
        match n.status {
            MessageStatus::Sent => per.sent += n.count,
            MessageStatus::Delivered => per.delivered += n.count,
            MessageStatus::Read => per.read += n.count,
            MessageStatus::Failed => per.failed += n.count,
            MessageStatus::Queued | MessageStatus::Sending | MessageStatus::Expired => {}
        }
    }
    // (`skipped` counts the stored campaign's own skips and the messages skipped above.)
    let not_queued = t.recipients.saturating_sub(stored + u64::from(c.skipped));
    if c.status == CampaignStatus::Canceled {
        t.canceled = not_queued;
    } else {
        t.pending = not_queued;
    }
    let numbers =
        numbers.into_values().filter(|n| n.sent + n.delivered + n.read + n.failed > 0).collect();
    (t, numbers)
}

#[cfg(test)]
mod tests {
    use bzapper_store::now_millis;

    use super::*;

    fn campaign(recipients: u32, status: CampaignStatus) -> CampaignRecord {
        CampaignRecord {
            id: "c1".into(),
            tenant_id: "t1".into(),
            name: "n".into(),
            template: "t".into(),
            pool: "default".into(),
            schedule: None,
            status,
            recipients,
            next_index: 0,
            skipped: 0,
            created_at: now_millis(),
            updated_at: now_millis(),
            ended_at: None,
            idempotency_key: None,
        }
    }

    fn count(instance: Option<&str>, status: MessageStatus, count: u64) -> CampaignCount {
        CampaignCount { instance_id: instance.map(Into::into), status, skipped: false, count }
    }

    fn sum(t: &Totals) -> u64 {
        t.pending
            + t.queued
            + t.sending
            + t.sent
            + t.delivered
            + t.read
            + t.failed
            + t.expired
            + t.skipped
            + t.canceled
    }

    #[test]
    fn every_recipient_is_counted_once() {
        let counts = [
            count(None, MessageStatus::Queued, 2),
            count(Some("a"), MessageStatus::Sending, 1),
            count(Some("a"), MessageStatus::Sent, 3),
            count(Some("b"), MessageStatus::Delivered, 4),
            count(Some("b"), MessageStatus::Read, 5),
            count(Some("b"), MessageStatus::Failed, 1),
            count(None, MessageStatus::Failed, 2),
        ];
        let (t, numbers) = totals(&campaign(30, CampaignStatus::Running), &counts);
        assert_eq!((t.pending, t.queued, t.sending, t.failed), (12, 2, 1, 3));
        assert_eq!(sum(&t), 30);
        assert_eq!(t.remaining(), 15);
        assert_eq!(
            numbers,
            [
                NumberTotals { instance_id: "a".into(), sent: 3, ..Default::default() },
                NumberTotals {
                    instance_id: "b".into(),
                    delivered: 4,
                    read: 5,
                    failed: 1,
                    ..Default::default()
                },
            ]
        );

        // Canceled: what was never queued is `canceled`, not `pending`.
        let (t, _) = totals(&campaign(30, CampaignStatus::Canceled), &counts);
        assert_eq!((t.pending, t.canceled), (0, 12));
        assert_eq!(sum(&t), 30);
        // Expired ones have their bucket; skipped ones (not on WhatsApp) theirs, apart from
        // `failed` and from the numbers'.
        let mut more = counts.to_vec();
        more.push(count(None, MessageStatus::Expired, 2));
        more.push(CampaignCount {
            instance_id: Some("a".into()),
            status: MessageStatus::Failed,
            skipped: true,
            count: 4,
        });
        let (t, numbers) = totals(&campaign(30, CampaignStatus::Running), &more);
        assert_eq!((t.pending, t.failed, t.expired, t.skipped), (6, 3, 2, 4));
        assert_eq!(sum(&t), 30);
        assert_eq!(numbers[0].failed, 0, "{numbers:?}");
        let (t, numbers) = totals(&campaign(3, CampaignStatus::Paused), &[]);
        assert_eq!((t.pending, sum(&t)), (3, 3));
        assert!(numbers.is_empty());
    }
}
