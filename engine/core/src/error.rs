//! Errors that name what is wrong: the file and line, the rule, the object, the attribute.
//! Each variant is a kind; where a lower layer failed (I/O, the database, a protocol), the
//! error keeps it as its source.
use std::path::PathBuf;

/// An underlying error kept as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Text that does not parse: a config, rule or data file, at a line and column.
    #[error("{file}:{line}:{column}: {message}")]
    Parse { file: PathBuf, line: usize, column: usize, message: String },
    /// A file that cannot be read or written.
    #[error("{file}: {message}")]
    File {
        file: PathBuf,
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A configuration that is well-formed but wrong.
    #[error("config: {0}")]
    Config(String),
    /// A rule expression that does not compile (or calls what does not exist), at its line.
    #[error("{0}")]
    Compile(Box<CompileError>),
    /// A connected directory failed or refused.
    #[error("connector {connector:?}: {message}")]
    Connector {
        connector: String,
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The metaverse database failed; `path` names it.
    #[error("metaverse database {path}: {message}")]
    Store {
        path: String,
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A safety check stopped the run (deletion threshold, empty read, ...).
    #[error("{0}")]
    Refused(String),
}

/// Where and why a rule expression does not compile.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: rule {rule:?}: {what} {expr:?}: {message}")]
pub struct CompileError {
    pub rule: String,
    pub file: PathBuf,
    pub line: usize,
    pub what: String,
    pub expr: String,
    pub message: String,
}

impl Error {
    /// An error at a byte offset of a text file, turned into line and column.
    pub fn at_offset(file: impl Into<PathBuf>, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = line_col(text, offset);
        Error::Parse { file: file.into(), line, column, message: message.into() }
    }

    pub fn connector(name: &str, message: impl Into<String>) -> Self {
        Error::Connector { connector: name.to_string(), message: message.into(), source: None }
    }

    /// A connector error caused by `source` (a protocol or network error), kept as its source.
    pub fn connector_caused(name: &str, message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Connector { connector: name.to_string(), message: message.into(), source: Some(source.into()) }
    }

    /// A file error with no underlying error to keep.
    pub fn file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File { file: file.into(), message: message.into(), source: None }
    }

    /// A file error caused by `source`: the message reads `<what>: <source>`.
    pub fn io(file: impl Into<PathBuf>, what: &str, source: std::io::Error) -> Self {
        let message = if what.is_empty() { source.to_string() } else { format!("{what}: {source}") };
        Error::File { file: file.into(), message, source: Some(Box::new(source)) }
    }

    /// A database error caused by `source`, naming the database.
    pub fn store(path: &str, source: impl Into<BoxError>) -> Self {
        let source = source.into();
        Error::Store { path: path.to_string(), message: source.to_string(), source: Some(source) }
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

/// A TOML error as `file:line:column: message`.
pub fn toml_error(path: &std::path::Path, text: &str, e: &toml::de::Error) -> Error {
    let offset = e.span().map(|s| s.start).unwrap_or(0);
    Error::at_offset(path, text, offset, e.message().to_string())
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
