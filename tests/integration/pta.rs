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
