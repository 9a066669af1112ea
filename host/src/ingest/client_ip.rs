//! Who sent a request: the TCP peer, or, when the peer is one of
//! `server.trusted_proxies`, the address those proxies recorded in
//! `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use http::HeaderMap;
use tokio::net::TcpListener;

use crate::cidr::CidrList;
use crate::tls::TlsListener;

/// The TCP peer of a connection, as axum's `ConnectInfo` for both listeners.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// The client's address, or `None` when a trusted proxy sent an
/// `X-Forwarded-For` that cannot be read (an allow-list then refuses).
///
/// The list is read from the right, the hop nearest to us: each entry that
/// is itself a trusted proxy is skipped, and the first one that is not is
/// the client. Entries further left were written by whoever the client is,
/// so they are never believed. A peer that is not a trusted proxy is the
/// client, whatever headers it sends.
pub(super) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &CidrList) -> Option<IpAddr> {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return Some(peer);
    }
    let mut client = peer;
    // Several X-Forwarded-For headers are one list, in order.
    let values = headers.get_all("x-forwarded-for");
    let mut hops = Vec::new();
    for value in values {
        let text = value.to_str().ok()?;
        hops.extend(text.split(',').map(str::trim));
    }
    for hop in hops.iter().rev() {
        let ip = parse_hop(hop)?.to_canonical();
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    Some(client)
}

/// One `X-Forwarded-For` entry: an address, maybe with a port
/// (`192.0.2.7:1234`, `[2001:db8::1]:443`), as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = CidrList::parse(&["10.0.0.0/8"]).unwrap();
        let headers = xff(&["203.0.113.9"]);
        assert_eq!(
            client_ip(ip("198.51.100.1"), &headers, &trusted),
            Some(ip("198.51.100.1"))
        );
        let nobody = CidrList::default();
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers, &nobody),
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        let trusted = CidrList::parse(&["10.0.0.0/8", "2001:db8::/32"]).unwrap();
        // spoofed, real client, inner proxy
        let headers = xff(&["1.2.3.4, 203.0.113.9", "10.0.0.7"]);
        assert_eq!(
            client_ip(ip("10.0.0.2"), &headers, &trusted),
            Some(ip("203.0.113.9"))
        );
        let headers = xff(&["[2001:db9::5]:443, 2001:db8::1"]);
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.2"), &headers, &trusted),
            Some(ip("2001:db9::5"))
        );
        // Only proxies in the list: the leftmost one is as far as we can see.
        let headers = xff(&["10.0.0.9"]);
        assert_eq!(
            client_ip(ip("10.0.0.2"), &headers, &trusted),
            Some(ip("10.0.0.9"))
        );
        // No header: the proxy itself.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            Some(ip("10.0.0.2"))
        );
    }

    #[test]
    fn an_unreadable_forwarded_list_from_a_trusted_proxy_gives_no_client() {
        let trusted = CidrList::parse(&["10.0.0.0/8"]).unwrap();
        assert_eq!(
            client_ip(ip("10.0.0.2"), &xff(&["unknown"]), &trusted),
            None
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), &xff(&["203.0.113.9, "]), &trusted),
            None
        );
    }
}
