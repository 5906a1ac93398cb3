//! Renumbering of an old PostgreSQL migration history. Until the two stores were joined, the
//! PostgreSQL migrations were numbered on their own: `0001_init` (what SQLite has as
//! 0001..0004), `0002_cluster`, `0003_campaigns`, `0004_content_and_inbound`,
//! `0005_contact_checks`. They are now numbered like SQLite's (`0001_init`, `0002_messages`,
//! `0003_webhooks`, `0004_lid_map`, `0005_campaigns`, `0006_content_and_inbound`,
//! `0007_contact_checks`) plus PostgreSQL's own `0008_cluster`; SQLite's numbering, and so
//! every SQLite data dir, is unchanged.
//!
//! sqlx keeps (version, checksum) of each applied migration in `_sqlx_migrations` and refuses
//! a history that does not match the files, so before the migrator runs, an old history is
//! rewritten to what the new files would have recorded: the old 0001 becomes 0001..0004
//! (together they create exactly what it created), and each later file, whose bytes did not
//! change, keeps its checksum under its new number. Migrations the old history lacks are
//! then applied by the migrator as usual. It runs in one transaction under an advisory lock,
//! so nodes starting together rewrite it once, and it changes nothing unless every old row
//! is one this mapping knows.

use sqlx::PgPool;

use super::MIGRATOR;
use crate::sql::db;
use crate::{Result, StoreError};

/// SHA-384 of the old `0001_init.sql` (kept as `fixtures/legacy-postgres/0001_init.sql`).
pub(super) const OLD_INIT_CHECKSUM: &str = "6c8f9714a4d0d5ceee14818091220f040812a638cadc01c5\
     78c6a790ecc0788d491d562f76377145c111984b2240d7a2";

/// Old version → the new versions that record the same change.
pub(super) const OLD_TO_NEW: [(i64, &[i64]); 5] =
    [(1, &[1, 2, 3, 4]), (2, &[8]), (3, &[5]), (4, &[6]), (5, &[7])];

/// Key of the advisory lock taken while looking at and rewriting the history ("bzmg").
const RENUMBER_LOCK: i32 = 0x627a_6d67;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rewrites an old-numbered `_sqlx_migrations` to the new numbering; does nothing to a new
/// one or a fresh database.
pub(super) async fn renumber(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
        .bind(RENUMBER_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let has_history: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
    if !has_history {
        return Ok(());
    }
    let rows: Vec<(i64, Vec<u8>, bool)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
    let old_init = rows.iter().any(|(v, sum, _)| *v == 1 && hex(sum) == OLD_INIT_CHECKSUM);
    if !old_init {
        return Ok(());
    }
    let unknown = |what: String| {
        StoreError::Database(format!(
            "the database's migration history has the old numbering but {what}; nothing was \
             changed"
        ))
    };
    let new = |v: i64| MIGRATOR.iter().find(|m| m.version == v);
    for (version, checksum, success) in &rows {
        let Some((_, to)) = OLD_TO_NEW.iter().find(|(old, _)| old == version) else {
            return Err(unknown(format!("has a version {version} it never had")));
        };
        if !success {
            return Err(unknown(format!("version {version} did not finish")));
        }
        // Every old file but 0001 lives on, byte for byte, under its new number.
        if *version != 1 && new(to[0]).map(|m| &*m.checksum) != Some(&checksum[..]) {
            return Err(unknown(format!("version {version} is not the known file")));
        }
    }
    // Out of the way of the new numbers first, then each old row gives its new rows (with
    // its time of installation), then the old rows go.
    sqlx::query("UPDATE _sqlx_migrations SET version = -version")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    for (old, _, _) in &rows {
        let (_, to) = OLD_TO_NEW.iter().find(|(v, _)| v == old).expect("checked above");
        for v in to.iter() {
            let m = new(*v).ok_or_else(|| unknown(format!("migration {v} is not embedded")))?;
            sqlx::query(
                "INSERT INTO _sqlx_migrations \
                 (version, description, installed_on, success, checksum, execution_time) \
                 SELECT $1, $2, installed_on, TRUE, $3, execution_time \
                 FROM _sqlx_migrations WHERE version = $4",
            )
            .bind(m.version)
            .bind(&*m.description)
            .bind(&*m.checksum)
            .bind(-old)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
    }
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version < 0")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    tracing::info!("renumbered the database's migration history to the shared numbering");
    Ok(())
}
