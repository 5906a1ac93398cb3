//! Group commit on SQLite: accepted messages and webhook attempt outcomes from concurrent
//! callers are written by one task each, as many as are waiting in one transaction, so one
//! fsync covers a whole batch. Each caller still gets its answer only after its row is
//! committed (accepting is persisting; the delivery worker must not forget a delivery the
//! receiver accepted), but the write rate is no longer bounded by one fsync per row. Written
//! by hand because sqlx has no batching of its own: a channel, a loop and a transaction.
//!
//! Both take the in-process write gate around their transaction. Without it the accept's
//! batch met the scheduler's and the event log's writes at SQLite's write lock, whose busy
//! handler sleeps 1, 2, 5, 10 … 100 ms between tries: under sustained load a batch could
//! sleep there for tens of milliseconds while the lock had long been free (issue 21).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::sql::messages::insert_messages;
use crate::sql::webhooks::update_attempt;
use crate::sql::{q, values};
use crate::time::to_millis;
use crate::{DeliveryAttempt, MessageRecord, Result, StoreError};

/// Most messages committed in one transaction.
const MAX_BATCH: usize = 512;
/// Most attempt outcomes committed in one transaction.
const MAX_OUTCOMES: usize = 512;
/// A batch of accepted messages slower than this is logged (at `info`), split into its
/// steps: the wait for the gate, the insert, the commit with its fsync.
const SLOW_BATCH: Duration = Duration::from_millis(50);

type Pending = (MessageRecord, oneshot::Sender<Result<()>>);
type PendingOutcome = (String, DeliveryAttempt, oneshot::Sender<Result<()>>);

fn closed() -> StoreError {
    StoreError::Database("the store is closed".into())
}

/// The group commit of accepted messages.
#[derive(Debug, Clone)]
pub(crate) struct MessageWriter {
    tx: mpsc::Sender<Pending>,
}

impl MessageWriter {
    pub(crate) fn spawn(pool: SqlitePool, write_gate: Arc<Mutex<()>>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let started = Instant::now();
                let results = {
                    let _gate = write_gate.lock().await;
                    let gated = started.elapsed();
                    let (results, steps) = write_batch(&pool, &batch).await;
                    if started.elapsed() > SLOW_BATCH {
                        tracing::info!(
                            messages = batch.len(),
                            gate_ms = gated.as_millis() as u64,
                            insert_ms = steps.insert.as_millis() as u64,
                            commit_ms = steps.commit.as_millis() as u64,
                            "slow group commit of accepted messages"
                        );
                    }
                    results
                };
                for ((_, reply), r) in batch.drain(..).zip(results) {
                    let _ = reply.send(r);
                }
            }
        });
        MessageWriter { tx }
    }

    pub(crate) async fn insert(&self, m: MessageRecord) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((m, reply)).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

/// How long a batch's steps took (the slow-batch log line).
#[derive(Default)]
struct Steps {
    insert: Duration,
    commit: Duration,
}

/// Writes a batch in one transaction. A row refused by a constraint (a duplicate idempotency
/// key) fails alone: SQLite backs out only that statement and the transaction goes on.
async fn write_batch(pool: &SqlitePool, batch: &[Pending]) -> (Vec<Result<()>>, Steps) {
    let mut steps = Steps::default();
    let fail_all = |e: &sqlx::Error| {
        batch.iter().map(|_| Err(StoreError::Database(e.to_string()))).collect::<Vec<_>>()
    };
    let started = Instant::now();
    let mut tx = match pool.begin().await {
        Ok(t) => t,
        Err(e) => return (fail_all(&e), steps),
    };
    // One statement for the whole batch (one round trip to SQLite's thread); when it is
    // refused (a duplicate idempotency key in the batch), row by row so that only the
    // duplicate fails.
    let all: Vec<&MessageRecord> = batch.iter().map(|(m, _)| m).collect();
    let results = match insert_messages::<Sqlite>(&mut tx, &all).await {
        Ok(()) => batch.iter().map(|_| Ok(())).collect(),
        Err(_) => {
            let mut results = Vec::with_capacity(batch.len());
            for m in all {
                results.push(insert_messages::<Sqlite>(&mut tx, &[m]).await);
            }
            results
        }
    };
    steps.insert = started.elapsed();
    let committed = tx.commit().await;
    steps.commit = started.elapsed() - steps.insert;
    match committed {
        Ok(()) => (results, steps),
        Err(e) => (fail_all(&e), steps),
    }
}

/// The group commit of webhook attempt outcomes; it takes the write gate around each batch.
#[derive(Debug, Clone)]
pub(crate) struct AttemptWriter {
    tx: mpsc::Sender<PendingOutcome>,
}

impl AttemptWriter {
    pub(crate) fn spawn(pool: SqlitePool, write_gate: Arc<Mutex<()>>) -> Self {
        let (tx, mut rx) = mpsc::channel::<PendingOutcome>(4 * MAX_OUTCOMES);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_OUTCOMES);
            while rx.recv_many(&mut batch, MAX_OUTCOMES).await > 0 {
                let result = {
                    let _gate = write_gate.lock().await;
                    write_outcomes(&pool, &batch).await
                };
                for (_, _, reply) in batch.drain(..) {
                    let _ = reply.send(result.as_ref().map(|_| ()).map_err(|e| {
                        StoreError::Database(format!("recording a webhook attempt failed: {e}"))
                    }));
                }
            }
        });
        AttemptWriter { tx }
    }

    pub(crate) async fn record(&self, id: String, attempt: DeliveryAttempt) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((id, attempt, reply)).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

/// Applies a batch of outcomes in one transaction: one `UPDATE … FROM (VALUES …)` when every
/// delivery appears once (the usual case: a delivery has one attempt under way at a time),
/// else row by row in order.
async fn write_outcomes(pool: &SqlitePool, batch: &[PendingOutcome]) -> Result<()> {
    let mut tx = pool.begin().await.map_err(crate::sql::db)?;
    let distinct = batch.iter().map(|(id, _, _)| id.as_str()).collect::<HashSet<_>>().len();
    if distinct == batch.len() {
        let sql = format!(
            "WITH v (id, status, attempts, next_at, last_status, last_error, at) AS (VALUES {}) \
             UPDATE deliveries SET status = v.status, attempts = v.attempts, \
             next_attempt_at = v.next_at, last_status = v.last_status, \
             last_error = v.last_error, updated_at = v.at, \
             delivered_at = CASE WHEN v.status = 'delivered' THEN v.at \
                 ELSE deliveries.delivered_at END \
             FROM v WHERE deliveries.id = v.id",
            values::<Sqlite>(batch.len(), 7)
        );
        let mut query = q::<Sqlite>(&sql);
        for (id, a, _) in batch {
            query = query
                .bind(id.as_str())
                .bind(a.status.as_str())
                .bind(i64::from(a.attempts))
                .bind(to_millis(a.next_attempt_at))
                .bind(a.last_status.map(i64::from))
                .bind(a.last_error.as_deref())
                .bind(to_millis(a.at));
        }
        query.execute(&mut tx).await?;
    } else {
        for (id, a, _) in batch {
            update_attempt::<Sqlite>(&mut tx, id, a, false).await?;
        }
    }
    tx.commit().await.map_err(crate::sql::db)
}
