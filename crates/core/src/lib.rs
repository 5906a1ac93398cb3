//! Pure domain logic of bZapper: checked value types, the instance state machine and the
//! validation rules of the public API. Nothing here performs I/O; clocks and randomness are
//! passed in by the caller so that every rule can be tested without a network or a timer.

pub mod calling_codes;
pub mod content;
pub mod hours;
pub mod instance;
pub mod jid;
pub mod limits;
pub mod media_duration;
pub mod menu;
pub mod proxy;
pub mod quota;
pub mod read_receipts;
pub mod recipients_csv;
pub mod retry;
pub mod sending;
pub mod spintax;
pub mod validate;
pub mod warming;

pub use content::{ContactCard, Location, MediaKind};
pub use instance::{InstanceState, Reason, Status, Transition, TransitionError, Trigger};
pub use jid::{Jid, JidError, Phone, Server};
pub use limits::{Limits, LimitsError, LimitsPatch};
pub use proxy::{ProxyError, ProxyScheme, ProxyUrl};
pub use read_receipts::ReadReceipts;
pub use warming::Warming;
