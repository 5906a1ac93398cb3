//! The real WhatsApp backend, built on the `whatsapp-rust` library.

pub mod backend;
mod driver;
mod events;
pub mod transport;

pub use driver::{WhatsAppConnection, WhatsAppDriver, WhatsAppOptions};
