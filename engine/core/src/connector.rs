//! Connectors: one configured directory each. The [`Connector`] trait is what the engine needs
//! of any directory: a full import, a delta import from an opaque watermark, and the export of a
//! batch of operations with a result for each.
use crate::error::Result;
use crate::value::{Attrs, Value};

/// An object as a connector reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedObject {
    pub anchor: Option<String>,
    pub dn: Option<String>,
    pub object_type: String,
    pub attrs: Attrs,
}

/// Identifies an object in a delta: by anchor where the directory gives one, else by DN.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectKey {
    pub anchor: Option<String>,
    pub dn: Option<String>,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.dn, &self.anchor) {
            (Some(d), _) => write!(f, "{d}"),
            (None, Some(a)) => write!(f, "anchor {a}"),
            (None, None) => write!(f, "(unnamed object)"),
        }
    }
}

/// What a delta import reports.
#[derive(Debug, Clone, PartialEq)]
pub enum DeltaChange {
    /// The whole object as it is now (added or changed).
    Upsert(ImportedObject),
    /// Some attributes changed; the engine applies them to what it last saw.
    Modify {
        key: ObjectKey,
        changes: Vec<AttrChange>,
    },
    /// The attributes given (with all their values) changed, the others did not: an update of
    /// a known object, or a new object (AD's DirSync reports both this way). An empty
    /// `object_type` keeps the known type.
    Merge(ImportedObject),
    /// The object was renamed or moved: same object, new DN.
    Rename {
        key: ObjectKey,
        new_dn: String,
        changes: Vec<AttrChange>,
    },
    Delete(ObjectKey),
}

/// Receives what an import reads. Errors on single objects go to `error`, the run goes on.
pub trait ImportSink {
    fn object(&mut self, obj: ImportedObject) -> Result<()>;
    fn change(&mut self, change: DeltaChange) -> Result<()>;
    /// An object that could not be read whole; `key` keeps it from looking deleted.
    fn error(&mut self, key: ObjectKey, message: String);
    /// Whether the connector space holds the one object `key` names, present (not deleted),
    /// the one a change to it would change (a delta that names it is about an object idflow
    /// imported). `false` where the sink cannot tell: the connector then finds out from the
    /// directory itself.
    fn holds(&mut self, _key: &ObjectKey) -> Result<bool> {
        Ok(false)
    }
    /// What this sink does to each object before storing it that does not depend on what it
    /// stored: a connector that reads on a thread of its own does it there, ahead of storing,
    /// and hands the result to [`ImportSink::prepared`]. `None`: nothing to do ahead.
    fn preparer(&mut self) -> Option<Box<dyn Prepare>> {
        None
    }
    /// An object read, as the sink's [`Prepare`] made it (by default stored as [`ImportSink::object`]
    /// stores it, its attributes read back from their text if they were left out).
    fn prepared(&mut self, mut p: PreparedObject) -> Result<()> {
        if !p.with_attrs {
            p.obj.attrs = crate::attrs_from_json(&p.attrs_json)
                .map_err(|e| crate::Error::Config(format!("an object's attributes prepared for storing do not read back: {e}")))?;
        }
        self.object(p.obj)
    }
}

/// The part of storing an object that can be done on the thread that reads it.
pub trait Prepare: Send {
    fn prepare(&mut self, obj: ImportedObject) -> PreparedObject;
    /// Whether the thread that stores lags behind the one that reads (half or more of what the
    /// reader may hand over ahead waits to be stored), told at each hand-over: work that may be
    /// done on either side is done here, on the objects prepared next, while it does.
    fn storing_behind(&mut self, _behind: bool) {}
}

/// An object as its sink's [`Prepare`] made it: its attributes named as they are kept (secrets
/// dropped), and their JSON text ([`crate::attrs_to_json`] of them).
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedObject {
    pub obj: ImportedObject,
    pub attrs_json: String,
    /// `false`: `obj.attrs` were left out where it was read (freed by the thread that made
    /// them); the sink needs only their text.
    pub with_attrs: bool,
    /// What the sink's store keeps of `attrs_json`, when its [`Prepare`] made that too
    /// (compressed, on the reading thread); opaque here.
    pub packed: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Set the attribute to exactly these values (none: clear it).
    Replace,
    Add,
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttrChange {
    pub attr: String,
    pub kind: ChangeKind,
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Update,
    Delete,
}

/// One export operation. Values are in the target's own form: references are already translated.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOp {
    pub cs_id: i64,
    pub kind: OpKind,
    pub object_type: String,
    pub anchor: Option<String>,
    pub dn: Option<String>,
    /// A rename or move (LDAP modrdn) to this DN.
    pub new_dn: Option<String>,
    /// Add: the whole object.
    pub attrs: Attrs,
    /// Update: what changes.
    pub changes: Vec<AttrChange>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OpResult {
    Done { anchor: Option<String>, dn: Option<String> },
    Failed(String),
}

/// How a target names the objects its references point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefForm {
    Dn,
    Anchor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub delta_import: bool,
    /// A delta from the same watermark reads the objects it names again, as they are now
    /// (LDAP's syncrepl and DirSync): a delta that met errors keeps its watermark, so that the
    /// next run reads those objects again, until they read cleanly. `false`: a delta's changes
    /// are applied once (an LDIF change file; the engine carries its errors to later runs).
    pub delta_reads_again: bool,
    pub export: bool,
    /// idflow chooses the anchor of an object it creates (so a crash between export and commit
    /// is recognized on the next import, never duplicated).
    pub local_anchor: bool,
    pub reference_form: RefForm,
    /// Most operations in one `export` call.
    pub max_batch: usize,
    /// The attribute that says which source owns a target object (SCIM's `externalId`), when
    /// the kind has one: an outbound soft match never adopts an object it names another owner in.
    pub owner_attribute: Option<&'static str>,
    /// Attributes that hold references in every directory of the kind (SCIM's `members` and
    /// the enterprise `manager`), besides those a connector's `reference_attributes` names.
    pub reference_attributes: &'static [&'static str],
    /// Attributes every directory of the kind keeps unique (SCIM's `userName`), besides those a
    /// connector's `unique_attributes` names.
    pub unique_attributes: &'static [&'static str],
}

pub trait Connector {
    fn name(&self) -> &str;
    fn capabilities(&self) -> Capabilities;
    /// Reads every object. Returns the watermark a following delta import starts from.
    fn full_import(&mut self, sink: &mut dyn ImportSink) -> Result<Option<String>>;
    /// After a full import that read every object it could: the objects `keys` name, held and
    /// not read, looked up again; each found is given to `sink` as read. A connector whose read
    /// is not one snapshot of its directory can miss an object that moved while it read: one
    /// that reads its directory in parts, one after another (LDAP's `include_ous`), misses an
    /// object moved from a part not read yet into one read already, and AD's paged search
    /// shows changes made while it pages. Such an object is not gone. By default nothing (one
    /// read sees every object).
    fn read_again(&mut self, _keys: &[ObjectKey], _sink: &mut dyn ImportSink) -> Result<()> {
        Ok(())
    }
    /// Whether the objects a full import did not read are asked for again
    /// ([`Connector::read_again`]) before they are taken for gone.
    fn looks_up_unseen(&self) -> bool {
        false
    }
    /// Reads what changed since `watermark`. `Ok(None)` asks for a full import instead
    /// (the watermark is unknown, expired or the connector has no deltas).
    fn delta_import(&mut self, watermark: &str, sink: &mut dyn ImportSink) -> Result<Option<String>>;
    fn export(&mut self, ops: &[ExportOp]) -> Result<Vec<OpResult>>;
    /// [`Connector::export`] for a caller that records what it answers only after
    /// [`Connector::flush`]: the connector may answer what the directory will hold and keep
    /// the operations in memory, written with later ones (a target written whole, such as a
    /// file, is written once for several batches instead of once per batch). What it holds is
    /// [`Connector::unwritten`]. By default the same as `export` (nothing held).
    ///
    /// Only for a connector that does no network I/O (the caller's database stays locked
    /// while batches are held), whose answers stay true once written (identifiers idflow
    /// assigned, never ones the directory will), and which, when it writes on its own, writes
    /// everything it holds. `export` is `export_held` then `flush`.
    fn export_held(&mut self, ops: &[ExportOp]) -> Result<Vec<OpResult>> {
        self.export(ops)
    }
    /// Operations [`Connector::export_held`] answered that it holds and has not begun to
    /// write. A write it began on its own (of everything it held) may still be under way:
    /// [`Connector::flush`] waits for it.
    fn unwritten(&self) -> usize {
        0
    }
    /// Writes what [`Connector::export_held`] holds, and waits for a write it began on its
    /// own to end; once it returns, its answers hold.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    /// Forgets what [`Connector::export_held`] holds unwritten (its answers were not recorded):
    /// the next export reads the directory as it is. A write it began on its own is waited for,
    /// not undone: what it wrote is found there, as after a run killed between writing and
    /// recording.
    fn discard(&mut self) {}
    /// The attributes rules read or write in this connector, so a directory is asked for those
    /// only (plus what the connector itself needs). Empty: everything.
    fn want_attributes(&mut self, _attrs: Vec<String>) {}
    /// Requests made to the directory so far (reads and writes), for connectors that count
    /// them: export statistics report the difference an export made.
    fn requests(&self) -> Option<usize> {
        None
    }
}

/// Applies changes to attributes (names compared case-insensitively, as directories do).
pub fn apply_changes(attrs: &mut Attrs, changes: &[AttrChange]) {
    for c in changes {
        let key = attrs.keys().find(|k| k.eq_ignore_ascii_case(&c.attr)).cloned().unwrap_or_else(|| c.attr.clone());
        let cur = attrs.entry(key.clone()).or_default();
        match c.kind {
            ChangeKind::Replace => *cur = c.values.clone(),
            ChangeKind::Add => {
                for v in &c.values {
                    if !cur.contains(v) {
                        cur.push(v.clone());
                    }
                }
            }
            ChangeKind::Delete => cur.retain(|v| {
                !c.values.iter().any(|x| match (x, v) {
                    (Value::Str(a), Value::Str(b)) => a.eq_ignore_ascii_case(b),
                    _ => x == v,
                })
            }),
        }
        if cur.is_empty() {
            attrs.remove(&key);
        }
    }
}
