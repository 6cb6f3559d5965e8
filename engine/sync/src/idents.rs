//! The identifiers a target has for the objects references point at (their anchors or DNs),
//! looked up once each while an export or a plan resolves references.
use crate::references;
use idflow_core::connector::RefForm;
use idflow_core::fast_hash::{FastMap, FastSet};
use idflow_core::Result;
use idflow_store::ReadOps;
use std::sync::Arc;

/// Changes to at least one object in this many of a connector's have their references' target
/// identifiers read whole first ([`Idents::preload_for`]).
const PRELOAD_SHARE: i64 = 4;

/// Target identifiers already looked up, by connector-space object, in one form: an export
/// resolves the same references when it orders, sends and records its changes. What it holds
/// is bounded (it starts again when full), and an object whose identifier may just have been
/// assigned or changed is forgotten by whoever changed it.
pub(crate) struct Idents {
    form: RefForm,
    /// What [`Idents::preload`] read. A plan shares it with the read-ahead thread
    /// ([`Idents::preloaded`]); should anything forget one of its objects meanwhile, it is
    /// copied first.
    preloaded: Arc<Preloaded>,
    /// What was looked up one by one.
    known: FastMap<i64, Option<String>>,
    /// The objects forgotten since [`Idents::mark`] (whose identifier may have changed since);
    /// none are kept before it is first called.
    forgotten: Option<FastSet<i64>>,
}

impl Idents {
    /// Entries held at most (about 100 bytes each, so 100 MB at most): enough for every
    /// reference of a million objects to be looked up once.
    const MOST: usize = 1 << 20;

    pub(crate) fn new(form: RefForm) -> Idents {
        Idents { form, preloaded: Arc::default(), known: FastMap::default(), forgotten: None }
    }

    /// Idents in the same form, with what this one preloaded (shared, not copied) and nothing
    /// else: for another thread, which looks up the rest through its own connection.
    pub(crate) fn sharing_preload(&self) -> Idents {
        Idents { form: self.form, preloaded: Arc::clone(&self.preloaded), known: FastMap::default(), forgotten: None }
    }

    /// What the preload read, to be read elsewhere (each object's identifier, or `None` when
    /// it has none yet); empty when nothing was preloaded.
    pub(crate) fn preloaded(&self) -> Arc<Preloaded> {
        Arc::clone(&self.preloaded)
    }

    pub(crate) fn get(&mut self, c: &dyn ReadOps, id: i64, form: RefForm) -> Result<Option<String>> {
        if form != self.form {
            return references::target_ident(c, id, form);
        }
        if let Some(known) = self.known.get(&id) {
            return Ok(known.clone());
        }
        if let Some(known) = self.preloaded.get(id) {
            return Ok(known.map(str::to_string));
        }
        let found = references::target_ident(c, id, form)?;
        // The two together hold at most `MOST`, or a quarter more when the preload is full (a
        // connector larger than that: what it left out is looked up, and kept a while).
        if self.known.len() >= Self::MOST.saturating_sub(self.preloaded.len()).max(Self::MOST / 4) {
            self.known.clear();
        }
        self.known.insert(id, found.clone());
        Ok(found)
    }

    /// The objects of `connector` looked up at once, as many as it holds (the connector's
    /// anchors, or its objects' links, read whole instead of one lookup per object referenced).
    pub(crate) fn preload(&mut self, c: &dyn ReadOps, connector: &str) -> Result<()> {
        let form = self.form;
        let mut read = Reads::default();
        match form {
            // The anchors alone (an object's identifier in this form), not the objects' links.
            RefForm::Anchor => c.cs_anchors_of(connector, &mut |id, anchor| read.add(id, anchor))?,
            RefForm::Dn => c.cs_links_of(connector, &mut |o| read.add(o.id, references::ident_of(o, form)))?,
        }
        self.preloaded = Arc::new(read.into_preloaded());
        Ok(())
    }

    /// [`Idents::preload`] when changes to `pending` of the connector's objects are about to be
    /// resolved and that is a good part of it (at least one in [`PRELOAD_SHARE`]: a first export
    /// or plan); a few changes to a large connector look their references up one by one (and
    /// its objects are counted only as far as that needs).
    pub(crate) fn preload_for(&mut self, c: &dyn ReadOps, connector: &str, pending: i64) -> Result<()> {
        let share = pending.saturating_mul(PRELOAD_SHARE);
        if share > 0 && c.cs_count_present_up_to(connector, share + 1)? <= share {
            self.preload(c, connector)?;
        }
        Ok(())
    }

    /// [`Idents::preload`] when the connector's objects fit in what it holds (past that it
    /// would hold only part of them, and the rest would still be looked up one by one).
    pub(crate) fn preload_if_it_fits(&mut self, c: &dyn ReadOps, connector: &str) -> Result<()> {
        let most = Self::MOST as i64;
        if c.cs_count_present_up_to(connector, most + 1)? > most {
            return Ok(());
        }
        self.preload(c, connector)
    }

    /// How the target names referenced objects.
    pub(crate) fn form(&self) -> RefForm {
        self.form
    }

    /// The object's identifier may have changed: it is looked up again when next asked for.
    pub(crate) fn forget(&mut self, id: i64) {
        self.known.remove(&id);
        if self.preloaded.get(id).is_some() {
            Arc::make_mut(&mut self.preloaded).remove(id);
        }
        if let Some(f) = &mut self.forgotten {
            f.insert(id);
        }
    }

    /// From now on, [`Idents::forgotten_since_mark`] tells the objects forgotten.
    pub(crate) fn mark(&mut self) {
        self.forgotten.get_or_insert_default().clear();
    }

    /// Whether the object was forgotten since [`Idents::mark`] (its identifier may have
    /// changed); any object is, as far as it knows, before that was first called.
    pub(crate) fn forgotten_since_mark(&self, id: i64) -> bool {
        self.forgotten.as_ref().is_none_or(|f| f.contains(&id))
    }

    /// Whether any object was forgotten since [`Idents::mark`] (any is, before it was called).
    pub(crate) fn forgot_any_since_mark(&self) -> bool {
        self.forgotten.as_ref().is_none_or(|f| !f.is_empty())
    }
}

/// What a preload reads, as it comes.
#[derive(Default)]
struct Reads {
    named: FastMap<i64, Box<str>>,
    unnamed: Vec<i64>,
}

impl Reads {
    fn add(&mut self, id: i64, ident: Option<String>) {
        if self.named.len() + self.unnamed.len() >= Idents::MOST {
            return;
        }
        match ident {
            Some(s) => drop(self.named.insert(id, s.into_boxed_str())),
            None => self.unnamed.push(id),
        }
    }

    fn into_preloaded(self) -> Preloaded {
        let Reads { named, mut unnamed } = self;
        unnamed.sort_unstable();
        unnamed.dedup();
        let count = unnamed.len();
        let (Some(&first), Some(&last)) = (unnamed.first(), unnamed.last()) else { return Preloaded { named, ..Preloaded::default() } };
        let span = last.abs_diff(first).saturating_add(1);
        // Bits while they take no more than a set would (about 16 bytes an object).
        if span / 8 > (count as u64).saturating_mul(16) {
            return Preloaded { named, unnamed: unnamed.into_iter().collect(), ..Preloaded::default() };
        }
        let mut bits = vec![0u64; usize::try_from(span.div_ceil(64)).unwrap_or(0)];
        for id in unnamed {
            let at = (id - first) as usize;
            bits[at / 64] |= 1 << (at % 64);
        }
        Preloaded { named, base: first, bits, unnamed: FastSet::default(), in_bits: count }
    }
}

/// A connector's target identifiers read whole: the objects that have one, by id, and those
/// that have none (all of them before a first export) as bits over their ids' span, so that a
/// lookup reads a few hundred kilobytes the processor keeps close, not a map of millions.
#[derive(Clone, Default)]
pub(crate) struct Preloaded {
    named: FastMap<i64, Box<str>>,
    /// Bit `i`: object `base + i` was read and has no identifier.
    base: i64,
    bits: Vec<u64>,
    /// How many bits are set.
    in_bits: usize,
    /// Objects read with no identifier, when their ids are too far apart for bits.
    unnamed: FastSet<i64>,
}

impl Preloaded {
    /// Object `id`'s identifier (`Some(None)`: it has none), if it was read.
    pub(crate) fn get(&self, id: i64) -> Option<Option<&str>> {
        if self.bit(id).is_some_and(|(word, bit)| self.bits[word] & bit != 0) || self.unnamed.contains(&id) {
            return Some(None);
        }
        self.named.get(&id).map(|s| Some(&**s))
    }

    /// Where object `id`'s bit is, if in the span.
    fn bit(&self, id: i64) -> Option<(usize, u64)> {
        let at = usize::try_from(id.checked_sub(self.base)?).ok()?;
        (at / 64 < self.bits.len()).then(|| (at / 64, 1 << (at % 64)))
    }

    fn remove(&mut self, id: i64) {
        self.named.remove(&id);
        self.unnamed.remove(&id);
        if let Some((word, bit)) = self.bit(id) {
            if self.bits[word] & bit != 0 {
                self.bits[word] &= !bit;
                self.in_bits -= 1;
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.named.len() + self.in_bits + self.unnamed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_read_is_found_as_read_in_bits_or_in_a_set() {
        for spread in [1, 1000] {
            let mut r = Reads::default();
            for i in 0..500_i64 {
                r.add(7 + i * spread, (i % 3 == 0).then(|| format!("a{i}")));
            }
            let mut p = r.into_preloaded();
            assert_eq!(p.len(), 500);
            assert_eq!(p.bits.is_empty(), spread > 1, "bits only while dense");
            for i in 0..500_i64 {
                let want = (i % 3 == 0).then(|| format!("a{i}"));
                assert_eq!(p.get(7 + i * spread), Some(want.as_deref()), "object {i}");
            }
            for id in [0, 6, 8 + 499 * spread, -5, i64::MAX] {
                if (id - 7) % spread != 0 || id < 7 || id > 7 + 499 * spread {
                    assert_eq!(p.get(id), None, "{id} was not read");
                }
            }
            p.remove(7 + spread);
            p.remove(7);
            p.remove(7 + spread);
            assert_eq!((p.get(7), p.get(7 + spread), p.len()), (None, None, 498));
        }
    }
}
