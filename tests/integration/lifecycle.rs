//! Objects over time: deltas (modify, rename, delete), scope changes, references arriving late,
//! precedence, staging mode, watermarks under plan, and a crash in the middle of a run.
use crate::common::{person, small, Env};

fn base() -> Vec<String> {
    vec![person("ada", 1, "title: Analyst\n"), person("bob", 2, "manager: uid=ada,ou=People,dc=example,dc=org\n"), person("cyd", 3, "")]
}

#[test]
fn deltas_modify_rename_delete_and_plan_never_moves_the_watermark() {
    let e = small(&base());
    e.ok(&["apply"], 0);
    let bob_id = e.cloud_user("bob@example.org").expect("bob")["id"].clone();
    e.write(
        "delta.ldif",
        "version: 1\n\n\
         dn: uid=ada,ou=People,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Director\n-\n\n\
         dn: uid=bob,ou=People,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid=robert\ndeleteoldrdn: 1\nnewsuperior: ou=Staff,dc=example,dc=org\n\n\
         dn: uid=cyd,ou=People,dc=example,dc=org\nchangetype: delete\n",
    );
    let p1 = e.ok(&["plan"], 0);
    assert!(p1.stdout.contains("0 to add, 1 to update, 1 to delete"), "{p1:?}");
    assert!(p1.stdout.contains("title : \"Analyst\" => \"Director\""), "{p1:?}");
    // A plan moves no watermark: the same plan again.
    let p2 = e.ok(&["plan"], 0);
    assert_eq!(p1.stdout, p2.stdout);
    let r = e.json(&["apply"], 0);
    assert_eq!(r["import"][0]["mode"], "delta", "{r}");
    assert_eq!(r["import"][0]["renamed"], 1, "{r}");
    assert_eq!(r["export"][0]["updated"], 1, "{r}");
    assert_eq!(r["export"][0]["deleted"], 1, "{r}");
    // The rename kept bob's identity: same object in the target, nothing deleted and re-added.
    let bob = e.cloud_user("bob@example.org").expect("bob after rename");
    assert_eq!(bob["id"], bob_id);
    assert!(e.cloud_user("cyd@example.org").is_none());
    let p = e.ok(&["preview", "corp", "uid=robert,ou=Staff,dc=example,dc=org"], 0);
    assert!(p.stdout.contains("uid=robert,ou=Staff"), "{p:?}");
    // The same delta file is not applied twice.
    let r = e.json(&["run"], 0);
    assert_eq!(r["import"][0]["read"], 0, "{r}");
    e.ok(&["plan", "--exit-code"], 0);
}

#[test]
fn full_import_sees_renames_and_deletions() {
    let e = small(&base());
    e.ok(&["apply"], 0);
    let ada_id = e.cloud_user("ada@example.org").expect("ada")["id"].clone();
    // ada moves OU (same entryUUID), cyd is gone from the file.
    let moved = base()[0].replace("uid=ada,ou=People", "uid=ada,ou=Moved");
    e.write("corp.ldif", &[moved, base()[1].clone()].join("\n"));
    let r = e.json(&["import", "--full", "corp"], 0);
    assert_eq!(r["import"][0]["renamed"], 1, "{r}");
    assert_eq!(r["import"][0]["deleted"], 1, "{r}");
    let r = e.json(&["apply"], 0);
    assert_eq!(r["export"][0]["deleted"], 1, "{r}");
    assert_eq!(e.cloud_user("ada@example.org").expect("ada")["id"], ada_id);
    // bob's manager still points at ada, who moved.
    assert_eq!(e.cloud_user("bob@example.org").expect("bob")["attributes"]["manager"], ada_id);
}

#[test]
fn leaving_scope_deprovisions_and_references_arrive_in_any_order() {
    // bob's manager (dan) is not in the directory yet.
    let e = small(&[person("bob", 2, "manager: uid=dan,ou=People,dc=example,dc=org\n"), person("cyd", 3, "")]);
    let r = e.json(&["apply"], 2);
    assert!(r["errors"][0]["message"].as_str().is_some_and(|m| m.contains("uid=dan") && m.contains("does not exist")), "{r}");
    assert!(e.cloud_user("bob@example.org").expect("bob")["attributes"]["manager"].is_null());
    // dan arrives: bob's manager resolves without bob changing.
    e.write(
        "corp.ldif",
        &[person("bob", 2, "manager: uid=dan,ou=People,dc=example,dc=org\n"), person("cyd", 3, ""), person("dan", 4, "")].join("\n"),
    );
    e.ok(&["apply"], 0);
    let dan_id = e.cloud_user("dan@example.org").expect("dan")["id"].clone();
    assert_eq!(e.cloud_user("bob@example.org").expect("bob")["attributes"]["manager"], dan_id);
    // cyd loses her mail: out of scope, deleted in the target (deprovision = "delete").
    let no_mail = person("cyd", 3, "").lines().filter(|l| !l.starts_with("mail:")).collect::<Vec<_>>().join("\n") + "\n";
    e.write("corp.ldif", &[person("bob", 2, "manager: uid=dan,ou=People,dc=example,dc=org\n"), no_mail, person("dan", 4, "")].join("\n"));
    let r = e.json(&["apply"], 0);
    assert_eq!(r["sync"]["metaverse_deleted"], 1, "{r}");
    assert!(e.cloud_user("cyd@example.org").is_none());
    // dan deleted: bob's manager reference is removed in the target too.
    e.write("corp.ldif", &[person("bob", 2, "")].join("\n"));
    e.ok(&["apply"], 0);
    assert!(e.cloud_user("bob@example.org").expect("bob")["attributes"]["manager"].is_null());
}

#[test]
fn disable_instead_of_delete() {
    let e = small(&base());
    e.write(
        "rules/rules.toml",
        &crate::common::SMALL_RULES
            .replace("deprovision = \"delete\"", "deprovision = \"disable\"\n[rule.deprovision_flows]\nactive = '\"false\"'")
            .replace("title = \"mv.title\"", "title = \"mv.title\"\nactive = '\"true\"'"),
    );
    e.ok(&["apply"], 0);
    assert_eq!(e.cloud_user("cyd@example.org").expect("cyd")["attributes"]["active"], "true");
    e.write("corp.ldif", &base()[..2].join("\n"));
    let r = e.json(&["apply"], 0);
    assert_eq!(r["export"][0]["deleted"], 0, "{r}");
    assert_eq!(e.cloud_user("cyd@example.org").expect("cyd kept")["attributes"]["active"], "false");
}

#[test]
fn precedence_lowest_wins_and_unit_hands_over() {
    let e = small(&base());
    let cfg = crate::common::SMALL_CONFIG.to_string()
        + "\n[[connector]]\nname = \"hr\"\ntype = \"ldif\"\npath = \"hr.ldif\"\nanchor = \"entryUUID\"\n[connector.object_types]\nworker = \"(objectClass=hrWorker)\"\n";
    e.write("idflow.toml", &cfg);
    e.write(
        "rules/hr.toml",
        r#"
[[rule]]
name = "in-hr"
direction = "inbound"
connector = "hr"
source_type = "worker"
metaverse_type = "person"
precedence = 50
link = "join"
join = [ { metaverse = "employeeId", expr = "source.employeeNumber" } ]
[rule.flows]
title = "source.jobTitle"
"#,
    );
    e.write("hr.ldif", "dn: cn=w1,o=hr\nobjectClass: hrWorker\nemployeeNumber: E1\njobTitle: Chief Analyst\nentryUUID: hr-1\n");
    e.ok(&["apply"], 0);
    assert_eq!(e.cloud_user("ada@example.org").expect("ada")["attributes"]["title"], "Chief Analyst");
    let j = e.json(&["preview", "corp", "uid=ada,ou=People,dc=example,dc=org"], 0);
    let title = j["attributes"].as_array().expect("attrs").iter().find(|a| a["name"] == "title").cloned().expect("title");
    assert_eq!(title["rule"], "in-hr");
    assert_eq!(title["contributions"].as_array().map(Vec::len), Some(2), "{title}");
    // HR's title disappears: its flow gives (), and the directory's contribution wins.
    e.write("hr.ldif", "dn: cn=w1,o=hr\nobjectClass: hrWorker\nemployeeNumber: E1\nentryUUID: hr-1\n");
    e.ok(&["apply"], 0);
    assert_eq!(e.cloud_user("ada@example.org").expect("ada")["attributes"]["title"], "Analyst");
}

#[test]
fn staging_mode_imports_and_syncs_but_never_exports() {
    let e = small(&base());
    e.write("idflow.toml", &crate::common::SMALL_CONFIG.replace("deletion_threshold = 3", "deletion_threshold = 3\nstaging_mode = true"));
    let o = e.ok(&["apply"], 0);
    assert!(o.stdout.contains("staging mode"), "{o:?}");
    assert!(!e.path("out/cloud.json").exists());
    let p = e.ok(&["plan"], 0);
    assert!(p.stdout.contains("3 to add") && p.stdout.contains("staging mode"), "{p:?}");
    // Out of staging: the held changes go out.
    e.write("idflow.toml", crate::common::SMALL_CONFIG);
    let r = e.json(&["apply"], 0);
    assert_eq!(r["export"][0]["added"], 3, "{r}");
}

/// More changes than the file target takes in one batch (50,000): the batches after the first
/// are made ahead, on a thread with a connection of its own, while each is recorded (this debug
/// build makes each again as the export would and compares), and the file is written on a thread
/// of its own. Killed as it exports, the next run adds the rest, each object once.
#[test]
fn an_export_larger_than_a_batch_makes_its_batches_ahead_and_resumes_after_kill_9() {
    let mut e = Env::quickstart();
    e.ok(&["generate", "--people", "53000", "--groups", "1000", "--out", "corp.ldif"], 0);
    e.ok(&["import"], 0);
    e.ok(&["sync"], 0);
    let pending = e.json(&["plan"], 0);
    let adds = pending["plan"]["totals"]["add"].as_u64().expect("adds");
    assert!(adds > 50_000, "{adds} adds: more than a batch");
    e.vars.push(("RUST_LOG".into(), "idflow_engine::export_ahead=debug,warn".into()));
    // Killed once its batches are being made ahead, a moment into the export.
    let mut child = e.command(&["export", "cloud"]).stderr(std::process::Stdio::piped()).spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    use std::io::BufRead;
    let ahead = std::io::BufReader::new(stderr).lines().any(|l| l.is_ok_and(|l| l.contains("made ahead, on a thread of their own")));
    assert!(ahead, "the export made no batch ahead");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    e.ok(&["export", "cloud"], 0);
    let ids: Vec<String> = e.cloud().iter().filter_map(|o| o["id"].as_str().map(str::to_string)).collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (adds as usize, adds as usize), "each object once");
    e.ok(&["plan", "--exit-code"], 0);
}

#[test]
fn killed_runs_resume_without_duplicates() {
    let e = Env::quickstart();
    e.ok(&["generate", "--people", "20000", "--groups", "400", "--out", "corp.ldif"], 0);
    let expected_users = e.read("corp.ldif").matches("\nmail: ").count();
    // Kill at several points of a first apply; each time the next attempt starts from what was committed.
    for delay_ms in [150u64, 600, 1500, 3000] {
        let mut child = e.command(&["apply"]).spawn().expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    e.ok(&["apply"], 0);
    let users: Vec<String> = e
        .cloud()
        .iter()
        .filter(|o| o["type"] == "User")
        .map(|o| o["attributes"]["userName"].as_str().unwrap_or_default().to_string())
        .collect();
    let unique: std::collections::HashSet<&String> = users.iter().collect();
    assert_eq!(users.len(), unique.len(), "duplicates in the target");
    assert_eq!(users.len(), expected_users);
    e.ok(&["plan", "--exit-code"], 0);
    // The killed runs show as interrupted, not as running forever.
    let h = e.json(&["history", "-n", "20"], 0);
    let statuses: Vec<&str> = h.as_array().expect("runs").iter().filter_map(|r| r["status"].as_str()).collect();
    assert!(statuses.contains(&"interrupted") && !statuses.contains(&"running"), "{statuses:?}");
}
