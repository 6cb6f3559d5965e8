//! The ldap connector against a real OpenLDAP slapd (syncprov, memberof, refint), started by
//! scripts/slapd.sh: full and delta imports, TLS, faults, and LDAP as a target.
use crate::common::{self, generated, repo, Env};
use crate::pausing_proxy::PausingProxy;
use crate::phs::PEOPLE_OU;
use crate::slapd::{config, Slapd};

fn env_for(s: &Slapd, extra: &str) -> Env {
    let mut e = Env::empty();
    e.vars.push(("CORP_LDAP_PASSWORD".into(), "secret".into()));
    for f in ["people.toml", "accounts.toml", "groups.toml"] {
        let text = std::fs::read_to_string(repo().join("examples/quickstart/rules").join(f)).expect("rules");
        e.write(&format!("rules/{f}"), &text);
    }
    e.write("idflow.toml", &config(&s.url(), &format!("ca_file = \"{}\"\n{extra}", s.ca())));
    e
}

#[test]
fn full_import_deltas_and_a_large_group() {
    let mut seed = generated(10_000, 200);
    seed.push_str("dn: cn=everyone,ou=Groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: everyone\n");
    for i in 0..5000 {
        let dn = if i % 50 == 7 {
            format!("uid=u{i:06},ou=Disabled,ou=People,dc=example,dc=org")
        } else {
            format!("uid=u{i:06},ou=People,dc=example,dc=org")
        };
        seed.push_str(&format!("member: {dn}\n"));
    }
    seed.push('\n');
    let users_with_mail = seed.matches("\nmail: ").count();
    let s = Slapd::start(Some(&seed));
    let e = env_for(&s, "");
    let r = e.json(&["apply"], 0);
    assert_eq!(r["import"][0]["read"], 10_201, "{}", r["import"]);
    assert_eq!(r["import"][0]["mode"], "full");
    let cloud = e.cloud();
    assert_eq!(cloud.iter().filter(|o| o["type"] == "User").count(), users_with_mail);
    assert_eq!(cloud.iter().filter(|o| o["type"] == "Group").count(), 201);
    let everyone = cloud.iter().find(|o| o["attributes"]["displayName"] == "everyone").expect("big group");
    // Members without mail are not in the target, so they are not members there.
    let in_target = (0..5000).filter(|i| i % 40 != 11).count();
    assert_eq!(everyone["attributes"]["members"].as_array().map(Vec::len), Some(in_target));
    // Non-ASCII names and DNs with escaped commas and plus signs came through.
    assert!(cloud.iter().any(|o| o["attributes"]["displayName"] == "Sales, EMEA"));
    assert!(cloud.iter().any(|o| o["attributes"]["displayName"] == "R+D"));
    assert!(cloud.iter().any(|o| o["attributes"]["displayName"].as_str().is_some_and(|d| d.contains('ø') || d.contains('ö'))));

    let id12 = e.cloud_user("u000012@example.org").expect("u12")["id"].clone();
    let id14 = e.cloud_user("u000014@example.org").expect("u14")["id"].clone();
    s.modify(
        "dn: uid=newbie,ou=People,dc=example,dc=org\nchangetype: add\nobjectClass: inetOrgPerson\nuid: newbie\ncn: New Bie\nsn: Bie\nmail: newbie@example.org\nemployeeNumber: N1\n\n\
         dn: uid=u000010,ou=People,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Chief Of Everything\n\n\
         dn: uid=u000013,ou=People,dc=example,dc=org\nchangetype: delete\n\n\
         dn: uid=u000012,ou=People,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid=u000012b\ndeleteoldrdn: 1\n\n\
         dn: uid=u000014,ou=People,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid=u000014\ndeleteoldrdn: 1\nnewsuperior: ou=Disabled,ou=People,dc=example,dc=org\n",
    );
    // refint rewrites references to the deleted and renamed entries in the background: a sync
    // that runs in between sees the old DNs (and reports them); wait as a sync interval would.
    for _ in 0..100 {
        if s.search(
            "dc=example,dc=org",
            "(|(manager=uid=u000013,ou=People,dc=example,dc=org)(manager=uid=u000012,ou=People,dc=example,dc=org))",
            &["dn"],
        )
        .trim()
        .is_empty()
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let r = e.json(&["apply"], 0);
    let imp = &r["import"][0];
    assert_eq!(imp["mode"], "delta", "{imp}");
    assert!(imp["read"].as_u64().is_some_and(|n| n < 100), "a delta reads the changes, not the directory: {imp}");
    assert_eq!(imp["deleted"], 1, "{imp}");
    assert!(imp["renamed"].as_u64().is_some_and(|n| n >= 2), "{imp}");
    assert!(e.cloud_user("newbie@example.org").is_some());
    assert_eq!(e.cloud_user("u000010@example.org").expect("u10")["attributes"]["title"], "Chief Of Everything");
    assert!(e.cloud_user("u000013@example.org").is_none());
    // Renamed and moved objects keep their identity: same object in the target.
    assert_eq!(e.cloud_user("u000012@example.org").expect("u12")["id"], id12);
    let u14 = e.cloud_user("u000014@example.org").expect("u14");
    assert_eq!(u14["id"], id14);
    assert_eq!(u14["attributes"]["active"], "false", "moved into the Disabled OU");
    e.ok(&["plan", "--exit-code"], 0);
}

fn try_import(_s: &Slapd, cfg: &str) -> crate::common::Out {
    let mut e = Env::empty();
    e.vars.push(("CORP_LDAP_PASSWORD".into(), "secret".into()));
    e.write("rules/people.toml", &std::fs::read_to_string(repo().join("examples/quickstart/rules/people.toml")).expect("rules"));
    e.write("idflow.toml", cfg);
    e.run(&["import", "corp"])
}

#[test]
fn a_refused_starttls_and_a_wrong_base_dn_say_so() {
    let plain = Slapd::start_without_tls();
    let o = try_import(&plain, &config(&plain.url(), ""));
    assert_eq!(o.code, 1, "{o:?}");
    for needle in ["the server refused StartTLS", "ldaps://", "enable TLS on the server", "starttls = false"] {
        assert!(o.stderr.contains(needle), "{needle:?} missing: {o:?}");
    }
    // A base DN that is not there: one clear error, no misleading syncrepl warning before it.
    let s = Slapd::start(None);
    let cfg = config(&s.url(), &format!("ca_file = \"{}\"\n", s.ca()))
        .replace("base_dn = \"dc=example,dc=org\"", "base_dn = \"dc=exmaple,dc=org\"");
    let o = try_import(&s, &cfg);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("below dc=exmaple,dc=org") && o.stderr.contains("is the base DN right?"), "{o:?}");
    assert!(!o.stderr.contains("syncrepl"), "{o:?}");
}

#[test]
fn tls_modes_and_connection_faults() {
    let s = Slapd::start(Some(&generated(20, 2)));
    let ca = format!("ca_file = \"{}\"\n", s.ca());
    let ok = |cfg: String, what: &str| {
        let o = try_import(&s, &cfg);
        assert_eq!(o.code, 0, "{what}: {o:?}");
        assert!(o.stdout.contains("22 read"), "{what}: {o:?}");
        o
    };
    let fails = |cfg: String, what: &str, needle: &str| {
        let o = try_import(&s, &cfg);
        assert_eq!(o.code, 1, "{what}: {o:?}");
        assert!(o.stderr.contains(needle), "{what}: expected {needle:?} in {o:?}");
        assert!(!o.stderr.contains("secret"), "the password must never be printed: {o:?}");
    };
    ok(config(&s.url(), &ca), "StartTLS with the server's CA");
    ok(config(&s.ldaps_url(), &ca), "LDAPS with the server's CA");
    ok(config(&s.ldaps_url(), &format!("{ca}tls_server_name = \"localhost\"\n")), "LDAPS verified as localhost");
    fails(config(&s.ldaps_url(), ""), "LDAPS without the CA", "cannot connect");
    fails(config(&s.url(), ""), "StartTLS without the CA", "cannot connect");
    fails(
        config(&s.ldaps_url(), &format!("{ca}tls_server_name = \"dc1.example.test\"\n")),
        "a name the certificate does not hold",
        "cannot connect",
    );
    let o = ok(config(&s.ldaps_url(), "tls_insecure = true\n"), "verification off");
    assert!(o.stderr.contains("tls_insecure"), "it warns on every run: {o:?}");
    let bad_pw = config(&s.url(), &ca).replace("password_env = \"CORP_LDAP_PASSWORD\"", "password_file = \"pw.txt\"");
    let mut e = Env::empty();
    e.write("pw.txt", "wrong\n");
    e.write("rules/people.toml", &std::fs::read_to_string(repo().join("examples/quickstart/rules/people.toml")).expect("rules"));
    e.write("idflow.toml", &bad_pw);
    e.vars.clear();
    let o = e.run(&["import", "corp"]);
    assert!(o.code == 1 && o.stderr.contains("invalid credentials"), "{o:?}");
    fails(
        config(&s.url(), &ca).replace("base_dn = \"dc=example,dc=org\"", "base_dn = \"dc=nowhere,dc=org\""),
        "wrong base DN",
        "no such object",
    );
    fails(config("ldap://127.0.0.1:1", &ca), "nothing listening", "cannot connect to ldap://127.0.0.1:1");
    // An inline password needs a private config file.
    let inline = config(&s.url(), &ca).replace("password_env = \"CORP_LDAP_PASSWORD\"", "password = \"secret\"");
    fails(inline, "inline password in a world-readable file", "chmod 600");
}

#[test]
fn server_stopped_mid_import_then_next_run_completes() {
    let s = Slapd::start(Some(&generated(20_000, 10)));
    let e = env_for(&s, "page_size = 5\n");
    let child = e.command(&["apply"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(700));
    s.stop();
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the run fails clearly: {stderr}");
    assert!(stderr.contains("connector \"corp\""), "{stderr}");
    assert!(!e.path("out/cloud.json").exists(), "nothing half-imported was synced or exported");
    s.restart();
    let r = e.json(&["apply"], 0);
    assert_eq!(r["import"][0]["mode"], "full", "{}", r["import"]);
    let users: Vec<_> = e.cloud().into_iter().filter(|o| o["type"] == "User").collect();
    let unique: std::collections::HashSet<String> = users.iter().map(|u| u["attributes"]["userName"].to_string()).collect();
    assert_eq!(users.len(), unique.len());
    assert_eq!(users.len(), (0..20_000).filter(|i| i % 40 != 11).count());
}

/// Runs idflow with `args`, freezes `s` (SIGSTOP) once `ready` says so, and waits for the run
/// to end on its own (a minute at most: without timeouts it would wait for ever); thaws `s`.
/// The exit code, stdout and stderr (through files: a pipe nobody reads would fill).
fn frozen_mid_run(s: &Slapd, e: &Env, args: &[&str], ready: impl Fn() -> bool) -> (Option<i32>, String, String) {
    let (out, err) = (e.path("frozen.out"), e.path("frozen.err"));
    let mut child = e
        .command(args)
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("spawn");
    let started = std::time::Instant::now();
    while !ready() {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "never ready to freeze the server");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    s.signal("STOP");
    let frozen = std::time::Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if frozen.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            s.signal("CONT");
            panic!("idflow still waits for a server that stopped answering a minute ago");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    s.signal("CONT");
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).expect("output");
    (code, read(out), read(err))
}

#[test]
fn a_server_that_stops_answering_mid_import_times_out() {
    let s = Slapd::start(Some(&generated(20_000, 10)));
    let e = env_for(&s, "page_size = 5\ntimeout_seconds = 2\n");
    let started = std::time::Instant::now();
    let (code, _, stderr) = frozen_mid_run(&s, &e, &["apply"], || started.elapsed() > std::time::Duration::from_millis(700));
    assert_eq!(code, Some(1), "the run fails clearly: {stderr}");
    // Mid-search as a rule (the search, then the reconnect's own wait); the bind, should the
    // freeze come that early.
    assert!(stderr.contains("no answer from the directory within 2 s (the connector's timeout_seconds)"), "{stderr}");
    assert!(!e.path("out/cloud.json").exists(), "nothing half-imported was synced or exported");
    // The server answers again: the next run imports it whole.
    let r = e.json(&["apply"], 0);
    assert_eq!(r["import"][0]["mode"], "full", "{}", r["import"]);
    assert_eq!(e.cloud().into_iter().filter(|o| o["type"] == "User").count(), (0..20_000).filter(|i| i % 40 != 11).count());
}

#[test]
fn a_bad_watermark_falls_back_to_a_full_import() {
    let s = Slapd::start(Some(&generated(50, 3)));
    let e = env_for(&s, "");
    e.ok(&["apply"], 0);
    for (wm, warning) in [
        ("not a watermark", "not one idflow wrote"),
        // A cookie the server cannot use.
        (r#"{"dc=example,dc=org":"bm90IGEgY29va2ll"}"#, "full import"),
    ] {
        common::set_watermark(&e, "corp", wm);
        let o = e.ok(&["import", "corp", "--json"], 0);
        let r: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
        assert_eq!(r["import"][0]["mode"], "full", "{o:?}");
        assert_eq!(r["import"][0]["deleted"], 0, "{o:?}");
        assert!(o.stderr.contains(warning), "{warning:?}: {o:?}");
    }
    e.ok(&["plan", "--exit-code"], 0);
}

/// `e` (a `small` environment) with an ldap target `dir` on `s` below ou=People: people from
/// corp are provisioned there, joined by mail to entries already there.
fn with_ldap_target(s: &Slapd, e: &mut Env, extra: &str) {
    e.vars.push(("DIR_PASSWORD".into(), "secret".into()));
    let cfg = crate::common::SMALL_CONFIG.to_string()
        + format!(
            "\n[[connector]]\nname = \"dir\"\ntype = \"ldap\"\nurl = \"{}\"\nca_file = \"{}\"\nbind_dn = \"cn=admin,dc=example,dc=org\"\npassword_env = \"DIR_PASSWORD\"\nbase_dn = \"ou=People,dc=example,dc=org\"\nreference_attributes = [\"manager\"]\n{extra}[connector.object_types]\nperson = \"(objectClass=inetOrgPerson)\"\n",
            s.url(),
            s.ca()
        )
        .as_str();
    e.write("idflow.toml", &cfg);
    e.write(
        "rules/dir.toml",
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
name = "out-dir"
direction = "outbound"
connector = "dir"
metaverse_type = "person"
target_type = "person"
scope = "mv.mail != ()"
link = "provision"
deprovision = "delete"
dn = '"uid=" + escape_dn(mv.uid) + ",ou=People,dc=example,dc=org"'
join = [ { target = "mail", expr = "mv.mail" } ]
[rule.flows]
objectClass = '["top", "inetOrgPerson"]'
uid = "mv.uid"
cn = "mv.displayName"
sn = "mv.sn"
mail = "mv.mail"
manager = "mv.manager"
"#,
    );
}

#[test]
fn ldap_as_a_target() {
    let s = Slapd::start(Some(PEOPLE_OU));
    let mut e = crate::common::small(&[
        crate::common::person("ada", 1, ""),
        crate::common::person("bob", 2, "manager: uid=ada,ou=People,dc=example,dc=org\n"),
    ]);
    with_ldap_target(&s, &mut e, "");
    let r = e.json(&["apply"], 0);
    let dir = r["export"].as_array().expect("exports").iter().find(|x| x["connector"] == "dir").cloned().expect("dir export");
    assert_eq!(dir["added"], 2, "{r}");
    let bob = s.search("ou=People,dc=example,dc=org", "(uid=bob)", &["manager", "mail"]);
    assert!(bob.contains("manager: uid=ada,ou=People,dc=example,dc=org"), "{bob}");
    e.ok(&["plan", "--exit-code"], 0);
    // The source renames ada's uid: the target entry is renamed (modrdn), bob's manager follows.
    let ldif = e.read("corp.ldif").replace("uid: ada\n", "uid: ada.l\n");
    e.write("corp.ldif", &ldif);
    e.ok(&["apply"], 0);
    let ada = s.search("ou=People,dc=example,dc=org", "(mail=ada@example.org)", &["uid"]);
    assert!(ada.contains("dn: uid=ada.l,ou=People,dc=example,dc=org"), "{ada}");
    let bob = s.search("ou=People,dc=example,dc=org", "(uid=bob)", &["manager"]);
    assert!(bob.contains("manager: uid=ada.l,ou=People,dc=example,dc=org"), "{bob}");
    // Deleted in the source: deleted in the target.
    e.write("corp.ldif", &crate::common::person("ada", 1, "").replace("uid: ada\n", "uid: ada.l\n"));
    e.ok(&["apply"], 0);
    assert!(s.search("ou=People,dc=example,dc=org", "(uid=bob)", &["dn"]).trim().is_empty());
    e.ok(&["plan", "--exit-code"], 0);
}

#[test]
fn an_ldap_target_that_stops_answering_mid_export_times_out_and_nothing_is_made_twice() {
    let s = Slapd::start(Some(PEOPLE_OU));
    let mut e = crate::common::small(&[]);
    e.write("corp.ldif", &generated(3_000, 0));
    with_ldap_target(&s, &mut e, "timeout_seconds = 2\n");
    let count = || s.search("ou=People,dc=example,dc=org", "(uid=*)", &["1.1"]).matches("dn: ").count();
    // Frozen while the export is under way: once the first entries are there.
    let (code, _, stderr) = frozen_mid_run(&s, &e, &["apply"], || count() >= 50);
    // Mid-batch: done with errors on the objects not exported (2); between two batches, the
    // next batch's connection fails the export (1).
    assert!(matches!(code, Some(1) | Some(2)), "{code:?}: {stderr}");
    assert!(stderr.contains("no answer from the directory within 2 s"), "{stderr}");
    // Thawed, the server may carry out the add it held when it froze: an entry idflow made but
    // never heard about. The next run finishes the export and records that one as added, once.
    e.ok(&["apply"], 0);
    let users = e.cloud().into_iter().filter(|o| o["type"] == "User").count();
    assert_eq!(count(), users, "one entry per person");
    e.ok(&["plan", "--exit-code"], 0);
}

/// The dir target of [`with_ldap_target`] without its outbound join: an entry already at the DN
/// idflow wants is met by the add alone.
fn without_join(e: &Env) {
    let rules = e.read("rules/dir.toml");
    let no_join = rules.replace("join = [ { target = \"mail\", expr = \"mv.mail\" } ]\n", "");
    assert_ne!(rules, no_join);
    e.write("rules/dir.toml", &no_join);
}

#[test]
fn an_add_that_landed_unheard_is_recorded_once() {
    // What an add of ada made, by the account idflow binds as, before its answer was lost.
    let made = "dn: uid=ada,ou=People,dc=example,dc=org\nobjectClass: top\nobjectClass: inetOrgPerson\nuid: ada\ncn: ada\nsn: ada\nmail: ada@example.org\n\n";
    let s = Slapd::start(Some(&format!("{PEOPLE_OU}{made}")));
    let mut e = crate::common::small(&[crate::common::person("ada", 1, "")]);
    with_ldap_target(&s, &mut e, "");
    without_join(&e);
    let r = e.json(&["apply"], 0);
    let dir = r["export"].as_array().expect("exports").iter().find(|x| x["connector"] == "dir").cloned().expect("dir export");
    assert_eq!((dir["added"].as_u64(), dir["failed"].as_u64()), (Some(1), Some(0)), "{dir}");
    assert_eq!(s.search("ou=People,dc=example,dc=org", "(uid=ada)", &["1.1"]).matches("dn: ").count(), 1);
    e.ok(&["plan", "--exit-code"], 0);
}

#[test]
fn an_entry_someone_else_made_at_the_dn_is_left_alone() {
    let other = "dn: uid=ada,ou=People,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada Other\nsn: Other\nmail: other@example.org\n\n";
    let s = Slapd::start(Some(&format!("{PEOPLE_OU}{other}")));
    let mut e = crate::common::small(&[crate::common::person("ada", 1, "")]);
    with_ldap_target(&s, &mut e, "");
    // Not joined (another mail), and not taken for a create of idflow's that landed unheard:
    // the add is refused, an error on the object, and the entry stays as it is.
    let o = e.run(&["apply"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stdout.contains("add uid=ada,ou=People,dc=example,dc=org: result code 68"), "{o:?}");
    let ada = s.search("ou=People,dc=example,dc=org", "(uid=ada)", &["mail", "sn", "cn"]);
    assert!(ada.contains("mail: other@example.org") && ada.contains("sn: Other") && ada.contains("cn: Ada Other"), "{ada}");
    assert_eq!(e.run(&["apply"]).code, 2, "the error stays until someone fixes it");
}

/// A person deleted and made again at the same DN between two delta imports (a rehire: a new
/// entryUUID): the metaverse and the target hold one person, no error, no second account. The
/// slapd here sends the deletion first; a directory that sends it after the new entry is
/// import/taken.rs's unit test (the add waits for the end of the import).
#[test]
fn a_person_deleted_and_made_again_at_the_same_dn_is_one_person() {
    let s = Slapd::start(Some(&generated(50, 5)));
    let e = env_for(&s, "");
    e.json(&["apply"], 0);
    let uid = "u000020";
    let dn = format!("uid={uid},ou=People,dc=example,dc=org");
    let before = e.cloud_user(&format!("{uid}@example.org")).expect("u20")["id"].clone();
    s.modify(&format!(
        "dn: {dn}\nchangetype: delete\n\n\
         dn: {dn}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: Re Hired\nsn: Hired\nmail: {uid}@example.org\nemployeeNumber: R20\ntitle: Rehired\n"
    ));
    let r = e.json(&["apply"], 0);
    assert_eq!(r["import"][0]["mode"], "delta", "{r}");
    assert!(r["errors"].as_array().is_some_and(|a| a.is_empty()), "{r}");
    let users: Vec<_> = e.cloud().into_iter().filter(|o| o["attributes"]["userName"] == format!("{uid}@example.org")).collect();
    assert_eq!(users.len(), 1, "one account: {users:?}");
    assert_eq!(users[0]["attributes"]["title"], "Rehired", "{users:?}");
    assert_ne!(users[0]["id"], before, "a new person: {users:?}");
    e.ok(&["plan", "--exit-code"], 0);
}

/// Anchored by an attribute of its own (an employee number) rather than entryUUID, which a
/// delta names objects by: a deletion in the directory is found by reading it whole, not lost
/// (the delta's deletion named an entryUUID no object here had, and the leaver kept the
/// account); the run says why it reads whole.
#[test]
fn an_anchor_other_than_entry_uuid_imports_whole_and_finds_the_leaver() {
    let s = Slapd::start(Some(&generated(50, 0)));
    let e = env_for(&s, "anchor = \"employeeNumber\"\n");
    let r = e.json(&["apply"], 0);
    assert!(r["errors"].as_array().is_some_and(|a| a.is_empty()), "{r}");
    let leaver = "u000020@example.org";
    assert!(e.cloud_user(leaver).is_some(), "{r}");
    s.modify("dn: uid=u000020,ou=People,dc=example,dc=org\nchangetype: delete\n");
    let o = e.command(&["apply", "--json"]).output().expect("idflow runs");
    assert!(o.status.success(), "{o:?}");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(r["import"][0]["mode"], "full", "{r}");
    assert_eq!(r["import"][0]["deleted"], 1, "{r}");
    assert!(e.cloud_user(leaver).is_none(), "the leaver's account is gone: {r}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("a delta names objects by entryUUID, so every import of this connector reads it whole"), "{stderr}");
}

/// Two OUs in scope, read one after the other: a contractor moved into the OU read first is an
/// entry to that OU and a deletion to the one she left. She is still there: her account stays
/// (the deletion, applied after the move, deprovisioned a current employee).
#[test]
fn a_move_between_two_ous_in_scope_keeps_the_person() {
    let mut seed = generated(20, 0);
    seed.push_str(
        "dn: ou=Contractors,dc=example,dc=org\nobjectClass: organizationalUnit\nou: Contractors\n\n\
         dn: uid=cora,ou=Contractors,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: cora\ncn: Cora Tractor\nsn: Tractor\nmail: cora@example.org\nemployeeNumber: C1\n\n",
    );
    let s = Slapd::start(Some(&seed));
    let e = env_for(&s, "include_ous = [\"ou=People,dc=example,dc=org\", \"ou=Contractors,dc=example,dc=org\"]\n");
    e.json(&["apply"], 0);
    let before = e.cloud_user("cora@example.org").expect("cora")["id"].clone();
    s.modify("dn: uid=cora,ou=Contractors,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid=cora\ndeleteoldrdn: 1\nnewsuperior: ou=People,dc=example,dc=org\n");
    let r = e.json(&["apply"], 0);
    assert_eq!(r["import"][0]["mode"], "delta", "{r}");
    assert_eq!(r["import"][0]["deleted"], 0, "{r}");
    let cora = e.cloud_user("cora@example.org").expect("cora's account stays");
    assert_eq!(cora["id"], before, "{r}");
}

/// Two people's DNs swapped between two runs (three modrdns): a delta meets each at the DN the
/// other held. Neither is a new person or an error: both keep their accounts.
#[test]
fn two_dns_swapped_between_runs_keep_both_people() {
    let mut seed = generated(20, 0);
    for (uid, n) in [("ann", 1), ("ben", 2)] {
        seed.push_str(&format!(
            "dn: uid={uid},ou=People,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n\
             mail: {uid}@example.org\nemployeeNumber: S{n}\n\n"
        ));
    }
    let s = Slapd::start(Some(&seed));
    let e = env_for(&s, "");
    e.json(&["apply"], 0);
    let ids = || ["ann", "ben"].map(|u| e.cloud_user(&format!("{u}@example.org")).expect("account")["id"].clone());
    let before = ids();
    let modrdn = |from: &str, to: &str| {
        format!("dn: uid={from},ou=People,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid={to}\ndeleteoldrdn: 1\n\n")
    };
    s.modify(&[modrdn("ann", "swap"), modrdn("ben", "ann"), modrdn("swap", "ben")].concat());
    let r = e.json(&["apply"], 0);
    let imp = &r["import"][0];
    assert_eq!((imp["mode"].as_str(), imp["renamed"].as_u64(), imp["errors"].as_u64()), (Some("delta"), Some(2), Some(0)), "{r}");
    assert_eq!(ids(), before, "{r}");
    e.ok(&["plan", "--exit-code"], 0);
}

/// Two OUs read in turn, and a person moved from the one read second into the one read first
/// while they are read (the run held, by a proxy, at the second OU's search): in neither read.
/// A full import looks up the objects it did not read by their anchors before it takes them for
/// gone; a delta looks a deletion up by its entryUUID first. Neither is a deletion, and the accounts stay.
#[test]
fn a_move_between_two_ous_while_they_are_read_is_not_a_deletion() {
    let contractor = |uid: &str, n: u32| {
        format!(
            "dn: uid={uid},ou=Contractors,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid} Tractor\nsn: Tractor\nmail: {uid}@example.org\nemployeeNumber: C{n}\n\n"
        )
    };
    let mut seed = generated(20, 0);
    seed.push_str("dn: ou=Contractors,dc=example,dc=org\nobjectClass: organizationalUnit\nou: Contractors\n\n");
    seed.push_str(&contractor("cora", 1));
    seed.push_str(&contractor("dora", 2));
    let s = Slapd::start(Some(&seed));
    let proxy = PausingProxy::start(s.port, "ou=Contractors,dc=example,dc=org");
    let e = env_for(&s, "include_ous = [\"ou=People,dc=example,dc=org\", \"ou=Contractors,dc=example,dc=org\"]\nstarttls = false\n");
    let text = e.read("idflow.toml").replace(&s.url(), &proxy.url());
    e.write("idflow.toml", &text);
    e.json(&["apply"], 0);
    let id = |uid: &str| e.cloud_user(&format!("{uid}@example.org")).unwrap_or_else(|| panic!("{uid}'s account"))["id"].clone();
    let before = (id("cora"), id("dora"));
    let moved = |uid: &str| {
        format!("dn: uid={uid},ou=Contractors,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid={uid}\ndeleteoldrdn: 1\nnewsuperior: ou=People,dc=example,dc=org\n")
    };
    let held_run = |args: &[&str], nth: usize, change: &str| {
        proxy.arm(nth);
        let child = e.command(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("spawn");
        proxy.wait_held();
        s.modify(change);
        proxy.release();
        let o = child.wait_with_output().expect("wait");
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|x| panic!("{x}: {o:?}"));
        assert_eq!(o.status.code(), Some(0), "{r}");
        r
    };
    // The full import asks for the watermark below each OU, then reads them: its second search
    // below Contractors is the read.
    let r = held_run(&["import", "--full", "corp", "--json"], 2, &moved("cora"));
    assert_eq!(r["import"][0]["deleted"], 0, "{r}");
    assert_eq!(r["import"][0]["renamed"], 1, "cora is read where she went, after the read: {r}");
    // The delta reads People, then Contractors: dora leaves Contractors for People in between.
    let r = held_run(&["import", "corp", "--json"], 1, &moved("dora"));
    assert_eq!(r["import"][0]["mode"], "delta", "{r}");
    assert_eq!(r["import"][0]["deleted"], 0, "{r}");
    let r = e.json(&["apply"], 0);
    assert_eq!(r["import"][0]["deleted"], 0, "{r}");
    assert_eq!((id("cora"), id("dora")), before, "{r}");
    let o = e.ok(&["preview", "corp", "uid=dora,ou=People,dc=example,dc=org"], 0);
    assert!(o.stdout.contains("dora"), "{o:?}");
}

/// Two OUs read in turn, and a leaver: the full import looks her up by entryUUID before she is
/// gone, and that look-up loses its connection (cut by a proxy as it is sent). It is made
/// again once, on a new connection to the same server, as the read itself would be: she is
/// deleted. Cut twice, the import fails and deletes nothing.
#[test]
fn a_look_up_of_objects_not_read_that_loses_its_connection_is_made_again() {
    let mut seed = generated(20, 0);
    seed.push_str("dn: ou=Contractors,dc=example,dc=org\nobjectClass: organizationalUnit\nou: Contractors\n\n");
    seed.push_str(
        "dn: uid=cora,ou=Contractors,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: cora\ncn: cora Tractor\nsn: Tractor\nmail: cora@example.org\nemployeeNumber: C1\n\n",
    );
    let s = Slapd::start(Some(&seed));
    let found = s.search("uid=cora,ou=Contractors,dc=example,dc=org", "(objectClass=*)", &["entryUUID"]);
    let uuid = found.lines().find_map(|l| l.strip_prefix("entryUUID: ")).unwrap_or_else(|| panic!("cora's entryUUID: {found}")).to_string();
    // Her entryUUID goes to the server in the look-up alone.
    let proxy = PausingProxy::start(s.port, &uuid);
    let e = env_for(&s, "include_ous = [\"ou=People,dc=example,dc=org\", \"ou=Contractors,dc=example,dc=org\"]\nstarttls = false\n");
    let text = e.read("idflow.toml").replace(&s.url(), &proxy.url());
    e.write("idflow.toml", &text);
    e.json(&["apply"], 0);
    assert!(e.cloud_user("cora@example.org").is_some());
    s.modify("dn: uid=cora,ou=Contractors,dc=example,dc=org\nchangetype: delete\n");
    proxy.arm_cut(1, 2);
    let o = e.ok(&["import", "--full", "corp"], 1);
    proxy.wait_held();
    assert!(o.stderr.contains("(again after a reconnect): the import is incomplete and nothing of it is kept"), "{o:?}");
    proxy.arm_cut(1, 1);
    let o = e.ok(&["import", "--full", "corp", "--json"], 0);
    proxy.wait_held();
    let r: serde_json::Value = serde_json::from_str(&o.stdout).unwrap_or_else(|x| panic!("{x}: {o:?}"));
    let i = &r["import"][0];
    assert_eq!((i["looked_up"].as_u64(), i["deleted"].as_u64(), i["errors"].as_u64()), (Some(1), Some(1), Some(0)), "{r}");
    assert!(o.stderr.contains("reconnecting once and looking the objects not read up again"), "{o:?}");
    e.json(&["apply"], 0);
    assert!(e.cloud_user("cora@example.org").is_none(), "the leaver's account goes");
}

/// One OU of include_ous inside another: an entry below both is one object, in a full import
/// and in a delta (both OUs report its change), not a duplicate anchor; moved out of both into
/// an OU read before them while a delta reads (both report a deletion), it is not deleted.
#[test]
fn an_entry_below_two_nested_include_ous_is_one_object() {
    let mut seed = generated(5, 0);
    seed.push_str(
        "dn: ou=Contractors,dc=example,dc=org\nobjectClass: organizationalUnit\nou: Contractors\n\n\
         dn: ou=Interns,ou=People,dc=example,dc=org\nobjectClass: organizationalUnit\nou: Interns\n\n\
         dn: uid=ivy,ou=Interns,ou=People,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: ivy\ncn: Ivy Intern\nsn: Intern\nmail: ivy@example.org\nemployeeNumber: I1\ntitle: Intern\n\n",
    );
    let s = Slapd::start(Some(&seed));
    let proxy = PausingProxy::start(s.port, "ou=People,dc=example,dc=org");
    let e = env_for(
        &s,
        "include_ous = [\"ou=Contractors,dc=example,dc=org\", \"ou=People,dc=example,dc=org\", \"ou=Interns,ou=People,dc=example,dc=org\"]\nstarttls = false\n",
    );
    e.write("idflow.toml", &e.read("idflow.toml").replace(&s.url(), &proxy.url()));
    let r = e.json(&["apply"], 0);
    assert_eq!(r["import"][0]["errors"], 0, "{r}");
    let before = e.cloud_user("ivy@example.org").expect("ivy")["id"].clone();
    s.modify("dn: uid=ivy,ou=Interns,ou=People,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Analyst\n");
    let r = e.json(&["apply"], 0);
    assert_eq!((r["import"][0]["mode"].as_str(), r["import"][0]["updated"].as_u64()), (Some("delta"), Some(1)), "{r}");
    assert_eq!(e.cloud_user("ivy@example.org").expect("ivy")["attributes"]["title"], "Analyst", "{r}");
    // Held at the search below People (Contractors read already): ivy moves to Contractors.
    proxy.arm(1);
    let child = e.command(&["import", "corp", "--json"]).stdout(std::process::Stdio::piped()).spawn().expect("spawn");
    proxy.wait_held();
    s.modify("dn: uid=ivy,ou=Interns,ou=People,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid=ivy\ndeleteoldrdn: 1\nnewsuperior: ou=Contractors,dc=example,dc=org\n");
    proxy.release();
    let o = child.wait_with_output().expect("wait");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(r["import"][0]["mode"], "delta", "{r}");
    assert_eq!((r["import"][0]["deleted"].as_u64(), r["import"][0]["renamed"].as_u64()), (Some(0), Some(1)), "{r}");
    e.json(&["apply"], 0);
    assert_eq!(e.cloud_user("ivy@example.org").expect("ivy stays")["id"], before);
}
