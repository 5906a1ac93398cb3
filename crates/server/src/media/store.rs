//! The media store: files and their records in a [`Blobs`] backend (the local disk, or an
//! object store every node shares), written by streaming, read back as streams, found on the
//! cluster's other nodes when missing here (local disks only), swept when expired.

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use bzapper_core::content::MediaKind;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::blobs::local::LocalBlobs;
use super::blobs::s3::S3Blobs;
use super::blobs::{read_all, BlobRead, Blobs};
use super::error::{io, MediaError};
use super::files::TempFile;
use super::record::{is_safe_id, MediaLimits, StoredMedia};
use super::settings::MediaStorage;
use super::spool::Spool;
use super::{fetch, peers, private, sniff};
use crate::model::ids::new_ordered_id;
use crate::outbound::{Guard, OutboundClient, Redirects};

/// Where received media is cached, per instance.
const INBOUND_DIR: &str = "inbound";
/// The spool's directory under the media directory.
const SPOOL_DIR: &str = ".spool";
/// How often expired media is swept.
const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// The largest record read (a record is a few hundred bytes).
const MAX_RECORD_BYTES: usize = 64 * 1024;

/// A key segment for an id that must always map somewhere: the id itself when safe, else
/// `x` and the start of its SHA-256 (deterministic, and never `..` or a separator).
fn component(id: &str) -> String {
    if is_safe_id(id) {
        id.to_string()
    } else {
        let digest = Sha256::digest(id.as_bytes());
        format!("x{}", hex(&digest[..16]))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `<tenant>/<id>.bin`: the file's bytes.
fn blob_key(tenant_id: &str, id: &str) -> String {
    format!("{}/{}.bin", component(tenant_id), component(id))
}

/// `<tenant>/<id>.json`: its record, written last (the commit point).
fn record_key(tenant_id: &str, id: &str) -> String {
    format!("{}/{}.json", component(tenant_id), component(id))
}

/// `<tenant>/inbound/<instance>/<wa_id>`: a received file, cached.
fn inbound_key(tenant_id: &str, instance_id: &str, wa_id: &str) -> String {
    format!(
        "{}/{INBOUND_DIR}/{}/{}",
        component(tenant_id),
        component(instance_id),
        component(wa_id)
    )
}

/// What one ingest checks while it streams.
struct Ingest<'a> {
    declared_mime: Option<&'a str>,
    file_name: Option<String>,
    cap: u64,
    kind: Option<MediaKind>,
}

/// What an ingest learned of the bytes as they went by.
#[derive(Default)]
struct Scan {
    hasher: Sha256,
    head: Vec<u8>,
    size: u64,
    checked_early: bool,
}

impl Scan {
    /// Takes one chunk in: refused past `cap`, or, once the first bytes show it, when they
    /// cannot go out as `kind`.
    fn take(
        &mut self,
        chunk: &[u8],
        cap: u64,
        kind: Option<MediaKind>,
        declared: Option<&str>,
    ) -> Result<(), MediaError> {
        self.size += chunk.len() as u64;
        if self.size > cap {
            return Err(MediaError::TooLarge { cap });
        }
        if self.head.len() < sniff::HEAD_LEN {
            let take = (sniff::HEAD_LEN - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            // A wrong file is refused as soon as its first bytes show it, not after a
            // download of the whole thing.
            if let (Some(kind), false) = (kind, self.checked_early) {
                if self.head.len() == sniff::HEAD_LEN {
                    self.checked_early = true;
                    let sniffed = sniff::sniff(&self.head);
                    let mime = sniff::choose(sniffed, declared);
                    sniff::check_kind(kind, sniffed, &mime, self.size)?;
                }
            }
        }
        self.hasher.update(chunk);
        Ok(())
    }
}

/// A stored file as a file on this machine, for the driver: the stored file itself on the
/// local disk, else a copy in the spool, removed when this drops (once the send is over).
#[derive(Debug)]
pub struct LocalFile {
    path: PathBuf,
    _copy: Option<TempFile>,
}

impl LocalFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

pub struct MediaStore {
    blobs: Arc<dyn Blobs>,
    spool: Spool,
    limits: MediaLimits,
    http: OutboundClient,
    /// The other nodes, asked for an upload missing here (a cluster node on local disks).
    peers: Option<peers::Peers>,
}

#[async_trait::async_trait]
impl peers::CopySink for MediaStore {
    async fn put_copy(
        &self,
        record: &StoredMedia,
        body: peers::Body,
    ) -> Result<StoredMedia, MediaError> {
        MediaStore::put_copy(self, record, body).await
    }
}

/// The HTTP client media URLs are fetched with: through the outbound `guard` (no proxy from
/// the environment, each redirect hop checked, at most five), a short connect timeout.
pub fn http_client(guard: &Guard) -> reqwest::Result<OutboundClient> {
    guard.client(Redirects::Checked, |b| {
        b.connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("bZapper/", env!("CARGO_PKG_VERSION")))
    })
}

impl MediaStore {
    /// The store on the local disk at `dir` (created 0700; what it already holds is made
    /// private too: files 0600, directories 0700).
    pub fn new(dir: PathBuf, limits: MediaLimits, http: OutboundClient) -> std::io::Result<Self> {
        let blobs = Arc::new(LocalBlobs::open(dir.clone())?);
        Self::on(blobs, &dir, limits, http)
    }

    /// The store on `blobs`, its spool under the local media directory `dir`.
    pub fn on(
        blobs: Arc<dyn Blobs>,
        dir: &Path,
        limits: MediaLimits,
        http: OutboundClient,
    ) -> std::io::Result<Self> {
        private::create_dir_blocking(dir)?;
        let spool = Spool::open(dir.join(SPOOL_DIR))?;
        Ok(MediaStore { blobs, spool, limits, http, peers: None })
    }

    /// Makes this store one node's of a cluster: an upload missing here is then looked for on
    /// the other live nodes ([`find`](Self::find)), with the admin token they all share.
    fn with_peers(
        mut self,
        cluster: Arc<crate::cluster::Cluster>,
        admin_token: secrecy::SecretString,
    ) -> reqwest::Result<Self> {
        self.peers = Some(peers::Peers::new(cluster, admin_token)?);
        Ok(self)
    }

    pub fn limits(&self) -> &MediaLimits {
        &self.limits
    }

    /// Where the bytes are, for logs.
    pub fn describe(&self) -> String {
        self.blobs.describe()
    }

    /// Streams an upload to the store, hashing it on the way. Refused with `TooLarge` as soon
    /// as more than `cap` bytes came (nothing is kept). The type is sniffed from the first
    /// bytes, falling back to `declared_mime`, then `application/octet-stream`.
    pub async fn put_stream<S, E>(
        &self,
        tenant_id: &str,
        declared_mime: Option<&str>,
        file_name: Option<String>,
        cap: u64,
        body: S,
    ) -> Result<StoredMedia, MediaError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: Display,
    {
        let req = Ingest { declared_mime, file_name, cap, kind: None };
        self.ingest(tenant_id, req, body).await
    }

    /// Like [`put_stream`](Self::put_stream) for a file that must go out as `kind`: capped at
    /// `kind.cap_bytes(max_bytes)`, and refused with `WrongType` (as soon as its first bytes
    /// show it) unless [`sniff::check_kind`] accepts it.
    pub async fn put_stream_as<S, E>(
        &self,
        tenant_id: &str,
        kind: MediaKind,
        declared_mime: Option<&str>,
        file_name: Option<String>,
        body: S,
    ) -> Result<StoredMedia, MediaError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: Display,
    {
        let cap = kind.cap_bytes(self.limits.max_bytes);
        let req = Ingest { declared_mime, file_name, cap, kind: Some(kind) };
        self.ingest(tenant_id, req, body).await
    }

    /// Checks a stored file against `kind` (its size against the kind's cap, its first bytes
    /// against the kind), for a file stored without one that is now to be sent as one.
    pub async fn check_kind(&self, m: &StoredMedia, kind: MediaKind) -> Result<(), MediaError> {
        let cap = kind.cap_bytes(self.limits.max_bytes);
        if m.size > cap {
            return Err(MediaError::TooLarge { cap });
        }
        let head = self.head_of(m).await?;
        sniff::check_kind(kind, sniff::sniff(&head), &m.mime, m.size)
    }

    /// The first [`sniff::HEAD_LEN`] bytes of a stored file (fewer when it is shorter).
    async fn head_of(&self, m: &StoredMedia) -> Result<Vec<u8>, MediaError> {
        let len = m.size.min(sniff::HEAD_LEN as u64);
        if len == 0 {
            return Ok(Vec::new());
        }
        let read = self.blobs.get(&blob_key(&m.tenant_id, &m.id), Some(0..len)).await?;
        read_all(read, sniff::HEAD_LEN).await
    }

    async fn ingest<S, E>(
        &self,
        tenant_id: &str,
        req: Ingest<'_>,
        body: S,
    ) -> Result<StoredMedia, MediaError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: Display,
    {
        if !is_safe_id(tenant_id) {
            return Err(MediaError::Io(format!("`{tenant_id}` is not a valid tenant id")));
        }
        let declared = sniff::declared(req.declared_mime);
        let id = new_ordered_id("med");
        let key = blob_key(tenant_id, &id);
        let mut scan = Scan::default();
        {
            let (cap, kind, declared) = (req.cap, req.kind, declared.as_deref());
            let scan = &mut scan;
            let checked = body.map(move |chunk| {
                let chunk = chunk.map_err(|e| {
                    MediaError::Unreachable(format!("reading the file failed: {e}"))
                })?;
                scan.take(&chunk, cap, kind, declared)?;
                Ok(chunk)
            });
            self.blobs.put(&key, checked.boxed()).await?;
        }

        let sniffed = sniff::sniff(&scan.head);
        let mime = sniff::choose(sniffed, declared.as_deref());
        if let Some(kind) = req.kind {
            if let Err(e) = sniff::check_kind(kind, sniffed, &mime, scan.size) {
                self.discard(&key).await;
                return Err(e);
            }
        }
        let created_at = crate::model::time::now();
        let retention = chrono::Duration::from_std(self.limits.retention)
            .unwrap_or(chrono::Duration::days(3650));
        let m = StoredMedia {
            id,
            tenant_id: tenant_id.to_string(),
            mime,
            size: scan.size,
            sha256: hex(&scan.hasher.finalize()),
            file_name: req.file_name.as_deref().and_then(sniff::clean_file_name),
            created_at,
            expires_at: created_at
                .checked_add_signed(retention)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        };
        self.commit(&m).await?;
        Ok(m)
    }

    /// Writes the record of the file already stored under its id: from then on it exists.
    /// When the record cannot be written, the file goes too.
    async fn commit(&self, m: &StoredMedia) -> Result<(), MediaError> {
        let json = serde_json::to_vec(m).map_err(|e| MediaError::Io(e.to_string()))?;
        let body = futures::stream::iter([Ok(Bytes::from(json))]).boxed();
        if let Err(e) = self.blobs.put(&record_key(&m.tenant_id, &m.id), body).await {
            self.discard(&blob_key(&m.tenant_id, &m.id)).await;
            return Err(e);
        }
        Ok(())
    }

    /// Removes a file that will get no record (refused after it was written).
    async fn discard(&self, key: &str) {
        if let Err(e) = self.blobs.delete(key).await {
            tracing::warn!(key, error = %e, "removing a refused media file failed; the sweep removes it later");
        }
    }

    /// Stores another node's upload here under its own id and record (`record`), streamed:
    /// refused when more bytes come than the record says or than this node's cap, or when
    /// their size or SHA-256 differ from the record's.
    async fn put_copy<S, E>(&self, record: &StoredMedia, body: S) -> Result<StoredMedia, MediaError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: Display,
    {
        if !is_safe_id(&record.tenant_id) || !is_safe_id(&record.id) {
            return Err(MediaError::Io(format!("`{}` is not a valid media id", record.id)));
        }
        let cap = self.limits.max_bytes;
        if record.size > cap {
            return Err(MediaError::TooLarge { cap });
        }
        let key = blob_key(&record.tenant_id, &record.id);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        {
            let (hasher, size, expected) = (&mut hasher, &mut size, record.size);
            let checked = body.map(move |chunk| {
                let chunk = chunk.map_err(|e| {
                    MediaError::Unreachable(format!("reading the file failed: {e}"))
                })?;
                *size += chunk.len() as u64;
                if *size > expected {
                    return Err(MediaError::Io(format!(
                        "more than the {expected} bytes of the record came"
                    )));
                }
                hasher.update(&chunk);
                Ok(chunk)
            });
            self.blobs.put(&key, checked.boxed()).await?;
        }
        let sha256 = hex(&hasher.finalize());
        if size != record.size || sha256 != record.sha256 {
            self.discard(&key).await;
            return Err(MediaError::Io(format!(
                "the copy ({size} bytes, SHA-256 {sha256}) differs from its record"
            )));
        }
        self.commit(record).await?;
        Ok(record.clone())
    }

    /// Downloads `url` (http or https) into the store, to be sent as `kind`. See `fetch.rs`.
    pub async fn fetch_url(
        &self,
        tenant_id: &str,
        url: &url::Url,
        kind: MediaKind,
        file_name: Option<String>,
    ) -> Result<StoredMedia, MediaError> {
        let d = fetch::download(&self.http, &self.limits, url, kind, file_name).await?;
        let req = Ingest {
            declared_mime: d.declared_mime.as_deref(),
            file_name: d.file_name,
            cap: d.cap,
            kind: Some(kind),
        };
        tokio::time::timeout_at(d.deadline, self.ingest(tenant_id, req, d.body))
            .await
            .map_err(|_| MediaError::Timeout)?
    }

    /// The tenant's file `id`, or `None` when it does not exist, has expired, or the id is not
    /// a valid id.
    pub async fn get(&self, tenant_id: &str, id: &str) -> Result<Option<StoredMedia>, MediaError> {
        self.get_at(tenant_id, id, Utc::now()).await
    }

    /// Like [`get`](Self::get), and on a cluster node whose files are on its own disk, when
    /// the file is not here, asked of the other live nodes: the first that has it streams a
    /// copy here (same id, same record and expiry). Without peers (one node, or a store every
    /// node shares), or when none has it, this is `get`.
    pub async fn find(&self, tenant_id: &str, id: &str) -> Result<Option<StoredMedia>, MediaError> {
        if let Some(m) = self.get(tenant_id, id).await? {
            return Ok(Some(m));
        }
        match &self.peers {
            Some(p) if is_safe_id(tenant_id) && is_safe_id(id) => {
                Ok(peers::find(p, tenant_id, id, self.limits.fetch_timeout, self).await)
            }
            _ => Ok(None),
        }
    }

    pub(crate) async fn get_at(
        &self,
        tenant_id: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredMedia>, MediaError> {
        let Some(m) = self.read_record(tenant_id, id).await? else { return Ok(None) };
        if m.expires_at <= now {
            return Ok(None);
        }
        Ok(self.blobs.head(&blob_key(&m.tenant_id, &m.id)).await?.map(|_| m))
    }

    /// The record as stored, expired or not; `None` when absent or the ids are not valid.
    async fn read_record(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<StoredMedia>, MediaError> {
        if !is_safe_id(tenant_id) || !is_safe_id(id) {
            return Ok(None);
        }
        let read = match self.blobs.get(&record_key(tenant_id, id), None).await {
            Ok(r) => r,
            Err(MediaError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let bytes = read_all(read, MAX_RECORD_BYTES).await?;
        let m: StoredMedia = serde_json::from_slice(&bytes)
            .map_err(|e| MediaError::Io(format!("the record of {id} is unreadable: {e}")))?;
        // The key already confines it to the tenant; the record must agree.
        Ok((m.tenant_id == tenant_id && m.id == id).then_some(m))
    }

    /// The file's bytes, streamed. A local file stays readable once opened, so a concurrent
    /// delete or sweep does not cut the download short; `NotFound` when it is gone.
    pub async fn open(&self, m: &StoredMedia) -> Result<BlobRead, MediaError> {
        self.blobs.get(&blob_key(&m.tenant_id, &m.id), None).await
    }

    /// The file as a file on this machine, for the driver (which reads a file, at any offset,
    /// as often as it needs): on the local disk the stored file itself, else a copy streamed
    /// into the spool, checked against the record's size and removed when the returned
    /// handle drops.
    pub async fn local_file(&self, m: &StoredMedia) -> Result<LocalFile, MediaError> {
        let key = blob_key(&m.tenant_id, &m.id);
        if let Some(path) = self.blobs.local_path(&key) {
            return Ok(LocalFile { path, _copy: None });
        }
        let copy = self.spool.file("send");
        let mut read = self.blobs.get(&key, None).await?;
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(private::FILE_MODE)
            .open(copy.path())
            .await
            .map_err(io)?;
        let mut size = 0u64;
        while let Some(chunk) = read.body.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        if size != m.size {
            return Err(MediaError::Io(format!(
                "the stored file has {size} bytes, its record {}",
                m.size
            )));
        }
        Ok(LocalFile { path: copy.path().to_path_buf(), _copy: Some(copy) })
    }

    /// Bytes of the tenant's stored files (uploads, peer copies, files downloaded for a send;
    /// not the cache of received media, which the gateway fills, not the tenant).
    pub async fn tenant_bytes(&self, tenant_id: &str) -> Result<u64, MediaError> {
        let listed = self.blobs.list(&component(tenant_id)).await?;
        Ok(listed
            .iter()
            .filter(|b| b.key.matches('/').count() == 1 && b.key.ends_with(".bin"))
            .map(|b| b.size)
            .sum())
    }

    /// Removes the tenant's file `id`; `false` when there was no such (live) file.
    pub async fn delete(&self, tenant_id: &str, id: &str) -> Result<bool, MediaError> {
        let Some(m) = self.read_record(tenant_id, id).await? else { return Ok(false) };
        let live = m.expires_at > Utc::now();
        // The record first: from then on the file is gone for every reader.
        self.blobs.delete(&record_key(tenant_id, id)).await?;
        self.blobs.delete(&blob_key(&m.tenant_id, &m.id)).await?;
        Ok(live)
    }

    /// Removes the tenant's file `id` here and, on a cluster node with its own disk, asks the
    /// other live nodes to remove theirs (the original or copies): `true` when any node had
    /// it. A node that does not answer keeps its copy until the retention ends. Without
    /// peers, this is [`delete`](Self::delete).
    pub async fn delete_everywhere(&self, tenant_id: &str, id: &str) -> Result<bool, MediaError> {
        let here = self.delete(tenant_id, id).await?;
        match &self.peers {
            Some(p) if is_safe_id(tenant_id) && is_safe_id(id) => {
                Ok(peers::delete(p, tenant_id, id).await || here)
            }
            _ => Ok(here),
        }
    }

    /// The cached file of the media (`instance_id`, `wa_id`) received, when it is cached.
    /// Ids that are not path-safe are mapped to a hash of themselves, so the key always stays
    /// inside the tenant's.
    pub async fn inbound_cached(
        &self,
        tenant_id: &str,
        instance_id: &str,
        wa_id: &str,
    ) -> Result<Option<BlobRead>, MediaError> {
        match self.blobs.get(&inbound_key(tenant_id, instance_id, wa_id), None).await {
            Ok(r) => Ok(Some(r)),
            Err(MediaError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A fresh local path for the driver to download a received file to; the file is removed
    /// when the handle drops, unless [`cache_inbound`](Self::cache_inbound) took it.
    pub fn download_file(&self) -> TempFile {
        self.spool.file("recv")
    }

    /// Stores the downloaded `file` as the cache of the media (`instance_id`, `wa_id`) (moved
    /// in on the local disk, uploaded to an object store). Cached files are swept once older
    /// than the retention.
    pub async fn cache_inbound(
        &self,
        tenant_id: &str,
        instance_id: &str,
        wa_id: &str,
        file: TempFile,
    ) -> Result<(), MediaError> {
        let key = inbound_key(tenant_id, instance_id, wa_id);
        self.blobs.put_file(&key, file.path()).await?;
        file.disarm();
        Ok(())
    }

    /// Deletes the expired files, the cached inbound files older than the retention, and what
    /// crashed writes left behind; returns how many files it removed.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<usize, MediaError> {
        let retention = chrono::Duration::from_std(self.limits.retention)
            .unwrap_or(chrono::Duration::days(3650));
        let before = now - retention;
        let listed = self.blobs.list("").await?;
        let keys: std::collections::HashSet<&str> = listed.iter().map(|b| b.key.as_str()).collect();
        let mut removed = 0;
        // Objects that vanish or cannot be read while the sweep runs are skipped, not fatal.
        for b in &listed {
            let segments: Vec<&str> = b.key.split('/').collect();
            let remove = match segments[..] {
                [_, INBOUND_DIR, _, _] => b.modified <= before,
                [tenant, name] => match (name.strip_suffix(".json"), name.strip_suffix(".bin")) {
                    (Some(id), _) => match self.read_record(tenant, id).await {
                        Ok(Some(m)) => m.expires_at <= now,
                        // An unreadable record: kept for a retention, in case someone looks.
                        _ => b.modified <= before,
                    },
                    // A file whose record never got written (a crash between the two writes);
                    // one whose record is expiring goes with the record.
                    (None, Some(id)) => {
                        !keys.contains(format!("{tenant}/{id}.json").as_str())
                            && b.modified <= before
                    }
                    (None, None) => false,
                },
                _ => false,
            };
            if !remove {
                continue;
            }
            match self.blobs.delete(&b.key).await {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(key = %b.key, error = %e, "removing a media file failed"),
            }
            if let [tenant, name] = segments[..] {
                if let Some(id) = name.strip_suffix(".json") {
                    if let Err(e) = self.blobs.delete(&format!("{tenant}/{id}.bin")).await {
                        tracing::warn!(key = %b.key, error = %e, "removing a media file failed");
                    }
                }
            }
        }
        removed += self.blobs.sweep_scratch(before).await?;
        removed += sweep_spool(self.spool.dir(), before).await;
        Ok(removed)
    }
}

/// Removes spool files older than `before` (a send that never ended, in this process).
async fn sweep_spool(dir: &Path, before: DateTime<Utc>) -> usize {
    let dir = dir.to_path_buf();
    let sweep = move || {
        let files = super::files::entries(&dir).unwrap_or_default();
        files
            .iter()
            .filter(|f| {
                std::fs::metadata(f)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| DateTime::<Utc>::from(t) <= before)
            })
            .filter(|f| super::files::remove(f))
            .count()
    };
    tokio::task::spawn_blocking(sweep).await.unwrap_or(0)
}

/// The media store the operator configured (`storage`: `<data_dir>/media`, or an object
/// store, checked now), with the configured limits, fetching URLs through the outbound
/// `guard`, and its sweeper: now and every ten minutes it removes what has expired. On a
/// node of a cluster whose files are on its own disk, `peers` is the cluster and the admin
/// token the nodes share: uploads received by another node are fetched from it; with an
/// object store every node reads every file, and no node asks another.
pub async fn open(
    data_dir: &Path,
    storage: &MediaStorage,
    limits: MediaLimits,
    guard: &Guard,
    peers: Option<(Arc<crate::cluster::Cluster>, secrecy::SecretString)>,
) -> anyhow::Result<Arc<MediaStore>> {
    let dir = data_dir.join("media");
    let blobs: Arc<dyn Blobs> = match storage {
        MediaStorage::Local => Arc::new(
            LocalBlobs::open(dir.clone())
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?,
        ),
        MediaStorage::S3(s) => Arc::new(S3Blobs::connect(s).await?),
    };
    let mut store = MediaStore::on(blobs, &dir, limits, http_client(guard)?)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    if let (Some((cluster, admin_token)), MediaStorage::Local) = (peers, storage) {
        store = store.with_peers(cluster, admin_token)?;
    }
    tracing::info!("media files are kept in {}", store.describe());
    let store = Arc::new(store);
    let sweeper = Arc::downgrade(&store);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // The gateway is gone (a test's app dropped): stop.
            let Some(store) = sweeper.upgrade() else { return };
            match store.sweep(Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "expired media removed"),
                Err(e) => tracing::warn!(error = %e, "sweeping the media store failed"),
            }
        }
    });
    Ok(store)
}
