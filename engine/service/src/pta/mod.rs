//! Pass-through authentication's front ends, served by this process: RADIUS and the HTTPS
//! password-verification hook. Each request passes smart lockout, then goes to a pool of
//! password checks (each with a directory connection of its own, on a thread of its own, as
//! the connector's client blocks), and is answered within the deadline.
pub(crate) mod agent;
pub(crate) mod hook;
pub(crate) mod lockout;
pub(crate) mod radius;
mod radius_server;
mod rate;
pub(crate) mod relay;
mod wire;

use idflow_core::password_check::{CheckResult, PasswordCheck};
use idflow_core::registry::Registry;
use idflow_core::{Error, Result};
use idflow_engine::{Config, PtaSection};
use lockout::{Policy, SmartLockout};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

struct Job {
    user: String,
    password: Zeroizing<String>,
    reply: tokio::sync::oneshot::Sender<idflow_core::password_check::Checked>,
}

/// What a front end gets back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub result: CheckResult,
    /// Refused by smart lockout, the directory not asked.
    pub smart_lockout: bool,
    /// Over the client's rate: not checked (RADIUS does not answer; the hook says 429).
    pub rate_limited: bool,
}

/// Where passwords are checked: by this process's own pool, or by the agents dialled in.
enum Backend {
    Local(std::sync::mpsc::SyncSender<Job>),
    Relay(Arc<relay::Agents>),
}

pub(crate) struct Pta {
    backend: Backend,
    lockout: Mutex<SmartLockout>,
    rate: Mutex<rate::RateLimit>,
    deadline: Duration,
    metrics: Arc<crate::metrics::Metrics>,
    /// The service's status, told when the directory stops (and starts again) answering.
    status: Option<Arc<Mutex<crate::status::Status>>>,
    /// The domain's lockout threshold and window, when the directory said.
    pub domain: Option<(u32, Duration)>,
}

/// A secret from a file beside the configuration, owner-only.
pub(crate) fn secret_file(config: &Config, what: &str, file: &str) -> Result<Zeroizing<String>> {
    idflow_core::secret::read(&config.dir, what, None, Some(file))
        .map_err(|m| Error::Config(format!("{}: [pta] {what}: {m}", config.file.display())))?
        .ok_or_else(|| Error::Config(format!("{}: [pta] {what}: the file is empty", config.file.display())))
}

impl Pta {
    /// The pool of checks, and smart lockout's policy from the domain's (or `[pta]`'s).
    pub(crate) fn start(
        config: &Config,
        registry: &Arc<Registry>,
        metrics: Arc<crate::metrics::Metrics>,
        status: Option<Arc<Mutex<crate::status::Status>>>,
    ) -> Result<(Arc<Pta>, PtaSection)> {
        let section = config.pta.clone().ok_or_else(|| Error::Config("no [pta] section".into()))?;
        let pool = section.pool.clamp(1, 64);
        let mut checks: Vec<Box<dyn PasswordCheck>> = Vec::with_capacity(pool);
        for _ in 0..pool {
            checks.push(idflow_engine::password_check(config, registry)?);
        }
        let domain = checks.first().and_then(|c| c.lockout_policy());
        let policy = policy(&section, domain);
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(pool * 64);
        let rx = Arc::new(Mutex::new(rx));
        for check in checks {
            let rx = rx.clone();
            std::thread::spawn(move || loop {
                let job = match rx.lock() {
                    Ok(r) => r.recv(),
                    Err(_) => return,
                };
                let Ok(job) = job else { return };
                if job.reply.is_closed() {
                    // Its deadline passed while it waited: the directory is not asked.
                    continue;
                }
                let c = check.check(&job.user, &job.password);
                match &c.detail {
                    // A success with something to say (a grace login used, expiry near): the
                    // user will meet it, so the admin should hear it (no name).
                    Some(d) if c.result == CheckResult::Success => {
                        tracing::warn!(server = c.server.as_deref().unwrap_or("-"), detail = %d, "password checked: success, with a warning from the directory")
                    }
                    Some(d) => {
                        tracing::debug!(result = c.result.as_str(), server = c.server.as_deref().unwrap_or("-"), detail = %d, "password checked")
                    }
                    None => {}
                }
                let _ = job.reply.send(c);
            });
        }
        let pta = Pta {
            backend: Backend::Local(jobs),
            lockout: Mutex::new(SmartLockout::new(policy)),
            rate: Mutex::new(rate::RateLimit::new(section.rate_per_second)),
            deadline: section.deadline,
            metrics,
            status,
            domain,
        };
        Ok((Arc::new(pta), section))
    }

    /// A relay's: passwords go to the agents; smart lockout takes the domain's policy from
    /// the first agent that says it.
    pub(crate) fn relayed(
        section: &PtaSection,
        agents: Arc<relay::Agents>,
        metrics: Arc<crate::metrics::Metrics>,
        status: Option<Arc<Mutex<crate::status::Status>>>,
    ) -> Arc<Pta> {
        let policy = policy(section, None);
        Arc::new(Pta {
            backend: Backend::Relay(agents),
            lockout: Mutex::new(SmartLockout::new(policy)),
            rate: Mutex::new(rate::RateLimit::new(section.rate_per_second)),
            deadline: section.deadline,
            metrics,
            status,
            domain: None,
        })
    }

    /// An agent tells the relay the domain's lockout policy: smart lockout follows it, unless
    /// `[pta]` set its own budget.
    pub(crate) fn domain_policy(&self, section: &PtaSection, threshold: u32, window: Duration) {
        // Kept only while no agent said it before.
        if let Ok(mut l) = self.lockout.lock() {
            if l.policy.domain.is_none() {
                l.policy = policy(section, Some((threshold, window)));
            }
        }
    }

    /// The directory's answer, without smart lockout (an agent's: the relay applied it).
    pub(crate) async fn check(&self, user: &str, password: Zeroizing<String>) -> (CheckResult, String) {
        match &self.backend {
            Backend::Local(jobs) => {
                let (reply, rx) = tokio::sync::oneshot::channel();
                match jobs.try_send(Job { user: user.to_string(), password, reply }) {
                    Err(_) => (CheckResult::Unreachable, "every check is busy and the queue is full".to_string()),
                    Ok(()) => match tokio::time::timeout(self.deadline, rx).await {
                        Ok(Ok(c)) => (c.result, c.detail.unwrap_or_default()),
                        _ => (CheckResult::Unreachable, format!("no answer within {}", humantime::format_duration(self.deadline))),
                    },
                }
            }
            Backend::Relay(agents) => agents.ask(user, password, self.deadline).await,
        }
    }

    /// Checks a password for a front end: the client's rate and smart lockout first, then the
    /// directory. `client` is the end user's address when the front end knows it.
    pub(crate) async fn authenticate(&self, front_end: &str, user: &str, password: Zeroizing<String>, client: Option<IpAddr>) -> Outcome {
        let began = Instant::now();
        // Logs name a user only once signed in: people type passwords into the name field.
        let who = || {
            use sha2::Digest;
            hex::encode(&sha2::Sha256::digest(user.trim().to_lowercase().as_bytes())[..6])
        };
        let shown = client.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
        if let Some(c) = client {
            if !self.rate.lock().map(|mut r| r.allow(c, began)).unwrap_or(true) {
                tracing::warn!(client = %c, front_end, "over the client's rate ([pta] rate_per_second): not checked");
                self.metrics.pta_lockout("rate");
                return Outcome { result: CheckResult::Unreachable, smart_lockout: false, rate_limited: true };
            }
        }
        if user.len() > lockout::MAX_USER {
            self.metrics.pta_request(front_end, CheckResult::InvalidCredentials.as_str(), began.elapsed());
            return Outcome { result: CheckResult::InvalidCredentials, smart_lockout: false, rate_limited: false };
        }
        let admitted = self.lockout.lock().ok().map(|mut l| l.admit(user, client, Instant::now()));
        let outcome = match admitted {
            Some(Err(why)) => {
                tracing::warn!(user_hash = %who(), client = %shown, by = ?why, "smart lockout refused an attempt; the directory was not asked");
                self.metrics.pta_lockout(match why {
                    lockout::Refusal::User => "user",
                    lockout::Refusal::Client => "client",
                });
                Outcome { result: CheckResult::LockedOut, smart_lockout: true, rate_limited: false }
            }
            None => Outcome { result: CheckResult::Unreachable, smart_lockout: false, rate_limited: false },
            Some(Ok(attempt)) => {
                let (result, why) = self.check(user, password).await;
                // No agent at a relay is an alert of its own; the directory is not to blame.
                if let Some(Ok(mut s)) = self.status.as_ref().filter(|_| why != relay::NO_AGENT).map(|s| s.lock()) {
                    s.pta_unreachable = (result == CheckResult::Unreachable).then_some(why);
                }
                if let Ok(mut l) = self.lockout.lock() {
                    match result {
                        CheckResult::Success => l.succeeded(&attempt, Instant::now()),
                        // Only the right password shows these: not a failure.
                        CheckResult::AccountDisabled
                        | CheckResult::AccountExpired
                        | CheckResult::PasswordExpired
                        | CheckResult::MustChangePassword
                        | CheckResult::LogonHours
                        | CheckResult::Workstation => l.right_password(&attempt),
                        // A failure, or perhaps one (the password went and no answer came).
                        CheckResult::InvalidCredentials | CheckResult::LockedOut | CheckResult::Unreachable => {}
                    }
                }
                Outcome { result, smart_lockout: false, rate_limited: false }
            }
        };
        self.metrics.pta_request(front_end, outcome.result.as_str(), began.elapsed());
        let ms = began.elapsed().as_millis() as u64;
        if outcome.result == CheckResult::Success {
            tracing::info!(front_end, user = %user.trim(), client = %shown, result = "success", ms, "pass-through authentication");
        } else {
            tracing::info!(front_end, user_hash = %who(), client = %shown, result = outcome.result.as_str(), ms, "pass-through authentication");
        }
        outcome
    }
}

/// Smart lockout's policy: below the domain's threshold (when known), `[pta]`'s budgets first;
/// the window is the longer of `[pta]`'s and the domain's.
fn policy(section: &PtaSection, domain: Option<(u32, Duration)>) -> Policy {
    let domain_window = domain.map(|(_, w)| w).unwrap_or(Duration::from_secs(30 * 60));
    let window = section.window.map_or(domain_window, |w| w.max(domain_window));
    let mut policy = Policy::below(domain.map(|(t, _)| t), window);
    if let Some(b) = section.user_budget {
        policy.user_budget = b.max(1);
    }
    policy.client_budget = section.client_budget.max(1);
    let threshold = domain.map(|(t, _)| t).unwrap_or(0);
    if threshold > 0 && policy.user_budget * 2 >= threshold {
        tracing::warn!(
            user_budget = policy.user_budget,
            domain_threshold = threshold,
            "[pta] user_budget lets two sources together reach the domain's lockout threshold: attacks from outside can lock accounts"
        );
    }
    tracing::info!(domain_threshold = threshold, user_budget = policy.user_budget, window = %humantime::format_duration(policy.window), "smart lockout");
    policy
}

/// Starts what `[pta]` asks for (RADIUS, the hook) on the current runtime, in front of this
/// process's own checks or, with `relay_listen`, of the agents that dial in; none when `[pta]`
/// has neither.
pub(crate) async fn start_front_ends(
    config: &Config,
    registry: &Arc<Registry>,
    metrics: Arc<crate::metrics::Metrics>,
    status: Option<Arc<Mutex<crate::status::Status>>>,
) -> Result<bool> {
    let Some(section) = &config.pta else { return Ok(false) };
    if section.relay_listen.is_some() {
        relay::start(config, metrics, status).await?;
        return Ok(true);
    }
    if section.radius_listen.is_none() && section.hook_listen.is_none() {
        return Ok(false);
    }
    // Opening the checks blocks on the connector's own runtime: off this one.
    let (c, r) = (config.clone(), registry.clone());
    let (pta, section) = tokio::task::spawn_blocking(move || Pta::start(&c, &r, metrics, status))
        .await
        .map_err(|e| Error::Refused(format!("starting pass-through authentication: {e}")))??;
    serve_front_ends(config, &section, pta).await?;
    Ok(true)
}

/// RADIUS and the hook, as `[pta]` asks, in front of `pta`.
pub(crate) async fn serve_front_ends(config: &Config, section: &PtaSection, pta: Arc<Pta>) -> Result<()> {
    if let Some(listen) = &section.radius_listen {
        radius_server::start(config, section, listen, pta.clone()).await?;
    }
    if let Some(listen) = &section.hook_listen {
        hook::start(config, section, listen, pta.clone()).await?;
    }
    Ok(())
}
