//! The rule sets that ship, run on directories given as LDIF: their test cases pass, and their
//! plans are snapshots, so a change to a shipped rule shows as a snapshot diff in review.
use crate::common::{repo, Env};

fn with_rules(set: &str, connector_toml: &str, ldif: &str) -> Env {
    let e = Env::empty();
    for f in std::fs::read_dir(repo().join("rules").join(set)).expect("rule set") {
        let p = f.expect("entry").path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if name.ends_with(".toml") && name != "idflow.toml" && !name.ends_with("_test.toml") {
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
    let p = e.ok(&["plan"], 2);
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
