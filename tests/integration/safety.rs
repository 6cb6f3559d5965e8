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
