//! The payload of the `campaign.*` events: the campaign's status and totals after the change
//! (the same shape for created, progress, paused, resumed, canceled and finished).

use serde::Serialize;
use utoipa::ToSchema;

use crate::model::ids::CampaignId;

/// `campaign.created`, `.progress`, `.paused`, `.resumed`, `.canceled`, `.finished`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CampaignSnapshot {
    /// The campaign's id (`cmp_…`).
    #[schema(value_type = String)]
    pub campaign_id: CampaignId,
    /// The campaign's name.
    pub name: String,
    /// As the campaign reports it (`scheduled` while running outside its window).
    pub status: &'static str,
    /// Where every recipient is now; the buckets add up to `recipients`.
    pub totals: Totals,
}

/// Where a campaign's recipients are. `recipients` = `pending` + `queued` + `sending` +
/// `sent` + `delivered` + `read` + `failed` + `expired` + `skipped` + `canceled`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Totals {
    /// How many recipients the campaign has.
    pub recipients: u64,
    /// Not handed to the send queue yet.
    pub pending: u64,
    /// In the send queue, waiting for a number.
    pub queued: u64,
    /// A number is typing or sending it.
    pub sending: u64,
    /// Went out; no delivery receipt yet.
    pub sent: u64,
    /// Reached the phone; not read yet.
    pub delivered: u64,
    /// Read by the recipient.
    pub read: u64,
    /// The send failed (including queued messages failed by a cancel).
    pub failed: u64,
    /// Not sent within the recipient's `ttl_seconds`.
    pub expired: u64,
    /// Left out before sending: found not to be on WhatsApp before a first contact
    /// (their messages show `failed` with `not_on_whatsapp`).
    pub skipped: u64,
    /// Never queued because the campaign was canceled first.
    pub canceled: u64,
}
