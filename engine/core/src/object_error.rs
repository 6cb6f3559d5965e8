//! A per-object error: one object failed at one stage, the run went on. Kept in run history,
//! shown in reports, and retried by the next run.
use serde::{Deserialize, Serialize};

/// The stage of a run an object failed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Import,
    Sync,
    Export,
    /// Password hash sync.
    Phs,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Import => "import",
            Stage::Sync => "sync",
            Stage::Export => "export",
            Stage::Phs => "phs",
        }
    }

    /// The stage a stored name stands for.
    pub fn parse(s: &str) -> Option<Stage> {
        Some(match s {
            "import" => Stage::Import,
            "sync" => Stage::Sync,
            "export" => Stage::Export,
            "phs" => Stage::Phs,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ObjectError {
    pub stage: Stage,
    pub connector: Option<String>,
    /// How the object reads in messages (a DN, a name, an anchor).
    pub object: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cs_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mv_id: Option<i64>,
    pub rule: Option<String>,
    pub message: String,
}

impl ObjectError {
    /// An error on an object of `connector`, with no rule or ids yet.
    pub fn new(stage: Stage, connector: &str, object: impl Into<String>, message: impl Into<String>) -> Self {
        ObjectError {
            stage,
            connector: Some(connector.to_string()),
            object: Some(object.into()),
            cs_id: None,
            mv_id: None,
            rule: None,
            message: message.into(),
        }
    }
}
