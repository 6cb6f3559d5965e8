//! Whose backups a backup folder holds: a file in it (`idflow-backups-of` for `idflow.db`)
//! names one metaverse, by its canonical path, written whole by the first backup into the
//! folder. Another metaverse of the same name is refused there: each service's retention would
//! remove the other's backups, and a restore could take the wrong one.
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What a folder's file says of whose backups it holds.
#[derive(Debug)]
pub(crate) enum Owner {
    /// No file (or an empty one: none is written so by idflow).
    Nobody,
    /// The metaverse asked about.
    Mine,
    /// Another metaverse: what the file says (as text).
    Other(String),
    /// The file is there but cannot be read.
    Unreadable(std::io::Error),
}

/// Whose backups `file` says its folder holds, asked for the metaverse at `mine` (canonical;
/// `None`: one that cannot be looked at, never the owner).
pub(crate) fn of(file: &Path, mine: Option<&Path>) -> Owner {
    match std::fs::read(file) {
        Ok(bytes) => {
            let named = bytes.trim_ascii_end();
            if named.is_empty() {
                Owner::Nobody
            } else if mine.is_some_and(|m| m.as_os_str().as_bytes() == named) {
                Owner::Mine
            } else {
                Owner::Other(String::from_utf8_lossy(named).into_owned())
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Owner::Nobody,
        Err(e) => Owner::Unreadable(e),
    }
}

/// Writes `file` naming `mine`, whole or not at all: written and flushed beside it (owner-only),
/// then linked in under its name, which fails when another process got there first (then
/// `false`). An empty file of that name is replaced.
pub(crate) fn write(file: &Path, mine: &Path) -> std::io::Result<bool> {
    use std::io::Write as _;
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = file.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .and_then(|mut f| {
            f.write_all(mine.as_os_str().as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()
        })
        .and_then(|()| match std::fs::hard_link(&partial, file) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match of(file, None) {
                Owner::Nobody => std::fs::rename(&partial, file).map(|()| true),
                _ => Ok(false),
            },
            Err(e) => Err(e),
        });
    let _ = std::fs::remove_file(&partial);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_whole_once_and_read_back_whatever_the_path_holds() {
        use std::os::unix::ffi::OsStrExt;
        let t = tempfile::tempdir().expect("tempdir");
        let file = t.path().join("idflow-backups-of");
        // A name that is no UTF-8 (Linux allows any bytes but / and NUL).
        let mine = t.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9")).join("idflow.db");
        let other = t.path().join("other").join("idflow.db");
        assert!(matches!(of(&file, Some(&mine)), Owner::Nobody));
        assert!(write(&file, &mine).expect("written"));
        assert!(matches!(of(&file, Some(&mine)), Owner::Mine));
        assert!(matches!(of(&file, Some(&other)), Owner::Other(t) if t.ends_with("/caf\u{fffd}/idflow.db")));
        assert!(matches!(of(&file, None), Owner::Other(_)));
        assert!(!write(&file, &other).expect("not written over"), "the first one's stays");
        assert!(matches!(of(&file, Some(&mine)), Owner::Mine));
        let left: Vec<_> = std::fs::read_dir(t.path()).expect("dir").filter_map(|e| e.ok()).collect();
        assert_eq!(left.len(), 1, "no partial left");
        // An empty one (a write cut short by an older idflow) names nobody and is replaced.
        std::fs::write(&file, "").expect("emptied");
        assert!(matches!(of(&file, Some(&other)), Owner::Nobody));
        assert!(write(&file, &other).expect("written"));
        assert!(matches!(of(&file, Some(&other)), Owner::Mine));
        // One that cannot be read is said so.
        std::fs::remove_file(&file).expect("removed");
        std::fs::create_dir(&file).expect("a folder in its place");
        assert!(matches!(of(&file, Some(&mine)), Owner::Unreadable(_)));
    }
}
