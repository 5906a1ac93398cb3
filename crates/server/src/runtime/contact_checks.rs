//! Which phone numbers are on WhatsApp: asked through one of the tenant's connected numbers in
//! batches paced like sends (a human-like gap between two batches of the same number, since a
//! burst of look-ups is one of the patterns WhatsApp bans for), and remembered for a day in the
//! store (shared by every node, kept across restarts) so a repeated check costs nothing.
//! Used by `POST /v1/contacts/check` and by the scheduler's first-contact pre-check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bzapper_core::sending::gap_ms;
use bzapper_core::{Jid, Limits, Phone};
use bzapper_driver::{Connection, ContactStatus, DriverError};
use bzapper_store::{now_millis, ContactCheckRecord, ContactCheckStore, StoreError};
use rand::SeedableRng;
use tokio::time::Instant;

/// How long an answer is reused (older answers are pruned with the event log).
pub const CACHE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Phones asked in one look-up.
pub const BATCH: usize = 50;

pub struct ContactChecker {
    /// The answers, per (tenant, phone): the store is the cache, so every node shares it.
    store: Arc<dyn ContactCheckStore>,
    /// Per number: the earliest moment its next look-up may go out. Held across the wait, so
    /// look-ups through one number queue behind each other.
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
}

/// The oldest answer still reused, as of now.
pub fn cache_cutoff() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::from_std(CACHE_TTL).unwrap_or(chrono::Duration::days(1))
}

impl ContactChecker {
    pub fn new(store: Arc<dyn ContactCheckStore>) -> Self {
        ContactChecker { store, gates: Default::default() }
    }

    /// The cached answer (younger than [`CACHE_TTL`]) for each phone that has one.
    pub async fn cached(
        &self,
        tenant_id: &str,
        phones: &[Phone],
    ) -> Result<HashMap<Phone, ContactStatus>, StoreError> {
        let by_e164: HashMap<String, &Phone> = phones.iter().map(|p| (p.e164(), p)).collect();
        let keys: Vec<String> = by_e164.keys().cloned().collect();
        let rows = self.store.get_contact_checks(tenant_id, &keys, cache_cutoff()).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let phone = (*by_e164.get(&r.phone)?).clone();
                // A stored JID that no longer parses counts as unknown, not as an error.
                let jid = r.jid.as_deref().and_then(|j| Jid::parse(j).ok());
                let lid = r.lid.as_deref().and_then(|l| Jid::parse(l).ok());
                let status =
                    ContactStatus { phone: phone.clone(), on_whatsapp: r.on_whatsapp, jid, lid };
                Some((phone, status))
            })
            .collect())
    }

    /// Checks `phones` (none of them cached) through `conn`, the connection of number
    /// `number_id` with sending `limits`: batches of [`BATCH`], each after the number's gap.
    /// Each batch's answers are stored as soon as they come (a request cut short keeps what
    /// it already paid for); a failed write is logged, and the answers still returned.
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
            self.remember(tenant_id, &answers).await;
            out.extend(answers);
        }
        Ok(out)
    }

    /// One look-up made just before a send of number `number_id` (the first-contact
    /// pre-check). The number's send pacing already spaces these, so it does not wait for the
    /// look-up gate; it moves the gate on instead, so that look-ups asked through the API keep
    /// their distance from it. Answers are stored like [`ContactChecker::check`]'s.
    pub async fn check_before_send(
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
        let answers = conn.check_contacts(phones).await;
        let mut rng = rand::rngs::StdRng::from_entropy();
        let at = Instant::now() + Duration::from_millis(gap_ms(limits, &mut rng));
        // Held by an API look-up waiting its turn: that one is spaced already.
        if let Ok(mut next) = gate.try_lock() {
            if next.is_none_or(|n| n < at) {
                *next = Some(at);
            }
        }
        let answers = answers?;
        self.remember(tenant_id, &answers).await;
        Ok(answers)
    }

    async fn remember(&self, tenant_id: &str, answers: &[ContactStatus]) {
        let at = now_millis();
        let rows: Vec<ContactCheckRecord> = answers
            .iter()
            .map(|a| ContactCheckRecord {
                phone: a.phone.e164(),
                on_whatsapp: a.on_whatsapp,
                jid: a.jid.as_ref().map(|j| j.to_non_device().to_string()),
                lid: a.lid.as_ref().map(|l| l.to_non_device().to_string()),
                checked_at: at,
            })
            .collect();
        if let Err(e) = self.store.put_contact_checks(tenant_id, &rows).await {
            tracing::warn!(error = %e, "storing contact-check answers failed");
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
    use bzapper_store::{ApiKeyRecord, MasterKey, Sealer, SqliteStore, Tenant, TenantStore};
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
        new_contacts_per_day: bzapper_core::limits::DEFAULT_NEW_CONTACTS_PER_DAY,
    };

    #[tokio::test(start_paused = true)]
    async fn batches_through_one_number_are_spaced_by_its_gap() {
        let checker = ContactChecker::new(Arc::new(InMemory::default()));
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

    async fn sqlite(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
        let path = dir.path().join("bzapper.db");
        let sealer = Sealer::new(MasterKey::generate());
        let store = SqliteStore::open(path.to_str().unwrap(), sealer).await.unwrap();
        for t in ["t1", "t2"] {
            let tenant = Tenant { id: t.into(), name: t.into(), created_at: now_millis() };
            let key = ApiKeyRecord {
                id: format!("key-{t}"),
                tenant_id: t.into(),
                secret_hash: [0; 32],
                created_at: now_millis(),
            };
            store.create_tenant(&tenant, &key).await.unwrap();
        }
        Arc::new(store)
    }

    #[tokio::test]
    async fn answers_are_cached_per_tenant_for_a_day_in_the_store_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir).await;
        let checker = ContactChecker::new(store.clone());
        let conn = Recording::default();
        let list = phones(3);
        let asked = checker.check("t1", "n1", &LIMITS, &conn, &list).await.unwrap();
        let cached = checker.cached("t1", &list).await.unwrap();
        assert_eq!(cached.len(), 3);
        for a in &asked {
            assert_eq!(cached[&a.phone], *a);
        }
        assert!(checker.cached("t2", &list).await.unwrap().is_empty());

        // Another node, or this one after a restart: a new checker over the same database
        // answers from the cache.
        drop(checker);
        let reopened = ContactChecker::new(store.clone());
        assert_eq!(reopened.cached("t1", &list).await.unwrap(), cached);
        assert_eq!(conn.at.lock().unwrap().len(), 1, "WhatsApp was asked once");

        // An answer older than a day counts as absent, and is pruned.
        let stale = ContactCheckRecord {
            phone: list[0].e164(),
            on_whatsapp: true,
            jid: Some(list[0].jid().to_string()),
            lid: None,
            checked_at: now_millis() - chrono::Duration::hours(25),
        };
        store.put_contact_checks("t1", &[stale]).await.unwrap();
        let left = reopened.cached("t1", &list).await.unwrap();
        assert_eq!(left.len(), 2);
        assert!(!left.contains_key(&list[0]));
        assert_eq!(store.prune_contact_checks(cache_cutoff()).await.unwrap(), 1);
    }

    /// The store's contract, in memory (no database, so the paused clock stays put).
    #[derive(Default)]
    struct InMemory(Mutex<HashMap<(String, String), ContactCheckRecord>>);

    #[async_trait]
    impl ContactCheckStore for InMemory {
        async fn put_contact_checks(
            &self,
            tenant_id: &str,
            rs: &[ContactCheckRecord],
        ) -> bzapper_store::Result<()> {
            let mut m = self.0.lock().unwrap();
            for r in rs {
                m.insert((tenant_id.into(), r.phone.clone()), r.clone());
            }
            Ok(())
        }
        async fn get_contact_checks(
            &self,
            tenant_id: &str,
            phones: &[String],
            not_before: chrono::DateTime<chrono::Utc>,
        ) -> bzapper_store::Result<Vec<ContactCheckRecord>> {
            let m = self.0.lock().unwrap();
            Ok(phones
                .iter()
                .filter_map(|p| m.get(&(tenant_id.to_string(), p.clone())))
                .filter(|r| r.checked_at >= not_before)
                .cloned()
                .collect())
        }
        async fn prune_contact_checks(
            &self,
            older_than: chrono::DateTime<chrono::Utc>,
        ) -> bzapper_store::Result<u64> {
            let mut m = self.0.lock().unwrap();
            let before = m.len();
            m.retain(|_, r| r.checked_at >= older_than);
            Ok((before - m.len()) as u64)
        }
    }
}
