//! Inbound messages into the event log as `message.received` (what each becomes:
//! [`resolve`]).
//!
//! Durable before acknowledged: each number's driver hands its messages to that number's
//! [`sink::NumberSink`] (the driver's `InboundSink`), which resolves them, queues their
//! `message.received` on the recorder and answers once the recorder's group commit has them
//! on disk; only then does the driver acknowledge them to WhatsApp. Every event carries its
//! dedupe key (number, chat, sender, WhatsApp id), so a message WhatsApp delivers again
//! (the acknowledgement was lost in a crash) is recorded once.
//!
//! This runs on the driver's receive path, never on the supervisor's loop, so a burst of
//! inbound messages never holds up a number's state events (a ban must leave rotation at
//! once). A message a driver reports as a plain `DriverEvent::Message` instead (one the
//! protocol library acknowledged on its own) goes through [`Inbound::push`]: one task per
//! number, in arrival order, queued on the recorder without waiting for the disk.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bzapper_store::Store;
use tokio::sync::mpsc;

use crate::events::recorder::Recorder;
use crate::runtime::unread::Unread;

mod resolve;
mod sink;

pub use resolve::{contact_addresses, received_data, InboundJob};
use resolve::{submit, Parts, PublicUrl};
pub use sink::{NumberSink, OwnIds};

/// Tasks resolving inbound messages; a number always goes to the same one.
const SHARDS: usize = 4;

/// Resolves and records inbound messages: durably through each number's sink
/// ([`Inbound::sink`]), or in order per number off the caller's task ([`Inbound::push`]).
pub struct Inbound {
    parts: Arc<Parts>,
    shards: Vec<mpsc::UnboundedSender<InboundJob>>,
}

impl Inbound {
    /// `public_url` is the gateway's own URL (start-up binds the listener first, so it is
    /// known); media links in `message.received` start with it. Direct messages are noted
    /// as unread in `unread`.
    pub fn spawn(
        store: Arc<dyn Store>,
        recorder: Arc<Recorder>,
        public_url: &str,
        unread: Arc<Unread>,
    ) -> Self {
        let public_url: PublicUrl = public_url.trim_end_matches('/').into();
        let parts = Arc::new(Parts { store, recorder, public_url, unread });
        let shards = (0..SHARDS)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(run(parts.clone(), rx));
                tx
            })
            .collect();
        Inbound { parts, shards }
    }

    /// The sink a number's driver records its inbound messages through (durably, once each).
    /// `own` is the number's JID and LID, which the supervisor updates when it pairs.
    pub fn sink(&self, tenant_id: &str, instance_id: &str, own: OwnIds) -> Arc<NumberSink> {
        Arc::new(NumberSink::new(self.parts.clone(), tenant_id, instance_id, own))
    }

    /// Hands the message over and returns at once.
    pub fn push(&self, job: InboundJob) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        job.instance_id.hash(&mut h);
        let shard = (h.finish() % self.shards.len() as u64) as usize;
        if self.shards[shard].send(job).is_err() {
            tracing::error!("the inbound message task has stopped; a message was not recorded");
        }
    }
}

async fn run(parts: Arc<Parts>, mut rx: mpsc::UnboundedReceiver<InboundJob>) {
    while let Some(job) = rx.recv().await {
        match submit(&parts, &job).await {
            // Queued in order; the recorder logs a write that fails.
            Ok(queued) => drop(queued),
            Err(e) => tracing::error!(
                instance = %job.instance_id, error = %e, "resolving an inbound message failed"
            ),
        }
    }
}

#[cfg(test)]
mod tests;
