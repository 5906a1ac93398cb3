//! In-memory Signal stores for one fake party (a fake contact, or the client side in tests).
//!
//! wacore-libsignal's own in-memory stores are test-only and whatsapp-rust's adapters sit on
//! its persistent backend, so these are written here: plain maps, no persistence, no locks
//! (one `FakeContact` owns its stores and is used by one task at a time).
//!
//! The traits are declared with `async_trait`, which this crate does not depend on, so the
//! implementations spell out the signature `async_trait` expands to (a boxed `Send` future
//! with the `'life…: 'async_trait` bounds). Every operation is synchronous underneath, so each
//! body computes its answer first and returns it in a ready future.

use std::collections::HashMap;
use std::future::ready;

use futures::future::BoxFuture;
use wacore_libsignal::protocol::{
    Direction, IdentityChange, IdentityKey, IdentityKeyPair, IdentityKeyStore, PreKeyId,
    PreKeyRecord, PreKeyStore, ProtocolAddress, SenderKeyName, SenderKeyRecord, SenderKeyStore,
    SessionRecord, SessionStore, SignalProtocolError, SignedPreKeyId, SignedPreKeyRecord,
    SignedPreKeyStore,
};

type SignalResult<T> = Result<T, SignalProtocolError>;

/// Our identity key pair and registration id, and the identities of the peers we have met.
///
/// Every peer identity is trusted (and remembered): the fake server is not the place to test
/// identity-change warnings, and a client that re-pairs legitimately gets a new identity.
#[derive(Clone)]
pub struct MemIdentityStore {
    pair: IdentityKeyPair,
    registration_id: u32,
    known: HashMap<ProtocolAddress, IdentityKey>,
}

impl MemIdentityStore {
    pub fn new(pair: IdentityKeyPair, registration_id: u32) -> Self {
        Self { pair, registration_id, known: HashMap::new() }
    }

    pub fn identity_key_pair(&self) -> &IdentityKeyPair {
        &self.pair
    }

    pub fn registration_id(&self) -> u32 {
        self.registration_id
    }

    fn save(&mut self, address: &ProtocolAddress, identity: &IdentityKey) -> IdentityChange {
        match self.known.insert(address.clone(), *identity) {
            Some(old) if old != *identity => IdentityChange::ReplacedExisting,
            _ => IdentityChange::NewOrUnchanged,
        }
    }
}

impl IdentityKeyStore for MemIdentityStore {
    fn get_identity_key_pair<'life0, 'async_trait>(
        &'life0 self,
    ) -> BoxFuture<'async_trait, SignalResult<IdentityKeyPair>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(ready(Ok(self.pair.clone())))
    }

    fn get_local_registration_id<'life0, 'async_trait>(
        &'life0 self,
    ) -> BoxFuture<'async_trait, SignalResult<u32>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(ready(Ok(self.registration_id)))
    }

    fn save_identity<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 mut self,
        address: &'life1 ProtocolAddress,
        identity: &'life2 IdentityKey,
    ) -> BoxFuture<'async_trait, SignalResult<IdentityChange>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        let change = self.save(address, identity);
        Box::pin(ready(Ok(change)))
    }

    fn is_trusted_identity<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        _address: &'life1 ProtocolAddress,
        _identity: &'life2 IdentityKey,
        _direction: Direction,
    ) -> BoxFuture<'async_trait, SignalResult<bool>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(ready(Ok(true)))
    }

    fn get_identity<'life0, 'life1, 'async_trait>(
        &'life0 self,
        address: &'life1 ProtocolAddress,
    ) -> BoxFuture<'async_trait, SignalResult<Option<IdentityKey>>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(ready(Ok(self.known.get(address).copied())))
    }
}

/// One-time prekeys by id. A pkmsg names the one it used; the caller removes it afterwards
/// (`DecryptionResult::consumed_prekey_id`), so each is usable once.
#[derive(Clone, Default)]
pub struct MemPreKeyStore {
    keys: HashMap<PreKeyId, PreKeyRecord>,
}

impl MemPreKeyStore {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn insert(&mut self, id: PreKeyId, record: PreKeyRecord) {
        self.keys.insert(id, record);
    }

    pub fn remove(&mut self, id: PreKeyId) {
        self.keys.remove(&id);
    }
}

impl PreKeyStore for MemPreKeyStore {
    fn get_pre_key<'life0, 'async_trait>(
        &'life0 self,
        prekey_id: PreKeyId,
    ) -> BoxFuture<'async_trait, SignalResult<PreKeyRecord>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let found = self.keys.get(&prekey_id).cloned().ok_or(SignalProtocolError::InvalidPreKeyId);
        Box::pin(ready(found))
    }

    fn save_pre_key<'life0, 'life1, 'async_trait>(
        &'life0 mut self,
        prekey_id: PreKeyId,
        record: &'life1 PreKeyRecord,
    ) -> BoxFuture<'async_trait, SignalResult<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.insert(prekey_id, record.clone());
        Box::pin(ready(Ok(())))
    }

    fn remove_pre_key<'life0, 'async_trait>(
        &'life0 mut self,
        prekey_id: PreKeyId,
    ) -> BoxFuture<'async_trait, SignalResult<()>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.remove(prekey_id);
        Box::pin(ready(Ok(())))
    }
}

/// Signed prekeys by id (a fake contact has one; rotation is not simulated).
#[derive(Clone, Default)]
pub struct MemSignedPreKeyStore {
    keys: HashMap<SignedPreKeyId, SignedPreKeyRecord>,
}

impl MemSignedPreKeyStore {
    pub fn insert(&mut self, id: SignedPreKeyId, record: SignedPreKeyRecord) {
        self.keys.insert(id, record);
    }
}

impl SignedPreKeyStore for MemSignedPreKeyStore {
    fn get_signed_pre_key<'life0, 'async_trait>(
        &'life0 self,
        signed_prekey_id: SignedPreKeyId,
    ) -> BoxFuture<'async_trait, SignalResult<SignedPreKeyRecord>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let found = self
            .keys
            .get(&signed_prekey_id)
            .cloned()
            .ok_or(SignalProtocolError::InvalidSignedPreKeyId);
        Box::pin(ready(found))
    }

    fn save_signed_pre_key<'life0, 'life1, 'async_trait>(
        &'life0 mut self,
        signed_prekey_id: SignedPreKeyId,
        record: &'life1 SignedPreKeyRecord,
    ) -> BoxFuture<'async_trait, SignalResult<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.insert(signed_prekey_id, record.clone());
        Box::pin(ready(Ok(())))
    }
}

/// Sessions by remote address. The checkout hooks keep their defaults: load, then store.
#[derive(Clone, Default)]
pub struct MemSessionStore {
    sessions: HashMap<ProtocolAddress, SessionRecord>,
}

impl MemSessionStore {
    pub fn contains(&self, address: &ProtocolAddress) -> bool {
        self.sessions.contains_key(address)
    }
}

impl SessionStore for MemSessionStore {
    fn load_session<'life0, 'life1, 'async_trait>(
        &'life0 self,
        address: &'life1 ProtocolAddress,
    ) -> BoxFuture<'async_trait, SignalResult<Option<SessionRecord>>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(ready(Ok(self.sessions.get(address).cloned())))
    }

    fn has_session<'life0, 'life1, 'async_trait>(
        &'life0 self,
        address: &'life1 ProtocolAddress,
    ) -> BoxFuture<'async_trait, SignalResult<bool>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(ready(Ok(self.contains(address))))
    }

    fn store_session<'life0, 'life1, 'async_trait>(
        &'life0 mut self,
        address: &'life1 ProtocolAddress,
        record: SessionRecord,
    ) -> BoxFuture<'async_trait, SignalResult<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.sessions.insert(address.clone(), record);
        Box::pin(ready(Ok(())))
    }
}

/// Group sender keys by (group, sender address): our own chains (to encrypt, with the
/// private signing key) and the ones other senders distributed to us. The locks keep their
/// uncontended defaults (one owner, one task at a time).
#[derive(Clone, Default)]
pub struct MemSenderKeyStore {
    keys: HashMap<SenderKeyName, SenderKeyRecord>,
}

impl MemSenderKeyStore {
    pub fn contains(&self, name: &SenderKeyName) -> bool {
        self.keys.contains_key(name)
    }
}

impl SenderKeyStore for MemSenderKeyStore {
    fn store_sender_key<'life0, 'life1, 'async_trait>(
        &'life0 mut self,
        sender_key_name: &'life1 SenderKeyName,
        record: SenderKeyRecord,
    ) -> BoxFuture<'async_trait, SignalResult<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.keys.insert(sender_key_name.clone(), record);
        Box::pin(ready(Ok(())))
    }

    fn load_sender_key<'life0, 'life1, 'async_trait>(
        &'life0 self,
        sender_key_name: &'life1 SenderKeyName,
    ) -> BoxFuture<'async_trait, SignalResult<Option<SenderKeyRecord>>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(ready(Ok(self.keys.get(sender_key_name).cloned())))
    }
}

/// The stores of one party, kept apart so libsignal can borrow them mutably at once.
#[derive(Clone)]
pub struct MemStores {
    pub identity: MemIdentityStore,
    pub pre_keys: MemPreKeyStore,
    pub signed_pre_keys: MemSignedPreKeyStore,
    pub sessions: MemSessionStore,
    pub sender_keys: MemSenderKeyStore,
}

impl MemStores {
    pub fn new(pair: IdentityKeyPair, registration_id: u32) -> Self {
        Self {
            identity: MemIdentityStore::new(pair, registration_id),
            pre_keys: MemPreKeyStore::default(),
            signed_pre_keys: MemSignedPreKeyStore::default(),
            sessions: MemSessionStore::default(),
            sender_keys: MemSenderKeyStore::default(),
        }
    }
}
