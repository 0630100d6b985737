//! Where a client comes from, for every per-source limit: an IPv4 address, or an IPv6 address
//! cut to a prefix (a /64 by default), because one subscriber usually holds a whole IPv6
//! prefix and could otherwise take a fresh budget with every address in it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Default IPv6 prefix length that counts as one source.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// A client's source: the key of per-source limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source(IpAddr);

/// How addresses are grouped into sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceMask {
    ipv6_prefix: u8,
}

impl SourceMask {
    /// Groups IPv6 addresses by their first `ipv6_prefix` bits (at most 128); IPv4 addresses
    /// are each their own source.
    pub fn new(ipv6_prefix: u8) -> SourceMask {
        SourceMask {
            ipv6_prefix: ipv6_prefix.min(128),
        }
    }

    /// The source `ip` belongs to. IPv4-mapped IPv6 addresses (a dual-stack socket's view of
    /// an IPv4 client) count as the IPv4 address they carry.
    pub fn source(&self, ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => Source(IpAddr::V6(mask_v6(v6, self.ipv6_prefix))),
            },
        }
    }
}

impl Default for SourceMask {
    fn default() -> Self {
        SourceMask::new(DEFAULT_IPV6_PREFIX)
    }
}

/// A source as [`Source`]'s `Display` writes it (how cluster nodes share their counts).
impl std::str::FromStr for Source {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Source)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

fn mask_v6(ip: Ipv6Addr, bits: u8) -> Ipv6Addr {
    let keep = u32::from(bits.min(128));
    let mask = u128::MAX.checked_shl(128 - keep).unwrap_or(0);
    Ipv6Addr::from(u128::from(ip) & mask)
}

fn mask_v4(ip: Ipv4Addr, bits: u8) -> Ipv4Addr {
    let keep = u32::from(bits.min(32));
    let mask = u32::MAX.checked_shl(32 - keep).unwrap_or(0);
    Ipv4Addr::from(u32::from(ip) & mask)
}

/// `ip` with only its network part kept: the first `v4_bits` of an IPv4 address or
/// `v6_bits` of an IPv6 one (the ledger keeps /24 and /48 when told to truncate).
pub fn truncate(ip: IpAddr, v4_bits: u8, v6_bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(mask_v4(v4, v4_bits)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(mask_v4(v4, v4_bits)),
            None => IpAddr::V6(mask_v6(v6, v6_bits)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_addresses_in_one_prefix_are_one_source() {
        let m = SourceMask::default();
        assert_eq!(
            m.source(ip("2001:db8:1:2::1")),
            m.source(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_ne!(m.source(ip("2001:db8:1:2::1")), m.source(ip("2001:db8:1:3::1")));
        assert_eq!(m.source(ip("2001:db8:1:2::1")).to_string(), "2001:db8:1:2::");
        let wide = SourceMask::new(48);
        assert_eq!(
            wide.source(ip("2001:db8:1:2::1")),
            wide.source(ip("2001:db8:1:ffff::1"))
        );
        let exact = SourceMask::new(128);
        assert_ne!(exact.source(ip("2001:db8::1")), exact.source(ip("2001:db8::2")));
        // Nonsense prefixes are clamped, not a panic.
        assert_eq!(SourceMask::new(200), exact);
        assert_eq!(SourceMask::new(0).source(ip("2001:db8::1")).to_string(), "::");
    }

    #[test]
    fn ipv4_is_per_address_and_mapped_addresses_count_as_ipv4() {
        let m = SourceMask::default();
        assert_ne!(m.source(ip("192.0.2.1")), m.source(ip("192.0.2.2")));
        assert_eq!(m.source(ip("::ffff:192.0.2.1")), m.source(ip("192.0.2.1")));
    }

    #[test]
    fn truncation_keeps_the_network_part() {
        assert_eq!(truncate(ip("192.0.2.77"), 24, 48), ip("192.0.2.0"));
        assert_eq!(truncate(ip("2001:db8:aa:bb::1"), 24, 48), ip("2001:db8:aa::"));
        assert_eq!(truncate(ip("::ffff:192.0.2.77"), 24, 48), ip("192.0.2.0"));
        assert_eq!(truncate(ip("192.0.2.77"), 32, 128), ip("192.0.2.77"));
    }
}
