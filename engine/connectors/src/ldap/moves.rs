//! Entries that move while an import reads.
//!
//! Each base of `include_ous` is a search of its own, read in turn. An entry moved from a base
//! not read yet into one read already is in neither read: a full import would take it for
//! deleted (its accounts deprovisioned, made again by the next delta), so the objects it did
//! not read are looked up by their anchors before they are believed gone. So are those of a
//! full import of AD anchored by objectGUID, one base or more: its paged search is not a
//! snapshot (backend.rs `looks_up_unseen`). A syncrepl delta
//! reads its bases in turn too: an entry that moved into a base read before it moved is a
//! deletion to the one it left and nothing yet to the one it joined, so its deletions are
//! looked up the same way.
use super::conf::Conf;
use super::entry;
use super::import::{decode_whole, to_object};
use super::session;
use base64::Engine as _;
use idflow_core::connector::{DeltaChange, ImportedObject};
use idflow_core::fast_hash::FastMap;
use idflow_core::Result;
use ldap3::{Ldap, Scope};

/// Anchors asked for in one search: a filter of this many alternatives stays small.
const PER_SEARCH: usize = 100;

/// The deletions in `changes` (several bases read in turn) whose entries are found below a
/// base, of a configured type, become what the delta reports instead: the entry as it is.
pub(super) async fn confirm_deletions(conf: &Conf, ldap: &mut Ldap, attrs: &[String], changes: &mut [DeltaChange]) -> Result<()> {
    let anchors: Vec<String> =
        changes.iter().filter_map(|c| if let DeltaChange::Delete(k) = c { k.anchor.clone() } else { None }).collect();
    if anchors.is_empty() {
        return Ok(());
    }
    let mut found = by_anchor(conf, ldap, attrs, &anchors).await?;
    for c in changes.iter_mut() {
        let DeltaChange::Delete(k) = c else { continue };
        if let Some(o) = k.anchor.as_ref().and_then(|a| found.remove(a)) {
            tracing::debug!(connector = %conf.name, dn = ?o.dn, "a deletion in the delta is an entry that moved to another base");
            *c = DeltaChange::Upsert(o);
        }
    }
    Ok(())
}

/// The entries of a configured type, below any base, that have these anchors, by anchor.
pub(super) async fn by_anchor(
    conf: &Conf,
    ldap: &mut Ldap,
    attrs: &[String],
    anchors: &[String],
) -> Result<FastMap<String, ImportedObject>> {
    let mut found = FastMap::default();
    let binary = entry::is_binary(&conf.anchor, &conf.binary);
    let mut values = Vec::with_capacity(anchors.len());
    for a in anchors {
        match filter_value(a, binary) {
            Some(v) => values.push(v),
            None => tracing::warn!(
                connector = %conf.name,
                anchor = %a,
                "an anchor that is no {} value cannot be searched for: its object is not looked up before it is taken for gone",
                conf.anchor
            ),
        }
    }
    for chunk in values.chunks(PER_SEARCH) {
        let any: String = chunk.iter().map(|v| format!("({}={v})", conf.anchor)).collect();
        let filter = format!("(&{}(|{any}))", conf.filter);
        for base in &conf.bases {
            let what = format!("looking up {} entries by {} below {base}", chunk.len(), conf.anchor);
            let res = ldap
                .with_timeout(conf.timeout)
                .search(base, Scope::Subtree, &filter, attrs.to_vec())
                .await
                .map_err(|e| session::failed(conf, &what, e))?;
            let (entries, res) = (res.0, res.1);
            session::check(conf, &what, &res)?;
            for e in entries {
                // AD's large multi-valued attributes whole, as the full import reads them.
                let e = decode_whole(conf, ldap, e.0, &what).await?;
                match to_object(conf, e) {
                    Ok(Some(o)) => {
                        if let Some(a) = o.anchor.clone() {
                            found.insert(a, o);
                        }
                    }
                    Ok(None) => {}
                    Err((dn, m)) => tracing::warn!(connector = %conf.name, dn = %dn, "{m}: found by its anchor, and not taken for it"),
                }
            }
        }
    }
    Ok(found)
}

/// An anchor as kept (binary ones as base64) to a filter value (RFC 4515: bytes as `\xx`).
/// `None`: no value of the attribute could be kept as this text.
fn filter_value(anchor: &str, binary: bool) -> Option<String> {
    if binary {
        let bytes = base64::engine::general_purpose::STANDARD.decode(anchor).ok()?;
        return Some(bytes.iter().map(|b| format!("\\{b:02x}")).collect());
    }
    Some(ldap3::ldap_escape(anchor).into_owned())
}

#[cfg(test)]
mod tests {
    use super::filter_value;

    #[test]
    fn anchors_become_filter_values() {
        // objectGUID as idflow keeps it (base64) to its bytes.
        assert_eq!(filter_value("AAH/fw==", true).as_deref(), Some("\\00\\01\\ff\\7f"));
        assert_eq!(filter_value("not base64!", true), None);
        assert_eq!(filter_value("0f1e-2d3c", false).as_deref(), Some("0f1e-2d3c"));
        assert_eq!(filter_value("a*b(c)", false).as_deref(), Some("a\\2ab\\28c\\29"));
    }
}
