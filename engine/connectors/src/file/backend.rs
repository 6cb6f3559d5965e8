//! The `file` connector: a target directory kept as one JSON file, so the quickstart needs no
//! server. idflow assigns each object a stable id (its anchor) when it provisions it, and every
//! export rewrites the file atomically (write, fsync, rename).
use super::config::Settings;
use super::CAPABILITIES;
use idflow_core::connector::{Capabilities, Connector, ExportOp, ImportSink, ImportedObject, OpKind, OpResult};
use idflow_core::{Attrs, ConnectorConfig, Error, Result, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

/// The file's shape: `{"objects": [{"id", "type", "dn"?, "attributes": {name: value or [values]}}]}`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct FileModel {
    pub objects: Vec<FileObject>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct FileObject {
    pub id: String,
    #[serde(rename = "type")]
    pub object_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dn: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, OneOrMany>,
}

#[derive(Debug, Clone)]
pub(super) enum OneOrMany {
    Many(Vec<Value>),
    One(Value),
}

impl Serialize for OneOrMany {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            OneOrMany::Many(v) => v.serialize(s),
            OneOrMany::One(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    /// Read without serde's untagged buffering: a file of 100,000 objects parses several times faster.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(Value::Str(v.to_string())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(Value::Str(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(Value::Str(v.to_string())))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(Value::Str(v.to_string())))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(Value::Str(v.to_string())))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = a.next_element::<Value>()? {
                    out.push(v);
                }
                Ok(OneOrMany::Many(out))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<OneOrMany, A::Error> {
                Value::deserialize(serde::de::value::MapAccessDeserializer::new(a)).map(OneOrMany::One)
            }
        }
        d.deserialize_any(V)
    }
}

impl OneOrMany {
    fn into_vec(self) -> Vec<Value> {
        match self {
            OneOrMany::Many(v) => v,
            OneOrMany::One(v) => vec![v],
        }
    }
    fn from_vec(mut v: Vec<Value>) -> Self {
        if v.len() == 1 {
            OneOrMany::One(v.remove(0))
        } else {
            OneOrMany::Many(v)
        }
    }
}

#[derive(Clone)]
pub(crate) struct FileConnector {
    name: String,
    path: PathBuf,
}

impl FileConnector {
    /// Checks the settings; the file is read at import and written at export.
    pub(crate) fn new(cfg: &ConnectorConfig) -> Result<Self> {
        let s: Settings = cfg.settings()?;
        Ok(FileConnector { name: cfg.name.clone(), path: cfg.resolve(&s.path) })
    }

    fn load(&self) -> Result<FileModel> {
        if !self.path.exists() {
            return Ok(FileModel::default());
        }
        let text = std::fs::read_to_string(&self.path).map_err(|e| Error::io(&self.path, "cannot read", e))?;
        serde_json::from_str(&text).map_err(|e: serde_json::Error| Error::Parse {
            file: self.path.clone(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    }

    fn save(&self, m: &FileModel) -> Result<()> {
        let io = |e: std::io::Error| Error::io(&self.path, "cannot write", e);
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
        }
        let tmp = self.path.with_extension("json.tmp");
        // The file holds identities (and, as a password hash sync target, their hashes): it is
        // written owner-only, and the rename replaces a file others could read with one they can't.
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let f = opts.open(&tmp).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // A temporary file left by a killed run keeps its old mode: set it.
            f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        serde_json::to_writer_pretty(&mut w, m).map_err(|e| io(std::io::Error::other(e)))?;
        w.write_all(b"\n").map_err(io)?;
        let f = w.into_inner().map_err(|e| io(e.into_error()))?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

impl Connector for FileConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn full_import(&mut self, sink: &mut dyn ImportSink) -> Result<Option<String>> {
        for o in self.load()?.objects {
            let attrs: Attrs = o.attributes.into_iter().map(|(k, v)| (k, v.into_vec())).collect();
            sink.object(ImportedObject { anchor: Some(o.id), dn: o.dn, object_type: o.object_type, attrs })?;
        }
        Ok(None)
    }

    fn delta_import(&mut self, _watermark: &str, _sink: &mut dyn ImportSink) -> Result<Option<String>> {
        Ok(None)
    }

    fn export(&mut self, ops: &[ExportOp]) -> Result<Vec<OpResult>> {
        let mut model = self.load()?;
        let mut index: BTreeMap<String, usize> = model.objects.iter().enumerate().map(|(i, o)| (o.id.clone(), i)).collect();
        let mut removed = vec![false; model.objects.len()];
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let r = match op.kind {
                OpKind::Add => match &op.anchor {
                    None => OpResult::Failed("the file connector needs an id assigned at provisioning".into()),
                    Some(id) if index.contains_key(id) => OpResult::Failed(format!("an object with id {id} exists already")),
                    Some(id) => {
                        let attributes = op
                            .attrs
                            .iter()
                            .filter(|(_, v)| !v.is_empty())
                            .map(|(k, v)| (k.clone(), OneOrMany::from_vec(v.clone())))
                            .collect();
                        model.objects.push(FileObject {
                            id: id.clone(),
                            object_type: op.object_type.clone(),
                            dn: op.new_dn.clone().or_else(|| op.dn.clone()),
                            attributes,
                        });
                        removed.push(false);
                        index.insert(id.clone(), model.objects.len() - 1);
                        OpResult::Done { anchor: Some(id.clone()), dn: op.new_dn.clone().or_else(|| op.dn.clone()) }
                    }
                },
                OpKind::Update => match op.anchor.as_ref().and_then(|a| index.get(a)) {
                    None => OpResult::Failed("no such object in the file".into()),
                    Some(&i) => {
                        let o = &mut model.objects[i];
                        let mut attrs: Attrs = std::mem::take(&mut o.attributes).into_iter().map(|(k, v)| (k, v.into_vec())).collect();
                        idflow_core::connector::apply_changes(&mut attrs, &op.changes);
                        o.attributes = attrs.into_iter().map(|(k, v)| (k, OneOrMany::from_vec(v))).collect();
                        if let Some(d) = &op.new_dn {
                            o.dn = Some(d.clone());
                        }
                        OpResult::Done { anchor: Some(o.id.clone()), dn: o.dn.clone() }
                    }
                },
                OpKind::Delete => {
                    if let Some(i) = op.anchor.as_ref().and_then(|a| index.remove(a)) {
                        removed[i] = true;
                    }
                    // Gone already counts as done.
                    OpResult::Done { anchor: op.anchor.clone(), dn: None }
                }
            };
            results.push(r);
        }
        let mut i = 0;
        model.objects.retain(|_| {
            let keep = !removed[i];
            i += 1;
            keep
        });
        self.save(&model)?;
        Ok(results)
    }
}
