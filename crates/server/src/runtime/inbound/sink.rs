//! [`NumberSink`]: the driver's `InboundSink` of one number. A batch is resolved and queued
//! on the recorder message by message (their events keep the batch's order), and the answer
//! waits for the group commit that writes them: `Ok` once every message of it is on disk, or
//! was already (a redelivery, skipped by its dedupe key). Only then does the driver
//! acknowledge the batch to WhatsApp; after `Err` it does not, and WhatsApp delivers the
//! messages again at the number's next connect.
//!
//! A store that fails for a while (a PostgreSQL failover, a connection lost) is waited out:
//! the commit is tried again with backoff for up to [`COMMIT_RETRY`]'s 30 s, the driver's
//! receive path waiting meanwhile, before the answer is `Err`.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bzapper_core::retry::RetryPolicy;
use bzapper_driver::{InboundError, InboundMessage, InboundSink};

use super::resolve::{submit, InboundJob, Parts};

/// The number's own JID and LID, for `mentions_me`: set at pairing, read at each message.
pub type OwnIds = Arc<RwLock<(Option<String>, Option<String>)>>;

/// Records one number's inbound messages durably, each once.
pub struct NumberSink {
    parts: Arc<Parts>,
    tenant_id: String,
    instance_id: String,
    own: OwnIds,
}

impl NumberSink {
    pub(super) fn new(parts: Arc<Parts>, tenant_id: &str, instance_id: &str, own: OwnIds) -> Self {
        NumberSink { parts, tenant_id: tenant_id.into(), instance_id: instance_id.into(), own }
    }
}

fn failed(e: impl std::fmt::Display) -> InboundError {
    InboundError(e.to_string())
}

/// How a failed commit is tried again: 200 ms, 400 ms, … at most 5 s apart, for 30 s.
pub(super) const COMMIT_RETRY: RetryPolicy =
    RetryPolicy { first_delay_ms: 200, max_delay_ms: 5_000, give_up_after_ms: 30_000 };

/// Runs `attempt` until it succeeds or `policy` gives up (the last error is then returned).
pub(super) async fn with_retries<T, E: std::fmt::Display, Fut>(
    policy: RetryPolicy,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let started = tokio::time::Instant::now();
    let mut failures = 0;
    loop {
        let e = match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        failures += 1;
        let delay = Duration::from_millis(policy.delay_ms(failures, &mut rand::thread_rng()));
        if started.elapsed() + delay > Duration::from_millis(policy.give_up_after_ms) {
            return Err(e);
        }
        tracing::warn!(error = %e, attempt = failures, "recording inbound messages failed; retrying");
        tokio::time::sleep(delay).await;
    }
}

#[async_trait]
impl InboundSink for NumberSink {
    async fn commit(&self, batch: Vec<InboundMessage>) -> Result<(), InboundError> {
        // A retry writes what the failed attempt did not: the rest are skipped by their keys.
        with_retries(COMMIT_RETRY, || self.commit_once(batch.clone())).await
    }
}

impl NumberSink {
    /// One attempt at recording `batch`.
    async fn commit_once(&self, batch: Vec<InboundMessage>) -> Result<(), InboundError> {
        let own = self.own.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut queued = Vec::with_capacity(batch.len());
        for message in batch {
            let job = InboundJob {
                tenant_id: self.tenant_id.clone(),
                instance_id: self.instance_id.clone(),
                own: own.clone(),
                message,
            };
            // Those queued before a failure are written all the same: the redelivery of the
            // whole batch finds them recorded.
            queued.push(submit(&self.parts, &job).await.map_err(failed)?);
        }
        for recording in queued {
            recording.durable().await.map_err(failed)?;
        }
        Ok(())
    }
}
