//! References (group `member`, `manager`): a DN in a source becomes a metaverse reference, and a
//! metaverse reference becomes the target's own identifier, resolved through links, in whatever
//! order the objects arrive.
use crate::text_key::TextKey;
use idflow_core::connector::RefForm;
use idflow_core::fast_hash::FastMap;
use idflow_core::{dn, Result, Value};
use idflow_store::{CsLinks, CsObject, ExportState, ReadOps, WriteOps};
use std::collections::HashSet;

/// What references resolved to during one pass that links and unlinks nothing (the flows of
/// inbound sync's second pass, of outbound sync's second pass), or that only links (inbound
/// sync's first pass, until it unlinks something; outbound sync's first pass, until it
/// deprovisions something): a member of many groups is looked up once.
/// Cleared before and after each such pass; kept from inbound sync's first pass into its
/// second when the first unlinked nothing and no two objects share a DN (inbound.rs).
#[derive(Default)]
pub(crate) struct Memo {
    /// By connector, then DN as written, by its [`TextKey`]: a million DNs without a million
    /// strings, and a lookup that reads no string.
    dns: FastMap<String, FastMap<u128, Inbound>>,
    key: TextKey,
    /// Only found targets, by connector then metaverse object: a target object's export state
    /// can change within the pass (one provisioned again), never from present to gone.
    targets: FastMap<String, ByMv>,
    /// DNs a connector's map is first made to hold (a full sync's first pass remembers about
    /// one for each object it meets): made at its size once, not grown by doubling through it.
    expected: usize,
    /// The connector whose every linked object is remembered ([`Memo::remember_dn`]), but for
    /// those whose DN (normalized) another object shares (these): a pass that links answers a
    /// DN not remembered without a lookup ([`Memo::known_unlinked`]).
    complete: Option<(String, HashSet<String>)>,
    /// Target connectors whose every target object linked is remembered as it is linked
    /// (outbound sync's first pass of a full sync, where nothing was linked there before): a
    /// metaverse object not remembered has no target there yet, without a lookup. Only ever
    /// asked by flows that wait for pass 2 on such an answer.
    complete_targets: HashSet<String>,
}

impl Memo {
    pub(crate) fn clear(&mut self) {
        self.dns.clear();
        self.targets.clear();
        self.expected = 0;
        self.complete = None;
        self.complete_targets.clear();
    }

    /// From now until the next clear, every target object of `connector` linked is remembered
    /// ([`Memo::remember_target`]) as it is linked: nothing there was linked before.
    pub(crate) fn remember_all_targets(&mut self, connector: &str) {
        self.complete_targets.insert(connector.to_string());
    }

    /// The pass that remembers every target linked is over: what is not remembered is looked
    /// up again (what is remembered stays).
    pub(crate) fn provisioned_all(&mut self) {
        self.complete_targets.clear();
    }

    /// From now until the next clear, every object of `connector` linked is remembered as it
    /// is linked (nothing of it was linked before), except those with a DN in `shared`. (Once
    /// a pass unlinks something it stops remembering, and stops asking in a pass that links.)
    pub(crate) fn remember_all(&mut self, connector: &str, shared: HashSet<String>) {
        self.complete = Some((connector.to_string(), shared));
    }

    /// The pass that links is over: what is not remembered is looked up again.
    pub(crate) fn linked_all(&mut self) {
        self.complete = None;
    }

    /// A DN not remembered in a pass that links, when every linked object is remembered: it
    /// names no object linked yet, as far as this pass needs to know. A DN another object
    /// shares is looked up; one spelled otherwise than its object's (another case) waits for
    /// the pass after, which looks it up.
    fn known_unlinked(&self, connector: &str, dn: &str) -> bool {
        match &self.complete {
            Some((c, shared)) if c == connector => shared.is_empty() || !shared.contains(&dn::norm(dn)),
            _ => false,
        }
    }

    /// About `n` DNs are about to be remembered ([`Memo::remember_dn`]), until the next clear.
    pub(crate) fn expect_dns(&mut self, n: usize) {
        self.expected = n;
    }

    /// [`resolve_dn`], remembered for the pass. `linking`: the pass links objects as it goes
    /// (and stops asking once it unlinks one), so only a linked object is remembered.
    pub(crate) fn resolve_dn(&mut self, c: &dyn ReadOps, connector: &str, dn: &str, linking: bool) -> Result<Inbound> {
        let k = self.key.of(dn);
        if let Some(r) = self.dns.get(connector).and_then(|m| m.get(&k)) {
            return Ok(r.clone());
        }
        if linking && self.known_unlinked(connector, dn) {
            return Ok(Inbound::NotLinked);
        }
        let r = resolve_dn(c, connector, dn)?;
        if !linking || matches!(r, Inbound::Mv(_)) {
            self.dns_of(connector).insert(k, r.clone());
        }
        Ok(r)
    }

    /// What `connector`'s DNs resolve to, made (at the size expected) if need be.
    fn dns_of(&mut self, connector: &str) -> &mut FastMap<u128, Inbound> {
        if !self.dns.contains_key(connector) {
            self.dns.insert(connector.to_string(), FastMap::with_capacity_and_hasher(self.expected, Default::default()));
        }
        self.dns.get_mut(connector).expect("made just above")
    }

    /// What [`resolve_dn`] finds for `dn` once an object with this DN (as written) is linked
    /// inbound to `mv_id`, when no other object of `connector` has its DN (inbound sync's first
    /// pass, as it links or meets it).
    pub(crate) fn remember_dn(&mut self, connector: &str, dn: &str, mv_id: i64) {
        let k = self.key.of(dn);
        self.dns_of(connector).insert(k, Inbound::Mv(mv_id));
    }

    /// What [`resolve_mv`] would find: `cs_id`, the one object of `connector` linked to
    /// `mv_id`, not being deleted (outbound sync's first pass, as it provisions or meets it).
    pub(crate) fn remember_target(&mut self, connector: &str, mv_id: i64, cs_id: i64) {
        match self.targets.get_mut(connector) {
            Some(m) => m.insert(mv_id, cs_id),
            None => {
                let mut m = ByMv::default();
                m.insert(mv_id, cs_id);
                self.targets.insert(connector.to_string(), m);
            }
        }
    }

    /// [`resolve_mv`], remembered for the pass once found.
    pub(crate) fn resolve_mv(&mut self, c: &dyn ReadOps, connector: &str, mv_id: i64) -> Result<Option<i64>> {
        if let Some(t) = self.targets.get(connector).and_then(|m| m.get(mv_id)) {
            return Ok(Some(t));
        }
        if self.complete_targets.contains(connector) {
            return Ok(None);
        }
        let t = resolve_mv(c, connector, mv_id)?;
        if let Some(t) = t {
            self.remember_target(connector, mv_id, t);
        }
        Ok(t)
    }
}

/// Target objects by metaverse object: in a vector indexed by the metaverse id where ids are
/// dense (they are handed out in order, and outbound sync meets objects in order), else in a
/// map. Outbound sync at 1,000,000 people remembers a million and looks up two: a map read two
/// cache lines each time, the vector one.
#[derive(Default)]
struct ByMv {
    /// The target object of metaverse object `i` at `i`; 0 (no connector-space id is 0): none.
    dense: Vec<i64>,
    sparse: FastMap<i64, i64>,
}

impl ByMv {
    /// Ids beyond those held grow the vector only this far past twice its length: a few ids
    /// far apart (a delta's) stay in the map.
    const SLACK: usize = 1 << 16;

    fn insert(&mut self, mv_id: i64, cs_id: i64) {
        match usize::try_from(mv_id) {
            Ok(i) if cs_id != 0 && i < self.dense.len() * 2 + Self::SLACK => {
                if i >= self.dense.len() {
                    self.dense.resize((i + 1).max(self.dense.len() * 3 / 2), 0);
                }
                self.dense[i] = cs_id;
                self.sparse.remove(&mv_id);
            }
            _ => {
                self.sparse.insert(mv_id, cs_id);
            }
        }
    }

    fn get(&self, mv_id: i64) -> Option<i64> {
        let dense = usize::try_from(mv_id).ok().and_then(|i| self.dense.get(i)).copied();
        match dense {
            Some(t) if t != 0 => Some(t),
            _ if self.sparse.is_empty() => None,
            _ => self.sparse.get(&mv_id).copied(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Inbound {
    /// The DN names an object linked to this metaverse object.
    Mv(i64),
    /// The object exists in the connector space but is not in sync scope (not linked): dropped.
    NotLinked,
    /// The object with this DN was deleted: the reference goes, quietly.
    Deleted,
    /// No object has this DN (yet).
    Missing,
}

/// Resolves a DN found in a reference attribute of `connector`.
pub(crate) fn resolve_dn(c: &dyn ReadOps, connector: &str, dn: &str) -> Result<Inbound> {
    let found = c.cs_states_by_dn(connector, dn)?;
    let mut live: Vec<_> = found.into_iter().filter(|o| o.present || o.mv_id.is_some()).map(|o| (o.mv_id, o.link)).collect();
    if live.is_empty() {
        match c.cs_former_dn(connector, dn)? {
            None => return Ok(Inbound::Missing),
            Some(None) => return Ok(Inbound::Deleted),
            Some(Some(id)) => match c.cs_links(id)? {
                Some(o) => live.push((o.mv_id, o.link)),
                None => return Ok(Inbound::Deleted),
            },
        }
    }
    Ok(live
        .iter()
        .find_map(|o| match *o {
            (Some(m), Some(l)) if l.is_inbound() => Some(Inbound::Mv(m)),
            _ => None,
        })
        .unwrap_or(Inbound::NotLinked))
}

/// The connector-space object in `connector` that stands for metaverse object `mv_id`, if one
/// is provisioned or adopted there (and not being deleted).
pub(crate) fn resolve_mv(c: &dyn ReadOps, connector: &str, mv_id: i64) -> Result<Option<i64>> {
    Ok(c.cs_state_linked(connector, mv_id)?.filter(|o| o.export_state != Some(ExportState::Delete)).map(|o| o.id))
}

/// How the target names object `cs_id`: its DN or its anchor; `None` until it has one.
pub(crate) fn target_ident(c: &dyn ReadOps, cs_id: i64, form: RefForm) -> Result<Option<String>> {
    Ok(c.cs_links(cs_id)?.and_then(|o| ident_of(o, form)))
}

/// How the target names an object, from its links.
pub(crate) fn ident_of(o: CsLinks, form: RefForm) -> Option<String> {
    ident_in(form, o.anchor, o.dn, o.desired_dn)
}

/// [`ident_of`] an object's anchor, DN and desired DN (owned, or borrowed).
pub(crate) fn ident_in<T>(form: RefForm, anchor: Option<T>, dn: Option<T>, desired_dn: Option<T>) -> Option<T> {
    match form {
        RefForm::Dn => desired_dn.or(dn),
        RefForm::Anchor => anchor,
    }
}

/// Marks pending export the objects of `o`'s connector whose desired values reference `o`
/// (found through their metaverse objects), `o` included: `o`'s identifier there changed, and
/// what they hold names it by the old one. Returns how many it marked.
pub(crate) fn referrers_pending(tx: &dyn WriteOps, o: &CsObject) -> Result<usize> {
    let Some(m) = o.mv_id else { return Ok(0) };
    let mut marked = 0;
    for r in referrers(tx, m)? {
        let Some(mut x) = tx.cs_linked(&o.connector, r)? else { continue };
        let names = x.desired.iter().flatten().flat_map(|(_, v)| v).any(|v| *v == Value::Ref(o.id));
        // `o` itself too (its own manager): it was just recorded as sent, with the old id.
        if names && !x.pending_export && x.export_state == Some(ExportState::Present) {
            x.pending_export = true;
            tx.cs_save(&x)?;
            marked += 1;
        }
    }
    Ok(marked)
}

/// Metaverse objects referencing `mv_id` (they must be looked at again when it changes links).
pub(crate) fn referrers(c: &dyn ReadOps, mv_id: i64) -> Result<Vec<i64>> {
    let mut v: Vec<i64> = c.mv_referrers(mv_id)?.into_iter().map(|(m, _)| m).collect();
    v.sort();
    v.dedup();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::ByMv;

    #[test]
    fn targets_by_metaverse_id_are_found_dense_or_sparse_and_the_last_remembered_wins() {
        let mut m = ByMv::default();
        for (mv, cs) in [(1, 11), (2, 12), (5, 15), (1 << 40, 99), (-3, 7), (9, 0), (2, 22)] {
            m.insert(mv, cs);
        }
        assert!(m.dense.len() < 1 << 17, "a far id is not a reason to grow: {}", m.dense.len());
        for (mv, want) in
            [(1, Some(11)), (2, Some(22)), (5, Some(15)), (1 << 40, Some(99)), (-3, Some(7)), (9, Some(0)), (3, None), (1 << 30, None)]
        {
            assert_eq!(m.get(mv), want, "{mv}");
        }
        // An id kept in the map before the vector reached it is found, and moved when remembered again.
        for mv in 10..200_000 {
            m.insert(mv, mv + 1);
        }
        m.insert(150_000, 5);
        assert_eq!((m.get(150_000), m.get(199_999), m.get(1 << 40)), (Some(5), Some(200_000), Some(99)));
    }
}
