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
    // The history keeps it, with both times. The service records that the resolve was sent
    // after the receiver answered, so the record may follow the receipt by a moment.
    let history = || {
        let a = e.json(&["alerts"], 0);
        a["history"].as_array().and_then(|h| h.iter().find(|x| x["kind"] == "connector_unreachable").cloned()).expect("in the history")
    };
    crate::service::eventually(
        || {
            let h = history();
            h["resolved"].is_string() && h["raise_sent"] == true && h["resolve_sent"] == true
        },
        || format!("both times, both sent: {}", history()),
    );
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

/// Debian's Chromium, headless, with a profile of its own: signed in once through the link
/// `idflow dashboard` prints (its session cookie stays in the profile), it loads pages and
/// returns the DOM they rendered; `shot` also saves a screenshot (the test's artefacts, in
/// target/dashboard-screenshots).
struct Browser {
    address: String,
    profile: tempfile::TempDir,
}

impl Browser {
    fn new(e: &Env) -> Browser {
        let j = e.json(&["dashboard"], 0);
        let sign_in = j["sign_in"].as_str().expect("sign-in link").to_string();
        let address = j["address"].as_str().expect("address").trim_end_matches("/ui").to_string();
        let b = Browser { address, profile: tempfile::tempdir().expect("profile") };
        let t = text(&b.run(&sign_in, &["--dump-dom".to_string()]));
        assert!(t.contains("Identity is"), "the link signed in and led to the overview: {t}");
        b
    }

    /// Loads `page` (a path, or a whole URL) in the signed-in profile.
    fn run(&self, page: &str, extra: &[String]) -> String {
        let url = if page.starts_with("http") { page.to_string() } else { format!("{}{page}", self.address) };
        let out = std::process::Command::new("timeout")
            .arg("90")
            .arg("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--disable-dev-shm-usage"])
            .arg(format!("--user-data-dir={}", self.profile.path().display()))
            .args(extra)
            .arg(url)
            .output()
            .expect("Debian's chromium is installed (apt-get install chromium): .ci/run installs it");
        assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The page's rendered DOM.
    fn dom(&self, page: &str) -> String {
        self.run(page, &["--dump-dom".to_string()])
    }

    /// A screenshot of the page at `width` x `height`, kept as `name`.png.
    fn shot(&self, page: &str, name: &str, width: u32, height: u32) {
        let dir = crate::common::repo().join("target/dashboard-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let file = dir.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&file);
        self.run(page, &[format!("--window-size={width},{height}"), format!("--screenshot={}", file.display())]);
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(size > 5000, "a screenshot of {page} at {}: {size} bytes", file.display());
    }
}

/// The text of a DOM, tags dropped and spaces squeezed.
fn text(dom: &str) -> String {
    let mut out = String::new();
    let mut tag = false;
    for c in dom.chars() {
        match c {
            '<' => tag = true,
            '>' => {
                tag = false;
                out.push(' ');
            }
            c if !tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_dashboard_in_a_real_browser_shows_an_alert_while_slapd_is_down_and_finds_an_object() {
    use crate::service::{servers, Service};
    let (s, _scim, e) = servers(30, 3);
    let cfg = e.read("idflow.toml");
    e.write("idflow.toml", &format!("{cfg}\n[health]\ncheck_every = \"1s\"\n"));
    let svc = Service::start(&e);
    svc.wait_until(&e, "health checked", |st| st["checked"].is_string());
    let b = Browser::new(&e);
    let token = std::fs::read_to_string(e.path("state/idflow.db.service.json")).expect("service file");
    let token: serde_json::Value = serde_json::from_str(&token).expect("json");
    let token = token["token"].as_str().expect("token").to_string();

    let overview = b.dom("/ui");
    let t = text(&overview);
    assert!(t.contains("Identity is flowing"), "{t}");
    assert!(t.contains("corp") && t.contains("cloud") && t.contains("No alert is open."), "{t}");
    assert!(!overview.contains(&token), "no secret in a page");
    b.shot("/ui", "overview-wide", 1280, 1000);
    b.shot("/ui", "overview-phone", 390, 1600);

    // slapd down: the overview says identity is not flowing, with the alert.
    s.stop();
    e.ok(&["cycle", "--now", "--wait"], 2);
    svc.wait_until(&e, "the alert raised", |st| st["alerts"].as_array().is_some_and(|a| !a.is_empty()));
    let t = text(&b.dom("/ui"));
    assert!(t.contains("Identity is not flowing: 1 critical alert"), "{t}");
    assert!(t.contains("connector_unreachable") && t.contains("cannot connect"), "{t}");
    b.shot("/ui", "overview-slapd-down", 1280, 1000);

    // Back: the alert clears by itself.
    s.restart();
    svc.wait_until(&e, "the alert resolved", |st| st["alerts"].as_array().is_some_and(Vec::is_empty));
    let t = text(&b.dom("/ui"));
    assert!(t.contains("Identity is flowing") && !t.contains("connector_unreachable"), "{t}");

    // Search finds a person by mail; the result opens its preview.
    let found = b.dom("/ui/search?q=u000005@");
    let link = found.split("href=\"/ui/object?mv=").nth(1).and_then(|r| r.split('"').next()).expect("a result linking its preview");
    assert!(text(&found).contains("1 found"), "{}", text(&found));
    let page = format!("/ui/object?mv={link}");
    let t = text(&b.dom(&page));
    assert!(t.contains("Rules in scope and what they decided") && t.contains("Metaverse attributes, and the rule that won each"), "{t}");
    assert!(t.contains("u000005@example.org") && t.contains("Pending exports"), "{t}");
    b.shot(&page, "object-preview", 1280, 1400);

    // Runs, one run, errors: each renders.
    let t = text(&b.dom("/ui/runs"));
    assert!(t.contains("Latency per connector") && t.contains("Timeline") && t.contains("#1"), "{t}");
    b.shot("/ui/runs", "runs", 1280, 1000);
    let t = text(&b.dom("/ui/runs/1"));
    assert!(t.contains("Run #1") && t.contains("Imports") && t.contains("Exports"), "{t}");
    let t = text(&b.dom("/ui/errors"));
    assert!(t.contains("Errors:") && t.contains("Duplicate Attribute") && t.contains("CSV"), "{t}");
    b.shot("/ui/errors", "errors", 1280, 1000);
    assert_eq!(svc.stop(), 0);
}

#[test]
fn the_dashboard_needs_the_token_and_its_actions_refuse_other_sites() {
    use crate::service::{servers, Service};
    let (_s, _scim, e) = servers(10, 1);
    let svc = Service::start(&e);
    let j = e.json(&["dashboard"], 0);
    let address = j["address"].as_str().expect("address").trim_end_matches("/ui").to_string();
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl").args(["-s", "-i"]).args(args).output().expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Not signed in: to the sign-in page; a wrong token is refused.
    let o = curl(&[&format!("{address}/ui/errors")]);
    assert!(o.starts_with("HTTP/1.1 303") && o.contains("location: /ui/login?next=/ui/errors"), "{o}");
    let o = curl(&[&format!("{address}/ui/login?code=wrong")]);
    assert!(o.starts_with("HTTP/1.1 401") && o.contains("used up or expired"), "{o}");
    let o = curl(&["-d", "token=wrong", &format!("{address}/ui/login")]);
    assert!(o.starts_with("HTTP/1.1 401") && o.contains("That is not the service"), "{o}");
    let file: serde_json::Value = serde_json::from_str(&e.read("state/idflow.db.service.json")).expect("service file");
    let token = file["token"].as_str().expect("token");
    let o = curl(&["-d", &format!("token={token}&next=https://evil.example/"), &format!("{address}/ui/login")]);
    assert!(o.starts_with("HTTP/1.1 303") && o.contains("location: /ui\r"), "only a dashboard page after sign-in: {o}");
    // The link works once; the cookie is not the token, and works.
    let link = j["sign_in"].as_str().expect("link");
    assert!(!link.contains(token), "the token is not in the link");
    let o = curl(&[link]);
    let cookie = o.lines().find_map(|l| l.strip_prefix("set-cookie: ")).expect("a cookie").to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Max-Age=43200"), "{cookie}");
    assert!(!cookie.contains(token), "the cookie is not the token");
    assert!(curl(&[link]).starts_with("HTTP/1.1 401"), "a link works once");
    let pair = cookie.split(';').next().expect("pair").to_string();
    let o = curl(&["-b", &pair, &format!("{address}/ui/errors.csv")]);
    assert!(o.starts_with("HTTP/1.1 200") && o.contains("category,stage,connector,object"), "{o}");
    // An action from another site's form is refused; from the dashboard it works.
    let o = curl(&["-b", &pair, "-X", "POST", "-H", "Origin: http://evil.example", &format!("{address}/ui/actions/pause")]);
    assert!(o.starts_with("HTTP/1.1 403"), "{o}");
    let o = curl(&["-b", &pair, "-X", "POST", "-H", "Sec-Fetch-Site: cross-site", &format!("{address}/ui/actions/pause")]);
    assert!(o.starts_with("HTTP/1.1 403"), "{o}");
    assert_eq!(Service::status(&e).expect("status")["paused"], false);
    let host = address.trim_start_matches("http://");
    let o = curl(&["-b", &pair, "-X", "POST", "-H", &format!("Origin: http://{host}"), &format!("{address}/ui/actions/pause")]);
    assert!(o.starts_with("HTTP/1.1 303"), "{o}");
    assert_eq!(Service::status(&e).expect("status")["paused"], true);
    let o = curl(&["-b", &pair, "-X", "POST", "-d", "full=false", &format!("{address}/ui/actions/cycle")]);
    assert!(o.starts_with("HTTP/1.1 303"), "{o}");
    svc.wait_until(&e, "the cycle the dashboard asked for", |st| st["cycles"].as_u64().is_some_and(|n| n >= 2));
    // Signed out: the cookie is cleared.
    let o = curl(&["-b", &pair, "-X", "POST", &format!("{address}/ui/logout")]);
    assert!(o.contains("set-cookie: idflow_session=; Path=/; Max-Age=0"), "{o}");
    assert_eq!(svc.stop(), 0);
}

#[test]
fn the_readme_health_settings_are_valid_and_a_bad_one_is_named() {
    let e = Env::quickstart();
    let cfg = e.read("idflow.toml");
    e.write("idflow.toml", &format!("{cfg}\n{}", crate::common::readme_toml_block("Health monitoring")));
    e.ok(&["validate", "--offline"], 0);
    e.write("idflow.toml", &format!("{cfg}\n[health]\nno_cycle_after = \"soon\"\n"));
    let o = e.ok(&["validate", "--offline"], 1);
    assert!(o.stderr.contains("\"soon\" is not a duration") && o.stderr.contains("idflow.toml:"), "the file, line and column: {o:?}");
    e.write("idflow.toml", &format!("{cfg}\n[health]\nwebhook = []\n"));
    let o = e.ok(&["validate", "--offline"], 1);
    assert!(o.stderr.contains("unknown field `webhook`"), "{o:?}");
}

#[test]
fn a_notification_the_receiver_missed_is_sent_after_a_restart_and_alerts_exit_2_while_critical() {
    use crate::service::{eventually, Service};
    let port = free_port();
    let e = troubled();
    let cfg = e.read("idflow.toml");
    e.write(
        "idflow.toml",
        &format!("{cfg}{}\n[health]\ncheck_every = \"1s\"\nwebhooks = [\"http://127.0.0.1:{port}/hook\"]\n", crate::service::SERVICE),
    );
    // The receiver is down: the raise waits.
    let svc = Service::start(&e);
    svc.wait_until(&e, "the objects_in_error alert", |st| {
        st["alerts"].as_array().is_some_and(|a| a.iter().any(|a| a["kind"] == "objects_in_error"))
    });
    let a = e.json(&["alerts"], 0);
    assert_eq!(a["open"][0]["raise_sent"], false, "{a}");
    assert_eq!(svc.stop(), 0);
    // Up again, with the service: the raise arrives, once.
    let hook = crate::webhook::Receiver::start_on(port, 0);
    let svc = Service::start(&e);
    eventually(|| hook.events("objects_in_error") == ["raised"], || format!("the raise after the restart: {:?}", hook.received()));
    let (_, body) = hook.received().into_iter().next().expect("one");
    assert!(body["alert"]["summary"].as_str().is_some_and(|s| s.contains("objects in error")), "{body}");
    // A critical alert makes `idflow alerts` exit 2: a stage that fails whole.
    e.write("corp.ldif", "this is not LDIF\n");
    e.ok(&["cycle", "--now", "--wait"], 2);
    svc.wait_until(&e, "stage_failed", |st| st["alerts"].as_array().is_some_and(|a| a.iter().any(|a| a["kind"] == "stage_failed")));
    let o = e.ok(&["alerts"], 2);
    assert!(o.stdout.contains("OPEN critical stage_failed"), "{o:?}");
    assert_eq!(svc.stop(), 0);
}

#[test]
fn with_tls_configured_the_api_and_the_dashboard_are_https_only_and_the_cli_trusts_the_certificate() {
    use crate::service::Service;
    use std::os::unix::fs::PermissionsExt;
    let e = Env::quickstart();
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=idflow test service"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(e.path("service.key"))
        .arg("-out")
        .arg(e.path("service.pem"))
        .output()
        .expect("openssl");
    assert!(ok.status.success(), "{ok:?}");
    let cfg = e.read("idflow.toml");
    let tls = "\n[service]\nlisten = \"127.0.0.1:0\"\ninterval = \"1h\"\ntls_cert = \"service.pem\"\ntls_key = \"service.key\"\n";
    e.write("idflow.toml", &format!("{cfg}{tls}"));
    // A key others can read is refused before anything listens.
    std::fs::set_permissions(e.path("service.key"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let o = e.ok(&["serve"], 1);
    assert!(o.stderr.contains("tls_key") && o.stderr.contains("readable by others; chmod 600 it"), "{o:?}");
    std::fs::set_permissions(e.path("service.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let svc = Service::start(&e);
    // A client that connects and says nothing holds up no one.
    let file: serde_json::Value = serde_json::from_str(&e.read("state/idflow.db.service.json")).expect("service file");
    let silent = std::net::TcpStream::connect(file["address"].as_str().expect("address")).expect("connect");
    let began = std::time::Instant::now();
    e.ok(&["status"], 0);
    assert!(began.elapsed() < std::time::Duration::from_secs(5), "status waited for a silent client's handshake");
    drop(silent);
    let j = e.json(&["dashboard"], 0);
    let link = j["sign_in"].as_str().expect("link");
    assert!(link.starts_with("https://127.0.0.1:"), "{link}");
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl").args(["-s", "-i"]).args(args).output().expect("curl");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let ca = e.path("service.pem").display().to_string();
    let (_, o) = curl(&["--cacert", &ca, link]);
    assert!(o.starts_with("HTTP/1.1 303"), "{o}");
    let cookie = o.lines().find_map(|l| l.strip_prefix("set-cookie: ")).expect("cookie");
    assert!(cookie.contains("; Secure"), "over TLS the cookie is Secure: {cookie}");
    // Plain HTTP gets no answer; an unknown certificate is not trusted by curl (nor by ureq).
    let plain = link.replace("https://", "http://");
    let (code, o) = curl(&[&plain]);
    assert!(code != Some(0) || !o.contains("HTTP/1.1 303"), "plain HTTP is not served: {o}");
    let (code, _) = curl(&[link]);
    assert_ne!(code, Some(0), "curl without the certificate refuses it");
    assert_eq!(svc.stop(), 0);

    // Without TLS, only loopback.
    e.write("idflow.toml", &format!("{cfg}\n[service]\nlisten = \"0.0.0.0:0\"\n"));
    let o = e.ok(&["serve"], 1);
    assert!(o.stderr.contains("without TLS the API and the dashboard listen on loopback only"), "{o:?}");
}

#[test]
fn deletions_held_by_the_threshold_are_a_warning_not_a_failed_stage_and_clear_when_the_source_is_fixed() {
    use crate::service::{Service, SERVICE};
    let people: Vec<String> = (1..=6).map(|n| person(&format!("p{n}"), n, "")).collect();
    let e = small(&people);
    let cfg = e.read("idflow.toml");
    e.write("idflow.toml", &format!("{cfg}{SERVICE}\n[health]\ncheck_every = \"1s\"\n"));
    let svc = Service::start(&e);
    // Five of six people gone at once: more than the threshold (3).
    e.write("corp.ldif", &people[..1].join("\n"));
    e.ok(&["cycle", "--now", "--full", "--wait"], 2);
    let st =
        svc.wait_until(&e, "deletions_held", |st| st["alerts"].as_array().is_some_and(|a| a.iter().any(|a| a["kind"] == "deletions_held")));
    let kinds: Vec<&str> = st["alerts"].as_array().expect("alerts").iter().filter_map(|a| a["key"].as_str()).collect();
    assert_eq!(kinds, vec!["deletions_held:cloud"], "a held export is not a failed stage: {st}");
    assert_eq!(st["alerts"][0]["severity"], "warning");
    assert!(st["alerts"][0]["summary"].as_str().is_some_and(|m| m.contains("deletion threshold")), "{st}");
    assert_eq!(st["deletions_held"]["cloud"].as_str().map(|m| m.contains("would delete 5")), Some(true), "{st}");
    let text = e.ok(&["errors", "--category", "threshold"], 2).stdout;
    assert!(text.contains("Threshold (1)"), "{text}");
    // Fixed at the source: the alert resolves.
    e.write("corp.ldif", &people.join("\n"));
    e.ok(&["cycle", "--now", "--full", "--wait"], 0);
    svc.wait_until(&e, "the alert resolved", |st| st["alerts"].as_array().is_some_and(Vec::is_empty));
    assert_eq!(svc.stop(), 0);
}
