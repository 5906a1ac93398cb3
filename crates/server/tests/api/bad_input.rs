//! Bad input: each a 4xx in the docs/api.md error shape, never a 500, and nothing stored changes.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{id, TestApp};

async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    ctype: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let res = app
        .http
        .request(method, format!("{}{}", app.base, path))
        .bearer_auth(key)
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .unwrap();
    let s = res.status();
    (s, res.json().await.unwrap_or(Value::Null))
}

fn assert_error(s: StatusCode, v: &Value, status: u16, code: &str) {
    assert_eq!(s.as_u16(), status, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

#[tokio::test]
async fn bad_creates_are_refused_and_store_nothing() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("application/json", b"{\"name\": ".to_vec(), 400, "malformed_json"),
        ("application/json", b"not json".to_vec(), 400, "malformed_json"),
        ("text/plain", br#"{"name":"x"}"#.to_vec(), 415, "unsupported_media_type"),
        ("application/json", br#"{"name":"x","colour":"red"}"#.to_vec(), 422, "invalid_request"),
        ("application/json", br#"{"name":42}"#.to_vec(), 422, "invalid_request"),
        ("application/json", br#"{}"#.to_vec(), 422, "invalid_request"),
        ("application/json", br#"[]"#.to_vec(), 422, "invalid_request"),
        (
            "application/json",
            format!(r#"{{"name":"{}"}}"#, "n".repeat(65)).into_bytes(),
            422,
            "invalid_request",
        ),
        ("application/json", br#"{"name":"   "}"#.to_vec(), 422, "invalid_request"),
        ("application/json", br#"{"name":"x","warming_days":-1}"#.to_vec(), 422, "invalid_request"),
        (
            "application/json",
            br#"{"name":"x","warming_days":1.5}"#.to_vec(),
            422,
            "invalid_request",
        ),
        (
            "application/json",
            br#"{"name":"x","pool":"Not A Pool"}"#.to_vec(),
            422,
            "invalid_request",
        ),
        (
            "application/json",
            br#"{"name":"x","proxy":"ftp://h:21"}"#.to_vec(),
            422,
            "invalid_proxy",
        ),
        (
            "application/json",
            br#"{"name":"x","proxy":"socks5://nohostport"}"#.to_vec(),
            422,
            "invalid_proxy",
        ),
        ("application/json", br#"{"name":"x","proxy":"nonsense"}"#.to_vec(), 422, "invalid_proxy"),
        (
            "application/json",
            br#"{"name":"x","limits":{"per_minute":0}}"#.to_vec(),
            422,
            "invalid_limits",
        ),
        (
            "application/json",
            br#"{"name":"x","limits":{"per_week":3}}"#.to_vec(),
            422,
            "invalid_request",
        ),
    ];
    for (ctype, body, status, code) in cases {
        let shown = String::from_utf8_lossy(&body).to_string();
        let (s, v) = raw(&app, Method::POST, "/v1/instances", &key, ctype, body).await;
        assert_eq!(s.as_u16(), status, "{shown}: {v}");
        assert_error(s, &v, status, code);
    }
    // A body over the 1 MiB cap.
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(1024 * 1024 + 10)).into_bytes();
    let (s, v) = raw(&app, Method::POST, "/v1/instances", &key, "application/json", big).await;
    assert_error(s, &v, 413, "payload_too_large");

    let (_, list) = app.get("/v1/instances", &key).await;
    assert!(list["items"].as_array().unwrap().is_empty(), "nothing may be stored: {list}");

    // A duplicate name is a conflict.
    app.instance(&key, "dup").await;
    let (s, v) = app.post("/v1/instances", &key, json!({"name": "dup"})).await;
    assert_error(s, &v, 409, "name_taken");
}

#[tokio::test]
async fn bad_patches_change_nothing() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let inst = app.instance(&key, "orig").await;
    let iid = id(&inst);
    let path = format!("/v1/instances/{iid}");
    for (body, status, code) in [
        (json!({"name": "new", "proxy": "https://h:1"}), 422, "invalid_proxy"),
        (json!({"name": "new", "warming_days": -3}), 422, "invalid_request"),
        (json!({"name": "new", "unknown": 1}), 422, "invalid_request"),
        (
            json!({"name": "new", "limits": {"min_gap_ms": 9, "max_gap_ms": 1}}),
            422,
            "invalid_limits",
        ),
        (json!({"name": ""}), 422, "invalid_request"),
    ] {
        let (s, v) = app.call(Method::PATCH, &path, Some(&key), Some(body.clone())).await;
        assert_error(s, &v, status, code);
    }
    let (_, after) = app.get(&path, &key).await;
    assert_eq!(after["name"], "orig");
    assert_eq!(after["warming"]["days"], 5);
    assert_eq!(after["proxy"], Value::Null);

    // A good patch applies, and the proxy's credentials are never echoed.
    let (s, v) = app
        .call(
            Method::PATCH,
            &path,
            Some(&key),
            Some(json!({"name": "renamed", "warming_days": 2, "proxy": "socks5://u:pw-secret@127.0.0.1:1080", "limits": {"per_minute": 4}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["name"], "renamed");
    assert_eq!(v["warming"]["days"], 2);
    assert_eq!(v["proxy"], "socks5://127.0.0.1:1080");
    assert_eq!(v["limits"]["per_minute"], 4);
    assert_eq!(v["limits"]["per_day"], 1500);
    // `proxy: null` removes it.
    let (_, v) = app.call(Method::PATCH, &path, Some(&key), Some(json!({"proxy": null}))).await;
    assert_eq!(v["proxy"], Value::Null);
    assert_eq!(v["name"], "renamed");
}

#[tokio::test]
async fn unknown_ids_routes_and_methods_answer_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let (s, v) = app.get("/v1/instances/ins_nope", &key).await;
    assert_error(s, &v, 404, "not_found");
    let (s, v) = app.get("/v1/nothing-here", &key).await;
    assert_error(s, &v, 404, "not_found");
    let (s, v) = app.call(Method::PUT, "/v1/instances", Some(&key), None).await;
    assert_error(s, &v, 405, "method_not_allowed");
    let (s, v) = app
        .call(Method::PUT, "/v1/pools/default", Some(&key), Some(json!({"strategy": "random"})))
        .await;
    assert_error(s, &v, 422, "invalid_request");
    let (s, v) = app
        .post("/v1/instances/ins_nope/pair-code", &key, json!({"phone": "+5511999990001"}))
        .await;
    assert_error(s, &v, 404, "not_found");
}

#[tokio::test]
async fn pools_default_exists_and_strategies_can_be_set() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let (s, v) = app.get("/v1/pools", &key).await;
    assert_eq!(s, StatusCode::OK);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(
        (&items[0]["name"], &items[0]["strategy"]),
        (&json!("default"), &json!("round_robin"))
    );
    let (s, v) = app
        .call(
            Method::PUT,
            "/v1/pools/sales",
            Some(&key),
            Some(json!({"strategy": "health_weighted"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = app.get("/v1/pools", &key).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    // Another tenant does not see it.
    let (_, other) = app.tenant("other").await;
    let (_, v) = app.get("/v1/pools", &other).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
}

/// Issue 17: over-long JIDs, menu option ids and contact display names are refused, and no
/// error echoes more than a short prefix of what was sent.
#[tokio::test]
async fn over_long_input_is_refused_and_never_echoed_whole() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let inst = id(&app.instance(&key, "n1").await);
    let long = "7".repeat(5_000);
    let short = |v: &Value| {
        let m = v["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(m.len() < 600 && !m.contains(&"7".repeat(100)), "echoed: {m}");
        m
    };

    let (s, v) = app.get(&format!("/v1/instances/{inst}/groups/{long}@g.us"), &key).await;
    assert_error(s, &v, 422, "invalid_request");
    short(&v);

    for body in [
        json!({"to": format!("{long}@s.whatsapp.net"), "text": "hi"}),
        json!({"to": long.clone(), "text": "hi"}),
        json!({"to": "+5511999990001", "text": "hi", "mentions": [long.clone()]}),
    ] {
        let (s, v) = app.post("/v1/messages", &key, body).await;
        assert_error(s, &v, 422, "invalid_recipient");
        short(&v);
    }

    let option_id = "7".repeat(257);
    let (s, v) = app
        .post(
            "/v1/messages",
            &key,
            json!({"to": "+5511999990001", "text": "Pay?",
                   "menu": {"options": [{"id": option_id, "title": "Yes"}]}}),
        )
        .await;
    assert_error(s, &v, 422, "invalid_request");
    assert!(short(&v).contains("at most 256"), "{v}");

    let vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Ana\nEND:VCARD";
    let (s, v) = app
        .post(
            "/v1/messages",
            &key,
            json!({"to": "+5511999990001",
                   "contact": {"vcard": vcard, "display_name": "7".repeat(257)}}),
        )
        .await;
    assert_eq!(s.as_u16(), 422, "{v}");
    assert!(short(&v).contains("256"), "{v}");

    // serde's own errors repeat the value they refused: shortened too.
    let (s, v) = app
        .call(
            Method::PUT,
            "/v1/alerts",
            Some(&key),
            Some(json!({"url": "https://example.com/x", "format": long, "on": ["banned"]})),
        )
        .await;
    assert_error(s, &v, 422, "invalid_request");
    short(&v);
    let (s, v) = app.get(&format!("/v1/messages?status={long}"), &key).await;
    assert_error(s, &v, 422, "invalid_request");
    short(&v);
    let (s, v) = app.get(&format!("/v1/events?types={long}"), &key).await;
    assert_eq!(s.as_u16(), 422, "{v}");
    short(&v);
}
