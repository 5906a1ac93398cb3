//! The table from the protocol library's events to ours: what each connection event of
//! `whatsapp-rust` means for the instance's status, reason and detail (documented for
//! operators in `docs/whatsapp.md`). Pure: no I/O, so every row is unit-tested.
//!
//! | library event                | our event                                   | status / reason            |
//! |------------------------------|---------------------------------------------|----------------------------|
//! | `PairingQrCode`              | `Qr` (expires after the code's timeout)     | `qr_pending`               |
//! | `PairingQrCodesExhausted`    | `QrTimeout`                                 | `disconnected/qr_timeout`  |
//! | `PairSuccess`                | `Paired` (phone, JID, LID)                  | `connecting`               |
//! | `PairError`                  | `Disconnected{Transient}`                   | `connecting/transient`     |
//! | `Connected`                  | `Connected`                                 | `connected`                |
//! | `Disconnected`               | `Disconnected{Transient}`; the library reconnects with backoff | `connecting/transient` |
//! | `LoggedOut`                  | `Disconnected{LoggedOut}`; session wiped    | `disconnected/logged_out`  |
//! | `TemporaryBan`               | `Disconnected{TemporarilyBanned{until}}`, code and expiry in detail; reconnected after expiry | `disconnected/banned` |
//! | `StreamReplaced`             | `Disconnected{Ended}`: another session took the number | `disconnected/stopped` |
//! | `ClientOutdated`             | `Disconnected{Ended}`: upgrade the gateway  | `disconnected/stopped`     |
//! | `ConnectFailure` (5xx)       | `Disconnected{Transient}`; the library retries | `connecting/transient`  |
//! | `ConnectFailure` (other)     | `Disconnected{Ended}` with code and message | `disconnected/stopped`     |
//! | `Messages` committed by the durability hook | ignored: already recorded through the `InboundSink` (`super::durable`) | — |
//! | `Messages` (others: recovered placeholders, newsletters) | `Message` per inbound message (own echoes skipped; content mapped by [`super::inbound`]) | — |
//! | `Receipt` delivered / read, played | `Receipt{Delivered / Read}`           | —                          |
//! | `ServerAck`                  | resolves the waiting send (a nack fails it with its code, e.g. 463) | — |
//! | `IncomingCall` (an offer ringing now) | `Call` (caller, video, group; [`super::calls`]) | — |
//! | anything else                | ignored                                     | —                          |
//!
//! A dial that fails never reaches the library's event bus (its run loop retries quietly);
//! the driver's own transport wrapper reports those as `Disconnected{Transient}` and
//! `Reconnecting`.

use bzapper_core::{Jid, Phone};
use chrono::{DateTime, Utc};
use whatsapp_rust::types::events::{ConnectFailureReason, Event};
use whatsapp_rust::wacore::types::presence::ReceiptType;

use super::calls::incoming_call;
use super::inbound::inbound;
use crate::{DriverEvent, DropKind, ReceiptStatus};

/// What one library event becomes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Mapped {
    /// Report these events, in order.
    Emit(Vec<DriverEvent>),
    /// The server acknowledged (`error: None`) or refused a stanza we sent.
    Ack { id: String, error: Option<String> },
    /// Nothing an operator or a client needs.
    Ignore,
}

/// Maps one library event; `now` dates QR expiries and ban ends.
pub(crate) fn map_event(event: &Event, now: DateTime<Utc>) -> Mapped {
    let drop = |kind: DropKind, detail: String| {
        Mapped::Emit(vec![DriverEvent::Disconnected { kind, detail }])
    };
    match event {
        Event::PairingQrCode(qr) => Mapped::Emit(vec![DriverEvent::Qr {
            code: qr.code.clone(),
            expires_at: now + chrono::Duration::from_std(qr.timeout).unwrap_or_default(),
        }]),
        Event::PairingQrCodesExhausted(_) => Mapped::Emit(vec![DriverEvent::QrTimeout]),
        Event::PairSuccess(p) => {
            let Some(jid) = convert_jid(&p.id.to_string()) else {
                return drop(DropKind::Ended, format!("paired with an unreadable JID {}", p.id));
            };
            let jid = jid.to_non_device();
            let Ok(phone) = Phone::parse(jid.user()) else {
                return drop(DropKind::Ended, format!("paired with an unreadable number {jid}"));
            };
            let lid = convert_jid(&p.lid.to_string()).map(|l| l.to_non_device());
            Mapped::Emit(vec![DriverEvent::Paired { phone, jid, lid }])
        }
        Event::PairError(e) => drop(
            DropKind::Transient,
            format!("pairing failed ({}); a new QR code follows", e.error),
        ),
        Event::Connected(_) => Mapped::Emit(vec![DriverEvent::Connected]),
        Event::Disconnected(d) => drop(
            DropKind::Transient,
            format!("connection lost ({}); reconnecting with backoff", d.reason),
        ),
        Event::LoggedOut(l) => {
            let mut detail = format!(
                "WhatsApp unlinked this device ({}, code {}); scan a new QR code",
                failure_name(&l.reason),
                l.reason.code()
            );
            if let Some(m) = &l.logout_message {
                for part in [&m.header, &m.subtext].into_iter().flatten() {
                    detail.push_str(": ");
                    detail.push_str(part);
                }
            }
            drop(DropKind::LoggedOut, detail)
        }
        Event::TemporaryBan(b) => {
            let until = now + b.expire;
            let mut detail = format!(
                "temporarily banned by WhatsApp (code {}: {}) until {}",
                b.code.code(),
                b.code,
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            if let Some(m) = &b.message {
                detail.push_str(&format!(" ({m})"));
            }
            if b.expire > chrono::Duration::zero() {
                drop(DropKind::TemporarilyBanned { until }, detail)
            } else {
                drop(DropKind::Banned, detail)
            }
        }
        Event::StreamReplaced(_) => drop(
            DropKind::Ended,
            "another session took over this number (the same linked device was opened \
             elsewhere); close it, then connect again"
                .into(),
        ),
        Event::ClientOutdated(_) => drop(
            DropKind::Ended,
            "WhatsApp refused this client version as outdated (code 405); upgrade bZapper or \
             set BZAPPER_WA_VERSION, then connect again"
                .into(),
        ),
        Event::ConnectFailure(f) => {
            let mut detail = format!(
                "WhatsApp refused the connection ({}, code {})",
                failure_name(&f.reason),
                f.reason.code()
            );
            if let Some(m) = &f.message {
                detail.push_str(&format!(": {m}"));
            }
            if f.reason.should_reconnect() {
                drop(DropKind::Transient, format!("{detail}; retrying"))
            } else {
                drop(DropKind::Ended, format!("{detail}; connect again once resolved"))
            }
        }
        // What the durability hook committed went to the sink already (super::durable).
        Event::Messages(batch) if batch.hook_committed => Mapped::Ignore,
        Event::Messages(batch) => Mapped::Emit(
            batch
                .messages
                .iter()
                .filter_map(|m| inbound(&m.message, &m.info).map(DriverEvent::Message))
                .collect(),
        ),
        Event::Receipt(r) => {
            let status = match r.r#type {
                ReceiptType::Delivered => ReceiptStatus::Delivered,
                ReceiptType::Read | ReceiptType::Played => ReceiptStatus::Read,
                _ => return Mapped::Ignore,
            };
            if r.source.is_from_me {
                return Mapped::Ignore; // our own other devices reading a chat
            }
            Mapped::Emit(
                r.message_ids
                    .iter()
                    .map(|id| DriverEvent::Receipt { message_id: id.to_string(), status })
                    .collect(),
            )
        }
        Event::IncomingCall(c) => match incoming_call(c) {
            Some(call) => Mapped::Emit(vec![DriverEvent::Call(call)]),
            None => Mapped::Ignore,
        },
        Event::ServerAck(a) if a.class.as_deref().is_none_or(|c| c == "message") => {
            Mapped::Ack { id: a.id.clone(), error: a.error.clone() }
        }
        _ => Mapped::Ignore,
    }
}

/// Our JID from the library's text form; `None` for servers we do not model (broadcast,
/// newsletters, bots).
pub(crate) fn convert_jid(text: &str) -> Option<Jid> {
    Jid::parse(text).ok()
}

fn failure_name(reason: &ConnectFailureReason) -> String {
    let name = format!("{reason:?}");
    // `Unknown(418)` reads better as `unknown`; the code is printed beside it.
    name.split('(').next().unwrap_or(&name).to_string()
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
