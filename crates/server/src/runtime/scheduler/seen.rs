//! "Seen before reply": before a number sends to a contact whose messages to it are unread,
//! it marks them read, after a human pause, when its `read_receipts` setting is `auto`; with
//! `off` they are only forgotten (the reply moves the conversation on). The unread messages
//! are the scheduler's [`Unread`] tracker's, filled by the inbound path.

use std::sync::Arc;

use bzapper_core::read_receipts::read_delay_ms;
use bzapper_core::{Jid, ReadReceipts};
use bzapper_driver::Connection;

use super::Scheduler;
use crate::runtime::unread::Unread;

impl Scheduler {
    /// The tracker of what each number has not marked read, for the inbound path and the
    /// explicit read to share.
    pub fn unread(&self) -> Arc<Unread> {
        self.unread.clone()
    }

    /// Marks what `number_id` has not read from `to` read, after a pause drawn like the other
    /// human delays (on tokio's clock), when the number is set to; a failure only costs the
    /// receipt, never the send.
    pub(super) async fn seen_before_reply(&self, number_id: &str, to: &Jid, conn: &dyn Connection) {
        if to.is_group() {
            return;
        }
        let contact = to.to_non_device().to_string();
        if !self.unread.has(number_id, &contact) {
            return;
        }
        // The setting is read from the store, not memory: it may have changed on any node.
        let auto = match self.store.get_instance_by_id(number_id).await {
            Ok(Some(rec)) => rec.read_receipts == ReadReceipts::Auto,
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(instance = %number_id, error = %e, "reading the read receipts setting failed");
                false
            }
        };
        let unread = self.unread.take(number_id, &contact);
        if !auto || unread.is_empty() {
            return;
        }
        let pause = {
            let mut g = self.lock();
            read_delay_ms(&mut g.rng)
        };
        tokio::time::sleep(tokio::time::Duration::from_millis(pause)).await;
        for batch in unread {
            if let Err(e) = conn.mark_read(&batch.chat, None, &batch.ids).await {
                tracing::debug!(instance = %number_id, error = %e, "marking messages read before a reply failed");
            }
        }
    }
}
