//! The dispatcher's rules of issue 19 (sticky sender, country match, first contacts, re-warming,
//! active hours, validity and scheduling, per-contact pace, why a number rests), each alone and
//! together, on a fake clock.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::sending::pacing::TYPING_MIN_MS;
use crate::sending::policy::RECOMMENDED_PER_CONTACT_PER_HOUR;

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z (21:00 on 31 Dec in São Paulo)
const SEC: i64 = 1_000;

fn number(id: &str) -> NumberInfo {
    NumberInfo {
        id: id.into(),
        tenant_id: "t1".into(),
        pool: "default".into(),
        online: true,
        in_rotation: true,
        health: 100,
        limits: Limits::default(),
        warming_days: 5,
        first_connected_at_ms: Some(T0 - 30 * DAY_MS),
        ..NumberInfo::default()
    }
}

/// A message to a contact (a phone JID) that every number in `known` already talked with.
fn to(id: &str, contact: &str, known: &[&str]) -> QueuedMessage {
    QueuedMessage {
        id: id.into(),
        tenant_id: "t1".into(),
        pool: "default".into(),
        text_chars: 40,
        contact: Some(format!("{contact}@s.whatsapp.net")),
        known_to: known.iter().map(|s| s.to_string()).collect(),
        ..QueuedMessage::default()
    }
}

fn sticky(id: &str, contact: &str, n: &str) -> QueuedMessage {
    QueuedMessage { sticky_to: Some(n.into()), ..to(id, contact, &[n]) }
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(19)
}

fn hours(tz: &str, start: &str, end: &str) -> Window {
    Window::parse("active_hours", tz, start, end, None).unwrap()
}

/// Drives a dispatcher like the server's send loop, with the issue-19 steps: expired messages
/// taken out first, the pre-delay waited, first contacts to recipients in `not_on_whatsapp`
/// abandoned after the check. Each send goes out `latency` after its pre-delay and typing.
/// With `probe`, it also checks, at random instants before each wake-up, that a poll would
/// have handed nothing out (no missed wake-up).
struct Sim {
    d: Dispatcher,
    rng: StdRng,
    now: i64,
    latency: i64,
    not_on_whatsapp: BTreeSet<String>,
    probe: bool,
    in_flight: Vec<(i64, Assignment)>,
    /// (message, number, send time).
    sent: Vec<(String, String, i64)>,
    /// Every assignment with the time it was made.
    assigned: Vec<(i64, Assignment)>,
    abandoned: Vec<String>,
    expired: Vec<(String, i64)>,
}

impl Sim {
    fn new(d: Dispatcher) -> Self {
        Sim {
            d,
            rng: rng(),
            now: T0,
            latency: 300,
            not_on_whatsapp: BTreeSet::new(),
            probe: false,
            in_flight: vec![],
            sent: vec![],
            assigned: vec![],
            abandoned: vec![],
            expired: vec![],
        }
    }

    fn run_until(&mut self, until: i64) {
        loop {
            for m in self.d.take_expired(self.now) {
                self.expired.push((m.id, self.now));
            }
            let busy: BTreeSet<String> =
                self.in_flight.iter().map(|(_, a)| a.number_id.clone()).collect();
            let new = self.d.poll(self.now, &mut self.rng);
            // An abandoned send frees its number at once: poll again right away.
            let mut freed = false;
            for a in new {
                assert!(!busy.contains(&a.number_id), "two sends at once: {a:?}");
                self.assigned.push((self.now, a.clone()));
                let contact = self.contact_of(&a.message_id);
                if a.first_contact && self.not_on_whatsapp.contains(&contact) {
                    // The pre-check answers after the pre-delay.
                    assert!(self.d.abandon(&a, self.now));
                    self.abandoned.push(a.message_id.clone());
                    freed = true;
                    continue;
                }
                let done = self.now + (a.pre_delay_ms + a.typing_ms) as i64 + self.latency;
                self.in_flight.push((done, a));
            }
            let next_done = self.in_flight.iter().map(|(t, _)| *t).min();
            let wake = self.d.next_wakeup_ms(self.now);
            let next = match (next_done, wake) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => return,
                },
            };
            if !(next > self.now || next_done == Some(self.now) || freed) {
                let mut copy = self.d.clone();
                let again = copy.poll(self.now, &mut self.rng.clone());
                panic!("no progress at {next}: {again:?} {:#?}", self.d);
            }
            if self.probe && next > self.now + 1 {
                let t = self.rng.gen_range(self.now + 1..next);
                let mut copy = self.d.clone();
                copy.take_expired(t);
                let early = copy.poll(t, &mut self.rng.clone());
                assert!(early.is_empty(), "missed wake-up at {t} (next {next}): {early:?}");
            }
            if next > until {
                self.now = until;
                return;
            }
            self.now = next;
            let (done, pending): (Vec<_>, Vec<_>) =
                self.in_flight.drain(..).partition(|(t, _)| *t <= self.now);
            self.in_flight = pending;
            for (t, a) in done {
                self.d.finished(&a.number_id, t, &mut self.rng);
                self.sent.push((a.message_id, a.number_id, t));
            }
        }
    }

    /// The contact of a message, from the tests' naming: `<contact>-<n>` or anything else.
    fn contact_of(&self, message_id: &str) -> String {
        message_id.split('-').next().unwrap_or(message_id).to_string()
    }

    fn sent_by(&self, message_id: &str) -> Option<(&str, i64)> {
        self.sent.iter().find(|(m, _, _)| m == message_id).map(|(_, n, t)| (n.as_str(), *t))
    }

    fn assignment(&self, message_id: &str) -> &Assignment {
        &self.assigned.iter().find(|(_, a)| a.message_id == message_id).expect("assigned").1
    }
}

// --- Sticky sender -------------------------------------------------------------------------

#[test]
fn a_sticky_message_waits_for_its_capped_number_without_blocking_the_queue() {
    let mut d = Dispatcher::default();
    let one_a_minute = Limits { per_minute: 1, ..Limits::default() };
    d.upsert_number(NumberInfo { limits: one_a_minute, ..number("a") });
    d.upsert_number(number("b"));
    assert!(d.record_send("a", T0 - 10 * SEC));
    d.enqueue(sticky("c1-1", "5511900000001", "a"));
    d.enqueue(to("c2-1", "5511900000002", &["a", "b"]));
    let mut r = rng();
    let got = d.poll(T0, &mut r);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].message_id.as_str(), got[0].number_id.as_str()), ("c2-1", "b"));
    assert_eq!(got[0].choice, Choice::Rotation);
    // a's minute frees 50 s from now; its typing may start that much earlier.
    let wake = d.next_wakeup_ms(T0).unwrap();
    assert_eq!(wake, T0 + 50 * SEC - typing_floor_ms(40) as i64);
    d.finished("b", T0 + 5 * SEC, &mut r);
    assert!(d.poll(wake - 1, &mut r).is_empty(), "b is free, but c1 sticks to a");
    let got = d.poll(wake, &mut r);
    assert_eq!((got[0].number_id.as_str(), got[0].choice), ("a", Choice::Sticky));
    assert!(!got[0].first_contact);
}

#[test]
fn a_sticky_number_out_of_rotation_hands_the_contact_to_another_for_good() {
    let mut d = Dispatcher::default();
    d.upsert_number(NumberInfo { in_rotation: false, health: 20, ..number("a") });
    d.upsert_number(number("b"));
    d.enqueue(sticky("c1-1", "5511900000001", "a"));
    d.enqueue(sticky("c1-2", "5511900000001", "a"));
    let mut sim = Sim::new(d);
    sim.run_until(T0 + HOUR_MS);
    let a1 = sim.assignment("c1-1");
    assert_eq!((a1.number_id.as_str(), a1.choice), ("b", Choice::Rotation));
    assert!(a1.first_contact, "b never talked with c1");
    // The contact is b's now: its next message sticks to b, even with a back in rotation.
    sim.d.upsert_number(number("a"));
    let a2 = sim.assignment("c1-2");
    assert_eq!((a2.number_id.as_str(), a2.choice), ("b", Choice::Sticky));
    assert!(!a2.first_contact);
    sim.d.enqueue(sticky("c1-3", "5511900000001", "a"));
    sim.run_until(T0 + 2 * HOUR_MS);
    assert_eq!(sim.assignment("c1-3").number_id, "b");
    // Offline works the same way as out of rotation.
    sim.d.upsert_number(NumberInfo { online: false, ..number("b") });
    sim.d.enqueue(sticky("c1-4", "5511900000001", "b"));
    sim.run_until(T0 + 3 * HOUR_MS);
    assert_eq!(sim.assignment("c1-4").number_id, "a");
}

#[test]
fn messages_to_a_new_contact_queued_together_stick_to_the_first_number_chosen() {
    let mut d = Dispatcher::default();
    for id in ["a", "b", "c"] {
        d.upsert_number(number(id));
    }
    for i in 1..=3 {
        d.enqueue(to(&format!("c1-{i}"), "5511900000001", &[]));
    }
    let mut sim = Sim::new(d);
    sim.run_until(T0 + HOUR_MS);
    let senders: BTreeSet<&str> = sim.sent.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(senders.len(), 1, "{:?}", sim.sent);
    let firsts: Vec<bool> = sim.assigned.iter().map(|(_, a)| a.first_contact).collect();
    assert_eq!(firsts, [true, false, false]);
    // In order.
    let order: Vec<&str> = sim.sent.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(order, ["c1-1", "c1-2", "c1-3"]);
}

#[test]
fn with_sticky_off_rotation_decides() {
    let mut d = Dispatcher::default();
    d.set_pool_policy("t1", "default", PoolPolicy { sticky: false, ..PoolPolicy::default() });
    d.set_strategy("t1", "default", Strategy::RoundRobin);
    assert!(!d.pool_policy("t1", "default").sticky, "set_strategy keeps the rest");
    d.upsert_number(number("a"));
    d.upsert_number(number("b"));
    d.enqueue(sticky("c1-1", "5511900000001", "b"));
    let got = d.poll(T0, &mut rng());
    assert_eq!((got[0].number_id.as_str(), got[0].choice), ("a", Choice::Rotation));
    assert!(got[0].first_contact, "a is not the contact's number");
}

// --- Country match ---------------------------------------------------------------------------

#[test]
fn country_match_prefers_numbers_with_the_recipients_code() {
    let mut d = Dispatcher::default();
    let geo = PoolPolicy { prefer_country: true, sticky: false, ..PoolPolicy::default() };
    d.set_pool_policy("t1", "default", geo);
    d.upsert_number(NumberInfo { country_code: Some(55), ..number("br") });
    d.upsert_number(NumberInfo { country_code: Some(1), ..number("us") });
    d.upsert_number(NumberInfo { country_code: Some(44), ..number("uk") });
    let mut r = rng();
    let mut now = T0;
    let mut send = |d: &mut Dispatcher, msg: QueuedMessage| {
        d.enqueue(msg);
        let got = d.poll(now, &mut r);
        d.finished(&got[0].number_id, now + 5 * SEC, &mut r);
        now += MINUTE_MS;
        (got[0].number_id.clone(), got[0].choice)
    };
    for i in 0..3 {
        assert_eq!(
            send(&mut d, to(&format!("x{i}"), "14155550100", &[])),
            ("us".into(), Choice::Geo)
        );
        assert_eq!(
            send(&mut d, to(&format!("y{i}"), "5511987654321", &[])),
            ("br".into(), Choice::Geo)
        );
    }
    // No number of the recipient's country: plain rotation.
    let (_, choice) = send(&mut d, to("z", "351912345678", &[]));
    assert_eq!(choice, Choice::Rotation);
    // The only Brazilian number busy: another one sends, by rotation.
    d.enqueue(to("w1", "5511987654321", &[]));
    d.enqueue(to("w2", "5511987654322", &[]));
    let got = d.poll(now, &mut r);
    assert_eq!((got[0].number_id.as_str(), got[0].choice), ("br", Choice::Geo));
    assert_eq!(got[1].choice, Choice::Rotation);
    assert_ne!(got[1].number_id, "br");
}

// --- First contacts --------------------------------------------------------------------------

#[test]
fn at_its_first_contact_cap_a_number_only_answers_known_contacts() {
    let mut d = Dispatcher::default();
    let two = Limits { new_contacts_per_day: 2, ..Limits::default() };
    d.upsert_number(NumberInfo { limits: two, ..number("a") });
    for i in 1..=3 {
        d.enqueue(to(&format!("new{i}-1"), &format!("551190000000{i}"), &[]));
    }
    d.enqueue(to("known-1", "5511911111111", &["a"]));
    let mut sim = Sim::new(d);
    sim.run_until(T0 + HOUR_MS);
    let order: Vec<&str> = sim.sent.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(order, ["new1-1", "new2-1", "known-1"], "new3 waits for the cap, known does not");
    for m in ["new1-1", "new2-1"] {
        let a = sim.assignment(m);
        assert!(a.first_contact && (3_000..=12_000).contains(&a.pre_delay_ms), "{a:?}");
    }
    let k = sim.assignment("known-1");
    assert!(!k.first_contact && k.pre_delay_ms == 0);
    let stats = sim.d.number_stats("a", sim.now).unwrap();
    assert_eq!((stats.new_contacts_cap, stats.new_contacts_last_day), (2, 2));
    assert_eq!(stats.resting, Some(Rest::FirstContactCap));
    // The third goes once the first one's 24 h are over.
    let first_sent = sim.sent_by("new1-1").unwrap().1;
    sim.run_until(T0 + 2 * DAY_MS);
    let (_, at) = sim.sent_by("new3-1").expect("sent the next day");
    assert!(at >= first_sent + DAY_MS, "{at} < {}", first_sent + DAY_MS);
    assert!(sim.assignment("new3-1").first_contact);
}

#[test]
fn a_message_known_to_another_number_goes_there_when_the_others_are_at_their_cap() {
    let mut d = Dispatcher::default();
    let one = Limits { new_contacts_per_day: 1, ..Limits::default() };
    d.set_pool_policy("t1", "default", PoolPolicy { sticky: false, ..PoolPolicy::default() });
    for id in ["a", "b"] {
        d.upsert_number(NumberInfo { limits: one, ..number(id) });
        assert!(d.record_first_contact(id, T0 - HOUR_MS));
    }
    d.enqueue(to("stranger-1", "5511900000001", &[]));
    d.enqueue(to("friend_of_b-1", "5511900000002", &["b"]));
    d.enqueue(to("friend_of_a-1", "5511900000003", &["a"]));
    let got = d.poll(T0, &mut rng());
    let pairs: BTreeSet<(&str, &str)> =
        got.iter().map(|a| (a.message_id.as_str(), a.number_id.as_str())).collect();
    assert_eq!(pairs, BTreeSet::from([("friend_of_b-1", "b"), ("friend_of_a-1", "a")]));
    // The stranger waits for a first-contact slot: 24 h after the recorded first contacts.
    let wake = d.next_wakeup_ms(T0 + MINUTE_MS);
    assert_eq!(wake, None, "both numbers are busy");
}

#[test]
fn a_number_with_no_gaps_gets_no_pre_delay_and_groups_are_never_first_contacts() {
    let mut d = Dispatcher::default();
    let no_gaps = Limits { min_gap_ms: 0, max_gap_ms: 0, ..Limits::default() };
    d.upsert_number(NumberInfo { limits: no_gaps, ..number("a") });
    d.enqueue(to("new-1", "5511900000001", &[]));
    let mut r = rng();
    let got = d.poll(T0, &mut r);
    assert!(got[0].first_contact);
    assert_eq!(got[0].pre_delay_ms, 0);
    d.finished("a", T0 + 5 * SEC, &mut r);
    let group = QueuedMessage { contact: None, ..to("g-1", "x", &[]) };
    let group_jid =
        QueuedMessage { contact: Some("120363021234567890@g.us".into()), ..to("g-2", "x", &[]) };
    d.enqueue(group);
    d.enqueue(group_jid);
    for k in 0..2 {
        let now = T0 + (k + 1) * MINUTE_MS;
        let got = d.poll(now, &mut r);
        assert!(!got[0].first_contact, "{got:?}");
        d.finished("a", now + 5 * SEC, &mut r);
    }
}

#[test]
fn abandon_frees_the_number_without_counting_anything() {
    let mut d = Dispatcher::default();
    let one = Limits { new_contacts_per_day: 1, per_minute: 1, ..Limits::default() };
    d.upsert_number(NumberInfo { limits: one, ..number("a") });
    d.set_pool_policy(
        "t1",
        "default",
        PoolPolicy { per_contact_per_hour: 1, ..PoolPolicy::default() },
    );
    d.enqueue(to("ghost-1", "5511900000001", &[]));
    d.enqueue(to("ghost-2", "5511900000001", &[]));
    d.enqueue(to("real-1", "5511900000002", &[]));
    let mut r = rng();
    let got = d.poll(T0, &mut r);
    let a = got[0].clone();
    assert!(a.first_contact && a.message_id == "ghost-1");
    assert!(d.poll(T0 + SEC, &mut r).is_empty(), "busy");
    assert!(d.abandon(&a, T0 + 2 * SEC));
    assert!(!d.abandon(&a, T0 + 2 * SEC), "only once");
    assert!(!d.requeue(&a, T0 + 2 * SEC), "gone");
    let stats = d.number_stats("a", T0 + 2 * SEC).unwrap();
    assert!(!stats.busy);
    assert_eq!((stats.sent_last_day, stats.new_contacts_last_day), (0, 0));
    assert_eq!(stats.resting, None);
    assert_eq!(d.next_wakeup_ms(T0 + 2 * SEC), Some(T0 + 2 * SEC));
    // Free at once: the same contact's next message (its pace not spent, and still a first
    // contact: the ghost did not make it a's), within the same minute (its cap not spent).
    let got = d.poll(T0 + 2 * SEC, &mut r);
    assert_eq!(got[0].message_id, "ghost-2");
    assert!(got[0].first_contact);
    assert_eq!(d.queued_total(), 1);
}

// --- Re-warming ------------------------------------------------------------------------------

#[test]
fn a_number_idle_for_73_hours_is_rewarmed_with_its_cap() {
    let mut d = Dispatcher::default();
    d.upsert_number(NumberInfo { last_sent_ms: Some(T0 - 73 * HOUR_MS), ..number("idle") });
    for i in 0..30 {
        d.enqueue(to(&format!("k{i}-1"), &format!("55119{i:08}"), &["idle"]));
    }
    let mut sim = Sim::new(d);
    sim.run_until(T0 + DAY_MS - 1);
    assert_eq!(sim.assigned[0].1.rewarm_started, Some(T0));
    assert!(sim.assigned[1..].iter().all(|(_, a)| a.rewarm_started.is_none()));
    assert_eq!(sim.sent.len(), 20, "day 1 of a re-warm: the first-day cap");
    let stats = sim.d.number_stats("idle", sim.now).unwrap();
    assert!(stats.rewarming && stats.warmed);
    assert_eq!(stats.rewarm_until_ms, Some(T0 + 2 * DAY_MS));
    assert_eq!(stats.caps.per_day, 20);
    assert_eq!(stats.resting, Some(Rest::Rewarming));
    // Day 2 (cap 173): the rest goes.
    assert_eq!(sim.d.next_wakeup_ms(sim.now), Some(T0 + DAY_MS));
    sim.run_until(T0 + 2 * DAY_MS - 1);
    assert_eq!(sim.sent.len(), 30);
    let stats = sim.d.number_stats("idle", T0 + 2 * DAY_MS).unwrap();
    assert!(!stats.rewarming && stats.rewarm_until_ms.is_none());
    assert_eq!(stats.caps.per_day, 1500);
}

#[test]
fn a_number_idle_71_hours_or_never_used_is_not_rewarmed_and_a_rewarm_continues_after_a_restart() {
    let mut d = Dispatcher::default();
    d.upsert_number(NumberInfo { last_sent_ms: Some(T0 - 71 * HOUR_MS), ..number("recent") });
    d.upsert_number(NumberInfo { pool: "p2".into(), ..number("never") });
    d.upsert_number(NumberInfo {
        pool: "p3".into(),
        last_sent_ms: Some(T0 - HOUR_MS),
        rewarm_from_ms: Some(T0 - DAY_MS - HOUR_MS),
        ..number("restarted")
    });
    for i in 0..60 {
        d.enqueue(to(&format!("r{i}-1"), &format!("55118{i:08}"), &["recent"]));
        let m = to(&format!("n{i}-1"), &format!("55117{i:08}"), &["never"]);
        d.enqueue(QueuedMessage { pool: "p2".into(), ..m });
    }
    for i in 0..200 {
        let m = to(&format!("s{i}-1"), &format!("55116{i:08}"), &["restarted"]);
        d.enqueue(QueuedMessage { pool: "p3".into(), ..m });
    }
    let mut sim = Sim::new(d);
    sim.run_until(T0 + DAY_MS - 2 * HOUR_MS);
    assert!(sim.assigned.iter().all(|(_, a)| a.rewarm_started.is_none()));
    let count = |p: char| sim.sent.iter().filter(|(m, _, _)| m.starts_with(p)).count();
    assert_eq!((count('r'), count('n')), (60, 60));
    // Day 2 of its re-warm: 173 a day, until its end at T0 + 23 h.
    assert_eq!(count('s'), 173);
    let stats = sim.d.number_stats("restarted", T0).unwrap();
    assert_eq!(stats.rewarm_until_ms, Some(T0 + DAY_MS - HOUR_MS));
}

// --- Quiet hours -----------------------------------------------------------------------------

#[test]
fn outside_its_active_hours_a_number_takes_nothing_and_wakes_at_the_opening() {
    // Active 07:00–23:00 in São Paulo (UTC−3): quiet overnight, 02:00Z–10:00Z.
    let mut d = Dispatcher::default();
    let day = hours("America/Sao_Paulo", "07:00", "23:00");
    d.upsert_number(NumberInfo { active_hours: Some(day), ..number("a") });
    let late = T0 + 2 * HOUR_MS + 30 * MINUTE_MS; // 23:30 local
    let opening = T0 + 10 * HOUR_MS; // 07:00 local
    assert_eq!(d.number_stats("a", late).unwrap().resting, Some(Rest::QuietHours));
    assert_eq!(d.number_stats("a", T0).unwrap().resting, None);
    d.enqueue(to("c1-1", "5511900000001", &["a"]));
    d.enqueue(QueuedMessage {
        forced_instance: Some("a".into()),
        ..to("c2-1", "5511900000002", &["a"])
    });
    let mut r = rng();
    assert!(d.poll(late, &mut r).is_empty(), "not even forced sends");
    assert_eq!(d.next_wakeup_ms(late), Some(opening));
    assert!(d.poll(opening - 1, &mut r).is_empty());
    let got = d.poll(opening, &mut r);
    assert_eq!((got[0].message_id.as_str(), got[0].choice), ("c2-1", Choice::Forced));
}

#[test]
fn an_overnight_active_window_in_tokyo() {
    // Active 20:00–02:00 in Tokyo (UTC+9, no daylight saving): 11:00Z–17:00Z.
    let mut d = Dispatcher::default();
    let night = hours("Asia/Tokyo", "20:00", "02:00");
    d.upsert_number(NumberInfo { active_hours: Some(night), ..number("owl") });
    d.upsert_number(NumberInfo { pool: "other".into(), ..number("lark") });
    for i in 0..10 {
        d.enqueue(to(&format!("c{i}-1"), &format!("81900000{i:03}"), &["owl"]));
    }
    let mut sim = Sim::new(d);
    sim.probe = true;
    sim.run_until(T0 + 2 * DAY_MS);
    assert_eq!(sim.sent.len(), 10);
    for (at, a) in &sim.assigned {
        let since_midnight = at.rem_euclid(DAY_MS);
        assert!((11 * HOUR_MS..17 * HOUR_MS).contains(&since_midnight), "{a:?} at {at}");
    }
    assert_eq!(sim.assigned[0].0, T0 + 11 * HOUR_MS);
}

// --- Validity and scheduling -----------------------------------------------------------------

#[test]
fn an_expired_message_is_never_assigned_and_taken_out_at_its_expiry() {
    let mut d = Dispatcher::default();
    d.upsert_number(NumberInfo {
        limits: Limits { per_minute: 1, ..Limits::default() },
        ..number("a")
    });
    d.enqueue(to("c1-1", "5511900000001", &["a"]));
    let ttl =
        QueuedMessage { expires_at_ms: Some(T0 + 30 * SEC), ..to("c2-1", "5511900000002", &["a"]) };
    d.enqueue(ttl);
    d.enqueue(to("c3-1", "5511900000003", &["a"]));
    let mut sim = Sim::new(d);
    sim.run_until(T0 + HOUR_MS);
    assert_eq!(sim.expired, [("c2-1".to_string(), T0 + 30 * SEC)]);
    assert!(sim.assigned.iter().all(|(_, a)| a.message_id != "c2-1"));
    let order: Vec<&str> = sim.sent.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(order, ["c1-1", "c3-1"]);
    // One handed out in time is not expired, even if its send ends after the expiry.
    let mut d = Dispatcher::default();
    d.upsert_number(number("a"));
    d.enqueue(QueuedMessage {
        expires_at_ms: Some(T0 + SEC),
        ..to("x-1", "5511900000009", &["a"])
    });
    let got = d.poll(T0, &mut rng());
    assert_eq!(got.len(), 1);
    assert!(d.take_expired(T0 + HOUR_MS).is_empty());
    assert!(d.requeue(&got[0], T0 + 2 * SEC), "back in line after its expiry…");
    let late = d.take_expired(T0 + 2 * SEC);
    assert_eq!(late.len(), 1, "…so it expires");
    assert_eq!(d.queued_total(), 0);
}

#[test]
fn a_scheduled_message_is_not_assigned_before_its_time_nor_blocks_the_queue() {
    let mut d = Dispatcher::default();
    d.upsert_number(number("a"));
    let at = T0 + HOUR_MS;
    d.enqueue(QueuedMessage { not_before_ms: Some(at), ..to("later-1", "5511900000001", &["a"]) });
    for i in 0..3 {
        d.enqueue(to(&format!("now{i}-1"), &format!("55119100000{i:02}"), &["a"]));
    }
    assert_eq!(d.queue_depth("t1", "default"), 4);
    let mut sim = Sim::new(d);
    sim.probe = true;
    sim.run_until(T0 + 2 * HOUR_MS);
    let order: Vec<&str> = sim.sent.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(order, ["now0-1", "now1-1", "now2-1", "later-1"]);
    let (when, _) = sim.assigned.iter().find(|(_, a)| a.message_id == "later-1").unwrap();
    assert_eq!(*when, at);
    // Due, it takes its place in line: ahead of what was queued after it.
    let mut d = Dispatcher::default();
    d.upsert_number(number("a"));
    d.enqueue(QueuedMessage { not_before_ms: Some(T0), ..to("due-1", "5511900000001", &["a"]) });
    d.enqueue(to("after-1", "5511900000002", &["a"]));
    assert_eq!(d.next_wakeup_ms(T0), Some(T0));
    assert_eq!(d.poll(T0, &mut rng())[0].message_id, "due-1");
}

// --- Per-contact pace ------------------------------------------------------------------------

#[test]
fn per_contact_pace_holds_a_contacts_messages_without_blocking_others_until_it_replies() {
    let mut d = Dispatcher::default();
    d.set_pool_policy(
        "t1",
        "default",
        PoolPolicy { per_contact_per_hour: 2, ..PoolPolicy::default() },
    );
    for id in ["a", "b"] {
        d.upsert_number(number(id));
    }
    for i in 1..=4 {
        d.enqueue(to(&format!("chatty-{i}"), "5511900000001", &["a", "b"]));
    }
    for i in 1..=4 {
        d.enqueue(to(&format!("other{i}-1"), &format!("551190000010{i}"), &["a", "b"]));
    }
    let mut sim = Sim::new(d);
    sim.probe = true;
    sim.run_until(T0 + 10 * MINUTE_MS);
    let sent: BTreeSet<&str> = sim.sent.iter().map(|(m, _, _)| m.as_str()).collect();
    assert!(sent.contains("chatty-1") && sent.contains("chatty-2") && !sent.contains("chatty-3"));
    assert!((1..=4).all(|i| sent.contains(format!("other{i}-1").as_str())), "{sent:?}");
    // The contact writes: the conversation is live, the rest goes at once.
    sim.d.contact_replied("t1", "5511900000001@s.whatsapp.net", sim.now);
    sim.run_until(T0 + 20 * MINUTE_MS);
    assert!(sim.sent_by("chatty-4").is_some_and(|(_, t)| t < T0 + 20 * MINUTE_MS));
    // Without a reply, the third of an hour waits for the first to be an hour old.
    let mut d = Dispatcher::default();
    d.set_pool_policy(
        "t1",
        "default",
        PoolPolicy { per_contact_per_hour: 2, ..PoolPolicy::default() },
    );
    d.upsert_number(number("a"));
    for i in 1..=3 {
        d.enqueue(to(&format!("c-{i}"), "5511900000001", &["a"]));
    }
    let mut sim = Sim::new(d);
    sim.probe = true;
    sim.run_until(T0 + 2 * HOUR_MS);
    let t1 = sim.sent_by("c-1").unwrap().1;
    let t3 = sim.sent_by("c-3").unwrap().1;
    assert!(t3 >= t1 + HOUR_MS && t3 < t1 + HOUR_MS + MINUTE_MS, "{}", t3 - t1);
}

#[test]
fn contact_sends_replayed_after_a_restart_count_against_the_pace() {
    let mut d = Dispatcher::default();
    d.upsert_number(number("a"));
    let pace = PoolPolicy { per_contact_per_hour: 4, ..PoolPolicy::default() };
    d.set_pool_policy("t1", "default", pace);
    for k in 0..4 {
        d.record_contact_send("t1", "5511900000001@s.whatsapp.net", T0 - (10 + k) * MINUTE_MS);
    }
    d.enqueue(to("c-1", "5511900000001", &["a"]));
    let mut r = rng();
    assert!(d.poll(T0, &mut r).is_empty());
    // The oldest of the four (T0 − 13 min) leaves the hour at T0 + 47 min.
    let wake = d.next_wakeup_ms(T0).unwrap();
    assert_eq!(wake, T0 + 47 * MINUTE_MS - typing_floor_ms(40) as i64);
    assert_eq!(d.poll(wake, &mut r).len(), 1);
}

// --- Why a number rests ----------------------------------------------------------------------

#[test]
fn why_a_number_rests() {
    let mut d = Dispatcher::default();
    let mut r = rng();
    d.upsert_number(NumberInfo { online: false, ..number("off") });
    d.upsert_number(NumberInfo { in_rotation: false, ..number("sick") });
    d.upsert_number(NumberInfo { first_connected_at_ms: Some(T0), ..number("young") });
    d.upsert_number(NumberInfo {
        limits: Limits { per_minute: 1, ..Limits::default() },
        ..number("capped")
    });
    d.upsert_number(number("gap"));
    let rest = |d: &Dispatcher, id: &str| d.number_stats(id, T0 + SEC).unwrap().resting;
    for k in 1..=20 {
        d.record_send("young", T0 - k * 10 * MINUTE_MS);
    }
    d.record_send("capped", T0);
    d.enqueue(to("m-1", "5511900000001", &["gap"]));
    d.set_strategy("t1", "default", Strategy::RoundRobin);
    d.upsert_number(NumberInfo { pool: "solo".into(), ..number("gap") });
    d.enqueue(QueuedMessage { pool: "solo".into(), ..to("m-2", "5511900000002", &["gap"]) });
    let got = d.poll(T0, &mut r);
    assert_eq!(got[0].number_id, "gap");
    assert_eq!(rest(&d, "gap"), None, "sending is not resting");
    d.finished("gap", T0, &mut r);
    assert_eq!(rest(&d, "off"), Some(Rest::Offline));
    assert_eq!(rest(&d, "sick"), Some(Rest::Health));
    assert_eq!(rest(&d, "young"), Some(Rest::Warming));
    assert_eq!(rest(&d, "capped"), Some(Rest::Cap));
    assert_eq!(rest(&d, "gap"), Some(Rest::Gap));
    assert_eq!(Rest::FirstContactCap.as_str(), "first_contact_cap");
}

// --- Everything together ---------------------------------------------------------------------

/// The most sends in a window of `w` ms ending at each send, minus `cap`: positive means the
/// cap was exceeded. By brute force.
fn excess(times: &[i64], w: i64, cap: usize) -> i64 {
    let mut times = times.to_vec();
    times.sort_unstable();
    (0..times.len())
        .map(|i| times[..=i].iter().filter(|&&t| t > times[i] - w).count() as i64 - cap as i64)
        .max()
        .unwrap_or(0)
}

#[test]
fn every_rule_holds_over_a_long_random_run_with_no_missed_wakeup() {
    let mut d = Dispatcher::default();
    d.set_pool_policy(
        "t1",
        "default",
        PoolPolicy {
            prefer_country: true,
            per_contact_per_hour: RECOMMENDED_PER_CONTACT_PER_HOUR,
            ..PoolPolicy::default()
        },
    );
    let mut r = StdRng::seed_from_u64(77);
    let tight = Limits {
        per_minute: 3,
        per_hour: 40,
        per_day: 150,
        min_gap_ms: 1_000,
        max_gap_ms: 20_000,
        new_contacts_per_day: 6,
    };
    let numbers: Vec<String> = (0..6).map(|i| format!("n{i}")).collect();
    let mut windows = BTreeMap::new();
    for (i, id) in numbers.iter().enumerate() {
        let limits = if i % 2 == 0 {
            tight
        } else {
            Limits { new_contacts_per_day: 10, ..Limits::default() }
        };
        let active = (i % 3 == 0).then(|| hours("America/Sao_Paulo", "08:00", "20:00"));
        if let Some(w) = &active {
            windows.insert(id.clone(), w.clone());
        }
        d.upsert_number(NumberInfo {
            limits,
            country_code: Some(if i < 3 { 55 } else { 1 }),
            last_sent_ms: Some(T0 - if i == 1 { 4 * DAY_MS } else { HOUR_MS }),
            first_connected_at_ms: Some(T0 - (i as i64 % 4) * DAY_MS),
            active_hours: active,
            ..number(id)
        });
    }
    let mut sim = Sim::new(Dispatcher::default());
    let contacts = 120;
    let mut expected = BTreeMap::new();
    for k in 0..600 {
        let c = r.gen_range(0..contacts);
        let phone = if c % 2 == 0 { format!("5511{c:09}") } else { format!("1415{c:07}") };
        let mut m = to(&format!("c{c}-{k}"), &phone, &[]);
        m.text_chars = r.gen_range(1..300);
        if c % 3 == 0 {
            m.sticky_to = Some(numbers[c % 6].clone());
            m.known_to = vec![numbers[c % 6].clone()];
        }
        if k % 17 == 0 {
            m.not_before_ms = Some(T0 + r.gen_range(0..DAY_MS));
        }
        if k % 13 == 0 {
            m.expires_at_ms = Some(T0 + r.gen_range(0..6 * HOUR_MS));
        }
        if k % 29 == 0 {
            m.forced_instance = Some(numbers[k % 6].clone());
        }
        expected.insert(m.id.clone(), m.clone());
        d.enqueue(m);
    }
    sim.d = d;
    sim.latency = 1_500;
    sim.probe = true;
    sim.not_on_whatsapp = (0..contacts).filter(|c| c % 11 == 5).map(|c| format!("c{c}")).collect();
    sim.run_until(T0 + 5 * DAY_MS);

    // Everything is settled: sent, abandoned or expired.
    assert_eq!(sim.sent.len() + sim.abandoned.len() + sim.expired.len(), 600);
    assert!(sim.sent.len() > 400, "{}", sim.sent.len());
    assert_eq!(sim.d.queued_total(), 0);
    for (at, a) in &sim.assigned {
        let m = &expected[&a.message_id];
        assert!(m.not_before_ms.is_none_or(|t| *at >= t), "{a:?} before its time");
        assert!(m.expires_at_ms.is_none_or(|t| *at < t), "{a:?} after its expiry");
        if let Some(f) = &m.forced_instance {
            assert_eq!(&a.number_id, f);
        }
        if let Some(w) = windows.get(&a.number_id) {
            assert!(w.is_open_ms(*at), "{a:?} at {at} outside its hours");
        }
    }
    for (id, _) in &sim.expired {
        assert!(sim.assigned.iter().all(|(_, a)| &a.message_id != id));
    }
    // Per number: caps (the strictest possible day cap: a re-warm or warming day 1 caps 20, so
    // check the configured caps and the first-contact cap), one send at a time.
    for id in &numbers {
        let times: Vec<i64> =
            sim.sent.iter().filter(|(_, n, _)| n == id).map(|(_, _, t)| *t).collect();
        let l = if id.trim_start_matches('n').parse::<usize>().unwrap() % 2 == 0 {
            tight
        } else {
            Limits::default()
        };
        assert!(excess(&times, MINUTE_MS, l.per_minute as usize) <= 0, "{id}: minute");
        assert!(excess(&times, HOUR_MS, l.per_hour as usize) <= 0, "{id}: hour");
        let firsts: Vec<i64> = sim
            .sent
            .iter()
            .filter(|(m, n, _)| n == id && sim.assignment(m).first_contact)
            .map(|(_, _, t)| *t)
            .collect();
        assert!(excess(&firsts, DAY_MS, l.new_contacts_per_day as usize) <= 0, "{id}: firsts");
        let min_spacing = (l.min_gap_ms + TYPING_MIN_MS) as i64;
        assert!(times.windows(2).all(|w| w[1] - w[0] >= min_spacing), "{id}: spacing");
    }
    // Per contact: at most 4 in any hour (nobody replies here), and in order.
    let mut by_contact: BTreeMap<String, Vec<(i64, usize)>> = BTreeMap::new();
    for (m, _, t) in &sim.sent {
        let (c, k) = m.split_once('-').unwrap();
        by_contact.entry(c.to_string()).or_default().push((*t, k.parse().unwrap()));
    }
    for (c, sends) in by_contact {
        let times: Vec<i64> = sends.iter().map(|(t, _)| *t).collect();
        assert!(excess(&times, HOUR_MS, 4) <= 0, "{c}: per-contact pace");
        let pooled: Vec<usize> = sends
            .iter()
            .filter(|(_, k)| {
                let m = &expected[&format!("{c}-{k}")];
                m.forced_instance.is_none() && m.not_before_ms.is_none()
            })
            .map(|(_, k)| *k)
            .collect();
        assert!(pooled.windows(2).all(|w| w[0] < w[1]), "{c}: out of order {pooled:?}");
    }
    // The contact's number: a pool message of a contact that had one went there unless it was
    // out (never the case here: every number stays online and in rotation).
    for (_, a) in &sim.assigned {
        let m = &expected[&a.message_id];
        if let (Some(s), None) = (&m.sticky_to, &m.forced_instance) {
            let c = a.message_id.split('-').next().unwrap();
            let earlier_other = sim
                .assigned
                .iter()
                .any(|(_, b)| b.message_id.split('-').next() == Some(c) && &b.number_id != s);
            if !earlier_other {
                assert_eq!((&a.number_id, a.choice), (s, Choice::Sticky), "{a:?}");
            }
        }
    }
}
