//! The contact-check cache: which phones are on WhatsApp, as a number last found out, per
//! tenant. Shared by every node of a cluster and kept across restarts, so a phone is asked of
//! WhatsApp (which costs a number pacing and exposure) at most once per TTL. Kept for a
//! while, then pruned.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::time::{to_millis, truncate_to_millis};
use crate::Result;

/// One phone's answer, as the cache keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactCheckRecord {
    /// The phone in E.164 with `+` (`+5511999990001`), as the API shows it: the key, with
    /// the tenant.
    pub phone: String,
    pub on_whatsapp: bool,
    /// The phone-number JID (`<n>@s.whatsapp.net`, no device), when on WhatsApp.
    pub jid: Option<String>,
    /// The LID (`<n>@lid`, no device), when WhatsApp gave it.
    pub lid: Option<String>,
    /// When WhatsApp answered (stored in whole milliseconds).
    pub checked_at: DateTime<Utc>,
}

/// Answers of contact checks per (tenant, phone). Rows go with their tenant.
#[async_trait]
pub trait ContactCheckStore: Send + Sync {
    /// Stores the answers, each replacing the tenant's previous answer for its phone, all in
    /// one statement. When one phone appears twice, the later answer is kept.
    async fn put_contact_checks(&self, tenant_id: &str, rs: &[ContactCheckRecord]) -> Result<()>;
    /// The tenant's answers for these phones checked at or after `not_before` (an older
    /// answer counts as absent), in no particular order.
    async fn get_contact_checks(
        &self,
        tenant_id: &str,
        phones: &[String],
        not_before: DateTime<Utc>,
    ) -> Result<Vec<ContactCheckRecord>>;
    /// Removes every tenant's answers checked before `older_than`; returns how many.
    async fn prune_contact_checks(&self, older_than: DateTime<Utc>) -> Result<u64>;
}

/// `rs` with one record per phone (the last one given), in first-seen order: one upsert
/// statement must not touch a row twice.
pub(crate) fn last_per_phone(rs: &[ContactCheckRecord]) -> Vec<&ContactCheckRecord> {
    let mut out: Vec<&ContactCheckRecord> = Vec::with_capacity(rs.len());
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for r in rs {
        match at.get(r.phone.as_str()) {
            Some(&i) => out[i] = r,
            None => {
                at.insert(&r.phone, out.len());
                out.push(r);
            }
        }
    }
    out
}

/// The stored-milliseconds cut equivalent to `t` for `checked_at >= cut` and `< cut`: stored
/// times are whole milliseconds, so a cut with a fraction rounds up.
pub(crate) fn cut_millis(t: DateTime<Utc>) -> i64 {
    let mut cut = to_millis(t);
    if truncate_to_millis(t) != t {
        cut += 1;
    }
    cut
}
