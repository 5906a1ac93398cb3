//! PostgreSQL's piece of the group commit of accepted messages (`sql/message_writer.rs`): a
//! batch is one `INSERT … SELECT FROM UNNEST(arrays)`, so the statement's text is the same
//! whatever the batch size and sqlx prepares it once per connection (a multi-row `VALUES`
//! would be a new statement, parsed and planned again, for every batch size). A duplicate
//! idempotency key must fail alone, but a refused statement aborts the whole transaction on
//! PostgreSQL (SQLite backs out that statement only): so the insert skips conflicting rows
//! (`ON CONFLICT DO NOTHING`) and a row missing from `RETURNING` is the duplicate. The claims
//! of the accepting node go in the same statement, and one `NOTIFY` tells the other nodes
//! about the batch's unclaimed sends: one commit for the lot.

use std::collections::HashSet;

use sqlx::postgres::PgConnection;

use crate::sql::message_writer::Accepted;
use crate::sql::{db, json_err, MESSAGE_COLUMNS};
use crate::time::to_millis;
use crate::{Result, StoreError};

/// See the module's comment. `channel` is this schema's `NOTIFY` channel.
pub(super) async fn insert_accepted(
    c: &mut PgConnection,
    channel: &str,
    batch: &[&Accepted],
) -> Result<Vec<Result<()>>> {
    // Rows in key order: two batches committing at once (this node's, or another node's)
    // that hold the same two keys then wait for each other's keys in the same order, never
    // crosswise (a deadlock, which would fail both batches).
    fn key(a: &Accepted) -> (&str, Option<&str>) {
        (&a.message.tenant_id, a.message.idempotency_key.as_deref())
    }
    let mut ordered: Vec<&Accepted> = batch.to_vec();
    ordered.sort_by(|a, b| key(a).cmp(&key(b)));
    let mut cols = Columns::default();
    for a in ordered {
        cols.push(a)?;
    }
    let inserted: Vec<String> = sqlx::query_scalar(&format!(
        "INSERT INTO messages ({MESSAGE_COLUMNS}, claimed_by) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], \
         $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
         $12::text[], $13::text[], $14::int8[], $15::int8[], $16::int8[], $17::text[], \
         $18::text[], $19::int8[], $20::int8[], $21::int8[], $22::text[], $23::text[]) \
         ON CONFLICT DO NOTHING RETURNING id"
    ))
    .bind(&cols.id)
    .bind(&cols.tenant_id)
    .bind(&cols.wa_id)
    .bind(&cols.instance_id)
    .bind(&cols.forced)
    .bind(&cols.pool)
    .bind(&cols.to_jid)
    .bind(&cols.body)
    .bind(&cols.mentions)
    .bind(&cols.menu)
    .bind(&cols.status)
    .bind(&cols.error)
    .bind(&cols.idempotency_key)
    .bind(&cols.created_at)
    .bind(&cols.updated_at)
    .bind(&cols.sent_at)
    .bind(&cols.campaign_id)
    .bind(&cols.content)
    .bind(&cols.send_at)
    .bind(&cols.expires_at)
    .bind(&cols.queue_at)
    .bind(&cols.chosen_by)
    .bind(&cols.claimed_by)
    .fetch_all(&mut *c)
    .await
    .map_err(db)?;
    let inserted: HashSet<String> = inserted.into_iter().collect();
    let written = |a: &Accepted| inserted.contains(&a.message.id);
    if batch.iter().any(|a| a.signal && written(a)) {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(super::cluster::payload(crate::Signal::Queue))
            .execute(&mut *c)
            .await
            .map_err(db)?;
    }
    Ok(batch
        .iter()
        .map(|a| match written(a) {
            true => Ok(()),
            false => Err(StoreError::Conflict("a message with this idempotency key".into())),
        })
        .collect())
}

/// A batch as one array per column, in the order of [`MESSAGE_COLUMNS`], then `claimed_by`.
#[derive(Default)]
struct Columns<'a> {
    id: Vec<&'a str>,
    tenant_id: Vec<&'a str>,
    wa_id: Vec<&'a str>,
    instance_id: Vec<Option<&'a str>>,
    forced: Vec<bool>,
    pool: Vec<&'a str>,
    to_jid: Vec<String>,
    body: Vec<&'a str>,
    mentions: Vec<String>,
    menu: Vec<Option<String>>,
    status: Vec<&'static str>,
    error: Vec<Option<&'a str>>,
    idempotency_key: Vec<Option<&'a str>>,
    created_at: Vec<i64>,
    updated_at: Vec<i64>,
    sent_at: Vec<Option<i64>>,
    campaign_id: Vec<Option<&'a str>>,
    content: Vec<Option<String>>,
    send_at: Vec<Option<i64>>,
    expires_at: Vec<Option<i64>>,
    queue_at: Vec<i64>,
    chosen_by: Vec<Option<&'a str>>,
    claimed_by: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, a: &'a Accepted) -> Result<()> {
        let m = &a.message;
        let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
        self.id.push(&m.id);
        self.tenant_id.push(&m.tenant_id);
        self.wa_id.push(&m.wa_id);
        self.instance_id.push(m.instance_id.as_deref());
        self.forced.push(m.forced);
        self.pool.push(&m.pool);
        self.to_jid.push(m.to.to_string());
        self.body.push(&m.body);
        self.mentions.push(serde_json::to_string(&m.mentions).map_err(json_err)?);
        self.menu.push(json(&m.menu));
        self.status.push(m.status.as_str());
        self.error.push(m.error.as_deref());
        self.idempotency_key.push(m.idempotency_key.as_deref());
        self.created_at.push(to_millis(m.created_at));
        self.updated_at.push(to_millis(m.updated_at));
        self.sent_at.push(m.sent_at.map(to_millis));
        self.campaign_id.push(m.campaign_id.as_deref());
        self.content.push(json(&m.content));
        self.send_at.push(m.send_at.map(to_millis));
        self.expires_at.push(m.expires_at.map(to_millis));
        self.queue_at.push(to_millis(m.queue_at()));
        self.chosen_by.push(m.chosen_by.as_deref());
        self.claimed_by.push(a.claim.as_deref());
        Ok(())
    }
}
