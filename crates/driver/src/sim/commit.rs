//! Each sim connection's inbound messages, recorded through the gateway's
//! [`InboundSink`] and only then acknowledged to the network: what the gateway never
//! recorded stays with the network, which delivers it again at the next login.
//!
//! A task of its own per connection, so that a burst of messages waiting for the disk never
//! holds up the connection's other events (a ban must reach the server at once). It takes
//! every message that arrived while the previous batch was being recorded as one batch.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::transport::SimNet;
use crate::{InboundMessage, InboundSink};

/// Most messages recorded in one commit.
const MAX_BATCH: usize = 512;

/// The sending half; dropping it ends the task once what it was given is recorded.
pub(crate) struct Committer {
    tx: mpsc::UnboundedSender<InboundMessage>,
}

impl Committer {
    pub(crate) fn spawn(
        net: Arc<dyn SimNet>,
        instance_id: String,
        sink: Arc<dyn InboundSink>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(net, instance_id, sink, rx));
        Committer { tx }
    }

    /// Queues a message the network handed over; returns at once.
    pub(crate) fn push(&self, message: InboundMessage) {
        // The task ends only after every sender is gone, so this cannot fail while `self` lives.
        let _ = self.tx.send(message);
    }
}

async fn run(
    net: Arc<dyn SimNet>,
    instance_id: String,
    sink: Arc<dyn InboundSink>,
    mut rx: mpsc::UnboundedReceiver<InboundMessage>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let ids: Vec<String> = batch.iter().map(|m| m.id.clone()).collect();
        match sink.commit(std::mem::take(&mut batch)).await {
            // A lost acknowledgement only means a redelivery, which the sink records once.
            Ok(()) => {
                if let Err(e) = net.ack_inbound(&instance_id, &ids).await {
                    tracing::debug!(%instance_id, error = %e, "acknowledging inbound messages failed");
                }
            }
            Err(e) => tracing::warn!(
                %instance_id, messages = ids.len(), error = %e,
                "inbound messages were not recorded; left unacknowledged, the network delivers \
                 them again at the next connect"
            ),
        }
    }
}
