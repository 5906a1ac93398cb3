//! Media bytes in an S3-compatible object store (AWS S3, or any server speaking its API),
//! through the `object_store` crate, under `<prefix>/<key>`. Every node of a cluster reads
//! every object, so an upload taken by one node is sent by any other.
//!
//! A write streams the body in parts of [`PART_SIZE`] (a multipart upload when the body is
//! larger than one part, else one `PUT`), so at most [`PART_SIZE`] × ([`PARTS_IN_FLIGHT`] + 1)
//! bytes of one file are in memory; the object appears only when the upload completes, and a
//! failed upload is aborted. Reads stream the answer's body.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, ObjectStore, ObjectStoreExt, RetryConfig,
};
use secrecy::ExposeSecret;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use super::{check_key, BlobMeta, BlobRead, Blobs, ByteStream};
use crate::media::error::MediaError;
use crate::media::settings::S3Settings;
use crate::model::ids::new_id;

/// The size of one part of a multipart upload (S3's smallest but for the last part).
pub const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts uploaded at once while the next is being filled.
pub const PARTS_IN_FLIGHT: usize = 2;
/// Connecting to the store.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One request, body included: a large file streamed to a slow client must fit in it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// Retries of a failed request (5xx, a dropped connection) within this time.
const RETRY_TIMEOUT: Duration = Duration::from_secs(15);
/// The start-up check (write, read back, delete) must be done in this time.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct S3Blobs {
    store: Arc<dyn ObjectStore>,
    prefix: Vec<String>,
    name: String,
}

impl S3Blobs {
    /// The store the settings name, checked: the prefix is listed and a small object written,
    /// read back and deleted, so wrong credentials, a missing bucket, missing permissions or
    /// an unreachable endpoint stop the start with the reason rather than fail an upload.
    pub async fn connect(s: &S3Settings) -> anyhow::Result<S3Blobs> {
        let blobs = Self::new(s)?;
        match tokio::time::timeout(PROBE_TIMEOUT, blobs.probe()).await {
            Ok(Ok(())) => Ok(blobs),
            Ok(Err(e)) => {
                anyhow::bail!("the media store {} cannot be used: {e}", blobs.name)
            }
            Err(_) => anyhow::bail!(
                "the media store {} did not answer within {} s",
                blobs.name,
                PROBE_TIMEOUT.as_secs()
            ),
        }
    }

    /// The store the settings name, unchecked.
    pub fn new(s: &S3Settings) -> anyhow::Result<S3Blobs> {
        // The standard AWS_* variables first (credentials, region, web identity, ...); what
        // the operator set explicitly wins.
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&s.bucket)
            .with_virtual_hosted_style_request(!s.path_style)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(CONNECT_TIMEOUT)
                    .with_timeout(REQUEST_TIMEOUT),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 3,
                retry_timeout: RETRY_TIMEOUT,
            });
        let env_allows_http = std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true");
        if let Some(endpoint) = &s.endpoint {
            b = b.with_endpoint(endpoint);
        }
        let endpoint_is_http = s.endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
        b = b.with_allow_http(endpoint_is_http || env_allows_http);
        if let Some(region) = &s.region {
            b = b.with_region(region);
        }
        if let Some(id) = &s.access_key_id {
            b = b.with_access_key_id(id);
        }
        if let Some(secret) = &s.secret_access_key {
            b = b.with_secret_access_key(secret.expose_secret());
        }
        if let Some(token) = &s.session_token {
            b = b.with_token(token.expose_secret());
        }
        let store = b.build().map_err(|e| {
            anyhow::anyhow!("the media store {} is misconfigured: {e}", s.describe())
        })?;
        let prefix = s.prefix.split('/').filter(|p| !p.is_empty()).map(str::to_string).collect();
        Ok(S3Blobs { store: Arc::new(store), prefix, name: s.describe() })
    }

    fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from_iter(self.prefix.iter().map(String::as_str).chain(key.split('/')))
    }

    /// The key of an object the store listed: its path without the prefix.
    fn key_of(&self, path: &ObjectPath) -> Option<String> {
        let mut parts = path.parts();
        for p in &self.prefix {
            if parts.next()?.as_ref() != p {
                return None;
            }
        }
        let key: Vec<String> = parts.map(|p| p.as_ref().to_string()).collect();
        (!key.is_empty()).then(|| key.join("/"))
    }

    async fn probe(&self) -> Result<(), String> {
        // Under a segment no media key starts with ('.'), so no sweep or listing counts it.
        let path = ObjectPath::from_iter(
            self.prefix.iter().map(String::as_str).chain([".bzapper-probe", &new_id("probe")]),
        );
        let written = b"bzapper media store check".as_slice();
        let step = |what: &'static str| move |e: object_store::Error| format!("{what} failed: {e}");
        // Listing is needed too (quotas, the sweep), and it tells a missing bucket.
        let under = self.path_prefix("");
        self.store.list_with_delimiter(Some(&under)).await.map_err(step("listing the bucket"))?;
        self.store.put(&path, written.into()).await.map_err(step("writing a test object"))?;
        let got = self.store.get(&path).await.map_err(step("reading the test object back"))?;
        let got = got.bytes().await.map_err(step("reading the test object back"))?;
        if got.as_ref() != written {
            return Err("the test object read back differs".into());
        }
        self.store.delete(&path).await.map_err(step("deleting the test object"))?;
        Ok(())
    }
}

fn s3_error(e: object_store::Error) -> MediaError {
    match e {
        object_store::Error::NotFound { .. } => MediaError::NotFound,
        e => MediaError::Io(e.to_string()),
    }
}

#[async_trait::async_trait]
impl Blobs for S3Blobs {
    async fn put(&self, key: &str, mut body: ByteStream<'_>) -> Result<u64, MediaError> {
        check_key(key)?;
        let mut w = BufWriter::with_capacity(self.store.clone(), self.path(key), PART_SIZE)
            .with_max_concurrency(PARTS_IN_FLIGHT);
        let mut size = 0u64;
        let streamed: Result<(), MediaError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                w.put(chunk).await.map_err(s3_error)?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = streamed {
            // The parts sent so far are dropped; nothing appears under the key.
            if let Err(abort) = w.abort().await {
                tracing::warn!(key, error = %abort, "aborting a multipart upload failed; the bucket's lifecycle rule removes it");
            }
            return Err(e);
        }
        w.shutdown().await.map_err(|e| MediaError::Io(format!("completing the upload: {e}")))?;
        Ok(size)
    }

    async fn put_file(&self, key: &str, file: &Path) -> Result<u64, MediaError> {
        let f = tokio::fs::File::open(file).await.map_err(crate::media::error::io)?;
        let body = ReaderStream::with_capacity(f, 64 * 1024).map_err(crate::media::error::io);
        let size = self.put(key, body.boxed()).await?;
        if let Err(e) = tokio::fs::remove_file(file).await {
            tracing::warn!(path = %file.display(), error = %e, "removing an uploaded local file failed");
        }
        Ok(size)
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<BlobRead, MediaError> {
        check_key(key)?;
        let opts = GetOptions::new().with_range(range);
        let res = self.store.get_opts(&self.path(key), opts).await.map_err(s3_error)?;
        let size = res.meta.size;
        Ok(BlobRead { size, body: res.into_stream().map_err(s3_error).boxed() })
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, MediaError> {
        check_key(key)?;
        match self.store.head(&self.path(key)).await {
            Ok(m) => {
                Ok(Some(BlobMeta { key: key.to_string(), size: m.size, modified: m.last_modified }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(s3_error(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), MediaError> {
        check_key(key)?;
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(s3_error(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, MediaError> {
        if !prefix.is_empty() {
            check_key(prefix)?;
        }
        let under = if prefix.is_empty() && self.prefix.is_empty() {
            None
        } else {
            Some(self.path_prefix(prefix))
        };
        let listed: Vec<_> =
            self.store.list(under.as_ref()).try_collect().await.map_err(s3_error)?;
        Ok(listed
            .into_iter()
            .filter_map(|m| {
                let key = self.key_of(&m.location)?;
                // The start-up check's objects and anything else not a media key.
                super::is_valid_key(&key).then_some(BlobMeta {
                    key,
                    size: m.size,
                    modified: m.last_modified,
                })
            })
            .collect())
    }

    fn local_path(&self, _key: &str) -> Option<PathBuf> {
        None
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

impl S3Blobs {
    fn path_prefix(&self, prefix: &str) -> ObjectPath {
        ObjectPath::from_iter(
            self.prefix
                .iter()
                .map(String::as_str)
                .chain(prefix.split('/').filter(|p| !p.is_empty())),
        )
    }
}
