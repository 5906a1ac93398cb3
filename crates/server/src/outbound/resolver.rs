//! The name resolver the guarded HTTP clients dial through: it resolves a host, refuses it
//! when any of its addresses must not be reached, and hands the client exactly the addresses
//! it checked (so nothing is resolved twice and no answer can change in between).

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::address;
use super::allow::AllowList;
use super::error::Blocked;

pub(super) struct GuardedResolver {
    allow: Arc<AllowList>,
}

impl GuardedResolver {
    pub(super) fn new(allow: Arc<AllowList>) -> Self {
        GuardedResolver { allow }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            // The system resolver (getaddrinfo, on a blocking thread), as reqwest's own default.
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?
                .collect();
            if !allow.allows_host(&host) {
                // Any forbidden address refuses the name: a client may try them all.
                if let Some(bad) = addrs
                    .iter()
                    .map(SocketAddr::ip)
                    .find(|ip| address::classify(*ip).is_some() && !allow.allows_ip(*ip))
                {
                    tracing::debug!(
                        %host, ip = %bad, why = ?address::classify(bad),
                        "outbound host refused"
                    );
                    return Err(Box::new(Blocked) as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
