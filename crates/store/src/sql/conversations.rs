//! [`ConversationStore`]: conversations per (number, contact).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{cut_millis, q, ts, Backend, SqlStore};
use crate::time::to_millis;
use crate::{ContactHistory, ConversationRecord, ConversationStore, Result, StartedBy, StoreError};

/// Contacts per statement: well under either database's bind limit.
const PER_STATEMENT: usize = 1000;

#[async_trait]
impl<DB: Backend> ConversationStore for SqlStore<DB> {
    async fn touch_conversation(
        &self,
        tenant_id: &str,
        instance_id: &str,
        contact: &str,
        started_by: StartedBy,
        at: DateTime<Utc>,
    ) -> Result<()> {
        q::<DB>(
            "INSERT INTO conversations \
             (instance_id, contact, tenant_id, started_by, first_at, last_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (instance_id, contact) DO UPDATE SET \
             last_at = CASE WHEN excluded.last_at > conversations.last_at \
                 THEN excluded.last_at ELSE conversations.last_at END",
        )
        .bind(instance_id)
        .bind(contact)
        .bind(tenant_id)
        .bind(started_by.as_str())
        .bind(to_millis(at))
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn get_conversation(
        &self,
        instance_id: &str,
        contact: &str,
    ) -> Result<Option<ConversationRecord>> {
        let row = q::<DB>(
            "SELECT instance_id, contact, tenant_id, started_by, first_at, last_at \
             FROM conversations WHERE instance_id = $1 AND contact = $2",
        )
        .bind(instance_id)
        .bind(contact)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let started: String = DB::col(&r, "started_by")?;
        let started_by = StartedBy::parse(&started).ok_or_else(|| {
            StoreError::Database(format!("conversation: unknown started_by `{started}`"))
        })?;
        Ok(Some(ConversationRecord {
            tenant_id: DB::col(&r, "tenant_id")?,
            instance_id: DB::col(&r, "instance_id")?,
            contact: DB::col(&r, "contact")?,
            started_by,
            first_at: ts(DB::col(&r, "first_at")?)?,
            last_at: ts(DB::col(&r, "last_at")?)?,
        }))
    }

    async fn contact_histories(
        &self,
        tenant_id: &str,
        pool: &str,
        contacts: &[String],
        since: DateTime<Utc>,
    ) -> Result<HashMap<String, ContactHistory>> {
        let since = cut_millis(since);
        let mut out: HashMap<String, ContactHistory> = HashMap::new();
        // (contact) → (latest last_at at or after `since`, its number)
        let mut latest: HashMap<String, (i64, String)> = HashMap::new();
        let mut conn = self.conn().await?;
        for chunk in contacts.chunks(PER_STATEMENT) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "SELECT c.contact, c.instance_id, c.last_at FROM conversations c \
                 JOIN instances i ON i.id = c.instance_id \
                 WHERE c.tenant_id = $1 AND i.pool = $2 AND c.contact IN ({}) \
                 ORDER BY c.contact, c.instance_id",
                list.join(", ")
            );
            let mut query = q::<DB>(&sql).bind(tenant_id).bind(pool);
            for c in chunk {
                query = query.bind(c);
            }
            for r in query.fetch_all(&mut conn).await? {
                let contact: String = DB::col(&r, "contact")?;
                let instance_id: String = DB::col(&r, "instance_id")?;
                let last_at: i64 = DB::col(&r, "last_at")?;
                if last_at >= since {
                    let better = latest.get(&contact).is_none_or(|(t, _)| last_at > *t);
                    if better {
                        latest.insert(contact.clone(), (last_at, instance_id.clone()));
                    }
                }
                out.entry(contact).or_default().known_to.push(instance_id);
            }
        }
        for (contact, (_, instance_id)) in latest {
            if let Some(h) = out.get_mut(&contact) {
                h.sticky_to = Some(instance_id);
            }
        }
        Ok(out)
    }

    async fn first_contacts_since(
        &self,
        instance_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>> {
        let times: Vec<i64> = q::<DB>(
            "SELECT first_at FROM conversations \
             WHERE instance_id = $1 AND started_by = 'out' AND first_at >= $2 ORDER BY first_at",
        )
        .bind(instance_id)
        .bind(cut_millis(since))
        .scalars(&mut *self.conn().await?)
        .await?;
        times.into_iter().map(ts).collect()
    }
}
