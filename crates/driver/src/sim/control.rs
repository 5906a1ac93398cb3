//! The bodies and answers of the simulated network's control ops (docs/api.md, "Simulator
//! control"): what tests and demos use to play the phone and the contacts of a number. The
//! same JSON shapes travel to a standalone simnet (`/v1/sim/...` of
//! [`crate::sim::service`]) and through the gateway's own `/v1/sim/...` routes.

use bzapper_core::{Jid, Location, MediaKind};
use serde::{Deserialize, Serialize};

use crate::DropKind;

/// `POST /v1/sim/instances/{id}/restrict`: WhatsApp's reach-out restriction on the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestrictRequest {
    pub reach_out: bool,
}

/// `POST /v1/sim/instances/{id}/scan`: a phone scans the instance's current QR code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// The scanning phone, in any common notation (`+55 11 99999-9999`).
    pub phone: String,
}

/// What a scan linked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanResult {
    /// E.164 with a `+`.
    pub phone: String,
    pub jid: Jid,
    pub lid: Jid,
}

/// `POST /v1/sim/instances/{id}/drop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropRequest {
    pub reason: DropKind,
}

/// `POST /v1/sim/instances/{id}/inbound`: a contact writes to the instance.
///
/// A plain text needs `text`. With `media`, `location`, `contact` or `reaction` (at most one)
/// `text` may be left out: it is the caption of a media file and must stay empty otherwise.
/// New fields are left out of the JSON when unset, so a text reads as it always did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundSpec {
    /// The sender: a phone number in any notation, a phone JID or a `@lid` JID.
    pub from: String,
    /// Address the sender (and the mentions) by LID, the way WhatsApp does for hidden
    /// numbers; the phone JID then travels as `sender_alt`.
    #[serde(default)]
    pub as_lid: bool,
    /// A group (`<id>@g.us`) to post in instead of the direct chat.
    #[serde(default)]
    pub chat: Option<String>,
    /// The text, or the caption of `media`.
    #[serde(default)]
    pub text: String,
    /// Phone numbers or JIDs.
    #[serde(default)]
    pub mentions: Vec<String>,
    /// Defaults to `Contact <last 4 digits>`.
    #[serde(default)]
    pub push_name: Option<String>,
    /// A media file the contact sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<InboundMediaSpec>,
    /// A point on the map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// A contact card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<InboundContactSpec>,
    /// An emoji on one of the chat's messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction: Option<InboundReactionSpec>,
    /// The WhatsApp id of a message this one quotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// The media file of an inbound: its bytes in `data_base64`, or only a `size`, for which the
/// network makes up deterministic bytes (so a test can send 20 MB without a 27 MB body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundMediaSpec {
    pub kind: MediaKind,
    pub mime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// An audio sent as a voice note.
    #[serde(default)]
    pub voice: bool,
    /// The file, base64 (standard alphabet, padding optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
    /// The size of a made-up file, instead of `data_base64` (at most 100 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The contact card of an inbound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundContactSpec {
    pub vcard: String,
    /// Defaults to the vCard's `FN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// The reaction of an inbound: `emoji` on the message with WhatsApp id `message_id` (an
/// empty emoji removes the contact's reaction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundReactionSpec {
    pub message_id: String,
    pub emoji: String,
}

/// The answer to an inbound: the message id, and the SHA-256 (lower-case hex) of the media
/// file when there is one, to compare with what the gateway later serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundResult {
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// `POST /v1/sim/groups`: a group exists on the network, with these phones in it. An
/// instance takes part through the phone it is linked with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    /// Defaults to `Group <last 4 digits of the id>`.
    #[serde(default)]
    pub subject: Option<String>,
    /// Phone numbers in any notation, or phone JIDs.
    pub participants: Vec<String>,
    /// Some of `participants`.
    #[serde(default)]
    pub admins: Vec<String>,
}

/// The group a [`CreateGroupRequest`] made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGroupResult {
    /// `<id>@g.us`.
    pub jid: Jid,
}

/// `POST /v1/sim/contacts`: whether a phone has a WhatsApp account. Every phone has one
/// until marked otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    pub phone: String,
    pub on_whatsapp: bool,
}

/// `POST /v1/sim/instances/{id}/age`: how many days old the account of the instance's
/// linked phone is on the network (the reaction model holds young numbers back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeRequest {
    pub days: u32,
}

/// `POST /v1/sim/instances/{id}/call`: a contact calls the instance (a call offer that rings
/// until the number rejects it; the simulated network has no audio).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    /// The caller: a phone number in any notation, a phone JID or a `@lid` JID.
    pub from: String,
    /// A video call (default: voice).
    #[serde(default)]
    pub video: bool,
    /// Address the caller by LID, the way WhatsApp does for hidden numbers; the phone JID
    /// then travels as the alternate address.
    #[serde(default)]
    pub as_lid: bool,
    /// A group call placed in this group (`<id>@g.us`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// The answer to a call: the id the call rings with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallResult {
    pub call_id: String,
}
