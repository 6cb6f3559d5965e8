//! Smart lockout in front of the directory: failures are counted per user and per client
//! address below the domain's own threshold, and attempts over the budget are refused without
//! asking the directory, so that a brute-force attack from outside can never lock the real
//! account on-premises. A known-good source (a client address that recently signed this user
//! in) keeps a budget of its own, like Entra's familiar locations.
//!
//! Counting follows Active Directory's: a count goes back to zero only when a whole window
//! passes without a failure (or on a success), not by sliding; and an attempt is counted when
//! it is admitted, before the directory answers, so that requests at the same moment cannot
//! all get through. An answer that shows the password was right gives the attempt back.
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Failures a user may have from unknown sources, and again from known-good ones.
    pub user_budget: u32,
    /// Failures one client address may have, for any users.
    pub client_budget: u32,
    /// A count goes back to zero after this long without a failure (AD's observation window).
    pub window: Duration,
    /// How long a client address that signed a user in stays known-good for that user.
    pub known_good_for: Duration,
    /// The domain's lockout threshold the budgets were made for, once known.
    pub domain: Option<u32>,
}

impl Policy {
    /// Budgets below the domain's threshold: the two budgets of a user together stay under it,
    /// so the directory's own count (badPwdCount) never reaches it. Without a known threshold
    /// the budget is small.
    pub(crate) fn below(domain_threshold: Option<u32>, window: Duration) -> Policy {
        let user_budget = match domain_threshold {
            None => 3,
            Some(0) => 10,
            Some(t) => (t.saturating_sub(1) / 2).max(1),
        };
        Policy { user_budget, client_budget: 100, window, known_good_for: Duration::from_secs(14 * 24 * 3600), domain: domain_threshold }
    }
}

/// A count of failures and when the last one was.
#[derive(Debug, Clone, Copy)]
struct Count {
    n: u32,
    last: Instant,
}

impl Count {
    /// The count now: zero once a whole window passed since the last failure.
    fn now(&self, window: Duration, now: Instant) -> u32 {
        if now.duration_since(self.last) >= window {
            0
        } else {
            self.n
        }
    }
}

/// Why an attempt was refused without asking the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    User,
    Client,
}

/// Entries kept at most in each map: when full, expired ones go, then the oldest.
const MAX_ENTRIES: usize = 100_000;

/// A name longer than this is no one's (and is not kept).
pub(crate) const MAX_USER: usize = 256;

/// The key of a client address: IPv6 clients by their /64 (one host has many addresses).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::V6(std::net::Ipv6Addr::from(o))
        }
        v4 => v4,
    }
}

fn bounded<K: std::hash::Hash + Eq + Clone>(map: &mut HashMap<K, Count>, window: Duration, now: Instant) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    map.retain(|_, c| c.now(window, now) > 0);
    while map.len() >= MAX_ENTRIES {
        let Some(oldest) = map.iter().min_by_key(|(_, c)| c.last).map(|(k, _)| k.clone()) else { break };
        map.remove(&oldest);
    }
}

#[derive(Debug)]
pub(crate) struct SmartLockout {
    pub policy: Policy,
    /// (user, from a known-good source) -> failures.
    users: HashMap<(String, bool), Count>,
    clients: HashMap<IpAddr, Count>,
    /// (user, client) -> when it last succeeded.
    good: HashMap<(String, IpAddr), Instant>,
}

/// An admitted attempt, counted as a failure until the answer says otherwise.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    user: String,
    familiar: bool,
    client: Option<IpAddr>,
}

impl SmartLockout {
    pub(crate) fn new(policy: Policy) -> SmartLockout {
        SmartLockout { policy, users: HashMap::new(), clients: HashMap::new(), good: HashMap::new() }
    }

    fn key(user: &str) -> String {
        user.trim().to_lowercase()
    }

    fn known_good(&self, user: &str, client: Option<IpAddr>, now: Instant) -> bool {
        client.is_some_and(|c| {
            self.good.get(&(user.to_string(), client_key(c))).is_some_and(|t| now.duration_since(*t) < self.policy.known_good_for)
        })
    }

    fn bump<K: std::hash::Hash + Eq + Clone>(map: &mut HashMap<K, Count>, key: K, window: Duration, now: Instant) {
        bounded(map, window, now);
        let c = map.entry(key).or_insert(Count { n: 0, last: now });
        c.n = c.now(window, now) + 1;
        c.last = now;
    }

    fn give_back<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Count>, key: &K) {
        if let Some(c) = map.get_mut(key) {
            c.n = c.n.saturating_sub(1);
        }
    }

    /// May this attempt go to the directory? If so it is counted now, as a failure.
    /// `client` is the end user's address, when known (a RADIUS client without
    /// Calling-Station-Id is a whole network's gateway: no per-client budget then).
    pub(crate) fn admit(&mut self, user: &str, client: Option<IpAddr>, now: Instant) -> Result<Attempt, Refusal> {
        let user = Self::key(user);
        let window = self.policy.window;
        if let Some(c) = client {
            if self.clients.get(&client_key(c)).is_some_and(|n| n.now(window, now) >= self.policy.client_budget) {
                return Err(Refusal::Client);
            }
        }
        let familiar = self.known_good(&user, client, now);
        if self.users.get(&(user.clone(), familiar)).is_some_and(|n| n.now(window, now) >= self.policy.user_budget) {
            return Err(Refusal::User);
        }
        Self::bump(&mut self.users, (user.clone(), familiar), window, now);
        if let Some(c) = client {
            Self::bump(&mut self.clients, client_key(c), window, now);
        }
        Ok(Attempt { user, familiar, client })
    }

    /// The directory's answer showed the password right (success, or an account state only
    /// the right password reveals): the attempt is given back.
    pub(crate) fn right_password(&mut self, a: &Attempt) {
        Self::give_back(&mut self.users, &(a.user.clone(), a.familiar));
        if let Some(c) = a.client {
            Self::give_back(&mut self.clients, &client_key(c));
        }
    }

    /// The directory took the password: the failures of the budget it came from are forgotten
    /// (AD resets badPwdCount too) and this client becomes known-good for the user. A success
    /// from a known-good source leaves the other budget as it is: an attacker does not get new
    /// guesses each time the real user signs in.
    pub(crate) fn succeeded(&mut self, a: &Attempt, now: Instant) {
        self.right_password(a);
        self.users.remove(&(a.user.clone(), a.familiar));
        if let Some(c) = a.client {
            if self.good.len() >= MAX_ENTRIES {
                let horizon = self.policy.known_good_for;
                self.good.retain(|_, t| now.duration_since(*t) < horizon);
                while self.good.len() >= MAX_ENTRIES {
                    let Some(oldest) = self.good.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) else { break };
                    self.good.remove(&oldest);
                }
            }
            self.good.insert((a.user.clone(), client_key(c)), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Policy, Refusal, SmartLockout};
    use std::net::IpAddr;
    use std::time::{Duration, Instant};

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    const WINDOW: Duration = Duration::from_secs(600);

    #[test]
    fn budgets_stay_below_the_domain_threshold() {
        assert_eq!(Policy::below(Some(10), WINDOW).user_budget, 4);
        assert_eq!(Policy::below(Some(3), WINDOW).user_budget, 1);
        assert_eq!(Policy::below(Some(1), WINDOW).user_budget, 1);
        assert_eq!(Policy::below(Some(0), WINDOW).user_budget, 10, "no domain lockout: a budget still");
        assert_eq!(Policy::below(None, WINDOW).user_budget, 3, "unknown: small");
    }

    fn fail(l: &mut SmartLockout, user: &str, client: Option<IpAddr>, now: Instant) -> Result<(), Refusal> {
        l.admit(user, client, now).map(|_| ())
    }

    #[test]
    fn an_attacker_exhausts_the_unknown_budget_not_the_known_good_one() {
        let now = Instant::now();
        let mut l = SmartLockout::new(Policy::below(Some(10), WINDOW));
        let (home, evil) = (ip("10.0.0.5"), ip("203.0.113.9"));
        let a = l.admit("Ada", home, now).expect("admitted");
        l.succeeded(&a, now);
        for i in 0..4 {
            assert_eq!(fail(&mut l, "ada", evil, now), Ok(()), "attempt {i}");
        }
        assert_eq!(fail(&mut l, "ADA", evil, now), Err(Refusal::User), "over the budget: refused without asking AD");
        assert_eq!(fail(&mut l, "ada", ip("198.51.100.1"), now), Err(Refusal::User), "any unknown source");
        let a = l.admit("ada", home, now).expect("the known-good source has its own budget");
        l.succeeded(&a, now);
        assert_eq!(fail(&mut l, "ada", evil, now), Err(Refusal::User), "the user's success gives the attacker no new guesses");
        assert_eq!(fail(&mut l, "ada", evil, now + WINDOW), Ok(()), "a whole quiet window: counted from zero again");
    }

    #[test]
    fn counts_reset_only_after_a_quiet_window_as_ad_counts() {
        let mut l = SmartLockout::new(Policy::below(Some(10), WINDOW));
        let mut now = Instant::now();
        // One guess every 8 minutes: a sliding window would never see more than 2; AD's count grows.
        for i in 0..4 {
            assert_eq!(fail(&mut l, "bob", ip("203.0.113.9"), now), Ok(()), "guess {i}");
            now += Duration::from_secs(480);
        }
        assert_eq!(fail(&mut l, "bob", ip("203.0.113.9"), now), Err(Refusal::User));
    }

    #[test]
    fn attempts_at_the_same_moment_are_counted_before_the_directory_answers() {
        let now = Instant::now();
        let mut l = SmartLockout::new(Policy::below(Some(5), WINDOW));
        // Budget 2: the third concurrent attempt is refused though none has been answered.
        assert!(l.admit("cy", ip("203.0.113.9"), now).is_ok());
        assert!(l.admit("cy", ip("203.0.113.9"), now).is_ok());
        assert_eq!(fail(&mut l, "cy", ip("203.0.113.9"), now), Err(Refusal::User));
        // A right password (even of a disabled account) gives its attempt back.
        let mut l = SmartLockout::new(Policy::below(Some(5), WINDOW));
        let a = l.admit("dee", ip("10.0.0.1"), now).expect("admitted");
        l.right_password(&a);
        assert!(l.admit("dee", ip("10.0.0.1"), now).is_ok() && l.admit("dee", ip("10.0.0.1"), now).is_ok());
    }

    #[test]
    fn one_client_trying_many_users_is_stopped_but_not_a_gateway_without_an_address() {
        let now = Instant::now();
        let mut l = SmartLockout::new(Policy { client_budget: 5, ..Policy::below(Some(10), WINDOW) });
        for n in 0..5 {
            assert!(l.admit(&format!("user{n}"), ip("203.0.113.9"), now).is_ok());
        }
        assert_eq!(fail(&mut l, "someone", ip("203.0.113.9"), now), Err(Refusal::Client));
        assert_eq!(fail(&mut l, "someone", ip("2001:db8::1"), now), Ok(()));
        for n in 0..4 {
            let _ = l.admit(&format!("v6user{n}"), ip(&format!("2001:db8::{}", n + 2)), now);
        }
        assert_eq!(fail(&mut l, "other", ip("2001:db8::99"), now), Err(Refusal::Client), "IPv6 counted by /64");
        for n in 0..20 {
            assert!(l.admit(&format!("x{n}"), None, now).is_ok(), "no client address: no client budget");
        }
    }
}
