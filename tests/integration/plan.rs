//! Plans a reviewer can sign: identical changes grouped, collisions in unique attributes
//! flagged, `--json` a script can assert on, and a saved plan applied exactly or not at all.
use crate::common::{person, small, SMALL_CONFIG, SMALL_RULES};

fn people(n: u32) -> Vec<String> {
    (1..=n).map(|i| person(&format!("p{i:03}"), i, if i > 1 { "manager: uid=p001,ou=People,dc=example,dc=org\n" } else { "" })).collect()
}

#[test]
fn identical_changes_read_as_one_group_and_detail_lists_them_all() {
    let e = small(&people(12));
    e.ok(&["apply"], 0);
    e.write("rules/rules.toml", &SMALL_RULES.replace("userName = \"mv.mail\"", "userName = \"upper(mv.mail)\""));
    let p = e.ok(&["plan"], 0).stdout;
    assert!(p.contains("~ 12 User objects to update"), "{p}");
    assert!(p.contains("userName : upper-cased on all 12 (e.g. \"p001@example.org\" => \"P001@EXAMPLE.ORG\")"), "{p}");
    assert!(p.contains("for example: P001@EXAMPLE.ORG; P002@EXAMPLE.ORG; P003@EXAMPLE.ORG"), "{p}");
    assert!(p.contains("(--detail lists every change)"), "{p}");
    assert!(!p.contains("P012@EXAMPLE.ORG"), "a large group shows examples, not every change: {p}");
    let d = e.ok(&["plan", "--detail"], 0).stdout;
    for i in 1..=12 {
        assert!(d.contains(&format!("~ User P{i:03}@EXAMPLE.ORG")), "--detail lists p{i:03}: {d}");
    }
    // A few changes are listed in full as before.
    let e = small(&people(2));
    let p = e.ok(&["plan"], 0).stdout;
    assert!(p.contains("+ User p001@example.org") && p.contains("+ User p002@example.org") && !p.contains("--detail"), "{p}");
}

#[test]
fn plan_json_carries_identities_structured_values_and_rules() {
    let e = small(&people(2));
    let j = e.json(&["plan"], 0);
    let changes = j["plan"]["connectors"][0]["changes"].as_array().expect("changes").clone();
    let p2 = changes.iter().find(|c| c["object"] == "p002@example.org").expect("p002");
    assert_eq!(p2["op"], "add");
    assert_eq!(p2["rule"], "out-user", "{p2}");
    assert_eq!(p2["identity"]["sources"], serde_json::json!(["corp:00000000-0000-4000-8000-000000000002"]), "{p2}");
    assert!(p2["identity"]["metaverse_id"].is_i64(), "{p2}");
    assert!(p2["identity"].get("target_id").is_none(), "not created yet: {p2}");
    let attr =
        |c: &serde_json::Value, n: &str| c["attributes"].as_array().and_then(|a| a.iter().find(|x| x["name"] == n).cloned()).expect(n);
    // Text is a JSON string (not a quoted display string); a reference names its object.
    assert_eq!(attr(p2, "userName")["new"], serde_json::json!(["p002@example.org"]));
    assert_eq!(attr(p2, "userName")["rule"], "out-user");
    let manager = &attr(p2, "manager")["new"][0];
    assert_eq!(manager["object"], "p001@example.org", "{manager}");
    assert!(manager["reference"].is_string(), "the target's id for p001: {manager}");
    // After the apply, an update names the target id, and old and new values.
    e.ok(&["apply"], 0);
    std::fs::write(e.path("corp.ldif"), people(2).join("\n").replace("cn: p002", "cn: p002\ndisplayName: Pat")).expect("write");
    let j = e.json(&["plan"], 0);
    let ch = &j["plan"]["connectors"][0]["changes"][0];
    assert_eq!(ch["op"], "update");
    assert!(ch["identity"]["target_id"].is_string(), "{ch}");
    assert_eq!(attr(ch, "displayName")["old"], serde_json::json!(["p002"]));
    assert_eq!(attr(ch, "displayName")["new"], serde_json::json!(["Pat"]));
}

#[test]
fn values_that_would_collide_in_a_unique_attribute_are_flagged_before_anything_is_written() {
    let mut list = people(3);
    list[2] = list[2].replace("mail: p003@example.org", "mail: p002@example.org");
    let e = small(&list);
    e.write(
        "idflow.toml",
        &SMALL_CONFIG.replace("path = \"out/cloud.json\"", "path = \"out/cloud.json\"\nunique_attributes = [\"userName\"]"),
    );
    let o = e.ok(&["plan"], 2);
    assert!(o.stdout.starts_with("collision: cloud userName \"p002@example.org\" would be held by 2 objects:"), "{}", o.stdout);
    assert!(o.stdout.contains("uid=p002,ou=People") && o.stdout.contains("uid=p003,ou=People"), "both sources named: {}", o.stdout);
    let j = e.json(&["plan"], 2);
    assert_eq!(j["plan"]["collisions"][0]["attribute"], "userName", "{j}");
    assert_eq!(j["plan"]["collisions"][0]["objects"].as_array().map(Vec::len), Some(2), "{j}");
    assert!(!e.path("out/cloud.json").exists(), "a plan writes nothing");
    // Without the attribute declared unique (a file holds anything), no collision.
    e.write("idflow.toml", SMALL_CONFIG);
    assert!(!e.ok(&["plan"], 0).stdout.contains("collision"));
}

#[test]
fn a_saved_plan_is_applied_exactly_or_refused_naming_what_moved() {
    let e = small(&people(3));
    let o = e.ok(&["plan", "--out", "plan.json"], 0);
    assert!(o.stdout.contains("Saved to plan.json: idflow apply --plan plan.json"), "{o:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(e.path("plan.json")).expect("plan").permissions().mode();
        assert_eq!(mode & 0o077, 0, "a plan holds identity data: owner-only, mode {mode:o}");
    }
    let r = e.json(&["apply", "--plan", "plan.json"], 0);
    assert_eq!(r["export"][0]["added"], 3, "{r}");
    assert_eq!(e.ok(&["plan"], 0).stdout.lines().last(), Some("No changes: the targets match the rules."));

    // A source changes after the review: the plan is refused, naming the object and the
    // attribute; nothing is exported and nothing is kept (the next plan still shows it).
    let with = |title: &str| people(3).join("\n").replace("cn: p002\n", &format!("cn: p002\ntitle: {title}\n"));
    std::fs::write(e.path("corp.ldif"), with("Analyst")).expect("write");
    e.ok(&["plan", "--out", "plan.json"], 0);
    std::fs::write(e.path("corp.ldif"), with("Director")).expect("write");
    let before = e.read("out/cloud.json");
    let o = e.run(&["apply", "--plan", "plan.json"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("the sources or targets changed since the plan was made; nothing was applied"), "{}", o.stderr);
    assert!(
        o.stderr.contains("p002@example.org: title planned (none) => \"Analyst\", now (none) => \"Director\"")
            || o.stderr.contains("p002@example.org: title planned \"Analyst\", now \"Director\""),
        "{}",
        o.stderr
    );
    assert_eq!(e.read("out/cloud.json"), before, "nothing exported");
    assert!(e.ok(&["plan"], 0).stdout.contains("\"Director\""), "nothing kept: the change is still pending");
    let h = e.ok(&["history", "-n", "1"], 0).stdout;
    assert!(h.contains("apply") && h.contains("failed") && h.contains("title planned"), "{h}");

    // The plan made again applies.
    e.ok(&["plan", "--out", "plan.json"], 0);
    e.ok(&["apply", "--plan", "plan.json"], 0);
    assert!(e.read("out/cloud.json").contains("Director"));

    // A rule change since the plan: refused, and says so.
    std::fs::write(e.path("corp.ldif"), with("Boss")).expect("write");
    e.ok(&["plan", "--out", "plan.json"], 0);
    e.write("rules/rules.toml", &SMALL_RULES.replace("title = \"mv.title\"", "title = \"upper(mv.title)\""));
    let o = e.run(&["apply", "--plan", "plan.json"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("the rules changed since the plan was made"), "{}", o.stderr);

    // A damaged plan file is named, with where it breaks.
    let text = e.read("plan.json");
    e.write("plan.json", &text[..text.len() / 2]);
    let o = e.run(&["apply", "--plan", "plan.json"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("plan.json:") && o.stderr.contains("not a plan idflow saved"), "{}", o.stderr);
    let o = e.run(&["apply", "--plan", "missing.json"]);
    assert!(o.code == 1 && o.stderr.contains("missing.json"), "{o:?}");
}

#[test]
fn every_plan_flag_is_in_the_readme() {
    let readme = std::fs::read_to_string(crate::common::repo().join("README.md")).expect("README");
    for claim in ["idflow plan --detail", "idflow plan --out plan.json", "idflow apply --plan plan.json", "unique_attributes"] {
        assert!(readme.contains(claim), "README mentions {claim}");
    }
}
