//! The gateway's media files: uploads, fetched URLs and cached received media, stored once
//! through one storage interface ([`blobs::Blobs`]) with two backends: the local disk under
//! `<data_dir>/media/` (the default) and an S3-compatible object store every node of a
//! cluster shares (`--media-store s3://…`). Streamed in and out chunk by chunk, never held
//! whole in memory, and kept until their retention ends.
//!
//! Layout, one key prefix per tenant (a tenant can only ever name keys inside its own):
//! ```text
//! <tenant_id>/<media_id>.bin                   the file
//! <tenant_id>/<media_id>.json                  its StoredMedia record (the commit point)
//! <tenant_id>/inbound/<instance_id>/<wa_id>    the cache of received media
//! ```
//! On the local disk, `<tenant_id>/.tmp/` holds files being written and `.spool/` the local
//! copies the driver reads (`spool.rs`). A file is written whole (a temporary file renamed,
//! or an object store's completed upload), then its record; a crash leaves at most an orphan
//! (swept later), never a half file under a real id.

pub mod blobs;
mod error;
mod fetch;
pub mod files;
pub mod peers;
pub mod private;
mod record;
pub mod settings;
pub mod sniff;
pub mod spool;
mod store;

pub use error::MediaError;
pub use record::{is_safe_id, MediaLimits, StoredMedia};
pub use settings::{MediaStorage, S3Settings};
pub use store::{http_client, open, LocalFile, MediaStore};
