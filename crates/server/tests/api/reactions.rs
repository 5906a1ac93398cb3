//! The simulated network's reaction model through the gateway's `/v1/sim` routes: off by
//! default, switched on and tuned with `PUT /v1/sim/reactions`, a number's age set with
//! `POST /v1/sim/instances/{id}/age`, and a young number's first contacts refused with 463.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{id, TestApp, ADMIN};

#[tokio::test]
async fn a_young_numbers_first_contacts_are_refused_until_it_is_old_enough() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let (s, v) = app.get("/v1/sim/reactions", ADMIN).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["enabled"], false, "off by default: {v}");
    assert_eq!(v["first_contacts"]["young_days"], 7, "{v}");

    // Only the first-contact rule, two a hour.
    let body = json!({"enabled": true, "first_contacts": {"per_hour": 2},
        "not_on_whatsapp": null, "identical_texts": null});
    let (s, v) = app.call(Method::PUT, "/v1/sim/reactions", Some(ADMIN), Some(body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["first_contacts"], json!({"young_days": 7, "per_hour": 2}));
    assert_eq!(v["identical_texts"], json!(null));
    for bad in
        [json!({"first_contacts": {"per_hour": 0}}), json!({"enabled": "yes"}), json!({"x": 1})]
    {
        let (s, v) = app.call(Method::PUT, "/v1/sim/reactions", Some(ADMIN), Some(bad)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    }
    // Tenants do not control the network.
    let (s, _) = app.get("/v1/sim/reactions", &key).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let n = app.fast_number(&key, "a", "+5511900000071", "default").await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let (s, v) = app
            .post("/v1/messages", &key, json!({"to": format!("+55119444400{i:02}"), "text": "hi"}))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let m = app.wait_message(&key, &id(&v), &["sent", "delivered", "failed"]).await;
        statuses.push(m);
    }
    assert!(statuses[..2].iter().all(|m| m["status"] != "failed"), "{statuses:?}");
    assert_eq!(statuses[2]["status"], "failed");
    assert!(statuses[2]["error"].as_str().unwrap().contains("463"), "{:?}", statuses[2]);

    // A month-old number starts chats freely.
    for bad in [json!({"days": -1}), json!({"days": 40000}), json!({})] {
        let (s, v) = app.post(&format!("/v1/sim/instances/{n}/age"), ADMIN, bad).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    }
    let (s, v) = app.post(&format!("/v1/sim/instances/{n}/age"), ADMIN, json!({"days": 30})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) =
        app.post("/v1/messages", &key, json!({"to": "+5511944440099", "text": "hi"})).await;
    let m = app.wait_message(&key, &id(&v), &["sent", "delivered", "failed"]).await;
    assert_ne!(m["status"], "failed", "{m}");
}
