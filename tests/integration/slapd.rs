//! A real OpenLDAP slapd per test, started by the project's own script on free loopback ports.
use crate::common::repo;
use std::path::PathBuf;
use std::process::Command;

pub(crate) struct Slapd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub ldaps_port: u16,
    /// The script's options it was started with (kept for a restart).
    env: &'static [(&'static str, &'static str)],
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub(crate) const BASE_ENTRY: &str = "dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n";

impl Slapd {
    /// Starts slapd, first loading `seed` (LDIF, without the base entry) with slapadd.
    pub(crate) fn start(seed: Option<&str>) -> Slapd {
        Self::start_with(seed, &[])
    }

    /// Starts slapd with the ppolicy overlay (lockout on; the default policy is
    /// cn=default,ou=Policies,dc=example,dc=org once `seed` or a test adds it).
    pub(crate) fn start_with_ppolicy(seed: Option<&str>) -> Slapd {
        Self::start_with(seed, &[("SLAPD_PPOLICY", "1")])
    }

    /// Starts a slapd that has no TLS at all (StartTLS refused, no LDAPS).
    pub(crate) fn start_without_tls() -> Slapd {
        Self::start_with(None, &[("SLAPD_NO_TLS", "1")])
    }

    fn start_with(seed: Option<&str>, env: &'static [(&'static str, &'static str)]) -> Slapd {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Slapd { dir, port: free_port(), ldaps_port: free_port(), env };
        let mut args = vec!["start".to_string(), s.path().display().to_string(), s.port.to_string(), s.ldaps_port.to_string()];
        if let Some(seed) = seed {
            let p = s.dir.path().join("seed.ldif");
            std::fs::write(&p, format!("{BASE_ENTRY}{}", seed.trim_start_matches("version: 1\n"))).expect("seed");
            args.push(p.display().to_string());
        }
        // A free port can be taken by another test between being found and slapd binding it
        // (the script then says the ports may be in use): new ports, at most twice more.
        for _ in 0..2 {
            if s.try_script(&args).status.success() {
                return s;
            }
            // A slapd that started but did not answer is stopped before the next one.
            s.try_script(&["stop".to_string(), s.path().display().to_string()]);
            s.port = free_port();
            s.ldaps_port = free_port();
            args[2] = s.port.to_string();
            args[3] = s.ldaps_port.to_string();
        }
        s.script(&args);
        s
    }

    fn try_script(&self, args: &[String]) -> std::process::Output {
        let mut c = Command::new("bash");
        c.arg(repo().join("scripts/slapd.sh")).args(args).envs(self.env.iter().copied());
        c.output().expect("scripts/slapd.sh runs")
    }

    fn script(&self, args: &[String]) {
        let out = self.try_script(args);
        assert!(
            out.status.success(),
            "scripts/slapd.sh {args:?} failed (slapd must be installed: apt-get install slapd ldap-utils):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub(crate) fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub(crate) fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    pub(crate) fn ca(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }

    pub(crate) fn stop(&self) {
        self.script(&["stop".into(), self.path().display().to_string()]);
    }

    /// Freezes (`STOP`) or thaws (`CONT`) the server: its connections stay open and nothing is
    /// answered, as with a hung directory.
    pub(crate) fn signal(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.path().join("slapd.pid")).expect("slapd.pid");
        let ok = Command::new("kill").args([&format!("-{signal}"), pid.trim()]).status().expect("kill");
        assert!(ok.success(), "kill -{signal} slapd");
    }

    pub(crate) fn restart(&self) {
        self.script(&["start".into(), self.path().display().to_string(), self.port.to_string(), self.ldaps_port.to_string()]);
    }

    /// Test set-up through OpenLDAP's own tools.
    pub(crate) fn modify(&self, ldif: &str) {
        let mut child = Command::new("ldapmodify")
            .args(["-x", "-H", &self.url(), "-D", "cn=admin,dc=example,dc=org", "-w", "secret"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("ldapmodify");
        use std::io::Write as _;
        child.stdin.take().expect("stdin").write_all(ldif.as_bytes()).expect("write");
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "ldapmodify failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub(crate) fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> String {
        let out = Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-o",
                "ldif-wrap=no",
                "-H",
                &self.url(),
                "-D",
                "cn=admin,dc=example,dc=org",
                "-w",
                "secret",
                "-b",
                base,
                filter,
            ])
            .args(attrs)
            .output()
            .expect("ldapsearch");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(repo().join("scripts/slapd.sh")).args(["stop", &self.path().display().to_string()]).output();
    }
}

/// idflow.toml for an ldap source (`corp`) and a file target, with extra lines for the connector.
pub(crate) fn config(url: &str, extra: &str) -> String {
    format!(
        r#"[metaverse]
path = "state/idflow.db"
[rules]
paths = ["rules"]
[[connector]]
name = "corp"
type = "ldap"
flavor = "openldap"
url = "{url}"
bind_dn = "cn=admin,dc=example,dc=org"
password_env = "CORP_LDAP_PASSWORD"
base_dn = "dc=example,dc=org"
reference_attributes = ["member", "manager"]
{extra}
[connector.object_types]
person = "(objectClass=inetOrgPerson)"
group = "(objectClass=groupOfNames)"

[[connector]]
name = "cloud"
type = "file"
path = "out/cloud.json"
"#
    )
}
