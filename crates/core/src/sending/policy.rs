//! A pool's sending policy (rotation strategy, sticky sender, country match, per-contact
//! pace), why a number was chosen for a message, and why a number is resting.

use serde::{Deserialize, Serialize};

use super::rotation::Strategy;

/// The default of [`PoolPolicy::per_contact_per_hour`]: off. On by default it would hold the
/// fifth message of any sequence to one person for an hour — a change to what clients of the
/// gateway already rely on (a receipt, then its media, then a follow-up) — so a pool turns it
/// on; [`RECOMMENDED_PER_CONTACT_PER_HOUR`] is the value docs/sending.md recommends.
pub const DEFAULT_PER_CONTACT_PER_HOUR: u32 = 0;

/// Public anti-ban practice keeps unanswered messages to one person to a handful an hour.
pub const RECOMMENDED_PER_CONTACT_PER_HOUR: u32 = 4;

/// How a pool hands its messages to its numbers. Set with `Dispatcher::set_pool_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolPolicy {
    /// How rotation picks among the ready numbers.
    pub strategy: Strategy,
    /// Sticky sender: a message to a contact who has a conversation with a number of the
    /// pool goes out from that number while it is online and in rotation.
    pub sticky: bool,
    /// Among the numbers rotation may pick, prefer those with the recipient's calling code.
    pub prefer_country: bool,
    /// At most this many sends to one contact in any sliding hour across the pool, counting
    /// only sends made since the contact last wrote; 0 turns the limit off.
    pub per_contact_per_hour: u32,
}

impl Default for PoolPolicy {
    fn default() -> Self {
        PoolPolicy {
            strategy: Strategy::default(),
            sticky: true,
            prefer_country: false,
            per_contact_per_hour: DEFAULT_PER_CONTACT_PER_HOUR,
        }
    }
}

/// Why a message went to its number (the message record's `choice`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    /// The contact's conversation is with this number.
    Sticky,
    /// The pool's strategy picked it.
    Rotation,
    /// The client named the number (or the message was held for it after a crash).
    Forced,
    /// The country preference narrowed the choice to numbers of the recipient's country.
    Geo,
}

impl Choice {
    pub const ALL: [Choice; 4] = [Choice::Sticky, Choice::Rotation, Choice::Forced, Choice::Geo];

    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Sticky => "sticky",
            Choice::Rotation => "rotation",
            Choice::Forced => "forced",
            Choice::Geo => "geo",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Why a number takes nothing right now (the dashboard's "resting" column). The first that
/// applies, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rest {
    /// Not connected (or banned, logged out, suspended).
    Offline,
    /// Outside its active hours.
    QuietHours,
    /// Out of rotation for its health (it still sends what is forced to it).
    Health,
    /// In its pause after a send.
    Gap,
    /// Its day cap, lowered by warming, is full (at the full cap it would send).
    Warming,
    /// Its day cap, lowered by a re-warm after idling, is full.
    Rewarming,
    /// A per-minute, per-hour or per-day cap is full.
    Cap,
    /// Its first-contact cap is full: it still answers known contacts.
    FirstContactCap,
}

impl Rest {
    pub const ALL: [Rest; 8] = [
        Rest::Offline,
        Rest::QuietHours,
        Rest::Health,
        Rest::Gap,
        Rest::Warming,
        Rest::Rewarming,
        Rest::Cap,
        Rest::FirstContactCap,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rest::Offline => "offline",
            Rest::QuietHours => "quiet_hours",
            Rest::Health => "health",
            Rest::Gap => "gap",
            Rest::Warming => "warming",
            Rest::Rewarming => "rewarming",
            Rest::Cap => "cap",
            Rest::FirstContactCap => "first_contact_cap",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_serialise_as_their_strings() {
        for c in Choice::ALL {
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", c.as_str()));
            assert_eq!(Choice::parse(c.as_str()), Some(c));
        }
        for r in Rest::ALL {
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{}\"", r.as_str()));
        }
        assert_eq!(Choice::parse("random"), None);
    }

    #[test]
    fn the_default_policy() {
        let p = PoolPolicy::default();
        assert_eq!(p.strategy, Strategy::RoundRobin);
        assert!(p.sticky && !p.prefer_country);
        assert_eq!(p.per_contact_per_hour, 0, "off unless a pool turns it on");
    }
}
