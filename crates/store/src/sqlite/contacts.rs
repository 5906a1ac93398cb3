//! The contact-check cache on SQLite (see [`crate::ContactCheckStore`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;

use super::{col, db, ts, SqliteStore};
use crate::contacts::{cut_millis, last_per_phone};
use crate::time::to_millis;
use crate::{ContactCheckRecord, ContactCheckStore, Result};

fn check_from_row(row: &SqliteRow) -> Result<ContactCheckRecord> {
    Ok(ContactCheckRecord {
        phone: col(row, "phone")?,
        on_whatsapp: col(row, "on_whatsapp")?,
        jid: col(row, "jid")?,
        lid: col(row, "lid")?,
        checked_at: ts(col(row, "checked_at")?)?,
    })
}

#[async_trait]
impl ContactCheckStore for SqliteStore {
    async fn put_contact_checks(&self, tenant_id: &str, rs: &[ContactCheckRecord]) -> Result<()> {
        let rs = last_per_phone(rs);
        if rs.is_empty() {
            return Ok(());
        }
        let _gate = self.write_gate.lock().await;
        let mut conn = self.pool.acquire().await.map_err(db)?;
        // Six binds a row: chunks stay well under the bind limit.
        for chunk in rs.chunks(1000) {
            let mut qb: sqlx::QueryBuilder<sqlx::Sqlite> = sqlx::QueryBuilder::new(
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
        let cut = cut_millis(not_before);
        let mut out = Vec::new();
        for chunk in phones.chunks(1000) {
            let mut qb: sqlx::QueryBuilder<sqlx::Sqlite> = sqlx::QueryBuilder::new(
                "SELECT phone, on_whatsapp, jid, lid, checked_at FROM contact_checks \
                 WHERE tenant_id = ",
            );
            qb.push_bind(tenant_id).push(" AND checked_at >= ").push_bind(cut);
            qb.push(" AND phone IN (");
            let mut list = qb.separated(", ");
            for p in chunk {
                list.push_bind(p.clone());
            }
            qb.push(")");
            for row in qb.build().fetch_all(&self.pool).await.map_err(db)? {
                out.push(check_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn prune_contact_checks(&self, older_than: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM contact_checks WHERE checked_at < ?")
            .bind(cut_millis(older_than))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}
