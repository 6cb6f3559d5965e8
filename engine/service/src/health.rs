//! The alert catalog: which conditions hold now, decided from the service's status alone (no
//! I/O, so every rule is a unit test). Modelled on Entra Connect Health's sync alerts.
use crate::status::{parse, Status};
use chrono::{DateTime, Utc};
use idflow_engine::HealthSection;
use std::time::Duration;

/// A condition that holds: raised as an alert while it does, resolved when it clears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    /// The kind and what it is about: one open alert per key.
    pub key: String,
    pub kind: &'static str,
    pub severity: &'static str,
    pub connector: Option<String>,
    pub summary: String,
}

/// Every kind of alert, its severity and what it means (the dashboard's legend, and the names
/// Prometheus's rules mirror).
pub(crate) const CATALOG: &[(&str, &str, &str)] = &[
    ("no_successful_cycle", "critical", "No cycle has completed for every connector in the allowed time"),
    ("connector_unreachable", "critical", "A directory or target could not be reached or refused the login"),
    ("stage_failed", "critical", "A connector's import or export failed as a whole"),
    ("phs_heartbeat_missing", "critical", "Password hash sync has not succeeded in the allowed time"),
    ("phs_failing", "critical", "Password hash sync fails"),
    ("export_breaker_open", "critical", "An export stopped after its target failed operation after operation"),
    ("deletions_held", "warning", "The deletion threshold holds a target's deletions"),
    ("objects_in_error", "warning", "More objects in error than [health] objects_in_error_above"),
    ("data_stale", "warning", "The service's numbers are old: no cycle has ended for a while"),
    ("backup_failing", "warning", "The scheduled backup of the metaverse fails, or cannot remove older ones"),
    ("staging_mode", "info", "Staging mode is on: nothing is exported"),
    ("pta_directory_unreachable", "critical", "Pass-through authentication's directory does not answer: sign-ins fail"),
    ("pta_no_agent_connected", "critical", "No pass-through authentication agent is connected to the relay: sign-ins fail"),
];

fn severity(kind: &str) -> &'static str {
    CATALOG.iter().find(|(k, _, _)| *k == kind).map(|(_, s, _)| *s).unwrap_or("warning")
}

fn condition(kind: &'static str, connector: Option<&str>, summary: String) -> Condition {
    let key = match connector {
        Some(c) => format!("{kind}:{c}"),
        None => kind.to_string(),
    };
    Condition { key, kind, severity: severity(kind), connector: connector.map(str::to_string), summary }
}

/// How long ago `t` was (from `since` when it never happened).
fn age(t: Option<&str>, since: &str, now: DateTime<Utc>) -> Duration {
    let at = t.and_then(parse).or_else(|| parse(since)).unwrap_or(now);
    (now - at).to_std().unwrap_or_default()
}

fn ago(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// What holds now.
pub(crate) fn conditions(s: &Status, h: &HealthSection, interval: Duration, has_phs: bool, now: DateTime<Utc>) -> Vec<Condition> {
    let mut out = Vec::new();
    let allowed = h.no_cycle_after.max(interval * 3);
    let since = age(s.last_success.as_deref(), &s.started, now);
    if since > allowed {
        let when =
            s.last_success.as_deref().map(|t| format!("the last was at {t}")).unwrap_or_else(|| "none since the service started".into());
        out.push(condition(
            "no_successful_cycle",
            None,
            format!("no successful cycle for {} ({when}; allowed {})", ago(since), ago(allowed)),
        ));
    }
    for (name, c) in &s.connectors {
        let (Some(stage), Some(error)) = (c.failed_stage.as_deref(), c.last_result.as_deref()) else { continue };
        if s.breakers_open.contains_key(name) {
            // The breaker's own alert says it (and what tripped it is in the errors).
            continue;
        }
        match c.failure_category.as_deref() {
            Some("connectivity") => out.push(condition("connector_unreachable", Some(name), format!("{name} ({stage}): {error}"))),
            Some("threshold") => {}
            _ => out.push(condition("stage_failed", Some(name), format!("the {stage} of {name} failed: {error}"))),
        }
    }
    if has_phs && !s.staging_mode {
        let since = age(s.phs_last_success.as_deref(), &s.started, now);
        if since > h.phs_heartbeat_after {
            out.push(condition(
                "phs_heartbeat_missing",
                None,
                format!("no successful password hash sync for {} (allowed {})", ago(since), ago(h.phs_heartbeat_after)),
            ));
        }
        if let Some(f) = &s.phs_failure {
            out.push(condition("phs_failing", None, format!("password hash sync fails: {f}")));
        }
    }
    for (name, m) in &s.breakers_open {
        out.push(condition("export_breaker_open", Some(name), m.clone()));
    }
    for (name, m) in &s.deletions_held {
        out.push(condition("deletions_held", Some(name), m.clone()));
    }
    if s.objects_in_error > h.objects_in_error_above {
        let parts: Vec<String> = s.errors_by_category.iter().filter(|(_, n)| **n > 0).map(|(c, n)| format!("{c} {n}")).collect();
        out.push(condition(
            "objects_in_error",
            None,
            format!("{} objects in error ({}); more than {}", s.objects_in_error, parts.join(", "), h.objects_in_error_above),
        ));
    }
    let last_end = s.last_cycle.as_ref().map(|c| c.finished.as_str());
    let idle = age(last_end, &s.started, now);
    let running = s.current.as_ref().map(|c| age(Some(&c.started), &s.started, now));
    if let Some(r) = running.filter(|r| *r > h.cycle_stuck_after) {
        out.push(condition("data_stale", None, format!("a cycle has run for {} (stuck?); the numbers are from before it", ago(r))));
    } else if idle > interval * 3 && running.is_none() {
        let why = if s.paused { " (the scheduler is paused)" } else { "" };
        out.push(condition("data_stale", None, format!("no cycle has ended for {}{why}; the numbers are that old", ago(idle))));
    }
    if let Some(why) = &s.pta_unreachable {
        out.push(condition("pta_directory_unreachable", None, format!("pass-through authentication cannot reach the directory: {why}")));
    }
    if let (Some(0), Some(since)) = (s.pta_agents, s.pta_no_agent_since.as_deref()) {
        let none = age(Some(since), &s.started, now);
        if none >= h.pta_no_agent_after {
            out.push(condition(
                "pta_no_agent_connected",
                None,
                format!("no pass-through authentication agent has been connected for {}: sign-ins through the relay fail", ago(none)),
            ));
        }
    }
    match s.backup.as_ref().map(|b| (&b.failure, &b.unremoved)) {
        Some((Some(f), _)) => out.push(condition("backup_failing", None, format!("the scheduled backup fails: {f}"))),
        Some((None, Some(u))) => out.push(condition("backup_failing", None, format!("the backup folder only grows: {u}"))),
        _ => {}
    }
    if s.staging_mode {
        out.push(condition("staging_mode", None, "staging mode is on: changes are computed, nothing is exported".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::conditions;
    use crate::status::{ConnectorStatus, Current, LastCycle, Status};
    use idflow_engine::HealthSection;
    use std::time::Duration;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(t: &str) -> chrono::DateTime<chrono::Utc> {
        crate::status::parse(t).expect("time")
    }

    fn healthy() -> Status {
        Status {
            started: "2026-01-01T00:00:00Z".into(),
            last_success: Some("2026-01-01T09:50:00Z".into()),
            phs_last_success: Some("2026-01-01T09:59:00Z".into()),
            last_cycle: Some(LastCycle { finished: "2026-01-01T09:50:00Z".into(), ..Default::default() }),
            ..Default::default()
        }
    }

    fn kinds(s: &Status, now: &str) -> Vec<String> {
        conditions(s, &HealthSection::default(), HOUR / 2, true, at(now)).into_iter().map(|c| c.key).collect()
    }

    #[test]
    fn a_healthy_service_has_no_alert() {
        assert!(kinds(&healthy(), "2026-01-01T10:00:00Z").is_empty());
    }

    #[test]
    fn no_successful_cycle_after_two_hours_or_three_intervals() {
        let s = healthy();
        assert!(kinds(&s, "2026-01-01T11:49:00Z").iter().all(|k| k != "no_successful_cycle"));
        assert!(kinds(&s, "2026-01-01T11:51:00Z").contains(&"no_successful_cycle".to_string()));
        // With a 1-hour interval, three intervals are longer than two hours.
        let c = conditions(&s, &HealthSection::default(), HOUR, true, at("2026-01-01T12:00:00Z"));
        assert!(c.iter().all(|c| c.kind != "no_successful_cycle"));
        // Never: counted from the start.
        let never = Status { last_success: None, ..healthy() };
        assert!(kinds(&never, "2026-01-01T02:01:00Z").contains(&"no_successful_cycle".to_string()));
    }

    #[test]
    fn a_failed_connector_is_unreachable_or_failed_by_its_category_and_threshold_is_its_own_alert() {
        let mut s = healthy();
        let failed = |stage: &str, category: &str| ConnectorStatus {
            last_result: Some("boom".into()),
            failed_stage: Some(stage.into()),
            failure_category: Some(category.into()),
            ..Default::default()
        };
        s.connectors.insert("corp".into(), failed("import", "connectivity"));
        s.connectors.insert("hr".into(), failed("import", "other"));
        s.connectors.insert("cloud".into(), failed("export", "threshold"));
        s.connectors.insert("ok".into(), ConnectorStatus { last_result: Some("ok".into()), ..Default::default() });
        s.deletions_held.insert("cloud".into(), "9 deletions held".into());
        let k = kinds(&s, "2026-01-01T10:00:00Z");
        assert_eq!(k, vec!["connector_unreachable:corp", "stage_failed:hr", "deletions_held:cloud"]);
    }

    #[test]
    fn password_hash_sync_heartbeat_and_failure() {
        let mut s = healthy();
        s.phs_last_success = Some("2026-01-01T08:00:00Z".into());
        s.phs_failure = Some("the DC refused".into());
        assert_eq!(kinds(&s, "2026-01-01T10:01:00Z"), vec!["phs_heartbeat_missing", "phs_failing"]);
        // Not configured, or in staging mode: no password hash sync alert.
        assert!(conditions(&s, &HealthSection::default(), HOUR / 2, false, at("2026-01-01T10:01:00Z")).is_empty());
        s.staging_mode = true;
        assert_eq!(kinds(&s, "2026-01-01T10:01:00Z"), vec!["staging_mode"]);
    }

    #[test]
    fn objects_in_error_breakers_and_stale_data() {
        let mut s = healthy();
        s.objects_in_error = 3;
        s.errors_by_category.insert("rule-error".into(), 3);
        s.breakers_open.insert("cloud".into(), "stopped".into());
        assert_eq!(kinds(&s, "2026-01-01T10:00:00Z"), vec!["export_breaker_open:cloud", "objects_in_error"]);
        let c =
            conditions(&s, &HealthSection { objects_in_error_above: 3, ..Default::default() }, HOUR / 2, true, at("2026-01-01T10:00:00Z"));
        assert!(c.iter().all(|c| c.kind != "objects_in_error"));
        // Paused for long: stale; a cycle running for more than an hour: stale.
        let mut quiet = healthy();
        quiet.paused = true;
        quiet.phs_last_success = Some("2026-01-01T11:40:00Z".into());
        assert!(kinds(&quiet, "2026-01-01T11:40:00Z").contains(&"data_stale".to_string()));
        let mut stuck = healthy();
        stuck.current = Some(Current { started: "2026-01-01T08:55:00Z".into(), ..Default::default() });
        let c = conditions(&stuck, &HealthSection::default(), HOUR / 2, true, at("2026-01-01T10:00:00Z"));
        assert!(c.iter().any(|c| c.kind == "data_stale" && c.summary.contains("a cycle has run for 1h 5m")), "{c:?}");
    }

    #[test]
    fn a_failing_backup_until_one_succeeds() {
        let mut s = healthy();
        s.backup = Some(crate::status::BackupStatus { dir: "/b".into(), ..Default::default() });
        assert!(kinds(&s, "2026-01-01T10:00:00Z").is_empty());
        if let Some(b) = s.backup.as_mut() {
            b.failure = Some("disk full".into());
        }
        let c = conditions(&s, &HealthSection::default(), HOUR / 2, true, at("2026-01-01T10:00:00Z"));
        assert!(c.iter().any(|c| c.kind == "backup_failing" && c.severity == "warning" && c.summary.ends_with("disk full")), "{c:?}");
        // Taken, but the oldest beyond backup_keep stay.
        if let Some(b) = s.backup.as_mut() {
            b.failure = None;
            b.unremoved = Some("1 older backup(s) beyond backup_keep could not be removed".into());
        }
        let c = conditions(&s, &HealthSection::default(), HOUR / 2, true, at("2026-01-01T10:00:00Z"));
        assert!(c.iter().any(|c| c.kind == "backup_failing" && c.summary.contains("only grows")), "{c:?}");
    }

    #[test]
    fn a_relay_without_agents_for_three_minutes() {
        let mut s = healthy();
        s.pta_agents = Some(0);
        s.pta_no_agent_since = Some("2026-01-01T09:59:30Z".into());
        assert!(kinds(&s, "2026-01-01T10:02:00Z").is_empty(), "agents dial again within a minute");
        assert_eq!(kinds(&s, "2026-01-01T10:02:31Z"), vec!["pta_no_agent_connected"]);
        s.pta_agents = Some(1);
        s.pta_no_agent_since = None;
        assert!(kinds(&s, "2026-01-01T10:10:00Z").is_empty());
        // Not a relay: nothing to say.
        s.pta_agents = None;
        assert!(kinds(&s, "2026-01-01T10:10:00Z").is_empty());
    }
}
