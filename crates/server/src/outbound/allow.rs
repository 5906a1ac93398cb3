//! The operator's exceptions to the outbound guard (`--outbound-allow`): hosts, IP addresses
//! and CIDR ranges a tenant's URLs may reach even though they are loopback, private or
//! otherwise refused.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use super::address::net_contains;

/// The parsed `--outbound-allow` list. Empty (the default) allows nothing beyond the public
/// internet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// Host names (lower case, no trailing dot) whose every address is allowed.
    hosts: Vec<String>,
    /// Addresses (as /32 or /128) and ranges that are allowed.
    nets: Vec<IpNet>,
}

/// A `--outbound-allow` entry that is neither a host, an address nor a range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--outbound-allow: `{0}` is not a host name, an IP address or a CIDR range \
     (e.g. hooks.internal, 10.0.0.5, 192.168.0.0/16, ::1)"
)]
pub struct BadEntry(String);

impl AllowList {
    /// Whether `host` (as a URL names it) is one of the allowed host names.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = normalise_host(host);
        self.hosts.contains(&host)
    }

    /// Whether `ip` lies in one of the allowed addresses or ranges.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net_contains(net, ip))
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.nets.is_empty()
    }
}

impl FromStr for AllowList {
    type Err = BadEntry;

    /// Comma-separated entries; blanks around them and empty entries are ignored. An entry is
    /// a CIDR range (`10.0.0.0/8`, `fd00::/8`), an address (`127.0.0.1`, `::1`, `[::1]`), or a
    /// host name (`localhost`, `hooks.internal`; matched exactly, case-insensitively).
    fn from_str(s: &str) -> Result<Self, BadEntry> {
        let mut list = AllowList::default();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bare = entry.trim_start_matches('[').trim_end_matches(']');
            if let Ok(net) = bare.parse::<IpNet>() {
                list.nets.push(net.trunc());
            } else if let Ok(ip) = bare.parse::<IpAddr>() {
                list.nets.push(IpNet::from(ip));
            } else if is_host_name(entry) {
                list.hosts.push(normalise_host(entry));
            } else {
                return Err(BadEntry(entry.chars().take(100).collect()));
            }
        }
        Ok(list)
    }
}

fn normalise_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// A DNS name: dot-separated labels of letters, digits, `-` and `_`, none empty or longer
/// than 63, and not all digits (an all-digit "name" is a mistyped address).
fn is_host_name(s: &str) -> bool {
    let s = s.trim_end_matches('.');
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        && !s.chars().all(|c| c.is_ascii_digit() || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_addresses_and_ranges_are_read() {
        let list: AllowList =
            " localhost, Hooks.Internal. ,10.0.0.5, 192.168.0.0/16,::1,[fd00::1], 127.0.0.1/8,"
                .parse()
                .unwrap();
        assert!(list.allows_host("localhost"));
        assert!(list.allows_host("hooks.internal"));
        assert!(list.allows_host("HOOKS.internal."));
        assert!(!list.allows_host("evil.internal"));
        for ip in ["10.0.0.5", "192.168.44.1", "::1", "fd00::1", "127.9.9.9", "::ffff:127.0.0.1"] {
            assert!(list.allows_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.6", "172.16.0.1", "fd00::2", "169.254.169.254"] {
            assert!(!list.allows_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn empty_is_the_default_and_allows_nothing() {
        let list: AllowList = "".parse().unwrap();
        assert!(list.is_empty());
        assert_eq!(list, AllowList::default());
        assert!(!list.allows_ip("127.0.0.1".parse().unwrap()));
        assert!(!list.allows_host("localhost"));
    }

    #[test]
    fn a_bad_entry_is_refused_by_name() {
        for bad in ["10.0.0.0/33", "http://x", "a b", "999.1.1.1", "1.2.3", "-/-", "x..y"] {
            let err = bad.parse::<AllowList>().unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{bad}: {err}");
            assert!(err.starts_with("--outbound-allow:"), "{err}");
        }
    }
}
