//! The behaviour every store must have, written once against `Arc<dyn Store>` and run on
//! each backend: on SQLite always, on PostgreSQL when `BZAPPER_TEST_DATABASE_URL` names a
//! database (for example `postgres://postgres@127.0.0.1:5432/test`). Each PostgreSQL test
//! gets its own schema (dropped afterwards, also when the test fails), so tests run in
//! parallel. Backend-specific tests (files on disk, URLs) stay with their backend.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bzapper_core::{InstanceState, LimitsPatch, ProxyUrl, ReadReceipts, Reason};
use chrono::Duration;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::SqlitePool;
use sqlx::Connection;

use crate::sql::session_aad;
use crate::{
    apply_state_change, now_millis, AlertAttempt, AlertDeliveryFilter, AlertDeliveryRecord,
    AlertStatus, ApiKeyRecord, CampaignCount, CampaignRecipient, CampaignRecord, CampaignStatus,
    ContactCheckRecord, DeliveryAttempt, DeliveryRecord, DeliveryStatus, Identity, InboundRecord,
    InstanceRecord, KeyedEvent, MasterKey, MessageFilter, MessageRecord, MessageStatus,
    MessageUpdate, NewEvent, PgStore, Pool, PoolSettings, QueueKey, QueuedRef, Sealer,
    SessionWrite, SqliteStore, StateChange, Store, StoreError, Strategy, Tenant, WebhookRecord,
};
use crate::{
    ContactHistory, ConversationRecord, ExpiredRef, InstanceKey, QueuePosition, StartedBy,
};
use crate::{NumberPoint, NumberSample, PoolPoint, PoolSample, SeriesRange};

/// The variable naming the PostgreSQL database the PostgreSQL runs use.
pub(crate) const PG_URL_VAR: &str = "BZAPPER_TEST_DATABASE_URL";

/// One test's store, with raw access to its database for what the traits cannot do (count
/// rows, tamper with sealed values).
pub(crate) struct Harness {
    pub(crate) s: Arc<dyn Store>,
    raw: Raw,
    // Dropped after the store (fields drop in order): the schema goes last.
    _dir: Option<tempfile::TempDir>,
    _schema: Option<PgSchema>,
}

enum Raw {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

impl Harness {
    pub(crate) async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bzapper.db");
        let store = SqliteStore::open(path.to_str().unwrap(), Sealer::new(MasterKey::generate()))
            .await
            .unwrap();
        let raw = Raw::Sqlite(store.raw_pool().clone());
        Harness { s: Arc::new(store), raw, _dir: Some(dir), _schema: None }
    }

    /// `None` (after saying so once) when no test database is configured.
    pub(crate) async fn postgres() -> Option<Harness> {
        let (options, schema) = pg_schema().await?;
        let store = PgStore::open_with(options, Sealer::new(MasterKey::generate())).await.unwrap();
        let raw = Raw::Pg(store.raw_pool().clone());
        Some(Harness { s: Arc::new(store), raw, _dir: None, _schema: Some(schema) })
    }

    pub(crate) async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table}");
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query_scalar(&sql).fetch_one(p).await.unwrap(),
            Raw::Pg(p) => sqlx::query_scalar(&sql).fetch_one(p).await.unwrap(),
        }
    }

    pub(crate) async fn session_blob(&self, instance_id: &str, key: &str) -> Vec<u8> {
        let sql = "SELECT value FROM session_values WHERE instance_id = $1 AND key = $2";
        match &self.raw {
            Raw::Sqlite(p) => {
                sqlx::query_scalar(sql).bind(instance_id).bind(key).fetch_one(p).await.unwrap()
            }
            Raw::Pg(p) => {
                sqlx::query_scalar(sql).bind(instance_id).bind(key).fetch_one(p).await.unwrap()
            }
        }
    }

    pub(crate) async fn set_session_blob(&self, instance_id: &str, key: &str, blob: Vec<u8>) {
        let sql = "UPDATE session_values SET value = $1 WHERE instance_id = $2 AND key = $3";
        let n = match &self.raw {
            Raw::Sqlite(p) => {
                { sqlx::query(sql).bind(blob).bind(instance_id).bind(key).execute(p).await }
                    .unwrap()
                    .rows_affected()
            }
            Raw::Pg(p) => sqlx::query(sql)
                .bind(blob)
                .bind(instance_id)
                .bind(key)
                .execute(p)
                .await
                .unwrap()
                .rows_affected(),
        };
        assert_eq!(n, 1);
    }

    pub(crate) async fn proxy_blob(&self, instance_id: &str) -> Vec<u8> {
        let sql = "SELECT proxy_sealed FROM instances WHERE id = $1";
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query_scalar(sql).bind(instance_id).fetch_one(p).await.unwrap(),
            Raw::Pg(p) => sqlx::query_scalar(sql).bind(instance_id).fetch_one(p).await.unwrap(),
        }
    }

    pub(crate) async fn set_proxy_blob(&self, instance_id: &str, blob: Vec<u8>) {
        let sql = "UPDATE instances SET proxy_sealed = $1 WHERE id = $2";
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query(sql).bind(blob).bind(instance_id).execute(p).await,
            Raw::Pg(p) => sqlx::query(sql)
                .bind(blob)
                .bind(instance_id)
                .execute(p)
                .await
                .map(|_| Default::default()),
        }
        .unwrap();
    }
}

impl Harness {
    /// Runs one statement on the raw database; returns how many rows it changed.
    pub(crate) async fn raw_execute(&self, sql: &str) -> u64 {
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await.unwrap().rows_affected(),
            Raw::Pg(p) => sqlx::query(sql).execute(p).await.unwrap().rows_affected(),
        }
    }

    /// The tenant's alert row as stored: the clear `url` column and the sealed one.
    pub(crate) async fn alert_columns(&self, tenant_id: &str) -> (String, Option<Vec<u8>>) {
        let sql = "SELECT url, url_sealed FROM alerts WHERE tenant_id = $1";
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query_as(sql).bind(tenant_id).fetch_one(p).await.unwrap(),
            Raw::Pg(p) => sqlx::query_as(sql).bind(tenant_id).fetch_one(p).await.unwrap(),
        }
    }
}

/// A schema of its own in the test database, dropped (with everything in it) on drop.
pub(crate) struct PgSchema {
    url: String,
    name: String,
}

/// Creates a fresh schema and returns connect options whose `search_path` is that schema,
/// or `None` (printing why, once per test binary) when `BZAPPER_TEST_DATABASE_URL` is unset.
pub(crate) async fn pg_schema() -> Option<(PgConnectOptions, PgSchema)> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    static SAID: std::sync::Once = std::sync::Once::new();
    let Ok(url) = std::env::var(PG_URL_VAR) else {
        SAID.call_once(|| {
            // Straight to the stream, so that it shows even though the harness captures
            // test output.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "PostgreSQL store tests skipped: set {PG_URL_VAR} (for example \
                 postgres://postgres@127.0.0.1:5432/test) to run them"
            );
        });
        return None;
    };
    let name = format!(
        "bzt_{}_{}_{:08x}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    let mut conn =
        sqlx::PgConnection::connect(&url).await.expect("connecting to the test database");
    sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let options = PgConnectOptions::from_str(&url).unwrap().options([("search_path", &name)]);
    Some((options, PgSchema { url, name }))
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside the test's runtime: clean up on a thread
        // with a runtime of its own.
        let (url, name) = (self.url.clone(), self.name.clone());
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!("could not drop the test schema {}: {done:?}", self.name);
        }
    }
}

/// Runs each named test body once per backend: `on_sqlite::name` and `on_postgres::name`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&super::Harness::sqlite().await).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(h) = super::Harness::postgres().await {
                        super::$name(&h).await;
                    }
                }
            )*
        }
    };
}

conformance!(
    tenants_and_api_keys,
    instances_crud,
    an_instances_read_receipts_setting_is_kept,
    a_numbers_call_and_presence_settings_round_trip,
    another_tenant_sees_nothing,
    state_changes_match_apply_state_change,
    a_batch_of_state_changes_is_stored_like_one_change_each,
    instances_are_paged_in_the_order_of_the_whole_list,
    deleting_a_tenant_removes_everything_it_owns,
    session_batches_apply_atomically_and_prefixes_select_exactly,
    concurrent_session_writes_each_get_their_own_answer,
    sessions_save_load_and_clear,
    a_tampered_session_is_unsealable_and_other_sessions_still_load,
    an_unopenable_proxy_is_dropped_not_fatal,
    pools_list_the_default_stored_and_used_ones,
    the_event_log,
    messages_queue_update_and_list,
    health_scores_persist,
    receipts_only_move_forward,
    a_failed_message_is_never_taken_again,
    concurrent_status_changes_each_get_their_own_answer,
    a_duplicate_key_in_one_group_commit_fails_alone,
    a_batch_of_events_gets_increasing_ids_in_the_order_given,
    deliveries_are_enqueued_once_and_attempt_outcomes_are_kept,
    due_deliveries_are_taken_round_robin_across_webhooks,
    a_rotated_webhook_secret_keeps_the_replaced_one_until_it_expires,
    alert_urls_are_sealed_at_rest_and_clear_ones_still_read,
    the_lid_map_is_kept_per_tenant,
    campaigns_are_stored_whole_and_their_status_moves_only_from_the_expected_one,
    campaign_messages_are_counted_and_queued_ones_failed_on_cancel,
    a_message_with_content_round_trips,
    a_sent_message_is_found_by_wa_id_within_its_tenant,
    a_received_message_is_recorded_once_and_found_within_its_tenant,
    a_burst_of_received_messages_is_recorded_at_once,
    events_and_the_messages_they_report_are_committed_together,
    an_event_with_a_dedupe_key_is_appended_once,
    received_messages_are_pruned_by_age,
    received_messages_go_with_their_instance_and_tenant,
    contact_checks_are_upserted_per_tenant_and_read_within_their_ttl,
    contact_checks_are_pruned_by_age_and_go_with_their_tenant,
    the_send_queue_is_read_in_pages_in_accept_order,
    scheduled_messages_wait_in_the_store_until_due,
    queued_messages_expire_once_and_stay_expired,
    why_a_number_was_chosen_is_kept_until_the_message_is_queued_again,
    campaign_recipients_not_on_whatsapp_are_counted_apart,
    conversations_are_upserted_and_read_per_pool,
    a_ban_expiry_is_stored_with_the_ban_and_cleared_by_any_other_change,
    alerts_are_enqueued_once_with_the_cursor_and_taken_round_robin_across_tenants,
    alert_deliveries_are_listed_by_tenant_retried_and_pruned,
    pool_settings_round_trip_and_a_strategy_change_keeps_them,
    a_numbers_quiet_hours_and_rewarm_start_round_trip,
    chats_are_listed_newest_first_with_unread_counts,
    a_chats_messages_are_paged_both_directions_newest_first,
    a_chat_first_seen_by_lid_is_found_by_its_phone,
    series_samples_merge_per_bucket_and_read_per_tenant_in_steps,
    series_are_pruned_per_tier_and_go_with_their_tenant,
);

mod chats;
use chats::*;

pub(crate) fn tenant(id: &str) -> Tenant {
    Tenant { id: id.into(), name: format!("tenant {id}"), created_at: now_millis() }
}

pub(crate) fn api_key(id: &str, tenant_id: &str) -> ApiKeyRecord {
    let mut secret_hash = [0u8; 32];
    secret_hash[..id.len()].copy_from_slice(id.as_bytes());
    ApiKeyRecord {
        id: id.into(),
        tenant_id: tenant_id.into(),
        secret_hash,
        created_at: now_millis(),
    }
}

pub(crate) async fn with_tenant(store: &dyn Store, id: &str) {
    store.create_tenant(&tenant(id), &api_key(&format!("key-{id}"), id)).await.unwrap();
}

pub(crate) fn instance(id: &str, tenant_id: &str, name: &str) -> InstanceRecord {
    InstanceRecord {
        id: id.into(),
        tenant_id: tenant_id.into(),
        name: name.into(),
        pool: "default".into(),
        state: InstanceState::new_stopped(),
        phone: None,
        jid: None,
        lid: None,
        warming_days: 5,
        proxy: None,
        limits: LimitsPatch::default(),
        first_connected_at: None,
        connected_at: None,
        created_at: now_millis(),
        health_score: 100,
        read_receipts: ReadReceipts::Off,
        reject_calls: false,
        reject_call_message: None,
        always_online: false,
        quiet_hours: None,
        rewarm_from: None,
    }
}

pub(crate) fn event(tenant_id: &str, instance_id: Option<&str>, kind: &str) -> NewEvent {
    NewEvent {
        tenant_id: tenant_id.into(),
        instance_id: instance_id.map(Into::into),
        kind: kind.into(),
        data: json!({"status": "connected", "n": [1, 2, 3]}),
        created_at: now_millis(),
    }
}

pub(crate) fn message(id: &str, tenant_id: &str, key: Option<&str>) -> MessageRecord {
    let at = now_millis();
    MessageRecord {
        id: id.into(),
        tenant_id: tenant_id.into(),
        wa_id: format!("3EB0{id}"),
        instance_id: None,
        forced: false,
        pool: "default".into(),
        to: bzapper_core::Jid::parse("5511999990001@s.whatsapp.net").unwrap(),
        body: "hello".into(),
        mentions: vec!["5511999990002@s.whatsapp.net".into()],
        menu: Some(json!({"options": [{"id": "a", "title": "Pay"}]})),
        status: MessageStatus::Queued,
        error: None,
        idempotency_key: key.map(Into::into),
        created_at: at,
        updated_at: at,
        sent_at: None,
        campaign_id: None,
        content: None,
        send_at: None,
        expires_at: None,
        chosen_by: None,
    }
}

/// A moment every queued message is due by.
pub(crate) fn far_future() -> chrono::DateTime<chrono::Utc> {
    now_millis() + chrono::Duration::days(3650)
}

pub(crate) fn delivery(id: &str, webhook_id: &str, event_id: i64) -> DeliveryRecord {
    let at = now_millis();
    DeliveryRecord {
        id: id.into(),
        webhook_id: webhook_id.into(),
        tenant_id: "t1".into(),
        event_id,
        event_type: "instance.qr".into(),
        payload: format!("{{\"id\":\"{event_id}\"}}"),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: at,
        last_status: None,
        last_error: None,
        created_at: at,
        updated_at: at,
        delivered_at: None,
    }
}

async fn tenants_and_api_keys(h: &Harness) {
    let s = &*h.s;
    assert!(s.list_tenants().await.unwrap().is_empty());
    let t1 = tenant("t1");
    let k1 = api_key("k1", "t1");
    s.create_tenant(&t1, &k1).await.unwrap();
    with_tenant(s, "t2").await;

    assert_eq!(s.get_tenant("t1").await.unwrap(), Some(t1.clone()));
    assert_eq!(s.get_tenant("nope").await.unwrap(), None);
    let ids: Vec<_> = s.list_tenants().await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["t1", "t2"]);
    assert_eq!(s.find_api_key("k1").await.unwrap(), Some(k1.clone()));
    assert_eq!(s.find_api_key("nope").await.unwrap(), None);

    // Duplicates are conflicts; a tenant whose first key fails is not created (atomic).
    let e = s.create_tenant(&t1, &api_key("k9", "t1")).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    let e = s.create_tenant(&tenant("t3"), &api_key("k1", "t3")).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    assert_eq!(s.get_tenant("t3").await.unwrap(), None);

    let k2 = api_key("k2", "t1");
    s.add_api_key(&k2).await.unwrap();
    assert!(matches!(s.add_api_key(&k2).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.find_api_key("k2").await.unwrap(), Some(k2));
    // Another tenant cannot revoke it.
    assert!(!s.revoke_api_key("t2", "k2").await.unwrap());
    assert!(s.revoke_api_key("t1", "k2").await.unwrap());
    assert!(!s.revoke_api_key("t1", "k2").await.unwrap());
    assert_eq!(s.find_api_key("k2").await.unwrap(), None);
    assert_eq!(s.find_api_key("k1").await.unwrap(), Some(k1));
    s.ping().await.unwrap();
}

async fn an_instances_read_receipts_setting_is_kept(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    // Off by default; set at creation; changed with the other settings.
    let a = instance("i1", "t1", "a");
    s.create_instance(&a).await.unwrap();
    assert_eq!(s.get_instance_by_id("i1").await.unwrap().unwrap().read_receipts, ReadReceipts::Off);
    let b = InstanceRecord { read_receipts: ReadReceipts::Auto, ..instance("i2", "t1", "b") };
    s.create_instance(&b).await.unwrap();
    assert_eq!(s.get_instance("t1", "i2").await.unwrap(), Some(b.clone()));
    let a2 = InstanceRecord { read_receipts: ReadReceipts::Auto, ..a };
    assert!(s.update_instance_settings(&a2).await.unwrap());
    assert_eq!(s.get_instance("t1", "i1").await.unwrap(), Some(a2));
    let b2 = InstanceRecord { read_receipts: ReadReceipts::Off, ..b };
    assert!(s.update_instance_settings(&b2).await.unwrap());
    let listed = s.list_instances("t1").await.unwrap();
    assert_eq!(
        listed.iter().map(|i| i.read_receipts).collect::<Vec<_>>(),
        [ReadReceipts::Auto, ReadReceipts::Off]
    );
}

async fn a_numbers_call_and_presence_settings_round_trip(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    with_tenant(s, "t2").await;
    // Off by default: calls ring, no reply, the library's own presence.
    let a = instance("i1", "t1", "a");
    s.create_instance(&a).await.unwrap();
    let read = s.get_instance_by_id("i1").await.unwrap().unwrap();
    assert!(!read.reject_calls && !read.always_online);
    assert_eq!(read.reject_call_message, None);
    // Set at creation (a reply with characters beyond ASCII kept as they are).
    let b = InstanceRecord {
        reject_calls: true,
        reject_call_message: Some("Este número não atende ligações — escreva 🙂".into()),
        always_online: true,
        ..instance("i2", "t1", "b")
    };
    s.create_instance(&b).await.unwrap();
    assert_eq!(s.get_instance("t1", "i2").await.unwrap(), Some(b.clone()));
    // Changed with the other settings, each on its own.
    let a2 = InstanceRecord { reject_calls: true, ..a };
    assert!(s.update_instance_settings(&a2).await.unwrap());
    assert_eq!(s.get_instance("t1", "i1").await.unwrap(), Some(a2.clone()));
    let b2 = InstanceRecord { reject_call_message: None, always_online: false, ..b.clone() };
    assert!(s.update_instance_settings(&b2).await.unwrap());
    let listed = s.list_instances("t1").await.unwrap();
    let settings: Vec<_> = listed
        .iter()
        .map(|i| (i.reject_calls, i.reject_call_message.clone(), i.always_online))
        .collect();
    assert_eq!(settings, [(true, None, false), (true, None, false)]);
    // Another tenant cannot change them.
    let foreign = InstanceRecord { tenant_id: "t2".into(), reject_calls: false, ..a2.clone() };
    assert!(!s.update_instance_settings(&foreign).await.unwrap());
    assert_eq!(s.get_instance("t1", "i1").await.unwrap(), Some(a2));
}

async fn instances_crud(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    with_tenant(s, "t2").await;

    let mut a = instance("i1", "t1", "sales");
    a.proxy = Some(ProxyUrl::parse("socks5://user:pw@10.0.0.1:1080").unwrap());
    a.limits = LimitsPatch { per_minute: Some(4), max_gap_ms: Some(9_000), ..Default::default() };
    a.warming_days = 0;
    s.create_instance(&a).await.unwrap();
    assert_eq!(s.get_instance("t1", "i1").await.unwrap(), Some(a.clone()));
    assert_eq!(s.get_instance_by_id("i1").await.unwrap(), Some(a.clone()));
    assert_eq!(s.get_instance("t1", "nope").await.unwrap(), None);

    // Names are unique per tenant only.
    let e = s.create_instance(&instance("i2", "t1", "sales")).await.unwrap_err();
    match e {
        StoreError::Conflict(m) => assert!(m.contains("named `sales`"), "{m}"),
        other => panic!("{other:?}"),
    }
    let e = s.create_instance(&instance("i1", "t1", "other")).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    let b = instance("i2", "t2", "sales");
    s.create_instance(&b).await.unwrap();
    let c = instance("i3", "t1", "support");
    s.create_instance(&c).await.unwrap();

    let ids = |v: Vec<InstanceRecord>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_instances("t1").await.unwrap()), ["i1", "i3"]);
    assert_eq!(ids(s.list_instances("t2").await.unwrap()), ["i2"]);
    assert_eq!(ids(s.list_all_instances().await.unwrap()), ["i1", "i2", "i3"]);
    let counts = (s.count_instances("t1").await.unwrap(), s.count_instances("t2").await.unwrap());
    assert_eq!((counts, s.count_instances("t3").await.unwrap()), ((2, 1), 0));

    // Settings: name, pool, warming days, proxy (removed) and limits are replaced.
    let mut a2 = a.clone();
    a2.name = "sales-br".into();
    a2.pool = "br".into();
    a2.warming_days = 7;
    a2.proxy = None;
    a2.limits = LimitsPatch { per_day: Some(100), ..Default::default() };
    assert!(s.update_instance_settings(&a2).await.unwrap());
    assert_eq!(s.get_instance("t1", "i1").await.unwrap(), Some(a2.clone()));
    a2.proxy = Some(ProxyUrl::parse("http://proxy.example:3128").unwrap());
    assert!(s.update_instance_settings(&a2).await.unwrap());
    assert_eq!(s.get_instance("t1", "i1").await.unwrap(), Some(a2.clone()));
    // Renaming onto a sibling's name is a conflict.
    let mut clash = a2.clone();
    clash.name = "support".into();
    assert!(matches!(s.update_instance_settings(&clash).await, Err(StoreError::Conflict(_))));
    assert!(!s.update_instance_settings(&instance("nope", "t1", "x")).await.unwrap());

    assert!(s.delete_instance("t1", "i1").await.unwrap());
    assert!(!s.delete_instance("t1", "i1").await.unwrap());
    assert_eq!(s.get_instance_by_id("i1").await.unwrap(), None);
}

async fn another_tenant_sees_nothing(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    with_tenant(s, "t2").await;
    let mut a = instance("i1", "t1", "sales");
    a.pool = "sales".into();
    s.create_instance(&a).await.unwrap();
    s.put_pool("t1", "vip", Strategy::LeastUsed).await.unwrap();
    s.append_event(&event("t1", Some("i1"), "instance.qr")).await.unwrap();

    assert_eq!(s.get_instance("t2", "i1").await.unwrap(), None);
    assert!(s.list_instances("t2").await.unwrap().is_empty());
    let mut b = a.clone();
    b.tenant_id = "t2".into();
    b.name = "hijack".into();
    assert!(!s.update_instance_settings(&b).await.unwrap());
    assert!(!s.delete_instance("t2", "i1").await.unwrap());
    assert!(!s.revoke_api_key("t2", "key-t1").await.unwrap());
    assert!(s.events_after("t2", 0, 100).await.unwrap().is_empty());
    let pools: Vec<_> = s.list_pools("t2").await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(pools, ["default"]);
    // Untouched for its owner.
    assert_eq!(s.get_instance("t1", "i1").await.unwrap(), Some(a));
}

async fn state_changes_match_apply_state_change(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    let mut mem = instance("i1", "t1", "n");
    s.create_instance(&mem).await.unwrap();
    let t1 = now_millis();
    let t2 = t1 + Duration::hours(3);
    let identity = Identity {
        phone: "+5511999999999".into(),
        jid: "5511999999999@s.whatsapp.net".into(),
        lid: Some("123456789@lid".into()),
    };
    let changes = [
        StateChange::state(InstanceState::qr_pending()),
        StateChange {
            identity: Some(identity.clone()),
            ..StateChange::state(InstanceState::connecting(None, None))
        },
        StateChange { connected_at: Some(t1), ..StateChange::state(InstanceState::connected()) },
        StateChange::state(InstanceState::connecting(Some(Reason::Transient), Some("eof".into()))),
        // A second connection moves connected_at but not first_connected_at.
        StateChange { connected_at: Some(t2), ..StateChange::state(InstanceState::connected()) },
        // A new pairing without a LID clears the old LID.
        StateChange {
            identity: Some(Identity { lid: None, ..identity.clone() }),
            ..StateChange::state(InstanceState::connecting(None, None))
        },
        StateChange {
            clear_identity: true,
            ..StateChange::state(InstanceState::disconnected(
                Reason::LoggedOut,
                Some("unlinked".into()),
            ))
        },
        // Identity and wipe together: the wipe wins, as in memory.
        StateChange {
            identity: Some(identity),
            clear_identity: true,
            ..StateChange::state(InstanceState::disconnected(Reason::Banned, None))
        },
    ];
    for (n, change) in changes.iter().enumerate() {
        s.update_instance_state("i1", change).await.unwrap();
        apply_state_change(&mut mem, change);
        assert_eq!(s.get_instance_by_id("i1").await.unwrap().as_ref(), Some(&mem), "step {n}");
    }
    assert_eq!(mem.first_connected_at, Some(t1));
    assert_eq!(mem.connected_at, Some(t2));
    // A missing instance is not an error (it may have been deleted meanwhile).
    s.update_instance_state("nope", &changes[0]).await.unwrap();
}

async fn a_batch_of_state_changes_is_stored_like_one_change_each(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    let mut mem = Vec::new();
    for id in ["i1", "i2", "i3"] {
        let rec = instance(id, "t1", id);
        s.create_instance(&rec).await.unwrap();
        mem.push(rec);
    }
    let until = now_millis() + Duration::seconds(60);
    let banned = InstanceState::disconnected(Reason::Banned, None);
    s.update_instance_state(
        "i3",
        &StateChange { ban_until: Some(until), ..StateChange::state(banned) },
    )
    .await
    .unwrap();
    apply_state_change(
        &mut mem[2],
        &StateChange::state(InstanceState::disconnected(Reason::Banned, None)),
    );
    let connecting = StateChange::state(InstanceState::connecting(None, None));
    let connected = StateChange {
        connected_at: Some(now_millis()),
        ..StateChange::state(InstanceState::connected())
    };
    let batch = vec![
        ("i1".to_string(), connecting.clone()),
        ("i2".to_string(), connected.clone()),
        // The stored ban end goes with the change, as with one change.
        ("i3".to_string(), connecting.clone()),
        // A missing number is skipped, not an error, and does not undo the others.
        ("nope".to_string(), connecting.clone()),
    ];
    s.update_instance_states(&batch).await.unwrap();
    apply_state_change(&mut mem[0], &connecting);
    apply_state_change(&mut mem[1], &connected);
    apply_state_change(&mut mem[2], &connecting);
    for rec in &mem {
        assert_eq!(s.get_instance_by_id(&rec.id).await.unwrap().as_ref(), Some(rec), "{}", rec.id);
    }
    assert!(s.ban_expiries().await.unwrap().is_empty());
    s.update_instance_states(&[]).await.unwrap();
}

async fn instances_are_paged_in_the_order_of_the_whole_list(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    with_tenant(s, "t2").await;
    let t0 = now_millis();
    // Two share a created_at: the id orders them.
    for (id, secs) in [("i3", 0), ("i1", 0), ("i2", 5), ("i0", 9), ("i4", 20)] {
        let rec =
            InstanceRecord { created_at: t0 + Duration::seconds(secs), ..instance(id, "t1", id) };
        s.create_instance(&rec).await.unwrap();
    }
    s.create_instance(&instance("x", "t2", "x")).await.unwrap();
    let whole: Vec<String> =
        s.list_instances("t1").await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(whole, ["i1", "i3", "i2", "i0", "i4"]);
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = s.list_instances_page("t1", after.as_ref(), 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(InstanceKey { created_at: last.created_at, id: last.id.clone() });
        paged.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(paged, whole);
    assert!(s.list_instances_page("t3", None, 10).await.unwrap().is_empty());
}

async fn deleting_a_tenant_removes_everything_it_owns(h: &Harness) {
    let s = &*h.s;
    for t in ["t1", "t2"] {
        with_tenant(s, t).await;
        let i = format!("{t}-i");
        s.create_instance(&instance(&i, t, "n")).await.unwrap();
        s.save_session_value(&i, "creds", b"x").await.unwrap();
        s.put_pool(t, "p", Strategy::HealthWeighted).await.unwrap();
        s.append_event(&event(t, Some(&i), "instance.qr")).await.unwrap();
    }
    s.add_api_key(&api_key("extra", "t1")).await.unwrap();

    assert!(s.delete_tenant("t1").await.unwrap());
    assert!(!s.delete_tenant("t1").await.unwrap());
    assert_eq!(s.get_tenant("t1").await.unwrap(), None);
    assert_eq!(s.find_api_key("extra").await.unwrap(), None);
    assert_eq!(s.find_api_key("key-t1").await.unwrap(), None);
    assert_eq!(s.get_instance_by_id("t1-i").await.unwrap(), None);
    assert!(!s.has_session("t1-i").await.unwrap());
    assert!(s.events_after("t1", 0, 10).await.unwrap().is_empty());
    // Only t2's rows are left.
    for table in ["tenants", "instances", "session_values", "pools", "events"] {
        assert_eq!(h.count(table).await, 1, "{table}");
    }
    assert_eq!(h.count("api_keys").await, 1);
    assert!(s.get_instance("t2", "t2-i").await.unwrap().is_some());
    assert_eq!(s.load_session_value("t2-i", "creds").await.unwrap(), Some(b"x".to_vec()));
}

async fn session_batches_apply_atomically_and_prefixes_select_exactly(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    s.create_instance(&instance("i1", "t1", "a")).await.unwrap();
    s.create_instance(&instance("i2", "t1", "b")).await.unwrap();
    let put = |k: &str, v: &[u8]| SessionWrite::Put { key: k.into(), value: v.to_vec() };
    s.write_session_values(
        "i1",
        &[
            put("prekey/1", b"a"),
            put("prekey/2", b"b"),
            put("prekeyx", b"c"),
            put("session/x", b"d"),
        ],
    )
    .await
    .unwrap();
    s.write_session_values("i2", &[put("prekey/9", b"z")]).await.unwrap();
    let got = s.load_session_values_with_prefix("i1", "prekey/").await.unwrap();
    assert_eq!(got, vec![("prekey/1".into(), b"a".to_vec()), ("prekey/2".into(), b"b".to_vec())]);

    // Later writes in a batch see earlier ones: delete a prefix, then put one back.
    s.write_session_values(
        "i1",
        &[
            SessionWrite::DeletePrefix { prefix: "prekey/".into() },
            put("prekey/3", b"n"),
            SessionWrite::Delete { key: "session/x".into() },
        ],
    )
    .await
    .unwrap();
    let got = s.load_session_values_with_prefix("i1", "").await.unwrap();
    assert_eq!(got, vec![("prekey/3".into(), b"n".to_vec()), ("prekeyx".into(), b"c".to_vec())]);
    // The other instance is untouched.
    assert_eq!(s.load_session_values_with_prefix("i2", "prekey/").await.unwrap().len(), 1);

    // A value sealed for one key does not open under another: a tampered row fails the read.
    let blob = h.session_blob("i1", "prekeyx").await;
    h.set_session_blob("i1", "prekey/3", blob).await;
    assert!(matches!(
        s.load_session_values_with_prefix("i1", "prekey/").await,
        Err(StoreError::Unsealable(_))
    ));
}

/// Session changes of many numbers made at once (SQLite writes them in one transaction) each
/// take effect whole, and one number's failure (here: a number that does not exist) is its
/// own: the others are stored and answered `Ok`.
async fn concurrent_session_writes_each_get_their_own_answer(h: &Harness) {
    with_tenant(&*h.s, "t1").await;
    for i in 0..30 {
        h.s.create_instance(&instance(&format!("i{i}"), "t1", &format!("n{i}"))).await.unwrap();
    }
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..31 {
        let store = h.s.clone();
        writes.spawn(async move {
            let id = format!("i{i}"); // i30 was never created
            let batch = [
                SessionWrite::Put { key: "device".into(), value: id.as_bytes().to_vec() },
                SessionWrite::Put { key: format!("session/{i}"), value: vec![i as u8] },
            ];
            let single = store.save_session_value(&id, "creds", b"c");
            let (batch, single) = tokio::join!(store.write_session_values(&id, &batch), single);
            (i, batch.is_ok(), single.is_ok())
        });
    }
    while let Some(answer) = writes.join_next().await {
        let (i, batch, single) = answer.unwrap();
        assert_eq!((batch, single), (i < 30, i < 30), "i{i}");
    }
    for i in 0..30 {
        let id = format!("i{i}");
        let all = h.s.load_session_values_with_prefix(&id, "").await.unwrap();
        let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["creds", "device", &format!("session/{i}")], "{id}");
        assert_eq!(all[1].1, id.as_bytes(), "{id}: its own value, sealed for it");
    }
    assert!(!h.s.has_session("i30").await.unwrap());
}

async fn sessions_save_load_and_clear(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    s.create_instance(&instance("i1", "t1", "a")).await.unwrap();
    s.create_instance(&instance("i2", "t1", "b")).await.unwrap();

    assert!(!s.has_session("i1").await.unwrap());
    assert_eq!(s.load_session_value("i1", "creds").await.unwrap(), None);
    s.save_session_value("i1", "creds", b"one").await.unwrap();
    s.save_session_value("i1", "signal/identity", &[0, 1, 2, 255]).await.unwrap();
    s.save_session_value("i1", "empty", b"").await.unwrap();
    s.save_session_value("i2", "creds", b"two").await.unwrap();
    assert!(s.has_session("i1").await.unwrap());
    assert_eq!(s.load_session_value("i1", "creds").await.unwrap(), Some(b"one".to_vec()));
    assert_eq!(
        s.load_session_value("i1", "signal/identity").await.unwrap(),
        Some(vec![0, 1, 2, 255])
    );
    assert_eq!(s.load_session_value("i1", "empty").await.unwrap(), Some(vec![]));
    // Overwrite.
    s.save_session_value("i1", "creds", b"uno").await.unwrap();
    assert_eq!(s.load_session_value("i1", "creds").await.unwrap(), Some(b"uno".to_vec()));

    let ids =
        |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<std::collections::HashSet<_>>();
    assert_eq!(s.instances_with_session().await.unwrap(), ids(&["i1", "i2"]));
    s.clear_session("i1").await.unwrap();
    assert!(!s.has_session("i1").await.unwrap());
    assert_eq!(s.instances_with_session().await.unwrap(), ids(&["i2"]));
    assert_eq!(s.load_session_value("i1", "creds").await.unwrap(), None);
    assert_eq!(s.load_session_value("i2", "creds").await.unwrap(), Some(b"two".to_vec()));

    // Deleting the instance wipes its session.
    assert!(s.delete_instance("t1", "i2").await.unwrap());
    assert!(!s.has_session("i2").await.unwrap());
    assert_eq!(h.count("session_values").await, 0);
}

async fn a_tampered_session_is_unsealable_and_other_sessions_still_load(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    for (i, n) in [("i1", "a"), ("i2", "b"), ("i3", "c")] {
        s.create_instance(&instance(i, "t1", n)).await.unwrap();
        s.save_session_value(i, "creds", format!("session of {i}").as_bytes()).await.unwrap();
    }
    let raw = |i: &'static str| h.session_blob(i, "creds");
    let write = |i: &'static str, v: Vec<u8>| h.set_session_blob(i, "creds", v);

    // A flipped byte in i1's row.
    let mut blob = raw("i1").await;
    let last = blob.len() - 1;
    blob[last] ^= 0x80;
    write("i1", blob).await;
    match s.load_session_value("i1", "creds").await {
        Err(StoreError::Unsealable(m)) => {
            assert!(m.contains("instance i1") && m.contains("tampered"), "{m}")
        }
        other => panic!("expected Unsealable, got {other:?}"),
    }
    assert_eq!(s.load_session_value("i2", "creds").await.unwrap(), Some(b"session of i2".to_vec()));

    // i2's valid blob copied into i3's row does not open there (bound to the instance id).
    write("i3", raw("i2").await).await;
    assert!(matches!(s.load_session_value("i3", "creds").await, Err(StoreError::Unsealable(_))));

    // A value sealed with another master key says so.
    let other = Sealer::new(MasterKey::generate());
    write("i3", other.seal(&session_aad("i3", "creds"), b"x")).await;
    match s.load_session_value("i3", "creds").await {
        Err(StoreError::Unsealable(m)) => {
            assert!(m.contains("instance i3") && m.contains("another master key"), "{m}");
            assert!(m.contains(&other.key_id()), "{m}");
        }
        other => panic!("expected Unsealable, got {other:?}"),
    }
    // The instance still lists (the store does not decide what happens next; the server does).
    assert!(s.has_session("i1").await.unwrap());
    assert_eq!(s.list_instances("t1").await.unwrap().len(), 3);
}

async fn an_unopenable_proxy_is_dropped_not_fatal(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    let mut a = instance("i1", "t1", "a");
    a.proxy = Some(ProxyUrl::parse("socks5://u:p@h:1").unwrap());
    s.create_instance(&a).await.unwrap();
    let mut b = instance("i2", "t1", "b");
    b.proxy = Some(ProxyUrl::parse("http://h:2").unwrap());
    s.create_instance(&b).await.unwrap();
    // i1's sealed proxy moved to i2 (wrong aad) and garbage in i1.
    let blob = h.proxy_blob("i1").await;
    h.set_proxy_blob("i2", blob).await;
    h.set_proxy_blob("i1", vec![1, 2]).await;
    let list = s.list_instances("t1").await.unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|i| i.proxy.is_none()));
}

async fn pools_list_the_default_stored_and_used_ones(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    with_tenant(s, "t2").await;
    let pools = s.list_pools("t1").await.unwrap();
    assert_eq!(
        pools,
        [Pool {
            name: "default".into(),
            strategy: Strategy::RoundRobin,
            settings: PoolSettings::default()
        }]
    );

    let mut a = instance("i1", "t1", "a");
    a.pool = "sales".into();
    s.create_instance(&a).await.unwrap();
    let mut b = instance("i2", "t1", "b");
    b.pool = "sales".into();
    s.create_instance(&b).await.unwrap();
    assert_eq!(
        s.put_pool("t1", "vip", Strategy::HealthWeighted).await.unwrap(),
        Pool {
            name: "vip".into(),
            strategy: Strategy::HealthWeighted,
            settings: PoolSettings::default()
        }
    );
    s.put_pool("t1", "alpha", Strategy::LeastUsed).await.unwrap();
    s.put_pool("t1", "vip", Strategy::LeastUsed).await.unwrap();
    s.put_pool("t2", "zeta", Strategy::LeastUsed).await.unwrap();
    let got: Vec<_> =
        s.list_pools("t1").await.unwrap().into_iter().map(|p| (p.name, p.strategy)).collect();
    assert_eq!(
        got,
        [
            ("alpha".to_string(), Strategy::LeastUsed),
            ("default".to_string(), Strategy::RoundRobin),
            ("sales".to_string(), Strategy::RoundRobin),
            ("vip".to_string(), Strategy::LeastUsed),
        ]
    );
    s.put_pool("t1", "default", Strategy::HealthWeighted).await.unwrap();
    assert_eq!(s.list_pools("t1").await.unwrap()[1].strategy, Strategy::HealthWeighted);
    assert_eq!(s.list_pools("t2").await.unwrap().len(), 2);
}

async fn the_event_log(h: &Harness) {
    let s = &*h.s;
    assert_eq!(s.latest_event_id_all().await.unwrap(), 0, "an empty log");
    let t0 = now_millis() - Duration::days(10);
    let mut ids = Vec::new();
    for n in 0..10 {
        let tenant = if n % 2 == 0 { "t1" } else { "t2" };
        let mut e = event(tenant, Some("i1"), &format!("kind.{n}"));
        e.created_at = t0 + Duration::days(n);
        let got = s.append_event(&e).await.unwrap();
        assert_eq!(
            (&got.tenant_id, &got.instance_id, &got.kind, &got.data, got.created_at),
            (&e.tenant_id, &e.instance_id, &e.kind, &e.data, e.created_at)
        );
        ids.push(got.id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let t1 = s.events_after("t1", 0, 100).await.unwrap();
    assert_eq!(
        t1.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[0], ids[2], ids[4], ids[6], ids[8]]
    );
    assert!(t1.iter().all(|e| e.tenant_id == "t1"));
    let page = s.events_after("t1", ids[2], 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[4], ids[6]]);
    assert_eq!(page[0].kind, "kind.4");
    assert_eq!(page[0].data, json!({"status": "connected", "n": [1, 2, 3]}));
    assert!(s.events_after("t1", ids[8], 100).await.unwrap().is_empty());
    assert!(s.events_after("t1", 0, 0).await.unwrap().is_empty());
    let none = s.append_event(&event("t1", None, "x")).await.unwrap();
    assert_eq!(s.events_after("t1", ids[8], 1).await.unwrap()[0].instance_id, None);
    assert!(none.id > ids[9]);
    assert_eq!(s.latest_event_id_all().await.unwrap(), none.id);
    assert_eq!(s.latest_event_id("t2").await.unwrap(), ids[9]);

    // Prune the five oldest (days 0..=4), across tenants; the cut is exclusive.
    assert_eq!(s.prune_events(t0 + Duration::days(5)).await.unwrap(), 5);
    assert_eq!(s.prune_events(t0 + Duration::days(5)).await.unwrap(), 0);
    let left = s.events_after("t1", 0, 100).await.unwrap();
    assert_eq!(left.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[6], ids[8], none.id]);
    // A sub-millisecond cut still removes an event from earlier in that millisecond.
    assert_eq!(
        s.prune_events(t0 + Duration::days(5) + Duration::nanoseconds(500)).await.unwrap(),
        1
    );
    // Pruning the newest does not let ids be reused.
    assert_eq!(s.prune_events(now_millis() + Duration::days(1)).await.unwrap(), 5);
    let again = s.append_event(&event("t1", None, "x")).await.unwrap();
    assert!(again.id > none.id);
}

async fn messages_queue_update_and_list(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    with_tenant(store, "t2").await;
    store.create_instance(&instance("i1", "t1", "n1")).await.unwrap();
    let m1 = message("m1", "t1", Some("k1"));
    store.insert_message(&m1).await.unwrap();
    assert_eq!(store.get_message("t1", "m1").await.unwrap().unwrap(), m1);
    assert!(store.get_message("t2", "m1").await.unwrap().is_none(), "tenant isolation");

    // The same idempotency key is a conflict within the tenant, not across tenants.
    let dup = message("m2", "t1", Some("k1"));
    assert!(matches!(store.insert_message(&dup).await, Err(StoreError::Conflict(_))));
    store.insert_message(&message("m3", "t2", Some("k1"))).await.unwrap();
    assert_eq!(store.find_by_idempotency_key("t1", "k1").await.unwrap().unwrap().id, "m1");
    store.release_idempotency_key("t1", "k1").await.unwrap();
    assert!(store.find_by_idempotency_key("t1", "k1").await.unwrap().is_none());
    store.insert_message(&dup).await.unwrap();

    assert_eq!(store.pending_messages().await.unwrap().len(), 3);
    let at = now_millis();
    store
        .update_message(
            "m1",
            &MessageUpdate {
                chosen_by: None,
                status: MessageStatus::Sent,
                instance_id: Some("i1".into()),
                error: None,
                at,
            },
        )
        .await
        .unwrap();
    let sent = store.get_message("t1", "m1").await.unwrap().unwrap();
    assert_eq!(
        (sent.status, sent.sent_at, sent.instance_id.as_deref()),
        (MessageStatus::Sent, Some(at), Some("i1"))
    );
    assert_eq!(store.count_sent_since("i1", at).await.unwrap(), 1);
    assert_eq!(store.last_sent_at("i1").await.unwrap(), Some(at), "the number's last send");
    assert_eq!(store.last_sent_at("i2").await.unwrap(), None, "a number that never sent");
    assert_eq!(store.pending_messages().await.unwrap().len(), 2);

    let all = MessageFilter { limit: 10, ..Default::default() };
    assert_eq!(store.list_messages("t1", &all).await.unwrap().len(), 2);
    let by_status =
        MessageFilter { status: Some(MessageStatus::Sent), limit: 10, ..Default::default() };
    assert_eq!(store.list_messages("t1", &by_status).await.unwrap().len(), 1);
    let page1 =
        store.list_messages("t1", &MessageFilter { limit: 1, ..Default::default() }).await.unwrap();
    let last = &page1[0];
    let page2 = store
        .list_messages(
            "t1",
            &MessageFilter {
                limit: 1,
                before: Some((crate::time::to_millis(last.created_at), last.id.clone())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page2.len(), 1);
    assert_ne!(page2[0].id, last.id);
}

async fn health_scores_persist(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    store.create_instance(&instance("i1", "t1", "n1")).await.unwrap();
    store.set_instance_health("i1", 37).await.unwrap();
    assert_eq!(store.get_instance_by_id("i1").await.unwrap().unwrap().health_score, 37);
}

/// Tenant `t1` with number `i1` and a queued message `m1`.
async fn one_message_on_i1(store: &dyn Store) {
    with_tenant(store, "t1").await;
    store.create_instance(&instance("i1", "t1", "n1")).await.unwrap();
    store.insert_message(&message("m1", "t1", None)).await.unwrap();
}

/// `status` now, by number `i1`.
fn by_i1(status: MessageStatus) -> MessageUpdate {
    MessageUpdate {
        chosen_by: None,
        status,
        instance_id: Some("i1".into()),
        error: None,
        at: now_millis(),
    }
}

async fn receipts_only_move_forward(h: &Harness) {
    let store = &*h.s;
    one_message_on_i1(store).await;
    let upd = by_i1;
    assert!(store.update_message("m1", &upd(MessageStatus::Sending)).await.unwrap());
    // The delivery receipt overtakes the send's own ack.
    assert!(store.update_message("m1", &upd(MessageStatus::Delivered)).await.unwrap());
    assert!(!store.update_message("m1", &upd(MessageStatus::Sent)).await.unwrap());
    let m = store.get_message("t1", "m1").await.unwrap().unwrap();
    assert_eq!(m.status, MessageStatus::Delivered);
    assert!(m.sent_at.is_some(), "a delivered message has gone out");
    assert_eq!(store.find_message_by_wa_id("i1", &m.wa_id).await.unwrap().unwrap().id, "m1");
    assert!(store.find_message_by_wa_id("i2", &m.wa_id).await.unwrap().is_none());
    assert!(store.update_message("m1", &upd(MessageStatus::Read)).await.unwrap());
    assert!(!store.update_message("m1", &upd(MessageStatus::Delivered)).await.unwrap());
}

async fn a_failed_message_is_never_taken_again(h: &Harness) {
    let store = &*h.s;
    one_message_on_i1(store).await;
    let upd = by_i1;
    // A cancel failed it while a number was about to take it: the number must not.
    let failed =
        MessageUpdate { error: Some("campaign canceled".into()), ..upd(MessageStatus::Failed) };
    assert!(store.update_message("m1", &failed).await.unwrap());
    assert!(!store.update_message("m1", &upd(MessageStatus::Sending)).await.unwrap());
    assert!(!store.update_message("m1", &upd(MessageStatus::Queued)).await.unwrap());
    let m = store.get_message("t1", "m1").await.unwrap().unwrap();
    assert_eq!((m.status, m.error.as_deref()), (MessageStatus::Failed, Some("campaign canceled")));
    // A late ack of a send that did go out still counts.
    assert!(store.update_message("m1", &upd(MessageStatus::Sent)).await.unwrap());
}

/// Status changes made at once (SQLite writes them in one transaction) are each answered for
/// their own message: one refused does not fail the others, nor take their answer.
async fn concurrent_status_changes_each_get_their_own_answer(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    store.create_instance(&instance("i1", "t1", "n1")).await.unwrap();
    for i in 0..40 {
        store.insert_message(&message(&format!("m{i}"), "t1", None)).await.unwrap();
        if i % 2 == 0 {
            store.update_message(&format!("m{i}"), &by_i1(MessageStatus::Failed)).await.unwrap();
        }
    }
    let mut changes = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = h.s.clone();
        changes.spawn(async move {
            let (id, sending) = (format!("m{i}"), by_i1(MessageStatus::Sending));
            (i, store.update_message(&id, &sending).await.unwrap())
        });
    }
    while let Some(answer) = changes.join_next().await {
        let (i, taken) = answer.unwrap();
        assert_eq!(taken, i % 2 == 1, "m{i}");
    }
    for i in 0..40 {
        let m = store.get_message("t1", &format!("m{i}")).await.unwrap().unwrap();
        let expected = if i % 2 == 0 { MessageStatus::Failed } else { MessageStatus::Sending };
        assert_eq!(m.status, expected, "m{i}");
    }
}

async fn a_duplicate_key_in_one_group_commit_fails_alone(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    let (a, b, c) =
        (message("a", "t1", Some("k")), message("b", "t1", Some("k")), message("c", "t1", None));
    // Sent together, the three land in one batch.
    let (ra, rb, rc) =
        tokio::join!(store.insert_message(&a), store.insert_message(&b), store.insert_message(&c));
    assert!(rc.is_ok());
    assert!(ra.is_ok() != rb.is_ok(), "exactly one of the two holders of the key is stored");
    assert!(matches!(ra.err().or(rb.err()), Some(StoreError::Conflict(_))));
    assert_eq!(store.pending_messages().await.unwrap().len(), 2);
    // A key stored by an earlier batch is refused in a later one, whose other rows are
    // stored all the same.
    let (d, e) = (message("d", "t1", Some("k")), message("e", "t1", None));
    let (rd, re) = tokio::join!(store.insert_message(&d), store.insert_message(&e));
    assert!(matches!(rd, Err(StoreError::Conflict(_))), "{rd:?}");
    re.unwrap();
    let first = store.find_by_idempotency_key("t1", "k").await.unwrap().unwrap();
    assert!(first.id == "a" || first.id == "b", "the first holder of the key stays");
    assert_eq!(store.pending_messages().await.unwrap().len(), 3);
}

async fn a_batch_of_events_gets_increasing_ids_in_the_order_given(h: &Harness) {
    let s = &*h.s;
    assert!(s.append_events(&[]).await.unwrap().is_empty());
    let first = s.append_event(&event("t1", None, "x")).await.unwrap();
    // More than one INSERT's worth, across tenants, in one transaction.
    let batch: Vec<NewEvent> = (0..2_500)
        .map(|n| {
            let mut e = event(if n % 3 == 0 { "t2" } else { "t1" }, Some("i1"), "kind");
            e.data = json!({"n": n});
            e
        })
        .collect();
    let got = s.append_events(&batch).await.unwrap();
    assert_eq!(got.len(), batch.len());
    assert_eq!(got[0].id, first.id + 1);
    assert!(got.windows(2).all(|w| w[1].id == w[0].id + 1), "consecutive ids");
    for (g, e) in got.iter().zip(&batch) {
        assert_eq!((&g.tenant_id, &g.kind, &g.data), (&e.tenant_id, &e.kind, &e.data));
    }
    // What a reader sees is what the append returned, id for id.
    let mut read = Vec::new();
    for tenant in ["t1", "t2"] {
        let mut after = 0;
        loop {
            let page = s.events_after(tenant, after, 500).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.id;
            read.extend(page);
        }
    }
    read.retain(|e| e.id != first.id);
    read.sort_by_key(|e| e.id);
    assert_eq!(read, got);
    // Concurrent batches never interleave their ids.
    let a: Vec<NewEvent> = (0..300).map(|_| event("t1", None, "a")).collect();
    let b: Vec<NewEvent> = (0..300).map(|_| event("t1", None, "b")).collect();
    let (ra, rb) = tokio::join!(s.append_events(&a), s.append_events(&b));
    for r in [ra.unwrap(), rb.unwrap()] {
        assert!(r.windows(2).all(|w| w[1].id == w[0].id + 1));
    }
}

async fn deliveries_are_enqueued_once_and_attempt_outcomes_are_kept(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    s.create_webhook(&WebhookRecord {
        id: "wh1".into(),
        tenant_id: "t1".into(),
        url: "http://127.0.0.1:9/hook".into(),
        events: vec!["instance.*".into()],
        secret: "s".into(),
        created_at: now_millis(),
        previous_secret: None,
    })
    .await
    .unwrap();
    let many: Vec<DeliveryRecord> =
        (0..1_200).map(|n| delivery(&format!("d{n:04}"), "wh1", n)).collect();
    assert_eq!(s.enqueue_deliveries(&many, 1_199).await.unwrap(), 1_200);
    assert_eq!(s.fanout_cursor().await.unwrap(), 1_199);
    // The same (webhook, event) again, under another id, is ignored: a replayed fan-out page
    // makes no second delivery.
    assert_eq!(s.enqueue_deliveries(&[delivery("again", "wh1", 7)], 1_200).await.unwrap(), 0);
    assert_eq!(h.count("deliveries").await, 1_200);
    assert_eq!(s.fanout_cursor().await.unwrap(), 1_200);

    // Outcomes recorded at the same moment share a transaction, each kept as given.
    let at = now_millis();
    let ok = DeliveryAttempt {
        status: DeliveryStatus::Delivered,
        attempts: 1,
        next_attempt_at: at,
        last_status: Some(200),
        last_error: None,
        at,
    };
    let retry = DeliveryAttempt {
        status: DeliveryStatus::Pending,
        attempts: 1,
        next_attempt_at: at + Duration::seconds(2),
        last_status: Some(500),
        last_error: Some("the receiver answered 500".into()),
        at,
    };
    let dead = DeliveryAttempt { status: DeliveryStatus::Dead, ..retry.clone() };
    let (a, b, c) = tokio::join!(
        s.record_attempt("d0000", &ok),
        s.record_attempt("d0001", &retry),
        s.record_attempt("d0002", &dead),
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    let get = |id: &'static str| async move { s.get_delivery("wh1", id).await.unwrap().unwrap() };
    let d0 = get("d0000").await;
    assert_eq!((d0.status, d0.attempts, d0.last_status), (DeliveryStatus::Delivered, 1, Some(200)));
    assert_eq!(d0.delivered_at, Some(at));
    let d1 = get("d0001").await;
    assert_eq!(
        (d1.status, d1.next_attempt_at),
        (DeliveryStatus::Pending, at + Duration::seconds(2))
    );
    assert_eq!(d1.last_error.as_deref(), Some("the receiver answered 500"));
    assert_eq!(d1.delivered_at, None);
    assert_eq!(get("d0002").await.status, DeliveryStatus::Dead);
    assert_eq!(get("d0003").await.status, DeliveryStatus::Pending);
    // Two outcomes of one delivery in one batch apply in order.
    let second = DeliveryAttempt { attempts: 2, ..ok.clone() };
    let (a, b) =
        tokio::join!(s.record_attempt("d0001", &retry), s.record_attempt("d0001", &second));
    a.unwrap();
    b.unwrap();
    let d1 = get("d0001").await;
    assert_eq!((d1.status, d1.attempts), (DeliveryStatus::Delivered, 2));
    // The due list no longer holds what was settled.
    let due = s.due_deliveries(at + Duration::seconds(3), 2_000, 2_000).await.unwrap();
    assert_eq!(due.len(), 1_197);
    assert!(due.iter().all(|d| !["d0000", "d0001", "d0002"].contains(&d.id.as_str())));
}

async fn due_deliveries_are_taken_round_robin_across_webhooks(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    for id in ["busy", "quiet", "other"] {
        s.create_webhook(&WebhookRecord {
            id: id.into(),
            tenant_id: "t1".into(),
            url: "http://127.0.0.1:9/hook".into(),
            events: vec!["*".into()],
            secret: "s".into(),
            created_at: now_millis(),
            previous_secret: None,
        })
        .await
        .unwrap();
    }
    let at = now_millis();
    // `busy` has a backlog of 500 older than anything else; `quiet` one delivery, the
    // newest; `other` two, one of them not due yet.
    let mut ds: Vec<DeliveryRecord> = (0..500)
        .map(|n| DeliveryRecord {
            next_attempt_at: at - Duration::seconds(600) + Duration::milliseconds(n),
            ..delivery(&format!("b{n:03}"), "busy", n)
        })
        .collect();
    ds.push(DeliveryRecord { next_attempt_at: at, ..delivery("q0", "quiet", 1_000) });
    ds.push(DeliveryRecord {
        next_attempt_at: at - Duration::seconds(1),
        ..delivery("o0", "other", 1_001)
    });
    ds.push(DeliveryRecord {
        next_attempt_at: at + Duration::seconds(60),
        ..delivery("o1", "other", 1_002)
    });
    s.enqueue_deliveries(&ds, 1_002).await.unwrap();

    let ids = |due: Vec<DeliveryRecord>| due.into_iter().map(|d| d.id).collect::<Vec<_>>();
    // Every webhook's oldest first (oldest of those first), then the next turn.
    let due = ids(s.due_deliveries(at, 3, 5).await.unwrap());
    assert_eq!(due, ["b000", "o0", "q0", "b001", "b002"]);
    // At most `per_webhook` of each, whatever the limit.
    let due = ids(s.due_deliveries(at, 2, 100).await.unwrap());
    assert_eq!(due, ["b000", "o0", "q0", "b001"]);
    // A delivery not due is not taken; a settled one neither.
    s.record_attempt(
        "q0",
        &DeliveryAttempt {
            status: DeliveryStatus::Delivered,
            attempts: 1,
            next_attempt_at: at,
            last_status: Some(200),
            last_error: None,
            at,
        },
    )
    .await
    .unwrap();
    let due = ids(s.due_deliveries(at, 1_000, 1_000).await.unwrap());
    assert_eq!(due.len(), 501);
    assert!(!due.contains(&"o1".to_string()) && !due.contains(&"q0".to_string()));
    assert_eq!(&due[..3], ["b000", "o0", "b001"]);

    // More webhooks than one statement reads: every one still gets its turn.
    let mut ds = Vec::new();
    for n in 0..150 {
        let id = format!("many{n:03}");
        s.create_webhook(&WebhookRecord {
            id: id.clone(),
            tenant_id: "t1".into(),
            url: "http://127.0.0.1:9/hook".into(),
            events: vec!["*".into()],
            secret: "s".into(),
            created_at: now_millis(),
            previous_secret: None,
        })
        .await
        .unwrap();
        for k in 0..3 {
            ds.push(DeliveryRecord {
                next_attempt_at: at - Duration::seconds(30) + Duration::milliseconds(k),
                ..delivery(&format!("m{n:03}-{k}"), &id, 10_000 + n * 10 + k)
            });
        }
    }
    s.enqueue_deliveries(&ds, 20_000).await.unwrap();
    let due = s.due_deliveries(at, 2, 400).await.unwrap();
    // Two of each of the 150, two of `busy`, `other`'s one due (`quiet`'s was delivered).
    assert_eq!(due.len(), 303);
    let first_turn: std::collections::HashSet<&str> =
        due[..152].iter().map(|d| d.webhook_id.as_str()).collect();
    assert_eq!(first_turn.len(), 152, "every webhook's oldest first (busy, other and 150)");
    let per_hook = |h: &str| due.iter().filter(|d| d.webhook_id == h).count();
    assert_eq!((per_hook("many000"), per_hook("many149"), per_hook("busy")), (2, 2, 2));
    // A limit below one each: the oldest of as many webhooks as it allows.
    let due = s.due_deliveries(at, 2, 100).await.unwrap();
    assert_eq!(due.len(), 100);
    assert_eq!(
        due.iter().map(|d| &d.webhook_id).collect::<std::collections::HashSet<_>>().len(),
        100
    );
}

async fn a_rotated_webhook_secret_keeps_the_replaced_one_until_it_expires(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    with_tenant(s, "t2").await;
    let at = now_millis();
    s.create_webhook(&WebhookRecord {
        id: "wh1".into(),
        tenant_id: "t1".into(),
        url: "http://127.0.0.1:9/hook".into(),
        events: vec!["*".into()],
        secret: "first-secret-0000".into(),
        created_at: at,
        previous_secret: None,
    })
    .await
    .unwrap();
    let until = at + Duration::hours(24);
    // Another tenant's webhook is not found.
    assert!(s.rotate_webhook_secret("t2", "wh1", "x", until).await.unwrap().is_none());
    assert!(s.rotate_webhook_secret("t1", "nope", "x", until).await.unwrap().is_none());

    let w = s.rotate_webhook_secret("t1", "wh1", "second-secret-000", until).await.unwrap();
    let w = w.unwrap();
    assert_eq!(w.secret, "second-secret-000");
    let previous = w.previous_secret.clone().unwrap();
    assert_eq!((previous.secret.as_str(), previous.expires_at), ("first-secret-0000", until));
    assert_eq!(s.get_webhook("t1", "wh1").await.unwrap().unwrap(), w);
    assert_eq!(s.all_webhooks().await.unwrap(), [w]);

    // A second rotation keeps the secret it replaced; the first one is gone.
    let later = until + Duration::hours(1);
    let w = s.rotate_webhook_secret("t1", "wh1", "third-secret-0000", later).await.unwrap();
    let w = w.unwrap();
    assert_eq!(w.secret, "third-secret-0000");
    let previous = w.previous_secret.unwrap();
    assert_eq!((previous.secret.as_str(), previous.expires_at), ("second-secret-000", later));

    // Rotations at once each keep what the other replaced: no secret is lost.
    let (a, b) = tokio::join!(
        s.rotate_webhook_secret("t1", "wh1", "fourth-secret-000", later),
        s.rotate_webhook_secret("t1", "wh1", "fifth-secret-0000", later),
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    let w = s.get_webhook("t1", "wh1").await.unwrap().unwrap();
    let chain = [w.previous_secret.unwrap().secret, w.secret];
    assert!(
        chain == ["fourth-secret-000", "fifth-secret-0000"]
            || chain == ["fifth-secret-0000", "fourth-secret-000"],
        "{chain:?} ({a:?} / {b:?})"
    );
}

async fn alert_urls_are_sealed_at_rest_and_clear_ones_still_read(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    with_tenant(s, "t2").await;
    let url = "https://hooks.slack.com/services/T0/B0/SECRET-PATH-123";
    let alert = |tenant: &str, url: &str| crate::AlertConfig {
        tenant_id: tenant.into(),
        url: url.into(),
        format: "slack".into(),
        on: vec!["banned".into()],
        updated_at: now_millis(),
    };
    let a = alert("t1", url);
    s.put_alert(&a).await.unwrap();
    assert_eq!(s.get_alert("t1").await.unwrap(), Some(a.clone()));
    let (clear, sealed) = h.alert_columns("t1").await;
    assert_eq!(clear, "");
    let sealed = sealed.unwrap();
    assert!(!sealed.windows(11).any(|w| w == b"SECRET-PATH"), "the URL is sealed");
    // Replaced: still sealed, the new URL read back.
    let b = alert("t1", "https://example.com/other-secret");
    s.put_alert(&b).await.unwrap();
    assert_eq!(s.get_alert("t1").await.unwrap(), Some(b));
    assert_eq!(h.alert_columns("t1").await.0, "");

    // A row written in clear by an earlier version is still read (it is sealed at open).
    s.put_alert(&alert("t2", "https://x.example/y")).await.unwrap();
    let n = h
        .raw_execute(
            "UPDATE alerts SET url = 'https://legacy.example/hook/LEGACY', url_sealed = NULL \
             WHERE tenant_id = 't2'",
        )
        .await;
    assert_eq!(n, 1);
    let legacy = s.get_alert("t2").await.unwrap().unwrap();
    assert_eq!(legacy.url, "https://legacy.example/hook/LEGACY");
    // One tenant's sealed URL copied into another's row does not open there.
    h.raw_execute(
        "UPDATE alerts SET url_sealed = (SELECT url_sealed FROM alerts WHERE tenant_id = 't1') \
         WHERE tenant_id = 't2'",
    )
    .await;
    assert!(matches!(s.get_alert("t2").await, Err(StoreError::Unsealable(_))));
}

async fn the_lid_map_is_kept_per_tenant(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "ta").await;
    with_tenant(s, "tb").await;
    let (lid, phone) = ("111222333@lid", "5511999990001@s.whatsapp.net");
    s.learn_lid("ta", lid, phone).await.unwrap();
    assert_eq!(s.phone_for_lid("ta", lid).await.unwrap().as_deref(), Some(phone));
    assert_eq!(s.lid_for_phone("ta", phone).await.unwrap().as_deref(), Some(lid));
    // Tenant B sees nothing of A's mapping...
    assert_eq!(s.phone_for_lid("tb", lid).await.unwrap(), None);
    assert_eq!(s.lid_for_phone("tb", phone).await.unwrap(), None);
    // ... and what B is told of the same LID changes nothing for A.
    let other = "5511888880002@s.whatsapp.net";
    s.learn_lid("tb", lid, other).await.unwrap();
    assert_eq!(s.phone_for_lid("tb", lid).await.unwrap().as_deref(), Some(other));
    assert_eq!(s.phone_for_lid("ta", lid).await.unwrap().as_deref(), Some(phone));
    // The mappings go with their tenant.
    s.delete_tenant("ta").await.unwrap();
    assert_eq!(s.phone_for_lid("ta", lid).await.unwrap(), None);
    assert_eq!(h.count("lid_map").await, 1);
}

pub(crate) fn campaign(id: &str, tenant_id: &str, recipients: u32) -> CampaignRecord {
    let at = now_millis();
    CampaignRecord {
        id: id.into(),
        tenant_id: tenant_id.into(),
        name: format!("campaign {id}"),
        template: "Hi {{name}}".into(),
        pool: "default".into(),
        schedule: Some(json!({"timezone": "America/Sao_Paulo", "start": "09:00", "end": "18:00"})),
        status: CampaignStatus::Running,
        recipients,
        next_index: 0,
        skipped: 0,
        created_at: at,
        updated_at: at,
        ended_at: None,
        idempotency_key: None,
    }
}

pub(crate) fn recipients(n: u32) -> Vec<CampaignRecipient> {
    (0..n)
        .map(|i| CampaignRecipient {
            index: i,
            to: bzapper_core::Jid::parse(&format!("55119999{i:05}@s.whatsapp.net")).unwrap(),
            fields: [("name".to_string(), format!("Person {i}"))].into_iter().collect(),
            // Delivery options round-trip (one recipient with, the others without).
            send_at: (i == 1)
                .then(|| chrono::DateTime::from_timestamp_millis(1_900_000_000_123))
                .flatten(),
            ttl_seconds: (i == 1).then_some(600),
        })
        .collect()
}

async fn campaigns_are_stored_whole_and_their_status_moves_only_from_the_expected_one(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    with_tenant(s, "t2").await;
    // More than one INSERT's worth of recipients on either backend.
    let c1 = campaign("c1", "t1", 12_345);
    s.create_campaign(&c1, &recipients(12_345)).await.unwrap();
    assert_eq!(s.get_campaign("t1", "c1").await.unwrap(), Some(c1.clone()));
    assert_eq!(s.get_campaign("t2", "c1").await.unwrap(), None, "tenant isolation");
    assert_eq!(h.count("campaign_recipients").await, 12_345);

    // Recipients come back in order, from an index on, with their fields.
    let page = s.campaign_recipients("c1", 12_340, 100).await.unwrap();
    assert_eq!(page, recipients(12_345)[12_340..].to_vec());
    assert_eq!(page[0].fields["name"], "Person 12340");
    let first = s.campaign_recipients("c1", 0, 2).await.unwrap();
    assert_eq!(first, recipients(12_345)[..2].to_vec(), "with their delivery options");
    assert!(first[1].send_at.is_some() && first[1].ttl_seconds == Some(600));
    assert!(s.campaign_recipients("c1", 12_345, 10).await.unwrap().is_empty());

    // All or nothing: a duplicate recipient index (the last one) stores nothing at all, and
    // so does a duplicate campaign id.
    let mut bad = recipients(3_000);
    bad[2_999].index = 0;
    let refused = s.create_campaign(&campaign("c2", "t1", 3_000), &bad).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert_eq!(s.get_campaign("t1", "c2").await.unwrap(), None);
    let again = s.create_campaign(&campaign("c1", "t2", 1), &recipients(1)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(h.count("campaign_recipients").await, 12_345);

    // An idempotency key holds within the tenant.
    let keyed = |id: &str, tenant: &str| CampaignRecord {
        idempotency_key: Some("k1".into()),
        ..campaign(id, tenant, 1)
    };
    s.create_campaign(&keyed("k-a", "t1"), &recipients(1)).await.unwrap();
    let twice = s.create_campaign(&keyed("k-b", "t1"), &recipients(1)).await;
    assert!(
        matches!(&twice, Err(StoreError::Conflict(m)) if m.contains("idempotency")),
        "{twice:?}"
    );
    s.create_campaign(&keyed("k-c", "t2"), &recipients(1)).await.unwrap();
    assert_eq!(s.find_campaign_by_key("t1", "k1").await.unwrap().unwrap().id, "k-a");
    assert_eq!(s.find_campaign_by_key("t2", "k1").await.unwrap().unwrap().id, "k-c");
    assert_eq!(s.find_campaign_by_key("t1", "k2").await.unwrap(), None);
    for id in ["k-a", "k-c"] {
        s.set_campaign_status(
            id,
            &[CampaignStatus::Running],
            CampaignStatus::Finished,
            now_millis(),
        )
        .await
        .unwrap();
    }

    // Newest first per tenant; running and paused ones of every tenant, oldest first.
    let mut c3 = campaign("c3", "t1", 1);
    c3.created_at = c1.created_at + Duration::hours(1);
    c3.schedule = None;
    s.create_campaign(&c3, &recipients(1)).await.unwrap();
    let c4 = campaign("c4", "t2", 1);
    s.create_campaign(&c4, &recipients(1)).await.unwrap();
    let ids = |v: Vec<CampaignRecord>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_campaigns("t1").await.unwrap()), ["c3", "k-a", "c1"]);
    assert_eq!(s.get_campaign("t1", "c3").await.unwrap().unwrap().schedule, None);

    // The feed position only moves forward.
    let at = now_millis();
    s.advance_campaign("c1", 40, at).await.unwrap();
    s.advance_campaign("c1", 12, at).await.unwrap();
    let c = s.get_campaign("t1", "c1").await.unwrap().unwrap();
    assert_eq!((c.next_index, c.updated_at), (40, at));

    // Status changes happen only from the statuses named.
    use CampaignStatus::*;
    assert!(s.set_campaign_status("c1", &[Running], Paused, at).await.unwrap());
    assert!(!s.set_campaign_status("c1", &[Running], Paused, at).await.unwrap());
    assert!(!s.set_campaign_status("c1", &[], Running, at).await.unwrap());
    assert!(s.set_campaign_status("c3", &[Running, Paused], Finished, at).await.unwrap());
    let c = s.get_campaign("t1", "c1").await.unwrap().unwrap();
    assert_eq!((c.status, c.ended_at), (Paused, None));
    let all: Vec<_> = s.active_campaigns().await.unwrap();
    assert_eq!(ids(all.clone()), ["c1", "c4"]);
    assert_eq!(all[0].status, Paused);
    assert!(s.set_campaign_status("c1", &[Running, Paused], Canceled, at).await.unwrap());
    let c = s.get_campaign("t1", "c1").await.unwrap().unwrap();
    assert_eq!((c.status, c.ended_at), (Canceled, Some(at)));
    assert!(!s.set_campaign_status("c1", &[Running, Paused], Running, at).await.unwrap());
    assert_eq!(ids(s.active_campaigns().await.unwrap()), ["c4"]);

    // A tenant's campaigns and their recipients go with it.
    assert!(s.delete_tenant("t1").await.unwrap());
    assert_eq!(h.count("campaigns").await, 2);
    assert_eq!(h.count("campaign_recipients").await, 2);
}

async fn campaign_messages_are_counted_and_queued_ones_failed_on_cancel(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    s.create_campaign(&campaign("c1", "t1", 4), &recipients(4)).await.unwrap();
    let in_campaign = |i: u32| MessageRecord {
        campaign_id: Some("c1".into()),
        content: None,
        ..message(&format!("m{i}"), "t1", Some(&format!("campaign:c1:{i}")))
    };
    for i in 0..4 {
        s.insert_message(&in_campaign(i)).await.unwrap();
    }
    // A recipient fed twice is refused by its key.
    let twice = MessageRecord { id: "m9".into(), ..in_campaign(1) };
    assert!(matches!(s.insert_message(&twice).await, Err(StoreError::Conflict(_))));
    s.insert_message(&message("other", "t1", None)).await.unwrap();
    assert_eq!(
        s.get_message("t1", "m0").await.unwrap().unwrap().campaign_id.as_deref(),
        Some("c1")
    );
    assert_eq!(s.get_message("t1", "other").await.unwrap().unwrap().campaign_id, None);

    let upd = |status, instance: Option<&str>| MessageUpdate {
        chosen_by: None,
        status,
        instance_id: instance.map(Into::into),
        error: None,
        at: now_millis(),
    };
    s.update_message("m0", &upd(MessageStatus::Sent, Some("i1"))).await.unwrap();
    s.update_message("m1", &upd(MessageStatus::Delivered, Some("i1"))).await.unwrap();
    // Held for its number after a crash: it may have gone out, so a cancel leaves it.
    s.update_message("m2", &upd(MessageStatus::Queued, Some("i2"))).await.unwrap();

    let mut counts = s.campaign_message_counts("c1").await.unwrap();
    counts.sort_by_key(|c| (c.instance_id.clone(), c.status.as_str()));
    let count = |instance_id: Option<&str>, status, count| CampaignCount {
        instance_id: instance_id.map(Into::into),
        status,
        skipped: false,
        count,
    };
    assert_eq!(
        counts,
        [
            count(None, MessageStatus::Queued, 1),
            count(Some("i1"), MessageStatus::Delivered, 1),
            count(Some("i1"), MessageStatus::Sent, 1),
            count(Some("i2"), MessageStatus::Queued, 1),
        ]
    );

    let at = now_millis();
    assert_eq!(
        s.fail_queued_campaign_messages("c1", "campaign canceled", at).await.unwrap(),
        ["m3"]
    );
    assert!(s.fail_queued_campaign_messages("c1", "again", at).await.unwrap().is_empty());
    let m3 = s.get_message("t1", "m3").await.unwrap().unwrap();
    assert_eq!(
        (m3.status, m3.error.as_deref(), m3.updated_at),
        (MessageStatus::Failed, Some("campaign canceled"), at)
    );
    assert_eq!(s.get_message("t1", "m2").await.unwrap().unwrap().status, MessageStatus::Queued);
    assert_eq!(s.get_message("t1", "other").await.unwrap().unwrap().status, MessageStatus::Queued);
    assert!(s.campaign_message_counts("nope").await.unwrap().is_empty());
}

/// What a message carries besides its text, as the server might store it.
pub(crate) fn content() -> serde_json::Value {
    json!({
        "type": "image",
        "media": {"url": "https://example.com/a.jpg", "mime": "image/jpeg", "size": 1234},
        "quoted": {"wa_id": "3EB0QUOTED", "sender": "5511999990003@s.whatsapp.net"},
        "caption": "olá, \"mundo\" ✓",
    })
}

async fn a_message_with_content_round_trips(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    store.create_instance(&instance("i1", "t1", "n1")).await.unwrap();
    let mut with = message("m1", "t1", None);
    with.content = Some(content());
    with.instance_id = Some("i1".into());
    with.forced = true;
    let without = message("m2", "t1", None);
    // Together, so that on SQLite they share one group commit; the duplicate key makes that
    // batch fall back to row-by-row inserts, the other way a row is written.
    let mut dup_a = message("m3", "t1", Some("k"));
    dup_a.content = Some(json!({"type": "location", "lat": -23.5, "lng": -46.6}));
    let mut dup_b = dup_a.clone();
    dup_b.id = "m4".into();
    let (r1, r2, ra, rb) = tokio::join!(
        store.insert_message(&with),
        store.insert_message(&without),
        store.insert_message(&dup_a),
        store.insert_message(&dup_b),
    );
    r1.unwrap();
    r2.unwrap();
    assert!(ra.is_ok() != rb.is_ok());
    let stored = if ra.is_ok() { &dup_a } else { &dup_b };

    assert_eq!(store.get_message("t1", "m1").await.unwrap().as_ref(), Some(&with));
    assert_eq!(store.get_message_by_id("m2").await.unwrap().unwrap().content, None);
    assert_eq!(store.get_message_by_id(&stored.id).await.unwrap().as_ref(), Some(stored));
    assert_eq!(store.find_message_by_wa_id("i1", &with.wa_id).await.unwrap().unwrap(), with);
    let listed = store
        .list_messages("t1", &MessageFilter { limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(listed.iter().find(|m| m.id == "m1"), Some(&with));
    let pending = store.pending_messages().await.unwrap();
    assert_eq!(pending.iter().find(|m| m.id == "m1"), Some(&with));
    assert_eq!(pending.iter().find(|m| m.id == stored.id), Some(stored));
}

async fn a_sent_message_is_found_by_wa_id_within_its_tenant(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    with_tenant(store, "t2").await;
    store.create_instance(&instance("i1", "t1", "n1")).await.unwrap();
    // Still queued, bound to no number: found all the same.
    let mut queued = message("m1", "t1", None);
    queued.content = Some(content());
    store.insert_message(&queued).await.unwrap();
    let mut sent = message("m2", "t1", None);
    sent.instance_id = Some("i1".into());
    sent.forced = true;
    store.insert_message(&sent).await.unwrap();
    // Another tenant's message with the same WhatsApp id.
    let mut other = message("m3", "t2", None);
    other.wa_id = queued.wa_id.clone();
    store.insert_message(&other).await.unwrap();

    let find = |t: &'static str, wa: String| async move {
        store.find_message_by_wa_id_for_tenant(t, &wa).await.unwrap()
    };
    assert_eq!(find("t1", queued.wa_id.clone()).await, Some(queued.clone()));
    assert_eq!(find("t1", sent.wa_id.clone()).await, Some(sent.clone()));
    assert_eq!(find("t2", queued.wa_id.clone()).await.unwrap().id, "m3");
    assert_eq!(find("t2", sent.wa_id.clone()).await, None, "tenant isolation");
    assert_eq!(find("t1", "3EB0NOPE".into()).await, None);
}

pub(crate) fn inbound(instance_id: &str, tenant_id: &str, wa_id: &str) -> InboundRecord {
    InboundRecord {
        tenant_id: tenant_id.into(),
        instance_id: instance_id.into(),
        wa_id: wa_id.into(),
        chat: "120363000000000001@g.us".into(),
        sender: "5511999990003@s.whatsapp.net".into(),
        text: "look at this".into(),
        kind: "image".into(),
        media: Some(
            json!({"direct_path": "/v/t62/abc", "media_key": "a2V5", "mime": "image/jpeg"}),
        ),
        received_at: now_millis(),
        chat_jid: "120363000000000001@g.us".into(),
        sender_jid: "5511999990003@s.whatsapp.net".into(),
        sender_lid: None,
        push_name: Some("Ana".into()),
        reply_to: None,
    }
}

async fn a_received_message_is_recorded_once_and_found_within_its_tenant(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    with_tenant(store, "t2").await;
    for (i, t) in [("i1", "t1"), ("i2", "t1"), ("i3", "t2")] {
        store.create_instance(&instance(i, t, i)).await.unwrap();
    }
    let first = inbound("i1", "t1", "WA1");
    store.record_inbound(std::slice::from_ref(&first)).await.unwrap();
    assert_eq!(store.find_inbound("t1", "WA1").await.unwrap(), Some(first.clone()));

    // A repeat of (instance, id) is ignored: the first record stands.
    let mut repeat = first.clone();
    repeat.text = "changed".into();
    repeat.received_at = first.received_at + Duration::seconds(1);
    store.record_inbound(std::slice::from_ref(&repeat)).await.unwrap();
    assert_eq!(store.find_inbound("t1", "WA1").await.unwrap(), Some(first.clone()));
    assert_eq!(h.count("inbound").await, 1);

    // Another tenant neither sees it nor is confused by its own message with the same id.
    assert_eq!(store.find_inbound("t2", "WA1").await.unwrap(), None, "tenant isolation");
    let mut theirs = inbound("i3", "t2", "WA1");
    theirs.received_at = first.received_at + Duration::seconds(5);
    theirs.media = None;
    theirs.kind = "text".into();
    store.record_inbound(std::slice::from_ref(&theirs)).await.unwrap();
    assert_eq!(store.find_inbound("t2", "WA1").await.unwrap(), Some(theirs));
    assert_eq!(store.find_inbound("t1", "WA1").await.unwrap(), Some(first.clone()));

    // Two numbers of one tenant got the same id (both in a group): the newest wins.
    let mut second = inbound("i2", "t1", "WA1");
    second.received_at = first.received_at + Duration::seconds(2);
    store.record_inbound(std::slice::from_ref(&second)).await.unwrap();
    assert_eq!(store.find_inbound("t1", "WA1").await.unwrap(), Some(second));
    assert_eq!(store.find_inbound("t1", "WA2").await.unwrap(), None);
}

async fn a_burst_of_received_messages_is_recorded_at_once(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    store.create_instance(&instance("i1", "t1", "n1")).await.unwrap();
    let mut burst: Vec<InboundRecord> =
        (0..1500).map(|n| inbound("i1", "t1", &format!("WA{n}"))).collect();
    // A repeat inside the burst is ignored like any other.
    let mut again = burst[7].clone();
    again.text = "changed".into();
    burst.push(again);
    store.record_inbound(&burst).await.unwrap();
    assert_eq!(h.count("inbound").await, 1500);
    let kept = store.find_inbound("t1", "WA7").await.unwrap().unwrap();
    assert_eq!(kept.text, burst[7].text);
    store.record_inbound(&[]).await.unwrap();
}

async fn events_and_the_messages_they_report_are_committed_together(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    store.create_instance(&instance("i1", "t1", "n1")).await.unwrap();
    let events = [event("t1", Some("i1"), "message.received"), event("t1", None, "x.y")];
    let index = [inbound("i1", "t1", "WA-A"), inbound("i1", "t1", "WA-B")];
    let written = store.append_events_indexed(&events, &index).await.unwrap();
    assert_eq!(written.len(), 2);
    assert!(written[0].id < written[1].id);
    assert!(store.find_inbound("t1", "WA-A").await.unwrap().is_some());
    assert!(store.find_inbound("t1", "WA-B").await.unwrap().is_some());
    // An index entry whose instance is gone fails the whole commit: no event without it.
    let orphan = [inbound("gone", "t1", "WA-C")];
    let failed = store.append_events_indexed(&events[..1], &orphan).await;
    assert!(failed.is_err());
    assert_eq!(store.events_after("t1", 0, 10).await.unwrap().len(), 2);
}

fn keyed(n: u32, key: Option<&str>) -> KeyedEvent {
    let mut event = event("t1", Some("i1"), "message.received");
    event.data = json!({"n": n});
    KeyedEvent { event, dedupe_key: key.map(Into::into) }
}

/// What a slot of `append_events_once` holds: the `n` of its event, or `None` when skipped.
fn ns(written: &[Option<crate::Event>]) -> Vec<Option<u64>> {
    written.iter().map(|e| e.as_ref().map(|e| e.data["n"].as_u64().unwrap())).collect()
}

async fn an_event_with_a_dedupe_key_is_appended_once(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    s.create_instance(&instance("i1", "t1", "n1")).await.unwrap();
    // Within one batch: the second holder of a key is skipped; events without one never are.
    let batch = [keyed(0, Some("a")), keyed(1, None), keyed(2, Some("b")), keyed(3, Some("a"))];
    let index = [inbound("i1", "t1", "WA-A"), inbound("i1", "t1", "WA-B")];
    let first = s.append_events_once(&batch, &index).await.unwrap();
    assert_eq!(ns(&first), [Some(0), Some(1), Some(2), None]);
    let ids: Vec<i64> = first.iter().flatten().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "consecutive ids: {ids:?}");
    // Across batches: a key already in the log is skipped, with its index entry (as before).
    let again = [keyed(4, Some("b")), keyed(5, None), keyed(6, Some("c")), keyed(7, Some("a"))];
    let second = s.append_events_once(&again, &index).await.unwrap();
    assert_eq!(ns(&second), [None, Some(5), Some(6), None]);
    assert!(second[1].as_ref().unwrap().id > ids[2]);
    // A batch of duplicates only writes nothing.
    let dups = s.append_events_once(&[keyed(8, Some("a")), keyed(9, Some("c"))], &[]).await;
    assert_eq!(ns(&dups.unwrap()), [None, None]);
    let logged: Vec<u64> = s
        .events_after("t1", 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.data["n"].as_u64().unwrap())
        .collect();
    assert_eq!(logged, [0, 1, 2, 5, 6]);
    assert_eq!(h.count("inbound").await, 2);
    // The same message committed twice at once (a redelivery racing the first delivery):
    // one append records it, the other finds it recorded.
    let (one, other) = ([keyed(10, Some("d"))], [keyed(11, Some("d"))]);
    let (x, y) = tokio::join!(s.append_events_once(&one, &[]), s.append_events_once(&other, &[]));
    let recorded = [x.unwrap(), y.unwrap()].iter().filter(|w| w[0].is_some()).count();
    assert_eq!(recorded, 1, "a key is recorded by exactly one of two concurrent appends");
    // The plain appends are unchanged and never skip.
    assert_eq!(s.append_events(&[keyed(12, None).event]).await.unwrap().len(), 1);
    // Pruning an event frees its key.
    s.prune_events(now_millis() + Duration::days(1)).await.unwrap();
    let after = s.append_events_once(&[keyed(13, Some("a"))], &[]).await.unwrap();
    assert_eq!(ns(&after), [Some(13)]);
}

async fn received_messages_are_pruned_by_age(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    store.create_instance(&instance("i1", "t1", "n1")).await.unwrap();
    let now = now_millis();
    for (wa, age) in [("old1", 10), ("old2", 5), ("new", 0)] {
        let mut r = inbound("i1", "t1", wa);
        r.received_at = now - Duration::days(age);
        store.record_inbound(std::slice::from_ref(&r)).await.unwrap();
    }
    assert_eq!(store.prune_inbound(now - Duration::days(1)).await.unwrap(), 2);
    assert_eq!(store.find_inbound("t1", "old1").await.unwrap(), None);
    assert_eq!(store.find_inbound("t1", "old2").await.unwrap(), None);
    assert!(store.find_inbound("t1", "new").await.unwrap().is_some());
    assert_eq!(store.prune_inbound(now - Duration::days(1)).await.unwrap(), 0);
    // The cut is exclusive, and a fraction of a millisecond rounds it up.
    assert_eq!(store.prune_inbound(now).await.unwrap(), 0);
    assert_eq!(store.prune_inbound(now + Duration::microseconds(1)).await.unwrap(), 1);
    assert_eq!(h.count("inbound").await, 0);
}

async fn received_messages_go_with_their_instance_and_tenant(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    with_tenant(store, "t2").await;
    for (i, t) in [("i1", "t1"), ("i2", "t1"), ("i3", "t2")] {
        store.create_instance(&instance(i, t, i)).await.unwrap();
        store.record_inbound(&[inbound(i, t, &format!("WA-{i}"))]).await.unwrap();
    }
    assert!(store.delete_instance("t1", "i1").await.unwrap());
    assert_eq!(store.find_inbound("t1", "WA-i1").await.unwrap(), None);
    assert!(store.find_inbound("t1", "WA-i2").await.unwrap().is_some());
    assert_eq!(h.count("inbound").await, 2);

    assert!(store.delete_tenant("t1").await.unwrap());
    assert_eq!(store.find_inbound("t1", "WA-i2").await.unwrap(), None);
    assert!(store.find_inbound("t2", "WA-i3").await.unwrap().is_some());
    assert_eq!(h.count("inbound").await, 1);
}

pub(crate) fn contact_check(phone: &str, on_whatsapp: bool) -> ContactCheckRecord {
    let digits = phone.trim_start_matches('+');
    ContactCheckRecord {
        phone: phone.into(),
        on_whatsapp,
        jid: on_whatsapp.then(|| format!("{digits}@s.whatsapp.net")),
        lid: on_whatsapp.then(|| format!("9{digits}@lid")),
        checked_at: now_millis(),
    }
}

/// The answers for `phones`, sorted by phone.
async fn checks(
    store: &dyn Store,
    tenant_id: &str,
    phones: &[&str],
    not_before: chrono::DateTime<chrono::Utc>,
) -> Vec<ContactCheckRecord> {
    let phones: Vec<String> = phones.iter().map(|p| p.to_string()).collect();
    let mut got = store.get_contact_checks(tenant_id, &phones, not_before).await.unwrap();
    got.sort_by(|a, b| a.phone.cmp(&b.phone));
    got
}

async fn contact_checks_are_upserted_per_tenant_and_read_within_their_ttl(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    with_tenant(store, "t2").await;
    let now = now_millis();
    let day_ago = now - Duration::days(1);
    let a = contact_check("+5511999990001", true);
    let mut b = contact_check("+5511999990002", false);
    b.checked_at = now - Duration::hours(2);
    store.put_contact_checks("t1", &[a.clone(), b.clone()]).await.unwrap();
    let all = ["+5511999990001", "+5511999990002", "+5511999990003"];
    assert_eq!(checks(store, "t1", &all, day_ago).await, vec![a.clone(), b.clone()]);
    assert_eq!(checks(store, "t1", &all[2..], day_ago).await, vec![]);
    assert_eq!(checks(store, "t1", &[], day_ago).await, vec![]);

    // Another tenant sees nothing of it, and its own answer for the same phone stands apart.
    assert_eq!(checks(store, "t2", &all, day_ago).await, vec![], "tenant isolation");
    let mut theirs = contact_check("+5511999990001", false);
    theirs.checked_at = now - Duration::minutes(1);
    store.put_contact_checks("t2", std::slice::from_ref(&theirs)).await.unwrap();
    assert_eq!(checks(store, "t2", &all, day_ago).await, vec![theirs]);
    assert_eq!(checks(store, "t1", &all[..1], day_ago).await, vec![a.clone()]);

    // A new answer replaces the old one (also going back to "not on WhatsApp").
    let mut b2 = contact_check("+5511999990002", true);
    b2.checked_at = now + Duration::seconds(1);
    store.put_contact_checks("t1", std::slice::from_ref(&b2)).await.unwrap();
    let mut a2 = contact_check("+5511999990001", false);
    a2.checked_at = now + Duration::seconds(2);
    // One phone twice in one write: the later answer is kept.
    let mut a_dup = a2.clone();
    a_dup.on_whatsapp = true;
    a_dup.jid = Some("5511999990001@s.whatsapp.net".into());
    store.put_contact_checks("t1", &[a_dup, a2.clone()]).await.unwrap();
    assert_eq!(checks(store, "t1", &all, day_ago).await, vec![a2.clone(), b2.clone()]);
    assert_eq!(h.count("contact_checks").await, 3);
    store.put_contact_checks("t1", &[]).await.unwrap();

    // Only answers checked at or after `not_before` count; a fraction of a millisecond rounds
    // the cut up.
    let mut old = contact_check("+5511999990003", true);
    old.checked_at = now - Duration::days(2);
    store.put_contact_checks("t1", std::slice::from_ref(&old)).await.unwrap();
    assert_eq!(checks(store, "t1", &all[2..], day_ago).await, vec![]);
    assert_eq!(checks(store, "t1", &all[2..], old.checked_at).await, vec![old.clone()]);
    let just_after = old.checked_at + Duration::microseconds(1);
    assert_eq!(checks(store, "t1", &all[2..], just_after).await, vec![]);
    assert_eq!(checks(store, "t1", &all, b2.checked_at).await, vec![a2, b2]);

    // A bigger list than one statement's worth of phones.
    let many: Vec<ContactCheckRecord> =
        (0..1200).map(|n| contact_check(&format!("+55219{n:08}"), n % 2 == 0)).collect();
    store.put_contact_checks("t1", &many).await.unwrap();
    let phones: Vec<String> = many.iter().map(|r| r.phone.clone()).collect();
    assert_eq!(store.get_contact_checks("t1", &phones, day_ago).await.unwrap().len(), 1200);
}

async fn contact_checks_are_pruned_by_age_and_go_with_their_tenant(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    with_tenant(store, "t2").await;
    let now = now_millis();
    for (t, phone, age) in [
        ("t1", "+5511999990001", 10),
        ("t1", "+5511999990002", 2),
        ("t1", "+5511999990003", 0),
        ("t2", "+5511999990001", 0),
    ] {
        let mut r = contact_check(phone, true);
        r.checked_at = now - Duration::days(age);
        store.put_contact_checks(t, std::slice::from_ref(&r)).await.unwrap();
    }
    assert_eq!(store.prune_contact_checks(now - Duration::days(1)).await.unwrap(), 2);
    assert_eq!(store.prune_contact_checks(now - Duration::days(1)).await.unwrap(), 0);
    let all = ["+5511999990001", "+5511999990002", "+5511999990003"];
    let long_ago = now - Duration::days(100);
    let left: Vec<String> =
        checks(store, "t1", &all, long_ago).await.into_iter().map(|r| r.phone).collect();
    assert_eq!(left, vec!["+5511999990003".to_string()]);
    assert_eq!(store.prune_contact_checks(now - Duration::days(10)).await.unwrap(), 0);
    assert_eq!(h.count("contact_checks").await, 2);

    assert!(store.delete_tenant("t1").await.unwrap());
    assert_eq!(checks(store, "t1", &all, long_ago).await, vec![]);
    assert_eq!(checks(store, "t2", &all, long_ago).await.len(), 1);
    assert_eq!(h.count("contact_checks").await, 1);
    // The cut is exclusive, and a fraction of a millisecond rounds it up.
    assert_eq!(store.prune_contact_checks(now).await.unwrap(), 0);
    assert_eq!(store.prune_contact_checks(now + Duration::microseconds(1)).await.unwrap(), 1);
    assert_eq!(h.count("contact_checks").await, 0);
}

async fn the_send_queue_is_read_in_pages_in_accept_order(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    with_tenant(store, "t2").await;
    let t0 = now_millis();
    let queued = |id: &str, tenant: &str, pool: &str, ms: i64| {
        let mut m = message(id, tenant, None);
        m.pool = pool.into();
        m.created_at = t0 + chrono::Duration::milliseconds(ms);
        m
    };
    // Inserted out of accept order: pages follow created_at, then id.
    let mut t1_default = Vec::new();
    for (i, ms) in [(5, 50), (1, 10), (3, 30), (2, 20), (4, 30)] {
        let m = queued(&format!("a{i}"), "t1", "default", ms);
        store.insert_message(&m).await.unwrap();
        t1_default.push(m);
    }
    store.insert_message(&queued("b1", "t1", "other", 0)).await.unwrap();
    store.insert_message(&queued("c1", "t2", "default", 0)).await.unwrap();
    let mut forced = queued("f1", "t1", "default", 1);
    forced.instance_id = Some("i1".into());
    forced.forced = true;
    forced.body = "olá".into();
    store.insert_message(&forced).await.unwrap();
    let mut sent = queued("s1", "t1", "default", 0);
    sent.status = MessageStatus::Sent;
    store.insert_message(&sent).await.unwrap();
    let mut sending = queued("s2", "t1", "default", 0);
    sending.status = MessageStatus::Sending;
    store.insert_message(&sending).await.unwrap();

    let pool = QueueKey::Pool { tenant_id: "t1".into(), pool: "default".into() };
    let ids = |page: &[QueuedRef]| page.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    let first = store.queued_page(&pool, None, far_future(), 3).await.unwrap();
    assert_eq!(ids(&first), ["a1", "a2", "a3"], "neither sent, sending nor forced ones");
    assert_eq!(first[0], QueuedRef::of(&t1_default[1]));
    let rest = store.queued_page(&pool, Some(&first[2].position), far_future(), 3).await.unwrap();
    assert_eq!(ids(&rest), ["a4", "a5"], "a4 ties a3 on time and follows it by id");
    assert!(store
        .queued_page(&pool, Some(&rest[1].position), far_future(), 3)
        .await
        .unwrap()
        .is_empty());

    let number = QueueKey::Forced { instance_id: "i1".into() };
    let page = store.queued_page(&number, None, far_future(), 10).await.unwrap();
    assert_eq!(ids(&page), ["f1"]);
    assert_eq!((page[0].text_chars, page[0].forced), (3, true), "characters, not bytes");
    assert_eq!(QueueKey::of(&forced), number);

    let mut queues = store.queued_queues().await.unwrap();
    queues.sort();
    let pool_of = |t: &str, p: &str| QueueKey::Pool { tenant_id: t.into(), pool: p.into() };
    assert_eq!(
        queues,
        [pool_of("t1", "default"), pool_of("t1", "other"), pool_of("t2", "default"), number]
    );
    let mut counts = store.queued_counts().await.unwrap();
    counts.sort();
    let count = |t: &str, p: &str, n: u64| (t.to_string(), p.to_string(), n);
    assert_eq!(
        counts,
        [count("t1", "default", 6), count("t1", "other", 1), count("t2", "default", 1)],
        "forced ones count in their pool"
    );
    let mut in_campaign = queued("k1", "t2", "default", 0);
    in_campaign.campaign_id = Some("cmp_1".into());
    store.insert_message(&in_campaign).await.unwrap();
    let mut direct = store.unfinished_direct_counts().await.unwrap();
    direct.sort();
    assert_eq!(
        direct,
        [count("t1", "default", 7), count("t1", "other", 1), count("t2", "default", 1)],
        "the quota's count: sending ones too, campaign messages apart"
    );
    let doubt = store.sending_messages().await.unwrap();
    assert_eq!(doubt.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["s2"]);

    // Once sent, a message leaves its queue's pages.
    let at = now_millis();
    let sent_now = MessageUpdate {
        chosen_by: None,
        status: MessageStatus::Sent,
        instance_id: Some("i1".into()),
        error: None,
        at,
    };
    store.update_message("a1", &sent_now).await.unwrap();
    assert_eq!(ids(&store.queued_page(&pool, None, far_future(), 1).await.unwrap()), ["a2"]);
}

async fn a_ban_expiry_is_stored_with_the_ban_and_cleared_by_any_other_change(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    for id in ["i1", "i2"] {
        s.create_instance(&instance(id, "t1", id)).await.unwrap();
    }
    let banned = InstanceState::disconnected(Reason::Banned, Some("code 101".into()));
    let until = now_millis() + Duration::seconds(90);
    let ban = StateChange { ban_until: Some(until), ..StateChange::state(banned.clone()) };
    s.update_instance_state("i1", &ban).await.unwrap();
    let later = StateChange { ban_until: Some(until + Duration::seconds(1)), ..ban.clone() };
    s.update_instance_state("i2", &later).await.unwrap();
    assert_eq!(s.ban_expiry("i1").await.unwrap(), Some(until));
    assert_eq!(s.get_instance_by_id("i1").await.unwrap().unwrap().state, banned);
    assert_eq!(
        s.ban_expiries().await.unwrap(),
        [("i1".to_string(), until), ("i2".to_string(), until + Duration::seconds(1))]
    );
    // Any other state change clears it (here: connecting again at the expiry).
    let start = StateChange::state(InstanceState::connecting(None, None));
    s.update_instance_state("i1", &start).await.unwrap();
    assert_eq!(s.ban_expiry("i1").await.unwrap(), None);
    // So does an operator's command that leaves the state as it is.
    assert!(s.clear_ban_expiry("i2").await.unwrap());
    assert!(!s.clear_ban_expiry("i2").await.unwrap());
    assert_eq!(s.get_instance_by_id("i2").await.unwrap().unwrap().state, banned);
    assert!(s.ban_expiries().await.unwrap().is_empty());
    assert_eq!(s.ban_expiry("missing").await.unwrap(), None);
}

pub(crate) fn alert(id: &str, tenant_id: &str, event_id: i64) -> AlertDeliveryRecord {
    let at = now_millis();
    AlertDeliveryRecord {
        id: id.into(),
        tenant_id: tenant_id.into(),
        instance_id: Some("i1".into()),
        event_id,
        kind: "banned".into(),
        text: format!("Number i1 was banned ({event_id})."),
        payload: format!("{{\"text\":\"{event_id}\"}}"),
        status: AlertStatus::Pending,
        attempts: 0,
        next_attempt_at: at,
        last_status: None,
        last_error: None,
        created_at: at,
        updated_at: at,
        delivered_at: None,
    }
}

async fn alerts_are_enqueued_once_with_the_cursor_and_taken_round_robin_across_tenants(
    h: &Harness,
) {
    let s = &*h.s;
    for t in ["t1", "t2"] {
        with_tenant(s, t).await;
    }
    // A database that never had a cursor starts at the newest event.
    for _ in 0..3 {
        s.append_event(&event("t1", None, "instance.qr")).await.unwrap();
    }
    let newest = s.latest_event_id_all().await.unwrap();
    assert_eq!(s.alert_cursor().await.unwrap(), newest);
    // Tenant 1 has a backlog of five, tenant 2 one alert, the newest of all.
    let t0 = now_millis() - Duration::seconds(60);
    let mut batch: Vec<AlertDeliveryRecord> = (0..5)
        .map(|n| {
            let mut a = alert(&format!("alr_1_{n}"), "t1", 100 + n);
            a.next_attempt_at = t0 + Duration::seconds(n);
            a
        })
        .collect();
    let mut late = alert("alr_2_0", "t2", 200);
    late.next_attempt_at = t0 + Duration::seconds(30);
    batch.push(late);
    assert_eq!(s.enqueue_alerts(&batch, 210).await.unwrap(), 6);
    assert_eq!(s.alert_cursor().await.unwrap(), 210);
    // A replayed page stores nothing twice (same event, another id), and still moves the
    // cursor.
    let again = alert("alr_again", "t1", 100);
    assert_eq!(s.enqueue_alerts(&[again], 220).await.unwrap(), 0);
    assert_eq!(s.alert_cursor().await.unwrap(), 220);
    assert_eq!(h.count("alert_deliveries").await, 6);

    // Round-robin: every tenant's oldest before any tenant's second.
    let due = s.due_alerts(now_millis(), 10, 3).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["alr_1_0", "alr_2_0", "alr_1_1"]);
    assert_eq!(due[0], batch[0]);
    let due = s.due_alerts(now_millis(), 2, 100).await.unwrap();
    assert_eq!(due.len(), 3, "at most two of tenant 1's");
    // Not yet due.
    assert!(s.due_alerts(t0 - Duration::seconds(1), 10, 100).await.unwrap().is_empty());

    // Outcomes: a failure with its next attempt, then a delivery; an older outcome arriving
    // late changes nothing.
    let next = now_millis() + Duration::seconds(2);
    let failed = AlertAttempt {
        status: AlertStatus::Pending,
        attempts: 1,
        next_attempt_at: next,
        last_status: Some(503),
        last_error: Some("the receiver answered 503".into()),
        at: now_millis(),
    };
    s.record_alert_attempt("alr_2_0", &failed).await.unwrap();
    let a = s.get_alert_delivery("t2", "alr_2_0").await.unwrap().unwrap();
    assert_eq!(
        (a.status, a.attempts, a.next_attempt_at, a.last_status),
        (AlertStatus::Pending, 1, next, Some(503))
    );
    assert!(s.due_alerts(now_millis(), 10, 100).await.unwrap().iter().all(|a| a.tenant_id == "t1"));
    let delivered_at = now_millis();
    let ok = AlertAttempt {
        status: AlertStatus::Delivered,
        attempts: 2,
        next_attempt_at: delivered_at,
        last_status: Some(200),
        last_error: None,
        at: delivered_at,
    };
    s.record_alert_attempt("alr_2_0", &ok).await.unwrap();
    s.record_alert_attempt("alr_2_0", &failed).await.unwrap();
    let a = s.get_alert_delivery("t2", "alr_2_0").await.unwrap().unwrap();
    assert_eq!(
        (a.status, a.attempts, a.delivered_at, a.last_error),
        (AlertStatus::Delivered, 2, Some(delivered_at), None)
    );
    // Another tenant's id is not found.
    assert_eq!(s.get_alert_delivery("t1", "alr_2_0").await.unwrap(), None);
}

async fn alert_deliveries_are_listed_by_tenant_retried_and_pruned(h: &Harness) {
    let s = &*h.s;
    for t in ["t1", "t2"] {
        with_tenant(s, t).await;
    }
    let mut batch: Vec<AlertDeliveryRecord> =
        (0..5).map(|n| alert(&format!("alr_{n}"), "t1", n)).collect();
    batch.push(alert("alr_9", "t2", 9));
    s.enqueue_alerts(&batch, 9).await.unwrap();
    let given_up = AlertAttempt {
        status: AlertStatus::Failed,
        attempts: 3,
        next_attempt_at: now_millis(),
        last_status: None,
        last_error: Some("the receiver could not be reached".into()),
        at: now_millis(),
    };
    for id in ["alr_1", "alr_3"] {
        s.record_alert_attempt(id, &given_up).await.unwrap();
    }
    let list = |status: Option<AlertStatus>, before: Option<&str>, limit: u32| {
        let f = AlertDeliveryFilter { status, before: before.map(Into::into), limit };
        async move {
            let got = s.list_alert_deliveries("t1", &f).await.unwrap();
            got.into_iter().map(|a| a.id).collect::<Vec<_>>()
        }
    };
    // Newest first, paged by id, filtered by status; another tenant's never shown.
    assert_eq!(list(None, None, 3).await, ["alr_4", "alr_3", "alr_2"]);
    assert_eq!(list(None, Some("alr_2"), 3).await, ["alr_1", "alr_0"]);
    assert_eq!(list(Some(AlertStatus::Failed), None, 10).await, ["alr_3", "alr_1"]);
    assert_eq!(list(Some(AlertStatus::Delivered), None, 10).await, Vec::<String>::new());

    // A re-send makes a failed one pending and due, keeping its attempts; not another
    // tenant's.
    let at = now_millis();
    assert!(s.requeue_alert("t1", "alr_3", at).await.unwrap());
    assert!(!s.requeue_alert("t2", "alr_1", at).await.unwrap());
    let a = s.get_alert_delivery("t1", "alr_3").await.unwrap().unwrap();
    assert_eq!((a.status, a.attempts, a.next_attempt_at), (AlertStatus::Pending, 3, at));
    assert!(s.due_alerts(at, 10, 100).await.unwrap().iter().any(|a| a.id == "alr_3"));

    // Pruning takes the ended ones older than the cut, never a pending one.
    assert_eq!(s.prune_alert_deliveries(now_millis() - Duration::hours(1)).await.unwrap(), 0);
    assert_eq!(s.prune_alert_deliveries(now_millis() + Duration::seconds(1)).await.unwrap(), 1);
    assert_eq!(s.get_alert_delivery("t1", "alr_1").await.unwrap(), None);
    assert_eq!(h.count("alert_deliveries").await, 5);
    // They go with their tenant.
    assert!(s.delete_tenant("t2").await.unwrap());
    assert_eq!(h.count("alert_deliveries").await, 4);
}

async fn scheduled_messages_wait_in_the_store_until_due(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    let t0 = now_millis();
    let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
    let mut now_one = message("m1", "t1", None);
    now_one.created_at = at(10);
    // Scheduled an hour ahead, accepted before m1: it still stands behind it.
    let mut later = message("m0", "t1", None);
    later.created_at = at(0);
    later.send_at = Some(at(3_600_000));
    // A send_at in the past changes nothing: due at acceptance.
    let mut past = message("m2", "t1", None);
    past.created_at = at(20);
    past.send_at = Some(at(-5_000));
    let mut forced = message("f1", "t1", None);
    forced.instance_id = Some("i1".into());
    forced.forced = true;
    forced.created_at = at(0);
    forced.send_at = Some(at(60_000));
    for m in [&now_one, &later, &past, &forced] {
        store.insert_message(m).await.unwrap();
    }
    let back = store.get_message("t1", "m0").await.unwrap().unwrap();
    assert_eq!((back.send_at, back.expires_at), (Some(at(3_600_000)), None));
    assert_eq!(back.queue_at(), at(3_600_000));

    let pool = QueueKey::Pool { tenant_id: "t1".into(), pool: "default".into() };
    let ids = |page: &[QueuedRef]| page.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    let page = store.queued_page(&pool, None, at(1_000), 10).await.unwrap();
    assert_eq!(ids(&page), ["m1", "m2"], "the scheduled one is not read before it is due");
    assert_eq!(page[0].position, QueuePosition::of(&now_one));
    let page = store.queued_page(&pool, Some(&page[1].position), at(3_600_000), 10).await.unwrap();
    assert_eq!(ids(&page), ["m0"], "read once due, after what was due before it");
    let number = QueueKey::Forced { instance_id: "i1".into() };
    assert!(store.queued_page(&number, None, at(59_999), 10).await.unwrap().is_empty());

    let mut due = store.scheduled_queues(at(1_000)).await.unwrap();
    due.sort();
    assert_eq!(due, [(pool.clone(), at(3_600_000)), (number.clone(), at(60_000))]);
    assert_eq!(store.scheduled_queues(at(60_000)).await.unwrap(), [(pool, at(3_600_000))]);
    assert!(store.scheduled_queues(at(3_600_000)).await.unwrap().is_empty());
}

async fn queued_messages_expire_once_and_stay_expired(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    let t0 = now_millis();
    let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
    let mut short = message("m1", "t1", None);
    short.expires_at = Some(at(1_000));
    let mut long = message("m2", "t1", None);
    long.expires_at = Some(at(60_000));
    let mut sending = message("m3", "t1", None);
    sending.expires_at = Some(at(500));
    sending.status = MessageStatus::Sending;
    let never = message("m4", "t1", None);
    for m in [&short, &long, &sending, &never] {
        store.insert_message(m).await.unwrap();
    }
    assert_eq!(store.next_expiry().await.unwrap(), Some(at(1_000)), "queued ones only");
    assert!(store.expire_due(at(999)).await.unwrap().is_empty());
    let gone = store.expire_due(at(1_000)).await.unwrap();
    assert_eq!(gone, [ExpiredRef { id: "m1".into(), tenant_id: "t1".into(), instance_id: None }]);
    assert!(store.expire_due(at(1_000)).await.unwrap().is_empty(), "once");
    let m1 = store.get_message("t1", "m1").await.unwrap().unwrap();
    assert_eq!((m1.status, m1.expires_at), (MessageStatus::Expired, Some(at(1_000))));
    assert_eq!(store.next_expiry().await.unwrap(), Some(at(60_000)));
    // Expired is final: no later status change takes.
    let sent = MessageUpdate {
        status: MessageStatus::Sending,
        instance_id: Some("i1".into()),
        error: None,
        at: at(1_001),
        chosen_by: Some("rotation".into()),
    };
    assert!(!store.update_message("m1", &sent).await.unwrap());
    assert_eq!(
        store.get_message("t1", "m1").await.unwrap().unwrap().status,
        MessageStatus::Expired
    );
    let filter = MessageFilter {
        status: Some(MessageStatus::Expired),
        limit: 10,
        ..MessageFilter::default()
    };
    let listed = store.list_messages("t1", &filter).await.unwrap();
    assert_eq!(listed.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["m1"]);
    // Not a queued one any more.
    let pool = QueueKey::Pool { tenant_id: "t1".into(), pool: "default".into() };
    let page = store.queued_page(&pool, None, far_future(), 10).await.unwrap();
    assert_eq!(page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["m2", "m4"]);
    assert_eq!(page[0].expires_at_ms, Some(crate::time::to_millis(at(60_000))));
}

async fn why_a_number_was_chosen_is_kept_until_the_message_is_queued_again(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    store.insert_message(&message("m1", "t1", None)).await.unwrap();
    let upd = |status, chosen_by: Option<&str>| MessageUpdate {
        status,
        instance_id: Some("i1".into()),
        error: None,
        at: now_millis(),
        chosen_by: chosen_by.map(Into::into),
    };
    let chosen = || async { store.get_message("t1", "m1").await.unwrap().unwrap().chosen_by };
    assert_eq!(chosen().await, None);
    store.update_message("m1", &upd(MessageStatus::Sending, Some("sticky"))).await.unwrap();
    assert_eq!(chosen().await.as_deref(), Some("sticky"));
    store.update_message("m1", &upd(MessageStatus::Queued, None)).await.unwrap();
    assert_eq!(chosen().await, None, "back in the queue: no number has it");
    store.update_message("m1", &upd(MessageStatus::Sending, Some("rotation"))).await.unwrap();
    store.update_message("m1", &upd(MessageStatus::Sent, None)).await.unwrap();
    assert_eq!(chosen().await.as_deref(), Some("rotation"), "kept by a later status");
}

async fn campaign_recipients_not_on_whatsapp_are_counted_apart(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    for (id, error) in [("m1", Some("not_on_whatsapp")), ("m2", Some("boom")), ("m3", None)] {
        let mut m = message(id, "t1", None);
        m.campaign_id = Some("c1".into());
        m.status = if error.is_some() { MessageStatus::Failed } else { MessageStatus::Sent };
        m.error = error.map(Into::into);
        store.insert_message(&m).await.unwrap();
    }
    let mut counts = store.campaign_message_counts("c1").await.unwrap();
    counts.sort_by_key(|c| (c.status.as_str(), c.skipped));
    let count = |status, skipped| CampaignCount { instance_id: None, status, skipped, count: 1 };
    assert_eq!(
        counts,
        [
            count(MessageStatus::Failed, false),
            count(MessageStatus::Failed, true),
            count(MessageStatus::Sent, false)
        ]
    );
}

async fn conversations_are_upserted_and_read_per_pool(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    with_tenant(store, "t2").await;
    store.create_instance(&instance("a", "t1", "a")).await.unwrap();
    store.create_instance(&instance("b", "t1", "b")).await.unwrap();
    let mut other_pool = instance("c", "t1", "c");
    other_pool.pool = "sales".into();
    store.create_instance(&other_pool).await.unwrap();
    store.create_instance(&instance("d", "t2", "d")).await.unwrap();
    let t0 = now_millis();
    let at = |days: i64| t0 + Duration::days(days);
    let (x, y, z) = ("1@s.whatsapp.net", "2@s.whatsapp.net", "3@lid");

    // x wrote to a long ago; b wrote to x lately; y only talked with the other pool's c.
    store.touch_conversation("t1", "a", x, StartedBy::In, at(-40)).await.unwrap();
    store.touch_conversation("t1", "b", x, StartedBy::Out, at(-2)).await.unwrap();
    store.touch_conversation("t1", "c", y, StartedBy::Out, at(-1)).await.unwrap();
    store.touch_conversation("t2", "d", x, StartedBy::Out, at(0)).await.unwrap();
    // A later message moves last_at forward; an older one does not move it back, and the
    // side that started it stays.
    store.touch_conversation("t1", "a", z, StartedBy::Out, at(-10)).await.unwrap();
    store.touch_conversation("t1", "a", z, StartedBy::In, at(-3)).await.unwrap();
    store.touch_conversation("t1", "a", z, StartedBy::In, at(-20)).await.unwrap();
    let conv = store.get_conversation("a", z).await.unwrap().unwrap();
    assert_eq!(
        conv,
        ConversationRecord {
            tenant_id: "t1".into(),
            instance_id: "a".into(),
            contact: z.into(),
            started_by: StartedBy::Out,
            first_at: at(-10),
            last_at: at(-3),
        }
    );
    assert_eq!(store.get_conversation("b", z).await.unwrap(), None);

    let contacts: Vec<String> = [x, y, z, "9@s.whatsapp.net"].map(String::from).to_vec();
    let hist = store.contact_histories("t1", "default", &contacts, at(-30)).await.unwrap();
    let mut known_x = hist[x].known_to.clone();
    known_x.sort();
    assert_eq!(known_x, ["a", "b"]);
    assert_eq!(hist[x].sticky_to.as_deref(), Some("b"), "the latest within the window");
    assert_eq!(hist[z], ContactHistory { sticky_to: Some("a".into()), known_to: vec!["a".into()] });
    assert!(!hist.contains_key(y), "another pool's conversation");
    assert_eq!(hist.len(), 2);
    // Outside the window: known, not sticky.
    let old = store.contact_histories("t1", "default", &contacts, at(-1)).await.unwrap();
    assert_eq!(old[x].sticky_to, None);
    assert_eq!(old[x].known_to.len(), 2);
    let sales = store.contact_histories("t1", "sales", &contacts, at(-30)).await.unwrap();
    assert_eq!(sales[y].sticky_to.as_deref(), Some("c"));

    // First contacts: those the number started, in the period.
    store.touch_conversation("t1", "b", y, StartedBy::Out, at(-1)).await.unwrap();
    store.touch_conversation("t1", "b", z, StartedBy::In, at(-1)).await.unwrap();
    assert_eq!(store.first_contacts_since("b", at(-5)).await.unwrap(), [at(-2), at(-1)]);
    assert_eq!(store.first_contacts_since("b", at(-1)).await.unwrap(), [at(-1)]);
    assert!(store.first_contacts_since("a", at(-50)).await.unwrap() == [at(-10)]);

    // Rows go with their number and with their tenant.
    assert!(store.delete_instance("t1", "b").await.unwrap());
    assert_eq!(store.get_conversation("b", x).await.unwrap(), None);
    assert!(store.delete_tenant("t2").await.unwrap());
    assert_eq!(store.get_conversation("d", x).await.unwrap(), None);
    assert_eq!(h.count("conversations").await, 3);
}

async fn pool_settings_round_trip_and_a_strategy_change_keeps_them(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    with_tenant(s, "t2").await;
    // A pool named only by a number, and `default`, have the defaults.
    let mut a = instance("i1", "t1", "a");
    a.pool = "sales".into();
    s.create_instance(&a).await.unwrap();
    for p in s.list_pools("t1").await.unwrap() {
        assert_eq!(p.settings, PoolSettings::default(), "{}", p.name);
    }
    let quiet = json!({"timezone": "America/Sao_Paulo", "start": "08:00", "end": "20:00",
                       "days": ["mon", "fri"]});
    let settings = PoolSettings {
        sticky: false,
        sticky_window_days: 7,
        prefer_country: true,
        per_contact_per_hour: 0,
        quiet_hours: Some(quiet.clone()),
    };
    let sales = Pool { name: "sales".into(), strategy: Strategy::LeastUsed, settings };
    s.save_pool("t1", &sales).await.unwrap();
    let got = s.list_pools("t1").await.unwrap();
    assert_eq!(got.iter().find(|p| p.name == "sales"), Some(&sales));
    // Changing only the strategy keeps the settings; saving again replaces them all.
    let p = s.put_pool("t1", "sales", Strategy::HealthWeighted).await.unwrap();
    assert_eq!(p.strategy, Strategy::HealthWeighted);
    assert_eq!(p.settings, sales.settings);
    let mut cleared = sales.clone();
    cleared.settings.quiet_hours = None;
    cleared.settings.sticky = true;
    s.save_pool("t1", &cleared).await.unwrap();
    let got = s.list_pools("t1").await.unwrap();
    assert_eq!(got.iter().find(|p| p.name == "sales"), Some(&cleared));
    // A pool created by a strategy alone gets the defaults; other tenants see nothing.
    let fresh = s.put_pool("t1", "fresh", Strategy::RoundRobin).await.unwrap();
    assert_eq!(fresh.settings, PoolSettings::default());
    assert!(s
        .list_pools("t2")
        .await
        .unwrap()
        .iter()
        .all(|p| p.settings == PoolSettings::default()));
    // Deleting the tenant takes its pools along.
    s.delete_tenant("t1").await.unwrap();
    assert_eq!(s.list_pools("t1").await.unwrap().len(), 1, "only the implied default");
}

async fn a_numbers_quiet_hours_and_rewarm_start_round_trip(h: &Harness) {
    let s = &*h.s;
    with_tenant(s, "t1").await;
    let quiet = json!({"timezone": "Europe/Lisbon", "start": "22:00", "end": "06:00"});
    let mut a = instance("i1", "t1", "a");
    a.quiet_hours = Some(quiet.clone());
    s.create_instance(&a).await.unwrap();
    s.create_instance(&instance("i2", "t1", "b")).await.unwrap();
    let got = s.get_instance("t1", "i1").await.unwrap().unwrap();
    assert_eq!(got.quiet_hours, Some(quiet));
    assert_eq!(got.rewarm_from, None);
    // Settings replace the quiet hours (None: the pool's again).
    let mut changed = got.clone();
    changed.quiet_hours = None;
    assert!(s.update_instance_settings(&changed).await.unwrap());
    assert_eq!(s.get_instance("t1", "i1").await.unwrap().unwrap().quiet_hours, None);
    // The re-warm start is set and cleared on its own, at the store's precision.
    let from = now_millis() - Duration::hours(5);
    assert!(s.set_rewarm_from("i1", Some(from)).await.unwrap());
    let got = s.get_instance_by_id("i1").await.unwrap().unwrap();
    assert_eq!(got.rewarm_from, Some(from));
    assert_eq!(s.get_instance("t1", "i2").await.unwrap().unwrap().rewarm_from, None);
    // A settings change leaves it alone.
    assert!(s.update_instance_settings(&got).await.unwrap());
    assert_eq!(s.get_instance_by_id("i1").await.unwrap().unwrap().rewarm_from, Some(from));
    assert!(s.set_rewarm_from("i1", None).await.unwrap());
    assert_eq!(s.get_instance_by_id("i1").await.unwrap().unwrap().rewarm_from, None);
    assert!(!s.set_rewarm_from("nope", Some(from)).await.unwrap());
}

fn sample(tenant: &str, instance: &str, sends: u64, health: Option<u8>) -> NumberSample {
    NumberSample { tenant_id: tenant.into(), instance_id: instance.into(), sends, health }
}

fn pool_sample(tenant: &str, pool: &str, queue_depth: u64) -> PoolSample {
    PoolSample { tenant_id: tenant.into(), pool: pool.into(), queue_depth }
}

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

async fn series_samples_merge_per_bucket_and_read_per_tenant_in_steps(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    with_tenant(store, "t2").await;
    let tiers = [60, 3600];
    // Two samples in 10:00, one in 10:01, one in 11:30 (minute and hour tiers).
    store
        .record_samples(
            at("2026-03-04T10:00:10Z"),
            &tiers,
            &[sample("t1", "a", 2, Some(90)), sample("t1", "b", 1, Some(80))],
            &[pool_sample("t1", "default", 4)],
        )
        .await
        .unwrap();
    store
        .record_samples(
            at("2026-03-04T10:00:50Z"),
            &tiers,
            // A number sampled twice in one batch (sends handed over, then held) merges.
            &[
                sample("t1", "a", 3, Some(70)),
                sample("t1", "a", 1, None),
                sample("t2", "a2", 9, Some(10)),
            ],
            &[pool_sample("t1", "default", 2), pool_sample("t2", "default", 50)],
        )
        .await
        .unwrap();
    store
        .record_samples(
            at("2026-03-04T10:01:05Z"),
            &tiers,
            &[sample("t1", "a", 4, None)],
            &[pool_sample("t1", "default", 7)],
        )
        .await
        .unwrap();
    store
        .record_samples(
            at("2026-03-04T11:30:00Z"),
            &tiers,
            &[sample("t1", "a", 5, Some(95))],
            &[pool_sample("t1", "default", 0)],
        )
        .await
        .unwrap();
    // Nothing to record is no error.
    store.record_samples(at("2026-03-04T11:30:00Z"), &tiers, &[], &[]).await.unwrap();

    let p = |i: &str, t: &str, sends, health| NumberPoint {
        instance_id: i.into(),
        at: at(t),
        sends,
        health,
    };
    let day = SeriesRange {
        tier_secs: 60,
        step_secs: 60,
        from: at("2026-03-04T00:00:00Z"),
        to: at("2026-03-05T00:00:00Z"),
    };
    assert_eq!(
        store.number_series("t1", &day, None).await.unwrap(),
        vec![
            p("a", "2026-03-04T10:00:00Z", 6, Some(70)),
            p("a", "2026-03-04T10:01:00Z", 4, None),
            p("a", "2026-03-04T11:30:00Z", 5, Some(95)),
            p("b", "2026-03-04T10:00:00Z", 1, Some(80)),
        ]
    );
    // Hourly, from the hour tier and from the minute tier grouped: the same sums.
    let hourly = vec![
        p("a", "2026-03-04T10:00:00Z", 10, Some(70)),
        p("a", "2026-03-04T11:00:00Z", 5, Some(95)),
    ];
    let hours = SeriesRange { tier_secs: 3600, step_secs: 3600, ..day };
    assert_eq!(store.number_series("t1", &hours, Some("a")).await.unwrap(), hourly);
    let grouped = SeriesRange { tier_secs: 60, step_secs: 3600, ..day };
    assert_eq!(store.number_series("t1", &grouped, Some("a")).await.unwrap(), hourly);
    // The range is [from, to).
    let narrow =
        SeriesRange { from: at("2026-03-04T10:01:00Z"), to: at("2026-03-04T11:30:00Z"), ..day };
    assert_eq!(
        store.number_series("t1", &narrow, None).await.unwrap(),
        vec![p("a", "2026-03-04T10:01:00Z", 4, None)]
    );
    // Another tenant's rows never show; an id of theirs gives nothing.
    assert_eq!(
        store.number_series("t2", &day, None).await.unwrap(),
        vec![p("a2", "2026-03-04T10:00:00Z", 9, Some(10))]
    );
    assert_eq!(store.number_series("t1", &day, Some("a2")).await.unwrap(), vec![]);

    let pp = |t: &str, d| PoolPoint { pool: "default".into(), at: at(t), queue_depth: d };
    assert_eq!(
        store.pool_series("t1", &day, None).await.unwrap(),
        vec![
            pp("2026-03-04T10:00:00Z", 4),
            pp("2026-03-04T10:01:00Z", 7),
            pp("2026-03-04T11:30:00Z", 0)
        ]
    );
    assert_eq!(
        store.pool_series("t1", &hours, Some("default")).await.unwrap(),
        vec![pp("2026-03-04T10:00:00Z", 7), pp("2026-03-04T11:00:00Z", 0)]
    );
    assert_eq!(store.pool_series("t1", &day, Some("other")).await.unwrap(), vec![]);
    assert_eq!(
        store.pool_series("t2", &day, None).await.unwrap(),
        vec![pp("2026-03-04T10:00:00Z", 50)]
    );

    // Many numbers at once: one call, chunked below the bind limits.
    let many: Vec<NumberSample> =
        (0..2500).map(|i| sample("t2", &format!("n{i:05}"), 1, Some(100))).collect();
    store.record_samples(at("2026-03-04T12:00:00Z"), &tiers, &many, &[]).await.unwrap();
    let noon =
        SeriesRange { from: at("2026-03-04T12:00:00Z"), to: at("2026-03-04T12:01:00Z"), ..day };
    assert_eq!(store.number_series("t2", &noon, None).await.unwrap().len(), 2500);
}

async fn series_are_pruned_per_tier_and_go_with_their_tenant(h: &Harness) {
    let store = &*h.s;
    with_tenant(store, "t1").await;
    with_tenant(store, "t2").await;
    let now = now_millis();
    for (tenant, age_hours) in [("t1", 100), ("t1", 1), ("t2", 1)] {
        store
            .record_samples(
                now - Duration::hours(age_hours),
                &[60, 3600],
                &[sample(tenant, "a", 1, Some(50))],
                &[pool_sample(tenant, "default", 1)],
            )
            .await
            .unwrap();
    }
    assert_eq!(h.count("number_series").await, 6);
    assert_eq!(h.count("pool_series").await, 6);
    // The minute tier older than 48 h goes; the hour tier stays.
    assert_eq!(store.prune_series(60, now - Duration::hours(48)).await.unwrap(), 2);
    assert_eq!(store.prune_series(60, now - Duration::hours(48)).await.unwrap(), 0);
    assert_eq!(h.count("number_series").await, 5);
    assert_eq!(store.prune_series(3600, now - Duration::days(30)).await.unwrap(), 0);
    assert_eq!(store.prune_series(3600, now - Duration::hours(48)).await.unwrap(), 2);
    assert_eq!(h.count("pool_series").await, 4);

    assert!(store.delete_tenant("t1").await.unwrap());
    assert_eq!(h.count("number_series").await, 2);
    assert_eq!(h.count("pool_series").await, 2);
    let all = SeriesRange {
        tier_secs: 60,
        step_secs: 60,
        from: now - Duration::days(10),
        to: now + Duration::days(1),
    };
    assert_eq!(store.number_series("t1", &all, None).await.unwrap(), vec![]);
    assert_eq!(store.number_series("t2", &all, None).await.unwrap().len(), 1);
}
