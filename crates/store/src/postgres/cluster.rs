//! [`ClusterStore`] on PostgreSQL: heartbeats and leases are rows stamped with the
//! database's clock (`bz_now_ms()`), claims use `FOR UPDATE SKIP LOCKED`, and signals are
//! `NOTIFY`s on one channel per schema (so that stores in different schemas of one database,
//! as in the tests, do not wake each other).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

use sqlx::postgres::PgRow;
use sqlx::Postgres;

use super::PgStore;
use crate::cluster::{
    Acquired, ClusterStore, NodeInfo, NodeRef, NodeView, Orphan, Placement, Signal,
};
use crate::sql::message_writer::Accepted;
use crate::sql::{db, message_from_row, ts, Backend, INSTANCE_COLUMNS, MESSAGE_COLUMNS};
use crate::time::to_millis;
use crate::{MessageRecord, Result, StoreError};

fn col<T: crate::sql::Col>(row: &PgRow, name: &str) -> Result<T> {
    Postgres::col(row, name)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(super) fn payload(s: Signal) -> &'static str {
    match s {
        Signal::Events => "events",
        Signal::Leases => "leases",
        Signal::Queue => "queue",
        Signal::Webhooks => "webhooks",
        Signal::Keys => "keys",
        Signal::Resync => "resync",
    }
}

fn parse_payload(p: &str) -> Option<Signal> {
    Some(match p {
        "events" => Signal::Events,
        "leases" => Signal::Leases,
        "queue" => Signal::Queue,
        "webhooks" => Signal::Webhooks,
        "keys" => Signal::Keys,
        "resync" => Signal::Resync,
        _ => return None,
    })
}

/// The numbers a node should hold: those not `disconnected`, and those waiting for a
/// temporary ban to end (the holder connects them then).
const SHOULD_RUN: &str = "(status <> 'disconnected' OR ban_until IS NOT NULL)";

/// Nodes whose heartbeat is within `$n` ms (the lease time).
/// A pool message whose contact's sticky number (the pool's number with the latest
/// conversation within the pool's sticky window, the pool sticky) is connected and not one of
/// this node's (`$3`): the node holding that number claims it, so the contact keeps its number
/// across nodes. A sticky number that is not connected leaves the message to any node, whose
/// rotation then picks. `m` is the message.
const HELD_ELSEWHERE_STICKY: &str = "EXISTS (SELECT 1 FROM conversations c \
    JOIN instances i ON i.id = c.instance_id \
    LEFT JOIN pools p ON p.tenant_id = m.tenant_id AND p.name = m.pool \
    WHERE c.tenant_id = m.tenant_id AND c.contact = m.to_jid AND i.pool = m.pool \
    AND COALESCE(p.sticky, TRUE) \
    AND c.last_at >= bz_now_ms() - COALESCE(p.sticky_window_days, 30) * 86400000 \
    AND i.status = 'connected' AND NOT (c.instance_id = ANY($3)) \
    AND c.last_at = (SELECT MAX(c2.last_at) FROM conversations c2 \
        JOIN instances i2 ON i2.id = c2.instance_id \
        WHERE c2.tenant_id = m.tenant_id AND c2.contact = m.to_jid AND i2.pool = m.pool))";

const LIVE_NODES: &str = "SELECT id FROM nodes WHERE heartbeat_at > bz_now_ms() - ";

#[async_trait]
impl ClusterStore for PgStore {
    async fn heartbeat(&self, node: &NodeInfo, ttl: Duration) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO nodes (id, url, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, bz_now_ms()) \
             ON CONFLICT (id) DO UPDATE SET url = excluded.url, started_at = excluded.started_at, \
             heartbeat_at = excluded.heartbeat_at",
        )
        .bind(&node.id)
        .bind(&node.url)
        .bind(to_millis(node.started_at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        // A lease that expired but that nobody took is still ours to renew: `acquire` locks
        // the row, so a node taking it over and this renewal cannot both succeed.
        let mut held: Vec<String> = sqlx::query_scalar(
            "UPDATE instances SET lease_until = bz_now_ms() + $2 WHERE lease_node = $1 \
             RETURNING id",
        )
        .bind(&node.id)
        .bind(ms(ttl))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        held.sort();
        Ok(held)
    }

    async fn nodes(&self, ttl: Duration, forget_after: Duration) -> Result<Vec<NodeView>> {
        let rows = sqlx::query(
            "SELECT id, url, started_at, heartbeat_at, heartbeat_at > bz_now_ms() - $1 AS live \
             FROM nodes WHERE heartbeat_at > bz_now_ms() - $2 ORDER BY started_at, id",
        )
        .bind(ms(ttl))
        .bind(ms(forget_after))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let held: Vec<(String, String)> = sqlx::query_as(
            "SELECT lease_node, id FROM instances \
             WHERE lease_node IS NOT NULL AND lease_until >= bz_now_ms() ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut by_node: HashMap<String, Vec<String>> = HashMap::new();
        for (node, id) in held {
            by_node.entry(node).or_default().push(id);
        }
        rows.iter()
            .map(|r| {
                let id: String = col(r, "id")?;
                Ok(NodeView {
                    url: col(r, "url")?,
                    started_at: ts(col(r, "started_at")?)?,
                    heartbeat_at: ts(col(r, "heartbeat_at")?)?,
                    live: col(r, "live")?,
                    instances: by_node.remove(&id).unwrap_or_default(),
                    id,
                })
            })
            .collect()
    }

    async fn leave(&self, node_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        for q in [
            "UPDATE instances SET lease_node = NULL, lease_until = NULL WHERE lease_node = $1",
            "UPDATE messages SET claimed_by = NULL WHERE claimed_by = $1",
            "DELETE FROM roles WHERE node_id = $1",
            "DELETE FROM nodes WHERE id = $1",
        ] {
            sqlx::query(q).bind(node_id).execute(&mut *tx).await.map_err(db)?;
        }
        for s in [Signal::Leases, Signal::Queue] {
            self.notify_in(&mut tx, s).await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn acquire(&self, instance_id: &str, node_id: &str, ttl: Duration) -> Result<Acquired> {
        // One statement (so no transaction is ever left open): the row lock makes a second
        // node asking at the same moment wait, then see the first one's fresh lease.
        let row = sqlx::query(
            "WITH cur AS ( \
                SELECT id, lease_node, coalesce(lease_until >= bz_now_ms(), false) AS unexpired \
                FROM instances WHERE id = $1 FOR UPDATE \
             ), taken AS ( \
                UPDATE instances i SET lease_node = $2, lease_until = bz_now_ms() + $3 \
                FROM cur WHERE i.id = cur.id \
                AND (cur.lease_node IS NULL OR cur.lease_node = $2 OR NOT cur.unexpired) \
                RETURNING i.id \
             ) \
             SELECT cur.lease_node, n.url, EXISTS (SELECT 1 FROM taken) AS ours \
             FROM cur LEFT JOIN nodes n ON n.id = cur.lease_node",
        )
        .bind(instance_id)
        .bind(node_id)
        .bind(ms(ttl))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::Database(format!("instance {instance_id} does not exist")))?;
        let holder: Option<String> = col(&row, "lease_node")?;
        if col::<bool>(&row, "ours")? {
            return Ok(Acquired::Yes { previous: holder.filter(|h| h != node_id) });
        }
        let url: Option<String> = col(&row, "url")?;
        Ok(Acquired::HeldBy(NodeRef {
            id: holder.unwrap_or_default(),
            url: url.unwrap_or_default(),
        }))
    }

    async fn release(&self, instance_id: &str, node_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "UPDATE instances SET lease_node = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_node = $2",
        )
        .bind(instance_id)
        .bind(node_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        self.notify_in(&mut tx, Signal::Leases).await?;
        tx.commit().await.map_err(db)
    }

    async fn holder(&self, instance_id: &str) -> Result<Option<NodeRef>> {
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT i.lease_node, n.url FROM instances i LEFT JOIN nodes n ON n.id = i.lease_node \
             WHERE i.id = $1 AND i.lease_node IS NOT NULL AND i.lease_until >= bz_now_ms()",
        )
        .bind(instance_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(row.map(|(id, url)| NodeRef { id, url: url.unwrap_or_default() }))
    }

    async fn orphans(&self, limit: u32) -> Result<Vec<Orphan>> {
        let rows = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS}, lease_node FROM instances \
             WHERE {SHOULD_RUN} \
             AND (lease_node IS NULL OR lease_until IS NULL OR lease_until < bz_now_ms()) \
             ORDER BY created_at, id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(Orphan {
                    instance: self.instance_from_row(r)?,
                    previous_node: col(r, "lease_node")?,
                })
            })
            .collect()
    }

    async fn placement(&self, ttl: Duration) -> Result<Placement> {
        let live_nodes: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM ({LIVE_NODES}$1) AS live"))
                .bind(ms(ttl))
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        let active_instances: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM instances WHERE {SHOULD_RUN}"))
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        let held: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT lease_node, count(*) FROM instances WHERE {SHOULD_RUN} \
             AND lease_node IS NOT NULL AND lease_until >= bz_now_ms() GROUP BY lease_node",
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(Placement {
            live_nodes: count(live_nodes),
            active_instances: count(active_instances),
            held_active: held.into_iter().map(|(node, n)| (node, count(n))).collect(),
        })
    }

    async fn hold_role(&self, role: &str, node_id: &str, ttl: Duration) -> Result<bool> {
        let got: Option<String> = sqlx::query_scalar(
            "INSERT INTO roles (name, node_id, lease_until) VALUES ($1, $2, bz_now_ms() + $3) \
             ON CONFLICT (name) DO UPDATE \
             SET node_id = excluded.node_id, lease_until = excluded.lease_until \
             WHERE roles.node_id = excluded.node_id OR roles.lease_until < bz_now_ms() \
             RETURNING node_id",
        )
        .bind(role)
        .bind(node_id)
        .bind(ms(ttl))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(got.is_some())
    }

    async fn claim_messages(
        &self,
        node_id: &str,
        ttl: Duration,
        held: &[String],
        pools: &[(String, String)],
        limit: u32,
    ) -> Result<Vec<MessageRecord>> {
        if limit == 0 || (held.is_empty() && pools.is_empty()) {
            return Ok(Vec::new());
        }
        let (tenants, pool_names): (Vec<String>, Vec<String>) = pools.iter().cloned().unzip();
        let rows = sqlx::query(&format!(
            "UPDATE messages SET claimed_by = $1 WHERE id IN ( \
                SELECT m.id FROM messages m \
                WHERE m.status IN ('queued', 'sending') \
                AND (m.status = 'sending' OR m.send_at IS NULL OR m.queue_at <= bz_now_ms()) \
                AND (m.claimed_by IS NULL OR m.claimed_by NOT IN ({LIVE_NODES}$2)) \
                AND ( \
                    ((m.forced OR m.status = 'sending') AND m.instance_id = ANY($3)) \
                    OR (NOT m.forced AND m.status = 'queued' \
                        AND (m.tenant_id, m.pool) IN (SELECT * FROM UNNEST($4::text[], $5::text[])) \
                        AND NOT {HELD_ELSEWHERE_STICKY}) \
                ) \
                ORDER BY m.queue_at, m.id LIMIT $6 FOR UPDATE OF m SKIP LOCKED) \
             RETURNING {MESSAGE_COLUMNS}"
        ))
        .bind(node_id)
        .bind(ms(ttl))
        .bind(held)
        .bind(&tenants)
        .bind(&pool_names)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut out = rows.iter().map(message_from_row::<Postgres>).collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| (a.queue_at(), &a.id).cmp(&(b.queue_at(), &b.id)));
        Ok(out)
    }

    async fn claim_message(&self, id: &str, node_id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE messages SET claimed_by = $2 WHERE id = $1 AND claimed_by IS NULL \
             AND status IN ('queued', 'sending') \
             AND (send_at IS NULL OR queue_at <= bz_now_ms())",
        )
        .bind(id)
        .bind(node_id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_accepted(&self, m: &MessageRecord, claim_for: Option<&str>) -> Result<()> {
        let accepted = Accepted {
            message: m.clone(),
            claim: claim_for.map(str::to_string),
            signal: claim_for.is_none(),
        };
        self.parts.writer.insert(accepted).await
    }

    async fn release_messages(&self, node_id: &str, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("UPDATE messages SET claimed_by = NULL WHERE claimed_by = $1 AND id = ANY($2)")
            .bind(node_id)
            .bind(ids)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        self.notify_in(&mut tx, Signal::Queue).await?;
        tx.commit().await.map_err(db)
    }

    async fn release_all_claims(&self, node_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let freed = sqlx::query("UPDATE messages SET claimed_by = NULL WHERE claimed_by = $1")
            .bind(node_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if freed.rows_affected() > 0 {
            self.notify_in(&mut tx, Signal::Queue).await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn pool_has_connected_number(
        &self,
        tenant_id: &str,
        pool: &str,
        threshold: u8,
    ) -> Result<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM instances WHERE tenant_id = $1 AND pool = $2 \
             AND status = 'connected' AND (reason IS NULL OR reason <> 'banned') \
             AND health_score >= $3)",
        )
        .bind(tenant_id)
        .bind(pool)
        .bind(i64::from(threshold))
        .fetch_one(&self.pool)
        .await
        .map_err(db)
    }

    async fn signal(&self, signal: Signal) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.parts.channel)
            .bind(payload(signal))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn listen(&self) -> Result<mpsc::Receiver<Signal>> {
        let mut listener = PgListener::connect_with(&self.pool).await.map_err(db)?;
        listener.listen(&self.parts.channel).await.map_err(db)?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                // `try_recv` yields `None` once when the connection was lost; the next call
                // reconnects and listens again.
                let signal = match listener.try_recv().await {
                    Ok(Some(n)) => match parse_payload(n.payload()) {
                        Some(s) => s,
                        None => continue,
                    },
                    Ok(None) => Signal::Resync,
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for cluster signals failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        Signal::Resync
                    }
                };
                // A full channel already holds a wake-up for the listener: dropping is fine.
                match tx.try_send(signal) {
                    Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                    Err(mpsc::error::TrySendError::Closed(_)) => break,
                }
            }
        });
        Ok(rx)
    }
}

impl PgStore {
    /// Queues a `NOTIFY` that PostgreSQL sends when (and only if) `tx` commits.
    pub(crate) async fn notify_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        signal: Signal,
    ) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.parts.channel)
            .bind(payload(signal))
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        Ok(())
    }
}
