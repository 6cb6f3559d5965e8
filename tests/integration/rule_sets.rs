//! The rule sets that ship, run on directories given as LDIF: their test cases pass, and their
//! plans are snapshots, so a change to a shipped rule shows as a snapshot diff in review.
use crate::common::{repo, Env};

fn with_rules(set: &str, connector_toml: &str, ldif: &str) -> Env {
    let e = Env::empty();
    for f in std::fs::read_dir(repo().join("rules").join(set)).expect("rule set") {
        let p = f.expect("entry").path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        // The rules and the helper modules they import.
        let rules = name.ends_with(".toml") && name != "idflow.toml" && !name.ends_with("_test.toml");
        if rules || name.ends_with(".rhai") {
            e.write(&format!("rules/{name}"), &std::fs::read_to_string(&p).expect("read"));
        }
    }
    e.write("idflow.toml", &format!("[metaverse]\npath = \"state/idflow.db\"\n{connector_toml}\n[[connector]]\nname = \"cloud\"\ntype = \"file\"\npath = \"out/cloud.json\"\n"));
    e.write("source.ldif", ldif);
    e
}

#[test]
fn shipped_rule_sets_pass_their_tests() {
    for set in ["openldap-to-cloud", "ad-to-cloud"] {
        let cfg = repo().join("rules").join(set).join("idflow.toml");
        let o = Env::empty().ok(&["--config", &cfg.display().to_string(), "test"], 0);
        assert!(o.stdout.contains(" passed, 0 failed"), "{set}: {o:?}");
        // And they are clean under the check an admin's CI runs: no warnings either.
        Env::empty().ok(&["--config", &cfg.display().to_string(), "validate", "--offline", "--strict"], 0);
    }
}

#[test]
fn openldap_to_cloud_plan() {
    let people: String = std::fs::read_to_string(repo().join("examples/quickstart/corp.ldif")).expect("ldif");
    // The first people and the two groups with escaped names, enough to review by eye.
    let mut ldif = String::new();
    for rec in people.split("\n\n").filter(|r| r.contains("uid=u00000") || r.contains("cn=Sales") || r.contains("cn=R\\+D")) {
        ldif.push_str(rec);
        ldif.push_str("\n\n");
    }
    let e = with_rules(
        "openldap-to-cloud",
        "[[connector]]\nname = \"corp\"\ntype = \"ldif\"\npath = \"source.ldif\"\nreference_attributes = [\"member\", \"manager\"]\n[connector.object_types]\nperson = \"(objectClass=inetOrgPerson)\"\ngroup = \"(objectClass=groupOfNames)\"\n",
        &ldif,
    );
    // Some managers are outside the sample: those references are errors on their people (exit 2).
    // Every change listed: a change to a shipped rule shows, object by object, as a snapshot diff.
    let p = e.ok(&["plan", "--detail"], 2);
    insta::assert_snapshot!("openldap_to_cloud_plan", p.stdout);
}

#[test]
fn ad_to_cloud_plan() {
    let ldif = "\
dn: CN=Ada Lovelace,OU=Staff,DC=example,DC=test
objectClass: user
objectGUID:: 2aS1xS4fO0qMfQEjRWeJqw==
objectSid:: AQUAAAAAAAUVAAAA3PTcO4M9K0aCi6YoUAQAAA==
sAMAccountName: ada
userPrincipalName: ada@example.test
userAccountControl: 512
cn: Ada Lovelace
givenName: Ada
sn: Lovelace
mail: ada@example.test
proxyAddresses: SMTP:ada@example.test
proxyAddresses: smtp:lovelace@example.test
title: Analyst
manager: CN=Smith\\, John,OU=Staff,DC=example,DC=test

dn: CN=Smith\\, John,OU=Staff,DC=example,DC=test
objectClass: user
objectGUID:: AAAAAAAAAAAAAAAAAAAAAg==
mS-DS-ConsistencyGuid:: AAAAAAAAAAAAAAAAAAAAAw==
sAMAccountName: jsmith
userPrincipalName: jsmith@example.test
userAccountControl: 514
cn: Smith, John

dn: CN=krbtgt,CN=Users,DC=example,DC=test
objectClass: user
objectGUID:: AAAAAAAAAAAAAAAAAAAABA==
sAMAccountName: krbtgt
isCriticalSystemObject: TRUE

dn: CN=Finance,OU=Groups,DC=example,DC=test
objectClass: group
objectGUID:: AAAAAAAAAAAAAAAAAAAABQ==
cn: Finance
groupType: -2147483646
member: CN=Ada Lovelace,OU=Staff,DC=example,DC=test
member: CN=Smith\\, John,OU=Staff,DC=example,DC=test
";
    let e = with_rules(
        "ad-to-cloud",
        "[[connector]]\nname = \"ad\"\ntype = \"ldif\"\npath = \"source.ldif\"\nanchor = \"objectGUID\"\nbinary_attributes = [\"objectGUID\", \"objectSid\", \"ms-DS-ConsistencyGuid\"]\nreference_attributes = [\"member\", \"manager\"]\n[connector.object_types]\nuser = \"(&(objectClass=user)(!(objectClass=computer)))\"\ngroup = \"(objectClass=group)\"\ncontact = \"(objectClass=contact)\"\n",
        ldif,
    );
    let p = e.ok(&["plan"], 0);
    insta::assert_snapshot!("ad_to_cloud_plan", p.stdout);
}

const AD_LDIF_CONNECTOR: &str = "[[connector]]\nname = \"ad\"\ntype = \"ldif\"\npath = \"source.ldif\"\nanchor = \"objectGUID\"\nbinary_attributes = [\"objectGUID\"]\nreference_attributes = [\"member\"]\n[connector.object_types]\nuser = \"(objectClass=user)\"\ngroup = \"(objectClass=group)\"\n";

/// Entra's default rules sync groups of up to 50,000 members: a larger group is an error on that
/// group, every run, and the group is not sent (nor, once sent, deleted); the others flow.
#[test]
fn ad_to_cloud_a_group_over_50000_members_is_an_error() {
    use std::fmt::Write as _;
    let n = 50_001;
    let mut ldif = String::new();
    let mut members = String::new();
    for i in 0..n {
        let guid = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, (i as u128 + 1).to_be_bytes());
        let _ = write!(ldif, "dn: CN=u{i},OU=Staff,DC=example,DC=test\nobjectClass: user\nobjectGUID:: {guid}\nsAMAccountName: u{i}\nuserAccountControl: 512\n\n");
        let _ = writeln!(members, "member: CN=u{i},OU=Staff,DC=example,DC=test");
    }
    ldif.push_str(&format!("dn: CN=Everyone,OU=Groups,DC=example,DC=test\nobjectClass: group\nobjectGUID:: AQAAAAAAAAAAAAAAAAAAAA==\ncn: Everyone\ngroupType: -2147483646\n{members}\n"));
    ldif.push_str("dn: CN=Small,OU=Groups,DC=example,DC=test\nobjectClass: group\nobjectGUID:: AgAAAAAAAAAAAAAAAAAAAA==\ncn: Small\ngroupType: -2147483646\nmember: CN=u1,OU=Staff,DC=example,DC=test\n\n");
    let e = with_rules("ad-to-cloud", AD_LDIF_CONNECTOR, &ldif);
    let r = e.json(&["run"], 2);
    let errors = r["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0]["message"].as_str().unwrap_or_default().contains("Entra's default rules sync groups of up to 50,000"), "{errors:?}");
    assert!(errors[0]["object"].as_str().unwrap_or_default().contains("Everyone"), "{errors:?}");
    let cloud = e.read("out/cloud.json");
    assert!(cloud.contains("\"Small\"") && !cloud.contains("\"Everyone\""), "the small group flows, the large one is not sent");
    // Still an error on the next run: errors stay visible until fixed.
    let r = e.json(&["run"], 2);
    assert_eq!(r["errors"].as_array().map(Vec::len), Some(1), "{r}");
}

/// A helper module rules import: calls into it are checked by validate, the attributes it reads
/// are read, and a change to it is a change to the rules (the next sync runs every object again).
#[test]
fn a_helper_module_is_part_of_the_rules() {
    use crate::common::{person, small, SMALL_RULES};
    let e = small(&[person("ada", 1, "title: Analyst\n"), person("bob", 2, "title: Clerk\n")]);
    let rules = SMALL_RULES.replace("title = \"source.title\"", "title = '''\nimport \"helpers\" as h;\nh::title_of(source)\n'''");
    e.write("rules/rules.toml", &rules);
    e.write("rules/helpers.rhai", "// Titles as the cloud shows them.\nfn title_of(source) { upper(source.title) }\n");
    e.ok(&["validate", "--offline", "--strict"], 0);
    e.ok(&["apply"], 0);
    assert_eq!(e.cloud_user("ada@example.org").expect("ada")["attributes"]["title"], "ANALYST");
    e.write("rules/helpers.rhai", "// Titles as the cloud shows them.\nfn title_of(source) { lower(source.title) }\n");
    let r = e.json(&["apply"], 0);
    assert_eq!(r["full_sync"], true, "a changed module makes the sync full: {r}");
    assert_eq!(e.cloud_user("ada@example.org").expect("ada")["attributes"]["title"], "analyst");
    assert_eq!(r["export"][0]["updated"], 2, "{r}");
    // A typo inside the module is caught before a run, named with the module's function.
    e.write("rules/helpers.rhai", "fn title_of(source) { lowr(source.title) }\n");
    let o = e.run(&["validate", "--offline"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("lowr") && o.stderr.contains("lower"), "{o:?}");
    // And a module that is not there, before a run, not on every object.
    std::fs::remove_file(e.path("rules/helpers.rhai")).expect("remove");
    let o = e.run(&["validate", "--offline"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("no module \"helpers\"") && o.stderr.contains("rules.toml"), "{o:?}");
}
