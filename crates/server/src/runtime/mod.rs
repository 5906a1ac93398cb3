//! The gateway's long-running parts: the send [`scheduler`], the instance [`supervisor`] and
//! its [`inbound`] path, the cluster's [`leases`], [`alerts`], [`webhooks`] (both durable
//! senders built on [`delivery`]), the [`campaigns`] runner, the paced, cached
//! [`contact_checks`] (the API's and the send path's first-contact pre-check) and the
//! dashboard's [`series`] sampler.

pub mod alerts;
pub mod calls;
pub mod campaigns;
pub mod contact_checks;
pub mod delivery;
pub mod inbound;
pub mod leases;
pub mod scheduler;
pub mod series;
pub mod session_bridge;
pub mod supervisor;
#[cfg(test)]
pub(crate) mod test_support;
pub mod unread;
pub mod webhooks;
