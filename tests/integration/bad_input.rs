//! Bad input gets a clear error naming the file, line, rule, object or attribute, and nothing
//! already synced is lost.
use crate::common::{person, small};

fn three() -> Vec<String> {
    vec![person("ada", 1, ""), person("bob", 2, "manager: uid=ada,ou=People,dc=example,dc=org\n"), person("cyd", 3, "")]
}

#[test]
fn malformed_toml_names_file_and_line() {
    let e = small(&three());
    e.write("idflow.toml", &crate::common::SMALL_CONFIG.replace("deletion_threshold = 3", "deletion_threshold = three"));
    let o = e.ok(&["plan"], 1);
    assert!(o.stderr.contains("idflow.toml:7:"), "{o:?}");
    let e = small(&three());
    e.write("rules/broken.toml", "[[rule]]\nname = \"x\"\ndirection = \"sideways\"\n");
    let o = e.ok(&["validate"], 1);
    assert!(o.stderr.contains("rules/broken.toml:3:") && o.stderr.contains("sideways"), "{o:?}");
}

#[test]
fn validate_offline_checks_every_connector_section_by_its_type() {
    // An ldap connector with a key the type does not know, a wrong type, and an unknown kind:
    // each named with the file and line, without a server, a secret or a database.
    let ldap = "[[connector]]\nname = \"ad\"\ntype = \"ldap\"\nurl = \"ldaps://dc.example.test\"\nbase_dn = \"dc=example,dc=test\"\n\
                password_env = \"SURELY_UNSET_VAR\"\nbind_dn = \"cn=x\"\nca_fiel = \"ca.pem\"\n[connector.object_types]\nuser = \"(objectClass=user)\"\n";
    let e = small(&three());
    let config = format!("{}\n{ldap}", crate::common::SMALL_CONFIG);
    let line = config.lines().position(|l| l.starts_with("ca_fiel")).expect("the line") + 1;
    e.write("idflow.toml", &config);
    let o = e.ok(&["validate", "--offline"], 1);
    assert!(o.stderr.contains(&format!("idflow.toml:{line}:")) && o.stderr.contains("unknown field `ca_fiel`"), "{o:?}");
    assert!(o.stderr.contains("connector \"ad\" (type \"ldap\")") && o.stderr.contains("ca_file"), "the known keys are listed: {o:?}");
    assert!(!e.path("state/idflow.db").exists(), "offline opens no database");
    let config = config.replace("ca_fiel = \"ca.pem\"", "page_size = \"many\"");
    e.write("idflow.toml", &config);
    let o = e.ok(&["validate", "--offline"], 1);
    assert!(o.stderr.contains(&format!("idflow.toml:{line}:")) && o.stderr.contains("\"many\""), "{o:?}");
    e.write("idflow.toml", &config.replace("page_size = \"many\"", "page_size = 500"));
    e.ok(&["validate", "--offline"], 0);
    e.write("idflow.toml", &config.replace("type = \"ldap\"", "type = \"ldapp\""));
    let o = e.ok(&["validate", "--offline"], 1);
    assert!(o.stderr.contains("unknown type \"ldapp\" (known: ldif, file, ldap, scim)"), "{o:?}");
}

#[test]
fn rhai_syntax_error_names_rule_file_expression_and_position() {
    let e = small(&three());
    e.write("rules/rules.toml", &crate::common::SMALL_RULES.replace(r#"title = "source.title""#, r#"title = "source.title +* 2""#));
    let o = e.ok(&["validate", "--offline"], 1);
    for want in ["rule \"in-person\"", "rules/rules.toml", "flow title", "source.title +* 2", "line 1, position"] {
        assert!(o.stderr.contains(want), "{want:?} missing: {o:?}");
    }
    // Unknown functions and wrong argument counts too, with a suggestion for a typo.
    for (expr, want) in [
        ("titlecase(source.title)", "unknown function titlecase()"),
        ("lowr(source.title)", "did you mean lower()?"),
        ("lower(source.title, 2)", "lower() takes 1 argument, and is given 2"),
        ("source.title.trim(1)", "trim() takes 1 argument, and is given 2 (counting the value before the dot)"),
    ] {
        e.write("rules/rules.toml", &crate::common::SMALL_RULES.replace(r#"title = "source.title""#, &format!("title = \"{expr}\"")));
        let o = e.ok(&["validate", "--offline"], 1);
        assert!(
            o.stderr.contains(want) && o.stderr.contains("rule \"in-person\"") && o.stderr.contains("rules/rules.toml"),
            "{want:?}: {o:?}"
        );
    }
    // Undeclared variables are caught at compile time too.
    e.write("rules/rules.toml", &crate::common::SMALL_RULES.replace(r#"title = "source.title""#, r#"title = "sorce.title""#));
    let o = e.ok(&["validate", "--offline"], 1);
    assert!(o.stderr.contains("sorce"), "{o:?}");
}

#[test]
fn unknown_function_and_runaway_script_fail_that_object_only() {
    let e = small(&three());
    // Only bob's title makes the flow fail; a runaway loop fails cyd. Ada syncs.
    let rules = crate::common::SMALL_RULES.replace(
        r#"title = "source.title""#,
        r#"title = 'if source.uid == "bob" { throw "no title for " + source.uid } else if source.uid == "cyd" { loop { } } else { "ok" }'"#,
    );
    e.write("rules/rules.toml", &rules);
    let r = e.json(&["apply"], 2);
    let errors = r["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{r}");
    let bob = errors.iter().find(|x| x["object"].as_str().is_some_and(|o| o.contains("uid=bob"))).expect("bob's error");
    assert_eq!(bob["rule"], "in-person");
    assert!(bob["message"].as_str().is_some_and(|m| m.contains("no title for bob")), "{bob}");
    let cyd = errors.iter().find(|x| x["object"].as_str().is_some_and(|o| o.contains("uid=cyd"))).expect("cyd's error");
    assert!(cyd["message"].as_str().is_some_and(|m| m.contains("operation limit")), "{cyd}");
    assert_eq!(e.cloud_user("ada@example.org").expect("ada synced")["attributes"]["title"], "ok");
    // preview shows the recorded error for that object.
    let p = e.ok(&["preview", "corp", "uid=bob,ou=People,dc=example,dc=org"], 0);
    assert!(p.stdout.contains("no title for bob"), "{p:?}");
    let h = e.json(&["history"], 0);
    assert_eq!(h[0]["status"], "errors");
}

#[test]
fn broken_ldif_names_the_line_and_loses_nothing() {
    let e = small(&three());
    e.ok(&["apply"], 0);
    let before = e.read("out/cloud.json");
    let mut ldif = e.read("corp.ldif");
    ldif.push_str("\ndn: uid=dan,ou=People,dc=example,dc=org\nobjectClass: inetOrgPerson\nthis line is not ldif\n");
    let line = ldif.lines().count();
    e.write("corp.ldif", &ldif);
    let o = e.ok(&["apply"], 1);
    assert!(o.stderr.contains(&format!("corp.ldif:{line}:")), "line {line}: {o:?}");
    assert_eq!(e.read("out/cloud.json"), before, "a failed import changes nothing");
    let h = e.json(&["history"], 0);
    assert_eq!(h[0]["status"], "failed");
}

/// The file is read a line at a time: a line that is not text is named, as a syntax error is.
#[test]
fn ldif_that_is_not_utf8_names_the_line_and_loses_nothing() {
    let e = small(&three());
    e.ok(&["apply"], 0);
    let before = e.read("out/cloud.json");
    let mut ldif = e.read("corp.ldif").into_bytes();
    ldif.extend_from_slice(b"\ndn: uid=dan,ou=People,dc=example,dc=org\nobjectClass: inetOrgPerson\ncn: D\xe4n\n");
    let line = ldif.split(|b| *b == b'\n').count() - 1;
    std::fs::write(e.path("corp.ldif"), &ldif).expect("written");
    let o = e.ok(&["apply"], 1);
    assert!(o.stderr.contains(&format!("corp.ldif:{line}:1: this line is not UTF-8")), "line {line}: {o:?}");
    assert_eq!(e.read("out/cloud.json"), before, "a failed import changes nothing");
}

/// A first import (nothing stored yet for the connector) does not look objects up one by one
/// by their anchors; an anchor read twice in it is still found.
#[test]
fn a_first_import_finds_an_anchor_read_twice() {
    let e = small(&three());
    let dup = person("dan", 4, "").replace("000000000004", "000000000001");
    e.write("corp.ldif", &[person("ada", 1, ""), person("bob", 2, ""), dup].join("\n"));
    let r = e.json(&["apply"], 2);
    let msgs: Vec<String> = r["errors"].as_array().expect("errors").iter().map(|x| format!("{} {}", x["object"], x["message"])).collect();
    assert!(msgs.iter().any(|m| m.contains("uid=dan") && m.contains("duplicate anchor")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("uid=ada") && m.contains("duplicate anchor")), "{msgs:?}");
    assert!(e.cloud_user("ada@example.org").is_none() && e.cloud_user("dan@example.org").is_none(), "neither copy is made");
    assert!(e.cloud_user("bob@example.org").is_some());
}

#[test]
fn duplicate_and_missing_anchors_are_object_errors() {
    let e = small(&three());
    e.ok(&["apply"], 0);
    // dan reuses ada's anchor; cyd loses hers. Nobody is deleted for it.
    let dup = person("dan", 4, "").replace("000000000004", "000000000001");
    let cyd_no_anchor = person("cyd", 3, "").lines().filter(|l| !l.starts_with("entryUUID")).collect::<Vec<_>>().join("\n") + "\n";
    e.write("corp.ldif", &[person("ada", 1, ""), person("bob", 2, ""), cyd_no_anchor, dup].join("\n"));
    let r = e.json(&["apply"], 2);
    let msgs: Vec<String> = r["errors"].as_array().expect("errors").iter().map(|x| format!("{} {}", x["object"], x["message"])).collect();
    assert!(msgs.iter().any(|m| m.contains("uid=dan") && m.contains("duplicate anchor")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("uid=cyd") && m.contains("missing anchor attribute")), "{msgs:?}");
    assert_eq!(r["export"].as_array().map(|a| a.iter().map(|x| x["deleted"].as_u64().unwrap_or(0)).sum::<u64>()), Some(0));
    assert!(e.cloud_user("cyd@example.org").is_some(), "cyd must not be deleted for a missing anchor");
}

#[test]
fn an_empty_read_is_refused_not_a_mass_delete() {
    let e = small(&three());
    e.ok(&["apply"], 0);
    let before = e.read("out/cloud.json");
    e.write("corp.ldif", "version: 1\n\ndn: ou=People,dc=example,dc=org\nobjectClass: organizationalUnit\n");
    let o = e.ok(&["apply"], 1);
    assert!(o.stderr.contains("read no objects") && o.stderr.contains("--allow-empty"), "{o:?}");
    assert_eq!(e.read("out/cloud.json"), before);
    // The same guard protects the target: a vanished target file is not "everything gone".
    e.write("corp.ldif", &three().join("\n"));
    std::fs::remove_file(e.path("out/cloud.json")).expect("rm");
    let o = e.ok(&["apply"], 1);
    assert!(o.stderr.contains("connector \"cloud\"") && o.stderr.contains("read no objects"), "{o:?}");
}

/// An export that came out empty, with a change file beside it that adds someone: the read is
/// still empty, refused, not "everyone but the one added left".
#[test]
fn an_empty_read_with_a_change_file_on_top_is_refused_too() {
    let e = small(&three());
    e.ok(&["apply"], 0);
    let before = e.read("out/cloud.json");
    e.write("corp.ldif", "");
    e.write("delta.ldif", &person("dan", 4, ""));
    let o = e.ok(&["apply"], 1);
    assert!(o.stderr.contains("read no objects") && o.stderr.contains("--allow-empty"), "{o:?}");
    assert_eq!(e.read("out/cloud.json"), before);
}

#[test]
fn deletion_threshold_stops_before_deleting_anything() {
    let people: Vec<String> = (1..=6).map(|i| person(&format!("p{i}"), i, "")).collect();
    let e = small(&people);
    e.ok(&["apply"], 0);
    let before = e.read("out/cloud.json");
    e.write("corp.ldif", &people[..2].join("\n"));
    let p = e.ok(&["plan"], 0);
    assert!(p.stdout.contains("0 to add, 0 to update, 4 to delete"), "{p:?}");
    assert!(p.stdout.contains("deletion threshold"), "the plan warns: {p:?}");
    let o = e.ok(&["apply"], 1);
    assert!(o.stderr.contains("would delete 4 objects, more than the deletion threshold (3)"), "{o:?}");
    assert!(o.stderr.contains("--allow-deletes 4"), "{o:?}");
    assert_eq!(e.read("out/cloud.json"), before, "nothing deleted");
    let o = e.ok(&["apply", "--allow-deletes", "3"], 1);
    assert!(o.stderr.contains("deletion threshold"), "{o:?}");
    let r = e.json(&["apply", "--allow-deletes", "4"], 0);
    assert_eq!(r["export"][0]["deleted"], 4, "{r}");
    assert_eq!(e.cloud().len(), 2);
}

#[test]
fn ambiguous_join_is_an_error_never_a_guess() {
    let e = small(&[person("ada", 1, ""), person("ada2", 2, ""), person("cyd", 3, "title: Analyst\n")]);
    // A second source (HR) whose record matches two metaverse objects by a shared department code.
    let cfg = crate::common::SMALL_CONFIG.to_string()
        + "\n[[connector]]\nname = \"hr\"\ntype = \"ldif\"\npath = \"hr.ldif\"\nanchor = \"entryUUID\"\n[connector.object_types]\nworker = \"(objectClass=hrWorker)\"\n";
    e.write("idflow.toml", &cfg);
    let rules = crate::common::SMALL_RULES.to_string()
        + r#"
[[rule]]
name = "in-hr"
direction = "inbound"
connector = "hr"
source_type = "worker"
metaverse_type = "person"
precedence = 50
link = "join"
join = [ { metaverse = "title", expr = "source.title" }, { metaverse = "employeeId", expr = "source.employeeNumber" } ]
[rule.flows]
displayName = "source.fullName"
"#;
    e.write("rules/rules.toml", &rules);
    let l = e
        .read("corp.ldif")
        .replace("employeeNumber: E1\n", "employeeNumber: E1\ntitle: Analyst\n")
        .replace("employeeNumber: E2\n", "employeeNumber: E2\ntitle: Analyst\n");
    e.write("corp.ldif", &l);
    e.write(
        "hr.ldif",
        "dn: cn=w1,o=hr\nobjectClass: hrWorker\nemployeeNumber: E1\nfullName: Ada From HR\nentryUUID: hr-1\n\n\
         dn: cn=w2,o=hr\nobjectClass: hrWorker\ntitle: Analyst\nfullName: Nobody Unique\nentryUUID: hr-2\n",
    );
    let r = e.json(&["apply"], 2);
    let errors = r["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{r}");
    assert!(errors[0]["message"].as_str().is_some_and(|m| m.contains("ambiguous join") && m.contains("title = source.title")), "{r}");
    assert!(errors[0]["object"].as_str().is_some_and(|o| o.contains("cn=w2")), "{r}");
    // w2's title matches ada2 and cyd (ada is taken: joined to w1 already): two, so no join.
    assert!(errors[0]["message"].as_str().is_some_and(|m| m.contains("2 metaverse objects")), "{r}");
    // w1 has no title, so the first group does not apply; the second joins it to ada, and
    // HR's display name wins by precedence (50 before 100).
    let ada = e.cloud_user("ada@example.org").expect("ada");
    assert_eq!(ada["attributes"]["displayName"], "Ada From HR");
    assert_eq!(e.cloud_user("ada2@example.org").expect("ada2")["attributes"]["displayName"], "ada2");
}

#[test]
fn validate_knows_the_rules_object_types_and_metaverse_attributes() {
    let e = small(&three());
    // A source_type the connector does not define: an error at its line, with a suggestion.
    e.write("rules/rules.toml", &crate::common::SMALL_RULES.replace("source_type = \"person\"", "source_type = \"persn\""));
    let o = e.ok(&["validate", "--offline"], 1);
    assert!(
        o.stderr.contains("rules/rules.toml:6: rule \"in-person\": source_type \"persn\" is not an object type of connector \"corp\""),
        "{o:?}"
    );
    assert!(o.stderr.contains("did you mean \"person\"?"), "{o:?}");
    // A metaverse attribute read but never written (a typo), and one written but never read: warnings.
    e.write("rules/rules.toml", &crate::common::SMALL_RULES.replace("displayName = \"mv.displayName\"", "displayName = \"mv.displayNam\""));
    let o = e.ok(&["validate", "--offline"], 0);
    assert!(
        o.stdout.contains("warning: ./rules/rules.toml:")
            && o.stdout.contains("reads person attribute displayNam, which no inbound rule writes: did you mean displayName?"),
        "{o:?}"
    );
    assert!(o.stdout.contains("person attribute displayName is written, and no outbound rule or join reads it"), "{o:?}");
    // --strict: warnings are errors, for CI.
    let o = e.ok(&["validate", "--offline", "--strict"], 1);
    assert!(o.stderr.contains("--strict"), "{o:?}");
    e.write("rules/rules.toml", crate::common::SMALL_RULES);
    e.ok(&["validate", "--offline", "--strict"], 0);
}
