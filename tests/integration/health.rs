//! Health: the error report by category, alerts, metrics and the dashboard.
use crate::common::{person, small, Env, SMALL_RULES};

/// A directory with errors of three categories: a duplicate DN, a reference to nobody, a rule
/// that fails on a value it does not expect (a title that is not a number).
pub(crate) fn troubled() -> Env {
    let ada = person("ada", 1, "manager: uid=nobody,ou=People,dc=example,dc=org");
    let bob = person("bob", 2, "");
    let bob_again = bob.replace("000000000002", "000000000022");
    let cy = person("cy", 3, "title: chief");
    let e = small(&[ada, bob, bob_again, cy]);
    e.write(
        "rules/rules.toml",
        &SMALL_RULES.replace("title = \"mv.title\"", "title = 'if mv.title == \"chief\" { throw \"no chiefs\" } else { mv.title }'"),
    );
    e
}

#[test]
fn the_error_report_lists_current_errors_by_category_as_text_csv_and_json() {
    let e = troubled();
    e.ok(&["apply"], 2);
    let r = e.json(&["errors"], 2);
    let count = |c: &str| r["by_category"][c].as_u64().unwrap_or(99);
    assert_eq!((count("duplicate-attribute"), count("dangling-reference"), count("rule-error"), count("other")), (2, 1, 1, 0), "{r:#}");
    let errors = r["errors"].as_array().expect("errors");
    let dangling = errors.iter().find(|e| e["category"] == "dangling-reference").expect("dangling");
    assert_eq!((dangling["attribute"].as_str(), dangling["rule"].as_str()), (Some("manager"), Some("in-person")));
    let rule = errors.iter().find(|e| e["category"] == "rule-error").expect("rule error");
    assert_eq!(
        (rule["attribute"].as_str(), rule["rule"].as_str(), rule["connector"].as_str()),
        (Some("title"), Some("out-user"), Some("cloud"))
    );
    assert!(rule["message"].as_str().unwrap_or_default().contains("no chiefs"), "{rule}");

    // Text groups by category; CSV has a header and a line per error; filters narrow it.
    let text = e.ok(&["errors"], 2).stdout;
    assert!(text.starts_with("4 errors: Duplicate Attribute 2, Rule Error 1, Dangling Reference 1\n"), "{text}");
    assert!(text.contains("\nRule Error (1)\n  cy [sync, cloud, rule out-user, attribute title]\n"), "{text}");
    let csv = e.ok(&["errors", "--format", "csv"], 2).stdout;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "category,stage,connector,object,rule,attribute,conflict,message,run_id,cs_id,mv_id");
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(csv.contains("Dangling Reference,sync,corp,\"uid=ada,ou=People,dc=example,dc=org\",in-person,manager,"), "{csv}");
    let only = e.json(&["errors", "--category", "rule-error"], 2);
    assert_eq!(only["errors"].as_array().map(Vec::len), Some(1));
    assert_eq!(only["by_category"]["duplicate-attribute"], 2, "the counts are of all current errors");
    let o = e.ok(&["errors", "--category", "typo"], 1);
    assert!(o.stderr.contains("--category typo: not a category; use one of duplicate-attribute"), "{o:?}");

    // Fixed at the source, the errors drop out with the next run.
    e.write("corp.ldif", &[person("ada", 1, ""), person("bob", 2, ""), person("cy", 3, "title: engineer")].join("\n"));
    e.ok(&["apply"], 0);
    let o = e.ok(&["errors"], 0);
    assert_eq!(o.stdout, "No object is in error.\n");
}

/// `[health]` for the tests: checked every second, alerts sent to `hook` with a token.
fn health_section(hook: &str) -> String {
    format!("\n[health]\ncheck_every = \"1s\"\nwebhooks = [\"{hook}\"]\nwebhook_token_file = \"hook.token\"\n")
}

#[test]
fn an_unreachable_source_raises_an_alert_that_resolves_itself_and_each_reaches_the_webhook_once() {
    use crate::service::{servers, Service};
    use std::os::unix::fs::PermissionsExt;
    let hook = crate::webhook::Receiver::start(2);
    let (s, _scim, e) = servers(20, 2);
    let cfg = e.read("idflow.toml");
    e.write("idflow.toml", &format!("{cfg}{}", health_section(&hook.url)));
    e.write("hook.token", "s3cret-hook-token\n");
    std::fs::set_permissions(e.path("hook.token"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let svc = Service::start(&e);
    let st = svc.wait_until(&e, "health checked", |st| st["checked"].is_string());
    assert_eq!(st["alerts"].as_array().map(Vec::len), Some(0), "a healthy service has no alert: {st}");

    s.stop();
    e.ok(&["cycle", "--now", "--wait"], 2);
    let st = svc.wait_until(&e, "the alert raised", |st| {
        st["alerts"].as_array().is_some_and(|a| a.iter().any(|a| a["key"] == "connector_unreachable:corp"))
    });
    let alert = st["alerts"].as_array().and_then(|a| a.iter().find(|a| a["kind"] == "connector_unreachable")).expect("alert");
    assert_eq!(alert["severity"], "critical");
    assert!(alert["summary"].as_str().is_some_and(|m| m.starts_with("corp (import): ") && m.contains("cannot connect")), "{alert}");
    let o = e.ok(&["status"], 0);
    assert!(o.stdout.contains("alert     : CRITICAL connector_unreachable since"), "{o:?}");
    // The receiver refused the first two posts: the raise arrives by retry, once.
    crate::service::eventually(|| hook.events("connector_unreachable") == ["raised"], || format!("the raise: {:?}", hook.received()));
    assert_eq!(hook.refused.load(std::sync::atomic::Ordering::SeqCst), 2);
    let (auth, body) = hook.received().into_iter().find(|(_, j)| j["alert"]["kind"] == "connector_unreachable").expect("raise");
    assert_eq!(auth.as_deref(), Some("Bearer s3cret-hook-token"));
    assert_eq!(body["alert"]["connector"], "corp");
    assert!(!svc.log().contains("/hook"), "logs name the webhook's host, not its URL:\n{}", svc.log());

    s.restart();
    svc.wait_until(&e, "the alert resolved", |st| {
        st["alerts"].as_array().is_some_and(|a| a.iter().all(|a| a["kind"] != "connector_unreachable"))
    });
    crate::service::eventually(
        || hook.events("connector_unreachable") == ["raised", "resolved"],
        || format!("one raise, one resolve: {:?}", hook.received()),
    );
    // The history keeps it, with both times.
    let a = e.json(&["alerts"], 0);
    let h = a["history"].as_array().and_then(|h| h.iter().find(|x| x["kind"] == "connector_unreachable")).expect("in the history");
    assert!(h["resolved"].is_string() && h["raise_sent"] == true && h["resolve_sent"] == true, "{h}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(hook.events("connector_unreachable"), ["raised", "resolved"], "no second notification");
    assert_eq!(svc.stop(), 0);
}

/// A free port on 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Debian's Prometheus, with the shipped configuration and alert rules (scraping every second).
struct Prometheus {
    child: std::process::Child,
    url: String,
}

impl Prometheus {
    fn start(e: &Env, target: &str, token_file: &std::path::Path) -> Prometheus {
        let dir = e.path("prometheus");
        std::fs::create_dir_all(&dir).expect("dir");
        let shipped = crate::common::repo().join("examples/prometheus");
        std::fs::copy(shipped.join("idflow-alerts.yml"), dir.join("idflow-alerts.yml")).expect("rules");
        let cfg = std::fs::read_to_string(shipped.join("prometheus.yml")).expect("example config");
        let cfg = cfg
            .replace("scrape_interval: 30s", "scrape_interval: 1s")
            .replace("evaluation_interval: 30s", "evaluation_interval: 1s")
            .replace("127.0.0.1:7389", target)
            .replace("/etc/idflow/api-token", &token_file.display().to_string());
        std::fs::write(dir.join("prometheus.yml"), cfg).expect("config");
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("Debian's prometheus is installed (apt-get install prometheus): .ci/run installs it");
        Prometheus { child, url: format!("http://127.0.0.1:{port}") }
    }

    fn get(&self, path: &str) -> Option<serde_json::Value> {
        let out = std::process::Command::new("curl").args(["-s", "-g"]).arg(format!("{}{path}", self.url)).output().ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The alerts firing now, as (name, connector).
    fn firing(&self) -> Vec<(String, String)> {
        let Some(j) = self.get("/api/v1/alerts") else { return Vec::new() };
        j["data"]["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|a| a["state"] == "firing")
                    .map(|a| {
                        let l = &a["labels"];
                        (l["alertname"].as_str().unwrap_or_default().to_string(), l["connector"].as_str().unwrap_or_default().to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_the_service_and_its_shipped_rules_fire_and_resolve() {
    use crate::service::{eventually, servers, Service};
    use std::os::unix::fs::PermissionsExt;
    let (s, _scim, e) = servers(20, 2);
    let cfg = e.read("idflow.toml");
    e.write("idflow.toml", &format!("{cfg}token_file = \"api-token\"\n\n[health]\ncheck_every = \"1s\"\n"));
    e.write("api-token", "prometheus-reads-this-token\n");
    std::fs::set_permissions(e.path("api-token"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let svc = Service::start(&e);
    let file: serde_json::Value = serde_json::from_str(&e.read("state/idflow.db.service.json")).expect("service file");
    let p = Prometheus::start(&e, file["address"].as_str().expect("address"), &e.path("api-token"));
    let log = || std::fs::read_to_string(e.path("prometheus/prometheus.log")).unwrap_or_default();
    eventually(
        || p.get("/api/v1/query?query=up{job=\"idflow\"}").is_some_and(|j| j["data"]["result"][0]["value"][1] == "1"),
        || format!("Prometheus scrapes the service with its token:\n{}", log()),
    );
    assert!(p.firing().is_empty(), "healthy: nothing fires: {:?}", p.firing());
    let q = p.get("/api/v1/query?query=idflow_objects_in_error").expect("query");
    assert!(q["data"]["result"].as_array().is_some_and(|r| r.len() == 9), "one series per category: {q}");

    s.stop();
    e.ok(&["cycle", "--now", "--wait"], 2);
    eventually(
        || p.firing().contains(&("IdflowConnectorFailing".into(), "corp".into())),
        || format!("the rule fires: {:?}\n{}", p.get("/api/v1/alerts"), log()),
    );
    let q = p.get("/api/v1/query?query=idflow_alert_active{alert=\"connector_unreachable\"}").expect("query");
    assert_eq!(q["data"]["result"][0]["value"][1], "1", "{q}");
    s.restart();
    eventually(|| p.firing().is_empty(), || format!("the rule resolves: {:?}", p.get("/api/v1/alerts")));
    assert_eq!(svc.stop(), 0);
}
