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
            tokio::spawn(post(http.clone(), cfg.url.clone(), body));
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

async fn post(http: OutboundClient, url: String, body: Value) {
    for wait in std::iter::once(Duration::ZERO).chain(RETRIES) {
        tokio::time::sleep(wait).await;
        let Ok(request) = http.post(&url) else {
            // Retrying cannot help: the URL is an address the gateway does not reach.
            tracing::warn!("an alert URL's address is not allowed (see --outbound-allow)");
            return;
        };
        match request.json(&body).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(status = %r.status(), "an alert receiver refused"),
            Err(e) if outbound::is_blocked(&e) => {
                tracing::warn!("an alert URL's address is not allowed (see --outbound-allow)");
                return;
            }
            // Without the URL: a Slack URL's path is its secret.
            Err(e) => tracing::warn!(error = %e.without_url(), "an alert could not be posted"),
        }
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
}
