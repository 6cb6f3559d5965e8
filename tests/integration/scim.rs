//! The scim connector end to end: a real OpenLDAP in, the third-party scim2-server (PyPI) out,
//! both started by the project's scripts on 127.0.0.1.
use crate::common::{generated, repo, Env};
use crate::slapd::{config, Slapd};
use serde_json::Value as J;
use std::process::Command;

pub(crate) const TOKEN: &str = "test-token-1";

pub(crate) struct Scim {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Scim {
    pub(crate) fn start() -> Scim {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let out = Command::new("bash")
            .arg(repo().join("scripts/scim-server.sh"))
            .args(["start", &dir.path().display().to_string(), &port.to_string(), TOKEN])
            .output()
            .expect("scripts/scim-server.sh runs");
        assert!(
            out.status.success(),
            "scim2-server did not start (scripts/scim-server.sh install): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Scim { dir, port }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v2", self.port)
    }

    fn curl(&self, args: &[&str]) -> J {
        let out = Command::new("curl")
            .args(["-s", "-H", &format!("Authorization: Bearer {TOKEN}"), "-H", "Content-Type: application/scim+json"])
            .args(args)
            .output()
            .expect("curl");
        serde_json::from_slice(&out.stdout).unwrap_or(J::Null)
    }

    /// Every resource of a kind, page by page (the server caps a page).
    pub(crate) fn list(&self, what: &str) -> Vec<J> {
        let mut all = Vec::new();
        loop {
            let page = self.curl(&[&format!("{}/{what}?count=1000&startIndex={}", self.url(), all.len() + 1)]);
            let got = page["Resources"].as_array().cloned().unwrap_or_default();
            let total = page["totalResults"].as_u64().unwrap_or(0) as usize;
            let empty = got.is_empty();
            all.extend(got);
            if empty || all.len() >= total {
                return all;
            }
        }
    }

    /// Deletes a resource in the service itself, as someone working there would.
    pub(crate) fn delete(&self, what: &str, id: &str) {
        self.curl(&["-X", "DELETE", &format!("{}/{what}/{id}", self.url())]);
    }

    pub(crate) fn post(&self, what: &str, body: &J) -> J {
        self.curl(&["-X", "POST", "-d", &body.to_string(), &format!("{}/{what}", self.url())])
    }
}

impl Drop for Scim {
    fn drop(&mut self) {
        let _ =
            Command::new("bash").arg(repo().join("scripts/scim-server.sh")).args(["stop", &self.dir.path().display().to_string()]).output();
    }
}

pub(crate) fn env_for(s: &Slapd, scim: &Scim) -> Env {
    let mut e = Env::empty();
    e.vars.push(("CORP_LDAP_PASSWORD".into(), "secret".into()));
    e.vars.push(("CLOUD_SCIM_TOKEN".into(), TOKEN.into()));
    for f in ["users.toml", "groups.toml"] {
        e.write(&format!("rules/{f}"), &std::fs::read_to_string(repo().join("rules/openldap-to-cloud").join(f)).expect("rules"));
    }
    let cfg = config(&s.url(), &format!("ca_file = \"{}\"\n", s.ca())).replace(
        "[[connector]]\nname = \"cloud\"\ntype = \"file\"\npath = \"out/cloud.json\"\n",
        &format!("[[connector]]\nname = \"cloud\"\ntype = \"scim\"\nurl = \"{}\"\ntoken_env = \"CLOUD_SCIM_TOKEN\"\n", scim.url()),
    );
    e.write("idflow.toml", &cfg);
    e
}

/// The small test set-up's configuration with its cloud a SCIM service at `url`, set up by
/// `settings` (the lines after the URL: a token, an OAuth section, retries).
fn small_scim(url: &str, settings: &str) -> String {
    crate::common::SMALL_CONFIG.replace(
        "[[connector]]\nname = \"cloud\"\ntype = \"file\"\npath = \"out/cloud.json\"\n",
        &format!("[[connector]]\nname = \"cloud\"\ntype = \"scim\"\nurl = \"{url}\"\n{settings}"),
    )
}

/// The token from the environment, and no retry: an operation that fails fails at once.
const NO_RETRY: &str = "token_env = \"CLOUD_SCIM_TOKEN\"\nmax_retries = 0\n";

fn by_user_name(users: &[J], name: &str) -> Option<J> {
    users.iter().find(|u| u["userName"] == name).cloned()
}

#[test]
fn scim_end_to_end_from_openldap() {
    let seed = generated(1000, 100);
    let with_mail = seed.matches("\nmail: ").count();
    let s = Slapd::start(Some(&seed));
    let scim = Scim::start();
    // Two users exist in the service already: one with idflow's externalId, one by userName only.
    let pre1 = scim
        .post("Users", &serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "u000001@example.org"}));
    let pre2 = scim.post(
        "Users",
        &serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "someone-else", "externalId": idflow::generate::uuid_for(1, 2)}),
    );
    let e = env_for(&s, &scim);
    let r = e.json(&["run"], 0);
    assert_eq!(r["sync"]["adopted"], 2, "{}", r["sync"]);
    // One request per object: batches never hold an object and what references it.
    let x = &r["export"][0];
    let ops = x["added"].as_u64().unwrap_or(0) + x["updated"].as_u64().unwrap_or(0);
    // Plus the three discovery reads (ServiceProviderConfig, ResourceTypes, Schemas).
    assert!(x["requests"].as_u64().is_some_and(|n| n <= ops + 3), "requests {} for {ops} objects", x["requests"]);
    let users = scim.list("Users");
    assert_eq!(users.len(), with_mail, "every user once, nobody twice");
    let names: std::collections::HashSet<&str> = users.iter().filter_map(|u| u["userName"].as_str()).collect();
    assert_eq!(names.len(), users.len());
    assert_eq!(by_user_name(&users, "u000001@example.org").expect("adopted")["id"], pre1["id"]);
    assert_eq!(by_user_name(&users, "u000002@example.org").expect("adopted by externalId")["id"], pre2["id"]);
    // Attribute by attribute, as the rules say.
    let u5 = by_user_name(&users, "u000005@example.org").expect("u5");
    let ldap5 =
        s.search("ou=People,dc=example,dc=org", "(uid=u000005)", &["displayName", "title", "manager", "employeeNumber", "entryUUID"]);
    let field = |name: &str| ldap5.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string));
    assert_eq!(u5["externalId"].as_str(), field("entryUUID").as_deref());
    assert_eq!(u5["title"].as_str(), field("title").as_deref());
    assert_eq!(u5["active"], J::Bool(true));
    assert_eq!(u5["emails"][0]["value"], "u000005@example.org");
    let ent = &u5["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
    assert_eq!(ent["employeeNumber"].as_str(), field("employeeNumber").as_deref());
    let mgr_uid = field("manager")
        .and_then(|m| m.strip_prefix("uid=").and_then(|r| r.split(',').next()).map(str::to_string))
        .expect("u5 has a manager");
    let mgr = by_user_name(&users, &format!("{mgr_uid}@example.org")).expect("manager");
    assert_eq!(ent["manager"]["value"], mgr["id"], "manager is the SCIM id of the manager");
    let groups = scim.list("Groups");
    assert_eq!(groups.len(), 100);
    let g10 = groups.iter().find(|g| g["displayName"] == "group00010").expect("group00010");
    // Members in the service: the LDAP members that are there too (people without mail are out
    // of scope), nested groups included.
    let ldap_members = s
        .search("ou=Groups,dc=example,dc=org", "(cn=group00010)", &["member"])
        .lines()
        .filter_map(|l| l.strip_prefix("member: "))
        .filter(|m| match m.strip_prefix("uid=u").and_then(|r| r.get(..6)).and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n % 40 != 11,
            None => true,
        })
        .count();
    assert_eq!(g10["members"].as_array().map(Vec::len), Some(ldap_members), "members, nested group included");

    // Changes in LDAP; one run brings the service in line.
    let id12 = by_user_name(&users, "u000012@example.org").expect("u12")["id"].clone();
    s.modify(
        "dn: uid=u000010,ou=People,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Chief\n\n\
         dn: uid=u000012,ou=People,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid=u000012x\ndeleteoldrdn: 1\n\n\
         dn: uid=u000014,ou=People,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid=u000014\ndeleteoldrdn: 1\nnewsuperior: ou=Disabled,ou=People,dc=example,dc=org\n\n\
         dn: uid=u000013,ou=People,dc=example,dc=org\nchangetype: delete\n\n\
         dn: uid=newbie,ou=People,dc=example,dc=org\nchangetype: add\nobjectClass: inetOrgPerson\nuid: newbie\ncn: New Bie\nsn: Bie\nmail: newbie@example.org\n\n\
         dn: cn=group00010,ou=Groups,dc=example,dc=org\nchangetype: modify\nadd: member\nmember: uid=u000999,ou=People,dc=example,dc=org\n",
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let r = e.json(&["run"], 0);
    assert_eq!(r["import"][0]["mode"], "delta", "{}", r["import"]);
    let users = scim.list("Users");
    assert_eq!(by_user_name(&users, "u000010@example.org").expect("u10")["title"], "Chief");
    assert_eq!(by_user_name(&users, "u000012@example.org").expect("renamed")["id"], id12);
    assert_eq!(by_user_name(&users, "u000014@example.org").expect("moved")["active"], J::Bool(false), "moved into Disabled");
    assert!(by_user_name(&users, "u000013@example.org").is_none(), "deleted");
    assert!(by_user_name(&users, "newbie@example.org").is_some(), "added");
    let u999 = by_user_name(&users, "u000999@example.org").expect("u999")["id"].clone();
    let g10 = scim.list("Groups").into_iter().find(|g| g["displayName"] == "group00010").expect("g10");
    assert!(g10["members"].as_array().is_some_and(|m| m.iter().any(|x| x["value"] == u999)), "member added");

    // Nothing changed: no request that writes, and an empty plan.
    let r = e.json(&["run"], 0);
    assert_eq!(r["export"].as_array().map(Vec::len), Some(0), "{}", r["export"]);
    e.ok(&["plan", "--exit-code"], 0);
}

#[test]
fn a_soft_match_never_takes_over_an_object_another_source_owns() {
    let s = Slapd::start(Some(&generated(10, 1)));
    let scim = Scim::start();
    // u000003's userName is taken in the service by a user another source provisioned.
    let theirs = scim.post(
        "Users",
        &serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "u000003@example.org", "externalId": "hr-4711"}),
    );
    let e = env_for(&s, &scim);
    for _ in 0..2 {
        let r = e.json(&["run"], 2);
        let refused: Vec<&J> = r["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter(|x| x["message"].as_str().is_some_and(|m| m.starts_with("InvalidSoftMatch")))
            .collect();
        assert_eq!(refused.len(), 1, "{r}");
        let m = refused[0]["message"].as_str().unwrap_or_default();
        assert!(m.contains("\"hr-4711\"") && m.contains(&idflow::generate::uuid_for(1, 3)), "both identities named: {m}");
        let users = scim.list("Users");
        let u3: Vec<&J> = users.iter().filter(|u| u["userName"] == "u000003@example.org").collect();
        assert_eq!(u3.len(), 1);
        assert_eq!((&u3[0]["id"], &u3[0]["externalId"]), (&theirs["id"], &theirs["externalId"]), "untouched");
    }
}

/// Two people who would get the same userName: the plan flags it before anything is written;
/// the run creates one and the service refuses the other, an error that stays until fixed.
#[test]
fn a_user_name_two_people_would_share_is_flagged_by_the_plan() {
    let seed = generated(5, 1).replace("mail: u000004@Example.org", "mail: u000003@Example.org");
    let s = Slapd::start(Some(&seed));
    let scim = Scim::start();
    let e = env_for(&s, &scim);
    let p = e.ok(&["plan"], 2).stdout;
    assert!(p.contains("collision: cloud userName \"u000003@example.org\" would be held by 2 objects"), "{p}");
    assert!(p.contains("uid=u000003,") && p.contains("uid=u000004,"), "both sources named: {p}");
    assert!(scim.list("Users").is_empty(), "a plan writes nothing");
    let r = e.json(&["run"], 2);
    assert!(!r["errors"].as_array().expect("errors").is_empty(), "{r}");
    let users = scim.list("Users");
    assert_eq!(users.iter().filter(|u| u["userName"] == "u000003@example.org").count(), 1, "{users:?}");
    // Still flagged, and still an error, on the next run.
    e.ok(&["plan"], 2);
}

#[test]
fn scim_killed_mid_export_resumes_without_duplicates() {
    let seed = generated(1000, 20);
    let with_mail = seed.matches("\nmail: ").count();
    let s = Slapd::start(Some(&seed));
    let scim = Scim::start();
    let e = env_for(&s, &scim);
    for delay_ms in [600u64, 1200, 1800] {
        let mut child = e.command(&["apply"]).spawn().expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    e.ok(&["apply"], 0);
    let users = scim.list("Users");
    let names: std::collections::HashSet<&str> = users.iter().filter_map(|u| u["userName"].as_str()).collect();
    assert_eq!(names.len(), users.len(), "no duplicates");
    assert_eq!(users.len(), with_mail, "nothing lost");
    e.ok(&["plan", "--exit-code"], 0);
}

/// What the proxy does to one POST.
#[derive(Debug, Clone, Copy)]
enum Fault {
    TooMany(u64),
    ServerError,
    /// Hangs past the client's timeout without forwarding.
    HangBefore,
    /// Forwards (the server creates the object), then hangs: the retry meets a 409.
    HangAfter,
}

/// A fault-injecting HTTP proxy in front of the real server (faults the server cannot be made
/// to show): one request per connection, faults on POSTs from a script, everything else passed on.
fn fault_proxy(upstream: u16, script: Vec<Fault>) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let script = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(script)));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { continue };
            let script = script.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    let Ok(n) = client.read(&mut chunk) else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let Ok(n) = client.read(&mut chunk) else { return };
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                if head.starts_with("POST /token") {
                    // An OAuth2 token endpoint: client credentials by Basic auth.
                    let good =
                        format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "idflow:client-secret-1"));
                    let ok = head.lines().any(|l| l.to_ascii_lowercase().starts_with("authorization:") && l.trim_end().ends_with(&good))
                        && String::from_utf8_lossy(&buf[head_end..]).contains("grant_type=client_credentials");
                    let (status, body) = if ok {
                        ("200 OK", format!("{{\"access_token\":\"{TOKEN}\",\"token_type\":\"Bearer\",\"expires_in\":3600}}"))
                    } else {
                        ("401 Unauthorized", "{\"error\":\"invalid_client\"}".to_string())
                    };
                    let _ = client.write_all(
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    );
                    return;
                }
                let fault = if head.starts_with("POST ") { script.lock().ok().and_then(|mut s| s.pop_front()) } else { None };
                let reply = |c: &mut std::net::TcpStream, status: &str, extra: &str| {
                    let _ = c.write_all(format!("HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
                };
                match fault {
                    Some(Fault::TooMany(secs)) => return reply(&mut client, "429 Too Many Requests", &format!("Retry-After: {secs}\r\n")),
                    Some(Fault::ServerError) => return reply(&mut client, "500 Internal Server Error", ""),
                    Some(Fault::HangBefore) => {
                        std::thread::sleep(std::time::Duration::from_secs(3));
                        return;
                    }
                    _ => {}
                }
                // Forward, one request per connection.
                let head_fwd: String = head
                    .lines()
                    .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty())
                    .map(|l| format!("{l}\r\n"))
                    .collect::<String>()
                    + "Connection: close\r\n\r\n";
                let Ok(mut up) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else { return };
                let _ = up.write_all(head_fwd.as_bytes());
                let _ = up.write_all(&buf[head_end..]);
                let mut resp = Vec::new();
                let _ = up.read_to_end(&mut resp);
                if let Some(Fault::HangAfter) = fault {
                    std::thread::sleep(std::time::Duration::from_secs(3));
                    return;
                }
                let _ = client.write_all(&resp);
            });
        }
    });
    port
}

#[test]
fn scim_faults_are_retried_politely_and_nothing_is_duplicated() {
    let scim = Scim::start();
    let proxy = fault_proxy(
        scim.port,
        vec![Fault::TooMany(1), Fault::ServerError, Fault::ServerError, Fault::HangBefore, Fault::HangAfter, Fault::TooMany(1)],
    );
    let people: Vec<String> = (1..=20).map(|i| crate::common::person(&format!("f{i}"), i, "")).collect();
    let mut e = crate::common::small(&people);
    e.vars.push(("CLOUD_SCIM_TOKEN".into(), TOKEN.into()));
    let cfg = small_scim(
        &format!("http://127.0.0.1:{proxy}/v2"),
        "token_env = \"CLOUD_SCIM_TOKEN\"\ntimeout_seconds = 1\nmax_retries = 6\nconcurrency = 1\n",
    );
    e.write("idflow.toml", &cfg);
    let started = std::time::Instant::now();
    let o = e.ok(&["apply", "-v"], 0);
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "Retry-After was honored");
    assert!(o.stderr.contains("status=429") || o.stderr.contains("slow down"), "{o:?}");
    let users = scim.list("Users");
    let names: std::collections::HashSet<&str> = users.iter().filter_map(|u| u["userName"].as_str()).collect();
    assert_eq!(users.len(), 20, "every user once: {names:?}");
    assert_eq!(names.len(), 20);
    e.ok(&["plan", "--exit-code"], 0);
}

#[test]
fn a_target_that_keeps_failing_trips_the_circuit_breaker() {
    let scim = Scim::start();
    // Every create answers 500; no retries, so each fails at once.
    let proxy = fault_proxy(scim.port, (0..200).map(|_| Fault::ServerError).collect());
    let people: Vec<String> = (1..=60).map(|i| crate::common::person(&format!("c{i}"), i, "")).collect();
    let mut e = crate::common::small(&people);
    e.vars.push(("CLOUD_SCIM_TOKEN".into(), TOKEN.into()));
    let scim_at = |url: String| small_scim(&url, NO_RETRY).replace("deletion_threshold = 3", "deletion_threshold = 500");
    e.write("idflow.toml", &scim_at(format!("http://127.0.0.1:{proxy}/v2")));
    let r = e.json(&["apply"], 2);
    let x = &r["export"][0];
    assert!(x["stopped_after"].as_u64().is_some_and(|n| n >= 20), "{x}");
    assert!(x["failed"].as_u64().is_some_and(|n| n < 60), "the export stopped before trying everything: {x}");
    let stop =
        r["errors"].as_array().expect("errors").iter().filter(|m| m["message"].as_str().is_some_and(|m| m.contains("stopped: "))).count();
    assert_eq!(stop, 1, "one error says so: {r}");
    assert!(scim.list("Users").is_empty());
    // The service is well again: what was pending goes, once.
    e.write("idflow.toml", &scim_at(scim.url()));
    e.ok(&["apply"], 0);
    assert_eq!(scim.list("Users").len(), 60);
}

/// Someone deletes a user in the service; idflow adds it again, and the service gives it a new
/// id. What references it (a manager) never keeps naming the id that is gone: not while the
/// add fails, and not once it landed.
#[test]
fn a_user_deleted_in_the_service_comes_back_and_what_names_it_follows_its_new_id() {
    let scim = Scim::start();
    let proxy = fault_proxy(scim.port, vec![Fault::ServerError]);
    let boss = "manager: uid=boss,ou=People,dc=example,dc=org\n";
    let team =
        "dn: cn=team,ou=Groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: team\nentryUUID: 00000000-0000-4000-9000-000000000001\n\
                member: uid=boss,ou=People,dc=example,dc=org\nmember: uid=ann,ou=People,dc=example,dc=org\n";
    // Boss is his own manager.
    let people = [
        crate::common::person("boss", 1, boss),
        crate::common::person("ann", 2, boss),
        crate::common::person("bob", 3, boss),
        team.to_string(),
    ];
    let mut e = crate::common::small(&people);
    let ldif = people.join("\n");
    e.vars.push(("CLOUD_SCIM_TOKEN".into(), TOKEN.into()));
    // SCIM's manager is the enterprise extension's.
    let rules = crate::common::SMALL_RULES
        .replace("manager = \"mv.manager\"", "\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager\" = \"mv.manager\"");
    e.write("rules/rules.toml", &rules);
    e.write("rules/groups.toml", &std::fs::read_to_string(repo().join("rules/openldap-to-cloud/groups.toml")).expect("group rules"));
    let scim_at = |url: String| small_scim(&url, NO_RETRY);
    e.write("idflow.toml", &scim_at(scim.url()));
    e.ok(&["apply"], 0);
    let manager_of = |users: &[J], name: &str| {
        by_user_name(users, &format!("{name}@example.org")).expect(name)["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]
            ["manager"]["value"]
            .clone()
    };
    let members = || -> Vec<J> {
        let groups = scim.list("Groups");
        let team = groups.iter().find(|g| g["displayName"] == "team").expect("the team group");
        team["members"].as_array().into_iter().flatten().map(|m| m["value"].clone()).collect()
    };
    let users = scim.list("Users");
    let old = by_user_name(&users, "boss@example.org").expect("boss")["id"].clone();
    assert_eq!(manager_of(&users, "ann"), old);
    assert!(members().contains(&old));
    scim.delete("Users", old.as_str().expect("an id"));

    // The add fails (the service answers 500 once): nothing else is sent. What references
    // boss is left as the service keeps it (a read may have missed an object that is there).
    e.write("idflow.toml", &scim_at(format!("http://127.0.0.1:{proxy}/v2")));
    let r = e.json(&["apply"], 2);
    assert_eq!(r["export"][0]["failed"], 1, "{}", r["export"]);
    assert_eq!(r["export"][0]["updated"], 0, "{}", r["export"]);
    let users = scim.list("Users");
    assert!(by_user_name(&users, "boss@example.org").is_none());

    // The add lands with a new id, and the managers follow it in the same run.
    e.write("idflow.toml", &scim_at(scim.url()));
    e.ok(&["apply"], 0);
    let users = scim.list("Users");
    let new = by_user_name(&users, "boss@example.org").expect("boss is back")["id"].clone();
    assert_ne!(new, old);
    assert_eq!(users.iter().filter(|u| u["userName"] == "boss@example.org").count(), 1, "boss once");
    for name in ["boss", "ann", "bob"] {
        assert_eq!(manager_of(&users, name), new, "{name}'s manager");
    }
    assert!(members().contains(&new) && members().len() == 2, "the team's members: {:?}", members());
    e.ok(&["plan", "--exit-code"], 0);

    // Deleted again, and added again at once, as cat joins with boss as her manager: one run,
    // and nothing left for the next. Cat is added after boss, with his new id (not sent the old
    // one and corrected): the updates are ann's, bob's, the team's and boss's own manager.
    scim.delete("Users", new.as_str().expect("an id"));
    e.write("corp.ldif", &format!("{ldif}\n{}", crate::common::person("cat", 4, boss)));
    let r = e.json(&["apply"], 0);
    assert_eq!((&r["export"][0]["added"], &r["export"][0]["updated"]), (&J::from(2), &J::from(4)), "{}", r["export"]);
    let users = scim.list("Users");
    let again = by_user_name(&users, "boss@example.org").expect("boss is back again")["id"].clone();
    assert_ne!(again, new);
    for name in ["boss", "ann", "bob", "cat"] {
        assert_eq!(manager_of(&users, name), again, "{name}'s manager, in the run that added boss again");
    }
    assert!(members().contains(&again) && members().len() == 2, "the team's members: {:?}", members());
    e.ok(&["plan", "--exit-code"], 0);
}

#[test]
fn scim_oauth2_client_credentials() {
    let scim = Scim::start();
    let proxy = fault_proxy(scim.port, vec![]);
    let people: Vec<String> = (1..=3).map(|i| crate::common::person(&format!("o{i}"), i, "")).collect();
    let mut e = crate::common::small(&people);
    let cfg = |secret_var: &str| {
        small_scim(
            &format!("http://127.0.0.1:{proxy}/v2"),
            &format!(
                "[connector.oauth]\ntoken_url = \"http://127.0.0.1:{proxy}/token\"\nclient_id = \"idflow\"\nclient_secret_env = \"{secret_var}\"\nscope = \"scim\"\n"
            ),
        )
    };
    e.vars.push(("GOOD_SECRET".into(), "client-secret-1".into()));
    e.vars.push(("BAD_SECRET".into(), "client-secret-2".into()));
    e.write("idflow.toml", &cfg("BAD_SECRET"));
    let o = e.run(&["apply"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("access_token") && o.stderr.contains("invalid_client") && !o.stderr.contains("client-secret"), "{o:?}");
    e.write("idflow.toml", &cfg("GOOD_SECRET"));
    e.ok(&["apply"], 0);
    assert_eq!(scim.list("Users").len(), 3);
}
