//! Who the client is when the gateway sits behind a reverse proxy: the
//! trusted proxies (`TRUSTED_PROXIES`) and the `X-Forwarded-For` walk that
//! gives the client's address for the per-IP cap and the logs.
//!
//! The rule: only when the TCP peer is a trusted proxy is `X-Forwarded-For`
//! read at all. All its headers, in order, form one comma-separated chain
//! (RFC 9110 §5.3), each proxy appending the address it received the
//! request from. The chain is walked from the right: each entry becomes
//! the candidate client; the walk goes on past entries that are themselves
//! trusted proxies and stops at the first that is not. An entry that is not
//! an address (`unknown`, empty, garbage) stops the walk too, and the last
//! trusted hop, the one that wrote the entry, is the client: whatever lies
//! further left was written by nobody we trust. A forged header from an
//! untrusted peer is therefore ignored, and one sent through a trusted
//! proxy only adds entries to the left of the one the proxy wrote.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The header proxies append the client's address to.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Addresses and networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Trusts the given networks (an address alone is a one-host network).
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies {
            nets: nets.into_iter().map(|net| net.trunc()).collect(),
        }
    }

    /// Whether anyone is trusted (the default trusts nobody).
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is a trusted proxy. An IPv4-mapped IPv6 address (a
    /// dual-stack listener's view of an IPv4 peer) counts as its IPv4 address.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The connection's peer as the gateway counts and logs it: the client
    /// address from `X-Forwarded-For` when `tcp` is a trusted proxy (see the
    /// module docs for the walk), else `tcp` itself.
    pub fn peer(&self, tcp: SocketAddr, headers: &HeaderMap) -> Peer {
        let direct = tcp.ip().to_canonical();
        let mut client = direct;
        if self.trusts(direct) {
            'walk: for header in headers.get_all(X_FORWARDED_FOR).iter().rev() {
                let Ok(chain) = header.to_str() else {
                    break;
                };
                for entry in chain.rsplit(',') {
                    let Some(hop) = parse_hop(entry) else {
                        break 'walk;
                    };
                    client = hop;
                    if !self.trusts(hop) {
                        break 'walk;
                    }
                }
            }
        }
        Peer { client, tcp }
    }
}

/// One `X-Forwarded-For` entry: an IPv4 or IPv6 address, optionally with a
/// port (`192.0.2.7:4711`, `[2001:db8::7]:4711`) or in brackets, with
/// spaces around; anything else is `None`.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim_matches([' ', '\t']);
    let ip = if let Ok(ip) = entry.parse::<IpAddr>() {
        ip
    } else if let Ok(socket) = entry.parse::<SocketAddr>() {
        socket.ip()
    } else {
        entry
            .strip_prefix('[')?
            .strip_suffix(']')?
            .parse::<std::net::Ipv6Addr>()
            .ok()?
            .into()
    };
    Some(ip.to_canonical())
}

/// A connection's peer: the client's address (forwarded, or the TCP
/// peer's own) and the TCP peer it came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The address the per-IP cap counts.
    pub client: IpAddr,
    /// The TCP peer: the client itself, or the proxy that forwarded it.
    pub tcp: SocketAddr,
}

impl Peer {
    /// Whether the client address came from `X-Forwarded-For`.
    pub fn is_forwarded(&self) -> bool {
        self.client != self.tcp.ip().to_canonical()
    }
}

/// `192.0.2.7:4711` for a direct client, `198.51.100.9 via 127.0.0.1:50412`
/// for a forwarded one: log lines name the client first.
impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_forwarded() {
            write!(f, "{} via {}", self.client, self.tcp)
        } else {
            write!(f, "{}", self.tcp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_proxy;
    use axum::http::HeaderValue;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|p| parse_proxy(p).unwrap()).collect())
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(X_FORWARDED_FOR, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    fn client(trusted: &[&str], tcp: &str, xff: &[&[u8]]) -> String {
        let tcp: SocketAddr = tcp.parse().unwrap();
        proxies(trusted).peer(tcp, &headers(xff)).client.to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(client(&[], "127.0.0.4:5000", &[b"10.9.9.9"]), "127.0.0.4");
        assert_eq!(
            client(&["127.0.0.1"], "127.0.0.4:5000", &[b"10.9.9.9"]),
            "127.0.0.4"
        );
    }

    #[test]
    fn a_trusted_peer_forwards_the_rightmost_untrusted_address() {
        let trusted = &["127.0.0.1", "10.0.0.0/8"];
        assert_eq!(
            client(trusted, "127.0.0.1:5000", &[b"203.0.113.7"]),
            "203.0.113.7"
        );
        // A client-supplied entry on the left is not believed: the proxy's
        // own entry (rightmost) is not trusted, so the walk stops there.
        assert_eq!(
            client(trusted, "127.0.0.1:5000", &[b"198.51.100.1, 203.0.113.7"]),
            "203.0.113.7"
        );
        // Through two trusted proxies: the walk passes the inner one.
        assert_eq!(
            client(
                trusted,
                "127.0.0.1:5000",
                &[b"198.51.100.1, 203.0.113.7, 10.1.2.3"]
            ),
            "203.0.113.7"
        );
        // Every hop trusted: the leftmost is the best we know.
        assert_eq!(
            client(trusted, "127.0.0.1:5000", &[b"10.0.0.9, 10.1.2.3"]),
            "10.0.0.9"
        );
        // No header: the proxy itself.
        assert_eq!(client(trusted, "127.0.0.1:5000", &[]), "127.0.0.1");
    }

    #[test]
    fn several_headers_are_one_chain_in_order() {
        let trusted = &["127.0.0.1", "10.0.0.0/8"];
        assert_eq!(
            client(
                trusted,
                "127.0.0.1:5000",
                &[b"198.51.100.1", b"203.0.113.7, 10.0.0.2"]
            ),
            "203.0.113.7"
        );
        assert_eq!(
            client(trusted, "127.0.0.1:5000", &[b"203.0.113.7", b"10.0.0.2"]),
            "203.0.113.7"
        );
    }

    #[test]
    fn ipv6_ports_brackets_and_spaces() {
        let trusted = &["::1", "127.0.0.1"];
        assert_eq!(
            client(trusted, "[::1]:5000", &[b"2001:db8::7"]),
            "2001:db8::7"
        );
        assert_eq!(
            client(trusted, "[::1]:5000", &[b"[2001:db8::7]:4711"]),
            "2001:db8::7"
        );
        assert_eq!(
            client(trusted, "[::1]:5000", &[b"[2001:db8::7]"]),
            "2001:db8::7"
        );
        assert_eq!(
            client(trusted, "127.0.0.1:5000", &[b"  192.0.2.7:4711 \t"]),
            "192.0.2.7"
        );
        assert_eq!(
            client(trusted, "127.0.0.1:5000", &[b"192.0.2.7 ,\t::1"]),
            "192.0.2.7"
        );
        // A dual-stack listener sees IPv4 peers as mapped IPv6 addresses.
        assert_eq!(
            client(trusted, "[::ffff:127.0.0.1]:5000", &[b"192.0.2.7"]),
            "192.0.2.7"
        );
        assert_eq!(
            client(trusted, "127.0.0.1:5000", &[b"::ffff:192.0.2.7"]),
            "192.0.2.7"
        );
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_trusted_hop() {
        let trusted = &["127.0.0.1", "10.0.0.0/8"];
        for chain in [
            b"unknown".as_slice(),
            b"",
            b"203.0.113.7, ",
            b"not an address",
            b"203.0.113.7:port",
            b"[203.0.113.7]",
            b"203.0.113.300",
            b"\xff\xfe",
        ] {
            assert_eq!(
                client(trusted, "127.0.0.1:5000", &[chain]),
                "127.0.0.1",
                "{chain:?}"
            );
        }
        // Garbage further left is never reached, or stops behind a trusted hop.
        assert_eq!(
            client(trusted, "127.0.0.1:5000", &[b"garbage, 203.0.113.7"]),
            "203.0.113.7"
        );
        assert_eq!(
            client(trusted, "127.0.0.1:5000", &[b"garbage, 10.0.0.2"]),
            "10.0.0.2"
        );
        // An unreadable header stops the walk: the later header's hop stands.
        assert_eq!(
            client(
                trusted,
                "127.0.0.1:5000",
                &[b"203.0.113.7", b"\xff", b"10.0.0.2"]
            ),
            "10.0.0.2"
        );
    }

    #[test]
    fn trusted_entries_parse_as_addresses_or_networks() {
        let trusted = proxies(&[" 10.0.0.1/8", "192.168.1.1", "fd00::/8"]);
        assert!(trusted.trusts("10.200.0.1".parse().unwrap()));
        assert!(trusted.trusts("192.168.1.1".parse().unwrap()));
        assert!(!trusted.trusts("192.168.1.2".parse().unwrap()));
        assert!(trusted.trusts("fd12::1".parse().unwrap()));
        assert!(trusted.trusts("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!trusted.trusts("2001:db8::1".parse().unwrap()));
        assert!(TrustedProxies::default().is_empty());
        for bad in ["", " ", "10.0.0.0/33", "localhost", "10.0.0.1:80"] {
            assert!(parse_proxy(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_peer_names_the_client_and_the_proxy() {
        let trusted = proxies(&["127.0.0.1"]);
        let tcp: SocketAddr = "127.0.0.1:50412".parse().unwrap();
        let forwarded = trusted.peer(tcp, &headers(&[b"198.51.100.9"]));
        assert_eq!(forwarded.to_string(), "198.51.100.9 via 127.0.0.1:50412");
        let direct = trusted.peer("127.0.0.4:4711".parse().unwrap(), &headers(&[b"10.9.9.9"]));
        assert_eq!(direct.to_string(), "127.0.0.4:4711");
        assert!(!direct.is_forwarded());
    }
}
