//! The fault run's own HTTP receivers on loopback: one per webhook, and the alert target. Each
//! notes what it received and can be put down (503) or slowed for a while by a fault.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;

/// How a receiver answers now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// 503 to everything (and nothing is noted: the attempt failed).
    Down,
    /// 200 after this long.
    Slow(Duration),
}

/// One request a receiver accepted.
#[derive(Clone, Debug)]
pub struct Got {
    /// `X-Bzapper-Delivery` (empty for an alert, which has none).
    pub delivery: String,
    /// The event's id: the envelope's `id`, or an alert's `event.id`.
    pub event_id: u64,
    pub event_type: String,
}

struct Inner {
    mode: Mutex<Mode>,
    /// Bumped by every mode change, so a timer ending an older fault leaves a newer one alone.
    generation: AtomicU64,
    got: Mutex<Vec<Got>>,
    refused: AtomicU64,
}

/// A receiver listening on `url` until the runtime ends.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Inner>,
}

impl Receiver {
    pub async fn start(path: &str) -> Receiver {
        let inner = Arc::new(Inner {
            mode: Mutex::new(Mode::Up),
            generation: AtomicU64::new(0),
            got: Mutex::new(Vec::new()),
            refused: AtomicU64::new(0),
        });
        let app = Router::new().route(path, post(receive)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a receiver port");
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, inner }
    }

    /// Puts the receiver in `mode` for `for_how_long`, then back up (unless another fault
    /// changed it meanwhile).
    pub fn set_for(&self, mode: Mode, for_how_long: Duration) {
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        *self.inner.mode.lock().unwrap() = mode;
        let inner = self.inner.clone();
        tokio::spawn(async move {
            tokio::time::sleep(for_how_long).await;
            if inner.generation.load(Ordering::SeqCst) == generation {
                *inner.mode.lock().unwrap() = Mode::Up;
            }
        });
    }

    /// Back up now, whatever fault was on.
    pub fn heal(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        *self.inner.mode.lock().unwrap() = Mode::Up;
    }

    pub fn got(&self) -> Vec<Got> {
        self.inner.got.lock().unwrap().clone()
    }

    /// Requests answered 503 while down.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mode = *inner.mode.lock().unwrap();
    match mode {
        Mode::Down => {
            inner.refused.fetch_add(1, Ordering::Relaxed);
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        Mode::Slow(d) => tokio::time::sleep(d).await,
        Mode::Up => {}
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // A webhook delivery is the envelope; an alert carries it under `event`.
    let envelope = if v.get("event").is_some_and(Value::is_object) { &v["event"] } else { &v };
    let event_id = envelope["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
    let delivery = headers
        .get("x-bzapper-delivery")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let event_type = envelope["type"].as_str().unwrap_or_default().to_string();
    inner.got.lock().unwrap().push(Got { delivery, event_id, event_type });
    StatusCode::OK
}
