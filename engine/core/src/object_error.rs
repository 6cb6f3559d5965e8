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

/// What kind of error an object is in: Entra Connect Health's categories where they fit, and
/// idflow's own. The error report groups by it and `/metrics` counts by it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Another object already holds a value that must be unique (or a join matched several).
    DuplicateAttribute,
    /// A soft match refused: the target object matches but belongs to another source.
    DataMismatch,
    /// A value the target or the directory refuses (syntax, schema, a missing required value).
    DataValidationFailure,
    /// A value or object larger than the target takes.
    LargeAttribute,
    /// A rule failed to evaluate (or gave a value of the wrong type).
    RuleError,
    /// A reference to an object that does not exist (or is not synced).
    DanglingReference,
    /// A directory or target could not be reached, or refused the connection or the login.
    Connectivity,
    /// Deletions held by the deletion threshold.
    Threshold,
    #[default]
    Other,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Category::DuplicateAttribute,
        Category::DataMismatch,
        Category::DataValidationFailure,
        Category::LargeAttribute,
        Category::RuleError,
        Category::DanglingReference,
        Category::Connectivity,
        Category::Threshold,
        Category::Other,
    ];

    /// The name in reports and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::DuplicateAttribute => "duplicate-attribute",
            Category::DataMismatch => "data-mismatch",
            Category::DataValidationFailure => "data-validation-failure",
            Category::LargeAttribute => "large-attribute",
            Category::RuleError => "rule-error",
            Category::DanglingReference => "dangling-reference",
            Category::Connectivity => "connectivity",
            Category::Threshold => "threshold",
            Category::Other => "other",
        }
    }

    /// The name people read (Connect Health's where it has one).
    pub fn title(self) -> &'static str {
        match self {
            Category::DuplicateAttribute => "Duplicate Attribute",
            Category::DataMismatch => "Data Mismatch",
            Category::DataValidationFailure => "Data Validation Failure",
            Category::LargeAttribute => "Large Attribute",
            Category::RuleError => "Rule Error",
            Category::DanglingReference => "Dangling Reference",
            Category::Connectivity => "Connectivity",
            Category::Threshold => "Threshold",
            Category::Other => "Other",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s || c.title().eq_ignore_ascii_case(s))
    }

    /// The category an error's words show, for errors whose maker did not set one: what a
    /// target or directory answered is only known as its message (SCIM: `HTTP 409 uniqueness:
    /// ...`; LDAP: its result's name). Phrases, not bare words or numbers, so that an id, a port
    /// or an attribute name (`userCertificate`) does not decide it.
    pub fn of(stage: Stage, rule: bool, message: &str) -> Category {
        let m = message.to_ascii_lowercase();
        let has = |phrases: &[&str]| phrases.iter().any(|w| m.contains(w));
        if has(&["deletion threshold"]) {
            Category::Threshold
        } else if has(&["invalidsoftmatch", "names another source"]) {
            Category::DataMismatch
        } else if m.contains(" refers to ") && has(&["does not exist", "not synced"]) {
            Category::DanglingReference
        } else if has(&["http 413", "too large", "too long", "sizelimitexceeded", "size limit exceeded", "adminlimitexceeded", "toomany"]) {
            Category::LargeAttribute
        } else if has(&[
            "http 409",
            "uniqueness",
            "already exists",
            "entryalreadyexists",
            "duplicate anchor",
            "duplicate dn",
            "ambiguous join",
            "ambiguous outbound join",
            "same object twice",
        ]) {
            Category::DuplicateAttribute
        } else if has(&[
            "cannot connect",
            "connection refused",
            "connection reset",
            "reset by peer",
            "broken pipe",
            "timed out",
            "unreachable",
            "invalid credentials",
            "invalidcredentials",
            "authentication failed",
            "http 401",
            "http 403",
            "tls handshake",
            "invalid peer certificate",
            "certificate verify failed",
            "failed to lookup address",
            "name or service not known",
        ]) {
            Category::Connectivity
        } else if has(&[
            "http 400",
            "invalidvalue",
            "invalidsyntax",
            "invalid syntax",
            "invalidattributesyntax",
            "constraintviolation",
            "constraint violation",
            "objectclassviolation",
            "object class violation",
            "mutability",
            "is required",
            "required attribute",
        ]) {
            Category::DataValidationFailure
        } else if rule && stage == Stage::Sync {
            Category::RuleError
        } else {
            Category::Other
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.title())
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
    /// What kind of error it is (set by `classified` where its maker did not know).
    #[serde(default)]
    pub category: Category,
    /// The attribute it is about, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// The other object in a conflict (a duplicate, a refused soft match), where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
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
            category: Category::Other,
            attribute: None,
            conflict: None,
        }
    }

    /// A connector's import or export that failed as a whole (no object named).
    pub fn is_connector_failure(&self) -> bool {
        self.object.is_none() && matches!(self.stage, Stage::Import | Stage::Export)
    }

    /// Password hash sync that failed as a whole (no object named).
    pub fn is_phs_failure(&self) -> bool {
        self.object.is_none() && self.stage == Stage::Phs
    }

    /// An error of a whole connector's stage (it could not be read or written), not of an object.
    pub fn connector(stage: Stage, connector: &str, message: impl Into<String>) -> Self {
        ObjectError { object: None, ..ObjectError::new(stage, connector, "", message) }
    }

    pub fn with_category(mut self, c: Category) -> Self {
        self.category = c;
        self
    }

    pub fn with_conflict(mut self, other: impl Into<String>) -> Self {
        self.conflict = Some(other.into());
        self
    }

    /// Fills in what the message shows and the maker left unset: the category, and the
    /// attribute of a flow (`flow mail ...`) or a reference (`manager refers to ...`).
    pub fn classified(mut self) -> Self {
        if self.category == Category::Other {
            self.category = Category::of(self.stage, self.rule.is_some(), &self.message);
        }
        if self.attribute.is_none() {
            let m = self.message.strip_prefix("deprovision ").unwrap_or(&self.message);
            let word = |s: &str| s.split([' ', ':']).next().filter(|w| !w.is_empty()).map(str::to_string);
            self.attribute = match m.strip_prefix("flow ") {
                Some(rest) => word(rest),
                None if self.category == Category::DanglingReference => m.split_once(" refers to ").and_then(|(a, _)| word(a)),
                None => None,
            };
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::{Category, ObjectError, Stage};

    fn cat(stage: Stage, rule: bool, m: &str) -> (Category, Option<String>) {
        let mut e = ObjectError::new(stage, "c", "o", m);
        e.rule = rule.then(|| "r".into());
        let e = e.classified();
        (e.category, e.attribute)
    }

    #[test]
    fn messages_fall_into_categories() {
        assert_eq!(cat(Stage::Sync, true, "flow mail \"x\": function not found").0, Category::RuleError);
        assert_eq!(cat(Stage::Sync, true, "flow mail \"x\": boom").1.as_deref(), Some("mail"));
        assert_eq!(
            cat(Stage::Sync, true, "manager refers to cn=x, which does not exist in connector \"corp\""),
            (Category::DanglingReference, Some("manager".into()))
        );
        assert_eq!(cat(Stage::Export, false, "HTTP 409: uniqueness: userName taken").0, Category::DuplicateAttribute);
        assert_eq!(cat(Stage::Export, false, "HTTP 400 invalidValue: emails").0, Category::DataValidationFailure);
        assert_eq!(cat(Stage::Export, false, "HTTP 413: payload").0, Category::LargeAttribute);
        assert_eq!(cat(Stage::Import, false, "cannot connect to ldap://x: Connection refused").0, Category::Connectivity);
        // Numbers, ports and attribute names decide nothing.
        assert_eq!(cat(Stage::Export, false, "object 40913 at port 4000: userCertificate missing").0, Category::Other);
        assert_eq!(cat(Stage::Import, false, "connector \"corp\": corp.ldif: no such file").0, Category::Other);
        assert_eq!(
            cat(Stage::Export, false, "export to \"cloud\" would delete 9 objects, more than the deletion threshold (5)").0,
            Category::Threshold
        );
        assert_eq!(cat(Stage::Sync, true, "InvalidSoftMatch: cloud object x names another source").0, Category::DataMismatch);
        assert_eq!(cat(Stage::Import, false, "something odd").0, Category::Other);
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(c));
            assert_eq!(Category::parse(c.title()), Some(c));
        }
    }

    #[test]
    fn an_error_stored_before_categories_reads_as_other() {
        let e: ObjectError =
            serde_json::from_str(r#"{"stage":"sync","connector":null,"object":null,"rule":null,"message":"m"}"#).expect("old form");
        assert_eq!(e.category, Category::Other);
    }
}
