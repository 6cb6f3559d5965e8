//! The `ldif` connector: a directory exported as RFC 2849 LDIF (a source).
//! Full import reads `path`; delta import applies the change records of `delta_path` once.
use super::config::Settings;
use super::parse::{Change, LdifError, ModKind, Reader, Record};
use super::source::Source;
use super::CAPABILITIES;
use crate::anchor::anchor_text;
use crate::object_types::ObjectTypes;
use idflow_core::connector::{
    AttrChange, Capabilities, ChangeKind, Connector, DeltaChange, ExportOp, ImportSink, ImportedObject, ObjectKey, OpResult,
};
use idflow_core::{Attrs, ConnectorConfig, Error, Result, Value};
use std::collections::HashSet;
use std::path::PathBuf;

/// Attributes whose syntax is binary in the directories idflow reads (Active Directory's GUIDs
/// and SIDs, photos, certificates): their values stay bytes, whatever else is in the file.
const KNOWN_BINARY: [&str; 9] = [
    "objectGUID",
    "objectSid",
    "ms-DS-ConsistencyGuid",
    "msExchMailboxGuid",
    "sIDHistory",
    "jpegPhoto",
    "thumbnailPhoto",
    "userCertificate",
    "userSMIMECertificate",
];

#[derive(Clone)]
pub(crate) struct LdifConnector {
    name: String,
    path: PathBuf,
    delta_path: Option<PathBuf>,
    anchor: String,
    types: ObjectTypes,
    binary: Vec<String>,
}

impl LdifConnector {
    /// Checks the settings; nothing is read until an import.
    pub(crate) fn new(cfg: &ConnectorConfig) -> Result<Self> {
        let s: Settings = cfg.settings()?;
        let types = ObjectTypes::parse(&cfg.name, &s.object_types)?;
        if types.is_empty() {
            return Err(Error::Config(format!(
                "connector {:?}: [connector.object_types] names no object type (e.g. person = \"(objectClass=inetOrgPerson)\")",
                cfg.name
            )));
        }
        // Binary means a binary attribute: configured, or of a syntax known to be binary. An
        // anchor is text unless it is one of those (objectGUID is; entryUUID and mail are not).
        let mut binary = s.binary_attributes;
        binary.extend(KNOWN_BINARY.iter().map(|b| b.to_string()));
        Ok(LdifConnector {
            name: cfg.name.clone(),
            path: cfg.resolve(&s.path),
            delta_path: s.delta_path.as_deref().map(|p| cfg.resolve(p)),
            anchor: s.anchor,
            types,
            binary,
        })
    }

    /// A full import's reading: the file, then a delta file already there, into `sink`.
    fn read_full(&self, sink: &mut dyn ImportSink) -> Result<Option<String>> {
        // Stamped before it is read: a change while it is read changes the stamp.
        let stamp = super::stamp::of(&self.path);
        // Read as it is parsed, never whole: a file of a million entries is half a gigabyte.
        let mut source = self.open(&self.path)?;
        // A file cut off mid-copy ends without a line break: its last record may be partial.
        // Known once the lines ran out, which they have when there is no next record.
        let ended = source.ended_with_line_break();
        let cut_off = || !ended.get();
        let mut records = Reader::over(Box::new(&mut source), &self.binary).peekable();
        // The DNs of typed objects are needed only for a delta file applied on top.
        let delta = self.delta_path.clone().filter(|p| p.exists());
        let mut typed = HashSet::new();
        while let Some(rec) = records.next() {
            let last = records.peek().is_none();
            let rec = match rec {
                Ok(r) => r,
                Err(e) if last && cut_off() => {
                    let m = format!(
                        "{}:{}: the file ends inside a record that does not parse ({}): it may be cut off",
                        self.path.display(),
                        e.line,
                        e.message
                    );
                    sink.error(ObjectKey { anchor: None, dn: None }, m);
                    break;
                }
                Err(e) => return Err(self.err(&self.path, e)),
            };
            if last && cut_off() {
                let (dn, line) = match &rec {
                    Record::Entry { dn, line, .. } | Record::Change { dn, line, .. } => (dn.clone(), *line),
                };
                let m = format!(
                    "{}:{line}: the file ends inside this record (no line break after its last line): it may be cut off; \
                     the record is not read",
                    self.path.display()
                );
                sink.error(ObjectKey { anchor: None, dn: Some(dn) }, m);
                break;
            }
            let (dn, pairs, line) = match rec {
                Record::Entry { dn, attrs, line } => (dn, attrs, line),
                Record::Change { dn, change: Change::Add(attrs), line } => (dn, attrs, line),
                Record::Change { line, .. } => {
                    return Err(Error::Parse {
                        file: self.path.clone(),
                        line,
                        column: 1,
                        message: "a full-import file holds entries; put modify/delete/modrdn records in delta_path".into(),
                    })
                }
            };
            match self.object(&dn, pairs) {
                Ok(Some(o)) => {
                    if delta.is_some() {
                        typed.insert(idflow_core::dn::norm(&dn));
                    }
                    sink.object(o)?
                }
                Ok(None) => {}
                Err(m) => sink.error(ObjectKey { anchor: None, dn: Some(dn) }, format!("{}:{line}: {m}", self.path.display())),
            }
        }
        drop(records);
        // The digest covers the whole file, read or not (after a cut-off record nothing is left).
        let main = source.finish().map_err(|e| Error::io(&self.path, "cannot read", e))?;
        // A delta file already there is applied now, on top of what was read: never taken as
        // applied without being read (one that appears during the import waits for the next).
        let main = stamped(main, stamp);
        let Some(p) = delta else {
            return Ok(Some(format!("{main}:none")));
        };
        // The watermark names the delta file as it was read, not as it may be a moment later.
        let applied = self.apply_delta(&p, sink, &mut Typed::known(typed))?;
        Ok(Some(format!("{main}:{applied}")))
    }

    /// Applies the change records of a delta file: adds, modifications, renames, deletions.
    /// A change to an object the connector space does not hold passes only when `typed` has
    /// its DN (an object of a configured type); `typed` follows adds and renames.
    /// Returns the delta file's digest, of what was read and applied.
    fn apply_delta(&self, p: &std::path::Path, sink: &mut dyn ImportSink, typed: &mut Typed) -> Result<String> {
        let mut source = self.open(p)?;
        for rec in Reader::over(Box::new(&mut source), &self.binary) {
            let rec = rec.map_err(|e| self.err(p, e))?;
            let (dn, change, line) = match rec {
                Record::Entry { dn, attrs, line } => (dn, Change::Add(attrs), line),
                Record::Change { dn, change, line } => (dn, change, line),
            };
            let key = ObjectKey { anchor: None, dn: Some(dn.clone()) };
            // A change to an object of no configured type (an OU, say) is not this connector's
            // to read, as in a full import: ignored, never an error.
            // The connector space is asked only while the main file's entries are unread: a
            // full import's, read whole, answer alone (what it stores may still be on its way).
            let held = typed.unread() && sink.holds(&key)?;
            if !matches!(change, Change::Add(_)) && !held && !typed.contains(self, &idflow_core::dn::norm(&dn))? {
                tracing::debug!(connector = %self.name, dn = %dn, "a delta record for an object of no configured type: ignored");
                continue;
            }
            match change {
                Change::Add(pairs) => match self.object(&dn, pairs) {
                    Ok(Some(o)) => {
                        typed.add(idflow_core::dn::norm(&dn));
                        sink.change(DeltaChange::Upsert(o))?
                    }
                    Ok(None) => {}
                    Err(m) => sink.error(key, format!("{}:{line}: {m}", p.display())),
                },
                Change::Delete => sink.change(DeltaChange::Delete(key))?,
                Change::Modify(mods) => {
                    let changes = mods
                        .into_iter()
                        .map(|m| AttrChange {
                            attr: m.attr,
                            kind: match m.kind {
                                ModKind::Add => ChangeKind::Add,
                                ModKind::Delete if m.values.is_empty() => ChangeKind::Replace,
                                ModKind::Delete => ChangeKind::Delete,
                                ModKind::Replace => ChangeKind::Replace,
                            },
                            values: m.values,
                        })
                        .collect();
                    sink.change(DeltaChange::Modify { key, changes })?
                }
                Change::ModRdn { new_rdn, delete_old_rdn, new_superior } => {
                    let rdns = idflow_core::dn::parse(&dn).map_err(|e| Error::Parse {
                        file: p.to_path_buf(),
                        line,
                        column: 1,
                        message: e.to_string(),
                    })?;
                    let parent = match new_superior {
                        Some(s) => s,
                        None => idflow_core::dn::format(rdns.get(1..).unwrap_or(&[])),
                    };
                    let new_dn = if parent.is_empty() { new_rdn.clone() } else { format!("{new_rdn},{parent}") };
                    let new = idflow_core::dn::parse(&new_rdn).map_err(|e| Error::Parse {
                        file: p.to_path_buf(),
                        line,
                        column: 1,
                        message: format!("newrdn: {e}"),
                    })?;
                    let mut changes = Vec::new();
                    if let (Some(old), Some(newr)) = (rdns.first(), new.first()) {
                        if delete_old_rdn {
                            for (a, v) in &old.pairs {
                                changes.push(AttrChange {
                                    attr: a.clone(),
                                    kind: ChangeKind::Delete,
                                    values: vec![Value::from(v.as_str())],
                                });
                            }
                        }
                        for (a, v) in &newr.pairs {
                            changes.push(AttrChange { attr: a.clone(), kind: ChangeKind::Add, values: vec![Value::from(v.as_str())] });
                        }
                    }
                    typed.add(idflow_core::dn::norm(&new_dn));
                    sink.change(DeltaChange::Rename { key, new_dn, changes })?
                }
            }
        }
        source.finish().map_err(|e| Error::io(p, "cannot read", e))
    }

    /// The DNs (normalized) of the main file's entries that are of a configured object type,
    /// and the file's digest, taken as it is read. Records that do not parse are skipped (the
    /// full import reported them); a file that cannot be read to its end is an error, never a
    /// shorter set.
    fn typed_dns(&self) -> Result<(HashSet<String>, String)> {
        let mut source = self.open(&self.path)?;
        let typed = Reader::over(Box::new(&mut source), &self.binary)
            .filter_map(|r| match r {
                Ok(Record::Entry { dn, attrs, .. }) | Ok(Record::Change { dn, change: Change::Add(attrs), .. }) => {
                    matches!(self.object(&dn, attrs), Ok(Some(_))).then(|| idflow_core::dn::norm(&dn))
                }
                _ => None,
            })
            .collect();
        if let Some(e) = source.failure() {
            return Err(self.err(&self.path, e.clone()));
        }
        Ok((typed, source.finish().map_err(|e| Error::io(&self.path, "cannot read", e))?))
    }

    /// The object type names of `[connector.object_types]`.
    pub(crate) fn type_names(&self) -> Vec<String> {
        self.types.names()
    }

    fn open(&self, p: &std::path::Path) -> Result<Source<std::io::BufReader<std::fs::File>>> {
        Source::open(p).map_err(|e| Error::io(p, "cannot read", e))
    }

    /// The SHA-256 of a whole file, read a block at a time.
    fn digest(&self, p: &std::path::Path) -> Result<String> {
        self.open(p)?.finish().map_err(|e| Error::io(p, "cannot read", e))
    }

    fn err(&self, p: &std::path::Path, e: LdifError) -> Error {
        Error::Parse { file: p.to_path_buf(), line: e.line, column: 1, message: e.message }
    }

    /// Turns attributes into an imported object, or says why it cannot be one.
    fn object(&self, dn: &str, pairs: Vec<(String, Value)>) -> std::result::Result<Option<ImportedObject>, String> {
        let attrs = group(pairs);
        let Some(t) = self.types.classify(&attrs) else { return Ok(None) };
        let anchor = attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&self.anchor))
            .and_then(|(_, v)| v.first())
            .map(anchor_text)
            .ok_or_else(|| format!("missing anchor attribute {:?}", self.anchor))?;
        Ok(Some(ImportedObject { anchor: Some(anchor), dn: Some(dn.to_string()), object_type: t.to_string(), attrs }))
    }
}

/// The DNs (normalized) of objects of a configured type, as a delta file's records are checked
/// against them: the main file's, and those the delta adds or renames to.
pub(super) struct Typed {
    /// The main file's: known from a full import's read, else read when first asked.
    main: Option<HashSet<String>>,
    /// The digest the main file had as this import began (`None`: `main` is known).
    expected: Option<String>,
    added: HashSet<String>,
}

impl Typed {
    fn known(main: HashSet<String>) -> Self {
        Typed { main: Some(main), expected: None, added: HashSet::new() }
    }

    /// The main file's DNs read when a record first needs them, from the file with `digest`.
    fn later(digest: &str) -> Self {
        Typed { main: None, expected: Some(digest.to_string()), added: HashSet::new() }
    }

    fn add(&mut self, dn_norm: String) {
        self.added.insert(dn_norm);
    }

    /// The main file's entries are not read (yet).
    fn unread(&self) -> bool {
        self.main.is_none()
    }

    fn contains(&mut self, c: &LdifConnector, dn_norm: &str) -> Result<bool> {
        if self.added.contains(dn_norm) {
            return Ok(true);
        }
        if self.main.is_none() {
            tracing::debug!(connector = %c.name, "a delta names an object idflow does not hold: {} is read for its entries' types", c.path.display());
            let (main, digest) = c.typed_dns()?;
            if self.expected.as_deref() != Some(digest.as_str()) {
                let m = "the file changed while its delta file was applied: nothing was imported; run again";
                return Err(Error::io(&c.path, "cannot read", std::io::Error::other(m)));
            }
            self.main = Some(main);
        }
        Ok(self.main.as_ref().is_some_and(|m| m.contains(dn_norm)))
    }
}

/// A main file's digest as a watermark holds it: with the stamp the file had before it was
/// read, when it has one (stamp.rs).
fn stamped(digest: String, stamp: Option<String>) -> String {
    match stamp {
        Some(s) => format!("{digest}@{s}"),
        None => digest,
    }
}

fn group(pairs: Vec<(String, Value)>) -> Attrs {
    let mut attrs = Attrs::new();
    for (k, v) in pairs {
        // LDAP attribute names are case-insensitive: keep the first spelling seen.
        let key = attrs.keys().find(|x| x.eq_ignore_ascii_case(&k)).cloned().unwrap_or(k);
        attrs.entry(key).or_default().push(v);
    }
    attrs
}

impl Connector for LdifConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { delta_import: self.delta_path.is_some(), ..CAPABILITIES }
    }

    fn full_import(&mut self, sink: &mut dyn ImportSink) -> Result<Option<String>> {
        // Parsed on a thread of its own while the caller stores what it read.
        let this = &*self;
        crate::relay::overlapped(&self.name, sink, |reader| this.read_full(reader))
    }

    fn delta_import(&mut self, watermark: &str, sink: &mut dyn ImportSink) -> Result<Option<String>> {
        let Some(p) = self.delta_path.clone() else { return Ok(None) };
        // The watermark is `<main file digest>[@<its stamp>]:<delta file digest or none>`: the
        // delta file is applied once, and a main file that changed asks for a full import.
        // (A release before stamps reads a stamped digest as another one: a full import.)
        let (main_then, delta_then) = watermark.split_once(':').unwrap_or((watermark, ""));
        let (main_then, stamp_then) = main_then.split_once('@').unwrap_or((main_then, ""));
        // Stamped before it is read: a change while it is read changes the stamp.
        let stamp_now = super::stamp::of(&self.path);
        let delta_now = if p.exists() { self.digest(&p)? } else { "none".into() };
        // Whether the main file moved since it was last read: its stamp answers when it is the
        // one taken as the digest was; else its digest.
        let main_now = match &stamp_now {
            Some(s) if s == stamp_then => {
                tracing::debug!(connector = %self.name, "{} has the stamp it had when last read: not read", self.path.display());
                main_then.to_string()
            }
            _ => self.digest(&self.path)?,
        };
        if main_now != main_then {
            tracing::info!(connector = %self.name, "{} changed since the last import: a full import is needed", self.path.display());
            return Ok(None);
        }
        if delta_now == "none" || delta_now == delta_then {
            // Nothing new to apply.
            return Ok(Some(format!("{}:{delta_now}", stamped(main_now, stamp_now))));
        }
        // The main file's entries are read only if a change names an object the connector
        // space does not hold (their types tell one to ignore from one idflow missed).
        let applied = self.apply_delta(&p, sink, &mut Typed::later(&main_now))?;
        Ok(Some(format!("{}:{applied}", stamped(main_now, stamp_now))))
    }

    fn export(&mut self, _ops: &[ExportOp]) -> Result<Vec<OpResult>> {
        Err(Error::connector(&self.name, "an ldif connector is a source only; it cannot be exported to"))
    }
}
