//! What the gateway's `/v1/sim/...` routes need from a simulated network, as one small trait
//! ([`SimControl`]) with two implementations: over the simulated network of
//! `bzapper_driver::sim` ([`SimNetControl`], any [`SimNet`]), and over the HTTP control API of
//! the wire-level fake WhatsApp server (`bzapper simnet --wire`, [`WireControl`]), which the
//! gateway reaches with the real WhatsApp driver.
//!
//! The routes resolve what an op addresses (the instance id, its linked phone, its current QR
//! code) and leave the rest to the network; ops the wire network has no control for (the
//! reach-out restriction) answer [`ControlError::NotImplemented`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bzapper_core::Jid;
use bzapper_driver::sim::{
    CallResult, CallSpec, ContactRequest, CreateGroupRequest, CreateGroupResult, DropRequest,
    InboundResult, InboundSpec, ScanRequest, SimError, SimNet,
};
use bzapper_driver::DropKind;
use serde::Deserialize;
use serde_json::{json, Value};

/// Why a control op failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The network refused the op (its code and status go to the API caller).
    #[error(transparent)]
    Sim(#[from] SimError),
    /// This network has no such control.
    #[error("{0}")]
    NotImplemented(String),
}

/// Who scanned: the linked phone (E.164 with `+`), its JID and its LID.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub phone: String,
    pub jid: String,
    pub lid: Option<String>,
}

/// The instance an op is about: its id, and its linked phone (E.164) when it has one.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub id: &'a str,
    pub phone: Option<&'a str>,
}

/// The control ops of the `/v1/sim` routes, whichever network the gateway runs on.
#[async_trait]
pub trait SimControl: Send + Sync {
    /// `phone` (E.164) scans the instance's current QR code `qr` (when it shows one).
    async fn scan(
        &self,
        target: Target<'_>,
        qr: Option<&str>,
        phone: &str,
    ) -> Result<Scanned, ControlError>;
    /// The network drops the instance's connection.
    async fn drop_connection(&self, target: Target<'_>, kind: DropKind)
        -> Result<(), ControlError>;
    /// A contact writes to the instance.
    async fn inbound(
        &self,
        target: Target<'_>,
        spec: InboundSpec,
    ) -> Result<InboundResult, ControlError>;
    /// A contact calls the instance; the call rings until the number rejects it.
    async fn call(&self, target: Target<'_>, spec: CallSpec) -> Result<CallResult, ControlError>;
    /// What the network received from the instance, oldest first, as the network wrote it.
    async fn outbox(&self, target: Target<'_>) -> Result<Vec<Value>, ControlError>;
    /// A group with these phones in it exists.
    async fn create_group(
        &self,
        req: CreateGroupRequest,
    ) -> Result<CreateGroupResult, ControlError>;
    /// Whether a phone has WhatsApp (every phone has until marked otherwise).
    async fn set_contact(&self, req: ContactRequest) -> Result<(), ControlError>;
    /// The whole simulated network, for the routes beyond these ops (restrict); `None` when
    /// this network has no such controls.
    fn sim_net(&self) -> Option<Arc<dyn SimNet>>;
}

/// [`SimControl`] over the simulated network (in this process or `bzapper simnet`).
pub struct SimNetControl(pub Arc<dyn SimNet>);

#[async_trait]
impl SimControl for SimNetControl {
    async fn scan(
        &self,
        target: Target<'_>,
        _qr: Option<&str>,
        phone: &str,
    ) -> Result<Scanned, ControlError> {
        let r = self.0.scan(target.id, ScanRequest { phone: phone.to_string() }).await?;
        Ok(Scanned { phone: r.phone, jid: r.jid.to_string(), lid: Some(r.lid.to_string()) })
    }

    async fn drop_connection(
        &self,
        target: Target<'_>,
        kind: DropKind,
    ) -> Result<(), ControlError> {
        Ok(self.0.drop_connection(target.id, DropRequest { reason: kind }).await?)
    }

    async fn inbound(
        &self,
        target: Target<'_>,
        spec: InboundSpec,
    ) -> Result<InboundResult, ControlError> {
        Ok(self.0.inbound(target.id, spec).await?)
    }

    async fn call(&self, target: Target<'_>, spec: CallSpec) -> Result<CallResult, ControlError> {
        Ok(self.0.call(target.id, spec).await?)
    }

    async fn outbox(&self, target: Target<'_>) -> Result<Vec<Value>, ControlError> {
        let entries = self.0.outbox(target.id).await?;
        entries
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SimError::Unavailable(e.to_string()).into())
    }

    async fn create_group(
        &self,
        req: CreateGroupRequest,
    ) -> Result<CreateGroupResult, ControlError> {
        Ok(self.0.create_group(req).await?)
    }

    async fn set_contact(&self, req: ContactRequest) -> Result<(), ControlError> {
        Ok(self.0.set_contact(req).await?)
    }

    fn sim_net(&self) -> Option<Arc<dyn SimNet>> {
        Some(self.0.clone())
    }
}

/// [`SimControl`] over the wire-level fake's HTTP control API (`bzapper simnet --wire`):
/// `GET {base}/wire`, `POST {base}/wire/scan`, `POST {base}/wire/devices/{phone}/fail`,
/// `POST {base}/wire/devices/{phone}/inbound`, `POST {base}/wire/devices/{phone}/call`,
/// `GET {base}/wire/devices/{phone}/outbox`.
/// Devices are addressed by their phone's digits (no `+`).
pub struct WireControl {
    base: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct WireInfo {
    ws_url: String,
}

#[derive(Deserialize)]
struct WireScanned {
    phone: String,
    jid: String,
    lid: Option<String>,
}

#[derive(Deserialize)]
struct WireError {
    error: WireErrorDetail,
}

#[derive(Deserialize)]
struct WireErrorDetail {
    code: String,
    message: String,
}

impl WireControl {
    /// A client of the control API at `base` (e.g. `http://127.0.0.1:7070`).
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        url::Url::parse(&base).map_err(|e| anyhow::anyhow!("`{base}` is not a URL: {e}"))?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(WireControl { base, http })
    }

    /// The fake's WhatsApp websocket URL (`GET {base}/wire`), for the real driver. A fake
    /// that does not answer yet is asked again until `patience` has passed: started side by
    /// side (a script, a compose file), the gateway may be up before the fake listens.
    pub async fn ws_url(&self, patience: Duration) -> anyhow::Result<String> {
        let started = tokio::time::Instant::now();
        loop {
            match self.call::<WireInfo>(self.http.get(self.url("/wire"))).await {
                Ok(info) => return Ok(info.ws_url),
                Err(SimError::Unavailable(why)) if started.elapsed() < patience => {
                    tracing::info!(base = %self.base, "the wire fake does not answer yet: {why}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn device_url(&self, target: Target<'_>, op: &str) -> Result<String, ControlError> {
        let phone = target.phone.ok_or(SimError::NotConnected)?;
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        Ok(self.url(&format!("/wire/devices/{digits}/{op}")))
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, SimError> {
        let res = req.send().await.map_err(|e| SimError::Unavailable(e.to_string()))?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(|e| SimError::Unavailable(e.to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| SimError::Unavailable(format!("unexpected answer: {e}")));
        }
        match serde_json::from_slice::<WireError>(&bytes) {
            Ok(w) => Err(SimError::from_code(&w.error.code, w.error.message)),
            Err(_) => Err(SimError::Unavailable(format!("the wire control answered {status}"))),
        }
    }
}

/// A participant as the fake's `POST /wire/groups` takes it: a phone in any notation (the
/// simulated network also takes phone JIDs, the fake does not).
fn phone_part(p: &str) -> &str {
    p.strip_suffix("@s.whatsapp.net").unwrap_or(p)
}

/// The fake's inbound body: the simulated network's JSON, without its unset fields.
fn inbound_body(spec: InboundSpec) -> Result<Value, ControlError> {
    let mut body = serde_json::to_value(&spec).map_err(|e| SimError::Unavailable(e.to_string()))?;
    if let Some(fields) = body.as_object_mut() {
        fields.retain(|_, v| !v.is_null());
    }
    Ok(body)
}

/// The fake's `fail` body for a drop.
fn fail_body(kind: DropKind) -> Value {
    match kind {
        DropKind::Transient => json!({"reason": "transient"}),
        DropKind::LoggedOut => json!({"reason": "logged_out"}),
        DropKind::Banned => json!({"reason": "banned"}),
        DropKind::TemporarilyBanned { until } => {
            let secs = (until - chrono::Utc::now()).num_seconds().max(1);
            json!({"reason": "temporarily_banned", "expire_secs": secs})
        }
        DropKind::Ended => json!({"reason": "replaced"}),
    }
}

#[async_trait]
impl SimControl for WireControl {
    async fn scan(
        &self,
        _target: Target<'_>,
        qr: Option<&str>,
        phone: &str,
    ) -> Result<Scanned, ControlError> {
        let qr = qr.ok_or(SimError::NotPairing)?;
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        let r: WireScanned = self
            .call(self.http.post(self.url("/wire/scan")).json(&json!({"qr": qr, "phone": digits})))
            .await?;
        let phone = if r.phone.starts_with('+') { r.phone } else { format!("+{}", r.phone) };
        Ok(Scanned { phone, jid: r.jid, lid: r.lid })
    }

    async fn drop_connection(
        &self,
        target: Target<'_>,
        kind: DropKind,
    ) -> Result<(), ControlError> {
        let url = self.device_url(target, "fail")?;
        let _: Value = self.call(self.http.post(url).json(&fail_body(kind))).await?;
        Ok(())
    }

    async fn inbound(
        &self,
        target: Target<'_>,
        spec: InboundSpec,
    ) -> Result<InboundResult, ControlError> {
        let url = self.device_url(target, "inbound")?;
        let r: InboundResult = self.call(self.http.post(url).json(&inbound_body(spec)?)).await?;
        Ok(r)
    }

    async fn call(&self, target: Target<'_>, spec: CallSpec) -> Result<CallResult, ControlError> {
        let url = self.device_url(target, "call")?;
        let r: CallResult = self.call(self.http.post(url).json(&spec)).await?;
        Ok(r)
    }

    async fn outbox(&self, target: Target<'_>) -> Result<Vec<Value>, ControlError> {
        #[derive(Deserialize)]
        struct Items {
            items: Vec<Value>,
        }
        let url = self.device_url(target, "outbox")?;
        let r: Items = self.call(self.http.get(url)).await?;
        Ok(r.items)
    }

    async fn create_group(
        &self,
        req: CreateGroupRequest,
    ) -> Result<CreateGroupResult, ControlError> {
        #[derive(Deserialize)]
        struct Created {
            jid: String,
        }
        let body = json!({
            "subject": req.subject,
            "participants": req.participants.iter().map(|p| phone_part(p)).collect::<Vec<_>>(),
            "admins": req.admins.iter().map(|p| phone_part(p)).collect::<Vec<_>>(),
        });
        let r: Created = self.call(self.http.post(self.url("/wire/groups")).json(&body)).await?;
        let jid = Jid::parse(&r.jid)
            .map_err(|e| SimError::Unavailable(format!("the fake named a bad group JID: {e}")))?;
        Ok(CreateGroupResult { jid })
    }

    async fn set_contact(&self, req: ContactRequest) -> Result<(), ControlError> {
        let body = json!({"phone": req.phone, "on_whatsapp": req.on_whatsapp});
        let _: Value = self.call(self.http.post(self.url("/wire/contacts")).json(&body)).await?;
        Ok(())
    }

    fn sim_net(&self) -> Option<Arc<dyn SimNet>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_map_onto_the_fakes_failure_reasons() {
        assert_eq!(fail_body(DropKind::Transient), json!({"reason": "transient"}));
        assert_eq!(fail_body(DropKind::LoggedOut), json!({"reason": "logged_out"}));
        assert_eq!(fail_body(DropKind::Banned), json!({"reason": "banned"}));
        assert_eq!(fail_body(DropKind::Ended), json!({"reason": "replaced"}));
        let until = chrono::Utc::now() + chrono::Duration::seconds(3600);
        let b = fail_body(DropKind::TemporarilyBanned { until });
        assert_eq!(b["reason"], "temporarily_banned");
        let secs = b["expire_secs"].as_i64().unwrap();
        assert!((3590..=3600).contains(&secs), "{b}");
    }

    #[test]
    fn inbound_bodies_leave_out_unset_fields() {
        let spec: InboundSpec = serde_json::from_value(json!({
            "from": "+5511900000001", "text": "look", "reply_to": "3EB0AA",
            "media": {"kind": "image", "mime": "image/png", "size": 10},
        }))
        .unwrap();
        let body = inbound_body(spec).unwrap();
        assert_eq!(body["from"], "+5511900000001");
        assert_eq!(body["reply_to"], "3EB0AA");
        assert_eq!(body["media"]["kind"], "image");
        assert!(body.get("chat").is_none() && body.get("push_name").is_none(), "{body}");

        let group: InboundSpec =
            serde_json::from_value(json!({"from": "+5511900000001", "chat": "1203@g.us"})).unwrap();
        assert_eq!(inbound_body(group).unwrap()["chat"], "1203@g.us");
        assert_eq!(phone_part("5511900000001@s.whatsapp.net"), "5511900000001");
        assert_eq!(phone_part("+55 11 90000-0001"), "+55 11 90000-0001");
    }

    #[test]
    fn devices_are_addressed_by_their_phones_digits() {
        let c = WireControl::new("http://127.0.0.1:7070/").unwrap();
        let t = Target { id: "inst_1", phone: Some("+5511987650001") };
        assert_eq!(
            c.device_url(t, "fail").unwrap(),
            "http://127.0.0.1:7070/wire/devices/5511987650001/fail"
        );
        let unlinked = Target { id: "inst_1", phone: None };
        assert!(matches!(
            c.device_url(unlinked, "outbox"),
            Err(ControlError::Sim(SimError::NotConnected))
        ));
        assert!(WireControl::new("not a url").is_err());
    }
}
