//! What the media store keeps of a file (its record), its limits, and which ids may name a
//! path.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The longest id (tenant, media, instance, WhatsApp message) that may name a path.
const MAX_ID_LEN: usize = 128;

#[derive(Debug, Clone)]
pub struct MediaLimits {
    /// The largest file, in bytes (a kind may have a smaller cap: stickers).
    pub max_bytes: u64,
    /// How long a stored file and a cached inbound file are kept.
    pub retention: Duration,
    /// The longest a URL download may take, from the request to the last byte.
    pub fetch_timeout: Duration,
}

/// A stored file's record (its `.json` sidecar).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredMedia {
    /// `med_…`
    pub id: String,
    pub tenant_id: String,
    /// Sniffed from the bytes when recognisable, else as declared, else
    /// `application/octet-stream`.
    pub mime: String,
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    pub file_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// An id that may name a path: 1 to 128 of `[A-Za-z0-9_-]` (no dots, no separators).
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
