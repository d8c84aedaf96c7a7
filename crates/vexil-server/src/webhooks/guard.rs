//! Which addresses webhook deliveries may reach: the guard against server-side request
//! forgery. A writer chooses a webhook's URL, so without it a project writer could make the
//! node post to what only the node reaches: its loopback services, the private network, a
//! cloud's metadata endpoint (169.254.169.254).
//!
//! Deliveries to loopback, private, link-local, shared (carrier-grade NAT) and other special
//! addresses are refused unless an allowed network (`vexil serve --webhook-allow-network`)
//! holds the address. The check is made on the addresses a connection would use: host names
//! are resolved by [`GuardedResolver`], the client's resolver, so a name cannot pass the check
//! and then connect elsewhere; addresses written in the URL are checked by [`check_url`], since
//! the client connects to them without resolving. Redirects are never followed.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::proxy::IpNet;

/// The destinations policy: special addresses are refused unless an allowed network holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destinations {
    allowed: Vec<IpNet>,
}

impl Destinations {
    pub fn new(allowed: Vec<IpNet>) -> Destinations {
        Destinations { allowed }
    }

    /// Why deliveries may not reach `ip`, or `None` when they may.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        // `::ffff:127.0.0.1` is 127.0.0.1: the allowed networks and the ranges see it so.
        let ip = ip.to_canonical();
        if self.allowed.iter().any(|net| net.contains(ip)) {
            return None;
        }
        match ip {
            IpAddr::V4(v4) => special_v4(v4),
            IpAddr::V6(v6) => special_v6(v6),
        }
    }

    /// The refusal of one address as the delivery log shows it.
    fn refused(&self, host: &str, ip: IpAddr) -> Option<Refused> {
        self.refusal(ip).map(|kind| Refused {
            host: host.to_owned(),
            ip,
            kind,
        })
    }
}

/// The kind of a special IPv4 address, or `None` for a public one.
fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => "an unspecified (\"this network\") address",
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => "a private address",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
        (127, ..) => "a loopback address",
        (169, 254, _) => "a link-local address (where clouds serve instance metadata)",
        (192, 0, 0) => "an IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, ..) => "a multicast address",
        (240..=255, ..) => "a reserved or broadcast address",
        _ => return None,
    })
}

/// The kind of a special IPv6 address, or `None` for a public one. Addresses that carry an
/// IPv4 address (NAT64, 6to4) are judged by it.
fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let embedded = |high: u16, low: u16| {
        let [h1, h2] = high.to_be_bytes();
        let [l1, l2] = low.to_be_bytes();
        Ipv4Addr::new(h1, h2, l1, l2)
    };
    match segments {
        [0, 0, 0, 0, 0, 0, 0, 0] => Some("an unspecified address"),
        [0, 0, 0, 0, 0, 0, 0, 1] => Some("a loopback address"),
        // The deprecated IPv4-compatible form, `::a.b.c.d`.
        [0, 0, 0, 0, 0, 0, ..] => Some("a reserved address"),
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => special_v4(embedded(high, low)),
        [0x2002, high, low, ..] => special_v4(embedded(high, low)),
        [0x100, 0, 0, 0, ..] => Some("a discard-only address"),
        [0x2001, 0xdb8, ..] => Some("a documentation address"),
        [first, ..] if first & 0xfe00 == 0xfc00 => Some("a unique local (private) address"),
        [first, ..] if first & 0xffc0 == 0xfe80 => Some("a link-local address"),
        [first, ..] if first & 0xffc0 == 0xfec0 => Some("a site-local (private) address"),
        [first, ..] if first & 0xff00 == 0xff00 => Some("a multicast address"),
        _ => None,
    }
}

/// A delivery refused because of where it would go.
#[derive(Debug)]
pub struct Refused {
    host: String,
    ip: IpAddr,
    kind: &'static str,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whom = if self.host == self.ip.to_string() {
            format!("{} is", self.ip)
        } else {
            format!("{} resolves to {}, which is", self.host, self.ip)
        };
        write!(
            f,
            "refused: {whom} {}; `vexil serve --webhook-allow-network {}` allows deliveries there",
            self.kind, self.ip
        )
    }
}

impl StdError for Refused {}

/// Whether `err` (a failed request) failed because the resolver refused its destination.
pub fn refused_in(err: &(dyn StdError + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.is::<Refused>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Checks the address written in a URL (`http://10.0.0.1/`, `http://[::1]/`), which the client
/// connects to without resolving it. Names are left to [`GuardedResolver`]; a URL the client
/// cannot parse fails there.
pub fn check_url(destinations: &Destinations, url: &str) -> Result<(), Refused> {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Ok(());
    };
    let Some(host) = parsed.host_str() else {
        return Ok(());
    };
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    match literal.parse::<IpAddr>() {
        Ok(ip) => destinations.refused(literal, ip).map_or(Ok(()), Err),
        Err(_) => Ok(()),
    }
}

/// The webhook client's resolver: it resolves as the system does and refuses a name when any
/// of its addresses is refused (connecting only to the others would still let a name chosen
/// to hold both reach an internal address once the public one fails).
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    destinations: Arc<Destinations>,
}

impl GuardedResolver {
    pub fn new(destinations: Arc<Destinations>) -> GuardedResolver {
        GuardedResolver { destinations }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let destinations = self.destinations.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(refused) = addrs
                .iter()
                .find_map(|addr| destinations.refused(&host, addr.ip()))
            {
                return Err(Box::new(refused) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    /// One row: an address, the allowed networks, and whether deliveries may reach it.
    fn check(ip: &str, allowed: &[&str], reachable: bool) {
        let destinations = Destinations::new(allowed.iter().map(|n| n.parse().unwrap()).collect());
        let refusal = destinations.refusal(ip.parse().unwrap());
        assert_eq!(
            refusal.is_none(),
            reachable,
            "{ip} with {allowed:?}: {refusal:?}"
        );
    }

    #[test]
    fn special_addresses_are_refused_unless_allowed() {
        let none: &[&str] = &[];
        for (ip, allowed, reachable) in [
            ("93.184.216.34", none, true),
            ("8.8.8.8", none, true),
            ("2606:4700::1111", none, true),
            ("127.0.0.1", none, false),
            ("127.8.9.10", none, false),
            ("10.1.2.3", none, false),
            ("172.16.0.1", none, false),
            ("172.31.255.255", none, false),
            ("172.32.0.1", none, true),
            ("192.168.1.1", none, false),
            ("169.254.169.254", none, false),
            ("100.64.0.1", none, false),
            ("100.128.0.1", none, true),
            ("0.0.0.0", none, false),
            ("255.255.255.255", none, false),
            ("224.0.0.1", none, false),
            ("198.18.0.1", none, false),
            ("192.0.2.1", none, false),
            ("::", none, false),
            ("::1", none, false),
            ("::ffff:127.0.0.1", none, false),
            ("::ffff:8.8.8.8", none, true),
            ("::127.0.0.1", none, false),
            ("64:ff9b::a9fe:a9fe", none, false),
            ("64:ff9b::808:808", none, true),
            ("2002:c0a8:0101::1", none, false),
            ("fd12:3456::1", none, false),
            ("fe80::1", none, false),
            ("ff02::1", none, false),
            ("2001:db8::1", none, false),
            // Allowed networks open what they hold, and only that.
            ("127.0.0.1", &["127.0.0.0/8"], true),
            ("::ffff:127.0.0.1", &["127.0.0.0/8"], true),
            ("::1", &["127.0.0.0/8"], false),
            ("::1", &["::1"], true),
            ("10.1.2.3", &["10.1.2.3"], true),
            ("10.1.2.4", &["10.1.2.3"], false),
            ("10.200.0.1", &["10.0.0.0/8"], true),
            ("169.254.169.254", &["10.0.0.0/8"], false),
            ("fd12:3456::1", &["fd00::/8"], true),
        ] {
            check(ip, allowed, reachable);
        }
    }

    #[test]
    fn addresses_written_in_urls_are_checked() {
        let destinations = Destinations::default();
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://[::1]/hook",
            "http://169.254.169.254/latest/meta-data",
            // The URL parser reads the other ways of writing an IPv4 address.
            "http://2130706433/hook",
            "http://0x7f.1/hook",
        ] {
            let refused = check_url(&destinations, url).unwrap_err().to_string();
            assert!(refused.starts_with("refused: "), "{url}: {refused}");
            assert!(refused.contains("--webhook-allow-network"), "{refused}");
        }
        for url in ["http://8.8.8.8/hook", "https://hooks.example.com/x"] {
            assert!(check_url(&destinations, url).is_ok(), "{url}");
        }
    }
}
