//! Pass-through authentication's agent and relay as separate processes: agents dial out to the
//! relay over mutual TLS (certificates from a test CA made with openssl), the relay answers
//! RADIUS with what one agent's check against a real slapd said, an agent killed with -9 is
//! replaced by the other and comes back, an agent without a certificate the CA signed is
//! refused, and no agent ever listens.
use crate::common::Env;
use crate::slapd::{config, Slapd};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};

fn openssl(e: &Env, args: &[&str]) {
    let o = Command::new("openssl").args(args).current_dir(e.path("")).output().expect("openssl");
    assert!(o.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// A self-signed certificate and key (`NAME.pem`, `NAME.key`) with extra `openssl req` arguments.
fn self_signed(e: &Env, name: &str, extra: &[&str]) {
    let (subject, key, out) = (format!("/CN={name}"), format!("{name}.key"), format!("{name}.pem"));
    let mut args = vec!["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subject, "-keyout", &key, "-out", &out];
    args.extend_from_slice(extra);
    openssl(e, &args);
}

/// A CA, the relay's certificate (for 127.0.0.1), an agent's, and a rogue one no CA signed.
fn certificates(e: &Env) {
    self_signed(e, "ca", &[]);
    for (name, ext) in [("relay", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"), ("agent", "extendedKeyUsage=clientAuth\n")]
    {
        e.write(&format!("{name}.ext"), &format!("basicConstraints=CA:FALSE\n{ext}"));
        let (key, csr, pem, extfile) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
        openssl(e, &["req", "-newkey", "rsa:2048", "-nodes", "-subj", &format!("/CN={name}"), "-keyout", &key, "-out", &csr]);
        openssl(
            e,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &extfile,
                "-out",
                &pem,
            ],
        );
    }
    self_signed(e, "rogue", &["-addext", "extendedKeyUsage=clientAuth"]);
    for k in ["ca.key", "relay.key", "agent.key", "rogue.key"] {
        std::fs::set_permissions(e.path(k), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

struct Proc {
    child: Child,
    log: std::path::PathBuf,
}

impl Proc {
    fn start(e: &Env, name: &str, args: &[&str]) -> Proc {
        let log = e.path(&format!("{name}.log"));
        let f = std::fs::File::create(&log).expect("log");
        let child = e.command(args).stdout(Stdio::null()).stderr(f).spawn().expect("idflow");
        Proc { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The TCP sockets this process listens on (from /proc).
    fn listening(&self) -> usize {
        let mut listening = std::collections::HashSet::new();
        for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
            for line in std::fs::read_to_string(f).unwrap_or_default().lines().skip(1) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                if cols.get(3) == Some(&"0A") {
                    if let Some(inode) = cols.get(9) {
                        listening.insert(format!("socket:[{inode}]"));
                    }
                }
            }
        }
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| {
                d.flatten()
                    .filter_map(|f| std::fs::read_link(f.path()).ok())
                    .filter(|l| listening.contains(&l.display().to_string()))
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PEOPLE: &str = "dn: ou=People,dc=example,dc=org\nobjectClass: organizationalUnit\nou: People\n\n\
    dn: uid=ada,ou=People,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada\nsn: Lovelace\nmail: ada@example.org\nuserPassword: Analytical-Engine-1843\n";

const RADIUS_SECRET: &str = "radius-shared-secret-0123456789";

/// slapd with Ada, certificates, and the RADIUS client's secret.
fn setup() -> (Slapd, Env) {
    let s = Slapd::start(Some(PEOPLE));
    let mut e = Env::empty();
    e.vars.push(("CORP_LDAP_PASSWORD".into(), "secret".into()));
    certificates(&e);
    e.write("rules/none.toml", "");
    e.write("radius.secret", &format!("{RADIUS_SECRET}\n"));
    std::fs::set_permissions(e.path("radius.secret"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    (s, e)
}

#[test]
fn agents_dial_out_to_the_relay_over_mutual_tls_and_one_killed_is_replaced() {
    let (s, e) = setup();
    let secret = RADIUS_SECRET;
    let (agents_port, radius, hook, metrics) =
        (crate::pta::free_tcp_port(), crate::pta::free_udp_port(), crate::pta::free_tcp_port(), crate::pta::free_tcp_port());
    e.write("hook.key", "hmac-key-for-signed-calls\n");
    std::fs::set_permissions(e.path("hook.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let source = config(&s.url(), &format!("ca_file = \"{}\"\n", s.ca()));
    e.write(
        "relay.toml",
        &format!(
            "{source}\n[pta]\ndeadline = \"5s\"\nrelay_listen = \"127.0.0.1:{agents_port}\"\ntls_ca = \"ca.pem\"\ntls_cert = \"relay.pem\"\ntls_key = \"relay.key\"\n\
             radius_listen = \"127.0.0.1:{radius}\"\nhook_listen = \"127.0.0.1:{hook}\"\nhook_secret_file = \"hook.key\"\nhook_tls_cert = \"relay.pem\"\nhook_tls_key = \"relay.key\"\nrate_per_second = 10\nheartbeat = \"1s\"\n\
             metrics_listen = \"127.0.0.1:{metrics}\"\n[[pta.radius_client]]\naddress = \"127.0.0.1\"\nsecret_file = \"radius.secret\"\n"
        ),
    );
    let agent_cfg = |cert: &str| {
        format!("{source}\n[pta]\nconnector = \"corp\"\nheartbeat = \"1s\"\nrelay = \"127.0.0.1:{agents_port}\"\ntls_ca = \"ca.pem\"\ntls_cert = \"{cert}.pem\"\ntls_key = \"{cert}.key\"\n")
    };
    e.write("idflow.toml", &agent_cfg("agent"));
    e.write("rogue.toml", &agent_cfg("rogue"));

    let relay = Proc::start(&e, "relay", &["--config", "relay.toml", "pta", "relay"]);
    crate::service::eventually(|| relay.log().contains("RADIUS listening"), || format!("the relay did not start:\n{}", relay.log()));
    let gauge = format!("idflow_pta_agents_connected{{relay=\"127.0.0.1:{agents_port}\"}}");
    let scrape = || {
        let out = Command::new("curl").args(["-s", &format!("http://127.0.0.1:{metrics}/metrics")]).output().expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(scrape().contains(&format!("{gauge} 0\n")), "{}", scrape());
    // No agent yet: unreachable, at once.
    let o = crate::pta::radclient(radius, secret, "ada", "Analytical-Engine-1843");
    assert!(o.contains("Received Access-Reject") && o.contains("unreachable"), "{o}");

    let a1 = Proc::start(&e, "agent1", &["pta", "agent"]);
    let mut a2 = Proc::start(&e, "agent2", &["pta", "agent"]);
    crate::service::eventually(
        || relay.log().contains("connected=2"),
        || format!("two agents:\n{}\n{}\n{}", relay.log(), a1.log(), a2.log()),
    );
    for _ in 0..4 {
        let o = crate::pta::radclient(radius, secret, "ada", "Analytical-Engine-1843");
        assert!(o.contains("Received Access-Accept"), "{o}");
    }
    let o = crate::pta::radclient(radius, secret, "ada", "wrong");
    assert!(o.contains("Received Access-Reject") && o.contains("invalid_credentials"), "{o}");
    assert_eq!(a1.listening(), 0, "an agent never listens");
    let m = scrape();
    assert!(m.contains(&format!("{gauge} 2\n")), "{m}");
    assert!(m.contains("idflow_pta_requests_total{front_end=\"radius\",result=\"success\"} 4"), "{m}");
    // The hook through the relay, over HTTPS only; one client over its rate (10 a second) is told to wait.
    let body = |n: u32| format!(r#"{{"username":"ada","password":"Analytical-Engine-1843","client_ip":"198.51.100.7","n":{n}}}"#);
    let (base, ca) = (format!("https://127.0.0.1:{hook}"), e.path("ca.pem").display().to_string());
    let call = |n: u32| crate::pta::verify_at(&base, &["--cacert", &ca], "hmac-key-for-signed-calls", &body(n), None);
    let (status, answer) = call(0);
    assert!(status.contains("200") && answer.contains(r#""verified":true"#), "{status} {answer}");
    let (status, _) = crate::pta::verify(hook, "hmac-key-for-signed-calls", &body(100), None);
    assert!(!status.contains("200"), "plain HTTP is not served: {status:?}");
    let statuses: Vec<String> = (1..=40).map(|n| call(n).0).collect();
    assert!(statuses.iter().any(|s| s.contains("429")), "{statuses:?}");
    assert!(statuses.iter().filter(|s| s.contains("200")).count() >= 9, "{statuses:?}");
    assert!(relay.listening() >= 1, "the relay does (a check of the check)");

    // An agent that stops answering (SIGSTOP: its connection stays open) is dropped after
    // three missed heartbeats, not counted and not sent passwords; it dials again when it wakes.
    let pid = i32::try_from(a1.child.id()).expect("pid");
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    crate::service::eventually(|| relay.log().contains("answered no ping"), || relay.log());
    assert!(scrape().contains(&format!("{gauge} 1\n")), "{}", scrape());
    for _ in 0..2 {
        let o = crate::pta::radclient(radius, secret, "ada", "Analytical-Engine-1843");
        assert!(o.contains("Received Access-Accept"), "{o}");
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    crate::service::eventually(|| scrape().contains(&format!("{gauge} 2\n")), || format!("{}\n{}", relay.log(), a1.log()));

    // One agent killed with -9: the other answers; it comes back when started again.
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(i32::try_from(a2.child.id()).expect("pid"), libc::SIGKILL) }, 0);
    let _ = a2.child.wait();
    crate::service::eventually(|| relay.log().contains("agent disconnected"), || relay.log());
    assert!(scrape().contains(&format!("{gauge} 1\n")), "{}", scrape());
    for _ in 0..3 {
        let o = crate::pta::radclient(radius, secret, "ada", "Analytical-Engine-1843");
        assert!(o.contains("Received Access-Accept"), "{o}");
    }
    a2 = Proc::start(&e, "agent2b", &["pta", "agent"]);
    crate::service::eventually(|| relay.log().matches("connected=2").count() >= 2, || relay.log());

    // An agent whose certificate no CA signed is refused at the handshake.
    let rogue = Proc::start(&e, "rogue", &["--config", "rogue.toml", "pta", "agent"]);
    crate::service::eventually(|| relay.log().contains("TLS handshake failed"), || format!("{}\n{}", relay.log(), rogue.log()));
    assert!(!relay.log().contains("connected=3"), "{}", relay.log());
    for log in [relay.log(), a1.log(), a2.log()] {
        assert!(!log.contains("Analytical-Engine-1843") && !log.contains("secret"), "no secret in a log:\n{log}");
    }

    // A relay with a connector of its own (it would go unused) or with no front end is refused.
    let relay_cfg = e.read("relay.toml");
    e.write("relay-checks.toml", &relay_cfg.replace("[pta]\n", "[pta]\nconnector = \"corp\"\n"));
    let o = e.ok(&["--config", "relay-checks.toml", "pta", "relay"], 1);
    assert!(o.stderr.contains("a relay checks no password itself"), "{o:?}");
    let bare: String =
        relay_cfg.lines().filter(|l| !l.starts_with("radius_listen") && !l.starts_with("hook_listen")).map(|l| format!("{l}\n")).collect();
    e.write("relay-bare.toml", &bare);
    let o = e.ok(&["--config", "relay-bare.toml", "pta", "relay"], 1);
    assert!(o.stderr.contains("nothing would ask the agents"), "{o:?}");
    // An agent never listens, not even for Prometheus.
    e.write("agent-metrics.toml", &format!("{}metrics_listen = \"127.0.0.1:{}\"\n", agent_cfg("agent"), crate::pta::free_tcp_port()));
    let o = e.ok(&["--config", "agent-metrics.toml", "pta", "agent"], 1);
    assert!(o.stderr.contains("an agent never listens"), "{o:?}");
}

/// `idflow serve` with `[pta] relay_listen`: the relay inside the service, whose health raises
/// "no agent connected" (and not "directory unreachable") while none is, resolves it once one
/// dials in, and counts the agents on the service's /metrics.
#[test]
fn a_relay_inside_the_service_raises_an_alert_while_no_agent_is_connected() {
    use crate::service::{Service, SERVICE};
    let (s, e) = setup();
    let secret = RADIUS_SECRET;
    let (agents_port, radius) = (crate::pta::free_tcp_port(), crate::pta::free_udp_port());
    let source = config(&s.url(), &format!("ca_file = \"{}\"\n", s.ca()));
    let tls = "tls_ca = \"ca.pem\"\ntls_cert = \"relay.pem\"\ntls_key = \"relay.key\"\n";
    e.write(
        "idflow.toml",
        &format!(
            "{source}{SERVICE}\n[health]\ncheck_every = \"1s\"\npta_no_agent_after = \"1s\"\n\n[pta]\ndeadline = \"5s\"\n\
             relay_listen = \"127.0.0.1:{agents_port}\"\n{tls}radius_listen = \"127.0.0.1:{radius}\"\n\
             [[pta.radius_client]]\naddress = \"127.0.0.1\"\nsecret_file = \"radius.secret\"\n"
        ),
    );
    let tls = tls.replace("relay.", "agent.");
    e.write("agent.toml", &format!("{source}\n[pta]\nconnector = \"corp\"\nrelay = \"127.0.0.1:{agents_port}\"\n{tls}"));
    let svc = Service::start(&e);
    let alerts = |st: &serde_json::Value| -> Vec<String> {
        st["alerts"].as_array().map(|a| a.iter().filter_map(|a| a["kind"].as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    svc.wait_until(&e, "no agent connected", |st| alerts(st).iter().any(|k| k == "pta_no_agent_connected"));
    let o = crate::pta::radclient(radius, secret, "ada", "Analytical-Engine-1843");
    assert!(o.contains("Received Access-Reject") && o.contains("unreachable"), "{o}");
    let agent = Proc::start(&e, "agent", &["--config", "agent.toml", "pta", "agent"]);
    let st = svc.wait_until(&e, "the alert resolved", |st| !alerts(st).iter().any(|k| k == "pta_no_agent_connected"));
    assert!(!alerts(&st).iter().any(|k| k == "pta_directory_unreachable"), "no agent is not the directory's fault: {st}");
    assert_eq!(st["pta_agents"], 1, "{st}");
    let shown = e.ok(&["status"], 0).stdout;
    assert!(shown.contains("pta       : relay, 1 agent(s) connected"), "{shown}");
    let o = crate::pta::radclient(radius, secret, "ada", "Analytical-Engine-1843");
    assert!(o.contains("Received Access-Accept"), "{o}\n{}", agent.log());
    let file: serde_json::Value = serde_json::from_str(&e.read("state/idflow.db.service.json")).expect("service file");
    let out = Command::new("curl")
        .args(["-s", "-H", &format!("Authorization: Bearer {}", file["token"].as_str().expect("token"))])
        .arg(format!("http://{}/metrics", file["address"].as_str().expect("address")))
        .output()
        .expect("curl");
    let m = String::from_utf8_lossy(&out.stdout);
    assert!(m.contains(&format!("idflow_pta_agents_connected{{relay=\"127.0.0.1:{agents_port}\"}} 1\n")), "{m}");
    assert_eq!(svc.stop(), 0);
}
