//! How `status` and `cycle --now --wait` read on a terminal.
use idflow_core::{Error, Result};
use idflow_service::client::Client;
use idflow_service::{LastCycle, Status};
use std::time::{Duration, Instant};

pub(crate) fn status(s: &Status) -> String {
    let mut out = format!("idflow service (pid {}) for {}, since {}\n", s.pid, s.config, s.started);
    let sched = if s.paused { "paused (idflow scheduler resume)" } else { "running" };
    out.push_str(&format!("scheduler : {sched}{}\n", if s.staging_mode { "; staging mode: no export, no password hash sync" } else { "" }));
    match &s.current {
        Some(c) => out.push_str(&format!(
            "now       : {} since {}{}\n",
            c.profile,
            c.started,
            c.stage.as_ref().map(|st| format!(", {st}")).unwrap_or_default()
        )),
        None => out.push_str("now       : idle\n"),
    }
    if let Some(t) = &s.next_delta {
        out.push_str(&format!("next      : delta cycle at {t}\n"));
    }
    if let Some(t) = &s.next_phs {
        out.push_str(&format!("next      : password hash sync at {t}\n"));
    }
    if !s.pending.is_empty() {
        out.push_str(&format!("pending   : changes reported by {}\n", s.pending.join(", ")));
    }
    if let Some(c) = &s.last_cycle {
        out.push_str(&format!("last      : {}", last_cycle(c)));
    }
    out.push_str(&format!("cycles    : {} since start\n", s.cycles));
    if let Some(b) = &s.backup {
        let last = match (&b.last, &b.last_file, b.last_bytes) {
            (Some(t), Some(f), Some(n)) => format!("last at {t}, {f} ({:.1} MiB)", n as f64 / 1_048_576.0),
            _ => format!("none yet in {}", b.dir),
        };
        let failed = match (&b.failure, &b.unremoved) {
            (Some(f), _) => format!("; the last attempt FAILED: {f}"),
            (None, Some(u)) => format!("; NOT REMOVED: {u}"),
            (None, None) => String::new(),
        };
        let next = match (&b.running, &b.next) {
            (Some(since), _) => format!("TAKING one since {since}"),
            (None, next) => format!("next at {}", next.as_deref().unwrap_or("when idle")),
        };
        out.push_str(&format!("backup    : {last}; {next}{failed}\n"));
    }
    if let Some(e) = &s.reload_error {
        out.push_str(&format!("reload    : {e}\n"));
    }
    if s.objects_in_error > 0 {
        out.push_str(&format!("errors    : {} objects in error (idflow errors)\n", s.objects_in_error));
    }
    if let Some(n) = s.pta_agents {
        out.push_str(&format!("pta       : relay, {n} agent(s) connected{}\n", if n == 0 { " (sign-ins fail)" } else { "" }));
    }
    if let Some(why) = &s.pta_unreachable {
        out.push_str(&format!("pta       : the directory does not answer: {why}\n"));
    }
    if s.alerts.is_empty() {
        out.push_str("alerts    : none\n");
    }
    for a in &s.alerts {
        out.push_str(&format!("alert     : {} {} since {}: {}\n", a.severity.to_uppercase(), a.kind, a.raised, a.summary));
    }
    for (name, c) in &s.connectors {
        out.push_str(&format!(
            "connector {name}: {}{}; last {}{}\n",
            c.trigger,
            c.feed.as_ref().map(|f| format!(" ({f})")).unwrap_or_default(),
            c.last_result.as_deref().unwrap_or("not run yet"),
            if c.failures_in_a_row > 0 {
                format!(" ({} failures in a row, retried with backoff)", c.failures_in_a_row)
            } else {
                String::new()
            }
        ));
    }
    out
}

pub(crate) fn last_cycle(c: &LastCycle) -> String {
    let counts: Vec<String> = c.counts.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{n} {}", k.replace('_', " "))).collect();
    format!(
        "{} {} at {} in {:.1} s{}{}{}\n",
        c.profile,
        c.status,
        c.finished,
        c.duration_ms as f64 / 1000.0,
        c.run_id.map(|r| format!(" (run #{r})")).unwrap_or_default(),
        if counts.is_empty() { String::new() } else { format!(": {}", counts.join(", ")) },
        c.failure.as_ref().map(|f| format!("; {f}")).unwrap_or_default()
    )
}

/// Polls status until the requested cycle with this ticket has ended.
pub(crate) fn wait_for_cycle(client: &Client, ticket: u64) -> Result<LastCycle> {
    let started = Instant::now();
    loop {
        let s = client.status()?;
        if let Some(c) = s.requested.get(&ticket) {
            return Ok(c.clone());
        }
        if started.elapsed() > Duration::from_secs(6 * 3600) {
            return Err(Error::Refused("the cycle has not ended after 6 hours".into()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup_line(s: &Status) -> String {
        status(s).lines().find(|l| l.starts_with("backup    :")).unwrap_or_default().to_string()
    }

    #[test]
    fn the_backup_line_says_the_one_being_taken_and_what_it_could_not_remove() {
        let mut s = Status::default();
        let b = s.backup.get_or_insert_with(Default::default);
        b.dir = "/b".into();
        b.next = Some("2026-12-08T04:00:00Z".into());
        assert_eq!(backup_line(&s), "backup    : none yet in /b; next at 2026-12-08T04:00:00Z");
        if let Some(b) = s.backup.as_mut() {
            (b.last, b.last_file, b.last_bytes) = (Some("2026-12-08T03:00:00Z".into()), Some("/b/idflow-x.db".into()), Some(1_048_576));
            b.running = Some("2026-12-08T04:00:01Z".into());
            b.unremoved = Some("1 older backup(s) beyond backup_keep could not be removed".into());
        }
        assert_eq!(
            backup_line(&s),
            "backup    : last at 2026-12-08T03:00:00Z, /b/idflow-x.db (1.0 MiB); TAKING one since 2026-12-08T04:00:01Z; \
             NOT REMOVED: 1 older backup(s) beyond backup_keep could not be removed"
        );
        if let Some(b) = s.backup.as_mut() {
            b.failure = Some("disk full".into());
        }
        assert!(backup_line(&s).ends_with("; the last attempt FAILED: disk full"), "a failure is said first");
    }
}
