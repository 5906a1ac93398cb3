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
