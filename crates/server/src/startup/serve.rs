//! Serves the router on the bound listener with the server's limits ([`ServerLimits`]): at most
//! `max_connections` connections at once (the rest wait in the listen backlog), a deadline for
//! each request head, an idle timeout between kept-alive requests, a pause limit on request
//! bodies, and a graceful shutdown that stops accepting and lets answers in flight finish.
//!
//! Why not `axum::serve`: it exposes none of these. Why not hyper's own
//! `header_read_timeout`: hyper starts that clock as soon as a kept-alive connection waits for
//! its next request, so the idle timeout could never be longer than the header timeout. The
//! [`Watchdog`] here tells the two apart (it sees the first byte of a head and the end of every
//! response) and never times out a connection while a response is being sent, so SSE streams
//! live as long as the client reads them.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use crate::startup::config::ServerLimits;

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, asks every
/// connection to close after its answer in flight, and returns once all have closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Dropped when the shutdown comes: each connection sees its sender close.
    let (stop_tx, stop_rx) = watch::channel(());
    // Each connection holds a receiver; all of them dropped means every connection closed.
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A slot first: beyond the cap, connections are not accepted and wait in the
        // kernel's listen backlog (they are served as soon as a slot frees).
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let tcp = tokio::select! {
            a = listener.accept() => match a {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let router = router.clone();
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            serve_connection(tcp, router, limits, &mut stop).await;
            drop(slot);
            drop(done);
        });
    }
    drop(listener);
    drop(stop_rx);
    drop(stop_tx);
    drop(done_rx);
    done_tx.closed().await;
}

/// Errors of one connection (the client reset it before it was accepted) are skipped; others
/// (out of file descriptors) are waited out, as `axum::serve` does, rather than spun on.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn serve_connection(
    tcp: TcpStream,
    router: Router,
    limits: ServerLimits,
    stop: &mut watch::Receiver<()>,
) {
    // Small writes (SSE events) go out at once rather than waiting for the previous
    // segment's ACK (Nagle).
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "setting TCP_NODELAY failed");
    }
    let watchdog = Arc::new(Watchdog::new(limits));
    let io = TokioIo::new(Watched { inner: tcp, watchdog: watchdog.clone() });
    let service = {
        let watchdog = watchdog.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let busy = Busy::start(watchdog.clone());
            let req = req.map(|b| Body::new(TimeoutBody::new(limits.body_read_timeout, b)));
            let answer = router.clone().oneshot(req);
            async move {
                let Ok(res) = answer.await;
                // The connection is busy until the response body is done or dropped: the
                // guard lives in the body (an SSE stream keeps it for as long as it runs).
                Ok::<_, Infallible>(res.map(|b| {
                    Body::new(b.map_err(move |e| {
                        let _busy = &busy;
                        e
                    }))
                }))
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        // The watchdog keeps the head deadline (hyper's would also cut idle connections).
        .header_read_timeout(None)
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            // Nothing in flight and the client too slow or silent: closed.
            _ = watchdog.expired() => {
                tracing::debug!("connection closed by a read or idle timeout");
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Where a connection is between requests, for its timeouts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Waiting for a request's first byte: since the connection opened (`first`), or since
    /// the last response ended.
    Waiting { since: Instant, first: bool },
    /// Bytes of a request head have arrived since `since` (for a first request: since the
    /// connection opened); the head is not yet complete.
    Head { since: Instant },
    /// This many requests are being answered (a head was complete).
    Busy(usize),
}

/// A connection's read and idle timeouts: the reads of its socket and the start and end of
/// each answer move its [`Phase`]; [`Watchdog::expired`] resolves when a phase overstays.
struct Watchdog {
    limits: ServerLimits,
    phase: Mutex<Phase>,
    moved: Notify,
}

impl Watchdog {
    fn new(limits: ServerLimits) -> Self {
        Watchdog {
            limits,
            phase: Mutex::new(Phase::Waiting { since: Instant::now(), first: true }),
            moved: Notify::new(),
        }
    }

    fn set(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut p = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        let next = f(*p);
        if next != *p {
            *p = next;
            self.moved.notify_one();
        }
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes came from the client.
    fn read(&self) {
        self.set(|p| match p {
            Phase::Waiting { since, first: true } => Phase::Head { since },
            Phase::Waiting { first: false, .. } => Phase::Head { since: Instant::now() },
            other => other,
        });
    }

    fn answer_started(&self) {
        self.set(|p| match p {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        });
    }

    fn answer_ended(&self) {
        self.set(|p| match p {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Waiting { since: Instant::now(), first: false },
        });
    }

    /// When the current phase times out, if it does.
    fn deadline(&self) -> Option<Instant> {
        match self.phase() {
            Phase::Waiting { since, first: true } | Phase::Head { since } => {
                Some(since + self.limits.header_read_timeout)
            }
            Phase::Waiting { since, first: false } => Some(since + self.limits.idle_timeout),
            Phase::Busy(_) => None,
        }
    }

    /// Resolves once the connection has stayed in one phase past its deadline.
    async fn expired(&self) {
        loop {
            let moved = self.moved.notified();
            match self.deadline() {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {
                            if self.deadline().is_some_and(|d| d <= Instant::now()) {
                                return;
                            }
                        }
                        _ = moved => {}
                    }
                }
                None => moved.await,
            }
        }
    }
}

/// Marks the connection busy from a request's head to the end of its response.
struct Busy(Arc<Watchdog>);

impl Busy {
    fn start(w: Arc<Watchdog>) -> Self {
        w.answer_started();
        Busy(w)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.answer_ended();
    }
}

/// The client socket, telling the watchdog when bytes arrive.
struct Watched {
    inner: TcpStream,
    watchdog: Arc<Watchdog>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watchdog.read();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ServerLimits {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_new_connection_gets_the_header_timeout() {
        let w = Watchdog::new(limits());
        let t0 = Instant::now();
        w.expired().await;
        assert_eq!(t0.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_head_counts_from_the_connection_and_a_later_one_from_its_first_byte() {
        let w = Arc::new(Watchdog::new(limits()));
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(4)).await;
        w.read();
        w.expired().await;
        assert_eq!(t0.elapsed(), Duration::from_secs(10), "trickling does not extend it");

        let w = Arc::new(Watchdog::new(limits()));
        w.read();
        drop(Busy::start(w.clone()));
        // Kept alive: idle for up to 60 s, then 10 s for the head once it begins.
        tokio::time::sleep(Duration::from_secs(50)).await;
        w.read();
        let t1 = Instant::now();
        w.expired().await;
        assert_eq!(t1.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_kept_alive_connection_gets_the_idle_timeout() {
        let w = Arc::new(Watchdog::new(limits()));
        w.read();
        drop(Busy::start(w.clone()));
        let t0 = Instant::now();
        w.expired().await;
        assert_eq!(t0.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_in_flight_never_times_out() {
        let w = Arc::new(Watchdog::new(limits()));
        w.read();
        let busy = Busy::start(w.clone());
        let waited = tokio::time::timeout(Duration::from_secs(3600), w.expired()).await;
        assert!(waited.is_err(), "a long answer (an SSE stream) is not cut");
        drop(busy);
        let t0 = Instant::now();
        w.expired().await;
        assert_eq!(t0.elapsed(), Duration::from_secs(60));
    }
}
