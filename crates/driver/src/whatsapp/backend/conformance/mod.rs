//! A conformance suite for [`SessionBackend`] over any [`SessionStore`]: it calls every method
//! of wacore's `Backend` on our backend and on wacore's `InMemoryBackend` side by side, asserts
//! the documented behaviour, and requires both to answer alike except where noted. Then it
//! re-creates the backend over the same store (a restart) and requires it to see the same state.
//!
//! It is public so that the server can run it over its real, sealed SQLite store. The store
//! must be empty; it is left holding the suite's data.
//!
//! Where the two backends differ on purpose, only ours is asserted:
//! - `mark_prekeys_uploaded` / the uploaded flag: `InMemoryBackend` does not keep the flag.
//! - `get_pn_mapping` after a LID moves to another phone: `InMemoryBackend` drops the phone's
//!   reverse entry even when it pointed to a different LID; ours (like the library's SQLite
//!   store) still finds the other LID mapped to that phone.
//! - `create` on an existing device: ours returns the same id (one device per number),
//!   `InMemoryBackend` counts up.
//! - Sent messages: `InMemoryBackend` caps them at 4096 rows; ours relies on the expiry sweep.
//! - Every batch method is one `SessionStore::write` call here (one transaction); this is
//!   counted with a wrapper store, which `InMemoryBackend` has no equivalent of.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use whatsapp_rust::wacore::store::traits::Backend;
use whatsapp_rust::wacore::store::InMemoryBackend;

use super::SessionBackend;
use crate::{SessionError, SessionStore, SessionWrite};

/// Calls `$call` with `$b` bound to each backend, requires both to succeed with the same value
/// (compared through `Debug`), and returns ours.
macro_rules! same {
    ($h:expr, $what:expr, |$b:ident| $call:expr) => {{
        let ours = {
            let $b: &dyn Backend = &$h.ours;
            $call.await
        }
        .unwrap_or_else(|e| panic!("{}: SessionBackend failed: {e:?}", $what));
        let reference = {
            let $b: &dyn Backend = &$h.reference;
            $call.await
        }
        .unwrap_or_else(|e| panic!("{}: InMemoryBackend failed: {e:?}", $what));
        assert_eq!(
            format!("{ours:?}"),
            format!("{reference:?}"),
            "{}: differs from InMemoryBackend",
            $what
        );
        ours
    }};
}

/// [`same!`] for a batch method, which must reach the store in exactly one write.
macro_rules! one_write {
    ($h:expr, $what:expr, |$b:ident| $call:expr) => {{
        let before = $h.writes();
        let out = same!($h, $what, |$b| $call);
        assert_eq!($h.writes() - before, 1, "{}: must be one SessionStore::write", $what);
        out
    }};
}

mod appsync;
mod buffers;
mod device;
mod msg_secret;
mod protocol;
mod signal;
mod snapshot;

/// Runs the whole suite over `store`, which must be empty. Panics on the first failure.
pub async fn run(store: Arc<dyn SessionStore>) {
    let existing = store.load_prefix("").await.expect("the store lists its keys");
    assert!(existing.is_empty(), "the conformance suite needs an empty store");

    let h = Harness::new(store);
    device::run(&h).await;
    signal::run(&h).await;
    appsync::run(&h).await;
    protocol::run(&h).await;
    buffers::run(&h).await;
    msg_secret::run(&h).await;
    snapshot::check_restart(&h).await;
}

/// Both backends, and the store under ours, wrapped to count its write calls.
pub(crate) struct Harness {
    ours: SessionBackend,
    reference: InMemoryBackend,
    store: Arc<CountingStore>,
}

impl Harness {
    fn new(store: Arc<dyn SessionStore>) -> Self {
        let store = Arc::new(CountingStore { inner: store, writes: AtomicUsize::new(0) });
        Self { ours: SessionBackend::new(store.clone()), reference: InMemoryBackend::new(), store }
    }

    fn writes(&self) -> usize {
        self.store.writes.load(Ordering::SeqCst)
    }

    /// A second backend over the same store, as after a process restart.
    fn restarted(&self) -> SessionBackend {
        SessionBackend::new(self.store.clone())
    }
}

/// Counts the `write` calls that reach the store, to prove batches are single transactions.
pub(crate) struct CountingStore {
    inner: Arc<dyn SessionStore>,
    writes: AtomicUsize,
}

#[async_trait]
impl SessionStore for CountingStore {
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, SessionError> {
        self.inner.load(key).await
    }

    async fn load_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, SessionError> {
        self.inner.load_prefix(prefix).await
    }

    async fn write(&self, writes: Vec<SessionWrite>) -> Result<(), SessionError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.write(writes).await
    }

    async fn clear(&self) -> Result<(), SessionError> {
        self.inner.clear().await
    }
}

// Addresses and ids shared by the scenarios and the final snapshot.

/// A phone user, one of its device addresses, and a user whose digits are a prefix of it.
const USER: &str = "5511987650001";
const ADDR: &str = "5511987650001:3@s.whatsapp.net";
const ADDR_PRIMARY: &str = "5511987650001@s.whatsapp.net";
const USER_PREFIX: &str = "551198765000";
const LID_USER: &str = "100000012345678";
const LID_ADDR: &str = "100000012345678:7@lid";
const OTHER_ADDR: &str = "5511999990002:1@s.whatsapp.net";
const SESSION_ONLY_USER: &str = "5511999990003";
const SESSION_ONLY_ADDR: &str = "5511999990003@s.whatsapp.net";
/// A component with the key separator and the escape character in it.
const ODD: &str = "odd/100%/x@lid";

const GROUP: &str = "120363021033254949@g.us";
const GROUP2: &str = "120363000000000001@g.us";

/// Creates the number's device over `store` (as the library does on a first start) and returns
/// its secrets as raw bytes: the identity, noise and signed pre-key private keys and the ADV
/// secret. A test over a sealing store greps the database file for them: none may appear.
pub async fn device_secrets(store: Arc<dyn SessionStore>) -> Vec<Vec<u8>> {
    use whatsapp_rust::wacore::store::traits::DeviceStore;
    let backend = SessionBackend::new(store);
    backend.create().await.expect("the device is created");
    let device = backend.load().await.expect("readable").expect("stored by create");
    vec![
        device.identity_key.private_key.serialize().to_vec(),
        device.noise_key.private_key.serialize().to_vec(),
        device.signed_pre_key.private_key.serialize().to_vec(),
        device.adv_secret_key.to_vec(),
    ]
}
