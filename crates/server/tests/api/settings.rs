//! Issue 19's settings over HTTP: a pool's sending settings (`PUT /v1/pools/{name}`), a
//! number's own quiet hours, its re-warm state in `warming`, and why it rests (`resting`).
//! Round trips, defaults, partial changes, refusals, and a restart keeping them.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::helpers::{id, TestApp, ADMIN};

async fn put_pool(app: &TestApp, key: &str, name: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::PUT, &format!("/v1/pools/{name}"), Some(key), Some(body)).await
}

async fn pool(app: &TestApp, key: &str, name: &str) -> Value {
    let (s, v) = app.get("/v1/pools", key).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned().unwrap_or_default()
}

fn assert_invalid(s: StatusCode, v: &Value, mentions: &str) {
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "invalid_request", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(mentions), "`{mentions}` not in: {message}");
}

/// A pool with every setting at its default.
fn defaults(name: &str) -> Value {
    json!({"name": name, "strategy": "round_robin", "sticky": true, "sticky_window_days": 30,
           "prefer_country": false, "per_contact_per_hour": 0, "quiet_hours": null})
}

#[tokio::test]
async fn a_pools_settings_have_defaults_round_trip_and_change_one_at_a_time() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    // `default` and a pool named only by a number show every setting's default.
    assert_eq!(pool(&app, &key, "default").await, defaults("default"));
    let (s, v) = app.post("/v1/instances", &key, json!({"name": "n1", "pool": "sales"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(pool(&app, &key, "sales").await, defaults("sales"));

    // Only `sticky`: the rest keeps its value (the strategy included).
    let (s, v) = put_pool(&app, &key, "sales", json!({"sticky": false})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"name": "sales", "strategy": "round_robin", "sticky": false,
        "sticky_window_days": 30, "prefer_country": false, "per_contact_per_hour": 0,
        "quiet_hours": null})
    );

    // Every setting at once; the window comes back in its canonical form.
    let all = json!({"strategy": "least_used", "sticky": true, "sticky_window_days": 7,
        "prefer_country": true, "per_contact_per_hour": 0,
        "quiet_hours": {"timezone": " America/Sao_Paulo", "start": "08:00", "end": "20:00",
                        "days": ["fri", "mon"]}});
    let (s, v) = put_pool(&app, &key, "sales", all).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let expected = json!({"name": "sales", "strategy": "least_used", "sticky": true,
        "sticky_window_days": 7, "prefer_country": true, "per_contact_per_hour": 0,
        "quiet_hours": {"timezone": "America/Sao_Paulo", "start": "08:00", "end": "20:00",
                        "days": ["mon", "fri"]}});
    assert_eq!(v, expected);
    assert_eq!(pool(&app, &key, "sales").await, expected);

    // Only the strategy, as before issue 19: the settings stay.
    let (s, v) = put_pool(&app, &key, "sales", json!({"strategy": "health_weighted"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["per_contact_per_hour"], 0);
    assert_eq!(v["quiet_hours"]["timezone"], "America/Sao_Paulo");
    // `null` removes the quiet hours; absent keeps them.
    let (_, v) = put_pool(&app, &key, "sales", json!({"prefer_country": false})).await;
    assert_eq!(v["quiet_hours"]["start"], "08:00");
    let (_, v) = put_pool(&app, &key, "sales", json!({"quiet_hours": null})).await;
    assert_eq!(v["quiet_hours"], Value::Null);
    assert_eq!(v["strategy"], "health_weighted");

    // A new pool from settings alone starts from the defaults; an empty body creates one too.
    let (s, v) = put_pool(&app, &key, "vip", json!({"per_contact_per_hour": 60})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"name": "vip", "strategy": "round_robin", "sticky": true,
        "sticky_window_days": 30, "prefer_country": false, "per_contact_per_hour": 60,
        "quiet_hours": null})
    );
    let (s, v) = put_pool(&app, &key, "empty", json!({})).await;
    assert_eq!((s, v), (StatusCode::OK, defaults("empty")));
    // Another tenant sees none of it.
    let (_, other) = app.tenant("other").await;
    assert_eq!(pool(&app, &other, "default").await, defaults("default"));
    assert_eq!(pool(&app, &other, "sales").await, Value::Null);
}

#[tokio::test]
async fn bad_pool_settings_are_refused_with_a_clear_message_and_change_nothing() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let (s, _) = put_pool(&app, &key, "sales", json!({"sticky_window_days": 10})).await;
    assert_eq!(s, StatusCode::OK);
    for (body, mentions) in [
        (json!({"sticky_window_days": 0}), "sticky_window_days"),
        (json!({"sticky_window_days": 366}), "between 1 and 365"),
        (json!({"per_contact_per_hour": -1}), "per_contact_per_hour"),
        (json!({"per_contact_per_hour": 61}), "between 0 and 60"),
        (
            json!({"quiet_hours": {"timezone": "Mars/Olympus", "start": "08:00", "end": "18:00"}}),
            "quiet_hours.timezone",
        ),
        (
            json!({"quiet_hours": {"timezone": "UTC", "start": "8am", "end": "18:00"}}),
            "quiet_hours.start",
        ),
        (
            json!({"quiet_hours": {"timezone": "UTC", "start": "08:00", "end": "08:00"}}),
            "must differ",
        ),
        (
            json!({"quiet_hours": {"timezone": "UTC", "start": "08:00", "end": "18:00",
            "days": ["someday"]}}),
            "quiet_hours.days",
        ),
        // With a valid field beside a bad one, nothing changes either.
        (json!({"sticky": false, "per_contact_per_hour": 1000}), "per_contact_per_hour"),
    ] {
        let (s, v) = put_pool(&app, &key, "sales", body.clone()).await;
        assert_invalid(s, &v, mentions);
    }
    // Wrong types and unknown fields: 4xx in the error shape, never 500.
    for body in [
        json!({"sticky": "yes"}),
        json!({"sticky_window_days": "7"}),
        json!({"quiet_hours": "08:00-18:00"}),
        json!({"quiet_hours": {"timezone": "UTC", "start": "08:00"}}),
        json!({"sticky_for": 3}),
    ] {
        let (s, v) = put_pool(&app, &key, "sales", body.clone()).await;
        assert!(s.is_client_error(), "{body}: {s} {v}");
        assert!(v["error"]["code"].is_string(), "{v}");
    }
    let p = pool(&app, &key, "sales").await;
    assert_eq!((p["sticky"].clone(), p["sticky_window_days"].clone()), (json!(true), json!(10)));
}

#[tokio::test]
async fn a_numbers_quiet_hours_are_set_at_creation_changed_and_removed() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let quiet = json!({"timezone": "Europe/Lisbon", "start": "22:00", "end": "06:00"});
    let (s, v) = app.post("/v1/instances", &key, json!({"name": "n1", "quiet_hours": quiet})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["quiet_hours"], quiet);
    let iid = id(&v);
    // A number without its own has `null` (its pool's apply).
    let other = app.instance(&key, "n2").await;
    assert_eq!(other["quiet_hours"], Value::Null);

    // PATCH without the field keeps it; with another window replaces it; `null` removes it.
    let path = format!("/v1/instances/{iid}");
    let (s, v) = app.call(Method::PATCH, &path, Some(&key), Some(json!({"warming_days": 3}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["quiet_hours"], quiet);
    let day = json!({"timezone": "UTC", "start": "09:00", "end": "17:00", "days": ["mon"]});
    let (_, v) =
        app.call(Method::PATCH, &path, Some(&key), Some(json!({"quiet_hours": day}))).await;
    assert_eq!(v["quiet_hours"], day);
    let (_, v) = app.get(&path, &key).await;
    assert_eq!(v["quiet_hours"], day);
    let (_, v) =
        app.call(Method::PATCH, &path, Some(&key), Some(json!({"quiet_hours": null}))).await;
    assert_eq!(v["quiet_hours"], Value::Null);

    // A bad window: 422, on create and on change, and nothing stored.
    let bad = json!({"timezone": "Nowhere", "start": "09:00", "end": "17:00"});
    let (s, v) = app.post("/v1/instances", &key, json!({"name": "n3", "quiet_hours": bad})).await;
    assert_invalid(s, &v, "quiet_hours.timezone");
    let (s, v) =
        app.call(Method::PATCH, &path, Some(&key), Some(json!({"quiet_hours": bad}))).await;
    assert_invalid(s, &v, "quiet_hours.timezone");
    let (_, v) = app.get("/v1/instances", &key).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 2, "n3 was not created");
}

#[tokio::test]
async fn a_numbers_first_contact_cap_is_set_shown_and_checked() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let (s, v) = app.post("/v1/instances", &key, json!({"name": "n1"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["limits"]["new_contacts_per_day"], 40, "the default: {v}");
    let path = format!("/v1/instances/{}", id(&v));
    let body = json!({"limits": {"new_contacts_per_day": 120}});
    let (s, v) = app.call(Method::PATCH, &path, Some(&key), Some(body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["limits"]["new_contacts_per_day"], 120, "{v}");
    let body = json!({"limits": {"new_contacts_per_day": 0}});
    let (s, v) = app.call(Method::PATCH, &path, Some(&key), Some(body)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (_, v) = app.get(&path, &key).await;
    assert_eq!(v["limits"]["new_contacts_per_day"], 120, "unchanged: {v}");
}

#[tokio::test]
async fn an_instance_shows_its_rewarm_state_and_why_it_rests() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    // Not linked yet: it rests offline, and it is not re-warming.
    let pending = app.instance(&key, "pending").await;
    assert_eq!(pending["resting"], "offline");
    assert_eq!(pending["warming"]["rewarming"], false);
    assert_eq!(pending["warming"]["rewarm_until"], Value::Null);
    assert!(pending["warming"]["days"].is_number(), "the existing fields stay: {pending}");

    // Connected, one send a minute: free, then at its cap after one send.
    let (s, v) = app
        .post(
            "/v1/instances",
            &key,
            json!({"name": "slow", "warming_days": 0, "limits":
                {"per_minute": 1, "min_gap_ms": 0, "max_gap_ms": 20}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let iid = id(&v);
    let (s, v) = app.get(&format!("/v1/instances/{iid}/qr"), &key).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app
        .post(&format!("/v1/sim/instances/{iid}/scan"), ADMIN, json!({"phone": "+5511999990601"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.wait_for(&key, &iid, "free to send", |v| {
        v["status"] == "connected" && v["resting"].is_null()
    })
    .await;
    let (s, m) = app
        .post(
            "/v1/messages",
            &key,
            json!({"to": "+5511988880601", "text": "hi", "instance_id": iid}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{m}");
    app.wait_message(&key, m["id"].as_str().unwrap(), &["sent", "delivered", "read"]).await;
    let v = app.wait_for(&key, &iid, "at its cap", |v| v["resting"] == "cap").await;
    assert_eq!(v["warming"]["rewarming"], false);
    let (_, list) = app.get("/v1/instances", &key).await;
    let listed = list["items"].as_array().unwrap().iter().find(|i| i["id"] == iid.as_str());
    assert_eq!(listed.unwrap()["resting"], "cap", "the list shows it too");
}

#[tokio::test]
async fn a_restart_keeps_pool_settings_a_numbers_quiet_hours_and_its_rewarm() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let quiet = json!({"timezone": "Asia/Tokyo", "start": "07:30", "end": "23:00"});
    let (s, _) = put_pool(
        &app,
        &key,
        "sales",
        json!({"strategy": "least_used", "sticky": false, "sticky_window_days": 90,
               "prefer_country": true, "per_contact_per_hour": 2, "quiet_hours": quiet}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let before = pool(&app, &key, "sales").await;
    let (s, v) = app
        .post("/v1/instances", &key, json!({"name": "n1", "pool": "sales", "quiet_hours": quiet}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let iid = id(&v);
    let dir = app.stop().await;

    // The number began re-warming an hour ago (what the send rules record).
    let from = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut conn = SqliteConnectOptions::new()
        .filename(dir.path().join("bzapper.db"))
        .connect()
        .await
        .unwrap();
    sqlx::query("UPDATE instances SET rewarm_from = ? WHERE id = ?")
        .bind(from.timestamp_millis())
        .bind(&iid)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let app = TestApp::spawn_in(dir).await;
    assert_eq!(pool(&app, &key, "sales").await, before);
    let (_, v) = app.get(&format!("/v1/instances/{iid}"), &key).await;
    assert_eq!(v["quiet_hours"], quiet);
    assert_eq!(v["warming"]["rewarming"], true, "{v}");
    let until: chrono::DateTime<chrono::Utc> =
        v["warming"]["rewarm_until"].as_str().unwrap().parse().unwrap();
    let expected = from + chrono::Duration::days(2);
    assert!((until - expected).num_milliseconds().abs() <= 1, "{until} vs {expected}");
    // A later change starts from the stored settings.
    let (s, v) = put_pool(&app, &key, "sales", json!({"sticky": true})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["sticky_window_days"], 90);
}

#[tokio::test]
async fn the_openapi_document_describes_every_new_field() {
    let app = TestApp::spawn().await;
    let res = app.http.get(format!("{}/openapi.json", app.base)).send().await.unwrap();
    let doc: Value = res.json().await.unwrap();
    let props = |schema: &str| doc["components"]["schemas"][schema]["properties"].clone();
    for field in [
        "strategy",
        "sticky",
        "sticky_window_days",
        "prefer_country",
        "per_contact_per_hour",
        "quiet_hours",
    ] {
        assert!(props("PutPool")[field].is_object(), "PutPool.{field}");
        assert!(props("PoolView")[field].is_object(), "PoolView.{field}");
    }
    assert!(props("InstanceView")["resting"].is_object());
    assert!(props("InstanceView")["quiet_hours"].is_object());
    assert!(props("CreateInstance")["quiet_hours"].is_object());
    assert!(props("PatchInstance")["quiet_hours"].is_object());
    assert!(props("WarmingView")["rewarming"].is_object());
    assert!(props("WarmingView")["rewarm_until"].is_object());
    assert!(props("ScheduleSpec")["timezone"].is_object(), "the window's shape is described");
}
