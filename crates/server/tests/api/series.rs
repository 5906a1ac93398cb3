//! The dashboard's time series (`GET /v1/stats/series`): sends counted per number from what
//! was really sent, health and queue depth sampled, tenant isolation, the retention sweep, and
//! bad input refused with 4xx.

use std::sync::Arc;
use std::time::Duration;

use bzapper_store::{NumberSample, PoolSample, SeriesStore};
use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{config, TestApp, ADMIN};

/// A gateway that samples every second (the fine tier is then one second wide).
async fn sampling_app() -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut c = config(dir.path());
    c.series.sample_every = Duration::from_secs(1);
    TestApp::spawn_with(dir, c).await
}

/// Each series' values summed, by instance id (or pool).
fn totals(v: &Value) -> std::collections::BTreeMap<String, u64> {
    v["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let key = s["instance_id"].as_str().or(s["pool"].as_str()).unwrap().to_string();
            (
                key,
                s["points"].as_array().unwrap().iter().map(|p| p["value"].as_u64().unwrap()).sum(),
            )
        })
        .collect()
}

/// Polls the series until `pred` holds (20 s at most).
async fn wait_series(
    app: &TestApp,
    key: &str,
    query: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = app.get(&format!("/v1/stats/series?{query}"), key).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if pred(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out on {query}; last: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sends_are_counted_per_number_with_health_and_queue_depth_beside() {
    let app = sampling_app().await;
    let (_, key) = app.tenant("acme").await;
    let a = app.fast_number(&key, "a", "+5511900007001", "default").await;
    let b = app.fast_number(&key, "b", "+5511900007002", "default").await;
    let mut sent = Vec::new();
    for (from, n) in [(&a, 3), (&b, 1)] {
        for i in 0..n {
            let (s, v) = app
                .post(
                    "/v1/messages",
                    &key,
                    json!({"to": format!("+55119888870{i:02}"), "text": "hi", "instance_id": from}),
                )
                .await;
            assert_eq!(s, StatusCode::ACCEPTED, "{v}");
            sent.push(v["id"].as_str().unwrap().to_string());
        }
    }
    for m in &sent {
        app.wait_message(&key, m, &["sent", "delivered", "read"]).await;
    }
    // Hourly: exactly what each number sent, once the sampler has seen every send.
    let want = |v: &Value| {
        let t = totals(v);
        t.get(&a) == Some(&3) && t.get(&b) == Some(&1)
    };
    let v = wait_series(&app, &key, "metric=sends&step=3600", want).await;
    assert_eq!(v["step"], 3600);
    let line = v["series"].as_array().unwrap().iter().find(|s| s["instance_id"] == a.as_str());
    let line = line.unwrap();
    assert_eq!((line["name"].as_str(), line["pool"].as_str()), (Some("a"), Some("default")));
    // The fine tier (one point a second here) adds up to the same, and samples keep coming
    // without counting a send twice.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let from = (Utc::now() - chrono::Duration::minutes(30)).to_rfc3339();
    let q = format!("metric=sends&step=1&from={}", urlencode(&from));
    let (s, v) = app.get(&format!("/v1/stats/series?{q}"), &key).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["step"], 1);
    assert_eq!(totals(&v).get(&a), Some(&3), "{v}");
    assert_eq!(totals(&v).get(&b), Some(&1), "{v}");
    let (_, hourly) = app.get("/v1/stats/series?metric=sends&step=3600", &key).await;
    assert_eq!(totals(&hourly).get(&a), Some(&3), "counted once: {hourly}");
    // One number only.
    let (s, v) =
        app.get(&format!("/v1/stats/series?metric=sends&step=3600&instance_id={b}"), &key).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(totals(&v).into_iter().collect::<Vec<_>>(), vec![(b.clone(), 1)]);

    // Health: each number's lowest score per step (a fresh number is at 100).
    let v = wait_series(&app, &key, "metric=health&step=3600", |v| totals(v).len() == 2).await;
    for s in v["series"].as_array().unwrap() {
        for p in s["points"].as_array().unwrap() {
            assert_eq!(p["value"], 100, "{v}");
        }
    }
    // Queue depth: the pool's, nothing waiting by now.
    let v = wait_series(&app, &key, "metric=queue_depth&step=3600", |v| {
        v["series"].as_array().unwrap().iter().any(|s| s["pool"] == "default")
    })
    .await;
    assert!(v["series"][0]["instance_id"].is_null(), "{v}");
}

/// `x` percent-encoded for a query string (RFC 3339 times carry `+` and `:`).
fn urlencode(x: &str) -> String {
    x.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_series() {
    let app = sampling_app().await;
    let (_, key_a) = app.tenant("a").await;
    let (_, key_b) = app.tenant("b").await;
    let a = app.fast_number(&key_a, "a1", "+5511900007101", "default").await;
    let (s, v) = app
        .post(
            "/v1/messages",
            &key_a,
            json!({"to": "+5511988887777", "text": "x", "instance_id": a}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    wait_series(&app, &key_a, "metric=sends&step=3600", |v| totals(v).get(&a) == Some(&1)).await;
    for metric in ["sends", "health", "queue_depth"] {
        let (s, v) = app.get(&format!("/v1/stats/series?metric={metric}"), &key_b).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["series"], json!([]), "{metric}: {v}");
    }
    // Another tenant's number is not found, like one that does not exist.
    let (s, v) = app.get(&format!("/v1/stats/series?metric=sends&instance_id={a}"), &key_b).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (s, _) = app.get("/v1/stats/series?metric=sends", ADMIN).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.call(reqwest::Method::GET, "/v1/stats/series?metric=sends", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_series_queries_are_refused_with_422() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    for (query, words) in [
        ("", "metric"),
        ("metric=bogus", "`metric` must be"),
        ("metric=sends&step=90", "multiple of 60"),
        ("metric=sends&step=0", "multiple of 60"),
        ("metric=sends&step=-5", ""),
        ("metric=sends&step=abc", ""),
        ("metric=sends&from=yesterday", "RFC 3339"),
        ("metric=sends&from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z", "before"),
        ("metric=sends&from=2020-01-01T00:00:00Z&to=2020-12-31T00:00:00Z&step=60", "at most"),
        ("metric=sends&from=2000-01-01T00:00:00Z&to=2030-01-01T00:00:00Z&step=86400", "400 days"),
        ("metric=sends&color=red", "unknown field"),
    ] {
        let (s, v) = app.get(&format!("/v1/stats/series?{query}"), &key).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{query}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{query}: {message}");
    }
    let (s, v) = app.get("/v1/stats/series?metric=sends&instance_id=ins_nope", &key).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
}

#[tokio::test]
async fn the_sweep_removes_each_tier_past_its_retention() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant("acme").await;
    let dir = app.stop().await;
    // Samples of long ago, written straight into the stopped gateway's store.
    let store = open_store(dir.path()).await;
    let now = Utc::now();
    for (age, tier) in [(40 * 24, 3600), (10 * 24, 3600), (72, 60), (1, 60)] {
        let sample = NumberSample {
            tenant_id: tenant.clone(),
            instance_id: "ins_old".into(),
            sends: 1,
            health: Some(90),
        };
        let pool = PoolSample { tenant_id: tenant.clone(), pool: "default".into(), queue_depth: 4 };
        store
            .record_samples(now - chrono::Duration::hours(age), &[tier], &[sample], &[pool])
            .await
            .unwrap();
    }
    store.close().await;
    // The sweep runs at start: the hour tier keeps 30 days, the minute tier 48 h.
    let app = TestApp::spawn_in(dir).await;
    let from = urlencode(&(now - chrono::Duration::days(60)).to_rfc3339());
    let hourly = format!("metric=queue_depth&step=3600&from={from}");
    let v = wait_series(&app, &key, &hourly, |v| {
        v["series"][0]["points"].as_array().is_some_and(|p| p.len() == 1)
    })
    .await;
    let at = v["series"][0]["points"][0]["at"].as_str().unwrap();
    let kept = chrono::DateTime::parse_from_rfc3339(at).unwrap();
    assert!(now - kept.to_utc() < chrono::Duration::days(11), "{v}");
    // (Samples taken since the restart fall in other buckets of the minute tier.)
    let recent = format!(
        "metric=queue_depth&step=600&from={}",
        urlencode(&(now - chrono::Duration::days(4)).to_rfc3339())
    );
    let (s, v) = app.get(&format!("/v1/stats/series?{recent}"), &key).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let points = v["series"][0]["points"].as_array().unwrap();
    assert!(
        points.iter().all(|p| {
            let t = chrono::DateTime::parse_from_rfc3339(p["at"].as_str().unwrap()).unwrap();
            now - t.to_utc() < chrono::Duration::hours(48)
        }),
        "the 72 h old minute sample is gone: {v}"
    );
    assert!(!points.is_empty(), "the 1 h old minute sample stays: {v}");
}

async fn open_store(dir: &std::path::Path) -> bzapper_store::SqliteStore {
    let key = std::fs::read_to_string(dir.join("master.key")).unwrap();
    bzapper_store::SqliteStore::open(
        &format!("sqlite://{}", dir.join("bzapper.db").display()),
        bzapper_store::Sealer::new(bzapper_store::MasterKey::from_base64(key.trim()).unwrap()),
    )
    .await
    .unwrap()
}
