//! The PostgreSQL pieces of the store ([`PgStore`] = `SqlStore<Postgres>`), for several nodes
//! sharing one database: connecting, migrations (with the renumbering of old histories,
//! `postgres/legacy.rs`), the batch statement of accepted messages' group commit
//! (`postgres/accepted.rs`), event appends serialized by an advisory lock, attempt outcomes
//! that never go back, and [`crate::ClusterStore`] (`postgres/cluster.rs`): leases, claims
//! and `NOTIFY` signals between the nodes. Every event append signals
//! [`crate::Signal::Events`] on commit.

use std::future::Future;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row};

use crate::sql::events::{appended, encode, existing_keys, keep_once, keys_of, Appending};
use crate::sql::message_writer::{Accepted, MessageWriter};
use crate::sql::messages::update_message_row;
use crate::sql::meta::verify_master_key;
use crate::sql::webhooks::update_attempt;
use crate::sql::{
    apply_sealed_writes, db, insert_inbound, Backend, BoxFuture, Col, Gate, Param, RawQuery,
    SealedWrites, SqlStore,
};
use crate::time::to_millis;
use crate::StoreError;
use crate::{DeliveryAttempt, Event, InboundRecord, MessageUpdate, Result, Sealer};

mod accepted;
mod cluster;
#[cfg(test)]
mod cluster_tests;
mod legacy;
#[cfg(test)]
mod tests;

/// Connections in the pool of one node.
const MAX_CONNECTIONS: u32 = 10;
/// Batches of accepted messages committing at once (each on its own connection): while one
/// waits for its WAL flush the next is written, and PostgreSQL flushes them together.
const ACCEPT_BATCHES_IN_FLIGHT: usize = 3;

/// First key of the advisory lock that serializes event appends (the second is the hash of
/// the schema, so that stores in different schemas of one database do not wait on each
/// other). Any constant works; this one spells "bzev".
const EVENT_APPEND_LOCK: i32 = 0x627a_6576;

/// The store on one PostgreSQL database (schema: the connection's `search_path`). Cloning is
/// cheap and shares the connection pool.
pub type PgStore = SqlStore<Postgres>;

/// What only the PostgreSQL store has.
#[derive(Clone, Debug)]
pub struct PgParts {
    /// The `NOTIFY` channel of this schema's nodes.
    channel: String,
    /// Group commit of accepted messages.
    writer: MessageWriter,
}

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://user@host:port/db`, any libpq-style parameter sqlx
    /// understands, such as `options=-c search_path=bzapper`), refuses a database sealed with
    /// another master key before changing anything, then runs the migrations.
    pub async fn open(url: &str, sealer: Sealer) -> Result<PgStore> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("bad database URL: {e}")))?;
        Self::open_with(options, sealer).await
    }

    /// [`PgStore::open`] with options built in code.
    pub async fn open_with(options: PgConnectOptions, sealer: Sealer) -> Result<PgStore> {
        // No JIT: every statement here is short, and the claim statement on a big queue is
        // estimated costly enough that PostgreSQL compiled it each time, 2.3 s of its 2.5 s
        // on a queue of 600,000 sends (BENCHMARKS.md, issue 21).
        let options = options.options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Database(format!("cannot connect to the database: {e}")))?;
        let schema: String =
            match sqlx::query_scalar("SELECT current_schema()").fetch_one(&pool).await {
                Ok(s) => s,
                Err(e) => {
                    pool.close().await;
                    return Err(db(e));
                }
            };
        let channel = format!("bzapper:{schema}");
        let writer = MessageWriter::spawn::<Postgres>(
            pool.clone(),
            channel.clone(),
            ACCEPT_BATCHES_IN_FLIGHT,
            // No gate: PostgreSQL's own locks serve concurrent writers.
            None,
        );
        let store = PgStore { pool, sealer, parts: PgParts { channel, writer } };
        let ready = async {
            // Checked before the migrations, so that a wrong key changes nothing.
            verify_master_key::<Postgres>(&mut *store.conn().await?, &store.sealer).await?;
            legacy::renumber(&store.pool).await?;
            MIGRATOR
                .run(&store.pool)
                .await
                .map_err(|e| StoreError::Database(format!("database migrations failed: {e}")))?;
            store.init_master_key_check().await?;
            store.seal_clear_alert_urls().await.map(|_| ())
        };
        if let Err(e) = ready.await {
            store.close().await;
            return Err(e);
        }
        Ok(store)
    }

    /// Closes every connection. The store must not be used afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The migrations of `migrations/postgres`, embedded.
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Why appends are serialized: a sequence hands out ids at `nextval`, not at commit. With
/// two concurrent writers, the one holding id 11 may commit before the one holding id 10,
/// and a reader that saw 11 and moved its cursor past 10 would never see 10 (SSE resumes
/// and the webhook fan-out page with `id > cursor`). The two known cures are (a) readers
/// only trust ids below the oldest in-flight transaction's, or (b) one appender at a time.
/// This store does (b), the simple safe one: each append transaction first takes a
/// transaction-scoped advisory lock (released at commit or rollback), so commit order is
/// id order and `id > cursor` readers never skip an event. The cost is one appender at a
/// time per schema, across every node; appends are batched, so that is rarely the limit.
async fn append_events(
    s: &PgStore,
    events: &[Appending<'_>],
    inbound: &[InboundRecord],
) -> Result<Vec<Option<Event>>> {
    if events.is_empty() {
        insert_inbound::<Postgres>(&mut *s.conn().await?, inbound).await?;
        return Ok(Vec::new());
    }
    let mut tx = s.begin().await?;
    // Before the lock: the index rows need no ordering, so they take none of its time.
    insert_inbound::<Postgres>(&mut tx, inbound).await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
        .bind(EVENT_APPEND_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    // Under the lock no other append can add a key, so what this reads stays true until
    // the commit (the unique index would refuse a duplicate anyway).
    let keys = keys_of(events);
    let existing = if keys.is_empty() {
        Default::default()
    } else {
        existing_keys::<Postgres>(&mut tx, &keys).await?
    };
    let keep = keep_once(events, &existing);
    let encoded = encode(events.iter().zip(&keep).filter(|(_, k)| **k).map(|(e, _)| *e))?;
    let n = encoded.len();
    if n == 0 {
        tx.commit().await.map_err(db)?;
        return Ok(keep.iter().map(|_| None).collect());
    }
    let mut tenant_ids = Vec::with_capacity(n);
    let mut instance_ids = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut datas = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut dedupe_keys = Vec::with_capacity(n);
    for ((e, key), data) in &encoded {
        tenant_ids.push(e.tenant_id.as_str());
        instance_ids.push(e.instance_id.as_deref());
        kinds.push(e.kind.as_str());
        datas.push(data.as_str());
        created.push(to_millis(e.created_at));
        dedupe_keys.push(*key);
    }
    // The ids are taken first and given out in order, so that they increase in the order
    // of `events` whatever order the INSERT processes its rows in. Under the lock no
    // other append takes ids meanwhile, so they are also consecutive.
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "SELECT nextval(pg_get_serial_sequence('events', 'id')) FROM generate_series(1, $1)",
    )
    .bind(n as i64)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    ids.sort_unstable();
    if ids.len() != n {
        return Err(StoreError::Database(format!("asked for {n} event ids, got {}", ids.len())));
    }
    sqlx::query(
        "INSERT INTO events (id, tenant_id, instance_id, kind, data, created_at, dedupe_key) \
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::int8[], $7::text[])",
    )
    .bind(&ids)
    .bind(&tenant_ids)
    .bind(&instance_ids)
    .bind(&kinds)
    .bind(&datas)
    .bind(&created)
    .bind(&dedupe_keys)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    // Wakes the other nodes' event feeds when (and only if) the batch commits.
    s.notify_in(&mut tx, crate::Signal::Events).await?;
    tx.commit().await.map_err(db)?;
    let mut written = encoded.iter().zip(ids).map(|(((e, _), _), id)| appended(e, id));
    Ok(keep.into_iter().map(|k| if k { written.next() } else { None }).collect())
}

impl Backend for Postgres {
    type Parts = PgParts;
    const HAS_META: &'static str = "SELECT to_regclass('meta') IS NOT NULL";
    const BYTE_ORDER: &'static str = "COLLATE \"C\"";
    const NUMBERED_VALUES: bool = true;

    fn bind<'q, P: Param<'q>>(q: RawQuery<'q, Self>, p: P) -> RawQuery<'q, Self> {
        q.bind(p)
    }

    fn execute<'e, 'q: 'e>(
        c: &'e mut PgConnection,
        q: RawQuery<'q, Self>,
    ) -> BoxFuture<'e, sqlx::Result<u64>> {
        Box::pin(async move { Ok(q.execute(c).await?.rows_affected()) })
    }

    fn fetch_all<'e, 'q: 'e>(
        c: &'e mut PgConnection,
        q: RawQuery<'q, Self>,
    ) -> BoxFuture<'e, sqlx::Result<Vec<PgRow>>> {
        Box::pin(q.fetch_all(c))
    }

    fn fetch_optional<'e, 'q: 'e>(
        c: &'e mut PgConnection,
        q: RawQuery<'q, Self>,
    ) -> BoxFuture<'e, sqlx::Result<Option<PgRow>>> {
        Box::pin(q.fetch_optional(c))
    }

    fn col<T: Col>(row: &PgRow, name: &str) -> Result<T> {
        row.try_get(name).map_err(db)
    }

    fn col_at<T: Col>(row: &PgRow, index: usize) -> Result<T> {
        row.try_get(index).map_err(db)
    }

    /// No gate: PostgreSQL's own locks and group commit serve concurrent writers.
    async fn gate(_: &PgStore) -> Option<Gate<'_>> {
        None
    }

    /// The `NOTIFY` channel, for the batch's signal.
    type WriterCtx = String;

    fn message_writer(s: &PgStore) -> &MessageWriter {
        &s.parts.writer
    }

    fn insert_accepted<'a>(
        c: &'a mut PgConnection,
        channel: &'a String,
        batch: &'a [&'a Accepted],
    ) -> BoxFuture<'a, Result<Vec<Result<()>>>> {
        Box::pin(accepted::insert_accepted(c, channel, batch))
    }

    fn append_events<'a>(
        s: &'a PgStore,
        events: &'a [Appending<'a>],
        inbound: &'a [InboundRecord],
    ) -> impl Future<Output = Result<Vec<Option<Event>>>> + Send + 'a {
        append_events(s, events, inbound)
    }

    async fn update_message<'a>(s: &'a PgStore, id: &'a str, u: &'a MessageUpdate) -> Result<bool> {
        // Each on its own connection: PostgreSQL's commits of concurrent writers are flushed
        // together by the server (its own group commit).
        update_message_row::<Postgres>(&mut *s.conn().await?, id, u).await
    }

    async fn write_session(s: &PgStore, sealed: SealedWrites) -> Result<()> {
        // Each number's changes in their own transaction on their own connection: PostgreSQL
        // flushes concurrent commits together itself.
        let mut tx = s.begin().await?;
        apply_sealed_writes::<Postgres>(&mut tx, &sealed).await?;
        tx.commit().await.map_err(db)
    }

    async fn record_attempt<'a>(s: &'a PgStore, id: &'a str, a: &'a DeliveryAttempt) -> Result<()> {
        // Outcomes recorded at once run on separate connections and may commit in any order;
        // `attempts` only grows, so an older attempt's outcome never overwrites a newer one.
        update_attempt::<Postgres>(&mut *s.conn().await?, id, a, true).await
    }
}
