//! Group commit on SQLite: its piece of the accepted messages' group commit (the batch
//! statement; the batching is `sql/message_writer.rs`, shared with PostgreSQL), and, on one
//! shared loop ([`GroupCommit`]), webhook attempt outcomes, message status changes and the
//! numbers' session changes from concurrent callers, each kind written by one task, as many as
//! are waiting in one transaction, so one fsync covers a whole batch. Each caller still gets
//! its answer only after its row is committed (the delivery worker must not forget a delivery
//! the receiver accepted), but the write rate is no longer bounded by one fsync per row. All
//! take the write gate around their transaction (the accepted messages' through the shared
//! writer).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::sql::message_writer::Accepted;
use crate::sql::messages::{insert_messages, update_message_row};
use crate::sql::webhooks::update_attempt;
use crate::sql::{apply_sealed_writes, q, values, SealedWrites};
use crate::time::to_millis;
use crate::{DeliveryAttempt, MessageRecord, MessageUpdate, Result, StoreError};

/// Most attempt outcomes committed in one transaction.
const MAX_OUTCOMES: usize = 512;
/// Most message status changes committed in one transaction.
const MAX_STATUSES: usize = 512;
/// Most numbers' session changes committed in one transaction.
const MAX_SESSION_WRITES: usize = 256;

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

/// One writer task for one kind of write: it takes what is waiting (up to `max`), writes it
/// in one go under the write gate, and answers each caller in order, once committed.
#[derive(Debug)]
struct GroupCommit<T, A> {
    tx: mpsc::Sender<(T, oneshot::Sender<A>)>,
}

impl<T, A> Clone for GroupCommit<T, A> {
    fn clone(&self) -> Self {
        GroupCommit { tx: self.tx.clone() }
    }
}

impl<T: Send + 'static, A: Send + 'static> GroupCommit<T, A> {
    /// `write` answers for each item of its batch, in order.
    fn spawn<F, Fut>(max: usize, write_gate: Arc<Mutex<()>>, write: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<A>> + Send,
    {
        let (tx, mut rx) = mpsc::channel::<(T, oneshot::Sender<A>)>(4 * max);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max);
            while rx.recv_many(&mut batch, max).await > 0 {
                let (items, replies): (Vec<T>, Vec<_>) = batch.drain(..).unzip();
                let answers = {
                    let _gate = write_gate.lock().await;
                    write(items).await
                };
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
        });
        GroupCommit { tx }
    }

    /// Writes `item` with the next batch; its answer once that batch is committed.
    async fn call(&self, item: T) -> Result<A> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((item, reply)).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())
    }
}

/// The group commit of webhook attempt outcomes.
#[derive(Debug, Clone)]
pub(crate) struct AttemptWriter(GroupCommit<(String, DeliveryAttempt), Result<()>>);

impl AttemptWriter {
    pub(crate) fn spawn(pool: SqlitePool, write_gate: Arc<Mutex<()>>) -> Self {
        AttemptWriter(GroupCommit::spawn(MAX_OUTCOMES, write_gate, move |batch| {
            let pool = pool.clone();
            async move {
                let result = write_outcomes(&pool, &batch).await.map_err(|e| e.to_string());
                let answer = |_| {
                    result.clone().map_err(|e| {
                        StoreError::Database(format!("recording a webhook attempt failed: {e}"))
                    })
                };
                batch.iter().map(answer).collect()
            }
        }))
    }

    pub(crate) async fn record(&self, id: String, attempt: DeliveryAttempt) -> Result<()> {
        self.0.call((id, attempt)).await?
    }
}

/// The group commit of message status changes: each send moves its message through
/// `sending`, `sent`, `delivered` and `read`, one commit each. At 10,000 numbers sending,
/// those commits, one fsync each and outside the write gate, took SQLite's write lock from
/// the accepts' group commit (whose busy handler then slept): about 1,000 accepts a second
/// where 20 numbers allow ten times more. One transaction per batch; each change keeps its
/// own answer (whether the stored message took it), in the order the changes came.
#[derive(Debug, Clone)]
pub(crate) struct StatusWriter(GroupCommit<(String, MessageUpdate), Result<bool>>);

impl StatusWriter {
    pub(crate) fn spawn(pool: SqlitePool, write_gate: Arc<Mutex<()>>) -> Self {
        StatusWriter(GroupCommit::spawn(MAX_STATUSES, write_gate, move |batch| {
            let pool = pool.clone();
            async move {
                match write_statuses(&pool, &batch).await {
                    Ok(taken) => taken.into_iter().map(Ok).collect(),
                    Err(e) => {
                        let why = format!("storing message statuses failed: {e}");
                        batch.iter().map(|_| Err(StoreError::Database(why.clone()))).collect()
                    }
                }
            }
        }))
    }

    pub(crate) async fn update(&self, id: String, u: MessageUpdate) -> Result<bool> {
        self.0.call((id, u)).await?
    }
}

/// The group commit of the numbers' session changes. whatsapp-rust stores as it goes: a number
/// logging in writes its device, pre-keys and mappings, and every message sent or received
/// moves a Signal session on. One commit each, one fsync each one after another under the
/// write gate, made a restart of thousands of numbers wait on the disk. One transaction per
/// batch; a failed batch is tried again one number at a time, so that each number's changes
/// still take effect whole or not at all, and one number's failure is its own.
#[derive(Debug, Clone)]
pub(crate) struct SessionWriter(GroupCommit<SealedWrites, Result<()>>);

impl SessionWriter {
    pub(crate) fn spawn(pool: SqlitePool, write_gate: Arc<Mutex<()>>) -> Self {
        SessionWriter(GroupCommit::spawn(MAX_SESSION_WRITES, write_gate, move |batch| {
            let pool = pool.clone();
            async move {
                if write_sessions(&pool, &batch).await.is_ok() {
                    return batch.iter().map(|_| Ok(())).collect();
                }
                let mut answers = Vec::with_capacity(batch.len());
                for one in &batch {
                    answers.push(write_sessions(&pool, std::slice::from_ref(one)).await);
                }
                answers
            }
        }))
    }

    pub(crate) async fn write(&self, sealed: SealedWrites) -> Result<()> {
        self.0.call(sealed).await?
    }
}

/// Applies the numbers' changes in one transaction, in order.
async fn write_sessions(pool: &SqlitePool, batch: &[SealedWrites]) -> Result<()> {
    let mut tx = pool.begin().await.map_err(crate::sql::db)?;
    for w in batch {
        apply_sealed_writes::<Sqlite>(&mut tx, w).await?;
    }
    tx.commit().await.map_err(crate::sql::db)
}

/// Applies a batch of status changes in one transaction, in order: for each, whether the
/// stored message took it.
async fn write_statuses(pool: &SqlitePool, batch: &[(String, MessageUpdate)]) -> Result<Vec<bool>> {
    let mut tx = pool.begin().await.map_err(crate::sql::db)?;
    let mut taken = Vec::with_capacity(batch.len());
    for (id, u) in batch {
        taken.push(update_message_row::<Sqlite>(&mut tx, id, u).await?);
    }
    tx.commit().await.map_err(crate::sql::db)?;
    Ok(taken)
}

/// Applies a batch of outcomes in one transaction: one `UPDATE … FROM (VALUES …)` when every
/// delivery appears once (the usual case: a delivery has one attempt under way at a time),
/// else row by row in order.
async fn write_outcomes(pool: &SqlitePool, batch: &[(String, DeliveryAttempt)]) -> Result<()> {
    let mut tx = pool.begin().await.map_err(crate::sql::db)?;
    let distinct = batch.iter().map(|(id, _)| id.as_str()).collect::<HashSet<_>>().len();
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
        for (id, a) in batch {
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
        for (id, a) in batch {
            update_attempt::<Sqlite>(&mut tx, id, a, false).await?;
        }
    }
    tx.commit().await.map_err(crate::sql::db)
}
