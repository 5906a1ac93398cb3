//! Per-number sending limits (caps and the human-like gap between sends), their defaults
//! (near common anti-ban practice for a warmed number) and the checks on a client's values.

use serde::{Deserialize, Serialize};

/// The limits in force for one number. Every field has a default; an instance stores only the
/// values a client set, merged over the defaults when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub per_minute: u32,
    pub per_hour: u32,
    pub per_day: u32,
    /// Shortest pause between two sends of this number, in milliseconds.
    pub min_gap_ms: u64,
    /// Longest pause between two sends of this number, in milliseconds.
    pub max_gap_ms: u64,
    /// First contacts (messages to someone this number never talked with) in any 24 h, once
    /// warmed; reduced while warming or re-warming like `per_day`. Absent from limits stored
    /// before it existed: the default.
    #[serde(default = "default_new_contacts_per_day")]
    pub new_contacts_per_day: u32,
}

/// The default daily cap on first contacts of a warmed number: public anti-ban practice keeps
/// messages to strangers to a few dozen a day.
pub const DEFAULT_NEW_CONTACTS_PER_DAY: u32 = 40;

fn default_new_contacts_per_day() -> u32 {
    DEFAULT_NEW_CONTACTS_PER_DAY
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_minute: 8,
            per_hour: 200,
            per_day: 1500,
            min_gap_ms: 3_000,
            max_gap_ms: 12_000,
            new_contacts_per_day: DEFAULT_NEW_CONTACTS_PER_DAY,
        }
    }
}

/// What a client may send in `limits`: any subset of the fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsPatch {
    pub per_minute: Option<u32>,
    pub per_hour: Option<u32>,
    pub per_day: Option<u32>,
    pub min_gap_ms: Option<u64>,
    pub max_gap_ms: Option<u64>,
    pub new_contacts_per_day: Option<u32>,
}

impl LimitsPatch {
    /// `self` with the fields `newer` sets replacing its own.
    pub fn overlaid(&self, newer: &LimitsPatch) -> LimitsPatch {
        LimitsPatch {
            per_minute: newer.per_minute.or(self.per_minute),
            per_hour: newer.per_hour.or(self.per_hour),
            per_day: newer.per_day.or(self.per_day),
            min_gap_ms: newer.min_gap_ms.or(self.min_gap_ms),
            max_gap_ms: newer.max_gap_ms.or(self.max_gap_ms),
            new_contacts_per_day: newer.new_contacts_per_day.or(self.new_contacts_per_day),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid limits: {0}")]
pub struct LimitsError(pub String);

/// The longest gap a client may ask for: one hour.
pub const MAX_GAP_MS: u64 = 3_600_000;

impl Limits {
    /// `self` with the fields of `patch` laid over it, checked.
    pub fn merged(self, patch: &LimitsPatch) -> Result<Limits, LimitsError> {
        let l = Limits {
            per_minute: patch.per_minute.unwrap_or(self.per_minute),
            per_hour: patch.per_hour.unwrap_or(self.per_hour),
            per_day: patch.per_day.unwrap_or(self.per_day),
            min_gap_ms: patch.min_gap_ms.unwrap_or(self.min_gap_ms),
            max_gap_ms: patch.max_gap_ms.unwrap_or(self.max_gap_ms),
            new_contacts_per_day: patch.new_contacts_per_day.unwrap_or(self.new_contacts_per_day),
        };
        l.check()?;
        Ok(l)
    }

    pub fn check(&self) -> Result<(), LimitsError> {
        let e = |s: &str| Err(LimitsError(s.to_string()));
        if self.per_minute == 0
            || self.per_hour == 0
            || self.per_day == 0
            || self.new_contacts_per_day == 0
        {
            return e("caps must be at least 1");
        }
        if self.per_minute > self.per_hour || self.per_hour > self.per_day {
            return e("per_minute must not exceed per_hour, nor per_hour per_day");
        }
        if self.min_gap_ms > self.max_gap_ms {
            return e("min_gap_ms must not exceed max_gap_ms");
        }
        if self.max_gap_ms > MAX_GAP_MS {
            return e("max_gap_ms must be at most 3600000 (one hour)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_patches_merge() {
        Limits::default().check().unwrap();
        let l = Limits::default()
            .merged(&LimitsPatch { per_minute: Some(4), ..Default::default() })
            .unwrap();
        assert_eq!(l.per_minute, 4);
        assert_eq!(l.per_day, 1500);
        assert_eq!(l.new_contacts_per_day, 40);
        let l = l
            .merged(&LimitsPatch { new_contacts_per_day: Some(15), ..Default::default() })
            .unwrap();
        assert_eq!((l.per_minute, l.new_contacts_per_day), (4, 15));
        let old = LimitsPatch { per_day: Some(9), ..Default::default() };
        let newer = LimitsPatch { new_contacts_per_day: Some(3), ..Default::default() };
        assert_eq!(old.overlaid(&newer).new_contacts_per_day, Some(3));
        assert_eq!(old.overlaid(&newer).per_day, Some(9));
    }

    #[test]
    fn limits_stored_before_the_first_contact_cap_read_back_with_its_default() {
        let json = r#"{"per_minute":8,"per_hour":200,"per_day":1500,"min_gap_ms":3000,"max_gap_ms":12000}"#;
        let l: Limits = serde_json::from_str(json).unwrap();
        assert_eq!(l, Limits::default());
        let p: LimitsPatch = serde_json::from_str(r#"{"per_day": 100}"#).unwrap();
        assert_eq!(p.new_contacts_per_day, None);
    }

    #[test]
    fn inconsistent_limits_are_refused() {
        let d = Limits::default();
        for p in [
            LimitsPatch { per_minute: Some(0), ..Default::default() },
            LimitsPatch { per_minute: Some(500), ..Default::default() },
            LimitsPatch { min_gap_ms: Some(20_000), max_gap_ms: Some(1_000), ..Default::default() },
            LimitsPatch { max_gap_ms: Some(MAX_GAP_MS + 1), ..Default::default() },
            LimitsPatch { new_contacts_per_day: Some(0), ..Default::default() },
        ] {
            assert!(d.merged(&p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r: Result<LimitsPatch, _> = serde_json::from_str(r#"{"per_week": 3}"#);
        assert!(r.is_err());
    }
}
