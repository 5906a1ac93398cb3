//! Sealing of secrets at rest: the master key and an XChaCha20-Poly1305 AEAD that turns a
//! plaintext into a self-describing blob and back.
//!
//! Blob layout: `version (1 byte, = 1) ‖ key id (4 bytes) ‖ nonce (24 bytes) ‖ ciphertext+tag`.
//! The key id is the first 4 bytes of `SHA-256("bzapper-key-id" ‖ key)`: it reveals nothing
//! useful about the key, yet lets us tell "sealed with another key" (an operator started the
//! gateway with the wrong `BZAPPER_MASTER_KEY`, or a rotation is half done) apart from
//! "tampered with" (the data itself is bad), which call for different fixes.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Length of a master key in bytes.
pub const KEY_LEN: usize = 32;
const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN;
const MIN_BLOB_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The text given as a master key is not base64 or does not decode to 32 bytes.
    #[error("invalid master key: {0}")]
    InvalidKey(String),
    /// The blob is not something `seal` produced (too short, unknown version).
    #[error("malformed sealed value: {0}")]
    Malformed(String),
    /// The blob was sealed with a different master key.
    #[error("sealed with another master key (key id {blob_key_id})")]
    OtherKey { blob_key_id: String },
    /// The key matches but authentication failed: the blob, or the associated data it is
    /// bound to, was altered.
    #[error("authentication failed: the sealed value was tampered with or is corrupted")]
    Tampered,
}

/// The 32-byte key every sealed value depends on. Its `Debug` shows only the key id.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; KEY_LEN]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("key_id", &hex(&key_id_of(&self.0))).finish()
    }
}

impl MasterKey {
    /// A fresh random key (for `bzapper keygen` and tests).
    pub fn generate() -> Self {
        let mut k = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut k);
        MasterKey(k)
    }

    /// Parses a key written as base64. Standard and URL-safe alphabets are accepted, with or
    /// without padding, and surrounding whitespace is ignored, because keys travel through
    /// env files and shells that are careless with both.
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SealError::InvalidKey(
                "it is empty; it must be 32 random bytes encoded as base64 \
                 (`bzapper keygen` prints one)"
                    .into(),
            ));
        }
        let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or_else(|| {
                SealError::InvalidKey(
                    "it is not valid base64; it must be 32 random bytes encoded as base64 \
                     (`bzapper keygen` prints one)"
                        .into(),
                )
            })?;
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            SealError::InvalidKey(format!(
                "it decodes to {} bytes but must be exactly {KEY_LEN} \
                 (`bzapper keygen` prints a valid one)",
                bytes.len()
            ))
        })?;
        Ok(MasterKey(key))
    }

    /// The key as standard padded base64, the form `from_base64` reads.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The key's public id as 8 hex digits.
    pub fn key_id(&self) -> String {
        hex(&key_id_of(&self.0))
    }
}

/// Seals and opens values with one master key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    key_id: [u8; KEY_ID_LEN],
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").field("key_id", &hex(&self.key_id)).finish()
    }
}

impl Sealer {
    pub fn new(key: MasterKey) -> Self {
        Sealer { cipher: XChaCha20Poly1305::new(&key.0.into()), key_id: key_id_of(&key.0) }
    }

    /// The id of the key this sealer uses, as 8 hex digits.
    pub fn key_id(&self) -> String {
        hex(&self.key_id)
    }

    /// Encrypts `plaintext`, bound to `aad`: the blob opens only with the same `aad`, so a
    /// value copied to another row (another instance, another key) does not open there.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let header = self.header();
        let full_aad = [&header[..], aad].concat();
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: &full_aad })
            // Encryption fails only for plaintexts beyond 256 GiB, which never reach here.
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory sizes");
        let mut blob = Vec::with_capacity(HEADER_LEN + NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&header);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        blob
    }

    /// Decrypts a blob made by [`Sealer::seal`] with the same `aad`.
    pub fn open(&self, aad: &[u8], blob: &[u8]) -> Result<Vec<u8>, SealError> {
        if blob.len() < MIN_BLOB_LEN {
            return Err(SealError::Malformed(format!(
                "{} bytes is shorter than the smallest sealed value ({MIN_BLOB_LEN})",
                blob.len()
            )));
        }
        if blob[0] != VERSION {
            return Err(SealError::Malformed(format!("unknown format version {}", blob[0])));
        }
        let blob_key_id = &blob[1..HEADER_LEN];
        if blob_key_id != self.key_id {
            return Err(SealError::OtherKey { blob_key_id: hex(blob_key_id) });
        }
        let (header, rest) = blob.split_at(HEADER_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        // The header is authenticated too, so a blob cannot be relabelled undetected.
        let full_aad = [header, aad].concat();
        self.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: &full_aad })
            .map_err(|_| SealError::Tampered)
    }

    fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = VERSION;
        h[1..].copy_from_slice(&self.key_id);
        h
    }
}

fn key_id_of(key: &[u8; KEY_LEN]) -> [u8; KEY_ID_LEN] {
    let digest = Sha256::new().chain_update(b"bzapper-key-id").chain_update(key).finalize();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = Sealer::new(MasterKey::generate());
        for msg in [&b""[..], b"x", &[7u8; 10_000]] {
            let blob = s.seal(b"inst-1", msg);
            assert_eq!(blob.len(), MIN_BLOB_LEN + msg.len());
            assert_eq!(blob[0], VERSION);
            assert_eq!(s.open(b"inst-1", &blob).unwrap(), msg);
        }
        // Random nonces: the same plaintext never seals to the same bytes.
        assert_ne!(s.seal(b"a", b"same"), s.seal(b"a", b"same"));
    }

    #[test]
    fn wrong_aad_fails() {
        let s = Sealer::new(MasterKey::generate());
        let blob = s.seal(b"inst-1\0key", b"secret");
        assert_eq!(s.open(b"inst-2\0key", &blob), Err(SealError::Tampered));
        assert_eq!(s.open(b"", &blob), Err(SealError::Tampered));
    }

    #[test]
    fn any_flipped_byte_after_the_key_id_fails() {
        let s = Sealer::new(MasterKey::generate());
        let blob = s.seal(b"aad", b"secret value");
        for i in HEADER_LEN..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            assert_eq!(s.open(b"aad", &bad), Err(SealError::Tampered), "byte {i}");
        }
    }

    #[test]
    fn another_key_is_reported_as_such() {
        let k1 = MasterKey::generate();
        let k2 = MasterKey::generate();
        let blob = Sealer::new(k1.clone()).seal(b"aad", b"secret");
        match Sealer::new(k2).open(b"aad", &blob) {
            Err(SealError::OtherKey { blob_key_id }) => assert_eq!(blob_key_id, k1.key_id()),
            other => panic!("expected OtherKey, got {other:?}"),
        }
    }

    #[test]
    fn malformed_blobs_are_reported_as_such() {
        let s = Sealer::new(MasterKey::generate());
        assert!(matches!(s.open(b"", b"short"), Err(SealError::Malformed(_))));
        let mut blob = s.seal(b"", b"x");
        blob[0] = 9;
        assert!(matches!(s.open(b"", &blob), Err(SealError::Malformed(_))));
    }

    #[test]
    fn keys_parse_print_and_hide() {
        let k = MasterKey::generate();
        let text = k.to_base64();
        assert_eq!(MasterKey::from_base64(&format!("  {text}\n")).unwrap(), k);
        assert_eq!(MasterKey::from_base64(text.trim_end_matches('=')).unwrap(), k);
        assert_eq!(k.key_id().len(), 8);
        assert_eq!(Sealer::new(k.clone()).key_id(), k.key_id());
        let debug = format!("{k:?} {:?}", Sealer::new(k.clone()));
        assert!(!debug.contains(&text) && !debug.contains(text.trim_end_matches('=')));
        assert!(debug.contains(&k.key_id()));

        let e = MasterKey::from_base64("not base64 !!").unwrap_err();
        assert!(e.to_string().contains("not valid base64"), "{e}");
        let e = MasterKey::from_base64(&STANDARD.encode([1u8; 16])).unwrap_err();
        assert!(e.to_string().contains("16 bytes"), "{e}");
        assert!(MasterKey::from_base64("").is_err());
    }

    #[test]
    fn key_id_is_the_documented_hash_prefix() {
        let k = MasterKey::from_base64(&STANDARD.encode([0u8; 32])).unwrap();
        let mut h = Sha256::new();
        h.update(b"bzapper-key-id");
        h.update([0u8; 32]);
        assert_eq!(k.key_id(), hex(&h.finalize()[..4]));
    }
}
