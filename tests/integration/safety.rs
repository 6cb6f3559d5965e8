//! The core left running: no silent loss, no takeover, no stale state. One test per guarantee
//! of the README's Safety section, each driving the real binary.
use crate::common::Env;
use std::collections::BTreeSet;

/// The target's object ids: what must not change when nothing should be re-created.
fn ids(e: &Env) -> BTreeSet<String> {
    e.cloud().iter().filter_map(|o| o["id"].as_str().map(str::to_string)).collect()
}

#[test]
fn an_import_that_met_a_read_error_deletes_nothing() {
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    let before = ids(&e);
    assert_eq!(before.len(), 1025);
    let full = e.read("corp.ldif");
    // A feed interrupted mid-copy: the last record cut at a line break, then mid-line.
    let cut = &full[..full.len() * 3 / 5];
    for cut_off in [&cut[..cut.rfind('\n').expect("a line")], cut] {
        e.write("corp.ldif", cut_off);
        let r = e.json(&["apply"], 2);
        assert_eq!(r["import"][0]["deleted"], 0, "{}", r["import"]);
        assert_eq!(r["import"][0]["incomplete"], true, "{}", r["import"]);
        assert!(r["notes"][0].as_str().is_some_and(|n| n.contains("nothing it did not see is inferred deleted")), "{r}");
        assert!(r["errors"][0]["message"].as_str().is_some_and(|m| m.contains("cut off")), "{r}");
        assert_eq!(ids(&e), before, "nothing deleted, nothing re-created");
    }
    // A record without its anchor is a read error too.
    e.write("corp.ldif", &full.replacen("entryUUID: ", "entryUUIDx: ", 1));
    let r = e.json(&["apply"], 2);
    assert_eq!(r["import"][0]["deleted"], 0, "{}", r["import"]);
    assert_eq!(ids(&e), before);
    // The whole file again: a clean read, nothing to do, the same target ids.
    e.write("corp.ldif", &full);
    let r = e.json(&["apply"], 0);
    assert_eq!(r["export"].as_array().map(|a| a.len()), Some(0), "{r}");
    assert_eq!(ids(&e), before);
}

#[test]
fn a_deletion_held_by_the_threshold_is_undone_by_fixing_the_source() {
    use crate::common::{person, small};
    // Six people (threshold 3); bob reports to ada.
    let people: Vec<String> = ["ada", "bob", "cyd", "dan", "eve", "fay"]
        .iter()
        .enumerate()
        .map(|(i, u)| person(u, i as u32 + 1, if *u == "bob" { "manager: uid=ada,ou=People,dc=example,dc=org\n" } else { "" }))
        .collect();
    let e = small(&people);
    e.ok(&["apply"], 0);
    let before = ids(&e);
    let bob_manager = e.cloud_user("bob@example.org").expect("bob")["attributes"]["manager"].clone();
    // Four leave the source: the export is refused, and plan and sync say why before export does.
    e.write("corp.ldif", &[people[1].clone(), people[4].clone()].join("\n"));
    let o = e.ok(&["plan"], 0);
    assert!(
        o.stdout.contains("4 to delete") && o.stdout.contains("4 deletions in \"cloud\" are held by the deletion threshold (3)"),
        "{o:?}"
    );
    e.ok(&["import"], 0);
    let o = e.ok(&["sync"], 0);
    assert!(o.stdout.contains("4 deletions in \"cloud\" are held by the deletion threshold"), "sync says so: {o:?}");
    let o = e.ok(&["apply"], 1);
    assert!(o.stderr.contains("would delete 4 objects"), "{o:?}");
    assert_eq!(ids(&e), before, "nothing deleted");
    // A full sync meanwhile (a schedule, a rule change) keeps them: objects gone from the source
    // are not taken for ones coming back.
    let r = e.json(&["sync", "--full"], 0);
    assert_eq!(r["sync"]["restored"].as_u64().unwrap_or(0), 0, "{r}");
    let o = e.ok(&["plan"], 0);
    assert!(o.stdout.contains("4 to delete"), "{o:?}");
    // They come back: nothing to delete, nothing to add, the same target objects.
    e.write("corp.ldif", &people.join("\n"));
    let o = e.ok(&["plan"], 0);
    assert!(o.stdout.contains("0 to add, ") && o.stdout.contains(" 0 to delete"), "{o:?}");
    let r = e.json(&["apply"], 0);
    assert_eq!(r["sync"]["restored"], 4, "{r}");
    assert_eq!(ids(&e), before, "the same target ids");
    assert_eq!(e.cloud_user("bob@example.org").expect("bob")["attributes"]["manager"], bob_manager);
    let o = e.ok(&["plan"], 0);
    assert!(o.stdout.contains("No changes"), "{o:?}");
    // A deletion that was exported is final: the one who comes back after it is new.
    e.write("corp.ldif", &people[..5].join("\n"));
    e.ok(&["apply"], 0);
    assert!(e.cloud_user("fay@example.org").is_none());
    e.write("corp.ldif", &people.join("\n"));
    e.ok(&["apply"], 0);
    assert!(e.cloud_user("fay@example.org").is_some_and(|f| !before.contains(f["id"].as_str().unwrap_or_default())));
}

#[test]
fn errors_stay_visible_until_they_are_fixed() {
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    let rules = e.read("rules/accounts.toml");
    e.write("rules/accounts.toml", &rules.replace(r#"title = "mv.jobTitle""#, r#"title = 'throw "broken on purpose"'"#));
    for _ in 0..2 {
        // Every run, delta too, retries the objects in error and its exit code says so.
        let o = e.ok(&["run"], 2);
        assert!(o.stdout.contains("976 errors"), "975 objects, and the rule that was stopped: {o:?}");
        // One line per distinct error, not one per object; a rule failing on every object stops.
        assert!(o.stdout.contains("cloud 50 objects (") && o.stdout.contains("cloud 925 objects ("), "{o:?}");
        assert!(o.stdout.contains("failed on 50 objects in a row, so it is not evaluated again in this run"), "{o:?}");
        assert!(o.stdout.lines().filter(|l| l.starts_with("error")).count() <= 3, "{o:?}");
        let o = e.ok(&["plan"], 2);
        assert!(o.stdout.contains("975 objects are in error") && !o.stdout.contains("the targets match the rules"), "{o:?}");
    }
    let h = e.json(&["history"], 0);
    assert_eq!((h[0]["status"].as_str(), h[1]["status"].as_str()), (Some("errors"), Some("errors")), "{h}");
    // Fixed: the next run says so, and so does the plan.
    e.write("rules/accounts.toml", &rules);
    e.ok(&["run"], 0);
    assert!(e.ok(&["plan"], 0).stdout.contains("No changes: the targets match the rules."));
}

#[test]
fn an_object_whose_inbound_flows_failed_is_not_provisioned_half_made() {
    use crate::common::{person, small, SMALL_RULES};
    let e = small(&[person("ada", 1, "title: Analyst\n")]);
    // Outbound without a scope: whatever reaches the metaverse would be provisioned.
    let rules = SMALL_RULES.replace("scope = 'mv.mail != ()'\n", "").replace(
        r#"title = "source.title""#,
        r#"title = 'if source.title == "Broken" { throw "broken on purpose" } else { source.title }'"#,
    );
    e.write("rules/rules.toml", &rules);
    e.ok(&["apply"], 0);
    let ada = e.cloud_user("ada@example.org").expect("ada");
    // A new person whose flows fail is not provisioned; one already there keeps its last good state.
    e.write("corp.ldif", &[person("ada", 1, "title: Broken\n"), person("bob", 2, "title: Broken\n")].join("\n"));
    let r = e.json(&["apply"], 2);
    let msgs: Vec<String> = r["errors"].as_array().expect("errors").iter().map(|x| x["message"].to_string()).collect();
    assert!(msgs.iter().any(|m| m.contains("not provisioned to cloud: its inbound flows failed")), "{msgs:?}");
    assert_eq!(e.cloud().len(), 1, "bob is not provisioned half-made: {:?}", e.cloud());
    assert_eq!(e.cloud_user("ada@example.org").expect("ada"), ada, "ada keeps her last good state");
    // Fixed at the source: bob arrives whole.
    e.write("corp.ldif", &[person("ada", 1, "title: Analyst\n"), person("bob", 2, "title: Clerk\n")].join("\n"));
    e.ok(&["apply"], 0);
    assert_eq!(e.cloud_user("bob@example.org").expect("bob")["attributes"]["title"], "Clerk");
}

#[test]
fn one_run_at_a_time_per_metaverse() {
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    // Another run holds the metaverse (here: this test, through the same lock).
    let lock = idflow_store::RunLock::take(&e.path("state/idflow.db"), "apply").expect("lock");
    for verb in ["run", "plan", "sync"] {
        let o = e.ok(&[verb], 1);
        assert!(o.stderr.contains("is in use: idflow apply (pid ") && o.stderr.contains("One run at a time"), "{o:?}");
    }
    // Reading the history is not a run.
    e.ok(&["history"], 0);
    drop(lock);
    e.ok(&["run"], 0);
}

#[test]
fn a_backup_taken_while_another_run_holds_the_metaverse_is_restored_over_a_damaged_one() {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::quickstart();
    let o = e.ok(&["backup", "before.db"], 1);
    assert!(o.stderr.contains("metaverse database ./state/idflow.db: there is none yet: nothing to back up"), "{o:?}");
    assert!(!e.path("state/idflow.db").exists(), "none made");
    e.ok(&["apply"], 0);
    let before = ids(&e);
    // Another run holds the metaverse: a backup is not a run, and reads one moment of it.
    let lock = idflow_store::RunLock::take(&e.path("state/idflow.db"), "serve").expect("lock");
    let o = e.ok(&["backup", "copy.db"], 0);
    assert!(o.stdout.starts_with("backed up ./state/idflow.db to copy.db (") && o.stdout.contains("checked"), "{o:?}");
    // A name SQLite would read as a URI is a file name like any other.
    e.ok(&["backup", "file:x.db"], 0);
    assert!(e.path("file:x.db").exists() && !e.path("x.db").exists());
    // A restore is a run: not while another holds the metaverse.
    let o = e.ok(&["restore", "copy.db"], 1);
    assert!(o.stderr.contains("is in use: idflow serve (pid ") && o.stderr.contains("One run at a time"), "{o:?}");
    drop(lock);
    for f in ["copy.db", "file:x.db"] {
        assert_eq!(std::fs::metadata(e.path(f)).expect("made").permissions().mode() & 0o777, 0o600, "{f}");
    }
    let o = e.ok(&["backup", "copy.db"], 1);
    assert!(o.stderr.contains("cannot back up to copy.db: it exists; give a new name"), "{o:?}");
    // A person added and exported after the backup.
    let corp = e.read("corp.ldif");
    e.write("corp.ldif", &format!("{corp}\n{}", crate::common::person("newbie", 999_999, "")));
    e.ok(&["apply"], 0);
    assert_eq!(ids(&e).len(), before.len() + 1);

    // The metaverse damaged (cut short): every run says so, names it and says what to do.
    let db = e.path("state/idflow.db");
    std::fs::OpenOptions::new().write(true).open(&db).expect("open").set_len(1_000_000).expect("cut");
    for verb in ["plan", "apply"] {
        let o = e.ok(&[verb], 1);
        assert!(
            o.stderr.contains("metaverse database ./state/idflow.db: database disk image is malformed")
                && o.stderr.contains("with `idflow restore FILE`"),
            "{verb}: {o:?}"
        );
    }
    // Restored as it says: nothing to do, the same target objects; the damaged one kept.
    let o = e.ok(&["restore", "copy.db"], 0);
    assert!(o.stdout.starts_with("restored ./state/idflow.db from copy.db") && o.stdout.contains("next: `idflow plan`"), "{o:?}");
    let kept: Vec<String> = std::fs::read_dir(e.path("state"))
        .expect("list")
        .filter_map(|f| f.ok().map(|f| f.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("idflow.db.replaced-"))
        .collect();
    assert!(kept.iter().any(|n| !n.ends_with("-wal") && !n.ends_with("-shm")), "the damaged one kept: {kept:?}");
    // The person added since the backup is imported again, and (the quickstart's rules join
    // nothing) made again; everything else is as it was.
    let o = e.ok(&["plan"], 0);
    assert!(o.stdout.contains("Plan: 1 to add, 0 to update, 0 to delete."), "{o:?}");
    e.ok(&["apply"], 0);
    let after = ids(&e);
    assert!(after.is_superset(&before) && after.len() == before.len() + 2, "{} objects", after.len());
    let o = e.ok(&["plan"], 0);
    assert!(o.stdout.contains("No changes: the targets match the rules."), "{o:?}");

    // Without a backup, a new metaverse adopts only what an outbound rule's join finds: the
    // quickstart's rules join nothing, so every object is made again (as the README warns).
    for f in ["state/idflow.db", "state/idflow.db-wal", "state/idflow.db-shm"] {
        let _ = std::fs::remove_file(e.path(f));
    }
    e.ok(&["apply"], 0);
    assert_eq!(e.cloud().len(), after.len() + before.len() + 1, "each of the sources' objects made once more");
}

#[test]
fn the_metaverse_is_readable_by_its_owner_alone() {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    let mode = |p: &str| std::fs::metadata(e.path(p)).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode("state"), 0o700);
    assert_eq!(mode("state/idflow.db"), 0o600);
    // An existing database that others can read is run, with a warning.
    std::fs::set_permissions(e.path("state/idflow.db"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let o = e.ok(&["run"], 0);
    assert!(o.stderr.contains("others can read it (mode 644): chmod 600"), "{o:?}");
}

#[test]
fn the_file_target_is_written_owner_only_and_a_readable_one_is_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    let mode = |p: &str| std::fs::metadata(e.path(p)).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode("out/cloud.json"), 0o600, "the target file holds identities");
    // One that others can read (made before this change, or by hand) is replaced by the next export.
    std::fs::set_permissions(e.path("out/cloud.json"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::write(e.path("out/cloud.json.tmp"), "left by a killed run").expect("tmp");
    std::fs::set_permissions(e.path("out/cloud.json.tmp"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let text = e.read("out/cloud.json");
    std::fs::write(e.path("out/cloud.json"), text.replace("Lovelace", "Byron")).expect("edit");
    e.ok(&["apply"], 0);
    assert_eq!(mode("out/cloud.json"), 0o600);
    assert!(e.read("out/cloud.json").contains("Lovelace"), "the export wrote it again");
}

#[test]
fn the_same_object_twice_in_a_read_is_an_error_on_both_and_made_once_at_most() {
    use crate::common::{person, small};
    let ada = person("ada", 1, "");
    let bob = person("bob", 2, "");
    // The same DN under another anchor (a record copied with a new entryUUID).
    let bob_again = bob.replace("000000000002", "000000000022");
    let e = small(&[ada.clone(), bob.clone(), bob_again.clone()]);
    let r = e.json(&["apply"], 2);
    let dups: Vec<&serde_json::Value> = r["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter(|x| x["message"].as_str().is_some_and(|m| m.contains("duplicate DN")))
        .collect();
    assert_eq!(dups.len(), 2, "an error on both records: {r}");
    assert!(e.cloud_user("bob@example.org").is_none(), "which bob is right is not guessed");
    // Fixed: bob arrives once.
    e.write("corp.ldif", &[ada.clone(), bob.clone()].join("\n"));
    e.ok(&["apply"], 0);
    let id = e.cloud_user("bob@example.org").expect("bob")["id"].clone();
    // Read twice again (same DN, and then the same anchor under another DN): never a second bob.
    let bob_elsewhere = bob.replace("uid=bob,", "uid=bobby,");
    for twice in [bob_again, bob_elsewhere] {
        e.write("corp.ldif", &[ada.clone(), bob.clone(), twice].join("\n"));
        let r = e.json(&["apply"], 2);
        assert!(r["errors"].as_array().expect("errors").len() >= 2, "{r}");
        let bobs: Vec<serde_json::Value> = e.cloud().into_iter().filter(|o| o["attributes"]["userName"] == "bob@example.org").collect();
        assert_eq!(bobs.len(), 1, "{bobs:?}");
        assert_eq!(bobs[0]["id"], id);
    }
}

#[test]
fn a_runaway_expression_is_stopped_by_time_and_size_and_says_which_limit() {
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    let rules = e.read("rules/accounts.toml");
    let with = |title: &str| rules.replace(r#"title = "mv.jobTitle""#, &format!("title = '{title}'"));
    // Slowly grown: inside the operation and size limits for seconds per object, stopped by time.
    e.write("rules/accounts.toml", &with(r#"let a = []; while true { a += ["xxxxxxxxxxxxxxxxxxxxxxxx"]; }; a"#));
    let o = e.ok(&["run"], 2);
    assert!(o.stdout.contains("the time limit, 100 ms on one object, was reached"), "{o:?}");
    assert!(o.stdout.contains("failed on 50 objects in a row"), "the run's total is bounded too: {o:?}");
    // Grown fast: the size limit.
    e.write("rules/accounts.toml", &with(r#"let s = "x"; loop { s += s; }"#));
    let o = e.ok(&["run"], 2);
    assert!(o.stdout.contains("built too large a value"), "{o:?}");
    // A loop that does nothing: the operation limit.
    e.write("rules/accounts.toml", &with("loop { }"));
    let o = e.ok(&["run"], 2);
    assert!(o.stdout.contains("the operation limit, 1000000 operations, was reached"), "{o:?}");
    // The limits are settings.
    e.write("idflow.toml", &e.read("idflow.toml").replace("[rules]", "[rules]\nmax_milliseconds = 20"));
    e.write("rules/accounts.toml", &with(r#"let a = []; while true { a += ["xxxxxxxxxxxxxxxxxxxxxxxx"]; }; a"#));
    let o = e.ok(&["run"], 2);
    assert!(o.stdout.contains("the time limit, 20 ms on one object"), "{o:?}");
}

/// An inbound flow is evaluated ahead, where its object is decoded: one that runs away on
/// every object is stopped there as the stage stops it, so the run still ends in seconds.
#[test]
fn a_runaway_inbound_flow_is_stopped_too() {
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    let rules = e.read("rules/accounts.toml");
    let runaway = r#"jobTitle = 'let a = []; while true { a += ["xxxxxxxxxxxxxxxxxxxxxxxx"]; }; a'"#;
    e.write("rules/accounts.toml", &rules.replace(r#"jobTitle = "source.title""#, runaway));
    let started = std::time::Instant::now();
    let o = e.ok(&["sync"], 2);
    assert!(o.stdout.contains("the time limit, 100 ms on one object, was reached"), "{o:?}");
    assert!(o.stdout.contains("failed on 50 objects in a row"), "{o:?}");
    // Unstopped, 975 people at 100 ms each would take over a minute and a half.
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "{:?}", started.elapsed());
    e.write("rules/accounts.toml", &rules);
    e.ok(&["run"], 0);
}

/// A rule script may leave a variable behind (here one that hides `source`): the flows still see
/// the object as they would evaluated one after another by the stage, not what a scope
/// expression left (expressions evaluated ahead are each evaluated on the object's own scope).
#[test]
fn a_variable_left_by_a_scope_expression_changes_no_flow() {
    let e = Env::quickstart();
    let rules = e.read("rules/accounts.toml");
    let shadowing = r#"scope = 'let source = #{ title: "Hidden" }; true'"#;
    e.write("rules/accounts.toml", &rules.replacen("scope = 'source.mail != ()'", shadowing, 1));
    e.ok(&["apply"], 0);
    let titles: std::collections::BTreeSet<String> =
        e.cloud().iter().filter_map(|o| o["attributes"]["title"].as_str().map(str::to_string)).collect();
    assert!(titles.len() > 1 && !titles.contains("Hidden"), "{titles:?}");
}

/// Every expression sees the object as it is, whatever another expression left behind, and
/// wherever it is evaluated (ahead, on the machine's other core, or by the stage when the rules'
/// debug output is shown): here the first rules' scope expressions, inbound and outbound, leave
/// a variable that hides `source` and `mv`; the rules after them still see the object.
#[test]
fn a_variable_left_by_one_rule_s_expression_changes_no_other_rule() {
    let people = Env::quickstart().read("rules/people.toml");
    let hiding = people
        .replace("scope = 'source.mail != ()'", "scope = 'let x = source.mail; let source = #{}; x != ()'")
        .replace("scope = 'mv.mail != ()'", "scope = 'let x = mv.mail; let mv = #{}; x != ()'");
    assert!(hiding.contains("let source") && hiding.contains("let mv"), "{people}");
    let titles = |e: &Env| -> std::collections::BTreeMap<String, String> {
        e.cloud()
            .iter()
            .filter_map(|o| Some((o["attributes"]["userName"].as_str()?.to_string(), o["attributes"]["title"].as_str()?.to_string())))
            .collect()
    };
    let plain = Env::quickstart();
    plain.ok(&["apply"], 0);
    let ahead = Env::quickstart();
    ahead.write("rules/people.toml", &hiding);
    ahead.ok(&["apply"], 0);
    // The title is flowed by the second rules (accounts.toml), in and out.
    assert!(titles(&plain).len() > 900);
    assert_eq!(titles(&ahead), titles(&plain));
    let in_order = Env::quickstart();
    in_order.write("rules/people.toml", &hiding);
    let o = in_order.command(&["apply"]).env("RUST_LOG", "idflow::rules=debug").output().expect("idflow runs");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(titles(&in_order), titles(&plain));
}

#[test]
fn references_heal_by_themselves_by_the_next_delta_run() {
    use crate::common::{person, small};
    let ada = person("ada", 1, "");
    let bob = person("bob", 2, "manager: uid=ada,ou=People,dc=example,dc=org\n");
    let cyd = person("cyd", 3, "");
    let e = small(&[ada.clone(), bob.clone(), cyd.clone()]);
    e.ok(&["run"], 0);
    let manager = |e: &Env| e.cloud_user("bob@example.org").expect("bob")["attributes"]["manager"].clone();
    let ada_id = |e: &Env| e.cloud_user("ada@example.org").map(|a| a["id"].clone());
    assert_eq!(manager(&e), ada_id(&e).expect("ada"));
    // ada leaves (her deletion is exported), then comes back: bob's manager follows her.
    e.write("corp.ldif", &[bob.clone(), cyd.clone()].join("\n"));
    e.ok(&["run"], 0);
    assert!(ada_id(&e).is_none());
    assert_eq!(manager(&e), serde_json::Value::Null, "no reference to a deleted object");
    // bob changes while she is gone: his flows run again, her DN is a deleted object's.
    e.write("corp.ldif", &[bob.replace("cn: bob\n", "cn: bob\ntitle: Clerk\n"), cyd.clone()].join("\n"));
    e.ok(&["run"], 0);
    e.write("corp.ldif", &[ada.clone(), bob.clone(), cyd.clone()].join("\n"));
    e.ok(&["run"], 0);
    assert_eq!(manager(&e), ada_id(&e).expect("ada is back"), "by the next delta run");
    // ada leaves the scope (no mail) and comes back into it.
    let ada_no_mail: String = ada.lines().filter(|l| !l.starts_with("mail:")).map(|l| format!("{l}\n")).collect();
    e.write("corp.ldif", &[ada_no_mail, bob.clone(), cyd.clone()].join("\n"));
    e.ok(&["run"], 0);
    e.write("corp.ldif", &[ada.clone(), bob.clone(), cyd.clone()].join("\n"));
    e.ok(&["run"], 0);
    assert_eq!(manager(&e), ada_id(&e).expect("ada"), "by the next delta run");
    // A manager who arrives after the people who report to him.
    let dan = person("dan", 4, "manager: uid=eve,ou=People,dc=example,dc=org\n");
    e.write("corp.ldif", &[ada.clone(), bob.clone(), cyd.clone(), dan.clone()].join("\n"));
    e.ok(&["run"], 2);
    let eve = person("eve", 5, "");
    e.write("corp.ldif", &[ada, bob, cyd, dan, eve].join("\n"));
    e.ok(&["run"], 0);
    let dan_manager = e.cloud_user("dan@example.org").expect("dan")["attributes"]["manager"].clone();
    assert_eq!(dan_manager, e.cloud_user("eve@example.org").expect("eve")["id"]);
    assert!(e.ok(&["plan"], 0).stdout.contains("No changes: the targets match the rules."));
}

#[test]
fn references_are_typed_values_whatever_the_attribute_is_called() {
    use crate::common::{person, small, SMALL_CONFIG, SMALL_RULES};
    let ada = person("ada", 1, "");
    let bob = person("bob", 2, "manager: uid=ada,ou=People,dc=example,dc=org\n");
    let e = small(&[ada, bob]);
    // The cloud names objects by its own ids, and `supervisor` holds references there.
    e.write(
        "idflow.toml",
        &SMALL_CONFIG.replace("path = \"out/cloud.json\"\n", "path = \"out/cloud.json\"\nreference_attributes = [\"supervisor\"]\n"),
    );
    let rules = |inbound: &str, outbound: &str| {
        SMALL_RULES.replace("manager = \"source.manager\"", inbound).replace("manager = \"mv.manager\"", outbound)
    };
    // Through a renamed attribute and a function, a reference stays one: the target gets its own id.
    e.write("rules/rules.toml", &rules(r#"boss = 'item(values(source, "manager"), 0)'"#, r#"supervisor = "mv.boss""#));
    e.ok(&["apply"], 0);
    let ada_id = e.cloud_user("ada@example.org").expect("ada")["id"].clone();
    assert_eq!(e.cloud_user("bob@example.org").expect("bob")["attributes"]["supervisor"], ada_id);
    // References and text in one result: an error, never half of either.
    e.write("rules/rules.toml", &rules("boss = '[source.manager, source.mail]'", r#"supervisor = "mv.boss""#));
    let o = e.ok(&["validate", "--offline"], 0);
    assert!(o.stdout.contains("warning: rule \"in-person\"") && o.stdout.contains("reads references (manager) and text (mail)"), "{o:?}");
    let o = e.ok(&["apply"], 2);
    assert!(o.stdout.contains("gives references and text together"), "{o:?}");
    assert_eq!(e.cloud_user("bob@example.org").expect("bob")["attributes"]["supervisor"], ada_id, "the last good state stays");
    // Text where the target expects a reference (its own id): not sent, an error says so.
    e.write("rules/rules.toml", &rules(r#"boss = "source.manager""#, r#"supervisor = 'dn_text("uid=ada,ou=People,dc=example,dc=org")'"#));
    let o = e.ok(&["apply"], 2);
    assert!(o.stdout.contains("supervisor holds references in cloud, but the flow gave text"), "{o:?}");
    let sent = e.cloud_user("bob@example.org").expect("bob")["attributes"]["supervisor"].clone();
    assert!(!sent.as_str().is_some_and(|s| s.starts_with("uid=")), "a DN never reaches a target that uses ids: {sent}");
}
