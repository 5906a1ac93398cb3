//! Following the event log from a cursor kept in the store, while this node holds a role:
//! what the webhook and alert fan-outs share. A reader turns each page of events into rows
//! and moves its cursor in the same transaction, so a crash between an event's append and
//! its fan-out loses nothing: the next holder (or the next start) reads on from the cursor.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bzapper_store::StoreError;
use tokio::sync::broadcast::error::TryRecvError;

use crate::cluster::role::Role;
use crate::events::recorder::Recorder;

/// How many events a reader takes at a time.
pub(crate) const PAGE: u32 = 500;

/// A reader of the event log with its own cursor in the store.
pub(crate) trait LogReader: Send + Sync + 'static {
    /// Names the reader in logs ("webhook fan-out").
    const WHAT: &'static str;

    /// Reads the stored cursor and pins it there: on a data dir that never had one, the
    /// reader starts at the newest event and must not move along with new events before it
    /// has read them.
    fn pin_cursor(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Handles the next page of events after `cursor` (at most [`PAGE`]) and moves it past
    /// them, in the store and here. True when a full page was read (more may be waiting).
    fn read_page(&self, cursor: &mut i64) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Runs `reader` whenever this node holds `role`: from the stored cursor at each gain of the
/// role (the previous holder may have moved it), a page at a time, woken by new events (the
/// recorder's feed, which in a cluster carries every node's) and every two seconds.
pub(crate) async fn follow<R: LogReader>(reader: Arc<R>, recorder: Arc<Recorder>, mut role: Role) {
    let mut doorbell = recorder.subscribe();
    loop {
        role.gained().await;
        let Some(mut cursor) = pin(reader.as_ref(), &role).await else { continue };
        while role.is_held() {
            match reader.read_page(&mut cursor).await {
                Ok(true) => continue, // more may be waiting
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "{} failed; retrying", R::WHAT),
            }
            // New events ring the bell; the timeout covers a bell missed.
            tokio::select! {
                _ = tokio::time::timeout(Duration::from_secs(2), doorbell.recv()) => {}
                _ = role.lost() => {}
            }
            // Every event announced so far is already in the log, so the next read covers
            // them all: one pass per burst, not one per event.
            while !matches!(doorbell.try_recv(), Err(TryRecvError::Empty | TryRecvError::Closed)) {}
        }
    }
}

/// The pinned cursor; `None` when the role was lost meanwhile.
async fn pin<R: LogReader>(reader: &R, role: &Role) -> Option<i64> {
    loop {
        if !role.is_held() {
            return None;
        }
        match reader.pin_cursor().await {
            Ok(c) => return Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "starting the {} failed; retrying", R::WHAT);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
