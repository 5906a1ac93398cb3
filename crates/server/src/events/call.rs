//! The payload of `call.received`: a contact called one of the tenant's numbers, and what the
//! number did about it (rejected it, and the reply it queued to the caller).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::model::ids::MessageId;

/// `call.received`: a call rang on the number. Recorded whether or not it was rejected.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CallReceived {
    /// WhatsApp's id of the call.
    pub call_id: String,
    /// Who called, normalised like `message.received`'s `sender`.
    pub from: CallFrom,
    /// A video call (else voice).
    pub video: bool,
    /// A group call.
    pub group: bool,
    /// The group a group call is placed in, when WhatsApp names it; `null` otherwise.
    pub group_jid: Option<String>,
    /// The number rejected the call (its `reject_calls` setting was on).
    pub rejected: bool,
    /// The id of the reply queued to the caller after the rejection (`GET
    /// /v1/messages/{id}`); `null` when none was sent.
    #[schema(value_type = Option<String>)]
    pub reply_message_id: Option<MessageId>,
    /// When the call rang (as the network dated the offer).
    pub at: DateTime<Utc>,
}

/// The caller: `jid` is the phone-number JID whenever the mapping is known (else the LID),
/// `lid` carries the LID when one is known.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CallFrom {
    /// The caller's phone JID when its phone is known, else its LID.
    pub jid: String,
    /// E.164, `+55…`; `null` when only the LID is known.
    pub phone: Option<String>,
    /// The caller's LID (`<n>@lid`), when known.
    pub lid: Option<String>,
}
