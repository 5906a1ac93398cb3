//! Media bytes as files under one directory (`<data-dir>/media`): a key is a path below it.
//! A write goes to `<first segment>/.tmp/` (the tenant's directory, so the same file system),
//! is synced, then renamed to its key: a reader sees the whole file or none. Files are 0600
//! and directories 0700 (`private.rs`). An open file stays readable after it is deleted, so a
//! delete or a sweep never cuts a download or a send short.

use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use super::{check_key, BlobMeta, BlobRead, Blobs, ByteStream};
use crate::media::error::{io, MediaError};
use crate::media::files::{entries, remove, TempFile};
use crate::media::private;
use crate::model::ids::new_id;

/// Where a file is written before it gets its key, in each top-level directory.
pub const TMP_DIR: &str = ".tmp";
/// The chunk size files are streamed out in.
const READ_CHUNK: usize = 64 * 1024;

pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    /// The store under `root`, created (0700) when missing; what it already holds is made
    /// private (files 0600, directories 0700), whatever an older version or a hand left.
    pub fn open(root: PathBuf) -> std::io::Result<Self> {
        private::create_dir_blocking(&root)?;
        private::restrict_tree(&root)?;
        Ok(LocalBlobs { root })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// `<root>/<first segment>/.tmp`, created.
    async fn tmp_dir(&self, key: &str) -> Result<PathBuf, MediaError> {
        let top = key.split('/').next().unwrap_or(key);
        let dir = self.root.join(top).join(TMP_DIR);
        private::create_dir(&dir).await.map_err(io)?;
        Ok(dir)
    }

    async fn parent_dir(&self, key: &str) -> Result<(), MediaError> {
        match self.path(key).parent() {
            Some(dir) => private::create_dir(dir).await.map_err(io),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Blobs for LocalBlobs {
    async fn put(&self, key: &str, mut body: ByteStream<'_>) -> Result<u64, MediaError> {
        check_key(key)?;
        let tmp = TempFile::new(self.tmp_dir(key).await?.join(format!("{}.part", new_id("up"))));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(private::FILE_MODE)
            .open(tmp.path())
            .await
            .map_err(io)?;
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        drop(file);
        self.parent_dir(key).await?;
        tokio::fs::rename(tmp.path(), self.path(key)).await.map_err(io)?;
        tmp.disarm();
        Ok(size)
    }

    async fn put_file(&self, key: &str, file: &Path) -> Result<u64, MediaError> {
        check_key(key)?;
        // Written by someone else (the driver's download): the file mode first.
        private::restrict_file(file).await.map_err(io)?;
        let size = tokio::fs::metadata(file).await.map_err(io)?.len();
        self.parent_dir(key).await?;
        tokio::fs::rename(file, self.path(key)).await.map_err(io)?;
        Ok(size)
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<BlobRead, MediaError> {
        check_key(key)?;
        let mut file = match tokio::fs::File::open(self.path(key)).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(MediaError::NotFound),
            Err(e) => return Err(io(e)),
        };
        let size = file.metadata().await.map_err(io)?.len();
        let body = match range {
            None => ReaderStream::with_capacity(file, READ_CHUNK).map(|c| c.map_err(io)).boxed(),
            Some(r) => {
                file.seek(std::io::SeekFrom::Start(r.start)).await.map_err(io)?;
                let len = r.end.saturating_sub(r.start);
                ReaderStream::with_capacity(file.take(len), READ_CHUNK)
                    .map(|c| c.map_err(io))
                    .boxed()
            }
        };
        Ok(BlobRead { size, body })
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, MediaError> {
        check_key(key)?;
        match tokio::fs::metadata(self.path(key)).await {
            Ok(m) if m.is_file() => Ok(Some(meta(key.to_string(), &m))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), MediaError> {
        check_key(key)?;
        match tokio::fs::remove_file(self.path(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, MediaError> {
        if !prefix.is_empty() {
            check_key(prefix)?;
        }
        let (root, prefix) = (self.root.clone(), prefix.to_string());
        tokio::task::spawn_blocking(move || walk(&root, &prefix))
            .await
            .map_err(|e| MediaError::Io(e.to_string()))?
            .map_err(io)
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        Some(self.path(key))
    }

    async fn sweep_scratch(&self, before: DateTime<Utc>) -> Result<usize, MediaError> {
        let root = self.root.clone();
        let sweep = move || -> std::io::Result<usize> {
            let mut removed = 0;
            for top in entries(&root)? {
                for f in entries(&top.join(TMP_DIR))? {
                    if f.is_file() && modified(&f).is_some_and(|t| t <= before) && remove(&f) {
                        removed += 1;
                    }
                }
            }
            Ok(removed)
        };
        tokio::task::spawn_blocking(sweep)
            .await
            .map_err(|e| MediaError::Io(e.to_string()))?
            .map_err(io)
    }

    fn describe(&self) -> String {
        format!("the local disk at {}", self.root.display())
    }
}

fn meta(key: String, m: &std::fs::Metadata) -> BlobMeta {
    let modified = m.modified().map(DateTime::<Utc>::from).unwrap_or(DateTime::<Utc>::MIN_UTC);
    BlobMeta { key, size: m.len(), modified }
}

fn modified(path: &Path) -> Option<DateTime<Utc>> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok().map(DateTime::<Utc>::from)
}

/// Every file under `root/prefix` as a key; hidden entries (`.tmp`, `.spool`) are skipped, and
/// so are entries that vanish while the walk runs.
fn walk(root: &Path, prefix: &str) -> std::io::Result<Vec<BlobMeta>> {
    let mut out = Vec::new();
    let start = if prefix.is_empty() { root.to_path_buf() } else { root.join(prefix) };
    let mut dirs = vec![(start, prefix.to_string())];
    while let Some((dir, key)) = dirs.pop() {
        let list = match std::fs::read_dir(&dir) {
            Ok(l) => l,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        for entry in list.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
            if name.starts_with('.') {
                continue;
            }
            let child = if key.is_empty() { name } else { format!("{key}/{name}") };
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                dirs.push((entry.path(), child));
            } else if kind.is_file() {
                if let Ok(m) = entry.metadata() {
                    out.push(meta(child, &m));
                }
            }
        }
    }
    Ok(out)
}
