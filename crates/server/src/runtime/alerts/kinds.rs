//! What an alert says: which events call for one, the human sentence, and the body posted
//! (Slack-compatible `{"text"}` or JSON with the event). Pure, no I/O.

use bzapper_store::{AlertConfig, Event};
use serde_json::{json, Value};

use crate::events::EventType;

/// The alert kinds a tenant may ask for.
pub const ALERT_KINDS: &[&str] = &["logged_out", "banned", "health_low"];

/// Which alert an event calls for, if any.
pub fn alert_kind(e: &Event) -> Option<&'static str> {
    match EventType::parse(&e.kind)? {
        EventType::InstanceDisconnected => match e.data["reason"].as_str() {
            Some("logged_out") => Some("logged_out"),
            Some("banned") => Some("banned"),
            _ => None,
        },
        EventType::InstanceHealth => {
            let low = e.data["in_rotation"] == false
                && e.data["score"].as_u64() < e.data["threshold"].as_u64();
            low.then_some("health_low")
        }
        _ => None,
    }
}

/// "Number +55… (sales-1) was banned: …".
pub fn sentence(kind: &str, name: &str, phone: Option<&str>, e: &Event) -> String {
    let who = match phone {
        Some(p) => format!("Number {p} ({name})"),
        None => format!("Number {name}"),
    };
    let detail = e.data["detail"].as_str().unwrap_or("no detail given");
    match kind {
        "banned" => format!("{who} was banned: {detail}. It is out of rotation."),
        "logged_out" => {
            format!("{who} was logged out: {detail}. Scan a new QR code to link it again.")
        }
        _ => format!(
            "{who} left rotation: its health score {} is below {}.",
            e.data["score"], e.data["threshold"]
        ),
    }
}

/// The body posted to the tenant's target, in its format.
pub fn body(cfg: &AlertConfig, kind: &str, text: &str, e: &Event) -> Value {
    if cfg.format == "slack" {
        json!({ "text": text })
    } else {
        json!({
            "text": text,
            "alert": kind,
            "tenant_id": e.tenant_id,
            "instance_id": e.instance_id,
            "event": {"id": e.id.to_string(), "type": e.kind, "created_at": e.created_at, "data": e.data},
        })
    }
}

/// The URL's host (and port), for logs: never its path, query or credentials, which may be
/// secret.
pub fn log_host(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => "?".into(),
        },
        Err(_) => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, data: Value) -> Event {
        Event {
            id: 1,
            tenant_id: "t".into(),
            instance_id: Some("i".into()),
            kind: kind.into(),
            data,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn only_drops_that_need_an_operator_alert() {
        let banned = ev("instance.disconnected", json!({"reason": "banned", "detail": "code 101"}));
        assert_eq!(alert_kind(&banned), Some("banned"));
        assert_eq!(
            sentence("banned", "sales-1", Some("+5511999990001"), &banned),
            "Number +5511999990001 (sales-1) was banned: code 101. It is out of rotation."
        );
        let stopped = ev("instance.disconnected", json!({"reason": "stopped"}));
        assert_eq!(alert_kind(&stopped), None);
        let low =
            ev("instance.health", json!({"score": 25, "in_rotation": false, "threshold": 40}));
        assert_eq!(alert_kind(&low), Some("health_low"));
        assert!(sentence("health_low", "n", None, &low).contains("score 25 is below 40"));
        // Out of rotation because it disconnected, not for its health: no health alert.
        let off =
            ev("instance.health", json!({"score": 90, "in_rotation": false, "threshold": 40}));
        assert_eq!(alert_kind(&off), None);
    }

    #[test]
    fn the_bodies_keep_their_documented_shapes() {
        let e = ev("instance.disconnected", json!({"reason": "banned", "detail": "code 101"}));
        let cfg = |format: &str| AlertConfig {
            tenant_id: "t".into(),
            url: "https://hooks.example/x".into(),
            format: format.into(),
            on: vec!["banned".into()],
            updated_at: chrono::Utc::now(),
        };
        assert_eq!(body(&cfg("slack"), "banned", "hi", &e), json!({"text": "hi"}));
        assert_eq!(
            body(&cfg("json"), "banned", "hi", &e),
            json!({"text": "hi", "alert": "banned", "tenant_id": "t", "instance_id": "i",
                   "event": {"id": "1", "type": "instance.disconnected",
                             "created_at": e.created_at, "data": e.data}})
        );
    }

    #[test]
    fn logs_name_the_host_never_the_secret_path() {
        let url = "https://user:pw@hooks.slack.com/services/T000/B000/XXXXSECRET?token=abc";
        assert_eq!(log_host(url), "hooks.slack.com");
        assert_eq!(log_host("http://10.0.0.1:8080/a/secret"), "10.0.0.1:8080");
        assert_eq!(log_host("not a url /secret"), "?");
    }
}
