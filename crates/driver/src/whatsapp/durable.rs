//! Inbound messages durable before WhatsApp hears they arrived: whatsapp-rust's
//! `InboundDurabilityHook` over the gateway's [`InboundSink`]. With the hook registered the
//! library keeps each decrypted message in the number's store (the pending-inbound rows of
//! `backend/protocol/buffers.rs`), runs the hook, and sends the message's receipt (which
//! makes WhatsApp drop it from its offline queue) only once the hook returned `Ok`. A crash
//! before that leaves the message with WhatsApp, which delivers it again at the next login;
//! the library then decrypts it afresh or replays its kept copy, and the sink records it
//! once.
//!
//! The hook runs on the library's receive path, holding the sender's Signal lock: the sink
//! only writes the store, never waits on this number's connection.

use std::sync::Arc;

use whatsapp_rust::types::durability_hook::InboundMessage as WaInbound;
use whatsapp_rust::{anyhow, Client, InboundDurabilityHook};

use super::inbound::inbound;
use crate::InboundSink;

pub(crate) struct DurableInbound {
    pub sink: Arc<dyn InboundSink>,
}

#[whatsapp_rust::async_trait]
impl InboundDurabilityHook for DurableInbound {
    async fn on_messages(&self, _client: Arc<Client>, batch: &[WaInbound]) -> anyhow::Result<()> {
        // Our own echoes and messages with nothing to report are acknowledged as they are.
        let ours: Vec<_> = batch.iter().filter_map(|m| inbound(&m.message, &m.info)).collect();
        if ours.is_empty() {
            return Ok(());
        }
        self.sink.commit(ours).await.map_err(anyhow::Error::from)
    }
}
