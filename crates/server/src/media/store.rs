//! The media store: files on disk under `<data_dir>/media/`, written by streaming, read back
//! by path, found on the cluster's other nodes when missing here, swept when expired.

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Bytes;
use bzapper_core::content::MediaKind;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::error::{io, MediaError};
use super::record::{is_safe_id, MediaLimits, StoredMedia};
use super::{fetch, peers, private, sniff};
use crate::model::ids::{new_id, new_ordered_id};
use crate::outbound::{Guard, OutboundClient, Redirects};

/// Where files are written before they get their id.
const TMP_DIR: &str = ".tmp";
/// Where received media is cached, per instance.
const INBOUND_DIR: &str = "inbound";
/// How often expired media is swept.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// A path component for an id that must always map somewhere: the id itself when safe, else
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

/// A file removed when dropped unless disarmed: a failed or abandoned write (an error, a
/// timeout, a client that went away) leaves nothing behind.
struct Cleanup {
    path: PathBuf,
    armed: bool,
}

impl Cleanup {
    fn new(path: PathBuf) -> Self {
        Cleanup { path, armed: true }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What one ingest checks while it streams.
struct Ingest<'a> {
    declared_mime: Option<&'a str>,
    file_name: Option<String>,
    cap: u64,
    kind: Option<MediaKind>,
}

pub struct MediaStore {
    root: PathBuf,
    limits: MediaLimits,
    http: OutboundClient,
    /// The other nodes, asked for an upload missing here (a cluster node only).
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
    /// Opens (creating, mode 0700) the media directory `dir`; what it already holds is made
    /// private too (files 0600, directories 0700).
    pub fn new(dir: PathBuf, limits: MediaLimits, http: OutboundClient) -> std::io::Result<Self> {
        private::create_dir_blocking(&dir)?;
        private::restrict_tree(&dir)?;
        Ok(MediaStore { root: dir, limits, http, peers: None })
    }

    /// Makes this store one node's of a cluster: an upload missing here is then looked for on
    /// the other live nodes ([`find`](Self::find)), with the admin token they all share.
    fn with_peers(
        mut self,
        cluster: std::sync::Arc<crate::cluster::Cluster>,
        admin_token: secrecy::SecretString,
    ) -> reqwest::Result<Self> {
        self.peers = Some(peers::Peers::new(cluster, admin_token)?);
        Ok(self)
    }

    pub fn limits(&self) -> &MediaLimits {
        &self.limits
    }

    fn tenant_dir(&self, tenant_id: &str) -> PathBuf {
        self.root.join(component(tenant_id))
    }

    /// Streams an upload to disk, hashing it on the way. Refused with `TooLarge` as soon as
    /// more than `cap` bytes came (the partial file is removed). The type is sniffed from the
    /// first bytes, falling back to `declared_mime`, then `application/octet-stream`.
    pub async fn put_stream<S, E>(
        &self,
        tenant_id: &str,
        declared_mime: Option<&str>,
        file_name: Option<String>,
        cap: u64,
        body: S,
    ) -> Result<StoredMedia, MediaError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
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
        S: Stream<Item = Result<Bytes, E>> + Unpin,
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
        let head = read_head(&self.blob_path(m)).await.map_err(io)?;
        sniff::check_kind(kind, sniff::sniff(&head), &m.mime, m.size)
    }

    async fn ingest<S, E>(
        &self,
        tenant_id: &str,
        req: Ingest<'_>,
        mut body: S,
    ) -> Result<StoredMedia, MediaError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Display,
    {
        if !is_safe_id(tenant_id) {
            return Err(MediaError::Io(format!("`{tenant_id}` is not a valid tenant id")));
        }
        let dir = self.tenant_dir(tenant_id);
        let tmp_dir = dir.join(TMP_DIR);
        private::create_dir(&tmp_dir).await.map_err(io)?;
        let declared = sniff::declared(req.declared_mime);

        let tmp = Cleanup::new(tmp_dir.join(format!("{}.part", new_id("up"))));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(private::FILE_MODE)
            .open(&tmp.path)
            .await
            .map_err(io)?;
        let mut hasher = Sha256::new();
        let mut head = Vec::with_capacity(sniff::HEAD_LEN);
        let mut size = 0u64;
        let mut checked_early = false;
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| MediaError::Unreachable(format!("reading the file failed: {e}")))?;
            size += chunk.len() as u64;
            if size > req.cap {
                return Err(MediaError::TooLarge { cap: req.cap });
            }
            if head.len() < sniff::HEAD_LEN {
                let take = (sniff::HEAD_LEN - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
                // A wrong file is refused as soon as its first bytes show it, not after a
                // download of the whole thing.
                if let (Some(kind), false) = (req.kind, checked_early) {
                    if head.len() == sniff::HEAD_LEN {
                        checked_early = true;
                        let sniffed = sniff::sniff(&head);
                        let mime = sniff::choose(sniffed, declared.as_deref());
                        sniff::check_kind(kind, sniffed, &mime, size)?;
                    }
                }
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        drop(file);

        let sniffed = sniff::sniff(&head);
        let mime = sniff::choose(sniffed, declared.as_deref());
        if let Some(kind) = req.kind {
            sniff::check_kind(kind, sniffed, &mime, size)?;
        }
        let created_at = crate::model::time::now();
        let retention = chrono::Duration::from_std(self.limits.retention)
            .unwrap_or(chrono::Duration::days(3650));
        let m = StoredMedia {
            id: new_ordered_id("med"),
            tenant_id: tenant_id.to_string(),
            mime,
            size,
            sha256: hex(&hasher.finalize()),
            file_name: req.file_name.as_deref().and_then(sniff::clean_file_name),
            created_at,
            expires_at: created_at
                .checked_add_signed(retention)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        };

        self.commit(tmp, &tmp_dir, &m).await?;
        Ok(m)
    }

    /// Gives the written file `tmp` its id: the file first, then its record, whose rename is
    /// the commit.
    async fn commit(
        &self,
        tmp: Cleanup,
        tmp_dir: &Path,
        m: &StoredMedia,
    ) -> Result<(), MediaError> {
        let blob = self.blob_path(m);
        tokio::fs::rename(&tmp.path, &blob).await.map_err(io)?;
        tmp.disarm();
        let blob_guard = Cleanup::new(blob);
        let json = serde_json::to_vec(m).map_err(|e| MediaError::Io(e.to_string()))?;
        let record_tmp = Cleanup::new(tmp_dir.join(format!("{}.json.part", new_id("rec"))));
        write_synced(&record_tmp.path, &json).await.map_err(io)?;
        tokio::fs::rename(&record_tmp.path, self.record_path(&m.tenant_id, &m.id))
            .await
            .map_err(io)?;
        record_tmp.disarm();
        blob_guard.disarm();
        Ok(())
    }

    /// Stores another node's upload here under its own id and record (`record`), streamed to
    /// disk: refused when more bytes come than the record says or than this node's cap, or
    /// when their size or SHA-256 differ from the record's.
    async fn put_copy<S, E>(
        &self,
        record: &StoredMedia,
        mut body: S,
    ) -> Result<StoredMedia, MediaError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Display,
    {
        if !is_safe_id(&record.tenant_id) || !is_safe_id(&record.id) {
            return Err(MediaError::Io(format!("`{}` is not a valid media id", record.id)));
        }
        let cap = self.limits.max_bytes;
        if record.size > cap {
            return Err(MediaError::TooLarge { cap });
        }
        let tmp_dir = self.tenant_dir(&record.tenant_id).join(TMP_DIR);
        private::create_dir(&tmp_dir).await.map_err(io)?;
        let tmp = Cleanup::new(tmp_dir.join(format!("{}.part", new_id("cp"))));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(private::FILE_MODE)
            .open(&tmp.path)
            .await
            .map_err(io)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| MediaError::Unreachable(format!("reading the file failed: {e}")))?;
            size += chunk.len() as u64;
            if size > record.size {
                return Err(MediaError::Io(format!(
                    "more than the {} bytes of the record came",
                    record.size
                )));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        drop(file);
        let sha256 = hex(&hasher.finalize());
        if size != record.size || sha256 != record.sha256 {
            return Err(MediaError::Io(format!(
                "the copy ({size} bytes, SHA-256 {sha256}) differs from its record"
            )));
        }
        self.commit(tmp, &tmp_dir, record).await?;
        Ok(record.clone())
    }

    /// Downloads `url` (http or https) to disk, to be sent as `kind`. See `fetch.rs`.
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

    /// Like [`get`](Self::get), and on a cluster node, when the file is not here, asked of
    /// the other live nodes: the first that has it streams a copy here (same id, same record
    /// and expiry). Without peers, or when none has it, this is `get`.
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
        match tokio::fs::try_exists(self.blob_path(&m)).await {
            Ok(true) => Ok(Some(m)),
            Ok(false) => Ok(None),
            Err(e) => Err(io(e)),
        }
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
        let bytes = match tokio::fs::read(self.record_path(tenant_id, id)).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let m: StoredMedia = serde_json::from_slice(&bytes)
            .map_err(|e| MediaError::Io(format!("the record of {id} is unreadable: {e}")))?;
        // The path already confines it to the tenant; the record must agree.
        Ok((m.tenant_id == tenant_id && m.id == id).then_some(m))
    }

    fn record_path(&self, tenant_id: &str, id: &str) -> PathBuf {
        self.tenant_dir(tenant_id).join(format!("{}.json", component(id)))
    }

    /// Where the file's bytes are (open it to stream it; an unlinked file stays readable while
    /// open, so a concurrent delete or sweep does not cut a send short).
    pub fn blob_path(&self, m: &StoredMedia) -> PathBuf {
        self.tenant_dir(&m.tenant_id).join(format!("{}.bin", component(&m.id)))
    }

    /// Bytes of the tenant's stored files (uploads, peer copies, files downloaded for a send;
    /// not the cache of received media, which the gateway fills, not the tenant). A walk of
    /// one directory, off the async threads.
    pub async fn tenant_bytes(&self, tenant_id: &str) -> Result<u64, MediaError> {
        let dir = self.tenant_dir(tenant_id);
        let walk = move || -> std::io::Result<u64> {
            let mut total = 0;
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                if entry.path().extension().is_some_and(|x| x == "bin") {
                    total += entry.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
            Ok(total)
        };
        tokio::task::spawn_blocking(walk)
            .await
            .map_err(|e| MediaError::Io(e.to_string()))?
            .map_err(io)
    }

    /// Removes the tenant's file `id`; `false` when there was no such (live) file.
    pub async fn delete(&self, tenant_id: &str, id: &str) -> Result<bool, MediaError> {
        let Some(m) = self.read_record(tenant_id, id).await? else { return Ok(false) };
        let live = m.expires_at > Utc::now();
        // The record first: from then on the file is gone for every reader.
        remove_if_present(&self.record_path(tenant_id, id)).await.map_err(io)?;
        remove_if_present(&self.blob_path(&m)).await.map_err(io)?;
        Ok(live)
    }

    /// Removes the tenant's file `id` here and, on a cluster node, asks the other live nodes
    /// to remove theirs (the original or copies): `true` when any node had it. A node that
    /// does not answer keeps its copy until the retention ends. Without peers, this is
    /// [`delete`](Self::delete).
    pub async fn delete_everywhere(&self, tenant_id: &str, id: &str) -> Result<bool, MediaError> {
        let here = self.delete(tenant_id, id).await?;
        match &self.peers {
            Some(p) if is_safe_id(tenant_id) && is_safe_id(id) => {
                Ok(peers::delete(p, tenant_id, id).await || here)
            }
            _ => Ok(here),
        }
    }

    /// Where the received media of (`instance_id`, `wa_id`) is cached. Its directory exists
    /// once this returns (when it can be created); the caller writes the file beside it under a
    /// temporary name and renames it. Ids that are not path-safe are mapped to a hash of
    /// themselves, so the path always stays inside the tenant's directory. Files there are
    /// swept once older than the retention.
    pub fn inbound_cache_path(&self, tenant_id: &str, instance_id: &str, wa_id: &str) -> PathBuf {
        let dir = self.tenant_dir(tenant_id).join(INBOUND_DIR).join(component(instance_id));
        if let Err(e) = private::create_dir_blocking(&dir) {
            let dir = dir.display();
            tracing::warn!(%dir, error = %e, "creating the inbound media cache failed");
        }
        dir.join(component(wa_id))
    }

    /// Deletes the expired files, the cached inbound files older than the retention, and what
    /// crashed writes left behind; returns how many files it removed.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<usize, MediaError> {
        let root = self.root.clone();
        let retention = self.limits.retention;
        tokio::task::spawn_blocking(move || sweep_blocking(&root, retention, now))
            .await
            .map_err(|e| MediaError::Io(e.to_string()))?
            .map_err(io)
    }
}

async fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(private::FILE_MODE)
        .open(path)
        .await?;
    f.write_all(bytes).await?;
    f.flush().await?;
    f.sync_all().await
}

async fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The first [`sniff::HEAD_LEN`] bytes of a file (fewer when it is shorter).
async fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let f = tokio::fs::File::open(path).await?;
    let mut head = Vec::with_capacity(sniff::HEAD_LEN);
    f.take(sniff::HEAD_LEN as u64).read_to_end(&mut head).await?;
    Ok(head)
}

fn sweep_blocking(root: &Path, retention: Duration, now: DateTime<Utc>) -> std::io::Result<usize> {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(3650));
    // Last written more than the retention ago (by the injected clock).
    let stale = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map(|t| DateTime::<Utc>::from(t) + retention <= now)
            .unwrap_or(false)
    };
    let mut removed = 0;
    // Entries that vanish or cannot be read while the sweep walks are skipped, not fatal.
    for tenant in entries(root)? {
        if !tenant.is_dir() {
            continue;
        }
        for path in entries(&tenant)? {
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                continue;
            };
            if name == TMP_DIR {
                for f in entries(&path)? {
                    if f.is_file() && stale(&f) && remove(&f) {
                        removed += 1;
                    }
                }
            } else if name == INBOUND_DIR {
                for instance in entries(&path)? {
                    for f in entries(&instance)? {
                        if f.is_file() && stale(&f) && remove(&f) {
                            removed += 1;
                        }
                    }
                }
            } else if let Some(id) = name.strip_suffix(".json") {
                let record = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<StoredMedia>(&b).ok());
                let expired = match &record {
                    Some(m) => m.expires_at <= now,
                    // An unreadable record: kept for a retention, in case someone looks.
                    None => stale(&path),
                };
                if expired {
                    let gone = remove(&path);
                    remove(&path.with_file_name(format!("{id}.bin")));
                    removed += usize::from(gone);
                }
            } else if let Some(id) = name.strip_suffix(".bin") {
                // A file whose record never got written (a crash between the two renames).
                let record = path.with_file_name(format!("{id}.json"));
                if !record.exists() && stale(&path) && remove(&path) {
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}

/// Removes a file; whether it was there to remove.
fn remove(path: &Path) -> bool {
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "removing a media file failed");
            false
        }
    }
}

/// The paths in a directory; none when it does not exist (any more).
fn entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => Ok(rd.filter_map(|e| e.ok().map(|e| e.path())).collect()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

/// The store under `<data_dir>/media/` with the configured limits, fetching URLs through the
/// outbound `guard`, and its sweeper: now and every ten minutes it removes what has expired. On a node of a cluster, `peers` is the
/// cluster and the admin token the nodes share: uploads received by another node are fetched
/// from it.
pub fn open(
    data_dir: &Path,
    limits: MediaLimits,
    guard: &Guard,
    peers: Option<(std::sync::Arc<crate::cluster::Cluster>, secrecy::SecretString)>,
) -> anyhow::Result<std::sync::Arc<MediaStore>> {
    let dir = data_dir.join("media");
    let mut store = MediaStore::new(dir.clone(), limits, http_client(guard)?)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    if let Some((cluster, admin_token)) = peers {
        store = store.with_peers(cluster, admin_token)?;
    }
    let store = std::sync::Arc::new(store);
    let sweeper = std::sync::Arc::downgrade(&store);
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
                Err(e) => tracing::warn!(error = %e, "sweeping the media directory failed"),
            }
        }
    });
    Ok(store)
}
