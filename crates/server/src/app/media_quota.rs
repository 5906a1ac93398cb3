//! The media quota: the bytes of files a tenant keeps in the media store
//! (`--max-media-mb-per-tenant`; this node's disk, or the S3 store all nodes share). An upload
//! is refused before it is read when the tenant is already at its quota, and after it is
//! written when it took the tenant past it (the caller then deletes the file, so a refused
//! upload leaves nothing behind).

use std::sync::Arc;

use bzapper_core::quota::Limit;

use crate::app::error::{AppError, AppResult};
use crate::app::quotas;
use crate::media::{MediaStore, StoredMedia};

pub struct MediaQuota {
    media: Arc<MediaStore>,
    limit: Limit,
}

const WHAT: &str = "bytes of stored media per tenant";

impl MediaQuota {
    pub fn new(media: Arc<MediaStore>, limit: Limit) -> Self {
        MediaQuota { media, limit }
    }

    /// Before an upload: whether the tenant has any room left. No `Retry-After`: room comes
    /// back when the tenant deletes files or they expire (`--media-retention-hours`).
    pub async fn check_room(&self, tenant_id: &str) -> AppResult<()> {
        if self.limit.is_unlimited() {
            return Ok(());
        }
        let used = self.media.tenant_bytes(tenant_id).await.map_err(AppError::internal)?;
        quotas::check(self.limit, used, 1, WHAT, None)
    }

    /// After an upload was written: whether the tenant is still within its quota with it
    /// (the count includes `stored`).
    pub async fn check_stored(&self, stored: &StoredMedia) -> AppResult<()> {
        if self.limit.is_unlimited() {
            return Ok(());
        }
        let used = self.media.tenant_bytes(&stored.tenant_id).await.map_err(AppError::internal)?;
        quotas::check(self.limit, used, 0, WHAT, None)
    }
}
