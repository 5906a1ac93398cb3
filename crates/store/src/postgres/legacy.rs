//! Placeholder: the renumbering of old migration histories (see the migrations commit).

use sqlx::PgPool;

use crate::Result;

pub(super) async fn renumber(_pool: &PgPool) -> Result<()> {
    Ok(())
}
