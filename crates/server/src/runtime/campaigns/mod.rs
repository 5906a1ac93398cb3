//! Campaigns: one template sent to many recipients through the same paced, rotating, durable
//! queue as single messages, fed into it a few at a time so that a pause takes effect at once
//! and a schedule window is kept. See `docs/campaigns.md`.
//!
//! - [`template`], [`window`], [`estimate`], [`progress`]: the pure rules (placeholders, the
//!   schedule window, the finish estimate, the counts), tested without I/O.
//! - [`clock`]: the injected time of day the windows go by.
//! - [`Campaigns`] (`service`): the service the routes call: status changes with their events,
//!   cancelling, and what the pool can do now.
//! - `runner`: the task that feeds running campaigns into the queue, finishes them and reports
//!   progress; on a node of several, only on the holder of the `campaigns` role.

pub mod clock;
pub mod estimate;
pub mod progress;
mod runner;
mod service;
pub mod template;
pub mod window;

use std::sync::Arc;

use bzapper_core::sending::WarmingSchedule;
use bzapper_store::Store;
use tokio::sync::watch;

pub use clock::{Clock, FakeClock, SystemClock};
pub use service::{
    reported_status, window_of, Action, Campaigns, Outcome, CANCELED_ERROR, MAX_RECIPIENTS, ROLE,
};

use crate::cluster::role::Role;
use crate::cluster::Cluster;
use crate::events::recorder::Recorder;
use crate::runtime::scheduler::Scheduler;

/// Starts campaigns on this node: the cancel follower (every node) and the runner (the only
/// node, or the holder of the `campaigns` role). Both stop when `closing` turns true.
pub fn spawn(
    clock: Arc<dyn Clock>,
    warming: WarmingSchedule,
    store: Arc<dyn Store>,
    recorder: Arc<Recorder>,
    scheduler: Arc<Scheduler>,
    cluster: Option<Arc<Cluster>>,
    closing: watch::Receiver<bool>,
) -> Arc<Campaigns> {
    let campaigns = Campaigns::new(store, recorder, scheduler, clock, warming);
    let role = match &cluster {
        Some(c) => Role::hold(c.clone(), ROLE),
        None => Role::always(),
    };
    tokio::spawn(runner::follow_cancels(campaigns.clone(), closing.clone()));
    tokio::spawn(runner::Runner::new(campaigns.clone()).run(role, closing));
    campaigns
}
