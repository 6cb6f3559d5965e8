//! What runs next: the scheduler's decisions, with no I/O (the loop in `scheduler.rs` carries
//! them out). Requested cycles first, then password hash sync when due (it goes on while the
//! scheduler is paused, as in Entra Connect), then the timer or a retry of failed connectors,
//! then connectors whose directory reported changes once the debounce has passed.
use idflow_engine::{CycleRequest, ServiceSection};
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// Changes reported this long after the first of a batch start the cycle, debounce or not.
pub(crate) const MAX_BATCH_WAIT: Duration = Duration::from_secs(3);
/// How often configuration and rule files are looked at for changes.
pub(crate) const FILE_CHECK: Duration = Duration::from_secs(2);
pub(crate) const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// The first retry of a failed connector; it doubles up to `interval`.
const FIRST_RETRY: Duration = Duration::from_secs(5);

/// A job the scheduler decided on.
#[derive(Debug)]
pub(crate) struct Planned {
    pub req: CycleRequest,
    pub profile: &'static str,
    /// The ticket of a requested cycle (`cycle --now`).
    pub ticket: Option<u64>,
}

pub(crate) struct Schedule {
    pub settings: ServiceSection,
    pub connectors: Vec<String>,
    pub paused: bool,
    /// A full cycle (full import of every connector) is owed: the configuration changed, or a
    /// full cycle was asked for while another ran.
    pub full_next: bool,
    /// A full sync is owed: the rules changed.
    pub full_sync_next: bool,
    pub queue: VecDeque<(CycleRequest, u64)>,
    pub pending: BTreeSet<String>,
    first_change: Option<Instant>,
    last_change: Option<Instant>,
    pub next_delta: Instant,
    pub next_phs: Option<Instant>,
    pub next_purge: Instant,
    pub retry_at: Option<Instant>,
    pub failures: u32,
    pub tickets: u64,
}

impl Schedule {
    pub(crate) fn new(settings: ServiceSection, connectors: Vec<String>, has_phs: bool, now: Instant) -> Schedule {
        Schedule {
            settings,
            connectors,
            paused: false,
            full_next: false,
            full_sync_next: false,
            queue: VecDeque::new(),
            pending: BTreeSet::new(),
            first_change: None,
            last_change: None,
            // A cycle at start: whatever changed while the service was not running.
            next_delta: now,
            next_phs: has_phs.then_some(now),
            next_purge: now,
            retry_at: None,
            failures: 0,
            tickets: 0,
        }
    }

    /// A directory reported a change.
    pub(crate) fn changed(&mut self, connector: String, now: Instant) {
        if self.connectors.contains(&connector) {
            self.pending.insert(connector);
            self.first_change.get_or_insert(now);
            self.last_change = Some(now);
        }
    }

    /// `cycle --now`: queued; its ticket.
    pub(crate) fn request(&mut self, req: CycleRequest) -> u64 {
        self.tickets += 1;
        self.queue.push_back((req, self.tickets));
        self.tickets
    }

    /// A new configuration: its connectors, settings and whether it has password hash sync.
    pub(crate) fn reconfigure(&mut self, settings: ServiceSection, connectors: Vec<String>, has_phs: bool, now: Instant) {
        self.pending.retain(|c| connectors.contains(c));
        self.queue.retain(|(r, _)| r.import.iter().all(|c| connectors.contains(c)));
        self.next_phs = match (has_phs, self.next_phs) {
            (true, Some(t)) => Some(t.min(now + settings.phs_interval)),
            (true, None) => Some(now),
            (false, _) => None,
        };
        self.next_delta = self.next_delta.min(now + settings.interval);
        self.settings = settings;
        self.connectors = connectors;
    }

    /// The job to run now, if any.
    pub(crate) fn next_job(&mut self, now: Instant) -> Option<Planned> {
        if let Some((req, ticket)) = self.queue.pop_front() {
            return Some(self.take(req, "cycle", Some(ticket), now));
        }
        if self.next_phs.is_some_and(|t| now >= t) {
            self.next_phs = Some(now + self.settings.phs_interval);
            return Some(Planned { req: CycleRequest { phs_only: true, ..Default::default() }, profile: "phs", ticket: None });
        }
        if self.paused {
            return None;
        }
        if self.retry_at.is_some_and(|t| now >= t) || now >= self.next_delta {
            return Some(self.take(CycleRequest::default(), "delta-cycle", None, now));
        }
        if self.batch_due(now) {
            let import: Vec<String> = self.pending.iter().cloned().collect();
            return Some(self.take(CycleRequest { import, ..Default::default() }, "change-cycle", None, now));
        }
        None
    }

    fn take(&mut self, mut req: CycleRequest, profile: &'static str, ticket: Option<u64>, now: Instant) -> Planned {
        if req.import.is_empty() {
            // Every connector is imported: what was pending, the timer and a retry are covered.
            self.pending.clear();
            self.next_delta = now + self.settings.interval;
            self.retry_at = None;
            req.full |= std::mem::take(&mut self.full_next);
        } else {
            self.pending.retain(|c| !req.import.contains(c));
        }
        if self.pending.is_empty() {
            self.first_change = None;
            self.last_change = None;
        }
        req.full_sync |= std::mem::take(&mut self.full_sync_next);
        Planned { req, profile, ticket }
    }

    fn batch_due(&self, now: Instant) -> bool {
        match (self.first_change, self.last_change) {
            (Some(first), Some(last)) => now >= last + self.settings.debounce || now >= first + MAX_BATCH_WAIT,
            _ => false,
        }
    }

    /// A cycle ended; `failed` are the connectors whose part failed. A failure is retried
    /// after 5 s, 10 s, 20 s, ... up to `interval`, until a cycle of every connector succeeds.
    pub(crate) fn finished(&mut self, req: &CycleRequest, failed: &BTreeSet<String>, now: Instant) -> Option<Duration> {
        if req.phs_only {
            return None;
        }
        if failed.is_empty() {
            if req.import.is_empty() {
                self.failures = 0;
            }
            return None;
        }
        self.failures += 1;
        let backoff = (FIRST_RETRY * 2u32.saturating_pow(self.failures.saturating_sub(1).min(16))).min(self.settings.interval);
        let at = now + backoff;
        self.retry_at = Some(self.retry_at.map_or(at, |t| t.min(at)));
        Some(backoff)
    }

    /// When the loop must look again, unless an event comes first. While a job runs nothing
    /// else can start, and while paused only password hash sync: their deadlines do not count.
    pub(crate) fn wake_at(&self, now: Instant, busy: bool) -> Instant {
        let mut t = vec![now + FILE_CHECK];
        if !busy {
            t.push(self.next_purge);
            t.extend(self.next_phs);
            if !self.queue.is_empty() {
                t.push(now);
            }
            if !self.paused {
                t.push(self.next_delta);
                t.extend(self.retry_at);
                if let (Some(first), Some(last)) = (self.first_change, self.last_change) {
                    t.push((last + self.settings.debounce).min(first + MAX_BATCH_WAIT));
                }
            }
        }
        t.into_iter().min().unwrap_or(now + FILE_CHECK).max(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(now: Instant) -> Schedule {
        let settings = ServiceSection { interval: Duration::from_secs(1800), ..Default::default() };
        Schedule::new(settings, vec!["corp".into(), "cloud".into()], true, now)
    }

    fn first_cycles(s: &mut Schedule, now: Instant) {
        let phs = s.next_job(now).expect("password hash sync is due at start");
        assert_eq!(phs.profile, "phs");
        let start = s.next_job(now).expect("a cycle at start");
        assert_eq!(start.profile, "delta-cycle");
        assert!(s.next_job(now).is_none());
    }

    #[test]
    fn nothing_is_due_while_busy_or_paused_so_the_loop_sleeps() {
        let now = Instant::now();
        let mut s = schedule(now);
        first_cycles(&mut s, now);
        s.changed("corp".into(), now);
        s.next_purge = now + PURGE_EVERY;
        let later = now + Duration::from_secs(3600);
        // A job runs: the past timer and the pending change do not wake the loop.
        assert_eq!(s.wake_at(later, true), later + FILE_CHECK);
        // Paused: only password hash sync and the purge count.
        s.paused = true;
        s.next_phs = Some(later + Duration::from_secs(60));
        s.next_purge = later + PURGE_EVERY;
        assert_eq!(s.wake_at(later, false), later + FILE_CHECK);
        assert!(s.next_job(later).is_none(), "paused: no cycle");
        s.paused = false;
        assert_eq!(s.wake_at(later, false), later);
    }

    #[test]
    fn changes_are_batched_by_the_debounce_and_capped() {
        let now = Instant::now();
        let mut s = schedule(now);
        first_cycles(&mut s, now);
        s.changed("corp".into(), now);
        assert!(s.next_job(now).is_none(), "the debounce has not passed");
        let mut t = now;
        for _ in 0..20 {
            t += Duration::from_millis(200);
            s.changed("corp".into(), t);
        }
        let job = s.next_job(now + MAX_BATCH_WAIT).expect("capped at 3 s");
        assert_eq!(job.profile, "change-cycle");
        assert_eq!(job.req.import, vec!["corp".to_string()]);
        assert!(s.pending.is_empty());
        s.changed("gone".into(), t);
        assert!(s.pending.is_empty(), "a connector that is not configured (any more) is ignored");
    }

    #[test]
    fn a_failed_connector_is_retried_with_backoff_even_after_other_cycles() {
        let now = Instant::now();
        let mut s = schedule(now);
        first_cycles(&mut s, now);
        s.next_phs = None;
        let all = CycleRequest::default();
        let failed: BTreeSet<String> = ["corp".to_string()].into();
        assert_eq!(s.finished(&all, &failed, now), Some(Duration::from_secs(5)));
        // A change cycle for another connector succeeds meanwhile: the retry stays.
        s.changed("cloud".into(), now);
        let job = s.next_job(now + Duration::from_secs(1)).expect("change cycle");
        assert_eq!(job.profile, "change-cycle");
        assert_eq!(s.finished(&job.req, &BTreeSet::new(), now), None);
        assert!(s.retry_at.is_some());
        let retry = s.next_job(now + Duration::from_secs(5)).expect("the retry");
        assert_eq!(retry.profile, "delta-cycle");
        assert_eq!(s.finished(&retry.req, &failed, now), Some(Duration::from_secs(10)));
        for _ in 0..20 {
            s.finished(&retry.req, &failed, now);
        }
        let b = s.finished(&retry.req, &failed, now).expect("backoff");
        assert_eq!(b, Duration::from_secs(1800), "never longer than the interval");
        s.next_job(now + Duration::from_secs(1800)).expect("retry");
        s.finished(&CycleRequest::default(), &BTreeSet::new(), now);
        assert_eq!(s.failures, 0);
        assert!(s.retry_at.is_none());
    }

    #[test]
    fn requested_cycles_come_first_and_a_config_change_makes_the_next_full_cycle() {
        let now = Instant::now();
        let mut s = schedule(now);
        first_cycles(&mut s, now);
        let t = s.request(CycleRequest { import: vec!["corp".into()], ..Default::default() });
        s.full_next = true;
        s.full_sync_next = true;
        let job = s.next_job(now).expect("requested");
        assert_eq!((job.profile, job.ticket), ("cycle", Some(t)));
        assert!(!job.req.full, "a one-connector cycle is not the owed full cycle");
        assert!(job.req.full_sync, "the full sync goes with any cycle");
        s.next_delta = now;
        let job = s.next_job(now).expect("timer");
        assert!(job.req.full, "the owed full cycle imports every connector fully");
        assert!(!s.full_next);
        // Password hash sync goes on while paused, and is due before change cycles.
        s.paused = true;
        s.next_phs = Some(now);
        assert_eq!(s.next_job(now).expect("phs").profile, "phs");
        // Reconfigured without password hash sync: none is scheduled.
        s.reconfigure(s.settings.clone(), vec!["corp".into()], false, now);
        assert!(s.next_phs.is_none());
    }
}
