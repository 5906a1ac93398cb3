//! Which phone numbers are on WhatsApp: asked through one of the tenant's connected numbers in
//! batches paced like sends (a human-like gap between two batches of the same number, since a
//! burst of look-ups is one of the patterns WhatsApp bans for), and remembered for a day so a
//! repeated check costs nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bzapper_core::sending::gap_ms;
use bzapper_core::{Limits, Phone};
use bzapper_driver::{Connection, ContactStatus, DriverError};
use rand::SeedableRng;
use tokio::time::Instant;

/// How long an answer is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Phones asked in one look-up.
pub const BATCH: usize = 50;
/// The most answers remembered; past it, expired ones are dropped, then the oldest.
const CACHE_CAP: usize = 200_000;

/// A phone's answer, and whether it came from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub status: ContactStatus,
    pub cached: bool,
}

#[derive(Default)]
pub struct ContactChecker {
    /// (tenant, phone digits) → answer and when it was got.
    cache: Mutex<HashMap<(String, String), (ContactStatus, Instant)>>,
    /// Per number: the earliest moment its next look-up may go out. Held across the wait, so
    /// look-ups through one number queue behind each other.
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
}

impl ContactChecker {
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached answer for each phone that has one.
    pub fn cached(&self, tenant_id: &str, phones: &[Phone]) -> HashMap<Phone, ContactStatus> {
        let now = Instant::now();
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        phones
            .iter()
            .filter_map(|p| {
                let (status, at) = cache.get(&(tenant_id.to_string(), p.digits().to_string()))?;
                (now.duration_since(*at) < CACHE_TTL).then(|| (p.clone(), status.clone()))
            })
            .collect()
    }

    /// Checks `phones` (none of them cached) through `conn`, the connection of number
    /// `number_id` with sending `limits`: batches of [`BATCH`], each after the number's gap.
    pub async fn check(
        &self,
        tenant_id: &str,
        number_id: &str,
        limits: &Limits,
        conn: &dyn Connection,
        phones: &[Phone],
    ) -> Result<Vec<ContactStatus>, DriverError> {
        let gate = {
            let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
            gates.entry(number_id.to_string()).or_default().clone()
        };
        let mut out = Vec::with_capacity(phones.len());
        let mut rng = rand::rngs::StdRng::from_entropy();
        for batch in phones.chunks(BATCH) {
            let mut next = gate.lock().await;
            if let Some(at) = *next {
                tokio::time::sleep_until(at).await;
            }
            let answers = conn.check_contacts(batch).await;
            *next = Some(Instant::now() + Duration::from_millis(gap_ms(limits, &mut rng)));
            drop(next);
            let answers = answers?;
            self.remember(tenant_id, &answers);
            out.extend(answers);
        }
        Ok(out)
    }

    fn remember(&self, tenant_id: &str, answers: &[ContactStatus]) {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() + answers.len() > CACHE_CAP {
            cache.retain(|_, (_, at)| now.duration_since(*at) < CACHE_TTL);
            while cache.len() + answers.len() > CACHE_CAP {
                let oldest = cache.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => cache.remove(&k),
                    None => break,
                };
            }
        }
        for a in answers {
            cache.insert((tenant_id.to_string(), a.phone.digits().to_string()), (a.clone(), now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use bzapper_core::Jid;
    use bzapper_driver::{
        ChatState, GroupInfo, GroupSummary, InboundMedia, OutgoingMessage, PairCode, SendAck,
    };
    use std::path::Path;

    /// Records when each look-up happened; phones ending in 0 are not on WhatsApp.
    #[derive(Default)]
    struct Recording {
        at: Mutex<Vec<(Instant, usize)>>,
    }

    #[async_trait]
    impl Connection for Recording {
        async fn send(&self, _: OutgoingMessage) -> Result<SendAck, DriverError> {
            unreachable!()
        }
        async fn set_chat_state(&self, _: &Jid, _: ChatState) -> Result<(), DriverError> {
            unreachable!()
        }
        async fn pair_code(&self, _: &Phone) -> Result<PairCode, DriverError> {
            unreachable!()
        }
        async fn download_media(&self, _: &InboundMedia, _: &Path) -> Result<u64, DriverError> {
            unreachable!()
        }
        async fn groups(&self) -> Result<Vec<GroupSummary>, DriverError> {
            unreachable!()
        }
        async fn group(&self, _: &Jid) -> Result<GroupInfo, DriverError> {
            unreachable!()
        }
        async fn check_contacts(
            &self,
            phones: &[Phone],
        ) -> Result<Vec<ContactStatus>, DriverError> {
            self.at.lock().unwrap().push((Instant::now(), phones.len()));
            Ok(phones
                .iter()
                .map(|p| {
                    let on = !p.digits().ends_with('0');
                    ContactStatus {
                        phone: p.clone(),
                        on_whatsapp: on,
                        jid: on.then(|| p.jid()),
                        lid: None,
                    }
                })
                .collect())
        }
        async fn logout(&self) -> Result<(), DriverError> {
            unreachable!()
        }
        async fn stop(&self) {}
    }

    fn phones(n: usize) -> Vec<Phone> {
        (0..n).map(|i| Phone::parse(&format!("+55119{:08}", i)).unwrap()).collect()
    }

    const LIMITS: Limits = Limits {
        per_minute: 8,
        per_hour: 200,
        per_day: 1500,
        min_gap_ms: 3_000,
        max_gap_ms: 5_000,
    };

    #[tokio::test(start_paused = true)]
    async fn batches_through_one_number_are_spaced_by_its_gap() {
        let checker = ContactChecker::new();
        let conn = Recording::default();
        let list = phones(120);
        let answers = checker.check("t1", "n1", &LIMITS, &conn, &list).await.unwrap();
        assert_eq!(answers.len(), 120);
        assert!(!answers[0].on_whatsapp && answers[1].on_whatsapp);
        let at = conn.at.lock().unwrap().clone();
        assert_eq!(at.iter().map(|a| a.1).collect::<Vec<_>>(), vec![50, 50, 20]);
        for w in at.windows(2) {
            let gap = w[1].0 - w[0].0;
            assert!(gap >= Duration::from_millis(3_000) && gap <= Duration::from_millis(5_000));
        }
        // A second request through the same number waits for the gap after the last batch.
        let before = Instant::now();
        checker.check("t1", "n1", &LIMITS, &conn, &phones(1)).await.unwrap();
        assert!(Instant::now() - before >= Duration::from_millis(3_000));
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_cached_per_tenant_for_a_day() {
        let checker = ContactChecker::new();
        let conn = Recording::default();
        let list = phones(3);
        checker.check("t1", "n1", &LIMITS, &conn, &list).await.unwrap();
        assert_eq!(checker.cached("t1", &list).len(), 3);
        assert!(checker.cached("t2", &list).is_empty());
        tokio::time::advance(CACHE_TTL + Duration::from_secs(1)).await;
        assert!(checker.cached("t1", &list).is_empty());
    }
}
