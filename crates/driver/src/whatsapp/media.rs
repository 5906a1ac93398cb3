//! Media files both ways: the upload of a file we send and the download of one a contact
//! sent, in constant memory whatever the file's size.
//!
//! **Upload.** WhatsApp media is AES-256-CBC under a fresh random key, then HMAC'd; the CDN
//! token is the hash of the ciphertext, so the whole ciphertext must be known before the
//! first byte is sent, and the upload may read it again (host failover, a resumed upload
//! from an offset). Rather than hold the ciphertext in memory or stage it on disk, the file
//! is encrypted twice: once to learn the key and hashes (output discarded), then again as it
//! is sent, by [`EncryptingFile`], with the same key (the IV derives from the key, so the
//! second pass yields the same bytes).
//!
//! **Download.** An inbound media message becomes a [`MediaHandle`], the JSON the server stores
//! as `InboundMedia::handle` and hands back to `download_media`; it keeps everything the
//! library needs to find and decrypt the file without the original message:
//!
//! ```json
//! {"media_type": "image", "direct_path": "/v/t62.7118-24/…", "url": "https://mmg.whatsapp.net/…",
//!  "media_key": "<base64>", "file_enc_sha256": "<base64>", "file_sha256": "<base64>",
//!  "file_length": 48213,
//!  "message": {"id": "3EB0…", "chat": "120363…@g.us", "from_me": false, "participant": "…@lid"}}
//! ```
//!
//! Byte fields are standard base64; absent fields are left out (`static_url` appears for
//! channel media that has one). `message` names the message the file came in: once the CDN
//! has dropped the file (it keeps files some weeks), the download asks the sender's phone to
//! upload it again (WhatsApp's media retry) and tries once more.

use std::error::Error as StdError;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bzapper_core::MediaKind;
use serde::{Deserialize, Serialize};
use whatsapp_rust::download::{Downloadable, MediaType};
use whatsapp_rust::features::{MediaRetryResult, MediaReuploadRequest};
use whatsapp_rust::wacore::upload::{
    encrypt_media_streaming_with_key, encrypted_len, MediaEncryptor, UploadSource,
};
use whatsapp_rust::{Client, ErrorChainExt};

use super::outgoing::Uploaded;
use crate::{DriverError, InboundMedia, OutgoingMedia};

/// The library's media type of a kind: it picks the key derivation and the CDN path.
pub(crate) fn media_type(kind: MediaKind) -> MediaType {
    match kind {
        MediaKind::Image => MediaType::Image,
        MediaKind::Video => MediaType::Video,
        MediaKind::Audio => MediaType::Audio,
        MediaKind::Document => MediaType::Document,
        MediaKind::Sticker => MediaType::Sticker,
    }
}

/// Where an inbound media file is and how to decrypt it (see the module docs for its JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MediaHandle {
    pub media_type: MediaKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_path: Option<String>,
    /// The full CDN URL the sender got; kept for the record, the download derives its URLs
    /// from `direct_path` and the hosts the server names at download time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A plain URL to fetch as is (channel media).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_url: Option<String>,
    #[serde(default, with = "b64", skip_serializing_if = "Option::is_none")]
    pub media_key: Option<Vec<u8>>,
    #[serde(default, with = "b64", skip_serializing_if = "Option::is_none")]
    pub file_enc_sha256: Option<Vec<u8>>,
    #[serde(default, with = "b64", skip_serializing_if = "Option::is_none")]
    pub file_sha256: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_length: Option<u64>,
    /// The message that carried the file, to ask the sender's phone for a fresh upload once
    /// the CDN has dropped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MediaOrigin>,
}

/// The message a media file came in, as the library addresses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MediaOrigin {
    pub id: String,
    pub chat: String,
    #[serde(default)]
    pub from_me: bool,
    /// The sender, in a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
}

impl MediaHandle {
    /// The handle of an inbound media message (any of the library's media protobufs).
    pub(crate) fn of(kind: MediaKind, media: &dyn Downloadable, url: Option<&str>) -> Self {
        MediaHandle {
            media_type: kind,
            direct_path: media.direct_path().map(str::to_string),
            url: url.map(str::to_string),
            static_url: media.static_url().map(str::to_string),
            media_key: media.media_key().map(<[u8]>::to_vec),
            file_enc_sha256: media.file_enc_sha256().map(<[u8]>::to_vec),
            file_sha256: media.file_sha256().map(<[u8]>::to_vec),
            file_length: media.file_length(),
            message: None,
        }
    }

    pub(crate) fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a media handle is plain data")
    }

    /// The handle as it is downloaded: a `static_url` is kept only when it is an `https://` URL
    /// on WhatsApp's own media hosts ([`is_whatsapp_media_url`]). The sender writes that field,
    /// and the library fetches it as it is, so anything else would let a contact make the
    /// gateway request any URL (an internal address among them) when the tenant downloads the
    /// file; without it the file is fetched by its `direct_path` from the hosts WhatsApp's
    /// server names, as for every other message.
    pub(crate) fn trusted(mut self) -> Self {
        if self.static_url.as_deref().is_some_and(|u| !is_whatsapp_media_url(u)) {
            tracing::info!("an inbound media's static_url is not on WhatsApp's hosts; ignored");
            self.static_url = None;
        }
        self
    }

    /// Reads a handle back; one this driver did not write is refused (it cannot be fetched).
    pub(crate) fn from_value(value: &serde_json::Value) -> Result<Self, DriverError> {
        serde_json::from_value(value.clone())
            .map_err(|e| DriverError::rejected(format!("not a WhatsApp media handle: {e}")))
    }
}

/// The domains WhatsApp serves media from (`mmg.whatsapp.net` and its siblings, Meta's CDN).
const WHATSAPP_MEDIA_DOMAINS: [&str; 3] = ["whatsapp.net", "whatsapp.com", "fbcdn.net"];

/// Whether `url` is an `https://` URL whose host is one of [`WHATSAPP_MEDIA_DOMAINS`] or a
/// name under one (never an IP address, never another port's service by name alone).
pub(crate) fn is_whatsapp_media_url(url: &str) -> bool {
    let Ok(url) = url::Url::parse(url) else { return false };
    let Some(url::Host::Domain(host)) = url.host() else { return false };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    url.scheme() == "https"
        && url.port().is_none()
        && url.username().is_empty()
        && WHATSAPP_MEDIA_DOMAINS
            .iter()
            .any(|d| host == *d || host.strip_suffix(d).is_some_and(|rest| rest.ends_with('.')))
}

impl Downloadable for MediaHandle {
    fn direct_path(&self) -> Option<&str> {
        self.direct_path.as_deref()
    }
    fn media_key(&self) -> Option<&[u8]> {
        self.media_key.as_deref()
    }
    fn file_enc_sha256(&self) -> Option<&[u8]> {
        self.file_enc_sha256.as_deref()
    }
    fn file_sha256(&self) -> Option<&[u8]> {
        self.file_sha256.as_deref()
    }
    fn file_length(&self) -> Option<u64> {
        self.file_length
    }
    fn app_info(&self) -> MediaType {
        media_type(self.media_type)
    }
    fn static_url(&self) -> Option<&str> {
        self.static_url.as_deref()
    }
}

/// Optional bytes as standard base64 in the handle's JSON.
mod b64 {
    use super::*;

    pub fn serialize<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(bytes) => s.serialize_str(&B64.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| B64.decode(s.as_bytes()).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Downloads and decrypts `media` into `dest` (created or truncated), streaming: the library
/// decrypts as it reads and checks the MAC and hashes before it returns. A file the CDN no
/// longer has is asked again from the sender's phone (WhatsApp's media retry), once. A failed
/// download leaves no file behind.
pub(crate) async fn download(
    client: &Client,
    media: &InboundMedia,
    dest: &Path,
) -> Result<u64, DriverError> {
    let handle = MediaHandle::from_value(&media.handle)?.trusted();
    match fetch(client, &handle, dest).await {
        Err(DriverError::NotFound(why)) => match reupload(client, &handle).await {
            Some(direct_path) => {
                let fresh = MediaHandle { direct_path: Some(direct_path), ..handle };
                fetch(client, &fresh, dest).await
            }
            None => Err(DriverError::NotFound(why)),
        },
        other => other,
    }
}

async fn fetch(client: &Client, handle: &MediaHandle, dest: &Path) -> Result<u64, DriverError> {
    let local = |e: io::Error| {
        DriverError::Transport(format!("the file {} cannot be written: {e}", dest.display()))
    };
    let file = tokio::fs::File::create(dest).await.map_err(local)?.into_std().await;
    match client.download_to_writer(handle, file).await {
        Ok(file) => {
            let size = tokio::task::spawn_blocking(move || file.metadata().map(|m| m.len()))
                .await
                .map_err(|e| DriverError::Transport(e.to_string()))?
                .map_err(local)?;
            Ok(size)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(dest).await;
            Err(download_error(&e))
        }
    }
}

/// Asks the sender's phone to upload an expired file again; its new path, or `None` when the
/// handle does not say which message it was, or the phone did not answer with one (offline,
/// the file deleted there too).
async fn reupload(client: &Client, handle: &MediaHandle) -> Option<String> {
    let origin = handle.message.as_ref()?;
    let media_key = handle.media_key.as_deref()?;
    let chat: whatsapp_rust::Jid = origin.chat.parse().ok()?;
    let participant: Option<whatsapp_rust::Jid> =
        origin.participant.as_deref().and_then(|p| p.parse().ok());
    let request = MediaReuploadRequest {
        msg_id: &origin.id,
        chat_jid: &chat,
        media_key,
        is_from_me: origin.from_me,
        participant: participant.as_ref(),
    };
    match client.media_reupload().request(&request).await {
        Ok(MediaRetryResult::Success { direct_path }) => Some(direct_path),
        Ok(other) => {
            tracing::info!(message_id = %origin.id, result = ?other, "media retry gave no file");
            None
        }
        Err(e) => {
            tracing::info!(message_id = %origin.id, error = %e, "media retry failed");
            None
        }
    }
}

/// What a failed download means: the CDN refusing the reference (after the library has
/// refreshed its media auth once) is a file that expired or never was, anything else the
/// network's fault and worth a retry.
pub(crate) fn download_error(err: &whatsapp_rust::anyhow::Error) -> DriverError {
    let cause: &(dyn StdError + 'static) = err.as_ref();
    match cause.http_status() {
        Some(status @ (401 | 403 | 404 | 410)) => DriverError::NotFound(format!(
            "the media file is no longer on WhatsApp's servers (HTTP {status}); files expire \
             some weeks after they were sent"
        )),
        _ if cause.is_transport_unavailable() => DriverError::NotConnected,
        _ => DriverError::Transport(format!("the media download failed: {err:#}")),
    }
}

/// Encrypts and uploads the file of `media` to WhatsApp's CDN.
pub(crate) async fn upload(
    client: &Client,
    media: &OutgoingMedia,
) -> Result<Uploaded, DriverError> {
    let kind = media_type(media.media_kind);
    let path = media.path.clone();
    // First pass, on the blocking pool (it reads the whole file): a fresh key and the hashes.
    let info = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        encrypt_media_streaming_with_key(io::BufReader::new(file), io::sink(), kind, None, None)
            .map_err(|e| format!("{}: {e:#}", path.display()))
    })
    .await
    .map_err(|e| DriverError::Transport(e.to_string()))?
    .map_err(|e| DriverError::rejected(format!("the media file cannot be read: {e}")))?;
    // The gateway checked the file when the send was accepted; one that changed since is not
    // the file the caller asked to send.
    let sha = hex(&info.file_sha256);
    if !media.sha256.is_empty() && !sha.eq_ignore_ascii_case(&media.sha256) {
        return Err(DriverError::rejected(format!(
            "the media file {} changed after it was accepted (SHA-256 {sha}, expected {})",
            media.path.display(),
            media.sha256
        )));
    }
    let source = EncryptingFile {
        path: media.path.clone(),
        media_key: info.media_key,
        media_type: kind,
        len: encrypted_len(info.file_length as usize) as u64,
    };
    let uploaded = client.upload_stream(source, info, kind).await.map_err(|e| {
        let cause: &(dyn StdError + 'static) = e.as_ref();
        if cause.is_transport_unavailable() {
            DriverError::NotConnected
        } else {
            DriverError::Transport(format!("the media upload failed: {e:#}"))
        }
    })?;
    Ok(uploaded.into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The ciphertext of a file, produced again on each read (see the module docs): what the
/// library's streaming upload reads from, at any offset, as often as it needs.
pub(crate) struct EncryptingFile {
    pub path: PathBuf,
    pub media_key: [u8; 32],
    pub media_type: MediaType,
    /// The ciphertext's length, MAC included.
    pub len: u64,
}

impl UploadSource for EncryptingFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn reader_from(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        let file = File::open(&self.path)?;
        let encryptor = MediaEncryptor::with_key(self.media_key, self.media_type)
            .map_err(|e| io::Error::other(format!("{e:#}")))?;
        Ok(Box::new(EncryptingReader {
            file,
            encryptor: Some(encryptor),
            chunk: vec![0; CHUNK],
            out: Vec::with_capacity(CHUNK + 32),
            pos: 0,
            skip: offset,
        }))
    }
}

/// How much plaintext one read encrypts.
const CHUNK: usize = 64 * 1024;

/// Reads a file as ciphertext, dropping the first `skip` bytes (a resumed upload).
struct EncryptingReader {
    file: File,
    /// `None` once the file ended and the padding and MAC were produced.
    encryptor: Option<MediaEncryptor>,
    chunk: Vec<u8>,
    /// Ciphertext produced and not yet read, from `pos`.
    out: Vec<u8>,
    pos: usize,
    skip: u64,
}

impl Read for EncryptingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let ready = &self.out[self.pos..];
            if !ready.is_empty() {
                if self.skip > 0 {
                    let n = ready.len().min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                    self.pos += n;
                    self.skip -= n as u64;
                    continue;
                }
                let n = ready.len().min(buf.len());
                buf[..n].copy_from_slice(&ready[..n]);
                self.pos += n;
                return Ok(n);
            }
            let Some(encryptor) = self.encryptor.as_mut() else {
                return Ok(0);
            };
            self.out.clear();
            self.pos = 0;
            let n = self.file.read(&mut self.chunk)?;
            if n == 0 {
                let encryptor = self.encryptor.take().expect("checked above");
                encryptor
                    .finalize(&mut self.out)
                    .map_err(|e| io::Error::other(format!("{e:#}")))?;
            } else {
                encryptor.update(&self.chunk[..n], &mut self.out);
            }
        }
    }
}

#[cfg(test)]
#[path = "media_tests.rs"]
mod tests;
