//! Group commit of accepted messages, on both databases: concurrent accepts are written by
//! one writer, as many as are waiting in one transaction with one statement, so one
//! commit (one fsync) covers a whole batch. Each caller still gets its answer only after its
//! row is committed (accepting is persisting), but the accept rate is no longer bounded by
//! one commit per message. How a batch is inserted, and what happens when one of its rows
//! meets a duplicate idempotency key, is the database's piece
//! ([`Backend::insert_accepted`]); the batching is here. Written by hand because sqlx has no
//! batching of its own: a channel, a loop and a transaction.
//!
//! On SQLite the writer takes the in-process write gate around each transaction, as the event
//! log, webhook outcomes and state changes do. Without it the accept's batch met their writes
//! at SQLite's write lock, whose busy handler sleeps 1, 2, 5, 10 … 100 ms between tries: under
//! sustained load a batch could sleep there for tens of milliseconds while the lock had long
//! been free (issue 21). A batch slower than [`SLOW_BATCH`] is logged with its steps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Mutex, Semaphore};

use super::Backend;
use crate::{MessageRecord, Result, StoreError};

/// Most messages committed in one transaction.
const MAX_BATCH: usize = 512;
/// A batch slower than this is logged (at `info`), split into its steps: the wait for the
/// gate, the insert, the commit with its fsync.
const SLOW_BATCH: Duration = Duration::from_millis(50);

/// One accepted message on its way to the database.
#[derive(Debug)]
pub struct Accepted {
    pub(crate) message: MessageRecord,
    /// The node that takes the send into its scheduler, stored with the row (PostgreSQL: a
    /// claim in the same statement, so accepting and claiming cost one commit).
    pub(crate) claim: Option<String>,
    /// Wake the other nodes for it once committed (PostgreSQL: one `NOTIFY` per batch).
    pub(crate) signal: bool,
}

impl Accepted {
    /// A plain insert: no claim, no signal.
    pub(crate) fn plain(message: MessageRecord) -> Self {
        Accepted { message, claim: None, signal: false }
    }
}

type Pending = (Accepted, oneshot::Sender<Result<()>>);

fn closed() -> StoreError {
    StoreError::Database("the store is closed".into())
}

/// The group commit of accepted messages of one store.
#[derive(Debug, Clone)]
pub struct MessageWriter {
    tx: mpsc::Sender<Pending>,
}

impl MessageWriter {
    /// Starts the writer on `pool`. Up to `in_flight` batches commit at once (SQLite: 1, its
    /// single writer; PostgreSQL: a few, so that the next batch is written while one waits
    /// for its WAL flush, and the server's own group commit flushes them together). `gate`,
    /// when given, is held around each batch's transaction (SQLite's write gate).
    pub(crate) fn spawn<DB: Backend>(
        pool: sqlx::Pool<DB>,
        ctx: DB::WriterCtx,
        in_flight: usize,
        gate: Option<Arc<Mutex<()>>>,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(4 * MAX_BATCH);
        let permits = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else { return };
                let mut batch = Vec::with_capacity(MAX_BATCH);
                if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
                    return;
                }
                let (pool, ctx, gate) = (pool.clone(), ctx.clone(), gate.clone());
                tokio::spawn(async move {
                    let started = Instant::now();
                    let held = match &gate {
                        Some(g) => Some(g.lock().await),
                        None => None,
                    };
                    let gated = started.elapsed();
                    let (results, steps) = write_batch::<DB>(&pool, &ctx, &batch).await;
                    drop(held);
                    drop(permit);
                    if started.elapsed() > SLOW_BATCH {
                        tracing::info!(
                            messages = batch.len(),
                            gate_ms = gated.as_millis() as u64,
                            insert_ms = steps.insert.as_millis() as u64,
                            commit_ms = steps.commit.as_millis() as u64,
                            "slow group commit of accepted messages"
                        );
                    }
                    for ((_, reply), r) in batch.into_iter().zip(results) {
                        let _ = reply.send(r);
                    }
                });
            }
        });
        MessageWriter { tx }
    }

    /// Stores `a` with the next batch; returns once that batch is committed.
    pub(crate) async fn insert(&self, a: Accepted) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((a, reply)).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

/// How long a batch's steps took (the slow-batch log line).
#[derive(Default)]
struct Steps {
    insert: Duration,
    commit: Duration,
}

/// Writes a batch in one transaction: one answer per message, in order. A message refused
/// for a duplicate idempotency key fails alone (`Conflict`); anything else fails the batch.
async fn write_batch<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    ctx: &DB::WriterCtx,
    batch: &[Pending],
) -> (Vec<Result<()>>, Steps) {
    let mut steps = Steps::default();
    let fail_all = |why: String| {
        batch.iter().map(|_| Err(StoreError::Database(why.clone()))).collect::<Vec<_>>()
    };
    let started = Instant::now();
    let mut tx = match pool.begin().await {
        Ok(t) => t,
        Err(e) => return (fail_all(e.to_string()), steps),
    };
    let all: Vec<&Accepted> = batch.iter().map(|(a, _)| a).collect();
    let results = match DB::insert_accepted(&mut tx, ctx, &all).await {
        Ok(r) => r,
        Err(StoreError::Database(why)) => return (fail_all(why), steps),
        Err(e) => return (fail_all(e.to_string()), steps),
    };
    steps.insert = started.elapsed();
    let committed = tx.commit().await;
    steps.commit = started.elapsed() - steps.insert;
    match committed {
        Ok(()) => (results, steps),
        Err(e) => (fail_all(e.to_string()), steps),
    }
}
