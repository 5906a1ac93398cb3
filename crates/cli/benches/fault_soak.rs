//! The long run of the seeded fault test (issue 18): the CI test's worlds (`tests/fault.rs`),
//! driven for minutes in cycles of rounds, each cycle ending with a settle phase and the
//! checks of everything since the start. Prints the seed, rounds, faults injected by kind,
//! what was checked, and every violation (the goal is none); exits 1 when there is one.
//!
//! ```sh
//! cargo bench -p bzapper --bench fault_soak -- --minutes 30 --seed 42
//! BZAPPER_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench -p bzapper --bench fault_soak -- --minutes 30 --seed 42 --topology both
//! ```
//!
//! Flags (or env): `--minutes` (`BZAPPER_FAULT_MINUTES`, 30), `--seed` (`BZAPPER_FAULT_SEED`,
//! random and printed), `--topology single|cluster|both` (`BZAPPER_FAULT_TOPOLOGY`; `both` when
//! PostgreSQL is configured, else `single`), `--rounds-per-cycle` (10), `--enforce all` or
//! `inbound,alerts,ban_expiry` (`BZAPPER_FAULT_ENFORCE`; default
//! `fault_support::checks::ENFORCED_BY_DEFAULT`). The worlds run at the same time.

#[path = "../tests/fault_support/mod.rs"]
mod fault_support;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use fault_support::{Checks, Report, Shape, Topology, World, WorldConfig};

struct Args {
    minutes: f64,
    seed: u64,
    topologies: Vec<Topology>,
    rounds_per_cycle: usize,
    checks: Checks,
}

fn args() -> Args {
    let mut argv = std::env::args().skip(1);
    let env = |k: &str| std::env::var(k).ok();
    let mut minutes = env("BZAPPER_FAULT_MINUTES");
    let mut seed = env("BZAPPER_FAULT_SEED");
    let mut topology = env("BZAPPER_FAULT_TOPOLOGY");
    let mut rounds = None;
    let mut enforce = None;
    while let Some(a) = argv.next() {
        let mut value = || argv.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--minutes" => minutes = Some(value()),
            "--seed" => seed = Some(value()),
            "--topology" => topology = Some(value()),
            "--rounds-per-cycle" => rounds = Some(value()),
            "--enforce" => enforce = Some(value()),
            "--bench" => {} // what `cargo bench` passes to every bench binary
            other => panic!("unknown argument `{other}`"),
        }
    }
    let pg = support::pg_test_url(true).is_some();
    let topologies = match topology.as_deref().unwrap_or(if pg { "both" } else { "single" }) {
        "single" => vec![Topology::Single],
        "cluster" => vec![Topology::Cluster],
        "both" => vec![Topology::Single, Topology::Cluster],
        other => panic!("--topology: `{other}` is not single, cluster or both"),
    };
    if topologies.contains(&Topology::Cluster) && !pg {
        panic!("a cluster world needs BZAPPER_TEST_DATABASE_URL (or DATABASE_URL)");
    }
    let seed = seed.map(|s| s.parse().expect("--seed: a number")).unwrap_or_else(|| {
        use rand::Rng;
        rand::thread_rng().gen_range(0..1_000_000)
    });
    Args {
        minutes: minutes.map(|m| m.parse().expect("--minutes: a number")).unwrap_or(30.0),
        seed,
        topologies,
        rounds_per_cycle: rounds
            .map(|r| r.parse().expect("--rounds-per-cycle: a number"))
            .unwrap_or(10),
        checks: enforce.map_or_else(Checks::from_env, |list| Checks::parse(&list)),
    }
}

/// Runs one world's cycles until `deadline`; answers its last report.
async fn soak(topology: Topology, args: &Args, deadline: Instant) -> Report {
    let cfg = WorldConfig {
        topology,
        seed: args.seed,
        shape: Shape::soak(),
        checks: args.checks,
        numbers: 6,
        min_linked: 4,
        pg_url: support::pg_test_url(true),
        keep_logs: std::env::var_os("BZAPPER_TEST_KEEP_LOGS").is_some(),
        settle_limit: Duration::from_secs(120),
    };
    let mut world = World::create(cfg).await;
    let mut cycle = 0;
    loop {
        cycle += 1;
        let report = world.cycle(args.rounds_per_cycle).await;
        eprintln!("-- {} world, cycle {cycle}:\n{report}", topology.name());
        if Instant::now() >= deadline {
            return report;
        }
    }
}

fn main() {
    let args = args();
    let names: Vec<&str> = args.topologies.iter().map(|t| t.name()).collect();
    eprintln!(
        "fault soak: seed {} (replay with --seed {}), {} minutes, worlds {names:?}, {} rounds a cycle",
        args.seed, args.seed, args.minutes, args.rounds_per_cycle
    );
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs_f64(args.minutes * 60.0);
    let reports = rt.block_on(async {
        let runs = args.topologies.iter().map(|t| soak(*t, &args, deadline));
        futures::future::join_all(runs).await
    });
    println!("\n==== fault soak summary: seed {}, {} minutes ====", args.seed, args.minutes);
    let mut violations = 0;
    for r in &reports {
        println!("{r}");
        violations += r.violations.len();
    }
    println!("TOTAL VIOLATIONS: {violations}");
    if violations > 0 {
        std::process::exit(1);
    }
}
