//! Media files on the simulated network.
//!
//! Outgoing: the network only learns a file's metadata, but the sim connection reads the file
//! the way a real upload would ([`verify_file`]), so a gateway that declares the wrong size or
//! hash, or points at a missing file, fails in tests as it would against WhatsApp.
//!
//! Inbound: the network keeps what contacts send in memory ([`MediaStore`]) under a random
//! token, which is the message's download handle (`{"sim_media": "<token>"}`). A file given
//! by `size` alone is never stored: its bytes are a function of their offset
//! ([`MediaBytes::Synthetic`]), made again on each download, so a 100 MiB test file costs
//! nothing to keep.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

use axum::body::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use rand::Rng;
use sha2::{Digest, Sha256};

use super::transport::SimError;
use crate::{DriverError, OutgoingMedia};

/// The largest inbound file (100 MiB), given by bytes or by size.
pub const MAX_INBOUND_MEDIA_BYTES: u64 = 100 * 1024 * 1024;
/// The key of the download handle the sim puts in [`crate::InboundMedia::handle`].
pub const HANDLE_KEY: &str = "sim_media";
/// Downloads go out in pieces of this size. A multiple of 8, which [`fill_synthetic`] needs.
const CHUNK: usize = 64 * 1024;
/// How much inbound media (real bytes) the network keeps before it forgets the oldest files,
/// as WhatsApp's CDN forgets old media: a later download of those is `NotFound`.
const MEMORY_CAP: u64 = 512 * 1024 * 1024;
/// How many files the network remembers at most (made-up ones cost no bytes, but a token).
const ENTRY_CAP: usize = 100_000;
/// How much of a file is read at a time when checking it.
const READ_BUFFER: usize = 256 * 1024;

/// The bytes of one inbound file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MediaBytes {
    Data(Bytes),
    /// `n` bytes that depend only on their offset (see [`fill_synthetic`]).
    Synthetic(u64),
}

impl MediaBytes {
    pub(crate) fn len(&self) -> u64 {
        match self {
            MediaBytes::Data(b) => b.len() as u64,
            MediaBytes::Synthetic(n) => *n,
        }
    }

    /// What keeping it costs.
    fn memory(&self) -> u64 {
        match self {
            MediaBytes::Data(b) => b.len() as u64,
            MediaBytes::Synthetic(_) => 0,
        }
    }

    /// The bytes in pieces of at most 64 KiB; a made-up file is made piece by piece, so a
    /// download never holds it whole.
    pub(crate) fn chunks(self) -> BoxStream<'static, Result<Bytes, SimError>> {
        let total = self.len();
        stream::unfold(0u64, move |offset| {
            let bytes = self.clone();
            async move {
                if offset >= total {
                    return None;
                }
                let len = (total - offset).min(CHUNK as u64) as usize;
                let chunk = match &bytes {
                    MediaBytes::Data(b) => b.slice(offset as usize..offset as usize + len),
                    MediaBytes::Synthetic(_) => {
                        let mut buf = vec![0u8; len];
                        fill_synthetic(offset, &mut buf);
                        Bytes::from(buf)
                    }
                };
                Some((Ok(chunk), offset + len as u64))
            }
        })
        .boxed()
    }

    /// Lower-case hex SHA-256. Blocking: up to 100 MiB are hashed.
    pub(crate) fn sha256(&self) -> String {
        match self {
            MediaBytes::Data(b) => hex(&Sha256::digest(b)),
            MediaBytes::Synthetic(n) => {
                let mut hasher = Sha256::new();
                let mut buf = vec![0u8; CHUNK];
                let mut offset = 0u64;
                while offset < *n {
                    let len = (*n - offset).min(CHUNK as u64) as usize;
                    fill_synthetic(offset, &mut buf[..len]);
                    hasher.update(&buf[..len]);
                    offset += len as u64;
                }
                hex(&hasher.finalize())
            }
        }
    }
}

/// The made-up bytes at `offset..offset + buf.len()`: each 8-byte word is SplitMix64 of its
/// index, so any piece can be made without the ones before it, and the same size always
/// gives the same file (and hash). `offset` must be a multiple of 8.
pub(crate) fn fill_synthetic(offset: u64, buf: &mut [u8]) {
    debug_assert_eq!(offset % 8, 0, "made-up media is produced in whole words");
    let first = offset / 8;
    for (i, out) in buf.chunks_mut(8).enumerate() {
        let word = splitmix64(first + i as u64).to_le_bytes();
        out.copy_from_slice(&word[..out.len()]);
    }
}

fn splitmix64(index: u64) -> u64 {
    let mut z = index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes of made-up files by size, so a test that sends the same 20 MiB file many times
/// hashes it once.
#[derive(Default)]
pub(crate) struct SyntheticHashes(Mutex<HashMap<u64, String>>);

impl SyntheticHashes {
    const CAP: usize = 256;

    /// The SHA-256 of `bytes`, hashed off the async threads.
    pub(crate) async fn sha256(&self, bytes: &MediaBytes) -> Result<String, SimError> {
        let size = match bytes {
            MediaBytes::Synthetic(n) => Some(*n),
            MediaBytes::Data(_) => None,
        };
        if let Some(hash) = size.and_then(|n| self.lock().get(&n).cloned()) {
            return Ok(hash);
        }
        let owned = bytes.clone();
        let hash = tokio::task::spawn_blocking(move || owned.sha256())
            .await
            .map_err(|e| SimError::Unavailable(format!("hashing the media failed: {e}")))?;
        if let Some(n) = size {
            let mut memo = self.lock();
            if memo.len() >= Self::CAP {
                memo.clear();
            }
            memo.insert(n, hash.clone());
        }
        Ok(hash)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The inbound files the network still holds, by download token, oldest first out.
pub(crate) struct MediaStore {
    files: HashMap<String, MediaBytes>,
    order: VecDeque<String>,
    memory: u64,
    memory_cap: u64,
}

impl Default for MediaStore {
    fn default() -> Self {
        Self::with_cap(MEMORY_CAP)
    }
}

impl MediaStore {
    fn with_cap(memory_cap: u64) -> Self {
        Self { files: HashMap::new(), order: VecDeque::new(), memory: 0, memory_cap }
    }

    /// Keeps `bytes` and returns its token, forgetting the oldest files beyond the caps.
    pub(crate) fn insert(&mut self, bytes: MediaBytes) -> String {
        let token = loop {
            let raw: [u8; 24] = rand::thread_rng().gen();
            let token = hex(&raw);
            if !self.files.contains_key(&token) {
                break token;
            }
        };
        self.memory += bytes.memory();
        self.files.insert(token.clone(), bytes);
        self.order.push_back(token.clone());
        while self.memory > self.memory_cap || self.order.len() > ENTRY_CAP {
            let Some(old) = self.order.pop_front() else { break };
            if let Some(gone) = self.files.remove(&old) {
                self.memory -= gone.memory();
            }
        }
        token
    }

    pub(crate) fn get(&self, token: &str) -> Option<MediaBytes> {
        self.files.get(token).cloned()
    }
}

/// The answer to a download of a token the network does not hold.
pub(crate) fn not_found() -> SimError {
    SimError::NotFound("no such media on the simulated network (never sent, or expired)".into())
}

/// The download handle of a token.
pub(crate) fn handle(token: &str) -> serde_json::Value {
    serde_json::json!({ HANDLE_KEY: token })
}

/// The token in a download handle, if it is one of the sim's.
pub(crate) fn token(handle: &serde_json::Value) -> Option<&str> {
    handle.get(HANDLE_KEY)?.as_str().filter(|t| !t.is_empty())
}

/// Reads the file of an outgoing media, in pieces, and checks it is what the message says:
/// a missing file is `NotFound`, another size or hash is `Rejected`.
pub(crate) async fn verify_file(media: &OutgoingMedia) -> Result<(), DriverError> {
    let path = media.path.clone();
    let declared = media.size;
    let read = tokio::task::spawn_blocking(move || hash_file(&path, declared))
        .await
        .map_err(|e| DriverError::Transport(format!("reading the media file failed: {e}")))??;
    let shown = media.path.display();
    match read {
        FileRead::Larger => Err(DriverError::rejected(format!(
            "the media file {shown} is larger than the declared {declared} bytes"
        ))),
        FileRead::Whole { size, .. } if size != declared => Err(DriverError::rejected(format!(
            "the media file {shown} is {size} bytes, not the declared {declared}"
        ))),
        FileRead::Whole { sha256, .. } if !sha256.eq_ignore_ascii_case(&media.sha256) => {
            Err(DriverError::rejected(format!(
                "the media file {shown} has SHA-256 {sha256}, not the declared {}",
                media.sha256
            )))
        }
        FileRead::Whole { .. } => Ok(()),
    }
}

enum FileRead {
    Whole {
        size: u64,
        sha256: String,
    },
    /// It went past the declared size; reading stopped there.
    Larger,
}

/// Hashes the file at `path`, `READ_BUFFER` bytes at a time, giving up once it is longer
/// than `limit` (a wrong path may point at something huge).
fn hash_file(path: &Path, limit: u64) -> Result<FileRead, DriverError> {
    let cannot = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => {
            DriverError::NotFound(format!("the media file {} does not exist", path.display()))
        }
        _ => DriverError::rejected(format!("cannot read the media file {}: {e}", path.display())),
    };
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ_BUFFER];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(cannot(e)),
        };
        size += n as u64;
        if size > limit {
            return Ok(FileRead::Larger);
        }
        hasher.update(&buf[..n]);
    }
    Ok(FileRead::Whole { size, sha256: hex(&hasher.finalize()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_bytes_depend_only_on_their_offset() {
        let mut whole = vec![0u8; 3 * CHUNK + 5];
        fill_synthetic(0, &mut whole);
        let mut tail = vec![0u8; CHUNK + 5];
        fill_synthetic(2 * CHUNK as u64, &mut tail);
        assert_eq!(&whole[2 * CHUNK..], &tail[..]);
        assert_ne!(&whole[..8], &whole[8..16]);
        let bytes = MediaBytes::Synthetic(whole.len() as u64);
        assert_eq!(bytes.sha256(), MediaBytes::Data(Bytes::from(whole)).sha256());
    }

    #[test]
    fn the_store_forgets_the_oldest_files_beyond_its_memory() {
        let mut store = MediaStore::with_cap(1000);
        let big = || MediaBytes::Data(Bytes::from(vec![1u8; 500]));
        let first = store.insert(big());
        let second = store.insert(big());
        let free = store.insert(MediaBytes::Synthetic(MAX_INBOUND_MEDIA_BYTES));
        assert!(store.get(&first).is_some() && store.get(&free).is_some());
        store.insert(MediaBytes::Data(Bytes::from_static(b"x")));
        assert!(store.get(&first).is_none(), "the oldest went first");
        assert!(store.get(&second).is_some());
        assert_eq!(token(&handle(&second)), Some(second.as_str()));
        assert_eq!(token(&serde_json::json!({"url": "x"})), None);
    }
}
