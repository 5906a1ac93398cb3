//! The scheduler with the rules of issue 19, on the same 100 numbers: sticky senders, first
//! contacts (with the recipient check failing for a tenth of them), per-contact pace, country
//! preference, active hours and re-warming, checked by an independent checker.
//!
//! Scenario: 20,000 messages of 80 characters to 5,000 contacts (4 each, spread through the
//! queue), queued at t = 0 (00:00 UTC) in one pool with `prefer_country` on and the default
//! per-contact pace (4 an hour). Contacts: 60 % in a conversation with a warmed number (sticky),
//! 20 % known to two numbers, 20 % new (first contacts), of whom a tenth are not on WhatsApp:
//! their assignments are abandoned after the pre-delay, as the runtime does. 20 numbers (10
//! warmed, 10 warming) are active only 08:00–20:00 in São Paulo (11:00–23:00 UTC); 5 warmed ones
//! last sent 4 days ago and are re-warmed. Numbers alternate between calling codes 55 and 1,
//! and so do contacts.
//!
//! The checker knows the rules from the documentation, not from the code: the caps in force at
//! each send (warming table by day, re-warm day caps 20 then 173, first-contact caps 8, 11, 15,
//! 21, 29 then 40, re-warm 8), at most 4 sends per contact in any hour, every send started
//! inside the number's active hours, and every sticky message sent by its number.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use bzapper_core::hours::Window;
use bzapper_core::sending::{
    Assignment, Choice, Dispatcher, NumberInfo, PoolPolicy, QueuedMessage, Strategy,
    RECOMMENDED_PER_CONTACT_PER_HOUR, TYPING_MIN_MS,
};
use bzapper_core::Limits;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{mmss, numbers, seeds, Number, DAY, DAY_CAPS, LATENCY_MS, MESSAGES, T0, TEXT_CHARS};

const HOUR: i64 = 3_600_000;
const CONTACTS: usize = 5_000;
/// The checker's copy of the documented first-contact warming table (days 1..5).
const FIRST_CONTACT_CAPS: [u32; 5] = [8, 11, 15, 21, 29];
const PER_CONTACT_PER_HOUR: usize = 4;

/// What kind of contact `c` is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sticky,
    Known,
    New,
    NotOnWhatsApp,
}

fn kind(c: usize) -> Kind {
    match c % 10 {
        0..=5 => Kind::Sticky,
        6 | 7 => Kind::Known,
        _ if c % 100 < 10 => Kind::NotOnWhatsApp,
        _ => Kind::New,
    }
}

fn quiet(i: usize, n: &Number) -> bool {
    if n.day == 0 {
        (30..40).contains(&i)
    } else {
        n.id.ends_with("-10") || n.id.ends_with("-11")
    }
}

fn rewarming(i: usize, n: &Number) -> bool {
    n.day == 0 && (25..30).contains(&i)
}

/// The warmed number contact `c` is in a conversation with: one of warmed-00..24 or 35..39
/// (never a re-warming one, whose day-1 cap of 20 would hold its contacts for days).
fn sticky_index(c: usize) -> usize {
    let k = c % 30;
    if k < 25 {
        k
    } else {
        k + 10
    }
}

fn phone(c: usize) -> String {
    if c.is_multiple_of(2) {
        format!("5511{c:09}@s.whatsapp.net")
    } else {
        format!("1415{c:07}@s.whatsapp.net")
    }
}

/// Open in São Paulo (UTC−3 all year) between 08:00 and 20:00: the checker's own arithmetic.
fn in_active_hours(t: i64) -> bool {
    let local = (t - 3 * HOUR).rem_euclid(DAY);
    (8 * HOUR..20 * HOUR).contains(&local)
}

struct Run {
    makespan_ms: i64,
    p99_ms: i64,
    sends: Vec<Vec<(i64, bool)>>,
    /// Per contact: send times.
    contact_sends: Vec<Vec<i64>>,
    assigned: Vec<(i64, Assignment)>,
    rewarm_from: Vec<Option<i64>>,
    choices: HashMap<Choice, usize>,
    abandoned: usize,
    sticky_elsewhere: usize,
    polls: usize,
    wall_ms: f64,
}

fn simulate(seed: u64) -> Run {
    let started = Instant::now();
    let nums = numbers();
    let mut d = Dispatcher::default();
    // Per-contact pacing is off by default; the bench runs it at the recommended value.
    let policy = PoolPolicy {
        prefer_country: true,
        per_contact_per_hour: RECOMMENDED_PER_CONTACT_PER_HOUR,
        ..PoolPolicy::default()
    };
    d.set_pool_policy("t", "default", PoolPolicy { strategy: Strategy::RoundRobin, ..policy });
    let active = Window::parse("active_hours", "America/Sao_Paulo", "08:00", "20:00", None)
        .expect("a valid window");
    for (i, n) in nums.iter().enumerate() {
        let age = if n.day == 0 { 30 } else { i64::from(n.day) - 1 };
        let last_sent = if rewarming(i, n) {
            Some(T0 - 4 * DAY)
        } else if n.day == 1 {
            None
        } else {
            Some(T0 - HOUR)
        };
        d.upsert_number(NumberInfo {
            id: n.id.clone(),
            tenant_id: "t".into(),
            pool: "default".into(),
            online: true,
            in_rotation: true,
            health: 100,
            limits: Limits::default(),
            warming_days: 5,
            first_connected_at_ms: Some(T0 - age * DAY),
            country_code: Some(if i % 2 == 0 { 55 } else { 1 }),
            last_sent_ms: last_sent,
            rewarm_from_ms: None,
            active_hours: quiet(i, n).then(|| active.clone()),
        });
    }
    let mut contact_of = HashMap::new();
    for k in 0..MESSAGES {
        let c = k % CONTACTS;
        let (sticky_to, known_to) = match kind(c) {
            Kind::Sticky => {
                let n = nums[sticky_index(c)].id.clone();
                (Some(n.clone()), vec![n])
            }
            Kind::Known => (None, vec![nums[c % 40].id.clone(), nums[40 + c % 60].id.clone()]),
            Kind::New | Kind::NotOnWhatsApp => (None, vec![]),
        };
        let id = format!("m{k}");
        contact_of.insert(id.clone(), c);
        d.enqueue(QueuedMessage {
            id,
            tenant_id: "t".into(),
            pool: "default".into(),
            text_chars: TEXT_CHARS,
            contact: Some(phone(c)),
            sticky_to,
            known_to,
            ..QueuedMessage::default()
        });
    }
    let index: HashMap<&str, usize> =
        nums.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    // (time, assignment index, abandoned?)
    let mut pending: BinaryHeap<Reverse<(i64, usize, bool)>> = BinaryHeap::new();
    let mut assigned: Vec<(i64, Assignment)> = Vec::new();
    let mut sends = vec![Vec::new(); nums.len()];
    let mut contact_sends = vec![Vec::new(); CONTACTS];
    let mut rewarm_from = vec![None; nums.len()];
    let mut choices: HashMap<Choice, usize> = HashMap::new();
    let (mut now, mut settled, mut abandoned, mut polls) = (T0, 0, 0, 0);
    let mut settled_at = Vec::with_capacity(MESSAGES);
    let mut sticky_elsewhere = 0;
    loop {
        while let Some(&Reverse((t, k, gone))) = pending.peek() {
            if t > now {
                break;
            }
            pending.pop();
            let a = &assigned[k].1;
            let n = index[a.number_id.as_str()];
            if gone {
                d.abandon(a, t);
                abandoned += 1;
            } else {
                d.finished(&a.number_id, t, &mut rng);
                sends[n].push((t, a.first_contact));
                contact_sends[contact_of[&a.message_id]].push(t);
            }
            settled += 1;
            settled_at.push(t);
        }
        if settled == MESSAGES {
            break;
        }
        polls += 1;
        for a in d.poll(now, &mut rng) {
            let n = index[a.number_id.as_str()];
            let c = contact_of[&a.message_id];
            if let Some(at) = a.rewarm_started {
                rewarm_from[n] = Some(at);
            }
            *choices.entry(a.choice).or_default() += 1;
            if kind(c) == Kind::Sticky && a.number_id != nums[sticky_index(c)].id {
                sticky_elsewhere += 1;
            }
            let k = assigned.len();
            let gone = a.first_contact && kind(c) == Kind::NotOnWhatsApp;
            let at = if gone {
                now + a.pre_delay_ms as i64
            } else {
                now + (a.pre_delay_ms + a.typing_ms) as i64 + LATENCY_MS
            };
            pending.push(Reverse((at, k, gone)));
            assigned.push((now, a));
        }
        let next_done = pending.peek().map(|r| r.0 .0);
        let next = match (next_done, d.next_wakeup_ms(now)) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).expect("work left but nothing will ever happen"),
        };
        assert!(next > now, "the dispatcher left assignable work at {now}");
        now = next;
    }
    settled_at.sort_unstable();
    Run {
        makespan_ms: now - T0,
        p99_ms: settled_at[MESSAGES * 99 / 100 - 1] - T0,
        sends,
        contact_sends,
        assigned,
        rewarm_from,
        choices,
        abandoned,
        sticky_elsewhere,
        polls,
        wall_ms: started.elapsed().as_secs_f64() * 1e3,
    }
}

/// Sends that exceed the cap in force at them: for each send, the sends in the window ending
/// at it beyond `cap_at(its time)`, counted once per offending send.
fn over(times: &[i64], window: i64, cap_at: impl Fn(i64) -> usize) -> usize {
    let mut lo = 0;
    let mut v = 0;
    for (i, &t) in times.iter().enumerate() {
        while times[lo] <= t - window {
            lo += 1;
        }
        if i + 1 - lo > cap_at(t) {
            v += 1;
        }
    }
    v
}

#[derive(Default)]
struct Violations {
    caps: usize,
    first_contacts: usize,
    per_contact: usize,
    quiet_hours: usize,
    spacing: usize,
}

fn check(nums: &[Number], run: &Run) -> Violations {
    let l = Limits::default();
    let mut v = Violations::default();
    for (i, n) in nums.iter().enumerate() {
        // The warming day at `t` (1-based, 6+ = warmed) and the re-warm day (None: none).
        let warm_day = |t: i64| if n.day == 0 { 6 } else { i64::from(n.day) + (t - T0) / DAY };
        let rewarm_day = |t: i64| run.rewarm_from[i].map(|from| (t - from) / DAY + 1);
        let day_cap = |t: i64| -> usize {
            let w = match warm_day(t) {
                d @ 1..=5 => DAY_CAPS[d as usize - 1],
                _ => l.per_day,
            };
            let r = match rewarm_day(t) {
                Some(1) => 20,
                Some(2) => 173,
                _ => l.per_day,
            };
            w.min(r) as usize
        };
        let fc_cap = |t: i64| -> usize {
            let w = match warm_day(t) {
                d @ 1..=5 => FIRST_CONTACT_CAPS[d as usize - 1],
                _ => l.new_contacts_per_day,
            };
            let r = match rewarm_day(t) {
                Some(1) => 8,
                Some(2) => 18, // 8 × 5^(1/2), rounded
                _ => l.new_contacts_per_day,
            };
            w.min(r) as usize
        };
        let times: Vec<i64> = run.sends[i].iter().map(|s| s.0).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        v.caps += over(&times, DAY, day_cap);
        v.caps += over(&times, HOUR, |t| (l.per_hour as usize).min(day_cap(t)));
        v.caps += over(&times, 60_000, |t| (l.per_minute as usize).min(day_cap(t)));
        let firsts: Vec<i64> = run.sends[i].iter().filter(|s| s.1).map(|s| s.0).collect();
        v.first_contacts += over(&firsts, DAY, fc_cap);
        let min_spacing = (l.min_gap_ms + TYPING_MIN_MS) as i64;
        v.spacing += times.windows(2).filter(|w| w[1] - w[0] < min_spacing).count();
    }
    for times in &run.contact_sends {
        let mut times = times.clone();
        times.sort_unstable();
        v.per_contact += over(&times, HOUR, |_| PER_CONTACT_PER_HOUR);
    }
    let quiet_ids: Vec<&str> =
        nums.iter().enumerate().filter(|(i, n)| quiet(*i, n)).map(|(_, n)| n.id.as_str()).collect();
    v.quiet_hours = run
        .assigned
        .iter()
        .filter(|(t, a)| quiet_ids.contains(&a.number_id.as_str()) && !in_active_hours(*t))
        .count();
    v
}

pub fn run() {
    let nums = numbers();
    println!(
        "\nwith the rules of issue 19: {MESSAGES} messages to {CONTACTS} contacts (60 % sticky, 20 % \
         known, 20 % new of whom 10 % not on WhatsApp), 20 numbers with active hours \
         08:00-20:00 America/Sao_Paulo, 5 re-warming, prefer_country, 4 per contact an hour\n"
    );
    println!(
        "{:<4} {:>12} {:>12} {:>6} {:>8} {:>6} {:>6} {:>6} {:>9} {:>5} {:>5} {:>7} {:>6} {:>6} {:>6} {:>9}",
        "seed",
        "makespan",
        "99 % done",
        "sticky",
        "rotation",
        "geo",
        "1st",
        "aband.",
        "sticky≠",
        "caps",
        "1st",
        "contact",
        "quiet",
        "gap",
        "polls",
        "wall ms"
    );
    for seed in 1..=seeds() {
        let run = simulate(seed);
        let v = check(&nums, &run);
        let firsts: usize = run.sends.iter().flatten().filter(|s| s.1).count();
        let c = |k: Choice| run.choices.get(&k).copied().unwrap_or(0);
        println!(
            "{:<4} {:>12} {:>12} {:>6} {:>8} {:>6} {:>6} {:>6} {:>9} {:>5} {:>5} {:>7} {:>6} {:>6} {:>6} {:>9.1}",
            seed,
            mmss(run.makespan_ms),
            mmss(run.p99_ms),
            c(Choice::Sticky),
            c(Choice::Rotation),
            c(Choice::Geo),
            firsts,
            run.abandoned,
            run.sticky_elsewhere,
            v.caps,
            v.first_contacts,
            v.per_contact,
            v.quiet_hours,
            v.spacing,
            run.polls,
            run.wall_ms
        );
        assert_eq!(
            (
                v.caps,
                v.first_contacts,
                v.per_contact,
                v.quiet_hours,
                v.spacing,
                run.sticky_elsewhere
            ),
            (0, 0, 0, 0, 0, 0),
            "violations"
        );
    }
    println!(
        "\n(columns: choices made; first contacts sent; assignments abandoned (not on WhatsApp); \
         sticky messages sent by another number; then violations: caps, first-contact caps, \
         per-contact pace, sends started in quiet hours, gaps too short)"
    );
}
