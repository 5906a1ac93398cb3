//! The memory the gateway holds while many sends of a large video are queued: media must
//! stream to disk, never sit in memory once per send.
//!
//! `cargo bench -p bzapper --bench media_queue` (env `BZAPPER_BENCH_SENDS`, default 50;
//! `BZAPPER_BENCH_MEDIA_MB`, default 20). It runs the release `bzapper serve --sim` as a child
//! process, links one number whose limits keep the queue from draining, uploads one video and
//! queues the sends twice over — by `media_id` (the upload stored once) and by URL (downloaded
//! only when each goes out) — reading the child's VmRSS/VmHWM at each step.

use std::time::Duration;

use serde_json::{json, Value};

#[path = "../tests/support/mod.rs"]
mod support;

const ADMIN: &str = "bench-admin-token-0123456789";

/// An MP4-looking file (`ftyp` box first, so sniffing calls it video/mp4) of `size` bytes.
fn video(size: usize) -> Vec<u8> {
    let mut v = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2".to_vec();
    v.extend((0..size - v.len()).map(|i| (i % 253) as u8));
    v
}

/// Serves the video at `/video.mp4` on loopback.
async fn file_server(bytes: Vec<u8>) -> String {
    let bytes = std::sync::Arc::new(bytes);
    let app = axum::Router::new().route(
        "/video.mp4",
        axum::routing::get(move || {
            let b = bytes.clone();
            async move { ([("content-type", "video/mp4")], b.as_ref().clone()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let sends: usize =
        std::env::var("BZAPPER_BENCH_SENDS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let size_mb: usize =
        std::env::var("BZAPPER_BENCH_MEDIA_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let file = video(size_mb * 1024 * 1024);
    let files = file_server(file.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = support::serve_sim(dir.path(), ADMIN);
    let pid = child.id();
    let http = reqwest::Client::new();
    let post = |path: &str, token: &str, body: Value| {
        http.post(format!("{base}{path}")).bearer_auth(token).json(&body).send()
    };

    let t: Value =
        post("/v1/tenants", ADMIN, json!({"name": "bench"})).await.unwrap().json().await.unwrap();
    let key = t["api_key"].as_str().unwrap().to_string();
    // One send an hour: everything after the first stays queued.
    let limits = json!({"min_gap_ms": 3_600_000, "max_gap_ms": 3_600_000, "per_minute": 1});
    let inst: Value =
        post("/v1/instances", &key, json!({"name": "n", "limits": limits, "warming_days": 0}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let iid = inst["id"].as_str().unwrap().to_string();
    http.get(format!("{base}/v1/instances/{iid}/qr")).bearer_auth(&key).send().await.unwrap();
    let scan =
        post(&format!("/v1/sim/instances/{iid}/scan"), ADMIN, json!({"phone": "+5511900000001"}))
            .await
            .unwrap();
    assert!(scan.status().is_success());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (linked, _) = support::rss_kib(pid);

    let boundary = "bench-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"v.mp4\"\r\nContent-Type: video/mp4\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let up = http
        .post(format!("{base}/v1/media"))
        .bearer_auth(&key)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 201, "the upload is stored");
    let media_id = up.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let (uploaded, upload_peak) = support::rss_kib(pid);

    for i in 0..sends {
        let to = format!("+55119888{i:05}");
        let r = post("/v1/messages", &key, json!({"to": to, "video": {"media_id": media_id}}))
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (by_upload, _) = support::rss_kib(pid);
    for i in 0..sends {
        let to = format!("+55119777{i:05}");
        let url = format!("{files}/video.mp4");
        let r = post("/v1/messages", &key, json!({"to": to, "video": {"url": url}})).await.unwrap();
        assert_eq!(r.status(), 202);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (by_url, peak) = support::rss_kib(pid);
    let queued: Value = http
        .get(format!("{base}/v1/messages?status=queued&limit=500"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let queued = queued["items"].as_array().unwrap().len();
    support::terminate(&mut child);

    println!("media_queue: {sends} sends of a {size_mb} MiB video, queued twice over");
    println!("  RSS with one linked number        {:>8.1} MiB", mib(linked));
    println!(
        "  after the upload                  {:>8.1} MiB (peak during it {:.1} MiB)",
        mib(uploaded),
        mib(upload_peak)
    );
    println!("  + {sends} queued by media_id          {:>8.1} MiB", mib(by_upload));
    println!("  + {sends} queued by URL               {:>8.1} MiB", mib(by_url));
    println!("  peak over the run                 {:>8.1} MiB", mib(peak));
    println!("  messages still queued: {queued} (the first send may have gone out)");
}
