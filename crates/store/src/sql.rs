//! One implementation of every storage trait over sqlx, shared by SQLite and PostgreSQL:
//! [`SqlStore<DB>`], with [`crate::SqliteStore`] = `SqlStore<Sqlite>` and [`crate::PgStore`]
//! = `SqlStore<Postgres>`. The SQL is written once, with `$N` placeholders (SQLite accepts
//! them too), in one module per trait (`sql/*.rs`).
//!
//! Why this shape rather than `sqlx::Any` or code generic over `sqlx::Database`: `Any` maps
//! every value to a few common types (BYTEA/BOOLEAN/BIGINT would go through its conversions),
//! and sqlx code generic over the database needs a where-clause of `Encode`/`Decode`/`Type`
//! and `Executor` bounds on every impl, because Rust does not imply such bounds from a trait.
//! Here a value to bind is any [`Param`] and a value to read any [`Col`]: two blanket traits
//! whose supertraits name both concrete databases, so the bounds are implied and each value
//! keeps its native type on each side. The few calls that touch a statement (bind, run,
//! read a column) and the statements that really differ (group commit and the write gate on
//! SQLite; advisory-locked event appends and `NOTIFY` on PostgreSQL) are the per-database
//! [`Backend`] impls in `sqlite.rs` and `postgres.rs`.

use std::fmt::Debug;
use std::future::Future;

use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Postgres, Sqlite};

use crate::time::from_millis;
use crate::{DeliveryAttempt, Event, InboundRecord, Result, Sealer};
use crate::{Store, StoreError};

mod alerts;
mod campaigns;
mod chats;
mod contacts;
mod conversations;
pub(crate) mod events;
mod inbound;
mod instances;
pub(crate) mod message_writer;
pub(crate) mod messages;
pub(crate) mod meta;
mod pools;
mod series;
mod sessions;
mod tenants;
pub(crate) mod webhooks;

pub(crate) use inbound::{inbound_from_row, insert_inbound, INBOUND_COLUMNS};
pub(crate) use instances::INSTANCE_COLUMNS;
pub(crate) use messages::{message_from_row, MESSAGE_COLUMNS};
#[cfg(test)]
pub(crate) use sessions::session_aad;
pub(crate) use sessions::{apply_sealed_writes, SealedWrites};

/// The store on one database. Cloning is cheap and shares the connection pool.
pub struct SqlStore<DB: Backend> {
    pub(crate) pool: sqlx::Pool<DB>,
    pub(crate) sealer: Sealer,
    /// What only this database's store has (see [`Backend::Parts`]).
    pub(crate) parts: DB::Parts,
}

// By hand: a derive would ask `DB` itself to be `Clone` and `Debug`.
impl<DB: Backend> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        SqlStore { pool: self.pool.clone(), sealer: self.sealer.clone(), parts: self.parts.clone() }
    }
}

impl<DB: Backend> Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").field("pool", &self.pool).field("parts", &self.parts).finish()
    }
}

/// A statement with its bound values, as sqlx builds it for `DB`.
pub type RawQuery<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// A value that binds to a statement of either database, in its native type there.
pub trait Param<'q>:
    sqlx::Encode<'q, Sqlite>
    + sqlx::Type<Sqlite>
    + sqlx::Encode<'q, Postgres>
    + sqlx::Type<Postgres>
    + Send
    + 'q
{
}
impl<'q, T> Param<'q> for T where
    T: sqlx::Encode<'q, Sqlite>
        + sqlx::Type<Sqlite>
        + sqlx::Encode<'q, Postgres>
        + sqlx::Type<Postgres>
        + Send
        + 'q
{
}

/// A value that a column of either database decodes to.
pub trait Col:
    for<'r> sqlx::Decode<'r, Sqlite>
    + sqlx::Type<Sqlite>
    + for<'r> sqlx::Decode<'r, Postgres>
    + sqlx::Type<Postgres>
{
}
impl<T> Col for T where
    T: for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Postgres>
{
}

/// What each database supplies: the calls that touch a statement, which cannot be written
/// once without naming the database, and the few operations that differ between them.
/// Implemented by `sqlx::Sqlite` (`sqlite.rs`) and `sqlx::Postgres` (`postgres.rs`) only.
pub trait Backend: Database {
    /// The parts of the store only this database has.
    type Parts: Clone + Debug + Send + Sync;
    /// SQL answering one boolean: whether the `meta` table exists yet.
    const HAS_META: &'static str;
    /// Whether the bulk `VALUES` lists number their parameters (`$1, $2, …`, PostgreSQL) or
    /// leave them anonymous (`?`, SQLite). SQLite looks each `$N` up among the names seen so
    /// far while it prepares a statement, so a 512-row insert of 18 columns took about 190 ms
    /// to prepare with `$N` and 1 ms with `?` (every batch size is a new statement).
    const NUMBERED_VALUES: bool;
    /// What makes a text comparison or order follow the bytes (as Rust's `str` order does)
    /// whatever the column's collation: empty on SQLite (its default), `COLLATE "C"` on
    /// PostgreSQL.
    const BYTE_ORDER: &'static str;

    fn bind<'q, P: Param<'q>>(q: RawQuery<'q, Self>, p: P) -> RawQuery<'q, Self>;
    fn execute<'e, 'q: 'e>(
        c: &'e mut Self::Connection,
        q: RawQuery<'q, Self>,
    ) -> BoxFuture<'e, sqlx::Result<u64>>;
    fn fetch_all<'e, 'q: 'e>(
        c: &'e mut Self::Connection,
        q: RawQuery<'q, Self>,
    ) -> BoxFuture<'e, sqlx::Result<Vec<Self::Row>>>;
    fn fetch_optional<'e, 'q: 'e>(
        c: &'e mut Self::Connection,
        q: RawQuery<'q, Self>,
    ) -> BoxFuture<'e, sqlx::Result<Option<Self::Row>>>;
    fn col<T: Col>(row: &Self::Row, name: &str) -> Result<T>;
    fn col_at<T: Col>(row: &Self::Row, index: usize) -> Result<T>;

    /// Holds the SQLite write gate (see `sqlite.rs`) until dropped; nothing on PostgreSQL.
    fn gate(s: &SqlStore<Self>) -> impl Future<Output = Option<Gate<'_>>> + Send;
    /// What the group commit of accepted messages needs besides the pool (PostgreSQL: the
    /// `NOTIFY` channel).
    type WriterCtx: Clone + Send + Sync + 'static;
    /// The group commit of accepted messages of this store (`sql/message_writer.rs`).
    fn message_writer(s: &SqlStore<Self>) -> &message_writer::MessageWriter;
    /// Inserts a batch of accepted messages in `c`, an open transaction, and answers for each
    /// in order: a message refused for a duplicate idempotency key (or id) is `Conflict`
    /// alone, the others are still written. `Err` when the batch cannot be written at all.
    fn insert_accepted<'a>(
        c: &'a mut Self::Connection,
        ctx: &'a Self::WriterCtx,
        batch: &'a [&'a message_writer::Accepted],
    ) -> BoxFuture<'a, Result<Vec<Result<()>>>>;
    /// Appends events with ids in the order given, committed in id order, each with its
    /// dedupe key; an event whose key the log (or an earlier event of the batch) already has
    /// is skipped, its slot `None` (see [`crate::EventLog::append_events_once`]).
    fn append_events<'a>(
        s: &'a SqlStore<Self>,
        events: &'a [events::Appending<'a>],
        inbound: &'a [InboundRecord],
    ) -> impl Future<Output = Result<Vec<Option<Event>>>> + Send + 'a;
    /// Stores a status change of a message (SQLite: by group commit), as
    /// [`crate::MessageStore::update_message`] says.
    fn update_message<'a>(
        s: &'a SqlStore<Self>,
        id: &'a str,
        u: &'a crate::MessageUpdate,
    ) -> impl Future<Output = Result<bool>> + Send + 'a;
    /// Applies one number's sealed session changes atomically and durably (SQLite: by group
    /// commit, many numbers' changes in one transaction), as
    /// [`crate::SessionStore::write_session_values`] says.
    fn write_session(
        s: &SqlStore<Self>,
        sealed: SealedWrites,
    ) -> impl Future<Output = Result<()>> + Send + '_;
    /// Records the outcome of one webhook attempt (SQLite: by group commit).
    fn record_attempt<'a>(
        s: &'a SqlStore<Self>,
        id: &'a str,
        a: &'a DeliveryAttempt,
    ) -> impl Future<Output = Result<()>> + Send + 'a;
}

/// A boxed future: the statement calls return it (a future named by `impl Trait` with these
/// lifetimes trips a known limit of the compiler, rust-lang/rust#100013, in async callers).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The held SQLite write gate.
pub type Gate<'a> = tokio::sync::MutexGuard<'a, ()>;

/// A statement being built: `q::<DB>("… $1 …").bind(x).fetch_all(&mut conn)`.
pub(crate) struct Q<'q, DB: Backend>(RawQuery<'q, DB>);

pub(crate) fn q<DB: Backend>(sql: &str) -> Q<'_, DB> {
    Q(sqlx::query(sql))
}

impl<'q, DB: Backend> Q<'q, DB> {
    pub(crate) fn bind<P: Param<'q>>(self, p: P) -> Self {
        Q(DB::bind(self.0, p))
    }

    /// Runs it; returns how many rows it changed.
    pub(crate) async fn execute(self, c: &mut DB::Connection) -> Result<u64> {
        DB::execute(c, self.0).await.map_err(db)
    }

    /// [`Q::execute`] for a write a unique constraint may refuse: that is `Conflict`, with
    /// `what` saying what already exists (see [`write_err`]).
    pub(crate) async fn write(
        self,
        c: &mut DB::Connection,
        what: impl FnOnce(&str) -> String + Send,
    ) -> Result<u64> {
        DB::execute(c, self.0).await.map_err(|e| write_err(e, what))
    }

    pub(crate) async fn fetch_all(self, c: &mut DB::Connection) -> Result<Vec<DB::Row>> {
        DB::fetch_all(c, self.0).await.map_err(db)
    }

    pub(crate) async fn fetch_optional(self, c: &mut DB::Connection) -> Result<Option<DB::Row>> {
        DB::fetch_optional(c, self.0).await.map_err(db)
    }

    /// The first column of the only row.
    pub(crate) async fn scalar<T: Col>(self, c: &mut DB::Connection) -> Result<T> {
        let row = self.fetch_optional(c).await?;
        let row = row.ok_or_else(|| StoreError::Database("a query returned no row".into()))?;
        DB::col_at(&row, 0)
    }

    /// The first column of every row.
    pub(crate) async fn scalars<T: Col>(self, c: &mut DB::Connection) -> Result<Vec<T>> {
        self.fetch_all(c).await?.iter().map(|r| DB::col_at(r, 0)).collect()
    }
}

impl<DB: Backend> SqlStore<DB> {
    /// A connection of the pool, for one or more statements outside a transaction.
    pub(crate) async fn conn(&self) -> Result<PoolConnection<DB>> {
        self.pool.acquire().await.map_err(db)
    }

    pub(crate) async fn begin(&self) -> Result<sqlx::Transaction<'static, DB>> {
        self.pool.begin().await.map_err(db)
    }

    /// The sealer this store seals with (its key id names the master key in logs).
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    #[cfg(test)]
    pub(crate) fn raw_pool(&self) -> &sqlx::Pool<DB> {
        &self.pool
    }
}

#[async_trait::async_trait]
impl<DB: Backend> Store for SqlStore<DB> {
    async fn ping(&self) -> Result<()> {
        q::<DB>("SELECT 1").execute(&mut *self.conn().await?).await.map(|_| ())
    }
}

/// `($1, $2, …), (…)` (PostgreSQL) or `(?, ?, …), (…)` (SQLite, see
/// [`Backend::NUMBERED_VALUES`]): the `VALUES` of `rows` rows of `width` values each, bound in
/// order. Only for statements whose other parameters, if any, come after these.
pub(crate) fn values<DB: Backend>(rows: usize, width: usize) -> String {
    let mut s = String::with_capacity(rows * width * 6);
    for r in 0..rows {
        s.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                s.push_str(", ");
            }
            if DB::NUMBERED_VALUES {
                s.push('$');
                s.push_str(&(r * width + c + 1).to_string());
            } else {
                s.push('?');
            }
        }
        s.push(')');
    }
    s
}

/// A stored JID read back parsed; one that no longer parses is a database error (every JID
/// the store holds was parsed before it was written).
pub(crate) fn jid_col(text: String, column: &str) -> Result<bzapper_core::Jid> {
    bzapper_core::Jid::parse(&text)
        .map_err(|e| StoreError::Database(format!("{column} `{text}` is not a JID: {e}")))
}

pub(crate) fn db(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

pub(crate) fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// Maps a unique violation to `Conflict`; `what` gets the violated constraint's name
/// (PostgreSQL) or the message naming its columns (SQLite) and says what already exists.
pub(crate) fn write_err(e: sqlx::Error, what: impl FnOnce(&str) -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(what(d.constraint().unwrap_or(d.message())))
        }
        _ => db(e),
    }
}

pub(crate) fn ts(ms: i64) -> Result<DateTime<Utc>> {
    from_millis(ms).ok_or_else(|| StoreError::Database(format!("timestamp {ms} is out of range")))
}

pub(crate) fn opt_ts(ms: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    ms.map(ts).transpose()
}

/// The stored-milliseconds cut equivalent to `t` for `at < cut`: stored times are whole
/// milliseconds, so an event at 10 ms is older than a cut at 10.5 ms and a cut with a
/// fraction rounds up.
pub(crate) fn cut_millis(t: DateTime<Utc>) -> i64 {
    crate::contacts::cut_millis(t)
}

/// `n` as a count (never negative).
pub(crate) fn count(n: i64) -> u64 {
    n.max(0) as u64
}
