//! Smart lockout in front of the directory: failures are counted per user and per client
//! address, below the domain's own threshold, and attempts over the limit are refused without
//! asking the directory, so that a brute-force attack from outside can never lock the real
//! account on-premises. A known-good source (a client address that recently signed this user
//! in) keeps a budget of its own, like Entra's familiar locations: the attacker's failures do
//! not lock the user out of the places they really sign in from.
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Failures a user may have in `window` from unknown sources, and again from known-good ones.
    pub user_budget: u32,
    /// Failures one client address may have in `window`, for any users.
    pub client_budget: u32,
    /// How long failures count (AD's lockout observation window).
    pub window: Duration,
    /// How long a client address that signed a user in stays known-good for that user.
    pub known_good_for: Duration,
    /// The domain's lockout threshold the budgets were made for, once known.
    pub domain: Option<u32>,
}

impl Policy {
    /// Budgets below the domain's threshold: the two budgets of a user together stay under it,
    /// so the directory's own count (badPwdCount) never reaches it within its window.
    pub(crate) fn below(domain_threshold: u32, window: Duration) -> Policy {
        let user_budget = if domain_threshold == 0 { 10 } else { (domain_threshold.saturating_sub(1) / 2).max(1) };
        Policy { user_budget, client_budget: 100, window, known_good_for: Duration::from_secs(14 * 24 * 3600), domain: None }
    }
}

/// Failure times within the window.
#[derive(Debug, Default)]
struct Recent(Vec<Instant>);

impl Recent {
    fn count(&mut self, window: Duration, now: Instant) -> u32 {
        self.0.retain(|t| now.duration_since(*t) < window);
        u32::try_from(self.0.len()).unwrap_or(u32::MAX)
    }
}

/// Why an attempt was refused without asking the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    User,
    Client,
}

#[derive(Debug)]
pub(crate) struct SmartLockout {
    pub policy: Policy,
    /// (user, from a known-good source) -> failures.
    users: HashMap<(String, bool), Recent>,
    clients: HashMap<IpAddr, Recent>,
    /// (user, client) -> when it last succeeded.
    good: HashMap<(String, IpAddr), Instant>,
}

/// Entries kept at most in each map (old ones are dropped first when it is full).
const MAX_ENTRIES: usize = 100_000;

impl SmartLockout {
    pub(crate) fn new(policy: Policy) -> SmartLockout {
        SmartLockout { policy, users: HashMap::new(), clients: HashMap::new(), good: HashMap::new() }
    }

    fn key(user: &str) -> String {
        user.trim().to_lowercase()
    }

    fn known_good(&self, user: &str, client: IpAddr, now: Instant) -> bool {
        self.good.get(&(user.to_string(), client)).is_some_and(|t| now.duration_since(*t) < self.policy.known_good_for)
    }

    /// May this attempt go to the directory?
    pub(crate) fn admit(&mut self, user: &str, client: IpAddr, now: Instant) -> Result<(), Refusal> {
        let user = Self::key(user);
        let window = self.policy.window;
        if self.clients.get_mut(&client).is_some_and(|r| r.count(window, now) >= self.policy.client_budget) {
            return Err(Refusal::Client);
        }
        let familiar = self.known_good(&user, client, now);
        if self.users.get_mut(&(user, familiar)).is_some_and(|r| r.count(window, now) >= self.policy.user_budget) {
            return Err(Refusal::User);
        }
        Ok(())
    }

    /// The directory refused the password.
    pub(crate) fn failed(&mut self, user: &str, client: IpAddr, now: Instant) {
        let user = Self::key(user);
        let familiar = self.known_good(&user, client, now);
        if self.users.len() >= MAX_ENTRIES || self.clients.len() >= MAX_ENTRIES {
            self.prune(now);
        }
        self.users.entry((user, familiar)).or_default().0.push(now);
        self.clients.entry(client).or_default().0.push(now);
    }

    /// The directory took the password: the failures of the budget it came from are forgotten
    /// (AD resets badPwdCount too), and this client becomes known-good for the user. A success
    /// from a known-good source leaves the other budget as it is: an attacker does not get new
    /// guesses each time the real user signs in.
    pub(crate) fn succeeded(&mut self, user: &str, client: IpAddr, now: Instant) {
        let user = Self::key(user);
        let familiar = self.known_good(&user, client, now);
        self.users.remove(&(user.clone(), familiar));
        if self.good.len() >= MAX_ENTRIES {
            let horizon = self.policy.known_good_for;
            self.good.retain(|_, t| now.duration_since(*t) < horizon);
        }
        self.good.insert((user, client), now);
    }

    fn prune(&mut self, now: Instant) {
        let w = self.policy.window;
        self.users.retain(|_, r| r.count(w, now) > 0);
        self.clients.retain(|_, r| r.count(w, now) > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::{Policy, Refusal, SmartLockout};
    use std::net::IpAddr;
    use std::time::{Duration, Instant};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn budgets_stay_below_the_domain_threshold() {
        assert_eq!(Policy::below(10, Duration::from_secs(600)).user_budget, 4);
        assert_eq!(Policy::below(3, Duration::from_secs(600)).user_budget, 1);
        assert_eq!(Policy::below(1, Duration::from_secs(600)).user_budget, 1);
        assert_eq!(Policy::below(0, Duration::from_secs(600)).user_budget, 10, "no domain lockout: a budget still");
    }

    #[test]
    fn an_attacker_exhausts_the_unknown_budget_not_the_known_good_one() {
        let now = Instant::now();
        let mut l = SmartLockout::new(Policy::below(10, Duration::from_secs(600)));
        let (home, evil) = (ip("10.0.0.5"), ip("203.0.113.9"));
        l.succeeded("Ada", home, now);
        for i in 0..4 {
            assert_eq!(l.admit("ada", evil, now), Ok(()), "attempt {i}");
            l.failed("ada", evil, now);
        }
        assert_eq!(l.admit("ADA", evil, now), Err(Refusal::User), "over the budget: refused without asking AD");
        assert_eq!(l.admit("ada", ip("198.51.100.1"), now), Err(Refusal::User), "any unknown source");
        assert_eq!(l.admit("ada", home, now), Ok(()), "the known-good source has its own budget");
        l.succeeded("ada", home, now);
        assert_eq!(l.admit("ada", evil, now), Err(Refusal::User), "the user's success gives the attacker no new guesses");
        // The window passes: admitted again.
        assert_eq!(l.admit("ada", evil, now + Duration::from_secs(601)), Ok(()));
    }

    #[test]
    fn one_client_trying_many_users_is_stopped_and_a_success_resets_the_user() {
        let now = Instant::now();
        let mut l = SmartLockout::new(Policy { client_budget: 5, ..Policy::below(10, Duration::from_secs(600)) });
        let evil = ip("203.0.113.9");
        for n in 0..5 {
            l.failed(&format!("user{n}"), evil, now);
        }
        assert_eq!(l.admit("someone", evil, now), Err(Refusal::Client));
        let mut l = SmartLockout::new(Policy::below(10, Duration::from_secs(600)));
        for _ in 0..3 {
            l.failed("bob", ip("10.0.0.1"), now);
        }
        l.succeeded("bob", ip("10.0.0.1"), now);
        for _ in 0..3 {
            l.failed("bob", ip("10.0.0.2"), now);
        }
        assert_eq!(l.admit("bob", ip("10.0.0.2"), now), Ok(()), "the success forgot the first three");
    }
}
