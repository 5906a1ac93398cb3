//! `GET /v1/events`: Server-Sent Events from the event log, live, filtered, resumable.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{id, TestApp, ADMIN};

/// Reads SSE events (id, type, envelope) from a streaming response.
pub struct SseReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl SseReader {
    pub async fn open(app: &TestApp, query: &str, token: &str, last_id: Option<&str>) -> SseReader {
        let mut req = app.http.get(format!("{}/v1/events{query}", app.base)).bearer_auth(token);
        if let Some(l) = last_id {
            req = req.header("last-event-id", l);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        SseReader { body: res.bytes_stream().boxed(), buf: String::new() }
    }

    /// The next event, or `None` when none comes within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<(String, String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().into();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        kind = v.trim().into();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if kind.is_empty() {
                    continue; // a heartbeat comment
                }
                return Some((id, kind, serde_json::from_str(&data).unwrap()));
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await.ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    }

    /// Whether the stream ends within `wait` (the server closed it). Panics if an event comes
    /// first; heartbeats are fine.
    pub async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            assert!(!self.buf.contains("event:"), "an event came before the end: {}", self.buf);
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return false,
                Ok(None) => return true,
                // The connection cut mid-chunk is an end too.
                Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(chunk))) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
            }
        }
    }

    pub async fn until(&mut self, kind: &str) -> (String, Value) {
        loop {
            let (id, k, v) = self.next(Duration::from_secs(10)).await.expect("an event");
            if k == kind {
                return (id, v);
            }
        }
    }
}

#[tokio::test]
async fn the_stream_shows_a_number_linking_live() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant("acme").await;
    let mut sse = SseReader::open(&app, "?types=instance.*", &key, None).await;
    let iid = id(&app.instance(&key, "n1").await);
    let (_, qr) = sse.until("instance.qr").await;
    assert_eq!(qr["instance_id"], iid.as_str());
    assert_eq!(qr["tenant_id"], tenant.as_str());
    assert!(qr["data"]["code"].as_str().unwrap().starts_with("2@"));
    app.post(&format!("/v1/sim/instances/{iid}/scan"), ADMIN, json!({"phone": "+5511999991001"}))
        .await;
    let (_, c) = sse.until("instance.connecting").await;
    assert_eq!(c["data"]["status"], "connecting");
    let (id1, c) = sse.until("instance.connected").await;
    assert_eq!(c["data"]["phone"], "+5511999991001");
    assert_eq!(c["id"], id1.as_str());
    app.post(&format!("/v1/sim/instances/{iid}/drop"), ADMIN, json!({"reason": "banned"})).await;
    let (_, d) = sse.until("instance.disconnected").await;
    assert_eq!(d["data"]["reason"], "banned");
    assert!(d["data"]["detail"].as_str().unwrap().contains("101"));
    // An open stream does not hold up a graceful shutdown.
    tokio::time::timeout(Duration::from_secs(30), app.stop()).await.expect("the gateway stops");
    assert!(sse.next(Duration::from_secs(2)).await.is_none(), "the stream ended");
}

#[tokio::test]
async fn last_event_id_resumes_with_nothing_skipped() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let n = app.fast_number(&key, "a", "+5511999991002", "default").await;
    let mut sse = SseReader::open(&app, "?types=message.status", &key, None).await;
    let (s, v) =
        app.post("/v1/messages", &key, json!({"to": "+5511988881000", "text": "one"})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let first = id(&v);
    let (resume_at, ev) = sse.until("message.status").await;
    assert_eq!(ev["data"]["message_id"], first.as_str());
    drop(sse); // the client goes away...

    // ...while more happens.
    app.wait_message(&key, &first, &["delivered"]).await;
    let (_, v) =
        app.post("/v1/messages", &key, json!({"to": "+5511988881001", "text": "two"})).await;
    let second = id(&v);
    app.wait_message(&key, &second, &["delivered"]).await;

    // Resuming yields every later event of the filter, in order, then live ones.
    let mut sse = SseReader::open(&app, "?types=message.status", &key, Some(&resume_at)).await;
    let mut seen = Vec::new();
    while let Some((id, _, ev)) = sse.next(Duration::from_millis(500)).await {
        assert!(id.parse::<i64>().unwrap() > resume_at.parse::<i64>().unwrap());
        seen.push((
            ev["data"]["message_id"].as_str().unwrap().to_string(),
            ev["data"]["status"].as_str().unwrap().to_string(),
        ));
        if seen.len() == 5 {
            break;
        }
    }
    let expected: Vec<(String, String)> = [
        (&first, "sent"),
        (&first, "delivered"),
        (&second, "sending"),
        (&second, "sent"),
        (&second, "delivered"),
    ]
    .iter()
    .map(|(m, s)| (m.to_string(), s.to_string()))
    .collect();
    assert_eq!(seen, expected);
    let _ = n;
}

#[tokio::test]
async fn filters_tokens_and_bad_requests() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("other").await;
    let a = id(&app.instance(&key, "a").await);
    let b = id(&app.instance(&key, "b").await);
    // ?access_token= works where headers cannot be set; another tenant sees nothing of ours.
    let res = app
        .http
        .get(format!("{}/v1/events?access_token={key}&instance_id={b}&last_event_id=0", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut sse = SseReader { body: res.bytes_stream().boxed(), buf: String::new() };
    let (_, ev) = sse.until("instance.qr").await;
    assert_eq!(ev["instance_id"], b.as_str());
    let mut theirs = SseReader::open(&app, "?last_event_id=0", &other, None).await;
    assert!(theirs.next(Duration::from_millis(300)).await.is_none());
    let _ = a;

    for (q, token, status) in [
        ("?types=instance.nope", key.as_str(), 422),
        ("?types=bogus.*", key.as_str(), 422),
        ("", ADMIN, 403),
        ("?access_token=wrong", "", 401),
    ] {
        let mut req = app.http.get(format!("{}/v1/events{q}", app.base));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{q}");
        let v: Value = res.json().await.unwrap();
        assert!(v["error"]["code"].is_string());
    }
    let res = app
        .http
        .get(format!("{}/v1/events", app.base))
        .bearer_auth(&key)
        .header("last-event-id", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_burst_of_inbound_messages_streams_in_order_and_resumes_exactly() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let n = id(&app.connected_instance(&key, "n1", "+5511999991003").await);
    let mut sse = SseReader::open(&app, "?types=message.received", &key, None).await;
    // One after another, without waiting for the events: they are recorded in batches.
    let total = 200;
    for i in 0..total {
        let (s, v) = app
            .post(
                &format!("/v1/sim/instances/{n}/inbound"),
                ADMIN,
                json!({"from": format!("+55119777{:05}", i % 7), "text": format!("m{i:03}")}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let mut seen = Vec::new();
    while seen.len() < total {
        let (id, _, ev) = sse.next(Duration::from_secs(10)).await.expect("every message");
        seen.push((id.parse::<i64>().unwrap(), ev["data"]["text"].as_str().unwrap().to_string()));
    }
    let texts: Vec<String> = seen.iter().map(|(_, t)| t.clone()).collect();
    let sent: Vec<String> = (0..total).map(|i| format!("m{i:03}")).collect();
    assert_eq!(texts, sent, "in the order they arrived, each once");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");
    assert!(sse.next(Duration::from_millis(300)).await.is_none(), "nothing more");

    // Resuming from the middle yields exactly the rest.
    let (mid, _) = &seen[total / 2 - 1];
    let mut sse =
        SseReader::open(&app, "?types=message.received", &key, Some(&mid.to_string())).await;
    let mut rest = Vec::new();
    while let Some((id, _, _)) = sse.next(Duration::from_millis(500)).await {
        rest.push(id.parse::<i64>().unwrap());
    }
    let expected: Vec<i64> = seen[total / 2..].iter().map(|(id, _)| *id).collect();
    assert_eq!(rest, expected);
}
