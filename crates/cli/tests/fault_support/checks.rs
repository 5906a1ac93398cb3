//! The invariants of issue 18, checked on what the driver did (`Ledger`) against what the
//! gateway and the network report once the faults stopped and the world settled
//! (`Observed`). Pure: no I/O, so each rule is testable on its own.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::Duration;

use super::ledger::{Fate, Ledger, Outcome};
use super::observed::{alert_kind, matches, Event, Message, NetMessage, Observed};
use super::plan::Topology;

/// The checks of issue 18's other items that the fault test enforces when
/// `BZAPPER_FAULT_ENFORCE` is unset, in [`Checks::parse`]'s notation: every check, for the CI
/// test and the long run alike, now that durable inbound, durable alerts and stored ban ends
/// are built.
pub const ENFORCED_BY_DEFAULT: &str = "all";

/// Which invariants count as violations. Three depend on work of issue 18 that lands
/// separately; until it does, their checks still run and report what they find, as "not
/// enforced" instead of as violations (see [`ENFORCED_BY_DEFAULT`] and [`Checks::from_env`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checks {
    /// Every inbound message the network delivered is in the event log exactly once (durable
    /// inbound, issue 18 item 1).
    pub inbound_exactly_once: bool,
    /// Every due alert reached the alert target, across restarts and outages (durable alerts,
    /// item 2).
    pub alerts_durable: bool,
    /// A temporarily banned number reconnects when its ban ends even if the gateway (or the
    /// node that saw the ban) was killed meanwhile (ban expiry stored with the number, item 3).
    pub ban_expiry_durable: bool,
}

impl Checks {
    /// Nothing of the pending work enforced.
    pub const TODAY: Checks =
        Checks { inbound_exactly_once: false, alerts_durable: false, ban_expiry_durable: false };
    pub const ALL: Checks =
        Checks { inbound_exactly_once: true, alerts_durable: true, ban_expiry_durable: true };

    /// `BZAPPER_FAULT_ENFORCE` (`all`, or a comma-separated list of `inbound`, `alerts`,
    /// `ban_expiry`; `none` for nothing) when set, else [`ENFORCED_BY_DEFAULT`].
    pub fn from_env() -> Checks {
        let list = std::env::var("BZAPPER_FAULT_ENFORCE");
        Checks::parse(list.as_deref().unwrap_or(ENFORCED_BY_DEFAULT))
    }

    pub fn parse(list: &str) -> Checks {
        let mut c = Checks::TODAY;
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "all" => c = Checks::ALL,
                "none" => c = Checks::TODAY,
                "inbound" => c.inbound_exactly_once = true,
                "alerts" => c.alerts_durable = true,
                "ban_expiry" => c.ban_expiry_durable = true,
                other => panic!(
                    "BZAPPER_FAULT_ENFORCE: unknown check `{other}` (all, none, inbound, alerts, ban_expiry)"
                ),
            }
        }
        c
    }
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

/// What the checks found, and how much they looked at.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    pub messages_checked: usize,
    pub campaign_messages_checked: usize,
    pub network_messages_checked: usize,
    pub events_checked: usize,
    pub inbound_checked: usize,
    /// (webhook, matching event) pairs.
    pub deliveries_checked: usize,
    /// Requests a receiver got again under a delivery id it already had (at-least-once).
    pub redelivered: usize,
    pub alerts_checked: usize,
    pub numbers_checked: usize,
    /// The documented rare case (docs/sending.md, "Crashes"): an in-doubt message whose number
    /// was banned went out again from another number.
    pub two_number: Vec<String>,
    /// Messages that ended `failed` although the network had them (in doubt at a crash, then
    /// failed with their forced number's ban or logout): within the invariant, reported.
    pub failed_but_on_network: Vec<String>,
    /// `message.status` `sending` recorded after the number's ban or logout event (the
    /// scheduler had handed the send over before it learned of the drop).
    pub sending_after_drop_event: Vec<String>,
    pub violations: Vec<Violation>,
    /// What the checks that are switched off found.
    pub not_enforced: Vec<Violation>,
}

impl Verdict {
    fn flag(&mut self, enforced: bool, invariant: &'static str, detail: String) {
        let v = Violation { invariant, detail };
        if enforced {
            self.violations.push(v);
        } else {
            self.not_enforced.push(v);
        }
    }

    fn violation(&mut self, invariant: &'static str, detail: String) {
        self.flag(true, invariant, detail);
    }
}

/// Runs every check.
pub fn check(ledger: &Ledger, obs: &Observed, topology: Topology, checks: Checks) -> Verdict {
    let mut v = Verdict { events_checked: obs.events.len(), ..Verdict::default() };
    let exempt = stuck_numbers(ledger, checks);
    sends(ledger, obs, &exempt, &mut v);
    campaigns(ledger, obs, &mut v);
    inbound(ledger, obs, checks, &mut v);
    webhooks(obs, topology, &mut v);
    alerts(obs, checks, &mut v);
    no_send_while_out(obs, &mut v);
    reconnected(ledger, obs, &exempt, &mut v);
    v.violations.sort();
    v.not_enforced.sort();
    v
}

/// The numbers a switched-off ban-expiry check excuses: a temporary ban of theirs spanned a
/// gateway or node kill, so only a stored expiry would bring them back.
pub fn stuck_numbers(ledger: &Ledger, checks: Checks) -> HashSet<String> {
    if checks.ban_expiry_durable {
        return HashSet::new();
    }
    // A kill just after the ban's end can still catch the reconnect under way.
    let slack = Duration::seconds(5);
    ledger
        .numbers
        .iter()
        .filter(|n| {
            n.temp_bans.iter().any(|(from, until)| {
                ledger.outages.iter().any(|o| o.from <= *until + slack && o.to >= *from)
            })
        })
        .map(|n| n.id.clone())
        .collect()
}

/// Every accepted message reached the network exactly once (by WhatsApp id), from the number
/// the gateway names, or ended `failed` with a reason; nothing reached the network that was
/// not accepted; nothing accepted was lost.
fn sends(ledger: &Ledger, obs: &Observed, exempt: &HashSet<String>, v: &mut Verdict) {
    let by_id: HashMap<&str, &Message> = obs.messages.iter().map(|m| (m.id.as_str(), m)).collect();
    let by_wa: HashMap<&str, &Message> =
        obs.messages.iter().map(|m| (m.whatsapp_id.as_str(), m)).collect();
    let by_text: HashMap<&str, &Message> =
        obs.messages.iter().map(|m| (m.text.as_str(), m)).collect();
    let mut on_net: HashMap<&str, Vec<&NetMessage>> = HashMap::new();
    let mut texts_on_net: HashMap<&str, HashSet<&str>> = HashMap::new();
    for n in &obs.network {
        on_net.entry(n.whatsapp_id.as_str()).or_default().push(n);
        texts_on_net.entry(n.text.as_str()).or_default().insert(n.whatsapp_id.as_str());
    }
    v.network_messages_checked = obs.network.len();

    for call in &ledger.sends {
        match &call.outcome {
            Outcome::Accepted(id) if !by_id.contains_key(id.as_str()) => v.violation(
                "accepted_message_lost",
                format!(
                    "send {} ({id}) was answered 202 but the gateway does not list it",
                    call.text
                ),
            ),
            Outcome::Refused(status, code) => {
                if let Some(m) = by_text.get(call.text.as_str()) {
                    v.violation(
                        "refused_message_kept",
                        format!(
                            "send {} was refused ({status} {code}) but is listed as {}",
                            call.text, m.id
                        ),
                    );
                }
            }
            _ => {}
        }
    }

    for m in &obs.messages {
        v.messages_checked += 1;
        if m.campaign_id.is_some() {
            v.campaign_messages_checked += 1;
        }
        let mut copies: Vec<&NetMessage> =
            on_net.get(m.whatsapp_id.as_str()).cloned().unwrap_or_default();
        copies.sort_by_key(|n| n.at);
        let numbers: HashSet<&str> = copies.iter().map(|n| n.instance_id.as_str()).collect();
        let what = || {
            let on: Vec<String> = copies
                .iter()
                .map(|n| format!("{} at {}", n.instance_id, n.at.format("%T%.3f")))
                .collect();
            format!(
                "{} {:?} ({}, status {}, number {:?}, error {:?}; on the network: {:?})",
                m.id, m.text, m.whatsapp_id, m.status, m.instance_id, m.error, on
            )
        };
        if copies.len() > numbers.len() {
            v.violation("sent_twice_by_one_number", what());
        }
        if numbers.len() > 1 {
            if banned_between(obs, copies[0], copies[copies.len() - 1]) {
                v.two_number.push(what());
            } else {
                v.violation("sent_twice", what());
            }
        }
        match m.status.as_str() {
            "sent" | "delivered" | "read" => {
                if copies.is_empty() {
                    v.violation("sent_but_not_on_network", what());
                } else if copies.len() == 1
                    && m.instance_id.as_deref() != Some(&copies[0].instance_id)
                {
                    v.violation("sent_by_another_number", what());
                }
            }
            "failed" => {
                if m.error.is_none() {
                    v.violation("failed_without_reason", what());
                }
                if !copies.is_empty() {
                    v.failed_but_on_network.push(what());
                }
            }
            _ => {
                let held_by_stuck = m.instance_id.as_ref().is_some_and(|i| exempt.contains(i));
                v.flag(!held_by_stuck, "never_finished", what());
            }
        }
    }

    for n in &obs.network {
        if !by_wa.contains_key(n.whatsapp_id.as_str()) {
            v.violation(
                "network_message_not_accepted",
                format!(
                    "{} sent {:?} ({}) at {}, which no message has",
                    n.instance_id, n.text, n.whatsapp_id, n.at
                ),
            );
        }
    }
    for (text, ids) in &texts_on_net {
        if ids.len() > 1 {
            v.violation(
                "text_sent_under_two_ids",
                format!("{text:?} reached the network under {} WhatsApp ids: {ids:?}", ids.len()),
            );
        }
    }
}

/// Whether the number that sent `first` was banned or logged out between `first` and
/// `last` (the documented case: the in-doubt message went back to the pool).
fn banned_between(obs: &Observed, first: &NetMessage, last: &NetMessage) -> bool {
    obs.events.iter().any(|e| {
        e.kind == "instance.disconnected"
            && e.instance_id.as_deref() == Some(&first.instance_id)
            && matches!(e.data["reason"].as_str(), Some("banned" | "logged_out"))
            && e.created_at >= first.at
            && e.created_at <= last.at
    })
}

/// Every accepted campaign is listed and ended (finished or canceled), its totals add up,
/// and a finished one has nothing left to send.
fn campaigns(ledger: &Ledger, obs: &Observed, v: &mut Verdict) {
    let listed: HashMap<&str, _> = obs.campaigns.iter().map(|c| (c.id.as_str(), c)).collect();
    for call in &ledger.campaigns {
        if let Outcome::Accepted(id) = &call.outcome {
            if !listed.contains_key(id.as_str()) {
                v.violation(
                    "campaign_lost",
                    format!("campaign {} ({id}) is not listed", call.name),
                );
            }
        }
    }
    const BUCKETS: [&str; 9] = [
        "pending",
        "queued",
        "sending",
        "sent",
        "delivered",
        "read",
        "failed",
        "skipped",
        "canceled",
    ];
    for c in &obs.campaigns {
        let sum: u64 = BUCKETS.iter().map(|b| c.total(b)).sum();
        if sum != c.recipients {
            v.violation(
                "campaign_totals",
                format!("{}: buckets add up to {sum} of {}: {}", c.id, c.recipients, c.totals),
            );
        }
        match c.status.as_str() {
            "finished" => {
                let left = c.total("pending") + c.total("queued") + c.total("sending");
                if left > 0 {
                    v.violation("campaign_finished_early", format!("{}: {}", c.id, c.totals));
                }
            }
            "canceled" => {}
            other => {
                v.violation("campaign_not_ended", format!("{} is {other}: {}", c.id, c.totals))
            }
        }
    }
}

/// Every inbound message the network took is in the event log exactly once, on its number;
/// and every `message.received` is one the network delivered.
fn inbound(ledger: &Ledger, obs: &Observed, checks: Checks, v: &mut Verdict) {
    let enforced = checks.inbound_exactly_once;
    let mut received: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in obs.events.iter().filter(|e| e.kind == "message.received") {
        received.entry(e.data["message_id"].as_str().unwrap_or_default()).or_default().push(e);
    }
    let mut injected = HashSet::new();
    for call in &ledger.inbound {
        let Outcome::Accepted(wa) = &call.outcome else { continue };
        injected.insert(wa.as_str());
        v.inbound_checked += 1;
        let got = received.get(wa.as_str()).map(Vec::as_slice).unwrap_or_default();
        match got.len() {
            0 => v.flag(
                enforced,
                "inbound_lost",
                format!("{wa} to {} is not in the event log", call.instance_id),
            ),
            1 if got[0].instance_id.as_deref() != Some(&call.instance_id) => v.flag(
                enforced,
                "inbound_on_another_number",
                format!("{wa} to {} was recorded for {:?}", call.instance_id, got[0].instance_id),
            ),
            1 => {}
            n => v.flag(
                enforced,
                "inbound_duplicated",
                format!(
                    "{wa} to {} is in the event log {n} times (events {:?})",
                    call.instance_id,
                    got.iter().map(|e| e.id).collect::<Vec<_>>()
                ),
            ),
        }
    }
    for (wa, events) in &received {
        if !injected.contains(wa) {
            v.flag(
                enforced,
                "inbound_unknown",
                format!(
                    "message.received {wa} (events {:?}) was never sent by a contact",
                    events.iter().map(|e| e.id).collect::<Vec<_>>()
                ),
            );
        }
    }
}

/// Every event reached every webhook whose filter matches it: under exactly one delivery id
/// on one node (a receiver deduplicating on `X-Bzapper-Delivery` sees it once), at least
/// once in a cluster.
fn webhooks(obs: &Observed, topology: Topology, v: &mut Verdict) {
    for w in &obs.webhooks {
        let mut deliveries: HashMap<u64, HashSet<&str>> = HashMap::new();
        let mut requests: HashMap<&str, usize> = HashMap::new();
        for g in &w.got {
            deliveries.entry(g.event_id).or_default().insert(g.delivery.as_str());
            *requests.entry(g.delivery.as_str()).or_default() += 1;
        }
        v.redelivered += requests.values().map(|n| n - 1).sum::<usize>();
        let mut missed = Vec::new();
        for e in &obs.events {
            if !w.events.iter().any(|p| matches(p, &e.kind)) {
                continue;
            }
            v.deliveries_checked += 1;
            let n = deliveries.get(&e.id).map_or(0, HashSet::len);
            if n == 0 {
                missed.push(format!("{} {}", e.id, e.kind));
            } else if n > 1 && topology == Topology::Single {
                v.violation(
                    "webhook_delivered_twice",
                    format!(
                        "webhook {} got event {} ({}) under {n} delivery ids",
                        w.id, e.id, e.kind
                    ),
                );
            }
        }
        if !missed.is_empty() {
            v.violation(
                "webhook_missed",
                format!(
                    "webhook {} ({:?}) never got {} events: {}",
                    w.id,
                    w.events,
                    missed.len(),
                    short_list(&missed)
                ),
            );
        }
    }
}

/// Every event that calls for an alert reached the alert target at least once.
fn alerts(obs: &Observed, checks: Checks, v: &mut Verdict) {
    let got: HashSet<u64> = obs.alerts.iter().map(|g| g.event_id).collect();
    let mut missed = Vec::new();
    for e in &obs.events {
        let Some(kind) = alert_kind(e) else { continue };
        v.alerts_checked += 1;
        if !got.contains(&e.id) {
            missed.push(format!("{} {kind} {}", e.id, e.instance_id.as_deref().unwrap_or("?")));
        }
    }
    if !missed.is_empty() {
        v.flag(
            checks.alerts_durable,
            "alert_missed",
            format!(
                "{} of {} due alerts never reached the target: {}",
                missed.len(),
                v.alerts_checked,
                short_list(&missed)
            ),
        );
    }
}

/// No banned or logged-out number was handed a send after its event was recorded: nothing on
/// its outbox between its `instance.disconnected` (banned, logged_out) and its next
/// `instance.connecting`/`instance.connected`.
fn no_send_while_out(obs: &Observed, v: &mut Verdict) {
    let mut by_number: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in &obs.events {
        if let Some(i) = &e.instance_id {
            by_number.entry(i.as_str()).or_default().push(e);
        }
    }
    let mut net: HashMap<&str, Vec<&NetMessage>> = HashMap::new();
    for n in &obs.network {
        net.entry(n.instance_id.as_str()).or_default().push(n);
    }
    for (number, events) in by_number {
        // (event, its time, the event that ended the window)
        let mut windows: Vec<(&Event, Option<&Event>)> = Vec::new();
        let mut open: Option<&Event> = None;
        for e in &events {
            let out = e.kind == "instance.disconnected"
                && matches!(e.data["reason"].as_str(), Some("banned" | "logged_out"));
            if out && open.is_none() {
                open = Some(e);
            } else if open.is_some()
                && matches!(e.kind.as_str(), "instance.connecting" | "instance.connected")
            {
                windows.push((open.take().unwrap(), Some(e)));
            }
        }
        if let Some(o) = open {
            windows.push((o, None));
        }
        for (start, end) in windows {
            let end_at = end.map(|e| e.created_at);
            for n in net.get(number).map(Vec::as_slice).unwrap_or_default() {
                if n.at > start.created_at && end_at.is_none_or(|t| n.at < t) {
                    v.violation(
                        "send_while_banned_or_logged_out",
                        format!(
                            "{number} sent {:?} ({}) at {} after event {} ({} {}) and before {:?}",
                            n.text,
                            n.whatsapp_id,
                            n.at,
                            start.id,
                            start.kind,
                            start.data["reason"],
                            end.map(|e| e.id)
                        ),
                    );
                }
            }
            let end_id = end.map_or(u64::MAX, |e| e.id);
            for e in &events {
                if e.kind == "message.status"
                    && e.data["status"] == "sending"
                    && e.id > start.id
                    && e.id < end_id
                {
                    v.sending_after_drop_event.push(format!(
                        "{number}: sending {} recorded as event {} after event {} ({})",
                        e.data["message_id"], e.id, start.id, start.data["reason"]
                    ));
                }
            }
        }
    }
}

/// Every linked number that was not logged out or banned for good is connected again,
/// without a new scan; the others are in the state their fault left them.
fn reconnected(ledger: &Ledger, obs: &Observed, exempt: &HashSet<String>, v: &mut Verdict) {
    let now: HashMap<&str, _> = obs.instances.iter().map(|i| (i.id.as_str(), i)).collect();
    for n in &ledger.numbers {
        v.numbers_checked += 1;
        let Some(i) = now.get(n.id.as_str()) else {
            v.violation("number_lost", format!("{} ({}) is not listed", n.id, n.phone));
            continue;
        };
        let state =
            format!("{} ({}) is {} ({:?}: {:?})", n.id, n.phone, i.status, i.reason, i.detail);
        match n.fate {
            Fate::Linked if i.status != "connected" => {
                v.flag(
                    !exempt.contains(&n.id),
                    "not_reconnected",
                    format!("{state}; temporary bans {:?}", n.temp_bans),
                );
            }
            Fate::LoggedOut
                if (i.status.as_str(), i.reason.as_deref())
                    != ("disconnected", Some("logged_out")) =>
            {
                v.violation("logged_out_number_state", state);
            }
            Fate::PermBanned
                if (i.status.as_str(), i.reason.as_deref()) != ("disconnected", Some("banned")) =>
            {
                v.violation("banned_number_state", state);
            }
            _ => {}
        }
    }
}

fn short_list(items: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut s = items.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(", … ({} more)", items.len() - SHOWN));
    }
    s
}
