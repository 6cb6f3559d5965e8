//! A rate limit per client address: at most `per_second` requests in each second, whatever
//! their outcome (smart lockout counts failures; this bounds the load one source can make).
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub(crate) struct RateLimit {
    per_second: u32,
    windows: HashMap<IpAddr, (Instant, u32)>,
}

/// Addresses tracked at most (the oldest windows are dropped first).
const MAX_CLIENTS: usize = 100_000;

impl RateLimit {
    pub(crate) fn new(per_second: u32) -> RateLimit {
        RateLimit { per_second: per_second.max(1), windows: HashMap::new() }
    }

    /// May this client make a request now?
    pub(crate) fn allow(&mut self, client: IpAddr, now: Instant) -> bool {
        if self.windows.len() >= MAX_CLIENTS {
            self.windows.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(1));
        }
        let w = self.windows.entry(client).or_insert((now, 0));
        if now.duration_since(w.0) >= Duration::from_secs(1) {
            *w = (now, 0);
        }
        w.1 += 1;
        w.1 <= self.per_second
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_over_its_rate_waits_for_the_next_second() {
        let now = std::time::Instant::now();
        let mut r = super::RateLimit::new(3);
        let (a, b) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        assert!((0..3).all(|_| r.allow(a, now)));
        assert!(!r.allow(a, now), "the fourth in the same second");
        assert!(r.allow(b, now), "another client is not held up");
        assert!(r.allow(a, now + std::time::Duration::from_millis(1001)));
    }
}
