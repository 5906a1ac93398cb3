//! [`NumberSink`]: the driver's `InboundSink` of one number. A batch is resolved and queued
//! on the recorder message by message (their events keep the batch's order), and the answer
//! waits for the group commit that writes them: `Ok` once every message of it is on disk, or
//! was already (a redelivery, skipped by its dedupe key). Only then does the driver
//! acknowledge the batch to WhatsApp; after `Err` it does not, and WhatsApp delivers the
//! messages again.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
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

#[async_trait]
impl InboundSink for NumberSink {
    async fn commit(&self, batch: Vec<InboundMessage>) -> Result<(), InboundError> {
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
