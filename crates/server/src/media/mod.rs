//! The gateway's media files: uploads and fetched URLs stored once on disk under
//! `<data_dir>/media/`, streamed in and out chunk by chunk and never held whole in memory, and
//! kept until their retention ends.
//!
//! Layout, one directory per tenant (a tenant can only ever name paths inside its own):
//! ```text
//! media/<tenant_id>/<media_id>.bin                   the file
//! media/<tenant_id>/<media_id>.json                  its StoredMedia record (the commit point)
//! media/<tenant_id>/.tmp/…                           files being written
//! media/<tenant_id>/inbound/<instance_id>/<wa_id>    the cache of received media
//! ```
//! A file is written under `.tmp/`, synced, then renamed to its id; the record is written the
//! same way last, so a crash leaves at most an orphan (swept later), never a half file under a
//! real id.

mod error;
mod fetch;
pub mod peers;
pub mod private;
mod record;
pub mod sniff;
mod store;

pub use error::MediaError;
pub use record::{is_safe_id, MediaLimits, StoredMedia};
pub use store::{http_client, open, MediaStore};
