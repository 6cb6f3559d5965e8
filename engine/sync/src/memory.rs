//! A connector and a hash source held in memory: `idflow test` feeds rule test inputs through
//! the real import stage with them, and benchmarks measure stages without a server.
use idflow_core::connector::{Capabilities, Connector, ExportOp, ImportSink, ImportedObject, OpResult};
use idflow_core::hash::{HashResult, HashSource, Pull, PullRequest};
use idflow_core::Result;
use std::collections::HashMap;

/// A directory in memory: a full import reads `objects`; an export succeeds and is kept in
/// `exported`. It has no deltas (a delta import asks for a full one). A test double: what it
/// is sent stays in memory, so it is never a password hash target.
pub struct MemoryConnector {
    name: String,
    caps: Capabilities,
    pub objects: Vec<ImportedObject>,
    pub exported: Vec<ExportOp>,
}

impl MemoryConnector {
    /// A connector named `name` that claims `caps` (those of the kind it stands in for).
    pub fn new(name: &str, caps: Capabilities, objects: Vec<ImportedObject>) -> Self {
        MemoryConnector { name: name.to_string(), caps, objects, exported: Vec::new() }
    }
}

impl Connector for MemoryConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn full_import(&mut self, sink: &mut dyn ImportSink) -> Result<Option<String>> {
        for o in &self.objects {
            sink.object(o.clone())?;
        }
        Ok(None)
    }

    fn delta_import(&mut self, _watermark: &str, _sink: &mut dyn ImportSink) -> Result<Option<String>> {
        Ok(None)
    }

    fn export(&mut self, ops: &[ExportOp]) -> Result<Vec<OpResult>> {
        self.exported.extend(ops.iter().cloned());
        Ok(ops.iter().map(|op| OpResult::Done { anchor: op.anchor.clone(), dn: op.new_dn.clone().or(op.dn.clone()) }).collect())
    }
}

/// Hashes held in memory, read once: benchmarks and tests of the password hash sync stage.
pub struct MemorySource(pub HashMap<String, HashResult>);

impl HashSource for MemorySource {
    fn read(&mut self, _: &PullRequest) -> Result<Pull> {
        Ok(Pull::complete(std::mem::take(&mut self.0)))
    }
}
