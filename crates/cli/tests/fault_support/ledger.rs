//! What the fault driver did and saw while it ran: every call it made with its outcome, every
//! number with its fate, every fault applied and every process outage. The checks compare it
//! with what the gateway and the network report at the end.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// What became of a number, as far as the faults go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Linked: it must be connected at the end, without a new scan.
    Linked,
    /// The phone unlinked it; only a new scan links it again.
    LoggedOut,
    /// Banned for good.
    PermBanned,
}

#[derive(Clone, Debug)]
pub struct Number {
    pub id: String,
    pub phone: String,
    pub fate: Fate,
    /// Temporary bans applied: (from, until).
    pub temp_bans: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// New scans after a logout.
    pub relinks: usize,
}

/// The outcome of a call that may create something.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx with the created id.
    Accepted(String),
    /// An error answer: status and error code.
    Refused(u16, String),
    /// No answer (the process died, the connection was cut): it may or may not have happened.
    NoAnswer,
}

/// One `POST /v1/messages`.
#[derive(Clone, Debug)]
pub struct SendCall {
    pub seq: u64,
    /// The text, unique in the world: how the message is found on the network whatever came
    /// back.
    pub text: String,
    pub forced: Option<String>,
    pub node: usize,
    pub outcome: Outcome,
}

/// One `POST /v1/campaigns`.
#[derive(Clone, Debug)]
pub struct CampaignCall {
    pub name: String,
    pub recipients: usize,
    pub outcome: Outcome,
    pub canceled: bool,
}

/// One inbound message injected through the simulator: the number and, when the network took
/// it, the WhatsApp id it gave the message.
#[derive(Clone, Debug)]
pub struct InboundCall {
    pub instance_id: String,
    pub outcome: Outcome,
}

/// A gateway process that was down (killed until started again).
#[derive(Clone, Debug)]
pub struct Outage {
    pub node: usize,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Default, Debug)]
pub struct Ledger {
    pub numbers: Vec<Number>,
    pub sends: Vec<SendCall>,
    pub campaigns: Vec<CampaignCall>,
    pub inbound: Vec<InboundCall>,
    pub outages: Vec<Outage>,
    /// PostgreSQL connection losses: when, and how many connections were ended.
    pub pg_terminations: Vec<(DateTime<Utc>, i64)>,
    /// Faults applied, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Faults drawn that could not apply (no linked number, the number was not connected),
    /// by kind.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Operator actions: new scans after logouts, numbers added.
    pub relinks: u64,
    pub numbers_added: u64,
    /// The longest a receiver was down, in ms (the webhooks' backoff grows with it).
    pub longest_outage_ms: u64,
    /// The end of the latest temporary ban.
    pub last_ban_end: Option<DateTime<Utc>>,
    pub rounds: u64,
    /// Counters for unique texts, recipients and names.
    pub next_seq: u64,
    pub next_campaign: u64,
    pub next_phone: u64,
}

impl Ledger {
    pub fn applied(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }

    pub fn skip(&mut self, kind: &'static str) {
        *self.skipped.entry(kind).or_default() += 1;
    }

    /// The linked numbers, in creation order (what picks choose among).
    pub fn linked(&self) -> Vec<Number> {
        self.numbers.iter().filter(|n| n.fate == Fate::Linked).cloned().collect()
    }

    pub fn number_mut(&mut self, id: &str) -> Option<&mut Number> {
        self.numbers.iter_mut().find(|n| n.id == id)
    }
}
