//! The quickstart as a user runs it: plan, apply, idempotence, rule changes as plan diffs, preview, test.
use crate::common::Env;

#[test]
fn plan_apply_then_nothing_to_do() {
    let e = Env::quickstart();
    e.ok(&["validate"], 0);
    // Pending changes: --exit-code says so with 3.
    let plan = e.ok(&["plan", "--exit-code"], 3);
    insta::assert_snapshot!("quickstart_initial_plan", plan.stdout);
    assert!(!e.path("out/cloud.json").exists(), "plan must not write the target");

    let r = e.json(&["apply"], 0);
    assert_eq!(r["export"][0]["added"], 1025, "{r}");
    assert_eq!(r["errors"].as_array().map(Vec::len), Some(0));
    let cloud = e.cloud();
    assert_eq!(cloud.iter().filter(|o| o["type"] == "User").count(), 975);
    assert_eq!(cloud.iter().filter(|o| o["type"] == "Group").count(), 50);

    // References point at the target's own ids.
    let ids: std::collections::HashSet<String> = cloud.iter().map(|o| o["id"].as_str().unwrap_or_default().to_string()).collect();
    let u5 = e.cloud_user("u000005@example.org").expect("u000005 exported");
    let mgr = u5["attributes"]["manager"].as_str().expect("manager set");
    assert!(ids.contains(mgr), "manager {mgr} is an id in the target");
    let sales = cloud.iter().find(|o| o["attributes"]["displayName"] == "Sales, EMEA").expect("escaped DN group");
    let members = sales["attributes"]["members"].as_array().expect("members");
    assert!(members.len() > 5 && members.iter().all(|m| ids.contains(m.as_str().unwrap_or_default())));
    // Non-ASCII names arrive intact; the Disabled OU arrives disabled.
    assert!(cloud.iter().any(|o| o["attributes"]["displayName"].as_str().is_some_and(|d| d.contains('ö'))));
    assert_eq!(e.cloud_user("u000007@example.org").expect("disabled user")["attributes"]["active"], "false");

    // Nothing changed: a second run writes nothing and the plan is empty.
    let before = e.read("out/cloud.json");
    let r = e.json(&["run"], 0);
    assert_eq!(r["export"].as_array().map(Vec::len), Some(0), "{r}");
    assert_eq!(r["sync"]["inbound_objects"], 0, "a delta sync with no change looks at nothing: {r}");
    assert_eq!(e.read("out/cloud.json"), before);
    let p = e.ok(&["plan", "--exit-code"], 0);
    assert!(p.stdout.contains("No changes"), "{p:?}");
}

#[test]
fn a_rule_change_shows_as_a_plan_diff() {
    let e = Env::quickstart();
    e.ok(&["apply"], 0);
    // Change one flow and add one: every user's title is upper-cased, and a new attribute appears.
    let rules = e.read("rules/accounts.toml").replace(r#"title = "mv.jobTitle""#, r#"title = "upper(mv.jobTitle)""#);
    e.write("rules/accounts.toml", &rules);
    let plan = e.ok(&["plan"], 0);
    assert!(plan.stdout.contains("note: the rules changed since the last sync"), "{plan:?}");
    let head: String = plan.stdout.lines().take(40).collect::<Vec<_>>().join("\n");
    insta::assert_snapshot!("quickstart_rule_change_plan_head", head);
    assert!(plan.stdout.contains("Plan: 0 to add, 975 to update, 0 to delete."), "{}", plan.stdout.lines().last().unwrap_or_default());
    // Plan rolled back: applying now does the same, and after it nothing is left.
    let r = e.json(&["apply"], 0);
    assert_eq!(r["export"][0]["updated"], 975);
    assert_eq!(e.cloud_user("u000005@example.org").expect("user")["attributes"]["title"], "DIRECTOR");
    e.ok(&["plan", "--exit-code"], 0);
}

#[test]
fn preview_explains_one_object() {
    let e = Env::quickstart();
    e.ok(&["import"], 0);
    let p = e.ok(&["preview", "corp", "uid=u000005,ou=People,dc=example,dc=org"], 0);
    insta::assert_snapshot!("quickstart_preview_u000005", p.stdout);
    // Preview changes nothing.
    let r = e.json(&["sync"], 0);
    assert_eq!(r["sync"]["projected"], 1025, "{r}");
    // After sync, the JSON form names the winning rule per attribute.
    let j = e.json(&["preview", "corp", "uid=u000005,ou=People,dc=example,dc=org"], 0);
    let attrs = j["attributes"].as_array().expect("attributes");
    let mail = attrs.iter().find(|a| a["name"] == "mail").expect("mail");
    assert_eq!(mail["rule"], "in-corp-person");
    assert_eq!(j["exports"][0][1]["op"], "add");
    let unknown = e.run(&["preview", "corp", "uid=nobody,dc=example,dc=org"]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("no object"), "{unknown:?}");
}

#[test]
fn rule_tests_pass_and_report() {
    let e = Env::quickstart();
    let o = e.ok(&["test"], 0);
    assert!(o.stdout.contains("7 passed, 0 failed"), "{o:?}");
    // A wrong expectation fails with a reason, and the exit code says so.
    let t = e.read("rules/people_test.toml").replacen("Ada Lovelace\", employeeId", "Ada L.\", employeeId", 1);
    e.write("rules/people_test.toml", &t);
    let o = e.ok(&["test", "rules"], 1);
    assert!(o.stdout.contains("FAIL") && o.stdout.contains("metaverse displayName is [\"Ada Lovelace\"], expected [\"Ada L.\"]"), "{o:?}");
    assert!(o.stdout.contains("6 passed, 1 failed"), "{o:?}");
    // An input the import refuses (the same DN twice) fails its case instead of testing nothing.
    e.write(
        "rules/dup_test.toml",
        "[[test]]\nname = \"dup\"\n[[test.input]]\nconnector = \"corp\"\ntype = \"person\"\ndn = \"uid=x,dc=example,dc=org\"\n\
         [[test.input]]\nconnector = \"corp\"\ntype = \"person\"\ndn = \"uid=x,dc=example,dc=org\"\n",
    );
    let o = e.ok(&["test", "rules"], 1);
    assert!(o.stdout.contains("FAIL") && o.stdout.contains("dup") && o.stdout.contains("duplicate anchor"), "{o:?}");
}

#[test]
fn functions_are_listed_with_docs() {
    let e = Env::quickstart();
    let o = e.ok(&["functions"], 0);
    for f in ["lower(", "dn_component(", "uac_flag(", "guid_to_string(", "coalesce(", "values("] {
        assert!(o.stdout.contains(f), "{f} missing from:\n{}", o.stdout);
    }
}

#[test]
fn a_reader_that_goes_away_ends_a_verb_quietly() {
    // `idflow plan --detail | head -1`: the plan is larger than a pipe holds, the reader leaves early.
    use std::io::Read;
    let e = Env::quickstart();
    let mut child =
        e.command(&["plan", "--detail"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("plan");
    let mut out = child.stdout.take().expect("stdout");
    let mut first = [0u8; 16];
    out.read_exact(&mut first).expect("the plan's first bytes");
    drop(out);
    let o = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "ended by SIGPIPE, as Unix tools are: {:?}", o.status);
    }
}
