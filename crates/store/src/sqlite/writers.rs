//! Group commit on SQLite: its piece of the accepted messages' group commit (the batch
//! statement; the batching is `sql/message_writer.rs`, shared with PostgreSQL), and webhook
//! attempt outcomes from concurrent callers, written by one task, as many as are waiting in
//! one transaction, so one fsync covers a whole batch. Each caller still gets its answer only
//! after its row is committed (the delivery worker must not forget a delivery the receiver
//! accepted), but the write rate is no longer bounded by one fsync per row. Both take the
//! write gate around their transaction (the accepted messages' through the shared writer).

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::sql::message_writer::Accepted;
use crate::sql::messages::insert_messages;
use crate::sql::webhooks::update_attempt;
use crate::sql::{q, values};
use crate::time::to_millis;
use crate::{DeliveryAttempt, MessageRecord, Result, StoreError};

/// Most attempt outcomes committed in one transaction.
const MAX_OUTCOMES: usize = 512;

type PendingOutcome = (String, DeliveryAttempt, oneshot::Sender<Result<()>>);

fn closed() -> StoreError {
    StoreError::Database("the store is closed".into())
}

/// SQLite's piece of the group commit of accepted messages (`sql/message_writer.rs`): one
/// multi-row `INSERT` for the batch (one round trip to SQLite's thread); when it is refused
/// (a duplicate idempotency key in the batch), row by row, SQLite backing out only the
/// refused statement and the transaction going on, so that only the duplicate fails. Claims
/// and signals are for nodes of a cluster, which a SQLite gateway never is.
pub(crate) async fn insert_accepted(
    c: &mut SqliteConnection,
    batch: &[&Accepted],
) -> Result<Vec<Result<()>>> {
    let all: Vec<&MessageRecord> = batch.iter().map(|a| &a.message).collect();
    if insert_messages::<Sqlite>(c, &all).await.is_ok() {
        return Ok(all.iter().map(|_| Ok(())).collect());
    }
    let mut results = Vec::with_capacity(all.len());
    for m in all {
        results.push(insert_messages::<Sqlite>(c, &[m]).await);
    }
    Ok(results)
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
