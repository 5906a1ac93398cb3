//! Coordination of several gateway nodes sharing one database: node heartbeats, one lease per
//! number (exactly one node holds its WhatsApp connection), named role leases (one node runs
//! the webhook sender), claims of queued sends by the node that can send them, and wake-up
//! signals between nodes. Only the PostgreSQL store implements it; a SQLite gateway is one
//! node and needs none of it.
//!
//! Every time here is the database's clock, so nodes with skewed clocks still agree on who
//! holds what.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::{InstanceRecord, MessageRecord, Result};

/// What a node says about itself in its heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    /// Unique per process: a restarted process is a new node.
    pub id: String,
    /// Where the other nodes reach its HTTP API (commands for the numbers it holds).
    pub url: String,
    pub started_at: DateTime<Utc>,
}

/// A node as the cluster sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub id: String,
    pub url: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// Heartbeat within the lease time.
    pub live: bool,
    /// The instances whose lease it holds, unexpired, sorted.
    pub instances: Vec<String>,
}

/// The node holding a live lease.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRef {
    pub id: String,
    pub url: String,
}

/// The outcome of [`ClusterStore::acquire`].
#[derive(Debug, Clone, PartialEq)]
pub enum Acquired {
    /// The lease is ours now. `previous` is the node whose lease had expired (it died or lost
    /// its database), `None` when the number was held by nobody or already by us.
    Yes { previous: Option<String> },
    /// Another node holds an unexpired lease.
    HeldBy(NodeRef),
}

/// A number that should run (not `disconnected`, or waiting for a temporary ban to end) and
/// that no node holds: it should be connected, now or when its ban ends, and nobody is doing
/// it.
#[derive(Debug, Clone, PartialEq)]
pub struct Orphan {
    pub instance: InstanceRecord,
    /// The node whose lease expired, if any.
    pub previous_node: Option<String>,
}

/// Counts a node needs to decide how many numbers are its fair share.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement {
    pub live_nodes: u32,
    /// Numbers that should run: not `disconnected`, or waiting for a temporary ban to end.
    pub active_instances: u32,
    /// Those numbers held under an unexpired lease, by node id.
    pub held_active: HashMap<String, u32>,
}

/// A wake-up sent to every node (LISTEN/NOTIFY on PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// New events were appended to the log.
    Events,
    /// A lease was released or a number needs a holder.
    Leases,
    /// Sends were queued that the accepting node could not claim.
    Queue,
    /// A webhook delivery was made due outside the webhook sender (a re-send asked for on
    /// any node): the node running the sender should look in the store at once.
    Webhooks,
    /// An API key was revoked or a tenant deleted: every node drops the keys it has cached
    /// and ends the event streams of keys that are gone.
    Keys,
    /// The listening connection was lost and re-established: signals may have been missed,
    /// so every listener should look again.
    Resync,
}

#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// Records that `node` is alive and extends every lease it holds to `ttl` from now.
    /// Returns the ids of the instances it holds, sorted: a number missing from the list is
    /// no longer ours (our lease expired and another node took it) and must be let go at once.
    async fn heartbeat(&self, node: &NodeInfo, ttl: Duration) -> Result<Vec<String>>;

    /// Every node with a heartbeat in the last `forget_after`, live or not, oldest first.
    async fn nodes(&self, ttl: Duration, forget_after: Duration) -> Result<Vec<NodeView>>;

    /// A node that stops cleanly: its leases are released (others take its numbers at once)
    /// and it leaves the node list.
    async fn leave(&self, node_id: &str) -> Result<()>;

    /// Takes the instance's lease for `node_id` for `ttl`, unless another node holds an
    /// unexpired one. Atomic: of two nodes asking at once, one gets it.
    async fn acquire(&self, instance_id: &str, node_id: &str, ttl: Duration) -> Result<Acquired>;

    /// Gives the lease up (only if `node_id` holds it).
    async fn release(&self, instance_id: &str, node_id: &str) -> Result<()>;

    /// The node holding an unexpired lease on the instance, if any.
    async fn holder(&self, instance_id: &str) -> Result<Option<NodeRef>>;

    /// Numbers that should run (see [`Orphan`]) without a live lease, oldest first.
    async fn orphans(&self, limit: u32) -> Result<Vec<Orphan>>;

    async fn placement(&self, ttl: Duration) -> Result<Placement>;

    /// Takes or renews the named role for `ttl`; true while `node_id` holds it.
    async fn hold_role(&self, role: &str, node_id: &str, ttl: Duration) -> Result<bool>;

    /// Claims up to `limit` queued sends for `node_id`, oldest first, skipping rows another
    /// node is claiming at the same moment: those unclaimed or claimed by a node whose
    /// heartbeat is older than `ttl`, and that this node can send: a forced send (or one in
    /// doubt, `sending`, which must go out from the same number) only when its number is in
    /// `held`; any other only when its (tenant, pool) is in `pools`.
    async fn claim_messages(
        &self,
        node_id: &str,
        ttl: Duration,
        held: &[String],
        pools: &[(String, String)],
        limit: u32,
    ) -> Result<Vec<MessageRecord>>;

    /// Claims one freshly accepted send for `node_id`; false when another node has it.
    async fn claim_message(&self, id: &str, node_id: &str) -> Result<bool>;

    /// Stores an accepted message as [`crate::MessageStore::insert_message`] does (by group
    /// commit; a duplicate idempotency key is `Conflict`), claimed for `claim_for` in the same
    /// statement; or, with `None`, unclaimed, and the other nodes get a [`Signal::Queue`] once
    /// it is committed (one for the whole batch it was committed with).
    async fn insert_accepted(&self, m: &MessageRecord, claim_for: Option<&str>) -> Result<()>;

    /// Hands sends this node cannot make back to the cluster.
    async fn release_messages(&self, node_id: &str, ids: &[String]) -> Result<()>;

    /// Hands back every send still claimed under `node_id`: a node starting under the id of
    /// a run that died calls it before it claims anything. That run's claims would otherwise
    /// look like a live node's to every node (this one too, which never had them in memory),
    /// and no node would send them.
    async fn release_all_claims(&self, node_id: &str) -> Result<()>;

    /// Whether the pool has a connected, not banned number with a health score of at least
    /// `threshold`, on any node.
    async fn pool_has_connected_number(
        &self,
        tenant_id: &str,
        pool: &str,
        threshold: u8,
    ) -> Result<bool>;

    /// Wakes every node's listeners for `signal`, this node's too.
    async fn signal(&self, signal: Signal) -> Result<()>;

    /// Signals from every node, for as long as the receiver is kept. The stream reconnects
    /// by itself after a lost connection and then yields [`Signal::Resync`].
    async fn listen(&self) -> Result<mpsc::Receiver<Signal>>;
}
