//! The contact-check cache on PostgreSQL (see [`crate::ContactCheckStore`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;

use super::{col, db, PgStore};
use crate::contacts::{cut_millis, last_per_phone};
use crate::sqlite::ts;
use crate::time::to_millis;
use crate::{ContactCheckRecord, ContactCheckStore, Result};

fn check_from_row(row: &PgRow) -> Result<ContactCheckRecord> {
    Ok(ContactCheckRecord {
        phone: col(row, "phone")?,
        on_whatsapp: col(row, "on_whatsapp")?,
        jid: col(row, "jid")?,
        lid: col(row, "lid")?,
        checked_at: ts(col(row, "checked_at")?)?,
    })
}

#[async_trait]
impl ContactCheckStore for PgStore {
    async fn put_contact_checks(&self, tenant_id: &str, rs: &[ContactCheckRecord]) -> Result<()> {
        let rs = last_per_phone(rs);
        if rs.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.acquire().await.map_err(db)?;
        // Six binds a row: chunks stay well under the bind limit.
        for chunk in rs.chunks(1000) {
            let mut qb: sqlx::QueryBuilder<sqlx::Postgres> = sqlx::QueryBuilder::new(
                "INSERT INTO contact_checks (tenant_id, phone, on_whatsapp, jid, lid, checked_at) ",
            );
            qb.push_values(chunk, |mut row, r| {
                row.push_bind(tenant_id.to_string())
                    .push_bind(r.phone.clone())
                    .push_bind(r.on_whatsapp)
                    .push_bind(r.jid.clone())
                    .push_bind(r.lid.clone())
                    .push_bind(to_millis(r.checked_at));
            });
            qb.push(
                " ON CONFLICT (tenant_id, phone) DO UPDATE SET on_whatsapp = excluded.on_whatsapp, \
                 jid = excluded.jid, lid = excluded.lid, checked_at = excluded.checked_at",
            );
            qb.build().execute(&mut *conn).await.map_err(db)?;
        }
        Ok(())
    }

    async fn get_contact_checks(
        &self,
        tenant_id: &str,
        phones: &[String],
        not_before: DateTime<Utc>,
    ) -> Result<Vec<ContactCheckRecord>> {
        if phones.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT phone, on_whatsapp, jid, lid, checked_at FROM contact_checks \
             WHERE tenant_id = $1 AND phone = ANY($2) AND checked_at >= $3",
        )
        .bind(tenant_id)
        .bind(phones)
        .bind(cut_millis(not_before))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(check_from_row).collect()
    }

    async fn prune_contact_checks(&self, older_than: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM contact_checks WHERE checked_at < $1")
            .bind(cut_millis(older_than))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}
