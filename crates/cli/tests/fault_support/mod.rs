//! The seeded fault driver of issue 18, shared by the CI test (`tests/fault.rs`) and the long
//! run (`benches/fault_soak.rs`): a world of real processes (the simulated network, one
//! gateway on SQLite or three nodes on PostgreSQL) runs a workload (single sends forced and
//! rotating, campaigns, inbound messages, webhooks and alerts to receivers of its own) while
//! faults strike at moments drawn from a seed; after the faults stop and the world settles,
//! the invariants are checked. The seed fixes the schedule (what happens when, to which pick);
//! the processes' own timing is not under its control, so a replay repeats the schedule, not
//! every interleaving.
#![allow(dead_code)]

pub mod api;
pub mod checks;
pub mod ledger;
pub mod observed;
pub mod plan;
pub mod procs;
pub mod receivers;
pub mod report;
pub mod world;

pub use checks::Checks;
pub use plan::{Shape, Topology};
#[allow(unused_imports)] // the bench uses it
pub use report::Report;
pub use world::{World, WorldConfig};

/// The seed: `BZAPPER_FAULT_SEED` when set, else `default`.
pub fn seed_from_env(default: u64) -> u64 {
    match std::env::var("BZAPPER_FAULT_SEED") {
        Ok(s) => {
            s.trim().parse().unwrap_or_else(|_| panic!("BZAPPER_FAULT_SEED: `{s}` is not a number"))
        }
        Err(_) => default,
    }
}
