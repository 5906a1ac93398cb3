//! The outbound guard: every URL the gateway fetches or posts to on a tenant's behalf (media
//! URLs of outgoing messages, webhooks, alerts) goes through an [`OutboundClient`], which never
//! connects to a loopback, private, link-local, shared (CGNAT), unique-local, multicast,
//! unspecified, broadcast, documentation or reserved address, nor to a cloud metadata service
//! (see [`address`]), unless the operator allowed it (`--outbound-allow`, [`AllowList`]).
//!
//! - A host name is resolved by [`resolver::GuardedResolver`], which the HTTP client dials
//!   through: it refuses the name when *any* of its addresses is forbidden, and the client
//!   connects only to the addresses it returned, so a name cannot resolve to a public address
//!   for the check and to a private one for the connection.
//! - An IP-literal host (the HTTP client dials those without asking the resolver, and the `url`
//!   crate has already turned `2130706433`, `0x7f.1` and the like into `127.0.0.1`) is checked
//!   before the request and on every redirect hop.
//! - Redirects: up to [`MAX_REDIRECTS`] hops, each hop checked ([`Redirects::Checked`], media),
//!   or none at all ([`Redirects::Off`], webhooks and alerts: a 3xx is a failed delivery).
//! - No proxy from the environment: a proxy would resolve the names itself, past the guard.
//!
//! The cluster's own node-to-node requests (media copies from peers, forwarded routes) do not
//! go through here: they reach the operator's own nodes.

pub mod address;
mod allow;
mod error;
mod resolver;

use std::net::IpAddr;
use std::sync::Arc;

pub use allow::{AllowList, BadEntry};
pub use error::Blocked;

/// The most redirect hops a media fetch follows.
pub const MAX_REDIRECTS: usize = 5;

/// How an [`OutboundClient`] treats redirects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Followed up to [`MAX_REDIRECTS`] hops, each target checked like the first URL.
    Checked,
    /// Never followed: the 3xx answer is what the caller sees.
    Off,
}

/// The guard's settings, shared by every client it builds.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allow: Arc<AllowList>,
}

impl Guard {
    pub fn new(allow: AllowList) -> Self {
        Guard { allow: Arc::new(allow) }
    }

    /// An HTTP client whose every request is guarded. `configure` sets what the caller needs
    /// (timeouts, user agent); the resolver, redirect policy and proxy settings are the guard's
    /// and set after it, so they cannot be undone.
    pub fn client(
        &self,
        redirects: Redirects,
        configure: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> reqwest::Result<OutboundClient> {
        let policy = match redirects {
            Redirects::Off => reqwest::redirect::Policy::none(),
            Redirects::Checked => {
                let guard = self.clone();
                reqwest::redirect::Policy::custom(move |attempt| {
                    if attempt.previous().len() > MAX_REDIRECTS {
                        attempt.error(TooManyRedirects)
                    } else if let Err(blocked) = guard.check_url(attempt.url()) {
                        attempt.error(blocked)
                    } else {
                        attempt.follow()
                    }
                })
            }
        };
        let http = configure(reqwest::Client::builder())
            .no_proxy()
            .dns_resolver(Arc::new(resolver::GuardedResolver::new(self.allow.clone())))
            .redirect(policy)
            .build()?;
        Ok(OutboundClient { http, guard: self.clone() })
    }

    /// Checks what can be checked of `url` without resolving it: the scheme is http or https,
    /// and an IP-literal host is an address that may be reached. A host name passes here; it
    /// is checked when the client resolves it.
    pub fn check_url(&self, url: &url::Url) -> Result<(), Blocked> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Blocked);
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            Some(url::Host::Domain(_)) => return Ok(()),
            None => return Err(Blocked),
        };
        if self.permits(ip) {
            Ok(())
        } else {
            tracing::debug!(%ip, why = ?address::classify(ip), "outbound URL refused");
            Err(Blocked)
        }
    }

    /// Whether `ip` may be reached: a public address, or one the operator allowed.
    fn permits(&self, ip: IpAddr) -> bool {
        address::classify(ip).is_none() || self.allow.allows_ip(ip)
    }
}

/// A redirect chain longer than [`MAX_REDIRECTS`].
#[derive(Debug, thiserror::Error)]
#[error("too many redirects")]
struct TooManyRedirects;

/// An HTTP client that reaches only what the guard permits. Requests are made from a URL,
/// checked first ([`Guard::check_url`]); the connection's addresses are checked by the resolver.
#[derive(Debug, Clone)]
pub struct OutboundClient {
    http: reqwest::Client,
    guard: Guard,
}

impl OutboundClient {
    pub fn get(&self, url: &url::Url) -> Result<reqwest::RequestBuilder, Blocked> {
        self.guard.check_url(url)?;
        Ok(self.http.get(url.clone()))
    }

    /// A POST to `url` (as stored: a webhook's or alert's URL); one that does not parse is
    /// refused like a forbidden one (it was checked when it was registered).
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, Blocked> {
        let url = url::Url::parse(url).map_err(|_| Blocked)?;
        self.guard.check_url(&url)?;
        Ok(self.http.post(url))
    }
}

/// Whether a failed request failed because the guard refused its address (on a redirect hop
/// or at resolution), rather than for a network reason.
pub fn is_blocked(err: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if e.is::<Blocked>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// A failed request in words, causes included and the URL left out (its path or query may be
/// a secret), for the server's debug log; never for the tenant: the details tell a refused
/// port from a timeout.
pub fn detail(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut msg = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(e) = cause {
        msg.push_str(": ");
        msg.push_str(&e.to_string());
        cause = e.source();
    }
    msg
}

#[cfg(test)]
mod tests;
