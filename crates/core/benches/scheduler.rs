//! Scheduler benchmark: how close the dispatcher gets to the fastest schedule the caps and gaps
//! allow, and whether any cap is ever exceeded. Run it with
//! `cargo bench -p bzapper-core --bench scheduler`.
//!
//! Scenario: 100 numbers in one pool with the default limits (8/min, 200/h, 1500/day, gaps of
//! 3–12 s): 40 warmed, 60 warming (12 on each of days 1..5, day caps 20/47/112/267/633). At t = 0,
//! 20,000 messages of 80 characters are queued. A virtual clock drives the dispatcher the way
//! the server's send loop does: poll at every wakeup and every finished send; each assignment's
//! message goes out `typing_ms + 300 ms` (a fixed send latency) after it was handed out, and is
//! reported finished then; the dispatcher then draws the gap.
//!
//! Reported, per strategy and seed: the makespan (until the last message went out), two
//! references computed per number by the earliest-possible (greedy) schedule, the ratio of the
//! makespan to each, cap violations found by an independent checker, and wall time.
//!
//! Then the same pool with the rules of issue 19 (see `rules` below): 20,000 messages to 5,000
//! contacts (4 each), some in a conversation with a number (sticky), some known, some first
//! contacts (a tenth of those not on WhatsApp), 20 numbers with active hours, 5 re-warming;
//! the checker counts violations of each rule and prints the makespan.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use bzapper_core::sending::{
    typing_floor_ms, Dispatcher, NumberInfo, QueuedMessage, Strategy, TYPING_BASE_MS,
    TYPING_MIN_MS, TYPING_PER_CHAR_MS,
};
use bzapper_core::Limits;
use rand::rngs::StdRng;
use rand::SeedableRng;

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAY: i64 = 86_400_000;
const MESSAGES: usize = 20_000;
const TEXT_CHARS: usize = 80;
const LATENCY_MS: i64 = 300;
const WARMED: usize = 40;
const WARMING_PER_DAY: usize = 12;

/// The checker's own copy of the documented warming table (days 1..5 with the default
/// `first_day_cap` 20 and `per_day` 1500), deliberately not computed by the code under test.
const DAY_CAPS: [u32; 5] = [20, 47, 112, 267, 633];

struct Number {
    id: String,
    /// Warming day 1..=5, or 0 when warmed.
    day: u32,
}

impl Number {
    /// (window, cap) for the minute, hour and day, as the checker understands the rules: the
    /// day cap reduced by warming, the hour and minute caps never above it.
    fn windows(&self, l: &Limits) -> [(i64, usize); 3] {
        let day = if self.day == 0 { l.per_day } else { DAY_CAPS[self.day as usize - 1] };
        let hour = l.per_hour.min(day);
        let minute = l.per_minute.min(hour);
        [(60_000, minute as usize), (3_600_000, hour as usize), (DAY, day as usize)]
    }
}

fn numbers() -> Vec<Number> {
    let mut v: Vec<Number> =
        (0..WARMED).map(|i| Number { id: format!("warmed-{i:02}"), day: 0 }).collect();
    for day in 1..=5u32 {
        for i in 0..WARMING_PER_DAY {
            v.push(Number { id: format!("day{day}-{i:02}"), day });
        }
    }
    v
}

struct Run {
    makespan_ms: i64,
    /// Send times per number, in order.
    sends: Vec<Vec<i64>>,
    polls: usize,
    wall_ms: f64,
}

fn simulate(strategy: Strategy, seed: u64) -> Run {
    let started = Instant::now();
    let nums = numbers();
    let mut d = Dispatcher::default();
    d.set_strategy("t", "default", strategy);
    for n in &nums {
        // Warmed: connected 30 days ago. Day d: connected (d − 1) days ago, so it stays on day d
        // for the whole run (which is far shorter than a day).
        let age = if n.day == 0 { 30 } else { i64::from(n.day) - 1 };
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
            ..NumberInfo::default()
        });
    }
    for i in 0..MESSAGES {
        d.enqueue(QueuedMessage {
            id: format!("m{i}"),
            tenant_id: "t".into(),
            pool: "default".into(),
            forced_instance: None,
            text_chars: TEXT_CHARS,
            ..QueuedMessage::default()
        });
    }
    let index: HashMap<&str, usize> =
        nums.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pending: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    let mut sends = vec![Vec::new(); nums.len()];
    let (mut now, mut sent, mut polls) = (T0, 0, 0);
    loop {
        while let Some(&Reverse((t, n))) = pending.peek() {
            if t > now {
                break;
            }
            pending.pop();
            d.finished(&nums[n].id, t, &mut rng);
            sends[n].push(t);
            sent += 1;
        }
        if sent == MESSAGES {
            break;
        }
        polls += 1;
        for a in d.poll(now, &mut rng) {
            let n = index[a.number_id.as_str()];
            pending.push(Reverse((now + a.typing_ms as i64 + LATENCY_MS, n)));
        }
        let next_done = pending.peek().map(|r| r.0 .0);
        let next = match (next_done, d.next_wakeup_ms(now)) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).expect("work left but nothing will ever happen"),
        };
        assert!(next > now, "the dispatcher left assignable work at {now}");
        now = next;
    }
    Run { makespan_ms: now - T0, sends, polls, wall_ms: started.elapsed().as_secs_f64() * 1e3 }
}

/// The earliest-possible send times of one number, from t = 0: the first send after
/// `first_ms`, each next one at least `cycle_ms` after the previous, and never more than `cap`
/// sends within any window (a send `cap` places later is at least `window` later).
fn greedy(first_ms: i64, cycle_ms: i64, windows: [(i64, usize); 3]) -> Vec<i64> {
    let max = windows[2].1;
    let mut s: Vec<i64> = Vec::with_capacity(max);
    while s.len() < max {
        let k = s.len();
        let mut t = s.last().map_or(first_ms, |&p| p + cycle_ms);
        for (w, cap) in windows {
            if k >= cap {
                t = t.max(s[k - cap] + w);
            }
        }
        s.push(t);
    }
    s
}

/// The least T by which the pool can have sent `MESSAGES`, if every number sends at its
/// greedy times: the MESSAGES-th smallest of all those times.
fn bound(nums: &[Number], first_ms: i64, cycle_ms: i64) -> i64 {
    let l = Limits::default();
    let mut all: Vec<i64> =
        nums.iter().flat_map(|n| greedy(first_ms, cycle_ms, n.windows(&l))).collect();
    all.sort_unstable();
    all[MESSAGES - 1]
}

/// Cap violations in the send times: each time `cap + 1` sends of a number fall within less
/// than `window` counts once; plus each pair of consecutive sends closer than the shortest gap
/// and typing time.
fn violations(nums: &[Number], sends: &[Vec<i64>]) -> (usize, usize) {
    let l = Limits::default();
    let mut caps = 0;
    let mut spacing = 0;
    for (n, times) in nums.iter().zip(sends) {
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        for (window, cap) in n.windows(&l) {
            caps += times.windows(cap + 1).filter(|w| w[cap] - w[0] < window).count();
        }
        let min_spacing = (l.min_gap_ms + TYPING_MIN_MS) as i64;
        spacing += times.windows(2).filter(|w| w[1] - w[0] < min_spacing).count();
    }
    (caps, spacing)
}

fn mmss(ms: i64) -> String {
    let s = ms / 1000;
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}

#[path = "scheduler/rules.rs"]
mod rules;

/// `BZAPPER_BENCH_PART=caps` or `rules` runs one part only; `BZAPPER_BENCH_SEEDS` sets how many
/// seeds each runs (3 by default; fewer helps an unoptimised `--profile dev` run).
fn main() {
    let part = std::env::var("BZAPPER_BENCH_PART").unwrap_or_default();
    if part != "rules" {
        caps_only();
    }
    if part != "caps" {
        rules::run();
    }
}

fn seeds() -> u64 {
    std::env::var("BZAPPER_BENCH_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3)
}

fn caps_only() {
    let nums = numbers();
    let l = Limits::default();
    let floor = typing_floor_ms(TEXT_CHARS) as i64;
    let nominal = (TYPING_BASE_MS + TYPING_PER_CHAR_MS * TEXT_CHARS as u64) as i64;
    // Strict lower bound: every pause at its minimum (shortest gap, shortest typing this text
    // can get, the fixed latency). No schedule that respects the caps and the pacing bounds
    // can be faster: each number's greedy times are componentwise the earliest possible.
    let strict = bound(&nums, floor + LATENCY_MS, l.min_gap_ms as i64 + floor + LATENCY_MS);
    // Expected-pacing reference: the same, with every pause at its mean (the Beta(2, 5) gap
    // mean is min + 2/7 of the span; the typing jitter is symmetric around the nominal time).
    // The real gaps are random, so this is the fair yardstick for the dispatcher; it is not a
    // strict bound (a run with lucky short gaps can beat it).
    let mean_gap = l.min_gap_ms as f64 + (l.max_gap_ms - l.min_gap_ms) as f64 * 2.0 / 7.0;
    let expected =
        bound(&nums, nominal + LATENCY_MS, mean_gap.round() as i64 + nominal + LATENCY_MS);

    println!(
        "scheduler: {} numbers ({WARMED} warmed, {} warming on days 1..5), {MESSAGES} messages \
         of {TEXT_CHARS} chars, default limits, send latency {LATENCY_MS} ms",
        nums.len(),
        nums.len() - WARMED
    );
    println!(
        "strict lower bound {} ({} ms); expected-pacing reference {} ({} ms)\n",
        mmss(strict),
        strict,
        mmss(expected),
        expected
    );
    println!(
        "{:<16} {:>4} {:>11} {:>13} {:>15} {:>14} {:>12} {:>7} {:>9}",
        "strategy",
        "seed",
        "makespan",
        "/strict bound",
        "/expected pace",
        "cap violations",
        "gap too short",
        "polls",
        "wall ms"
    );
    let mut first_run = None;
    for strategy in Strategy::ALL {
        for seed in 1..=seeds() {
            let run = simulate(strategy, seed);
            let (caps, spacing) = violations(&nums, &run.sends);
            let total: usize = run.sends.iter().map(Vec::len).sum();
            assert_eq!(total, MESSAGES);
            println!(
                "{:<16} {:>4} {:>11} {:>13.3} {:>15.3} {:>14} {:>12} {:>7} {:>9.1}",
                strategy.as_str(),
                seed,
                mmss(run.makespan_ms),
                run.makespan_ms as f64 / strict as f64,
                run.makespan_ms as f64 / expected as f64,
                caps,
                spacing,
                run.polls,
                run.wall_ms
            );
            first_run.get_or_insert(run);
        }
    }

    // Who sent what in the first run.
    let run = first_run.expect("ran");
    println!("\nround_robin, seed 1, by group:");
    println!(
        "{:<10} {:>7} {:>9} {:>11} {:>12}",
        "group", "numbers", "day cap", "sends", "last send"
    );
    for day in 0..=5u32 {
        let members: Vec<usize> = (0..nums.len()).filter(|&i| nums[i].day == day).collect();
        let sends: usize = members.iter().map(|&i| run.sends[i].len()).sum();
        let last = members.iter().filter_map(|&i| run.sends[i].last()).max().copied();
        let cap = if day == 0 { l.per_day } else { DAY_CAPS[day as usize - 1] };
        println!(
            "{:<10} {:>7} {:>9} {:>11} {:>12}",
            if day == 0 { "warmed".to_string() } else { format!("day {day}") },
            members.len(),
            cap,
            sends,
            last.map_or("-".into(), |t| mmss(t - T0))
        );
    }
}
