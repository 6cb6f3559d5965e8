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
