//! The memory and speed of the REAL driver sending large media: the release gateway on the
//! wire-level fake, which takes each upload encrypted as WhatsApp does, decrypts it and checks
//! its hashes. Media must stream (encrypt and upload in chunks), never sit in memory per send.
//!
//! `cargo bench -p bzapper --bench wire_media` (env `BZAPPER_BENCH_SENDS`, default 20;
//! `BZAPPER_BENCH_MEDIA_MB`, default 20). It runs `bzapper simnet --wire` and
//! `bzapper serve --sim-wire-url` (release, with the fake's certificate accepted: a bench
//! build) as child processes, links one number with fast limits, uploads one video and sends it
//! to as many contacts, one after another as the pacing lets them out, while it samples the
//! gateway's VmRSS every 20 ms.

use std::time::{Duration, Instant};

use serde_json::json;

#[path = "../tests/support/mod.rs"]
mod support;
#[path = "../tests/wire_support/mod.rs"]
mod wire_support;

use wire_support::Wire;

/// An MP4-looking file (`ftyp` box first, so sniffing calls it video/mp4) of `size` bytes.
fn video(size: usize) -> Vec<u8> {
    let mut v = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2".to_vec();
    v.extend((0..size - v.len()).map(|i| (i % 253) as u8));
    v
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let sends: usize =
        std::env::var("BZAPPER_BENCH_SENDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let size_mb: usize =
        std::env::var("BZAPPER_BENCH_MEDIA_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let file = video(size_mb * 1024 * 1024);
    let wire = Wire::start();
    let pid = wire.children.0[1].id();
    let key = wire.tenant("bench").await;
    let iid = wire.linked_number(&key, "n", "+5511987650099").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (linked, _) = support::rss_kib(pid);

    let (s, up) = wire.upload(&key, "v.mp4", "video/mp4", &file).await;
    assert_eq!(s, 201, "{up}");
    let media_id = up["id"].as_str().unwrap().to_string();
    let (uploaded, upload_peak) = support::rss_kib(pid);

    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..sends {
        let to = format!("+55119888{i:05}");
        let body = json!({"to": to, "instance_id": iid, "video": {"media_id": media_id}});
        ids.push(wire.send(&key, body).await);
    }
    // Sample the RSS until every send is out.
    let mut peak_sending = 0;
    let mut pending = ids.clone();
    while !pending.is_empty() {
        peak_sending = peak_sending.max(support::rss_kib(pid).0);
        let (_, m) = wire.get(&format!("/v1/messages/{}", pending[0]), &key).await;
        match m["status"].as_str() {
            Some("sent" | "delivered" | "read") => {
                pending.remove(0);
            }
            Some("failed") => panic!("a send failed: {m}\n{}", wire.gateway_log()),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
        assert!(started.elapsed() < Duration::from_secs(600), "the sends took over 10 minutes");
    }
    let took = started.elapsed();
    let (after, hwm) = support::rss_kib(pid);
    // Every upload reached the fake whole: it decrypts each (after its ack, so the last ones
    // may take a moment) and reports the file's size.
    let whole_files = || async {
        let outbox = wire.outbox(&iid).await;
        outbox.iter().filter(|e| e["size"] == json!(file.len())).count()
    };
    let mut whole = whole_files().await;
    let checking = Instant::now();
    while whole < sends && checking.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        whole = whole_files().await;
    }

    let total_mb = (sends * size_mb) as f64;
    println!("wire_media: {sends} sends of a {size_mb} MiB video on the real driver");
    println!("  RSS with one linked number        {:>8.1} MiB", mib(linked));
    println!(
        "  after the upload to the gateway   {:>8.1} MiB (peak during it {:.1} MiB)",
        mib(uploaded),
        mib(upload_peak)
    );
    println!("  peak while sending (sampled)      {:>8.1} MiB", mib(peak_sending));
    println!(
        "  after the sends                   {:>8.1} MiB (VmHWM {:.1} MiB)",
        mib(after),
        mib(hwm)
    );
    println!(
        "  all sent in {:.1} s: {:.1} MiB/s encrypted and uploaded ({:.2} s a send)",
        took.as_secs_f64(),
        total_mb / took.as_secs_f64(),
        took.as_secs_f64() / sends as f64
    );
    println!("  the fake received {whole} of {sends} files whole (decrypted, hashes checked)");
}
