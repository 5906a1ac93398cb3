//! The Signal side of the fake contacts: each fake WhatsApp user has its own identity,
//! prekeys and in-memory sessions, serves its prekey bundle when the client fetches it,
//! decrypts what the client sends it and encrypts what it sends to the client — with
//! wacore-libsignal and wacore's own padding and wire shapes, so the real client library
//! cannot tell it from a phone.
//!
//! - [`FakeContact`]: one fake user (`<digits>@s.whatsapp.net`, device 0).
//! - [`ClientKeys`]: a client device's uploaded keys, parsed from its upload iq; fake
//!   contacts take its one-time prekeys in order to start sessions to it.
//! - [`stores`]: the in-memory Signal stores behind both.

mod client_keys;
mod contact;
pub mod stores;

pub use client_keys::ClientKeys;
pub use contact::{
    DEFAULT_ONE_TIME_PREKEYS, ENC_VERSION, Encrypted, FakeContact, prekey_fetch_result_node,
};

#[cfg(test)]
mod tests;
