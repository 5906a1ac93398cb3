//! Media files over HTTP: a multipart upload streamed to the store and back, the size cap
//! (413), the kind check (422), and tenants kept apart (404); each on the local disk and on
//! the S3-compatible test server (`BZAPPER_TEST_S3_URL`).

use std::sync::Arc;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{Backend, TestApp, ADMIN};

/// One part of a form: name, file name, content type, bytes.
type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

const BOUNDARY: &str = "bzapper-test-boundary-7f3a9c";

/// A `multipart/form-data` body of `parts`.
fn form(parts: &[Part]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file_name, content_type, data) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(f) = file_name {
            disposition.push_str(&format!("; filename=\"{f}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(ct) = content_type {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub fn file(data: &[u8]) -> Part<'_> {
    ("file", Some("photo.png"), Some("image/png"), data)
}

async fn upload_raw(app: &TestApp, key: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let res = app
        .http
        .post(format!("{}/v1/media", app.base))
        .bearer_auth(key)
        .header(CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub async fn upload(app: &TestApp, key: &str, parts: &[Part<'_>]) -> (StatusCode, Value) {
    upload_raw(app, key, form(parts)).await
}

/// A PNG signature and header start, then `len` bytes of a pattern.
pub fn png(len: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    v.extend((0..len).map(|i| (i * 31 % 251) as u8));
    v
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|b| format!("{b:02x}")).collect()
}

async fn content(app: &TestApp, key: &str, id: &str) -> reqwest::Response {
    app.http
        .get(format!("{}/v1/media/{id}/content", app.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

fn assert_error(s: StatusCode, v: &Value, status: StatusCode, code: &str) {
    assert_eq!(s, status, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

crate::on_both_media_stores!(
    an_upload_round_trips,
    a_20_mb_upload_works,
    over_the_cap_is_413,
    a_file_of_the_wrong_kind_is_422,
    another_tenants_file_is_404,
);

async fn an_upload_round_trips(b: Backend) {
    let app = b.spawn().await;
    let (_, key) = app.tenant("acme").await;
    let data = png(50_000);
    // The bytes say PNG whatever the part declares.
    let (s, v) =
        upload(&app, &key, &[("file", Some("photo.png"), Some("text/plain"), &data)]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("med_"), "{v}");
    assert_eq!(v["mime"], "image/png");
    assert_eq!(v["size"], data.len() as u64);
    assert_eq!(v["sha256"], sha256_hex(&data));
    assert_eq!(v["file_name"], "photo.png");
    assert!(v["created_at"].is_string() && v["expires_at"].is_string(), "{v}");
    assert!(v.get("tenant_id").is_none(), "{v}");

    let (s, got) = app.get(&format!("/v1/media/{id}"), &key).await;
    assert_eq!(s, StatusCode::OK, "{got}");
    assert_eq!(got, v);

    let res = content(&app, &key, &id).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "image/png");
    assert_eq!(res.headers()[CONTENT_LENGTH], data.len().to_string().as_str());
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let body = res.bytes().await.unwrap();
    assert_eq!(sha256_hex(&body), sha256_hex(&data));
    assert_eq!(&body[..], &data[..]);

    let (s, _) =
        app.call(reqwest::Method::DELETE, &format!("/v1/media/{id}"), Some(&key), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = app.get(&format!("/v1/media/{id}"), &key).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(content(&app, &key, &id).await.status(), StatusCode::NOT_FOUND);
    let (s, v) =
        app.call(reqwest::Method::DELETE, &format!("/v1/media/{id}"), Some(&key), None).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    let left = b.media_objects(&app).await;
    assert!(left.iter().all(|f| !f.contains("med_")), "{left:?}");
}

async fn a_20_mb_upload_works(b: Backend) {
    let app = b.spawn().await;
    let (_, key) = app.tenant("acme").await;
    let data = png(20 * 1024 * 1024);
    let (s, v) = upload(&app, &key, &[("kind", None, None, b"image"), file(&data)]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["size"], data.len() as u64);
    assert_eq!(v["sha256"], sha256_hex(&data));
    let res = content(&app, &key, v["id"].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(sha256_hex(&res.bytes().await.unwrap()), sha256_hex(&data));
}

async fn over_the_cap_is_413(b: Backend) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut c = b.config(dir.path());
    c.media_max_bytes = 1024 * 1024;
    let app = TestApp::spawn_with(dir, c).await;
    let (_, key) = app.tenant("acme").await;

    // Exactly at the cap is fine.
    let at_cap = png(1024 * 1024 - 16);
    let (s, v) = upload(&app, &key, &[file(&at_cap)]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let kept = b.media_objects(&app).await.len();

    // Past it, while streaming: refused, and nothing left behind.
    let over = png(1024 * 1024 + 200_000);
    let (s, v) = upload(&app, &key, &[file(&over)]).await;
    assert_error(s, &v, StatusCode::PAYLOAD_TOO_LARGE, "media_too_large");
    assert!(v["error"]["message"].as_str().unwrap().contains("1 MiB"), "{v}");
    assert_eq!(b.media_objects(&app).await.len(), kept);

    // Far past it: refused from the Content-Length, before reading.
    let far = png(3 * 1024 * 1024);
    let (s, v) = upload(&app, &key, &[file(&far)]).await;
    assert_error(s, &v, StatusCode::PAYLOAD_TOO_LARGE, "media_too_large");
    assert_eq!(b.media_objects(&app).await.len(), kept);
}

async fn a_file_of_the_wrong_kind_is_422(b: Backend) {
    let app = b.spawn().await;
    let (_, key) = app.tenant("acme").await;
    let page = b"<!DOCTYPE html><html><body>not a picture</body></html>".to_vec();
    let picture = png(1000);

    // `kind` before the file: checked while streaming.
    let parts = [
        ("kind", None, None, &b"image"[..]),
        ("file", Some("x.png"), Some("image/png"), &page[..]),
    ];
    let (s, v) = upload(&app, &key, &parts).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "invalid_media");
    assert!(v["error"]["message"].as_str().unwrap().contains("text/html"), "{v}");
    // `kind` after the file: checked once the form is read.
    let parts = [
        ("file", Some("x.png"), Some("image/png"), &page[..]),
        ("kind", None, None, &b"image"[..]),
    ];
    let (s, v) = upload(&app, &key, &parts).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "invalid_media");
    // A PNG is no sticker (WebP only), but it is an image and a document.
    let (s, v) = upload(&app, &key, &[("kind", None, None, b"sticker"), file(&picture)]).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "invalid_media");
    let (s, v) = upload(&app, &key, &[file(&picture), ("kind", None, None, b"sticker")]).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "invalid_media");
    for kind in ["image", "document"] {
        let (s, v) =
            upload(&app, &key, &[("kind", None, None, kind.as_bytes()), file(&picture)]).await;
        assert_eq!(s, StatusCode::CREATED, "{kind}: {v}");
    }
    let (s, v) = upload(&app, &key, &[file(&picture), ("kind", None, None, b"image")]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // An empty `kind` (a form's unselected choice) is no kind.
    let (s, v) = upload(&app, &key, &[("kind", None, None, b""), file(&page)]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["mime"], "text/html");
    // Refused uploads left nothing: four files with their records.
    let kept = b.media_objects(&app).await;
    assert_eq!(kept.len(), 8, "{kept:?}");

    // A bad form.
    let (s, v) = upload(&app, &key, &[("kind", None, None, b"gif"), file(&picture)]).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, v) = upload(&app, &key, &[("kind", None, None, b"image")]).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, v) = upload(&app, &key, &[file(&picture), ("other", None, None, b"x")]).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let (s, v) = upload(&app, &key, &[("file", Some("e.txt"), Some("text/plain"), b"")]).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "invalid_media");
    let (s, v) = upload_raw(&app, &key, b"--nope\r\ngarbage".to_vec()).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_multipart");
    let (s, v) = app.post("/v1/media", &key, serde_json::json!({"file": "x"})).await;
    assert_error(s, &v, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let kept = b.media_objects(&app).await;
    assert_eq!(kept.len(), 8, "{kept:?}");
}

async fn another_tenants_file_is_404(b: Backend) {
    let app = b.spawn().await;
    let (_, a) = app.tenant("a").await;
    let (_, b) = app.tenant("b").await;
    let data = png(100);
    let (s, v) = upload(&app, &a, &[file(&data)]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();

    let (s, v) = app.get(&format!("/v1/media/{id}"), &b).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(content(&app, &b, &id).await.status(), StatusCode::NOT_FOUND);
    let (s, v) =
        app.call(reqwest::Method::DELETE, &format!("/v1/media/{id}"), Some(&b), None).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    // Ids that are not ids are simply not found.
    for bad in ["..", "med_x.json", "%2e%2e%2fmed_x"] {
        let (s, v) = app.get(&format!("/v1/media/{bad}"), &a).await;
        assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    }
    // The admin token manages tenants, not their files; no token is 401.
    let (s, v) = app.get(&format!("/v1/media/{id}"), ADMIN).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "forbidden");
    let (s, v) = app.call(reqwest::Method::GET, &format!("/v1/media/{id}"), None, None).await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "unauthorized");

    let (s, _) = app.get(&format!("/v1/media/{id}"), &a).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn the_openapi_document_describes_the_upload() {
    let app = TestApp::spawn().await;
    let (s, doc) = app.call(reqwest::Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let upload = &doc["paths"]["/v1/media"]["post"];
    let body = &upload["requestBody"]["content"]["multipart/form-data"];
    assert!(body["schema"].is_object(), "{upload}");
    for status in ["201", "400", "413", "415", "422"] {
        assert!(upload["responses"][status].is_object(), "{status}: {upload}");
    }
    assert!(doc["paths"]["/v1/media/{id}/content"]["get"].is_object());
    assert!(doc["paths"]["/v1/media/{id}"]["delete"].is_object());
}
