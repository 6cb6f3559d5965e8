//! Pass-through authentication's password check against the real Samba AD DC: users put in
//! every state the DC can be put in, checked with `idflow pta check` over LDAPS, a server that
//! is down first in the list, and a password never in clear.
use crate::common::Env;
use crate::drsr::{pwd, samba_tool};
use crate::samba_ad::{dc, env_for, ldap, tag};

const PW: &str = "Pta-Passw0rd!1";

/// `idflow pta check USER` with `password` on standard input: (exit code, result word).
fn check(e: &Env, user: &str, password: &str) -> (i32, String) {
    use std::io::Write as _;
    let mut c = e.command(&["pta", "check", user]);
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("idflow");
    child.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes()).expect("write");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        password.len() < 6 || (!stdout.contains(password) && !String::from_utf8_lossy(&out.stderr).contains(password)),
        "the password is never printed"
    );
    (out.status.code().unwrap_or(-1), stdout.split_whitespace().next().unwrap_or_default().to_string())
}

/// The domain's lockout threshold, set for a test and put back to none after it.
struct Lockout;

impl Lockout {
    fn set(n: u32) -> Lockout {
        samba_tool(&["domain", "passwordsettings", "set", &format!("--account-lockout-threshold={n}")]);
        Lockout
    }
}

impl Drop for Lockout {
    fn drop(&mut self) {
        samba_tool(&["domain", "passwordsettings", "set", "--account-lockout-threshold=0"]);
    }
}

#[test]
fn pta_check_maps_every_account_state_the_dc_can_show_and_fails_over() {
    let (_turn, dir) = dc();
    let t = tag();
    let ou = format!("OU=pta{t},DC=example,DC=test");
    let user = |name: &str, extra: &str| {
        format!(
            "dn: CN={name}{t},{ou}\nchangetype: add\nobjectClass: user\nsAMAccountName: {name}{t}\nuserPrincipalName: {name}{t}@example.test\nunicodePwd:: {}\n{extra}\n",
            pwd(PW)
        )
    };
    let mut ldif = format!("dn: {ou}\nchangetype: add\nobjectClass: organizationalUnit\n\n");
    ldif.push_str(&user("ok", "userAccountControl: 512\n"));
    ldif.push_str(&user("off", "userAccountControl: 514\n"));
    ldif.push_str(&user("old", "userAccountControl: 512\naccountExpires: 116444736000000000\n"));
    ldif.push_str(&user("new", "userAccountControl: 512\npwdLastSet: 0\n"));
    ldif.push_str(&user("night", "userAccountControl: 512\nlogonHours:: AAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"));
    ldif.push_str(&user("lock", "userAccountControl: 512\n"));
    ldap(&dir, "ldapmodify", &ldif);

    let e = env_for(&dir, &ou, "ldaps://127.0.0.1:636");
    let cfg = e.read("idflow.toml");
    e.write("idflow.toml", &format!("{cfg}\n[pta]\nconnector = \"ad\"\n"));

    let ok = format!("ok{t}");
    assert_eq!(check(&e, &ok, PW), (0, "success".into()));
    assert_eq!(check(&e, &format!("ok{t}@example.test"), PW), (0, "success".into()), "by userPrincipalName");
    assert_eq!(check(&e, &ok, "wrong"), (2, "invalid_credentials".into()));
    assert_eq!(check(&e, &format!("nobody{t}"), PW), (2, "invalid_credentials".into()), "an unknown user reads as a wrong password");
    assert_eq!(check(&e, &ok, ""), (2, "invalid_credentials".into()), "an empty password is never an (unauthenticated) bind");
    assert_eq!(check(&e, "*", PW), (2, "invalid_credentials".into()), "a filter in the name finds no one");
    // States show only with the right password, as AD does.
    assert_eq!(check(&e, &format!("off{t}"), PW), (2, "account_disabled".into()));
    assert_eq!(check(&e, &format!("off{t}"), "wrong"), (2, "invalid_credentials".into()));
    assert_eq!(check(&e, &format!("old{t}"), PW), (2, "account_expired".into()));
    assert_eq!(check(&e, &format!("new{t}"), PW), (2, "must_change_password".into()));
    assert_eq!(check(&e, &format!("new{t}"), "wrong"), (2, "invalid_credentials".into()));
    assert_eq!(check(&e, &format!("night{t}"), PW), (2, "logon_hours".into()));
    {
        let _lockout = Lockout::set(3);
        let lock = format!("lock{t}");
        for _ in 0..3 {
            assert_eq!(check(&e, &lock, "wrong").1, "invalid_credentials");
        }
        // Samba says 775 even to a wrong password once the account is locked.
        assert_eq!(check(&e, &lock, PW), (2, "locked_out".into()));
        assert_eq!(check(&e, &lock, "wrong"), (2, "locked_out".into()));
    }

    // A server that is down first in the list: the next one answers.
    e.write(
        "idflow.toml",
        &format!(
            "{}\n[pta]\nconnector = \"ad\"\nfailover_urls = [\"ldaps://127.0.0.1:636\"]\n",
            cfg.replace("ldaps://127.0.0.1:636", "ldaps://127.0.0.1:1")
        ),
    );
    assert_eq!(check(&e, &ok, PW), (0, "success".into()), "the failover URL answered");
    // Nothing answers: unreachable, exit 1.
    e.write("idflow.toml", &format!("{}\n[pta]\nconnector = \"ad\"\n", cfg.replace("ldaps://127.0.0.1:636", "ldaps://127.0.0.1:1")));
    assert_eq!(check(&e, &ok, PW), (1, "unreachable".into()));
    // Never in clear.
    e.write(
        "idflow.toml",
        &format!(
            "{}\n[pta]\nconnector = \"ad\"\n",
            cfg.replace("url = \"ldaps://127.0.0.1:636\"", "url = \"ldap://127.0.0.1:389\"\nstarttls = false")
        ),
    );
    let o = e.run(&["pta", "check", &ok]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("passwords are checked over LDAPS or StartTLS only"), "{o:?}");
}

/// `idflow pta serve` as a child process (killed when dropped).
struct PtaServer {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl PtaServer {
    fn start(e: &Env) -> PtaServer {
        let log = e.path("pta.log");
        let f = std::fs::File::create(&log).expect("log");
        let child = e.command(&["pta", "serve"]).stdout(std::process::Stdio::null()).stderr(f).spawn().expect("idflow pta serve");
        let s = PtaServer { child, log };
        crate::service::eventually(
            || s.log().contains("password-verification hook listening") && s.log().contains("RADIUS listening"),
            || format!("pta serve did not start:\n{}", s.log()),
        );
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PtaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub(crate) fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// radclient (Debian's freeradius-utils) sending one Access-Request with PAP and a
/// Message-Authenticator: its output.
pub(crate) fn radclient(port: u16, secret: &str, user: &str, password: &str) -> String {
    use std::io::Write as _;
    // Three tries of 5 s, as a NAS retries: a retransmission is answered from the service's
    // cache, never checked twice (the tests count the checks in /metrics).
    let mut c = std::process::Command::new("radclient")
        .args(["-x", "-r", "3", "-t", "5", &format!("127.0.0.1:{port}"), "auth", secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("radclient (apt-get install freeradius-utils): .ci/run installs it");
    let line = format!("User-Name = \"{user}\", User-Password = \"{password}\", Message-Authenticator = 0x00\n");
    c.stdin.take().expect("stdin").write_all(line.as_bytes()).expect("write");
    let out = c.wait_with_output().expect("radclient");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A signed call to the hook's /v1/verify: (HTTP status line, body).
pub(crate) fn verify(port: u16, key: &str, body: &str, timestamp: Option<u64>) -> (String, String) {
    verify_at(&format!("http://127.0.0.1:{port}"), &[], key, body, timestamp)
}

/// A signed call to `base`/v1/verify, with extra curl arguments (`--cacert`, ...).
pub(crate) fn verify_at(base: &str, curl: &[&str], key: &str, body: &str, timestamp: Option<u64>) -> (String, String) {
    use hmac::{KeyInit, Mac};
    let ts = timestamp
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
        .to_string();
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.as_bytes()).expect("key");
    m.update(format!("{ts}.{body}").as_bytes());
    let sig = hex::encode(m.finalize().into_bytes());
    curl_at(&format!("{base}/v1/verify"), curl, &[&format!("X-Idflow-Timestamp: {ts}"), &format!("X-Idflow-Signature: {sig}")], body)
}

fn curl_post(port: u16, headers: &[&str], path: &str, body: &str) -> (String, String) {
    curl_at(&format!("http://127.0.0.1:{port}{path}"), &[], headers, body)
}

/// A JSON POST with curl: (status line, body).
fn curl_at(url: &str, curl: &[&str], headers: &[&str], body: &str) -> (String, String) {
    let mut c = std::process::Command::new("curl");
    c.args(["-s", "-i", "-X", "POST", "-H", "content-type: application/json"]).args(curl);
    for h in headers {
        c.args(["-H", h]);
    }
    let out = c.arg("--data-binary").arg(body).arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.lines().next().unwrap_or_default().trim().to_string();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

/// badPwdCount and lockoutTime of a user, as the DC has them.
fn bad_password_state(dir: &std::path::Path, sam: &str) -> (u32, u64) {
    let out = std::process::Command::new("ldapsearch")
        .args(["-x", "-LLL", "-H", "ldaps://127.0.0.1", "-D", "Administrator@example.test", "-w", crate::samba_ad::ADMIN_PW])
        .args(["-b", "DC=example,DC=test", &format!("(sAMAccountName={sam})"), "badPwdCount", "lockoutTime"])
        .env("LDAPTLS_CACERT", dir.join("ca.pem"))
        .output()
        .expect("ldapsearch");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let value =
        |a: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{a}: "))).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0);
    (u32::try_from(value("badPwdCount")).unwrap_or(u32::MAX), value("lockoutTime"))
}

#[test]
fn radius_and_the_hook_check_passwords_and_200_wrong_ones_never_lock_the_ad_account() {
    use std::os::unix::fs::PermissionsExt;
    let (_turn, dir) = dc();
    let t = tag();
    let ou = format!("OU=ptafe{t},DC=example,DC=test");
    let user = |name: &str, extra: &str| {
        format!(
            "dn: CN={name}{t},{ou}\nchangetype: add\nobjectClass: user\nsAMAccountName: {name}{t}\nuserPrincipalName: {name}{t}@example.test\nunicodePwd:: {}\nuserAccountControl: 512\n{extra}\n",
            pwd(PW)
        )
    };
    let mut ldif = format!("dn: {ou}\nchangetype: add\nobjectClass: organizationalUnit\n\n");
    ldif.push_str(&user("ok", ""));
    ldif.push_str(&user("new", "pwdLastSet: 0\n"));
    ldif.push_str(&user("target", ""));
    ldap(&dir, "ldapmodify", &ldif);
    let _lockout = Lockout::set(5);

    let e = env_for(&dir, &ou, "ldaps://127.0.0.1:636");
    let (radius, hook, metrics) = (free_udp_port(), free_tcp_port(), free_tcp_port());
    let secret = "radius-shared-secret-0123456789";
    for (f, v) in [("radius.secret", secret), ("okta.auth", "Bearer okta-calls-with-this"), ("hook.key", "hmac-key-for-signed-calls")] {
        e.write(f, &format!("{v}\n"));
        std::fs::set_permissions(e.path(f), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let cfg = e.read("idflow.toml");
    e.write(
        "idflow.toml",
        &format!(
            "{cfg}\n[pta]\nconnector = \"ad\"\nradius_listen = \"127.0.0.1:{radius}\"\nhook_listen = \"127.0.0.1:{hook}\"\n\
             okta_authorization_file = \"okta.auth\"\nhook_secret_file = \"hook.key\"\nmetrics_listen = \"127.0.0.1:{metrics}\"\n\
             [[pta.radius_client]]\naddress = \"127.0.0.1\"\nsecret_file = \"radius.secret\"\n"
        ),
    );
    let srv = PtaServer::start(&e);
    assert!(
        srv.log().contains("domain_threshold=5") && srv.log().contains("user_budget=2"),
        "the domain's threshold was read:\n{}",
        srv.log()
    );

    // RADIUS, through Debian's radclient.
    let ok = format!("ok{t}");
    let o = radclient(radius, secret, &ok, PW);
    assert!(o.contains("Received Access-Accept") && o.contains("Reply-Message = \"success\""), "{o}");
    let o = radclient(radius, secret, &ok, "wrong");
    assert!(o.contains("Received Access-Reject") && o.contains("invalid_credentials"), "{o}");
    let o = radclient(radius, secret, &format!("new{t}"), PW);
    assert!(o.contains("Received Access-Reject") && o.contains("must_change_password"), "{o}");
    let o = radclient(radius, "not-the-secret", &ok, PW);
    assert!(!o.contains("Received Access"), "a wrong shared secret gets no answer: {o}");
    assert!(srv.log().contains("does not verify: dropped"), "{}", srv.log());
    // radtest too (it adds a Message-Authenticator).
    let o = std::process::Command::new("radtest")
        .args(["-t", "pap", &ok, PW, &format!("127.0.0.1:{radius}"), "0", secret])
        .output()
        .expect("radtest (freeradius-utils)");
    let o = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.contains("Received Access-Accept"), "{o}");
    // A request without a Message-Authenticator (Blast-RADIUS's way in) gets no answer.
    let o = {
        use std::io::Write as _;
        let mut c = std::process::Command::new("radclient")
            .args(["-x", "-r", "1", "-t", "2", &format!("127.0.0.1:{radius}"), "auth", secret])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("radclient");
        c.stdin.take().expect("stdin").write_all(format!("User-Name = \"{ok}\", User-Password = \"{PW}\"\n").as_bytes()).expect("write");
        let out = c.wait_with_output().expect("radclient");
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    assert!(!o.contains("Received Access"), "{o}");
    assert!(srv.log().contains("NoMessageAuthenticator"), "{}", srv.log());
    // What Prometheus reads from `pta serve` ([pta] metrics_listen): the answers above, by result.
    let out = std::process::Command::new("curl").args(["-s", &format!("http://127.0.0.1:{metrics}/metrics")]).output().expect("curl");
    let m = String::from_utf8_lossy(&out.stdout);
    for line in [
        "idflow_pta_requests_total{front_end=\"radius\",result=\"success\"} 2",
        "idflow_pta_requests_total{front_end=\"radius\",result=\"invalid_credentials\"} 1",
        "idflow_pta_requests_total{front_end=\"radius\",result=\"must_change_password\"} 1",
    ] {
        assert!(m.contains(line), "{line} in:\n{m}");
    }
    assert!(!m.contains("idflow_pta_agents_connected"), "no relay here: {m}");

    // The hook, as Okta calls it.
    let okta = |user: &str, password: &str| {
        format!(
            r#"{{"eventType":"com.okta.user.credential.password.import","data":{{"context":{{"credential":{{"username":"{user}","password":"{password}"}}}},"action":{{"credential":"UNVERIFIED"}}}}}}"#
        )
    };
    let (status, body) = curl_post(hook, &["Authorization: Bearer okta-calls-with-this"], "/okta/password-import", &okta(&ok, PW));
    assert!(
        status.contains("200") && body.contains(r#""credential":"VERIFIED""#) && body.contains("com.okta.action.update"),
        "{status} {body}"
    );
    let (_, body) = curl_post(hook, &["Authorization: Bearer okta-calls-with-this"], "/okta/password-import", &okta(&ok, "wrong"));
    assert!(body.contains(r#""credential":"UNVERIFIED""#), "{body}");
    let (status, _) = curl_post(hook, &["Authorization: Bearer guess"], "/okta/password-import", &okta(&ok, PW));
    assert!(status.contains("401"), "{status}");

    // Signed calls: verified once, a replay and an old timestamp refused.
    let body = format!(r#"{{"username":"{ok}","password":"{PW}","client_ip":"10.0.0.5"}}"#);
    let (status, answer) = verify(hook, "hmac-key-for-signed-calls", &body, None);
    assert!(status.contains("200") && answer.contains(r#""verified":true"#), "{status} {answer}");
    let (status, _) = verify(hook, "wrong-key", &body, None);
    assert!(status.contains("401"), "{status}");
    let (status, _) = verify(hook, "hmac-key-for-signed-calls", &body, Some(1_600_000_000));
    assert!(status.contains("401"), "an old timestamp: {status}");

    // Smart lockout: the user signs in from a known-good source, then 200 wrong passwords from
    // elsewhere. AD's threshold is 5: the directory sees 2 of them, never locks the account,
    // and the user still signs in from the known-good source.
    let target = format!("target{t}");
    let as_from = |password: &str, ip: &str| {
        let body = format!(r#"{{"username":"{target}","password":"{password}","client_ip":"{ip}"}}"#);
        verify(hook, "hmac-key-for-signed-calls", &body, None).1
    };
    assert!(as_from(PW, "10.0.0.5").contains(r#""verified":true"#));
    for i in 0..200 {
        let a = as_from(&format!("guess-{i}"), "203.0.113.9");
        assert!(a.contains(r#""verified":false"#), "{a}");
    }
    let (bad, locked) = bad_password_state(&dir, &target);
    assert!(bad <= 2 && locked == 0, "the DC saw {bad} bad passwords, lockoutTime {locked}");
    assert!(as_from(PW, "10.0.0.5").contains(r#""verified":true"#), "the known-good source keeps its own budget");
    let a = as_from(PW, "203.0.113.9");
    assert!(a.contains(r#""result":"locked_out""#) && a.contains(r#""smart_lockout":true"#), "{a}");
    assert!(!srv.log().contains(PW) && !srv.log().contains("guess-1"), "no password in the log");
}

#[test]
fn the_readme_pta_settings_are_valid() {
    let e = Env::quickstart();
    let cfg = e.read("idflow.toml");
    let block = crate::common::readme_toml_block("Pass-through authentication");
    e.write("idflow.toml", &format!("{cfg}\n{block}"));
    e.ok(&["validate", "--offline"], 0);
    // The quickstart has no ldap connector: a check says what [pta] needs.
    e.write("idflow.toml", &format!("{cfg}\n{}", block.replace("connector = \"ad\"", "connector = \"corp\"")));
    let o = e.ok(&["pta", "check", "ada"], 1);
    assert!(o.stderr.contains("[pta] connector \"corp\" is of type \"ldif\", which cannot check passwords"), "{o:?}");
}

#[test]
fn openldap_checks_a_password_after_looking_the_user_dn_up() {
    use crate::slapd::{config, Slapd};
    let people = "dn: ou=People,dc=example,dc=org\nobjectClass: organizationalUnit\nou: People\n\n\
        dn: uid=ada,ou=People,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada\nsn: Lovelace\nmail: ada@example.org\nuserPassword: Analytical-Engine-1843\n\n\
        dn: uid=twin,ou=People,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: twin\ncn: Twin\nsn: A\nmail: twin@example.org\nuserPassword: one\n\n\
        dn: cn=twin,ou=People,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: twin\ncn: twin\nsn: B\nuserPassword: two\n";
    let s = Slapd::start(Some(people));
    let mut e = Env::empty();
    e.vars.push(("CORP_LDAP_PASSWORD".into(), "secret".into()));
    e.write("rules/none.toml", "");
    e.write("idflow.toml", &format!("{}\n[pta]\nconnector = \"corp\"\n", config(&s.url(), &format!("ca_file = \"{}\"\n", s.ca()))));
    assert_eq!(check(&e, "ada", "Analytical-Engine-1843"), (0, "success".into()), "by uid (StartTLS)");
    assert_eq!(check(&e, "ada@example.org", "Analytical-Engine-1843"), (0, "success".into()), "by mail");
    assert_eq!(check(&e, "ada", "Difference-Engine"), (2, "invalid_credentials".into()));
    assert_eq!(check(&e, "nobody", "Analytical-Engine-1843"), (2, "invalid_credentials".into()));
    assert_eq!(check(&e, "twin", "one"), (2, "invalid_credentials".into()), "a name two entries have is no one's");
}

/// An OpenLDAP user with a password policy (the ppolicy overlay): what the server's password
/// policy control says is what `pta check` says; a wrong password shows nothing of it but a
/// lock (as OpenLDAP, and AD, answer).
#[test]
fn openldap_password_policy_results_come_from_the_ppolicy_control() {
    use crate::slapd::{config, Slapd};
    let person = |uid: &str, extra: &str| {
        format!("dn: uid={uid},ou=People,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: Right-Horse-Battery\n{extra}\n")
    };
    let policy = |cn: &str, extra: &str| {
        format!("dn: cn={cn},ou=Policies,dc=example,dc=org\nobjectClass: organizationalRole\nobjectClass: pwdPolicy\ncn: {cn}\npwdAttribute: userPassword\n{extra}\n")
    };
    let old = "pwdChangedTime: 20200101000000Z\n";
    let seed = [
        "dn: ou=Policies,dc=example,dc=org\nobjectClass: organizationalUnit\nou: Policies\n\n".to_string(),
        policy("default", "pwdLockout: TRUE\npwdMaxFailure: 3\npwdLockoutDuration: 0\npwdMustChange: TRUE\n"),
        policy("expiring", "pwdMaxAge: 86400\n"),
        policy("grace", "pwdMaxAge: 86400\npwdGraceAuthNLimit: 3\n"),
        "dn: ou=People,dc=example,dc=org\nobjectClass: organizationalUnit\nou: People\n\n".to_string(),
        person("ada", ""),
        person("reset", "pwdReset: TRUE\n"),
        person("old", &format!("{old}pwdPolicySubentry: cn=expiring,ou=Policies,dc=example,dc=org\n")),
        person("grace", &format!("{old}pwdPolicySubentry: cn=grace,ou=Policies,dc=example,dc=org\n")),
        person("held", "pwdAccountLockedTime: 000001010000Z\n"),
        person("eve", ""),
    ]
    .join("");
    let s = Slapd::start_with_ppolicy(Some(&seed));
    let mut e = Env::empty();
    e.vars.push(("CORP_LDAP_PASSWORD".into(), "secret".into()));
    e.write("rules/none.toml", "");
    e.write("idflow.toml", &format!("{}\n[pta]\nconnector = \"corp\"\n", config(&s.url(), &format!("ca_file = \"{}\"\n", s.ca()))));
    let right = "Right-Horse-Battery";
    assert_eq!(check(&e, "ada", right), (0, "success".into()));
    assert_eq!(check(&e, "reset", right), (2, "must_change_password".into()), "pwdReset with pwdMustChange");
    assert_eq!(check(&e, "reset", "wrong"), (2, "invalid_credentials".into()));
    assert_eq!(check(&e, "old", right), (2, "password_expired".into()), "pwdMaxAge passed");
    assert_eq!(check(&e, "old", "wrong"), (2, "invalid_credentials".into()));
    assert_eq!(check(&e, "grace", right), (0, "success".into()), "expired, with grace logins left");
    assert_eq!(check(&e, "held", right), (2, "locked_out".into()), "locked by an administrator");
    for _ in 0..3 {
        assert_eq!(check(&e, "eve", "wrong"), (2, "invalid_credentials".into()));
    }
    assert_eq!(check(&e, "eve", right), (2, "locked_out".into()), "locked after pwdMaxFailure");
}

#[test]
fn idflow_serve_answers_radius_too_and_raises_an_alert_while_the_directory_is_down() {
    use crate::service::{Service, SERVICE};
    use crate::slapd::{config, Slapd};
    use std::os::unix::fs::PermissionsExt;
    let people = "dn: ou=People,dc=example,dc=org\nobjectClass: organizationalUnit\nou: People\n\n\
        dn: uid=ada,ou=People,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada\nsn: Lovelace\nmail: ada@example.org\nuserPassword: Analytical-Engine-1843\n";
    let s = Slapd::start(Some(people));
    let mut e = Env::empty();
    e.vars.push(("CORP_LDAP_PASSWORD".into(), "secret".into()));
    e.write("rules/none.toml", "");
    e.write("radius.secret", "radius-shared-secret-0123456789\n");
    std::fs::set_permissions(e.path("radius.secret"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let port = free_udp_port();
    e.write(
        "idflow.toml",
        &format!(
            "{}{SERVICE}\n[health]\ncheck_every = \"1s\"\n\n[pta]\nconnector = \"corp\"\ndeadline = \"5s\"\nradius_listen = \"127.0.0.1:{port}\"\n\
             [[pta.radius_client]]\naddress = \"127.0.0.1\"\nsecret_file = \"radius.secret\"\n",
            config(&s.url(), &format!("ca_file = \"{}\"\ntimeout_seconds = 2\n", s.ca()))
        ),
    );
    let svc = Service::start(&e);
    let secret = "radius-shared-secret-0123456789";
    let o = radclient(port, secret, "ada", "Analytical-Engine-1843");
    assert!(o.contains("Received Access-Accept"), "{o}\nservice log:\n{}", svc.log());
    s.stop();
    let o = radclient(port, secret, "ada", "Analytical-Engine-1843");
    assert!(o.contains("Received Access-Reject") && o.contains("unreachable"), "{o}\nservice log:\n{}", svc.log());
    svc.wait_until(&e, "the alert", |st| {
        st["alerts"].as_array().is_some_and(|a| a.iter().any(|a| a["kind"] == "pta_directory_unreachable"))
    });
    s.restart();
    let o = radclient(port, secret, "ada", "Analytical-Engine-1843");
    assert!(o.contains("Received Access-Accept"), "{o}\nservice log:\n{}", svc.log());
    svc.wait_until(&e, "the alert resolved", |st| {
        st["alerts"].as_array().is_some_and(|a| a.iter().all(|a| a["kind"] != "pta_directory_unreachable"))
    });
    let file: serde_json::Value = serde_json::from_str(&e.read("state/idflow.db.service.json")).expect("service file");
    let out = std::process::Command::new("curl")
        .args(["-s", "-H", &format!("Authorization: Bearer {}", file["token"].as_str().expect("token"))])
        .arg(format!("http://{}/metrics", file["address"].as_str().expect("address")))
        .output()
        .expect("curl");
    let m = String::from_utf8_lossy(&out.stdout);
    assert!(m.contains("idflow_pta_requests_total{front_end=\"radius\",result=\"success\"} 2"), "{m}");
    assert!(m.contains("idflow_pta_requests_total{front_end=\"radius\",result=\"unreachable\"} 1"), "{m}");
    assert!(m.contains("# TYPE idflow_pta_duration_seconds histogram"), "{m}");
    assert_eq!(svc.stop(), 0);
}
