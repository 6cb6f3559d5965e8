//! Reading ahead: a stage that handles objects one at a time reads the next few hundred in one
//! statement, not one statement each. Only valid where handling an object changes nothing read
//! ahead for the others (each stage says why that holds for it).
use idflow_core::fast_hash::FastMap;
use idflow_core::Result;
use idflow_store::{CsObject, ReadOps};

/// Objects read at once.
const AT_ONCE: usize = 256;

pub(crate) struct Ahead<T> {
    /// `ids[..next]` were read.
    next: usize,
    got: FastMap<i64, T>,
}

impl<T> Default for Ahead<T> {
    fn default() -> Self {
        Ahead { next: 0, got: FastMap::default() }
    }
}

impl<T> Ahead<T> {
    /// What `read` gave for `ids[i]` (`None`: nothing), reading `ids[i..]` a few hundred at a
    /// time once `ids[..i]` are used up. `ids` holds each id once.
    pub(crate) fn take(&mut self, ids: &[i64], i: usize, read: impl FnOnce(&[i64]) -> Result<FastMap<i64, T>>) -> Result<Option<T>> {
        if i >= self.next {
            let chunk = &ids[i..ids.len().min(i + AT_ONCE)];
            debug_assert!(chunk.iter().collect::<std::collections::HashSet<_>>().len() == chunk.len(), "an id twice: {chunk:?}");
            self.got = read(chunk)?;
            self.next = i + chunk.len();
        }
        Ok(self.got.remove(&ids[i]))
    }
}

/// Connector-space objects, by id: what [`Ahead::take`] reads them with.
pub(crate) fn cs_objects(c: &dyn ReadOps, ids: &[i64]) -> Result<FastMap<i64, CsObject>> {
    Ok(c.cs_get_many(ids)?.into_iter().map(|o| (o.id, o)).collect())
}
