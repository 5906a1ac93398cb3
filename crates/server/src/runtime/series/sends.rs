//! Sends per interval from the recorder's running `sent` counters. Each node counts the
//! `message.status` `sent` events it records itself (the node holding a number records its
//! sends), so a node's deltas never include another node's sends: added up in the store,
//! every send is counted once, whichever node held the number at the time. Pure.

use std::collections::HashMap;

/// The counters as they were at the last sample that was stored.
#[derive(Debug, Default)]
pub struct SendBaseline {
    seen: HashMap<String, u64>,
}

/// One number's sends since the baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendDelta {
    pub tenant_id: String,
    pub instance_id: String,
    pub sends: u64,
}

impl SendBaseline {
    /// What each counter in `counts` (tenant, instance, running count) grew by since the
    /// baseline; a counter not seen before counts from zero (they start with the process).
    /// Only numbers that sent something are listed.
    pub fn deltas(&self, counts: &[(String, String, u64)]) -> Vec<SendDelta> {
        counts
            .iter()
            .filter_map(|(t, i, n)| {
                let sends = n.saturating_sub(self.seen.get(i).copied().unwrap_or(0));
                (sends > 0).then(|| SendDelta {
                    tenant_id: t.clone(),
                    instance_id: i.clone(),
                    sends,
                })
            })
            .collect()
    }

    /// Moves the baseline to `counts`, once the sample holding their deltas is stored (a
    /// sample that failed leaves it, and the next one carries those sends).
    pub fn advance(&mut self, counts: &[(String, String, u64)]) {
        for (_, i, n) in counts {
            self.seen.insert(i.clone(), *n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(i: &str, n: u64) -> (String, String, u64) {
        ("t".into(), i.into(), n)
    }

    #[test]
    fn deltas_count_from_the_last_stored_sample() {
        let mut b = SendBaseline::default();
        let first = [c("a", 3), c("b", 0)];
        let d = b.deltas(&first);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].instance_id.as_str(), d[0].sends), ("a", 3));
        b.advance(&first);
        assert!(b.deltas(&first).is_empty());
        // A failed store leaves the baseline: the next sample carries both intervals.
        let second = [c("a", 5), c("b", 1)];
        let third = [c("a", 9), c("b", 1)];
        assert_eq!(b.deltas(&third).iter().map(|d| d.sends).collect::<Vec<_>>(), [6, 1]);
        b.advance(&second);
        assert_eq!(b.deltas(&third).iter().map(|d| d.sends).collect::<Vec<_>>(), [4]);
    }
}
