//! The simulated network's reaction model: how WhatsApp reacts to a number that behaves like a
//! spammer, after publicly reported thresholds (docs/sending.md, "The simulated network's
//! reaction model"). Off unless a network is given a [`Reactions`] with `enabled`.
//!
//! - **First contacts on a young number**: an account younger than `young_days` that starts
//!   more than `per_hour` chats with people it never exchanged a message with in an hour gets
//!   the next first contacts refused with error 463 (reach-out timelock).
//! - **Messages to phones without WhatsApp**: `temporary_ban_after` of them within `window`
//!   ban the account for `ban_seconds`; `ban_after` of them over its life ban it for good.
//! - **Identical texts**: the same text to `recipients` different people within `window`
//!   bans the account for `ban_seconds`.
//!
//! Pure bookkeeping: the network asks [`Ledger::first_contact_refusal`] before taking a
//! message and tells [`Ledger::sent`] after, with the time of its clock; what a verdict does
//! (refuse, ban, disconnect) is the network's.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use bzapper_core::{Jid, Phone};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// The reaction model's settings (`GET`/`PUT /v1/sim/reactions`, `--sim-reactions`). A rule
/// set to `null` is off; a missing one takes its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Reactions {
    /// The model runs at all (`false` by default: the network takes whatever it is sent).
    pub enabled: bool,
    pub first_contacts: Option<FirstContactRule>,
    pub not_on_whatsapp: Option<AbsentRule>,
    pub identical_texts: Option<IdenticalRule>,
}

impl Default for Reactions {
    fn default() -> Self {
        Reactions {
            enabled: false,
            first_contacts: Some(FirstContactRule::default()),
            not_on_whatsapp: Some(AbsentRule::default()),
            identical_texts: Some(IdenticalRule::default()),
        }
    }
}

impl Reactions {
    /// Every rule at its default, switched on.
    pub fn on() -> Self {
        Reactions { enabled: true, ..Reactions::default() }
    }

    /// The value of `--sim-reactions` (`bzapper serve --sim`) and `bzapper simnet
    /// --reactions`: `default` (every rule at its default, on), `off`, a JSON object of the
    /// settings (on unless it says `"enabled": false`), or the path of a file holding one.
    pub fn from_flag(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let json = match value {
            "default" | "on" => return Ok(Reactions::on()),
            "off" => return Ok(Reactions::default()),
            v if v.starts_with('{') => v.to_string(),
            path => std::fs::read_to_string(path)
                .map_err(|e| format!("`{path}` is neither default, off, JSON nor a file: {e}"))?,
        };
        let mut fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&json).map_err(|e| format!("reaction settings: {e}"))?;
        fields.entry("enabled").or_insert(serde_json::Value::Bool(true));
        let reactions: Reactions = serde_json::from_value(serde_json::Value::Object(fields))
            .map_err(|e| format!("reaction settings: {e}"))?;
        reactions.validate()?;
        Ok(reactions)
    }

    /// Checks the numbers make sense (windows and counts of at least 1).
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: u64| {
            if v == 0 {
                Err(format!("{name} must be at least 1"))
            } else {
                Ok(())
            }
        };
        if let Some(r) = &self.first_contacts {
            positive("first_contacts.per_hour", r.per_hour.into())?;
        }
        if let Some(r) = &self.not_on_whatsapp {
            positive("not_on_whatsapp.window_seconds", r.window_seconds)?;
            positive("not_on_whatsapp.temporary_ban_after", r.temporary_ban_after.into())?;
            positive("not_on_whatsapp.ban_after", r.ban_after.into())?;
            positive("not_on_whatsapp.ban_seconds", r.ban_seconds)?;
        }
        if let Some(r) = &self.identical_texts {
            positive("identical_texts.recipients", r.recipients.into())?;
            positive("identical_texts.window_seconds", r.window_seconds)?;
            positive("identical_texts.ban_seconds", r.ban_seconds)?;
        }
        Ok(())
    }
}

/// Too many first contacts in an hour on a young number → 463 for the rest of that hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FirstContactRule {
    /// An account younger than this (days since it was created on the network) is young.
    pub young_days: u32,
    /// First contacts a young account may start within any hour.
    pub per_hour: u32,
}

impl Default for FirstContactRule {
    fn default() -> Self {
        FirstContactRule { young_days: 7, per_hour: 10 }
    }
}

/// Messages to phones without WhatsApp → a temporary ban, then a ban for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AbsentRule {
    pub window_seconds: u64,
    /// This many within `window_seconds` ban the account temporarily.
    pub temporary_ban_after: u32,
    /// This many over the account's life ban it for good.
    pub ban_after: u32,
    /// How long a temporary ban lasts.
    pub ban_seconds: u64,
}

impl Default for AbsentRule {
    fn default() -> Self {
        AbsentRule {
            window_seconds: 24 * 3600,
            temporary_ban_after: 20,
            ban_after: 60,
            ban_seconds: 24 * 3600,
        }
    }
}

/// The same text to many people in a short time → a temporary ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdenticalRule {
    /// Distinct recipients of one text within `window_seconds` that ban the account.
    pub recipients: u32,
    pub window_seconds: u64,
    pub ban_seconds: u64,
}

impl Default for IdenticalRule {
    fn default() -> Self {
        IdenticalRule { recipients: 50, window_seconds: 3600, ban_seconds: 24 * 3600 }
    }
}

/// What the network does to the account after a message it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Penalty {
    TemporaryBan { until: DateTime<Utc>, rule: &'static str },
    Ban { rule: &'static str },
}

/// What the model remembers of every account, by phone.
#[derive(Debug, Default)]
pub struct Ledger {
    accounts: HashMap<Phone, Account>,
}

#[derive(Debug)]
struct Account {
    created_at: DateTime<Utc>,
    /// Everyone this account exchanged a message with (either way), non-device JIDs.
    exchanged: HashSet<Jid>,
    first_contacts: VecDeque<DateTime<Utc>>,
    absent: VecDeque<DateTime<Utc>>,
    absent_total: u64,
    /// By hash of the text: when it went to whom.
    texts: HashMap<u64, VecDeque<(DateTime<Utc>, Jid)>>,
}

impl Account {
    fn new(created_at: DateTime<Utc>) -> Self {
        Account {
            created_at,
            exchanged: HashSet::new(),
            first_contacts: VecDeque::new(),
            absent: VecDeque::new(),
            absent_total: 0,
            texts: HashMap::new(),
        }
    }
}

fn seconds(s: u64) -> TimeDelta {
    TimeDelta::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000).min(i64::MAX / 1000))
}

fn prune(times: &mut VecDeque<DateTime<Utc>>, since: DateTime<Utc>) {
    while times.front().is_some_and(|t| *t <= since) {
        times.pop_front();
    }
}

fn text_key(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl Ledger {
    fn account(&mut self, phone: &Phone, now: DateTime<Utc>) -> &mut Account {
        self.accounts.entry(phone.clone()).or_insert_with(|| Account::new(now))
    }

    /// The account is seen on the network (a pairing, or a login on a fresh network): it
    /// exists from now on unless it already did.
    pub fn seen(&mut self, phone: &Phone, now: DateTime<Utc>) {
        self.account(phone, now);
    }

    /// Makes the account `days` old (for scenarios with numbers of mixed age).
    pub fn set_age(&mut self, phone: &Phone, days: u32, now: DateTime<Utc>) {
        self.account(phone, now).created_at = now - TimeDelta::days(i64::from(days));
    }

    /// How old the account is; `None` when the network never saw it.
    pub fn age(&self, phone: &Phone, now: DateTime<Utc>) -> Option<TimeDelta> {
        self.accounts.get(phone).map(|a| now - a.created_at)
    }

    /// A contact wrote to the account: they have a conversation.
    pub fn received(&mut self, phone: &Phone, from: &Jid, now: DateTime<Utc>) {
        self.account(phone, now).exchanged.insert(from.to_non_device());
    }

    /// Whether a message from `phone` to `to` would be a first contact.
    pub fn is_first_contact(&self, phone: &Phone, to: &Jid) -> bool {
        !to.is_group()
            && !self.accounts.get(phone).is_some_and(|a| a.exchanged.contains(&to.to_non_device()))
    }

    /// Why a message from `phone` to `to` is refused by the first-contact rule, if it is.
    pub fn first_contact_refusal(
        &mut self,
        rules: &Reactions,
        phone: &Phone,
        to: &Jid,
        now: DateTime<Utc>,
    ) -> Option<String> {
        let rule = rules.first_contacts.filter(|_| rules.enabled)?;
        if !self.is_first_contact(phone, to) {
            return None;
        }
        let account = self.account(phone, now);
        if now - account.created_at >= TimeDelta::days(i64::from(rule.young_days)) {
            return None;
        }
        prune(&mut account.first_contacts, now - TimeDelta::hours(1));
        (account.first_contacts.len() >= rule.per_hour as usize).then(|| {
            format!(
                "WhatsApp error 463: this number started {} chats with new contacts within the \
                 hour and is younger than {} days (reach-out timelock)",
                account.first_contacts.len(),
                rule.young_days
            )
        })
    }

    /// The network took a message from `phone` to `to` (`text`: its text, when it is one;
    /// `absent`: the recipient has no WhatsApp). Returns what the account suffers for it.
    pub fn sent(
        &mut self,
        rules: &Reactions,
        phone: &Phone,
        to: &Jid,
        text: Option<&str>,
        absent: bool,
        now: DateTime<Utc>,
    ) -> Option<Penalty> {
        let first = self.is_first_contact(phone, to);
        let account = self.account(phone, now);
        if to.is_group() {
            return None;
        }
        let to = to.to_non_device();
        account.exchanged.insert(to.clone());
        if !rules.enabled {
            return None;
        }
        if first {
            account.first_contacts.push_back(now);
        }
        let mut penalty = None;
        if let (Some(rule), true) = (rules.not_on_whatsapp, absent) {
            account.absent_total += 1;
            account.absent.push_back(now);
            prune(&mut account.absent, now - seconds(rule.window_seconds));
            if account.absent_total >= u64::from(rule.ban_after) {
                return Some(Penalty::Ban { rule: "not_on_whatsapp" });
            }
            if account.absent.len() >= rule.temporary_ban_after as usize {
                account.absent.clear();
                penalty = Some(Penalty::TemporaryBan {
                    until: now + seconds(rule.ban_seconds),
                    rule: "not_on_whatsapp",
                });
            }
        }
        if let (Some(rule), Some(text)) = (rules.identical_texts, text) {
            let sends = account.texts.entry(text_key(text)).or_default();
            sends.push_back((now, to));
            let since = now - seconds(rule.window_seconds);
            while sends.front().is_some_and(|(t, _)| *t <= since) {
                sends.pop_front();
            }
            let distinct: HashSet<&Jid> = sends.iter().map(|(_, j)| j).collect();
            if distinct.len() >= rule.recipients as usize {
                sends.clear();
                let until = now + seconds(rule.ban_seconds);
                penalty = Some(match penalty {
                    Some(Penalty::TemporaryBan { until: u, rule }) if u >= until => {
                        Penalty::TemporaryBan { until: u, rule }
                    }
                    _ => Penalty::TemporaryBan { until, rule: "identical_texts" },
                });
            }
        }
        // Old texts are forgotten now and then, so that a long run's memory stays bounded.
        if account.texts.len() > 4096 {
            let since = now - TimeDelta::days(1);
            account.texts.retain(|_, s| s.back().is_some_and(|(t, _)| *t > since));
        }
        penalty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z").unwrap().to_utc()
    }

    fn me() -> Phone {
        Phone::parse("+5511900000001").unwrap()
    }

    fn contact(i: u32) -> Jid {
        Phone::parse(&format!("+55119{i:08}")).unwrap().jid()
    }

    fn only(f: impl FnOnce(&mut Reactions)) -> Reactions {
        let mut r = Reactions {
            first_contacts: None,
            not_on_whatsapp: None,
            identical_texts: None,
            ..Reactions::on()
        };
        f(&mut r);
        r
    }

    #[test]
    fn off_by_default_nothing_is_refused_or_banned() {
        let rules = Reactions::default();
        assert!(!rules.enabled);
        let mut l = Ledger::default();
        l.seen(&me(), t0());
        for i in 0..500 {
            assert_eq!(l.first_contact_refusal(&rules, &me(), &contact(i), t0()), None);
            assert_eq!(l.sent(&rules, &me(), &contact(i), Some("same"), true, t0()), None);
        }
    }

    #[test]
    fn a_young_number_gets_463_after_its_hourly_first_contacts() {
        let rules =
            only(|r| r.first_contacts = Some(FirstContactRule { young_days: 7, per_hour: 3 }));
        let mut l = Ledger::default();
        l.seen(&me(), t0());
        for i in 0..3 {
            assert_eq!(l.first_contact_refusal(&rules, &me(), &contact(i), t0()), None);
            l.sent(&rules, &me(), &contact(i), Some(&format!("hi {i}")), false, t0());
        }
        let refusal = l.first_contact_refusal(&rules, &me(), &contact(9), t0());
        assert!(refusal.is_some_and(|m| m.contains("463")));
        // Those already written to, and those who wrote, are no first contacts.
        assert_eq!(l.first_contact_refusal(&rules, &me(), &contact(1), t0()), None);
        l.received(&me(), &contact(20), t0());
        assert_eq!(l.first_contact_refusal(&rules, &me(), &contact(20), t0()), None);
        // An hour after the first ones, new contacts are allowed again.
        let later = t0() + TimeDelta::minutes(60);
        assert_eq!(l.first_contact_refusal(&rules, &me(), &contact(9), later), None);
        // An old number is never held back.
        l.set_age(&me(), 7, t0());
        assert_eq!(l.first_contact_refusal(&rules, &me(), &contact(10), t0()), None);
        assert_eq!(l.age(&me(), t0()), Some(TimeDelta::days(7)));
    }

    #[test]
    fn messages_to_phones_without_whatsapp_ban_temporarily_then_for_good() {
        let rule = AbsentRule {
            window_seconds: 3600,
            temporary_ban_after: 3,
            ban_after: 5,
            ban_seconds: 600,
        };
        let rules = only(|r| r.not_on_whatsapp = Some(rule));
        let mut l = Ledger::default();
        let t = t0();
        assert_eq!(l.sent(&rules, &me(), &contact(1), None, true, t), None);
        // Messages to phones with WhatsApp do not count.
        assert_eq!(l.sent(&rules, &me(), &contact(2), None, false, t), None);
        assert_eq!(l.sent(&rules, &me(), &contact(3), None, true, t), None);
        assert_eq!(
            l.sent(&rules, &me(), &contact(4), None, true, t),
            Some(Penalty::TemporaryBan {
                until: t + TimeDelta::seconds(600),
                rule: "not_on_whatsapp"
            })
        );
        // Spread beyond the window, they no longer add up to a temporary ban...
        let t = t + TimeDelta::hours(2);
        assert_eq!(l.sent(&rules, &me(), &contact(5), None, true, t), None);
        // ...but the account's life total bans it for good.
        assert_eq!(
            l.sent(&rules, &me(), &contact(6), None, true, t + TimeDelta::hours(2)),
            Some(Penalty::Ban { rule: "not_on_whatsapp" })
        );
    }

    #[test]
    fn the_same_text_to_many_people_bans_temporarily() {
        let rule = IdenticalRule { recipients: 3, window_seconds: 60, ban_seconds: 900 };
        let rules = only(|r| r.identical_texts = Some(rule));
        let mut l = Ledger::default();
        let t = t0();
        assert_eq!(l.sent(&rules, &me(), &contact(1), Some("promo"), false, t), None);
        // The same person twice is one recipient; another text is another count.
        assert_eq!(l.sent(&rules, &me(), &contact(1), Some("promo"), false, t), None);
        assert_eq!(l.sent(&rules, &me(), &contact(2), Some("other"), false, t), None);
        assert_eq!(l.sent(&rules, &me(), &contact(2), Some("promo"), false, t), None);
        // Outside the window the first send no longer counts.
        let late = t + TimeDelta::seconds(61);
        assert_eq!(l.sent(&rules, &me(), &contact(3), Some("promo"), false, late), None);
        assert_eq!(l.sent(&rules, &me(), &contact(4), Some("promo"), false, late), None);
        assert_eq!(
            l.sent(&rules, &me(), &contact(5), Some("promo"), false, late),
            Some(Penalty::TemporaryBan {
                until: late + TimeDelta::seconds(900),
                rule: "identical_texts"
            })
        );
    }

    #[test]
    fn settings_read_from_json_with_defaults_and_nulls() {
        let r: Reactions = serde_json::from_str(
            r#"{"enabled":true,"identical_texts":null,
            "first_contacts":{"per_hour":5}}"#,
        )
        .unwrap();
        assert!(r.enabled && r.identical_texts.is_none());
        assert_eq!(r.first_contacts, Some(FirstContactRule { young_days: 7, per_hour: 5 }));
        assert_eq!(r.not_on_whatsapp, Some(AbsentRule::default()));
        assert!(serde_json::from_str::<Reactions>(r#"{"bogus":1}"#).is_err());
        let zero: Reactions = serde_json::from_str(r#"{"first_contacts":{"per_hour":0}}"#).unwrap();
        assert!(zero.validate().unwrap_err().contains("per_hour"));
        assert_eq!(Reactions::on().validate(), Ok(()));
        // The command-line flag: on unless told otherwise.
        assert_eq!(Reactions::from_flag("default"), Ok(Reactions::on()));
        assert_eq!(Reactions::from_flag("off"), Ok(Reactions::default()));
        let flag = Reactions::from_flag(r#"{"identical_texts": null}"#).unwrap();
        assert!(flag.enabled && flag.identical_texts.is_none() && flag.first_contacts.is_some());
        assert!(!Reactions::from_flag(r#"{"enabled": false}"#).unwrap().enabled);
        assert!(Reactions::from_flag("/no/such/file.json").unwrap_err().contains("neither"));
        assert!(Reactions::from_flag(r#"{"first_contacts":{"per_hour":0}}"#).is_err());
    }
}
