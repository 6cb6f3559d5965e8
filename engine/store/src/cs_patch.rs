//! A target object's attributes kept as the few changes that make its desired state into
//! them. After an export, what the target holds is what sync wanted with its references
//! resolved (a manager's metaverse object written as the target's own id): one attribute of
//! three differs. Keeping that one, as a byte [`MARK`] and its JSON, instead of the whole
//! object compressed again spares the export a compression per object and a later read a
//! decompression. Objects whose attributes differ from the desired state in most of their
//! size (a group whose members are all references) are kept whole, as before.
use idflow_core::{attrs_to_json, Attrs, Value};

/// The first byte of an `attrs` value kept as a patch of `desired`. A packed value begins
/// with its dictionary's id, and no dictionary has id 0 (packed.rs).
pub(crate) const MARK: u8 = 0;

/// A patch this small (in bytes of JSON) is kept when it is smaller than the whole at all:
/// about what the whole of a person compresses to. Between a sync that changes a desired state
/// and the export that sends it, a person's attributes differ from it in the attributes that
/// changed and the manager resolved (the bench's 1% delta: the display name and the manager,
/// half of it or more); kept as a patch they are not compressed at the sync and decompressed
/// at the export (a compression was 3% of a 1% delta sync's instructions at 100,000 people).
const SMALL: usize = 192;

/// `attrs` as a patch of `desired` (the stored value: [`MARK`], then JSON): each attribute
/// named has those values, or is absent when it has none. `None` when a patch is not worth it
/// (half the size of the whole or more, unless it is [`SMALL`] and smaller than the whole), or
/// cannot say it (an attribute with no values would read back as absent). `whole_len`: the
/// length of `attrs`' JSON, asked for only when a lower bound of it does not decide (most
/// patches, a resolved manager, are decided by the bound: the whole is not made).
pub(crate) fn of(desired: &Attrs, attrs: &Attrs, whole_len: impl FnOnce() -> usize) -> Option<Vec<u8>> {
    if desired.is_empty() || attrs.is_empty() || attrs.values().any(Vec::is_empty) {
        return None;
    }
    let mut patch = Attrs::new();
    // What did not change: how many attributes, and at least how long their JSON is.
    let mut same = Same::default();
    for (k, v) in attrs {
        if desired.get(k) != Some(v) {
            patch.insert(k.clone(), v.clone());
        } else {
            same.add(k, v);
        }
    }
    let mut removed = Attrs::new();
    for k in desired.keys().filter(|k| !attrs.contains_key(*k)) {
        patch.insert(k.clone(), Vec::new());
        removed.insert(k.clone(), Vec::new());
    }
    let json = attrs_to_json(&patch);
    let worth = |whole: usize| json.len() * 2 < whole || (json.len() <= SMALL && json.len() < whole);
    let least = least_whole(&same, patch.is_empty(), &removed, json.len());
    debug_assert!(least <= attrs_to_json(attrs).len(), "a lower bound of the whole's length");
    if !worth(least) && !worth(whole_len()) {
        return None;
    }
    let mut out = Vec::with_capacity(json.len() + 1);
    out.push(MARK);
    out.extend_from_slice(json.as_bytes());
    Some(out)
}

/// The attributes of an object that are as its desired state has them.
#[derive(Default)]
struct Same {
    count: usize,
    /// A lower bound of their JSON's length: each at least its name, quotes, colon and
    /// brackets, and each value its quotes and its text (escaping only lengthens; 7 for a
    /// binary value or a reference, whose JSON is at least 9 bytes), a comma between two values.
    least_len: usize,
}

impl Same {
    fn add(&mut self, k: &str, vs: &[Value]) {
        let values: usize = vs.iter().map(|v| 2 + if let Value::Str(s) = v { s.len() } else { 7 }).sum();
        self.least_len += k.len() + 5 + values + vs.len().saturating_sub(1);
        self.count += 1;
    }
}

/// A lower bound of the length of an object's JSON, given its patch's (`patch_len`: the
/// attributes that differ, as the whole writes them, and those `removed`, each as
/// `"name":[]`; `empty`: there are none). The whole is the patch without what is removed, with
/// the attributes that are the `same`, a comma before each.
fn least_whole(same: &Same, empty: bool, removed: &Attrs, patch_len: usize) -> usize {
    if empty {
        // The patch is `{}`: the whole is only what did not change.
        return 2 + same.least_len + same.count.saturating_sub(1);
    }
    // What the removed attributes take in the patch, their commas included.
    let removed_len = if removed.is_empty() { 0 } else { attrs_to_json(removed).len() - 2 + 1 };
    (patch_len + same.least_len + same.count).saturating_sub(removed_len)
}

/// The attributes a patch (decoded) of `desired` stands for.
pub(crate) fn apply(mut desired: Attrs, patch: Attrs) -> Attrs {
    for (k, v) in patch {
        if v.is_empty() {
            desired.remove(&k);
        } else {
            desired.insert(k, v);
        }
    }
    desired
}

#[cfg(test)]
mod tests {
    use crate::AttrsRead;
    use idflow_core::{attrs_to_json, Attrs, Value};

    fn attrs(pairs: &[(&str, &[&str])]) -> Attrs {
        pairs.iter().map(|(k, vs)| (k.to_string(), vs.iter().map(|v| Value::from(*v)).collect())).collect()
    }

    fn decoded(p: &[u8]) -> Attrs {
        assert_eq!(p[0], super::MARK);
        idflow_core::attrs_from_json(std::str::from_utf8(&p[1..]).expect("utf8")).expect("json")
    }

    #[test]
    fn a_patch_names_what_differs_and_what_is_gone_and_reads_back_the_same() {
        let desired =
            attrs(&[("displayName", &["Ada Lovelace"]), ("userName", &["ada@example.org"]), ("title", &["Countess"]), ("manager", &["x"])]);
        let held = attrs(&[("displayName", &["Ada Lovelace"]), ("userName", &["ada@example.org"]), ("manager", &["0190a1b2-c3d4"])]);
        let p = super::of(&desired, &held, || attrs_to_json(&held).len()).expect("worth it");
        assert_eq!(decoded(&p), attrs(&[("manager", &["0190a1b2-c3d4"]), ("title", &[])]));
        assert_eq!(super::apply(desired, decoded(&p)), held);
    }

    /// A target object as an export leaves it: its manager resolved to the target's own id.
    fn exported(i: usize) -> crate::CsObject {
        let mut o = crate::CsObject::new("cloud", "User");
        o.anchor = Some(format!("0190a1b2-{i:06}"));
        o.present = true;
        let desired =
            attrs(&[("displayName", &["Ada Lovelace"]), ("userName", &["ada@example.org"]), ("title", &["Countess of Lovelace"])]);
        let mut d = desired.clone();
        d.insert("manager".into(), vec![Value::Ref(7)]);
        o.desired = Some(d);
        o.attrs = desired;
        o.attrs.insert("manager".into(), vec![Value::from("0190a1b2-000007")]);
        o
    }

    #[test]
    fn an_object_kept_as_a_patch_reads_back_whole_on_every_path_and_follows_its_desired_state() {
        use crate::{CsKey, ReadOps, WriteOps};
        let store = crate::Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let mut o = exported(1);
        o.id = tx.cs_save(&o).expect("saved");
        let kept = |tx: &crate::WriteTxn<'_>| -> String {
            crate::ops::on(tx, |c| c.query_row("SELECT hex(attrs) FROM cs_object WHERE id=?1", [o.id], |r| r.get(0))).expect("row")
        };
        assert!(kept(&tx).starts_with("00"), "kept as a patch: {}", kept(&tx));
        assert_eq!(tx.cs_get(o.id).expect("read").expect("there"), o);
        let later = tx.cs_get_many_later(&[o.id]).expect("read");
        assert_eq!(std::thread::spawn(later).join().expect("decoded").expect("readable"), vec![o.clone()]);
        // An import that reads what the target holds: the same, nothing decoded.
        let (read, same) = tx.cs_by_anchor_against("cloud", "0190a1b2-000001", &AttrsRead::of(&o.attrs)).expect("read").expect("there");
        assert!(same);
        assert_eq!(read, crate::CsObject { attrs: Attrs::new(), ..o.clone() });
        // One that reads something else: not the same, the object whole.
        let mut changed = o.attrs.clone();
        changed.insert("title".into(), vec![Value::from("Analyst")]);
        let (read, same) = tx.cs_by_anchor_against("cloud", "0190a1b2-000001", &AttrsRead::of(&changed)).expect("read").expect("there");
        assert!(!same);
        assert_eq!(read, o);
        assert_eq!(tx.cs_name_of(CsKey::Id(o.id)).expect("read"), Some(o.display()), "named by its attributes");
        // An export records it again: still a patch.
        tx.cs_set_exported(&o).expect("exported");
        assert!(kept(&tx).starts_with("00"));
        assert_eq!(tx.cs_get(o.id).expect("read").expect("there"), o);
        // Sync wants the same: nothing moves.
        tx.cs_set_desired(&o, Some(crate::ExportState::Present)).expect("desired");
        assert_eq!(tx.cs_get(o.id).expect("read").expect("there"), o);
        // Sync wants another title: the attributes stay what the target holds.
        let mut wants = o.clone();
        if let Some(d) = wants.desired.as_mut() {
            d.insert("title".into(), vec![Value::from("Analyst")]);
        }
        tx.cs_set_desired(&wants, Some(crate::ExportState::Present)).expect("desired");
        assert_eq!(tx.cs_get(o.id).expect("read").expect("there"), wants);
        // The same through the write that sets the export state too, of an object kept as a
        // patch.
        let mut other = exported(3);
        other.id = tx.cs_save(&other).expect("saved");
        let patch = |tx: &crate::WriteTxn<'_>| -> bool {
            crate::ops::on(tx, |c| c.query_row("SELECT substr(attrs, 1, 1) = X'00' FROM cs_object WHERE id=?1", [other.id], |r| r.get(0)))
                .expect("row")
        };
        assert!(patch(&tx));
        let mut lead = other.clone();
        if let Some(d) = lead.desired.as_mut() {
            d.insert("title".into(), vec![Value::from("Lead")]);
        }
        tx.cs_set_desired(&lead, None).expect("desired");
        assert_eq!(tx.cs_get(other.id).expect("read").expect("there"), lead);
        // And wants nothing any more.
        let mut nothing = wants.clone();
        nothing.desired = None;
        tx.cs_set_desired(&nothing, Some(crate::ExportState::Present)).expect("desired");
        assert!(!kept(&tx).starts_with("00"), "kept whole");
        assert_eq!(tx.cs_get(o.id).expect("read").expect("there"), nothing);
    }

    #[test]
    fn attributes_that_do_not_read_back_are_an_error_naming_the_object() {
        use crate::{ReadOps, WriteOps};
        let store = crate::Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let mut o = exported(2);
        o.id = tx.cs_save(&o).expect("saved");
        // A patch cut short, as a damaged row would hold it.
        crate::ops::on(&tx, |c| c.execute("UPDATE cs_object SET attrs = X'007B226D616E61676572223A5B' WHERE id = ?1", [o.id]))
            .expect("damaged");
        let at_once = tx.cs_get(o.id).expect_err("damaged").to_string();
        let later = tx.cs_get_many_later(&[o.id]).expect("read");
        let elsewhere = std::thread::spawn(later).join().expect("decoded").expect_err("damaged").to_string();
        let compared = tx.cs_by_anchor_against("cloud", "0190a1b2-000002", &AttrsRead::of(&o.attrs)).expect_err("damaged").to_string();
        for e in [at_once, elsewhere, compared] {
            let who = format!("object {} of connector cloud (anchor 0190a1b2-000002): its attributes do not read back", o.id);
            assert!(e.contains(&who), "{e}");
        }
    }

    /// The whole's length is asked for only when the bound does not decide, and the bound is
    /// one: for objects of every kind of value (escaped text, non-ASCII, binary, references),
    /// with attributes changed, removed or none, the patch is the one the whole's length gives.
    #[test]
    fn the_whole_is_made_only_when_its_bound_does_not_decide() {
        let person =
            attrs(&[("displayName", &["Ada Lovelace"]), ("userName", &["ada@example.org"]), ("title", &["Countess"]), ("manager", &["x"])]);
        let mut exported = person.clone();
        exported.insert("manager".into(), vec![Value::from("0190a1b2-0000-7000-8000-000000000001")]);
        let p = super::of(&person, &exported, || panic!("a resolved manager is decided by the bound")).expect("worth it");
        assert_eq!(decoded(&p), attrs(&[("manager", &["0190a1b2-0000-7000-8000-000000000001"])]));
        let odd: Vec<Value> = vec![
            Value::from("quote \" and back\\slash\n"),
            Value::from("été ünïcode"),
            Value::Bin(vec![0, 1, 2, 255]),
            Value::Ref(-42),
            Value::from(""),
        ];
        let mut cases = Vec::new();
        for n in 0..odd.len() {
            let mut held = person.clone();
            held.insert("odd".into(), odd[..=n].to_vec());
            cases.push((person.clone(), held.clone()));
            let mut fewer = held.clone();
            fewer.remove("title");
            cases.push((held.clone(), fewer));
            let mut desired = held.clone();
            desired.insert("gone\"name".into(), vec![Value::from("v")]);
            cases.push((desired, held.clone()));
            cases.push((held.clone(), held));
        }
        // A group whose members all differ: refused, once the whole's length is known.
        let members: Vec<String> = (0..20).map(|i| format!("uid=u{i:06},ou=People,dc=example,dc=org")).collect();
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        cases.push((attrs(&[("members", &["x"]), ("cn", &["staff"])]), attrs(&[("members", &refs), ("cn", &["staff"])])));
        let (mut kept, mut refused) = (0, 0);
        // (Debug builds, which run the tests, also check in `of` that the bound is one.)
        for (desired, held) in cases {
            let whole = attrs_to_json(&held).len();
            // The patch itself, whatever the whole: its length decides, with the whole's.
            let Some(patch) = super::of(&desired, &held, || usize::MAX) else { continue };
            let len = patch.len() - 1;
            let worth = len * 2 < whole || (len <= super::SMALL && len < whole);
            let asked = std::cell::Cell::new(false);
            let got = super::of(&desired, &held, || {
                asked.set(true);
                whole
            });
            assert_eq!(got.is_some(), worth, "{held:?} against {desired:?}");
            assert!(worth || asked.get(), "refused without the whole's length: {held:?}");
            match worth {
                true => kept += 1,
                false => refused += 1,
            }
        }
        assert!(kept > 0 && refused > 0, "both ways: {kept} kept, {refused} refused");
    }

    #[test]
    fn no_patch_when_it_is_not_smaller_or_cannot_say_it() {
        let desired = attrs(&[("members", &["a", "b"])]);
        assert!(
            super::of(&desired, &attrs(&[("members", &["1", "2"])]), || "{\"members\":[\"1\",\"2\"]}".len()).is_none(),
            "everything differs"
        );
        let held = attrs(&[("members", &["a", "b"]), ("extra", &[])]);
        assert!(super::of(&desired, &held, || attrs_to_json(&held).len()).is_none(), "an attribute with no values");
        assert!(super::of(&Attrs::new(), &held, || attrs_to_json(&held).len()).is_none(), "no desired state");
    }

    #[test]
    fn a_small_patch_is_kept_though_more_than_half_a_large_one_is_not() {
        // A person whose title and name changed, not exported yet: most of it, but small.
        let desired = attrs(&[("displayName", &["Ada King"]), ("title", &["Countess"]), ("mail", &["ada@example.org"])]);
        let held = attrs(&[("displayName", &["Ada Lovelace"]), ("title", &["Analyst"]), ("mail", &["ada@example.org"])]);
        let p = super::of(&desired, &held, || attrs_to_json(&held).len()).expect("small");
        assert_eq!(decoded(&p), attrs(&[("displayName", &["Ada Lovelace"]), ("title", &["Analyst"])]));
        // A group whose members all differ: a patch nearly the size of the whole, compressed
        // better whole.
        let members: Vec<String> = (0..20).map(|i| format!("uid=u{i:06},ou=People,dc=example,dc=org")).collect();
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        let desired = attrs(&[("members", &["x"]), ("cn", &["staff"])]);
        let held = attrs(&[("members", &refs), ("cn", &["staff"])]);
        assert!(super::of(&desired, &held, || attrs_to_json(&held).len()).is_none(), "large and most of the whole");
    }
}
