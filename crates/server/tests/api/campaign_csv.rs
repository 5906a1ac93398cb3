//! Campaigns from a CSV file read by the server: the preview (rows counted, problems by line,
//! texts rendered as sent), a file that cannot be read (400 naming the line), and a campaign
//! created from a file that sends each row its text.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{TestApp, ADMIN};

const CSV: &str = "phone,name,code\r\n\
    +5511988880001,Ana,42\r\n\
    +5511988880002,\"Silva, Bo\",7\r\n\
    not-a-phone,Cy,1\r\n\
    +55 11 98888-0001,Dup,2\r\n\
    +5511988880003,Di,9\r\n";

#[tokio::test]
async fn a_preview_counts_rows_names_problems_by_line_and_renders_texts() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let (s, v) = app
        .post(
            "/v1/campaigns/preview",
            &key,
            json!({"csv": CSV, "template": "Hi {{name}}, your code is {{code}}", "previews": 3}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["recipients"], 5);
    assert_eq!(v["columns"], json!(["name", "code"]));
    assert_eq!(v["fields_used"], json!(["code", "name"]));
    assert_eq!(v["variants"], 1);
    assert_eq!(v["ok"], false);
    assert_eq!(v["problems_total"], 2);
    let problems: Vec<(u64, &str)> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["line"].as_u64().unwrap(), p["code"].as_str().unwrap()))
        .collect();
    assert_eq!(problems, vec![(4, "invalid_recipient"), (5, "duplicate_recipient")]);
    assert!(
        v["problems"][1]["message"].as_str().unwrap().contains("line 2 (recipients[0])"),
        "{v}"
    );
    let previews: Vec<(u64, &str, &str)> = v["previews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (p["line"].as_u64().unwrap(), p["to"].as_str().unwrap(), p["text"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        previews,
        vec![
            (2, "5511988880001@s.whatsapp.net", "Hi Ana, your code is 42"),
            (3, "5511988880002@s.whatsapp.net", "Hi Silva, Bo, your code is 7"),
            (6, "5511988880003@s.whatsapp.net", "Hi Di, your code is 9"),
        ]
    );
    // Spintax is rendered as the server renders it: one of the choices, fields filled in.
    let (s, v) = app
        .post(
            "/v1/campaigns/preview",
            &key,
            json!({"csv": "tel,name\n+5511988880001,Ana\n", "phone_column": "TEL", "template": "{Hi|Hello} {{name}}"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((v["ok"].as_bool(), v["variants"].as_u64()), (Some(true), Some(2)));
    let text = v["previews"][0]["text"].as_str().unwrap();
    assert!(text == "Hi Ana" || text == "Hello Ana", "{text}");
    // A field the file lacks is a problem of every row.
    let (_, v) =
        app.post("/v1/campaigns/preview", &key, json!({"csv": CSV, "template": "{{city}}"})).await;
    assert_eq!(v["problems_total"], 5, "{v}");
    assert_eq!(v["problems"][0]["code"], "unknown_field");
}

#[tokio::test]
async fn a_file_that_cannot_be_read_is_a_400_naming_its_line() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    for (csv, column, words) in [
        ("phone,name\n+5511988880001,Ana\n+5511988880002,Bo,extra\n", None, "line 3: 3 columns"),
        ("name\nAna\n", None, "line 1: no `phone` or `to` column"),
        ("name,tel\nAna,1\n", Some("mobile"), "line 1: no column `mobile`"),
        ("phone,name\n", None, "line 1 is the header"),
        ("", None, "the file is empty"),
        ("phone,name\n ,Ana\n", None, "line 2: no phone number"),
    ] {
        for route in ["/v1/campaigns/preview", "/v1/campaigns/csv"] {
            let mut body = json!({"csv": csv, "template": "Hi", "name": "x"});
            if route.ends_with("preview") {
                body.as_object_mut().unwrap().remove("name");
            }
            if let Some(c) = column {
                body["phone_column"] = json!(c);
            }
            let (s, v) = app.post(route, &key, body).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{route} {csv:?}: {v}");
            assert_eq!(v["error"]["code"], "invalid_csv", "{v}");
            assert!(v["error"]["message"].as_str().unwrap().contains(words), "{v}");
        }
    }
    // The template is checked like on POST /v1/campaigns; unknown fields and the admin token
    // are refused.
    let (s, v) =
        app.post("/v1/campaigns/preview", &key, json!({"csv": CSV, "template": "Hi {{name"})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_template"))
    );
    let (s, _) = app
        .post("/v1/campaigns/preview", &key, json!({"csv": CSV, "template": "x", "extra": 1}))
        .await;
    assert!(s.is_client_error(), "{s}");
    let (s, _) = app
        .post("/v1/campaigns/preview", &key, json!({"csv": CSV, "template": "x", "previews": 51}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) =
        app.post("/v1/campaigns/preview", ADMIN, json!({"csv": CSV, "template": "x"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_campaign_from_a_file_sends_each_row_its_text() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let n = app.fast_number(&key, "a", "+5511900008001", "default").await;
    // A row with a problem refuses the whole file, named by its line.
    let (s, v) = app
        .post(
            "/v1/campaigns/csv",
            &key,
            json!({"name": "promo", "template": "Hi {{name}}", "csv": CSV}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "invalid_recipient");
    assert!(
        v["error"]["message"].as_str().unwrap().starts_with("line 4 (recipients[2]).to"),
        "{v}"
    );

    let csv = "phone,name,code\n+5511988880001,Ana,42\n+5511988880002,\"Silva, Bo\",7\n";
    let (s, v) = app
        .post(
            "/v1/campaigns/csv",
            &key,
            json!({"name": "promo", "template": "Hi {{name}}, code {{code}}", "csv": csv}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["totals"]["recipients"], 2);
    let cid = v["id"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = app.get(&format!("/v1/campaigns/{cid}"), &key).await;
        if v["status"] == "finished" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not finished: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut texts: Vec<(String, String)> = app
        .outbox(&n)
        .await
        .iter()
        .filter(|m| m["text"].is_string())
        .map(|m| (m["to"].as_str().unwrap().to_string(), m["text"].as_str().unwrap().to_string()))
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        vec![
            ("5511988880001@s.whatsapp.net".to_string(), "Hi Ana, code 42".to_string()),
            ("5511988880002@s.whatsapp.net".to_string(), "Hi Silva, Bo, code 7".to_string()),
        ]
    );
    // Listed beside the JSON-made campaigns.
    let (_, list) = app.get("/v1/campaigns", &key).await;
    assert_eq!(list["items"][0]["id"], cid.as_str());
    let _: Value = list;
}
