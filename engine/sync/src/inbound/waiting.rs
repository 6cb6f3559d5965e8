//! Flows that wait for pass 2. A full sync meets a directory in its own order, so a person
//! often comes before their manager: pass 1 runs such an object's flows anyway and keeps what
//! they gave, every reference attribute as the DNs it was given; pass 2 resolves those and
//! persists it all, as it would have had it run the flows. The object is read and its rules
//! evaluated once, and its connector-space row written once, instead of twice each.
//!
//! Only while nothing in pass 1 was unlinked (else pass 2 runs such objects' flows whole, as
//! it does every early flow), and only so much: beyond [`MOST_WAITING`] bytes, an object's
//! flows wait for pass 2 whole, as before.
use super::{obj_error, resolve_references, Ctx};
use crate::precedence::{self, Contributions};
use idflow_core::{varint, Result, Value};
use idflow_policy::RuleSet;
use idflow_store::CsObject;

/// What waits at most in one pass, in bytes: about 32 MB (in unit tests, a few objects' worth,
/// so that both ways are taken).
const MOST_WAITING: usize = if cfg!(test) { 1 << 10 } else { 32 << 20 };

/// What one flow gave: the `flow`-th of rule `rule` (indexes into the rule set and its flows).
/// `resolve`: the values are DNs of a reference attribute, not resolved yet.
pub(super) struct Given {
    pub(super) rule: usize,
    pub(super) flow: usize,
    pub(super) values: Vec<Value>,
    pub(super) resolve: bool,
}

impl Given {
    /// As a contribution: `(attribute, rule)` to `(precedence, values)`.
    pub(super) fn contribution(self, rules: &RuleSet) -> ((String, String), (i64, Vec<Value>)) {
        let r = &rules.rules[self.rule];
        ((r.flows[self.flow].0.clone(), r.name().to_string()), (r.def.precedence, self.values))
    }
}

/// What waits of an object, as bytes (several times smaller than the values themselves, each
/// its own allocation): each [`Given`] as its rule, its flow and `resolve`, and its values,
/// each a tag and its bytes; numbers as varints.
fn encode(given: &[Given]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for g in given {
        varint::put(&mut out, g.rule as u64);
        varint::put(&mut out, (g.flow as u64) << 1 | u64::from(g.resolve));
        varint::put(&mut out, g.values.len() as u64);
        for v in &g.values {
            match v {
                Value::Str(s) => bytes(&mut out, 0, s.as_bytes()),
                Value::Bin(b) => bytes(&mut out, 1, b),
                Value::Ref(r) => {
                    out.push(2);
                    out.extend_from_slice(&r.to_le_bytes());
                }
            }
        }
    }
    out
}

fn bytes(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    varint::put(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// [`encode`]'s bytes read back.
fn decode(mut b: &[u8]) -> Option<Vec<Given>> {
    let mut given = Vec::new();
    let number = |b: &mut &[u8]| {
        let (v, rest) = varint::get(b)?;
        *b = rest;
        usize::try_from(v).ok()
    };
    while !b.is_empty() {
        let rule = number(&mut b)?;
        let flow = number(&mut b)?;
        let n = number(&mut b)?;
        let mut values = Vec::with_capacity(n.min(b.len()));
        for _ in 0..n {
            let (&tag, rest) = b.split_first()?;
            b = rest;
            if tag == 2 {
                let (r, rest) = b.split_first_chunk::<8>()?;
                values.push(Value::Ref(i64::from_le_bytes(*r)));
                b = rest;
                continue;
            }
            let len = number(&mut b)?;
            let (v, rest) = b.split_at_checked(len)?;
            b = rest;
            values.push(match tag {
                0 => Value::Str(String::from_utf8(v.to_vec()).ok()?),
                1 => Value::Bin(v.to_vec()),
                _ => return None,
            });
        }
        given.push(Given { rule, flow: flow >> 1, values, resolve: flow & 1 == 1 });
    }
    Some(given)
}

/// An object whose flows wait, linked to metaverse object `mv_id`: what they gave, encoded, and
/// its row's import state as pass 1 left it (written only if pass 2 changes it).
struct Object {
    cs_id: i64,
    mv_id: i64,
    pending: bool,
    error: Option<String>,
    given: Box<[u8]>,
}

/// The flows of one connector's objects that wait for pass 2, and how many bytes they take.
pub(super) struct Waiting {
    connector: String,
    bytes: usize,
    objects: Vec<Object>,
}

impl Waiting {
    pub(super) fn new(connector: &str) -> Waiting {
        Waiting { connector: connector.to_string(), bytes: 0, objects: Vec::new() }
    }

    /// Nothing more may wait.
    pub(super) fn full(&self) -> bool {
        self.bytes >= MOST_WAITING
    }

    /// `given` as it would wait, if there is room for it.
    pub(super) fn kept_if_room(&self, given: &[Given]) -> Option<Box<[u8]>> {
        let kept = encode(given).into_boxed_slice();
        (self.bytes + size_of::<Object>() + kept.len() <= MOST_WAITING).then_some(kept)
    }

    /// What the flows of `o` (linked to `mv_id`) gave waits ([`Waiting::kept_if_room`]).
    pub(super) fn add(&mut self, o: &CsObject, mv_id: i64, given: Box<[u8]>) {
        self.bytes += size_of::<Object>() + given.len() + o.error.as_ref().map_or(0, String::len);
        let (pending, error) = (o.pending_import.is_some(), o.error.clone());
        self.objects.push(Object { cs_id: o.id, mv_id, pending, error, given });
    }

    /// Pass 2: resolves the references that wait (nothing is linked or unlinked any more) and
    /// persists what each object's flows gave, as pass 2 would have had it run them.
    pub(super) fn resolve(self, ctx: &mut Ctx) -> Result<()> {
        ctx.waited += self.objects.len();
        if !self.objects.is_empty() {
            tracing::debug!(connector = %self.connector, objects = self.objects.len(), "references resolved in pass 2, objects not read again");
        }
        for w in self.objects {
            resolve_one(ctx, &self.connector, w)?;
        }
        Ok(())
    }
}

fn resolve_one(ctx: &mut Ctx, connector: &str, w: Object) -> Result<()> {
    let Some((mut mv_obj, stored)) = ctx.tx.mv_get_contributed(w.mv_id)? else { return Ok(()) };
    let (mut dangling, mut errors) = (Vec::new(), Vec::new());
    let rules = ctx.rules;
    let mut contributions = Contributions::new();
    let given = decode(&w.given).expect("what waits reads back as it was encoded, in this process");
    for mut g in given {
        if g.resolve {
            let r = &rules.rules[g.rule];
            let attr = &r.flows[g.flow].0;
            let resolved = resolve_references(ctx, connector, r.name(), attr, &g.values, false)?.expect("pass 2 resolves every DN");
            dangling.extend(resolved.dangling);
            errors.extend(resolved.errors);
            g.values = resolved.refs;
        }
        let (k, v) = g.contribution(rules);
        contributions.insert(k, v);
    }
    if !precedence::apply_to(ctx.tx, &mut mv_obj, stored?, w.cs_id, contributions)?.is_empty() {
        ctx.stats.metaverse_updated += 1;
    }
    ctx.tx.cs_set_dangling(w.cs_id, &dangling)?;
    if !errors.is_empty() {
        if let Some(o) = ctx.tx.cs_get(w.cs_id)? {
            for m in &errors {
                obj_error(ctx, &o, o.link_rule.as_deref(), m.clone());
            }
        }
    }
    // Written only when it changes something, as pass 2 would.
    let error = errors.first().map(String::as_str);
    if w.pending || w.error.as_deref() != error {
        ctx.tx.cs_set_synced(w.cs_id, error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ctx::Ctx;
    use crate::observer::Silent;
    use crate::tests::{engine_in, get, mv_of, put, save, sync, CONFIG, PROJECTING, RULES};
    use crate::{inbound, outbound};
    use idflow_core::Value;
    use idflow_store::{PendingImport, ReadOps};

    /// A first full sync of people each managed by the one after them, more than can wait: each
    /// gets its manager, counted once as updated; a manager who does not exist is an error on
    /// the object, kept.
    #[test]
    fn a_full_sync_gives_each_person_the_manager_who_comes_after_them() {
        let e = engine_in(CONFIG, PROJECTING);
        let n = 40;
        let ids: Vec<i64> = (0..n)
            .map(|i| {
                let (mail, manager) = (format!("p{i}@x"), format!("uid=p{},o=corp", i + 1));
                put(&e, "corp", "person", &format!("uid=p{i},o=corp"), &[("objectClass", "person"), ("mail", &mail), ("manager", &manager)])
            })
            .collect();
        let tx = e.store.write().expect("tx");
        let mut ctx = Ctx::new(&tx, &e.rules, &e.facts, &Silent);
        ctx.full = true;
        inbound::run(&mut ctx, tx.cs_ids_full_sync(&["corp".to_string()]).expect("ids")).expect("inbound");
        outbound::run(&mut ctx, tx.mv_all_ids().expect("ids")).expect("outbound");
        let (projected, updated, waited) = (ctx.stats.projected, ctx.stats.metaverse_updated, ctx.waited);
        let errors: Vec<String> = ctx.errors.iter().map(|x| x.message.clone()).collect();
        drop(ctx);
        tx.commit().expect("commit");
        assert_eq!((projected, updated), (n, n));
        assert!(waited > 0 && waited < n - 1, "some waited, the rest were run again whole: {waited}");
        assert_eq!(errors, [format!("manager refers to uid=p{n},o=corp, which does not exist in connector \"corp\"")]);
        for w in ids.windows(2) {
            assert_eq!(mv_of(&e, w[0]).values("manager"), Some(&[Value::Ref(mv_of(&e, w[1]).id)][..]), "{}", w[0]);
            assert!(get(&e, w[0]).error.is_none());
        }
        let last = get(&e, ids[ids.len() - 1]);
        assert!(last.error.as_deref().is_some_and(|m| m.contains("does not exist")), "{last:?}");
        assert_eq!(mv_of(&e, last.id).values("manager"), None);
        // A delta sync retries it (linked already, its reference waits), and it stays in error.
        let tx = e.store.write().expect("tx");
        let mut ctx = Ctx::new(&tx, &e.rules, &e.facts, &Silent);
        inbound::run(&mut ctx, tx.cs_ids_inbound_in_error().expect("ids")).expect("inbound");
        let (waited, errors) = (ctx.waited, ctx.errors.iter().map(|x| x.message.clone()).collect::<Vec<_>>());
        drop(ctx);
        tx.commit().expect("commit");
        assert_eq!((waited, errors.len()), (1, 1), "{errors:?}");
        assert_eq!(get(&e, last.id).error, last.error);
    }

    /// A reference that waits for pass 2 while pass 1 then unlinks an object: the object's
    /// flows run again whole in pass 2, as every early flow does then.
    #[test]
    fn flows_that_wait_run_again_whole_when_pass_1_unlinks_something() {
        let e = engine_in(CONFIG, RULES);
        for i in 1..=3 {
            put(&e, "hr", "worker", &format!("cn=w{i},o=hr"), &[("objectClass", "worker"), ("id", &i.to_string())]);
        }
        // Met first, a report with no match yet; then an object that joins.
        let report = put(&e, "corp", "person", "uid=r,o=corp", &[("objectClass", "person"), ("employeeNumber", "9"), ("mail", "r@x")]);
        let leaving = put(&e, "corp", "person", "uid=x,o=corp", &[("objectClass", "person"), ("employeeNumber", "2"), ("mail", "x@x")]);
        assert_eq!(sync(&e), Vec::<String>::new());
        // In one sync: the report joins, with a manager met after it (it waits); the object that
        // joined leaves its directory (pass 1 unlinks it); the manager joins.
        let mut r = get(&e, report);
        r.attrs.insert("employeeNumber".into(), vec!["1".into()]);
        r.attrs.insert("manager".into(), vec!["uid=b,o=corp".into()]);
        r.pending_import = Some(PendingImport::Update);
        save(&e, &r);
        let mut x = get(&e, leaving);
        x.present = false;
        x.pending_import = Some(PendingImport::Delete);
        save(&e, &x);
        let boss = put(&e, "corp", "person", "uid=b,o=corp", &[("objectClass", "person"), ("employeeNumber", "3"), ("mail", "b@x")]);
        assert_eq!(sync(&e), Vec::<String>::new());
        let now = mv_of(&e, report);
        assert_eq!(now.values("manager"), Some(&[Value::Ref(mv_of(&e, boss).id)][..]));
        assert_eq!(now.values("mail"), Some(&[Value::from("r@x")][..]));
        let tx = e.store.write().expect("tx");
        assert!(tx.cs_ids_pending_import().expect("ids").is_empty());
    }

    /// What waits reads back as it was: every kind of value, many flows.
    #[test]
    fn what_waits_reads_back_as_it_was() {
        use super::{decode, encode, Given};
        let given = vec![
            Given { rule: 0, flow: 3, values: vec![Value::from("uid=a,o=x"), Value::Ref(-7), Value::Bin(vec![0, 255])], resolve: true },
            Given { rule: 300, flow: 0, values: vec![], resolve: false },
            Given { rule: 1, flow: 200, values: vec![Value::from("é".repeat(100))], resolve: false },
        ];
        let bytes = encode(&given);
        let back = decode(&bytes).expect("reads back");
        let seen = |g: &[Given]| g.iter().map(|g| (g.rule, g.flow, g.values.clone(), g.resolve)).collect::<Vec<_>>();
        assert_eq!(seen(&back), seen(&given));
        assert!(decode(&bytes[..bytes.len() - 1]).is_none(), "cut short");
    }
}
