//! Password hash sync end to end against a real slapd with the samba schema: NT hashes in
//! `sambaNTPassword`, PPH1 strings delivered to the file target, only what changed, and no
//! secret anywhere but in the target.
use crate::common::{repo, Env};
use crate::slapd::{config, Slapd};
use idflow_core::hash::nt_hash;

/// The OU the password hash sync tests' people live in.
pub(crate) const PEOPLE_OU: &str = "dn: ou=People,dc=example,dc=org\nobjectClass: organizationalUnit\nou: People\n\n";

pub(crate) fn nt_hex(pw: &str) -> String {
    hex::encode_upper(nt_hash(pw).as_slice())
}

pub(crate) fn user(uid: &str, n: u32, mail: bool, nt: &str) -> String {
    format!(
        "dn: uid={uid},ou=People,dc=example,dc=org\nobjectClass: inetOrgPerson\nobjectClass: sambaSamAccount\nuid: {uid}\ncn: {uid}\nsn: {uid}\n{}employeeNumber: P{n}\nsambaSID: S-1-5-21-1-2-3-{}\nsambaNTPassword: {nt}\n\n",
        if mail { format!("mail: {uid}@example.org\n") } else { String::new() },
        1000 + n
    )
}

/// slapd's people into the file target with the quickstart's rules, PPH1 strings in
/// `passwordHash`; `extra` is appended to idflow.toml.
pub(crate) fn file_target_env(s: &Slapd, extra: &str) -> Env {
    let mut e = Env::empty();
    e.vars.push(("CORP_LDAP_PASSWORD".into(), "secret".into()));
    e.write("rules/people.toml", &std::fs::read_to_string(repo().join("examples/quickstart/rules/people.toml")).expect("rules"));
    e.write(
        "idflow.toml",
        &(config(&s.url(), &format!("ca_file = \"{}\"\n", s.ca()))
            + "\n[password_hash_sync]\nsource = \"corp\"\n[password_hash_sync.targets.cloud]\nformat = \"pph1\"\nattribute = \"passwordHash\"\n"
            + extra),
    );
    e
}

pub(crate) fn verify(e: &Env, pph1: &str, password: &str) -> i32 {
    use std::io::Write as _;
    let mut child = e
        .command(&["phs", "verify", pph1])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("verify");
    child.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes()).expect("write");
    child.wait().expect("wait").code().unwrap_or(-1)
}

#[test]
fn password_hash_sync_round_trip_and_no_secret_anywhere() {
    let mut seed = String::from(PEOPLE_OU);
    for i in 1..=5 {
        seed.push_str(&user(&format!("p{i}"), i, true, &nt_hex(&format!("Old-Passw0rd-{i}"))));
    }
    seed.push_str(&user("nomail", 6, false, &nt_hex("Out-Of-Scope-1")));
    seed.push_str(&user("broken", 7, true, "NOT-A-HASH"));
    seed.push_str("dn: uid=nohash,ou=People,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: nohash\ncn: nohash\nsn: nohash\nmail: nohash@example.org\n\n");
    let s = Slapd::start(Some(&seed));
    let e = file_target_env(&s, "");
    let first = e.ok(&["run", "-vv"], 2);
    let r = e.json(&["history"], 0);
    assert_eq!(r[0]["status"], "errors");
    let summary = &r[0]["summary"]["password_hash_sync"];
    assert_eq!(summary["delivered"], 5, "{summary}");
    assert_eq!(summary["failed"], 1, "{summary}");
    assert_eq!(summary["without_hash"], 1, "{summary}");
    let errors = r[0]["summary"]["errors"].as_array().expect("errors").clone();
    let broken = errors.iter().find(|x| x["stage"] == "phs").expect("phs error");
    assert!(broken["object"].as_str().is_some_and(|o| o.contains("uid=broken")), "{broken}");
    assert!(broken["message"].as_str().is_some_and(|m| m.contains("malformed sambaNTPassword") && !m.contains("NOT-A-HASH")), "{broken}");

    let hash_of = |e: &Env, mail: &str| e.cloud_user(mail).and_then(|u| u["attributes"]["passwordHash"].as_str().map(str::to_string));
    let p1 = hash_of(&e, "p1@example.org").expect("p1 got a hash");
    assert!(p1.starts_with("v1;PPH1_MD4,") && p1.ends_with(';'), "{p1}");
    assert_eq!(verify(&e, &p1, "Old-Passw0rd-1"), 0);
    assert_eq!(verify(&e, &p1, "Old-Passw0rd-2"), 1);
    assert_eq!(verify(&e, "v1;PPH1_MD4,xx", "x"), 2);
    assert!(e.cloud_user("nomail@example.org").is_none(), "out of scope: not provisioned, no hash");
    assert!(hash_of(&e, "broken@example.org").is_none());

    // One password changes: only that user is delivered again.
    let p2_before = hash_of(&e, "p2@example.org").expect("p2");
    s.modify(&format!(
        "dn: uid=p1,ou=People,dc=example,dc=org\nchangetype: modify\nreplace: sambaNTPassword\nsambaNTPassword: {}\n",
        nt_hex("New-Passw0rd-1")
    ));
    let second = e.ok(&["run"], 2);
    assert!(second.stdout.contains("1 delivered, 4 unchanged"), "{second:?}");
    let p1_new = hash_of(&e, "p1@example.org").expect("p1");
    assert_eq!(verify(&e, &p1_new, "New-Passw0rd-1"), 0);
    assert_eq!(verify(&e, &p1_new, "Old-Passw0rd-1"), 1);
    assert_eq!(hash_of(&e, "p2@example.org").expect("p2"), p2_before, "unchanged hashes are not re-delivered (a new salt would show)");

    // --full delivers all again; staging mode pauses the stage.
    let full = e.ok(&["phs", "--full"], 2);
    assert!(full.stdout.contains("5 delivered"), "{full:?}");
    e.write("idflow.toml", &e.read("idflow.toml").replace("[password_hash_sync]", "[export]\nstaging_mode = true\n\n[password_hash_sync]"));
    let staged = e.ok(&["run"], 0);
    assert!(staged.stdout.contains("password hash sync is paused"), "{staged:?}");

    // No NT hash, salt-bearing PPH1 string or hash hex anywhere but the target file.
    let plan = e.ok(&["plan"], 0);
    let preview = e.ok(&["preview", "corp", "uid=p1,ou=People,dc=example,dc=org", "--json"], 0);
    let db = std::fs::read(e.path("state/idflow.db")).expect("db");
    let wal = std::fs::read(e.path("state/idflow.db-wal")).unwrap_or_default();
    let mut secrets: Vec<String> = (1..=5).map(|i| nt_hex(&format!("Old-Passw0rd-{i}"))).collect();
    secrets.push(nt_hex("New-Passw0rd-1"));
    secrets.push(nt_hex("Out-Of-Scope-1"));
    let lower: Vec<String> = secrets.iter().map(|s| s.to_lowercase()).collect();
    secrets.extend(lower);
    secrets.push("PPH1_MD4".into());
    secrets.push("NOT-A-HASH".into());
    let texts = [
        ("first run output", format!("{}{}", first.stdout, first.stderr)),
        ("second run output", format!("{}{}", second.stdout, second.stderr)),
        ("plan", plan.stdout.clone()),
        ("preview", preview.stdout.clone()),
    ];
    for needle in &secrets {
        for (what, text) in &texts {
            assert!(!text.contains(needle.as_str()), "{needle} found in {what}");
        }
        for (what, bytes) in [("database", &db), ("write-ahead log", &wal)] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} found in the {what}");
        }
    }
    // The key file is the owner's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(e.path("state/idflow.phs.key")).expect("key").permissions().mode();
    assert_eq!(mode & 0o077, 0, "key mode {mode:o}");
}

#[test]
fn password_hash_sync_to_a_scim_extension_attribute() {
    let mut seed = String::from(PEOPLE_OU);
    for i in 1..=3 {
        seed.push_str(&user(&format!("s{i}"), i, true, &nt_hex(&format!("Scim-Passw0rd-{i}"))));
    }
    let s = Slapd::start(Some(&seed));
    let scim = crate::scim::Scim::start();
    let attr = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter";
    let mut e = Env::empty();
    e.vars.push(("CORP_LDAP_PASSWORD".into(), "secret".into()));
    e.vars.push(("CLOUD_SCIM_TOKEN".into(), crate::scim::TOKEN.into()));
    e.write("rules/people.toml", &std::fs::read_to_string(repo().join("examples/quickstart/rules/people.toml")).expect("rules"));
    let cfg = config(&s.url(), &format!("ca_file = \"{}\"\n", s.ca())).replace(
        "[[connector]]\nname = \"cloud\"\ntype = \"file\"\npath = \"out/cloud.json\"\n",
        &format!("[[connector]]\nname = \"cloud\"\ntype = \"scim\"\nurl = \"{}\"\ntoken_env = \"CLOUD_SCIM_TOKEN\"\n", scim.url()),
    ) + format!(
        "\n[password_hash_sync]\nsource = \"corp\"\n[password_hash_sync.targets.cloud]\nformat = \"pph1\"\nattribute = \"{attr}\"\n"
    )
    .as_str();
    e.write("idflow.toml", &cfg);
    let o = e.ok(&["run"], 0);
    assert!(o.stdout.contains("3 delivered"), "{o:?}");
    let users = scim.list("Users");
    let s2 = users.iter().find(|u| u["userName"] == "s2@example.org").expect("s2");
    let pph1 = s2["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["costCenter"].as_str().expect("delivered").to_string();
    assert_eq!(verify(&e, &pph1, "Scim-Passw0rd-2"), 0);
    // Read back by the next import, it is dropped, not kept.
    let o = e.ok(&["run"], 0);
    assert!(o.stdout.contains("0 delivered, 3 unchanged"), "{o:?}");
    let db = std::fs::read(e.path("state/idflow.db")).expect("db");
    assert!(!db.windows(8).any(|w| w == b"PPH1_MD4"), "no PPH1 string in the database");
    // Someone deletes s2 in the service: the run that makes it again delivers its hash again.
    scim.delete("Users", s2["id"].as_str().expect("an id"));
    let o = e.ok(&["run"], 0);
    assert!(o.stdout.contains("1 delivered, 2 unchanged"), "{o:?}");
    let users = scim.list("Users");
    let again = users.iter().find(|u| u["userName"] == "s2@example.org").expect("s2 made again");
    assert_ne!(again["id"], s2["id"]);
    let pph1 = again["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["costCenter"].as_str().expect("delivered again");
    assert_eq!(verify(&e, pph1, "Scim-Passw0rd-2"), 0);
}

#[test]
fn password_hash_sync_to_an_ldap_target_as_nt_hashes() {
    let mut seed = String::from(PEOPLE_OU);
    for i in 1..=3 {
        seed.push_str(&user(&format!("r{i}"), i, true, &nt_hex(&format!("Radius-Passw0rd-{i}"))));
    }
    let src = Slapd::start(Some(&seed));
    let dst = Slapd::start(Some("dn: ou=People,dc=example,dc=org\nobjectClass: organizationalUnit\nou: People\n\n"));
    let mut e = Env::empty();
    e.vars.push(("CORP_LDAP_PASSWORD".into(), "secret".into()));
    e.write("rules/people.toml", &std::fs::read_to_string(repo().join("examples/quickstart/rules/people.toml")).expect("rules"));
    e.write(
        "rules/radius.toml",
        r#"
[[rule]]
name = "in-uid"
direction = "inbound"
connector = "corp"
source_type = "person"
metaverse_type = "person"
precedence = 200
[rule.flows]
uid = "source.uid"
sn = "source.sn"

[[rule]]
name = "out-radius"
direction = "outbound"
connector = "radius"
metaverse_type = "person"
target_type = "person"
scope = "mv.mail != ()"
link = "provision"
deprovision = "delete"
dn = '"uid=" + escape_dn(mv.uid) + ",ou=People,dc=example,dc=org"'
[rule.flows]
objectClass = '["top", "inetOrgPerson", "sambaSamAccount"]'
uid = "mv.uid"
cn = "mv.displayName"
sn = "mv.sn"
sambaSID = '"S-1-5-21-9-9-9-" + mv.employeeId.sub_string(1)'
"#,
    );
    let cfg = config(&src.url(), &format!("ca_file = \"{}\"\n", src.ca()))
        + format!(
            "\n[[connector]]\nname = \"radius\"\ntype = \"ldap\"\nurl = \"{}\"\nca_file = \"{}\"\nbind_dn = \"cn=admin,dc=example,dc=org\"\npassword_env = \"CORP_LDAP_PASSWORD\"\nbase_dn = \"ou=People,dc=example,dc=org\"\n[connector.object_types]\nperson = \"(objectClass=inetOrgPerson)\"\n\
             \n[password_hash_sync]\nsource = \"corp\"\n[password_hash_sync.targets.radius]\nformat = \"nt\"\nattribute = \"sambaNTPassword\"\n",
            dst.url(),
            dst.ca()
        )
        .as_str();
    e.write("idflow.toml", &cfg);
    let o = e.ok(&["run"], 0);
    assert!(o.stdout.contains("3 delivered"), "{o:?}");
    let r2 = dst.search("ou=People,dc=example,dc=org", "(uid=r2)", &["sambaNTPassword"]);
    assert!(r2.contains(&format!("sambaNTPassword: {}", nt_hex("Radius-Passw0rd-2"))), "{r2}");
    // The target's copy is read back by the next import and dropped: nothing to re-deliver, nothing stored.
    let o = e.ok(&["run"], 0);
    assert!(o.stdout.contains("0 delivered, 3 unchanged"), "{o:?}");
    let db = std::fs::read(e.path("state/idflow.db")).expect("db");
    let hex = nt_hex("Radius-Passw0rd-2");
    assert!(!db.windows(hex.len()).any(|w| w == hex.as_bytes()), "no NT hash in the database");
}
