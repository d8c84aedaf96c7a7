//! Trusted reverse proxies: behind one, every connection comes from the proxy's address, so the
//! sign-in throttle would count every client as one and lock them all out together. When the
//! peer is a trusted proxy ([`IpNet`], from `--trusted-proxy`), the client is the right-most
//! address of `X-Forwarded-For` that is not itself a trusted proxy: each proxy appends the
//! address it was reached from, so everything left of the first untrusted hop may have been
//! written by the client and is ignored.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use axum::http::{HeaderMap, HeaderName};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`); a bare address is a network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a network did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or a network like 10.0.0.0/8 or fd00::/8")]
pub struct InvalidNet(String);

impl FromStr for IpNet {
    type Err = InvalidNet;

    fn from_str(s: &str) -> Result<IpNet, InvalidNet> {
        let invalid = || InvalidNet(s.to_owned());
        let text = s.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            // Digits only: `u8::from_str` would also take a leading `+`.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| invalid())?
            }
            Some(_) => return Err(invalid()),
            None => bits,
        };
        if prefix > bits {
            return Err(invalid());
        }
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl IpNet {
    /// Whether `ip` is in this network. An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`,
    /// as a dual-stack socket reports IPv4 peers) counts as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` bits of `a` and `b` agree.
fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let whole = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..whole] != b[..whole] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[whole] & mask) == (b[whole] & mask)
}

/// An `X-Forwarded-For` entry as an address: `a.b.c.d`, an IPv6 address, either with a port
/// (`a.b.c.d:p`, `[v6]:p`).
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

/// The client's address: `peer` itself unless it is a trusted proxy; then, walking
/// `X-Forwarded-For` from the right, the first hop that is not a trusted proxy. When every hop
/// is trusted the left-most one is the client. A hop that is not an address ends the walk at
/// the trusted proxy that reported it, so a made-up header can only make the client look like
/// that proxy, never like some other client.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    // Several headers make one list, in order.
    let hops: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn networks_parse_and_contain() {
        // (network, address, contained)
        let cases = [
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.168.1.7", "192.168.1.7", true),
            ("192.168.1.7", "192.168.1.8", false),
            ("172.16.0.0/12", "172.31.255.255", true),
            ("172.16.0.0/12", "172.32.0.0", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("10.0.0.0/8", "::ffff:10.0.0.1", true),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
            ("::1", "::1", true),
            ("2001:db8::/33", "2001:db8:7fff::1", true),
            ("2001:db8::/33", "2001:db8:8000::1", false),
            ("10.0.0.0/8", "fd00::1", false),
        ];
        for (net, ip, contained) in cases {
            let parsed: IpNet = net.parse().unwrap();
            assert_eq!(
                parsed.contains(ip.parse().unwrap()),
                contained,
                "{net} ∋ {ip}"
            );
        }
        for bad in [
            "",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "x",
            "10.0.0.0/+8",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "10.0.0.0/8".parse::<IpNet>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("::1".parse::<IpNet>().unwrap().to_string(), "::1/128");
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let trusted: Vec<IpNet> = ["10.0.0.0/8", "fd00::/8"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        // (peer, X-Forwarded-For headers, client)
        let cases: &[(&str, &[&str], &str)] = &[
            // Not from a trusted proxy: the header is whatever the client wrote.
            ("203.0.113.5", &["198.51.100.1"], "203.0.113.5"),
            // One proxy.
            ("10.0.0.2", &["198.51.100.1"], "198.51.100.1"),
            // The client prepended a lie; the proxy appended the truth.
            ("10.0.0.2", &["1.2.3.4, 198.51.100.1"], "198.51.100.1"),
            // Two proxies, the inner one's address in the list.
            ("10.0.0.2", &["198.51.100.1, 10.0.0.3"], "198.51.100.1"),
            // Several headers are one list.
            (
                "10.0.0.2",
                &["1.2.3.4", "198.51.100.1, 10.0.0.3"],
                "198.51.100.1",
            ),
            // A trusted proxy without the header.
            ("10.0.0.2", &[], "10.0.0.2"),
            // Every hop trusted: the left-most.
            ("10.0.0.2", &["10.9.9.9, 10.0.0.3"], "10.9.9.9"),
            // Garbage ends the walk at the proxy that reported it.
            ("10.0.0.2", &["198.51.100.1, garbage"], "10.0.0.2"),
            ("10.0.0.2", &["garbage, 10.0.0.3"], "10.0.0.3"),
            // Ports and IPv6.
            ("10.0.0.2", &["198.51.100.1:4711"], "198.51.100.1"),
            ("fd00::2", &["[2001:db8::1]:443"], "2001:db8::1"),
            ("::ffff:10.0.0.2", &["2001:db8::7"], "2001:db8::7"),
        ];
        for (peer, forwarded, client) in cases {
            let mut headers = HeaderMap::new();
            for value in *forwarded {
                headers.append(&X_FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
            }
            let got = client_ip(peer.parse().unwrap(), &headers, &trusted);
            assert_eq!(
                got,
                client.parse::<IpAddr>().unwrap(),
                "{peer} {forwarded:?}"
            );
        }
        // Without trusted proxies the peer is the client whatever the header says.
        let mut headers = HeaderMap::new();
        headers.insert(&X_FORWARDED_FOR, HeaderValue::from_static("198.51.100.1"));
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(client_ip(peer, &headers, &[]), peer);
    }
}
