//! The SQLite pieces of the store ([`SqliteStore`] = `SqlStore<Sqlite>`): one database file
//! (WAL journal, full fsync on commit), opened after a master-key check that refuses a wrong
//! key before anything is written; group commit of accepted messages (its batch statement in
//! `sqlite/writers.rs`, the batching shared in `sql/message_writer.rs`) and of attempt
//! outcomes and message status changes (`sqlite/writers.rs`); WAL checkpoints on a connection of
//! their own (`sqlite/checkpoint.rs`); the write gate; event appends that take consecutive row
//! ids.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row, Sqlite};
use tokio::sync::Mutex;

use crate::sql::events::{appended, encode, existing_keys, keep_once, keys_of, Appending};
use crate::sql::message_writer::{Accepted, MessageWriter};
use crate::sql::meta::verify_master_key;
use crate::sql::{
    db, insert_inbound, values, Backend, BoxFuture, Col, Gate, Param, RawQuery, SealedWrites,
    SqlStore,
};
use crate::time::to_millis;
use crate::StoreError;
use crate::{DeliveryAttempt, Event, InboundRecord, MessageUpdate, Result, Sealer};

mod checkpoint;
#[cfg(test)]
mod tests;
mod writers;

/// Connections in the pool of a file database. SQLite allows one writer at a time, so more
/// connections only help concurrent readers; a few are plenty on a single node.
const MAX_CONNECTIONS: u32 = 4;
/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most events in one `INSERT` (5 parameters each; SQLite allows 32,766 per statement).
const EVENTS_PER_INSERT: usize = 1000;
/// Each connection's page cache, in KiB (SQLite's `cache_size`, negative = KiB; its default is
/// 2 MiB). The accept's insert touches a page of every index of `messages`, one of them
/// (`messages_by_chat`, by recipient) at a random place; with 2 MiB those pages were read back
/// from the OS on nearly every insert. A fixed size per connection (the pool's four and the
/// checkpointer's: at most 40 MiB in all, filled as pages are read), so memory does not follow
/// the backlog.
const CACHE_KIB: i64 = 8 * 1024;
/// The WAL file is truncated to this size when SQLite restarts it (see `sqlite/checkpoint.rs`),
/// so a burst does not leave a large file behind.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The store on one SQLite database. Cloning is cheap and shares the connection pool.
pub type SqliteStore = SqlStore<Sqlite>;

/// What only the SQLite store has.
#[derive(Clone, Debug)]
pub struct SqliteParts {
    /// Kept to open a lone connection at close (see [`SqliteStore::close`]).
    options: SqliteConnectOptions,
    in_memory: bool,
    /// Group commit of accepted messages (one batch at a time: SQLite has one writer).
    writer: MessageWriter,
    /// Group commit of webhook attempt outcomes.
    attempts: writers::AttemptWriter,
    /// Group commit of message status changes.
    statuses: writers::StatusWriter,
    /// Group commit of the numbers' session changes.
    sessions: writers::SessionWriter,
    /// Checkpoints the WAL, woken by every commit (`None` for an in-memory database).
    checkpointer: Option<checkpoint::Checkpointer>,
    /// Taken around the event pipeline's write transactions (event appends, delivery rows,
    /// attempt outcomes, received messages, contact checks) and instance state changes, so
    /// that they queue here and each starts the moment the previous one ends, rather than
    /// meeting at SQLite's write lock, whose busy handler retries after sleeps of 1, 2, 5,
    /// 10 … ms. The group commit of accepted messages takes it too, and so does the last pass
    /// of a checkpoint that restarts the WAL.
    write_gate: Arc<Mutex<()>>,
}

impl SqlStore<Sqlite> {
    /// Opens (creating if missing) the database at `database_url_or_path`: a URL such as
    /// `sqlite://data/bzapper.db?mode=rwc` or `sqlite:data/bzapper.db`, a bare file path, or
    /// `sqlite::memory:` for a throwaway database. Missing parent directories are created.
    ///
    /// On a database that was created with another master key this returns
    /// [`StoreError::WrongMasterKey`] before running migrations or writing anything.
    ///
    /// Durability: WAL journal with `synchronous=FULL`, so every commit is fsynced to the WAL
    /// before it returns; an accepted message survives a power cut, not only a process crash
    /// (with `NORMAL`, the last commits before a power cut may be lost).
    pub async fn open(database_url_or_path: &str, sealer: Sealer) -> Result<SqliteStore> {
        let in_memory = database_url_or_path.contains(":memory:")
            || database_url_or_path.contains("mode=memory");
        let options = if database_url_or_path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(database_url_or_path).map_err(|e| {
                StoreError::Database(format!("bad database URL `{database_url_or_path}`: {e}"))
            })?
        } else {
            SqliteConnectOptions::new().filename(database_url_or_path)
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("cache_size", (-CACHE_KIB).to_string())
            .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string());
        // No connection of a file database checkpoints at its commits: the checkpointer does,
        // on its own connection (see `sqlite/checkpoint.rs`).
        let options = if in_memory { options } else { options.pragma("wal_autocheckpoint", "0") };
        if !in_memory {
            create_parent_dir(options.get_filename())?;
        }
        let cannot_open = |e: sqlx::Error| {
            StoreError::Database(format!("cannot open the database `{database_url_or_path}`: {e}"))
        };

        // The key is checked first, on a lone connection, so that a wrong key changes nothing:
        // no migration, no write, and (being the only connection, its close folds and removes
        // the -wal and -shm files) the directory is left as it was found.
        let mut conn = options.connect().await.map_err(cannot_open)?;
        let verdict = verify_master_key::<Sqlite>(&mut conn, &sealer).await;
        if let Err(e) = conn.close().await {
            tracing::warn!(error = %e, "closing the key-check connection failed");
        }
        verdict?;

        let pool_options = if in_memory {
            // An in-memory database lives as long as its last connection: keep exactly one,
            // forever (several would also trip over shared-cache table locks).
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            // No ping before handing out a connection: a connection to a local file does not
            // go stale, and the ping is a round trip to the connection's thread per query.
            SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS).test_before_acquire(false)
        };
        let write_gate = Arc::new(Mutex::new(()));
        let checkpointer = (!in_memory)
            .then(|| checkpoint::Checkpointer::spawn(options.clone(), write_gate.clone()));
        let pool_options = match &checkpointer {
            // Every commit of the pool's connections wakes the checkpointer.
            Some(c) => {
                let waker = Arc::new(c.waker());
                pool_options.after_connect(move |conn, _| {
                    let waker = waker.clone();
                    Box::pin(async move {
                        conn.lock_handle().await?.set_commit_hook(move || {
                            waker();
                            true // commit (false would turn it into a rollback)
                        });
                        Ok(())
                    })
                })
            }
            None => pool_options,
        };
        let pool = pool_options.connect_with(options.clone()).await.map_err(cannot_open)?;
        let parts = SqliteParts {
            writer: MessageWriter::spawn::<Sqlite>(pool.clone(), (), 1, Some(write_gate.clone())),
            attempts: writers::AttemptWriter::spawn(pool.clone(), write_gate.clone()),
            statuses: writers::StatusWriter::spawn(pool.clone(), write_gate.clone()),
            sessions: writers::SessionWriter::spawn(pool.clone(), write_gate.clone()),
            checkpointer,
            options,
            in_memory,
            write_gate,
        };
        let store = SqlStore { pool, sealer, parts };
        let ready = match sqlx::migrate!("./migrations/sqlite").run(&store.pool).await {
            Ok(()) => match store.init_master_key_check().await {
                Ok(()) => store.seal_clear_alert_urls().await.map(|_| ()),
                Err(e) => Err(e),
            },
            Err(e) => Err(StoreError::Database(format!("database migrations failed: {e}"))),
        };
        if let Err(e) = ready {
            store.close().await;
            return Err(e);
        }
        Ok(store)
    }

    /// Folds the WAL into the main file and closes every connection, returning once they are
    /// all closed. Call it at shutdown; the store must not be used afterwards. After it, the
    /// database file alone holds all the data (safe to copy as a backup).
    pub async fn close(&self) {
        // Best effort: on failure the WAL stays and SQLite replays it at the next open.
        // PASSIVE never waits for other connections (background tasks may still be reading);
        // the last connection to close checkpoints the rest and removes the WAL.
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&self.pool).await {
            tracing::warn!(error = %e, "WAL checkpoint at close failed");
        }
        if let Some(c) = &self.parts.checkpointer {
            c.close().await;
        }
        close_pool(&self.pool).await;
        if self.parts.in_memory {
            return;
        }
        // The pool's connections may close at the same moment, and then none of them sees
        // itself as the last one, which is what deletes the -wal and -shm files. One more lone
        // connection, opened and closed after them, settles the files.
        match self.parts.options.connect().await {
            Ok(conn) => {
                if let Err(e) = conn.close().await {
                    tracing::warn!(error = %e, "closing the database failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "reopening the database to settle it failed"),
        }
    }
}

/// Closes every connection of the pool and returns only once SQLite has closed them all.
///
/// `Pool::close` alone can return while a connection that was just used is still on its way
/// back to the pool (sqlx hands it back on a spawned task); that connection is closed a moment
/// later. [`SqliteStore::close`] settles the files with one more connection after these, which
/// only works once they are really gone, so wait for the pool to be empty.
async fn close_pool(pool: &SqlitePool) {
    pool.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pool.size() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn create_parent_dir(file: &Path) -> Result<()> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => std::fs::create_dir_all(dir)
            .map_err(|e| {
                StoreError::Database(format!("cannot create the directory {}: {e}", dir.display()))
            }),
        _ => Ok(()),
    }
}

/// Appends on SQLite: under the write gate, in one transaction with the received messages
/// they report. The rows of one INSERT take consecutive ids in the order of its VALUES (the
/// transaction holds the write lock, and AUTOINCREMENT never reuses an id), so the last id
/// tells every id, and ids commit in order. Duplicates by dedupe key are left out before the
/// INSERT (read in the same transaction, under the gate), so no row of it is ever skipped.
async fn append_events(
    s: &SqliteStore,
    events: &[Appending<'_>],
    inbound: &[InboundRecord],
) -> Result<Vec<Option<Event>>> {
    if events.is_empty() && inbound.is_empty() {
        return Ok(Vec::new());
    }
    let _gate = s.parts.write_gate.lock().await;
    let mut tx = s.begin().await?;
    insert_inbound::<Sqlite>(&mut tx, inbound).await?;
    let keys = keys_of(events);
    let existing = if keys.is_empty() {
        Default::default()
    } else {
        existing_keys::<Sqlite>(&mut tx, &keys).await?
    };
    let keep = keep_once(events, &existing);
    let encoded = encode(events.iter().zip(&keep).filter(|(_, k)| **k).map(|(e, _)| *e))?;
    let mut written = Vec::with_capacity(encoded.len());
    for chunk in encoded.chunks(EVENTS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO events (tenant_id, instance_id, kind, data, created_at, dedupe_key) \
             VALUES {}",
            values::<Sqlite>(chunk.len(), 6)
        );
        let mut query = sqlx::query::<Sqlite>(&sql);
        for ((e, key), data) in chunk {
            query = query
                .bind(&e.tenant_id)
                .bind(&e.instance_id)
                .bind(&e.kind)
                .bind(data.as_str())
                .bind(to_millis(e.created_at))
                .bind(*key);
        }
        let done = query.execute(&mut *tx).await.map_err(db)?;
        let n = chunk.len() as i64;
        if done.rows_affected() != n as u64 {
            return Err(StoreError::Database(format!(
                "appending {n} events inserted {} rows",
                done.rows_affected()
            )));
        }
        let first = done.last_insert_rowid() - n + 1;
        written
            .extend(chunk.iter().enumerate().map(|(i, ((e, _), _))| appended(e, first + i as i64)));
    }
    tx.commit().await.map_err(db)?;
    let mut written = written.into_iter();
    Ok(keep.into_iter().map(|k| if k { written.next() } else { None }).collect())
}

impl Backend for Sqlite {
    type Parts = SqliteParts;
    const HAS_META: &'static str =
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')";
    const BYTE_ORDER: &'static str = "";
    const NUMBERED_VALUES: bool = false;

    fn bind<'q, P: Param<'q>>(q: RawQuery<'q, Self>, p: P) -> RawQuery<'q, Self> {
        q.bind(p)
    }

    fn execute<'e, 'q: 'e>(
        c: &'e mut SqliteConnection,
        q: RawQuery<'q, Self>,
    ) -> BoxFuture<'e, sqlx::Result<u64>> {
        Box::pin(async move { Ok(q.execute(c).await?.rows_affected()) })
    }

    fn fetch_all<'e, 'q: 'e>(
        c: &'e mut SqliteConnection,
        q: RawQuery<'q, Self>,
    ) -> BoxFuture<'e, sqlx::Result<Vec<SqliteRow>>> {
        Box::pin(q.fetch_all(c))
    }

    fn fetch_optional<'e, 'q: 'e>(
        c: &'e mut SqliteConnection,
        q: RawQuery<'q, Self>,
    ) -> BoxFuture<'e, sqlx::Result<Option<SqliteRow>>> {
        Box::pin(q.fetch_optional(c))
    }

    fn col<T: Col>(row: &SqliteRow, name: &str) -> Result<T> {
        row.try_get(name).map_err(db)
    }

    fn col_at<T: Col>(row: &SqliteRow, index: usize) -> Result<T> {
        row.try_get(index).map_err(db)
    }

    async fn gate(s: &SqliteStore) -> Option<Gate<'_>> {
        Some(s.parts.write_gate.lock().await)
    }

    type WriterCtx = ();

    fn message_writer(s: &SqliteStore) -> &MessageWriter {
        &s.parts.writer
    }

    fn insert_accepted<'a>(
        c: &'a mut SqliteConnection,
        _: &'a (),
        batch: &'a [&'a Accepted],
    ) -> BoxFuture<'a, Result<Vec<Result<()>>>> {
        Box::pin(writers::insert_accepted(c, batch))
    }

    fn append_events<'a>(
        s: &'a SqliteStore,
        events: &'a [Appending<'a>],
        inbound: &'a [InboundRecord],
    ) -> impl Future<Output = Result<Vec<Option<Event>>>> + Send + 'a {
        append_events(s, events, inbound)
    }

    fn record_attempt<'a>(
        s: &'a SqliteStore,
        id: &'a str,
        a: &'a DeliveryAttempt,
    ) -> impl Future<Output = Result<()>> + Send + 'a {
        s.parts.attempts.record(id.to_string(), a.clone())
    }

    fn update_message<'a>(
        s: &'a SqliteStore,
        id: &'a str,
        u: &'a MessageUpdate,
    ) -> impl Future<Output = Result<bool>> + Send + 'a {
        s.parts.statuses.update(id.to_string(), u.clone())
    }

    fn write_session(
        s: &SqliteStore,
        sealed: SealedWrites,
    ) -> impl Future<Output = Result<()>> + Send + '_ {
        s.parts.sessions.write(sealed)
    }
}
