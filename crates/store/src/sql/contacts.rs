//! [`ContactCheckStore`]: the contact-check cache.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{cut_millis, q, ts, values, Backend, SqlStore};
use crate::contacts::last_per_phone;
use crate::time::to_millis;
use crate::{ContactCheckRecord, ContactCheckStore, Result};

/// Rows (six binds each) or phones per statement: well under either database's bind limit.
const PER_STATEMENT: usize = 1000;

fn check_from_row<DB: Backend>(row: &DB::Row) -> Result<ContactCheckRecord> {
    Ok(ContactCheckRecord {
        phone: DB::col(row, "phone")?,
        on_whatsapp: DB::col(row, "on_whatsapp")?,
        jid: DB::col(row, "jid")?,
        lid: DB::col(row, "lid")?,
        checked_at: ts(DB::col(row, "checked_at")?)?,
    })
}

#[async_trait]
impl<DB: Backend> ContactCheckStore for SqlStore<DB> {
    async fn put_contact_checks(&self, tenant_id: &str, rs: &[ContactCheckRecord]) -> Result<()> {
        let rs = last_per_phone(rs);
        if rs.is_empty() {
            return Ok(());
        }
        let _gate = DB::gate(self).await;
        let mut conn = self.conn().await?;
        for chunk in rs.chunks(PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO contact_checks (tenant_id, phone, on_whatsapp, jid, lid, checked_at) \
                 VALUES {} ON CONFLICT (tenant_id, phone) DO UPDATE SET \
                 on_whatsapp = excluded.on_whatsapp, jid = excluded.jid, lid = excluded.lid, \
                 checked_at = excluded.checked_at",
                values::<DB>(chunk.len(), 6)
            );
            let mut query = q::<DB>(&sql);
            for r in chunk {
                query = query
                    .bind(tenant_id)
                    .bind(&r.phone)
                    .bind(r.on_whatsapp)
                    .bind(&r.jid)
                    .bind(&r.lid)
                    .bind(to_millis(r.checked_at));
            }
            query.execute(&mut conn).await?;
        }
        Ok(())
    }

    async fn get_contact_checks(
        &self,
        tenant_id: &str,
        phones: &[String],
        not_before: DateTime<Utc>,
    ) -> Result<Vec<ContactCheckRecord>> {
        let mut conn = self.conn().await?;
        let mut out = Vec::new();
        for chunk in phones.chunks(PER_STATEMENT) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "SELECT phone, on_whatsapp, jid, lid, checked_at FROM contact_checks \
                 WHERE tenant_id = $1 AND checked_at >= $2 AND phone IN ({})",
                list.join(", ")
            );
            let mut query = q::<DB>(&sql).bind(tenant_id).bind(cut_millis(not_before));
            for p in chunk {
                query = query.bind(p);
            }
            for row in query.fetch_all(&mut conn).await? {
                out.push(check_from_row::<DB>(&row)?);
            }
        }
        Ok(out)
    }

    async fn prune_contact_checks(&self, older_than: DateTime<Utc>) -> Result<u64> {
        q::<DB>("DELETE FROM contact_checks WHERE checked_at < $1")
            .bind(cut_millis(older_than))
            .execute(&mut *self.conn().await?)
            .await
    }
}
