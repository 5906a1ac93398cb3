//! A number's connection while the driver is still starting it: the resume starts many numbers
//! at once, outside the supervisor's lock, so the number is entered as running first, with
//! this handle, and the driver's connection is put into it once it exists. Every call waits
//! for that (or fails as not connected when the start failed); a stop asked for before it
//! exists stops it as soon as it does.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bzapper_core::{Jid, Phone};
use bzapper_driver::{
    ChatState, Connection, ContactStatus, DriverError, GroupInfo, GroupSummary, InboundMedia,
    IncomingCall, OutgoingMessage, PairCode, Presence, SendAck,
};
use tokio::sync::watch;

#[derive(Clone)]
enum Slot {
    Starting,
    Started(Arc<dyn Connection>),
    Failed,
}

/// The handle; [`Starting::started`] and [`Starting::failed`] are the starter's side.
pub(super) struct Starting {
    slot: watch::Sender<Slot>,
    stopped: AtomicBool,
}

impl Starting {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self { slot: watch::channel(Slot::Starting).0, stopped: AtomicBool::new(false) })
    }

    /// The driver started the connection. Stopped at once when a stop came first.
    pub(super) async fn started(&self, conn: Arc<dyn Connection>) {
        self.slot.send_replace(Slot::Started(conn.clone()));
        // Paired with `stop`: whichever of the two comes second sees the other's mark.
        if self.stopped.load(Ordering::SeqCst) {
            conn.stop().await;
        }
    }

    /// The driver could not start it: every waiting call fails.
    pub(super) fn failed(&self) {
        self.slot.send_replace(Slot::Failed);
    }

    async fn conn(&self) -> Result<Arc<dyn Connection>, DriverError> {
        let mut rx = self.slot.subscribe();
        let slot = rx.wait_for(|s| !matches!(s, Slot::Starting)).await;
        match slot.as_deref() {
            Ok(Slot::Started(c)) => Ok(c.clone()),
            _ => Err(DriverError::NotConnected),
        }
    }
}

#[async_trait]
impl Connection for Starting {
    async fn send(&self, msg: OutgoingMessage) -> Result<SendAck, DriverError> {
        self.conn().await?.send(msg).await
    }
    async fn set_chat_state(&self, to: &Jid, state: ChatState) -> Result<(), DriverError> {
        self.conn().await?.set_chat_state(to, state).await
    }
    async fn mark_read(
        &self,
        chat: &Jid,
        sender: Option<&Jid>,
        ids: &[String],
    ) -> Result<(), DriverError> {
        self.conn().await?.mark_read(chat, sender, ids).await
    }
    async fn reject_call(&self, call: &IncomingCall) -> Result<(), DriverError> {
        self.conn().await?.reject_call(call).await
    }
    async fn set_presence(&self, presence: Presence) -> Result<(), DriverError> {
        self.conn().await?.set_presence(presence).await
    }
    async fn pair_code(&self, phone: &Phone) -> Result<PairCode, DriverError> {
        self.conn().await?.pair_code(phone).await
    }
    async fn download_media(&self, media: &InboundMedia, dest: &Path) -> Result<u64, DriverError> {
        self.conn().await?.download_media(media, dest).await
    }
    async fn groups(&self) -> Result<Vec<GroupSummary>, DriverError> {
        self.conn().await?.groups().await
    }
    async fn group(&self, jid: &Jid) -> Result<GroupInfo, DriverError> {
        self.conn().await?.group(jid).await
    }
    async fn check_contacts(&self, phones: &[Phone]) -> Result<Vec<ContactStatus>, DriverError> {
        self.conn().await?.check_contacts(phones).await
    }
    async fn logout(&self) -> Result<(), DriverError> {
        self.conn().await?.logout().await
    }
    async fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let slot = self.slot.borrow().clone();
        if let Slot::Started(conn) = slot {
            conn.stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts stops; everything else is not connected.
    #[derive(Default)]
    struct Probe {
        stops: AtomicUsize,
    }

    #[async_trait]
    impl Connection for Probe {
        async fn send(&self, _: OutgoingMessage) -> Result<SendAck, DriverError> {
            Err(DriverError::NotConnected)
        }
        async fn set_chat_state(&self, _: &Jid, _: ChatState) -> Result<(), DriverError> {
            Ok(())
        }
        async fn pair_code(&self, _: &Phone) -> Result<PairCode, DriverError> {
            Err(DriverError::NotConnected)
        }
        async fn download_media(&self, _: &InboundMedia, _: &Path) -> Result<u64, DriverError> {
            Err(DriverError::NotConnected)
        }
        async fn groups(&self) -> Result<Vec<GroupSummary>, DriverError> {
            Ok(vec![])
        }
        async fn group(&self, _: &Jid) -> Result<GroupInfo, DriverError> {
            Err(DriverError::NotConnected)
        }
        async fn check_contacts(&self, _: &[Phone]) -> Result<Vec<ContactStatus>, DriverError> {
            Ok(vec![])
        }
        async fn logout(&self) -> Result<(), DriverError> {
            Ok(())
        }
        async fn stop(&self) {
            self.stops.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_call_waits_for_the_started_connection() {
        let s = Starting::new();
        let waiting = tokio::spawn({
            let s = s.clone();
            async move { s.groups().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        s.started(Arc::new(Probe::default())).await;
        assert_eq!(waiting.await.unwrap().unwrap(), vec![]);
    }

    #[tokio::test]
    async fn a_stop_before_the_start_stops_the_connection_once_it_exists() {
        let s = Starting::new();
        s.stop().await;
        let probe = Arc::new(Probe::default());
        s.started(probe.clone()).await;
        assert_eq!(probe.stops.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_start_fails_every_call() {
        let s = Starting::new();
        s.failed();
        assert!(matches!(s.groups().await, Err(DriverError::NotConnected)));
        s.stop().await; // nothing to stop
    }
}
