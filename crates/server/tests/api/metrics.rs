//! `GET /metrics`: what a Prometheus scrape sees, pinned down to its families, their types and
//! help texts, the label names of every series and the label values of a known scenario, so
//! that a change of how the text is written cannot rename or relabel what dashboards query.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::http::StatusCode as AxStatus;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{id, TestApp, ADMIN};

/// A sample: its name, its labels in the order written, its value.
type Sample = (String, Vec<(String, String)>, String);

/// One scrape, taken apart.
#[derive(Default, Debug)]
struct Scrape {
    /// Family name → help text.
    help: BTreeMap<String, String>,
    /// Family name → type.
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
    /// Comment lines other than HELP and TYPE (`# EOF`, `# UNIT`...).
    other_comments: Vec<String>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                s.help.insert(name.into(), help.into());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, ty) = rest.split_once(' ').unwrap();
                s.types.insert(name.into(), ty.into());
            } else if line.starts_with('#') {
                s.other_comments.push(line.into());
            } else {
                s.samples.push(sample(line));
            }
        }
        s
    }

    /// (sample name, label names in order), once each.
    fn shapes(&self) -> BTreeSet<(String, Vec<String>)> {
        self.samples
            .iter()
            .map(|(n, l, _)| (n.clone(), l.iter().map(|(k, _)| k.clone()).collect()))
            .collect()
    }

    /// The values `label` takes on the samples named `name`.
    fn values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .flat_map(|(_, l, _)| l.iter().filter(|(k, _)| k == label).map(|(_, v)| v.clone()))
            .collect()
    }

    /// The value of the sample `name` with exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<&str> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && l.iter().zip(labels).all(|((k, v), (k2, v2))| k == k2 && v == v2)
            })
            .map(|(_, _, v)| v.as_str())
    }
}

/// `name{k="v",...} value` (label values without escapes: ids, statuses and pools have none).
fn sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').unwrap();
    let Some((name, labels)) = series.split_once('{') else {
        return (series.into(), vec![], value.into());
    };
    let labels = labels.strip_suffix('}').unwrap();
    let labels = labels
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.into(), v.trim_matches('"').into())
        })
        .collect();
    (name.into(), labels, value.into())
}

async fn scrape(app: &TestApp) -> (String, Scrape) {
    let res =
        app.http.get(format!("{}/metrics", app.base)).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ty = res.headers()["content-type"].to_str().unwrap().to_string();
    (ty, Scrape::parse(&res.text().await.unwrap()))
}

/// A webhook receiver on loopback that fails its first request, then accepts.
async fn flaky_receiver() -> String {
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let failed = failed.clone();
            async move {
                if failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    AxStatus::OK
                } else {
                    AxStatus::INTERNAL_SERVER_ERROR
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    url
}

#[tokio::test]
async fn the_prometheus_exposition_keeps_its_names_types_and_labels() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut c = crate::helpers::config(dir.path());
    c.webhook_retry = bzapper_core::retry::RetryPolicy {
        first_delay_ms: 50,
        max_delay_ms: 100,
        give_up_after_ms: 60_000,
    };
    let app = TestApp::spawn_with(dir, c).await;
    let (tenant, key) = app.tenant("acme").await;
    let url = flaky_receiver().await;
    let (s, v) = app
        .post(
            "/v1/webhooks",
            &key,
            json!({"url": url, "events": ["message.received"], "secret": "a-secret-of-16+chars"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let n = app.fast_number(&key, "a", "+5511900000081", "default").await;
    for i in 0..2 {
        let (_, v) = app
            .post("/v1/messages", &key, json!({"to": format!("+55119444401{i:02}"), "text": "hi"}))
            .await;
        app.wait_message(&key, &id(&v), &["delivered"]).await;
    }
    // One message held back for a day: the pool's queue depth is 1.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let (s, v) = app
        .post(
            "/v1/messages",
            &key,
            json!({"to": "+5511944440200", "text": "later", "send_at": tomorrow}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let (s, v) = app
        .post(
            &format!("/v1/sim/instances/{n}/inbound"),
            ADMIN,
            json!({"from": "+5511944440100", "text": "thanks"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Wait until the inbound message was counted and its webhook delivered after one retry.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let (content_type, m) = loop {
        let (ty, m) = scrape(&app).await;
        let hooks = m.values("bzapper_webhook_deliveries_total", "outcome");
        if hooks.contains("delivered")
            && m.value("bzapper_messages_received_total", &[("tenant", &tenant), ("instance", &n)])
                == Some("1")
        {
            break (ty, m);
        }
        assert!(tokio::time::Instant::now() < deadline, "{m:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Prometheus' text format, as it was first served.
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(m.other_comments.is_empty(), "only HELP and TYPE comments: {:?}", m.other_comments);

    let families: BTreeMap<String, String> = [
        ("bzapper_messages_total", "counter"),
        ("bzapper_messages_received_total", "counter"),
        ("bzapper_webhook_deliveries_total", "counter"),
        ("bzapper_send_latency_seconds", "histogram"),
        ("bzapper_instance_status", "gauge"),
        ("bzapper_instance_health_score", "gauge"),
        ("bzapper_queue_depth", "gauge"),
    ]
    .into_iter()
    .map(|(a, b)| (a.into(), b.into()))
    .collect();
    assert_eq!(m.types, families);
    let help: BTreeMap<String, String> = [
        ("bzapper_messages_total", "Outbound messages that reached a status, by number."),
        ("bzapper_messages_received_total", "Inbound messages, by number."),
        ("bzapper_webhook_deliveries_total", "Webhook delivery attempts, by outcome."),
        (
            "bzapper_send_latency_seconds",
            "From hand-off to a number to the server's ack, typing included.",
        ),
        ("bzapper_instance_status", "1 for the number's current status."),
        ("bzapper_instance_health_score", "The number's health score (0-100)."),
        ("bzapper_queue_depth", "Messages waiting to be sent, by pool."),
    ]
    .into_iter()
    .map(|(a, b)| (a.into(), b.into()))
    .collect();
    assert_eq!(m.help, help);

    let shape = |name: &str, labels: &[&str]| {
        (name.to_string(), labels.iter().map(|l| l.to_string()).collect::<Vec<_>>())
    };
    let shapes: BTreeSet<_> = [
        shape("bzapper_messages_total", &["tenant", "instance", "status"]),
        shape("bzapper_messages_received_total", &["tenant", "instance"]),
        shape("bzapper_webhook_deliveries_total", &["tenant", "outcome"]),
        shape("bzapper_send_latency_seconds_bucket", &["tenant", "instance", "le"]),
        shape("bzapper_send_latency_seconds_sum", &["tenant", "instance"]),
        shape("bzapper_send_latency_seconds_count", &["tenant", "instance"]),
        shape("bzapper_instance_status", &["tenant", "instance", "status"]),
        shape("bzapper_instance_health_score", &["tenant", "instance"]),
        shape("bzapper_queue_depth", &["tenant", "pool"]),
    ]
    .into_iter()
    .collect();
    assert_eq!(m.shapes(), shapes);

    // Label values of the scenario.
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let only = set(&[&tenant]);
    for name in families.keys().filter(|n| !n.starts_with("bzapper_send_latency")) {
        assert_eq!(m.values(name, "tenant"), only, "{name}");
    }
    assert_eq!(m.values("bzapper_messages_total", "status"), set(&["sent", "delivered"]));
    assert_eq!(
        m.values("bzapper_instance_status", "status"),
        set(&["qr_pending", "connecting", "connected", "disconnected"])
    );
    assert_eq!(
        m.values("bzapper_webhook_deliveries_total", "outcome"),
        set(&["retry", "delivered"])
    );
    assert_eq!(m.values("bzapper_queue_depth", "pool"), set(&["default"]));
    let le: Vec<&str> = m
        .samples
        .iter()
        .filter(|(name, _, _)| name == "bzapper_send_latency_seconds_bucket")
        .map(|(_, l, _)| l[2].1.as_str())
        .collect();
    assert_eq!(le, ["0.5", "1", "2", "3", "5", "8", "10", "15", "30", "60", "+Inf"]);

    // And the values.
    let num = [("tenant", tenant.as_str()), ("instance", n.as_str())];
    let with = |k: &'static str, v: &'static str| [num[0], num[1], (k, v)];
    assert_eq!(m.value("bzapper_messages_total", &with("status", "sent")), Some("2"));
    assert_eq!(m.value("bzapper_messages_total", &with("status", "delivered")), Some("2"));
    assert_eq!(m.value("bzapper_send_latency_seconds_count", &num), Some("2"));
    assert_eq!(m.value("bzapper_send_latency_seconds_bucket", &with("le", "+Inf")), Some("2"));
    assert_eq!(m.value("bzapper_instance_status", &with("status", "connected")), Some("1"));
    assert_eq!(m.value("bzapper_instance_status", &with("status", "qr_pending")), Some("0"));
    assert_eq!(m.value("bzapper_instance_health_score", &num), Some("100"));
    let hook = |o| [("tenant", tenant.as_str()), ("outcome", o)];
    assert_eq!(m.value("bzapper_webhook_deliveries_total", &hook("retry")), Some("1"));
    assert_eq!(m.value("bzapper_webhook_deliveries_total", &hook("delivered")), Some("1"));
    let pool = [("tenant", tenant.as_str()), ("pool", "default")];
    assert_eq!(m.value("bzapper_queue_depth", &pool), Some("1"));
}
