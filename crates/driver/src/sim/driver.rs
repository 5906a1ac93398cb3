//! [`SimDriver`]: the `Driver` backed by the simulated network, in-process or remote. Each
//! number is one small tokio task that loads the session, attaches, turns network events
//! into [`DriverEvent`]s and reconnects after transient drops, so a process holds thousands.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bzapper_core::{Jid, Phone};
use futures::StreamExt;
use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::commit::Committer;
use super::media;
use super::network::{SessionBlob, SimNetwork};
use super::transport::{NetEvent, RemoteSimNet, SimError, SimNet};
use crate::{
    ChatState, ConnectOptions, Connection, ContactStatus, Driver, DriverError, DriverEvent,
    DropKind, EventSink, GroupInfo, GroupSummary, InboundMedia, IncomingCall, OutgoingContent,
    OutgoingMessage, PairCode, Presence, SendAck, SessionStore,
};

/// The key the sim session is stored under in the number's [`SessionStore`].
pub const SESSION_KEY: &str = "sim";

/// The backend that connects numbers to the simulated network.
#[derive(Clone)]
pub struct SimDriver {
    net: Arc<dyn SimNet>,
    backoff: Backoff,
}

impl SimDriver {
    /// Over any [`SimNet`].
    pub fn new(net: Arc<dyn SimNet>) -> Self {
        Self { net, backoff: Backoff::default() }
    }

    /// Over an in-process network.
    pub fn local(net: Arc<SimNetwork>) -> Self {
        Self::new(net)
    }

    /// Over a `bzapper simnet` process at `base_url` (`http://127.0.0.1:7900`).
    pub fn remote(base_url: &str) -> Result<Self, SimError> {
        Ok(Self::new(Arc::new(RemoteSimNet::new(base_url)?)))
    }

    /// Changes the reconnect backoff (default: 1 s doubling up to 30 s, ±20 % jitter).
    pub fn with_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = Backoff { first, max };
        self
    }

    /// The network, for the control ops (scan, drop, inbound, outbox).
    pub fn control(&self) -> Arc<dyn SimNet> {
        Arc::clone(&self.net)
    }

    #[cfg(test)]
    pub(crate) fn reconnect_delay(&self, attempt: u32) -> Duration {
        self.backoff.delay(attempt)
    }
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    first: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { first: Duration::from_secs(1), max: Duration::from_secs(30) }
    }
}

impl Backoff {
    /// `first · 2^(attempt-1)`, capped at `max`, then ±20 % so that numbers dropped together
    /// do not reconnect in lockstep.
    fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        let base = self.first.saturating_mul(factor).min(self.max);
        let jittered = base.as_secs_f64() * rand::thread_rng().gen_range(0.8..=1.2);
        Duration::try_from_secs_f64(jittered).unwrap_or(base)
    }
}

#[async_trait]
impl Driver for SimDriver {
    fn name(&self) -> &'static str {
        "sim"
    }

    async fn start(&self, opts: ConnectOptions) -> Result<Arc<dyn Connection>, DriverError> {
        if opts.proxy.is_some() {
            // The simulated network is in-process or on loopback: there is nothing to proxy.
            tracing::debug!(instance_id = %opts.instance_id, "sim driver ignores the proxy");
        }
        let (cancel, cancel_rx) = watch::channel(false);
        let committer =
            Committer::spawn(Arc::clone(&self.net), opts.instance_id.clone(), opts.inbound);
        let runner = Runner {
            net: Arc::clone(&self.net),
            instance_id: opts.instance_id.clone(),
            committer,
            store: Arc::clone(&opts.session),
            events: opts.events.clone(),
            cancel: cancel_rx,
            backoff: self.backoff,
            attempt: 0,
            down: false,
        };
        let task = tokio::spawn(runner.run());
        Ok(Arc::new(SimConnection {
            net: Arc::clone(&self.net),
            instance_id: opts.instance_id,
            store: opts.session,
            events: opts.events,
            cancel,
            task: tokio::sync::Mutex::new(Some(task)),
            logged_out: AtomicBool::new(false),
        }))
    }
}

/// The handle of one running number. Dropping it does not stop the number (like a tokio
/// `JoinHandle`); call [`Connection::stop`].
struct SimConnection {
    net: Arc<dyn SimNet>,
    instance_id: String,
    store: Arc<dyn SessionStore>,
    events: EventSink,
    cancel: watch::Sender<bool>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    logged_out: AtomicBool,
}

impl SimConnection {
    fn stopped(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Ends the background task and waits until it has, so that it emits nothing afterwards.
    async fn end_task(&self) {
        self.cancel.send_replace(true);
        // Held across the await on purpose: a concurrent stop/logout waits for the same end.
        let mut task = self.task.lock().await;
        if let Some(handle) = task.take() {
            if let Err(e) = handle.await {
                tracing::warn!(instance_id = %self.instance_id, error = %e, "sim task failed");
            }
        }
    }
}

fn driver_error(e: SimError) -> DriverError {
    match e {
        SimError::NotConnected => DriverError::NotConnected,
        SimError::NotPairing => DriverError::NotPairing,
        SimError::NotFound(m) => DriverError::NotFound(m),
        SimError::InvalidRequest(m) => DriverError::rejected(m),
        SimError::Unavailable(m) => DriverError::Transport(m),
        SimError::Refused { code, message } => DriverError::Rejected { code, message },
    }
}

#[async_trait]
impl Connection for SimConnection {
    async fn send(&self, msg: OutgoingMessage) -> Result<SendAck, DriverError> {
        if self.stopped() {
            return Err(DriverError::NotConnected);
        }
        // A real upload reads the whole file; so does the sim, so that a wrong size or hash
        // (or a file deleted too early) fails here as it would against WhatsApp.
        if let OutgoingContent::Media(m) = &msg.content {
            media::verify_file(m).await?;
        }
        self.net.send(&self.instance_id, msg).await.map_err(driver_error)
    }

    async fn download_media(&self, media: &InboundMedia, dest: &Path) -> Result<u64, DriverError> {
        // Like a CDN download, this needs no open connection.
        let token = media::token(&media.handle).ok_or_else(|| {
            DriverError::rejected(format!("`{}` is not a sim media handle", media.handle))
        })?;
        let mut chunks = self.net.download(token).await.map_err(driver_error)?;
        let cannot_write = |e: std::io::Error| {
            DriverError::Transport(format!("cannot write {}: {e}", dest.display()))
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(cannot_write)?;
        let mut written = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(driver_error)?;
            file.write_all(&chunk).await.map_err(cannot_write)?;
            written += chunk.len() as u64;
        }
        file.flush().await.map_err(cannot_write)?;
        Ok(written)
    }

    async fn groups(&self) -> Result<Vec<GroupSummary>, DriverError> {
        if self.stopped() {
            return Err(DriverError::NotConnected);
        }
        self.net.groups(&self.instance_id).await.map_err(driver_error)
    }

    async fn group(&self, jid: &Jid) -> Result<GroupInfo, DriverError> {
        if self.stopped() {
            return Err(DriverError::NotConnected);
        }
        self.net.group(&self.instance_id, jid).await.map_err(driver_error)
    }

    async fn check_contacts(&self, phones: &[Phone]) -> Result<Vec<ContactStatus>, DriverError> {
        if self.stopped() {
            return Err(DriverError::NotConnected);
        }
        if phones.is_empty() {
            return Ok(Vec::new());
        }
        self.net.check_contacts(&self.instance_id, phones).await.map_err(driver_error)
    }

    async fn set_chat_state(&self, to: &Jid, state: ChatState) -> Result<(), DriverError> {
        if self.stopped() {
            return Err(DriverError::NotConnected);
        }
        self.net.chat_state(&self.instance_id, to, state).await.map_err(driver_error)
    }

    async fn mark_read(
        &self,
        chat: &Jid,
        sender: Option<&Jid>,
        ids: &[String],
    ) -> Result<(), DriverError> {
        if self.stopped() {
            return Err(DriverError::NotConnected);
        }
        if ids.is_empty() {
            return Ok(());
        }
        self.net.mark_read(&self.instance_id, chat, sender, ids).await.map_err(driver_error)
    }

    async fn reject_call(&self, call: &IncomingCall) -> Result<(), DriverError> {
        if self.stopped() {
            return Err(DriverError::NotConnected);
        }
        self.net.reject_call(&self.instance_id, call).await.map_err(driver_error)
    }

    async fn set_presence(&self, presence: Presence) -> Result<(), DriverError> {
        if self.stopped() {
            return Err(DriverError::NotConnected);
        }
        self.net.set_presence(&self.instance_id, presence).await.map_err(driver_error)
    }

    async fn pair_code(&self, phone: &Phone) -> Result<PairCode, DriverError> {
        if self.stopped() {
            return Err(DriverError::NotPairing);
        }
        self.net.pair_code(&self.instance_id, phone).await.map_err(driver_error)
    }

    async fn logout(&self) -> Result<(), DriverError> {
        if self.logged_out.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // Cancel before the network closes the stream, so the task sees a cancel and not a
        // drop (which it would report as transient and retry).
        self.cancel.send_replace(true);
        if let Err(e) = self.net.logout(&self.instance_id).await {
            // The local wipe below is what makes the number unlinked for this gateway.
            tracing::warn!(instance_id = %self.instance_id, error = %e, "simnet logout failed");
        }
        self.end_task().await;
        if let Err(e) = self.store.clear().await {
            // Let a retry do the wipe again.
            self.logged_out.store(false, Ordering::SeqCst);
            return Err(DriverError::Session(e.to_string()));
        }
        self.events.emit(DriverEvent::Disconnected {
            kind: DropKind::LoggedOut,
            detail: "logged out by an operator".into(),
        });
        Ok(())
    }

    async fn stop(&self) {
        // Dropping the task's event stream detaches this connection, and only this one.
        self.end_task().await;
    }
}

/// The background task of one number.
struct Runner {
    net: Arc<dyn SimNet>,
    instance_id: String,
    /// Records inbound messages, then acknowledges them to the network.
    committer: Committer,
    store: Arc<dyn SessionStore>,
    events: EventSink,
    cancel: watch::Receiver<bool>,
    backoff: Backoff,
    /// Reconnect attempts since the last `Connected`.
    attempt: u32,
    /// A transient drop has been reported and no `Connected` or `Qr` followed yet, so
    /// failed retries show only as further `Reconnecting`.
    down: bool,
}

/// What ended one attach.
enum Outcome {
    /// The number is done (logged out, banned, QR timeout, replaced, cancelled).
    End,
    /// The connection dropped; reconnect. Carries why.
    Retry(String),
}

/// Runs `fut` unless `cancel` flips to `true` first. The cancel is polled first, so once it
/// is set nothing else runs. A dropped sender never cancels.
async fn until_cancelled<F: Future>(
    cancel: &mut watch::Receiver<bool>,
    fut: F,
) -> Option<F::Output> {
    let cancelled = async {
        if cancel.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        biased;
        _ = cancelled => None,
        out = fut => Some(out),
    }
}

impl Runner {
    async fn run(mut self) {
        let Some(loaded) = until_cancelled(&mut self.cancel, self.store.load(SESSION_KEY)).await
        else {
            return;
        };
        let mut session = match loaded {
            Ok(None) => None,
            Ok(Some(bytes)) => match SessionBlob::from_bytes(&bytes) {
                Ok(blob) => Some(blob),
                Err(e) => {
                    let detail = format!("the sim session is not valid: {e}");
                    self.events.emit(DriverEvent::SessionUnreadable { detail });
                    return;
                }
            },
            Err(e) => {
                self.events.emit(DriverEvent::SessionUnreadable { detail: e.to_string() });
                return;
            }
        };

        loop {
            let attached = until_cancelled(
                &mut self.cancel,
                self.net.attach(&self.instance_id, session.clone()),
            )
            .await;
            let outcome = match attached {
                None => return,
                Some(Err(e)) => Outcome::Retry(format!("cannot reach the simulated network: {e}")),
                Some(Ok(events)) => self.pump(events, &mut session).await,
            };
            match outcome {
                Outcome::End => return,
                Outcome::Retry(detail) => self.report_drop(detail),
            }
            self.attempt = self.attempt.saturating_add(1);
            let delay = self.backoff.delay(self.attempt);
            if until_cancelled(&mut self.cancel, tokio::time::sleep(delay)).await.is_none() {
                return;
            }
            self.events.emit(DriverEvent::Reconnecting { attempt: self.attempt });
        }
    }

    /// Reports a transient drop once per outage.
    fn report_drop(&mut self, detail: String) {
        if !self.down {
            self.down = true;
            self.events.emit(DriverEvent::Disconnected { kind: DropKind::Transient, detail });
        }
    }

    /// Forwards one attach's events until it ends.
    async fn pump(
        &mut self,
        mut events: futures::stream::BoxStream<'static, NetEvent>,
        session: &mut Option<SessionBlob>,
    ) -> Outcome {
        loop {
            let Some(next) = until_cancelled(&mut self.cancel, events.next()).await else {
                return Outcome::End;
            };
            let Some(event) = next else {
                return Outcome::Retry("the connection to the simulated network closed".into());
            };
            match event {
                NetEvent::Qr { code, expires_at } => {
                    self.down = false;
                    self.events.emit(DriverEvent::Qr { code, expires_at });
                }
                NetEvent::QrTimeout => {
                    self.events.emit(DriverEvent::QrTimeout);
                    return Outcome::End;
                }
                NetEvent::Paired(blob) => {
                    // Durable before anyone hears of it: a crash right after `Paired` must not
                    // lose the link.
                    if let Err(e) = self.store.save(SESSION_KEY, &blob.to_bytes()).await {
                        tracing::error!(instance_id = %self.instance_id, error = %e, "cannot save the sim session");
                        let _ = self.net.logout(&self.instance_id).await;
                        self.events.emit(DriverEvent::Disconnected {
                            kind: DropKind::LoggedOut,
                            detail: format!(
                                "the new session could not be saved ({e}); link the number again"
                            ),
                        });
                        return Outcome::End;
                    }
                    self.events.emit(DriverEvent::Paired {
                        phone: blob.phone.clone(),
                        jid: blob.jid.clone(),
                        lid: Some(blob.lid.clone()),
                    });
                    *session = Some(blob);
                }
                NetEvent::Connected => {
                    self.attempt = 0;
                    self.down = false;
                    self.events.emit(DriverEvent::Connected);
                }
                NetEvent::Replaced => {
                    // Another attach holds the number now (another node, or a restart of this
                    // one); reconnecting would fight it, and reporting a drop would garble the
                    // state the new holder reports.
                    tracing::info!(instance_id = %self.instance_id, "sim connection replaced by a newer one");
                    return Outcome::End;
                }
                NetEvent::Disconnected { kind: DropKind::Transient, detail } => {
                    return Outcome::Retry(detail);
                }
                NetEvent::Disconnected { kind: DropKind::LoggedOut, detail } => {
                    if let Err(e) = self.store.clear().await {
                        tracing::warn!(instance_id = %self.instance_id, error = %e, "cannot clear the sim session");
                    }
                    *session = None;
                    self.events
                        .emit(DriverEvent::Disconnected { kind: DropKind::LoggedOut, detail });
                    return Outcome::End;
                }
                NetEvent::Disconnected {
                    kind:
                        kind @ (DropKind::Banned | DropKind::TemporarilyBanned { .. } | DropKind::Ended),
                    detail,
                } => {
                    self.events.emit(DriverEvent::Disconnected { kind, detail });
                    return Outcome::End;
                }
                NetEvent::Message(msg) => self.committer.push(*msg),
                NetEvent::Receipt { id, status } => {
                    self.events.emit(DriverEvent::Receipt { message_id: id, status })
                }
                NetEvent::Call(call) => self.events.emit(DriverEvent::Call(call)),
            }
        }
    }
}
