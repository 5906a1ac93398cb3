//! WAL checkpoints on a connection of their own, off every commit path.
//!
//! SQLite's automatic checkpoint runs inside the `COMMIT` of whichever connection's commit
//! passes `wal_autocheckpoint` frames: that commit returns only once the checkpoint has copied
//! the WAL into the database file and fsynced it (tens to hundreds of milliseconds under
//! sustained writes). When that connection was the group-commit writer of accepted messages,
//! every `POST /v1/messages` in flight waited for it (issue 21: p99 380–766 ms). So the pool's
//! connections never checkpoint (`wal_autocheckpoint=0`); each of their commits wakes this
//! task (a commit hook), which checkpoints on its own connection, `PASSIVE` (it never waits
//! for, nor blocks, a writer or a reader).
//!
//! `PASSIVE` alone lets the WAL file grow without end under continuous writes: SQLite starts
//! writing the WAL from its beginning again only when a write transaction begins after *every*
//! frame was copied, and with a commit every few milliseconds new frames always arrive while
//! the checkpoint runs (an earlier attempt at background checkpoints grew the WAL to hundreds
//! of MB). So once the WAL holds [`RESTART_FRAMES`], and the checkpoint just made has copied
//! all but a few frames, one more `PASSIVE` runs while holding the in-process write gate,
//! which every hot writer takes: no frame is added while it copies the rest, and the next
//! write transaction restarts the WAL (truncated to `journal_size_limit` then). The gate is
//! held only for the few frames written during the checkpoint before it, not for a whole
//! checkpoint. A reader still on an old snapshot can keep a frame from being copied; then the
//! WAL is not restarted this round and the next round tries again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{oneshot, Mutex, Notify};

/// A WAL this long (in pages: 40 MiB at 4 KiB) is restarted once its frames are copied.
pub(crate) const RESTART_FRAMES: i64 = 10_000;
/// The WAL is finished under the write gate only when the checkpoint before it left at most
/// this many frames uncopied (a reader on an old snapshot holds the rest back otherwise).
const RESTART_BACKLOG: i64 = 1_000;
/// After a commit wakes it, the checkpointer waits this long so that the commits of that
/// moment share one checkpoint (one pass and two fsyncs, rather than one per commit).
const GATHER: Duration = Duration::from_millis(20);
/// A checkpoint slower than this is logged (at `info`), with what it copied.
const SLOW: Duration = Duration::from_millis(200);

/// The checkpoint task: commits wake it through [`Checkpointer::waker`]; [`Checkpointer::close`]
/// stops it and closes its connection.
#[derive(Debug, Clone)]
pub(crate) struct Checkpointer {
    wake: Arc<Notify>,
    stop: Arc<std::sync::Mutex<Option<oneshot::Sender<oneshot::Sender<()>>>>>,
}

/// What one `PRAGMA wal_checkpoint(PASSIVE)` reported: frames in the WAL and frames copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pass {
    log: i64,
    copied: i64,
}

impl Checkpointer {
    /// Starts the task. Its connection is opened with `options` (the pool's, which turn the
    /// automatic checkpoint off) at the first wake-up.
    pub(crate) fn spawn(options: SqliteConnectOptions, write_gate: Arc<Mutex<()>>) -> Self {
        let wake = Arc::new(Notify::new());
        let (stop_tx, mut stop_rx) = oneshot::channel::<oneshot::Sender<()>>();
        let task_wake = wake.clone();
        tokio::spawn(async move {
            let mut conn: Option<SqliteConnection> = None;
            let done = loop {
                tokio::select! {
                    _ = task_wake.notified() => {}
                    done = &mut stop_rx => break done.ok(),
                }
                tokio::time::sleep(GATHER).await;
                if conn.is_none() {
                    match options.connect().await {
                        Ok(c) => conn = Some(c),
                        Err(e) => {
                            tracing::warn!(error = %e, "opening the checkpoint connection failed");
                            continue;
                        }
                    }
                }
                if let Some(c) = conn.as_mut() {
                    if let Err(e) = checkpoint(c, &write_gate).await {
                        tracing::warn!(error = %e, "checkpointing the WAL failed");
                        conn = None; // reopened at the next wake-up
                    }
                }
            };
            if let Some(c) = conn {
                if let Err(e) = c.close().await {
                    tracing::warn!(error = %e, "closing the checkpoint connection failed");
                }
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
        });
        Checkpointer { wake, stop: Arc::new(std::sync::Mutex::new(Some(stop_tx))) }
    }

    /// What a commit calls (from SQLite's commit hook: it must not block).
    pub(crate) fn waker(&self) -> impl Fn() + Send + Sync + 'static {
        let wake = self.wake.clone();
        move || wake.notify_one()
    }

    /// Stops the task and returns once its connection is closed.
    pub(crate) async fn close(&self) {
        let stop = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(stop) = stop {
            let (done_tx, done_rx) = oneshot::channel();
            if stop.send(done_tx).is_ok() {
                let _ = done_rx.await;
            }
        }
    }
}

/// One round: a `PASSIVE` checkpoint, then, when the WAL is long and nearly all copied, the
/// rest under the write gate so that the next writer restarts it.
async fn checkpoint(conn: &mut SqliteConnection, gate: &Mutex<()>) -> sqlx::Result<()> {
    let started = Instant::now();
    let first = passive(conn).await?;
    let took = started.elapsed();
    if took > SLOW {
        tracing::info!(
            ms = took.as_millis() as u64,
            frames = first.log,
            copied = first.copied,
            "slow WAL checkpoint (off the commit path)"
        );
    }
    if !should_restart(first) {
        return Ok(());
    }
    let _gate = gate.lock().await;
    let held = Instant::now();
    let last = passive(conn).await?;
    tracing::debug!(
        frames = last.log,
        copied = last.copied,
        gated_ms = held.elapsed().as_secs_f64() * 1000.0,
        "WAL copied to its end: the next write restarts it"
    );
    Ok(())
}

/// Whether a checkpoint that reported `pass` should be finished under the write gate: the WAL
/// is long enough to be worth restarting and little is left to copy.
fn should_restart(pass: Pass) -> bool {
    pass.log >= RESTART_FRAMES && pass.log - pass.copied <= RESTART_BACKLOG
}

async fn passive(conn: &mut SqliteConnection) -> sqlx::Result<Pass> {
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut *conn).await?;
    Ok(Pass { log: row.try_get(1)?, copied: row.try_get(2)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_wal_is_restarted_only_once_nearly_all_of_it_is_copied() {
        let pass = |log, copied| Pass { log, copied };
        assert!(!should_restart(pass(RESTART_FRAMES - 1, RESTART_FRAMES - 1)));
        assert!(should_restart(pass(RESTART_FRAMES, RESTART_FRAMES)));
        assert!(should_restart(pass(RESTART_FRAMES * 3, RESTART_FRAMES * 3 - RESTART_BACKLOG)));
        assert!(!should_restart(pass(RESTART_FRAMES * 3, RESTART_FRAMES)));
        // A WAL that is not in use reports -1 frames.
        assert!(!should_restart(pass(-1, -1)));
    }
}
