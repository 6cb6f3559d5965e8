//! Errors that name what is wrong: the file and line, the rule, the object, the attribute.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}:{line}:{column}: {message}")]
    Parse { file: PathBuf, line: usize, column: usize, message: String },
    #[error("{file}: {message}")]
    File { file: PathBuf, message: String },
    #[error("config: {0}")]
    Config(String),
    #[error("rule {rule:?} ({file}): {what} {expr:?}: {message}")]
    Compile { rule: String, file: PathBuf, what: String, expr: String, message: String },
    #[error("connector {connector:?}: {message}")]
    Connector { connector: String, message: String },
    #[error("metaverse database {path}: {message}")]
    Store { path: String, message: String },
    #[error("{0}")]
    Refused(String),
}

impl Error {
    /// An error at a byte offset of a text file, turned into line and column.
    pub fn at_offset(file: impl Into<PathBuf>, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = line_col(text, offset);
        Error::Parse { file: file.into(), line, column, message: message.into() }
    }

    pub fn connector(name: &str, message: impl Into<String>) -> Self {
        Error::Connector { connector: name.to_string(), message: message.into() }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Store { path: String::new(), message: e.to_string() }
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
