//! Attribute names as an import keeps them: spelled as the rules spell them (LDAP names are
//! case-insensitive), secrets dropped. Done where the object is read when the connector reads
//! on a thread of its own ([`Prepared`]), with the attributes' JSON text the store keeps.
use idflow_core::connector::{ImportedObject, Prepare, PreparedObject};
use idflow_core::fast_hash::FastMap;
use idflow_core::{attrs_to_json, Attrs};
use idflow_store::{PackSeed, Packer};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

/// A connector's attribute names, looked up once per name.
#[derive(Clone)]
pub(crate) struct Names {
    /// By the name lower-cased, how the rules spell it.
    spellings: Arc<HashMap<String, String>>,
    /// Lower-cased names of attributes that hold secrets: never stored.
    secret: Arc<HashSet<String>>,
    /// Names as read, to the spelling kept (`None`: a secret's).
    known: FastMap<String, Option<String>>,
}

/// Is `name` a secret's (never stored)? By the attribute itself, its options aside:
/// `userPassword;binary` is userPassword.
fn is_secret(secret: &HashSet<String>, name: &str) -> bool {
    secret.contains(&name.split(';').next().unwrap_or(name).to_lowercase())
}

impl Names {
    pub(crate) fn new(spellings: HashMap<String, String>, secret: &HashSet<String>) -> Names {
        Names { spellings: Arc::new(spellings), secret: Arc::new(secret.clone()), known: FastMap::default() }
    }

    /// How the rules spell `k`, or None for a secret (never stored).
    pub(crate) fn name_for(&mut self, k: &str) -> &Option<String> {
        if !self.known.contains_key(k) {
            let m = match is_secret(&self.secret, k) {
                true => None,
                false => Some(self.spellings.get(&k.to_lowercase()).map_or(k, String::as_str).to_string()),
            };
            self.known.insert(k.to_string(), m);
        }
        &self.known[k]
    }

    /// Whether `k` is stored as it is spelled: [`Self::name_for`] in one look-up once known.
    fn kept_as_read(&mut self, k: &str) -> bool {
        match self.known.get(k) {
            Some(m) => m.as_deref() == Some(k),
            None => self.name_for(k).as_deref() == Some(k),
        }
    }

    /// `attrs` named as they are kept, secrets dropped; values of names spelled two ways joined.
    pub(crate) fn canonical(&mut self, attrs: Attrs) -> Attrs {
        // Most objects have every name spelled as the rules spell it and no secret: kept as read.
        if attrs.keys().all(|k| self.kept_as_read(k)) {
            return attrs;
        }
        let mut out = Attrs::new();
        for (k, v) in attrs {
            let name = match self.name_for(&k) {
                None => continue,
                Some(m) if *m == k => k,
                Some(m) => m.clone(),
            };
            match out.entry(name) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(v);
                }
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().extend(v),
            }
        }
        out
    }
}

/// What an import does to each object before it looks at what it has stored, on the thread
/// that reads it: its names as kept, their JSON text (which the store keeps, and compares with
/// what it has), and that text packed as the store keeps it, once the connector's attributes
/// have a dictionary (compressing is a fifth of a first import's writing thread otherwise).
pub(crate) struct Prepared {
    names: Names,
    /// The attributes themselves are not needed (a first import keeps their text, and reads
    /// them back from it only for an object met twice): left out here, where they were made.
    text_only: bool,
    /// The dictionary, set by the import once there is one (the first objects train it).
    seed: Arc<OnceLock<PackSeed>>,
    /// This thread's packer, made from the seed when it is set (`Err`: it could not be; the
    /// store packs then).
    packer: Option<std::result::Result<Packer, ()>>,
    /// Packing here only while the storing thread lags: where this thread is the slower one
    /// (a small directory's, read from a file), packing there keeps both busy.
    packing: bool,
}

impl Prepared {
    pub(crate) fn new(names: Names, text_only: bool, seed: Arc<OnceLock<PackSeed>>) -> Self {
        Prepared { names, text_only, seed, packer: None, packing: false }
    }

    fn pack(&mut self, json: &str) -> Option<Vec<u8>> {
        if !self.packing {
            return None;
        }
        if self.packer.is_none() {
            self.packer = Some(self.seed.get()?.packer().map_err(|e| tracing::debug!("no packing where objects are read: {e}")));
        }
        self.packer.as_mut()?.as_mut().ok()?.pack(json)
    }
}

impl Prepare for Prepared {
    fn prepare(&mut self, mut obj: ImportedObject) -> PreparedObject {
        obj.attrs = self.names.canonical(std::mem::take(&mut obj.attrs));
        let attrs_json = attrs_to_json(&obj.attrs);
        if self.text_only {
            obj.attrs = Attrs::new();
        }
        let packed = self.pack(&attrs_json);
        PreparedObject { obj, attrs_json, with_attrs: !self.text_only, packed }
    }

    fn storing_behind(&mut self, behind: bool) {
        self.packing = behind;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idflow_core::Value;

    fn attrs(pairs: &[(&str, &str)]) -> Attrs {
        let mut a = Attrs::new();
        for (k, v) in pairs {
            a.entry(k.to_string()).or_default().push(Value::from(*v));
        }
        a
    }

    /// Once the connector's attributes have a dictionary, objects are packed where they are
    /// read while the storing side lags, and what was packed there is stored and reads back
    /// the same.
    #[test]
    fn objects_are_packed_where_read_while_the_storing_side_lags() {
        use idflow_store::{CsObject, ReadOps, Store, WriteOps};
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let seed = Arc::new(OnceLock::new());
        let names = Names::new(HashMap::new(), &HashSet::new());
        let mut prepared = Prepared::new(names, false, Arc::clone(&seed));
        prepared.storing_behind(true);
        let read = |i: usize| ImportedObject { anchor: Some(format!("a{i}")), dn: None, object_type: "person".into(), attrs: person(i) };
        assert_eq!(prepared.prepare(read(0)).packed, None, "no dictionary yet");
        for i in 0..3000 {
            let mut o = CsObject::new("corp", "person");
            o.attrs = person(i);
            tx.cs_save(&o).expect("saved");
        }
        let _ = seed.set(tx.cs_attrs_pack_seed("corp").expect("seed").expect("trained"));
        let p = prepared.prepare(read(5000));
        let packed = p.packed.clone().expect("packed where read");
        let mut o = CsObject::new("corp", "person");
        o.attrs = p.obj.attrs.clone();
        let id = tx.cs_save_read(&o, p.attrs_json, Some(packed)).expect("saved");
        assert_eq!(tx.cs_get(id).expect("read").expect("there").attrs, person(5000));
        prepared.storing_behind(false);
        assert_eq!(prepared.prepare(read(5001)).packed, None, "the storing side keeps up: packed there");
    }

    /// A directory that prepares its objects as a reader on a thread of its own would, the
    /// storing side lagging all along, and counts those it packed there.
    struct Lagged {
        people: usize,
        packed: usize,
    }

    impl idflow_core::connector::Connector for Lagged {
        fn name(&self) -> &str {
            "corp"
        }
        fn capabilities(&self) -> idflow_core::connector::Capabilities {
            idflow_core::connector::Capabilities {
                delta_import: false,
                delta_reads_again: false,
                export: false,
                local_anchor: false,
                reference_form: idflow_core::connector::RefForm::Dn,
                max_batch: 1,
                owner_attribute: None,
                reference_attributes: &[],
                unique_attributes: &[],
            }
        }
        fn full_import(&mut self, sink: &mut dyn idflow_core::connector::ImportSink) -> idflow_core::Result<Option<String>> {
            let mut prepare = sink.preparer().expect("a sink that prepares");
            for i in 0..self.people {
                prepare.storing_behind(true);
                let read = ImportedObject { anchor: Some(format!("a{i}")), dn: None, object_type: "person".into(), attrs: person(i) };
                let p = prepare.prepare(read);
                self.packed += usize::from(p.packed.is_some());
                sink.prepared(p)?;
            }
            Ok(None)
        }
        fn delta_import(&mut self, _: &str, _: &mut dyn idflow_core::connector::ImportSink) -> idflow_core::Result<Option<String>> {
            Ok(None)
        }
        fn export(&mut self, _: &[idflow_core::connector::ExportOp]) -> idflow_core::Result<Vec<idflow_core::connector::OpResult>> {
            Ok(Vec::new())
        }
    }

    fn person(i: usize) -> Attrs {
        attrs(&[("cn", &format!("Person {i}")), ("mail", &format!("p{i:06}@example.org")), ("title", "Engineer")])
    }

    /// A first import hands its reader the dictionary the first objects trained, and keeps what
    /// the reader packed from then on (debug builds, as tests run, check each value against
    /// its JSON as it is kept); every object reads back as read. The index by anchor the
    /// import went without is there again as it ends, before the commit.
    #[test]
    fn an_import_keeps_what_its_reader_packed_once_there_is_a_dictionary() {
        use idflow_store::{CsObject, ReadOps, WriteOps};
        let e = crate::tests::engine_in(crate::tests::CONFIG, crate::tests::RULES);
        let tx = e.store.write().expect("tx");
        let mut c = Lagged { people: 3000, packed: 0 };
        e.import_one(&tx, &mut c, crate::import::Mode::Full, false, &mut Default::default()).expect("imported");
        assert!(c.packed > 500 && c.packed < 3000, "packed where read once the dictionary was trained: {}", c.packed);
        for i in (0..3000).step_by(97) {
            let o = tx.cs_by_anchor("corp", &format!("a{i}")).expect("read").expect("kept");
            assert_eq!(o.attrs, person(i), "object {i}");
        }
        let mut twin = CsObject::new("corp", "person");
        twin.anchor = Some("a0".into());
        assert!(tx.cs_save(&twin).is_err(), "the index by anchor refuses a twin at once");
    }

    #[test]
    fn names_are_spelled_as_the_rules_spell_them_and_secrets_dropped() {
        let spellings = HashMap::from([("mail".to_string(), "mail".to_string()), ("givenname".to_string(), "givenName".to_string())]);
        let secret = HashSet::from(["userpassword".to_string()]);
        let mut names = Names::new(spellings, &secret);
        let read = attrs(&[("GIVENNAME", "Ada"), ("givenName", "Augusta"), ("userPassword;binary", "x"), ("cn", "Ada L")]);
        let kept = names.canonical(read);
        assert_eq!(kept, attrs(&[("givenName", "Ada"), ("givenName", "Augusta"), ("cn", "Ada L")]));
        // Kept as read: the same map back.
        assert_eq!(names.canonical(kept.clone()), kept);
        let read = ImportedObject { anchor: None, dn: None, object_type: "person".into(), attrs: kept.clone() };
        let p = Prepared::new(names.clone(), false, Default::default()).prepare(read.clone());
        assert_eq!((p.attrs_json, p.obj.attrs, p.with_attrs), (attrs_to_json(&kept), kept.clone(), true));
        let p = Prepared::new(names, true, Default::default()).prepare(read);
        assert_eq!((p.attrs_json, p.obj.attrs, p.with_attrs), (attrs_to_json(&kept), Attrs::new(), false));
    }
}
