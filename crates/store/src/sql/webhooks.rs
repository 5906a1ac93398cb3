//! [`WebhookStore`]: webhooks (secrets sealed), their durable deliveries, the fan-out cursor
//! and alert targets. Recording an attempt's outcome is per database
//! ([`Backend::record_attempt`]: SQLite commits them in groups).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::events::{event_from_row, EVENT_COLUMNS};
use super::meta::{log_cursor, set_log_cursor};
use super::{db, json_err, opt_ts, q, ts, values, Backend, SqlStore};
use crate::time::to_millis;
use crate::{
    AlertConfig, DeliveryAttempt, DeliveryRecord, DeliveryStatus, Event, PreviousSecret, Result,
    StoreError, WebhookRecord, WebhookStore,
};

const META_FANOUT_CURSOR: &str = "webhook_fanout_cursor";
const WEBHOOK_COLUMNS: &str = "id, tenant_id, url, events_json, secret_sealed, created_at, \
     previous_secret_sealed, previous_secret_expires_at";
const DELIVERY_COLUMNS: &str = "id, webhook_id, tenant_id, event_id, event_type, payload, status, \
     attempts, next_attempt_at, last_status, last_error, created_at, updated_at, delivered_at";
/// Most webhooks read in one statement of a scan (two parameters each).
const HOOKS_PER_SCAN_STATEMENT: usize = 100;
/// Most deliveries in one `INSERT` (14 parameters each; SQLite allows 32,766 per statement).
const DELIVERIES_PER_INSERT: usize = 500;

fn secret_aad(id: &str) -> Vec<u8> {
    format!("webhook:{id}").into_bytes()
}

/// Bound to the tenant: one tenant's sealed URL copied into another's row does not open.
fn alert_url_aad(tenant_id: &str) -> Vec<u8> {
    format!("alert:{tenant_id}").into_bytes()
}

/// Bound to the webhook and to its role: a current secret's blob copied into the previous
/// secret's column (or back) does not open.
fn previous_secret_aad(id: &str) -> Vec<u8> {
    format!("webhook-previous:{id}").into_bytes()
}

/// A scan's deliveries in round-robin order: every webhook's oldest, then every webhook's
/// second…, each turn oldest first; at most `per_webhook` of each and `limit` in all.
fn round_robin(
    by_hook: HashMap<String, Vec<DeliveryRecord>>,
    per_webhook: usize,
    limit: usize,
) -> Vec<DeliveryRecord> {
    let mut turns: Vec<(usize, DeliveryRecord)> = Vec::new();
    for (_, mut ds) in by_hook {
        ds.sort_by(|a, b| (a.next_attempt_at, &a.id).cmp(&(b.next_attempt_at, &b.id)));
        turns.extend(ds.into_iter().take(per_webhook).enumerate());
    }
    turns.sort_by(|(ta, a), (tb, b)| {
        (ta, a.next_attempt_at, &a.id).cmp(&(tb, b.next_attempt_at, &b.id))
    });
    turns.into_iter().take(limit).map(|(_, d)| d).collect()
}

fn delivery_from_row<DB: Backend>(row: &DB::Row) -> Result<DeliveryRecord> {
    let id: String = DB::col(row, "id")?;
    let status: String = DB::col(row, "status")?;
    let status = DeliveryStatus::parse(&status)
        .ok_or_else(|| StoreError::Database(format!("delivery {id}: unknown status {status}")))?;
    Ok(DeliveryRecord {
        webhook_id: DB::col(row, "webhook_id")?,
        tenant_id: DB::col(row, "tenant_id")?,
        event_id: DB::col(row, "event_id")?,
        event_type: DB::col(row, "event_type")?,
        payload: DB::col(row, "payload")?,
        status,
        attempts: DB::col::<i64>(row, "attempts")?.clamp(0, i64::from(u32::MAX)) as u32,
        next_attempt_at: ts(DB::col(row, "next_attempt_at")?)?,
        last_status: DB::col::<Option<i64>>(row, "last_status")?
            .and_then(|s| u16::try_from(s).ok()),
        last_error: DB::col(row, "last_error")?,
        created_at: ts(DB::col(row, "created_at")?)?,
        updated_at: ts(DB::col(row, "updated_at")?)?,
        delivered_at: opt_ts(DB::col(row, "delivered_at")?)?,
        id,
    })
}

/// Records one attempt's outcome on `c`. With `only_forward`, an outcome whose attempt
/// number is below the stored one changes nothing (outcomes that commit in any order).
pub(crate) async fn update_attempt<DB: Backend>(
    c: &mut DB::Connection,
    id: &str,
    a: &DeliveryAttempt,
    only_forward: bool,
) -> Result<()> {
    let sql = format!(
        "UPDATE deliveries SET status = $1, attempts = $2, next_attempt_at = $3, \
         last_status = $4, last_error = $5, updated_at = $6, \
         delivered_at = CASE WHEN $1 = 'delivered' THEN $6 ELSE delivered_at END \
         WHERE id = $7{}",
        if only_forward { " AND attempts <= $2" } else { "" }
    );
    q::<DB>(&sql)
        .bind(a.status.as_str())
        .bind(i64::from(a.attempts))
        .bind(to_millis(a.next_attempt_at))
        .bind(a.last_status.map(i64::from))
        .bind(&a.last_error)
        .bind(to_millis(a.at))
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

impl<DB: Backend> SqlStore<DB> {
    /// Seals the alert URLs stored in clear by versions before URLs were sealed (run at
    /// open, after the migrations: sealing needs the master key, which SQL does not have).
    /// Returns how many it sealed.
    pub(crate) async fn seal_clear_alert_urls(&self) -> Result<u64> {
        let mut conn = self.conn().await?;
        let rows = q::<DB>("SELECT tenant_id, url FROM alerts WHERE url_sealed IS NULL")
            .fetch_all(&mut conn)
            .await?;
        let mut sealed = 0;
        for row in rows {
            let tenant_id: String = DB::col(&row, "tenant_id")?;
            let url: String = DB::col(&row, "url")?;
            sealed += q::<DB>(
                "UPDATE alerts SET url = '', url_sealed = $1 \
                 WHERE tenant_id = $2 AND url_sealed IS NULL",
            )
            .bind(self.sealer.seal(&alert_url_aad(&tenant_id), url.as_bytes()))
            .bind(&tenant_id)
            .execute(&mut conn)
            .await?;
        }
        Ok(sealed)
    }

    /// The oldest due deliveries of each `(webhook, how many)` (at most
    /// [`HOOKS_PER_SCAN_STATEMENT`] of them), by webhook.
    async fn due_of(
        &self,
        conn: &mut DB::Connection,
        hooks: &[(String, usize)],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, Vec<DeliveryRecord>>> {
        // One statement for them all: a UNION ALL of per-webhook index ranges.
        let parts: Vec<String> = (0..hooks.len())
            .map(|i| {
                format!(
                    "SELECT * FROM (SELECT {DELIVERY_COLUMNS} FROM deliveries \
                     WHERE webhook_id = ${} AND status = 'pending' AND next_attempt_at <= $1 \
                     ORDER BY next_attempt_at, id LIMIT ${}) AS due{i}",
                    2 * i + 2,
                    2 * i + 3
                )
            })
            .collect();
        let sql = parts.join(" UNION ALL ");
        let mut query = q::<DB>(&sql).bind(to_millis(now));
        for (hook, n) in hooks {
            query = query.bind(hook).bind(*n as i64);
        }
        let mut out: HashMap<String, Vec<DeliveryRecord>> = HashMap::new();
        for r in &query.fetch_all(conn).await? {
            let d = delivery_from_row::<DB>(r)?;
            out.entry(d.webhook_id.clone()).or_default().push(d);
        }
        Ok(out)
    }

    fn webhook_from_row(&self, row: &DB::Row) -> Result<WebhookRecord> {
        let id: String = DB::col(row, "id")?;
        let events: String = DB::col(row, "events_json")?;
        let events = serde_json::from_str(&events)
            .map_err(|e| StoreError::Database(format!("webhook {id}: bad events: {e}")))?;
        let open = |aad: Vec<u8>, sealed: &[u8]| {
            self.sealer
                .open(&aad, sealed)
                .map(|s| String::from_utf8_lossy(&s).into_owned())
                .map_err(|e| StoreError::Unsealable(format!("webhook {id}: {e}")))
        };
        let sealed: Vec<u8> = DB::col(row, "secret_sealed")?;
        let secret = open(secret_aad(&id), &sealed)?;
        let previous_sealed: Option<Vec<u8>> = DB::col(row, "previous_secret_sealed")?;
        let previous_expires: Option<i64> = DB::col(row, "previous_secret_expires_at")?;
        let previous_secret = match (previous_sealed, opt_ts(previous_expires)?) {
            (Some(sealed), Some(expires_at)) => Some(PreviousSecret {
                secret: open(previous_secret_aad(&id), &sealed)?,
                expires_at,
            }),
            _ => None,
        };
        Ok(WebhookRecord {
            tenant_id: DB::col(row, "tenant_id")?,
            url: DB::col(row, "url")?,
            events,
            secret,
            created_at: ts(DB::col(row, "created_at")?)?,
            previous_secret,
            id,
        })
    }

    /// `filter` uses `$1`, `$2`… for `binds`, in order.
    async fn query_webhooks(&self, filter: &str, binds: &[&str]) -> Result<Vec<WebhookRecord>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks {filter}");
        let mut query = q::<DB>(&sql);
        for b in binds {
            query = query.bind(*b);
        }
        let rows = query.fetch_all(&mut *self.conn().await?).await?;
        rows.iter().map(|r| self.webhook_from_row(r)).collect()
    }

    /// `filter` uses `$1`, `$2`… for `binds`, in order, and `$<last + 1>` for the limit.
    async fn query_deliveries(
        &self,
        filter: &str,
        binds: &[&str],
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries {filter} LIMIT ${}",
            binds.len() + 1
        );
        let mut query = q::<DB>(&sql);
        for b in binds {
            query = query.bind(*b);
        }
        let rows = query.bind(i64::from(limit)).fetch_all(&mut *self.conn().await?).await?;
        rows.iter().map(delivery_from_row::<DB>).collect()
    }
}

#[async_trait]
impl<DB: Backend> WebhookStore for SqlStore<DB> {
    async fn create_webhook(&self, w: &WebhookRecord) -> Result<()> {
        let events = serde_json::to_string(&w.events).map_err(json_err)?;
        let sql = format!(
            "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        let previous = w.previous_secret.as_ref();
        q::<DB>(&sql)
            .bind(&w.id)
            .bind(&w.tenant_id)
            .bind(&w.url)
            .bind(events)
            .bind(self.sealer.seal(&secret_aad(&w.id), w.secret.as_bytes()))
            .bind(to_millis(w.created_at))
            .bind(
                previous
                    .map(|p| self.sealer.seal(&previous_secret_aad(&w.id), p.secret.as_bytes())),
            )
            .bind(previous.map(|p| to_millis(p.expires_at)))
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn list_webhooks(&self, tenant_id: &str) -> Result<Vec<WebhookRecord>> {
        self.query_webhooks("WHERE tenant_id = $1 ORDER BY created_at, id", &[tenant_id]).await
    }

    async fn all_webhooks(&self) -> Result<Vec<WebhookRecord>> {
        self.query_webhooks("ORDER BY created_at, id", &[]).await
    }

    async fn get_webhook(&self, tenant_id: &str, id: &str) -> Result<Option<WebhookRecord>> {
        Ok(self.query_webhooks("WHERE tenant_id = $1 AND id = $2", &[tenant_id, id]).await?.pop())
    }

    async fn rotate_webhook_secret(
        &self,
        tenant_id: &str,
        id: &str,
        secret: &str,
        previous_expires_at: DateTime<Utc>,
    ) -> Result<Option<WebhookRecord>> {
        // Compare-and-set on the sealed current secret (both databases, no row locks): two
        // rotations at once each keep the secret the other replaced, never a lost one.
        for _ in 0..8 {
            let row =
                q::<DB>("SELECT secret_sealed FROM webhooks WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(id)
                    .fetch_optional(&mut *self.conn().await?)
                    .await?;
            let Some(row) = row else { return Ok(None) };
            let sealed_now: Vec<u8> = DB::col(&row, "secret_sealed")?;
            let current = self
                .sealer
                .open(&secret_aad(id), &sealed_now)
                .map_err(|e| StoreError::Unsealable(format!("webhook {id}: {e}")))?;
            let n = q::<DB>(
                "UPDATE webhooks SET secret_sealed = $1, previous_secret_sealed = $2, \
                 previous_secret_expires_at = $3 \
                 WHERE tenant_id = $4 AND id = $5 AND secret_sealed = $6",
            )
            .bind(self.sealer.seal(&secret_aad(id), secret.as_bytes()))
            .bind(self.sealer.seal(&previous_secret_aad(id), &current))
            .bind(to_millis(previous_expires_at))
            .bind(tenant_id)
            .bind(id)
            .bind(sealed_now)
            .execute(&mut *self.conn().await?)
            .await?;
            if n > 0 {
                return self.get_webhook(tenant_id, id).await;
            }
        }
        Err(StoreError::Database(format!("webhook {id}: the secret kept changing while rotated")))
    }

    async fn delete_webhook(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let n = q::<DB>("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(n > 0)
    }

    async fn all_events_after(&self, after_id: i64, limit: u32) -> Result<Vec<Event>> {
        // Safe to page with `id > after_id`: ids commit in order on both databases (see
        // `Backend::append_events`).
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id > $1 ORDER BY id LIMIT $2");
        let rows = q::<DB>(&sql)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter().map(event_from_row::<DB>).collect()
    }

    async fn fanout_cursor(&self) -> Result<i64> {
        log_cursor::<DB>(&mut *self.conn().await?, META_FANOUT_CURSOR).await
    }

    async fn enqueue_deliveries(&self, deliveries: &[DeliveryRecord], cursor: i64) -> Result<u64> {
        let _gate = DB::gate(self).await;
        let mut tx = self.begin().await?;
        let mut stored = 0;
        // One statement per chunk rather than per row: the fan-out writes a page of events'
        // deliveries at a time. A (webhook, event) pair that already has a delivery (a
        // replayed fan-out page) is left out.
        for chunk in deliveries.chunks(DELIVERIES_PER_INSERT) {
            let sql = format!(
                "INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES {} ON CONFLICT DO NOTHING",
                values::<DB>(chunk.len(), 14)
            );
            let mut query = q::<DB>(&sql);
            for d in chunk {
                query = query
                    .bind(&d.id)
                    .bind(&d.webhook_id)
                    .bind(&d.tenant_id)
                    .bind(d.event_id)
                    .bind(&d.event_type)
                    .bind(&d.payload)
                    .bind(d.status.as_str())
                    .bind(i64::from(d.attempts))
                    .bind(to_millis(d.next_attempt_at))
                    .bind(d.last_status.map(i64::from))
                    .bind(&d.last_error)
                    .bind(to_millis(d.created_at))
                    .bind(to_millis(d.updated_at))
                    .bind(d.delivered_at.map(to_millis));
            }
            stored += query.execute(&mut tx).await?;
        }
        set_log_cursor::<DB>(&mut tx, META_FANOUT_CURSOR, cursor).await?;
        tx.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn due_deliveries(
        &self,
        now: DateTime<Utc>,
        per_webhook: u32,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>> {
        // Read per webhook, each an index range (`deliveries_due_by_webhook`), so a scan costs
        // what it returns, not the size of the backlog (a window over every due row took
        // ~150 ms at 20,000 due in a debug build). First every webhook's oldest share of the
        // limit; then more of those that had more, until the limit or `per_webhook` is met.
        let mut conn = self.conn().await?;
        let hooks: Vec<String> =
            q::<DB>("SELECT id FROM webhooks ORDER BY id").scalars(&mut conn).await?;
        if hooks.is_empty() || limit == 0 || per_webhook == 0 {
            return Ok(Vec::new());
        }
        let mut got: HashMap<String, Vec<DeliveryRecord>> = HashMap::new();
        let mut wanting: Vec<String> = hooks;
        let mut fetched = 0usize;
        let mut step = (limit as usize / wanting.len()).clamp(1, per_webhook as usize);
        while !wanting.is_empty() && fetched < limit as usize {
            let mut more = Vec::new();
            for chunk in wanting.chunks(HOOKS_PER_SCAN_STATEMENT) {
                // Each range is read again from its start, `step` further: rows that moved
                // meanwhile are neither skipped nor taken twice.
                let ask: Vec<(String, usize)> = chunk
                    .iter()
                    .map(|h| (h.clone(), got.get(h).map_or(0, Vec::len) + step))
                    .collect();
                let mut rows = self.due_of(&mut conn, &ask, now).await?;
                for (hook, _) in ask {
                    let mine = got.entry(hook.clone()).or_default();
                    let known: HashSet<String> = mine.iter().map(|d| d.id.clone()).collect();
                    let new: Vec<_> = rows
                        .remove(&hook)
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|d| !known.contains(&d.id))
                        .collect();
                    fetched += new.len();
                    let full = new.len() == step;
                    mine.extend(new);
                    if full && mine.len() < per_webhook as usize {
                        more.push(hook);
                    }
                }
            }
            wanting = more;
            if wanting.is_empty() {
                break;
            }
            let budget = (limit as usize).saturating_sub(fetched);
            step = budget.div_ceil(wanting.len()).clamp(1, per_webhook as usize);
        }
        Ok(round_robin(got, per_webhook as usize, limit as usize))
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>> {
        let t: Option<i64> =
            q::<DB>("SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'")
                .scalar(&mut *self.conn().await?)
                .await?;
        opt_ts(t)
    }

    async fn record_attempt(&self, id: &str, a: &DeliveryAttempt) -> Result<()> {
        DB::record_attempt(self, id, a).await
    }

    async fn list_deliveries(&self, webhook_id: &str, limit: u32) -> Result<Vec<DeliveryRecord>> {
        self.query_deliveries(
            "WHERE webhook_id = $1 ORDER BY created_at DESC, id DESC",
            &[webhook_id],
            limit,
        )
        .await
    }

    async fn get_delivery(&self, webhook_id: &str, id: &str) -> Result<Option<DeliveryRecord>> {
        Ok(self
            .query_deliveries("WHERE webhook_id = $1 AND id = $2", &[webhook_id, id], 1)
            .await?
            .pop())
    }

    async fn requeue_delivery(&self, id: &str, now: DateTime<Utc>) -> Result<()> {
        q::<DB>(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $1, updated_at = $1 \
             WHERE id = $2",
        )
        .bind(to_millis(now))
        .bind(id)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn put_alert(&self, a: &AlertConfig) -> Result<()> {
        let on = serde_json::to_string(&a.on).map_err(json_err)?;
        // The URL is sealed (a Slack URL's path is its secret); the clear column stays empty.
        q::<DB>(
            "INSERT INTO alerts (tenant_id, url, url_sealed, format, on_json, updated_at) \
             VALUES ($1, '', $2, $3, $4, $5) \
             ON CONFLICT (tenant_id) DO UPDATE SET url = '', url_sealed = excluded.url_sealed, \
             format = excluded.format, on_json = excluded.on_json, \
             updated_at = excluded.updated_at",
        )
        .bind(&a.tenant_id)
        .bind(self.sealer.seal(&alert_url_aad(&a.tenant_id), a.url.as_bytes()))
        .bind(&a.format)
        .bind(on)
        .bind(to_millis(a.updated_at))
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn get_alert(&self, tenant_id: &str) -> Result<Option<AlertConfig>> {
        let row = q::<DB>(
            "SELECT url, url_sealed, format, on_json, updated_at FROM alerts WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let on: String = DB::col(&row, "on_json")?;
        let sealed: Option<Vec<u8>> = DB::col(&row, "url_sealed")?;
        let url = match sealed {
            Some(sealed) => {
                let url = self
                    .sealer
                    .open(&alert_url_aad(tenant_id), &sealed)
                    .map_err(|e| StoreError::Unsealable(format!("alert of {tenant_id}: {e}")))?;
                String::from_utf8_lossy(&url).into_owned()
            }
            // Written before URLs were sealed, and not sealed at open yet.
            None => DB::col(&row, "url")?,
        };
        Ok(Some(AlertConfig {
            tenant_id: tenant_id.to_string(),
            url,
            format: DB::col(&row, "format")?,
            on: serde_json::from_str(&on).map_err(json_err)?,
            updated_at: ts(DB::col(&row, "updated_at")?)?,
        }))
    }

    async fn delete_alert(&self, tenant_id: &str) -> Result<bool> {
        let n = q::<DB>("DELETE FROM alerts WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(n > 0)
    }
}
