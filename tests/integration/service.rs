//! `idflow serve` as a child process, against a real slapd and the real scim2-server: changes
//! reach the SCIM service with no command, bursts are batched, SIGTERM stops cleanly, a source
//! that goes down is retried, reloads, and the control verbs.
use crate::common::{generated, Env};
use crate::scim::{env_for, Scim};
use crate::slapd::Slapd;
use serde_json::Value as J;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The `[service]` section the tests use: a long interval, so only changes and commands cause cycles.
pub(crate) const SERVICE: &str = "\n[service]\nlisten = \"127.0.0.1:0\"\ninterval = \"1h\"\ndebounce = \"200ms\"\n";

pub(crate) struct Service {
    pub child: Child,
    log: std::path::PathBuf,
}

impl Service {
    pub(crate) fn start(e: &Env) -> Service {
        Self::start_with(e, e.command(&["serve"]))
    }

    /// Starts `c` (an `idflow serve`, perhaps wrapped) and waits for its first cycle.
    pub(crate) fn start_with(e: &Env, mut c: std::process::Command) -> Service {
        let log = e.path("serve.log");
        let f = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log");
        c.stdout(Stdio::null()).stderr(f);
        let child = c.spawn().expect("idflow serve starts");
        let s = Service { child, log };
        s.wait_until(e, "the service answers and its first cycle ended", |st| st["cycles"].as_u64().is_some_and(|n| n >= 1));
        s
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn status(e: &Env) -> Option<J> {
        let o = e.run(&["status", "--json"]);
        (o.code == 0).then(|| serde_json::from_str(&o.stdout).ok()).flatten()
    }

    /// Polls `idflow status` until `f` holds (30 s at most).
    pub(crate) fn wait_until(&self, e: &Env, what: &str, f: impl Fn(&J) -> bool) -> J {
        let start = Instant::now();
        loop {
            if let Some(s) = Self::status(e) {
                if f(&s) {
                    return s;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "waited 60 s for: {what}\nstatus: {:?}\nlog:\n{}",
                Self::status(e),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let pid = i32::try_from(self.child.id()).expect("pid");
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill");
    }

    /// SIGTERM, and the exit code.
    pub(crate) fn stop(mut self) -> i32 {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.code().unwrap_or(-1);
            }
            assert!(start.elapsed() < Duration::from_secs(60), "the service did not stop within 60 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (30 s at most, looking every 100 ms) until `done` holds; else fails with `why`.
pub(crate) fn eventually(mut done: impl FnMut() -> bool, why: impl Fn() -> String) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "{}", why());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `f` holds of the SCIM users (30 s at most).
pub(crate) fn until_users(scim: &Scim, what: &str, f: impl Fn(&[J]) -> bool) {
    eventually(|| f(&scim.list("Users")), || format!("waited 30 s for: {what}"));
}

pub(crate) fn user<'a>(users: &'a [J], name: &str) -> Option<&'a J> {
    users.iter().find(|u| u["userName"] == name)
}

fn service_env(s: &Slapd, scim: &Scim) -> Env {
    let e = env_for(s, scim);
    let cfg = e.read("idflow.toml");
    e.write("idflow.toml", &format!("{cfg}{SERVICE}"));
    e
}

/// slapd with a generated directory, scim2-server, and the configuration between them.
pub(crate) fn servers(people: usize, groups: usize) -> (Slapd, Scim, Env) {
    let s = Slapd::start(Some(&generated(people, groups)));
    let scim = Scim::start();
    let e = service_env(&s, &scim);
    (s, scim, e)
}

/// The same, with the service started and its first cycle ended.
fn running(people: usize, groups: usize) -> (Slapd, Scim, Env, Service) {
    let (s, scim, e) = servers(people, groups);
    let svc = Service::start(&e);
    (s, scim, e, svc)
}

const NEW_PERSON: &str = "dn: uid=newbie,ou=People,dc=example,dc=org\nchangetype: add\nobjectClass: inetOrgPerson\nuid: newbie\ncn: New Bie\nsn: Bie\ngivenName: New\nmail: newbie@example.org\ntitle: Intern\n";

#[test]
fn a_change_in_slapd_reaches_the_scim_service_without_a_command() {
    let (s, scim, e, svc) = running(40, 4);
    let st = Service::status(&e).expect("status");
    assert_eq!(st["connectors"]["corp"]["trigger"], "syncrepl refreshAndPersist", "{st}");
    assert_eq!(st["connectors"]["cloud"]["trigger"], "timer", "{st}");
    let before = scim.list("Users").len();
    assert!(before > 20, "the first cycle provisioned the users: {before}");

    // add
    s.modify(NEW_PERSON);
    until_users(&scim, "the new person", |u| user(u, "newbie@example.org").is_some());
    // modify
    s.modify("dn: uid=newbie,ou=People,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Engineer\n");
    until_users(&scim, "the new title", |u| user(u, "newbie@example.org").is_some_and(|x| x["title"] == "Engineer"));
    // rename: the same SCIM object, its new name
    let id = user(&scim.list("Users"), "newbie@example.org").expect("newbie")["id"].clone();
    s.modify("dn: uid=newbie,ou=People,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid=oldhand\ndeleteoldrdn: 1\n");
    until_users(&scim, "the renamed person", |u| u.iter().any(|x| x["id"] == id && x["userName"] == "newbie@example.org"));
    // group member
    s.modify(
        "dn: cn=group00003,ou=Groups,dc=example,dc=org\nchangetype: modify\nadd: member\nmember: uid=oldhand,ou=People,dc=example,dc=org\n",
    );
    let start = Instant::now();
    loop {
        let g = scim.list("Groups").into_iter().find(|g| g["displayName"] == "group00003").expect("group00003");
        if g["members"].as_array().is_some_and(|m| m.iter().any(|m| m["value"] == id)) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the member did not arrive: {g}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // delete
    s.modify("dn: uid=oldhand,ou=People,dc=example,dc=org\nchangetype: delete\n");
    until_users(&scim, "the deleted person gone", |u| !u.iter().any(|x| x["id"] == id));

    let h = e.json(&["history", "-n", "50"], 0);
    let change_cycles = h.as_array().expect("runs").iter().filter(|r| r["profile"] == "change-cycle").count();
    assert!(change_cycles >= 4, "each change (or two close together) made a change-driven cycle: {h}");
    assert_eq!(svc.stop(), 0);
    assert!(!e.path("state/idflow.db.service.json").exists(), "the service file is removed at stop");
    let o = e.run(&["status"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("no idflow service is running"), "{o:?}");
}

#[test]
fn a_burst_of_changes_is_batched_into_few_cycles() {
    let (s, scim, e, svc) = running(120, 2);
    let cycles = Service::status(&e).expect("status")["cycles"].as_u64().expect("cycles");
    let ldif: String = (0..100)
        .map(|i| format!("dn: {}\nchangetype: modify\nreplace: title\ntitle: Burst {i}\n\n", idflow::generate::person_dn(i, 120)))
        .collect();
    s.modify(&ldif);
    let with_mail: Vec<String> = (0..100).filter(|i| i % 40 != 11).map(|i| format!("u{i:06}@example.org")).collect();
    until_users(&scim, "all 100 titles", |u| {
        with_mail.iter().all(|n| user(u, n).is_some_and(|x| x["title"].as_str().is_some_and(|t| t.starts_with("Burst"))))
    });
    let after = svc.wait_until(&e, "idle", |st| st["current"].is_null())["cycles"].as_u64().expect("cycles");
    assert!(after - cycles <= 5, "100 changes made {} cycles", after - cycles);
    assert_eq!(svc.stop(), 0);
}

#[test]
fn sigterm_during_a_large_export_loses_nothing_and_duplicates_nothing() {
    let seed = generated(1500, 10);
    let with_mail = seed.matches("\nmail: ").count();
    let s = Slapd::start(Some(&seed));
    let scim = Scim::start();
    let e = service_env(&s, &scim);
    let log = e.path("serve.log");
    let f = std::fs::File::create(&log).expect("log");
    let mut child = e.command(&["serve"]).stdout(Stdio::null()).stderr(f).spawn().expect("serve");
    // Wait for the export to be under way, then SIGTERM.
    let start = Instant::now();
    loop {
        let n = scim.list("Users").len();
        if n >= 50 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the export did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let code = child.wait().expect("wait").code();
    assert_eq!(code, Some(0), "{}", std::fs::read_to_string(&log).unwrap_or_default());
    let partial = scim.list("Users").len();
    assert!(partial < with_mail, "stopped before the export ended ({partial} of {with_mail})");
    // Restart: the rest arrives, nothing twice.
    let svc = Service::start(&e);
    let users = scim.list("Users");
    assert_eq!(users.len(), with_mail, "every user once");
    let names: std::collections::HashSet<&str> = users.iter().filter_map(|u| u["userName"].as_str()).collect();
    assert_eq!(names.len(), users.len(), "nobody twice");
    assert_eq!(svc.stop(), 0);
}

#[test]
fn a_source_that_goes_down_is_retried_and_recovers() {
    let (s, scim, e, svc) = running(20, 2);
    s.stop();
    e.ok(&["cycle", "--now", "--wait"], 2);
    let st = svc.wait_until(&e, "the connector reported down", |st| {
        st["connectors"]["corp"]["failures_in_a_row"].as_u64().is_some_and(|n| n >= 1)
            && st["connectors"]["corp"]["feed"].as_str().is_some_and(|f| f.starts_with("down"))
    });
    assert!(st["connectors"]["corp"]["last_result"].as_str().is_some_and(|r| r.contains("cannot connect")), "{st}");
    s.restart();
    s.modify(NEW_PERSON);
    until_users(&scim, "the change made while the feed reconnects", |u| user(u, "newbie@example.org").is_some());
    svc.wait_until(&e, "the connector is ok again", |st| st["connectors"]["corp"]["last_result"] == "ok");
    assert!(svc.log().contains("retrying"), "the log says it backs off:\n{}", svc.log());
    assert_eq!(svc.stop(), 0);
}

#[test]
fn a_changed_rule_reloads_and_an_invalid_one_keeps_the_old_rules_running() {
    let (s, scim, e, svc) = running(20, 2);
    let rules = e.read("rules/users.toml");
    assert!(rules.contains("title = \"mv.jobTitle\""), "the shipped rule flows title: {rules}");
    e.write("rules/users.toml", &rules.replace("title = \"mv.jobTitle\"", "title = \"upper(mv.jobTitle)\""));
    until_users(&scim, "upper-cased titles after the reload", |u| {
        user(u, "u000005@example.org").is_some_and(|x| x["title"].as_str().is_some_and(|t| t == t.to_uppercase()))
    });
    // An invalid rule: refused, the upper-casing rules keep running.
    e.write("rules/users.toml", &rules.replace("title = \"mv.jobTitle\"", "title = \"titlecase(mv.jobTitle)\""));
    let st = svc.wait_until(&e, "the reload refused", |st| st["reload_error"].is_string());
    assert!(st["reload_error"].as_str().is_some_and(|m| m.contains("titlecase")), "{st}");
    s.modify(NEW_PERSON);
    until_users(&scim, "changes still flow, with the old rules", |u| user(u, "newbie@example.org").is_some_and(|x| x["title"] == "INTERN"));
    let o = e.ok(&["status"], 0);
    assert!(o.stdout.contains("reload    : REFUSED"), "{o:?}");
    assert_eq!(svc.stop(), 0);
}

#[test]
fn status_cycle_now_and_pause_resume() {
    let (s, scim, e) = servers(20, 2);
    let o = e.run(&["cycle", "--now"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("no idflow service is running"), "{o:?}");
    let svc = Service::start(&e);
    // The watch's first refresh may start a change cycle right after the first cycle, even
    // after a status that showed none running: at rest once no cycle runs and none is pending,
    // and the status read again until it shows the service idle (for a minute at most).
    let start = Instant::now();
    let o = loop {
        svc.wait_until(&e, "no cycle running or pending", |st| {
            st["current"].is_null() && st["pending"].as_array().is_none_or(|p| p.is_empty())
        });
        let o = e.ok(&["status"], 0);
        if o.stdout.contains("now       : idle") || start.elapsed() > Duration::from_secs(60) {
            break o;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for line in
        ["scheduler : running", "now       : idle", "next      : delta cycle at", "connector corp: syncrepl refreshAndPersist (watching)"]
    {
        assert!(o.stdout.contains(line), "{line:?} in {o:?}");
    }
    assert!(e.ok(&["scheduler", "pause"], 0).stdout.contains("paused"));
    assert_eq!(Service::status(&e).expect("status")["paused"], true);
    // A pause starts no cycle; one the watch began just before it still ends (on a loaded
    // machine it could be under way yet, and would read the change below).
    svc.wait_until(&e, "the cycle under way ended", |st| st["current"].is_null());
    s.modify(NEW_PERSON);
    svc.wait_until(&e, "the change is pending", |st| st["pending"].as_array().is_some_and(|p| !p.is_empty()));
    std::thread::sleep(Duration::from_secs(1));
    assert!(user(&scim.list("Users"), "newbie@example.org").is_none(), "paused: no cycle ran");
    let o = e.ok(&["cycle", "--now", "--wait"], 0);
    assert!(o.stdout.contains("cycle ok"), "{o:?}");
    assert!(user(&scim.list("Users"), "newbie@example.org").is_some(), "cycle --now runs while paused");
    let o = e.run(&["cycle", "--now", "nosuch"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("no connector named \"nosuch\""), "{o:?}");
    e.ok(&["scheduler", "resume"], 0);
    assert_eq!(Service::status(&e).expect("status")["paused"], false);
    // A second service on the same metaverse is refused.
    let o = e.run(&["serve"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("is in use"), "{o:?}");
    // A wrong token is refused.
    let file: J = serde_json::from_str(&e.read("state/idflow.db.service.json")).expect("service file");
    let out = std::process::Command::new("curl")
        .args(["-s", "-H", "Authorization: Bearer nope", &format!("http://{}/v1/status", file["address"].as_str().expect("address"))])
        .output()
        .expect("curl");
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrong token"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(e.path("state/idflow.db.service.json")).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "the service file (it holds the token) is owner-only");
    }
    assert_eq!(svc.stop(), 0);
}

#[test]
fn systemd_is_told_ready_status_watchdog_and_stopping() {
    let (_slapd, _scim, e) = servers(10, 1);
    let sock_path = e.path("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    // systemd sets WATCHDOG_PID to the service's pid: a shell that execs idflow has it.
    let mut c = e.command(&[]);
    c.env("NOTIFY_SOCKET", &sock_path).env("WATCHDOG_USEC", "400000");
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" serve", env!("CARGO_BIN_EXE_idflow")]).current_dir(e.dir.path());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    let svc = Service::start_with(&e, sh);
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    while !(seen.contains("READY=1") && seen.contains("WATCHDOG=1") && seen.contains("STATUS=last cycle ok")) {
        assert!(start.elapsed() < Duration::from_secs(30), "notify messages: {seen}");
        let n = sock.recv(&mut buf).expect("a notify message");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    assert_eq!(svc.stop(), 0);
    let mut rest = String::new();
    while let Ok(n) = sock.recv(&mut buf) {
        rest.push_str(&String::from_utf8_lossy(&buf[..n]));
        if rest.contains("STOPPING=1") {
            break;
        }
    }
    assert!(rest.contains("STOPPING=1"), "{rest}");
}

#[test]
fn active_directory_changes_arrive_through_dirsync_polling() {
    let (_turn, dir) = crate::samba_ad::dc();
    let t = crate::samba_ad::tag();
    let ou = format!("OU=svc{t},DC=example,DC=test");
    let mut ldif = format!("dn: {ou}\nchangetype: add\nobjectClass: organizationalUnit\n\n");
    for i in 0..5 {
        ldif.push_str(&format!(
            "dn: CN=user{i},{ou}\nchangetype: add\nobjectClass: user\nsAMAccountName: s{t}{i}\nuserPrincipalName: s{t}{i}@example.test\ntitle: Clerk\n\n"
        ));
    }
    crate::samba_ad::ldap(&dir, "ldapmodify", &ldif);
    let e = crate::samba_ad::env_for(&dir, &ou, "ldaps://127.0.0.1");
    let cfg = e.read("idflow.toml");
    e.write("idflow.toml", &format!("{cfg}{SERVICE}dirsync_poll = \"1s\"\n"));
    let svc = Service::start(&e);
    let st = Service::status(&e).expect("status");
    assert_eq!(st["connectors"]["ad"]["trigger"], "DirSync every 1s", "{st}");
    assert!(e.cloud_user(&format!("s{t}2@example.test")).is_some(), "the first cycle provisioned the users");
    crate::samba_ad::ldap(&dir, "ldapmodify", &format!("dn: CN=user2,{ou}\nchangetype: modify\nreplace: title\ntitle: Chief\n"));
    eventually(
        || e.cloud_user(&format!("s{t}2@example.test")).is_some_and(|u| u["attributes"]["title"] == "Chief"),
        || format!("the DirSync-noticed change did not arrive:\n{}", svc.log()),
    );
    let h = e.json(&["history", "-n", "5"], 0);
    assert_eq!(h[0]["profile"], "change-cycle", "{h}");
    assert_eq!(svc.stop(), 0);
}

#[test]
fn password_hash_sync_runs_on_its_own_interval_even_when_the_scheduler_is_paused() {
    use crate::phs::{nt_hex, user, verify};
    let mut seed = String::from(crate::phs::PEOPLE_OU);
    for i in 1..=3 {
        seed.push_str(&user(&format!("p{i}"), i, true, &nt_hex(&format!("Old-Passw0rd-{i}"))));
    }
    let s = Slapd::start(Some(&seed));
    let e = crate::phs::file_target_env(&s, &format!("{SERVICE}phs_interval = \"1s\"\n"));
    let svc = Service::start(&e);
    let hash_of = |mail: &str| e.cloud_user(mail).and_then(|u| u["attributes"]["passwordHash"].as_str().map(str::to_string));
    eventually(|| hash_of("p1@example.org").is_some(), || format!("no hash delivered:\n{}", svc.log()));
    e.ok(&["scheduler", "pause"], 0);
    s.modify(&format!(
        "dn: uid=p1,ou=People,dc=example,dc=org\nchangetype: modify\nreplace: sambaNTPassword\nsambaNTPassword: {}\n",
        nt_hex("New-Passw0rd-1")
    ));
    eventually(
        || hash_of("p1@example.org").is_some_and(|h| verify(&e, &h, "New-Passw0rd-1") == 0),
        || format!("the new hash did not arrive:\n{}", svc.log()),
    );
    let h = e.json(&["history", "-n", "50"], 0);
    assert!(
        h.as_array().expect("runs").iter().any(|r| r["profile"] == "phs" && r["summary"]["password_hash_sync"]["delivered"] == 1),
        "{h}"
    );
    assert!(!svc.log().contains("New-Passw0rd") && !svc.log().contains(&nt_hex("New-Passw0rd-1")), "no secret in the log");
    assert_eq!(svc.stop(), 0);
}

#[test]
fn the_readme_service_settings_are_valid_and_json_logs_and_kill_9_recover() {
    let e = Env::quickstart();
    let cfg = e.read("idflow.toml");
    let block = crate::common::readme_toml_block("The service")
        .replace("127.0.0.1:7389", "127.0.0.1:0")
        .replace("log_format = \"text\"", "log_format = \"json\"");
    e.write("idflow.toml", &format!("{cfg}\n{block}"));
    e.ok(&["validate", "--offline"], 0);

    // The quickstart as a service: LDIF has no change feed (the timer it is); JSON log lines.
    let svc = Service::start(&e);
    let st = Service::status(&e).expect("status");
    assert_eq!(st["connectors"]["corp"]["trigger"], "timer", "{st}");
    assert_eq!(st["last_cycle"]["counts"]["exported"], 1025, "{st}");
    let cycle_line = svc
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<J>(l).ok())
        .find(|l| l["message"] == "cycle done")
        .unwrap_or_else(|| panic!("a JSON cycle line:\n{}", svc.log()));
    assert_eq!(cycle_line["exported"], 1025, "{cycle_line}");
    // While the service holds the metaverse, `plan` asks it; --out saves that plan.
    let o = e.ok(&["plan", "--out", "p.json"], 0);
    assert!(o.stdout.contains("No changes: the targets match the rules."), "{o:?}");
    let saved: J = serde_json::from_str(&e.read("p.json")).expect("saved plan");
    assert_eq!(saved["idflow_plan"], 1);
    let o = e.run(&["apply"]);
    assert_eq!(o.code, 1, "apply needs the metaverse the service holds: {o:?}");
    assert!(o.stderr.contains("is in use: idflow serve"), "{o:?}");
    // /metrics for Prometheus, with the token.
    let file: J = serde_json::from_str(&e.read("state/idflow.db.service.json")).expect("service file");
    let scrape = |token: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-i", "-H", &format!("Authorization: Bearer {token}")])
            .arg(format!("http://{}/metrics", file["address"].as_str().expect("address")))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(scrape("nope").starts_with("HTTP/1.1 401"), "the token guards /metrics");
    let m = scrape(file["token"].as_str().expect("token"));
    assert!(m.contains("content-type: application/openmetrics-text"), "{m}");
    for line in [
        "idflow_cycles_total{profile=\"delta-cycle\",status=\"ok\"} 1",
        "idflow_objects_exported_total{connector=\"cloud\",operation=\"add\"} 1025",
        "idflow_connector_up{connector=\"corp\"} 1",
        "idflow_scheduler_paused 0",
        "# TYPE idflow_cycle_duration_seconds histogram",
        "# TYPE idflow_connector_last_success_timestamp_seconds gauge",
        "idflow_build_info{version=",
        "# EOF",
    ] {
        assert!(m.contains(line), "{line:?} in\n{m}");
    }
    // SIGHUP reloads; nothing changed, so no cycle follows.
    svc.signal(libc::SIGHUP);
    eventually(|| svc.log().contains("nothing that cycles use changed"), || format!("no reload:\n{}", svc.log()));
    assert!(svc.log().contains("SIGHUP"), "{}", svc.log());

    // kill -9 in the middle of a cycle: the next start carries on, nothing twice.
    let mut svc = svc;
    let ticket = e.ok(&["cycle", "--now", "--full"], 0);
    assert!(ticket.stdout.contains("a full cycle starts"), "{ticket:?}");
    svc.child.kill().expect("kill -9");
    let _ = svc.child.wait();
    let svc = Service::start(&e);
    e.ok(&["cycle", "--now", "--wait"], 0);
    let h = e.json(&["history", "-n", "20"], 0);
    assert!(h.as_array().expect("runs").iter().all(|r| r["status"] != "running"), "no run left running: {h}");
    assert_eq!(svc.stop(), 0);
    let r = e.json(&["plan"], 0);
    assert_eq!(r["plan"]["connectors"][0]["totals"]["add"], 0, "{}", r["plan"]["connectors"][0]["totals"]);
}

#[test]
fn the_control_api_listens_on_loopback_only() {
    let e = Env::quickstart();
    let cfg = e.read("idflow.toml");
    e.write("idflow.toml", &format!("{cfg}\n[service]\nlisten = \"0.0.0.0:0\"\n"));
    let o = e.run(&["serve"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("loopback only"), "{o:?}");
    e.write("idflow.toml", &format!("{cfg}\n[service]\ninterval = \"soon\"\n"));
    let o = e.run(&["validate", "--offline"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("idflow.toml:") && o.stderr.contains("like \"30s\""), "file, line and what to write: {o:?}");
}

#[test]
fn the_systemd_unit_runs_the_service_hardened() {
    let unit = std::fs::read_to_string(crate::common::repo().join("examples/systemd/idflow.service")).expect("unit");
    for line in [
        "Type=notify",
        "ExecStart=/usr/local/bin/idflow --config /etc/idflow/idflow.toml serve",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=idflow",
        "StateDirectory=idflow",
        "StateDirectoryMode=0700",
        "WatchdogSec=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "CapabilityBoundingSet=",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "{line:?} in the unit");
    }
    // Every line outside comments and sections is a key=value.
    for l in unit.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.starts_with('[')) {
        assert!(l.split_once('=').is_some_and(|(k, _)| !k.is_empty() && !k.contains(' ')), "not a key=value line: {l:?}");
    }
}

#[test]
fn staging_mode_under_the_service_and_an_invalid_config_reload() {
    let e = Env::quickstart();
    let cfg = e.read("idflow.toml");
    assert!(cfg.contains("[export]\ndeletion_threshold = 500\n"), "{cfg}");
    let staged = format!("{}{SERVICE}", cfg.replace("[export]\n", "[export]\nstaging_mode = true\n"));
    e.write("idflow.toml", &staged);
    let svc = Service::start(&e);
    let st = Service::status(&e).expect("status");
    assert_eq!(st["staging_mode"], true, "{st}");
    assert!(!e.path("out/cloud.json").exists(), "staging mode: nothing exported");
    assert!(e.ok(&["status"], 0).stdout.contains("staging mode: no export"));
    // A configuration that does not parse: refused with its file and line; the old one runs on.
    e.write("idflow.toml", &staged.replace("staging_mode = true", "staging_mode = maybe"));
    let st = svc.wait_until(&e, "the reload refused", |st| st["reload_error"].is_string());
    assert!(st["reload_error"].as_str().is_some_and(|m| m.contains("idflow.toml:")), "{st}");
    e.ok(&["cycle", "--now", "--wait"], 0);
    assert!(!e.path("out/cloud.json").exists(), "still the old configuration: staging mode");
    // Fixed, and out of staging: the next cycle exports.
    e.write("idflow.toml", &staged.replace("staging_mode = true", "staging_mode = false"));
    svc.wait_until(&e, "reloaded out of staging mode", |st| st["reload_error"].is_null() && st["staging_mode"] == false);
    eventually(|| e.cloud().len() == 1025, || format!("the full cycle after the reload did not export:\n{}", svc.log()));
    assert_eq!(svc.stop(), 0);
}

#[test]
fn a_full_cycle_comes_when_the_last_one_is_older_than_full_every() {
    let e = Env::quickstart();
    let cfg = e.read("idflow.toml");
    e.write("idflow.toml", &format!("{cfg}{SERVICE}full_every = \"2s\"\n"));
    let svc = Service::start(&e);
    e.ok(&["cycle", "--now", "--wait"], 0);
    let h = e.json(&["history", "-n", "1"], 0);
    // (An LDIF file is read whole either way: the sync says which cycle it was.)
    assert_eq!(h[0]["summary"]["full_sync"], false, "within full_every: a delta cycle ({h})");
    std::thread::sleep(Duration::from_millis(2500));
    e.ok(&["cycle", "--now", "--wait"], 0);
    let h = e.json(&["history", "-n", "1"], 0);
    assert_eq!(h[0]["summary"]["full_sync"], true, "full_every passed: a full cycle ({h})");
    e.ok(&["cycle", "--now", "--wait"], 0);
    let h = e.json(&["history", "-n", "1"], 0);
    assert_eq!(h[0]["summary"]["full_sync"], false, "the full cycle counted ({h})");
    assert_eq!(svc.stop(), 0);
}

#[test]
fn a_rule_change_is_reviewed_as_a_plan_while_the_service_is_paused() {
    let e = Env::quickstart();
    let cfg = e.read("idflow.toml");
    e.write("idflow.toml", &format!("{cfg}{SERVICE}"));
    let svc = Service::start(&e);
    e.ok(&["scheduler", "pause"], 0);
    let rules = e.read("rules/accounts.toml");
    e.write("rules/accounts.toml", &rules.replace("title = \"mv.jobTitle\"", "title = \"upper(mv.jobTitle)\""));
    eventually(|| svc.log().contains("rules reloaded"), || format!("no reload:\n{}", svc.log()));
    let o = e.ok(&["plan"], 0);
    assert!(o.stdout.contains("title : upper-cased on all 975"), "{o:?}");
    let title = |e: &Env| e.cloud_user("u000005@example.org").expect("u5")["attributes"]["title"].as_str().unwrap_or_default().to_string();
    assert_ne!(title(&e), title(&e).to_uppercase(), "paused: nothing applied yet");
    e.ok(&["scheduler", "resume"], 0);
    eventually(|| title(&e) == title(&e).to_uppercase(), || format!("resumed, the owed full sync did not run:\n{}", svc.log()));
    assert_eq!(svc.stop(), 0);
}

#[test]
fn the_service_backs_the_metaverse_up_on_its_schedule_keeps_the_newest_and_says_when_it_fails() {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::quickstart();
    let cfg = e.read("idflow.toml");
    let backups = |every: &str, keep: usize, dir: &str| {
        format!("{cfg}{SERVICE}backup_dir = \"{dir}\"\nbackup_every = \"{every}\"\nbackup_keep = {keep}\n[health]\ncheck_every = \"1s\"\n")
    };
    e.write("idflow.toml", &backups("0s", 0, "backups"));
    let o = e.ok(&["serve"], 1);
    assert!(o.stderr.contains("idflow.toml: [service] backup_keep = 0 would remove every backup it takes"), "{o:?}");

    e.write("idflow.toml", &backups("1s", 2, "backups"));
    let svc = Service::start(&e);
    // Three backups, a second apart: the newest two are kept.
    let mut seen: Vec<String> = Vec::new();
    while seen.len() < 3 {
        let st = svc
            .wait_until(&e, "another backup", |st| st["backup"]["last_file"].as_str().is_some_and(|f| seen.last().is_none_or(|l| l != f)));
        seen.push(st["backup"]["last_file"].as_str().unwrap_or_default().to_string());
    }
    let o = e.ok(&["status"], 0);
    assert!(o.stdout.contains("backup    : last at ") && o.stdout.contains("/backups/idflow-"), "{o:?}");
    assert_eq!(svc.stop(), 0);
    let dir = e.path("backups");
    assert_eq!(std::fs::metadata(&dir).expect("made").permissions().mode() & 0o777, 0o700);
    let mut kept: Vec<String> = std::fs::read_dir(&dir).expect("dir").filter_map(|f| f.ok()?.file_name().into_string().ok()).collect();
    kept.sort();
    // Beside them, whose backups the folder holds (another metaverse's service is refused there).
    assert_eq!(kept.pop().as_deref(), Some("idflow-backups-of"), "{kept:?}");
    let of = std::fs::read_to_string(dir.join("idflow-backups-of")).expect("whose");
    assert_eq!(std::path::Path::new(of.trim_end()), std::fs::canonicalize(e.path("state/idflow.db")).expect("metaverse"));
    assert_eq!(kept.len(), 2, "the newest two: {kept:?}");
    assert!(kept.iter().all(|k| k.starts_with("idflow-") && k.ends_with("Z.db")), "{kept:?}");
    for k in &kept {
        assert_eq!(std::fs::metadata(dir.join(k)).expect("kept").permissions().mode() & 0o777, 0o600, "{k}");
    }
    // The newest is a metaverse a restore puts back.
    let newest = format!("backups/{}", kept[1]);
    e.ok(&["restore", &newest], 0);
    let o = e.ok(&["plan"], 0);
    assert!(o.stdout.contains("No changes"), "{o:?}");
    // Started again: the newest there is the last, and the next is due an hour after it.
    e.write("idflow.toml", &backups("1h", 2, "backups"));
    let svc = Service::start(&e);
    let st = Service::status(&e).expect("status");
    assert!(st["backup"]["last_file"].as_str().is_some_and(|f| f.ends_with(&kept[1])), "{st}");
    let at = |k: &str| humantime::parse_rfc3339(st["backup"][k].as_str().unwrap_or_default()).expect(k);
    let apart = at("next").duration_since(at("last")).map(|d| d.as_secs()).unwrap_or_default();
    assert!(apart.abs_diff(3600) <= 2, "{st}");
    assert_eq!(svc.stop(), 0);
    assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 3, "none taken before it is due");

    // A folder it cannot write into: the status and an alert say so, and cycles go on.
    e.write("not-a-folder", "x");
    e.write("idflow.toml", &backups("1h", 7, "not-a-folder"));
    let svc = Service::start(&e);
    let st = svc
        .wait_until(&e, "the backup alert", |st| st["alerts"].as_array().is_some_and(|a| a.iter().any(|a| a["kind"] == "backup_failing")));
    assert!(st["backup"]["failure"].as_str().is_some_and(|f| f.contains("not-a-folder")), "{st}");
    let o = e.ok(&["status"], 0);
    assert!(o.stdout.contains("the last attempt FAILED") && o.stdout.contains("WARNING backup_failing"), "{o:?}");
    e.ok(&["cycle", "--now", "--wait"], 0);
    assert_eq!(svc.stop(), 0);
}
