//! The sign-in throttle: failed management-key attempts (a wrong `Authorization: Bearer` key on
//! the JSON API, a wrong key on the console's sign-in form) counted per client address, so that
//! nobody can guess keys at speed. One [`Throttle`] is shared by the API and the console.
//!
//! Each client has a bucket of `per_minute` attempts, refilled continuously at `per_minute` a
//! minute; every failure takes one. Successes take nothing, so a busy client with a good key is
//! never slowed down. Once the bucket is empty every attempt, even with a correct key, is
//! refused until a failure's worth has refilled: otherwise a guesser would learn which guess
//! was right from the one answer that is not refused.
//!
//! Clients are IPv4 addresses and IPv6 /64 networks (one subscriber usually holds a whole /64,
//! so counting single IPv6 addresses would count nothing). Behind a trusted reverse proxy the
//! client's address comes from `X-Forwarded-For` (see `proxy.rs`). A request without a known address
//! (served without `ConnectInfo`, as in-process tests are) counts as one shared client. Memory
//! is bounded: at most `max_clients` are tracked; a full shard first forgets the clients whose
//! bucket has refilled (which is the same as never having failed), then the one with the most
//! attempts left, so that flooding the table from many addresses frees nobody who is locked
//! out.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};

use crate::proxy::{client_ip, IpNet};

const SHARDS: usize = 16;

/// Who failures are counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Client {
    V4([u8; 4]),
    /// The /64 network of an IPv6 address.
    V6([u8; 8]),
    /// Requests whose address the server was not told.
    Unknown,
}

impl Client {
    fn from_ip(ip: IpAddr) -> Client {
        // An IPv4 client reaching a dual-stack socket shows as ::ffff:a.b.c.d; it is the same
        // client as a.b.c.d.
        match ip.to_canonical() {
            IpAddr::V4(v4) => Client::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let octets = v6.octets();
                let mut network = [0u8; 8];
                network.copy_from_slice(&octets[..8]);
                Client::V6(network)
            }
        }
    }
}

/// A refusal: the client failed too often and may try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "too many failed attempts with a wrong management key from this address; try again in {} s",
    self.retry_after_secs()
)]
pub(crate) struct TooManyAttempts {
    pub retry_after: Duration,
}

impl TooManyAttempts {
    /// Whole seconds to wait, at least one (the unit of `Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        if self.retry_after.subsec_nanos() > 0 || secs == 0 {
            secs + 1
        } else {
            secs
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Attempts left; below zero after failures made in parallel, which are paid back in full.
    tokens: f64,
    at: Instant,
}

/// Failed attempts per client; see the module's documentation.
pub(crate) struct Throttle {
    /// Failures a client may make in a burst, and a minute's refill; 0: no throttling.
    burst: f64,
    per_shard: usize,
    shards: Vec<Mutex<HashMap<Client, Bucket>>>,
    hasher: RandomState,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    trusted: Vec<IpNet>,
}

impl Throttle {
    /// `per_minute` failures a minute per client (0 turns the throttle off), tracking at most
    /// about `max_clients` clients.
    pub fn new(per_minute: u32, max_clients: usize) -> Throttle {
        Throttle {
            burst: f64::from(per_minute),
            per_shard: max_clients.div_ceil(SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            trusted: Vec::new(),
        }
    }

    /// Takes the client's address from `X-Forwarded-For` when the peer is in `proxies`.
    pub fn trusting(mut self, proxies: Vec<IpNet>) -> Throttle {
        self.trusted = proxies;
        self
    }

    /// The client a request counts against: its peer address from the `ConnectInfo` the
    /// server adds, or behind a trusted proxy the address the proxy forwarded.
    pub fn client(&self, extensions: &Extensions, headers: &HeaderMap) -> Client {
        match extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(addr)) => {
                Client::from_ip(client_ip(addr.ip(), headers, &self.trusted))
            }
            None => Client::Unknown,
        }
    }

    /// `Err` when `client` may not try a key now.
    pub fn check(&self, client: Client) -> Result<(), TooManyAttempts> {
        self.check_at(client, Instant::now())
    }

    /// Counts a failed attempt of `client`.
    pub fn failed(&self, client: Client) {
        self.failed_at(client, Instant::now());
    }

    fn off(&self) -> bool {
        self.burst <= 0.0
    }

    /// Attempts refilled per second.
    fn rate(&self) -> f64 {
        self.burst / 60.0
    }

    fn shard(&self, client: Client) -> std::sync::MutexGuard<'_, HashMap<Client, Bucket>> {
        // The modulo keeps the index below SHARDS, so the truncation to usize is harmless.
        let index = (self.hasher.hash_one(client) % SHARDS as u64) as usize;
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The tokens of `bucket` at `now`, refilled since it was last touched.
    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.rate()).min(self.burst)
    }

    fn check_at(&self, client: Client, now: Instant) -> Result<(), TooManyAttempts> {
        if self.off() {
            return Ok(());
        }
        let shard = self.shard(client);
        let Some(bucket) = shard.get(&client) else {
            return Ok(());
        };
        let tokens = self.refilled(bucket, now);
        if tokens >= 1.0 {
            Ok(())
        } else {
            let wait = (1.0 - tokens) / self.rate();
            Err(TooManyAttempts {
                retry_after: Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX),
            })
        }
    }

    fn failed_at(&self, client: Client, now: Instant) {
        if self.off() {
            return;
        }
        let mut shard = self.shard(client);
        if !shard.contains_key(&client) && shard.len() >= self.per_shard {
            self.make_room(&mut shard, now);
        }
        let tokens = match shard.get(&client) {
            Some(bucket) => self.refilled(bucket, now),
            None => self.burst,
        };
        shard.insert(
            client,
            Bucket {
                tokens: tokens - 1.0,
                at: now,
            },
        );
    }

    /// Frees a place in a full shard: forgets every refilled bucket or, when there is none, the
    /// one with the most attempts left (forgetting it lets its client gain the least).
    fn make_room(&self, shard: &mut HashMap<Client, Bucket>, now: Instant) {
        shard.retain(|_, bucket| self.refilled(bucket, now) < self.burst);
        if shard.len() < self.per_shard {
            return;
        }
        let freest = shard
            .iter()
            .map(|(client, bucket)| (*client, self.refilled(bucket, now)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(client, _)| client);
        if let Some(client) = freest {
            shard.remove(&client);
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> Client {
        Client::from_ip(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn failures_are_limited_per_client_and_refill_continuously() {
        let throttle = Throttle::new(10, 1000);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(throttle.check_at(v4(1), t0), Ok(()));
            throttle.failed_at(v4(1), t0);
        }
        let refused = throttle.check_at(v4(1), t0).unwrap_err();
        assert_eq!(refused.retry_after_secs(), 6, "one failure refills in 6 s");
        assert_eq!(throttle.check_at(v4(2), t0), Ok(()), "clients are apart");
        assert_eq!(throttle.check_at(Client::Unknown, t0), Ok(()));
        let later = t0 + Duration::from_secs(3);
        assert_eq!(
            throttle
                .check_at(v4(1), later)
                .unwrap_err()
                .retry_after_secs(),
            3
        );
        assert_eq!(
            throttle.check_at(v4(1), t0 + Duration::from_secs(6)),
            Ok(())
        );
        // Failures made in parallel (all checked before any failed) are paid back in full.
        for _ in 0..15 {
            throttle.failed_at(v4(2), t0);
        }
        let refused = throttle.check_at(v4(2), t0).unwrap_err();
        assert_eq!(refused.retry_after_secs(), 36);
    }

    #[test]
    fn zero_turns_it_off() {
        let throttle = Throttle::new(0, 10);
        let t0 = Instant::now();
        for _ in 0..100 {
            throttle.failed_at(v4(1), t0);
        }
        assert_eq!(throttle.check_at(v4(1), t0), Ok(()));
        assert_eq!(throttle.tracked(), 0);
    }

    #[test]
    fn ipv6_clients_are_their_64_network_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Client::from_ip(a), Client::from_ip(b));
        assert_ne!(Client::from_ip(a), Client::from_ip(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(Client::from_ip(mapped), v4(1));
        let throttle = Throttle::new(10, 10);
        let headers = HeaderMap::new();
        assert_eq!(
            throttle.client(&Extensions::new(), &headers),
            Client::Unknown
        );
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 4000))));
        assert_eq!(throttle.client(&extensions, &headers), v4(1));
    }

    #[test]
    fn behind_a_trusted_proxy_clients_are_the_forwarded_addresses() {
        let throttle = Throttle::new(1, 100).trusting(vec!["10.0.0.0/8".parse().unwrap()]);
        let from = |peer: [u8; 4], forwarded: &str| {
            let mut extensions = Extensions::new();
            extensions.insert(ConnectInfo(SocketAddr::from((peer, 4000))));
            let mut headers = HeaderMap::new();
            headers.insert("x-forwarded-for", forwarded.parse().unwrap());
            throttle.client(&extensions, &headers)
        };
        assert_eq!(from([10, 0, 0, 2], "192.0.2.1"), v4(1));
        assert_eq!(from([10, 0, 0, 2], "192.0.2.9, 192.0.2.2"), v4(2));
        assert_eq!(from([192, 0, 2, 3], "192.0.2.1"), v4(3), "untrusted peer");
        let t0 = Instant::now();
        throttle.failed_at(from([10, 0, 0, 2], "192.0.2.1"), t0);
        assert!(throttle.check_at(v4(1), t0).is_err());
        assert_eq!(
            throttle.check_at(from([10, 0, 0, 2], "192.0.2.2"), t0),
            Ok(()),
            "another client behind the same proxy"
        );
    }

    #[test]
    fn memory_is_bounded_and_refilled_clients_go_first() {
        let throttle = Throttle::new(10, SHARDS * 4);
        let t0 = Instant::now();
        for i in 0..=255 {
            throttle.failed_at(v4(i), t0);
        }
        assert!(throttle.tracked() <= SHARDS * 4, "{}", throttle.tracked());
        // A locked-out client is kept while a flood of other clients, each failing once, takes
        // the places of one another and of the long refilled ones.
        let t1 = t0 + Duration::from_secs(600);
        for _ in 0..10 {
            throttle.failed_at(v4(7), t1);
        }
        let t2 = t1 + Duration::from_secs(1);
        for round in 0..4 {
            for i in 0..=255 {
                if i != 7 {
                    throttle.failed_at(Client::V4([10, round, 0, i]), t2);
                }
            }
        }
        assert!(throttle.tracked() <= SHARDS * 4, "{}", throttle.tracked());
        assert!(throttle.check_at(v4(7), t2).is_err());
    }
}
