//! Alerts: a short human sentence posted to a Slack-compatible or JSON URL when a number is
//! logged out, banned, or leaves rotation for low health. Alerts follow the event log live
//! (from the gateway's start) with a few quick retries; the durable, replayable path for every
//! event is the webhooks. In a cluster, the node holding the `webhooks` role posts them (the
//! feed carries every node's events), so each alert is posted by one node; one raised while the
//! role moves may be posted twice or not at all.

use std::sync::Arc;
use std::time::Duration;

use bzapper_store::{AlertConfig, Event, Store};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::cluster::role::Role;
use crate::events::recorder::Recorder;
use crate::events::EventType;
use crate::outbound::{self, Guard, OutboundClient, Redirects};

/// The alert kinds a tenant may ask for.
pub const ALERT_KINDS: &[&str] = &["logged_out", "banned", "health_low"];
/// Waits between the attempts of one alert.
const RETRIES: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(5)];

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

/// Posts the alerts the events call for while this node holds `role`, through the outbound
/// `guard` with redirects off (a 3xx is a failed attempt).
pub fn spawn(
    store: Arc<dyn Store>,
    recorder: Arc<Recorder>,
    role: Role,
    guard: &Guard,
) -> reqwest::Result<()> {
    let http = guard.client(Redirects::Off, |b| b.timeout(Duration::from_secs(10)))?;
    tokio::spawn(async move {
        let mut live = recorder.subscribe();
        loop {
            let e = match live.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "alerts fell behind the event feed");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let Some(kind) = alert_kind(&e) else { continue };
            if !role.is_held() {
                continue; // another node posts it
            }
            let Ok(Some(cfg)) = store.get_alert(&e.tenant_id).await else { continue };
            if !cfg.on.iter().any(|k| k == kind) {
                continue;
            }
            let inst = match e.instance_id.as_deref() {
                Some(id) => store.get_instance_by_id(id).await.ok().flatten(),
                None => None,
            };
            let name = inst.as_ref().map(|i| i.name.clone()).unwrap_or_else(|| "?".into());
            let phone = inst.as_ref().and_then(|i| i.phone.clone());
            let text = sentence(kind, &name, phone.as_deref(), &e);
            let body = body(&cfg, kind, &text, &e);
            tokio::spawn(post(http.clone(), cfg.tenant_id.clone(), cfg.url.clone(), body));
        }
    });
    Ok(())
}

fn body(cfg: &AlertConfig, kind: &str, text: &str, e: &Event) -> Value {
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

async fn post(http: OutboundClient, tenant_id: String, url: String, body: Value) {
    // A Slack-style URL carries its secret in the path: logs name the host only, and the
    // request error is logged without its URL.
    let host = log_host(&url);
    for wait in std::iter::once(Duration::ZERO).chain(RETRIES) {
        tokio::time::sleep(wait).await;
        let Ok(request) = http.post(&url) else {
            // Retrying cannot help: the URL is an address the gateway does not reach.
            tracing::warn!(tenant = %tenant_id, %host, "an alert URL's address is not allowed (see --outbound-allow)");
            return;
        };
        match request.json(&body).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                tracing::warn!(tenant = %tenant_id, %host, status = %r.status(), "an alert receiver refused")
            }
            Err(e) if outbound::is_blocked(&e) => {
                tracing::warn!(tenant = %tenant_id, %host, "an alert URL's address is not allowed (see --outbound-allow)");
                return;
            }
            Err(e) => {
                let e = e.without_url();
                tracing::warn!(tenant = %tenant_id, %host, error = %e, "an alert could not be posted")
            }
        }
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
    fn logs_name_the_host_never_the_secret_path() {
        let url = "https://user:pw@hooks.slack.com/services/T000/B000/XXXXSECRET?token=abc";
        assert_eq!(log_host(url), "hooks.slack.com");
        assert_eq!(log_host("http://10.0.0.1:8080/a/secret"), "10.0.0.1:8080");
        assert_eq!(log_host("not a url /secret"), "?");
    }

    /// What a test's logs say: a subscriber for the current thread writing into a buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A failed post logs the host, never the URL's path (the secret of a Slack URL).
    #[tokio::test(start_paused = true)]
    async fn a_failed_alert_logs_the_host_only() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber =
            tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let _on = tracing::subscriber::set_default(subscriber);
        // A port nothing listens on: each attempt fails to connect.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let url = format!("http://127.0.0.1:{port}/services/T000/B000/XXXXSECRET");
        let guard = Guard::new("127.0.0.0/8".parse().unwrap());
        let http = guard.client(Redirects::Off, |b| b).unwrap();
        post(http, "t1".into(), url, json!({"text": "x"})).await;
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("an alert could not be posted").count(), 3, "{text}");
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        assert!(!text.contains("XXXXSECRET") && !text.contains("/services"), "{text}");
    }
}
