//! The storage interface for media bytes: objects named by a key (`ten_1/med_1.bin`), written
//! whole from a stream, read back as a stream (whole or a range), listed and deleted. Two
//! backends: [`local::LocalBlobs`], files under `<data-dir>/media` (the embedded default), and
//! [`s3::S3Blobs`], an S3-compatible object store that every node of a cluster shares.
//!
//! Keys are built by the media store from path-safe components joined by `/`; a backend never
//! sees `..`, an empty segment or a segment starting with `.` (it refuses such a key).

pub mod local;
pub mod s3;

#[cfg(test)]
pub(crate) mod conformance;

use std::ops::Range;
use std::path::{Path, PathBuf};

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

use super::error::MediaError;

/// Bytes in, or out, of a backend. An `Err` from a stream given to [`Blobs::put`] aborts the
/// write and is returned by it unchanged (a size or type check failing mid-stream).
pub type ByteStream<'a> = BoxStream<'a, Result<Bytes, MediaError>>;

/// One stored object, as a listing or [`Blobs::head`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub key: String,
    pub size: u64,
    /// When it was written (the sweep's clock for the inbound cache and orphans).
    pub modified: DateTime<Utc>,
}

/// An object being read: its whole size, and the bytes asked for.
pub struct BlobRead {
    /// The size of the whole object (not of the range).
    pub size: u64,
    pub body: ByteStream<'static>,
}

/// Where media bytes are kept.
#[async_trait::async_trait]
pub trait Blobs: Send + Sync + 'static {
    /// Writes `key` from `body`, replacing what was there. Readers see the whole new object
    /// once this returns `Ok`, never a part of it; on `Err` (the body's own error, returned
    /// unchanged, or the backend's) nothing new is visible under `key`. Returns the size.
    async fn put(&self, key: &str, body: ByteStream<'_>) -> Result<u64, MediaError>;

    /// Moves the local file `file` in as `key` (it is gone from `file` afterwards, on success).
    async fn put_file(&self, key: &str, file: &Path) -> Result<u64, MediaError>;

    /// The object `key`, whole or `range` of it: a range must start before the object's end
    /// (callers clamp it to the size they know) and one ending past the end stops there.
    /// [`MediaError::NotFound`] when absent.
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<BlobRead, MediaError>;

    /// The object's size and time, `None` when absent.
    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, MediaError>;

    /// Removes `key`; an absent key is not an error.
    async fn delete(&self, key: &str) -> Result<(), MediaError>;

    /// Every object under `prefix` (a key's leading segments; `""` for all), at any depth.
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, MediaError>;

    /// The object's file on this machine, when the backend keeps one there (the driver
    /// reads a file to send it; other backends are copied to a local file first).
    fn local_path(&self, key: &str) -> Option<PathBuf>;

    /// Removes what interrupted writes left behind that is older than `before` (files being
    /// written, on the local disk); how many. Incomplete S3 multipart uploads are the
    /// bucket's lifecycle rule's to remove (docs/cluster.md).
    async fn sweep_scratch(&self, _before: DateTime<Utc>) -> Result<usize, MediaError> {
        Ok(0)
    }

    /// Where the bytes are, for logs (never a secret).
    fn describe(&self) -> String;
}

/// Whether `key` is one a backend accepts: non-empty segments of `[A-Za-z0-9_.-]`, none
/// starting with `.` (no `..`, no hidden scratch directory).
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        })
}

pub(super) fn check_key(key: &str) -> Result<(), MediaError> {
    if is_valid_key(key) {
        Ok(())
    } else {
        Err(MediaError::Io(format!("`{key}` is not a valid media key")))
    }
}

/// Reads a whole (small) object into memory: records, and the first bytes of a file.
pub async fn read_all(mut read: BlobRead, max: usize) -> Result<Vec<u8>, MediaError> {
    use futures::StreamExt;
    let mut out = Vec::new();
    while let Some(chunk) = read.body.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > max {
            return Err(MediaError::Io(format!(
                "an object larger than {max} bytes was read whole"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::is_valid_key;

    #[test]
    fn keys_stay_inside_the_store() {
        for good in ["ten_1/med_1.bin", "ten_1/inbound/ins_1/3EB0", "a"] {
            assert!(is_valid_key(good), "{good}");
        }
        for bad in ["", "/a", "a/", "a//b", "../a", "a/../b", ".tmp/x", "a/.spool", "a b", "a\\b"] {
            assert!(!is_valid_key(bad), "{bad}");
        }
    }
}
