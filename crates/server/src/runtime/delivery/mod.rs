//! What the durable senders (webhooks and alerts) share: following the event log from a
//! cursor kept in the store ([`follow`]), the in-memory bookkeeping of due items with a fair
//! share per lane ([`dispatch`]), the task that scans the store and starts attempts
//! ([`engine`]), and what an attempt's answer makes of an item ([`outcome`]).

pub(crate) mod dispatch;
pub(crate) mod engine;
pub(crate) mod follow;
pub(crate) mod outcome;

pub(crate) use dispatch::Deliverable;
pub(crate) use engine::{Courier, Engine};
pub(crate) use follow::{follow, LogReader};
