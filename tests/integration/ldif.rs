//! The ldif connector reads any directory's export: any attribute as the anchor (text stays
//! text), a delta file that is already there at the first import, changes to objects of no
//! configured type.
use crate::common::{person, small, SMALL_CONFIG};

#[test]
fn any_attribute_is_an_anchor_and_its_text_stays_text() {
    let e = small(&[person("ada", 1, "title: Analyst\n"), person("bob", 2, "")]);
    e.write("idflow.toml", &SMALL_CONFIG.replace("anchor = \"entryUUID\"", "anchor = \"mail\""));
    e.ok(&["apply"], 0);
    let ada = e.cloud_user("ada@example.org").expect("ada, by mail");
    assert_eq!(ada["attributes"]["title"], "Analyst");
    assert!(!e.read("out/cloud.json").contains("\"bin\""), "no text turned into bytes");
    // Binary still means binary: a known binary syntax (objectGUID) keeps its bytes.
    let guid = "objectGUID:: 2aS1xS4fO0qMfQEjRWeJqw==\n";
    let e = small(&[person("ada", 1, guid), person("bob", 2, guid.replace("2aS1", "3aS1").as_str())]);
    e.write("idflow.toml", &SMALL_CONFIG.replace("anchor = \"entryUUID\"", "anchor = \"objectGUID\""));
    e.ok(&["import"], 0);
    let o = e.ok(&["preview", "corp", "uid=ada,ou=People,dc=example,dc=org"], 0);
    assert!(o.stdout.contains("anchor: 2aS1xS4fO0qMfQEjRWeJqw=="), "{o:?}");
}

#[test]
fn a_delta_file_there_at_the_first_import_is_applied_and_changes_to_other_objects_are_ignored() {
    let e = small(&[person("ada", 1, "title: Analyst\n"), person("bob", 2, "")]);
    e.write(
        "delta.ldif",
        "dn: uid=ada,ou=People,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Director\n-\n\n\
         dn: ou=People,dc=example,dc=org\nchangetype: modify\nreplace: description\ndescription: people\n-\n",
    );
    let r = e.json(&["apply"], 0);
    assert_eq!(e.cloud_user("ada@example.org").expect("ada")["attributes"]["title"], "Director", "{r}");
    assert!(r["errors"].as_array().is_some_and(|a| a.is_empty()), "the OU's change is not an error: {r}");
    // Applied once: the next run has nothing to do.
    let r = e.json(&["run"], 0);
    assert!(r["export"].as_array().is_some_and(|a| a.is_empty()), "{r}");
}

/// A delta import with nothing to apply does not read a main file whose stamp is the one it had
/// when last read (and settled: changed more than 10 s before); an edit that keeps its size
/// changes the stamp, and is found.
#[test]
fn an_unchanged_main_file_is_not_read_again_and_an_edit_of_the_same_size_is_found() {
    let e = small(&[person("ada", 1, "title: Analyst\n"), person("bob", 2, "")]);
    std::thread::sleep(std::time::Duration::from_secs(11));
    e.ok(&["apply"], 0);
    let not_read = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).contains("has the stamp it had when last read: not read");
    let import = || e.command(&["import", "corp"]).env("RUST_LOG", "idflow_connectors=debug,warn").output().expect("idflow runs");
    let o = import();
    assert!(o.status.success() && not_read(&o), "{o:?}");
    let ldif = e.read("corp.ldif");
    assert!(ldif.contains("title: Analyst"));
    e.write("corp.ldif", &ldif.replace("title: Analyst", "title: Analyzt"));
    let o = import();
    assert!(o.status.success() && !not_read(&o), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("changed since the last import"), "{o:?}");
    e.ok(&["apply"], 0);
    assert_eq!(e.cloud_user("ada@example.org").expect("ada")["attributes"]["title"], "Analyzt");
}

/// A delta's change to an object idflow holds is applied without reading the main file's
/// entries, also one to an object an earlier delta file added (the main file does not have
/// it); they are read for a change to an object idflow does not hold, whose type they tell (an
/// OU's change is ignored, not an error).
#[test]
fn a_delta_change_to_an_object_idflow_holds_is_applied_without_reading_the_main_file() {
    let e = small(&[person("ada", 1, "title: Analyst\n"), person("bob", 2, "")]);
    e.write("delta.ldif", &person("carol", 3, "title: Clerk\n"));
    e.ok(&["apply"], 0);
    assert_eq!(e.cloud_user("carol@example.org").expect("carol, added by the delta")["attributes"]["title"], "Clerk");
    let read = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).contains("is read for its entries' types");
    let import = || e.command(&["import", "corp"]).env("RUST_LOG", "idflow_connectors=debug,warn").output().expect("idflow runs");
    e.write("delta.ldif", "dn: uid=carol,ou=People,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Chief\n-\n");
    let o = import();
    assert!(o.status.success() && !read(&o), "{o:?}");
    let r = e.json(&["apply"], 0);
    assert_eq!(e.cloud_user("carol@example.org").expect("carol")["attributes"]["title"], "Chief", "{r}");
    // Deleted (imported, not synced yet), carol is not held: a later delta's change to her
    // does not take her deletion back.
    e.write("delta.ldif", "dn: uid=carol,ou=People,dc=example,dc=org\nchangetype: delete\n");
    e.ok(&["import", "corp"], 0);
    e.write("delta.ldif", "dn: uid=carol,ou=People,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Back\n-\n");
    let r = e.json(&["apply"], 0);
    assert!(e.cloud_user("carol@example.org").is_none(), "a change to a deleted object brings nothing back: {r}");
    e.write("delta.ldif", "dn: ou=People,dc=example,dc=org\nchangetype: modify\nreplace: description\ndescription: people\n-\n");
    let o = import();
    assert!(o.status.success() && read(&o), "{o:?}");
    let r = e.json(&["apply"], 0);
    assert!(r["errors"].as_array().is_some_and(|a| a.is_empty()), "the OU's change is not an error: {r}");
}

/// A delta's change to an object that an earlier delta deleted (imported, not synced yet) does
/// not take the deletion back: the deletion stands and the change is an error that says so.
#[test]
fn a_change_after_a_deletion_not_synced_yet_leaves_the_deletion_standing() {
    let e = small(&[person("ada", 1, "title: Analyst\n"), person("bob", 2, "")]);
    e.ok(&["apply"], 0);
    e.write("delta.ldif", "dn: uid=ada,ou=People,dc=example,dc=org\nchangetype: delete\n");
    e.ok(&["import", "corp"], 0);
    e.write("delta.ldif", "dn: uid=ada,ou=People,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Back\n-\n");
    let r = e.json(&["apply"], 2);
    assert!(e.cloud_user("ada@example.org").is_none(), "ada's deletion stands: {r}");
    assert!(r.to_string().contains("an earlier change deleted"), "{r}");
    assert!(e.cloud_user("bob@example.org").is_some());
}

/// A person deleted and made again at the same DN (a rehire: a new object, a new anchor)
/// before a sync has seen the deletion: the DN names two objects there until then, the one
/// deleted and the one present. A later delta's change by that DN is the present one's, as
/// the directory applied it; the deletion of the first stands. Carol came from a delta file,
/// not the main file, so that the main file cannot tell her type either: the change was ignored
/// as one to an object of no configured type.
#[test]
fn a_change_by_a_dn_deleted_and_made_again_is_the_new_objects() {
    let e = small(&[person("ada", 1, "title: Analyst\n"), person("bob", 2, "")]);
    e.write("delta.ldif", &person("carol", 3, "title: Clerk\n"));
    e.ok(&["apply"], 0);
    let delete = "dn: uid=carol,ou=People,dc=example,dc=org\nchangetype: delete\n";
    let modify =
        |title: &str| format!("dn: uid=carol,ou=People,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: {title}\n-\n");
    for delta in [delete.to_string(), person("carol", 7, "title: Rehired\n")] {
        e.write("delta.ldif", &delta);
        e.ok(&["import", "corp"], 0);
    }
    e.write("delta.ldif", &modify("Director"));
    let r = e.json(&["apply"], 0);
    assert!(r["errors"].as_array().is_some_and(|a| a.is_empty()), "{r}");
    let carol = e.cloud_user("carol@example.org").expect("the new carol");
    assert_eq!(carol["attributes"]["title"], "Director", "{r}");
    let carols = e.cloud().into_iter().filter(|o| o["attributes"]["userName"] == "carol@example.org").count();
    assert_eq!(carols, 1, "the first carol's deletion stands: {r}");
    let o = e.ok(&["preview", "corp", "uid=carol,ou=People,dc=example,dc=org"], 0);
    assert!(o.stdout.contains("00000000-0000-4000-8000-000000000007"), "{o:?}");
    // Ada (of the main file) deleted, made again and deleted again: a change by her DN meets
    // a deletion, and says so (it asked for a full import).
    let ada = |delta: &str| delta.replace("carol", "ada");
    for delta in [ada(delete), person("ada", 8, ""), ada(delete)] {
        e.write("delta.ldif", &delta);
        e.ok(&["import", "corp"], 0);
    }
    e.write("delta.ldif", &ada(&modify("Back")));
    let r = e.json(&["apply"], 2);
    assert!(r.to_string().contains("an earlier change deleted"), "{r}");
    assert!(e.cloud_user("ada@example.org").is_none(), "{r}");
}

/// A change file that adds an object (a new anchor) at the DN of one idflow holds, present,
/// and no change that deletes or renames that one: a directory holds one object at a DN, so
/// the file misses a record. The add is an error naming both objects, not a second person in
/// the metaverse and a second account in the target; a change after it by that DN is an error
/// too (which object it is about cannot be told), not applied to the first.
#[test]
fn an_add_at_the_dn_of_an_object_still_there_is_an_error_not_a_second_account() {
    let e = small(&[person("ada", 1, "title: Analyst\n"), person("bob", 2, "")]);
    e.ok(&["apply"], 0);
    e.write(
        "delta.ldif",
        &format!(
            "{}\ndn: uid=ada,ou=People,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Director\n-\n",
            person("ada", 7, "title: Other\n")
        ),
    );
    let r = e.json(&["apply"], 2);
    let errors = r["errors"].to_string();
    assert!(errors.contains("where idflow holds another object (anchor 00000000-0000-4000-8000-000000000001)"), "{r}");
    assert!(errors.contains("after a change that added an object there (anchor 00000000-0000-4000-8000-000000000007)"), "{r}");
    let adas: Vec<_> = e.cloud().into_iter().filter(|o| o["attributes"]["userName"] == "ada@example.org").collect();
    assert_eq!(adas.len(), 1, "{adas:?}");
    assert_eq!(adas[0]["attributes"]["title"], "Analyst", "{adas:?}");
    // A rename onto a DN another object holds is an error too; bob stays where he is.
    e.write("delta.ldif", "dn: uid=bob,ou=People,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid=ada\ndeleteoldrdn: 1\n");
    let r = e.json(&["apply"], 2);
    assert!(
        r["errors"].to_string().contains(
            "to uid=ada,ou=People,dc=example,dc=org, where idflow holds another object (anchor 00000000-0000-4000-8000-000000000001)"
        ),
        "{r}"
    );
    let o = e.ok(&["preview", "corp", "uid=bob,ou=People,dc=example,dc=org"], 0);
    assert!(o.stdout.contains("00000000-0000-4000-8000-000000000002"), "{o:?}");
}

/// A rehire in one change file (the old one deleted, the new one added at her DN, then
/// changed), and the same file read again by a full import: of the export it was made from
/// (the old one still there: an error, nothing inferred deleted), then of a current export
/// (the new one there: the old one is gone, the change is the new one's).
#[test]
fn a_rehire_in_one_change_file_and_in_a_full_import() {
    let e = small(&[person("ada", 1, "title: Analyst\n"), person("bob", 2, "")]);
    e.ok(&["apply"], 0);
    let dn = "dn: uid=ada,ou=People,dc=example,dc=org";
    let rehire = format!(
        "{dn}\nchangetype: delete\n\n{}\n{dn}\nchangetype: modify\nreplace: title\ntitle: Director\n-\n",
        person("ada", 7, "title: Rehired\n")
    );
    e.write("delta.ldif", &rehire);
    let r = e.json(&["apply"], 0);
    assert!(r["errors"].as_array().is_some_and(|a| a.is_empty()), "{r}");
    let adas: Vec<_> = e.cloud().into_iter().filter(|o| o["attributes"]["userName"] == "ada@example.org").collect();
    assert_eq!(adas.len(), 1, "{adas:?}");
    assert_eq!(adas[0]["attributes"]["title"], "Director", "{adas:?}");
    // A full import of the old export with that file: the first ada is read, and the new one
    // added at her DN is an error; nothing is inferred deleted.
    e.write("delta.ldif", &format!("{}\n{dn}\nchangetype: modify\nreplace: title\ntitle: Chief\n-\n", person("ada", 7, "")));
    let r = e.json(&["import", "--full", "corp"], 2);
    assert_eq!(r["import"][0]["deleted"], 0, "{r}");
    assert!(r["errors"].to_string().contains("duplicate DN: uid=ada,ou=People,dc=example,dc=org is read for two objects"), "{r}");
    // A current export: the new ada in it, the first not, and a change since. The first ada,
    // read by the import before, is still there until this one ends: the change by the DN is
    // the new one's, the one this import read.
    e.write("corp.ldif", &[person("ada", 7, "title: Rehired\n"), person("bob", 2, "")].join("\n"));
    e.write("delta.ldif", &format!("{dn}\nchangetype: modify\nreplace: title\ntitle: Chief\n-\n"));
    let r = e.json(&["apply"], 0);
    assert!(r["errors"].as_array().is_some_and(|a| a.is_empty()), "{r}");
    let adas: Vec<_> = e.cloud().into_iter().filter(|o| o["attributes"]["userName"] == "ada@example.org").collect();
    assert_eq!(adas.len(), 1, "{adas:?}");
    assert_eq!(adas[0]["attributes"]["title"], "Chief", "{adas:?}");
}

/// A change file is applied once: an error in it is not met again by the next delta, so it is
/// carried and reported by every run after (exit code 2) until a change brings that object, or a
/// full import ends without it; before, the next run said all was well. An add at the DN of
/// another object is cleared by a change that brings the added object (its anchor), not by one
/// that names the DN (that is the other object's).
#[test]
fn an_error_in_a_change_file_stays_until_a_change_brings_that_object() {
    let e = small(&[person("ada", 1, "title: Analyst\n"), person("bob", 2, "")]);
    e.ok(&["apply"], 0);
    e.write("delta.ldif", &person("ada", 7, "title: Other\n"));
    let first = e.json(&["apply"], 2);
    let message = first["errors"][0]["message"].clone();
    assert!(message.as_str().is_some_and(|m| m.contains("where idflow holds another object")), "{first}");
    let carried = |r: &serde_json::Value| {
        assert_eq!((r["import"][0]["carried"].as_u64(), r["errors"].as_array().map(Vec::len)), (Some(1), Some(1)), "{r}");
        assert_eq!(r["errors"][0]["message"], message, "{r}");
        assert!(r.to_string().contains("errors of earlier runs are still there"), "{r}");
    };
    carried(&e.json(&["apply"], 2));
    // A full import that meets it again ends incomplete; its errors are carried after it too
    // (the file, applied already, is not applied by the next delta).
    assert_eq!(e.json(&["import", "--full", "corp"], 2)["errors"][0]["message"], message);
    carried(&e.json(&["apply"], 2));
    // A change to the ada idflow holds, by her DN: applied, and the add still in error.
    e.write("delta.ldif", "dn: uid=ada,ou=People,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Director\n-\n");
    carried(&e.json(&["apply"], 2));
    assert_eq!(e.cloud_user("ada@example.org").expect("ada")["attributes"]["title"], "Director");
    // A new file that makes the error again, read by a full import (on top of the main file):
    // incomplete, the file counts as applied, and its error is carried, reported once a run.
    e.write("delta.ldif", &person("ada", 7, "title: Other\n"));
    let r = e.json(&["import", "--full", "corp"], 2);
    assert_eq!((r["errors"][0]["message"].clone(), r["errors"].as_array().map(Vec::len)), (message.clone(), Some(1)), "{r}");
    carried(&e.json(&["apply"], 2));
    // The file that was missing a record: the first ada left, the new one came.
    e.write(
        "delta.ldif",
        &format!("dn: uid=ada,ou=People,dc=example,dc=org\nchangetype: delete\n\n{}", person("ada", 7, "title: Rehired\n")),
    );
    let r = e.json(&["apply"], 0);
    assert!(r["errors"].as_array().is_some_and(|a| a.is_empty()), "{r}");
    e.json(&["apply"], 0);
    assert_eq!(e.cloud_user("ada@example.org").expect("the new ada")["attributes"]["title"], "Rehired");
}
