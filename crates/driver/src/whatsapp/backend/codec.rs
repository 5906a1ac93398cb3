//! Encodes the values of the session store: JSON for the library's serde types (it tolerates the
//! fields later library versions add), and small fixed layouts for the rows that carry a
//! timestamp or a flag next to an opaque blob.

use serde::de::DeserializeOwned;
use serde::Serialize;
use whatsapp_rust::wacore::store::error::{Result, StoreError};
use whatsapp_rust::wacore::store::traits::MessageSecret;

/// A stored value that does not have the layout its namespace expects. The key is safe to show:
/// keys never contain secrets.
#[derive(Debug, thiserror::Error)]
#[error("the value under `{key}` is malformed: {why}")]
pub struct MalformedValue {
    pub key: String,
    pub why: String,
}

pub(super) fn malformed(key: &str, why: impl Into<String>) -> StoreError {
    StoreError::Serialization(Box::new(MalformedValue { key: key.to_string(), why: why.into() }))
}

pub(super) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Serialization(Box::new(e)))
}

pub(super) fn from_json<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| malformed(key, e.to_string()))
}

/// `expires`/`cutoff` scans need the time a row was written: 8 bytes big-endian unix seconds,
/// then the payload.
pub(super) fn stamped(at: i64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&at.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub(super) fn unstamp<'a>(key: &str, bytes: &'a [u8]) -> Result<(i64, &'a [u8])> {
    split_i64(key, bytes)
}

/// A one-time pre-key: one flag byte (1 = uploaded to the server), then the record. The flag is
/// kept because `mark_prekeys_uploaded` must update it without re-inserting the row.
pub(super) fn prekey(uploaded: bool, record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + record.len());
    out.push(u8::from(uploaded));
    out.extend_from_slice(record);
    out
}

pub(super) fn unprekey<'a>(key: &str, bytes: &'a [u8]) -> Result<(bool, &'a [u8])> {
    match bytes.split_first() {
        Some((0, record)) => Ok((false, record)),
        Some((1, record)) => Ok((true, record)),
        Some((flag, _)) => Err(malformed(key, format!("unknown pre-key flag {flag}"))),
        None => Err(malformed(key, "empty pre-key row")),
    }
}

pub(super) fn identity(key: &str, bytes: &[u8]) -> Result<[u8; 32]> {
    bytes.try_into().map_err(|_| malformed(key, format!("identity of {} bytes", bytes.len())))
}

pub(super) fn flag(value: bool) -> Vec<u8> {
    vec![u8::from(value)]
}

pub(super) fn unflag(key: &str, bytes: &[u8]) -> Result<bool> {
    match bytes {
        [0] => Ok(false),
        [1] => Ok(true),
        _ => Err(malformed(key, "not a flag")),
    }
}

/// One message secret: `expires_at` and `message_ts` (8 bytes big-endian each), then the
/// 32-byte secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SecretRow {
    pub expires_at: i64,
    pub message_ts: i64,
    pub secret: MessageSecret,
}

impl SecretRow {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.secret.len());
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        out.extend_from_slice(&self.message_ts.to_be_bytes());
        out.extend_from_slice(&self.secret);
        out
    }

    pub fn decode(key: &str, bytes: &[u8]) -> Result<Self> {
        let (expires_at, rest) = split_i64(key, bytes)?;
        let (message_ts, secret) = split_i64(key, rest)?;
        let secret = secret
            .try_into()
            .map_err(|_| malformed(key, format!("message secret of {} bytes", secret.len())))?;
        Ok(Self { expires_at, message_ts, secret })
    }
}

fn split_i64<'a>(key: &str, bytes: &'a [u8]) -> Result<(i64, &'a [u8])> {
    let Some((head, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(malformed(key, "shorter than its 8-byte timestamp"));
    };
    Ok((i64::from_be_bytes(*head), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_layouts_round_trip_and_reject_garbage() {
        let row = stamped(-5, b"abc");
        assert_eq!(unstamp("k", &row).unwrap(), (-5, &b"abc"[..]));
        assert!(unstamp("k", b"short").is_err());

        assert_eq!(unprekey("k", &prekey(true, b"r")).unwrap(), (true, &b"r"[..]));
        assert_eq!(unprekey("k", &prekey(false, b"")).unwrap(), (false, &b""[..]));
        assert!(unprekey("k", &[7, 1]).is_err());
        assert!(unprekey("k", &[]).is_err());

        let row = SecretRow { expires_at: 9, message_ts: 3, secret: [4; 32] };
        assert_eq!(SecretRow::decode("k", &row.encode()).unwrap(), row);
        assert!(SecretRow::decode("k", &row.encode()[..40]).is_err());

        assert!(identity("k", &[0; 31]).is_err());
        assert!(unflag("k", &[2]).is_err());
        let err = from_json::<u32>("lid/1", b"{").unwrap_err();
        assert!(matches!(err, StoreError::Serialization(_)), "{err:?}");
    }
}
