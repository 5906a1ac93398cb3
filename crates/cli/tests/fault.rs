//! The seeded fault test, short run (issue 18): a few rounds of workload and faults against
//! one gateway on SQLite, and against a 3-node cluster on PostgreSQL (when
//! `BZAPPER_TEST_DATABASE_URL` is set), then the invariants: every accepted message reached
//! the network exactly once or failed with a reason, every event reached every matching
//! webhook, no banned or logged-out number was handed a send, every linked number is
//! connected again (and, once enforced, inbound exactly once and durable alerts).
//!
//! The seed is fixed (`BZAPPER_FAULT_SEED` replays another); `BZAPPER_FAULT_ROUNDS` sets the
//! rounds; `BZAPPER_FAULT_ENFORCE` (`all`, or `inbound,alerts,ban_expiry`) turns on the checks
//! of issue 18's other items. The long run is `benches/fault_soak.rs` (BENCHMARKS.md).

mod fault_support;
mod support;

use std::time::Duration;

use fault_support::{seed_from_env, Checks, Shape, Topology, World, WorldConfig};

const SEED: u64 = 18;

fn rounds() -> usize {
    std::env::var("BZAPPER_FAULT_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(6)
}

async fn run(topology: Topology, pg_url: Option<String>) {
    let cfg = WorldConfig {
        topology,
        seed: seed_from_env(SEED),
        shape: Shape::ci(),
        checks: Checks::from_env(),
        numbers: 5,
        min_linked: 3,
        pg_url,
        keep_logs: std::env::var_os("BZAPPER_TEST_KEEP_LOGS").is_some(),
        settle_limit: Duration::from_secs(60),
    };
    let mut world = World::create(cfg).await;
    let report = world.cycle(rounds()).await;
    eprintln!("{report}");
    assert!(report.faults_total() > 0, "no fault was injected: the run proves nothing");
    assert!(report.sends.0 > 0, "no send was accepted: the run proves nothing");
    assert!(
        report.violations.is_empty(),
        "{} invariant violations (seed {}); see the report above",
        report.violations.len(),
        report.seed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gateway_keeps_every_invariant_under_seeded_faults() {
    run(Topology::Single, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_keeps_every_invariant_under_seeded_faults() {
    let Some(pg) = support::pg_test_url(false) else {
        eprintln!(
            "cluster fault test SKIPPED: set BZAPPER_TEST_DATABASE_URL (for example \
             postgres://postgres@127.0.0.1:5432/test) to run it"
        );
        return;
    };
    run(Topology::Cluster, Some(pg)).await;
}

/// The schedule is the seed's: the same seed gives the same rounds, another seed others.
#[test]
fn a_seed_gives_the_same_schedule_and_another_seed_another() {
    use fault_support::plan::Planner;
    let rounds = |seed| {
        let mut p = Planner::new(seed, Topology::Cluster, Shape::ci());
        (0..5).map(|_| p.next_round()).collect::<Vec<_>>()
    };
    assert_eq!(rounds(42), rounds(42));
    assert_ne!(rounds(42), rounds(43));
}

/// The CI run's first four rounds already strike with every kind of fault of its world.
#[test]
fn the_ci_rounds_strike_with_every_kind_of_fault() {
    use fault_support::plan::{Action, Planner};
    for topology in [Topology::Single, Topology::Cluster] {
        let mut p = Planner::new(SEED, topology, Shape::ci());
        let mut kinds: Vec<&str> = (0..4)
            .flat_map(|_| p.next_round().steps)
            .filter_map(|s| match s.action {
                Action::Fault(f) => Some(f.kind()),
                _ => None,
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        let all = if topology == Topology::Single { 8 } else { 9 };
        assert_eq!(kinds.len(), all, "{topology:?}: {kinds:?}");
    }
}

/// The checks on their own, on made-up observations: each catches what it is for.
mod checks {
    use chrono::{DateTime, Duration, Utc};
    use serde_json::json;

    use super::fault_support::checks::{check, Checks};
    use super::fault_support::ledger::{InboundCall, Ledger, Outcome};
    use super::fault_support::observed::{Event, Message, NetMessage, Observed, WebhookSeen};
    use super::fault_support::receivers::Got;
    use super::Topology;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap() + Duration::seconds(s)
    }

    fn sent(id: &str, wa: &str, number: &str) -> Message {
        Message {
            id: id.into(),
            status: "sent".into(),
            instance_id: Some(number.into()),
            whatsapp_id: wa.into(),
            text: id.into(),
            error: None,
            campaign_id: None,
        }
    }

    fn on_net(number: &str, wa: &str, text: &str, at: i64) -> NetMessage {
        NetMessage {
            instance_id: number.into(),
            whatsapp_id: wa.into(),
            text: text.into(),
            at: t(at),
        }
    }

    fn event(id: u64, kind: &str, number: &str, at: i64, data: serde_json::Value) -> Event {
        Event { id, kind: kind.into(), instance_id: Some(number.into()), created_at: t(at), data }
    }

    fn invariants(obs: &Observed, checks: Checks) -> Vec<&'static str> {
        let v = check(&Ledger::default(), obs, Topology::Single, checks);
        v.violations.iter().map(|x| x.invariant).collect()
    }

    #[test]
    fn a_message_from_two_numbers_is_a_violation_unless_the_first_was_banned_in_between() {
        let mut obs = Observed {
            messages: vec![sent("m1", "W1", "n2")],
            network: vec![on_net("n1", "W1", "m1", 10), on_net("n2", "W1", "m1", 30)],
            ..Observed::default()
        };
        assert_eq!(invariants(&obs, Checks::TODAY), ["sent_twice"]);
        obs.events = vec![event(1, "instance.disconnected", "n1", 20, json!({"reason": "banned"}))];
        let v = check(&Ledger::default(), &obs, Topology::Single, Checks::TODAY);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!(v.two_number.len(), 1, "the documented case is counted");
    }

    #[test]
    fn a_send_after_the_ban_event_and_before_the_reconnect_is_a_violation() {
        let ban = json!({"reason": "banned"});
        let obs = Observed {
            messages: vec![sent("m1", "W1", "n1"), sent("m2", "W2", "n1")],
            network: vec![on_net("n1", "W1", "m1", 15), on_net("n1", "W2", "m2", 40)],
            events: vec![
                event(1, "instance.disconnected", "n1", 10, ban),
                event(2, "instance.connecting", "n1", 30, json!({})),
            ],
            ..Observed::default()
        };
        assert_eq!(invariants(&obs, Checks::TODAY), ["send_while_banned_or_logged_out"]);
        // The ban called for an alert the target never got: counted once alerts are durable.
        assert_eq!(
            invariants(&obs, Checks::ALL),
            ["alert_missed", "send_while_banned_or_logged_out"]
        );
    }

    #[test]
    fn a_lost_inbound_message_is_reported_and_counts_only_once_its_check_is_on() {
        let mut ledger = Ledger::default();
        ledger.inbound.push(InboundCall {
            instance_id: "n1".into(),
            outcome: Outcome::Accepted("IN1".into()),
        });
        let obs = Observed::default();
        let today = check(&ledger, &obs, Topology::Single, Checks::TODAY);
        assert!(today.violations.is_empty());
        assert_eq!(today.not_enforced.len(), 1);
        let on = check(&ledger, &obs, Topology::Single, Checks::parse("inbound"));
        assert_eq!(on.violations.iter().map(|x| x.invariant).collect::<Vec<_>>(), ["inbound_lost"]);
    }

    #[test]
    fn a_webhook_must_get_every_matching_event_once_on_one_node_and_at_least_once_in_a_cluster() {
        let got = |delivery: &str, event_id| Got {
            delivery: delivery.into(),
            event_id,
            event_type: String::new(),
        };
        let obs = Observed {
            events: vec![
                event(1, "instance.connected", "n1", 1, json!({})),
                event(2, "message.received", "n1", 2, json!({"message_id": "X"})),
            ],
            webhooks: vec![WebhookSeen {
                id: "w".into(),
                events: vec!["instance.*".into()],
                got: vec![got("d1", 1), got("d2", 1)],
            }],
            ..Observed::default()
        };
        let single = check(&Ledger::default(), &obs, Topology::Single, Checks::TODAY);
        assert_eq!(
            single.violations.iter().map(|x| x.invariant).collect::<Vec<_>>(),
            ["webhook_delivered_twice"]
        );
        assert!(check(&Ledger::default(), &obs, Topology::Cluster, Checks::TODAY)
            .violations
            .is_empty());
        let none = Observed {
            webhooks: vec![WebhookSeen { got: vec![], ..obs.webhooks[0].clone() }],
            ..obs
        };
        let missed = check(&Ledger::default(), &none, Topology::Cluster, Checks::TODAY);
        assert_eq!(
            missed.violations.iter().map(|x| x.invariant).collect::<Vec<_>>(),
            ["webhook_missed"]
        );
    }
}
