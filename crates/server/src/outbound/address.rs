//! Which IP addresses a URL fetched for a tenant must never reach: the pure classifier the
//! outbound guard asks about every address a host resolves to (and every IP-literal host).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    /// A cloud provider's instance metadata service (AWS, GCP, Azure, Alibaba, ...).
    CloudMetadata,
    Loopback,
    /// RFC 1918 (IPv4).
    Private,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// The carrier-grade NAT range 100.64.0.0/10 (RFC 6598).
    SharedAddressSpace,
    /// fc00::/7 (and the deprecated site-local fec0::/10).
    UniqueLocal,
    Multicast,
    /// 0.0.0.0/8, `::`.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// TEST-NET-1/2/3, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// Any other special-purpose range of the IANA registries (benchmarking, protocol
    /// assignments, future use, discard-only, the NAT64 local-use prefix, ...).
    Reserved,
}

/// The metadata services' own addresses, named apart so a log says what was aimed at (each
/// also lies in a range refused anyway).
const CLOUD_METADATA: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
];

/// The IPv4 special-purpose ranges (IANA IPv4 Special-Purpose Address Registry), each with
/// why it is refused. Written out rather than taken from `Ipv4Addr::is_*`: several of those
/// (`is_shared`, `is_benchmarking`, `is_reserved`, `is_global`) are still unstable.
const V4: &[(&str, Forbidden)] = &[
    ("0.0.0.0/8", Forbidden::Unspecified),
    ("10.0.0.0/8", Forbidden::Private),
    ("100.64.0.0/10", Forbidden::SharedAddressSpace),
    ("127.0.0.0/8", Forbidden::Loopback),
    ("169.254.0.0/16", Forbidden::LinkLocal),
    ("172.16.0.0/12", Forbidden::Private),
    ("192.0.0.0/24", Forbidden::Reserved),
    ("192.0.2.0/24", Forbidden::Documentation),
    ("192.88.99.0/24", Forbidden::Reserved),
    ("192.168.0.0/16", Forbidden::Private),
    ("198.18.0.0/15", Forbidden::Reserved),
    ("198.51.100.0/24", Forbidden::Documentation),
    ("203.0.113.0/24", Forbidden::Documentation),
    ("224.0.0.0/4", Forbidden::Multicast),
    ("255.255.255.255/32", Forbidden::Broadcast),
    ("240.0.0.0/4", Forbidden::Reserved),
];

/// The IPv6 ranges refused outright. The forms that carry an IPv4 address (IPv4-mapped
/// `::ffff:0:0/96`, the NAT64 prefix `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the
/// IPv4 address inside them instead, in [`classify`].
const V6: &[(&str, Forbidden)] = &[
    ("::/128", Forbidden::Unspecified),
    ("::1/128", Forbidden::Loopback),
    // IPv4-compatible addresses (deprecated, RFC 4291): never a real destination.
    ("::/96", Forbidden::Reserved),
    ("64:ff9b:1::/48", Forbidden::Reserved),
    ("100::/64", Forbidden::Reserved),
    // IETF protocol assignments, Teredo (2001::/32) among them.
    ("2001::/23", Forbidden::Reserved),
    ("2001:db8::/32", Forbidden::Documentation),
    ("3fff::/20", Forbidden::Documentation),
    ("fc00::/7", Forbidden::UniqueLocal),
    ("fe80::/10", Forbidden::LinkLocal),
    ("fec0::/10", Forbidden::UniqueLocal),
    ("ff00::/8", Forbidden::Multicast),
];

/// Why `ip` must not be reached, or `None` for an address on the public internet.
pub fn classify(ip: IpAddr) -> Option<Forbidden> {
    if CLOUD_METADATA.contains(&ip) {
        return Some(Forbidden::CloudMetadata);
    }
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify(IpAddr::V4(v4)),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Forbidden> {
    V4.iter().find_map(|(net, why)| {
        let net: Ipv4Net = net.parse().expect("a valid range in the table");
        net.contains(&ip).then_some(*why)
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Forbidden> {
    V6.iter().find_map(|(net, why)| {
        let net: Ipv6Net = net.parse().expect("a valid range in the table");
        net.contains(&ip).then_some(*why)
    })
}

/// The IPv4 address an IPv6 address stands for where the network delivers it to that IPv4
/// address: IPv4-mapped (`::ffff:a.b.c.d`, what a dual-stack socket dials as IPv4), the
/// well-known NAT64 prefix (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let octets = ip.octets();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]));
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]));
    }
    None
}

/// Whether `net` holds `ip`, an IPv4-mapped IPv6 address counting as its IPv4 address (so an
/// allowed `127.0.0.0/8` also allows `[::ffff:127.0.0.1]`).
pub fn net_contains(net: &IpNet, ip: IpAddr) -> bool {
    if net.contains(&ip) {
        return true;
    }
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| net.contains(&IpAddr::V4(v4))),
        IpAddr::V4(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(s: &str) -> Option<Forbidden> {
        classify(s.parse().unwrap())
    }

    #[test]
    fn every_range_the_guard_promises_is_refused() {
        use Forbidden::*;
        let cases = [
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("::1", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("169.254.0.1", LinkLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("fc00::1", UniqueLocal),
            ("fdff::1", UniqueLocal),
            ("fec0::1", UniqueLocal),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("ff02::1", Multicast),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("::", Unspecified),
            ("255.255.255.255", Broadcast),
            ("192.0.2.1", Documentation),
            ("198.51.100.1", Documentation),
            ("203.0.113.1", Documentation),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("198.18.0.1", Reserved),
            ("240.0.0.1", Reserved),
            ("192.0.0.8", Reserved),
            ("2001::1", Reserved),
            ("100::1", Reserved),
            ("::127.0.0.1", Reserved),
            ("169.254.169.254", CloudMetadata),
            ("100.100.100.200", CloudMetadata),
            ("fd00:ec2::254", CloudMetadata),
            // IPv4 inside IPv6: judged by the IPv4 address.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", CloudMetadata),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::a9fe:a9fe", CloudMetadata),
            ("2002:7f00:1::", Loopback),
            ("2002:c0a8:101::1", Private),
        ];
        for (ip, expected) in cases {
            assert_eq!(why(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "169.255.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a03:2880:f10c:83:face:b00c:0:25de",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            assert_eq!(why(ip), None, "{ip}");
        }
    }

    #[test]
    fn an_allowed_range_holds_the_mapped_form_of_its_addresses() {
        let net: IpNet = "127.0.0.0/8".parse().unwrap();
        assert!(net_contains(&net, "127.0.0.2".parse().unwrap()));
        assert!(net_contains(&net, "::ffff:127.0.0.2".parse().unwrap()));
        assert!(!net_contains(&net, "::1".parse().unwrap()));
        assert!(!net_contains(&net, "10.0.0.1".parse().unwrap()));
    }
}
