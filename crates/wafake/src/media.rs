//! The fake's media host: a small plain-HTTP server on the WireServer's IP, its own port,
//! that plays WhatsApp's media CDN for the clients of a [`crate::WireNet`].
//!
//! - **media_conn.** `<iq xmlns="w:m" type="set"><media_conn/></iq>` (wacore
//!   `iq/mediaconn.rs`) gets `<media_conn auth ttl auth_ttl max_buckets><host
//!   hostname="IP:PORT" type="primary"><upload/><download/></host></media_conn>`: one host,
//!   whose "hostname" is this server's address. The client builds `https://{hostname}…` URLs
//!   from it, so its HttpClient must rewrite `https://IP:PORT/` to `http://IP:PORT/`.
//! - **Upload** (whatsapp-rust `upload.rs`): `POST /mms/{type}/{token}?auth&token` with the
//!   ciphertext, streamed to a file in a temp dir. The token must be the URL-safe base64
//!   (no padding) of the ciphertext's SHA-256, as WhatsApp's CDN checks, and `auth` the one
//!   media_conn gave. Answer `{"url", "direct_path", "handle"}`; `direct_path` is
//!   `/v/t62.7118-24/wafake/<32 hex>.enc`. The resumable probe (`&resume=1`, sent for files of
//!   5 MiB and more) gets `{"resume":"complete","url","direct_path"}` for a token already
//!   stored, or 404 (upload from the start).
//! - **Download** (wacore `download.rs`): `GET {direct_path}?auth&token` streams the stored
//!   ciphertext back; 401 with a wrong `auth`, 404 for an unknown path.
//! - The fake itself decrypts what a client uploaded (to report the plaintext's size and
//!   hash in the outbox), and encrypts what a contact sends ([`MediaHost::store_plaintext`]),
//!   with wacore's own media crypto.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context as _, Result};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures::StreamExt as _;
use rand::Rng as _;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;
use wacore::download::{DownloadUtils, MediaType};
use wacore_binary::builder::NodeBuilder;
use wacore_binary::Node;

use crate::hooks::IqAnswer;

/// How long the media_conn answer says the auth and hosts hold (the client asks again after).
const MEDIA_CONN_TTL_SECS: u64 = 3600;

/// A file on the host: a ciphertext, uploaded by a client or stored by the fake.
#[derive(Debug, Clone)]
struct StoredFile {
    path: PathBuf,
    len: u64,
}

/// A media file the fake encrypted and stored, with what a message needs to point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMedia {
    /// `https://IP:PORT{direct_path}` (as WhatsApp's `url`; the client derives its own).
    pub url: String,
    pub direct_path: String,
    pub media_key: [u8; 32],
    pub file_sha256: [u8; 32],
    pub file_enc_sha256: [u8; 32],
    /// Of the plaintext.
    pub file_length: u64,
}

/// The size and SHA-256 of a media file's plaintext, as the fake read it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plaintext {
    pub size: u64,
    pub sha256: [u8; 32],
}

/// The media CDN of one network; see the module docs.
pub struct MediaHost {
    addr: SocketAddr,
    auth: String,
    dir: tempfile::TempDir,
    /// By direct path (without query).
    files: Mutex<HashMap<String, StoredFile>>,
    /// Upload token (base64url of the ciphertext's SHA-256) → direct path.
    tokens: Mutex<HashMap<String, String>>,
    next_file: AtomicU64,
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..bytes).map(|_| format!("{:02x}", rng.gen::<u8>())).collect()
}

impl MediaHost {
    /// A host that will be reachable at `addr` (bound by the caller), files in a new temp dir.
    fn new(addr: SocketAddr) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("wafake-media-").tempdir()?;
        Ok(Self {
            addr,
            auth: format!("WAFAKE{}", random_hex(16)),
            dir,
            files: Mutex::default(),
            tokens: Mutex::default(),
            next_file: AtomicU64::new(0),
        })
    }

    /// Binds `ip`:0, serves the host there until `shutdown` resolves. Needs a tokio runtime.
    pub(crate) fn start(
        ip: std::net::IpAddr,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<Arc<Self>> {
        let listener = std::net::TcpListener::bind(SocketAddr::new(ip, 0))?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let host = Arc::new(Self::new(listener.local_addr()?)?);
        let app = router(host.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                tracing::warn!("wire media host stopped: {e}");
            }
        });
        Ok(host)
    }

    /// `IP:PORT`: the media_conn host's "hostname".
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `auth` media_conn hands out, which uploads and downloads must carry.
    pub fn auth(&self) -> &str {
        &self.auth
    }

    /// `<media_conn auth ttl …><host hostname="IP:PORT" type="primary"><upload/><download/>`.
    pub fn media_conn_node(&self) -> Node {
        let ttl = MEDIA_CONN_TTL_SECS.to_string();
        NodeBuilder::new("media_conn")
            .attr("auth", self.auth.as_str())
            .attr("ttl", ttl.as_str())
            .attr("auth_ttl", ttl.as_str())
            .attr("max_buckets", "12")
            .children([NodeBuilder::new("host")
                .attr("hostname", self.addr.to_string())
                .attr("type", "primary")
                .children([
                    NodeBuilder::new("upload").build(),
                    NodeBuilder::new("download").build(),
                ])
                .build()])
            .build()
    }

    fn new_file(&self) -> (PathBuf, String) {
        let n = self.next_file.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("{n}.enc"));
        (path, format!("/v/t62.7118-24/wafake/{}.enc", random_hex(16)))
    }

    fn url_of(&self, direct_path: &str) -> String {
        format!("https://{}{direct_path}", self.addr)
    }

    fn register(&self, direct_path: &str, file: StoredFile, token: Option<String>) {
        self.files.lock().expect("poisoned").insert(direct_path.to_string(), file);
        if let Some(token) = token {
            self.tokens.lock().expect("poisoned").insert(token, direct_path.to_string());
        }
    }

    fn file(&self, direct_path: &str) -> Option<StoredFile> {
        let path = direct_path.split('?').next().unwrap_or_default();
        self.files.lock().expect("poisoned").get(path).cloned()
    }

    /// Encrypts `plaintext` under a fresh media key for `media_type` (streaming, into a file)
    /// and serves it under a new direct path. Blocking: up to 100 MiB go through AES.
    pub fn store_plaintext(
        &self,
        plaintext: impl Read,
        media_type: MediaType,
    ) -> Result<StoredMedia> {
        let (path, direct_path) = self.new_file();
        let file = std::fs::File::create(&path).with_context(|| format!("creating {path:?}"))?;
        let mut writer = BufWriter::new(file);
        let info = wacore::upload::encrypt_media_streaming_with_key(
            plaintext,
            &mut writer,
            media_type,
            None,
            Some(false),
        )?;
        writer.flush()?;
        let len = std::fs::metadata(&path)?.len();
        let token = URL_SAFE_NO_PAD.encode(info.file_enc_sha256);
        self.register(&direct_path, StoredFile { path, len }, Some(token));
        Ok(StoredMedia {
            url: self.url_of(&direct_path),
            direct_path,
            media_key: info.media_key,
            file_sha256: info.file_sha256,
            file_enc_sha256: info.file_enc_sha256,
            file_length: info.file_length,
        })
    }

    /// Decrypts the file at `direct_path` with `media_key` and returns the plaintext's size
    /// and SHA-256 (the MAC is checked on the way). Blocking.
    pub fn plaintext_of(
        &self,
        direct_path: &str,
        media_key: &[u8],
        media_type: MediaType,
    ) -> Result<Plaintext> {
        let stored =
            self.file(direct_path).ok_or_else(|| anyhow!("no media at {direct_path:?}"))?;
        let file = std::fs::File::open(&stored.path)?;
        let mut sink = HashingSink::default();
        let size = DownloadUtils::decrypt_stream_to_writer(
            BufReader::with_capacity(256 * 1024, file),
            media_key,
            media_type,
            &mut sink,
        )?;
        if size != sink.len {
            bail!("decrypted {size} bytes but wrote {}", sink.len);
        }
        Ok(Plaintext { size, sha256: sink.hasher.finalize().into() })
    }
}

/// A writer that only hashes and counts.
#[derive(Default)]
struct HashingSink {
    hasher: Sha256,
    len: u64,
}

impl Write for HashingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The media_conn iq, answered from `host`; `None` for every other iq.
pub(crate) fn answer_iq(host: &MediaHost, iq: &Node) -> Option<IqAnswer> {
    let xmlns = iq.attrs.get("xmlns").map(|v| v.as_str().into_owned());
    if xmlns.as_deref() != Some("w:m") || iq.get_optional_child("media_conn").is_none() {
        return None;
    }
    Some(IqAnswer::Result(vec![host.media_conn_node()]))
}

// ---- HTTP ----

fn router(host: Arc<MediaHost>) -> Router {
    Router::new().route("/mms/{kind}/{token}", post(upload)).fallback(download).with_state(host)
}

#[derive(Deserialize)]
struct UploadQuery {
    auth: Option<String>,
    resume: Option<String>,
    file_offset: Option<u64>,
}

fn status(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({"error": message.into()}))).into_response()
}

async fn upload(
    State(host): State<Arc<MediaHost>>,
    Path((kind, token)): Path<(String, String)>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> Response {
    if q.auth.as_deref() != Some(host.auth()) {
        return status(StatusCode::UNAUTHORIZED, "bad media auth");
    }
    let known = host.tokens.lock().expect("poisoned").get(&token).cloned();
    if q.resume.is_some() {
        return match known {
            Some(direct_path) => Json(json!({
                "resume": "complete",
                "url": host.url_of(&direct_path),
                "direct_path": direct_path,
            }))
            .into_response(),
            None => status(StatusCode::NOT_FOUND, "no such upload"),
        };
    }
    if q.file_offset.is_some() {
        // Never offered: the resume probe only answers "complete" or 404.
        return status(StatusCode::BAD_REQUEST, "resumed uploads are not supported");
    }
    let (path, direct_path) = host.new_file();
    match receive(&path, body).await {
        Ok((len, digest)) => {
            let actual = URL_SAFE_NO_PAD.encode(digest);
            if actual != token {
                let _ = tokio::fs::remove_file(&path).await;
                tracing::warn!(%kind, "wire media host: upload token {token} but body hashes to {actual}");
                return status(StatusCode::BAD_REQUEST, "the token is not the body's SHA-256");
            }
            host.register(&direct_path, StoredFile { path, len }, Some(token));
            tracing::debug!(%kind, len, %direct_path, "wire media host: stored an upload");
            Json(json!({
                "url": host.url_of(&direct_path),
                "direct_path": direct_path,
                "handle": random_hex(8),
            }))
            .into_response()
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            status(StatusCode::BAD_REQUEST, format!("upload failed: {e:#}"))
        }
    }
}

/// Streams `body` into `path`; its length and SHA-256.
async fn receive(path: &std::path::Path, body: Body) -> Result<(u64, [u8; 32])> {
    let mut file = tokio::io::BufWriter::new(tokio::fs::File::create(path).await?);
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| anyhow!("reading the body: {e}"))?;
        hasher.update(&chunk);
        len += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok((len, hasher.finalize().into()))
}

#[derive(Deserialize)]
struct DownloadQuery {
    auth: Option<String>,
}

async fn download(
    State(host): State<Arc<MediaHost>>,
    method: Method,
    uri: Uri,
    Query(q): Query<DownloadQuery>,
) -> Response {
    if method != Method::GET {
        return status(StatusCode::NOT_FOUND, "no such route");
    }
    if q.auth.as_deref() != Some(host.auth()) {
        return status(StatusCode::UNAUTHORIZED, "bad media auth");
    }
    let Some(stored) = host.file(uri.path()) else {
        return status(StatusCode::NOT_FOUND, "no such media");
    };
    let file = match tokio::fs::File::open(&stored.path).await {
        Ok(f) => f,
        Err(e) => return status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024));
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, stored.len.to_string()),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stored_media_decrypts_back_and_is_served() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let host = MediaHost::start("127.0.0.1".parse().unwrap(), async {
            let _ = rx.await;
        })
        .unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let stored = host.store_plaintext(&data[..], MediaType::Document).unwrap();
        assert_eq!(stored.file_length, data.len() as u64);
        assert_eq!(stored.file_sha256, <[u8; 32]>::from(Sha256::digest(&data)));
        let plain =
            host.plaintext_of(&stored.direct_path, &stored.media_key, MediaType::Document).unwrap();
        assert_eq!(plain, Plaintext { size: data.len() as u64, sha256: stored.file_sha256 });
        // The wrong key type fails the MAC.
        assert!(host
            .plaintext_of(&stored.direct_path, &stored.media_key, MediaType::Image)
            .is_err());

        let http = reqwest::Client::new();
        let base = format!("http://{}{}", host.addr(), stored.direct_path);
        let r = http.get(format!("{base}?auth=nope")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
        let r = http.get(format!("{base}?auth={}&token=x", host.auth())).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let body = r.bytes().await.unwrap();
        let back = DownloadUtils::verify_and_decrypt(&body, &stored.media_key, MediaType::Document)
            .unwrap();
        assert_eq!(back, data);

        // An upload whose token is not its hash is refused; a good one is stored and probed.
        let cipher = body.to_vec();
        let token = URL_SAFE_NO_PAD.encode(Sha256::digest(&cipher));
        let up = |t: &str, extra: &str| {
            format!("http://{}/mms/document/{t}?auth={}&token={t}{extra}", host.addr(), host.auth())
        };
        let r = http.post(up("AAAA", "")).body(cipher.clone()).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let r = http.post(up(&token, "")).body(cipher.clone()).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        let path = v["direct_path"].as_str().unwrap().to_string();
        assert_eq!(v["url"], format!("https://{}{path}", host.addr()));
        let r = http.post(up(&token, "&resume=1")).send().await.unwrap();
        let probe: serde_json::Value = r.json().await.unwrap();
        assert_eq!(probe["resume"], "complete");
        let plain = host.plaintext_of(&path, &stored.media_key, MediaType::Document).unwrap();
        assert_eq!(plain.size, data.len() as u64);
        let _ = tx.send(());
    }

    #[test]
    fn media_conn_answer_parses_with_the_clients_parser() {
        use wacore::iq::spec::IqSpec as _;
        let host = MediaHost::new("127.0.0.1:4567".parse().unwrap()).unwrap();
        let iq = NodeBuilder::new("iq")
            .attr("xmlns", "w:m")
            .attr("type", "set")
            .children([NodeBuilder::new("media_conn").build()])
            .build();
        let Some(IqAnswer::Result(children)) = answer_iq(&host, &iq) else { panic!() };
        let response = NodeBuilder::new("iq").attr("type", "result").children(children).build();
        let parsed = wacore::iq::mediaconn::MediaConnSpec::new()
            .parse_response(&response.as_node_ref())
            .unwrap();
        assert_eq!(parsed.auth, host.auth());
        assert_eq!(parsed.hosts.len(), 1);
        assert_eq!(parsed.hosts[0].hostname, "127.0.0.1:4567");
        assert!(parsed.ttl > 0);
        let other = NodeBuilder::new("iq").attr("xmlns", "w:g2").build();
        assert!(answer_iq(&host, &other).is_none());
    }
}
