//! Spintax in campaign templates over HTTP: recipients get varied texts, each recipient's
//! text is the one stored as its message's body and sent, reading it again gives the same
//! text, and unbalanced braces are refused with their place.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{id, TestApp};

#[tokio::test]
async fn a_spintax_campaign_sends_varied_texts_that_stay_the_same_when_read_again() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    // Three numbers, so that the campaign is quick.
    let mut numbers = Vec::new();
    for (i, phone) in ["+5511900000091", "+5511900000092", "+5511900000093"].iter().enumerate() {
        numbers.push(app.fast_number(&key, &format!("n{i}"), phone, "default").await);
    }

    // Unbalanced braces: 422 naming where.
    let (s, v) = app
        .post(
            "/v1/campaigns",
            &key,
            json!({"name": "bad", "template": "{Hi|Hello {{name}}", "recipients": [{"to": "+5511977770000", "fields": {"name": "A"}}]}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_template")),
        "{v}"
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("character 1"), "{v}");

    let recipients: Vec<Value> = (0..12)
        .map(|i| json!({"to": format!("+55119777700{i:02}"), "fields": {"name": format!("P{i}")}}))
        .collect();
    let template = "{Hi|Hello|Hey} {{name}}{!|.} {Your {order|box}|It} is sent \\{ref\\}";
    let (s, v) = app
        .post(
            "/v1/campaigns",
            &key,
            json!({"name": "spin", "template": template, "recipients": recipients}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["template"], template);
    let cid = id(&v);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (_, v) = app.get(&format!("/v1/campaigns/{cid}"), &key).await;
        if v["status"] == "finished" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never finished: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Every recipient's stored message body, by recipient.
    let bodies = |list: Value| -> BTreeMap<String, String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["campaign_id"] == cid.as_str())
            .map(|m| {
                (m["to"].as_str().unwrap().to_string(), m["text"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let (_, list) = app.get("/v1/messages?limit=100", &key).await;
    let stored = bodies(list);
    assert_eq!(stored.len(), 12, "{stored:?}");
    for (i, (to, text)) in stored.iter().enumerate() {
        let name = format!(
            "P{}",
            to.trim_end_matches("@s.whatsapp.net")
                .trim_start_matches("55119777700")
                .parse::<u32>()
                .unwrap()
        );
        assert!(text.contains(&format!(" {name}")), "{i}: {text}");
        assert!(text.ends_with(" is sent {ref}"), "{text}");
        assert!(!text.contains('|') && !text.contains("{{"), "{text}");
    }
    // Varied: the 12 recipients did not all get the same greeting, nor the same text.
    let greetings: BTreeSet<&str> = stored.values().map(|t| t.split(' ').next().unwrap()).collect();
    assert!(greetings.len() >= 2, "{stored:?}");
    assert!(stored.values().collect::<BTreeSet<_>>().len() >= 4, "{stored:?}");

    // What went out is what is stored, and reading the messages again gives the same texts.
    let mut sent = BTreeMap::new();
    for n in &numbers {
        for e in app.outbox(n).await {
            if let Some(text) = e["text"].as_str() {
                sent.insert(e["to"].as_str().unwrap().to_string(), text.to_string());
            }
        }
    }
    assert_eq!(sent, stored);
    let (_, list) = app.get("/v1/messages?limit=100", &key).await;
    assert_eq!(bodies(list), stored);
    let (_, list) = app.get("/v1/messages?limit=100", &key).await;
    for m in list["items"].as_array().unwrap().iter().filter(|m| m["campaign_id"] == cid.as_str()) {
        let (_, again) = app.get(&format!("/v1/messages/{}", id(m)), &key).await;
        assert_eq!(again["text"], stored[m["to"].as_str().unwrap()].as_str());
    }
}
