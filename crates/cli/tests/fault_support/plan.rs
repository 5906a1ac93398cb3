//! The seeded schedule of a fault run: what the workload does and which fault strikes when,
//! drawn round by round from one ChaCha8 stream, so that a seed always gives the same schedule
//! (ChaCha8 is portable: the same on every platform and `rand` version). Pure, no I/O: the
//! world (`world.rs`) carries it out and resolves each pick against what exists then.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One gateway on SQLite, or three nodes on one PostgreSQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    Single,
    Cluster,
}

impl Topology {
    pub fn name(self) -> &'static str {
        match self {
            Topology::Single => "single",
            Topology::Cluster => "cluster",
        }
    }

    /// Gateway processes in the world.
    pub fn nodes(self) -> usize {
        match self {
            Topology::Single => 1,
            Topology::Cluster => 3,
        }
    }
}

/// The webhook receivers of a world (each with its own webhook and filter, see `world.rs`).
pub const RECEIVERS: usize = 3;

/// How busy the workload is and how hard the faults hit. Ranges are inclusive.
#[derive(Clone, Debug)]
pub struct Shape {
    pub round_ms: (u64, u64),
    /// Single sends a second (each a `POST /v1/messages`).
    pub sends_per_sec: f64,
    /// The share of single sends forced to one number (`instance_id`); the rest rotate.
    pub forced_share: f64,
    /// Messages contacts send to the numbers, a second.
    pub inbound_per_sec: f64,
    /// The chance that a round starts a campaign.
    pub campaign_chance: f64,
    pub campaign_recipients: (usize, usize),
    /// The chance that a campaign is canceled a little after it starts.
    pub campaign_cancel_chance: f64,
    pub faults_per_round: (usize, usize),
    /// How long a killed gateway or node stays down before it is started again.
    pub down_ms: (u64, u64),
    pub temp_ban_secs: (u64, u64),
    /// How long a receiver answers 503.
    pub outage_ms: (u64, u64),
    /// How long a receiver is slow, and how slow (each request; under the gateway's 10 s
    /// timeout, so that a slow answer is still a delivery).
    pub slow_ms: (u64, u64),
    pub slow_delay_ms: (u64, u64),
    /// The chance that a round's operator links the logged-out numbers again (new QR, scan).
    pub relink_chance: f64,
}

impl Shape {
    /// The CI run: a few short rounds, short outages and bans, so the settle phase is short.
    pub fn ci() -> Shape {
        Shape {
            round_ms: (5_000, 7_000),
            sends_per_sec: 2.0,
            forced_share: 0.3,
            inbound_per_sec: 2.0,
            campaign_chance: 0.5,
            campaign_recipients: (3, 8),
            campaign_cancel_chance: 0.25,
            faults_per_round: (3, 3),
            down_ms: (300, 1_500),
            temp_ban_secs: (3, 6),
            outage_ms: (1_000, 4_000),
            slow_ms: (1_000, 4_000),
            slow_delay_ms: (300, 2_000),
            relink_chance: 0.6,
        }
    }

    /// The long run: longer rounds, longer outages and bans.
    pub fn soak() -> Shape {
        Shape {
            round_ms: (6_000, 12_000),
            sends_per_sec: 2.5,
            forced_share: 0.3,
            inbound_per_sec: 3.0,
            campaign_chance: 0.4,
            campaign_recipients: (3, 20),
            campaign_cancel_chance: 0.2,
            faults_per_round: (1, 4),
            down_ms: (200, 4_000),
            temp_ban_secs: (3, 20),
            outage_ms: (1_000, 15_000),
            slow_ms: (2_000, 10_000),
            slow_delay_ms: (500, 6_000),
            relink_chance: 0.5,
        }
    }
}

/// One thing to do, `at_ms` after its round started.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub at_ms: u64,
    pub action: Action,
}

/// A pick (`u32`) chooses among what exists when the step runs (`pick % len`), so that a
/// schedule stays valid whatever happened before it.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// `POST /v1/messages` through node `via`: forced to a linked number, or rotating.
    Send {
        forced: Option<u32>,
        via: u32,
    },
    /// `POST /v1/campaigns`, canceled `cancel_after_ms` later when set.
    Campaign {
        recipients: usize,
        via: u32,
        cancel_after_ms: Option<u64>,
    },
    /// A contact writes to a linked number (simulator control).
    Inbound {
        number: u32,
    },
    /// The operator's turn, at the start of each round: link the logged-out numbers again
    /// when `relink`, and add a number when too few are left linked.
    Operator {
        relink: bool,
    },
    Fault(Fault),
}

/// The faults. Kills and their restarts run one after another (one process down at a time);
/// the others take effect at once and end on their own.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// `kill -9` of the SQLite gateway, started again on the same data dir after `down_ms`.
    KillGateway { down_ms: u64 },
    /// `kill -9` of cluster node `node`, started again (same node id, data dir and port).
    KillNode { node: usize, down_ms: u64 },
    /// The network drops the number's connection; the gateway reconnects by itself.
    Drop { number: u32 },
    /// The phone unlinks the device.
    Logout { number: u32 },
    /// WhatsApp refuses the number for `secs`; the gateway reconnects it when the ban ends.
    TempBan { number: u32, secs: u64 },
    /// WhatsApp refuses the number for good (the simulator's ban lasts a day).
    PermBan { number: u32 },
    /// The receiver answers 503 for `ms`.
    ReceiverDown { receiver: usize, ms: u64 },
    /// The receiver takes `delay_ms` to answer each request, for `ms`.
    ReceiverSlow { receiver: usize, ms: u64, delay_ms: u64 },
    /// The alert target answers 503 for `ms`.
    AlertTargetDown { ms: u64 },
    /// PostgreSQL ends the connections of node `node` (every node's when `None`), as an
    /// administrator's `pg_terminate_backend` or a failover of the database would.
    PgTerminate { node: Option<usize> },
}

impl Fault {
    /// The kind's name in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::KillGateway { .. } => "kill_gateway",
            Fault::KillNode { .. } => "kill_node",
            Fault::Drop { .. } => "drop",
            Fault::Logout { .. } => "logout",
            Fault::TempBan { .. } => "temp_ban",
            Fault::PermBan { .. } => "perm_ban",
            Fault::ReceiverDown { .. } => "receiver_down",
            Fault::ReceiverSlow { .. } => "receiver_slow",
            Fault::AlertTargetDown { .. } => "alert_target_down",
            Fault::PgTerminate { .. } => "pg_terminate",
        }
    }
}

/// One round: its steps in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Round {
    pub index: usize,
    pub len_ms: u64,
    pub steps: Vec<Step>,
}

/// Draws the rounds of one world from the seed.
pub struct Planner {
    rng: ChaCha8Rng,
    topology: Topology,
    shape: Shape,
    next: usize,
    /// What is left of the shuffled deck of fault kinds.
    deck: Vec<u8>,
}

impl Planner {
    /// The topology is mixed into the seed: the two worlds of one run get different schedules.
    pub fn new(seed: u64, topology: Topology, shape: Shape) -> Planner {
        let salt = match topology {
            Topology::Single => 0x51,
            Topology::Cluster => 0xC3,
        };
        let rng = ChaCha8Rng::seed_from_u64(seed ^ (salt << 56));
        Planner { rng, topology, shape, next: 0, deck: Vec::new() }
    }

    pub fn next_round(&mut self) -> Round {
        let s = self.shape.clone();
        let rng = &mut self.rng;
        let len_ms = rng.gen_range(s.round_ms.0..=s.round_ms.1);
        let nodes = self.topology.nodes() as u32;
        let mut steps = vec![Step {
            at_ms: 0,
            action: Action::Operator { relink: rng.gen_bool(s.relink_chance) },
        }];
        for at_ms in arrivals(rng, s.sends_per_sec, len_ms) {
            let forced = rng.gen_bool(s.forced_share).then(|| rng.gen());
            steps.push(Step {
                at_ms,
                action: Action::Send { forced, via: rng.gen_range(0..nodes) },
            });
        }
        for at_ms in arrivals(rng, s.inbound_per_sec, len_ms) {
            steps.push(Step { at_ms, action: Action::Inbound { number: rng.gen() } });
        }
        if rng.gen_bool(s.campaign_chance) {
            let at_ms = rng.gen_range(0..len_ms);
            let recipients = rng.gen_range(s.campaign_recipients.0..=s.campaign_recipients.1);
            let cancel_after_ms =
                rng.gen_bool(s.campaign_cancel_chance).then(|| rng.gen_range(500..=4_000));
            let via = rng.gen_range(0..nodes);
            steps.push(Step {
                at_ms,
                action: Action::Campaign { recipients, via, cancel_after_ms },
            });
        }
        let faults = rng.gen_range(s.faults_per_round.0..=s.faults_per_round.1);
        for _ in 0..faults {
            if self.deck.is_empty() {
                self.deck = deck(self.topology);
                self.deck.shuffle(rng);
            }
            let kind = self.deck.pop().unwrap_or(2);
            let at_ms = rng.gen_range(0..len_ms);
            let fault = fault_of(kind, rng, self.topology, &s);
            steps.push(Step { at_ms, action: Action::Fault(fault) });
        }
        // Stable: steps drawn for the same instant keep their drawing order.
        steps.sort_by_key(|s| s.at_ms);
        let round = Round { index: self.next, len_ms, steps };
        self.next += 1;
        round
    }
}

/// Instants of a Poisson process of `per_sec` over `len_ms`.
fn arrivals(rng: &mut ChaCha8Rng, per_sec: f64, len_ms: u64) -> Vec<u64> {
    let mut out = Vec::new();
    if per_sec <= 0.0 {
        return out;
    }
    let mut t = 0.0;
    loop {
        let u: f64 = rng.gen_range(f64::EPSILON..1.0);
        t += -u.ln() / per_sec * 1000.0;
        if t >= len_ms as f64 {
            return out;
        }
        out.push(t as u64);
    }
}

/// The fault kinds of a topology, each as many times as its weight: a round draws its faults
/// from a shuffled deck of these, refilled when empty, so a few rounds already strike with
/// every kind.
fn deck(topology: Topology) -> Vec<u8> {
    let weights: &[(u8, usize)] = match topology {
        Topology::Single => &[(0, 2), (2, 2), (3, 1), (4, 2), (5, 1), (6, 1), (7, 1), (8, 1)],
        Topology::Cluster => {
            &[(1, 2), (2, 2), (3, 1), (4, 2), (5, 1), (6, 1), (7, 1), (8, 1), (9, 1)]
        }
    };
    weights.iter().flat_map(|&(kind, n)| std::iter::repeat_n(kind, n)).collect()
}

/// The fault of a kind of the deck, its parameters drawn.
fn fault_of(kind: u8, rng: &mut ChaCha8Rng, topology: Topology, s: &Shape) -> Fault {
    let range = |rng: &mut ChaCha8Rng, (lo, hi): (u64, u64)| rng.gen_range(lo..=hi);
    match kind {
        0 => Fault::KillGateway { down_ms: range(rng, s.down_ms) },
        1 => Fault::KillNode {
            node: rng.gen_range(0..topology.nodes()),
            down_ms: range(rng, s.down_ms),
        },
        2 => Fault::Drop { number: rng.gen() },
        3 => Fault::Logout { number: rng.gen() },
        4 => Fault::TempBan { number: rng.gen(), secs: range(rng, s.temp_ban_secs) },
        5 => Fault::PermBan { number: rng.gen() },
        6 => Fault::ReceiverDown {
            receiver: rng.gen_range(0..RECEIVERS),
            ms: range(rng, s.outage_ms),
        },
        7 => Fault::ReceiverSlow {
            receiver: rng.gen_range(0..RECEIVERS),
            ms: range(rng, s.slow_ms),
            delay_ms: range(rng, s.slow_delay_ms),
        },
        8 => Fault::AlertTargetDown { ms: range(rng, s.outage_ms) },
        _ => Fault::PgTerminate {
            node: rng.gen_bool(0.7).then(|| rng.gen_range(0..topology.nodes())),
        },
    }
}
