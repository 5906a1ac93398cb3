//! Which phone numbers are on WhatsApp: the paced, cached checker lives in the runtime
//! (`runtime::contact_checks`), where the send path's first-contact pre-check uses it too;
//! `POST /v1/contacts/check` uses the same one.

pub use crate::runtime::contact_checks::{cache_cutoff, ContactChecker, BATCH, CACHE_TTL};
