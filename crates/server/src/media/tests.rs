//! The media store against a temporary directory, and URL fetches against loopback servers.

use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode as AxStatus;
use axum::routing::get;
use futures::stream;

use super::*;
use crate::media::files::entries;

/// Where the local disk keeps the bytes of `m`.
fn blob_path(s: &MediaStore, m: &StoredMedia) -> PathBuf {
    s.blobs.local_path(&blob_key(&m.tenant_id, &m.id)).expect("a local store")
}

fn record_path(s: &MediaStore, tenant_id: &str, id: &str) -> PathBuf {
    s.blobs.local_path(&record_key(tenant_id, id)).expect("a local store")
}

const KIB: u64 = 1024;

fn limits() -> MediaLimits {
    MediaLimits {
        max_bytes: 64 * KIB,
        retention: Duration::from_secs(3600),
        fetch_timeout: Duration::from_millis(300),
    }
}

fn store(dir: &Path) -> MediaStore {
    // The fixtures listen on loopback.
    let loopback = crate::outbound::Guard::new("127.0.0.0/8".parse().unwrap());
    MediaStore::new(dir.join("media"), limits(), http_client(&loopback).unwrap()).unwrap()
}

/// A PNG signature and IHDR start, padded to `len` bytes.
fn png(len: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    v.resize(len.max(v.len()), 7);
    v
}

fn html(len: usize) -> Vec<u8> {
    let mut v = b"<!DOCTYPE html><html><body>".to_vec();
    v.resize(len.max(v.len()), b' ');
    v
}

fn chunks(data: &[u8], size: usize) -> impl Stream<Item = Result<Bytes, Infallible>> + Unpin {
    let parts: Vec<_> = data.chunks(size).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    stream::iter(parts)
}

/// An endless body of `chunk` repeated, counting how many chunks were pulled.
fn endless(
    chunk: Vec<u8>,
    pulled: Arc<AtomicUsize>,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Unpin {
    let chunk = Bytes::from(chunk);
    stream::repeat_with(move || {
        pulled.fetch_add(1, Ordering::SeqCst);
        Ok(chunk.clone())
    })
}

fn sha256_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in entries(dir).unwrap() {
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn a_file_round_trips_with_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let data = png(40 * KIB as usize);
    let m = s
        .put_stream("ten_a", Some("image/png"), Some("a.png".into()), 64 * KIB, chunks(&data, 5000))
        .await
        .unwrap();
    assert!(m.id.starts_with("med_"));
    assert_eq!((m.mime.as_str(), m.size), ("image/png", data.len() as u64));
    assert_eq!(m.sha256, sha256_hex(&data));
    assert_eq!(m.file_name.as_deref(), Some("a.png"));
    assert_eq!(m.expires_at - m.created_at, chrono::Duration::hours(1));
    assert_eq!(std::fs::read(blob_path(&s, &m)).unwrap(), data);
    assert_eq!(s.get("ten_a", &m.id).await.unwrap(), Some(m.clone()));
    assert!(s.delete("ten_a", &m.id).await.unwrap());
    assert_eq!(s.get("ten_a", &m.id).await.unwrap(), None);
    assert!(!s.delete("ten_a", &m.id).await.unwrap());
    assert_eq!(files_under(&dir.path().join("media")), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn the_cap_is_enforced_mid_stream_and_the_partial_file_removed() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let pulled = Arc::new(AtomicUsize::new(0));
    let body = endless(vec![1u8; 4096], pulled.clone());
    let err = s.put_stream("ten_a", None, None, 64 * KIB, body).await.unwrap_err();
    assert!(matches!(err, MediaError::TooLarge { cap } if cap == 64 * KIB), "{err:?}");
    assert_eq!(err.to_string(), "the file is larger than the limit of 64 KiB");
    // It stopped at the first chunk past the cap, and left nothing behind.
    assert_eq!(pulled.load(Ordering::SeqCst), 17);
    assert_eq!(files_under(&dir.path().join("media")), Vec::<PathBuf>::new());
    // Exactly the cap is fine.
    let data = vec![2u8; 64 * KIB as usize];
    assert!(s.put_stream("ten_a", None, None, 64 * KIB, chunks(&data, 1000)).await.is_ok());
}

#[tokio::test]
async fn a_broken_body_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let body = stream::iter(vec![Ok(Bytes::from_static(b"abc")), Err("connection reset")]);
    let err = s.put_stream("ten_a", None, None, KIB, body).await.unwrap_err();
    assert!(matches!(&err, MediaError::Unreachable(m) if m.contains("connection reset")), "{err}");
    assert_eq!(files_under(&dir.path().join("media")), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn sniffing_beats_a_wrong_declared_type() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let put = |data: Vec<u8>, declared: Option<&'static str>| {
        let s = &s;
        async move { s.put_stream("ten_a", declared, None, KIB, chunks(&data, 7)).await.unwrap() }
    };
    assert_eq!(put(png(100), Some("text/plain")).await.mime, "image/png");
    assert_eq!(
        put(b"hello".to_vec(), Some("text/plain; charset=utf-8")).await.mime,
        "text/plain; charset=utf-8"
    );
    assert_eq!(put(b"hello".to_vec(), None).await.mime, "application/octet-stream");
    assert_eq!(put(b"hello".to_vec(), Some("bogus")).await.mime, "application/octet-stream");
}

#[tokio::test]
async fn a_kind_is_refused_as_soon_as_the_first_bytes_show_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let pulled = Arc::new(AtomicUsize::new(0));
    let body = endless(html(1024), pulled.clone());
    let err = s.put_stream_as("ten_a", MediaKind::Image, Some("image/png"), None, body).await;
    let err = err.unwrap_err();
    assert!(
        matches!(&err, MediaError::WrongType { expected: MediaKind::Image, got } if got.as_str() == "text/html"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the file is text/html, which cannot be sent as an image (JPEG, PNG, WebP or GIF)"
    );
    assert_eq!(pulled.load(Ordering::SeqCst), 8, "refused once 8 KiB were in");
    assert_eq!(files_under(&dir.path().join("media")), Vec::<PathBuf>::new());

    // A sticker has its own cap (1 MiB), under the general one here.
    let m = s.put_stream("ten_a", None, None, KIB, chunks(&png(500), 100)).await.unwrap();
    assert!(s.check_kind(&m, MediaKind::Image).await.is_ok());
    assert!(s.check_kind(&m, MediaKind::Document).await.is_ok());
    assert!(matches!(
        s.check_kind(&m, MediaKind::Sticker).await,
        Err(MediaError::WrongType { expected: MediaKind::Sticker, .. })
    ));
}

#[tokio::test]
async fn files_expire_and_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let m = s.put_stream("ten_a", None, None, KIB, chunks(b"x", 1)).await.unwrap();
    let keep = s.put_stream("ten_b", None, None, KIB, chunks(b"y", 1)).await.unwrap();
    let download = s.download_file();
    std::fs::write(download.path(), b"inbound").unwrap();
    s.cache_inbound("ten_a", "ins_1", "3EB0ABCDEF", download).await.unwrap();
    let cached = dir.path().join("media/ten_a/inbound/ins_1/3EB0ABCDEF");
    assert!(cached.exists());
    let leftover = dir.path().join("media/ten_a/.tmp/up_crashed.part");
    std::fs::write(&leftover, b"half").unwrap();

    assert!(s
        .get_at("ten_a", &m.id, m.expires_at - chrono::Duration::seconds(1))
        .await
        .unwrap()
        .is_some());
    assert_eq!(s.get_at("ten_a", &m.id, m.expires_at).await.unwrap(), None);
    // Nothing is old yet.
    assert_eq!(s.sweep(m.created_at + chrono::Duration::minutes(30)).await.unwrap(), 0);
    assert!(cached.exists() && leftover.exists());

    // `keep` lives a little longer than `m` but is also past its time here.
    let later = keep.expires_at + chrono::Duration::seconds(1);
    assert_eq!(s.sweep(later).await.unwrap(), 4);
    assert!(!cached.exists() && !leftover.exists());
    assert!(!blob_path(&s, &m).exists() && !blob_path(&s, &keep).exists());
    assert_eq!(files_under(&dir.path().join("media")), Vec::<PathBuf>::new());
    assert_eq!(s.sweep(later).await.unwrap(), 0);
}

#[tokio::test]
async fn ids_that_could_escape_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let root = dir.path().join("media");
    // A record outside the tenant's directory that a traversal would reach.
    let m = s.put_stream("ten_a", None, None, KIB, chunks(b"secret", 3)).await.unwrap();
    let relative = format!("../ten_a/{}", m.id);
    for bad in
        [relative.as_str(), "..", "", "a/b", "med_x.json", "med x", "%2e%2e", &"a".repeat(200)]
    {
        assert_eq!(s.get("ten_b", bad).await.unwrap(), None, "{bad}");
        assert!(!s.delete("ten_b", bad).await.unwrap(), "{bad}");
    }
    assert!(s.get("ten_a", &m.id).await.unwrap().is_some());
    for bad_tenant in ["../ten_a", "..", "", "a/b"] {
        assert_eq!(s.get(bad_tenant, &m.id).await.unwrap(), None);
        let err = s.put_stream(bad_tenant, None, None, KIB, chunks(b"x", 1)).await.unwrap_err();
        assert!(matches!(err, MediaError::Io(_)), "{err:?}");
    }
    let k = inbound_key("../../x", "..", "../../../etc/passwd");
    assert!(crate::media::blobs::is_valid_key(&k) && k.matches('/').count() == 3, "{k}");
    assert_eq!(inbound_key("ten_a", "ins_1", "3EB0ABC"), "ten_a/inbound/ins_1/3EB0ABC");
    assert!(s.inbound_cached("../../x", "..", "../../../etc/passwd").await.unwrap().is_none());
    assert!(root.is_dir());
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let m = s.put_stream("ten_a", None, None, KIB, chunks(b"mine", 2)).await.unwrap();
    assert_eq!(s.get("ten_b", &m.id).await.unwrap(), None);
    assert!(!s.delete("ten_b", &m.id).await.unwrap());
    assert_eq!(s.get("ten_a", &m.id).await.unwrap(), Some(m.clone()));
    // A record copied into another tenant's directory is not taken for theirs.
    let theirs = dir.path().join("media/ten_b");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::copy(record_path(&s, "ten_a", &m.id), theirs.join(format!("{}.json", m.id))).unwrap();
    std::fs::copy(blob_path(&s, &m), theirs.join(format!("{}.bin", m.id))).unwrap();
    assert_eq!(s.get("ten_b", &m.id).await.unwrap(), None);
}

/// Serves the fixtures on loopback; returns the base URL.
async fn fixtures() -> String {
    let big = png(64 * KIB as usize + 1);
    let big_chunked = big.clone();
    let app = axum::Router::new()
        .route("/files/photo.png", get(|| async { ([(CONTENT_TYPE, "image/png")], png(3000)) }))
        .route("/octet", get(|| async { ([(CONTENT_TYPE, "application/octet-stream")], png(300)) }))
        .route("/big", get(move || async move { ([(CONTENT_TYPE, "image/png")], big) }))
        .route(
            "/big-chunked",
            get(move || async move {
                let parts: Vec<Result<Bytes, Infallible>> =
                    big_chunked.chunks(4096).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
                ([(CONTENT_TYPE, "image/png")], Body::from_stream(stream::iter(parts)))
            }),
        )
        .route("/page", get(|| async { ([(CONTENT_TYPE, "image/png")], html(20_000)) }))
        .route("/text", get(|| async { ([(CONTENT_TYPE, "text/html")], html(100)) }))
        .route("/missing", get(|| async { AxStatus::NOT_FOUND }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    base
}

/// A server that accepts connections and never says a word.
async fn silent() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = l.accept().await {
            held.push(sock);
        }
    });
    base
}

fn url(base: &str, path: &str) -> url::Url {
    url::Url::parse(&format!("{base}{path}")).unwrap()
}

#[tokio::test]
async fn urls_are_fetched_within_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let base = fixtures().await;
    let fetch = |path: &str, kind: MediaKind| {
        let u = url(&base, path);
        let s = &s;
        async move { s.fetch_url("ten_a", &u, kind, None).await }
    };

    let m = fetch("/files/photo.png", MediaKind::Image).await.unwrap();
    assert_eq!((m.mime.as_str(), m.size), ("image/png", 3000));
    assert_eq!(m.sha256, sha256_hex(&png(3000)));
    assert_eq!(m.file_name.as_deref(), Some("photo.png"));
    assert_eq!(std::fs::read(blob_path(&s, &m)).unwrap(), png(3000));
    // A server that says only "bytes" is judged by the bytes.
    assert_eq!(fetch("/octet", MediaKind::Image).await.unwrap().mime, "image/png");

    let too_large =
        |r: Result<StoredMedia, MediaError>| matches!(r, Err(MediaError::TooLarge { cap: 65536 }));
    assert!(too_large(fetch("/big", MediaKind::Image).await), "with Content-Length");
    assert!(too_large(fetch("/big-chunked", MediaKind::Image).await), "streamed");
    let r = fetch("/page", MediaKind::Image).await;
    assert!(matches!(&r, Err(MediaError::WrongType { got, .. }) if got == "text/html"), "{r:?}");
    let r = fetch("/text", MediaKind::Video).await;
    assert!(matches!(&r, Err(MediaError::WrongType { got, .. }) if got == "text/html"), "{r:?}");
    // A document may be anything.
    assert_eq!(fetch("/text", MediaKind::Document).await.unwrap().mime, "text/html");
    let r = fetch("/missing", MediaKind::Image).await;
    assert!(matches!(r, Err(MediaError::Status(404))), "{r:?}");
    assert_eq!(r.unwrap_err().to_string(), "the media URL answered HTTP 404");

    let ftp = url::Url::parse("ftp://h/x").unwrap();
    let r = s.fetch_url("ten_a", &ftp, MediaKind::Image, None).await;
    assert!(matches!(r, Err(MediaError::Unreachable(_))), "{r:?}");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    // A closed port: no answer, in the same words as a silent server (no port scanner).
    let r = fetch_from(&s, &closed).await;
    assert!(matches!(&r, Err(MediaError::NoAnswer)), "{r:?}");
    assert_eq!(
        r.unwrap_err().to_string(),
        "the media URL could not be fetched (no connection, or no answer in time)"
    );

    // Only the three good files remain (file and record each), and no partial file.
    let files = files_under(&dir.path().join("media"));
    assert_eq!(files.len(), 6, "{files:?}");
    assert!(files.iter().all(|f| f.extension().is_some_and(|e| e == "bin" || e == "json")));
}

async fn fetch_from(s: &MediaStore, base: &str) -> Result<StoredMedia, MediaError> {
    s.fetch_url("ten_a", &url(base, "/x.png"), MediaKind::Image, None).await
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let base = silent().await;
    let started = std::time::Instant::now();
    let r = fetch_from(&s, &base).await;
    // No answer's headers in time reads as a closed port does.
    assert!(matches!(r, Err(MediaError::NoAnswer)), "{r:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn a_copy_from_a_peer_keeps_the_id_and_record_and_is_checked_while_it_streams() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (origin, copy) = (store(a.path()), store(b.path()));
    let data = png(10 * KIB as usize);
    let m = origin.put_stream("ten_1", None, Some("x.png".into()), 64 * KIB, chunks(&data, 999));
    let m = m.await.unwrap();

    // A body that is not the record's: too long, too short, or other bytes. Nothing is kept.
    let mut longer = data.clone();
    longer.push(0);
    let mut other = data.clone();
    other[100] ^= 1;
    for bad in [longer, data[..data.len() - 1].to_vec(), other] {
        let refused = copy.put_copy(&m, chunks(&bad, 1000)).await;
        assert!(matches!(refused, Err(MediaError::Io(_))), "{refused:?}");
        assert_eq!(copy.get("ten_1", &m.id).await.unwrap(), None);
    }
    // Over this node's cap (a peer with a larger one): refused before a byte is read.
    let big = StoredMedia { size: 65 * KIB, ..m.clone() };
    let refused = copy.put_copy(&big, chunks(&data, 1000)).await;
    assert!(matches!(refused, Err(MediaError::TooLarge { .. })), "{refused:?}");

    let kept = copy.put_copy(&m, chunks(&data, 1000)).await.unwrap();
    assert_eq!(kept, m);
    assert_eq!(copy.get("ten_1", &m.id).await.unwrap(), Some(m.clone()));
    assert_eq!(std::fs::read(blob_path(&copy, &m)).unwrap(), data);
    // Nothing left in the temporary directory; a store without peers finds what `get` finds.
    let tmp = b.path().join("media/ten_1/.tmp");
    assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
    assert_eq!(copy.find("ten_1", &m.id).await.unwrap(), Some(m.clone()));
    assert_eq!(copy.find("ten_1", "med_nope").await.unwrap(), None);
}

/// The store on the S3 test server (`BZAPPER_TEST_S3_URL`, keys under a fresh prefix), its
/// spool under `dir`; `None` (and a message) without one.
async fn s3_store(dir: &Path) -> Option<MediaStore> {
    let settings = crate::media::blobs::conformance::s3_test_settings("the media store")?;
    let blobs = Arc::new(S3Blobs::connect(&settings).await.unwrap());
    let loopback = crate::outbound::Guard::new("127.0.0.0/8".parse().unwrap());
    let http = http_client(&loopback).unwrap();
    Some(MediaStore::on(blobs, &dir.join("media"), limits(), http).unwrap())
}

async fn bytes_of(read: BlobRead) -> Vec<u8> {
    read_all(read, 1 << 20).await.unwrap()
}

#[tokio::test]
async fn on_s3_a_file_is_checked_streamed_copied_for_the_driver_cached_and_swept() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s) = s3_store(dir.path()).await else { return };
    let data = png(40 * KIB as usize);
    let m =
        s.put_stream_as("ten_a", MediaKind::Image, None, Some("a.png".into()), chunks(&data, 5000));
    let m = m.await.unwrap();
    assert_eq!(
        (m.mime.as_str(), m.size, m.sha256.clone()),
        ("image/png", 40 * KIB, sha256_hex(&data))
    );
    assert_eq!(s.get("ten_a", &m.id).await.unwrap(), Some(m.clone()));
    assert_eq!(s.get("ten_b", &m.id).await.unwrap(), None);
    assert_eq!(bytes_of(s.open(&m).await.unwrap()).await, data);
    // Nothing of it on this machine's disk.
    assert_eq!(files_under(&dir.path().join("media")), Vec::<PathBuf>::new());
    // The first bytes are read back for a kind check.
    s.check_kind(&m, MediaKind::Image).await.unwrap();
    let r = s.check_kind(&m, MediaKind::Sticker).await;
    assert!(matches!(r, Err(MediaError::WrongType { .. })), "{r:?}");
    // A file of the wrong kind, or over the cap, is refused and leaves nothing in the bucket.
    let r = s.put_stream_as("ten_a", MediaKind::Image, None, None, chunks(&html(9000), 1000)).await;
    assert!(matches!(r, Err(MediaError::WrongType { .. })), "{r:?}");
    let r = s.put_stream("ten_a", None, None, KIB, chunks(&data, 1000)).await;
    assert!(matches!(r, Err(MediaError::TooLarge { .. })), "{r:?}");
    assert_eq!(s.tenant_bytes("ten_a").await.unwrap(), 40 * KIB);
    assert_eq!(s.blobs.list("ten_a").await.unwrap().len(), 2, "the file and its record");

    // The driver reads a local copy, gone once the send is over.
    let local = s.local_file(&m).await.unwrap();
    assert!(local.path().starts_with(dir.path().join("media/.spool")));
    assert_eq!(std::fs::read(local.path()).unwrap(), data);
    let copy = local.path().to_path_buf();
    drop(local);
    assert!(!copy.exists());

    // A received file: downloaded to the spool, stored, read back from the bucket.
    let download = s.download_file();
    std::fs::write(download.path(), b"inbound bytes").unwrap();
    let spooled = download.path().to_path_buf();
    s.cache_inbound("ten_a", "ins_1", "3EB0ABC", download).await.unwrap();
    assert!(!spooled.exists());
    let cached = s.inbound_cached("ten_a", "ins_1", "3EB0ABC").await.unwrap().unwrap();
    assert_eq!(bytes_of(cached).await, b"inbound bytes");
    assert!(s.inbound_cached("ten_a", "ins_1", "other").await.unwrap().is_none());
    assert_eq!(s.tenant_bytes("ten_a").await.unwrap(), 40 * KIB, "the cache is not the tenant's");

    // Retention: nothing is old yet; past it, the file, its record and the cache go.
    let now = Utc::now();
    assert_eq!(s.sweep(now + chrono::Duration::minutes(30)).await.unwrap(), 0);
    assert_eq!(s.sweep(now + chrono::Duration::hours(2)).await.unwrap(), 2);
    assert!(s.blobs.list("").await.unwrap().is_empty());
    assert_eq!(s.get("ten_a", &m.id).await.unwrap(), None);

    // Delete.
    let m = s.put_stream("ten_a", None, None, KIB, chunks(b"bye", 1)).await.unwrap();
    assert!(s.delete("ten_a", &m.id).await.unwrap());
    assert_eq!(s.get("ten_a", &m.id).await.unwrap(), None);
    assert!(matches!(s.open(&m).await, Err(MediaError::NotFound)));
    assert!(!s.delete("ten_a", &m.id).await.unwrap());
    assert!(s.blobs.list("").await.unwrap().is_empty());
}
