//! The Signal side of the fake contacts: each fake WhatsApp user has its own identity,
//! prekeys and in-memory sessions, serves its prekey bundle when the client fetches it,
//! decrypts what the client sends it and encrypts what it sends to the client — with
//! wacore-libsignal and wacore's own padding and wire shapes, so the real client library
//! cannot tell it from a phone.
//!
//! - [`FakeContact`]: one fake user (`<digits>@s.whatsapp.net`, device 0).
//! - [`ClientKeys`]: a client device's uploaded keys, parsed from its upload iq; fake
//!   contacts take its one-time prekeys in order to start sessions to it.
//! - [`requested_prekey_jids`], [`prekey_list_node`], [`prekey_fetch_result_node`]: the
//!   prekey fetch request and answer around the contacts' `<user>` bundles.
//! - [`stores`]: the in-memory Signal stores behind both.

mod client_keys;
mod contact;
mod fetch;
pub mod stores;

pub use client_keys::ClientKeys;
pub use contact::{Encrypted, FakeContact, GroupEncrypted, DEFAULT_ONE_TIME_PREKEYS, ENC_VERSION};
pub use fetch::{
    prekey_fetch_result_node, prekey_list_node, prekey_user_error_node, requested_prekey_jids,
};

#[cfg(test)]
mod tests;
