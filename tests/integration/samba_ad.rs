//! The ldap connector's `ad` flavor against a real Samba 4 AD domain controller, started by
//! scripts/samba-dc.sh: paged full import with range retrieval, DirSync deltas, LDAPS and
//! StartTLS verified against the DC's certificate, faults. One DC per machine (its ports are
//! fixed), so these tests share it and take turns; each run works in an OU of its own.
use crate::common::{self, repo, Env};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

pub(crate) const ADMIN_PW: &str = "Passw0rd!Adm1n";
static DC: OnceLock<PathBuf> = OnceLock::new();
static TURN: Mutex<()> = Mutex::new(());

pub(crate) fn dc() -> (MutexGuard<'static, ()>, PathBuf) {
    let guard = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let dir = DC
        .get_or_init(|| {
            let dir = PathBuf::from(std::env::var("IDFLOW_SAMBA_DIR").unwrap_or_else(|_| "/tmp/idflow-test-samba-dc".into()));
            let out = Command::new("bash")
                .arg(repo().join("scripts/samba-dc.sh"))
                .arg("start")
                .arg(&dir)
                .output()
                .expect("scripts/samba-dc.sh runs");
            assert!(
                out.status.success(),
                "the Samba AD DC did not start (apt-get install samba samba-ad-dc winbind krb5-user ldb-tools):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            dir
        })
        .clone();
    (guard, dir)
}

/// Set-up through OpenLDAP's client tools over LDAPS, verified against the test CA.
pub(crate) fn ldap(dir: &Path, tool: &str, ldif: &str) {
    let mut child = Command::new(tool)
        .args(["-x", "-c", "-H", "ldaps://127.0.0.1", "-D", "Administrator@example.test", "-w", ADMIN_PW])
        .env("LDAPTLS_CACERT", dir.join("ca.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ldapmodify");
    use std::io::Write as _;
    child.stdin.take().expect("stdin").write_all(ldif.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
}

pub(crate) fn b64(s: &str) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s.as_bytes())
}

pub(crate) fn tag() -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("{:04x}", (n as u64 ^ std::process::id() as u64) & 0xffff)
}

pub(crate) fn env_for(dir: &Path, ou: &str, url: &str) -> Env {
    let mut e = Env::empty();
    e.vars.push(("AD_PASSWORD".into(), ADMIN_PW.into()));
    for f in ["users.toml", "groups.toml", "entra.rhai"] {
        e.write(&format!("rules/{f}"), &std::fs::read_to_string(repo().join("rules/ad-to-cloud").join(f)).expect("rules"));
    }
    let cfg = std::fs::read_to_string(repo().join("rules/ad-to-cloud/idflow.toml"))
        .expect("config")
        .replace("paths = [\".\"]", "paths = [\"rules\"]")
        .replace("url = \"ldaps://127.0.0.1:636\"", &format!("url = \"{url}\""))
        .replace("ca_file = \"ca.pem\"", &format!("ca_file = \"{}\"", dir.join("ca.pem").display()))
        .replace("CN=idflow-sync,CN=Users,DC=example,DC=test", "CN=Administrator,CN=Users,DC=example,DC=test")
        .replace("base_dn = \"DC=example,DC=test\"", &format!("base_dn = \"DC=example,DC=test\"\ninclude_ous = [\"{ou}\"]"));
    e.write("idflow.toml", &cfg);
    e
}

#[test]
fn ad_full_import_range_retrieval_and_dirsync_deltas() {
    let (_turn, dir) = dc();
    let t = tag();
    let ou = format!("OU=run{t},DC=example,DC=test");
    let people = 10_000;
    let mut ldif = format!("dn: {ou}\nchangetype: add\nobjectClass: organizationalUnit\n\ndn: OU=Moved,{ou}\nchangetype: add\nobjectClass: organizationalUnit\n\n");
    let user_dn = |i: usize| if i == 1 { format!("CN=Smith\\, John,{ou}") } else { format!("CN=user{i:05},{ou}") };
    for i in 0..people {
        let given = if i % 7 == 0 { "Jörg" } else { "User" };
        ldif.push_str(&format!(
            "dn: {}\nchangetype: add\nobjectClass: user\nsAMAccountName: u{t}{i:05}\nuserPrincipalName: u{t}{i:05}@example.test\ngivenName:: {}\nsn: N{i}\ndisplayName:: {}\nmail: u{t}{i:05}@example.test\ntitle: Clerk\n{}\n",
            user_dn(i),
            b64(given),
            b64(&format!("{given} N{i}")),
            if i > 0 { format!("manager: {}\n", user_dn(i - 1)) } else { String::new() }
        ));
    }
    for g in 0..200 {
        ldif.push_str(&format!("dn: CN=group{g:03},{ou}\nchangetype: add\nobjectClass: group\nsAMAccountName: g{t}{g:03}\n"));
        for m in 0..(10 + g % 20) {
            ldif.push_str(&format!("member: {}\n", user_dn((g * 37 + m * 11) % people)));
        }
        ldif.push('\n');
    }
    ldif.push_str(&format!("dn: CN=everyone,{ou}\nchangetype: add\nobjectClass: group\nsAMAccountName: all{t}\n"));
    for i in 0..5000 {
        ldif.push_str(&format!("member: {}\n", user_dn(i)));
    }
    ldif.push('\n');
    ldap(&dir, "ldapmodify", &ldif);

    let e = env_for(&dir, &ou, "ldaps://127.0.0.1");
    let r = e.json(&["apply"], 0);
    assert_eq!(r["import"][0]["mode"], "full", "{}", r["import"]);
    assert_eq!(r["import"][0]["read"], people + 201, "{}", r["import"]);
    let cloud = e.cloud();
    assert_eq!(cloud.iter().filter(|o| o["type"] == "User").count(), people);
    let everyone = cloud.iter().find(|o| o["attributes"]["displayName"] == "everyone").expect("everyone");
    assert_eq!(everyone["attributes"]["members"].as_array().map(Vec::len), Some(5000), "range retrieval brought all 5,000 members");
    assert!(cloud.iter().any(|o| o["attributes"]["displayName"].as_str().is_some_and(|d| d.starts_with("Jörg"))));
    let smith = e.cloud_user(&format!("u{t}00001@example.test")).expect("Smith, John");
    let u2 = e.cloud_user(&format!("u{t}00002@example.test")).expect("u2");
    assert_eq!(u2["attributes"]["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"], smith["id"]);

    // Changes through DirSync: modify, add, delete, rename, move.
    let id3 = e.cloud_user(&format!("u{t}00003@example.test")).expect("u3")["id"].clone();
    let id4 = e.cloud_user(&format!("u{t}00004@example.test")).expect("u4")["id"].clone();
    ldap(
        &dir,
        "ldapmodify",
        &format!(
            "dn: CN=user00010,{ou}\nchangetype: modify\nreplace: title\ntitle: Chief\n\n\
             dn: CN=newbie,{ou}\nchangetype: add\nobjectClass: user\nsAMAccountName: n{t}\nuserPrincipalName: n{t}@example.test\n\n\
             dn: CN=user00020,{ou}\nchangetype: delete\n\n\
             dn: CN=user00003,{ou}\nchangetype: modrdn\nnewrdn: CN=user00003-renamed\ndeleteoldrdn: 1\n\n\
             dn: CN=user00004,{ou}\nchangetype: modrdn\nnewrdn: CN=user00004\ndeleteoldrdn: 1\nnewsuperior: OU=Moved,{ou}\n\n"
        ),
    );
    let r = e.json(&["apply"], 0);
    let imp = &r["import"][0];
    assert_eq!(imp["mode"], "delta", "{imp}");
    assert!(imp["read"].as_u64().is_some_and(|n| n < 50), "DirSync reads the changes, not the domain: {imp}");
    assert_eq!(imp["deleted"], 1, "{imp}");
    assert_eq!(e.cloud_user(&format!("u{t}00010@example.test")).expect("u10")["attributes"]["title"], "Chief");
    assert!(e.cloud_user(&format!("n{t}@example.test")).is_some(), "added");
    assert!(e.cloud_user(&format!("u{t}00020@example.test")).is_none(), "deleted");
    assert_eq!(e.cloud_user(&format!("u{t}00003@example.test")).expect("renamed")["id"], id3);
    assert_eq!(e.cloud_user(&format!("u{t}00004@example.test")).expect("moved")["id"], id4);
    e.ok(&["plan", "--exit-code"], 0);
}

#[test]
fn ad_starttls_faults_and_a_bad_cookie() {
    let (_turn, dir) = dc();
    let t = tag();
    let ou = format!("OU=faults{t},DC=example,DC=test");
    let mut ldif = format!("dn: {ou}\nchangetype: add\nobjectClass: organizationalUnit\n\n");
    for i in 0..20 {
        ldif.push_str(&format!("dn: CN=f{i},{ou}\nchangetype: add\nobjectClass: user\nsAMAccountName: f{t}{i:02}\nuserPrincipalName: f{t}{i:02}@example.test\n\n"));
    }
    ldap(&dir, "ldapmodify", &ldif);
    // StartTLS on ldap:// works as well as LDAPS.
    let e = env_for(&dir, &ou, "ldap://127.0.0.1");
    let r = e.json(&["apply"], 0);
    assert_eq!(r["import"][0]["read"], 20, "{}", r["import"]);
    // A cookie the DC cannot use: a full import, with a warning, and nothing is lost.
    common::set_watermark(&e, "ad", r#"{"DC=example,DC=test":"Ym9ndXM="}"#);
    let o = e.ok(&["import", "ad", "--json"], 0);
    let j: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(j["import"][0]["mode"], "full", "{o:?}");
    assert_eq!(j["import"][0]["deleted"], 0, "{o:?}");
    assert!(o.stderr.contains("full import"), "{o:?}");
    e.ok(&["plan", "--exit-code"], 0);
    // Wrong password; a certificate checked against a name it does not hold.
    let mut bad = env_for(&dir, &ou, "ldaps://127.0.0.1");
    bad.vars = vec![("AD_PASSWORD".into(), "Xyzzy-not-it".into())];
    let o = bad.run(&["import", "ad"]);
    assert!(o.code == 1 && o.stderr.contains("invalid credentials"), "{o:?}");
    assert!(!o.stderr.contains("Xyzzy"), "no password in messages: {o:?}");
    let wrong_name = env_for(&dir, &ou, "ldaps://127.0.0.1");
    wrong_name.write("idflow.toml", &wrong_name.read("idflow.toml").replace("DC1.example.test", "dc2.example.test"));
    let o = wrong_name.run(&["import", "ad"]);
    assert!(o.code == 1 && o.stderr.contains("not valid for name"), "{o:?}");
}

/// A user made in an OU out of scope, then moved into it (a common way to provision): DirSync
/// sends the move as the user's new name alone. The user is read whole and imported by the
/// delta, not dropped as a partial entry of an object idflow does not hold.
#[test]
fn ad_a_user_moved_into_scope_is_imported_by_the_delta() {
    let (_turn, dir) = dc();
    let t = tag();
    let ou = format!("OU=in{t},DC=example,DC=test");
    let stage = format!("OU=stage{t},DC=example,DC=test");
    ldap(
        &dir,
        "ldapmodify",
        &format!(
            "dn: {ou}\nchangetype: add\nobjectClass: organizationalUnit\n\ndn: {stage}\nchangetype: add\nobjectClass: organizationalUnit\n\n\
             dn: CN=first{t},{ou}\nchangetype: add\nobjectClass: user\nsAMAccountName: f{t}\nuserPrincipalName: f{t}@example.test\nmail: f{t}@example.test\n\n\
             dn: CN=mover{t},{stage}\nchangetype: add\nobjectClass: user\nsAMAccountName: m{t}\nuserPrincipalName: m{t}@example.test\nmail: m{t}@example.test\ntitle: Starter\n\n"
        ),
    );
    let e = env_for(&dir, &ou, "ldaps://127.0.0.1");
    e.json(&["apply"], 0);
    assert!(e.cloud_user(&format!("f{t}@example.test")).is_some());
    assert!(e.cloud_user(&format!("m{t}@example.test")).is_none(), "out of scope");
    ldap(
        &dir,
        "ldapmodify",
        &format!("dn: CN=mover{t},{stage}\nchangetype: modrdn\nnewrdn: CN=mover{t}\ndeleteoldrdn: 1\nnewsuperior: {ou}\n\n"),
    );
    let r = e.json(&["apply"], 0);
    assert_eq!(r["import"][0]["mode"], "delta", "{r}");
    let m = e.cloud_user(&format!("m{t}@example.test")).expect("moved into scope");
    assert_eq!(m["attributes"]["title"], "Starter", "{r}");
}

/// Two OUs in scope, read in turn: a user moved from one to the other between runs is renamed,
/// not deleted, and a leaver is looked up by objectGUID before a full import takes her for gone
/// (the slapd test holds a run between two OUs to move a person while they are read).
#[test]
fn ad_two_ous_in_scope_and_a_move_between_them() {
    let (_turn, dir) = dc();
    let t = tag();
    let (a, b) = (format!("OU=a{t},DC=example,DC=test"), format!("OU=b{t},DC=example,DC=test"));
    ldap(
        &dir,
        "ldapmodify",
        &format!(
            "dn: {a}\nchangetype: add\nobjectClass: organizationalUnit\n\ndn: {b}\nchangetype: add\nobjectClass: organizationalUnit\n\n\
             dn: CN=ann{t},{a}\nchangetype: add\nobjectClass: user\nsAMAccountName: a{t}\nuserPrincipalName: a{t}@example.test\nmail: a{t}@example.test\n\n\
             dn: CN=ben{t},{b}\nchangetype: add\nobjectClass: user\nsAMAccountName: b{t}\nuserPrincipalName: b{t}@example.test\nmail: b{t}@example.test\n\n"
        ),
    );
    let e = env_for(&dir, &format!("{a}\", \"{b}"), "ldaps://127.0.0.1");
    e.json(&["apply"], 0);
    let r = e.json(&["import", "--full", "ad"], 0);
    assert_eq!((r["import"][0]["read"].as_u64(), r["import"][0]["deleted"].as_u64()), (Some(2), Some(0)), "{r}");
    let before = e.cloud_user(&format!("b{t}@example.test")).expect("ben")["id"].clone();
    ldap(&dir, "ldapmodify", &format!("dn: CN=ben{t},{b}\nchangetype: modrdn\nnewrdn: CN=ben{t}\ndeleteoldrdn: 1\nnewsuperior: {a}\n\n"));
    let r = e.json(&["apply"], 0);
    assert_eq!((r["import"][0]["mode"].as_str(), r["import"][0]["deleted"].as_u64()), (Some("delta"), Some(0)), "{r}");
    assert_eq!(e.cloud_user(&format!("b{t}@example.test")).expect("ben stays")["id"], before, "{r}");
    // A leaver: the full import looks her up by objectGUID below both OUs before she is gone.
    ldap(&dir, "ldapdelete", &format!("CN=ann{t},{a}\n"));
    let r = e.json(&["import", "--full", "ad"], 0);
    let i = &r["import"][0];
    assert_eq!((i["read"].as_u64(), i["looked_up"].as_u64(), i["deleted"].as_u64()), (Some(1), Some(1), Some(1)), "{r}");
}

/// AD's paged search is not a snapshot (Windows has never said what a move made while it pages
/// does to the pages to come), so even a full import of one base looks up the objects it did
/// not read by objectGUID before it takes them for gone: a leaver is looked up, not found, and
/// deleted; the rest stay.
#[test]
fn ad_a_full_import_of_one_base_looks_a_leaver_up_before_deleting() {
    let (_turn, dir) = dc();
    let t = tag();
    let ou = format!("OU=one{t},DC=example,DC=test");
    let user = |n: &str| {
        format!("dn: CN={n}{t},{ou}\nchangetype: add\nobjectClass: user\nsAMAccountName: {n}{t}\nuserPrincipalName: {n}{t}@example.test\nmail: {n}{t}@example.test\n\n")
    };
    ldap(&dir, "ldapmodify", &format!("dn: {ou}\nchangetype: add\nobjectClass: organizationalUnit\n\n{}{}", user("cy"), user("di")));
    let e = env_for(&dir, &ou, "ldaps://127.0.0.1");
    e.json(&["apply"], 0);
    let r = e.json(&["import", "--full", "ad"], 0);
    assert_eq!((r["import"][0]["read"].as_u64(), r["import"][0]["looked_up"].as_u64()), (Some(2), None), "all read: {r}");
    ldap(&dir, "ldapdelete", &format!("CN=cy{t},{ou}\n"));
    let r = e.json(&["import", "--full", "ad"], 0);
    let i = &r["import"][0];
    assert_eq!((i["read"].as_u64(), i["looked_up"].as_u64(), i["deleted"].as_u64()), (Some(1), Some(1), Some(1)), "{r}");
    let o = e.ok(&["apply"], 0);
    assert!(e.cloud_user(&format!("cy{t}@example.test")).is_none(), "the leaver's account goes: {o:?}");
    assert!(e.cloud_user(&format!("di{t}@example.test")).is_some(), "{o:?}");
}
