//! Connector-space objects: what idflow last saw in (or wrote to) one connector, plus what is pending.
use crate::anchor::{self, Anchor};
use crate::changed;
use crate::cs_patch;
use crate::packed::{Column, Db, Dicts, Kept, Unpacker};
use crate::prepared::{sql_once, with, Prepared};
use idflow_core::dn;
use idflow_core::{attrs_from_json, attrs_from_json_only, attrs_to_json, Attrs, Value};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Result, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingImport {
    Add,
    Update,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportState {
    /// The outbound rules want the object to exist with `desired`.
    Present,
    /// Deprovisioned: delete it in the target.
    Delete,
}

impl ExportState {
    fn as_str(self) -> &'static str {
        match self {
            ExportState::Present => "present",
            ExportState::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Inbound: joined to an existing metaverse object.
    Joined,
    /// Inbound: created the metaverse object.
    Projected,
    /// Outbound: idflow created it in the target.
    Provisioned,
    /// Outbound: an object that existed in the target, adopted by an outbound join.
    Adopted,
}

impl Link {
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Joined => "joined",
            Link::Projected => "projected",
            Link::Provisioned => "provisioned",
            Link::Adopted => "adopted",
        }
    }
    fn parse(s: &str) -> Option<Link> {
        Some(match s {
            "joined" => Link::Joined,
            "projected" => Link::Projected,
            "provisioned" => Link::Provisioned,
            "adopted" => Link::Adopted,
            _ => return None,
        })
    }
    pub fn is_inbound(self) -> bool {
        matches!(self, Link::Joined | Link::Projected)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CsObject {
    pub id: i64,
    pub connector: String,
    pub anchor: Option<String>,
    pub dn: Option<String>,
    pub object_type: String,
    /// As last imported, or as last confirmed by an export.
    pub attrs: Attrs,
    /// Exists in the connected directory (seen by import, or created by export).
    pub present: bool,
    /// What outbound rules want (targets only). Keys are every attribute idflow manages there.
    pub desired: Option<Attrs>,
    pub desired_dn: Option<String>,
    pub export_state: Option<ExportState>,
    pub pending_import: Option<PendingImport>,
    pub pending_export: bool,
    pub mv_id: Option<i64>,
    pub link: Option<Link>,
    pub link_rule: Option<String>,
    pub error: Option<String>,
}

/// A connector-space object's identity and links, without its attributes (read without
/// parsing them: what references and links need, object by object).
#[derive(Debug, Clone, PartialEq)]
pub struct CsLinks {
    pub id: i64,
    pub anchor: Option<String>,
    pub dn: Option<String>,
    pub desired_dn: Option<String>,
    pub present: bool,
    pub export_state: Option<ExportState>,
    pub mv_id: Option<i64>,
    pub link: Option<Link>,
}

/// Where an object stands toward the metaverse: what resolving a reference needs, read by
/// metaverse object from an index alone, by DN from the index and the row (not its attributes).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkState {
    pub id: i64,
    pub present: bool,
    pub mv_id: Option<i64>,
    pub link: Option<Link>,
    pub export_state: Option<ExportState>,
}

impl LinkState {
    /// On the target side of its metaverse object: an export state, or an outbound link
    /// (provisioned, adopted).
    pub fn is_target(&self) -> bool {
        self.export_state.is_some() || matches!(self.link, Some(Link::Provisioned | Link::Adopted))
    }
}

/// The attributes [`CsObject::display`] names an object without a DN by, the first it has.
const NAMED_BY: [&str; 5] = ["userName", "displayName", "name", "cn", "mail"];

/// Where to find one connector-space object.
#[derive(Debug, Clone, Copy)]
pub enum CsKey<'a> {
    Id(i64),
    Anchor { connector: &'a str, anchor: &'a str },
    Dn { connector: &'a str, dn: &'a str },
}

impl CsObject {
    pub fn new(connector: &str, object_type: &str) -> Self {
        CsObject {
            id: 0,
            connector: connector.to_string(),
            anchor: None,
            dn: None,
            object_type: object_type.to_string(),
            attrs: Attrs::new(),
            present: false,
            desired: None,
            desired_dn: None,
            export_state: None,
            pending_import: None,
            pending_export: false,
            mv_id: None,
            link: None,
            link_rule: None,
            error: None,
        }
    }

    /// A short name for messages: the DN, else an identifying attribute, else the anchor.
    pub fn display(&self) -> String {
        if let Some(d) = self.desired_dn.as_ref().or(self.dn.as_ref()) {
            return d.clone();
        }
        for a in NAMED_BY {
            let v =
                self.desired.as_ref().and_then(|d| d.get(a)).and_then(|v| v.first()).or_else(|| self.attrs.get(a).and_then(|v| v.first()));
            if let Some(Value::Str(s)) = v {
                return s.clone();
            }
        }
        match &self.anchor {
            Some(a) => format!("anchor {a}"),
            None => format!("#{}", self.id),
        }
    }
}

/// The pending import is read from its table (`cs_pending`): see [`set_pending`].
const COLS: &str = "id, connector, anchor, dn, object_type, attrs, present, desired, desired_dn, export_state, (SELECT kind FROM cs_pending WHERE cs_id=cs_object.id), pending_export, mv_id, link, link_rule, error";

const LINK_COLS: &str = "id, anchor, dn, desired_dn, present, export_state, mv_id, link";

/// A short text column (a state, a link) without copying it.
fn text<'r>(r: &'r Row, i: usize) -> Result<Option<&'r str>> {
    Ok(r.get_ref(i)?.as_str_or_null()?)
}

fn links_row(r: &Row) -> rusqlite::Result<CsLinks> {
    Ok(CsLinks {
        id: r.get(0)?,
        anchor: anchor::read(r, 1)?,
        dn: r.get(2)?,
        desired_dn: r.get(3)?,
        present: r.get::<_, i64>(4)? != 0,
        export_state: export_state(text(r, 5)?),
        mv_id: r.get(6)?,
        link: text(r, 7)?.and_then(Link::parse),
    })
}

fn export_state(s: Option<&str>) -> Option<ExportState> {
    match s {
        Some("present") => Some(ExportState::Present),
        Some("delete") => Some(ExportState::Delete),
        _ => None,
    }
}

pub(crate) fn links(c: &dyn Prepared, id: i64) -> Result<Option<CsLinks>> {
    with(c, sql_once!("SELECT {LINK_COLS} FROM cs_object WHERE id=?1"), |st| st.query_row([id], links_row).optional())
}

pub(crate) fn links_of(c: &Connection, connector: &str, each: &mut dyn FnMut(CsLinks)) -> Result<()> {
    links_where(c, OF_CONNECTOR, connector, each)
}

/// Each object of `connector`, by id, with its anchor (none for one without), read from the
/// indexes of anchors alone: a connector's objects whole without reading their rows.
pub(crate) fn anchors_of(c: &Connection, connector: &str, each: &mut dyn FnMut(i64, Option<String>)) -> Result<()> {
    let mut st = c.prepare_cached("SELECT id, anchor FROM cs_object WHERE connector=?1 AND anchor IS NOT NULL")?;
    let mut rows = st.query([connector])?;
    while let Some(r) = rows.next()? {
        each(r.get(0)?, anchor::read(r, 1)?);
    }
    let mut st = c.prepare_cached("SELECT id FROM cs_object WHERE connector=?1 AND anchor IS NULL")?;
    let mut rows = st.query([connector])?;
    while let Some(r) = rows.next()? {
        each(r.get(0)?, None);
    }
    Ok(())
}

/// [`links`] of each object of `connector` with a pending export, by id.
pub(crate) fn pending_export_links(c: &Connection, connector: &str, each: &mut dyn FnMut(CsLinks)) -> Result<()> {
    links_where(c, "connector=?1 AND pending_export=1 ORDER BY id", connector, each)
}

fn links_where(c: &Connection, sql_where: &str, connector: &str, each: &mut dyn FnMut(CsLinks)) -> Result<()> {
    let mut st = c.prepare_cached(&format!("SELECT {LINK_COLS} FROM cs_object WHERE {sql_where}"))?;
    let mut rows = st.query([connector])?;
    while let Some(r) = rows.next()? {
        each(links_row(r)?);
    }
    Ok(())
}

/// The columns of [`LinkState`]: read by metaverse object from the index `cs_mv_state` alone;
/// by DN from the index `cs_by_dn` and the row.
const STATE_COLS: &str = "id, present, mv_id, link, export_state";

fn state_row(r: &Row) -> rusqlite::Result<LinkState> {
    Ok(LinkState {
        id: r.get(0)?,
        present: r.get::<_, i64>(1)? != 0,
        mv_id: r.get(2)?,
        link: text(r, 3)?.and_then(Link::parse),
        export_state: export_state(text(r, 4)?),
    })
}

// The lookups of a few rows by an index below are put in order by id here, not by SQL: the
// index gives them in its own order, and SQLite sorted each statement's rows in a temporary
// b-tree (at a 1% delta sync, a sort for every reference resolved).

pub(crate) fn states_by_dn(c: &Connection, connector: &str, dn: &str) -> Result<Vec<LinkState>> {
    let mut st = c.prepare_cached(&format!("SELECT {STATE_COLS} FROM cs_object WHERE connector=?1 AND dn_norm=?2"))?;
    let rows = st.query_map(params![connector, dn::norm(dn)], state_row)?;
    let mut states = rows.collect::<Result<Vec<_>>>()?;
    states.sort_unstable_by_key(|s| s.id);
    Ok(states)
}

pub(crate) fn shared_dns(c: &Connection, connector: &str) -> Result<std::collections::HashSet<String>> {
    let mut st =
        c.prepare_cached("SELECT dn_norm FROM cs_object WHERE connector=?1 AND dn_norm IS NOT NULL GROUP BY dn_norm HAVING count(*) > 1")?;
    let rows = st.query_map([connector], |r| r.get(0))?;
    rows.collect()
}

pub(crate) fn state_linked(c: &dyn Prepared, connector: &str, mv_id: i64) -> Result<Option<LinkState>> {
    with(c, sql_once!("SELECT {STATE_COLS} FROM cs_object WHERE mv_id=?1 AND connector=?2"), |st| {
        let mut first: Option<LinkState> = None;
        for s in st.query_map(params![mv_id, connector], state_row)? {
            let s = s?;
            if first.as_ref().is_none_or(|f| s.id < f.id) {
                first = Some(s);
            }
        }
        Ok(first)
    })
}

pub(crate) fn states_of_mv(c: &dyn Prepared, mv_id: i64) -> Result<Vec<(String, LinkState)>> {
    let mut states = with(c, sql_once!("SELECT {STATE_COLS}, connector FROM cs_object WHERE mv_id=?1"), |st| {
        st.query_map([mv_id], |r| Ok((r.get(5)?, state_row(r)?)))?.collect::<Result<Vec<(String, LinkState)>>>()
    })?;
    states.sort_unstable_by_key(|(_, s)| s.id);
    Ok(states)
}

/// [`states_of_mv`] of each of `ids` (at most [`IDS_PER_STATEMENT`]), in one statement.
pub(crate) fn states_of_mvs(c: &Connection, ids: &[i64]) -> Result<std::collections::HashMap<i64, Vec<(String, LinkState)>>> {
    let (which, p) = one_of("mv_id", ids);
    let mut st = c.prepare_cached(&format!("SELECT {STATE_COLS}, connector FROM cs_object WHERE {which}"))?;
    let mut out: std::collections::HashMap<i64, Vec<(String, LinkState)>> = std::collections::HashMap::new();
    let rows = st.query_map(rusqlite::params_from_iter(p), |r| Ok((r.get(5)?, state_row(r)?)))?;
    for row in rows {
        let (connector, state): (String, LinkState) = row?;
        if let Some(m) = state.mv_id {
            out.entry(m).or_default().push((connector, state));
        }
    }
    for states in out.values_mut() {
        states.sort_unstable_by_key(|(_, s)| s.id);
    }
    Ok(out)
}

/// Links an object (to `mv_id`, as `link` by `rule`): only those columns are written.
pub(crate) fn set_link(c: &dyn Prepared, id: i64, mv_id: Option<i64>, link: Option<Link>, rule: Option<&str>) -> Result<()> {
    with(c, "UPDATE cs_object SET mv_id=?2, link=?3, link_rule=?4 WHERE id=?1", |st| {
        st.execute(params![id, mv_id, link.map(Link::as_str), rule])
    })?;
    Ok(())
}

/// What outbound sync decided for a target object: its desired state, export state, whether
/// an export is pending, its error (or none). Only those columns are written, and the export
/// state only when it is not `was` (the index by metaverse object holds it: an update that
/// sets it rewrites its entry, changed or not). Attributes kept as "the same
/// as desired" ([`SAME_AS_DESIRED`]) take the desired state they were the same as, when it
/// changes (the same value packs to the same bytes); those kept as a patch of it
/// (cs_patch.rs) are kept against the new one.
pub(crate) fn set_desired(c: &Db, o: &CsObject, was: Option<ExportState>) -> Result<()> {
    let desired = stored_desired(c, o)?;
    // Attributes kept as a patch of the desired state (cs_patch.rs) are kept against the new
    // one: they are the object's attributes as read (`o.attrs`; outbound sync changes only
    // what this writes), not decoded again from the row.
    let patched = with(c, "SELECT 1 FROM cs_object WHERE id=?1 AND substr(attrs, 1, 1)=X'00' AND desired IS NOT ?2", |st| {
        st.exists(params![o.id, desired])
    })?;
    #[cfg(debug_assertions)]
    if patched {
        let stored = c
            .prepare_cached("SELECT attrs, desired FROM cs_object WHERE id=?1")?
            .query_row([o.id], |r| Ok(desired_and_attrs(c, r, (1, 0), attrs_from_json)?.1))?;
        debug_assert_eq!(stored, o.attrs, "object {}: the attributes given are the ones kept", o.id);
    }
    // Kept against the new desired state, and written with it (one write of the row).
    let attrs = match patched {
        true => Some(stored_attrs_of(c, &o.connector, &o.attrs, o.desired.as_ref(), None)?),
        false => None,
    };
    if o.export_state == was {
        with(
            c,
            "UPDATE cs_object SET attrs=coalesce(?6, iif(attrs=X'' AND desired IS NOT ?2, desired, attrs)), desired=?2, desired_dn=?3, pending_export=?4, error=?5 WHERE id=?1",
            |st| st.execute(params![o.id, desired, o.desired_dn, o.pending_export as i64, o.error, attrs]),
        )?;
    } else {
        with(
            c,
            "UPDATE cs_object SET attrs=coalesce(?7, iif(attrs=X'' AND desired IS NOT ?2, desired, attrs)), desired=?2, desired_dn=?3, export_state=?4, pending_export=?5, error=?6 WHERE id=?1",
            |st| st.execute(params![o.id, desired, o.desired_dn, o.export_state.map(ExportState::as_str), o.pending_export as i64, o.error, attrs]),
        )?;
    }
    Ok(())
}

/// An import looked at by sync: its pending import cleared, its error (or none) set.
pub(crate) fn set_synced(c: &dyn Prepared, id: i64, error: Option<&str>) -> Result<()> {
    set_pending(c, id, None)?;
    // The row is written only when its error changes: nearly always, an object synced without
    // one had none, and its row (a page of its own at a delta) is left alone.
    with(c, "UPDATE cs_object SET error=?2 WHERE id=?1 AND error IS NOT ?2", |st| st.execute(params![id, error]))?;
    Ok(())
}

/// Sets (or clears) what import of object `id` sync has not looked at yet. Kept in a table of
/// its own, not in the object's row: a sync clears it without rewriting the row (at a 1% delta,
/// a page written per changed object fewer, of three), and its rows, a few bytes each, share
/// their pages.
fn set_pending(c: &dyn Prepared, id: i64, pending: Option<PendingImport>) -> Result<()> {
    match pending_import_str(pending) {
        Some(kind) => with(
            c,
            "INSERT INTO cs_pending(cs_id, kind) VALUES (?1, ?2) ON CONFLICT(cs_id) DO UPDATE SET kind=excluded.kind WHERE kind IS NOT excluded.kind",
            |st| st.execute(params![id, kind]),
        )?,
        None => with(c, "DELETE FROM cs_pending WHERE cs_id=?1", |st| st.execute([id]))?,
    };
    Ok(())
}

/// [`set_link`] and [`set_synced`] in one write (one rewrite of the row, not two).
pub(crate) fn set_link_synced(c: &dyn Prepared, o: &CsObject, error: Option<&str>) -> Result<()> {
    set_pending(c, o.id, None)?;
    with(c, "UPDATE cs_object SET mv_id=?2, link=?3, link_rule=?4, error=?5 WHERE id=?1", |st| {
        st.execute(params![o.id, o.mv_id, o.link.map(Link::as_str), o.link_rule, error])
    })?;
    Ok(())
}

/// Attributes stored as this (an empty BLOB) are the object's desired state: a target object
/// in step with what sync wants (what an export confirmed) keeps one copy, not two.
const SAME_AS_DESIRED: &[u8] = b"";

/// Column `column`'s JSON does not parse.
fn json_err(column: usize, e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
}

/// An object's desired state and attributes from columns `desired` and `attrs` of a row, each
/// decoded by `decode` (attributes kept as [`SAME_AS_DESIRED`] are a copy of the desired state;
/// those kept as a patch of it, cs_patch.rs, the desired state with the patch applied).
fn desired_and_attrs(
    c: &Db,
    r: &Row,
    (desired, attrs): (usize, usize),
    decode: impl Fn(&str) -> serde_json::Result<Attrs>,
) -> rusqlite::Result<(Option<Attrs>, Attrs)> {
    let desired = desired_of(c, r, desired, &decode)?;
    let attrs = match (r.get_ref(attrs)?, &desired) {
        (ValueRef::Blob(SAME_AS_DESIRED), Some(d)) => d.clone(),
        (ValueRef::Blob([cs_patch::MARK, patch @ ..]), Some(d)) => patched(d, patch, attrs, &decode)?,
        (ValueRef::Blob([cs_patch::MARK, ..]), None) => return Err(unpatched(attrs)),
        (v, _) => c.unpack(v, &decode)?.map_err(|e| json_err(attrs, e))?,
    };
    Ok((desired, attrs))
}

/// Attributes (column `column`) kept as a patch of a desired state the row does not have.
fn unpatched(column: usize) -> rusqlite::Error {
    let why = "attributes kept as a patch of a desired state the object does not have";
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Blob, why.into())
}

/// `desired` with a stored patch (column `column`, cs_patch.rs) applied, its JSON decoded by `decode`.
fn patched(desired: &Attrs, patch: &[u8], column: usize, decode: impl Fn(&str) -> serde_json::Result<Attrs>) -> rusqlite::Result<Attrs> {
    let json = std::str::from_utf8(patch)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Blob, Box::new(e)))?;
    Ok(cs_patch::apply(desired.clone(), decode(json).map_err(|e| json_err(column, e))?))
}

/// An object's desired state from column `column` of a row, decoded by `decode`.
fn desired_of(c: &Db, r: &Row, column: usize, decode: impl Fn(&str) -> serde_json::Result<Attrs>) -> rusqlite::Result<Option<Attrs>> {
    match r.get_ref(column)? {
        ValueRef::Null => Ok(None),
        v => Ok(Some(c.unpack(v, decode)?.map_err(|e| json_err(column, e))?)),
    }
}

fn from_row(c: &Db, r: &Row) -> rusqlite::Result<CsObject> {
    let o = fields(r)?;
    let (desired, attrs) = desired_and_attrs(c, r, (7, 5), attrs_from_json).map_err(|e| about(&o, e))?;
    Ok(CsObject { attrs, desired, ..o })
}

/// An object's attributes or desired state that do not read back (a damaged row): the error
/// names the object.
fn about(o: &CsObject, e: rusqlite::Error) -> rusqlite::Error {
    crate::packed::naming(e, |column| {
        let who = match (&o.anchor, &o.dn) {
            (Some(a), _) => format!("anchor {a}"),
            (None, Some(d)) => d.clone(),
            (None, None) => "no anchor yet".into(),
        };
        // Values that do not decompress say no column (packed.rs): either may be the one.
        let what = match column {
            5 => "attributes do",
            7 => "desired state does",
            _ => "attributes or desired state do",
        };
        format!("object {} of connector {} ({who}): its {what} not read back", o.id, o.connector)
    })
}

/// A row of [`COLS`] but its attributes and desired state.
fn fields(r: &Row) -> rusqlite::Result<CsObject> {
    Ok(CsObject {
        id: r.get(0)?,
        connector: r.get(1)?,
        anchor: anchor::read(r, 2)?,
        dn: r.get(3)?,
        object_type: r.get(4)?,
        attrs: Attrs::new(),
        present: r.get::<_, i64>(6)? != 0,
        desired: None,
        desired_dn: r.get(8)?,
        export_state: export_state(text(r, 9)?),
        pending_import: text(r, 10)?.and_then(|s| match s {
            "add" => Some(PendingImport::Add),
            "update" => Some(PendingImport::Update),
            "delete" => Some(PendingImport::Delete),
            _ => None,
        }),
        pending_export: r.get::<_, i64>(11)? != 0,
        mv_id: r.get(12)?,
        link: text(r, 13)?.and_then(Link::parse),
        link_rule: r.get(14)?,
        error: r.get(15)?,
    })
}

/// An object read with its attributes and desired state still as stored:
/// [`KeptObject::unpack`] decodes them, on any thread.
pub(crate) struct KeptObject {
    o: CsObject,
    kept: KeptAttrs,
}

/// Columns `attrs` (5) and `desired` (7) of a row, as stored.
enum KeptAttrs {
    Own {
        attrs: Kept,
        desired: Option<Kept>,
    },
    /// Attributes kept as [`SAME_AS_DESIRED`]: a copy of the desired state.
    SameAsDesired(Kept),
    /// Attributes kept as a patch of the desired state (cs_patch.rs): its JSON, as stored.
    Patched {
        desired: Kept,
        patch: Vec<u8>,
    },
}

impl KeptObject {
    pub(crate) fn unpack(self, u: &mut Unpacker) -> rusqlite::Result<CsObject> {
        let decode = |u: &mut Unpacker, v: &Kept, column: usize| u.unpack(v, attrs_from_json)?.map_err(|e| json_err(column, e));
        let o = self.o;
        let read = || -> rusqlite::Result<(Option<Attrs>, Attrs)> {
            Ok(match self.kept {
                KeptAttrs::Own { attrs, desired } => (desired.map(|d| decode(u, &d, 7)).transpose()?, decode(u, &attrs, 5)?),
                KeptAttrs::SameAsDesired(d) => {
                    let d = decode(u, &d, 7)?;
                    (Some(d.clone()), d)
                }
                KeptAttrs::Patched { desired, patch } => {
                    let d = decode(u, &desired, 7)?;
                    let attrs = patched(&d, &patch, 5, attrs_from_json)?;
                    (Some(d), attrs)
                }
            })
        };
        let (desired, attrs) = read().map_err(|e| about(&o, e))?;
        Ok(CsObject { attrs, desired, ..o })
    }
}

/// A row of [`COLS`] for [`KeptObject::unpack`]; the dictionaries it needs are added to `dicts`.
fn kept_row(c: &Db, r: &Row, dicts: &mut Dicts) -> rusqlite::Result<KeptObject> {
    let desired = match r.get_ref(7)? {
        ValueRef::Null => None,
        v => Some(c.codec.keep(c, v, dicts)?),
    };
    let kept = match (r.get_ref(5)?, desired) {
        (ValueRef::Blob(SAME_AS_DESIRED), Some(d)) => KeptAttrs::SameAsDesired(d),
        (ValueRef::Blob([cs_patch::MARK, patch @ ..]), Some(d)) => KeptAttrs::Patched { desired: d, patch: patch.to_vec() },
        (ValueRef::Blob([cs_patch::MARK, ..]), None) => return Err(unpatched(5)),
        (v, desired) => KeptAttrs::Own { attrs: c.codec.keep(c, v, dicts)?, desired },
    };
    Ok(KeptObject { o: fields(r)?, kept })
}

/// [`get_many`], the attributes kept as stored: their dictionaries are added to `dicts`.
pub(crate) fn get_many_kept(c: &Db, ids: &[i64], dicts: &mut Dicts) -> Result<Vec<KeptObject>> {
    many(c, ids, |r| kept_row(c, r, dicts))
}

fn pending_import_str(p: Option<PendingImport>) -> Option<&'static str> {
    p.map(|p| match p {
        PendingImport::Add => "add",
        PendingImport::Update => "update",
        PendingImport::Delete => "delete",
    })
}

/// What the object's desired state is stored as: packed, or NULL (none).
fn stored_desired(c: &Db, o: &CsObject) -> Result<Option<SqlValue>> {
    o.desired.as_ref().map(|d| c.pack(Column::CsDesired, &o.connector, attrs_to_json(d))).transpose()
}

/// What the object's attributes are stored as: "the same as desired", a patch of it, or packed.
fn stored_attrs(c: &Db, o: &CsObject) -> Result<SqlValue> {
    stored_attrs_of(c, &o.connector, &o.attrs, o.desired.as_ref(), None)
}

/// Attributes' JSON text made where they were read, and what a [`crate::Packer`] made of it there.
pub type ReadText = (String, Option<Vec<u8>>);

/// [`stored_attrs`] of `attrs` against `desired`; `read`: their JSON text, when made already.
fn stored_attrs_of(c: &Db, connector: &str, attrs: &Attrs, desired: Option<&Attrs>, read: Option<ReadText>) -> Result<SqlValue> {
    // The whole JSON, made only if it is kept or a patch needs its length.
    let (mut whole, given) = match read {
        Some((json, given)) => (Some(json), given),
        None => (None, None),
    };
    let packed = |whole: Option<String>| {
        let json = whole.unwrap_or_else(|| attrs_to_json(attrs));
        match given {
            Some(given) => c.pack_given(Column::CsAttrs, connector, json, given),
            None => c.pack(Column::CsAttrs, connector, json),
        }
    };
    match desired {
        Some(d) if !d.is_empty() && d == attrs => Ok(SqlValue::Blob(SAME_AS_DESIRED.to_vec())),
        Some(d) => match cs_patch::of(d, attrs, || whole.get_or_insert_with(|| attrs_to_json(attrs)).len()) {
            Some(p) => Ok(SqlValue::Blob(p)),
            None => packed(whole),
        },
        None => packed(whole),
    }
}

/// Attributes an import read, with their JSON text ([`attrs_to_json`] of them), made once for
/// both comparing them with what is kept and keeping them.
pub struct AttrsRead<'a> {
    pub attrs: &'a Attrs,
    pub json: std::borrow::Cow<'a, str>,
}

impl<'a> AttrsRead<'a> {
    /// `attrs`, their JSON text made here.
    pub fn of(attrs: &'a Attrs) -> Self {
        AttrsRead { attrs, json: attrs_to_json(attrs).into() }
    }

    /// `attrs` and their JSON text, made elsewhere (where the object was read).
    pub fn with_json(attrs: &'a Attrs, json: &'a str) -> Self {
        debug_assert_eq!(json, attrs_to_json(attrs), "the JSON text of these attributes");
        AttrsRead { attrs, json: json.into() }
    }
}

/// What an export changes of an object: its anchor, DN, attributes, presence, pending export
/// and error. Only those columns are written (its desired state is not packed again).
pub(crate) fn set_exported(c: &Db, o: &CsObject) -> Result<()> {
    c.anchors.wrote(&o.connector, o.anchor.as_deref(), o.id);
    let attrs = stored_attrs(c, o)?;
    let (anchor, dn_norm) = (o.anchor.as_deref().map(Anchor), o.dn.as_deref().map(dn::norm));
    let (present, pending_export) = (o.present as i64, o.pending_export as i64);
    static EXPORTED: changed::Update =
        changed::Update::new("cs_object", &["dn", "attrs"], &["anchor", "dn_norm", "present", "pending_export", "error"]);
    changed::update(
        c,
        &EXPORTED,
        o.id,
        &[("dn", &o.dn), ("attrs", &attrs)],
        &[("anchor", &anchor), ("dn_norm", &dn_norm), ("present", &present), ("pending_export", &pending_export), ("error", &o.error)],
    )?;
    Ok(())
}

/// Inserts (id 0) or updates the object; returns its id. `read`: the JSON text of its
/// attributes, when made already (and what was packed of it).
pub(crate) fn save(c: &Db, o: &CsObject, read: Option<ReadText>) -> Result<i64> {
    let dn_norm = o.dn.as_deref().map(dn::norm);
    let desired = stored_desired(c, o)?;
    let attrs = stored_attrs_of(c, &o.connector, &o.attrs, o.desired.as_ref(), read)?;
    let export_state = o.export_state.map(ExportState::as_str);
    let (present, pending_export) = (o.present as i64, o.pending_export as i64);
    let link = o.link.map(Link::as_str);
    let anchor = o.anchor.as_deref().map(Anchor);
    if o.id == 0 {
        with(
            c,
            "INSERT INTO cs_object (connector, anchor, dn, dn_norm, object_type, attrs, present, desired, desired_dn, export_state, pending_export, mv_id, link, link_rule, error) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)",
            |st| {
                st.execute(params![
                    o.connector,
                    anchor,
                    o.dn,
                    dn_norm,
                    o.object_type,
                    attrs,
                    present,
                    desired,
                    o.desired_dn,
                    export_state,
                    pending_export,
                    o.mv_id,
                    link,
                    o.link_rule,
                    o.error
                ])
            },
        )?;
        let id = c.last_insert_rowid();
        c.anchors.wrote(&o.connector, o.anchor.as_deref(), id);
        // An id may be one a deleted object had: its pending import went with it (delete).
        if o.pending_import.is_some() {
            set_pending(c, id, o.pending_import)?;
        }
        return Ok(id);
    }
    c.anchors.wrote(&o.connector, o.anchor.as_deref(), o.id);
    static SAVED: changed::Update = changed::Update::new(
        "cs_object",
        &["dn", "object_type", "attrs", "desired", "desired_dn", "link_rule"],
        &["connector", "anchor", "dn_norm", "present", "export_state", "pending_export", "mv_id", "link", "error"],
    );
    let there = changed::update(
        c,
        &SAVED,
        o.id,
        &[
            ("dn", &o.dn),
            ("object_type", &o.object_type),
            ("attrs", &attrs),
            ("desired", &desired),
            ("desired_dn", &o.desired_dn),
            ("link_rule", &o.link_rule),
        ],
        &[
            ("connector", &o.connector),
            ("anchor", &anchor),
            ("dn_norm", &dn_norm),
            ("present", &present),
            ("export_state", &export_state),
            ("pending_export", &pending_export),
            ("mv_id", &o.mv_id),
            ("link", &link),
            ("error", &o.error),
        ],
    )?;
    // An object deleted since it was read is not made pending: its id, free, may be the next
    // object's, which would read as pending an import it never had.
    if there {
        set_pending(c, o.id, o.pending_import)?;
    }
    Ok(o.id)
}

pub(crate) fn delete(c: &Db, id: i64) -> Result<()> {
    with(c, "DELETE FROM cs_object WHERE id=?1", |st| st.execute([id]))?;
    set_pending(c, id, None)?;
    with(c, "DELETE FROM cs_dangling WHERE cs_id=?1", |st| st.execute([id]))?;
    // Its id may be given to an object made later (the largest id, deleted, is used again).
    crate::phs::forget(c, id)
}

pub(crate) fn get(c: &Db, id: i64) -> Result<Option<CsObject>> {
    with(c, sql_once!("SELECT {COLS} FROM cs_object WHERE id=?1"), |st| st.query_row([id], |r| from_row(c, r)).optional())
}

/// [`get`] of each of `ids` (at most [`IDS_PER_STATEMENT`]) that exists, in one statement.
pub(crate) fn get_many(c: &Db, ids: &[i64]) -> Result<Vec<CsObject>> {
    many(c, ids, |r| from_row(c, r))
}

/// Each of `ids` that exists (at most [`IDS_PER_STATEMENT`]), its row of [`COLS`] made into
/// what `row` makes of it, in one statement.
fn many<T>(c: &Connection, ids: &[i64], mut row: impl FnMut(&Row) -> Result<T>) -> Result<Vec<T>> {
    let (which, p) = one_of("id", ids);
    let mut st = c.prepare_cached(&format!("SELECT {COLS} FROM cs_object WHERE {which}"))?;
    let rows = st.query_map(rusqlite::params_from_iter(p), |r| row(r))?;
    rows.collect()
}

/// How many ids one statement names, where a statement serves many objects.
pub(crate) const IDS_PER_STATEMENT: usize = 256;

/// `?,?,...`: `n` parameters.
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// The condition that `column` is one of `ids`, with its parameters. When `ids` are every id
/// from the first to the last, in order (how a full sync meets a directory imported at once),
/// it is a range, which SQLite reads in one pass instead of one lookup per id; else a list.
pub(crate) fn one_of(column: &str, ids: &[i64]) -> (String, Vec<i64>) {
    let every = |first: i64| ids.iter().enumerate().all(|(i, id)| i64::try_from(i).ok().and_then(|i| first.checked_add(i)) == Some(*id));
    match ids.first() {
        Some(&first) if ids.len() > 2 && every(first) => (format!("{column} BETWEEN ?1 AND ?2"), vec![first, ids[ids.len() - 1]]),
        _ => (format!("{column} IN ({})", placeholders(ids.len())), ids.to_vec()),
    }
}

/// The connector of each of `ids` (`None`: no such object), in their order: a few statements
/// for many objects, not one each.
pub(crate) fn connectors_of(c: &Connection, ids: &[i64]) -> Result<Vec<Option<String>>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let (which, p) = one_of("id", chunk);
        let mut st = c.prepare_cached(&format!("SELECT id, connector FROM cs_object WHERE {which}"))?;
        let found: std::collections::HashMap<i64, String> =
            st.query_map(rusqlite::params_from_iter(p), |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_>>()?;
        out.extend(chunk.iter().map(|id| found.get(id).cloned()));
    }
    Ok(out)
}

pub(crate) fn by_anchor(c: &Db, connector: &str, anchor: &str) -> Result<Option<CsObject>> {
    by_anchor_as(c, connector, anchor, |r| from_row(c, r))
}

/// The id of the object with anchor `anchor`: from the anchor index alone.
pub(crate) fn id_by_anchor(c: &Db, connector: &str, anchor: &str) -> Result<Option<i64>> {
    columns_by_anchor(c, by_anchor_sql!("id"), connector, anchor, |r| r.get(0))
}

/// The row of the object with anchor `anchor`, as `read` makes it.
fn by_anchor_as<T>(c: &Db, connector: &str, anchor: &str, read: impl FnOnce(&Row) -> rusqlite::Result<T>) -> Result<Option<T>> {
    columns_by_anchor(c, by_anchor_sql!(COLS), connector, anchor, read)
}

/// The two reads of [`columns_by_anchor`] of columns `$cols` (constants only, as [`sql_once`]).
macro_rules! by_anchor_sql {
    ($cols:expr) => {
        ByAnchorSql {
            by_id: sql_once!("SELECT {} FROM cs_object WHERE id=?1", $cols),
            by_anchor: sql_once!("SELECT {} FROM cs_object WHERE connector=?1 AND anchor=?2", $cols),
        }
    };
}
use by_anchor_sql;

/// The statements reading columns of an object found by its anchor: by its id, and by its
/// connector and anchor.
struct ByAnchorSql {
    by_id: &'static str,
    by_anchor: &'static str,
}

/// Columns of the object of `connector` with anchor `anchor` (`sql`'s), as `read` makes them: by
/// its id while anchors are indexed only at the commit (anchors_later.rs).
fn columns_by_anchor<T>(
    c: &Db,
    sql: ByAnchorSql,
    connector: &str,
    anchor: &str,
    read: impl FnOnce(&Row) -> rusqlite::Result<T>,
) -> Result<Option<T>> {
    match c.anchors.find(c, connector, anchor)? {
        Some(None) => Ok(None),
        Some(Some(id)) => with(c, sql.by_id, |st| st.query_row([id], read).optional()),
        None => with(c, sql.by_anchor, |st| st.query_row(params![connector, Anchor(anchor)], read).optional()),
    }
}

/// [`by_anchor`] for an import comparing what it read with what is kept: when the object's
/// attributes are stored as `read` would be (their JSON text the same), they are not decoded;
/// the object comes back without them and with `true` (the caller holds them). With `false`
/// ("not known to be the same", not "different") it comes back whole, for the caller to compare.
pub(crate) fn by_anchor_against(c: &Db, connector: &str, anchor: &str, read: &AttrsRead) -> Result<Option<(CsObject, bool)>> {
    by_anchor_as(c, connector, anchor, |r| from_row_against(c, r, read))
}

/// [`from_row`], but attributes stored as `read` would be are left undecoded (`true`); the
/// desired state, if any, is decoded. Attributes kept as a copy of the desired state are read
/// as [`from_row`] reads them (`false`); those kept as a patch of it are the same when `read`
/// makes the same patch (what a confirming import after an export finds).
fn from_row_against(c: &Db, r: &Row, read: &AttrsRead) -> rusqlite::Result<(CsObject, bool)> {
    if matches!(r.get_ref(5)?, ValueRef::Blob(SAME_AS_DESIRED)) {
        return Ok((from_row(c, r)?, false));
    }
    let o = fields(r)?;
    let compared = || -> rusqlite::Result<(Option<Attrs>, Attrs, bool)> {
        let desired = desired_of(c, r, 7, attrs_from_json)?;
        let json = &*read.json;
        if let ValueRef::Blob(stored @ [cs_patch::MARK, patch @ ..]) = r.get_ref(5)? {
            let d = desired.as_ref().ok_or_else(|| unpatched(5))?;
            if cs_patch::of(d, read.attrs, || json.len()).as_deref() == Some(stored) {
                return Ok((desired, Attrs::new(), true));
            }
            let attrs = patched(d, patch, 5, attrs_from_json)?;
            return Ok((desired, attrs, false));
        }
        let stored = c.unpack(r.get_ref(5)?, |s| (s != json).then(|| attrs_from_json(s)))?;
        Ok(match stored {
            None => (desired, Attrs::new(), true),
            Some(a) => (desired, a.map_err(|e| json_err(5, e))?, false),
        })
    };
    let (desired, attrs, same) = compared().map_err(|e| about(&o, e))?;
    Ok((CsObject { attrs, desired, ..o }, same))
}

/// [`CsObject::display`] of the object at `key` (for a DN two objects share while a rename is
/// in flight, the one present there, else the first made), its attributes read only as far as
/// that needs: none when it has a DN, else only those it could be named by.
pub(crate) fn name_of(c: &Db, key: CsKey<'_>) -> Result<Option<String>> {
    const COLS: &str = "id, anchor, dn, desired_dn, attrs, desired";
    let named = |r: &Row| named(c, r);
    match key {
        CsKey::Id(id) => with(c, sql_once!("SELECT {COLS} FROM cs_object WHERE id=?1"), |st| st.query_row([id], named).optional()),
        CsKey::Anchor { connector, anchor } => columns_by_anchor(c, by_anchor_sql!(COLS), connector, anchor, named),
        CsKey::Dn { connector, dn } => {
            with(c, sql_once!("SELECT {COLS} FROM cs_object WHERE connector=?1 AND dn_norm=?2 ORDER BY present DESC, id LIMIT 1"), |st| {
                st.query_row(params![connector, dn::norm(dn)], named).optional()
            })
        }
    }
}

/// [`name_of`]'s row, named.
fn named(c: &Db, r: &Row) -> rusqlite::Result<String> {
    let mut o = CsObject::new("", "");
    o.id = r.get(0)?;
    o.anchor = anchor::read(r, 1)?;
    o.dn = r.get(2)?;
    o.desired_dn = r.get(3)?;
    if o.dn.is_none() && o.desired_dn.is_none() {
        (o.desired, o.attrs) = desired_and_attrs(c, r, (5, 4), |json| attrs_from_json_only(json, &NAMED_BY))?;
    }
    Ok(o.display())
}

/// Objects of a connector with this DN (normally one; a rename in flight can make two).
pub(crate) fn by_dn(c: &Db, connector: &str, dn: &str) -> Result<Vec<CsObject>> {
    with(c, sql_once!("SELECT {COLS} FROM cs_object WHERE connector=?1 AND dn_norm=?2"), |st| {
        st.query_map(params![connector, dn::norm(dn)], |r| from_row(c, r))?.collect::<rusqlite::Result<_>>()
    })
}

/// The object of `connector` linked to metaverse object `mv_id`, if any.
pub(crate) fn linked(c: &Db, connector: &str, mv_id: i64) -> Result<Option<CsObject>> {
    with(c, sql_once!("SELECT {COLS} FROM cs_object WHERE mv_id=?1 AND connector=?2"), |st| {
        st.query_row(params![mv_id, connector], |r| from_row(c, r)).optional()
    })
}

/// Every connector-space object linked to a metaverse object.
pub(crate) fn all_linked(c: &Db, mv_id: i64) -> Result<Vec<CsObject>> {
    let mut objects = with(c, sql_once!("SELECT {COLS} FROM cs_object WHERE mv_id=?1"), |st| {
        st.query_map([mv_id], |r| from_row(c, r))?.collect::<rusqlite::Result<Vec<CsObject>>>()
    })?;
    objects.sort_unstable_by_key(|o| o.id);
    Ok(objects)
}

pub(crate) fn sources_of(c: &Connection, mv_id: i64) -> Result<Vec<(String, Option<String>)>> {
    Ok(sources_of_many(c, &[mv_id])?.remove(&mv_id).unwrap_or_default())
}

/// The sources (joined, projected) of metaverse objects, by metaverse object, each as
/// `(connector, anchor)` by id.
pub type SourcesByMv = std::collections::HashMap<i64, Vec<(String, Option<String>)>>;

/// [`sources_of`] of each of `mv_ids` (at most [`IDS_PER_STATEMENT`]), in one statement; an
/// object with no source is not there.
pub(crate) fn sources_of_many(c: &Connection, mv_ids: &[i64]) -> Result<SourcesByMv> {
    let (which, p) = one_of("mv_id", mv_ids);
    let sql = format!("SELECT mv_id, connector, anchor FROM cs_object WHERE {which} AND link IN ('joined','projected') ORDER BY id");
    let mut st = c.prepare_cached(&sql)?;
    let mut out = SourcesByMv::new();
    let rows = st.query_map(rusqlite::params_from_iter(p), |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, anchor::read(r, 2)?)))?;
    for row in rows {
        let (m, connector, anchor) = row?;
        out.entry(m).or_default().push((connector, anchor));
    }
    Ok(out)
}

fn load(c: &Db, sql_where: &str, p: impl rusqlite::Params) -> Result<Vec<CsObject>> {
    let mut st = c.prepare_cached(&format!("SELECT {COLS} FROM cs_object WHERE {sql_where} ORDER BY id"))?;
    let rows = st.query_map(p, |r| from_row(c, r))?;
    rows.collect()
}

/// Ids of the objects matching `sql_where`, in id order. Sorted here: asked for in id order,
/// SQLite may read the whole table in that order instead of a partial index's few entries.
fn ids(c: &Connection, sql_where: &str, p: impl rusqlite::Params) -> Result<Vec<i64>> {
    let mut st = c.prepare_cached(&format!("SELECT id FROM cs_object WHERE {sql_where}"))?;
    let mut ids = st.query_map(p, |r| r.get(0))?.collect::<Result<Vec<i64>>>()?;
    ids.sort_unstable();
    Ok(ids)
}

/// A connector's objects, present or not, are those with an anchor and those without: read
/// from the two indexes (no one index holds all of them).
const OF_CONNECTOR: &str = "(connector=?1 AND anchor IS NOT NULL) OR (connector=?1 AND anchor IS NULL)";

pub(crate) fn of_connector(c: &Db, connector: &str) -> Result<Vec<CsObject>> {
    load(c, OF_CONNECTOR, [connector])
}

pub(crate) fn present_ids(c: &Connection, connector: &str) -> Result<Vec<i64>> {
    ids(c, "connector=?1 AND present=1", [connector])
}

pub(crate) fn unlinked_present(c: &Db, connector: &str) -> Result<Vec<CsObject>> {
    load(c, "connector=?1 AND mv_id IS NULL AND present=1", [connector])
}

pub(crate) fn pending_export_ids(c: &Connection, connector: &str) -> Result<Vec<i64>> {
    ids(c, "connector=?1 AND pending_export=1", [connector])
}

pub(crate) fn count_pending_export(c: &Connection, connector: Option<&str>) -> Result<i64> {
    match connector {
        Some(n) => c.query_row("SELECT count(*) FROM cs_object WHERE connector=?1 AND pending_export=1", [n], |r| r.get(0)),
        None => c.query_row("SELECT count(*) FROM cs_object WHERE pending_export=1", [], |r| r.get(0)),
    }
}

/// Changes waiting to be exported, by connector (connectors with none are absent).
pub(crate) fn pending_exports(c: &Connection) -> Result<std::collections::BTreeMap<String, i64>> {
    let mut st = c.prepare_cached("SELECT connector, count(*) FROM cs_object WHERE pending_export=1 GROUP BY connector")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Named: in a database migrated from schema 12, where `cs_present` was made after
/// `cs_pending_export`, SQLite took it and read every present object's row instead of the few
/// pending.
const COUNT_PENDING_DELETES: &str =
    "SELECT count(*) FROM cs_object INDEXED BY cs_pending_export WHERE connector=?1 AND pending_export=1 AND export_state='delete' AND present=1";

pub(crate) fn count_pending_deletes(c: &Connection, connector: &str) -> Result<i64> {
    c.prepare_cached(COUNT_PENDING_DELETES)?.query_row([connector], |r| r.get(0))
}

pub(crate) fn count_present(c: &Connection, connector: &str) -> Result<i64> {
    c.query_row("SELECT count(*) FROM cs_object WHERE connector=?1 AND present=1", [connector], |r| r.get(0))
}

pub(crate) fn count_present_up_to(c: &Connection, connector: &str, most: i64) -> Result<i64> {
    c.prepare_cached("SELECT count(*) FROM (SELECT 1 FROM cs_object WHERE connector=?1 AND present=1 LIMIT ?2)")?
        .query_row(params![connector, most], |r| r.get(0))
}

pub(crate) fn has_anchorless(c: &Connection, connector: &str) -> Result<bool> {
    c.query_row("SELECT EXISTS(SELECT 1 FROM cs_object WHERE connector=?1 AND anchor IS NULL)", [connector], |r| r.get(0))
}

/// One statement, not one per pending export (a first plan of a million objects without DNs
/// asked a million before it knew).
pub(crate) fn has_pending_dn(c: &Connection, connector: &str) -> Result<bool> {
    c.prepare_cached("SELECT EXISTS(SELECT 1 FROM cs_object WHERE connector=?1 AND pending_export=1 AND desired_dn IS NOT NULL)")?
        .query_row([connector], |r| r.get(0))
}

/// Whether any object of `connector` is linked to a metaverse object (read from the links'
/// index: nothing to read before any object is linked; other connectors' linked objects are
/// read through until one of this connector's is found).
pub(crate) fn has_linked(c: &Connection, connector: &str) -> Result<bool> {
    c.prepare_cached("SELECT EXISTS(SELECT 1 FROM cs_object INDEXED BY cs_mv_state WHERE mv_id IS NOT NULL AND connector=?1)")?
        .query_row([connector], |r| r.get(0))
}

pub(crate) fn has_any(c: &Connection, connector: &str) -> Result<bool> {
    c.query_row(&format!("SELECT EXISTS(SELECT 1 FROM cs_object WHERE {OF_CONNECTOR})"), [connector], |r| r.get(0))
}

pub(crate) fn ids_pending_import(c: &Connection) -> Result<Vec<i64>> {
    let mut st = c.prepare_cached("SELECT cs_id FROM cs_pending ORDER BY cs_id")?;
    let rows = st.query_map([], |r| r.get(0))?;
    rows.collect()
}

pub(crate) fn ids_inbound_in_error(c: &Connection) -> Result<Vec<i64>> {
    ids(c, "error IS NOT NULL AND export_state IS NULL AND (link IS NULL OR link IN ('joined','projected'))", [])
}

/// Every object of the `sources`, every object linked inbound, and whatever is pending import.
pub(crate) fn ids_full_sync(c: &Connection, sources: &[String]) -> Result<Vec<i64>> {
    let list = sources.iter().map(|s| format!("'{}'", s.replace('\'', "''"))).collect::<Vec<_>>().join(",");
    let mut st = c.prepare(&format!(
        "SELECT id FROM cs_object WHERE connector IN ({list}) OR link IN ('joined','projected') OR id IN (SELECT cs_id FROM cs_pending) ORDER BY id"
    ))?;
    let rows = st.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Remembers a DN an object no longer has: renamed (`Some(id)`: references to the old DN follow
/// it) or deleted (`None`: references to it are dropped quietly). Directories fix such references
/// themselves (OpenLDAP's refint, AD's link tables) without telling delta readers.
pub(crate) fn set_former_dn(c: &Connection, connector: &str, dn: &str, cs_id: Option<i64>) -> Result<()> {
    c.prepare_cached("INSERT INTO cs_former_dn(connector, dn_norm, cs_id) VALUES (?1,?2,?3) ON CONFLICT(connector, dn_norm) DO UPDATE SET cs_id=excluded.cs_id")?
        .execute(params![connector, dn::norm(dn), cs_id])?;
    Ok(())
}

/// A DN in use again is no longer a former DN.
pub(crate) fn clear_former_dn(c: &Connection, connector: &str, dn: &str) -> Result<()> {
    c.prepare_cached("DELETE FROM cs_former_dn WHERE connector=?1 AND dn_norm=?2")?.execute(params![connector, dn::norm(dn)])?;
    Ok(())
}

pub(crate) fn has_former_dns(c: &Connection, connector: &str) -> Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM cs_former_dn WHERE connector=?1 LIMIT 1")?.query_row([connector], |_| Ok(())).optional()?.is_some())
}

/// `None`: not a former DN; `Some(None)`: its object was deleted; `Some(Some(id))`: renamed to object `id`.
pub(crate) fn former_dn(c: &Connection, connector: &str, dn: &str) -> Result<Option<Option<i64>>> {
    c.prepare_cached("SELECT cs_id FROM cs_former_dn WHERE connector=?1 AND dn_norm=?2")?
        .query_row(params![connector, dn::norm(dn)], |r| r.get::<_, Option<i64>>(0))
        .optional()
}

#[cfg(test)]
mod tests {
    use super::{AttrsRead, CsKey, CsObject};
    use crate::{ReadOps, Store, WriteOps};
    use idflow_core::{Attrs, Value};

    /// The pending import is kept beside the object (`cs_pending`): it goes with the object, and
    /// an object saved after it was deleted leaves none behind for the next one to take its id.
    #[test]
    fn a_pending_import_goes_with_its_object_and_a_new_object_given_its_id_has_none() {
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let mut o = CsObject::new("corp", "person");
        o.anchor = Some("a1".into());
        o.pending_import = Some(crate::PendingImport::Add);
        o.id = tx.cs_save(&o).expect("save");
        assert_eq!(tx.cs_ids_pending_import().expect("ids"), vec![o.id]);
        o.pending_import = Some(crate::PendingImport::Update);
        tx.cs_save(&o).expect("save");
        assert_eq!(tx.cs_get(o.id).expect("read").expect("there").pending_import, Some(crate::PendingImport::Update));
        tx.cs_set_synced(o.id, None).expect("synced");
        assert_eq!(tx.cs_get(o.id).expect("read").expect("there").pending_import, None);
        assert!(tx.cs_ids_pending_import().expect("ids").is_empty());
        // Deleted, then saved by someone who read it before (with an import pending).
        o.pending_import = Some(crate::PendingImport::Update);
        tx.cs_save(&o).expect("save");
        tx.cs_delete(o.id).expect("delete");
        tx.cs_save(&o).expect("a save of a deleted object writes nothing");
        assert!(tx.cs_ids_pending_import().expect("ids").is_empty());
        // The largest id, freed, is the next object's: nothing pending for it.
        let fresh = tx.cs_save(&CsObject::new("cloud", "User")).expect("save");
        assert_eq!(fresh, o.id, "the id is used again");
        assert_eq!(tx.cs_get(fresh).expect("read").expect("there").pending_import, None);
        assert!(tx.cs_ids_pending_import().expect("ids").is_empty());
    }

    fn attrs(pairs: &[(&str, &str)]) -> Attrs {
        pairs.iter().map(|(k, v)| (k.to_string(), vec![Value::from(*v)])).collect()
    }

    /// Ids that run from the first to the last are read as a range: the same objects as a list
    /// of them would read, as are ids that do not (a gap, out of order, one twice, one alone).
    #[test]
    fn ids_read_as_a_range_or_a_list_read_the_same_objects() {
        assert_eq!(super::one_of("id", &[4, 5, 6]), ("id BETWEEN ?1 AND ?2".to_string(), vec![4, 6]));
        assert_eq!(super::one_of("id", &[4, 6, 5]).0, "id IN (?,?,?)");
        assert_eq!(super::one_of("id", &[i64::MAX - 1, i64::MAX, 0]).0, "id IN (?,?,?)", "no overflow");
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let mut made = Vec::new();
        for i in 0..9 {
            let mut o = CsObject::new(if i % 4 == 3 { "other" } else { "corp" }, "person");
            o.anchor = Some(format!("a{i}"));
            o.mv_id = Some(100 + i);
            made.push(tx.cs_save(&o).expect("save"));
        }
        let first = made[0];
        for ids in [
            vec![first, first + 1, first + 2, first + 3],
            vec![first + 1, first + 3, first + 2],
            vec![first + 2, first + 2 + 40],
            vec![first],
        ] {
            let mut want: Vec<i64> = made.iter().copied().filter(|id| ids.contains(id)).collect();
            want.sort();
            let got: Vec<i64> = tx.cs_get_many(&ids).expect("read").iter().map(|o| o.id).collect();
            assert_eq!(got, want, "{ids:?}");
            let mvs: Vec<i64> = ids.iter().map(|id| id - first + 100).collect();
            let mut states: Vec<i64> = tx.cs_states_of_mvs(&mvs).expect("states").into_keys().collect();
            states.sort();
            assert_eq!(
                states,
                mvs.iter().copied().filter(|m| *m < 109).collect::<std::collections::BTreeSet<_>>().into_iter().collect::<Vec<_>>(),
                "{mvs:?}"
            );
        }
    }

    /// The same for the other reads by many ids: connectors, sources, metaverse objects, and
    /// the dirty flags cleared.
    #[test]
    fn every_read_by_many_ids_reads_the_same_as_a_range_or_a_list() {
        use crate::{Link, MvAttr};
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let attrs = std::collections::BTreeMap::from([(
            "cn".to_string(),
            MvAttr { values: vec![Value::from("x")], rule: "r".into(), cs: 1, precedence: 1 },
        )]);
        let mvs: Vec<i64> = (0..6).map(|_| tx.mv_project("person", &attrs, &[]).expect("projected")).collect();
        let mut made = Vec::new();
        for (i, m) in mvs.iter().enumerate() {
            let mut o = CsObject::new(if i % 3 == 2 { "other" } else { "corp" }, "person");
            o.anchor = Some(format!("a{i}"));
            o.mv_id = Some(*m);
            o.link = Some(if i == 4 { Link::Provisioned } else { Link::Projected });
            made.push(tx.cs_save(&o).expect("save"));
            tx.mv_mark_dirty(*m).expect("dirty");
        }
        let (first, m0) = (made[0], mvs[0]);
        for at in [vec![0, 1, 2, 3], vec![3, 1, 2], vec![0, 4], vec![1, 2, 3, 4, 5]] {
            let ids: Vec<i64> = at.iter().map(|i| first + i).collect();
            let connectors: Vec<Option<String>> = tx.cs_connectors_of(&ids).expect("connectors");
            let want: Vec<Option<String>> = at.iter().map(|i| Some(if i % 3 == 2 { "other" } else { "corp" }.to_string())).collect();
            assert_eq!(connectors, want, "{at:?}");
            let of: Vec<i64> = at.iter().map(|i| m0 + i).collect();
            let mut sourced: Vec<i64> = tx.cs_sources_of_many(&of).expect("sources").into_keys().collect();
            sourced.sort();
            let mut want: Vec<i64> = of.iter().copied().filter(|m| *m != m0 + 4).collect();
            want.sort();
            assert_eq!(sourced, want, "{at:?}: sources, not the provisioned one");
            let mut read: Vec<i64> = tx.mv_get_many(&of).expect("read").iter().map(|m| m.id).collect();
            read.sort();
            let mut want = of.clone();
            want.sort();
            assert_eq!(read, want, "{at:?}");
        }
        tx.mv_clear_dirty(&[m0 + 1, m0 + 2, m0 + 3]).expect("cleared");
        assert_eq!(tx.mv_dirty_ids().expect("dirty"), vec![m0, m0 + 4, m0 + 5]);
    }

    #[test]
    fn the_links_of_pending_exports_are_each_pending_objects_links_in_id_order() {
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        for i in 0..7 {
            let mut o = CsObject::new(if i == 3 { "other" } else { "cloud" }, "user");
            o.anchor = Some(format!("a{i}"));
            o.dn = (i % 2 == 0).then(|| format!("uid={i},dc=x"));
            o.pending_export = i != 5;
            tx.cs_save(&o).expect("save");
        }
        let mut read = Vec::new();
        tx.cs_pending_export_links("cloud", &mut |l| read.push(l)).expect("links");
        let ids = tx.cs_pending_export_ids("cloud").expect("ids");
        assert_eq!(ids.len(), 5);
        let one_by_one: Vec<_> = ids.iter().map(|id| tx.cs_links(*id).expect("links").expect("exists")).collect();
        assert_eq!(read, one_by_one);
    }

    #[test]
    fn a_pending_dn_is_one_a_pending_export_of_the_connector_gives() {
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let save = |connector: &str, desired_dn: Option<&str>, pending: bool| {
            let mut o = CsObject::new(connector, "user");
            o.desired_dn = desired_dn.map(str::to_string);
            o.pending_export = pending;
            tx.cs_save(&o).expect("save")
        };
        save("cloud", None, true);
        save("cloud", Some("uid=a,dc=x"), false);
        save("other", Some("uid=b,dc=x"), true);
        assert!(!tx.cs_has_pending_dn("cloud").expect("asked"), "no pending export of cloud gives a DN");
        assert!(tx.cs_has_pending_dn("other").expect("asked"));
        save("cloud", Some("uid=c,dc=x"), true);
        assert!(tx.cs_has_pending_dn("cloud").expect("asked"));
    }

    #[test]
    fn an_object_is_named_as_display_names_it_whatever_it_is_looked_up_by() {
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let mut objects = Vec::new();
        // DN, desired DN, desired attributes, attributes.
        type Shape<'a> = (Option<&'a str>, Option<&'a str>, Option<Attrs>, Attrs);
        let shapes: [Shape; 6] = [
            (Some("uid=a,dc=x"), None, None, attrs(&[("cn", "A")])),
            (None, Some("uid=b,dc=x"), Some(attrs(&[("cn", "B")])), Attrs::new()),
            (None, None, Some(attrs(&[("displayName", "C"), ("mail", "c@x")])), attrs(&[("userName", "c")])),
            (None, None, Some(attrs(&[("mail", "d@x"), ("title", "T")])), attrs(&[("mail", "d@x"), ("title", "T")])),
            (None, None, None, attrs(&[("title", "only a title"), ("manager", "e")])),
            (None, None, Some(Attrs::new()), Attrs::new()),
        ];
        for (i, (dn, desired_dn, desired, a)) in shapes.into_iter().enumerate() {
            let mut o = CsObject::new("cloud", "user");
            o.anchor = (i != 5).then(|| format!("00000000-0000-4000-8000-00000000000{i}"));
            o.dn = dn.map(str::to_string);
            o.desired_dn = desired_dn.map(str::to_string);
            o.desired = desired;
            o.attrs = a;
            o.id = tx.cs_save(&o).expect("saved");
            objects.push(o);
        }
        for o in &objects {
            let shown = Some(o.display());
            assert_eq!(tx.cs_name_of(CsKey::Id(o.id)).expect("by id"), shown);
            if let Some(anchor) = &o.anchor {
                assert_eq!(tx.cs_name_of(CsKey::Anchor { connector: "cloud", anchor }).expect("by anchor"), shown);
            }
            if let Some(dn) = &o.dn {
                assert_eq!(tx.cs_name_of(CsKey::Dn { connector: "cloud", dn: &dn.to_uppercase() }).expect("by dn"), shown);
            }
        }
        // Two objects at one DN (one renamed away, not carried out yet): the one present there.
        let mut away = CsObject::new("cloud", "user");
        (away.dn, away.desired_dn) = (Some("uid=f,dc=x".into()), Some("uid=f2,dc=x".into()));
        tx.cs_save(&away).expect("saved");
        let mut there = CsObject::new("cloud", "user");
        (there.dn, there.present) = (Some("uid=f,dc=x".into()), true);
        tx.cs_save(&there).expect("saved");
        assert_eq!(tx.cs_name_of(CsKey::Dn { connector: "cloud", dn: "uid=f,dc=x" }).expect("by dn"), Some("uid=f,dc=x".into()));
        let names: Vec<String> = objects.iter().map(CsObject::display).collect();
        assert_eq!(names[2..], ["c", "d@x", "anchor 00000000-0000-4000-8000-000000000004", &format!("#{}", objects[5].id)]);
        assert_eq!(tx.cs_name_of(CsKey::Id(999)).expect("none"), None);
        assert_eq!(tx.cs_name_of(CsKey::Anchor { connector: "corp", anchor: "00000000-0000-4000-8000-000000000000" }).expect("none"), None);
    }

    /// A deleted object's id may be given again (the largest one is): what password hash sync
    /// delivered to it goes with it, so the next object with that id does not inherit it.
    #[test]
    fn a_deleted_object_takes_what_was_delivered_to_it_along() {
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let id = tx.cs_save(&CsObject::new("cloud", "user")).expect("saved");
        tx.phs_delivered(id, "fingerprint").expect("delivered");
        tx.cs_delete(id).expect("deleted");
        let again = tx.cs_save(&CsObject::new("cloud", "user")).expect("saved");
        assert_eq!(again, id, "SQLite gives the largest id again");
        let held: i64 = crate::ops::on(&tx, |c| c.query_row("SELECT count(*) FROM phs_state", [], |r| r.get(0))).expect("count");
        assert_eq!(held, 0);
    }

    #[test]
    fn anchors_of_a_connector_are_its_objects_anchors_from_the_indexes_alone() {
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let mut want = std::collections::BTreeMap::new();
        for (i, connector) in ["cloud", "corp", "cloud", "cloud"].into_iter().enumerate() {
            let mut o = CsObject::new(connector, "user");
            // A UUID (kept as 16 bytes), another anchor, none (a create not confirmed yet).
            o.anchor = [Some(format!("00000000-0000-4000-8000-00000000000{i}")), Some(format!("a{i}")), None][i % 3].clone();
            let id = tx.cs_save(&o).expect("saved");
            if connector == "cloud" {
                want.insert(id, o.anchor.clone());
            }
        }
        let mut got = std::collections::BTreeMap::new();
        tx.cs_anchors_of("cloud", &mut |id, anchor| {
            assert!(got.insert(id, anchor).is_none(), "object {id} once");
        })
        .expect("read");
        assert_eq!(got, want);
        let mut links = std::collections::BTreeMap::new();
        tx.cs_links_of("cloud", &mut |l| {
            links.insert(l.id, l.anchor);
        })
        .expect("read");
        assert_eq!(got, links, "as the objects' links say");
        let plans = [
            ("SELECT id, anchor FROM cs_object WHERE connector=?1 AND anchor IS NOT NULL", "COVERING INDEX cs_anchor "),
            ("SELECT id FROM cs_object WHERE connector=?1 AND anchor IS NULL", "INDEX cs_anchorless "),
        ];
        for (sql, index) in plans {
            let plan: String =
                crate::ops::on(&tx, |c| c.query_row(&format!("EXPLAIN QUERY PLAN {sql}"), ["cloud"], |r| r.get(3))).expect("plan");
            assert!(plan.contains(index), "{sql}: {plan}");
        }
    }

    /// A connector's objects with and without a DN, anchor or presence are each listed and
    /// counted where they should be, and the statements that do it read the indexes, not every
    /// row (as in a database migrated from schema 12 too, where `cs_present` is the newest
    /// index).
    #[test]
    fn a_connectors_objects_and_those_present_are_read_from_the_indexes() {
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let mut present = Vec::new();
        for i in 0..8 {
            let mut o = CsObject::new(["cloud", "corp"][i % 2], "user");
            o.anchor = (i % 3 != 0).then(|| format!("a{i}"));
            o.dn = (i % 4 < 2).then(|| format!("uid=u{i},dc=x"));
            o.present = i % 5 != 0;
            // Pending deletes: one present (counted), one not there any more.
            o.export_state = (i == 1 || i == 5).then_some(super::ExportState::Delete);
            o.pending_export = o.export_state.is_some();
            let id = tx.cs_save(&o).expect("saved");
            if o.present && o.connector == "corp" {
                present.push(id);
            }
        }
        assert_eq!(tx.cs_present_ids("corp").expect("ids"), present);
        assert_eq!(tx.cs_count_present("corp").expect("count"), 3);
        assert_eq!(tx.cs_count_present_up_to("corp", 2).expect("count"), 2);
        assert_eq!(tx.cs_count_pending_deletes("corp").expect("count"), 1, "object 1; object 5 is gone");
        assert_eq!(tx.cs_of_connector("corp").expect("all").len(), 4, "present or not, with an anchor or not");
        let mut links = 0;
        tx.cs_links_of("corp", &mut |_| links += 1).expect("links");
        assert_eq!(links, 4);
        assert!(tx.cs_has_any("corp").expect("any") && !tx.cs_has_any("hr").expect("any"));
        crate::ops::on(&tx, |c| {
            c.execute_batch("DROP INDEX cs_present; CREATE INDEX cs_present ON cs_object(connector) WHERE present = 1")
        })
        .expect("made last");
        let of_connector = super::OF_CONNECTOR;
        let plans = [
            ("SELECT id FROM cs_object WHERE connector=?1 AND present=1".to_string(), "COVERING INDEX cs_present "),
            ("SELECT count(*) FROM cs_object WHERE connector=?1 AND present=1".to_string(), "COVERING INDEX cs_present "),
            (format!("SELECT {} FROM cs_object WHERE {of_connector} ORDER BY id", super::COLS), "MULTI-INDEX OR"),
            (format!("SELECT {} FROM cs_object WHERE {of_connector}", super::LINK_COLS), "MULTI-INDEX OR"),
            (format!("SELECT EXISTS(SELECT 1 FROM cs_object WHERE {of_connector})"), "MULTI-INDEX OR"),
            (super::COUNT_PENDING_DELETES.to_string(), "INDEX cs_pending_export "),
            (format!("SELECT {} FROM cs_object WHERE connector=?1 AND dn_norm=?2", super::STATE_COLS), "INDEX cs_by_dn "),
            (
                format!("SELECT {} FROM cs_object WHERE connector=?1 AND dn_norm=?2 ORDER BY present DESC, id LIMIT 1", super::COLS),
                "INDEX cs_by_dn ",
            ),
        ];
        for (sql, index) in plans {
            let p = rusqlite::params_from_iter(["corp", "uid=u1,dc=x"].into_iter().take(sql.matches("?2").count() + 1));
            let plan: Vec<String> =
                crate::ops::on(&tx, |c| c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?.query_map(p, |r| r.get(3))?.collect())
                    .expect("plan");
            assert!(plan.iter().any(|p| p.contains(index)) && !plan.iter().any(|p| p.starts_with("SCAN cs_object")), "{sql}: {plan:?}");
        }
    }

    #[test]
    fn sources_read_many_at_once_are_each_objects_sources() {
        use crate::Link;
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        let m: Vec<i64> = (0..3).map(|_| tx.mv_create("person", &Default::default()).expect("made")).collect();
        // Object 0: two sources and a target; object 1: a target only; object 2: one source.
        let links = [("hr", m[0], Link::Projected), ("corp", m[0], Link::Joined), ("cloud", m[0], Link::Provisioned)];
        let links = links.into_iter().chain([("cloud", m[1], Link::Provisioned), ("hr", m[2], Link::Projected)]);
        for (i, (connector, mv, link)) in links.enumerate() {
            let mut o = CsObject::new(connector, "user");
            o.anchor = (i != 4).then(|| format!("a{i}"));
            (o.mv_id, o.link) = (Some(mv), Some(link));
            tx.cs_save(&o).expect("saved");
        }
        let many = tx.cs_sources_of_many(&m).expect("read");
        for id in &m {
            let one = tx.cs_sources_of(*id).expect("read");
            assert_eq!(many.get(id).cloned().unwrap_or_default(), one, "metaverse object {id}");
        }
        assert_eq!(many.get(&m[0]).map(Vec::len), Some(2));
        let both = vec![("hr".to_string(), Some("a0".to_string())), ("corp".to_string(), Some("a1".to_string()))];
        assert_eq!(many.get(&m[0]), Some(&both), "by id, the target left out");
        assert!(!many.contains_key(&m[1]), "no source: not there");
        assert_eq!(many.get(&m[2]), Some(&vec![("hr".to_string(), None)]));
    }

    #[test]
    fn an_object_read_again_as_it_is_kept_is_found_without_decoding_and_otherwise_whole() {
        let store = Store::in_memory().expect("store");
        let tx = store.write().expect("write");
        // Enough objects for a dictionary: the last ones are kept compressed, a short one as text.
        let n = 2100;
        let person =
            |i: usize| attrs(&[("cn", &format!("Person number {i}")), ("mail", &format!("p{i}@example.org")), ("title", "Engineer")]);
        let ids: Vec<i64> = (0..n)
            .map(|i| {
                let mut o = CsObject::new("corp", "person");
                (o.anchor, o.attrs) = (Some(format!("a{i}")), person(i));
                tx.cs_save(&o).expect("saved")
            })
            .collect();
        let mut short = CsObject::new("corp", "person");
        (short.anchor, short.attrs) = (Some("short".into()), attrs(&[("cn", "S")]));
        let short_id = tx.cs_save(&short).expect("saved");
        let last = format!("a{}", n - 1);
        let kept_as = |id: i64| -> String {
            crate::ops::on(&tx, |c| c.query_row("SELECT typeof(attrs) FROM cs_object WHERE id = ?1", [id], |r| r.get(0))).expect("kept as")
        };
        let forms = [kept_as(ids[0]), kept_as(ids[n - 1]), kept_as(short_id)];
        assert_eq!(forms, ["text", "blob", "text"], "kept as text until the dictionary, compressed after it, a short one as text");
        for (anchor, read) in [("a0", person(0)), (last.as_str(), person(n - 1)), ("short", short.attrs.clone())] {
            let (o, same) = tx.cs_by_anchor_against("corp", anchor, &AttrsRead::of(&read)).expect("read").expect("found");
            assert!(same && o.attrs.is_empty(), "{anchor}: kept as read, not decoded");
            assert_eq!((o.anchor.as_deref(), o.object_type.as_str()), (Some(anchor), "person"));
            let mut other = read.clone();
            other.insert("title".into(), vec![Value::from("Other")]);
            let (o, same) = tx.cs_by_anchor_against("corp", anchor, &AttrsRead::of(&other)).expect("read").expect("found");
            assert!(!same, "{anchor}: changed");
            assert_eq!(o.attrs, read, "{anchor}: what is kept, whole");
        }
        // A target's object: attributes kept as a copy of its desired state are read whole;
        // attributes kept on their own are compared as a source's are, its desired state read.
        let mut t = CsObject::new("cloud", "user");
        (t.anchor, t.desired, t.attrs) = (Some("t".into()), Some(attrs(&[("userName", "t")])), attrs(&[("userName", "t")]));
        tx.cs_save(&t).expect("saved");
        let (o, same) = tx.cs_by_anchor_against("cloud", "t", &AttrsRead::of(&t.attrs)).expect("read").expect("found");
        assert!(!same);
        assert_eq!((o.attrs, o.desired), (t.attrs, t.desired));
        let mut u = CsObject::new("cloud", "user");
        (u.anchor, u.desired, u.attrs) = (Some("u".into()), Some(attrs(&[("manager", "Ref 7")])), attrs(&[("manager", "id-of-7")]));
        tx.cs_save(&u).expect("saved");
        let (o, same) = tx.cs_by_anchor_against("cloud", "u", &AttrsRead::of(&u.attrs)).expect("read").expect("found");
        assert!(same && o.attrs.is_empty());
        assert_eq!(o.desired, u.desired);
        let (o, same) =
            tx.cs_by_anchor_against("cloud", "u", &AttrsRead::of(&attrs(&[("manager", "other")]))).expect("read").expect("found");
        assert!(!same);
        assert_eq!((o.attrs, o.desired), (u.attrs, u.desired));
        assert!(tx.cs_by_anchor_against("corp", "nobody", &AttrsRead::of(&Attrs::new())).expect("read").is_none());
    }
}
