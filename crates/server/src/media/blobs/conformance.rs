//! One suite every [`Blobs`] backend passes: write (streamed, in more than one S3 part),
//! read back whole and by range, replace, a write that fails mid-stream leaving nothing,
//! a local file moved in, listings, delete, and a missing key read as not found. It runs on
//! the local disk always, and on the S3-compatible server `BZAPPER_TEST_S3_URL` names
//! (`http://KEY:SECRET@127.0.0.1:9000/bucket`, `.ci/s3.sh` starts one), skipped with a
//! message without it.

use std::sync::Arc;

use axum::body::Bytes;
use futures::{stream, StreamExt};

use super::local::LocalBlobs;
use super::s3::{S3Blobs, PART_SIZE};
use super::{read_all, BlobRead, Blobs};
use crate::media::error::MediaError;
use crate::media::settings::S3Settings;
use crate::model::ids::new_id;

/// The S3 test server's settings, keys under a prefix of their own; `None` (and a message)
/// without `BZAPPER_TEST_S3_URL`.
pub(crate) fn s3_test_settings(what: &str) -> Option<S3Settings> {
    let Ok(url) = std::env::var("BZAPPER_TEST_S3_URL") else {
        eprintln!(
            "{what} on S3 SKIPPED: set BZAPPER_TEST_S3_URL (http://KEY:SECRET@host:port/bucket; \
             .ci/s3.sh starts a server) to run it"
        );
        return None;
    };
    Some(S3Settings::from_endpoint_url(&url, &new_id("test")).expect("BZAPPER_TEST_S3_URL"))
}

/// `data` as a stream of `size`-byte chunks.
fn chunks(data: &[u8], size: usize) -> super::ByteStream<'static> {
    let parts: Vec<_> = data.chunks(size).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    stream::iter(parts).boxed()
}

async fn read(b: &dyn Blobs, key: &str, range: Option<std::ops::Range<u64>>) -> (u64, Vec<u8>) {
    let r: BlobRead = b.get(key, range).await.unwrap();
    let size = r.size;
    (size, read_all(r, 64 << 20).await.unwrap())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) as u8) ^ seed).collect()
}

async fn suite(b: Arc<dyn Blobs>) {
    let b = b.as_ref();
    // More than one part of a multipart upload, and not a whole number of parts.
    let big = pattern(PART_SIZE + PART_SIZE / 2 + 7, 1);
    let key = "ten_a/med_1.bin";
    assert_eq!(b.put(key, chunks(&big, 64 * 1024)).await.unwrap(), big.len() as u64);
    let (size, got) = read(b, key, None).await;
    assert_eq!((size, got.len()), (big.len() as u64, big.len()));
    assert!(got == big, "the bytes read back differ");
    let meta = b.head(key).await.unwrap().expect("head of a written object");
    assert_eq!((meta.key.as_str(), meta.size), (key, big.len() as u64));
    assert!((chrono::Utc::now() - meta.modified).num_seconds().abs() < 60, "{meta:?}");

    // Ranges: inside, and one ending past the end (it stops there); the size is the whole's.
    let (size, got) = read(b, key, Some(10..20)).await;
    assert_eq!((size, &got[..]), (big.len() as u64, &big[10..20]));
    let end = big.len() as u64;
    let (_, got) = read(b, key, Some(end - 5..end + 100)).await;
    assert_eq!(&got[..], &big[big.len() - 5..]);
    // Streamed out in more than one chunk (never the whole object at once).
    let mut r = b.get(key, None).await.unwrap();
    let mut pieces = 0;
    while let Some(c) = r.body.next().await {
        c.unwrap();
        pieces += 1;
    }
    assert!(pieces > 1, "{pieces}");

    // A replacement is seen whole.
    let small = pattern(1000, 2);
    assert_eq!(b.put(key, chunks(&small, 300)).await.unwrap(), 1000);
    assert_eq!(read(b, key, None).await.1, small);

    // A body failing mid-stream (a size check) fails the write with its own error, and leaves
    // nothing new: no object under a new key, the old bytes under an existing one.
    for (target, after) in [("ten_a/med_2.bin", None), (key, Some(&small))] {
        let first = Bytes::from(pattern(PART_SIZE + 10, 3));
        let failing =
            stream::iter([Ok(first.clone()), Ok(first), Err(MediaError::TooLarge { cap: 7 })]);
        let err = b.put(target, failing.boxed()).await.unwrap_err();
        assert!(matches!(err, MediaError::TooLarge { cap: 7 }), "{err:?}");
        match after {
            None => assert_eq!(b.head(target).await.unwrap(), None),
            Some(old) => assert_eq!(&read(b, target, None).await.1, old),
        }
    }

    // An empty object.
    assert_eq!(b.put("ten_a/empty.bin", chunks(&[], 1)).await.unwrap(), 0);
    assert_eq!(read(b, "ten_a/empty.bin", None).await, (0, Vec::new()));

    // A local file moved in (a received file the driver downloaded).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("download");
    let inbound = pattern(70_000, 4);
    std::fs::write(&file, &inbound).unwrap();
    let cached = "ten_a/inbound/ins_1/3EB0ABC";
    assert_eq!(b.put_file(cached, &file).await.unwrap(), 70_000);
    assert!(!file.exists());
    assert_eq!(read(b, cached, None).await.1, inbound);

    // Listings: everything, and under a prefix, at any depth.
    let mut all: Vec<(String, u64)> =
        b.list("").await.unwrap().into_iter().map(|m| (m.key, m.size)).collect();
    all.sort();
    let mut expected: Vec<(String, u64)> = [(cached, 70_000), ("ten_a/empty.bin", 0), (key, 1000)]
        .map(|(k, s)| (k.to_string(), s))
        .to_vec();
    expected.sort();
    assert_eq!(all, expected);
    let under: Vec<String> =
        b.list("ten_a/inbound").await.unwrap().into_iter().map(|m| m.key).collect();
    assert_eq!(under, vec![cached.to_string()]);
    assert!(b.list("ten_b").await.unwrap().is_empty());

    // Delete; a missing key reads as not found, and deleting it again is fine.
    b.delete(key).await.unwrap();
    assert!(matches!(b.get(key, None).await, Err(MediaError::NotFound)));
    assert_eq!(b.head(key).await.unwrap(), None);
    b.delete(key).await.unwrap();
    assert!(matches!(b.get("ten_z/nothing.bin", None).await, Err(MediaError::NotFound)));
    for k in [cached, "ten_a/empty.bin"] {
        b.delete(k).await.unwrap();
    }
    assert!(b.list("").await.unwrap().is_empty());

    // Keys that would leave the store are refused.
    for bad in ["../x", "ten_a/../../x", "/abs", "ten_a/.tmp/x", ""] {
        assert!(matches!(b.put(bad, chunks(b"x", 1)).await, Err(MediaError::Io(_))), "{bad}");
        assert!(b.get(bad, None).await.is_err(), "{bad}");
    }
}

#[tokio::test]
async fn the_local_disk_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(LocalBlobs::open(dir.path().join("media")).unwrap());
    suite(b.clone()).await;
    assert_eq!(b.local_path("ten_a/x.bin"), Some(dir.path().join("media/ten_a/x.bin")));
}

#[tokio::test]
async fn an_s3_compatible_store_passes_the_suite() {
    let Some(settings) = s3_test_settings("the storage conformance suite") else { return };
    let b = Arc::new(S3Blobs::connect(&settings).await.unwrap());
    assert_eq!(b.local_path("ten_a/x.bin"), None);
    suite(b).await;
}

#[tokio::test]
async fn a_wrong_s3_setting_stops_the_start_with_the_reason_and_no_secret() {
    let Some(good) = s3_test_settings("the S3 start-up check") else { return };
    let mut wrong_secret = good.clone();
    wrong_secret.secret_access_key = Some("not-the-secret-0123456789".into());
    let mut no_bucket = good.clone();
    no_bucket.bucket = "no-such-bucket-here".into();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut no_server = good.clone();
    no_server.endpoint = Some(format!("http://{closed}"));
    for (what, s) in
        [("wrong secret", wrong_secret), ("no bucket", no_bucket), ("no server", no_server)]
    {
        let started = std::time::Instant::now();
        let err = match S3Blobs::connect(&s).await {
            Ok(_) => panic!("{what}: connected"),
            Err(e) => format!("{e:#}"),
        };
        eprintln!("{what}: {err}");
        assert!(err.contains("cannot be used") && err.contains(&s.describe()), "{what}: {err}");
        assert!(!err.contains("not-the-secret") && !err.contains("0123456789"), "{what}: {err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(40), "{what}");
    }
}
