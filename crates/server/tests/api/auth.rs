//! Tenants, keys, 401/403 and tenant isolation.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{id, TestApp, ADMIN};

#[tokio::test]
async fn missing_or_bad_tokens_are_401_and_wrong_roles_403() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let (s, v) = app.call(Method::GET, "/v1/instances", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "unauthorized");
    for bad in ["nope", "bzk_aaaaaaaaaaaaaaaaaaaa_wrong", &format!("{key}x")] {
        let (s, _) = app.get("/v1/instances", bad).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad}");
    }
    let (s, v) = app.get("/v1/instances", ADMIN).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "forbidden");
    let (s, _) = app.get("/v1/tenants", &key).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) =
        app.post("/v1/sim/instances/x/scan", &key, json!({"phone": "+5511999990001"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn keys_are_shown_once_and_can_be_added_and_revoked() {
    let app = TestApp::spawn().await;
    let (tid, key1) = app.tenant("acme").await;
    let (s, list) = app.get("/v1/tenants", ADMIN).await;
    assert_eq!(s, StatusCode::OK);
    let listed = serde_json::to_string(&list).unwrap();
    assert!(listed.contains(&tid));
    assert!(!listed.contains(&key1), "a key must never be listed");

    let (s, k2) = app.post(&format!("/v1/tenants/{tid}/keys"), ADMIN, json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{k2}");
    let key2 = k2["api_key"].as_str().unwrap().to_string();
    assert_eq!(app.get("/v1/instances", &key2).await.0, StatusCode::OK);

    let (s, _) = app
        .call(Method::DELETE, &format!("/v1/tenants/{tid}/keys/{}", id(&k2)), Some(ADMIN), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/instances", &key2).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/v1/instances", &key1).await.0, StatusCode::OK);

    // Revoking again, or a key of another tenant, is 404.
    let (s, _) = app
        .call(Method::DELETE, &format!("/v1/tenants/{tid}/keys/{}", id(&k2)), Some(ADMIN), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.post("/v1/tenants/ten_nope/keys", ADMIN, json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_tenants_ids_answer_404_like_missing_ones() {
    let app = TestApp::spawn().await;
    let (_, a) = app.tenant("a").await;
    let (_, b) = app.tenant("b").await;
    let inst = app.instance(&a, "mine").await;
    let iid = id(&inst);
    for (m, p) in [
        (Method::GET, format!("/v1/instances/{iid}")),
        (Method::PATCH, format!("/v1/instances/{iid}")),
        (Method::DELETE, format!("/v1/instances/{iid}")),
        (Method::POST, format!("/v1/instances/{iid}/connect")),
        (Method::POST, format!("/v1/instances/{iid}/disconnect")),
        (Method::POST, format!("/v1/instances/{iid}/logout")),
        (Method::GET, format!("/v1/instances/{iid}/qr")),
        (Method::POST, format!("/v1/instances/{iid}/pair-code")),
    ] {
        let body = match m {
            Method::PATCH => Some(json!({"name": "stolen"})),
            _ if p.ends_with("pair-code") => Some(json!({"phone": "+5511999990001"})),
            _ => None,
        };
        let (s, v) = app.call(m.clone(), &p, Some(&b), body.clone()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {p}: {v}");
        assert_eq!(v["error"]["code"], "not_found");
        let missing = p.replace(&iid, "ins_doesnotexist");
        let (s2, v2) = app.call(m.clone(), &missing, Some(&b), body).await;
        assert_eq!((s2, &v2), (s, &v), "a foreign id must look exactly like a missing one");
    }
    let (_, list) = app.get("/v1/instances", &b).await;
    assert!(list["items"].as_array().unwrap().is_empty());
    // Nothing B did touched A's instance.
    let (s, v) = app.get(&format!("/v1/instances/{iid}"), &a).await;
    assert_eq!((s, v["name"].as_str()), (StatusCode::OK, Some("mine")));
    assert_eq!(v["status"], "qr_pending");
}

#[tokio::test]
async fn deleting_a_tenant_removes_its_keys_and_instances() {
    let app = TestApp::spawn().await;
    let (tid, key) = app.tenant("gone").await;
    app.connected_instance(&key, "n1", "+5511999990011").await;
    let (s, _) = app.call(Method::DELETE, &format!("/v1/tenants/{tid}"), Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/instances", &key).await.0, StatusCode::UNAUTHORIZED);
    let (s, _) = app.call(Method::DELETE, &format!("/v1/tenants/{tid}"), Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
