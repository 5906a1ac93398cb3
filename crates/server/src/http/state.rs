//! The state every handler shares: the use cases, and what only the HTTP layer needs (the
//! key cache, the admin token's hash, the shutdown signal, and the cluster handles that pass a
//! holder-bound call on to the node holding the number).

use std::ops::Deref;
use std::sync::Arc;

use crate::app::App;
use crate::cluster::Cluster;
use crate::http::key_cache::KeyCache;
use crate::http::rate_limit::RateLimiter;
use crate::runtime::leases::LeaseKeeper;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    /// The use cases.
    pub app: App,
    /// API key records recently used (see `key_cache`).
    pub keys: KeyCache,
    /// Each API key's request rate.
    pub rate_limiter: RateLimiter,
    /// SHA-256 of the admin token; the token itself is not kept.
    pub admin_token_hash: [u8; 32],
    /// Turns true when the gateway shuts down: open streams (SSE) end so that the graceful
    /// shutdown does not wait for them forever.
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// This node among several (PostgreSQL); `None` when the gateway is the only node.
    pub cluster: Option<Arc<Cluster>>,
    /// Which node holds which number (with `cluster`).
    pub leases: Option<Arc<LeaseKeeper>>,
    /// The outbound guard's settings: webhook and alert URLs are checked against them when
    /// they are registered (the guard checks them again at each delivery).
    pub outbound: crate::outbound::Guard,
    /// Passes calls about a number on to the node holding it.
    pub forwarder: reqwest::Client,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
