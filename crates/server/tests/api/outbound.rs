//! The outbound guard end to end: a tenant's media URLs, webhooks and alerts never reach a
//! loopback, private or metadata address (in any spelling, through a name, or by a redirect),
//! the tenant is told one generic sentence, and `--outbound-allow` lets chosen ones through.
//!
//! 127.0.0.2 stands for an allowed host and 127.0.0.1 for the inside of the network: on Linux
//! the whole of 127/8 is local, so both can listen while only the first is allowed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header::LOCATION, StatusCode as AxStatus};
use axum::routing::any;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{config, id, TestApp, ADMIN};
use crate::media_files::pdf;

/// A server on `ip` counting its requests. It answers `status`, with `Location: location` when
/// given, and a PDF body. Returns its base URL and its count.
async fn server(
    ip: &str,
    status: AxStatus,
    location: Option<String>,
) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(any(move || {
        let (hits, location) = (counted.clone(), location.clone());
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            let mut r = axum::response::Response::new(axum::body::Body::from(pdf(2000)));
            *r.status_mut() = status;
            r.headers_mut().insert("content-type", "application/pdf".parse().unwrap());
            if let Some(l) = location {
                r.headers_mut().insert(LOCATION, l.parse().unwrap());
            }
            r
        }
    }));
    let l = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (base, hits)
}

fn port(base: &str) -> &str {
    base.rsplit(':').next().unwrap()
}

/// The gateway with `--outbound-allow allow` (the test default, all of loopback, replaced).
async fn app_allowing(allow: &str) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut c = config(dir.path());
    c.outbound_allow = allow.parse().unwrap();
    c.webhook_retry = bzapper_core::retry::RetryPolicy {
        first_delay_ms: 50,
        max_delay_ms: 100,
        give_up_after_ms: 60_000,
    };
    TestApp::spawn_with(dir, c).await
}

async fn send_document(app: &TestApp, key: &str, to: &str, url: &str) -> String {
    let body = json!({"to": to, "document": {"url": url, "file_name": "x.pdf"}});
    let (s, v) = app.post("/v1/messages", key, body).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    id(&v)
}

const NOT_ALLOWED: &str = "downloading the document failed: the media URL's address is not allowed";

#[tokio::test]
async fn media_urls_never_reach_loopback_metadata_or_a_redirect_inside() {
    let (inside, inside_hits) = server("127.0.0.1", AxStatus::OK, None).await;
    let (redirector, redirector_hits) =
        server("127.0.0.2", AxStatus::FOUND, Some(format!("{inside}/secret"))).await;
    let (broken, _) = server("127.0.0.2", AxStatus::INTERNAL_SERVER_ERROR, None).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let app = app_allowing("127.0.0.2").await;
    let (_, key) = app.tenant("acme").await;
    app.fast_number(&key, "a", "+5511900000001", "default").await;

    let p = port(&inside);
    let refused = [
        format!("{inside}/secret"),
        format!("http://localhost:{p}/secret"),
        format!("http://2130706433:{p}/secret"),
        format!("http://[::ffff:127.0.0.1]:{p}/secret"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("{redirector}/go"),
    ];
    let mut ids = Vec::new();
    for (i, url) in refused.iter().enumerate() {
        ids.push((url, send_document(&app, &key, &format!("+55119888800{i:02}"), url).await));
    }
    for (url, mid) in &ids {
        let m = app.wait_message(&key, mid, &["failed", "delivered"]).await;
        assert_eq!(m["status"], "failed", "{url}: {m}");
        assert_eq!(m["error"], NOT_ALLOWED, "{url}");
    }
    assert_eq!(inside_hits.load(Ordering::SeqCst), 0, "nothing reached the inside server");
    assert_eq!(redirector_hits.load(Ordering::SeqCst), 1, "the allowed server was asked once");

    // An allowed host: a closed port and an error answer read as any public host's would, and
    // neither like a refused address.
    let closed_id = send_document(&app, &key, "+5511988880090", &format!("{closed}/x")).await;
    let m = app.wait_message(&key, &closed_id, &["failed", "delivered"]).await;
    assert_eq!(
        m["error"],
        "downloading the document failed: the media URL could not be fetched (no connection, or \
         no answer in time)"
    );
    let broken_id = send_document(&app, &key, "+5511988880091", &format!("{broken}/x")).await;
    let m = app.wait_message(&key, &broken_id, &["failed", "delivered"]).await;
    assert_eq!(m["error"], "downloading the document failed: the media URL answered HTTP 500");
}

#[tokio::test]
async fn outbound_allow_with_a_cidr_lets_loopback_through() {
    let (inside, inside_hits) = server("127.0.0.1", AxStatus::OK, None).await;
    let app = app_allowing("10.0.0.0/8, 127.0.0.0/8").await;
    let (_, key) = app.tenant("acme").await;
    app.fast_number(&key, "a", "+5511900000001", "default").await;
    let p = port(&inside);
    for (i, url) in
        [format!("{inside}/doc.pdf"), format!("http://2130706433:{p}/doc.pdf")].iter().enumerate()
    {
        let mid = send_document(&app, &key, &format!("+55119888801{i}"), url).await;
        let m = app.wait_message(&key, &mid, &["failed", "delivered"]).await;
        assert_eq!(m["status"], "delivered", "{url}: {m}");
    }
    assert_eq!(inside_hits.load(Ordering::SeqCst), 2);
}

/// Polls the webhook's newest delivery until it has been tried.
async fn first_attempt(app: &TestApp, key: &str, hid: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, d) = app.get(&format!("/v1/webhooks/{hid}/deliveries"), key).await;
        let first = &d["items"][0];
        if first["attempts"].as_u64().unwrap_or(0) >= 1 {
            return first.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn webhooks_never_reach_inside_and_follow_no_redirect() {
    let (inside, inside_hits) = server("127.0.0.1", AxStatus::OK, None).await;
    let (redirector, redirector_hits) =
        server("127.0.0.2", AxStatus::TEMPORARY_REDIRECT, Some(format!("{inside}/hook"))).await;
    let app = app_allowing("127.0.0.2").await;
    let (_, key) = app.tenant("acme").await;
    let p = port(&inside);

    // An address is refused when the webhook is registered.
    for url in [
        format!("{inside}/hook"),
        format!("http://2130706433:{p}/hook"),
        format!("http://[::1]:{p}/hook"),
        format!("http://[::ffff:127.0.0.1]:{p}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/hook".to_string(),
    ] {
        let (s, v) =
            app.post("/v1/webhooks", &key, json!({"url": url, "events": ["instance.*"]})).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_url")),
            "{url}: {v}"
        );
    }
    // A name that resolves to loopback is accepted (names can change) and refused at delivery;
    // a redirect from an allowed receiver is not followed.
    let mut hooks = Vec::new();
    for url in [format!("http://localhost:{p}/hook"), format!("{redirector}/hook")] {
        let (s, v) =
            app.post("/v1/webhooks", &key, json!({"url": url, "events": ["instance.*"]})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        hooks.push(id(&v));
    }
    app.instance(&key, "n1").await; // records instance events
    let by_name = first_attempt(&app, &key, &hooks[0]).await;
    assert_eq!(by_name["last_error"], "the receiver's address is not allowed", "{by_name}");
    assert_eq!(by_name["last_status"], Value::Null);
    let redirected = first_attempt(&app, &key, &hooks[1]).await;
    assert_eq!(redirected["last_status"], 307, "{redirected}");
    assert_eq!(redirected["last_error"], "the receiver answered 307 Temporary Redirect");
    assert_eq!(redirected["status"], "pending", "a 3xx is a failed attempt");
    assert!(redirector_hits.load(Ordering::SeqCst) >= 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(inside_hits.load(Ordering::SeqCst), 0, "nothing reached the inside receiver");
}

#[tokio::test]
async fn webhook_failures_read_alike_whatever_the_network_said() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let app = app_allowing("127.0.0.2").await;
    let (_, key) = app.tenant("acme").await;
    let mut hooks = Vec::new();
    for url in [closed, "http://no-such-host.invalid/hook".to_string()] {
        let (s, v) =
            app.post("/v1/webhooks", &key, json!({"url": url, "events": ["instance.*"]})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        hooks.push(id(&v));
    }
    app.instance(&key, "n1").await;
    for hid in &hooks {
        let d = first_attempt(&app, &key, hid).await;
        assert_eq!(
            d["last_error"],
            "the receiver could not be reached (no connection, or no answer in time)",
            "{d}"
        );
        assert_eq!(d["last_status"], Value::Null);
    }
}

#[tokio::test]
async fn alerts_never_reach_inside() {
    let (inside, inside_hits) = server("127.0.0.1", AxStatus::OK, None).await;
    let (redirector, redirector_hits) =
        server("127.0.0.2", AxStatus::FOUND, Some(format!("{inside}/alert"))).await;
    let (outside, outside_hits) = server("127.0.0.2", AxStatus::OK, None).await;
    let app = app_allowing("127.0.0.2").await;
    let p = port(&inside);

    let (_, a) = app.tenant("a").await;
    for url in [
        format!("{inside}/alert"),
        format!("http://2130706433:{p}/alert"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        let body = json!({"url": url, "format": "slack", "on": ["banned"]});
        let (s, v) = app.call(Method::PUT, "/v1/alerts", Some(&a), Some(body)).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_url")),
            "{url}: {v}"
        );
    }
    // Three tenants: one alert by a name that resolves to loopback, one through a redirect to
    // loopback, and one to an allowed receiver that shows when alerts have gone out.
    let (_, b) = app.tenant("b").await;
    let (_, c) = app.tenant("c").await;
    let targets = [
        (&a, format!("http://localhost:{p}/alert")),
        (&b, format!("{redirector}/alert")),
        (&c, format!("{outside}/alert")),
    ];
    for (i, (key, url)) in targets.iter().enumerate() {
        let body = json!({"url": url, "format": "slack", "on": ["banned"]});
        let (s, v) = app.call(Method::PUT, "/v1/alerts", Some(key), Some(body)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let iid = id(&app.connected_instance(key, "n", &format!("+55119999930{i:02}")).await);
        app.post(&format!("/v1/sim/instances/{iid}/drop"), ADMIN, json!({"reason": "banned"}))
            .await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while outside_hits.load(Ordering::SeqCst) == 0 || redirector_hits.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the allowed receivers were not posted to");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(inside_hits.load(Ordering::SeqCst), 0, "nothing reached the inside receiver");
}
