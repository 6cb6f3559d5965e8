//! Unit tests of the pure middle: evaluator limits, joins, precedence and references, on an
//! in-memory metaverse with no connector.
use crate::config::Config;
use crate::ctx::Ctx;
use crate::engine::Engine;
use crate::observer::Silent;
use crate::{inbound, outbound, references};
use idflow_core::Value;
use idflow_policy::defs::parse_str;
use idflow_policy::to_values;
use idflow_store::{CsObject, MvObject, PendingImport, ReadOps, Store, WriteOps};
use std::path::Path;

pub(crate) const CONFIG: &str = r#"
[metaverse]
path = ":memory:"
[[connector]]
name = "hr"
type = "ldif"
path = "hr.ldif"
[connector.object_types]
worker = "(objectClass=worker)"
[[connector]]
name = "corp"
type = "ldif"
path = "corp.ldif"
reference_attributes = ["manager"]
[connector.object_types]
person = "(objectClass=person)"
[[connector]]
name = "cloud"
type = "file"
path = "cloud.json"
"#;

pub(crate) const RULES: &str = r#"
[[rule]]
name = "hr"
direction = "inbound"
connector = "hr"
source_type = "worker"
metaverse_type = "person"
precedence = 50
link = "provision"
[rule.flows]
employeeId = "source.id"
title = "source.title"

[[rule]]
name = "corp"
direction = "inbound"
connector = "corp"
source_type = "person"
metaverse_type = "person"
precedence = 100
link = "join"
join = [ { metaverse = "employeeId", expr = "source.employeeNumber", ignore_case = true } ]
[rule.flows]
title = "source.title"
mail = "source.mail"
manager = "source.manager"
nickname = 'if source.nick == "none" { [] } else { source.nick }'

[[rule]]
name = "out"
direction = "outbound"
connector = "cloud"
metaverse_type = "person"
target_type = "User"
scope = "mv.mail != ()"
link = "provision"
[rule.flows]
userName = "mv.mail"
manager = "mv.manager"
"#;

fn engine(rules: &str) -> Engine {
    engine_in(CONFIG, rules)
}

pub(crate) fn engine_in(config: &str, rules: &str) -> Engine {
    let config = Config::parse(Path::new("idflow.toml"), config).expect("config");
    let defs = parse_str(Path::new("rules.toml"), rules).expect("rules");
    Engine::from_parts(config, defs, Store::in_memory().expect("db"), std::sync::Arc::new(idflow_connectors::builtin())).expect("engine")
}

/// [`engine_in`] with its metaverse in a file in `dir` (another connection can open it).
pub(crate) fn engine_on_disk(config: &str, rules: &str, dir: &Path) -> Engine {
    let config = Config::parse(Path::new("idflow.toml"), config).expect("config");
    let defs = parse_str(Path::new("rules.toml"), rules).expect("rules");
    let store = Store::open(&dir.join("idflow.db")).expect("db");
    Engine::from_parts(config, defs, store, std::sync::Arc::new(idflow_connectors::builtin())).expect("engine")
}

pub(crate) fn put(e: &Engine, connector: &str, ty: &str, dn: &str, attrs: &[(&str, &str)]) -> i64 {
    let mut o = CsObject::new(connector, ty);
    o.dn = Some(dn.into());
    o.anchor = Some(dn.into());
    for (k, v) in attrs {
        o.attrs.entry(k.to_string()).or_default().push(Value::from(*v));
    }
    o.present = true;
    o.pending_import = Some(PendingImport::Add);
    save(e, &o)
}

pub(crate) fn save(e: &Engine, o: &CsObject) -> i64 {
    let tx = e.store.write().expect("tx");
    let id = tx.cs_save(o).expect("save");
    tx.commit().expect("commit");
    id
}

pub(crate) fn get(e: &Engine, cs_id: i64) -> CsObject {
    e.store.read().expect("tx").cs_get(cs_id).expect("get").expect("exists")
}

pub(crate) fn sync(e: &Engine) -> Vec<String> {
    let tx = e.store.write().expect("tx");
    let mut ctx = Ctx::new(&tx, &e.rules, &e.facts, &Silent);
    let ids = tx.cs_ids_pending_import().expect("ids");
    inbound::run(&mut ctx, ids).expect("inbound");
    let m = tx.mv_dirty_ids().expect("dirty");
    outbound::run(&mut ctx, m).expect("outbound");
    let errors = ctx.errors.iter().map(|x| x.message.clone()).collect();
    drop(ctx);
    tx.commit().expect("commit");
    errors
}

/// A full sync of the sources `hr` and `corp`, as one stage: every source object, then every
/// metaverse object.
fn full_sync(e: &Engine) -> Vec<String> {
    let tx = e.store.write().expect("tx");
    let mut ctx = Ctx::new(&tx, &e.rules, &e.facts, &Silent);
    ctx.full = true;
    inbound::run(&mut ctx, tx.cs_ids_full_sync(&["hr".to_string(), "corp".to_string()]).expect("ids")).expect("inbound");
    outbound::run(&mut ctx, tx.mv_all_ids().expect("ids")).expect("outbound");
    let errors = ctx.errors.iter().map(|x| x.message.clone()).collect();
    drop(ctx);
    tx.commit().expect("commit");
    errors
}

pub(crate) fn mv_of(e: &Engine, cs_id: i64) -> MvObject {
    let o = get(e, cs_id);
    e.store.read().expect("tx").mv_get(o.mv_id.expect("linked")).expect("mv").expect("mv exists")
}

#[test]
fn evaluator_limits_and_conversions() {
    let e = engine(RULES);
    let re = &e.rules.engine;
    // A runaway loop stops at the operation limit with a clear message.
    let ast = re.compile(&["source"], "loop { }").expect("compiles");
    let mut scope = rhai::Scope::new();
    scope.push("source", rhai::Map::new());
    let err = re.eval(&mut scope, &ast).expect_err("stops");
    assert!(err.message.contains("operation limit"), "{err}");
    // eval is off; undeclared variables do not compile.
    assert!(re.compile(&["source"], r#"eval("1")"#).is_err());
    assert!(re.compile(&["source"], "sorce.mail").is_err());
    // Imports stay inside the rule folders.
    for escape in [r#"import "../x" as m; 1"#, r#"import "/etc/passwd" as m; 1"#] {
        let ast = re.compile(&["source"], escape).expect("compiles");
        let err = re.eval(&mut scope, &ast).expect_err("refused");
        assert!(err.message.contains("rule folders only"), "{err}");
    }
    // Results: () is no contribution, [] is an empty one, maps are refused.
    assert_eq!(to_values(rhai::Dynamic::UNIT), Ok(None));
    assert_eq!(to_values(rhai::Dynamic::from_array(vec![])), Ok(Some(vec![])));
    assert_eq!(to_values(rhai::Dynamic::from(42_i64)), Ok(Some(vec![Value::from("42")])));
    assert!(to_values(rhai::Dynamic::from_map(rhai::Map::new())).is_err());
}

#[test]
fn join_precedence_and_handover() {
    let e = engine(RULES);
    let w = put(&e, "hr", "worker", "cn=w1,o=hr", &[("objectClass", "worker"), ("id", "e-7"), ("title", "Chief")]);
    // corp's employee number differs in case: the join ignores case.
    let p = put(
        &e,
        "corp",
        "person",
        "uid=a,o=corp",
        &[("objectClass", "person"), ("employeeNumber", "E-7"), ("title", "Clerk"), ("mail", "a@x")],
    );
    assert_eq!(sync(&e), Vec::<String>::new());
    let m = mv_of(&e, p);
    assert_eq!(m.id, mv_of(&e, w).id, "joined, not projected");
    assert_eq!(m.values("title"), Some(&[Value::from("Chief")][..]), "precedence 50 beats 100");
    assert_eq!(m.attrs["title"].rule, "hr");
    // HR's title gives (): its contribution goes, corp's wins.
    let mut o = get(&e, w);
    o.attrs.remove("title");
    o.pending_import = Some(PendingImport::Update);
    save(&e, &o);
    sync(&e);
    assert_eq!(mv_of(&e, p).values("title"), Some(&[Value::from("Clerk")][..]));
    // An explicit empty array is an (empty) contribution: no values, the attribute is absent.
    let mut o = get(&e, p);
    o.attrs.insert("nick".into(), vec![Value::from("none")]);
    o.pending_import = Some(PendingImport::Update);
    save(&e, &o);
    sync(&e);
    assert_eq!(mv_of(&e, p).values("nickname"), None);
}

#[test]
fn ambiguous_join_errors_and_join_only_stays_disconnected() {
    let e = engine(RULES);
    put(&e, "hr", "worker", "cn=w1,o=hr", &[("objectClass", "worker"), ("id", "dup")]);
    put(&e, "hr", "worker", "cn=w2,o=hr", &[("objectClass", "worker"), ("id", "dup")]);
    let p = put(&e, "corp", "person", "uid=a,o=corp", &[("objectClass", "person"), ("employeeNumber", "dup")]);
    let q = put(&e, "corp", "person", "uid=b,o=corp", &[("objectClass", "person"), ("employeeNumber", "nobody")]);
    let errors = sync(&e);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("ambiguous join") && errors[0].contains("2 metaverse objects"), "{errors:?}");
    assert!(get(&e, p).mv_id.is_none());
    // "join" never projects: b stays a disconnector.
    assert!(get(&e, q).mv_id.is_none());
}

#[test]
fn references_resolve_in_any_order() {
    let e = engine(RULES);
    put(&e, "hr", "worker", "cn=w1,o=hr", &[("objectClass", "worker"), ("id", "1")]);
    put(&e, "hr", "worker", "cn=w2,o=hr", &[("objectClass", "worker"), ("id", "2")]);
    sync(&e);
    // The report arrives before its manager's directory object does.
    let report = put(
        &e,
        "corp",
        "person",
        "uid=r,o=corp",
        &[("objectClass", "person"), ("employeeNumber", "1"), ("mail", "r@x"), ("manager", "UID=M,O=corp")],
    );
    let errors = sync(&e);
    assert!(errors.iter().any(|m| m.contains("does not exist")), "{errors:?}");
    assert_eq!(
        references::resolve_dn(&e.store.read().expect("tx"), "corp", "uid=m,o=corp").expect("resolve"),
        references::Inbound::Missing
    );
    let boss = put(&e, "corp", "person", "uid=m,o=corp", &[("objectClass", "person"), ("employeeNumber", "2"), ("mail", "m@x")]);
    assert_eq!(sync(&e), Vec::<String>::new());
    let boss_mv = mv_of(&e, boss).id;
    assert_eq!(mv_of(&e, report).values("manager"), Some(&[Value::Ref(boss_mv)][..]));
    // Outbound, the reference names the manager's target object.
    let report_mv = mv_of(&e, report).id;
    let r = e.store.read().expect("tx");
    let target = r.cs_linked("cloud", report_mv).expect("q").expect("provisioned");
    let boss_target = r.cs_linked("cloud", boss_mv).expect("q").expect("provisioned");
    assert_eq!(target.desired.expect("desired")["manager"], vec![Value::Ref(boss_target.id)]);
}

/// Two HR workers and their directory objects, synced: a report (`uid=r`), then its manager
/// (`uid=m`). Returns their connector-space ids.
fn report_and_boss(e: &Engine) -> (i64, i64) {
    put(e, "hr", "worker", "cn=w1,o=hr", &[("objectClass", "worker"), ("id", "1")]);
    put(e, "hr", "worker", "cn=w2,o=hr", &[("objectClass", "worker"), ("id", "2")]);
    let report = put(
        e,
        "corp",
        "person",
        "uid=r,o=corp",
        &[("objectClass", "person"), ("employeeNumber", "1"), ("mail", "r@x"), ("manager", "uid=m,o=corp")],
    );
    let boss = put(e, "corp", "person", "uid=m,o=corp", &[("objectClass", "person"), ("employeeNumber", "2"), ("mail", "m@x")]);
    assert_eq!(sync(e), Vec::<String>::new());
    (report, boss)
}

/// Pass 1 runs the flows of an object whose references all name linked objects; when pass 1
/// then unlinks one of them, those flows run again as pass 2 would have run them.
#[test]
fn a_reference_unlinked_later_in_the_same_sync_does_not_stay() {
    let e = engine(RULES);
    let (report, boss) = report_and_boss(&e);
    let boss_mv = mv_of(&e, boss).id;
    assert_eq!(mv_of(&e, report).values("manager"), Some(&[Value::Ref(boss_mv)][..]));
    // In one sync: the report changes (it comes first), its manager leaves the directory (its
    // metaverse object stays, HR still has it).
    let mut r = get(&e, report);
    r.attrs.insert("title".into(), vec!["Engineer".into()]);
    r.pending_import = Some(PendingImport::Update);
    save(&e, &r);
    let mut m = get(&e, boss);
    m.present = false;
    m.pending_import = Some(PendingImport::Delete);
    save(&e, &m);
    sync(&e);
    let now = mv_of(&e, report);
    assert_eq!(now.values("title"), Some(&[Value::from("Engineer")][..]));
    assert_eq!(now.values("manager"), None, "the manager's directory object is gone: the reference goes with it");
    assert!(e.store.read().expect("tx").mv_get(boss_mv).expect("mv").is_some_and(|m| !m.deleted), "HR keeps it");
}

/// Outbound, the same: flows run in pass 1 run again when pass 1 then deprovisions a target
/// object they reference.
#[test]
fn a_target_reference_deprovisioned_later_in_the_same_sync_does_not_stay() {
    let e = engine(RULES);
    let (report, boss) = report_and_boss(&e);
    let (report_mv, boss_mv) = (mv_of(&e, report).id, mv_of(&e, boss).id);
    assert!(report_mv < boss_mv, "the report's metaverse object is synced out first");
    let target = |mv: i64| e.store.read().expect("tx").cs_linked("cloud", mv).expect("q").expect("provisioned");
    let boss_target = target(boss_mv).id;
    assert_eq!(target(report_mv).desired.expect("desired")["manager"], vec![Value::Ref(boss_target)]);
    // In one sync: the report changes, its manager leaves the outbound rule's scope (no mail).
    let mut r = get(&e, report);
    r.attrs.insert("title".into(), vec!["Engineer".into()]);
    r.pending_import = Some(PendingImport::Update);
    save(&e, &r);
    let mut m = get(&e, boss);
    m.attrs.remove("mail");
    m.pending_import = Some(PendingImport::Update);
    save(&e, &m);
    sync(&e);
    let now = e.store.read().expect("tx").cs_get(boss_target).expect("q");
    assert!(now.is_none_or(|o| o.export_state != Some(idflow_store::ExportState::Present)), "deprovisioned");
    assert_eq!(target(report_mv).desired.expect("desired")["manager"], Vec::<Value>::new(), "the reference goes");
}

/// An object the target has is compared with what it holds: a reference there is the named
/// object's DN, which that object's own flows may still change in pass 2 (renamed). Such a
/// reference waits for pass 2 too, whatever order the objects come in.
#[test]
fn a_reference_to_a_target_renamed_in_pass_2_is_compared_by_its_new_dn() {
    let config = format!("{CONFIG}\n[[connector]]\nname = \"dir\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbase_dn = \"o=dir\"\n");
    let rules = format!(
        "{RULES}\n{}",
        r#"
[[rule]]
name = "to-dir"
direction = "outbound"
connector = "dir"
metaverse_type = "person"
target_type = "person"
scope = "mv.mail != ()"
link = "provision"
dn = '"cn=" + mv.title + ",o=dir"'
[rule.flows]
mail = "mv.mail"
manager = "mv.manager"
"#
    );
    let e = engine_in(&config, &rules);
    let w1 = put(&e, "hr", "worker", "cn=w1,o=hr", &[("objectClass", "worker"), ("id", "1"), ("title", "t1")]);
    put(&e, "hr", "worker", "cn=w2,o=hr", &[("objectClass", "worker"), ("id", "2"), ("title", "t2")]);
    put(&e, "hr", "worker", "cn=w3,o=hr", &[("objectClass", "worker"), ("id", "3"), ("title", "t3")]);
    // The renamed one's own reference names no target object (its manager has no mail), so
    // its flows are left to pass 2; the one referencing it comes after it.
    let renamed = put(
        &e,
        "corp",
        "person",
        "uid=p1,o=corp",
        &[("objectClass", "person"), ("employeeNumber", "1"), ("mail", "a@x"), ("manager", "uid=p3,o=corp")],
    );
    let referrer = put(
        &e,
        "corp",
        "person",
        "uid=p2,o=corp",
        &[("objectClass", "person"), ("employeeNumber", "2"), ("mail", "b@x"), ("manager", "uid=p1,o=corp")],
    );
    put(&e, "corp", "person", "uid=p3,o=corp", &[("objectClass", "person"), ("employeeNumber", "3")]);
    assert_eq!(sync(&e), Vec::<String>::new());
    let target = |cs: i64| {
        let mv = mv_of(&e, cs).id;
        e.store.read().expect("tx").cs_linked("dir", mv).expect("q").expect("provisioned")
    };
    let (t1, t2) = (target(renamed), target(referrer));
    assert!(mv_of(&e, renamed).id < mv_of(&e, referrer).id);
    assert_eq!(t1.desired_dn.as_deref(), Some("cn=t1,o=dir"));
    assert_eq!(t2.desired.as_ref().expect("desired")["manager"], vec![Value::Ref(t1.id)]);
    // Exported: the directory has it as desired, at its desired DN, its manager as `manager`.
    let exported = |mut o: CsObject, manager: &[&str]| {
        o.dn = o.desired_dn.clone();
        o.present = true;
        o.pending_export = false;
        o.attrs = o.desired.clone().expect("desired");
        o.attrs.insert("manager".into(), manager.iter().map(|m| Value::from(*m)).collect());
        save(&e, &o);
    };
    // The first one's title changes in its source: its target object is renamed.
    let retitled = |title: &str| {
        let mut w = get(&e, w1);
        w.attrs.insert("title".into(), vec![title.into()]);
        w.pending_import = Some(PendingImport::Update);
        save(&e, &w);
    };
    exported(t1, &[]);
    exported(t2, &["cn=t1,o=dir"]);
    // In one sync: the first is renamed, the second changes in a way that leaves its target
    // object as it was, but for the reference.
    retitled("t1b");
    let mut p = get(&e, referrer);
    p.attrs.insert("nick".into(), vec!["bee".into()]);
    p.pending_import = Some(PendingImport::Update);
    save(&e, &p);
    sync(&e);
    assert_eq!(target(renamed).desired_dn.as_deref(), Some("cn=t1b,o=dir"));
    assert!(target(referrer).pending_export, "its manager is cn=t1b,o=dir now, not cn=t1,o=dir");
    // The same in a full sync, which reads the target's identifiers whole first: the rename it
    // makes is what the comparison sees (debug builds also compare each answer with a read).
    exported(target(renamed), &[]);
    exported(target(referrer), &["cn=t1b,o=dir"]);
    retitled("t1c");
    full_sync(&e);
    assert_eq!(target(renamed).desired_dn.as_deref(), Some("cn=t1c,o=dir"));
    assert!(target(referrer).pending_export, "its manager is cn=t1c,o=dir now");
    // In step, a full sync finds nothing to export: the reference is the DN its object has.
    exported(target(renamed), &[]);
    exported(target(referrer), &["cn=t1c,o=dir"]);
    full_sync(&e);
    assert!(!target(referrer).pending_export && !target(renamed).pending_export, "in step");
}

/// Records what the engine tells its observer.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl crate::observer::Observer for Recorder {
    fn step_started(&self, step: crate::observer::Step<'_>, total: Option<u64>) {
        self.0.lock().expect("lock").push(format!("start {step} {total:?}"));
    }
    fn advanced(&self, _n: u64) {
        let mut v = self.0.lock().expect("lock");
        if v.last().is_none_or(|l| l != "advanced") {
            v.push("advanced".into());
        }
    }
    fn step_finished(&self) {
        self.0.lock().expect("lock").push("end".into());
    }
    fn object_error(&self, e: &idflow_core::ObjectError) {
        self.0.lock().expect("lock").push(format!("error {} {}", e.stage, e.object.as_deref().unwrap_or("-")));
    }
}

#[test]
fn the_observer_hears_every_step_and_every_object_error() {
    let dir = std::env::temp_dir().join(format!("idflow-observer-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("rules")).expect("dir");
    let person = |uid: &str| format!("dn: uid={uid},o=corp\nobjectClass: person\nuid: {uid}\nentryUUID: {uid}-0000\nmail: {uid}@x\n\n");
    std::fs::write(dir.join("corp.ldif"), format!("{}{}", person("ada"), person("bob"))).expect("ldif");
    std::fs::write(dir.join("idflow.toml"), CONFIG.replace("path = \":memory:\"", "path = \"state/idflow.db\"")).expect("config");
    // corp projects here, and one of its flows fails for bob.
    let rules = RULES.replace("precedence = 100\nlink = \"join\"", "precedence = 100\nlink = \"provision\"").replace(
        "mail = \"source.mail\"",
        "mail = \"source.mail\"\nbroken = 'if source.mail == \"bob@x\" { throw \"broken on purpose\" } else { () }'",
    );
    std::fs::write(dir.join("rules/rules.toml"), rules).expect("rules");
    std::fs::write(dir.join("hr.ldif"), "").expect("hr");
    let mut e = Engine::open(&dir.join("idflow.toml"), std::sync::Arc::new(idflow_connectors::builtin())).expect("engine");
    let heard = std::sync::Arc::new(Recorder::default());
    e.set_observer(heard.clone());
    let report = e.run(None, "run").expect("run");
    let heard = heard.0.lock().expect("lock").clone();
    std::fs::remove_dir_all(&dir).expect("clean up");
    let starts: Vec<&String> = heard.iter().filter(|l| l.starts_with("start")).collect();
    assert_eq!(
        starts,
        [
            "start import hr None",
            "start import corp None",
            "start import cloud None",
            "start inbound sync Some(2)",
            "start outbound sync Some(2)",
            "start export cloud Some(1)"
        ],
        "{heard:?}"
    );
    assert_eq!(heard.iter().filter(|l| *l == "end").count(), starts.len(), "every step ends: {heard:?}");
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(heard.contains(&"error sync uid=bob,o=corp".to_string()), "{heard:?}");
}

#[test]
fn a_database_from_before_the_stable_fingerprint_is_not_a_rule_change() {
    // What idflow 1249945 stored after syncing the quickstart (its fingerprint from Debug output).
    const STORED_BY_THE_PREVIOUS_IDFLOW: &str = "3b44c9a4a2abfd7961f70b4afe879937dfdd4cb7d80e79a10fa835ba239b1b3d";
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("the repository");
    let config = Config::load(&repo.join("examples/quickstart/idflow.toml")).expect("config");
    // The quickstart's rules as they were then: groups flowed description, since dropped as
    // nothing read it.
    let dir = std::env::temp_dir().join(format!("idflow-legacy-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for f in std::fs::read_dir(&config.rule_paths[0]).expect("rules").flatten() {
        let text = std::fs::read_to_string(f.path()).expect("rule file");
        let text = text.replace("displayName = \"source.cn\"\n", "displayName = \"source.cn\"\ndescription = \"source.description\"\n");
        std::fs::write(dir.join(f.file_name()), text).expect("write");
    }
    let defs = idflow_policy::defs::load(std::slice::from_ref(&dir)).expect("rules");
    std::fs::remove_dir_all(&dir).expect("clean up");
    let registry = std::sync::Arc::new(idflow_connectors::builtin());
    let mut e = Engine::from_parts(config, defs, Store::in_memory().expect("db"), registry).expect("engine");
    assert_eq!(e.rules.legacy_fingerprint, STORED_BY_THE_PREVIOUS_IDFLOW);
    assert_ne!(e.rules.fingerprint, e.rules.legacy_fingerprint);
    let tx = e.store.write().expect("tx");
    tx.meta_set("rules_fingerprint", STORED_BY_THE_PREVIOUS_IDFLOW).expect("set");
    tx.commit().expect("commit");
    let r = e.sync(false).expect("sync");
    assert_eq!(r.full_sync, Some(false), "the same rules: a delta sync");
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    let stored = e.store.read().expect("tx").meta_get("rules_fingerprint").expect("meta");
    assert_eq!(stored.as_deref(), Some(e.rules.fingerprint.as_str()), "the stable fingerprint is kept from now on");
    // A full sync under the same rules (its transaction sized for reading most of the metaverse).
    assert_eq!(e.sync(true).expect("full sync").full_sync, Some(true));
}

/// A source object deleted in its directory keeps the way back to its deleted metaverse object
/// (while the target's deletion is held): a full sync does not take it for a comeback.
#[test]
fn a_full_sync_does_not_bring_back_an_object_deleted_in_its_directory() {
    let e = engine(RULES);
    let w = put(&e, "hr", "worker", "cn=w1,o=hr", &[("objectClass", "worker"), ("id", "1")]);
    let r = put(&e, "corp", "person", "uid=r,o=corp", &[("objectClass", "person"), ("employeeNumber", "1"), ("mail", "r@x")]);
    assert_eq!(sync(&e), Vec::<String>::new());
    let m = mv_of(&e, w).id;
    // Exported: the target's deletion will be pending (held).
    let mut t = e.store.read().expect("tx").cs_linked("cloud", m).expect("q").expect("provisioned");
    t.present = true;
    t.pending_export = false;
    save(&e, &t);
    for id in [w, r] {
        let mut o = get(&e, id);
        o.present = false;
        o.pending_import = Some(PendingImport::Delete);
        save(&e, &o);
    }
    sync(&e);
    let deleted = |e: &Engine| e.store.read().expect("tx").mv_get(m).expect("q").is_none_or(|x| x.deleted);
    assert!(deleted(&e), "deleted with its only source");
    let tx = e.store.write().expect("tx");
    let mut ctx = Ctx::new(&tx, &e.rules, &e.facts, &Silent);
    let ids = tx.cs_ids_full_sync(&["hr".to_string(), "corp".to_string()]).expect("ids");
    inbound::run(&mut ctx, ids).expect("inbound");
    assert_eq!(ctx.stats.restored, 0);
    drop(ctx);
    tx.commit().expect("commit");
    assert!(deleted(&e), "still deleted after a full sync");
}

pub(crate) const PROJECTING: &str = r#"
[[rule]]
name = "corp"
direction = "inbound"
connector = "corp"
source_type = "person"
metaverse_type = "person"
link = "provision"
[rule.flows]
mail = "source.mail"
manager = "source.manager"

[[rule]]
name = "out"
direction = "outbound"
connector = "cloud"
metaverse_type = "person"
target_type = "User"
link = "provision"
[rule.flows]
userName = 'if mv.mail == "bad@x" { throw "no name for this one" } else { mv.mail }'
manager = "mv.manager"
"#;

/// A new link is written with what the object's flows write, and a new target object with its
/// desired state: an object that is its own manager (its reference resolves only once it is
/// linked) still gets its reference, in the same sync, and nothing is made twice.
#[test]
fn an_object_that_is_its_own_manager_gets_its_reference_in_the_sync_that_links_it() {
    let e = engine(PROJECTING);
    let p = put(&e, "corp", "person", "uid=a,o=corp", &[("objectClass", "person"), ("mail", "a@x"), ("manager", "uid=a,o=corp")]);
    assert_eq!(sync(&e), Vec::<String>::new());
    let m = mv_of(&e, p);
    assert_eq!(m.values("manager"), Some(&[Value::Ref(m.id)][..]));
    let o = get(&e, p);
    assert!(o.pending_import.is_none() && o.error.is_none(), "{o:?}");
    let r = e.store.read().expect("tx");
    let targets = r.cs_of_connector("cloud").expect("q");
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert_eq!(targets[0].desired.as_ref().expect("desired")["manager"], vec![Value::Ref(targets[0].id)]);
    assert!(targets[0].pending_export);
    drop(r);
    // In step: a second sync changes nothing and makes nothing.
    assert_eq!(sync(&e), Vec::<String>::new());
    assert_eq!(e.store.read().expect("tx").cs_of_connector("cloud").expect("q").len(), 1);
}

/// A target object whose flow fails as it is provisioned is made once, in error, and the error
/// names it; the next sync retries it without making another.
#[test]
fn a_flow_that_fails_as_its_target_object_is_made_names_that_object() {
    let e = engine(PROJECTING);
    put(&e, "corp", "person", "uid=a,o=corp", &[("objectClass", "person"), ("mail", "a@x")]);
    let b = put(&e, "corp", "person", "uid=b,o=corp", &[("objectClass", "person"), ("mail", "bad@x"), ("manager", "uid=a,o=corp")]);
    let tx = e.store.write().expect("tx");
    let mut ctx = Ctx::new(&tx, &e.rules, &e.facts, &Silent);
    let ids = tx.cs_ids_pending_import().expect("ids");
    inbound::run(&mut ctx, ids).expect("inbound");
    outbound::run(&mut ctx, tx.mv_dirty_ids().expect("dirty")).expect("outbound");
    let errors: Vec<_> = ctx.errors.iter().map(|x| (x.cs_id, x.message.clone())).collect();
    drop(ctx);
    tx.commit().expect("commit");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].1.contains("no name for this one"), "{errors:?}");
    let mv_b = mv_of(&e, b).id;
    let target = e.store.read().expect("tx").cs_linked("cloud", mv_b).expect("q").expect("made once");
    assert_eq!(errors[0].0, Some(target.id), "the error names the object made");
    assert!(target.error.as_deref().is_some_and(|m| m.contains("no name for this one")), "{target:?}");
    assert_eq!(e.store.read().expect("tx").cs_of_connector("cloud").expect("q").len(), 2);
    // Retried, still failing: still one object for it.
    let errors = sync(&e);
    assert!(errors.iter().any(|m| m.contains("no name for this one")), "{errors:?}");
    assert_eq!(e.store.read().expect("tx").cs_of_connector("cloud").expect("q").len(), 2);
}

/// The rules' view of an object: `values()` gives every value of an attribute, one or many,
/// and nothing for the DN (`source.dn`, which is no attribute).
#[test]
fn values_of_one_value_many_values_and_the_dn() {
    let e = engine(RULES);
    let re = &e.rules.engine;
    let mut attrs = idflow_core::Attrs::new();
    attrs.insert("mail".into(), vec![Value::from("a@x")]);
    attrs.insert("proxy".into(), vec![Value::from("smtp:a@x"), Value::from("smtp:b@x")]);
    let source = idflow_policy::source_map(&attrs, Some("uid=a,o=corp"), &Default::default(), None);
    let eval = |src: &str| {
        let mut scope = rhai::Scope::new();
        scope.push_constant("source", source.clone());
        let ast = re.compile(&["source"], src).expect("compiles");
        re.eval(&mut scope, &ast).expect("evaluates").to_string()
    };
    assert_eq!(eval(r#"values(source, "mail")"#), r#"["a@x"]"#);
    assert_eq!(eval(r#"values(source, "proxy")"#), r#"["smtp:a@x", "smtp:b@x"]"#);
    assert_eq!(eval(r#"values(source, "dn")"#), "[]");
    assert_eq!(eval("source.dn"), "uid=a,o=corp");
    assert_eq!(eval(r#"values(source, "nope")"#), "[]");
}

/// A full sync remembers each object it links as what its DN resolves to, so later references
/// to it need no lookup; but two objects of a connector with the same DN (a rename in flight)
/// resolve as a lookup does: to the first of them linked, whichever the sync met last.
#[test]
fn a_full_sync_resolves_a_dn_two_objects_share_as_a_lookup_does() {
    let e = engine(PROJECTING);
    let first = put(&e, "corp", "person", "uid=a,o=corp", &[("objectClass", "person"), ("mail", "a@x")]);
    assert_eq!(sync(&e), Vec::<String>::new());
    let mut second = CsObject::new("corp", "person");
    second.dn = Some("uid=a,o=corp".into());
    second.anchor = Some("another".into());
    second.attrs.insert("mail".into(), vec![Value::from("a2@x")]);
    second.present = true;
    second.pending_import = Some(PendingImport::Add);
    let second = save(&e, &second);
    let b = put(&e, "corp", "person", "uid=b,o=corp", &[("objectClass", "person"), ("mail", "b@x"), ("manager", "uid=a,o=corp")]);
    let tx = e.store.write().expect("tx");
    let mut ctx = Ctx::new(&tx, &e.rules, &e.facts, &Silent);
    ctx.full = true;
    inbound::run(&mut ctx, tx.cs_ids_full_sync(&["corp".to_string()]).expect("ids")).expect("inbound");
    outbound::run(&mut ctx, tx.mv_all_ids().expect("ids")).expect("outbound");
    drop(ctx);
    tx.commit().expect("commit");
    let (m_first, m_second) = (mv_of(&e, first).id, mv_of(&e, second).id);
    assert_ne!(m_first, m_second, "the second object projects its own");
    assert_eq!(mv_of(&e, b).values("manager"), Some(&[Value::Ref(m_first)][..]));
    // The same in a sync where every object is new.
    let e = engine(PROJECTING);
    let first = put(&e, "corp", "person", "uid=a,o=corp", &[("objectClass", "person"), ("mail", "a@x")]);
    let second = save(&e, &{
        let mut o = get(&e, first);
        o.id = 0;
        o.anchor = Some("another".into());
        o
    });
    let b = put(&e, "corp", "person", "uid=b,o=corp", &[("objectClass", "person"), ("mail", "b@x"), ("manager", "uid=a,o=corp")]);
    let tx = e.store.write().expect("tx");
    let mut ctx = Ctx::new(&tx, &e.rules, &e.facts, &Silent);
    ctx.full = true;
    inbound::run(&mut ctx, tx.cs_ids_full_sync(&["corp".to_string()]).expect("ids")).expect("inbound");
    drop(ctx);
    tx.commit().expect("commit");
    assert_ne!(mv_of(&e, first).id, mv_of(&e, second).id);
    assert_eq!(mv_of(&e, b).values("manager"), Some(&[Value::Ref(mv_of(&e, first).id)][..]));
}

#[test]
fn a_secret_attribute_is_never_stored_with_or_without_options() {
    use idflow_core::connector::ImportedObject;
    let e = engine(RULES);
    let mut o = ImportedObject {
        anchor: Some("p1".into()),
        dn: Some("uid=p1,ou=people".into()),
        object_type: "person".into(),
        attrs: Default::default(),
    };
    for (k, v) in [("mail", "p1@example.org"), ("userPassword", "{SSHA}x"), ("userPassword;binary", "{SSHA}y"), ("SAMBANTPASSWORD", "00")] {
        o.attrs.entry(k.to_string()).or_default().push(Value::from(v));
    }
    let caps = e.facts.get("corp").map(|f| f.caps).expect("corp's capabilities");
    let mut c = crate::memory::MemoryConnector::new("corp", caps, vec![o]);
    let tx = e.store.write().expect("tx");
    e.import_one(&tx, &mut c, crate::import::Mode::Full, false, &mut crate::engine::RunReport::default()).expect("import");
    let kept = tx.cs_by_anchor("corp", "p1").expect("read").expect("imported");
    tx.commit().expect("commit");
    assert_eq!(kept.attrs.keys().collect::<Vec<_>>(), ["mail"], "{:?}", kept.attrs);
}

/// A plan names the object a reference points at as a lookup of it would, whether the object
/// is planned too (named as the plan met it) or not (looked up), and whether the target has an
/// identifier for it yet (its anchor) or not (its id).
#[test]
fn a_plan_names_what_references_point_at_as_a_lookup_does() {
    let e = engine(RULES);
    report_and_boss(&e);
    let spill = std::env::temp_dir();
    for (anchored, alone) in [(true, false), (false, false), (true, true), (false, true)] {
        // Rolled back at the end of each round.
        let tx = e.store.write().expect("tx");
        let targets = tx.cs_pending_export_ids("cloud").expect("ids");
        assert_eq!(targets.len(), 2);
        let boss = targets[1];
        for id in &targets {
            let mut o = tx.cs_get(*id).expect("get").expect("exists");
            if !anchored {
                o.anchor = None;
            }
            // Alone: the boss (provisioned second) is not in the plan; the report's reference
            // to it is looked up.
            if alone && *id == boss {
                o.pending_export = false;
            }
            tx.cs_save(&o).expect("save");
        }
        let boss = tx.cs_get(boss).expect("get").expect("exists");
        let plan =
            crate::plan::build(&tx, &["cloud".into()], &e.rules, &crate::collisions::Unique(Default::default()), &spill).expect("plan");
        let changes: Vec<_> = plan.connectors[0].changes.iter().collect::<idflow_core::Result<_>>().expect("changes");
        assert_eq!(changes.len(), if alone { 1 } else { 2 });
        // Only the report has a manager.
        let managers: Vec<_> = changes.iter().flat_map(|ch| ch.attributes.iter().filter(|a| a.name == "manager")).collect();
        assert_eq!(managers.len(), 1);
        let manager = managers[0];
        let crate::plan::PlanValue::Reference { reference, object } = &manager.new[0] else { panic!("{manager:?}") };
        assert_eq!(
            Some(object.clone()),
            tx.cs_name_of(idflow_store::CsKey::Id(boss.id)).expect("name"),
            "anchored: {anchored}, alone: {alone}"
        );
        assert_eq!(reference, &boss.anchor, "anchored: {anchored}, alone: {alone}");
    }
}

/// A plan of more objects than are read at once (its changes are planned on the read-ahead
/// thread, a chunk ahead of the stage), whose references point at objects met earlier, later
/// or in the same chunk: each change is the one planned alone, with every name looked up.
#[test]
fn a_plan_planned_ahead_is_what_each_change_planned_alone_is() {
    let e = engine(RULES);
    let n = 700;
    for i in 0..n {
        let (id, boss) = (i.to_string(), format!("uid=p{},o=corp", (i * 7 + 13) % n));
        put(&e, "hr", "worker", &format!("cn=w{i},o=hr"), &[("objectClass", "worker"), ("id", &id)]);
        let mail = format!("p{i}@x");
        let mut attrs = vec![("objectClass", "person"), ("employeeNumber", id.as_str()), ("mail", mail.as_str())];
        if i % 5 != 0 {
            attrs.push(("manager", &boss));
        }
        put(&e, "corp", "person", &format!("uid=p{i},o=corp"), &attrs);
    }
    assert_eq!(sync(&e), Vec::<String>::new());
    let spill = std::env::temp_dir();
    // `few`: as if exported, and too few changed for the connector's identifiers to be read
    // whole; each change with a reference is then planned by the stage, the others ahead.
    for (anchored, few) in [(true, false), (false, false), (true, true)] {
        // Rolled back at the end of each round.
        let tx = e.store.write().expect("tx");
        let mut targets = tx.cs_pending_export_ids("cloud").expect("ids");
        assert_eq!(targets.len(), n);
        let mut alone = std::collections::HashMap::new();
        for (i, id) in targets.iter().enumerate() {
            let mut o = tx.cs_get(*id).expect("get").expect("exists");
            o.anchor = o.anchor.filter(|_| anchored);
            o.pending_export = !few || i % 7 == 0;
            o.present = few;
            tx.cs_save(&o).expect("save");
        }
        targets.retain(|id| tx.cs_get(*id).ok().flatten().is_some_and(|o| o.pending_export));
        let n = targets.len();
        let form = crate::diff::form_of(&tx, "cloud").expect("form");
        for id in &targets {
            let o = tx.cs_get(*id).expect("get").expect("exists");
            let ch = crate::diff::change_for(&tx, &o, form).expect("change").expect("a change");
            let planned = crate::plan::plan_change(&tx, &mut Default::default(), &o, &ch, form, Some(&e.rules)).expect("planned");
            alone.insert(o.mv_id, planned);
        }
        let plan =
            crate::plan::build(&tx, &["cloud".into()], &e.rules, &crate::collisions::Unique(Default::default()), &spill).expect("plan");
        let changes: Vec<_> = plan.connectors[0].changes.iter().collect::<idflow_core::Result<_>>().expect("changes");
        assert_eq!(changes.len(), n);
        let mut references = 0;
        for ch in &changes {
            assert_eq!(Some(ch), alone.get(&ch.identity.metaverse_id), "anchored: {anchored}, few: {few}");
            references += ch.attributes.iter().filter(|a| a.name == "manager").count();
        }
        assert!(references > n / 2, "{references} of {n}");
    }
}

/// In a pass that links, once every linked object of a connector is remembered, a DN not
/// remembered is answered without a lookup (not linked: the flows wait for pass 2), unless
/// another object shares it; after the pass, or for another connector, it is looked up.
#[test]
fn a_memo_that_remembers_every_linked_object_answers_a_miss_without_a_lookup() {
    use crate::references::{Inbound, Memo};
    let e = engine(RULES);
    let (_, boss) = report_and_boss(&e);
    let boss_mv = mv_of(&e, boss).id;
    let r = e.store.read().expect("tx");
    let mut memo = Memo::default();
    assert_eq!(memo.resolve_dn(&r, "corp", "uid=m,o=corp", true).expect("looked up"), Inbound::Mv(boss_mv));
    memo.clear();
    memo.remember_all("corp", Default::default());
    memo.remember_dn("corp", "uid=r,o=corp", 1);
    assert_eq!(memo.resolve_dn(&r, "corp", "uid=r,o=corp", true).expect("remembered"), Inbound::Mv(1));
    // Linked in the database, but not remembered: not asked.
    assert_eq!(memo.resolve_dn(&r, "corp", "uid=m,o=corp", true).expect("not asked"), Inbound::NotLinked);
    // Not in a pass that links, or another connector's: asked.
    assert_eq!(memo.resolve_dn(&r, "corp", "uid=m,o=corp", false).expect("looked up"), Inbound::Mv(boss_mv));
    memo.clear();
    memo.remember_all("hr", Default::default());
    assert_eq!(memo.resolve_dn(&r, "corp", "uid=m,o=corp", true).expect("looked up"), Inbound::Mv(boss_mv));
    // A DN another object shares (normalized) is asked.
    memo.clear();
    memo.remember_all("corp", ["uid=m,o=corp".to_string()].into());
    assert_eq!(memo.resolve_dn(&r, "corp", "UID=M,O=corp", true).expect("looked up"), Inbound::Mv(boss_mv));
    // Once the pass is over, asked again.
    memo.clear();
    memo.remember_all("corp", Default::default());
    memo.linked_all();
    assert_eq!(memo.resolve_dn(&r, "corp", "uid=m,o=corp", true).expect("looked up"), Inbound::Mv(boss_mv));
}

/// In outbound sync's first pass into a target where nothing was linked, every target linked
/// is remembered as it is: a metaverse object not remembered has none there (its flows wait
/// for pass 2), without a lookup; once the pass is over it is looked up, and what was
/// remembered stays.
#[test]
fn a_memo_that_remembers_every_target_linked_answers_a_miss_without_a_lookup() {
    use crate::references::Memo;
    let e = engine(RULES);
    let (_, boss) = report_and_boss(&e);
    let boss_mv = mv_of(&e, boss).id;
    let r = e.store.read().expect("tx");
    let mut memo = Memo::default();
    let target = memo.resolve_mv(&r, "cloud", boss_mv).expect("looked up").expect("provisioned");
    memo.clear();
    memo.remember_all_targets("cloud");
    assert_eq!(memo.resolve_mv(&r, "cloud", boss_mv).expect("not asked"), None, "linked in the database, not remembered");
    memo.remember_target("cloud", 4242, 7);
    assert_eq!(memo.resolve_mv(&r, "cloud", 4242).expect("remembered"), Some(7));
    memo.provisioned_all();
    assert_eq!(memo.resolve_mv(&r, "cloud", boss_mv).expect("looked up"), Some(target));
    assert_eq!(memo.resolve_mv(&r, "cloud", 4242).expect("remembered"), Some(7), "what was remembered stays");
    memo.clear();
    assert_eq!(memo.resolve_mv(&r, "cloud", 4242).expect("looked up"), None);
}
