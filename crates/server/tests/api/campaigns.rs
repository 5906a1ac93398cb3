//! Campaigns on the simulated network: templating and up-front checks, the schedule window on
//! a fake clock, pause / resume / cancel with counts that add up at every look, progress
//! events, and a restart in the middle of a campaign that sends nobody anything twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bzapper_server::campaigns::FakeClock;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::{ConnectOptions, Connection};

use crate::helpers::{config, event_log, id, TestApp};

const BUCKETS: [&str; 10] = [
    "pending",
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",
    "expired",
    "skipped",
    "canceled",
];

/// Every recipient is in exactly one bucket.
fn assert_adds_up(v: &Value) {
    let t = &v["totals"];
    let sum: u64 =
        BUCKETS.iter().map(|b| t[b].as_u64().unwrap_or_else(|| panic!("{b}: {t}"))).sum();
    assert_eq!(sum, t["recipients"].as_u64().unwrap(), "the totals do not add up: {t}");
}

fn total(v: &Value, bucket: &str) -> u64 {
    v["totals"][bucket].as_u64().unwrap()
}

/// Sent, delivered or read: went out.
fn went_out(v: &Value) -> u64 {
    total(v, "sent") + total(v, "delivered") + total(v, "read")
}

fn in_queue(v: &Value) -> u64 {
    total(v, "queued") + total(v, "sending")
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn recipients(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"to": format!("{prefix}{i:02}"), "fields": {"name": format!("P{i}")}}))
        .collect()
}

impl TestApp {
    async fn campaign(&self, key: &str, body: Value) -> Value {
        let (s, v) = self.post("/v1/campaigns", key, body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_adds_up(&v);
        v
    }

    /// Polls the campaign until `pred` holds (30 s at most), checking at every look that its
    /// totals add up.
    async fn wait_campaign(
        &self,
        key: &str,
        cid: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (s, v) = self.get(&format!("/v1/campaigns/{cid}"), key).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            assert_adds_up(&v);
            if pred(&v) {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {v}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn finished(&self, key: &str, cid: &str) -> Value {
        self.wait_campaign(key, cid, "the campaign to finish", |v| v["status"] == "finished").await
    }

    /// A one-recipient campaign without a window, run to its end: once it has finished, the
    /// runner has made at least one full pass over every campaign that existed before it.
    async fn runner_pass(&self, key: &str, to: &str) {
        let v = self
            .campaign(
                key,
                json!({"name": "probe", "template": "probe", "recipients": [{"to": to}]}),
            )
            .await;
        self.finished(key, &id(&v)).await;
    }

    /// The texts each recipient got from these numbers: recipient JID → WhatsApp ids.
    async fn received(&self, numbers: &[String]) -> BTreeMap<String, Vec<(String, String)>> {
        let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for n in numbers {
            for e in self.outbox(n).await {
                if let Some(text) = e["text"].as_str() {
                    out.entry(e["to"].as_str().unwrap().to_string())
                        .or_default()
                        .push((e["id"].as_str().unwrap().to_string(), text.to_string()));
                }
            }
        }
        out
    }
}

fn jid(phone: &str) -> String {
    format!("{}@s.whatsapp.net", phone.trim_start_matches('+'))
}

#[tokio::test]
async fn templates_are_filled_per_recipient_and_bad_campaigns_are_refused_whole() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let n = app.fast_number(&key, "a", "+5511900001001", "default").await;

    let refused = |body: Value, status: StatusCode, code: &'static str, needle: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            let (s, v) = app.post("/v1/campaigns", &key, body).await;
            assert_eq!((s, v["error"]["code"].as_str()), (status, Some(code)), "{v}");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(msg.contains(needle), "`{needle}` not in: {msg}");
        }
    };
    let ok = |to: &str| json!({"to": to, "fields": {"name": "Ana", "code": "1"}});
    let base = |recipients: Value| json!({"name": "promo", "template": "Hi {{name}}, code {{code}}", "recipients": recipients});
    const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;
    refused(
        base(json!([ok("+5511988881000"), {"to": "+5511988881001", "fields": {"name": "Bia"}}])),
        UNPROCESSABLE,
        "unknown_field",
        "recipients[1] has no field `code`",
    )
    .await;
    refused(
        base(json!([ok("+5511988881000"), ok("12ab")])),
        UNPROCESSABLE,
        "invalid_recipient",
        "recipients[1].to",
    )
    .await;
    refused(
        base(json!([ok("+5511988881000"), ok("+55 11 98888-1000")])),
        UNPROCESSABLE,
        "duplicate_recipient",
        "recipients[1].to is the same number as recipients[0].to",
    )
    .await;
    refused(base(json!([])), UNPROCESSABLE, "invalid_request", "must not be empty").await;
    let many: Vec<Value> = (0..100_001).map(|i| json!({"to": format!("+55119{i:08}")})).collect();
    refused(
        json!({"name": "big", "template": "hi", "recipients": many}),
        UNPROCESSABLE,
        "too_many_recipients",
        "at most 100000",
    )
    .await;
    let huge = "x".repeat(17 * 1024 * 1024);
    refused(
        json!({"name": "huge", "template": huge, "recipients": [{"to": "+5511988881000"}]}),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "larger than the limit",
    )
    .await;
    refused(
        json!({"name": "t", "template": "Hi {{name", "recipients": [ok("+5511988881000")]}),
        UNPROCESSABLE,
        "invalid_template",
        "no closing",
    )
    .await;
    let with_schedule = |schedule: Value| json!({"name": "t", "template": "Hi", "recipients": [{"to": "+5511988881000"}], "schedule": schedule});
    refused(
        with_schedule(json!({"timezone": "America/Atlantis", "start": "09:00", "end": "18:00"})),
        UNPROCESSABLE,
        "invalid_schedule",
        "time zone",
    )
    .await;
    refused(
        with_schedule(json!({"timezone": "UTC", "start": "09:00", "end": "09:00"})),
        UNPROCESSABLE,
        "invalid_schedule",
        "differ",
    )
    .await;
    refused(
        json!({"name": "t", "template": "Hi", "recipients": [{"to": "+5511988881000"}], "pool": "nope"}),
        UNPROCESSABLE,
        "unknown_pool",
        "`nope`",
    )
    .await;
    refused(
        json!({"name": "t", "template": "Hi", "recipients": [{"to": "+5511988881000"}], "extra": 1}),
        UNPROCESSABLE,
        "invalid_request",
        "extra",
    )
    .await;
    // Nothing of the refused ones was stored.
    let (s, v) = app.get("/v1/campaigns", &key).await;
    assert_eq!((s, v["items"].as_array().unwrap().len()), (StatusCode::OK, 0), "{v}");

    let v = app
        .campaign(
            &key,
            json!({"name": "promo", "template": "Hi {{name}}, your code is {{ code }}.", "recipients": [
                {"to": "+5511988881000", "fields": {"name": "Ana", "code": "42"}},
                {"to": "5511988881001@s.whatsapp.net", "fields": {"name": "Bia", "code": 7, "unused": null}},
                {"to": "+55 (11) 98888-1002", "fields": {"name": "Caio", "code": true}},
            ]}),
        )
        .await;
    assert_eq!((v["status"].as_str(), total(&v, "recipients")), (Some("running"), 3));
    assert_eq!((v["pool"].as_str(), v["schedule"].clone()), (Some("default"), Value::Null));
    assert_eq!(v["capacity"]["numbers"], 1);
    assert!(v["estimated_finish_at"].is_string(), "{v}");
    let cid = id(&v);
    let v = app.finished(&key, &cid).await;
    assert_eq!(went_out(&v), 3);
    assert!(v["ended_at"].is_string());
    assert_eq!(v["estimated_finish_at"], Value::Null);
    let numbers = v["numbers"].as_array().unwrap();
    assert_eq!(numbers.len(), 1);
    assert_eq!(numbers[0]["instance_id"], n.as_str());
    let per_number: u64 =
        ["sent", "delivered", "read"].iter().map(|k| numbers[0][k].as_u64().unwrap()).sum();
    assert_eq!(per_number, 3);

    let got = app.received(std::slice::from_ref(&n)).await;
    let texts: BTreeMap<&str, Vec<&str>> = got
        .iter()
        .map(|(to, v)| (to.as_str(), v.iter().map(|(_, t)| t.as_str()).collect()))
        .collect();
    assert_eq!(
        texts,
        BTreeMap::from([
            ("5511988881000@s.whatsapp.net", vec!["Hi Ana, your code is 42."]),
            ("5511988881001@s.whatsapp.net", vec!["Hi Bia, your code is 7."]),
            ("5511988881002@s.whatsapp.net", vec!["Hi Caio, your code is true."]),
        ])
    );
    let (_, list) = app.get("/v1/campaigns", &key).await;
    assert_eq!(list["items"][0]["id"], cid.as_str());
    // Another tenant sees none of it.
    let (_, other) = app.tenant("other").await;
    assert_eq!(app.get(&format!("/v1/campaigns/{cid}"), &other).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.post(&format!("/v1/campaigns/{cid}/pause"), &other, json!({})).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_idempotency_key_creates_one_campaign() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let body = json!({"name": "once", "template": "hi", "recipients": [{"to": "+5511988882000"}]});
    let send = || {
        app.http
            .post(format!("{}/v1/campaigns", app.base))
            .bearer_auth(&key)
            .header("Idempotency-Key", "csv-2026-03-02")
            .json(&body)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    let (_, list) = app.get("/v1/campaigns", &key).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn nothing_goes_out_outside_the_window_and_sending_starts_when_it_opens() {
    // Monday 2 March 2026, 07:00 in São Paulo (UTC−3).
    let clock = FakeClock::new(at("2026-03-02T10:00:00Z"));
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut c = config(dir.path());
    c.test_hooks.campaign_clock = Some(clock.clone());
    let app = TestApp::spawn_with(dir, c).await;
    let (_, key) = app.tenant("acme").await;
    let numbers = [
        app.fast_number(&key, "a", "+5511900002001", "default").await,
        app.fast_number(&key, "b", "+5511900002002", "default").await,
    ];
    let v = app
        .campaign(
            &key,
            json!({"name": "office hours", "template": "Hi {{name}}", "recipients": recipients("+55119777700", 10),
                "schedule": {"timezone": "America/Sao_Paulo", "start": "09:00", "end": "18:00", "days": ["mon", "tue", "wed", "thu", "fri"]}}),
        )
        .await;
    let cid = id(&v);
    assert_eq!(v["status"], "scheduled");
    assert_eq!(
        v["window"],
        json!({"open": false, "opens_at": "2026-03-02T12:00:00Z", "closes_at": null})
    );
    assert_eq!(v["schedule"]["days"], json!(["mon", "tue", "wed", "thu", "fri"]));
    // Two numbers at 60 a minute, 0–20 ms gaps: the 10 texts fit in the first open hour.
    let eta = at(v["estimated_finish_at"].as_str().unwrap());
    assert!(eta > at("2026-03-02T12:00:00Z") && eta < at("2026-03-02T13:00:00Z"), "{v}");

    // The runner has looked at the campaign (a later one went through) and left it alone.
    app.runner_pass(&key, "+5511977771000").await;
    let (_, v) = app.get(&format!("/v1/campaigns/{cid}"), &key).await;
    assert_eq!((total(&v, "pending"), v["status"].as_str()), (10, Some("scheduled")), "{v}");
    assert_eq!(app.received(&numbers).await.len(), 1, "only the probe went out");

    // 09:00: the window opens and sending starts by itself.
    clock.set(at("2026-03-02T12:00:00Z"));
    let v = app.wait_campaign(&key, &cid, "a first send", |v| went_out(v) >= 1).await;
    assert_eq!(v["status"], "running");
    assert_eq!(v["window"]["closes_at"], "2026-03-02T21:00:00Z");
    // 18:00: closed again. What is already queued still goes out (a few); nothing more is.
    clock.set(at("2026-03-02T21:00:00Z"));
    let v = app.wait_campaign(&key, &cid, "the queue to drain", |v| in_queue(v) == 0).await;
    let left = total(&v, "pending");
    assert!(left > 0, "{v}");
    app.runner_pass(&key, "+5511977771001").await;
    let (_, v) = app.get(&format!("/v1/campaigns/{cid}"), &key).await;
    assert_eq!((total(&v, "pending"), v["status"].as_str()), (left, Some("scheduled")), "{v}");
    assert_eq!(v["window"]["opens_at"], "2026-03-03T12:00:00Z");

    // Tuesday 09:00: the rest.
    clock.set(at("2026-03-03T12:00:00Z"));
    let v = app.finished(&key, &cid).await;
    assert_eq!(went_out(&v), 10);
    let got = app.received(&numbers).await;
    for i in 0..10 {
        let to = jid(&format!("+55119777700{i:02}"));
        assert_eq!(got[&to].len(), 1, "{to}: {:?}", got.get(&to));
        assert_eq!(got[&to][0].1, format!("Hi P{i}"));
    }
}

#[tokio::test]
async fn pause_resume_and_cancel_keep_every_recipient_counted_once() {
    let app = TestApp::spawn().await;
    let (tenant_id, key) = app.tenant("acme").await;
    let n = app.fast_number(&key, "a", "+5511900003001", "default").await;
    let numbers = [n];

    // Pause: the queue drains and nothing more is fed until it resumes.
    let p = app
        .campaign(&key, json!({"name": "p", "template": "Hi {{name}}", "recipients": recipients("+55119666600", 8)}))
        .await;
    let pid = id(&p);
    app.wait_campaign(&key, &pid, "a first send", |v| went_out(v) >= 1).await;
    let (s, v) = app.post(&format!("/v1/campaigns/{pid}/pause"), &key, json!({})).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("paused")), "{v}");
    assert_adds_up(&v);
    assert_eq!(v["estimated_finish_at"], Value::Null);
    let (s, v) = app.post(&format!("/v1/campaigns/{pid}/pause"), &key, json!({})).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("paused")),
        "pausing twice is fine"
    );
    let v = app.wait_campaign(&key, &pid, "the queue to drain", |v| in_queue(v) == 0).await;
    let left = total(&v, "pending");
    assert!(left > 0, "{v}");
    app.runner_pass(&key, "+5511966661000").await;
    let (_, v) = app.get(&format!("/v1/campaigns/{pid}"), &key).await;
    assert_eq!((total(&v, "pending"), v["status"].as_str()), (left, Some("paused")), "{v}");
    let (s, v) = app.post(&format!("/v1/campaigns/{pid}/resume"), &key, json!({})).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("running")), "{v}");
    let v = app.finished(&key, &pid).await;
    assert_eq!(went_out(&v), 8);
    let got = app.received(&numbers).await;
    for i in 0..8 {
        assert_eq!(got[&jid(&format!("+55119666600{i:02}"))].len(), 1);
    }

    // Cancel: queued messages fail, the rest is never queued, what was being sent goes out.
    let c = app
        .campaign(&key, json!({"name": "c", "template": "Yo {{name}}", "recipients": recipients("+55119555500", 8)}))
        .await;
    let cid = id(&c);
    app.wait_campaign(&key, &cid, "a first send", |v| went_out(v) >= 1).await;
    let (s, v) = app.post(&format!("/v1/campaigns/{cid}/cancel"), &key, json!({})).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("canceled")), "{v}");
    assert_adds_up(&v);
    assert_eq!(total(&v, "queued"), 0, "no queued message is left: {v}");
    assert_eq!(total(&v, "pending"), 0);
    assert!(total(&v, "failed") >= 1 && total(&v, "canceled") >= 1, "{v}");
    let v = app.wait_campaign(&key, &cid, "the send under way", |v| in_queue(v) == 0).await;
    assert!(v["ended_at"].is_string());
    let out = went_out(&v);
    assert_eq!(out + total(&v, "failed") + total(&v, "canceled"), 8, "{v}");
    // Exactly what went out reached the network.
    let got = app.received(&numbers).await;
    let reached = (0..8).filter(|i| got.contains_key(&jid(&format!("+55119555500{i:02}")))).count();
    assert_eq!(reached as u64, out);
    let (_, failed) = app.get("/v1/messages?status=failed", &key).await;
    let failed = failed["items"].as_array().unwrap();
    assert_eq!(failed.len() as u64, total(&v, "failed"));
    assert!(failed.iter().all(|m| m["error"] == "campaign canceled"), "{failed:?}");
    assert!(failed.iter().all(|m| m["campaign_id"] == cid.as_str()), "{failed:?}");
    // An ended campaign stays ended.
    for action in ["pause", "resume"] {
        let (s, e) = app.post(&format!("/v1/campaigns/{cid}/{action}"), &key, json!({})).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("campaign_ended"))
        );
    }
    let (s, _) = app.post(&format!("/v1/campaigns/{cid}/cancel"), &key, json!({})).await;
    assert_eq!(s, StatusCode::OK, "canceling twice is fine");
    let (s, e) = app.post(&format!("/v1/campaigns/{pid}/cancel"), &key, json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("campaign_ended")));

    // The events tell the same story, and every progress report adds up.
    let dir = app.stop().await;
    let events = event_log(dir.path(), &tenant_id).await;
    let of = |cid: &str| -> Vec<&bzapper_store::Event> {
        events
            .iter()
            .filter(|e| e.kind.starts_with("campaign.") && e.data["campaign_id"] == cid)
            .collect()
    };
    let kinds: BTreeSet<&str> = of(&pid).iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "campaign.created",
            "campaign.progress",
            "campaign.paused",
            "campaign.resumed",
            "campaign.finished"
        ])
    );
    let kinds: BTreeSet<&str> = of(&cid).iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.contains("campaign.canceled") && !kinds.contains("campaign.finished"),
        "{kinds:?}"
    );
    for e in of(&pid).into_iter().chain(of(&cid)) {
        assert_adds_up(&e.data);
    }
    let finished = of(&pid).into_iter().find(|e| e.kind == "campaign.finished").unwrap();
    assert_eq!(finished.data["status"], "finished");
    assert_eq!(went_out(&finished.data), 8);
    // Progress is throttled: two reports of one campaign are at least 2 s apart.
    let times: Vec<_> =
        of(&pid).iter().filter(|e| e.kind == "campaign.progress").map(|e| e.created_at).collect();
    assert!(!times.is_empty());
    for w in times.windows(2) {
        assert!(w[1] - w[0] >= chrono::Duration::milliseconds(1_990), "{times:?}");
    }
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_campaign_sends_nobody_twice() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let n = app.fast_number(&key, "a", "+5511900004001", "default").await;
    let numbers = [n.clone()];
    let v = app
        .campaign(&key, json!({"name": "r", "template": "Hi {{name}}", "recipients": recipients("+55119444400", 7)}))
        .await;
    let cid = id(&v);
    app.wait_campaign(&key, &cid, "two sends", |v| went_out(v) >= 2).await;
    // The simulated network lives in the process: keep what it received before the restart.
    let before = app.received(&numbers).await;
    let dir = app.stop().await;

    // The worst moment to stop: messages stored, the feed position not moved yet. The feed
    // starts again from the first recipient, and every one already stored is refused.
    let mut db = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("bzapper.db"))
        .connect()
        .await
        .unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE campaign_id = ?")
        .bind(&cid)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert!(stored >= 2, "{stored}");
    sqlx::query("UPDATE campaigns SET next_index = 0 WHERE id = ?")
        .bind(&cid)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();

    let app = TestApp::spawn_in(dir).await;
    app.wait_status(&key, &n, "connected").await;
    let v = app.finished(&key, &cid).await;
    assert_eq!(went_out(&v), 7, "{v}");
    let after = app.received(&numbers).await;
    // Each recipient got exactly one WhatsApp message id over both runs (a message in doubt
    // at the stop may be sent again, with the same id, which WhatsApp accepts once).
    for i in 0..7 {
        let to = jid(&format!("+55119444400{i:02}"));
        let ids: BTreeSet<&str> = before
            .get(&to)
            .into_iter()
            .chain(after.get(&to))
            .flatten()
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(ids.len(), 1, "{to}: {ids:?}");
    }
    let (_, all) = app.get("/v1/messages?limit=100", &key).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 7, "one stored message per recipient");
}

/// On PostgreSQL the gateway is a node of a (here one-node) cluster: the node holding the
/// `campaigns` role runs them. Needs `BZAPPER_TEST_DATABASE_URL`; skipped without it.
#[tokio::test]
async fn on_postgres_the_holder_of_the_campaigns_role_runs_them() {
    let Ok(url) = std::env::var("BZAPPER_TEST_DATABASE_URL") else {
        eprintln!("skipped: set BZAPPER_TEST_DATABASE_URL to run it");
        return;
    };
    let schema = format!("bzc_{}_{:08x}", std::process::id(), rand_suffix());
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut admin).await.unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let node_url = format!("{url}{sep}options=-c%20search_path%3D{schema}");

    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut c = config(dir.path());
    c.database_url = Some(node_url.clone());
    c.node_id = Some("node-a".into());
    let app = TestApp::spawn_with(dir, c).await;
    let (_, key) = app.tenant("acme").await;
    let n = app.fast_number(&key, "a", "+5511900005001", "default").await;
    let v = app
        .campaign(&key, json!({"name": "pg", "template": "Hi {{name}}", "recipients": recipients("+55119333300", 4)}))
        .await;
    let v = app.finished(&key, &id(&v)).await;
    assert_eq!(went_out(&v), 4);
    let got = app.received(std::slice::from_ref(&n)).await;
    for i in 0..4 {
        assert_eq!(got[&jid(&format!("+55119333300{i:02}"))].len(), 1);
    }
    let holder: String =
        sqlx::query_scalar(&format!("SELECT node_id FROM {schema}.roles WHERE name = 'campaigns'"))
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert_eq!(holder, "node-a");
    app.stop().await;
    crate::helpers::drop_schema(&mut admin, &schema).await;
    admin.close().await.unwrap();
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos(),
    );
    h.finish() as u32
}
