//! CIDR lists (`sources.NAME.allow_ips`, `server.trusted_proxies`): parsed
//! once from the config, matched on every request.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// A set of networks, IPv4 and IPv6 mixed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrList(Vec<IpNet>);

impl CidrList {
    /// Parses entries such as `"10.0.0.0/8"`, `"2001:db8::/32"` or a bare
    /// address (`"192.0.2.7"` is `/32`, `"::1"` is `/128`). Host bits after
    /// the prefix are dropped (`"10.1.2.3/8"` is `10.0.0.0/8`). On error,
    /// returns the index of the bad entry and what was wrong with it.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, (usize, String)> {
        entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let text = entry.as_ref().trim();
                if let Ok(net) = IpNet::from_str(text) {
                    return Ok(net.trunc());
                }
                IpAddr::from_str(text)
                    .map(|ip| IpNet::from(ip.to_canonical()))
                    .map_err(|_| {
                        (
                            i,
                            format!("`{text}` is neither an IP address nor a CIDR such as 10.0.0.0/8 or 2001:db8::/32"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether `ip` is in one of the networks. An IPv4 address written as
    /// IPv6 (`::ffff:192.0.2.7`, what a dual-stack listener reports) counts
    /// as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_and_bare_addresses_of_both_families_match() {
        let list = CidrList::parse(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1"]).unwrap();
        for inside in [
            "10.255.0.1",
            "192.0.2.7",
            "2001:db8:1::5",
            "::1",
            "::ffff:10.1.1.1",
        ] {
            assert!(list.contains(ip(inside)), "{inside}");
        }
        for outside in ["11.0.0.1", "192.0.2.8", "2001:db9::1", "::2", "127.0.0.1"] {
            assert!(!list.contains(ip(outside)), "{outside}");
        }
    }

    #[test]
    fn host_bits_are_dropped() {
        let list = CidrList::parse(&["10.1.2.3/8"]).unwrap();
        assert!(list.contains(ip("10.200.0.1")));
    }

    #[test]
    fn a_bad_entry_is_named_by_index() {
        let (i, reason) = CidrList::parse(&["10.0.0.0/8", "10.0.0.0/33"]).unwrap_err();
        assert_eq!(i, 1);
        assert!(reason.contains("10.0.0.0/33"), "{reason}");
        assert_eq!(CidrList::parse(&["example.com"]).unwrap_err().0, 0);
    }
}
