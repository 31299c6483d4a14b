//! Per-client rate limits and who the client is.
//!
//! The caps (sessions per address, containers per session, the capacity
//! gate) bound what one client may *hold*; these limits bound how *fast* it
//! may ask: session creation, container creation and restart, and WebSocket
//! upgrades each have a burst per client address, refilled at a steady rate
//! (governor's GCRA: one timestamp per key, no background timers). Over the
//! rate the answer is `429 rate_limited` with `Retry-After`.
//!
//! Keys are addresses; an IPv6 client is keyed by its /64, since anyone with
//! one IPv6 address usually holds the whole /64. The keyed state is pruned
//! periodically ([`RateLimits::prune`]): an address whose bucket has refilled
//! is forgotten, so a spray of addresses grows the maps only by what one
//! prune interval lets through.

use crate::config;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

/// What a client is asking to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    CreateSession,
    CreateContainer,
    OpenSocket,
}

impl Action {
    fn limit(self) -> &'static str {
        match self {
            Action::CreateSession => "sessions_per_minute",
            Action::CreateContainer => "containers_per_minute",
            Action::OpenSocket => "sockets_per_minute",
        }
    }
}

pub struct RateLimits {
    sessions: DefaultKeyedRateLimiter<IpAddr>,
    containers: DefaultKeyedRateLimiter<IpAddr>,
    sockets: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

/// `burst` at once, then one more every `period`.
fn quota(burst: u32, period: Duration) -> Quota {
    // Validated above 0 in `Config::validate`; 1 is the safe floor anyway.
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

fn per_minute(burst: u32, rate: u32) -> Quota {
    quota(burst, Duration::from_secs(60) / rate.max(1))
}

impl RateLimits {
    pub fn new(c: &config::RateLimits) -> RateLimits {
        RateLimits {
            sessions: RateLimiter::keyed(per_minute(c.sessions_burst, c.sessions_per_minute)),
            containers: RateLimiter::keyed(per_minute(c.containers_burst, c.containers_per_minute)),
            sockets: RateLimiter::keyed(per_minute(c.sockets_burst, c.sockets_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    fn limiter(&self, action: Action) -> &DefaultKeyedRateLimiter<IpAddr> {
        match action {
            Action::CreateSession => &self.sessions,
            Action::CreateContainer => &self.containers,
            Action::OpenSocket => &self.sockets,
        }
    }

    /// Spend one of `ip`'s tokens for `action`, or say when to come back.
    pub fn check(&self, action: Action, ip: IpAddr) -> Result<(), ApiError> {
        match self.limiter(action).check_key(&rate_key(ip)) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                tracing::info!(%ip, limit = action.limit(), wait_ms = wait.as_millis() as u64, "rate limited");
                Err(ApiError::RateLimited {
                    limit: action.limit(),
                    // Whole seconds, rounded up: never tell a client to come back too early.
                    retry_after_secs: wait.as_millis().div_ceil(1000).max(1) as u64,
                })
            }
        }
    }

    /// Forget addresses whose buckets are full again; returns how many remain.
    pub fn prune(&self) -> usize {
        [&self.sessions, &self.containers, &self.sockets]
            .iter()
            .map(|l| {
                l.retain_recent();
                l.shrink_to_fit();
                l.len()
            })
            .sum()
    }
}

/// The key of an address: IPv4 as is, IPv6 by its /64.
pub fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl RateLimits {
    /// A terminal socket's resize budget: a burst, then `per_second`. It
    /// shares our clock: a clock of its own would probe the CPU (cpuid) for
    /// every socket, a measurable part of a burst of creates.
    pub fn resize_limiter(&self, c: &config::RateLimits) -> DefaultDirectRateLimiter {
        let period = Duration::from_secs(1) / c.resizes_per_second.max(1);
        RateLimiter::direct_with_clock(quota(c.resize_burst, period), self.clock.clone())
    }
}

/// The client's address. From a trusted proxy, the rightmost address in
/// `X-Forwarded-For` that is not itself a trusted proxy (each proxy appends
/// the address it saw, so the entries left of that one are the client's to
/// invent); from anyone else, the peer's address.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &[IpAddr],
) -> IpAddr {
    let trusts = |ip: &IpAddr| trusted.contains(ip) || trusted.contains(&rate_key_exact(*ip));
    if !trusts(&peer) {
        return peer;
    }
    let mut seen = peer;
    for entry in forwarded_for.rev().flat_map(|v| v.rsplit(',')) {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) if trusts(&ip) => seen = ip,
            Ok(ip) => return ip,
            // A malformed entry: nothing left of it can be believed.
            Err(_) => return seen,
        }
    }
    seen
}

/// An IPv4-mapped IPv6 address as IPv4 (how a dual-stack socket shows IPv4 peers).
fn rate_key_exact(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// [`client_ip`] from a request's headers.
pub fn from_headers(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = rate_key_exact(peer);
    let values: Option<Vec<&str>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().ok())
        .collect();
    match values {
        Some(values) => client_ip(peer, values.into_iter(), trusted),
        // Not text: as malformed as an entry that is not an address.
        None => peer,
    }
}

/// The client's address, as an extractor.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ApiError::internal("the server runs without peer addresses"))?;
        Ok(ClientIp(from_headers(
            peer,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy = [ip("10.0.0.1")];
        let xff = ["6.6.6.6, 1.2.3.4"];
        assert_eq!(
            client_ip(ip("10.0.0.1"), xff.into_iter(), &proxy),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(ip("9.9.9.9"), xff.into_iter(), &proxy),
            ip("9.9.9.9")
        );
        // Chained trusted proxies are skipped; garbage stops the walk.
        let two = [ip("10.0.0.1"), ip("10.0.0.2")];
        assert_eq!(
            client_ip(ip("10.0.0.1"), ["1.2.3.4, 10.0.0.2"].into_iter(), &two),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), ["1.2.3.4, junk"].into_iter(), &proxy),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), std::iter::empty(), &proxy),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        assert_eq!(rate_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(rate_key(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
    }

    #[test]
    fn a_burst_then_429_with_a_wait() {
        let c = config::RateLimits {
            sessions_burst: 2,
            sessions_per_minute: 1,
            ..config::RateLimits::default()
        };
        let l = RateLimits::new(&c);
        let a = ip("1.2.3.4");
        assert!(l.check(Action::CreateSession, a).is_ok());
        assert!(l.check(Action::CreateSession, a).is_ok());
        match l.check(Action::CreateSession, a) {
            Err(ApiError::RateLimited {
                retry_after_secs, ..
            }) => assert!((55..=60).contains(&retry_after_secs), "{retry_after_secs}"),
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(l.check(Action::CreateSession, ip("1.2.3.5")).is_ok());
        assert!(
            l.check(Action::CreateContainer, a).is_ok(),
            "separate budgets"
        );
        assert_eq!(l.prune(), 3, "drained buckets are kept");
    }
}
