//! The guard's refusal, as the HTTP client's resolver and redirect policy return it and the
//! callers recognise it in a failed request's causes.

/// A request the guard refused: the URL's host is, or resolves to, an address that must not
/// be reached. Its text is all a tenant is told (which address, and why, is logged at debug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the URL's address is not allowed")]
pub struct Blocked;
